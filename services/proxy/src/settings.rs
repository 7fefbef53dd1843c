//! The proxy's settings file (`--config`), as init writes it from the
//! configuration store: JSON, unknown keys refused, every value checked with
//! an error naming its key. Re-read on SIGHUP; a bad file leaves the running
//! configuration untouched.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::policy::{default_agent_networks, AllowedDomains, Mode, Policy};
use crate::resolver::Resolver;
use crate::server::ProxyConfig;
use crate::upstream::{Credentials, Secret, Upstream};

#[derive(Debug, Clone, Deserialize, PartialEq)]
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
    #[serde(default)]
    pub upstream: Option<UpstreamSettings>,
    #[serde(default = "default_head_timeout")]
    pub head_timeout_s: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_s: u64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub bypass: Vec<String>,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("bypass", &self.bypass)
            .finish()
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 1080))
}
fn default_resolv_conf() -> PathBuf {
    PathBuf::from("/etc/resolv.conf")
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

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Reads the settings file at `path` with `parse`; a parse error names the
/// file (the cache's settings are read the same way).
pub fn load_with<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, SettingsError>,
) -> Result<T, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text).map_err(|e| match e {
        SettingsError::Parse { source, .. } => SettingsError::Parse {
            path: path.display().to_string(),
            source,
        },
        other => other,
    })
}

impl ProxySettings {
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        load_with(path, Self::parse)
    }

    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let s: ProxySettings =
            serde_json::from_str(text).map_err(|source| SettingsError::Parse {
                path: String::new(),
                source,
            })?;
        s.to_config()?;
        Ok(s)
    }

    fn resolver(&self) -> Result<Resolver, SettingsError> {
        let hosts = self
            .hosts
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), *v))
            .collect();
        // No file, or one without servers (the network has no DNS yet):
        // the hosts map alone, until a reload.
        Resolver::with_resolv_conf(&self.resolv_conf, hosts).map_err(|e| SettingsError::Invalid {
            key: "resolv_conf",
            reason: e.to_string(),
        })
    }

    /// The running configuration these settings describe.
    pub fn to_config(&self) -> Result<ProxyConfig, SettingsError> {
        let invalid = |key, reason: String| SettingsError::Invalid { key, reason };
        let allowed = AllowedDomains::parse(self.allowed_domains.iter().map(String::as_str))
            .map_err(|e| invalid("allowed_domains", e.to_string()))?;
        if self.listen.port() == 0 {
            return Err(invalid("listen", "the port must be 1-65535".into()));
        }
        for (key, v) in [
            ("head_timeout_s", self.head_timeout_s),
            ("idle_timeout_s", self.idle_timeout_s),
        ] {
            if v == 0 || v > 86_400 {
                return Err(invalid(
                    key,
                    format!("{v} is not between 1 and 86400 seconds"),
                ));
            }
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1".into()));
        }
        let upstream = match &self.upstream {
            None => None,
            Some(u) => {
                if u.host.is_empty() {
                    return Err(invalid("upstream.host", "is empty".into()));
                }
                if u.port == 0 {
                    return Err(invalid("upstream.port", "must be 1-65535".into()));
                }
                if u.password.is_some() && u.user.is_none() {
                    return Err(invalid(
                        "upstream.password",
                        "is set without upstream.user".into(),
                    ));
                }
                let credentials = u.user.clone().map(|user| Credentials {
                    user,
                    password: Secret::new(u.password.clone().unwrap_or_default()),
                });
                Some(Upstream {
                    host: u.host.to_ascii_lowercase(),
                    port: u.port,
                    credentials,
                    bypass: u.bypass.iter().map(|d| d.to_ascii_lowercase()).collect(),
                })
            }
        };
        let networks = if self.agent_networks.is_empty() {
            default_agent_networks()
        } else {
            self.agent_networks.clone()
        };
        let mode = if self.patch { Mode::Patch } else { Mode::Cache };
        Ok(ProxyConfig {
            policy: Policy::new(mode, allowed, networks),
            resolver: self.resolver()?,
            head_timeout: Duration::from_secs(self.head_timeout_s),
            idle_timeout: Duration::from_secs(self.idle_timeout_s),
            max_connections: self.max_connections,
            upstream,
            ..ProxyConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolv_conf_without_servers_leaves_the_hosts_map() {
        // An appliance whose network gave no DNS servers yet: the proxy
        // starts, with the hosts map alone.
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("resolv.conf");
        std::fs::write(&conf, "# no servers\n").unwrap();
        let text = format!(
            r#"{{"resolv_conf":{:?},"hosts":{{"a.example.com":"10.0.0.1"}}}}"#,
            conf
        );
        let s = ProxySettings::parse(&text).unwrap();
        assert!(s.to_config().unwrap().resolver.is_mapped("a.example.com"));
    }

    #[test]
    fn an_empty_object_is_the_defaults() {
        let s = ProxySettings::parse("{}").unwrap();
        assert_eq!(s.listen, "0.0.0.0:1080".parse().unwrap());
        let c = s.to_config().unwrap();
        assert_eq!(c.max_connections, 16_384);
        assert!(c.upstream.is_none());
    }

    #[test]
    fn a_full_file() {
        let s = ProxySettings::parse(
            r#"{"listen": "127.0.0.1:3128", "allowed_domains": ["example.com:8443"],
                "hosts": {"Proxy.Corp": "10.0.0.5"}, "patch": true, "agent_networks": ["10.1.0.0/16"],
                "upstream": {"host": "proxy.corp", "port": 8080, "user": "gw", "password": "pw", "bypass": ["corp.example"]},
                "head_timeout_s": 5, "idle_timeout_s": 60, "max_connections": 100}"#,
        )
        .unwrap();
        let c = s.to_config().unwrap();
        assert_eq!(
            c.resolver.hosts().get("proxy.corp"),
            Some(&"10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            c.upstream.as_ref().unwrap().authorization().as_deref(),
            Some("Basic Z3c6cHc=")
        );
        assert_eq!(c.policy.mode(), Mode::Patch);
        assert!(!format!("{s:?}").contains("\"pw\""), "{s:?}");
    }

    #[test]
    fn errors_name_the_key() {
        for (text, needle) in [
            (
                r#"{"allowed_domains": ["https://x.com"]}"#,
                "allowed_domains: ",
            ),
            (
                r#"{"listen": "0.0.0.0:0"}"#,
                "listen: the port must be 1-65535",
            ),
            (
                r#"{"idle_timeout_s": 0}"#,
                "idle_timeout_s: 0 is not between 1 and 86400 seconds",
            ),
            (
                r#"{"max_connections": 0}"#,
                "max_connections: must be at least 1",
            ),
            (
                r#"{"upstream": {"host": "p", "port": 3128, "password": "x"}}"#,
                "upstream.password: is set without upstream.user",
            ),
            (r#"{"listn": "0.0.0.0:1080"}"#, "unknown field `listn`"),
            (r#"{"hosts": {"a": "not-an-ip"}}"#, "invalid IP address"),
        ] {
            let err = ProxySettings::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
