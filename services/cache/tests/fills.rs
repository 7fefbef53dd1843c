//! Collapsed misses, read-while-write and failed fills, with real clients.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pattern, Mode, Resource, World};

fn write(w: &World, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = w.dir.path().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// SHA-256 of files, by coreutils (the test binary is not optimised).
fn sha256sum<P: AsRef<std::path::Path>>(files: &[P]) -> Vec<String> {
    let out = Command::new("sha256sum")
        .args(files.iter().map(|f| f.as_ref()))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect()
}

/// Kills the curls still running when the test ends, whatever happens.
struct Clients(Vec<std::process::Child>);

impl Drop for Clients {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Plain HTTP so the figure is the cache's own work: TLS in a debug build
/// would take most of the test's time (the HTTPS path shares every line
/// of the store with it and is covered by the other tests).
#[test]
fn fifty_clients_on_one_cold_object_make_one_origin_request() {
    const LEN: usize = 50 << 20;
    let mut w = World::new();
    w.start_cache(r#", "memory_bytes": 268435456"#);
    let body = pattern(LEN, 7);
    let want = sha256sum(&[&write(&w, "origin-copy", &body)])[0].clone();
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut r = Resource::ok(body, &[("Cache-Control", "max-age=3600")]);
    // The origin sends 1 MiB, then holds the rest until the test says.
    r.mode = Mode::Gate(1 << 20, gate.clone());
    w.origin.set("/big.iso", r);
    let files: Vec<_> = (0..50)
        .map(|i| w.dir.path().join(format!("client-{i}")))
        .collect();
    let mut clients = start_clients(&w, &files, "/big.iso");
    // Every client has its first bytes while the fill is still held back.
    wait_for_first_bytes(&files);
    assert_eq!(w.origin.hits("/big.iso"), 1);
    gate.notify_one();
    for c in &mut clients.0 {
        assert!(c.wait().unwrap().success());
    }
    // Byte-equal to the origin's copy is SHA-256-equal; cmp is what keeps
    // fifty comparisons of 50 MB short.
    let origin_copy = w.dir.path().join("origin-copy");
    for f in &files {
        let same = Command::new("cmp")
            .arg("-s")
            .arg(&origin_copy)
            .arg(f)
            .status()
            .unwrap();
        assert!(
            same.success(),
            "{} differs from the origin's body",
            f.display()
        );
    }
    assert_eq!(sha256sum(&[&files[0]])[0], want);
    assert_eq!(w.origin.hits("/big.iso"), 1);
    let stats = w.stats();
    assert_eq!(stats["bytes_from_origin"], LEN as u64, "{stats}");
    // Requests that found the object filling count as hits, those that
    // waited for its head as collapsed.
    let served: u64 = ["hits", "collapsed", "misses"]
        .iter()
        .map(|k| stats[*k].as_u64().unwrap())
        .sum();
    assert_eq!(served, 50, "{stats}");
}

#[test]
fn an_origin_dying_mid_body_stores_nothing() {
    let mut w = World::new();
    w.start_cache("");
    let body = pattern(1_000_000, 9);
    let mut r = Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]);
    r.mode = Mode::DieAfter(100_000);
    w.origin.set("/cut.bin", r);
    let cut = w.curl(&w.https_url("/cut.bin"), &[]);
    assert!(!cut.ok, "curl sees the transfer cut short");
    assert!(cut.body.len() < body.len());
    assert_eq!(w.stats()["memory_objects"], 0);
    w.origin.set(
        "/cut.bin",
        Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]),
    );
    let again = w.curl(&w.https_url("/cut.bin"), &[]);
    assert_eq!(
        (again.ok, again.header("x-cache")),
        (true, Some("MISS")),
        "{}",
        again.stderr
    );
    assert_eq!(again.body, body);
    assert_eq!(w.origin.hits("/cut.bin"), 2);
    assert_eq!(
        w.curl(&w.https_url("/cut.bin"), &[]).header("x-cache"),
        Some("HIT")
    );
}

/// An origin that says its body is 9,000,000,000,000,000,000 bytes and
/// sends one: the client gets that byte and a cut transfer, nothing is
/// stored, and the cache goes on serving (it aborted, reserving a segment
/// list for the length the origin stated).
#[test]
fn an_origin_claiming_an_absurd_length_is_served_without_harm() {
    let mut w = World::new();
    w.start_cache("");
    let mut r = Resource::ok(vec![b'x'], &[("Cache-Control", "max-age=3600")]);
    // (9,999,999,999,999,999,999 itself is past what curl reads as a
    // length; the unit test in object.rs takes it.)
    r.mode = Mode::ClaimsLength(9_000_000_000_000_000_000);
    w.origin.set("/huge.bin", r);
    let huge = w.curl(&w.https_url("/huge.bin"), &[]);
    assert!(
        !huge.ok,
        "curl sees the transfer cut short: {:?} {:?} {}",
        huge.body, huge.headers, huge.stderr
    );
    assert!(huge.body.len() <= 1, "{:?}", huge.body);
    w.origin.set(
        "/small.bin",
        Resource::ok(pattern(1000, 3), &[("Cache-Control", "max-age=3600")]),
    );
    let small = w.curl(&w.https_url("/small.bin"), &[]);
    assert!(small.ok, "the cache still serves: {}", small.stderr);
    assert_eq!(small.body, pattern(1000, 3));
    assert_eq!(w.stats()["memory_objects"], 1);
}

#[test]
fn the_fill_goes_on_when_the_first_client_leaves() {
    let mut w = World::new();
    w.start_cache("");
    let body = pattern(2_000_000, 11);
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut r = Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]);
    r.mode = Mode::Gate(10_000, gate.clone());
    w.origin.set("/leave.bin", r);
    // The first client gives up after a second, with the fill held back.
    let gone = w.curl(&w.https_url("/leave.bin"), &["--max-time", "1"]);
    assert!(!gone.ok);
    gate.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.stats()["bytes_from_origin"] != 2_000_000 {
        assert!(Instant::now() < deadline, "the fill did not complete");
        std::thread::sleep(Duration::from_millis(20));
    }
    let next = w.curl(&w.https_url("/leave.bin"), &[]);
    assert_eq!(
        (next.header("x-cache"), next.body == body),
        (Some("HIT"), true)
    );
    assert_eq!(w.origin.hits("/leave.bin"), 1);
}

/// One curl per file, all at once, fetching `path` (plain HTTP) through
/// the cache into it.
fn start_clients(w: &World, files: &[std::path::PathBuf], path: &str) -> Clients {
    let proxy = format!("http://{}", w.cache_addr());
    let mut clients = Clients(Vec::new());
    for f in files {
        let child = Command::new("curl")
            .args(["-sS", "--max-time", "60", "--proxy", &proxy, "-o"])
            .arg(f)
            .arg(w.http_url(path))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        clients.0.push(child);
    }
    clients
}

/// Waits (30 s at most) until every client's file has bytes.
fn wait_for_first_bytes(files: &[std::path::PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let started = files
            .iter()
            .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
            .count();
        if started == files.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{started} of {} clients got bytes before the fill ended",
            files.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` curls for `path` (plain HTTP) at once, against an origin holding
/// its body back at a gate: every client has its first bytes before the
/// gate opens (read-while-write, one origin request so far), then all
/// finish with the origin's body, byte for byte.
fn collapsed_clients(
    w: &World,
    path: &str,
    n: usize,
    gate: &tokio::sync::Notify,
    body: &[u8],
) -> Vec<std::path::PathBuf> {
    let origin_copy = write(w, &format!("origin-copy{}", path.replace('/', "-")), body);
    let files: Vec<_> = (0..n)
        .map(|i| {
            w.dir
                .path()
                .join(format!("client{}-{i}", path.replace('/', "-")))
        })
        .collect();
    let mut clients = start_clients(w, &files, path);
    wait_for_first_bytes(&files);
    assert_eq!(w.origin.hits(path), 1, "one origin request while held");
    gate.notify_one();
    for c in &mut clients.0 {
        assert!(c.wait().unwrap().success(), "a client's transfer failed");
    }
    let want = sha256sum(&[&origin_copy])[0].clone();
    for (f, got) in files.iter().zip(sha256sum(&files)) {
        assert_eq!(got, want, "{} differs from the origin's body", f.display());
    }
    assert_eq!(w.origin.hits(path), 1);
    files
}

#[test]
fn a_chunked_object_is_collapsed_and_stored() {
    let mut w = World::new();
    w.start_cache("");
    let body = pattern(3_000_000, 13);
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut r = Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]);
    r.mode = Mode::Chunked(Some((100_000, gate.clone())));
    w.origin.set("/chunked.bin", r);
    collapsed_clients(&w, "/chunked.bin", 20, &gate, &body);
    let stats = w.stats();
    assert_eq!(stats["memory_objects"], 1, "{stats}");
    assert_eq!(stats["transient_fills"], 0, "{stats}");
    // Stored whole: the next request is a hit, with its length now known.
    let next = w.curl(&w.http_url("/chunked.bin"), &[]);
    assert_eq!(next.header("x-cache"), Some("HIT"), "{}", next.stderr);
    assert_eq!(next.header("content-length"), Some("3000000"));
    assert!(next.body == body, "the stored body differs");
    assert_eq!(w.origin.hits("/chunked.bin"), 1);
}

#[test]
fn a_chunked_object_cut_short_is_never_stored() {
    let mut w = World::new();
    w.start_cache("");
    let body = pattern(500_000, 17);
    let mut r = Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]);
    r.mode = Mode::ChunkedDieAfter(200_000);
    w.origin.set("/cut-chunked.bin", r);
    let cut = w.curl(&w.http_url("/cut-chunked.bin"), &[]);
    // Relayed chunked, without the last chunk: curl knows it is short.
    assert!(!cut.ok, "curl sees the transfer cut short");
    assert_eq!(cut.header("transfer-encoding"), Some("chunked"));
    assert!(cut.body.len() < body.len() && body.starts_with(&cut.body));
    assert_eq!(w.stats()["memory_objects"], 0);
    let mut r = Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]);
    r.mode = Mode::Chunked(None);
    w.origin.set("/cut-chunked.bin", r);
    let whole = w.curl(&w.http_url("/cut-chunked.bin"), &[]);
    assert_eq!(whole.header("x-cache"), Some("MISS"), "{}", whole.stderr);
    assert!(whole.ok && whole.body == body);
    let hit = w.curl(&w.http_url("/cut-chunked.bin"), &[]);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert!(hit.body == body);
    assert_eq!(w.origin.hits("/cut-chunked.bin"), 2);
}

#[test]
fn a_chunked_object_that_outgrows_memory_is_shared_not_stored() {
    let mut w = World::new();
    // 4 MiB of memory, no disk: up to 2 MiB stored; the window is 1 MiB.
    w.start_cache(r#", "memory_bytes": 4194304"#);
    let body = pattern(12 << 20, 19);
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut r = Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]);
    r.mode = Mode::Chunked(Some((100_000, gate.clone())));
    w.origin.set("/grows.bin", r);
    // Joined while it was stored; it stops being stored under them.
    collapsed_clients(&w, "/grows.bin", 20, &gate, &body);
    let stats = w.stats();
    assert_eq!(stats["memory_objects"], 0, "{stats}");
    assert_eq!(stats["memory_bytes"], 0, "{stats}");
    assert_eq!(stats["transient_fills"], 1, "{stats}");
    assert_eq!(stats["readers_detached"], 0, "{stats}");
    assert_eq!(stats["bytes_from_origin"], body.len() as u64, "{stats}");
    let mut r = Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]);
    r.mode = Mode::Chunked(None);
    w.origin.set("/grows.bin", r);
    let again = w.curl(&w.http_url("/grows.bin"), &[]);
    assert_eq!(again.header("x-cache"), Some("MISS"), "{}", again.stderr);
    assert!(again.body == body);
    assert_eq!(w.origin.hits("/grows.bin"), 2);
}

#[test]
fn an_object_too_large_to_store_is_still_fetched_once_within_a_window() {
    const LEN: usize = 24 << 20;
    let mut w = World::new();
    // 16 MiB of memory, no disk: objects over 8 MiB are not stored, and a
    // fill that is not stored holds at most 4 MiB behind its readers.
    w.start_cache(r#", "memory_bytes": 16777216"#);
    let body = pattern(LEN, 23);
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut r = Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]);
    r.mode = Mode::Gate(1 << 20, gate.clone());
    w.origin.set("/installer.iso", r);
    collapsed_clients(&w, "/installer.iso", 20, &gate, &body);
    let stats = w.stats();
    let window = stats["transient_window_bytes"].as_u64().unwrap();
    let peak = stats["transient_peak_bytes"].as_u64().unwrap();
    assert_eq!(window, 4 << 20, "{stats}");
    // Bytes were held and released: never more than the window at once,
    // for an object six windows long.
    assert!(peak > 0 && peak <= window, "{stats}");
    assert_eq!(stats["transient_fills"], 1, "{stats}");
    assert_eq!(stats["readers_detached"], 0, "{stats}");
    assert_eq!(stats["memory_objects"], 0, "{stats}");
    assert_eq!(stats["bytes_from_origin"], LEN as u64, "{stats}");
    let served: u64 = ["hits", "collapsed", "misses"]
        .iter()
        .map(|k| stats[*k].as_u64().unwrap())
        .sum();
    assert_eq!(served, 20, "{stats}");
    // Never stored: the next request fetches again.
    w.origin.set(
        "/installer.iso",
        Resource::ok(body, &[("Cache-Control", "max-age=3600")]),
    );
    let again = w.curl(&w.http_url("/installer.iso"), &[]);
    assert_eq!(again.header("x-cache"), Some("MISS"), "{}", again.stderr);
    assert_eq!(again.body.len(), LEN);
    assert_eq!(w.origin.hits("/installer.iso"), 2);
}

#[test]
fn concurrent_misses_answered_with_an_error_make_one_origin_request() {
    let mut w = World::new();
    w.start_cache("");
    let mut r = Resource::ok(b"try again later".to_vec(), &[("Retry-After", "5")]);
    r.status = 503;
    r.mode = Mode::SlowHead(Duration::from_millis(1500));
    w.origin.set("/busy", r);
    let answers: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| s.spawn(|| w.curl(&w.http_url("/busy"), &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for a in &answers {
        assert_eq!(
            (a.status, a.body.as_slice(), a.header("retry-after")),
            (503, &b"try again later"[..], Some("5")),
            "{}",
            a.stderr
        );
    }
    assert_eq!(w.origin.hits("/busy"), 1);
    // Shared while it came, never stored.
    assert_eq!(w.curl(&w.http_url("/busy"), &[]).status, 503);
    assert_eq!(w.origin.hits("/busy"), 2);
    assert_eq!(w.stats()["memory_objects"], 0);
}

/// A plain-HTTP request through the cache that reads the answer's head and
/// first body bytes, then leaves (the connection is dropped).
fn fetch_first_bytes_and_leave(w: &World, path: &str) {
    use std::io::{Read, Write};
    let url = w.http_url(path);
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut s = std::net::TcpStream::connect(w.cache_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .is_none_or(|end| got.len() <= end + 4)
    {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before the body: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn twenty_misses_whose_clients_leave_stay_within_the_memory_budget() {
    const LEN: usize = 5 << 20;
    const BUDGET: u64 = 32 << 20;
    let mut w = World::new();
    w.start_cache(&format!(r#", "memory_bytes": {BUDGET}"#));
    // Twenty distinct 5 MiB objects, each storable in memory on its own
    // (up to half the budget), which the origin sends 1 MiB of and then
    // holds: twenty fills under way at once, 100 MiB if all were stored.
    let gate = Arc::new(tokio::sync::Notify::new());
    for i in 0..20 {
        let mut r = Resource::ok(pattern(LEN, i), &[("Cache-Control", "max-age=3600")]);
        r.mode = Mode::Gate(1 << 20, gate.clone());
        w.origin.set(&format!("/f{i}"), r);
    }
    w.origin.set(
        "/small",
        Resource::ok(b"small".to_vec(), &[("Cache-Control", "max-age=3600")]),
    );
    for i in 0..20 {
        fetch_first_bytes_and_leave(&w, &format!("/f{i}"));
    }
    assert_eq!(w.origin.count.load(std::sync::atomic::Ordering::SeqCst), 20);
    // The fills admitted hold what the budget allows, not their clients'
    // worth: the memory tier counts every object it stores, filling ones
    // included.
    let stats = w.stats();
    let memory = stats["memory_bytes"].as_u64().unwrap();
    assert!(
        memory <= BUDGET,
        "the memory tier holds {memory} bytes, over its budget of {BUDGET}: {stats}"
    );
    assert!(stats["memory_objects"].as_u64().unwrap() >= 1, "{stats}");
    // Meanwhile the cache answers its health check and serves others.
    let health = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{}/health", w.cache_addr()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "ok");
    let r = w.curl(&w.http_url("/small"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"small"[..]),
        "{}",
        r.stderr
    );
    gate.notify_waiters();
    // The admitted fills complete and are served from the cache; the
    // others were their clients' own and ended with them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = w.stats();
        let memory = stats["memory_bytes"].as_u64().unwrap();
        assert!(memory <= BUDGET, "{stats}");
        let complete = (0..20).any(|i| {
            let r = w.curl(&w.http_url(&format!("/f{i}")), &["--max-time", "2"]);
            r.header("x-cache") == Some("HIT") && r.body.len() == LEN
        });
        if complete {
            break;
        }
        assert!(Instant::now() < deadline, "no fill completed: {stats}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
