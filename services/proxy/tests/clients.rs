//! The proxy seen by real clients: curl through it to a TLS server on
//! loopback (certificate verified end to end), plain HTTP, and raw sockets
//! for the refusals. Test names resolve only through the proxy's hosts map,
//! and refused names are refused before any lookup: nothing leaves loopback.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_proxy::policy::{AllowedDomains, Mode, Policy};
use gateway_proxy::server::{serve, ProxyConfig};
use gateway_proxy::stats::Stats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TLS_NAME: &str = "gw-test.qualys.com";
const PLAIN_NAME: &str = "plain.qualys.com";
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

struct Running {
    addr: SocketAddr,
    stats: Arc<Stats>,
    _rt: tokio::runtime::Runtime,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start_proxy(config: ProxyConfig) -> Running {
    let rt = runtime();
    let stats = Arc::new(Stats::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(serve(listener, Arc::new(config), stats.clone()));
    Running {
        addr,
        stats,
        _rt: rt,
    }
}

fn config_for(allowed: &[String], hosts: &[(&str, IpAddr)]) -> ProxyConfig {
    ProxyConfig {
        policy: Policy::new(
            Mode::Cache,
            AllowedDomains::parse(allowed.iter().map(String::as_str)).unwrap(),
            gateway_proxy::policy::default_agent_networks(),
        ),
        hosts: hosts
            .iter()
            .map(|(n, ip)| (n.to_string(), *ip))
            .collect::<HashMap<_, _>>(),
        ..ProxyConfig::default()
    }
}

/// A TLS server for TLS_NAME with a fresh self-signed certificate; answers
/// every request with "hello through".
struct TlsOrigin {
    port: u16,
    ca_pem: tempfile::NamedTempFile,
    _rt: tokio::runtime::Runtime,
}

fn start_tls_origin() -> TlsOrigin {
    let certified = rcgen::generate_simple_self_signed(vec![TLS_NAME.to_string()]).unwrap();
    let mut ca_pem = tempfile::NamedTempFile::new().unwrap();
    ca_pem.write_all(certified.cert.pem().as_bytes()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let rt = runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 4096];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nhello through")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsOrigin {
        port,
        ca_pem,
        _rt: rt,
    }
}

/// A plain HTTP server that answers with the request line it received.
fn start_plain_origin() -> (u16, tokio::runtime::Runtime) {
    let rt = runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let text = String::from_utf8_lossy(&buf[..got]).into_owned();
                let line = text.lines().next().unwrap_or_default().to_owned();
                let proxy_auth_leaked = text.to_ascii_lowercase().contains("proxy-authorization");
                let body = format!("{line}\nproxy-authorization forwarded: {proxy_auth_leaked}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, rt)
}

fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--noproxy", ""])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .output()
        .expect("run curl (make deps installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends raw bytes, returns everything the proxy answers until it closes.
fn raw_exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn https_passes_through_with_the_origin_certificate_verified() {
    let origin = start_tls_origin();
    let proxy = start_proxy(config_for(
        &[format!("{TLS_NAME}:{}", origin.port)],
        &[(TLS_NAME, LOOPBACK)],
    ));
    let url = format!("https://{TLS_NAME}:{}/agent/manifest", origin.port);
    let (ok, body, err) = curl(&[
        "--proxy",
        &format!("http://{}", proxy.addr),
        "--cacert",
        origin.ca_pem.path().to_str().unwrap(),
        &url,
    ]);
    assert!(ok, "curl failed: {err}");
    assert_eq!(body, "hello through");
    let snap = proxy.stats.snapshot(Instant::now());
    assert!(snap.bytes_up > 100 && snap.bytes_down > 100, "{snap:?}");
    assert_eq!(snap.unique_clients, 1);
    // Without the origin's certificate, curl refuses it: the proxy did not
    // terminate TLS, the origin's own certificate reached the client.
    let (ok, _, err) = curl(&["--proxy", &format!("http://{}", proxy.addr), &url]);
    assert!(!ok && err.contains("certificate"), "{err}");
}

#[test]
fn disallowed_destination_gets_403_naming_the_host() {
    let proxy = start_proxy(config_for(&[], &[]));
    let (ok, _, err) = curl(&[
        "--proxy",
        &format!("http://{}", proxy.addr),
        "https://example.org/",
    ]);
    assert!(!ok && err.contains("403"), "{err}");
    let answer = raw_exchange(
        proxy.addr,
        b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(answer.contains("example.org"), "{answer}");
    let answer = raw_exchange(proxy.addr, b"GET http://evilqualys.com/ HTTP/1.1\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 403") && answer.contains("evilqualys.com"),
        "{answer}"
    );
    assert_eq!(
        proxy
            .stats
            .snapshot(Instant::now())
            .refusals
            .get("destination"),
        Some(&3)
    );
}

#[test]
fn connect_to_a_port_other_than_443_needs_an_explicit_entry() {
    let proxy = start_proxy(config_for(&[], &[]));
    let answer = raw_exchange(
        proxy.addr,
        b"CONNECT qagpublic.qg1.apps.qualys.com:8443 HTTP/1.1\r\n\r\n",
    );
    assert!(
        answer.starts_with("HTTP/1.1 403") && answer.contains("8443"),
        "{answer}"
    );
    assert_eq!(
        proxy.stats.snapshot(Instant::now()).refusals.get("port"),
        Some(&1)
    );
}

#[test]
fn plain_http_absolute_form_is_forwarded_in_origin_form() {
    let (port, _origin) = start_plain_origin();
    let proxy = start_proxy(config_for(
        &[format!("{PLAIN_NAME}:{port}")],
        &[(PLAIN_NAME, LOOPBACK)],
    ));
    let (ok, body, err) = curl(&[
        "--proxy",
        &format!("http://agent:secret@{}", proxy.addr),
        "--proxy-basic",
        &format!("http://{PLAIN_NAME}:{port}/patch/list?os=linux"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        body,
        "GET /patch/list?os=linux HTTP/1.1\nproxy-authorization forwarded: false"
    );
}

#[test]
fn oversized_heads_get_431_and_long_lines_414() {
    let proxy = start_proxy(config_for(&[], &[]));
    let big = format!(
        "CONNECT qualys.com:443 HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = raw_exchange(proxy.addr, big.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{answer}"
    );
    let long = format!(
        "GET http://qualys.com/{} HTTP/1.1\r\n\r\n",
        "b".repeat(10_000)
    );
    let answer = raw_exchange(proxy.addr, long.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 414 URI Too Long"), "{answer}");
}

#[test]
fn a_slow_client_is_cut_off() {
    let proxy = start_proxy(ProxyConfig {
        head_timeout: Duration::from_secs(1),
        ..config_for(&[], &[])
    });
    let started = Instant::now();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"CONNECT qual").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn connections_above_the_cap_are_refused_with_503() {
    let proxy = start_proxy(ProxyConfig {
        max_connections: 1,
        ..config_for(&[], &[])
    });
    // This one holds the only slot while it sends nothing.
    let _holder = TcpStream::connect(proxy.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let answer = raw_exchange(proxy.addr, b"CONNECT qualys.com:443 HTTP/1.1\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("limit 1"),
        "{answer}"
    );
}

#[test]
fn patch_mode_refuses_clients_outside_the_agent_networks() {
    let policy = Policy::new(
        Mode::Patch,
        AllowedDomains::default(),
        vec!["10.0.0.0/8".parse().unwrap()],
    );
    let proxy = start_proxy(ProxyConfig {
        policy,
        ..ProxyConfig::default()
    });
    let answer = raw_exchange(
        proxy.addr,
        b"CONNECT download.vendor.example:443 HTTP/1.1\r\n\r\n",
    );
    assert!(
        answer.starts_with("HTTP/1.1 403") && answer.contains("127.0.0.1"),
        "{answer}"
    );
    assert_eq!(
        proxy.stats.snapshot(Instant::now()).refusals.get("client"),
        Some(&1)
    );
}

#[test]
fn patch_mode_never_tunnels_to_the_appliance_itself() {
    let policy = Policy::new(
        Mode::Patch,
        AllowedDomains::default(),
        gateway_proxy::policy::default_agent_networks(),
    );
    let proxy = start_proxy(ProxyConfig {
        policy,
        ..ProxyConfig::default()
    });
    let answer = raw_exchange(proxy.addr, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 403") && answer.contains("local address"),
        "{answer}"
    );
}
