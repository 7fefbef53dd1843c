//! The upstream capture, for diagnostics: from the console the administrator
//! records the traffic between the appliance and its next hop, for at most
//! five minutes and into a bounded pcap file that replaces the previous
//! capture and goes into the next diagnostics report.
//!
//! PID 1 runs [`run`] in a dedicated std thread: it blocks on an AF_PACKET
//! socket ([`socket`]) with a short receive timeout, keeps the frames the
//! next-hop filter accepts ([`frame`], pure), and appends them to the file
//! ([`file`]) until the duration is over, the size bound is reached or the
//! caller sets the stop flag. [`next_hop`] finds the default gateway's MAC
//! that the filter uses.

mod file;
mod frame;
mod next_hop;
mod socket;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

pub use file::unfinished;
pub use frame::{
    captured_len, keep_frame, redact, Redactions, SizeBound, PCAP_HEADER_LEN,
    PCAP_RECORD_HEADER_LEN,
};
pub use next_hop::{default_gateway, format_mac, neighbour_mac, next_hop, parse_mac};

/// The longest capture: long enough to catch an intermittent fault, short
/// enough that a forgotten capture ends by itself.
pub const MAX_DURATION: Duration = Duration::from_secs(300);

/// The default and largest size of the capture file: it goes into the
/// diagnostics report, which must stay small enough to send.
pub const MAX_BYTES: u64 = 32 << 20;

/// The default snapshot length: whole frames (tcpdump's default is larger,
/// for offloaded super-frames, which are cut here).
pub const DEFAULT_SNAPLEN: u32 = 65535;

/// The smallest snapshot length accepted: below it not even the Ethernet,
/// IP and TCP headers would be kept, and the capture would be useless.
pub const MIN_SNAPLEN: u32 = 64;

/// The largest snapshot length accepted: libpcap's own maximum; the receive
/// buffer is this large.
pub const MAX_SNAPLEN: u32 = 262_144;

/// How often [`run`] reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What to capture, where to, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    /// The interface, e.g. `eth0`.
    pub interface: String,
    /// The next hop's MAC: only frames from or to it (plus every ARP frame)
    /// are kept. `None` keeps every frame of the interface.
    pub peer_mac: Option<[u8; 6]>,
    /// How long to capture; at most [`MAX_DURATION`].
    pub duration: Duration,
    /// The bound of the file, headers included; at most [`MAX_BYTES`]. The
    /// capture stops when the next packet would take the file past it.
    pub max_bytes: u64,
    /// How many bytes of each frame are kept (the wire length is recorded
    /// too); between [`MIN_SNAPLEN`] and [`MAX_SNAPLEN`].
    pub snaplen: u32,
    /// The final file, e.g. `/var/lib/gateway/diagnostics/upstream.pcap`;
    /// written as a temporary file beside it and renamed at the end.
    pub path: PathBuf,
    /// What is hidden in each frame before it is written ([`redact`]).
    pub redact: Redactions,
}

impl CaptureRequest {
    /// A request with the defaults: the whole interface, [`MAX_DURATION`],
    /// [`MAX_BYTES`], [`DEFAULT_SNAPLEN`].
    pub fn new(interface: impl Into<String>, path: impl Into<PathBuf>) -> CaptureRequest {
        CaptureRequest {
            interface: interface.into(),
            peer_mac: None,
            duration: MAX_DURATION,
            max_bytes: MAX_BYTES,
            snaplen: DEFAULT_SNAPLEN,
            path: path.into(),
            redact: Redactions::default(),
        }
    }

    /// Checks the limits, so the control API can refuse a request before
    /// starting a thread for it; [`run`] checks them again.
    pub fn validate(&self) -> Result<(), CaptureError> {
        let invalid = |reason: String| Err(CaptureError::InvalidRequest { reason });
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return invalid(format!(
                "the duration must be between 1 s and {} s, not {} s",
                MAX_DURATION.as_secs(),
                self.duration.as_secs_f64()
            ));
        }
        if self.max_bytes < PCAP_HEADER_LEN || self.max_bytes > MAX_BYTES {
            return invalid(format!(
                "the size bound must be between {PCAP_HEADER_LEN} and {MAX_BYTES} bytes, not {}",
                self.max_bytes
            ));
        }
        if !(MIN_SNAPLEN..=MAX_SNAPLEN).contains(&self.snaplen) {
            return invalid(format!(
                "the snapshot length must be between {MIN_SNAPLEN} and {MAX_SNAPLEN} bytes, not {}",
                self.snaplen
            ));
        }
        if self.path.file_name().is_none() {
            return invalid(format!("{} is not a file path", self.path.display()));
        }
        Ok(())
    }
}

/// Where a capture stands, reported about once a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Packets written so far.
    pub packets: u64,
    /// The size of the file so far, headers included (what the bound limits).
    pub bytes: u64,
    /// Time since the capture started.
    pub elapsed: Duration,
}

/// Why a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The requested duration was over.
    Duration,
    /// The next packet would have taken the file past its bound.
    SizeLimit,
    /// The caller set the stop flag (the administrator stopped it, or the
    /// appliance is shutting down).
    Stopped,
}

/// A finished capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Packets in the file.
    pub packets: u64,
    /// The file's size, headers included.
    pub bytes: u64,
    /// Why it ended.
    pub reason: EndReason,
    /// The file, now complete (the request's `path`).
    pub path: PathBuf,
}

/// Why a capture could not be made; the messages are for the console.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The request is out of the limits.
    #[error("capture: {reason}")]
    InvalidRequest { reason: String },
    /// No interface of that name (or it went away).
    #[error("capture on {interface}: no such interface")]
    NoSuchInterface { interface: String },
    /// Opening a packet socket needs CAP_NET_RAW (PID 1 has it).
    #[error("capture: permission denied (needs CAP_NET_RAW)")]
    PermissionDenied,
    /// The packet socket could not be set up.
    #[error("capture on {interface}: cannot open the packet socket: {source}")]
    Socket {
        interface: String,
        #[source]
        source: io::Error,
    },
    /// Receiving from the packet socket failed.
    #[error("capture on {interface}: cannot receive: {source}")]
    Receive {
        interface: String,
        #[source]
        source: io::Error,
    },
    /// A file operation failed (`op` says which, e.g. "write", "rename").
    #[error("capture: cannot {op} {}: {source}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A step of the file's replacement failed (`op` says which: "create",
    /// "sync", "rename").
    #[error("capture: cannot {op} {}: {}", source.path().display(), source.io_error())]
    Replace {
        op: &'static str,
        #[source]
        source: gateway_fsutil::AtomicWriteError,
    },
}

/// For callers that deal in `io::Error`: the message is kept whole, and the
/// kind says what class of failure it was.
impl From<CaptureError> for io::Error {
    fn from(e: CaptureError) -> io::Error {
        let kind = match &e {
            CaptureError::InvalidRequest { .. } => io::ErrorKind::InvalidInput,
            CaptureError::NoSuchInterface { .. } => io::ErrorKind::NotFound,
            CaptureError::PermissionDenied => io::ErrorKind::PermissionDenied,
            CaptureError::Socket { source, .. }
            | CaptureError::Receive { source, .. }
            | CaptureError::File { source, .. } => source.kind(),
            CaptureError::Replace { source, .. } => source.io_error().kind(),
        };
        io::Error::new(kind, e)
    }
}

/// Captures until the duration is over, the size bound is reached or `stop`
/// is set, then completes the file and replaces the previous capture with it.
/// Blocking: run it in its own thread. `stop` is honoured within about 200 ms.
///
/// `progress` is called when the capture starts and about once a second after
/// that. On an error the previous capture is left in place and no unfinished
/// file remains. Setting `stop` before the call still replaces the previous capture
/// with an empty one: the administrator asked for a new capture.
///
/// Timestamps are the real time (microseconds) at which this thread reads
/// each frame, not the kernel's receive time: simpler than ancillary data,
/// and the socket's queue is short next to what a diagnosis needs.
pub fn run(
    req: &CaptureRequest,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, CaptureError> {
    req.validate()?;
    let bound = SizeBound::new(req.max_bytes).ok_or_else(|| CaptureError::InvalidRequest {
        reason: format!(
            "the size bound {} cannot hold the pcap header",
            req.max_bytes
        ),
    })?;
    // The socket first: a wrong interface must not cost the previous capture
    // its stale-file cleanup or create directories.
    let socket = socket::PacketSocket::open(&req.interface)?;
    let mut file = file::PcapFile::create(&req.path, req.snaplen, bound)?;
    tracing::info!(
        interface = %req.interface,
        peer = req.peer_mac.as_ref().map(format_mac).unwrap_or_else(|| "any".to_owned()),
        seconds = req.duration.as_secs(),
        max_bytes = req.max_bytes,
        path = %req.path.display(),
        "capture started"
    );

    let start = Instant::now();
    let mut buf = vec![0u8; req.snaplen as usize];
    let mut packets = 0u64;
    let mut next_report = start;
    let reason = loop {
        if stop.load(Ordering::Relaxed) {
            break EndReason::Stopped;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(start);
        if elapsed >= req.duration {
            break EndReason::Duration;
        }
        if now >= next_report {
            progress(&Progress {
                packets,
                bytes: file.written(),
                elapsed,
            });
            next_report += PROGRESS_EVERY;
        }
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e) if is_transient(&e) => continue,
            Err(source) => {
                return Err(CaptureError::Receive {
                    interface: req.interface.clone(),
                    source,
                })
            }
        };
        let data = &mut buf[..captured_len(len, req.snaplen)];
        if !keep_frame(req.peer_mac, data) {
            continue;
        }
        redact(data, &req.redact);
        if !file.write(SystemTime::now(), len, data)? {
            break EndReason::SizeLimit;
        }
        packets += 1;
    };

    let bytes = file.written();
    let path = file.finish()?;
    tracing::info!(packets, bytes, ?reason, path = %path.display(), "capture finished");
    Ok(Summary {
        packets,
        bytes,
        reason,
        path,
    })
}

/// Receive errors after which the capture goes on: the timeout, a signal,
/// and the link going down (reported once through the socket; the capture
/// should show what happens when it comes back).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::ENETDOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CaptureRequest {
        CaptureRequest::new("eth0", "/var/lib/gateway/diagnostics/upstream.pcap")
    }

    #[test]
    fn the_defaults_are_valid() {
        let r = request();
        assert_eq!(
            (r.duration, r.max_bytes, r.snaplen, r.peer_mac),
            (MAX_DURATION, MAX_BYTES, 65535, None)
        );
        r.validate().unwrap();
    }

    #[test]
    fn out_of_limit_requests_are_refused_in_words() {
        type Case = (fn(&mut CaptureRequest), &'static str);
        let cases: [Case; 6] = [
            (
                |r| r.duration = Duration::from_secs(301),
                "capture: the duration must be between 1 s and 300 s, not 301 s",
            ),
            (|r| r.duration = Duration::ZERO, "duration"),
            (|r| r.max_bytes = MAX_BYTES + 1, "size bound"),
            (|r| r.max_bytes = 23, "size bound"),
            (|r| r.snaplen = 10, "snapshot length"),
            (|r| r.path = PathBuf::from("/"), "not a file path"),
        ];
        for (change, expected) in cases {
            let mut r = request();
            change(&mut r);
            let message = r.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn errors_read_well_on_the_console_and_convert_to_io() {
        let e = CaptureError::NoSuchInterface {
            interface: "eth9".into(),
        };
        assert_eq!(e.to_string(), "capture on eth9: no such interface");
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(io.to_string(), "capture on eth9: no such interface");
        assert_eq!(
            CaptureError::PermissionDenied.to_string(),
            "capture: permission denied (needs CAP_NET_RAW)"
        );
    }

    #[test]
    fn end_reasons_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&EndReason::SizeLimit).unwrap(),
            "\"size_limit\""
        );
        let back: EndReason = serde_json::from_str("\"stopped\"").unwrap();
        assert_eq!(back, EndReason::Stopped);
    }

    #[test]
    fn transient_receive_errors_do_not_end_the_capture() {
        assert!(is_transient(&io::Error::from(io::ErrorKind::WouldBlock)));
        assert!(is_transient(&io::Error::from_raw_os_error(libc::EAGAIN)));
        assert!(is_transient(&io::Error::from_raw_os_error(libc::ENETDOWN)));
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::EBADF)));
    }
}
