//! The server's settings file, written by PID 1: the typed contract is
//! `gateway_unit_settings::SftpSettings`; this module adds the server's own
//! check (an absolute state directory).

use std::path::{Path, PathBuf};

pub use gateway_unit_settings::{SettingsError, SftpSettings as Settings};

/// Reads and checks the settings file at `path`; errors name the file and
/// the key.
pub fn load(path: &Path) -> Result<Settings, SettingsError> {
    gateway_unit_settings::load(path, parse)
}

fn parse(text: &str) -> Result<Settings, SettingsError> {
    let settings = Settings::parse(text)?;
    // A relative state directory would depend on the unit's working
    // directory: refuse it rather than guess.
    if !settings.state_dir.is_absolute() {
        return Err(SettingsError::invalid(
            "state_dir",
            format!("{} is not an absolute path", settings.state_dir.display()),
        ));
    }
    Ok(settings)
}

/// Where the server keeps its host key.
pub fn host_key_path(settings: &Settings) -> PathBuf {
    settings.state_dir.join("host_key")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(s) => panic!("accepted {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_the_documented_form() {
        let s = parse(r#"{"listen": "0.0.0.0:22", "state_dir": "/var/lib/units/sftp"}"#).unwrap();
        assert_eq!(s.listen, "0.0.0.0:22".parse().unwrap());
        assert_eq!(host_key_path(&s), Path::new("/var/lib/units/sftp/host_key"));
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
