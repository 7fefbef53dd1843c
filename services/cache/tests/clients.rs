//! curl through the cache to HTTPS and plain-HTTP origins on loopback:
//! hits, ranges, HEAD, what is not stored, revalidation, splicing, policy.

mod common;

use common::{pattern, Resource, World};

#[test]
fn a_second_fetch_makes_no_origin_request() {
    let mut w = World::new();
    w.start_cache("");
    let body = pattern(300_000, 1);
    w.origin.set(
        "/agent.bin",
        Resource::ok(
            body.clone(),
            &[("Cache-Control", "max-age=3600"), ("ETag", "\"v1\"")],
        ),
    );
    let first = w.curl(&w.https_url("/agent.bin"), &[]);
    assert!(first.ok, "{}", first.stderr);
    assert_eq!((first.status, first.header("x-cache")), (200, Some("MISS")));
    assert_eq!(first.body, body);
    let second = w.curl(&w.https_url("/agent.bin"), &[]);
    assert_eq!(
        (second.status, second.header("x-cache")),
        (200, Some("HIT"))
    );
    assert_eq!(second.body, body);
    assert_eq!(second.header("etag"), Some("\"v1\""));
    assert_eq!(w.origin.hits("/agent.bin"), 1);
    let stats = w.stats();
    assert_eq!(stats["hits"], 1, "{stats}");
    assert_eq!(stats["misses"], 1, "{stats}");
    assert_eq!(stats["bytes_from_cache"], 300_000, "{stats}");
    assert_eq!(stats["bytes_from_origin"], 300_000, "{stats}");
    assert_eq!(stats["memory_objects"], 1, "{stats}");
    assert_eq!(stats["active_agents"], 1, "{stats}");
}

#[test]
fn ranges_from_a_cold_and_a_warm_object() {
    let mut w = World::new();
    w.start_cache("");
    let body = pattern(1_000_000, 2);
    w.origin.set(
        "/patch.cab",
        Resource::ok(body.clone(), &[("Cache-Control", "max-age=3600")]),
    );
    // A range miss: one full fetch, the range answered from it.
    let r = w.curl(&w.https_url("/patch.cab"), &["-r", "100-199"]);
    assert_eq!(r.status, 206, "{}", r.stderr);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/1000000"));
    assert_eq!(r.body, &body[100..200]);
    for (range, slice, cr) in [
        ("999000-", &body[999_000..], "bytes 999000-999999/1000000"),
        ("-10", &body[999_990..], "bytes 999990-999999/1000000"),
        ("0-0", &body[..1], "bytes 0-0/1000000"),
    ] {
        let r = w.curl(&w.https_url("/patch.cab"), &["-r", range]);
        assert_eq!(
            (r.status, r.header("content-range")),
            (206, Some(cr)),
            "{range}"
        );
        assert_eq!(r.body, slice, "{range}");
    }
    let r = w.curl(&w.https_url("/patch.cab"), &["-r", "2000000-"]);
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */1000000"))
    );
    assert_eq!(w.origin.hits("/patch.cab"), 1);
}

#[test]
fn head_is_answered_from_metadata() {
    let mut w = World::new();
    w.start_cache("");
    w.origin.set(
        "/m.json",
        Resource::ok(
            b"{\"v\":1}".to_vec(),
            &[
                ("Cache-Control", "max-age=3600"),
                ("Content-Type", "application/json"),
            ],
        ),
    );
    assert_eq!(w.curl(&w.https_url("/m.json"), &[]).status, 200);
    let h = w.curl(&w.https_url("/m.json"), &["-I"]);
    assert_eq!(h.status, 200, "{}", h.stderr);
    assert_eq!(h.header("content-length"), Some("7"));
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert_eq!(h.header("accept-ranges"), Some("bytes"));
    assert_eq!(w.origin.hits("/m.json"), 1);
}

#[test]
fn what_is_not_shared_goes_to_the_origin_each_time() {
    let mut w = World::new();
    w.start_cache("");
    w.origin.set(
        "/private",
        Resource::ok(
            b"mine".to_vec(),
            &[("Cache-Control", "private, max-age=60")],
        ),
    );
    w.origin.set(
        "/nostore",
        Resource::ok(b"x".to_vec(), &[("Cache-Control", "no-store")]),
    );
    w.origin.set(
        "/auth",
        Resource::ok(b"a".to_vec(), &[("Cache-Control", "max-age=60")]),
    );
    for _ in 0..2 {
        assert_eq!(w.curl(&w.https_url("/missing"), &[]).status, 404);
        assert_eq!(w.curl(&w.https_url("/private"), &[]).body, b"mine");
        assert_eq!(w.curl(&w.https_url("/nostore"), &[]).body, b"x");
        let a = w.curl(
            &w.https_url("/auth"),
            &["-H", "Authorization: Bearer secret"],
        );
        assert_eq!(a.body, b"a");
    }
    for path in ["/missing", "/private", "/nostore", "/auth"] {
        assert_eq!(w.origin.hits(path), 2, "{path}");
    }
    assert_eq!(w.stats()["memory_objects"], 0);
}

#[test]
fn a_changed_origin_file_is_picked_up_after_revalidation() {
    let mut w = World::new();
    w.start_cache("");
    // no-cache: stored, but asked again (conditionally) before every use.
    w.origin.set(
        "/manifest",
        Resource::ok(
            b"version 1".to_vec(),
            &[("Cache-Control", "no-cache"), ("ETag", "\"1\"")],
        ),
    );
    assert_eq!(w.curl(&w.https_url("/manifest"), &[]).body, b"version 1");
    let again = w.curl(&w.https_url("/manifest"), &[]);
    assert_eq!(
        (again.body.as_slice(), again.header("x-cache")),
        (&b"version 1"[..], Some("REVALIDATED"))
    );
    assert!(
        w.origin
            .last_request("/manifest")
            .contains("If-None-Match: \"1\""),
        "{}",
        w.origin.last_request("/manifest")
    );
    w.origin.set(
        "/manifest",
        Resource::ok(
            b"version 2!".to_vec(),
            &[("Cache-Control", "no-cache"), ("ETag", "\"2\"")],
        ),
    );
    let changed = w.curl(&w.https_url("/manifest"), &[]);
    assert_eq!(changed.body, b"version 2!");
    assert_eq!(changed.header("etag"), Some("\"2\""));
    // A client asking for a fresh answer gets the stored one confirmed.
    w.origin.set(
        "/fresh",
        Resource::ok(
            b"f".to_vec(),
            &[("Cache-Control", "max-age=3600"), ("ETag", "\"f\"")],
        ),
    );
    assert_eq!(
        w.curl(&w.https_url("/fresh"), &[]).header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        w.curl(&w.https_url("/fresh"), &[]).header("x-cache"),
        Some("HIT")
    );
    let forced = w.curl(&w.https_url("/fresh"), &["-H", "Cache-Control: no-cache"]);
    assert_eq!(forced.header("x-cache"), Some("REVALIDATED"));
    assert_eq!(w.origin.hits("/fresh"), 2);
    let after = w.curl(&w.https_url("/manifest"), &[]);
    assert_eq!(
        (after.body.as_slice(), after.header("x-cache")),
        (&b"version 2!"[..], Some("REVALIDATED"))
    );
    assert_eq!(w.origin.hits("/manifest"), 4);
}

#[test]
fn plain_http_requests_are_cached_too() {
    let mut w = World::new();
    w.start_cache("");
    w.origin.set(
        "/kb.msu",
        Resource::ok(pattern(50_000, 3), &[("Cache-Control", "max-age=3600")]),
    );
    for _ in 0..3 {
        let r = w.curl(&w.http_url("/kb.msu"), &[]);
        assert_eq!((r.status, r.body.len()), (200, 50_000), "{}", r.stderr);
    }
    assert_eq!(w.origin.hits("/kb.msu"), 1);
}

#[test]
fn posts_pass_through_inside_the_tunnel() {
    let mut w = World::new();
    w.start_cache("");
    w.origin
        .set("/upload", Resource::ok(b"thanks".to_vec(), &[]));
    for _ in 0..2 {
        let r = w.curl(&w.https_url("/upload"), &["--data-binary", "report"]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"thanks"[..]),
            "{}",
            r.stderr
        );
    }
    assert_eq!(w.origin.hits("/upload"), 2);
    assert!(w
        .origin
        .last_request("/upload")
        .starts_with("POST /upload HTTP/1.1"));
}

#[test]
fn destinations_outside_the_policy_are_refused() {
    let mut w = World::new();
    w.start_cache("");
    let r = w.curl(
        &format!("https://{}:{}/x", "not-allowed.example.org", w.tls_port),
        &[],
    );
    assert!(!r.ok);
    assert!(r.stderr.contains("403"), "{}", r.stderr);
    assert_eq!(w.origin.count.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn spliced_domains_are_tunnelled_untouched() {
    let mut w = World::new();
    w.start_cache(&format!(r#", "splice": ["{}"]"#, common::NAME));
    w.origin.set(
        "/pinned",
        Resource::ok(b"pinned".to_vec(), &[("Cache-Control", "max-age=60")]),
    );
    // The appliance CA does not sign what the client sees...
    let r = w.curl(&w.https_url("/pinned"), &[]);
    assert!(!r.ok, "the origin's own certificate is not the appliance's");
    // ...the origin's own certificate does.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--proxy",
            &format!("http://{}", w.cache_addr()),
            "--cacert",
        ])
        .arg(&w.origin_ca)
        .arg(w.https_url("/pinned"))
        .output()
        .unwrap();
    assert_eq!(
        out.stdout,
        b"pinned",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shared_fetch_names_the_keyed_host() {
    let mut w = World::new();
    w.start_cache("");
    w.origin.set(
        "/h",
        Resource::ok(b"h".to_vec(), &[("Cache-Control", "max-age=60")]),
    );
    let r = w.curl(&w.https_url("/h"), &["-H", "Host: elsewhere.example.net"]);
    assert_eq!(r.status, 200, "{}", r.stderr);
    let seen = w.origin.last_request("/h");
    assert!(
        seen.contains(&format!("Host: {}:{}", common::NAME, w.tls_port)),
        "{seen}"
    );
    assert!(!seen.contains("elsewhere"), "{seen}");
}

#[test]
fn a_range_of_an_object_too_large_to_store_is_asked_for_itself() {
    let mut w = World::new();
    // 1 MiB of memory: objects over 512 KiB are not stored.
    w.start_cache(r#", "memory_bytes": 1048576"#);
    w.origin.set(
        "/huge",
        Resource::ok(pattern(600_000, 4), &[("Cache-Control", "max-age=60")]),
    );
    let r = w.curl(&w.https_url("/huge"), &["-r", "10-19"]);
    // The scripted origin ignores Range: the client gets what the origin
    // answered to its own request (the whole), the shared fetch dropped.
    assert_eq!((r.status, r.body.len()), (200, 600_000), "{}", r.stderr);
    assert!(w
        .origin
        .last_request("/huge")
        .contains("Range: bytes=10-19"));
    assert_eq!(w.stats()["memory_objects"], 0);
}

#[test]
fn concurrent_requests_for_a_stale_object_make_one_conditional_request() {
    let mut w = World::new();
    w.start_cache("");
    let headers = [("Cache-Control", "no-cache"), ("ETag", "\"m\"")];
    w.origin
        .set("/m", Resource::ok(b"manifest".to_vec(), &headers));
    assert_eq!(w.curl(&w.https_url("/m"), &[]).body, b"manifest");
    // The origin now takes its time to answer: the requests that arrive
    // meanwhile wait for the one conditional request.
    let mut slow = Resource::ok(b"manifest".to_vec(), &headers);
    slow.mode = common::Mode::SlowHead(std::time::Duration::from_millis(1500));
    w.origin.set("/m", slow);
    let answers: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| s.spawn(|| w.curl(&w.https_url("/m"), &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for a in &answers {
        assert_eq!(
            (a.body.as_slice(), a.header("x-cache")),
            (&b"manifest"[..], Some("REVALIDATED")),
            "{}",
            a.stderr
        );
    }
    assert_eq!(w.origin.hits("/m"), 2);
}

#[test]
fn a_stale_copy_is_served_when_the_origin_is_down_unless_it_must_revalidate() {
    let mut w = World::new();
    w.start_cache("");
    // Fresh for a second, then stale; each with a validator, so the cache
    // revalidates rather than fetches.
    let cases = [
        ("/plain", "max-age=1", true),
        ("/must", "max-age=1, must-revalidate", false),
        ("/proxy", "max-age=1, proxy-revalidate", false),
        ("/shared", "s-maxage=1", false),
        ("/nocache", "no-cache", false),
    ];
    for (path, cc, _) in cases {
        let headers = [("Cache-Control", cc), ("ETag", "\"v1\"")];
        w.origin
            .set(path, Resource::ok(b"stored".to_vec(), &headers));
        let r = w.curl(&w.https_url(path), &[]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"stored"[..]),
            "{path}: {}",
            r.stderr
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // The origin goes down: it takes each request and answers nothing.
    for (path, cc, _) in cases {
        let headers = [("Cache-Control", cc), ("ETag", "\"v1\"")];
        let mut down = Resource::ok(b"stored".to_vec(), &headers);
        down.mode = common::Mode::Hangup;
        w.origin.set(path, down);
    }
    for (path, cc, stale_ok) in cases {
        let r = w.curl(&w.https_url(path), &[]);
        if stale_ok {
            assert_eq!(
                (r.status, r.body.as_slice(), r.header("x-cache")),
                (200, &b"stored"[..], Some("HIT")),
                "{cc}: {}",
                r.stderr
            );
        } else {
            // RFC 9111 section 4.2.4: no stale answer, a 504.
            assert_eq!(r.status, 504, "{cc}: {:?} {}", r.headers, r.stderr);
            assert_ne!(r.body, b"stored", "{cc}");
        }
        // The cache did ask, with its validator.
        assert_eq!(w.origin.hits(path), 2, "{cc}");
        assert!(
            w.origin
                .last_request(path)
                .contains("If-None-Match: \"v1\""),
            "{cc}"
        );
    }
    // The object stays: the origin back, a 304 revalidates it.
    let headers = [
        ("Cache-Control", "max-age=1, must-revalidate"),
        ("ETag", "\"v1\""),
    ];
    w.origin
        .set("/must", Resource::ok(b"stored".to_vec(), &headers));
    let r = w.curl(&w.https_url("/must"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"stored"[..], Some("REVALIDATED")),
        "{}",
        r.stderr
    );
}

/// `GET path` to the cache itself (origin form), as a monitor or the
/// appliance's health check sends it; the status.
fn local_get(w: &World, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://{}{path}", w.cache_addr()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn active_agents_are_allowed_clients_that_use_the_cache() {
    let mut w = World::new();
    w.start_cache("");
    // Health checks and statistics from the appliance are no agent.
    for _ in 0..3 {
        assert_eq!(local_get(&w, "/health"), "200");
        assert_eq!(local_get(&w, "/stats"), "200");
    }
    let stats = w.stats();
    assert_eq!(stats["active_agents"], 0, "{stats}");
    // The proxy's own counters still see every connection.
    assert!(
        stats["proxy"]["connections"].as_u64().unwrap() >= 6,
        "{stats}"
    );
    w.origin.set(
        "/a",
        Resource::ok(b"a".to_vec(), &[("Cache-Control", "max-age=60")]),
    );
    assert_eq!(w.curl(&w.https_url("/a"), &[]).status, 200);
    assert_eq!(w.curl(&w.http_url("/a"), &[]).status, 200);
    assert_eq!(w.stats()["active_agents"], 1);
    // A client the policy refuses (patch mode, outside the agent networks)
    // is no agent either.
    w.start_cache(r#", "patch": true, "agent_networks": ["10.0.0.0/8"]"#);
    let r = w.curl(&w.https_url("/a"), &[]);
    assert!(!r.ok && r.stderr.contains("403"), "{}", r.stderr);
    let svc = &w.cache.as_ref().unwrap().service;
    let now = std::time::Instant::now();
    assert_eq!(svc.stats.snapshot(now).connections, 1);
    assert_eq!(svc.cache_stats.active_agents(now), 0);
}

#[test]
fn requests_with_cookies_are_not_shared() {
    let mut w = World::new();
    w.start_cache("");
    // Cacheable for anyone: only the request's Cookie keeps it personal.
    let cacheable = |body: &[u8]| Resource::ok(body.to_vec(), &[("Cache-Control", "max-age=3600")]);
    w.origin.set("/me", cacheable(b"for a=b"));
    for _ in 0..2 {
        let r = w.curl(&w.https_url("/me"), &["-H", "Cookie: a=b"]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"for a=b"[..]),
            "{}",
            r.stderr
        );
        assert_eq!(r.header("x-cache"), None, "relayed, not from the cache");
    }
    assert_eq!(w.origin.hits("/me"), 2);
    assert!(
        w.origin.last_request("/me").contains("Cookie: a=b"),
        "the cookie reaches the origin: {}",
        w.origin.last_request("/me")
    );
    assert_eq!(w.stats()["memory_objects"], 0, "nothing stored");
    // What the origin answers without the cookie differs: a client without
    // one must get that, not the cookie's answer.
    w.origin.set("/me", cacheable(b"for anyone"));
    let r = w.curl(&w.https_url("/me"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"for anyone"[..], Some("MISS")),
        "{}",
        r.stderr
    );
    assert_eq!(w.origin.hits("/me"), 3);
    assert!(!w.origin.last_request("/me").contains("Cookie"));
    // Stored now; a cookie request still goes to the origin, not to it.
    assert_eq!(
        w.curl(&w.https_url("/me"), &[]).header("x-cache"),
        Some("HIT")
    );
    w.origin.set("/me", cacheable(b"for a=c"));
    let r = w.curl(&w.https_url("/me"), &["-H", "Cookie: a=c"]);
    assert_eq!(r.body, b"for a=c");
    assert_eq!(w.origin.hits("/me"), 4);
}

#[test]
fn a_stale_object_is_revalidated_with_if_modified_since() {
    let mut w = World::new();
    w.start_cache("");
    let v1 = "Sun, 01 Nov 2026 00:00:00 GMT";
    let lm = |body: &[u8], at: &str| {
        // No ETag: Last-Modified is the only validator.
        Resource::ok(
            body.to_vec(),
            &[("Cache-Control", "max-age=1"), ("Last-Modified", at)],
        )
    };
    w.origin.set("/lm", lm(b"version 1", v1));
    let r = w.curl(&w.https_url("/lm"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"version 1"[..], Some("MISS")),
        "{}",
        r.stderr
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Stale: asked with If-Modified-Since, answered 304, served from the
    // stored copy in full.
    let r = w.curl(&w.https_url("/lm"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"version 1"[..], Some("REVALIDATED")),
        "{}",
        r.stderr
    );
    assert_eq!(r.header("last-modified"), Some(v1));
    let asked = w.origin.last_request("/lm");
    assert!(
        asked.contains(&format!("If-Modified-Since: {v1}")),
        "{asked}"
    );
    assert!(!asked.contains("If-None-Match"), "{asked}");
    assert_eq!(w.origin.hits("/lm"), 2);
    // The object changes: a newer Last-Modified, another body.
    let v2 = "Mon, 02 Nov 2026 00:00:00 GMT";
    w.origin.set("/lm", lm(b"version 2!", v2));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = w.curl(&w.https_url("/lm"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"version 2!"[..]),
        "{}",
        r.stderr
    );
    assert_eq!(r.header("last-modified"), Some(v2));
    assert!(w
        .origin
        .last_request("/lm")
        .contains(&format!("If-Modified-Since: {v1}")));
    assert_eq!(w.origin.hits("/lm"), 3);
    // The new one is what is stored now.
    let r = w.curl(&w.https_url("/lm"), &[]);
    assert_eq!(r.body, b"version 2!");
}

#[test]
fn each_accept_encoding_gets_its_own_variant() {
    let mut w = World::new();
    w.start_cache("");
    let variant = |body: &[u8]| {
        Resource::ok(
            body.to_vec(),
            &[
                ("Cache-Control", "max-age=3600"),
                ("Vary", "Accept-Encoding"),
            ],
        )
    };
    // The origin's answer changes between the two first requests, so each
    // client is seen to get the variant fetched for its own value.
    w.origin.set("/v", variant(b"gzip variant"));
    let gzip = ["-H", "Accept-Encoding: gzip"];
    let br = ["-H", "Accept-Encoding: br"];
    let r = w.curl(&w.https_url("/v"), &gzip);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"gzip variant"[..], Some("MISS")),
        "{}",
        r.stderr
    );
    assert!(w
        .origin
        .last_request("/v")
        .contains("Accept-Encoding: gzip"));
    w.origin.set("/v", variant(b"br variant"));
    let r = w.curl(&w.https_url("/v"), &br);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"br variant"[..], Some("MISS")),
        "{}",
        r.stderr
    );
    assert!(w.origin.last_request("/v").contains("Accept-Encoding: br"));
    assert_eq!(w.origin.hits("/v"), 2);
    for _ in 0..2 {
        for (args, body) in [(&gzip, &b"gzip variant"[..]), (&br, b"br variant")] {
            let r = w.curl(&w.https_url("/v"), args);
            assert_eq!(
                (r.status, r.body.as_slice(), r.header("x-cache")),
                (200, body, Some("HIT")),
                "{args:?}: {}",
                r.stderr
            );
        }
    }
    assert_eq!(w.origin.hits("/v"), 2);
    assert_eq!(w.stats()["memory_objects"], 2);
}

#[test]
fn an_origin_certificate_not_trusted_is_a_502_naming_it() {
    let mut w = World::new();
    // The test origin's CA is not configured: only the built-in roots,
    // which do not sign its certificate.
    w.trust_origin_ca = false;
    w.start_cache("");
    w.origin.set(
        "/t",
        Resource::ok(b"untrusted".to_vec(), &[("Cache-Control", "max-age=3600")]),
    );
    for _ in 0..2 {
        let r = w.curl(&w.https_url("/t"), &[]);
        // The client's side verified (the appliance CA), the origin's not.
        assert!(r.ok, "the interception itself succeeds: {}", r.stderr);
        assert_eq!(r.status, 502, "{:?}", r.headers);
        let why = String::from_utf8_lossy(&r.body);
        assert!(why.contains("certificate"), "{why}");
        assert!(why.contains("UnknownIssuer"), "{why}");
        assert_ne!(r.body, b"untrusted");
    }
    // The handshake failed before any request: the origin saw none, and
    // nothing was stored.
    assert_eq!(w.origin.count.load(std::sync::atomic::Ordering::SeqCst), 0);
    let stats = w.stats();
    assert_eq!(stats["memory_objects"], 0, "{stats}");
    assert_eq!(stats["hits"], 0, "{stats}");
}

#[test]
fn spellings_of_one_path_share_one_object() {
    let mut w = World::new();
    w.start_cache("");
    // The origin serves both spellings (RFC 3986: the same resource); a
    // cache keying them apart would ask it twice.
    for path in ["/a/%7euser/x", "/a/~user/x"] {
        w.origin.set(
            path,
            Resource::ok(b"home".to_vec(), &[("Cache-Control", "max-age=3600")]),
        );
    }
    let r = w.curl(&w.https_url("/a/%7euser/x"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"home"[..], Some("MISS")),
        "{}",
        r.stderr
    );
    // The origin is asked with the key's target: the normalised spelling.
    assert_eq!(w.origin.hits("/a/~user/x"), 1);
    assert_eq!(w.origin.hits("/a/%7euser/x"), 0);
    let r = w.curl(&w.https_url("/a/~user/x"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"home"[..], Some("HIT")),
        "{}",
        r.stderr
    );
    assert_eq!(w.origin.count.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(w.stats()["memory_objects"], 1);
}

#[test]
fn the_origin_is_asked_for_the_target_the_object_is_stored_under() {
    let mut w = World::new();
    w.start_cache("");
    // An origin that reads an encoded dot segment literally: what it serves
    // for /x/%2e%2e/f is not /f. Stored under /f's key, that answer would
    // reach everyone asking for /f.
    w.origin.set(
        "/x/%2e%2e/f",
        Resource::ok(b"planted".to_vec(), &[("Cache-Control", "max-age=3600")]),
    );
    w.origin.set(
        "/f",
        Resource::ok(b"genuine".to_vec(), &[("Cache-Control", "max-age=3600")]),
    );
    let r = w.curl(&w.https_url("/x/%2e%2e/f"), &["--path-as-is"]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"genuine"[..]),
        "{}",
        r.stderr
    );
    assert_eq!(w.origin.hits("/x/%2e%2e/f"), 0);
    assert_eq!(w.origin.hits("/f"), 1);
    let r = w.curl(&w.https_url("/f"), &[]);
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-cache")),
        (200, &b"genuine"[..], Some("HIT")),
        "{}",
        r.stderr
    );
    assert_eq!(w.origin.count.load(std::sync::atomic::Ordering::SeqCst), 1);
}
