//! Name resolution for destinations: the static hosts map first, then DNS
//! through hickory-resolver, configured from resolv.conf (which init writes
//! from `dns.servers`) or, for tests, an explicit name server. IPv4 answers
//! come first: the appliance's networks are IPv4 (happy eyeballs is not
//! required).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error("start the resolver: {0}")]
    Build(String),
}

/// The shared resolver; cheap to clone (hickory shares its cache).
#[derive(Clone)]
pub struct Resolver {
    hosts: HashMap<String, IpAddr>,
    dns: Option<TokioResolver>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("hosts", &self.hosts)
            .field("dns", &self.dns.is_some())
            .finish()
    }
}

impl Resolver {
    /// Only the hosts map: names not in it do not resolve.
    pub fn hosts_only(hosts: HashMap<String, IpAddr>) -> Self {
        Resolver { hosts, dns: None }
    }

    /// The hosts map, then the name servers of a resolv.conf file.
    pub fn from_resolv_conf(
        path: &Path,
        hosts: HashMap<String, IpAddr>,
    ) -> Result<Self, ResolverError> {
        let p = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| ResolverError::Read {
            path: p.clone(),
            source,
        })?;
        let (config, opts) =
            hickory_resolver::system_conf::parse_resolv_conf(text).map_err(|e| {
                ResolverError::Config {
                    path: p,
                    reason: e.to_string(),
                }
            })?;
        Self::build(config, opts, hosts)
    }

    /// The hosts map, then one name server at `server` (UDP and TCP).
    pub fn with_name_server(
        server: SocketAddr,
        hosts: HashMap<String, IpAddr>,
    ) -> Result<Self, ResolverError> {
        let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
            .into_iter()
            .map(|mut c| {
                c.port = server.port();
                c
            })
            .collect();
        let ns = NameServerConfig::new(server.ip(), true, connections);
        Self::build(
            ResolverConfig::from_parts(None, vec![], vec![ns]),
            ResolverOpts::default(),
            hosts,
        )
    }

    fn build(
        config: ResolverConfig,
        opts: ResolverOpts,
        hosts: HashMap<String, IpAddr>,
    ) -> Result<Self, ResolverError> {
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        *builder.options_mut() = opts;
        let dns = builder
            .build()
            .map_err(|e| ResolverError::Build(e.to_string()))?;
        Ok(Resolver {
            hosts,
            dns: Some(dns),
        })
    }

    pub fn hosts(&self) -> &HashMap<String, IpAddr> {
        &self.hosts
    }

    /// Whether `host` is in the hosts map (an administrator's explicit choice).
    pub fn is_mapped(&self, host: &str) -> bool {
        self.hosts.contains_key(host)
    }

    /// Addresses for `host`, IPv4 first; an IP literal is itself.
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Some(ip) = self.hosts.get(host) {
            return Ok(vec![*ip]);
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let Some(dns) = &self.dns else {
            return Err(format!(
                "cannot resolve {host}: no name server is configured"
            ));
        };
        // A trailing dot: the name is absolute, no search domains.
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let answer = dns
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        let mut ips: Vec<IpAddr> = answer.iter().collect();
        ips.sort_by_key(|ip| !ip.is_ipv4());
        if ips.is_empty() {
            return Err(format!("{host} has no address"));
        }
        Ok(ips)
    }
}
