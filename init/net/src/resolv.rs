//! resolv.conf: rendered from the DNS servers and search domain, written
//! atomically to /run/resolv.conf (PID 1 makes /etc/resolv.conf a symlink
//! to it, so the root file system can stay read-only).
//!
//! Which servers win is the caller's decision: manual servers from the
//! configuration, else those from DHCP ([`effective`]). [`follow`] keeps the
//! file in step with the DHCP servers in the manager's status.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use gateway_fsutil::{AtomicWriteError, WriteOptions};
use tokio::sync::watch;

use crate::status::NetStatus;

/// The resolver reads at most this many `nameserver` lines (glibc and musl
/// MAXNS); more would only mislead whoever reads the file.
pub const MAX_NAMESERVERS: usize = 3;

/// The servers to use: the manual ones if any, else those from DHCP.
pub fn effective<'a>(manual: &'a [Ipv4Addr], dhcp: &'a [Ipv4Addr]) -> &'a [Ipv4Addr] {
    if manual.is_empty() {
        dhcp
    } else {
        manual
    }
}

/// The text of resolv.conf. A search domain that is not a plain domain
/// name is left out (it could otherwise inject lines into the file).
pub fn render(servers: &[Ipv4Addr], search: Option<&str>) -> String {
    let mut out =
        String::from("# Written by the gateway's init (gateway-net); changes are overwritten.\n");
    if let Some(search) = search.filter(|s| is_domain(s)) {
        out.push_str("search ");
        out.push_str(search);
        out.push('\n');
    }
    for server in servers.iter().take(MAX_NAMESERVERS) {
        out.push_str(&format!("nameserver {server}\n"));
    }
    out
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Replace `path` with `contents` atomically, mode 0644: a reader sees the
/// old file or the new one, never a part (temporary file in the same
/// directory, fsync, rename, fsync of the directory).
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), AtomicWriteError> {
    match gateway_fsutil::write_atomic(path, contents.as_bytes(), &WriteOptions::default()) {
        // The rename is done and durable once the directory is; a failure
        // of that last fsync loses nothing that a reader could see (the
        // file is on /run, rewritten at every boot), so it is no error.
        Err(AtomicWriteError::SyncDir { .. }) => Ok(()),
        other => other,
    }
}

/// Keep `path` in step with the manager's status: rewrite it whenever the
/// effective servers or search domain change. Manual servers and a manual
/// search domain take precedence over DHCP's. Runs until the manager stops.
pub async fn follow(
    mut status: watch::Receiver<NetStatus>,
    manual_servers: Vec<Ipv4Addr>,
    manual_search: Option<String>,
    path: PathBuf,
) {
    let mut written: Option<String> = None;
    loop {
        let contents = {
            let s = status.borrow_and_update();
            let search = manual_search.as_deref().or(s.dhcp_domain.as_deref());
            render(effective(&manual_servers, &s.dhcp_dns), search)
        };
        if written.as_ref() != Some(&contents) {
            match write_atomic(&path, &contents) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "resolv.conf updated");
                    written = Some(contents);
                }
                Err(e) => tracing::warn!(error = %e, "resolv.conf not updated"),
            }
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn render_lists_search_then_at_most_three_servers() {
        let servers = [
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("10.0.0.3"),
            ip("10.0.0.4"),
        ];
        let text = render(&servers, Some("lan.example"));
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "search lan.example",
                "nameserver 10.0.0.1",
                "nameserver 10.0.0.2",
                "nameserver 10.0.0.3"
            ]
        );
    }

    #[test]
    fn render_drops_a_search_domain_that_would_inject_lines() {
        let text = render(&[ip("10.0.0.1")], Some("x\nnameserver 6.6.6.6"));
        assert!(!text.contains("6.6.6.6"), "{text}");
        assert!(!text.contains("search"), "{text}");
        assert!(render(&[], None).lines().all(|l| l.starts_with('#')));
    }

    #[test]
    fn manual_servers_win_over_dhcp() {
        let manual = [ip("1.1.1.1")];
        let dhcp = [ip("10.0.0.1")];
        assert_eq!(effective(&manual, &dhcp), &manual);
        assert_eq!(effective(&[], &dhcp), &dhcp);
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        write_atomic(&path, "one\n").unwrap();
        write_atomic(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["resolv.conf"]);
        let missing = dir.path().join("no/such/dir/resolv.conf");
        let err = write_atomic(&missing, "x").unwrap_err().to_string();
        assert!(err.contains("no/such/dir/resolv.conf"), "{err}");
    }

    #[tokio::test]
    async fn follow_rewrites_when_dhcp_servers_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        let (tx, rx) = watch::channel(NetStatus::new("eth0"));
        let task = tokio::spawn(follow(rx, vec![], None, path.clone()));
        tx.send_modify(|s| {
            s.dhcp_dns = vec![ip("10.9.0.1")];
            s.dhcp_domain = Some("corp.example".into());
        });
        let mut text = String::new();
        for _ in 0..200 {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("10.9.0.1") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(text.contains("nameserver 10.9.0.1\n"), "{text}");
        assert!(text.contains("search corp.example\n"), "{text}");
        drop(tx);
        task.await.unwrap();
    }
}
