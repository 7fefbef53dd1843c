//! The `gateway-proxy` binary as init will run it: options checked with
//! errors naming them, and a running instance answering.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gateway-proxy");

#[test]
fn bad_options_are_refused_naming_the_option_and_the_rule() {
    for (args, expected) in [
        (
            vec!["--allow", "https://example.com"],
            "--allow: allowed domain \"https://example.com\" has a URL scheme",
        ),
        (
            vec!["--allow", "www.example.com"],
            "starts with \"www.\": give \"example.com\" instead",
        ),
        (
            vec!["--host", "name-without-ip"],
            "--host \"name-without-ip\": expected name=ip",
        ),
        (
            vec!["--upstream", "proxy.corp:0"],
            "--upstream \"proxy.corp:0\": the port must be 1-65535",
        ),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn a_running_instance_refuses_a_disallowed_destination() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log, line by line, as the proxy writes it.
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("gateway-proxy did not listen: {e}");
            }
        }
    };
    stream
        .write_all(b"CONNECT example.org:443 HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.read_to_string(&mut answer);
    // The access log line comes once the connection is done.
    let mut log = Vec::new();
    let access = loop {
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains("access ") => break Some(line),
            Ok(line) => log.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        answer.starts_with("HTTP/1.1 403") && answer.contains("example.org"),
        "{answer}"
    );
    let access = access.unwrap_or_else(|| panic!("no access log line in {log:?}"));
    assert!(
        access.contains("access client=127.0.0.1 dest=example.org:443 result=\"403 destination\""),
        "{access}"
    );
}
