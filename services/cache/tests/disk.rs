//! The disk tier: objects survive a restart, a corrupted body is caught by
//! its SHA-256 and fetched again, never served.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::{object_files, pattern, Resource, World};

/// 16 MiB of memory: objects over 1 MiB go to disk.
fn disk_settings(w: &World) -> String {
    format!(
        r#", "memory_bytes": 16777216, "disk_dir": {:?}, "disk_reserve_bytes": 0, "disk_max_bytes": 104857600"#,
        w.dir.path().join("disk")
    )
}

fn wait_for_meta(w: &World, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while object_files(&w.dir.path().join("disk"), "meta").len() < n {
        assert!(
            Instant::now() < deadline,
            "the object was not committed to disk"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn corrupt(w: &World) {
    let data = object_files(&w.dir.path().join("disk"), "data");
    assert_eq!(data.len(), 1, "{data:?}");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&data[0])
        .unwrap();
    f.write_all_at(b"rot", 1_000_000).unwrap();
}

#[test]
fn the_disk_tier_survives_a_restart_and_catches_corruption() {
    let mut w = World::new();
    let settings = disk_settings(&w);
    w.start_cache(&settings);
    let body = pattern(3_000_000, 21);
    w.origin.set(
        "/win.msu",
        Resource::ok(
            body.clone(),
            &[("Cache-Control", "max-age=3600"), ("ETag", "\"p\"")],
        ),
    );
    assert_eq!(w.curl(&w.https_url("/win.msu"), &[]).body, body);
    wait_for_meta(&w, 1);
    let stats = w.stats();
    assert_eq!(
        (
            stats["disk_objects"].as_u64(),
            stats["memory_objects"].as_u64()
        ),
        (Some(1), Some(0)),
        "{stats}"
    );
    assert_eq!(
        w.curl(&w.https_url("/win.msu"), &[]).header("x-cache"),
        Some("HIT")
    );
    // A stored object holds no file open (thousands of them must not);
    // the response's own descriptor closes as its task ends: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_data_files() > 0 {
        assert!(Instant::now() < deadline, "data files left open");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Damaged while running: caught before it is served, fetched again.
    corrupt(&w);
    let r = w.curl(&w.https_url("/win.msu"), &[]);
    assert_eq!((r.body == body, r.header("x-cache")), (true, Some("MISS")));
    assert_eq!(w.origin.hits("/win.msu"), 2);
    wait_for_meta(&w, 1);

    // A restart: the object is still there, checked and served.
    w.start_cache(&settings);
    let r = w.curl(&w.https_url("/win.msu"), &[]);
    assert_eq!((r.body == body, r.header("x-cache")), (true, Some("HIT")));
    assert_eq!(r.header("etag"), Some("\"p\""));
    assert_eq!(w.origin.hits("/win.msu"), 2);

    // Damaged while stopped: caught after the restart.
    w.stop_cache();
    corrupt(&w);
    w.start_cache(&settings);
    let r = w.curl(&w.https_url("/win.msu"), &[]);
    assert_eq!((r.body == body, r.header("x-cache")), (true, Some("MISS")));
    assert_eq!(w.origin.hits("/win.msu"), 3);
}

#[test]
fn small_objects_stay_in_memory_beside_the_disk_tier() {
    let mut w = World::new();
    let settings = disk_settings(&w);
    w.start_cache(&settings);
    w.origin.set(
        "/small",
        Resource::ok(pattern(10_000, 1), &[("Cache-Control", "max-age=3600")]),
    );
    assert_eq!(w.curl(&w.https_url("/small"), &[]).body.len(), 10_000);
    let stats = w.stats();
    assert_eq!(
        (
            stats["disk_objects"].as_u64(),
            stats["memory_objects"].as_u64()
        ),
        (Some(0), Some(1)),
        "{stats}"
    );
}

/// Data files of the disk tier this process has open.
fn open_data_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| t.extension().is_some_and(|x| x == "data"))
        .count()
}
