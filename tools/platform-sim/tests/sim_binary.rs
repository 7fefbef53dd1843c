//! The `platform-sim` binary as an evaluator or the QEMU tests run it: it
//! says where it listens, writes its CA, and its admin interface changes an
//! appliance's configuration. Killed when the test ends, pass or fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use gateway_agent::connect::{tls_config, Dialer};
use gateway_management_api::api;
use gateway_resolver::Resolver;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn admin(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_owned())
}

#[test]
fn the_simulator_binary_reports_its_ports_writes_its_ca_and_serves_admin() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_platform-sim"))
        .args([
            "--pod",
            "sim.test",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .args(["--code", "abc-123", "--set", "proxy.port=1081", "--ca-out"])
        .arg(&ca)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _sim = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let admin_addr = line.trim().split("admin=").nth(1).unwrap().to_owned();
    assert!(line.starts_with("https=127.0.0.1:"), "{line}");
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    gateway_config::rules::pem_certificates(&pem).unwrap();
    assert_eq!(
        admin(&admin_addr, "GET", "/appliances", ""),
        (200, "[]".to_owned())
    );
    let (status, body) = admin(&admin_addr, "PUT", "/appliances/nope/configuration", "{}");
    assert_eq!(status, 404, "{body}");
    assert_eq!(admin(&admin_addr, "POST", "/codes", "\"def-456\"").0, 201);

    // The health switch: qagpublic's health endpoint answers 503, then 200
    // again; only the POD's services and final statuses are taken.
    let https: std::net::SocketAddr = line
        .split_whitespace()
        .next()
        .and_then(|w| w.strip_prefix("https="))
        .unwrap()
        .parse()
        .unwrap();
    let health = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let host = "qagpublic.sim.test";
        let dialer = Dialer {
            resolver: Resolver::hosts_only([(host.to_owned(), https.ip())].into()),
            upstream: None,
            tls: tls_config(Some(&pem)).unwrap(),
            port: https.port(),
        };
        let r = runtime
            .block_on(dialer.request(host, "GET", api::HEALTH, None, None))
            .unwrap();
        (r.status(), r.second)
    };
    assert_eq!(health(), (200, "OK".to_owned()));
    let (status, body) = admin(&admin_addr, "PUT", "/health/qagpublic", "503");
    assert_eq!(status, 200, "{body}");
    assert_eq!(health(), (503, "Service Unavailable".to_owned()));
    assert_eq!(admin(&admin_addr, "PUT", "/health/qagpublic", "200").0, 200);
    assert_eq!(health(), (200, "OK".to_owned()));
    for (path, body) in [
        ("/health/www", "503"),
        ("/health/cask", "42"),
        ("/health/cask", "\"down\""),
    ] {
        let (status, answer) = admin(&admin_addr, "PUT", path, body);
        assert_eq!(status, 400, "{path} {body}: {answer}");
    }
}
