//! The SSH host key: `<state_dir>/host_key`, ed25519 in OpenSSH private key
//! format, generated at the first start and kept on the state partition so
//! clients see the same key after a reboot. `host_key.fingerprint` beside it
//! holds the `SHA256:...` fingerprint as `ssh-keygen -lf` prints it, so the
//! console can show it for the administrator to compare.

use std::path::{Path, PathBuf};

use gateway_fsutil::{write_atomic, AtomicWriteError, WriteOptions};
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey};

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("read the host key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the host key {path} is not an OpenSSH private key: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("the host key {path} is not an unencrypted ed25519 key")]
    Kind { path: PathBuf },
    #[error("generate a host key: {0}")]
    Generate(String),
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

/// Loads the host key, or generates and stores one if there is none, and
/// (re)writes the fingerprint file.
pub fn load_or_generate(state_dir: &Path) -> Result<PrivateKey, HostKeyError> {
    let path = state_dir.join("host_key");
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = PrivateKey::from_openssh(&text).map_err(|e| HostKeyError::Parse {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            // An encrypted key could not be used without a passphrase and
            // another algorithm is not what this server writes: refuse both
            // rather than start with a key nobody expects.
            if key.is_encrypted() || key.algorithm() != russh::keys::Algorithm::Ed25519 {
                return Err(HostKeyError::Kind { path });
            }
            key
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate()?;
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| HostKeyError::Generate(e.to_string()))?;
            write_atomically(&path, text.as_bytes())?;
            tracing::info!(path = %path.display(), "generated the SSH host key");
            key
        }
        Err(source) => return Err(HostKeyError::Read { path, source }),
    };
    let fingerprint = fingerprint(&key);
    write_atomically(
        &state_dir.join("host_key.fingerprint"),
        format!("{fingerprint}\n").as_bytes(),
    )?;
    tracing::info!(%fingerprint, "SSH host key");
    Ok(key)
}

/// `SHA256:<base64 without padding>`, as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

fn generate() -> Result<PrivateKey, HostKeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| HostKeyError::Generate(e.to_string()))?;
    let keypair = Ed25519Keypair::from_seed(&seed);
    PrivateKey::new(KeypairData::Ed25519(keypair), "gateway-sftp")
        .map_err(|e| HostKeyError::Generate(e.to_string()))
}

/// Temporary file (mode 0600 from its creation, so the key is never
/// readable by others), fsync, rename, fsync of the directory: after a power
/// cut there is either the old file or the whole new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), HostKeyError> {
    Ok(write_atomic(path, bytes, &WriteOptions::private())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("host_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_generate(dir.path()).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        let printed = std::fs::read_to_string(dir.path().join("host_key.fingerprint")).unwrap();
        assert_eq!(printed, format!("{}\n", fingerprint(&first)));
        assert!(printed.starts_with("SHA256:"));
    }

    #[test]
    fn a_damaged_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("host_key"), "garbage").unwrap();
        assert!(matches!(
            load_or_generate(dir.path()),
            Err(HostKeyError::Parse { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("host_key")).unwrap(),
            "garbage"
        );
    }
}
