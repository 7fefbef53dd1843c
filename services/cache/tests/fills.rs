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
    let proxy = format!("http://{}", w.cache_addr());
    let mut clients = Clients(Vec::new());
    for f in &files {
        let child = Command::new("curl")
            .args(["-sS", "--max-time", "60", "--proxy", &proxy, "--cacert"])
            .arg(w.ca_pem())
            .arg("-o")
            .arg(f)
            .arg(w.http_url("/big.iso"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        clients.0.push(child);
    }
    // Every client has its first bytes while the fill is still held back.
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
            "{started} of 50 clients got bytes before the fill ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
