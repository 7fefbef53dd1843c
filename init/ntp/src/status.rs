//! What the client tells the rest of the system: synchronised or not, the
//! offset, the server in use, the last sync, and per-server state. Plain
//! data, serialisable, so PID 1's control API can return it as JSON.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct NtpStatus {
    /// The clock was set from the network and servers still agree on it.
    pub synchronized: bool,
    /// The local clock's offset from the selected servers' combined time,
    /// milliseconds, as of the last measurement and net of the corrections
    /// applied since; positive: the local clock is behind.
    pub offset_ms: Option<f64>,
    /// The server in use (the system peer), as configured.
    pub server: Option<String>,
    pub server_address: Option<IpAddr>,
    /// When the clock was last updated from the network (by the corrected
    /// clock).
    pub last_sync: Option<SystemTime>,
    /// Our stratum: the system peer's plus one.
    pub stratum: Option<u8>,
    /// Current poll interval, seconds.
    pub poll_secs: u64,
    /// Steps applied since the client started.
    pub steps: u32,
    pub servers: Vec<ServerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerStatus {
    /// As configured (host name or address).
    pub name: String,
    pub address: Option<IpAddr>,
    /// Answered at least one of the last eight polls.
    pub reachable: bool,
    /// The last eight polls, newest in bit 0 (the NTP reach register).
    pub reach: u8,
    pub stratum: Option<u8>,
    /// The filter's offset for this server, milliseconds.
    pub offset_ms: Option<f64>,
    /// The filter's round-trip delay, milliseconds.
    pub delay_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub state: ServerState,
    /// The last problem with this server, for the administrator.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Not heard from yet.
    Pending,
    /// The server the clock follows.
    Selected,
    /// Agrees with the majority; used in the combined offset.
    Candidate,
    /// Disagrees with the majority: ignored.
    Falseticker,
    /// No answer to the last eight polls, or its name does not resolve.
    Unreachable,
    /// Sent a DENY or RSTR kiss-o'-death: we may not use it.
    Refused,
}
