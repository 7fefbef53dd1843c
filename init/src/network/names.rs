//! PID 1's own name lookups (time servers, ping) go through the same
//! resolver as the services: the hosts map first, then the DNS servers in
//! effect, read fresh from the files PID 1 keeps under /run, so a change of
//! either is seen at the next lookup.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use gateway_resolver::{Resolver, ResolverError, HOSTS_FILE, RESOLV_CONF};

/// Why a name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// resolv.conf or the hosts map could not be read.
    #[error("{0}")]
    Resolver(#[from] ResolverError),
    /// The hosts map and DNS had no address for it (the resolver's words).
    #[error("{reason}")]
    Lookup { host: String, reason: String },
    #[error("{host} has no IPv4 address")]
    NoIpv4 { host: String },
}

/// Addresses of `host` (IPv4 first).
pub async fn lookup(host: &str) -> Result<Vec<IpAddr>, LookupError> {
    let resolver = Resolver::system(Path::new(RESOLV_CONF), Path::new(HOSTS_FILE))?;
    resolver
        .lookup(host)
        .await
        .map_err(|reason| LookupError::Lookup {
            host: host.to_owned(),
            reason,
        })
}

/// The first IPv4 address of `host`.
pub async fn lookup_ipv4(host: &str) -> Result<Ipv4Addr, LookupError> {
    lookup(host)
        .await?
        .into_iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| LookupError::NoIpv4 {
            host: host.to_owned(),
        })
}

/// The NTP client's lookups.
pub struct SharedResolver;

impl gateway_ntp::Resolve for SharedResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        lookup(host).await.map_err(io::Error::other)
    }
}
