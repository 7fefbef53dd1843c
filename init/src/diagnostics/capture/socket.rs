//! The AF_PACKET socket the capture reads from: raw Ethernet frames of one
//! interface, in both directions, with a receive timeout so the capture loop
//! wakes up to check its deadline and its stop flag even on a silent link.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use super::CaptureError;

/// How long a receive waits before the loop looks at the clock and the stop
/// flag again: short enough for a prompt stop, long enough not to spin.
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(200);

/// The socket buffer asked for: a burst on a busy uplink overflows the
/// default (about 200 KiB) while the thread writes to disk. Best effort.
const RECEIVE_BUFFER: usize = 4 << 20;

/// A packet socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket that receives every frame (ETH_P_ALL) of `interface`,
    /// those the appliance sends (PACKET_OUTGOING) as well as those it
    /// receives.
    pub fn open(interface: &str) -> Result<PacketSocket, CaptureError> {
        let no_such = || CaptureError::NoSuchInterface {
            interface: interface.to_owned(),
        };
        if interface.is_empty()
            || interface.len() >= libc::IFNAMSIZ
            || interface.contains(['/', '\0'])
        {
            return Err(no_such());
        }
        let ifindex = nix::net::if_::if_nametoindex(interface).map_err(|_| no_such())?;
        let ifindex = i32::try_from(ifindex).map_err(|_| no_such())?;
        let socket_error = |source: io::Error| match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => CaptureError::PermissionDenied,
            Some(libc::ENODEV | libc::ENXIO) => no_such(),
            _ => CaptureError::Socket {
                interface: interface.to_owned(),
                source,
            },
        };

        // Protocol 0 receives nothing until bind gives both the protocol and
        // the interface: opened with ETH_P_ALL, the socket would queue other
        // interfaces' frames in between (libpcap does the same).
        // SAFETY: a plain syscall with constant arguments; the result is
        // checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(socket_error(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a new, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // SAFETY: sockaddr_ll is a C struct of integers and byte arrays, for
        // which all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex;
        // SAFETY: the pointer and length describe `addr`, which outlives the
        // call; the kernel only reads it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(socket_error(io::Error::last_os_error()));
        }

        let timeout = TimeVal::new(0, RECEIVE_TIMEOUT.as_micros() as libc::suseconds_t);
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(|e| socket_error(e.into()))?;
        // Past rmem_max only with CAP_NET_ADMIN (the Force variant), which
        // PID 1 has; without it the default buffer still works.
        if setsockopt(&fd, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
        }
        Ok(PacketSocket { fd })
    }

    /// Receives one frame into `buf` (cut to the buffer's length) and returns
    /// the frame's real length. Fails with `ErrorKind::WouldBlock` (or
    /// `Interrupted`) after the receive timeout.
    ///
    /// Frames of both directions arrive here: the kernel hands a packet
    /// socket a copy of every frame sent on the interface (`sll_pkttype`
    /// PACKET_OUTGOING) as well as those received, and both belong in the
    /// capture, so the address (which carries that type) is not asked for.
    /// On `lo` every packet is therefore seen twice, once going out and once
    /// coming in, as tcpdump shows it too.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes through the
        // call; no address is asked for (null pointers are allowed).
        // MSG_TRUNC makes the kernel return the frame's real length while
        // still writing at most `buf.len()` bytes.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}
