//! Sockets PID 1 binds for a unit and hands to it as file descriptor
//! [`FD`] at each start (as systemd's socket activation does).
//!
//! Why: PID 1 connects to the management agent's socket as root. Were the
//! socket a path in the agent's own directory, a compromised agent could
//! swap it for a link to any socket on the system and have root connect
//! there. Bound by PID 1 in /run/gateway (root's, mode 0755), the path is
//! PID 1's alone; the agent only ever holds the listening descriptor. The
//! socket also outlives the agent's restarts: a request in between waits
//! in its backlog instead of failing.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Mutex;

/// The descriptor number the unit finds its listening socket at (the
/// first after stdin, stdout and stderr, as `LISTEN_FDS` has it).
pub const FD: RawFd = gateway_unit_settings::agent::LISTEN_FD;

/// Bound once per boot, kept for PID 1's life.
static BOUND: Mutex<Vec<(&'static str, OwnedFd)>> = Mutex::new(Vec::new());

/// The listening socket at `path`, bound on first use (mode 0600, root's:
/// only PID 1 connects).
pub fn get(path: &'static str) -> io::Result<RawFd> {
    let mut bound = BOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, fd)) = bound.iter().find(|(p, _)| *p == path) {
        return Ok(fd.as_raw_fd());
    }
    // /run/gateway: root's, 0755 (PID 1's umask), no unit can write in it.
    let fd = OwnedFd::from(gateway_control::server::bind_std(Path::new(path))?);
    let raw = fd.as_raw_fd();
    bound.push((path, fd));
    Ok(raw)
}

/// In the child between fork and exec: makes `fd` the unit's [`FD`],
/// open across the exec.
///
/// # Safety
/// Only async-signal-safe system calls (dup2, fcntl); call it in the child
/// only.
pub unsafe fn pass(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain system calls on descriptor numbers.
    let r = unsafe {
        if fd == FD {
            // dup2 onto itself would keep close-on-exec set.
            libc::fcntl(FD, libc::F_SETFD, 0)
        } else {
            // The copy dup2 makes is open across exec.
            libc::dup2(fd, FD)
        }
    };
    super::sandbox::check(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn the_unit_finds_the_socket_at_descriptor_3_and_pid_1_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        // A 'static path, as the table's are.
        let path: &'static str = Box::leak(
            dir.path()
                .join("agent.sock")
                .to_str()
                .unwrap()
                .to_owned()
                .into_boxed_str(),
        );
        let fd = get(path).unwrap();
        assert_eq!(get(path).unwrap(), fd, "bound once");
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "readlink /proc/self/fd/3"]);
        // SAFETY: `pass` only makes plain system calls.
        unsafe {
            cmd.pre_exec(move || pass(fd));
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("socket:["), "{text}");
        // A client connecting now waits in the backlog: nobody accepts yet.
        std::os::unix::net::UnixStream::connect(path).unwrap();
    }
}

#[cfg(test)]
mod placement {
    use super::super::sandbox::{RUNTIME_ROOT, STATE_ROOT};
    use super::super::table::UNITS;

    /// The sockets root connects to: none may be in a directory a unit can
    /// write, where a link would turn root's connection elsewhere.
    #[test]
    fn no_socket_root_connects_to_is_in_a_units_directory() {
        let forwarded = gateway_control::protocol::AGENT_SOCKET;
        for root in [STATE_ROOT, RUNTIME_ROOT] {
            assert!(!forwarded.starts_with(root), "{forwarded} under {root}");
        }
        assert!(forwarded.starts_with("/run/gateway/"));
        let agent = UNITS.iter().find(|u| u.name == "agent").unwrap();
        assert_eq!(agent.listener, Some(forwarded), "bound by PID 1");
    }
}
