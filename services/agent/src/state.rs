//! What the agent keeps across restarts, in its state directory: the
//! registration (appliance ID, name, token) and the last configuration it
//! processed with its outcome. One JSON file, mode 0600, replaced
//! atomically; the token is never logged (a [`Secret`]).

use std::path::{Path, PathBuf};

use gateway_config::Secret;
use gateway_fsutil::{write_atomic, AtomicWriteError, WriteOptions};
use serde::{Deserialize, Serialize};

use gateway_management_api::api::ConfigurationResult;

pub const FILE: &str = "registration.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub pod: String,
    pub appliance_id: String,
    pub name: String,
    /// The bearer token; its Debug and Display forms are redacted.
    pub token: Secret,
    /// The last configuration version processed (applied or refused).
    #[serde(default)]
    pub configuration_version: u64,
    /// Its outcome, until a check-in has carried it to the platform.
    #[serde(default)]
    pub pending_result: Option<ConfigurationResult>,
    /// The chain of the certificate the platform assigned that was last
    /// installed: a later configuration carrying the same one does not
    /// install it (and restart the cache) again.
    #[serde(default)]
    pub certificate_chain: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Save(#[from] AtomicWriteError),
}

pub fn load(dir: &Path) -> Result<Option<Registration>, StateError> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Parse { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

/// Replaces the file atomically, mode 0600 (it holds the token): a
/// temporary file, fsync, rename over, fsync of the directory.
pub fn save(dir: &Path, reg: &Registration) -> Result<(), StateError> {
    let path = dir.join(FILE);
    std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
        path: path.clone(),
        source,
    })?;
    let bytes = serde_json::to_vec_pretty(reg).expect("a Registration always serialises");
    write_atomic(&path, &bytes, &WriteOptions::private())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_private_loaded_back_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let reg = Registration {
            pod: "p.test".into(),
            appliance_id: "a-1".into(),
            name: "gw".into(),
            token: Secret::new("t0ps3cret"),
            configuration_version: 3,
            pending_result: None,
            certificate_chain: None,
        };
        save(dir.path(), &reg).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path()).unwrap(), Some(reg.clone()));
        assert!(!format!("{reg:?}").contains("t0ps3cret"));
    }
}
