//! The agent's settings file, written by PID 1 from the configuration
//! (`/run/units/agent/settings.json`, mode 0600: it may hold the upstream
//! password). The typed contract is `gateway_unit_settings::AgentSettings`
//! (unknown keys refused); this module adds the agent's own checks, each
//! error naming its key.

use std::path::Path;

pub use gateway_unit_settings::{AgentSettings, SettingsError, UpstreamSettings};

/// Reads and checks the settings file at `path`.
pub fn load(path: &Path) -> Result<AgentSettings, SettingsError> {
    gateway_unit_settings::load(path, parse)
}

/// Parses and checks settings text.
pub fn parse(text: &str) -> Result<AgentSettings, SettingsError> {
    let s = AgentSettings::parse(text)?;
    if !(1..=86400).contains(&s.checkin_interval_s) {
        return Err(SettingsError::invalid(
            "checkin_interval_s",
            format!("{} is not from 1 to 86400 seconds", s.checkin_interval_s),
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract from the other side: what PID 1 writes from the
    /// configuration passes the agent's checks, and a bad interval names
    /// its key.
    #[test]
    fn the_settings_pid1_writes_pass_the_checks() {
        let c = gateway_config::Config::default()
            .with_changes(&[
                ("platform.pod", "qg1.apps.qualys.com"),
                ("platform.checkin_interval_s", "5"),
                ("upstream.proxy", "up.example.com:8080"),
                ("upstream.user", "agent"),
                ("upstream.password", "s3cret"),
            ])
            .unwrap();
        for c in [c, gateway_config::Config::default()] {
            let s = AgentSettings::from_config(&c);
            assert_eq!(parse(&gateway_unit_settings::to_text(&s)).unwrap(), s);
        }
        let err = parse(r#"{"checkin_interval_s": 0}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "checkin_interval_s: 0 is not from 1 to 86400 seconds");
    }
}
