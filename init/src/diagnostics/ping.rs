//! ICMP echo for the control API's `ping` (Commands > Ping in the console):
//! a raw ICMP socket (PID 1 has CAP_NET_RAW; "ping sockets" are closed to
//! root by the default `ping_group_range`), one request a second, replies
//! matched by identifier and sequence.

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use gateway_control::protocol::{PingReply, PingResult};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

pub const MAX_COUNT: u32 = 20;
const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("{0:?} is not an IPv4 address or a host name")]
    BadTarget(String),
    #[error("{source}")]
    Resolve {
        name: String,
        source: crate::network::names::LookupError,
    },
    #[error("ICMP socket: {0}")]
    Socket(std::io::Error),
}

/// The ICMP echo request: type 8, code 0, checksum, identifier, sequence,
/// then a payload.
pub fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo reply to us, from a raw socket's datagram (IPv4 header first):
/// its sequence number.
pub fn parse_reply(datagram: &[u8], from: Ipv4Addr, to: Ipv4Addr, id: u16) -> Option<u16> {
    let ihl = usize::from(*datagram.first()? & 0x0f) * 4;
    if datagram.len() < ihl + 8 || ihl < 20 || datagram[0] >> 4 != 4 {
        return None;
    }
    let src = Ipv4Addr::new(datagram[12], datagram[13], datagram[14], datagram[15]);
    let icmp = &datagram[ihl..];
    let ours = src == to || (to.is_loopback() && from.is_loopback());
    (ours && icmp[0] == 0 && u16::from_be_bytes([icmp[4], icmp[5]]) == id)
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// Resolves `target` (IPv4 literal, or a name through the shared resolver:
/// hosts map, then DNS) and pings it `count` times.
pub async fn ping(target: &str, count: u32) -> Result<PingResult, PingError> {
    let target = target.trim();
    if target.is_empty()
        || target.len() > 253
        || target.contains(|c: char| c.is_whitespace() || c == '/')
    {
        return Err(PingError::BadTarget(target.to_owned()));
    }
    let addr = crate::network::names::lookup_ipv4(target)
        .await
        .map_err(|source| PingError::Resolve {
            name: target.into(),
            source,
        })?;
    let count = count.clamp(1, MAX_COUNT);
    let socket =
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).map_err(PingError::Socket)?;
    socket.set_nonblocking(true).map_err(PingError::Socket)?;
    // SAFETY: the socket owns a valid descriptor, and nothing replaces or
    // closes it while the AsyncFd holds it.
    let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| PingError::Socket(e.into()))?;
    // The identifier tells our replies from other pings on the machine.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id = (std::process::id() as u16) ^ (nanos as u16);
    let dest = SocketAddr::V4(SocketAddrV4::new(addr, 0)).into();
    let mut replies = Vec::new();
    for seq in 1..=count as u16 {
        let sent = Instant::now();
        let packet = echo_request(id, seq, b"gateway-appliance-ping");
        fd.get_ref()
            .send_to(&packet, &dest)
            .map_err(PingError::Socket)?;
        let deadline = sent + TIMEOUT;
        while let Ok(Ok(got)) =
            tokio::time::timeout_at(deadline.into(), receive(&fd, addr, id)).await
        {
            if got == seq {
                replies.push(PingReply {
                    seq,
                    time_ms: sent.elapsed().as_secs_f64() * 1000.0,
                });
                break;
            }
        }
        // One request a second, as ping(8) does.
        tokio::time::sleep_until((sent + Duration::from_secs(1)).into()).await;
    }
    let received = replies.len() as u32;
    Ok(PingResult {
        target: target.to_owned(),
        address: addr.to_string(),
        sent: count,
        received,
        loss_percent: f64::from(count - received) * 100.0 / f64::from(count),
        replies,
    })
}

/// The next echo reply addressed to us.
async fn receive(fd: &AsyncFd<Socket>, to: Ipv4Addr, id: u16) -> std::io::Result<u16> {
    loop {
        let mut guard = fd.readable().await?;
        let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
        match guard.try_io(|inner| inner.get_ref().recv_from(&mut buf)) {
            Ok(Ok((n, from))) => {
                // SAFETY: recv_from initialised the first n bytes.
                let data = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
                let from = from
                    .as_socket_ipv4()
                    .map(|a| *a.ip())
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                if let Some(seq) = parse_reply(data, from, to, id) {
                    return Ok(seq);
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_of_a_request_verifies() {
        let p = echo_request(0x1234, 7, b"abc");
        assert_eq!(checksum(&p), 0);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn only_our_replies_are_taken() {
        let mut d = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        d.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 3]);
        let from = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(parse_reply(&d, from, from, 0x1234), Some(3));
        assert_eq!(
            parse_reply(&d, from, from, 0x1235),
            None,
            "other identifier"
        );
        assert_eq!(
            parse_reply(&d, from, Ipv4Addr::new(10, 0, 0, 9), 0x1234),
            None,
            "other host"
        );
        assert_eq!(parse_reply(&d[..24], from, from, 0x1234), None, "short");
        d[20] = 8;
        assert_eq!(
            parse_reply(&d, from, from, 0x1234),
            None,
            "a request, not a reply"
        );
    }

    #[test]
    fn loopback_answers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(ping("127.0.0.1", 2)).unwrap();
        assert_eq!((r.sent, r.received, r.loss_percent), (2, 2, 0.0));
        assert!(matches!(
            rt.block_on(ping("a b", 1)),
            Err(PingError::BadTarget(_))
        ));
    }
}
