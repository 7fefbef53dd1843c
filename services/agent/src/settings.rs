//! The agent's settings file, written by PID 1 from the configuration
//! (`/run/units/agent/settings.json`, mode 0600: it may hold the upstream
//! password). Unknown keys are refused; every error names its key.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use gateway_config::Secret;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// `platform.pod`; without it the agent waits.
    pub pod: Option<String>,
    /// `platform.port`.
    pub port: u16,
    pub checkin_interval_s: u32,
    /// `platform.ca_bundle`, PEM.
    pub ca_bundle: Option<String>,
    pub upstream: Option<UpstreamSettings>,
    /// The hosts map (`hosts`), used before DNS.
    pub hosts: BTreeMap<String, IpAddr>,
    pub resolv_conf: PathBuf,
    /// PID 1's control socket, for status, stats, logs and `set`.
    pub control_socket: PathBuf,
    /// Where the registration (appliance ID, token) is kept, mode 0600.
    pub state_dir: PathBuf,
    /// The agent's own socket, answering `register` and `platform`.
    pub socket: PathBuf,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            pod: None,
            port: 443,
            checkin_interval_s: 180,
            ca_bundle: None,
            upstream: None,
            hosts: BTreeMap::new(),
            resolv_conf: gateway_resolver::RESOLV_CONF.into(),
            control_socket: gateway_control::DEFAULT_SOCKET.into(),
            state_dir: "/var/lib/units/agent".into(),
            socket: gateway_control::protocol::AGENT_SOCKET.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: checkin_interval_s: {value} is not from 1 to 86400 seconds")]
    Interval { path: PathBuf, value: u32 },
}

impl AgentSettings {
    pub fn load(path: &std::path::Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let s: AgentSettings =
            serde_json::from_str(&text).map_err(|source| SettingsError::Parse {
                path: path.to_owned(),
                source,
            })?;
        if !(1..=86400).contains(&s.checkin_interval_s) {
            return Err(SettingsError::Interval {
                path: path.to_owned(),
                value: s.checkin_interval_s,
            });
        }
        Ok(s)
    }
}
