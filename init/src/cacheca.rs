//! The appliance CA for the control API: kept by the cache in its state
//! directory, read and installed by running `gateway-cache ca ...` as the
//! cache's own user, so that PID 1 carries no TLS code and the files stay
//! the cache's (the key 0600, its owner).

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use gateway_control::protocol::CaInfo;

use crate::units::table::{unit, CACHE_CA_DIR, CACHE_UID};

const BINARY: &str = "/usr/bin/gateway-cache";

/// Runs `gateway-cache ca <args>` as the cache user; its stdout, or its
/// stderr as the reason.
fn ca(args: &[&str]) -> Result<String, String> {
    if let Some(spec) = unit("cache") {
        // The state directory the CA lives in, the cache's own.
        crate::units::sandbox::Prepared::new(spec, &[], None).map_err(|e| e.to_string())?;
    }
    let out = crate::children::output(
        Command::new(BINARY)
            .arg("ca")
            .args(args)
            .env_clear()
            .uid(CACHE_UID)
            .gid(CACHE_UID),
    )
    .map_err(|e| format!("run {BINARY}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.trim().trim_start_matches("gateway-cache: ").to_owned())
    }
}

fn info() -> Result<CaInfo, String> {
    let pem = ca(&["export", "--dir", CACHE_CA_DIR])?;
    let fingerprint = ca(&["fingerprint", "--dir", CACHE_CA_DIR])?;
    Ok(CaInfo {
        pem,
        fingerprint_sha256: fingerprint.trim().to_owned(),
    })
}

/// The CA, generated when there is none.
pub fn export() -> Result<CaInfo, String> {
    info()
}

/// Checks and installs a chain and key; nothing changes when refused.
pub fn install(chain: &str, key: &str) -> Result<CaInfo, String> {
    // The files go where only the cache user reads them, for the time of
    // the install.
    let dir = Path::new("/run/units/cache-ca-install");
    let _ = std::fs::remove_dir_all(dir);
    let result = (|| {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("create {}: {e}", dir.display()))?;
        nix::unistd::chown(dir, Some(CACHE_UID.into()), Some(CACHE_UID.into()))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        for (name, text) in [("chain.pem", chain), ("key.pem", key)] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))?;
            nix::unistd::chown(&p, Some(CACHE_UID.into()), Some(CACHE_UID.into()))
                .map_err(|e| format!("chown {}: {e}", p.display()))?;
        }
        let chain_path = dir.join("chain.pem");
        let key_path = dir.join("key.pem");
        ca(&[
            "install",
            "--chain",
            &chain_path.to_string_lossy(),
            "--key",
            &key_path.to_string_lossy(),
            "--dir",
            CACHE_CA_DIR,
        ])
    })();
    let _ = std::fs::remove_dir_all(dir);
    result?;
    info()
}
