//! The `gateway-proxy` binary as init will run it: options checked with
//! errors naming them, and a running instance answering.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gateway-proxy");

/// The child's stderr, line by line as it writes them.
fn log_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    lines
}

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
    let lines = log_lines(&mut child);
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

#[test]
fn every_request_gets_an_access_log_line_without_credentials() {
    // An origin answering `ok` on each connection.
    let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_port = origin.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in origin.incoming().flatten() {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let name = "plain.qualys.com";
    // Port 0: the system picks a port no parallel test can also pick, and
    // the log says which.
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .args(["--allow", &format!("{name}:{origin_port}")])
        .args(["--host", &format!("{name}=127.0.0.1")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = log_lines(&mut child);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let port: u16 = loop {
            match lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("listening on 127.0.0.1:") => {
                    let tail = line.rsplit(':').next().unwrap_or_default();
                    break tail.trim().parse().unwrap_or_else(|_| panic!("{line}"));
                }
                Ok(_) => {}
                Err(_) => panic!("gateway-proxy did not say where it listens"),
            }
        };
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let request = |path: &str, extra: &str| {
            format!(
                "GET http://{name}:{origin_port}{path} HTTP/1.1\r\nProxy-Authorization: Basic c2VjcmV0LXRva2Vu\r\n{extra}\r\n"
            )
        };
        s.write_all((request("/a", "") + &request("/b", "Connection: close\r\n")).as_bytes())
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert_eq!(answer.matches("\r\n\r\nok").count(), 2, "{answer}");
        let mut access = Vec::new();
        while access.len() < 2 {
            match lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("access ") => access.push(line),
                Ok(_) => {}
                Err(_) => panic!("access lines: {access:?}"),
            }
        }
        for (n, line) in access.iter().enumerate() {
            assert!(
                line.contains(&format!(
                    "access client=127.0.0.1 dest={name}:{origin_port} result=\"200 forwarded\" method=GET up="
                )) && line.ends_with(&format!(" req={}", n + 1)),
                "{line}"
            );
            assert!(
                !line.contains("c2VjcmV0") && !line.contains("Basic"),
                "{line}"
            );
        }
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn echo_origin() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// CONNECT through the proxy on `port`; the status line and, on 200, the
/// open tunnel.
fn tunnel(port: u16, dest: &str) -> (String, Option<TcpStream>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("CONNECT {dest} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    let status = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let open = status.starts_with("HTTP/1.1 200").then_some(s);
    (status, open)
}

fn echo(s: &mut TcpStream, text: &str) -> String {
    s.write_all(text.as_bytes()).unwrap();
    let mut back = vec![0u8; text.len()];
    s.read_exact(&mut back).unwrap();
    String::from_utf8(back).unwrap()
}

#[test]
fn sighup_reloads_port_and_domains_without_dropping_tunnels() {
    let origin = echo_origin();
    let (a, b) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.json");
    let settings = |listen: u16, allowed: &str| {
        format!(
            r#"{{"listen": "127.0.0.1:{listen}", "allowed_domains": [{allowed}],
                "hosts": {{"a.qualys.com": "127.0.0.1", "b.qualys.com": "127.0.0.1"}}}}"#
        )
    };
    std::fs::write(&file, settings(a, &format!("\"a.qualys.com:{origin}\""))).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = log_lines(&mut child);
    let wait_log = |needle: &str| loop {
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no log line with {needle:?}"),
        }
    };
    let pid = child.id().to_string();
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success())
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_log(&format!("listening on 127.0.0.1:{a}"));
        let (status, t1) = tunnel(a, &format!("a.qualys.com:{origin}"));
        let mut t1 = t1.unwrap_or_else(|| panic!("{status}"));
        assert_eq!(echo(&mut t1, "one"), "one");
        let (status, _) = tunnel(a, &format!("b.qualys.com:{origin}"));
        assert!(status.starts_with("HTTP/1.1 403"), "{status}");

        // New port and one more allowed domain.
        let both = format!("\"a.qualys.com:{origin}\", \"b.qualys.com:{origin}\"");
        std::fs::write(&file, settings(b, &both)).unwrap();
        hup();
        wait_log("reload: configuration applied");
        assert_eq!(
            echo(&mut t1, "two"),
            "two",
            "the established tunnel survived"
        );
        let (status, t2) = tunnel(b, &format!("b.qualys.com:{origin}"));
        let mut t2 = t2.unwrap_or_else(|| panic!("{status}"));
        assert_eq!(echo(&mut t2, "three"), "three");
        assert!(
            TcpStream::connect(("127.0.0.1", a)).is_err(),
            "the old port still accepts"
        );

        // A bad file changes nothing.
        std::fs::write(&file, settings(a, "\"https://b.qualys.com\"")).unwrap();
        hup();
        let line = wait_log("reload: ");
        assert!(
            line.contains("allowed_domains: ")
                && line.contains("keeping the running configuration"),
            "{line}"
        );
        let (status, _) = tunnel(b, &format!("b.qualys.com:{origin}"));
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert_eq!(echo(&mut t1, "four"), "four");
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
