//! The server seen from outside: Debian's OpenSSH client against the built
//! binary on a loopback port.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Fixture, PASSWORD, REPORT};

#[test]
fn get_downloads_the_report_once_then_the_password_is_spent() {
    let (fx, content) = Fixture::with_report(300_000);
    let (status, out) = fx.sftp(&["ls -l", &format!("get {REPORT}")]);
    assert!(
        status.success(),
        "sftp failed:\n{out}\nserver:\n{}",
        fx.log()
    );
    assert!(out.contains(REPORT), "ls did not list the report:\n{out}");
    assert!(out.contains("-r--------"), "not shown as 0400:\n{out}");
    let got = std::fs::read(fx.client_dir().join(REPORT)).unwrap();
    assert!(got == content, "the downloaded file differs");
    assert!(wait_until_gone(&fx), "offer.json or the report still there");
    assert!(fx
        .log()
        .contains("diagnostics report downloaded by 127.0.0.1:"));

    std::fs::remove_file(fx.client_dir().join(REPORT)).unwrap();
    let (status, out) = fx.sftp(&[&format!("get {REPORT}")]);
    assert!(!status.success(), "a second sign-in worked:\n{out}");
    assert!(!fx.client_dir().join(REPORT).exists());
    assert!(!fx.log().contains(PASSWORD), "the password was logged");
}

#[test]
fn a_partial_read_does_not_spend_the_offer() {
    let (fx, content) = Fixture::with_report(200_000);
    // Listing, and a `get` of a name that is not there, are no download.
    let (status, out) = fx.sftp(&["ls", "-get nothing-here", "ls -l /"]);
    assert!(status.success(), "{out}");
    assert!(out.contains(REPORT), "{out}");
    assert!(fx.offer_exists() && fx.report_exists());

    // `reget` with the first half already here reads only the second half:
    // that handle never returned the whole file.
    std::fs::write(fx.client_dir().join(REPORT), &content[..100_000]).unwrap();
    let (status, out) = fx.sftp(&[&format!("reget {REPORT}")]);
    assert!(status.success(), "{out}");
    assert!(std::fs::read(fx.client_dir().join(REPORT)).unwrap() == content);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        fx.offer_exists() && fx.report_exists(),
        "a partial read spent the offer"
    );

    // A whole `get` afterwards still works, and is the download.
    std::fs::remove_file(fx.client_dir().join(REPORT)).unwrap();
    let (status, out) = fx.sftp(&[&format!("get {REPORT}")]);
    assert!(status.success(), "{out}");
    assert!(std::fs::read(fx.client_dir().join(REPORT)).unwrap() == content);
    assert!(
        wait_until_gone(&fx),
        "the whole get did not spend the offer"
    );
}

/// CLOSE is answered before the files go: give the deletion a moment.
fn wait_until_gone(fx: &Fixture) -> bool {
    for _ in 0..50 {
        if !fx.offer_exists() && !fx.report_exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn commands_and_shells_are_refused() {
    let (fx, _) = Fixture::with_report(1000);
    let (status, out) = fx.ssh(&[], &["echo", "ran-a-command"]);
    assert!(!status.success(), "exec succeeded:\n{out}");
    assert!(!out.contains("ran-a-command"), "{out}");

    let (status, out) = fx.ssh(&["-tt"], &[]);
    assert!(!status.success(), "a shell started:\n{out}");

    let (status, out) = fx.ssh(&["-s"], &["not-sftp"]);
    assert!(!status.success(), "another subsystem started:\n{out}");

    assert!(
        fx.offer_exists() && fx.report_exists(),
        "counted as a download"
    );
    let log = fx.log();
    assert_eq!(log.matches("signed in").count(), 3, "{log}");
    assert!(log.contains("refused a command"), "{log}");
    assert!(log.contains("refused a shell"), "{log}");
}

#[test]
fn paths_outside_the_report_directory_are_refused() {
    let (fx, _) = Fixture::with_report(1000);
    for batch in [
        &["get ../settings.json"][..],
        &["get /../offer.json"],
        &["get ../offer.json"],
        &["get /../report/../host_key"],
        &["ls .."],
        &["cd .."],
        &["-cd ..", "get offer.json"],
        &["get offer.json"],
        &["get /host_key"],
    ] {
        // `ls` first: its listing shows the client did sign in, so the
        // failure is the refusal and not a failed sign-in.
        let batch: Vec<&str> = ["ls"].iter().chain(batch).copied().collect();
        let (status, out) = fx.sftp(&batch);
        assert!(out.contains(REPORT), "not signed in for {batch:?}:\n{out}");
        assert!(!status.success(), "{batch:?} worked:\n{out}");
    }
    for name in ["settings.json", "offer.json", "host_key"] {
        assert!(
            !fx.client_dir().join(name).exists(),
            "{name} was downloaded"
        );
    }
    let log = fx.log();
    assert!(log.contains("outside the report directory"), "{log}");
    assert!(fx.offer_exists() && fx.report_exists());
}

#[test]
fn the_directory_is_read_only() {
    let (fx, _) = Fixture::with_report(1000);
    std::fs::write(fx.client_dir().join("upload.txt"), "hello").unwrap();
    for batch in [
        &["put upload.txt"][..],
        &[&format!("put upload.txt {REPORT}")],
        &[&format!("rm {REPORT}")],
        &["mkdir sub"],
        &[&format!("rename {REPORT} other")],
        &[&format!("chmod 666 {REPORT}")],
        &[&format!("ln -s {REPORT} link")],
    ] {
        // `ls` first: its listing shows the client did sign in, so the
        // failure is the refusal and not a failed sign-in.
        let batch: Vec<&str> = ["ls"].iter().chain(batch).copied().collect();
        let (status, out) = fx.sftp(&batch);
        assert!(out.contains(REPORT), "not signed in for {batch:?}:\n{out}");
        assert!(!status.success(), "{batch:?} worked:\n{out}");
    }
    assert!(fx.report_exists(), "the report was removed");
    let mode = std::fs::metadata(fx.state().join("report").join(REPORT))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o777, 0o666);
    let names: Vec<_> = std::fs::read_dir(fx.state().join("report"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [REPORT], "the report directory changed");
    assert!(fx.log().contains("refused: read-only"));
}

#[test]
fn wrong_password_expired_offer_and_no_offer_fail() {
    let (fx, _) = Fixture::with_report(1000);
    fx.askpass_says("not the password");
    let (status, out) = fx.sftp(&["ls"]);
    assert!(!status.success(), "a wrong password worked:\n{out}");
    fx.askpass_says(PASSWORD);

    common::write_offer(&fx.state(), PASSWORD, common::now_unix() - 1, REPORT);
    let (status, out) = fx.sftp(&["ls"]);
    assert!(!status.success(), "an expired offer worked:\n{out}");

    std::fs::remove_file(fx.state().join("offer.json")).unwrap();
    let (status, out) = fx.sftp(&["ls"]);
    assert!(!status.success(), "no offer, yet signed in:\n{out}");

    // A fresh offer works again with no restart: it is read at each sign-in.
    common::write_offer(&fx.state(), PASSWORD, common::now_unix() + 60, REPORT);
    let (status, out) = fx.sftp(&["ls"]);
    assert!(status.success(), "a new offer was not picked up:\n{out}");

    let log = fx.log();
    for why in [
        "wrong password",
        "the offer has expired",
        "no report is offered",
    ] {
        assert!(log.contains(why), "no {why:?} in the log:\n{log}");
    }
    assert!(!log.contains("not the password") && !log.contains(PASSWORD));
}

#[test]
fn port_forwarding_is_refused() {
    let (fx, _) = Fixture::with_report(1000);
    let target = format!("127.0.0.1:{}", fx.port);
    let (status, out) = fx.ssh(&["-W", &target], &[]);
    assert!(!status.success(), "-W worked:\n{out}");
    let remote = format!("0:127.0.0.1:{}", fx.port);
    let (status, out) = fx.ssh(
        &["-N", "-o", "ExitOnForwardFailure=yes", "-R", &remote],
        &[],
    );
    assert!(!status.success(), "-R worked:\n{out}");
    let log = fx.log();
    assert_eq!(log.matches("signed in").count(), 2, "{log}");
    assert!(
        log.contains("refused port forwarding (direct-tcpip)"),
        "{log}"
    );
    assert!(log.contains("refused remote port forwarding"), "{log}");
    assert!(fx.offer_exists() && fx.report_exists());
}

#[test]
fn the_host_key_is_kept_and_its_fingerprint_published() {
    let (mut fx, _) = Fixture::with_report(10);
    let key = fx.state().join("host_key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let published = std::fs::read_to_string(fx.state().join("host_key.fingerprint")).unwrap();
    let keygen = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let keygen = String::from_utf8(keygen.stdout).unwrap();
    let field = keygen.split_whitespace().nth(1).unwrap();
    assert!(field.starts_with("SHA256:"), "{keygen}");
    assert_eq!(published, format!("{field}\n"));
    assert!(keygen.contains("(ED25519)"), "{keygen}");

    // What the server presents on the wire is that key.
    let scanned = keyscan(fx.port);
    assert_eq!(scanned, field);

    let before = std::fs::read(&key).unwrap();
    fx.start();
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "a restart changed the key"
    );
    assert_eq!(keyscan(fx.port), field);
}

/// The server's ed25519 key as `ssh-keyscan` sees it, fingerprinted.
fn keyscan(port: u16) -> String {
    let scan = std::process::Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scanned");
    std::fs::write(&file, &scan.stdout).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&file)
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    out.split_whitespace().nth(1).unwrap_or_default().to_owned()
}

#[test]
fn sigterm_stops_the_server_at_once_with_status_zero() {
    let (mut fx, _) = Fixture::with_report(10);
    let pid = fx.server.id() as libc::pid_t;
    // SAFETY: kill(2) on the pid of a child this test started and has not
    // reaped (the guard holds it), so the pid cannot have been reused.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = fx.server.wait_for(Duration::from_secs(5));
    let status = status.unwrap_or_else(|| panic!("still running after SIGTERM:\n{}", fx.log()));
    assert!(status.success(), "{status}:\n{}", fx.log());
}

#[test]
fn garbage_and_silent_connections_do_not_stop_the_server() {
    use std::io::{Read, Write};
    let (fx, content) = Fixture::with_report(5000);
    let addr = ("127.0.0.1", fx.port);
    // Not SSH at all, a version line then garbage, and a huge line.
    for bytes in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"SSH-2.0-x\r\n\x00\x00\xff\xff\x01\x02garbage",
        &[b'A'; 100_000],
    ] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(bytes);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    // Eight silent connections fill every slot: one more is closed at once.
    // On a loaded machine the server may not have let go of a connection
    // above, or accepted every silent one, when the next arrives: a probe
    // that is served (it gets the banner) is kept open as one more silent
    // connection and another is tried, a few times at most. Without the
    // cap every probe would be served.
    let mut silent: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut refused = false;
    for _ in 0..4 {
        let mut probe = std::net::TcpStream::connect(addr).unwrap();
        probe
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0; 64];
        if probe.read(&mut buf).unwrap_or(0) == 0 {
            refused = true;
            break;
        }
        silent.push(probe);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(refused, "every connection was served:\n{}", fx.log());
    assert!(fx.log().contains("8 already open"), "{}", fx.log());
    drop(silent);
    std::thread::sleep(Duration::from_millis(300));
    // And the server still works.
    let (status, out) = fx.sftp(&[&format!("get {REPORT}")]);
    assert!(status.success(), "{out}\nserver:\n{}", fx.log());
    assert!(std::fs::read(fx.client_dir().join(REPORT)).unwrap() == content);
}
