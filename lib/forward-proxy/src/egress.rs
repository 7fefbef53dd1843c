//! Reaching a destination: resolving its name (the hosts map first), the
//! rules on the addresses it resolves to (never a local one; in patch mode a
//! private one only inside `private_destinations`), connecting within the
//! timeout, and asking the upstream proxy for a tunnel when one is chained.
//! Errors are the status a client gets and a reason in words.

use std::net::{IpAddr, SocketAddr};

use gateway_http::head::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::config::ProxyConfig;
use crate::policy::Mode;
use crate::upstream::Upstream;

/// Resolves (hosts map first) and connects; errors are the status for the
/// client and a reason in words.
pub async fn connect(
    host: &str,
    port: u16,
    config: &ProxyConfig,
    allow_local: bool,
) -> Result<TcpStream, (u16, String)> {
    let addrs: Vec<SocketAddr> =
        match timeout(config.connect_timeout, config.resolver.lookup(host)).await {
            Ok(Ok(ips)) => ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
            Ok(Err(why)) => return Err((502, why)),
            Err(_) => return Err((504, format!("resolving {host} timed out"))),
        };
    let Some(addr) = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
    else {
        return Err((502, format!("{host} has no address")));
    };
    // A name the policy allowed may still resolve to the appliance itself,
    // a link-local service (169.254.169.254, a cloud's metadata) or a
    // broadcast address: refused in every mode, before any connect, for
    // every address the name has (one that answers loopback beside a public
    // address is not to be trusted with the other either). The exceptions
    // are the administrator's own: a name the hosts map maps, the upstream
    // proxy (`allow_local`).
    if !allow_local && !config.resolver.is_mapped(host) {
        check_addresses(host, &addrs, config)?;
    }
    match timeout(config.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err((502, format!("cannot connect to {addr}: {e}"))),
        Err(_) => Err((
            504,
            format!(
                "connecting to {addr} timed out after {:?}",
                config.connect_timeout
            ),
        )),
    }
}

/// The rules on the addresses `host` resolved to: none local; in patch mode
/// (where any name is a destination) a private one only inside
/// `private_destinations`. The error is a 403 naming the address and why.
pub fn check_addresses(
    host: &str,
    addrs: &[SocketAddr],
    config: &ProxyConfig,
) -> Result<(), (u16, String)> {
    let patch = config.policy.mode() == Mode::Patch;
    for ip in addrs.iter().map(|a| a.ip().to_canonical()) {
        if is_local_address(ip) {
            return Err((403, format!("{host} resolves to {ip}, a local address")));
        }
        let allowed = || {
            config
                .private_destinations
                .iter()
                .any(|net| net.contains(&ip))
        };
        if patch && is_private_address(ip) && !allowed() {
            return Err((
                403,
                format!(
                    "{host} resolves to {ip}, a private address outside patch.private_destinations"
                ),
            ));
        }
    }
    Ok(())
}

/// RFC 1918 and unique local (fc00::/7) addresses.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => v6.is_unique_local(),
    }
}

/// Loopback, unspecified, link-local, multicast and broadcast addresses.
pub fn is_local_address(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
        }
    }
}

/// Asks the upstream proxy for a tunnel; returns the bytes it sent after its
/// 200, or why it refused in words (its status and reason).
pub async fn upstream_connect(
    stream: &mut TcpStream,
    u: &Upstream,
    target: &Target,
    config: &ProxyConfig,
) -> Result<Vec<u8>, String> {
    let request = u.connect_request(target.host(), target.port());
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 2048];
    let read = async {
        loop {
            match gateway_http::connect::parse_response(&buf, config.limits.max_head) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            match stream.read(&mut chunk).await {
                Ok(0) => return Err("closed the connection without an answer".to_owned()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    };
    let head = timeout(config.head_timeout, read)
        .await
        .map_err(|_| "no answer in time".to_owned())??;
    if head.status != 200 {
        return Err(format!("refused with {} {}", head.status, head.reason));
    }
    Ok(buf.split_off(head.len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{default_agent_networks, AllowedDomains, Policy};

    fn config(mode: Mode, private: &[&str]) -> ProxyConfig {
        ProxyConfig {
            policy: Policy::new(mode, AllowedDomains::default(), default_agent_networks()),
            private_destinations: private.iter().map(|n| n.parse().unwrap()).collect(),
            ..ProxyConfig::default()
        }
    }

    fn check(addrs: &[&str], config: &ProxyConfig) -> Result<(), (u16, String)> {
        let addrs: Vec<SocketAddr> = addrs
            .iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 443))
            .collect();
        check_addresses("x.example.com", &addrs, config)
    }

    #[test]
    fn local_answers_are_refused_in_every_mode_for_any_address_of_the_name() {
        for mode in [Mode::Cache, Mode::Patch] {
            let c = config(mode, &["10.0.0.0/8"]);
            for addrs in [
                &["127.0.0.1"][..],
                &["169.254.169.254"],
                &["203.0.113.7", "127.0.0.1"],
                &["::ffff:169.254.169.254"],
                &["0.0.0.0"],
                &["fe80::1"],
            ] {
                let (status, why) = check(addrs, &c).unwrap_err();
                assert_eq!(status, 403, "{addrs:?}");
                assert!(why.contains("a local address"), "{why}");
            }
            assert_eq!(check(&["203.0.113.7"], &c), Ok(()));
        }
    }

    #[test]
    fn patch_mode_reaches_only_the_private_networks_it_lists() {
        let patch = config(Mode::Patch, &["10.20.0.0/16"]);
        assert_eq!(check(&["10.20.1.1"], &patch), Ok(()));
        for a in ["10.30.0.1", "192.168.1.1", "172.16.0.1", "fd00::1"] {
            let (status, why) = check(&[a], &patch).unwrap_err();
            assert_eq!(status, 403, "{a}");
            assert!(why.contains("outside patch.private_destinations"), "{why}");
        }
        // None listed: no private destination at all.
        assert!(check(&["10.20.1.1"], &config(Mode::Patch, &[])).is_err());
        // The default lists every private range.
        let default = ProxyConfig {
            policy: Policy::new(
                Mode::Patch,
                AllowedDomains::default(),
                default_agent_networks(),
            ),
            ..ProxyConfig::default()
        };
        for a in ["10.30.0.1", "192.168.1.1", "172.16.0.1", "fd00::1"] {
            assert_eq!(check(&[a], &default), Ok(()), "{a}");
        }
        // Cache mode reaches only allowed domains anyway: no private rule.
        assert_eq!(check(&["192.168.1.1"], &config(Mode::Cache, &[])), Ok(()));
    }

    #[test]
    fn local_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "ff02::1",
        ] {
            assert!(is_local_address(a.parse().unwrap()), "{a}");
        }
        for a in [
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_local_address(a.parse().unwrap()), "{a}");
        }
    }
}
