//! Patch mode (any destination) and upstream chaining through Debian's
//! squid with basic authentication, for intercepted and plain requests.

mod common;

#[path = "../../proxy/tests/common/squid.rs"]
#[allow(dead_code)]
mod squid;

use common::{Resource, World, NAME};

#[test]
fn patch_mode_serves_agent_networks_only() {
    let mut w = World::new();
    // The ports stay those the allowed entries open (the proxy's rule).
    w.start_cache(r#", "patch": true"#);
    w.origin.set(
        "/kb.cab",
        Resource::ok(vec![7; 20_000], &[("Cache-Control", "max-age=60")]),
    );
    for _ in 0..2 {
        let r = w.curl(&w.https_url("/kb.cab"), &[]);
        assert_eq!((r.status, r.body.len()), (200, 20_000), "{}", r.stderr);
    }
    assert_eq!(w.origin.hits("/kb.cab"), 1);
    // A client outside the agent networks is refused.
    w.start_cache(r#", "patch": true, "agent_networks": ["10.0.0.0/8"]"#);
    let r = w.curl(&w.https_url("/kb.cab"), &[]);
    assert!(!r.ok && r.stderr.contains("403"), "{}", r.stderr);
}

#[test]
fn fetches_go_through_the_upstream_proxy() {
    let mut w = World::new();
    let sq = squid::start_squid(Some(("gw", "pw")), &[NAME]);
    let upstream = format!(
        r#", "upstream": {{"host": "127.0.0.1", "port": {}, "user": "gw", "password": "pw"}}"#,
        sq.port
    );
    w.start_cache(&upstream);
    w.origin.set(
        "/via",
        Resource::ok(
            b"through squid".to_vec(),
            &[("Cache-Control", "max-age=60")],
        ),
    );
    for url in [w.https_url("/via"), w.http_url("/via")] {
        for _ in 0..2 {
            let r = w.curl(&url, &[]);
            assert_eq!(r.body, b"through squid", "{url}: {}", r.stderr);
        }
    }
    // One fetch per scheme (two keys), each through squid.
    assert_eq!(w.origin.hits("/via"), 2);
}
