//! Helpers shared by the proxy's client tests: the proxy in-process, origins
//! on loopback (TLS and plain), curl, raw exchanges.
#![allow(dead_code)]

pub mod squid;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use gateway_forward_proxy::config::ProxyConfig;
use gateway_forward_proxy::policy::{AllowedDomains, Mode, Policy};
use gateway_forward_proxy::stats::Stats;
use gateway_proxy::server::serve;
use gateway_resolver::Resolver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TLS_NAME: &str = "gw-test.qualys.com";
pub const PLAIN_NAME: &str = "plain.qualys.com";
pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

pub struct Running {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    _rt: tokio::runtime::Runtime,
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A runtime and a listener on a free loopback port.
pub fn loopback_listener() -> (tokio::runtime::Runtime, tokio::net::TcpListener, u16) {
    listener_at(SocketAddr::new(LOOPBACK, 0))
}

/// A runtime and a listener on `addr` (port 0: a free one).
pub fn listener_at(addr: SocketAddr) -> (tokio::runtime::Runtime, tokio::net::TcpListener, u16) {
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    let port = listener.local_addr().unwrap().port();
    (rt, listener, port)
}

pub fn start_proxy(config: ProxyConfig) -> Running {
    let (rt, listener, port) = loopback_listener();
    let stats = Arc::new(Stats::default());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    rt.spawn(serve(listener, Arc::new(config), stats.clone()));
    Running {
        addr,
        stats,
        _rt: rt,
    }
}

pub fn config_for(allowed: &[String], hosts: &[(&str, IpAddr)]) -> ProxyConfig {
    ProxyConfig {
        policy: Policy::new(
            Mode::Cache,
            AllowedDomains::parse(allowed.iter().map(String::as_str)).unwrap(),
            gateway_forward_proxy::policy::default_agent_networks(),
        ),
        resolver: Resolver::hosts_only(
            hosts
                .iter()
                .map(|(n, ip)| (n.to_string(), *ip))
                .collect::<HashMap<_, _>>(),
        ),
        ..ProxyConfig::default()
    }
}

/// A TLS server for TLS_NAME with a fresh self-signed certificate; answers
/// every request with "hello through".
pub struct TlsOrigin {
    pub port: u16,
    pub ca_pem: tempfile::NamedTempFile,
    _rt: tokio::runtime::Runtime,
}

pub fn start_tls_origin() -> TlsOrigin {
    start_tls_origin_at(SocketAddr::new(LOOPBACK, 0))
}

/// [`start_tls_origin`] listening on `addr` (port 0: a free one).
pub fn start_tls_origin_at(addr: SocketAddr) -> TlsOrigin {
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
    let (rt, listener, port) = listener_at(addr);
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                if read_request_head(&mut tls).await.is_none() {
                    return;
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

/// Reads a request head (up to the blank line); None if the peer left first.
async fn read_request_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
        if got == buf.len() {
            return None;
        }
    }
    buf.truncate(got);
    Some(buf)
}

/// A plain HTTP server that answers with the request line it received.
pub fn start_plain_origin() -> (u16, tokio::runtime::Runtime) {
    let (rt, listener, port) = loopback_listener();
    rt.spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Some(head) = read_request_head(&mut tcp).await else {
                    return;
                };
                let text = String::from_utf8_lossy(&head).into_owned();
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

pub fn curl(args: &[&str]) -> (bool, String, String) {
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
pub fn raw_exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
