//! The server's settings file, written by PID 1
//! (`{"listen": "0.0.0.0:22", "state_dir": "/var/lib/units/sftp"}`).
//! Both keys are required and unknown keys are refused, so a typo in PID 1's
//! writer shows up as an error naming the key instead of a silent default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address and port the SSH server listens on.
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Holds the host key, the offer and the report directory.
    pub state_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The message names the key (`unknown field`, `missing field`, `listen:`).
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: state_dir: {value} is not an absolute path")]
    StateDir { path: PathBuf, value: PathBuf },
}

impl Settings {
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Json(source) => SettingsError::Parse {
                path: path.to_owned(),
                source,
            },
            ParseError::StateDir(value) => SettingsError::StateDir {
                path: path.to_owned(),
                value,
            },
        })
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let settings: Settings = serde_json::from_str(text).map_err(ParseError::Json)?;
        // A relative state directory would depend on the unit's working
        // directory: refuse it rather than guess.
        if !settings.state_dir.is_absolute() {
            return Err(ParseError::StateDir(settings.state_dir));
        }
        Ok(settings)
    }

    pub fn host_key_path(&self) -> PathBuf {
        self.state_dir.join("host_key")
    }
}

/// serde_json's own message for a bad address does not say which key it is.
fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "listen: {text:?} is not an address and port (like 0.0.0.0:22)"
        ))
    })
}

enum ParseError {
    Json(serde_json::Error),
    StateDir(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match Settings::parse(text) {
            Ok(s) => panic!("accepted {s:?}"),
            Err(ParseError::Json(e)) => e.to_string(),
            Err(ParseError::StateDir(p)) => format!("state_dir {}", p.display()),
        }
    }

    #[test]
    fn parses_the_documented_form() {
        let s = Settings::parse(r#"{"listen": "0.0.0.0:22", "state_dir": "/var/lib/units/sftp"}"#)
            .ok()
            .unwrap();
        assert_eq!(s.listen, "0.0.0.0:22".parse().unwrap());
        assert_eq!(s.host_key_path(), Path::new("/var/lib/units/sftp/host_key"));
    }

    #[test]
    fn errors_name_the_key() {
        assert!(
            error(r#"{"listen": "0.0.0.0:22", "state_dir": "/x", "lisen": 1}"#).contains("lisen")
        );
        assert!(error(r#"{"state_dir": "/x"}"#).contains("listen"));
        assert!(error(r#"{"listen": "0.0.0.0:22"}"#).contains("state_dir"));
        assert!(
            error(r#"{"listen": "nowhere", "state_dir": "/x"}"#).contains("listen: \"nowhere\"")
        );
        assert!(error(r#"{"listen": "0.0.0.0:22", "state_dir": "rel"}"#).contains("state_dir"));
    }
}
