//! The one name resolver of the appliance's programs (PID 1's time sync and
//! ping, the proxy, the cache): the static hosts map first, then DNS through
//! hickory-resolver, configured from resolv.conf, or for tests an explicit
//! name server. IPv4 answers come first: the appliance's networks are IPv4
//! (happy eyeballs is not required).
//!
//! PID 1 writes both files from the configuration (`/run/hosts` from the
//! `hosts` key, `/run/resolv.conf` from `dns.*` and the DHCP lease; /etc
//! points to them). This crate only reads them: [`Resolver::system`] builds a
//! resolver from the files as they are now; a program rebuilds it when PID 1
//! says they changed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

pub use gateway_paths::{HOSTS_FILE, RESOLV_CONF};

/// The name -> address map of a hosts(5) file: the first address given for
/// a name wins, as in libc; names are lowercase; comments and malformed
/// lines are skipped.
pub fn parse_hosts(text: &str) -> HashMap<String, IpAddr> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(addr)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        for name in words {
            map.entry(name.to_ascii_lowercase()).or_insert(addr);
        }
    }
    map
}

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

    /// The hosts file, then the name servers of resolv.conf, as they are
    /// now. A missing hosts file is an empty map; a missing or serverless
    /// resolv.conf leaves only the hosts map (the network may not be up
    /// yet: that is not an error).
    pub fn system(resolv_conf: &Path, hosts_file: &Path) -> Result<Self, ResolverError> {
        let hosts = match std::fs::read_to_string(hosts_file) {
            Ok(text) => parse_hosts(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => {
                return Err(ResolverError::Read {
                    path: hosts_file.display().to_string(),
                    source,
                })
            }
        };
        Self::with_resolv_conf(resolv_conf, hosts)
    }

    /// The hosts map, then the name servers of `resolv_conf` if it names
    /// any: a missing or serverless file (no network configured yet) gives
    /// the hosts map alone, which is not an error.
    pub fn with_resolv_conf(
        resolv_conf: &Path,
        hosts: HashMap<String, IpAddr>,
    ) -> Result<Self, ResolverError> {
        match std::fs::read_to_string(resolv_conf) {
            Ok(text)
                if text
                    .lines()
                    .any(|l| l.trim_start().starts_with("nameserver")) =>
            {
                Self::from_resolv_conf(resolv_conf, hosts)
            }
            Ok(_) => Ok(Self::hosts_only(hosts)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::hosts_only(hosts)),
            Err(source) => Err(ResolverError::Read {
                path: resolv_conf.display().to_string(),
                source,
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_file_maps_every_name_of_a_line_and_the_first_address_wins() {
        let map = parse_hosts(
            "# comment\n127.0.0.1\tlocalhost\n10.0.0.2 API.example.com api # trailing\n\
             10.0.0.9 api.example.com\nnot-an-address name\n\n",
        );
        assert_eq!(map["localhost"], "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            map["api.example.com"],
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(map["api"], "10.0.0.2".parse::<IpAddr>().unwrap());
        assert!(!map.contains_key("name"));
        assert_eq!(map.len(), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_system_resolver_reads_the_hosts_file_and_tolerates_no_dns() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "10.0.2.2 time.example.com\n").unwrap();
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&resolv, "# no servers yet\n").unwrap();
        let r = Resolver::system(&resolv, &hosts).unwrap();
        assert_eq!(
            r.lookup("time.example.com").await.unwrap(),
            ["10.0.2.2".parse::<IpAddr>().unwrap()]
        );
        let err = r.lookup("other.example.com").await.unwrap_err();
        assert!(err.contains("no name server is configured"), "{err}");
        let r = Resolver::system(&dir.path().join("absent"), &dir.path().join("absent")).unwrap();
        assert!(r.hosts().is_empty());
    }
}
