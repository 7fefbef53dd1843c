//! The appliance CA for the control API: kept by the cache in its state
//! directory, read and installed by running `gateway-cache ca ...` as the
//! cache's own user, so that PID 1 carries no TLS code and the files stay
//! the cache's (the key 0600, its owner).

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_control::protocol::CaInfo;
use gateway_fsutil::{write_atomic, AtomicWriteError, WriteOptions};

use super::sandbox::SandboxError;
use super::table::{unit, CACHE_CA_DIR, CACHE_UID};

const BINARY: &str = "/usr/bin/gateway-cache";

/// Why the CA could not be read or installed; the control API answers
/// with these words.
#[derive(Debug, thiserror::Error)]
pub enum CacheCaError {
    /// The cache's state directory could not be prepared.
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
    #[error("run {BINARY}: {0}")]
    Run(io::Error),
    /// The cache refused, in its own words (a chain and key that do not
    /// match, a CA that has expired).
    #[error("{reason}")]
    Refused { reason: String },
    #[error("create {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("chown {}: {source}", path.display())]
    Chown { path: PathBuf, source: nix::Error },
    #[error("{0}")]
    Write(#[from] AtomicWriteError),
}

/// Runs `gateway-cache ca <args>` as the cache user; its stdout, or its
/// stderr as the reason.
fn ca(args: &[&str]) -> Result<String, CacheCaError> {
    if let Some(spec) = unit("cache") {
        // The state directory the CA lives in, the cache's own.
        super::sandbox::Prepared::new(spec, &[], None)?;
    }
    let out = crate::pid1::children::output(
        Command::new(BINARY)
            .arg("ca")
            .args(args)
            .env_clear()
            .uid(CACHE_UID)
            .gid(CACHE_UID),
    )
    .map_err(CacheCaError::Run)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(CacheCaError::Refused {
            reason: err.trim().trim_start_matches("gateway-cache: ").to_owned(),
        })
    }
}

fn info() -> Result<CaInfo, CacheCaError> {
    let pem = ca(&["export", "--dir", CACHE_CA_DIR])?;
    let fingerprint = ca(&["fingerprint", "--dir", CACHE_CA_DIR])?;
    Ok(CaInfo {
        pem,
        fingerprint_sha256: fingerprint.trim().to_owned(),
    })
}

/// The CA, generated when there is none.
pub fn export() -> Result<CaInfo, CacheCaError> {
    info()
}

/// Checks and installs a chain and key; nothing changes when refused.
pub fn install(chain: &str, key: &str) -> Result<CaInfo, CacheCaError> {
    // The files go where only the cache user reads them, for the time of
    // the install.
    let dir = Path::new("/run/units/cache-ca-install");
    let _ = std::fs::remove_dir_all(dir);
    let result = (|| {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|source| CacheCaError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        nix::unistd::chown(dir, Some(CACHE_UID.into()), Some(CACHE_UID.into())).map_err(
            |source| CacheCaError::Chown {
                path: dir.to_owned(),
                source,
            },
        )?;
        // The cache's own from their creation, the key 0600 (in a
        // directory only the cache may enter already).
        for (name, text, mode) in [("chain.pem", chain, 0o644), ("key.pem", key, 0o600)] {
            let opts = WriteOptions::with_mode(mode).owner(CACHE_UID, CACHE_UID);
            write_atomic(&dir.join(name), text.as_bytes(), &opts)?;
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
