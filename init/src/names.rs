//! PID 1's own name lookups (time servers, ping) go through the same
//! resolver as the services: the hosts map first, then the DNS servers in
//! effect, read fresh from the files PID 1 keeps under /run, so a change of
//! either is seen at the next lookup.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use gateway_resolver::{Resolver, HOSTS_FILE, RESOLV_CONF};

/// Addresses of `host` (IPv4 first).
pub async fn lookup(host: &str) -> Result<Vec<IpAddr>, String> {
    let resolver = Resolver::system(Path::new(RESOLV_CONF), Path::new(HOSTS_FILE))
        .map_err(|e| e.to_string())?;
    resolver.lookup(host).await
}

/// The first IPv4 address of `host`.
pub async fn lookup_ipv4(host: &str) -> Result<Ipv4Addr, String> {
    lookup(host)
        .await?
        .into_iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| format!("{host} has no IPv4 address"))
}

/// The NTP client's lookups.
pub struct SharedResolver;

impl gateway_ntp::Resolve for SharedResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        lookup(host).await.map_err(io::Error::other)
    }
}
