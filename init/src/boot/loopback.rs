//! Brings the loopback interface up. The kernel then gives it 127.0.0.1/8 and
//! ::1 by itself. (eth0 and everything else network belongs to the network
//! step of the configuration issue, through rtnetlink.)

use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error("open a socket to configure lo: {0}")]
    Socket(nix::Error),
    #[error("read the flags of lo: {0}")]
    GetFlags(nix::Error),
    #[error("set lo up: {0}")]
    SetFlags(nix::Error),
}

nix::ioctl_readwrite_bad!(siocgifflags, libc::SIOCGIFFLAGS, libc::ifreq);
nix::ioctl_write_ptr_bad!(siocsifflags, libc::SIOCSIFFLAGS, libc::ifreq);

pub fn up() -> Result<(), LoopbackError> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(LoopbackError::Socket)?;
    // SAFETY: ifreq is a plain C struct (names, integers and a union of such);
    // all zeroes is a valid value for it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming "lo"; the kernel fills its flags.
    unsafe { siocgifflags(sock.as_raw_fd(), &mut req) }.map_err(LoopbackError::GetFlags)?;
    // SAFETY: SIOCGIFFLAGS just wrote the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: `req` is a valid ifreq naming "lo" with the new flags.
    unsafe { siocsifflags(sock.as_raw_fd(), &req) }.map_err(LoopbackError::SetFlags)?;
    Ok(())
}
