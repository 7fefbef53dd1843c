//! The proxy seen by real clients: curl through it to a TLS server on
//! loopback (certificate verified end to end), plain HTTP, and raw sockets
//! for the refusals. Test names resolve only through the proxy's hosts map,
//! and refused names are refused before any lookup: nothing leaves loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gateway_forward_proxy::config::ProxyConfig;
use gateway_forward_proxy::policy::{AllowedDomains, Mode, Policy};

mod common;
use common::*;

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

/// An origin that answers each request with the `Host` fields it received,
/// one per line: its port and how many requests it has read.
fn host_echo_origin() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = origin.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for mut s in origin.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
                head.push(byte[0]);
            }
            let hosts: String = String::from_utf8_lossy(&head)
                .lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
                .map(|l| format!("{l}\n"))
                .collect();
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{hosts}",
                    hosts.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, requests)
}

#[test]
fn the_origin_gets_the_urls_authority_as_host_and_two_hosts_are_refused() {
    let (port, requests) = host_echo_origin();
    let proxy = start_proxy(config_for(
        &[format!("{PLAIN_NAME}:{port}")],
        &[(PLAIN_NAME, LOOPBACK)],
    ));
    // The client names an allowed host in the URL and another in Host: the
    // origin must see only the URL's (RFC 9112 3.2.2).
    let (ok, body, err) = curl(&[
        "--proxy",
        &proxy.addr.to_string(),
        "-H",
        "Host: metadata.internal",
        &format!("http://{PLAIN_NAME}:{port}/x"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(body, format!("Host: {PLAIN_NAME}:{port}\n"));

    // Two Host fields, equal or not: 400, and nothing reaches the origin.
    for second in [
        format!("{PLAIN_NAME}:{port}"),
        "metadata.internal".to_owned(),
    ] {
        let request = format!(
            "GET http://{PLAIN_NAME}:{port}/x HTTP/1.1\r\nHost: {PLAIN_NAME}:{port}\r\nHost: {second}\r\n\r\n"
        );
        let answer = raw_exchange(proxy.addr, request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("more than one Host"),
            "{answer}"
        );
    }
    let read = || requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(read(), 1, "a refused request reached the origin");
    let (ok, body, err) = curl(&[
        "--proxy",
        &proxy.addr.to_string(),
        &format!("http://{PLAIN_NAME}:{port}/y"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(body, format!("Host: {PLAIN_NAME}:{port}\n"));
    assert_eq!(read(), 2);
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
fn one_host_holding_its_share_of_half_sent_heads_leaves_the_others_served() {
    let proxy = start_proxy(ProxyConfig {
        max_connections_per_client: 50,
        ..config_for(&[], &[])
    });
    // 200 connections from 127.0.0.1, each with half a head and no end:
    // the first 50 are held (until the head timeout), the rest refused at
    // once with a 503 naming the address and the limit.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        s.write_all(b"CONNECT qualys.com:443 HTTP/1.1\r\nX-Half: ")
            .unwrap();
        held.push(s);
    }
    // The refused ones first: their answers are there at once.
    held.reverse();
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        if answer.starts_with("HTTP/1.1 503") {
            assert!(
                answer.contains("too many connections from 127.0.0.1 (limit 50 per client)"),
                "{answer}"
            );
            refused += 1;
        } else {
            // Held: nothing yet, or the head timeout's 408 for the ones
            // read last.
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
                "a held connection got {answer}"
            );
        }
    }
    assert_eq!(refused, 150);
    // Another host (127.0.0.2: the loopback network is all local) is
    // served meanwhile, and the health check answers.
    let other = connect_from("127.0.0.2", proxy.addr);
    let answer = exchange_on(other, b"GET /health HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Once the host lets go, it is admitted again.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let answer = raw_exchange(proxy.addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A connection to `to` from the local address `from` (port chosen by the
/// system).
fn connect_from(from: &str, to: std::net::SocketAddr) -> TcpStream {
    let from: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    let rt = runtime();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(from).unwrap();
        socket.connect(to).await.unwrap()
    });
    let std = stream.into_std().unwrap();
    std.set_nonblocking(false).unwrap();
    std
}

fn exchange_on(mut s: TcpStream, request: &[u8]) -> String {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
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
        gateway_forward_proxy::policy::default_agent_networks(),
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

#[test]
fn health_and_stats_answer_on_the_proxy_port() {
    let proxy = start_proxy(config_for(&[], &[]));
    let (ok, body, err) = curl(&[&format!("http://{}/health", proxy.addr)]);
    assert!(ok, "{err}");
    assert_eq!(body, "ok\n");
    let _ = raw_exchange(proxy.addr, b"CONNECT example.org:443 HTTP/1.1\r\n\r\n");
    let (ok, body, err) = curl(&[&format!("http://{}/stats", proxy.addr)]);
    assert!(ok, "{err}");
    assert!(body.contains("\"refusals\":{\"destination\":1}"), "{body}");
    assert!(body.contains("\"unique_clients_last_hour\":1"), "{body}");
    let answer = raw_exchange(proxy.addr, b"GET /index.html HTTP/1.1\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("not a proxy request"),
        "{answer}"
    );
}

#[test]
fn a_half_closed_tunnel_still_carries_the_answer() {
    // An origin that answers only once the client has finished sending.
    let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = origin.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = origin.accept() {
            let mut all = Vec::new();
            let _ = s.read_to_end(&mut all);
            let _ = s.write_all(format!("got {} bytes", all.len()).as_bytes());
        }
    });
    let proxy = start_proxy(config_for(
        &[format!("{PLAIN_NAME}:{port}")],
        &[(PLAIN_NAME, LOOPBACK)],
    ));
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("CONNECT {PLAIN_NAME}:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 39];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[..], b"HTTP/1.1 200 Connection established\r\n\r\n");
    s.write_all(&[b'x'; 100_000]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "got 100000 bytes");
}

/// An echo origin on loopback: its port.
fn echo_origin() -> u16 {
    let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = origin.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in origin.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    port
}

fn open_tunnel(proxy: std::net::SocketAddr, port: u16) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("CONNECT {PLAIN_NAME}:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 39];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[..], b"HTTP/1.1 200 Connection established\r\n\r\n");
    s
}

#[test]
fn a_tunnel_is_closed_after_the_idle_timeout_and_kept_while_bytes_move() {
    let port = echo_origin();
    let mut config = config_for(&[format!("{PLAIN_NAME}:{port}")], &[(PLAIN_NAME, LOOPBACK)]);
    config.idle_timeout = Duration::from_millis(800);
    let proxy = start_proxy(config);

    // Busy: a byte each 200 ms for 3 s, four times the timeout.
    let mut busy = open_tunnel(proxy.addr, port);
    for i in 0..15u8 {
        busy.write_all(&[i]).unwrap();
        let mut back = [0u8; 1];
        busy.read_exact(&mut back).unwrap();
        assert_eq!(back[0], i);
        std::thread::sleep(Duration::from_millis(200));
    }

    // Idle: closed by the proxy within the timeout and a little.
    let mut idle = open_tunnel(proxy.addr, port);
    let started = Instant::now();
    let mut rest = Vec::new();
    let n = idle.read_to_end(&mut rest).unwrap();
    let waited = started.elapsed();
    assert_eq!(n, 0);
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
}

#[test]
fn many_small_exchanges_through_one_tunnel_all_arrive() {
    // Each answer drains the socket with a short read: nothing may be left
    // waiting for readiness that was cleared.
    let port = echo_origin();
    let proxy = start_proxy(config_for(
        &[format!("{PLAIN_NAME}:{port}")],
        &[(PLAIN_NAME, LOOPBACK)],
    ));
    let mut s = open_tunnel(proxy.addr, port);
    for i in 0..2000u32 {
        let msg = i.to_le_bytes();
        s.write_all(&msg).unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    // Then a burst of many relay buffers, echoed whole: it fills a read,
    // so the rest goes through the splice path both ways.
    let burst: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = s.try_clone().unwrap();
    let sent = burst.clone();
    let t = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0u8; burst.len()];
    s.read_exact(&mut back).unwrap();
    t.join().unwrap();
    assert!(back == burst);
}
