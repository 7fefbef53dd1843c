//! TLS toward clients, with openssl s_client through the cache's CONNECT:
//! 1.0 and 1.1 refused, 1.2 and 1.3 accepted (1.2 refused when the minimum
//! is 1.3), the leaf signed by the appliance CA for the CONNECT host.

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Resource, World, NAME};

/// The service's log, as its subscriber writes it (this test binary's
/// global subscriber: installed before `World::new` tries its own).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_log() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| LogWriter)
        .try_init();
}

fn log_text() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

/// Waits (the cache logs once its side of the handshake has ended, which
/// may be just after openssl exits) until the log holds `count` lines
/// about `w`'s origin containing `needle`; returns those lines.
fn wait_log(w: &World, needle: &str, count: usize) -> Vec<String> {
    let about = format!("TLS for {NAME}:{}: ", w.tls_port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = log_text()
            .lines()
            .filter(|l| l.contains(&about) && l.contains(needle))
            .map(str::to_owned)
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs s_client with `version` (e.g. `-tls1_1`) through the cache;
/// returns whether the handshake succeeded and what openssl said.
fn s_client(w: &World, version: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-proxy"])
        .arg(w.cache_addr().to_string())
        .args([
            "-connect",
            &format!("{NAME}:{}", w.tls_port),
            "-servername",
            NAME,
            version,
        ])
        // OpenSSL 3 will not even offer 1.0/1.1 at its default security
        // level: lower it so the refusal is the cache's.
        .args(["-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile"])
        .arg(w.ca_pem())
        .args(["-verify_return_error", "-brief"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn old_tls_versions_are_refused_new_ones_accepted() {
    capture_log();
    let mut w = World::new();
    w.start_cache("");
    w.origin.set("/", Resource::ok(b"x".to_vec(), &[]));
    let old = "TLS 1.0 and 1.1 are refused because rustls does not implement them";
    for (i, v) in ["-tls1", "-tls1_1"].into_iter().enumerate() {
        let (ok, text) = s_client(&w, v);
        assert!(!ok, "{v}: {text}");
        // rustls answers with a protocol_version or handshake_failure alert.
        assert!(
            text.contains("alert protocol version") || text.contains("alert handshake failure"),
            "{v}: {text}"
        );
        // The log says why, whichever refusal rustls made of its hello.
        let lines = wait_log(&w, old, i + 1);
        assert_eq!(lines.len(), i + 1, "{v}: {}", log_text());
    }
    for (v, proto) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, text) = s_client(&w, v);
        assert!(ok, "{v}: {text}");
        assert!(text.contains(proto), "{v}: {text}");
        assert!(text.contains("Verification: OK"), "{v}: {text}");
    }
    w.start_cache(r#", "tls_min_version": "1.3""#);
    assert!(!s_client(&w, "-tls1_2").0);
    let lines = wait_log(&w, "TLS 1.2 refused: tls.min_version is 1.3", 1);
    assert_eq!(lines.len(), 1, "{}", log_text());
    assert!(!lines[0].contains("TLS 1.0 and 1.1"), "{}", lines[0]);
    assert!(s_client(&w, "-tls1_3").0);
    // Nothing else was refused for its version.
    assert_eq!(wait_log(&w, old, 2).len(), 2, "{}", log_text());
}

/// A TLS 1.1 ClientHello that carries signature_algorithms (as some old
/// stacks send): rustls refuses it as `Tls12NotOffered`.
fn tls11_hello_with_signature_algorithms() -> Vec<u8> {
    let mut ext = Vec::new();
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256,
    // rsa_pkcs1_sha256, rsa_pkcs1_sha1.
    let algs: &[u8] = &[0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x02, 0x01];
    ext.extend_from_slice(&[0x00, 0x0d]);
    ext.extend_from_slice(&((algs.len() + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(algs.len() as u16).to_be_bytes());
    ext.extend_from_slice(algs);
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // no session id
                   // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_128_CBC_SHA
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]);
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[test]
fn a_tls_1_1_hello_with_signature_algorithms_is_told_why() {
    use std::io::{Read, Write};
    capture_log();
    let mut w = World::new();
    w.start_cache("");
    let mut s = std::net::TcpStream::connect(w.cache_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let target = format!("{NAME}:{}", w.tls_port);
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "{answer:?}");
        answer.push(byte[0]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    s.write_all(&tls11_hello_with_signature_algorithms())
        .unwrap();
    // A fatal protocol_version alert (70).
    let mut alert = [0u8; 7];
    s.read_exact(&mut alert).unwrap();
    assert_eq!((alert[0], alert[5], alert[6]), (0x15, 2, 70), "{alert:?}");
    let lines = wait_log(
        &w,
        "TLS 1.0 and 1.1 are refused because rustls does not implement them",
        1,
    );
    assert_eq!(lines.len(), 1, "{}", log_text());
    assert!(lines[0].contains("Tls12NotOffered"), "{}", lines[0]);
}
