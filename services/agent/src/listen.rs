//! The agent's socket as PID 1 hands it over: already bound and listening
//! at a path of PID 1's (docs/management-api.md), passed as a descriptor
//! number, so the agent never binds a path that root then connects to.

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{getsockname, getsockopt, sockopt::AcceptConn, UnixAddr};

/// Takes descriptor `fd` as the listening socket, after checking that it is
/// one: a listening Unix socket. Anything else is refused and left alone
/// (it may be a descriptor of the runtime's own, which must stay open).
pub fn inherited(fd: RawFd) -> io::Result<tokio::net::UnixListener> {
    if fd < 0 {
        return Err(io::Error::other(format!(
            "descriptor {fd}: not a descriptor"
        )));
    }
    // SAFETY: only borrowed for the two checks below; if `fd` is not open
    // they fail with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let refuse = |why: String| io::Error::other(format!("descriptor {fd}: {why}"));
    getsockname::<UnixAddr>(std::os::fd::AsRawFd::as_raw_fd(&borrowed))
        .map_err(|e| refuse(format!("not a Unix socket ({e})")))?;
    match getsockopt(&borrowed, AcceptConn) {
        Ok(true) => {}
        Ok(false) => return Err(refuse("a socket that is not listening".into())),
        Err(e) => return Err(refuse(format!("not a socket ({e})"))),
    }
    // SAFETY: checked above to be an open listening socket, handed to this
    // process for this use only; nothing else in the agent uses it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let listener = std::os::unix::net::UnixListener::from(owned);
    listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[tokio::test]
    async fn a_listening_socket_is_taken_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let fd = std::os::unix::net::UnixListener::bind(&path)
            .unwrap()
            .into_raw_fd();
        let listener = inherited(fd).unwrap();
        let connect = tokio::net::UnixStream::connect(&path);
        let (accepted, connected) = tokio::join!(listener.accept(), connect);
        accepted.unwrap();
        connected.unwrap();
    }

    #[tokio::test]
    async fn anything_else_is_refused_and_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let e = inherited(file.as_raw_fd()).unwrap_err().to_string();
        assert!(e.contains("not a Unix socket"), "{e}");
        // Still ours: writing to it works.
        use std::io::Write;
        (&file).write_all(b"x").unwrap();

        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = inherited(tcp.as_raw_fd()).unwrap_err().to_string();
        assert!(e.contains("not a Unix socket"), "{e}");

        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let e = inherited(a.as_raw_fd()).unwrap_err().to_string();
        assert!(e.contains("not listening"), "{e}");
        assert!(inherited(-1).is_err());
    }
}
