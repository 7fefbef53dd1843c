//! Destinations resolved through DNS: dnsmasq on a loopback port, answering
//! only for its own test name (no upstream servers, so no query leaves).
//! A name that resolves to a local address is refused before any connect;
//! to reach one that resolves to an ordinary address, the test makes a
//! network namespace of its own whose loopback also holds that address,
//! and runs dnsmasq, the origin, the proxy and curl inside it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_forward_proxy::config::ProxyConfig;
use gateway_forward_proxy::policy::{default_agent_networks, AllowedDomains, Mode, Policy};
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
    start_dnsmasq_answering("127.0.0.1")
}

/// dnsmasq answering `answer` for DNS_NAME.
fn start_dnsmasq_answering(answer: &str) -> Dnsmasq {
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
        .arg(format!("--address=/{DNS_NAME}/{answer}"))
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

/// An address the namespace's loopback interface holds besides 127.0.0.1:
/// private, not a local address by the proxy's rules (those are about the
/// address, not the interface).
const ORIGIN_IP: &str = "10.99.0.1";

/// A network namespace of the test's own: its loopback up, holding
/// ORIGIN_IP too, and no link to anything else. Deleted on drop, a failed
/// test included.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let ns = Netns {
            name: format!("gwdns-{}-{tag}", std::process::id()),
        };
        ip(&["netns", "add", &ns.name]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{ORIGIN_IP}/32"),
            "dev",
            "lo",
        ]);
        ns
    }

    /// Runs `f` on a thread that entered the namespace: the sockets it
    /// opens, the threads it starts (runtimes) and the processes it spawns
    /// (dnsmasq, curl) are all inside.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            let inside = scope.spawn(move || {
                let file = std::fs::File::open(&path).expect("the namespace's file");
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            });
            inside
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Curl through the proxy until dnsmasq answers (it needs a moment to
/// bind): the body, or curl's error once 20 s have passed.
fn curl_when_dns_answers(args: &[&str]) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match curl(args) {
            (true, body, _) => return Ok(body),
            (false, _, err) if Instant::now() > deadline || err.contains("403") => return Err(err),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn curl_reaches_a_destination_found_by_dns() {
    let ns = Netns::new("reach");
    ns.run(|| {
        let dns = start_dnsmasq_answering(ORIGIN_IP);
        let origin = start_tls_origin_at(SocketAddr::new(ORIGIN_IP.parse().unwrap(), 0));
        let allowed = [
            format!("{DNS_NAME}:{}", origin.port),
            format!("missing.qualys.com:{}", origin.port),
        ];
        let proxy = start_proxy(ProxyConfig {
            resolver: resolver(&dns),
            ..config_for(&allowed, &[])
        });
        let url = format!("https://{DNS_NAME}:{}/", origin.port);
        let body = curl_when_dns_answers(&[
            "--proxy",
            &format!("http://{}", proxy.addr),
            "--cacert",
            origin.ca_pem.path().to_str().unwrap(),
            &url,
        ])
        .unwrap();
        assert_eq!(body, "hello through");
        let request = format!(
            "CONNECT missing.qualys.com:{} HTTP/1.1\r\n\r\n",
            origin.port
        );
        let answer = raw_exchange(proxy.addr, request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 502")
                && answer.contains("cannot resolve missing.qualys.com"),
            "{answer}"
        );
    });
}

#[test]
fn patch_mode_reaches_a_private_address_only_inside_the_private_destinations() {
    let ns = Netns::new("private");
    ns.run(|| {
        let dns = start_dnsmasq_answering(ORIGIN_IP);
        // Patch mode tunnels only to 443: the origin listens there (the
        // namespace's own port 443).
        let origin = start_tls_origin_at(SocketAddr::new(ORIGIN_IP.parse().unwrap(), 443));
        let patch = |private: &[&str]| ProxyConfig {
            policy: Policy::new(Mode::Patch, AllowedDomains::default(), default_agent_networks()),
            resolver: resolver(&dns),
            private_destinations: private.iter().map(|n| n.parse().unwrap()).collect(),
            ..ProxyConfig::default()
        };
        let through = |proxy: &Running| {
            curl_when_dns_answers(&[
                "--proxy",
                &format!("http://{}", proxy.addr),
                "--cacert",
                origin.ca_pem.path().to_str().unwrap(),
                &format!("https://{DNS_NAME}/"),
            ])
        };
        let listed = start_proxy(patch(&["10.99.0.0/16"]));
        assert_eq!(through(&listed).unwrap(), "hello through");
        let unlisted = start_proxy(patch(&["10.1.0.0/16"]));
        let err = through(&unlisted).unwrap_err();
        assert!(err.contains("403"), "{err}");
        let request = format!("CONNECT {DNS_NAME}:443 HTTP/1.1\r\n\r\n");
        let answer = raw_exchange(unlisted.addr, request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 403")
                && answer.contains(&format!(
                    "{DNS_NAME} resolves to {ORIGIN_IP}, a private address outside patch.private_destinations"
                )),
            "{answer}"
        );
        // The default: every private range.
        let default = start_proxy(ProxyConfig {
            policy: Policy::new(Mode::Patch, AllowedDomains::default(), default_agent_networks()),
            resolver: resolver(&dns),
            ..ProxyConfig::default()
        });
        assert_eq!(through(&default).unwrap(), "hello through");
    });
}

#[test]
fn a_name_that_resolves_to_a_local_address_is_refused_before_any_connect() {
    let dns = start_dnsmasq();
    // A listener on the address the name resolves to: it must never see a
    // connection.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let port = target.local_addr().unwrap().port();
    let cache = ProxyConfig {
        resolver: resolver(&dns),
        ..config_for(&[format!("{DNS_NAME}:{port}")], &[])
    };
    let patch = ProxyConfig {
        policy: Policy::new(
            Mode::Patch,
            AllowedDomains::default(),
            default_agent_networks(),
        ),
        resolver: resolver(&dns),
        ..ProxyConfig::default()
    };
    for (mode, config, port) in [("cache", cache, port), ("patch", patch, 443)] {
        let proxy = start_proxy(config);
        let request = format!("CONNECT {DNS_NAME}:{port} HTTP/1.1\r\n\r\n");
        let deadline = Instant::now() + Duration::from_secs(20);
        let answer = loop {
            let answer = raw_exchange(proxy.addr, request.as_bytes());
            // dnsmasq needs a moment to bind: until then the name does not resolve.
            if !answer.contains("cannot resolve") || Instant::now() > deadline {
                break answer;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            answer.starts_with("HTTP/1.1 403")
                && answer.contains(&format!(
                    "{DNS_NAME} resolves to 127.0.0.1, a local address"
                )),
            "{mode} mode: {answer}"
        );
    }
    match target.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the refused destination got a connection: {other:?}"),
    }
}
