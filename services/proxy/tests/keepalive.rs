//! Plain-HTTP keep-alive and pipelining with real clients: curl reusing one
//! connection for several URLs, and raw sockets writing several requests at
//! once against a scripted origin that records exactly what it received.
//! Everything on loopback; the test name resolves through the hosts map.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gateway_forward_proxy::config::ProxyConfig;

mod common;
use common::*;

/// What the scripted origin received on one connection.
#[derive(Debug)]
struct Received {
    /// Arrival order: taken once the request has been read, before the
    /// answer. (Reports come when the proxy closes, in any order.)
    seq: usize,
    head: String,
    body: Vec<u8>,
    /// Bytes that arrived after the request (there must be none: each
    /// request has its own origin connection).
    extra: Vec<u8>,
}

/// The origin's canned answers, by path.
fn answer(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    match path {
        // Bytes past the length: the proxy must not relay them.
        "/cl" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\n\r\nhelloJUNK".to_vec(),
        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n".to_vec(),
        "/head" if method == "HEAD" => b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec(),
        "/204" => b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_vec(),
        "/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec(),
        "/close" => b"HTTP/1.1 200 OK\r\nX-B: 2\r\n\r\nuntil close".to_vec(),
        "/http10" => b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec(),
        "/continue" => {
            let text = format!("got {} bytes", body.len());
            format!("HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n{text}", text.len()).into_bytes()
        }
        _ => {
            let text = format!("{method} {path} {} bytes", body.len());
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len()).into_bytes()
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An origin that reads one request per connection (the body by its own
/// simple framing: Content-Length, or chunked up to the last chunk and
/// trailers), answers from [`answer`], then records what else arrived
/// until the proxy closed.
fn start_origin() -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve_origin(s, tx));
        }
    });
    (port, rx)
}

static ARRIVALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn serve_origin(mut s: TcpStream, tx: mpsc::Sender<Received>) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut read_more = |s: &mut TcpStream, buf: &mut Vec<u8>| match s.read(&mut chunk) {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    };
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !read_more(&mut s, &mut buf) {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf.split_off(head_end);
    let lower = head.to_ascii_lowercase();
    let (method, path) = {
        let mut words = head.split(' ');
        (
            words.next().unwrap_or_default().to_owned(),
            words.next().unwrap_or_default().to_owned(),
        )
    };
    if path == "/continue" {
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
    }
    if let Some(i) = lower.find("content-length: ") {
        let n: usize = lower[i + 16..]
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        while body.len() < n && read_more(&mut s, &mut body) {}
    } else if lower.contains("transfer-encoding: chunked") {
        while !(find(&body, b"\r\n0\r\n").is_some() && body.ends_with(b"\r\n\r\n"))
            && read_more(&mut s, &mut body)
        {}
    }
    let seq = ARRIVALS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    s.write_all(&answer(&method, &path, &body)).unwrap();
    if path == "/close" {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut extra = Vec::new();
    while read_more(&mut s, &mut extra) {}
    let _ = tx.send(Received {
        seq,
        head,
        body,
        extra,
    });
}

fn proxy_for(port: u16, tweak: impl FnOnce(&mut ProxyConfig)) -> Running {
    let mut config = config_for(&[format!("{PLAIN_NAME}:{port}")], &[(PLAIN_NAME, LOOPBACK)]);
    tweak(&mut config);
    start_proxy(config)
}

fn connect(proxy: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn read_exactly(s: &mut TcpStream, n: usize) -> String {
    let mut out = vec![0u8; n];
    s.read_exact(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Nothing more arrives within `wait`, and the connection is still open.
fn assert_quiet_and_open(s: &mut TcpStream, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("expected an open, quiet connection: {other:?}"),
    }
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
}

fn get(port: u16, path: &str, extra: &str) -> String {
    format!(
        "GET http://{PLAIN_NAME}:{port}{path} HTTP/1.1\r\nHost: {PLAIN_NAME}:{port}\r\n{extra}\r\n"
    )
}

#[test]
fn curl_reuses_one_connection_for_several_urls() {
    let (port, _origin) = start_plain_origin();
    let proxy = proxy_for(port, |_| {});
    let url = |p: &str| format!("http://{PLAIN_NAME}:{port}{p}");
    let (ok, out, err) = curl(&[
        "--proxy",
        &format!("http://{}", proxy.addr),
        "-w",
        " connects=%{num_connects}\n",
        &url("/first"),
        &url("/second?x=1"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "GET /first HTTP/1.1\nproxy-authorization forwarded: false connects=1\n\
         GET /second?x=1 HTTP/1.1\nproxy-authorization forwarded: false connects=0\n"
    );
    let snap = proxy.stats.snapshot(Instant::now());
    assert_eq!((snap.connections, snap.requests), (1, 2), "{snap:?}");
}

#[test]
fn pipelined_get_and_posts_come_back_in_order_with_exact_bodies() {
    let (port, received) = start_origin();
    let proxy = proxy_for(port, |_| {});
    let chunked_body = "4\r\nwiki\r\n5;e=1\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\n";
    let requests = format!(
        "{}\
         POST http://{PLAIN_NAME}:{port}/post-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world\
         POST http://{PLAIN_NAME}:{port}/post-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunked_body}",
        get(port, "/cl", "")
    );
    let mut s = connect(proxy.addr);
    s.write_all(requests.as_bytes()).unwrap();
    let answers = read_all(&mut s);
    let chunked_answer = format!("POST /post-chunked {} bytes", chunked_body.len());
    assert_eq!(
        answers,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\n\r\nhello\
             HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\nPOST /post-cl 11 bytes\
             HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{chunked_answer}",
            chunked_answer.len()
        )
    );
    let mut got: Vec<Received> = (0..3)
        .map(|_| received.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    got.sort_by_key(|r| r.seq);
    assert!(got[0].head.starts_with("GET /cl HTTP/1.1\r\n"), "{got:?}");
    assert!(got[0].body.is_empty() && !got[0].head.contains("Content-Length"));
    assert!(got[1].head.starts_with("POST /post-cl HTTP/1.1\r\n"));
    assert!(got[1].head.contains("\r\nContent-Length: 11\r\n"));
    assert_eq!(got[1].body, b"hello world");
    assert!(got[2].head.starts_with("POST /post-chunked HTTP/1.1\r\n"));
    assert!(got[2].head.contains("\r\nTransfer-Encoding: chunked\r\n"));
    assert_eq!(got[2].body, chunked_body.as_bytes());
    for r in &got {
        assert!(r.extra.is_empty(), "{r:?}");
        assert!(r.head.contains("\r\nConnection: close\r\n"), "{r:?}");
    }
    let snap = proxy.stats.snapshot(Instant::now());
    assert_eq!((snap.connections, snap.requests), (1, 3), "{snap:?}");
}

#[test]
fn response_framings_are_relayed_exactly_and_the_connection_kept_or_closed() {
    let (port, _received) = start_origin();
    let proxy = proxy_for(port, |_| {});
    let mut s = connect(proxy.addr);
    let head_req = format!("HEAD http://{PLAIN_NAME}:{port}/head HTTP/1.1\r\nHost: x\r\n\r\n");
    let pipelined = [
        get(port, "/cl", ""),
        get(port, "/chunked", ""),
        head_req,
        get(port, "/204", ""),
        get(port, "/304", "If-None-Match: \"v1\"\r\n"),
    ]
    .concat();
    s.write_all(pipelined.as_bytes()).unwrap();
    let expected = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\n\r\nhello\
        HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n\
        HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n\
        HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n";
    assert_eq!(read_exactly(&mut s, expected.len()), expected);
    // All framed: the connection stays open for more.
    assert_quiet_and_open(&mut s, Duration::from_millis(300));
    // Close-delimited: relayed to the end, then the client connection closes;
    // the request pipelined after it is not served.
    s.write_all(
        [get(port, "/close", ""), get(port, "/cl", "")]
            .concat()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        read_all(&mut s),
        "HTTP/1.1 200 OK\r\nX-B: 2\r\nConnection: close\r\n\r\nuntil close"
    );
}

#[test]
fn http10_clients_keep_the_connection_only_when_they_ask() {
    let (port, _received) = start_origin();
    let proxy = proxy_for(port, |_| {});
    let req10 =
        |extra: &str| format!("GET http://{PLAIN_NAME}:{port}/http10 HTTP/1.0\r\n{extra}\r\n");
    let mut s = connect(proxy.addr);
    s.write_all(req10("Connection: keep-alive\r\n").as_bytes())
        .unwrap();
    let kept = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
    assert_eq!(read_exactly(&mut s, kept.len()), kept);
    // The origin's own `Connection: close` concerns its connection only.
    s.write_all(req10("").as_bytes()).unwrap();
    assert_eq!(
        read_all(&mut s),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    // HTTP/1.1 with `Connection: close`: the same.
    let answer = raw_exchange(
        proxy.addr,
        get(port, "/cl", "Connection: close\r\n").as_bytes(),
    );
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\nConnection: close\r\n\r\nhello"
    );
}

#[test]
fn a_chunked_response_reaches_an_http10_client_decoded() {
    let (port, _received) = start_origin();
    let proxy = proxy_for(port, |_| {});
    let answer = raw_exchange(
        proxy.addr,
        format!(
            "GET http://{PLAIN_NAME}:{port}/chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nConnection: close\r\n\r\nhello world"
    );
}

#[test]
fn smuggling_defences_refuse_before_the_origin_sees_anything() {
    let (port, received) = start_origin();
    let proxy = proxy_for(port, |_| {});
    let post = |framing: &str, version: &str| {
        format!(
            "POST http://{PLAIN_NAME}:{port}/x HTTP/{version}\r\nHost: x\r\n{framing}\r\n5\r\nhello\r\n0\r\n\r\n{}",
            get(port, "/cl", "")
        )
    };
    for (framing, version, status) in [
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "1.1",
            "400 Bad Request",
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "1.1",
            "400 Bad Request",
        ),
        ("Content-Length: abc\r\n", "1.1", "400 Bad Request"),
        ("Content-Length: -5\r\n", "1.1", "400 Bad Request"),
        ("Content-Length: 5, 6\r\n", "1.1", "400 Bad Request"),
        (
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "1.1",
            "400 Bad Request",
        ),
        (
            "Transfer-Encoding: chunked, chunked\r\n",
            "1.1",
            "400 Bad Request",
        ),
        ("Transfer-Encoding: chunked\r\n", "1.0", "400 Bad Request"),
        ("Transfer-Encoding: gzip\r\n", "1.1", "501 Not Implemented"),
        (
            "Transfer-Encoding: gzip, chunked\r\n",
            "1.1",
            "501 Not Implemented",
        ),
    ] {
        let answer = raw_exchange(proxy.addr, post(framing, version).as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{framing:?}: {answer}"
        );
        // One answer, then the connection closes: the request after it is
        // not served.
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        assert!(answer.contains("Connection: close"), "{answer}");
    }
    // A malformed chunked body: the head went on, the body stops at the
    // error and the client gets 400.
    let bad_chunk = format!(
        "POST http://{PLAIN_NAME}:{port}/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(proxy.addr, bad_chunk.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("chunk"),
        "{answer}"
    );
    let origin_saw: Vec<Received> = received.try_iter().collect();
    assert!(
        origin_saw.len() <= 1 && origin_saw.iter().all(|r| r.body.is_empty()),
        "{origin_saw:?}"
    );
}

#[test]
fn expect_100_continue_is_relayed_while_the_body_waits() {
    let (port, received) = start_origin();
    let proxy = proxy_for(port, |_| {});
    let mut s = connect(proxy.addr);
    s.write_all(
        format!(
            "POST http://{PLAIN_NAME}:{port}/continue HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let interim = "HTTP/1.1 100 Continue\r\n\r\n";
    assert_eq!(read_exactly(&mut s, interim.len()), interim);
    s.write_all(b"data").unwrap();
    let fin = "HTTP/1.1 201 Created\r\nContent-Length: 11\r\n\r\ngot 4 bytes";
    assert_eq!(read_exactly(&mut s, fin.len()), fin);
    assert_eq!(
        received.recv_timeout(Duration::from_secs(10)).unwrap().body,
        b"data"
    );
    assert_quiet_and_open(&mut s, Duration::from_millis(200));
}

#[test]
fn connect_after_plain_requests_on_the_same_connection() {
    let (port, _received) = start_origin();
    // An echo server as the tunnel's far end.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = echo.accept() {
            let mut b = [0u8; 1024];
            while let Ok(n) = s.read(&mut b) {
                if n == 0 || s.write_all(&b[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let proxy = start_proxy(config_for(
        &[
            format!("{PLAIN_NAME}:{port}"),
            format!("{PLAIN_NAME}:{echo_port}"),
        ],
        &[(PLAIN_NAME, LOOPBACK)],
    ));
    let mut s = connect(proxy.addr);
    let connect_req = format!("CONNECT {PLAIN_NAME}:{echo_port} HTTP/1.1\r\n\r\nping");
    s.write_all([get(port, "/cl", ""), connect_req].concat().as_bytes())
        .unwrap();
    let expected = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\n\r\nhello\
        HTTP/1.1 200 Connection established\r\n\r\nping";
    assert_eq!(read_exactly(&mut s, expected.len()), expected);
    s.write_all(b"pong").unwrap();
    assert_eq!(read_exactly(&mut s, 4), "pong");
}

#[test]
fn an_idle_keepalive_connection_is_closed_after_the_idle_timeout() {
    let (port, _received) = start_origin();
    let proxy = proxy_for(port, |c| c.idle_timeout = Duration::from_secs(1));
    let mut s = connect(proxy.addr);
    s.write_all(get(port, "/cl", "").as_bytes()).unwrap();
    let first = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\n\r\nhello";
    assert_eq!(read_exactly(&mut s, first.len()), first);
    let idle_from = Instant::now();
    // Closed without a word: no 408 on an idle connection.
    assert_eq!(read_all(&mut s), "");
    let waited = idle_from.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
}

#[test]
fn a_slow_second_request_head_gets_408() {
    let (port, _received) = start_origin();
    let proxy = proxy_for(port, |c| {
        c.head_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(30);
    });
    let mut s = connect(proxy.addr);
    s.write_all(get(port, "/cl", "").as_bytes()).unwrap();
    let first = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\n\r\nhello";
    assert_eq!(read_exactly(&mut s, first.len()), first);
    let started = Instant::now();
    s.write_all(b"GET http://plain.qua").unwrap();
    let answer = read_all(&mut s);
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn every_request_is_checked_against_the_policy() {
    let (port, received) = start_origin();
    let proxy = proxy_for(port, |_| {});
    let mut s = connect(proxy.addr);
    let refused = format!("GET http://example.org:{port}/ HTTP/1.1\r\nHost: example.org\r\n\r\n");
    s.write_all([get(port, "/cl", ""), refused].concat().as_bytes())
        .unwrap();
    let answer = read_all(&mut s);
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\n\r\nhelloHTTP/1.1 403 Forbidden\r\n")
            && answer.contains("example.org"),
        "{answer}"
    );
    assert_eq!(
        received
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .head
            .lines()
            .next(),
        Some("GET /cl HTTP/1.1")
    );
    assert!(received.recv_timeout(Duration::from_millis(300)).is_err());
    assert_eq!(
        proxy
            .stats
            .snapshot(Instant::now())
            .refusals
            .get("destination"),
        Some(&1)
    );
}

#[test]
fn a_client_that_half_closes_after_its_requests_gets_every_answer() {
    let (port, _received) = start_origin();
    let proxy = proxy_for(port, |_| {});
    let mut s = connect(proxy.addr);
    s.write_all(
        [get(port, "/cl", ""), get(port, "/chunked", "")]
            .concat()
            .as_bytes(),
    )
    .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let answers = read_all(&mut s);
    assert!(
        answers.starts_with(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Path: cl\r\n\r\nhelloHTTP/1.1 200 OK\r\n"
        ) && answers.ends_with("0\r\nX-Sum: 11\r\n\r\n"),
        "{answers}"
    );
}
