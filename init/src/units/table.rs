//! The units: every service the appliance runs, declared in one table with
//! what the supervisor needs to run it (binary, user, capabilities, what it
//! waits for, memory limit, restart policy) and how its settings come from
//! the configuration.

use std::time::Duration;

use gateway_config::Config;
use serde_json::json;

/// What a unit waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// eth0 has an address (DHCP lease or static).
    Network,
}

/// A memory limit for the unit's cgroup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryLimit {
    /// A share of the machine's RAM, with a floor in MiB.
    ShareOfRam { percent: u64, min_mib: u64 },
}

impl MemoryLimit {
    pub fn bytes(self, ram_bytes: u64) -> u64 {
        match self {
            MemoryLimit::ShareOfRam { percent, min_mib } => {
                (ram_bytes.saturating_mul(percent) / 100).max(min_mib << 20)
            }
        }
    }
}

/// Restart with exponential backoff: `first`, doubling up to `max`; after
/// `give_up_after` quick failures in a row (runs shorter than `stable`) the
/// unit is marked failed until restarted by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub first: Duration,
    pub max: Duration,
    pub stable: Duration,
    pub give_up_after: u32,
}

pub const RESTART: RestartPolicy = RestartPolicy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(30),
    stable: Duration::from_secs(30),
    give_up_after: 5,
};

/// CAP_NET_BIND_SERVICE (linux/capability.h).
pub const CAP_NET_BIND_SERVICE: u32 = 10;

pub struct UnitSpec {
    pub name: &'static str,
    pub binary: &'static str,
    /// Its own user and group (listed in the image's /etc/passwd).
    pub uid: u32,
    pub gid: u32,
    pub depends: &'static [Dependency],
    pub memory: MemoryLimit,
    pub restart: RestartPolicy,
    /// Open files the unit may hold (a proxy holds two per tunnel).
    pub max_files: u64,
    /// Whether the configuration asks for the unit at all.
    pub enabled: fn(&Config) -> bool,
    /// Capabilities kept after dropping root (e.g. to bind a port below
    /// 1024); none by default.
    pub capabilities: fn(&Config) -> Vec<u32>,
    /// The settings file the unit reads, from the configuration; a change
    /// of it is applied by SIGHUP (`reload`) or by a restart.
    pub settings: fn(&Config) -> String,
    /// Applies a settings change with SIGHUP instead of a restart.
    pub reload: bool,
    pub args: &'static [&'static str],
}

/// Where a unit's settings file is written: `/run/units/<name>/settings.json`.
pub fn settings_path(name: &str) -> String {
    format!("/run/units/{name}/settings.json")
}

/// The upstream proxy as the services' settings give it (the password in
/// clear: the file is the unit's own, mode 0600).
fn upstream_json(c: &Config) -> Option<serde_json::Value> {
    c.upstream.proxy.as_ref().map(|p| {
        json!({
            "host": p.host,
            "port": p.port,
            "user": c.upstream.user,
            "password": c.upstream.password.as_ref().map(|s| s.expose()),
        })
    })
}

/// The proxy's settings (services/proxy `--config` format, docs/proxy.md).
pub fn proxy_settings(c: &Config) -> String {
    let upstream = upstream_json(c);
    let settings = json!({
        "listen": format!("0.0.0.0:{}", c.proxy.port),
        "allowed_domains": c.allowed_domains,
        "hosts": c.hosts,
        "resolv_conf": gateway_resolver::RESOLV_CONF,
        "patch": c.patch.enabled,
        "upstream": upstream,
    });
    serde_json::to_string_pretty(&settings).unwrap_or_default() + "\n"
}

/// The management agent's settings (services/agent `AgentSettings`,
/// docs/management-api.md).
pub fn agent_settings(c: &Config) -> String {
    let upstream = upstream_json(c);
    let settings = json!({
        "pod": c.platform.pod,
        "port": c.platform.port,
        "checkin_interval_s": c.platform.checkin_interval_s,
        "ca_bundle": c.platform.ca_bundle,
        "upstream": upstream,
        "hosts": c.hosts,
        "resolv_conf": gateway_resolver::RESOLV_CONF,
        "control_socket": gateway_control::protocol::AGENT_CONTROL_SOCKET,
        "state_dir": "/var/lib/units/agent",
        "socket": gateway_control::protocol::AGENT_SOCKET,
    });
    serde_json::to_string_pretty(&settings).unwrap_or_default() + "\n"
}

fn port_caps(port: u16) -> Vec<u32> {
    if port < 1024 {
        vec![CAP_NET_BIND_SERVICE]
    } else {
        Vec::new()
    }
}

pub const UNITS: &[UnitSpec] = &[
    UnitSpec {
        name: "proxy",
        binary: "/usr/bin/gateway-proxy",
        uid: 101,
        gid: 101,
        depends: &[Dependency::Network],
        memory: MemoryLimit::ShareOfRam {
            percent: 25,
            min_mib: 64,
        },
        restart: RESTART,
        max_files: 65_536,
        enabled: |_| true,
        capabilities: |c| port_caps(c.proxy.port),
        settings: proxy_settings,
        reload: true,
        args: &["--config", "/run/units/proxy/settings.json"],
    },
    UnitSpec {
        name: "agent",
        binary: "/usr/bin/gateway-agent",
        uid: 103,
        gid: 103,
        depends: &[Dependency::Network],
        memory: MemoryLimit::ShareOfRam {
            percent: 5,
            min_mib: 32,
        },
        restart: RESTART,
        max_files: 1024,
        enabled: |_| true,
        capabilities: |_| Vec::new(),
        settings: agent_settings,
        // A change of its settings (POD, port, interval, CA, upstream, hosts)
        // restarts it: its state is on disk and applying a configuration twice
        // changes nothing.
        reload: false,
        args: &["--config", "/run/units/agent/settings.json"],
    },
];

pub fn unit(name: &str) -> Option<&'static UnitSpec> {
    UNITS.iter().find(|u| u.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_settings_follow_the_configuration_and_the_proxy_accepts_them() {
        let c = Config::default()
            .with_changes(&[
                ("proxy.port", "3128"),
                ("allowed_domains", "example.com"),
                ("hosts", "api.example.com=10.0.2.2"),
                ("upstream.proxy", "up.example.com:8080"),
                ("upstream.user", "agent"),
                ("upstream.password", "s3cret"),
            ])
            .unwrap();
        let text = proxy_settings(&c);
        let parsed = gateway_proxy::settings::ProxySettings::parse(&text).unwrap();
        assert_eq!(parsed.listen.port(), 3128);
        assert_eq!(parsed.allowed_domains, ["example.com"]);
        assert_eq!(parsed.hosts["api.example.com"].to_string(), "10.0.2.2");
        let up = parsed.upstream.unwrap();
        assert_eq!(
            (up.host.as_str(), up.port, up.password.as_deref()),
            ("up.example.com", 8080, Some("s3cret"))
        );
        // The defaults parse too.
        gateway_proxy::settings::ProxySettings::parse(&proxy_settings(&Config::default())).unwrap();
    }

    #[test]
    fn the_agent_settings_follow_the_configuration_and_the_agent_accepts_them() {
        let c = Config::default()
            .with_changes(&[
                ("platform.pod", "qg1.apps.qualys.com"),
                ("platform.checkin_interval_s", "5"),
                ("hosts", "camspublic.qg1.apps.qualys.com=10.0.2.2"),
                ("upstream.proxy", "up.example.com:8080"),
                ("upstream.user", "agent"),
                ("upstream.password", "s3cret"),
            ])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, agent_settings(&c)).unwrap();
        let s = gateway_agent::AgentSettings::load(&path).unwrap();
        assert_eq!(s.pod.as_deref(), Some("qg1.apps.qualys.com"));
        assert_eq!((s.port, s.checkin_interval_s), (443, 5));
        assert_eq!(
            s.hosts["camspublic.qg1.apps.qualys.com"].to_string(),
            "10.0.2.2"
        );
        let up = s.upstream.unwrap();
        assert_eq!(up.password.unwrap().expose(), "s3cret");
        std::fs::write(&path, agent_settings(&Config::default())).unwrap();
        gateway_agent::AgentSettings::load(&path).unwrap();
    }

    #[test]
    fn a_port_below_1024_keeps_only_the_bind_capability() {
        let low = Config::default()
            .with_changes(&[("proxy.port", "443")])
            .unwrap();
        assert_eq!(
            (unit("proxy").unwrap().capabilities)(&low),
            [CAP_NET_BIND_SERVICE]
        );
        assert!((unit("proxy").unwrap().capabilities)(&Config::default()).is_empty());
    }

    #[test]
    fn memory_share_has_a_floor() {
        let m = MemoryLimit::ShareOfRam {
            percent: 25,
            min_mib: 64,
        };
        assert_eq!(m.bytes(1 << 30), 256 << 20);
        assert_eq!(m.bytes(128 << 20), 64 << 20);
    }
}
