//! The `platform-sim` binary as an evaluator or the QEMU tests run it: it
//! says where it listens, writes its CA, and its admin interface changes an
//! appliance's configuration. Killed when the test ends, pass or fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

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
}
