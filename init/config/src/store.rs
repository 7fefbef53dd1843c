//! The configuration on disk: one JSON file on the state partition, replaced
//! atomically so that a power cut at any moment leaves the old file or the
//! new one, never a mix.
//!
//! A save writes `config.json.tmp` (mode 0600: the file holds the upstream
//! password), fsyncs it, renames it over `config.json`, then fsyncs the
//! directory so the rename itself is durable. A load ignores a leftover
//! temporary file: it is an interrupted save whose rename never happened.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::rules::ConfigError;
use crate::schema::Config;

pub const FILE_NAME: &str = "config.json";
const TMP_NAME: &str = "config.json.tmp";

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
    #[error("save interrupted before {0:?}")]
    Interrupted(SaveStep),
}

/// The steps of a save, in order; a test hook may stop a save before any of
/// them to stand for a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStep {
    CreateTemp,
    /// Half of the bytes are written; the next step writes the rest.
    WriteHalf,
    WriteRest,
    SyncTemp,
    Rename,
    SyncDir,
}

pub const SAVE_STEPS: [SaveStep; 6] = [
    SaveStep::CreateTemp,
    SaveStep::WriteHalf,
    SaveStep::WriteRest,
    SaveStep::SyncTemp,
    SaveStep::Rename,
    SaveStep::SyncDir,
];

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

    /// Replaces the stored configuration atomically.
    pub fn save(&self, config: &Config) -> Result<(), StoreError> {
        self.save_with(config, |_| true)
    }

    /// [`Store::save`], asking `proceed` before each step; a `false` stops
    /// the save there, as a power cut would.
    pub fn save_with(
        &self,
        config: &Config,
        mut proceed: impl FnMut(SaveStep) -> bool,
    ) -> Result<(), StoreError> {
        let tmp = self.dir.join(TMP_NAME);
        let werr = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Write { path, source }
        };
        let mut step = |s: SaveStep| {
            if proceed(s) {
                Ok(())
            } else {
                Err(StoreError::Interrupted(s))
            }
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
        step(SaveStep::CreateTemp)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(werr(&tmp))?;
        let (first, rest) = bytes.split_at(bytes.len() / 2);
        step(SaveStep::WriteHalf)?;
        file.write_all(first).map_err(werr(&tmp))?;
        step(SaveStep::WriteRest)?;
        file.write_all(rest).map_err(werr(&tmp))?;
        step(SaveStep::SyncTemp)?;
        file.sync_all().map_err(werr(&tmp))?;
        drop(file);
        step(SaveStep::Rename)?;
        fs::rename(&tmp, self.path()).map_err(werr(&self.path()))?;
        step(SaveStep::SyncDir)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(werr(&self.dir))
    }

    /// Removes the stored configuration (factory reset): the next boot is a
    /// first boot again.
    pub fn remove(&self) -> Result<(), StoreError> {
        for name in [FILE_NAME, TMP_NAME] {
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Write { path, source }),
            }
        }
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

    /// A save cut before any of its steps leaves the old configuration or
    /// the new one, never an unloadable file.
    #[test]
    fn a_save_interrupted_at_each_step_leaves_a_loadable_file() {
        let (old, new) = configs();
        for (i, cut) in SAVE_STEPS.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::new(dir.path());
            store.save(&old).unwrap();
            let err = store.save_with(&new, |s| s != *cut).unwrap_err();
            assert!(matches!(err, StoreError::Interrupted(s) if s == *cut));
            let loaded = store.load().unwrap().unwrap();
            let expected = if i > SAVE_STEPS
                .iter()
                .position(|s| *s == SaveStep::Rename)
                .unwrap()
            {
                &new
            } else {
                &old
            };
            assert_eq!(&loaded, expected, "cut before {cut:?}");
            // The next save goes through despite the leftover.
            store.save(&new).unwrap();
            assert_eq!(store.load().unwrap(), Some(new.clone()));
        }
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
