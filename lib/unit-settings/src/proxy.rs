//! The proxy unit's settings (services/proxy `--config`, docs/proxy.md).
//! The cache reads the same keys for its own listener (see `cache`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use gateway_config::{Config, Secret};
use serde::{Deserialize, Serialize};

use crate::SettingsError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default)]
    pub hosts: BTreeMap<String, IpAddr>,
    /// Name servers for destinations; a missing file means the hosts map
    /// alone (an appliance whose network is not configured yet).
    #[serde(default = "default_resolv_conf")]
    pub resolv_conf: PathBuf,
    #[serde(default)]
    pub patch: bool,
    /// Empty: the default agent networks (RFC 1918 and loopback).
    #[serde(default)]
    pub agent_networks: Vec<ipnet::IpNet>,
    /// In patch mode, the private networks a destination may be in
    /// (`patch.private_destinations`); by default all private ranges.
    #[serde(default = "gateway_config::schema::private_ranges")]
    pub private_destinations: Vec<ipnet::IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamSettings>,
    #[serde(default = "default_head_timeout")]
    pub head_timeout_s: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_s: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Of those, from one client address.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
}

/// Connections one address may hold at once: enough for a NAT in front of
/// hundreds of agents (each holds one or two), far from the memory of the
/// whole cap (a pending head holds up to 16 KiB).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 2048;

/// The upstream proxy, as the proxy, the cache and the agent read it. The
/// password is in clear in the file (the unit's own, mode 0600) and
/// redacted in `Debug`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Destinations reached directly, not through the upstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypass: Vec<String>,
}

impl UpstreamSettings {
    /// `upstream.*` of the configuration, when an upstream proxy is set.
    pub fn from_config(c: &Config) -> Option<Self> {
        c.upstream.proxy.as_ref().map(|p| UpstreamSettings {
            host: p.host.clone(),
            port: p.port,
            user: c.upstream.user.clone(),
            password: c.upstream.password.clone(),
            bypass: Vec::new(),
        })
    }
}

pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], gateway_config::schema::DEFAULT_PROXY_PORT))
}
fn default_resolv_conf() -> PathBuf {
    PathBuf::from(gateway_paths::RESOLV_CONF)
}
fn default_head_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    600
}
fn default_max_connections() -> usize {
    16_384
}
fn default_max_connections_per_client() -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            listen: default_listen(),
            allowed_domains: Vec::new(),
            hosts: BTreeMap::new(),
            resolv_conf: default_resolv_conf(),
            patch: false,
            agent_networks: Vec::new(),
            private_destinations: gateway_config::schema::private_ranges(),
            upstream: None,
            head_timeout_s: default_head_timeout(),
            idle_timeout_s: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
        }
    }
}

impl ProxySettings {
    /// What PID 1 writes for the proxy unit.
    pub fn from_config(c: &Config) -> Self {
        ProxySettings {
            listen: SocketAddr::from(([0, 0, 0, 0], c.proxy.port)),
            allowed_domains: c.allowed_domains.clone(),
            hosts: c
                .hosts
                .iter()
                .map(|(k, v)| (k.clone(), IpAddr::V4(*v)))
                .collect(),
            patch: c.patch.enabled,
            private_destinations: c.patch.private_destinations.clone(),
            upstream: UpstreamSettings::from_config(c),
            ..ProxySettings::default()
        }
    }

    /// The file's text as the type reads it; the service checks the values.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        crate::parse_json(text)
    }
}

/// A configuration that sets every key the proxy's settings carry (port,
/// allowed domains, hosts map, upstream with user and password): the
/// fixture both sides of the contract test with (PID 1's writer and the
/// proxy's checks).
#[doc(hidden)]
pub fn example_configuration() -> Config {
    Config::default()
        .with_changes(&[
            ("proxy.port", "3128"),
            ("allowed_domains", "example.com"),
            ("hosts", "api.example.com=10.0.2.2"),
            ("upstream.proxy", "up.example.com:8080"),
            ("upstream.user", "agent"),
            ("upstream.password", "s3cret"),
        ])
        .expect("the example configuration follows the rules")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_object_is_the_defaults_and_the_written_file_reads_back() {
        assert_eq!(
            ProxySettings::parse("{}").unwrap(),
            ProxySettings::default()
        );
        let c = crate::proxy::example_configuration();
        let s = ProxySettings::from_config(&c);
        let text = crate::to_text(&s);
        assert!(
            text.contains("\"s3cret\""),
            "the unit needs the password: {text}"
        );
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(ProxySettings::parse(&text).unwrap(), s);
        assert_eq!(s.listen.port(), 3128);
    }

    #[test]
    fn a_typo_is_refused_with_the_key() {
        let err = ProxySettings::parse(r#"{"listn": "0.0.0.0:1080"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `listn`"), "{err}");
    }
}
