//! Reaching a destination: resolving its name (the hosts map first), the
//! patch-mode rule against local addresses, connecting within the timeout,
//! and asking the upstream proxy for a tunnel when one is chained. Errors
//! are the status a client gets and a reason in words.

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
    // In patch mode any name is a destination, and a name may resolve to the
    // appliance itself or a link-local service: those are refused unless the
    // administrator mapped the name so in the hosts map. (In cache mode only
    // the platform's and the administrator's own domains are reachable.)
    let patch = config.policy.mode() == Mode::Patch;
    if patch && !allow_local && !config.resolver.is_mapped(host) && is_local_address(addr.ip()) {
        return Err((
            403,
            format!("{host} resolves to {}, a local address", addr.ip()),
        ));
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

/// Loopback, unspecified, link-local, multicast and broadcast addresses.
pub fn is_local_address(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
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
                || (v6.segments()[0] & 0xffc0) == 0xfe80
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
