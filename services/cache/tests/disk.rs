//! The disk tier: objects survive a restart, a corrupted body is caught by
//! its blocks' SHA-256 and fetched again, never served.

mod common;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
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

/// The disk tier's block size (what `gateway_cache::disk::BLOCK` says).
const BLOCK: usize = 1 << 20;

/// The one data file of the disk tier.
fn data_file(w: &World) -> PathBuf {
    let data = object_files(&w.dir.path().join("disk"), "data");
    assert_eq!(data.len(), 1, "{data:?}");
    data[0].clone()
}

/// Flips the byte at `at` of the one data file and puts its modification
/// and access times back as they were: damage no timestamp shows (bit rot,
/// a device returning other bytes).
fn flip_keeping_mtime(w: &World, at: u64) {
    let path = data_file(w);
    let before = std::fs::metadata(&path).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_modified(before.modified().unwrap())
            .set_accessed(before.accessed().unwrap()),
    )
    .unwrap();
    drop(f);
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    assert_eq!(after.len(), before.len());
}

/// Waits until the tier holds one committed object whose body is not
/// `old` (a refetch replaced it); returns its data file.
fn wait_for_new_body(w: &World, old: &PathBuf) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let data = object_files(&w.dir.path().join("disk"), "data");
        let metas = object_files(&w.dir.path().join("disk"), "meta");
        if data.len() == 1 && &data[0] != old && metas.len() == 1 {
            return data[0].clone();
        }
        assert!(Instant::now() < deadline, "no new body: {data:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counter(w: &World, name: &str) -> u64 {
    let stats = w.stats();
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

#[test]
fn a_damaged_block_is_never_served_even_when_the_mtime_is_unchanged() {
    let mut w = World::new();
    let settings = disk_settings(&w);
    w.start_cache(&settings);
    // Three blocks: 0 and 1 whole, 2 partial.
    let body = pattern(3_000_000, 33);
    let url = w.https_url("/kb5034441.cab");
    w.origin.set(
        "/kb5034441.cab",
        Resource::ok(
            body.clone(),
            &[("Cache-Control", "max-age=3600"), ("ETag", "\"k\"")],
        ),
    );
    assert_eq!(w.curl(&url, &[]).body, body);
    wait_for_meta(&w, 1);
    let r = w.curl(&url, &[]);
    assert_eq!((r.body == body, r.header("x-cache")), (true, Some("HIT")));
    assert_eq!(w.origin.hits("/kb5034441.cab"), 1);

    // A byte in the middle of block 1 changes, the file's times do not,
    // while the service runs and after it served the object.
    const AT: u64 = 1_500_000;
    let old = data_file(&w);
    flip_keeping_mtime(&w, AT);
    // A range over the damaged byte: its block is checked before the head
    // goes out, so the damaged copy is dropped and this request is
    // answered from a new fetch, with the origin's bytes.
    let r = w.curl(&url, &["-r", "1499500-1500499"]);
    assert_eq!(r.status, 206, "{}", r.stderr);
    assert!(
        r.body == body[1_499_500..1_500_500],
        "the range is not the origin's bytes ({} bytes)",
        r.body.len()
    );
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert_eq!(w.origin.hits("/kb5034441.cab"), 2);
    assert_eq!(counter(&w, "disk_damaged"), 1);
    assert!(!old.exists(), "the damaged body was not removed");
    let old = wait_for_new_body(&w, &old);
    let r = w.curl(&url, &[]);
    assert_eq!((r.body == body, r.header("x-cache")), (true, Some("HIT")));

    // The same damage in the new copy, found by a full GET once block 0 is
    // out: the response stops short of the damaged block (no wrong byte
    // reaches the client, who sees it cut short), and the copy is dropped.
    flip_keeping_mtime(&w, AT);
    let r = w.curl(&url, &[]);
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert!(!r.ok, "curl took a cut response for whole: {}", r.stderr);
    assert!(
        r.body.len() <= BLOCK && r.body == body[..r.body.len()],
        "{} bytes, not a prefix of the origin's before block 1",
        r.body.len()
    );
    assert_eq!(w.origin.hits("/kb5034441.cab"), 2);
    assert_eq!(counter(&w, "disk_damaged"), 2);
    assert_eq!(counter(&w, "disk_objects"), 0);
    assert!(!old.exists(), "the damaged body was not removed");
    // The next request fetches it again and gets the origin's bytes.
    let r = w.curl(&url, &[]);
    assert_eq!((r.body == body, r.header("x-cache")), (true, Some("MISS")));
    assert_eq!(w.origin.hits("/kb5034441.cab"), 3);
    wait_for_new_body(&w, &old);
    let r = w.curl(&url, &["-r", "1499500-1500499"]);
    assert_eq!(
        (r.body == body[1_499_500..1_500_500], r.header("x-cache")),
        (true, Some("HIT"))
    );
    assert_eq!(w.origin.hits("/kb5034441.cab"), 3);
}

#[test]
fn a_range_near_the_end_of_a_large_object_checks_only_its_blocks() {
    let mut w = World::new();
    let settings = disk_settings(&w);
    w.start_cache(&settings);
    // 41 blocks, the last partial.
    let len = 40 * BLOCK + 12_345;
    let body = pattern(len, 9);
    let url = w.https_url("/large.iso");
    w.origin.set(
        "/large.iso",
        Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]),
    );
    assert!(w.curl(&url, &[]).body == body);
    wait_for_meta(&w, 1);
    let ranged = |w: &World, a: usize, b: usize| {
        let before = counter(w, "disk_blocks_verified");
        let r = w.curl(&url, &["-r", &format!("{a}-{b}")]);
        assert_eq!((r.status, r.header("x-cache")), (206, Some("HIT")));
        assert!(r.body == body[a..=b], "bytes {a}-{b} differ");
        counter(w, "disk_blocks_verified") - before
    };
    // The last 100 bytes: the last block is read and checked, no other.
    assert_eq!(ranged(&w, len - 100, len - 1), 1);
    // Across the boundary of blocks 39 and 40: those two.
    assert_eq!(ranged(&w, 40 * BLOCK - 10, 40 * BLOCK + 9), 2);
    // After a restart too (no whole-file check before the first serve).
    w.start_cache(&settings);
    assert_eq!(ranged(&w, len - 100, len - 1), 1);
    // A whole GET checks every block once.
    let before = counter(&w, "disk_blocks_verified");
    assert!(w.curl(&url, &[]).body == body);
    assert_eq!(counter(&w, "disk_blocks_verified") - before, 41);
    assert_eq!(w.origin.hits("/large.iso"), 1);
}

#[test]
fn an_entry_of_the_older_format_is_dropped_at_start_and_fetched_again() {
    let mut w = World::new();
    let settings = disk_settings(&w);
    w.start_cache(&settings);
    let body = pattern(2_000_000, 5);
    let url = w.https_url("/old.msu");
    w.origin.set(
        "/old.msu",
        Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]),
    );
    assert!(w.curl(&url, &[]).body == body);
    wait_for_meta(&w, 1);
    w.stop_cache();
    // What the previous version wrote: the whole body's SHA-256, no block
    // hashes.
    let meta = object_files(&w.dir.path().join("disk"), "meta").remove(0);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let o = v.as_object_mut().unwrap();
    for field in ["format", "block_size", "blocks", "check"] {
        assert!(o.remove(field).is_some(), "{field}");
    }
    std::fs::write(&meta, serde_json::to_vec(&v).unwrap()).unwrap();
    w.start_cache(&settings);
    assert_eq!(counter(&w, "disk_objects"), 0);
    assert!(object_files(&w.dir.path().join("disk"), "data").is_empty());
    let r = w.curl(&url, &[]);
    assert_eq!((r.body == body, r.header("x-cache")), (true, Some("MISS")));
    assert_eq!(w.origin.hits("/old.msu"), 2);
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

#[test]
fn a_disk_tier_over_a_lowered_budget_evicts_the_least_recently_used_at_start() {
    let mut w = World::new();
    let settings = disk_settings(&w);
    w.start_cache(&settings);
    let disk = w.dir.path().join("disk");
    // Four 2 MB objects (over 1 MiB: on disk), committed one after the
    // other: a is the least recently used, d the most.
    let names = ["/a.cab", "/b.cab", "/c.cab", "/d.cab"];
    let mut files = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let body = pattern(2_000_000, i as u8);
        w.origin.set(
            name,
            Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]),
        );
        assert!(w.curl(&w.https_url(name), &[]).body == body, "{name}");
        wait_for_meta(&w, i + 1);
        let new: Vec<PathBuf> = object_files(&disk, "data")
            .into_iter()
            .filter(|p| !files.contains(p))
            .collect();
        assert_eq!(new.len(), 1, "{name}: {new:?}");
        files.push(new[0].clone());
        // Distinct commit times, whatever the file system's resolution.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(counter(&w, "disk_objects"), 4);
    // Restarted with room for two of them.
    let budget = 5_000_000u64;
    let small = settings.replace("104857600", &budget.to_string());
    assert_ne!(small, settings);
    w.start_cache(&small);
    let stats = w.stats();
    assert_eq!(stats["disk_objects"], 2, "{stats}");
    assert!(stats["disk_bytes"].as_u64().unwrap() <= budget, "{stats}");
    assert_eq!(stats["disk_bytes"], 4_000_000, "{stats}");
    // The two oldest are gone from the disk, with their metadata.
    assert!(!files[0].exists() && !files[1].exists(), "{files:?}");
    assert!(files[2].exists() && files[3].exists(), "{files:?}");
    assert_eq!(object_files(&disk, "data").len(), 2);
    assert_eq!(object_files(&disk, "meta").len(), 2);
    // The kept ones are hits; an evicted one is fetched again.
    for name in &names[2..] {
        let r = w.curl(&w.https_url(name), &[]);
        assert_eq!(
            (r.status, r.header("x-cache")),
            (200, Some("HIT")),
            "{name}"
        );
        assert_eq!(w.origin.hits(name), 1, "{name}");
    }
    let r = w.curl(&w.https_url(names[0]), &[]);
    assert_eq!(
        (r.body == pattern(2_000_000, 0), r.header("x-cache")),
        (true, Some("MISS"))
    );
    assert_eq!(w.origin.hits(names[0]), 2);
}
