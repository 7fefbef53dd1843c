//! What the NTP client is told to do: which servers, how often, which port.
//! PID 1 builds this from the `ntp.servers` setting; an empty list means the
//! Flatcar pool defaults, so removing the setting returns to them.

use std::time::Duration;

use thiserror::Error;

/// The servers used when `ntp.servers` is not set.
pub const DEFAULT_SERVERS: [&str; 4] = [
    "0.flatcar.pool.ntp.org",
    "1.flatcar.pool.ntp.org",
    "2.flatcar.pool.ntp.org",
    "3.flatcar.pool.ntp.org",
];

/// `DEFAULT_SERVERS` as owned strings.
pub fn default_servers() -> Vec<String> {
    DEFAULT_SERVERS.iter().map(|s| s.to_string()).collect()
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("NTP server name {name:?} is not a host name or IP address")]
    BadServer { name: String },
    #[error("NTP min poll {min_secs} s must be at least 1 s and at most max poll {max_secs} s")]
    BadPoll { min_secs: u64, max_secs: u64 },
    #[error("NTP port 0 is not a port")]
    BadPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpConfig {
    /// Host names or IP addresses; empty means `default_servers()`.
    pub servers: Vec<String>,
    /// Shortest and starting poll interval (RFC 5905 default: 64 s). Tests
    /// use 1 s.
    pub min_poll: Duration,
    /// Longest poll interval, reached while the clock is stable.
    pub max_poll: Duration,
    /// Server UDP port; 123 except in tests.
    pub port: u16,
}

impl Default for NtpConfig {
    fn default() -> Self {
        NtpConfig {
            servers: Vec::new(),
            min_poll: Duration::from_secs(64),
            max_poll: Duration::from_secs(1024),
            port: 123,
        }
    }
}

impl NtpConfig {
    /// The configured servers, or the defaults when none are.
    pub fn effective_servers(&self) -> Vec<String> {
        if self.servers.is_empty() {
            default_servers()
        } else {
            self.servers.clone()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for name in &self.servers {
            if !valid_server_name(name) {
                return Err(ConfigError::BadServer { name: name.clone() });
            }
        }
        if self.min_poll < Duration::from_secs(1) || self.min_poll > self.max_poll {
            return Err(ConfigError::BadPoll {
                min_secs: self.min_poll.as_secs(),
                max_secs: self.max_poll.as_secs(),
            });
        }
        if self.port == 0 {
            return Err(ConfigError::BadPort);
        }
        Ok(())
    }
}

/// A DNS name (letters, digits, '-', '.', at most 253) or an IP address.
fn valid_server_name(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_servers_means_the_flatcar_pool() {
        let c = NtpConfig::default();
        assert_eq!(c.effective_servers().len(), 4);
        assert_eq!(c.effective_servers()[0], "0.flatcar.pool.ntp.org");
        assert_eq!(c.effective_servers()[3], "3.flatcar.pool.ntp.org");
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn configured_servers_replace_the_defaults() {
        let c = NtpConfig {
            servers: vec!["10.0.0.1".into(), "time.example.org".into()],
            ..Default::default()
        };
        assert_eq!(c.effective_servers(), c.servers);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["", "a b", "-x.org", "x..org", "x_y.org"] {
            let c = NtpConfig {
                servers: vec![bad.into()],
                ..Default::default()
            };
            assert!(
                matches!(c.validate(), Err(ConfigError::BadServer { .. })),
                "{bad}"
            );
        }
        let c = NtpConfig {
            min_poll: Duration::from_secs(2048),
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::BadPoll { .. })));
        let c = NtpConfig {
            port: 0,
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::BadPort));
    }
}
