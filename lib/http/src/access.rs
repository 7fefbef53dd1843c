//! The access log: one line per request a service port read (the proxy's,
//! the cache's), naming the client, the destination, the result, the
//! method, the bytes each way and the duration. No header is logged:
//! credentials never appear.

use std::net::SocketAddr;
use std::time::Instant;

/// What happened to one request, for the access log.
pub struct Outcome {
    pub destination: String,
    pub result: String,
    pub up: u64,
    pub down: u64,
}

impl Outcome {
    pub fn refused(destination: &str, status: u16, reason: &str) -> Outcome {
        Outcome {
            destination: destination.into(),
            result: format!("{status} {reason}"),
            up: 0,
            down: 0,
        }
    }
}

/// The access-log line of one request (`n`: its number on the client
/// connection), timed from `started`.
pub fn log(peer: SocketAddr, n: u32, method: &str, outcome: &Outcome, started: Instant) {
    tracing::info!(
        "access client={} dest={} result={:?} method={} up={} down={} ms={} req={}",
        peer.ip(),
        if outcome.destination.is_empty() {
            "-"
        } else {
            &outcome.destination
        },
        outcome.result,
        method,
        outcome.up,
        outcome.down,
        started.elapsed().as_millis(),
        n,
    )
}
