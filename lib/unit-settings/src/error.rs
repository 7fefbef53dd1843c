//! The one error type for reading a settings file, shared by every unit.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// serde's message names the key (`unknown field`, `missing field`).
    #[error("{}{source}", at(path))]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A value the service refuses, with the key and the rule.
    #[error("{}{key}: {reason}", at(path))]
    Invalid {
        path: PathBuf,
        key: &'static str,
        reason: String,
    },
}

fn at(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}: ", path.display())
    }
}

impl SettingsError {
    /// A refused value, before the file's path is known.
    pub fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        SettingsError::Invalid {
            path: PathBuf::new(),
            key,
            reason: reason.into(),
        }
    }

    fn in_file(self, file: &Path) -> Self {
        match self {
            SettingsError::Parse { source, .. } => SettingsError::Parse {
                path: file.to_owned(),
                source,
            },
            SettingsError::Invalid { key, reason, .. } => SettingsError::Invalid {
                path: file.to_owned(),
                key,
                reason,
            },
            read => read,
        }
    }
}

/// Parses settings text as `T` (unknown keys refused by `T` itself).
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, SettingsError> {
    serde_json::from_str(text).map_err(|source| SettingsError::Parse {
        path: PathBuf::new(),
        source,
    })
}

/// Reads the settings file at `path` with `parse` (which parses and checks);
/// every error then names the file.
pub fn load<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, SettingsError>,
) -> Result<T, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|e| e.in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        let missing = load(&path, parse_json::<u32>).unwrap_err().to_string();
        assert!(
            missing.starts_with(&format!("read {}: ", path.display())),
            "{missing}"
        );
        std::fs::write(&path, "{}").unwrap();
        let err = load(&path, |_| -> Result<(), _> {
            Err(SettingsError::invalid("port", "must be 1-65535"))
        })
        .unwrap_err()
        .to_string();
        assert_eq!(err, format!("{}: port: must be 1-65535", path.display()));
        assert_eq!(
            SettingsError::invalid("port", "must be 1-65535").to_string(),
            "port: must be 1-65535"
        );
    }
}
