//! `gateway-cache ca install|export|fingerprint`, as the control API will
//! run them, checked with openssl.

use std::process::Command;

fn cache(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-cache"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn export_and_fingerprint_match_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("ca");
    let d = d.to_str().unwrap();
    let (ok, pem, err) = cache(&["ca", "export", "--dir", d]);
    assert!(ok, "{err}");
    let pem_path = dir.path().join("exported.pem");
    std::fs::write(&pem_path, &pem).unwrap();
    let (ok, fp, _) = cache(&["ca", "fingerprint", "--dir", d]);
    assert!(ok);
    let theirs = openssl(&[
        "x509",
        "-in",
        pem_path.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert_eq!(theirs.trim().rsplit('=').next().unwrap(), fp.trim());
    let text = openssl(&["x509", "-in", pem_path.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("prime256v1"), "{text}");
}

/// A self-signed certificate for `key` with `subject` and `constraints`.
fn self_signed(key: &str, subject: &str, constraints: &str, out: &str) {
    let subj = format!("/CN={subject}");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key,
        "-subj",
        &subj,
        "-days",
        "30",
        "-addext",
        constraints,
        "-out",
        out,
    ]);
}

fn ec_key(out: &str) {
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        out,
    ]);
}

#[test]
fn install_checks_the_chain_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    // A customer CA made by openssl (its key in the SEC1 form), and a
    // certificate that is not a CA.
    ec_key(&p("ca.key"));
    self_signed(
        &p("ca.key"),
        "Customer CA",
        "basicConstraints=critical,CA:TRUE",
        &p("ca.pem"),
    );
    ec_key(&p("other.key"));
    self_signed(
        &p("other.key"),
        "Not a CA",
        "basicConstraints=critical,CA:FALSE",
        &p("leaf.pem"),
    );
    let target = p("installed");
    for (chain, key, needle) in [
        ("ca.pem", "other.key", "the key does not match"),
        ("leaf.pem", "other.key", "is not a CA"),
    ] {
        let (ok, _, err) = cache(&[
            "ca",
            "install",
            "--chain",
            &p(chain),
            "--key",
            &p(key),
            "--dir",
            &target,
        ]);
        assert!(!ok);
        assert!(err.contains(needle), "{err}");
    }
    for name in ["ca.bundle", "ca.pem", "ca.key"] {
        assert!(
            !dir.path().join("installed").join(name).exists(),
            "{name} written"
        );
    }
    let (ok, out, err) = cache(&[
        "ca",
        "install",
        "--chain",
        &p("ca.pem"),
        "--key",
        &p("ca.key"),
        "--dir",
        &target,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Customer CA"), "{out}");
    let (_, fp, _) = cache(&["ca", "fingerprint", "--dir", &target]);
    let theirs = openssl(&[
        "x509",
        "-in",
        &p("ca.pem"),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert_eq!(theirs.trim().rsplit('=').next().unwrap(), fp.trim());
    // An RSA CA with its key in the traditional PKCS#1 form.
    openssl(&["genrsa", "-traditional", "-out", &p("rsa.key"), "2048"]);
    assert!(std::fs::read_to_string(p("rsa.key"))
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    self_signed(
        &p("rsa.key"),
        "Customer RSA CA",
        "basicConstraints=critical,CA:TRUE",
        &p("rsa.pem"),
    );
    let (ok, out, err) = cache(&[
        "ca",
        "install",
        "--chain",
        &p("rsa.pem"),
        "--key",
        &p("rsa.key"),
        "--dir",
        &target,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Customer RSA CA"), "{out}");
}
