//! The diagnostics SFTP server's settings (services/sftp):
//! `{"listen": "0.0.0.0:22", "state_dir": "/var/lib/units/sftp"}`. Both keys
//! are required and unknown keys are refused, so a typo in PID 1's writer
//! shows up as an error naming the key instead of a silent default.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::SettingsError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpSettings {
    /// Address and port the SSH server listens on.
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Holds the host key, the offer and the report directory.
    pub state_dir: PathBuf,
}

impl SftpSettings {
    /// The file's text as the type reads it; the server checks the values.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        crate::parse_json(text)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_keys_are_required_and_a_bad_address_names_its_key() {
        let s = SftpSettings {
            listen: "0.0.0.0:22".parse().unwrap(),
            state_dir: "/var/lib/units/sftp".into(),
        };
        assert_eq!(SftpSettings::parse(&crate::to_text(&s)).unwrap(), s);
        let err = SftpSettings::parse(r#"{"listen": "0.0.0.0:22"}"#).unwrap_err();
        assert!(
            err.to_string().contains("missing field `state_dir`"),
            "{err}"
        );
        let err = SftpSettings::parse(r#"{"listen": "x", "state_dir": "/s"}"#).unwrap_err();
        assert!(
            err.to_string().contains("listen: \"x\" is not an address"),
            "{err}"
        );
    }
}
