//! The configuration on disk: one JSON file on the state partition, replaced
//! atomically so that a power cut at any moment leaves the old file or the
//! new one, never a mix.
//!
//! A save is a [`gateway_fsutil::write_atomic`] of `config.json`, mode 0600
//! (the file holds the upstream password): a temporary file, fsynced,
//! renamed over `config.json`, then the directory fsynced so the rename
//! itself is durable. A load ignores a leftover temporary file: it is an
//! interrupted save whose rename never happened.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use gateway_fsutil::{write_atomic, AtomicWriteError, WriteOptions};

use crate::rules::ConfigError;
use crate::schema::Config;

pub const FILE_NAME: &str = "config.json";
/// The temporary file of the saves before gateway-fsutil's (its leftovers
/// are still removed with the configuration).
const OLD_TMP_NAME: &str = "config.json.tmp";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid configuration file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} breaks a rule: {source}")]
    Invalid { path: PathBuf, source: ConfigError },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    /// The file's replacement failed (the step and the file are in it).
    #[error(transparent)]
    Save(#[from] AtomicWriteError),
}

/// The directory that holds the configuration file.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The stored configuration, `None` when there is none yet (a first
    /// boot). A file that does not parse or breaks a rule is an error.
    pub fn load(&self) -> Result<Option<Config>, StoreError> {
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        let config: Config = serde_json::from_slice(&text).map_err(|source| StoreError::Parse {
            path: path.clone(),
            source,
        })?;
        config
            .validate()
            .map_err(|source| StoreError::Invalid { path, source })?;
        Ok(Some(config))
    }

    /// Replaces the stored configuration atomically: a power cut at any
    /// moment leaves the old file or the new one (gateway-fsutil's tests cut
    /// a replacement before each of its steps).
    pub fn save(&self, config: &Config) -> Result<(), StoreError> {
        let werr = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Write { path, source }
        };
        let mut bytes = serde_json::to_vec_pretty(config).expect("a Config always serialises");
        bytes.push(b'\n');
        // Only the store's own directory is private: its parents (/var/lib)
        // are shared with the units' state directories, which their
        // unprivileged users must be able to reach.
        if let Some(parent) = self.dir.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(werr(parent))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .map_err(werr(&self.dir))?;
        write_atomic(&self.path(), &bytes, &WriteOptions::private())?;
        Ok(())
    }

    /// Removes the stored configuration (factory reset): the next boot is a
    /// first boot again.
    pub fn remove(&self) -> Result<(), StoreError> {
        for name in [FILE_NAME, OLD_TMP_NAME] {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Write { path, source }),
            }
        }
        // Never concurrent with a save (the appliance makes both under the
        // lock that orders configuration changes): a temporary file left
        // here is that of a save a crash cut.
        gateway_fsutil::remove_temp_files(&self.path()).map_err(|source| StoreError::Write {
            path: self.dir.clone(),
            source,
        })?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::Write {
                path: self.dir.clone(),
                source,
            })
    }

    /// Moves an unreadable file aside (`config.json.bad`) so that the
    /// appliance can start from defaults and the file stays for inspection.
    pub fn quarantine(&self) -> Result<PathBuf, StoreError> {
        let bad = self.dir.join(format!("{FILE_NAME}.bad"));
        fs::rename(self.path(), &bad).map_err(|source| StoreError::Write {
            path: bad.clone(),
            source,
        })?;
        Ok(bad)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn configs() -> (Config, Config) {
        let old = Config::default()
            .with_changes(&[("proxy.port", "3128")])
            .unwrap();
        let new = old
            .with_changes(&[
                ("dns.servers", "10.0.0.53"),
                ("upstream.proxy", "p.example.com:3128"),
                ("upstream.user", "u"),
                ("upstream.password", "pw"),
            ])
            .unwrap();
        (old, new)
    }

    #[test]
    fn first_boot_has_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::new(dir.path().join("gateway"))
            .load()
            .unwrap()
            .is_none());
    }

    #[test]
    fn save_then_load_gives_the_same_config_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("lib/gateway"));
        let (_, new) = configs();
        store.save(&new).unwrap();
        assert_eq!(store.load().unwrap(), Some(new));
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(dir.path().join("lib/gateway"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let parent_mode = fs::metadata(dir.path().join("lib"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(parent_mode & 0o777, 0o755, "others may traverse the parent");
    }

    /// A save cut by a power cut leaves a temporary file beside the old
    /// configuration (gateway-fsutil tests the cut at each step): a load
    /// ignores it, the next save goes through, a removal clears it.
    #[test]
    fn a_leftover_of_a_cut_save_is_ignored_then_removed() {
        let (old, new) = configs();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.save(&old).unwrap();
        fs::write(dir.path().join(".config.json.1.0.tmp"), b"{\"version\":").unwrap();
        fs::write(dir.path().join(OLD_TMP_NAME), b"{").unwrap();
        assert_eq!(store.load().unwrap(), Some(old));
        store.save(&new).unwrap();
        assert_eq!(store.load().unwrap(), Some(new));
        store.remove().unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_broken_file_is_an_error_and_can_be_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(store.path(), b"{\"version\":1,\"proxy\":{\"port\":22}}").unwrap();
        let err = store.load().unwrap_err();
        assert!(
            err.to_string().contains("proxy.port: 22 is not allowed"),
            "{err}"
        );
        fs::write(store.path(), b"{\"version\":1,\"nope\":1}").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Parse { .. })));
        let bad = store.quarantine().unwrap();
        assert!(bad.exists());
        assert!(store.load().unwrap().is_none());
    }

    #[test]
    fn remove_returns_to_first_boot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.save(&Config::default()).unwrap();
        store.remove().unwrap();
        assert!(store.load().unwrap().is_none());
        store.remove().unwrap();
    }
}
