//! Upstream chaining with real peers: Debian's squid (basic authentication)
//! as the upstream, and two instances of the proxy nested. Everything on
//! loopback; squid resolves the test name from its own hosts file and has
//! loopback as its only name server.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_proxy::server::ProxyConfig;
use gateway_proxy::upstream::{Credentials, Secret, Upstream};

mod common;
use common::*;

const USER: &str = "gateway";
const PASSWORD: &str = "right-password";

/// squid on a free loopback port, killed when dropped.
struct Squid {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_squid() -> Squid {
    let dir = tempfile::tempdir().unwrap();
    // squid drops to its own user: it must read these files and write its log.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let hash = Command::new("openssl")
        .args(["passwd", "-apr1", PASSWORD])
        .output()
        .unwrap();
    assert!(hash.status.success());
    let passwd = dir.path().join("passwd");
    std::fs::write(
        &passwd,
        format!("{USER}:{}", String::from_utf8_lossy(&hash.stdout)),
    )
    .unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 {TLS_NAME}\n")).unwrap();
    for f in [&passwd, &hosts] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let port = free_port();
    let d = dir.path().display();
    let conf = format!(
        "http_port 127.0.0.1:{port}\n\
         pid_filename none\n\
         cache_log {d}/cache.log\n\
         access_log none\n\
         cache deny all\n\
         cache_mem 8 MB\n\
         coredump_dir {d}\n\
         hosts_file {d}/hosts\n\
         dns_nameservers 127.0.0.1\n\
         shutdown_lifetime 0 seconds\n\
         auth_param basic program /usr/lib/squid/basic_ncsa_auth {d}/passwd\n\
         auth_param basic realm gateway-test\n\
         acl authed proxy_auth REQUIRED\n\
         http_access allow authed\n\
         http_access deny all\n"
    );
    let conf_path = dir.path().join("squid.conf");
    std::fs::write(&conf_path, conf).unwrap();
    std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let child = Command::new("/usr/sbin/squid")
        .arg("-N")
        .arg("-f")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start squid (make deps installs it)");
    let squid = Squid { port, child, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "squid did not listen on {port}: {}",
            std::fs::read_to_string(squid.dir.path().join("cache.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    squid
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
