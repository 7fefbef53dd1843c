//! Upstream chaining with real peers: Debian's squid (basic authentication)
//! as the upstream, and two instances of the proxy nested. Everything on
//! loopback; squid resolves the test name from its own hosts file and has
//! loopback as its only name server.

use std::net::SocketAddr;
use std::time::Instant;

use gateway_forward_proxy::config::ProxyConfig;
use gateway_forward_proxy::upstream::{Credentials, Secret, Upstream};

mod common;
use common::squid::{self, free_port, Squid};
use common::*;

const USER: &str = "gateway";
const PASSWORD: &str = "right-password";

fn start_squid() -> Squid {
    squid::start_squid(Some((USER, PASSWORD)), &[TLS_NAME])
}

fn via(port: u16, password: Option<&str>) -> Upstream {
    Upstream {
        host: "127.0.0.1".into(),
        port,
        credentials: password.map(|p| Credentials {
            user: USER.into(),
            password: Secret::new(p),
        }),
        bypass: Vec::new(),
    }
}

fn curl_via(proxy: SocketAddr, origin: &TlsOrigin) -> (bool, String, String) {
    curl(&[
        "--proxy",
        &format!("http://{proxy}"),
        "--cacert",
        origin.ca_pem.path().to_str().unwrap(),
        &format!("https://{TLS_NAME}:{}/", origin.port),
    ])
}

#[test]
fn tunnels_through_squid_with_basic_authentication() {
    let origin = start_tls_origin();
    let squid = start_squid();
    // Our proxy resolves nothing itself: the upstream does.
    let proxy = start_proxy(ProxyConfig {
        upstream: Some(via(squid.port, Some(PASSWORD))),
        ..config_for(&[format!("{TLS_NAME}:{}", origin.port)], &[])
    });
    let (ok, body, err) = curl_via(proxy.addr, &origin);
    assert!(ok, "curl through squid failed: {err}");
    assert_eq!(body, "hello through");
}

#[test]
fn squid_refusing_our_credentials_is_a_502_naming_its_407() {
    let origin = start_tls_origin();
    let squid = start_squid();
    let allowed = [format!("{TLS_NAME}:{}", origin.port)];
    let proxy = start_proxy(ProxyConfig {
        upstream: Some(via(squid.port, Some("wrong-password"))),
        ..config_for(&allowed, &[])
    });
    let (ok, _, err) = curl_via(proxy.addr, &origin);
    assert!(!ok && err.contains("502"), "{err}");
    let request = format!("CONNECT {TLS_NAME}:{} HTTP/1.1\r\n\r\n", origin.port);
    let answer = raw_exchange(proxy.addr, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 502 Bad Gateway"), "{answer}");
    assert!(answer.contains("407"), "{answer}");
    assert!(!answer.contains("wrong-password"), "{answer}");
    // Without credentials at all, the same.
    let proxy = start_proxy(ProxyConfig {
        upstream: Some(via(squid.port, None)),
        ..config_for(&allowed, &[])
    });
    let answer = raw_exchange(proxy.addr, request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 502") && answer.contains("407"),
        "{answer}"
    );
}

#[test]
fn two_instances_nest() {
    let origin = start_tls_origin();
    let allowed = [format!("{TLS_NAME}:{}", origin.port)];
    let inner = start_proxy(config_for(&allowed, &[(TLS_NAME, LOOPBACK)]));
    let outer = start_proxy(ProxyConfig {
        upstream: Some(via(inner.addr.port(), None)),
        ..config_for(&allowed, &[])
    });
    let (ok, body, err) = curl_via(outer.addr, &origin);
    assert!(ok, "{err}");
    assert_eq!(body, "hello through");
    // The bytes really crossed the inner instance.
    let inner_stats = inner.stats.snapshot(Instant::now());
    assert!(inner_stats.bytes_down > 100, "{inner_stats:?}");
}

#[test]
fn bypassed_domains_go_direct() {
    let origin = start_tls_origin();
    let allowed = [format!("{TLS_NAME}:{}", origin.port)];
    // An upstream that does not exist: only a direct connection can work.
    let mut upstream = via(free_port(), None);
    upstream.bypass = vec!["qualys.com".into()];
    let proxy = start_proxy(ProxyConfig {
        upstream: Some(upstream),
        ..config_for(&allowed, &[(TLS_NAME, LOOPBACK)])
    });
    let (ok, body, err) = curl_via(proxy.addr, &origin);
    assert!(ok, "{err}");
    assert_eq!(body, "hello through");
}

#[test]
fn plain_http_keep_alive_through_squid() {
    let (port, _origin) = start_plain_origin();
    let squid = squid::start_squid(Some((USER, PASSWORD)), &[PLAIN_NAME]);
    let allowed = [format!("{PLAIN_NAME}:{port}")];
    let proxy = start_proxy(ProxyConfig {
        upstream: Some(via(squid.port, Some(PASSWORD))),
        ..config_for(&allowed, &[])
    });
    let url = |p: &str| format!("http://{PLAIN_NAME}:{port}{p}");
    let (ok, out, err) = curl(&[
        "--proxy",
        &format!("http://agent:client-secret@{}", proxy.addr),
        "--proxy-basic",
        "-w",
        " connects=%{num_connects}\n",
        &url("/one"),
        &url("/two"),
    ]);
    assert!(ok, "{err}");
    // squid got our credentials (it answered), the origin none of them.
    assert_eq!(
        out,
        "GET /one HTTP/1.1\nproxy-authorization forwarded: false connects=1\n\
         GET /two HTTP/1.1\nproxy-authorization forwarded: false connects=0\n"
    );
    let snap = proxy.stats.snapshot(Instant::now());
    assert_eq!((snap.connections, snap.requests), (1, 2), "{snap:?}");
    // With the wrong password, squid's 407 is an upstream refusal: 502.
    let proxy = start_proxy(ProxyConfig {
        upstream: Some(via(squid.port, Some("wrong-password"))),
        ..config_for(&allowed, &[])
    });
    let answer = raw_exchange(
        proxy.addr,
        format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", url("/one")).as_bytes(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway") && answer.contains("407"),
        "{answer}"
    );
    assert!(!answer.contains("wrong-password"), "{answer}");
}
