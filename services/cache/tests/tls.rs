//! TLS toward clients, with openssl s_client through the cache's CONNECT:
//! 1.0 and 1.1 refused, 1.2 and 1.3 accepted (1.2 refused when the minimum
//! is 1.3), the leaf signed by the appliance CA for the CONNECT host.

mod common;

use std::process::{Command, Stdio};

use common::{Resource, World, NAME};

/// Runs s_client with `version` (e.g. `-tls1_1`) through the cache;
/// returns whether the handshake succeeded and what openssl said.
fn s_client(w: &World, version: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-proxy"])
        .arg(w.cache_addr().to_string())
        .args([
            "-connect",
            &format!("{NAME}:{}", w.tls_port),
            "-servername",
            NAME,
            version,
        ])
        // OpenSSL 3 will not even offer 1.0/1.1 at its default security
        // level: lower it so the refusal is the cache's.
        .args(["-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile"])
        .arg(w.ca_pem())
        .args(["-verify_return_error", "-brief"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn old_tls_versions_are_refused_new_ones_accepted() {
    let mut w = World::new();
    w.start_cache("");
    w.origin.set("/", Resource::ok(b"x".to_vec(), &[]));
    for v in ["-tls1", "-tls1_1"] {
        let (ok, text) = s_client(&w, v);
        assert!(!ok, "{v}: {text}");
        // rustls answers with a protocol_version or handshake_failure alert.
        assert!(
            text.contains("alert protocol version") || text.contains("alert handshake failure"),
            "{v}: {text}"
        );
    }
    for (v, proto) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, text) = s_client(&w, v);
        assert!(ok, "{v}: {text}");
        assert!(text.contains(proto), "{v}: {text}");
        assert!(text.contains("Verification: OK"), "{v}: {text}");
    }
    w.start_cache(r#", "tls_min_version": "1.3""#);
    assert!(!s_client(&w, "-tls1_2").0);
    assert!(s_client(&w, "-tls1_3").0);
}
