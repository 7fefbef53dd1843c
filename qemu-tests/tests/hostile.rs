//! The hardening probes against a booted image, as an attacker on the LAN
//! would try them: through the proxy (1080) and the cache (8080) as QEMU
//! forwards them, towards hostile origins on the host's loopback (10.0.2.2
//! to the guest, named through the appliance's hosts map). Nothing here is
//! sent anywhere else: the probes of local destinations are refused by the
//! appliance before any connect.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qemu_tests::{free_port, Artifacts, HostServer, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(60);
const ORIGIN: &str = "hostile.example.net";

fn read_head(s: &mut TcpStream) -> String {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends `request` to the forwarded `port` and reads the answer to its end.
fn exchange(port: u16, request: &[u8]) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`exchange`] until the answer starts with `status` (the unit may still
/// be starting), or the last answer after a minute.
fn exchange_until(port: u16, request: &[u8], status: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = exchange(port, request);
        if answer.starts_with(status) || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_hardening_probes_fail_against_a_booted_appliance() {
    // The origin: answers with the Host fields it got, or with an absurd
    // Content-Length and one byte (a hostile origin), by path.
    let hosts_seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = hosts_seen.clone();
    let origin = HostServer::start(move |mut s| {
        let head = read_head(&mut s);
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let hosts: Vec<String> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
            .map(str::to_owned)
            .collect();
        seen.lock().unwrap().extend(hosts.iter().cloned());
        let _ = if path == "/absurd" {
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\
                  Cache-Control: max-age=3600\r\n\r\nx",
            )
        } else {
            let body = hosts.join("\n");
            s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
        };
    });
    // A sequential echo peer for the tunnel.
    let echo = HostServer::start(|s| {
        let mut r = s.try_clone().unwrap();
        let mut w = s;
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 || w.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let (proxy, cache) = (free_port(), free_port());
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.2 gateway.hosts={ORIGIN}=10.0.2.2 \
         gateway.allowed_domains={ORIGIN}:{},{ORIGIN}:{},169.254.169.254 gateway.selftest=serial",
        a.cmdline, origin.port, echo.port
    );
    let cfg = VmConfig::new("hostile", &disk)
        .direct_kernel(&a.kernel, &cmdline)
        .user_net(
            false,
            &[
                &format!("tcp:127.0.0.1:{proxy}-:1080"),
                &format!("tcp:127.0.0.1:{cache}-:8080"),
            ],
        )
        .control_serial();
    let mut vm = Vm::start(&cfg).unwrap();
    vm.wait_for("unit proxy: started", BOOT).unwrap();
    vm.wait_for("unit cache: started", BOOT).unwrap();

    // A cloud's metadata address, though allowed by name: refused before any
    // connect, through both ports. (The cache answers a CONNECT with 200 to
    // intercept the TLS inside and reaches the origin only for a request:
    // it is asked in plain HTTP.)
    for (port, request) in [
        (proxy, &b"CONNECT 169.254.169.254:443 HTTP/1.1\r\n\r\n"[..]),
        (
            cache,
            b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        ),
    ] {
        let answer = exchange_until(port, request, "HTTP/1.1 403");
        assert!(
            answer.starts_with("HTTP/1.1 403") && answer.contains("a local address"),
            "port {port} (proxy {proxy}, cache {cache}): {answer}"
        );
    }

    // The origin gets the URL's authority as Host, not the client's; two
    // Host fields are a 400 that reaches no origin.
    let request = format!(
        "GET http://{ORIGIN}:{}/h HTTP/1.1\r\nHost: metadata.internal\r\nConnection: close\r\n\r\n",
        origin.port
    );
    let answer = exchange_until(proxy, request.as_bytes(), "HTTP/1.1 200");
    assert!(
        answer.ends_with(&format!("Host: {ORIGIN}:{}", origin.port)),
        "{answer}"
    );
    let before = hosts_seen.lock().unwrap().len();
    let request = format!(
        "GET http://{ORIGIN}:{}/h HTTP/1.1\r\nHost: {ORIGIN}\r\nHost: metadata.internal\r\n\r\n",
        origin.port
    );
    let answer = exchange(proxy, request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("more than one Host"),
        "{answer}"
    );
    assert_eq!(hosts_seen.lock().unwrap().len(), before);
    assert!(!hosts_seen
        .lock()
        .unwrap()
        .iter()
        .any(|h| h.contains("metadata.internal")));

    // A tunnel carrying 32 MiB each way at once through the echo peer.
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("CONNECT {ORIGIN}:{} HTTP/1.1\r\n\r\n", echo.port).as_bytes())
        .unwrap();
    let mut head = [0u8; 39];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[..], b"HTTP/1.1 200 Connection established\r\n\r\n");
    const TOTAL: usize = 32 << 20;
    let mut writer = s.try_clone().unwrap();
    let upload = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..TOTAL >> 20 {
            writer.write_all(&chunk).unwrap();
        }
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                assert!(buf[..n].iter().all(|&b| b == 7));
                received += n;
            }
            Err(e) => panic!("the tunnel stalled after {received} bytes back: {e}"),
        }
    }
    upload.join().unwrap();
    assert_eq!(received, TOTAL);

    // An origin claiming an absurd length: the cache survives it and goes
    // on answering.
    let request = format!(
        "GET http://{ORIGIN}:{}/absurd HTTP/1.1\r\nHost: {ORIGIN}:{}\r\nConnection: close\r\n\r\n",
        origin.port, origin.port
    );
    let _ = exchange(cache, request.as_bytes());
    let health = exchange_until(cache, b"GET /health HTTP/1.1\r\n\r\n", "HTTP/1.1 200");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| unit      cache active: running, pid "),
        "{status}"
    );
    // Neither service was restarted along the way.
    let log = vm.serial();
    assert_eq!(log.matches("unit cache: started").count(), 1, "{log}");
    assert_eq!(log.matches("unit proxy: started").count(), 1, "{log}");
}
