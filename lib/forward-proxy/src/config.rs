//! The proxy's running configuration, as its settings give it
//! ([`ToProxyConfig`], each value checked with an error naming its key) and
//! the server, the forwarder and the cache read it.

use std::collections::HashMap;
use std::time::Duration;

use gateway_http::head::Limits;
use gateway_resolver::Resolver;
use gateway_unit_settings::{ProxySettings, SettingsError};

use crate::policy::{default_agent_networks, AllowedDomains, Mode, Policy};
use crate::upstream::{Credentials, Secret, Upstream};

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub policy: Policy,
    pub limits: Limits,
    /// Static name -> address map; consulted before DNS.
    /// The hosts map and DNS (see [`Resolver`]).
    pub resolver: Resolver,
    /// Time a client has to send a complete request head (slow-loris guard).
    pub head_timeout: Duration,
    pub connect_timeout: Duration,
    /// A tunnel with no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; above it a client gets 503.
    pub max_connections: usize,
    /// Of those, from one address; above it that client gets 503.
    pub max_connections_per_client: usize,
    /// Where tunnels and requests go instead of direct, when set.
    pub upstream: Option<Upstream>,
    /// In patch mode, the private networks a destination may be in
    /// (egress refuses other private addresses after resolution).
    pub private_destinations: Vec<ipnet::IpNet>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            policy: Policy::default(),
            limits: Limits::default(),
            resolver: Resolver::hosts_only(HashMap::new()),
            head_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            max_connections: 16_384,
            max_connections_per_client:
                gateway_unit_settings::proxy::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            upstream: None,
            private_destinations: gateway_config::schema::private_ranges(),
        }
    }
}

/// The proxy's reading of its settings: the running configuration.
pub trait ToProxyConfig {
    fn to_config(&self) -> Result<ProxyConfig, SettingsError>;
}

fn resolver(s: &ProxySettings) -> Result<Resolver, SettingsError> {
    let hosts = s
        .hosts
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    // No file, or one without servers (the network has no DNS yet):
    // the hosts map alone, until a reload.
    Resolver::with_resolv_conf(&s.resolv_conf, hosts)
        .map_err(|e| SettingsError::invalid("resolv_conf", e.to_string()))
}

impl ToProxyConfig for ProxySettings {
    /// The running configuration these settings describe.
    fn to_config(&self) -> Result<ProxyConfig, SettingsError> {
        let invalid = |key, reason: String| SettingsError::invalid(key, reason);
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
        if self.max_connections_per_client == 0 {
            return Err(invalid(
                "max_connections_per_client",
                "must be at least 1".into(),
            ));
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
                    password: Secret::new(
                        u.password
                            .as_ref()
                            .map(|p| p.expose().to_owned())
                            .unwrap_or_default(),
                    ),
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
            resolver: resolver(self)?,
            head_timeout: Duration::from_secs(self.head_timeout_s),
            idle_timeout: Duration::from_secs(self.idle_timeout_s),
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            upstream,
            private_destinations: self.private_destinations.clone(),
            ..ProxyConfig::default()
        })
    }
}
