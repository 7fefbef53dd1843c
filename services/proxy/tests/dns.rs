//! Destinations resolved through DNS: dnsmasq on a loopback port, answering
//! only for its own test name (no upstream servers, so no query leaves).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_forward_proxy::config::ProxyConfig;
use gateway_resolver::Resolver;

mod common;
use common::squid::free_port;
use common::*;

/// The TLS origin's certificate name, here found through DNS.
const DNS_NAME: &str = TLS_NAME;

struct Dnsmasq {
    port: u16,
    child: Child,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dnsmasq() -> Dnsmasq {
    let port = free_port();
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--bind-interfaces",
        ])
        .args([
            "--listen-address=127.0.0.1",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--address=/{DNS_NAME}/127.0.0.1"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq (make deps installs dnsmasq-base)");
    Dnsmasq { port, child }
}

fn resolver(dns: &Dnsmasq) -> Resolver {
    Resolver::with_name_server(SocketAddr::from(([127, 0, 0, 1], dns.port)), HashMap::new())
        .unwrap()
}

#[test]
fn names_resolve_through_the_configured_name_server() {
    let dns = start_dnsmasq();
    let resolver = resolver(&dns);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // dnsmasq needs a moment to bind; its UDP socket gives no connect signal.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ips = loop {
        match rt.block_on(resolver.lookup(DNS_NAME)) {
            Ok(ips) => break ips,
            Err(e) if Instant::now() > deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(ips, vec!["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    let err = rt
        .block_on(resolver.lookup("missing.qualys.com"))
        .unwrap_err();
    assert!(err.contains("cannot resolve missing.qualys.com"), "{err}");
}

#[test]
fn curl_reaches_a_destination_found_by_dns() {
    let dns = start_dnsmasq();
    let origin = start_tls_origin();
    let allowed = [
        format!("{DNS_NAME}:{}", origin.port),
        format!("missing.qualys.com:{}", origin.port),
    ];
    let proxy = start_proxy(ProxyConfig {
        resolver: resolver(&dns),
        ..config_for(&allowed, &[])
    });
    let url = format!("https://{DNS_NAME}:{}/", origin.port);
    let args = [
        "--proxy",
        &format!("http://{}", proxy.addr),
        "--cacert",
        origin.ca_pem.path().to_str().unwrap(),
        &url,
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        match curl(&args) {
            (true, body, _) => break body,
            (false, _, err) if Instant::now() > deadline => panic!("{err}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert_eq!(body, "hello through");
    let request = format!(
        "CONNECT missing.qualys.com:{} HTTP/1.1\r\n\r\n",
        origin.port
    );
    let answer = raw_exchange(proxy.addr, request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 502") && answer.contains("cannot resolve missing.qualys.com"),
        "{answer}"
    );
}
