//! The management agent's settings (services/agent, docs/management-api.md),
//! mode 0600: they may hold the upstream password.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use gateway_config::Config;
use serde::{Deserialize, Serialize};

use crate::{SettingsError, UpstreamSettings};

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
    /// The agent's own socket, answering `register` and `platform`: bound
    /// by the agent at this path unless `socket_fd` is set.
    pub socket: PathBuf,
    /// The descriptor of that socket already listening, bound and handed
    /// over by PID 1 (the appliance's case: the agent never binds it).
    pub socket_fd: Option<i32>,
}

pub use gateway_paths::AGENT_STATE_DIR;

/// The descriptor PID 1 hands the agent its listening socket at (the first
/// after stdin, stdout and stderr).
pub const LISTEN_FD: i32 = 3;

impl Default for AgentSettings {
    fn default() -> Self {
        let platform = gateway_config::schema::Platform::default();
        AgentSettings {
            pod: platform.pod,
            port: platform.port,
            checkin_interval_s: platform.checkin_interval_s,
            ca_bundle: platform.ca_bundle,
            upstream: None,
            hosts: BTreeMap::new(),
            resolv_conf: gateway_paths::RESOLV_CONF.into(),
            control_socket: gateway_paths::CONTROL_SOCKET.into(),
            state_dir: AGENT_STATE_DIR.into(),
            socket: gateway_paths::AGENT_SOCKET.into(),
            socket_fd: None,
        }
    }
}

impl AgentSettings {
    /// What PID 1 writes for the agent unit: it reaches PID 1 through the
    /// agent's own control socket (a narrower set of requests).
    pub fn from_config(c: &Config) -> Self {
        AgentSettings {
            pod: c.platform.pod.clone(),
            port: c.platform.port,
            checkin_interval_s: c.platform.checkin_interval_s,
            ca_bundle: c.platform.ca_bundle.clone(),
            upstream: UpstreamSettings::from_config(c),
            hosts: c
                .hosts
                .iter()
                .map(|(k, v)| (k.clone(), IpAddr::V4(*v)))
                .collect(),
            control_socket: gateway_paths::AGENT_CONTROL_SOCKET.into(),
            socket_fd: Some(LISTEN_FD),
            ..AgentSettings::default()
        }
    }

    /// The file's text as the type reads it; the agent checks the values.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        crate::parse_json(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_file_reads_back_and_holds_the_platform_keys() {
        let c = Config::default()
            .with_changes(&[
                ("platform.pod", "qg1.apps.qualys.com"),
                ("platform.checkin_interval_s", "60"),
                ("upstream.proxy", "up.example.com:8080"),
            ])
            .unwrap();
        let s = AgentSettings::from_config(&c);
        assert_eq!(AgentSettings::parse(&crate::to_text(&s)).unwrap(), s);
        assert_eq!(s.pod.as_deref(), Some("qg1.apps.qualys.com"));
        assert_eq!(s.checkin_interval_s, 60);
        assert_eq!(
            s.control_socket,
            PathBuf::from(gateway_paths::AGENT_CONTROL_SOCKET)
        );
        assert_eq!(s.socket_fd, Some(LISTEN_FD));
    }
}
