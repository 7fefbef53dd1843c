//! The units: every service the appliance runs, declared in one table with
//! what the supervisor needs to run it (binary, user, capabilities, what it
//! waits for, memory limit, restart policy) and how its settings come from
//! the configuration.

use std::time::Duration;

use gateway_config::Config;
use gateway_unit_settings::{
    to_text, AgentSettings, CachePlacement, CacheSettings, ProxySettings, SftpSettings,
};

/// What a unit waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// eth0 has an address (DHCP lease or static).
    Network,
    /// In patch mode, the patch disk is mounted (nothing to wait for in
    /// cache mode).
    PatchDisk,
    /// SSH is enabled, or a diagnostics report waits for download.
    SshOrReport,
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

    /// The memory the unit keeps under pressure from the others (its
    /// cgroup's `memory.low`): a quarter of its floor. The limits may
    /// overcommit RAM (each is a ceiling); these protections must not,
    /// so that together they leave room for PID 1 and the kernel on the
    /// smallest appliance (`the_memory_protections_fit_the_smallest_ram`).
    pub fn low_bytes(self) -> u64 {
        match self {
            MemoryLimit::ShareOfRam { min_mib, .. } => (min_mib << 20) / 4,
        }
    }
}

/// Restart with exponential backoff: `first`, doubling up to `max`; after
/// `give_up_after` quick failures in a row (runs shorter than `stable`) the
/// unit is marked failed, and tried again every `retry_failed` (an
/// appliance has nobody at its console to restart it; a fault that clears,
/// such as a full disk or a missing upstream, must not keep it down) or at
/// once when restarted by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub first: Duration,
    pub max: Duration,
    pub stable: Duration,
    pub give_up_after: u32,
    pub retry_failed: Duration,
}

pub const RESTART: RestartPolicy = RestartPolicy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(30),
    stable: Duration::from_secs(30),
    give_up_after: 5,
    retry_failed: Duration::from_secs(300),
};

/// The console is the administrator's way in: it comes back after every
/// exit, quickly, and is never given up on.
pub const RESPAWN: RestartPolicy = RestartPolicy {
    first: Duration::from_secs(1),
    max: Duration::from_secs(5),
    stable: Duration::from_secs(30),
    give_up_after: u32::MAX,
    retry_failed: Duration::from_secs(5),
};

/// The console's user and group. The control socket is group `console`
/// (mode 0660), so the console reaches it without being root.
pub const CONSOLE_UID: u32 = 102;
pub const CONSOLE_GID: u32 = 102;

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
    /// Other files the settings name (written next to them, mode 0600,
    /// owned by the unit); a change of them is a change of the settings.
    pub files: fn(&Config) -> Vec<(&'static str, String)>,
    /// Applies a settings change with SIGHUP instead of a restart.
    pub reload: bool,
    pub args: &'static [&'static str],
    /// The terminal (under /dev) that is the unit's stdin, stdout and
    /// stderr and its controlling terminal, instead of /dev/null and its
    /// log file.
    pub tty: Option<&'static str>,
    /// Gets its own writable directory on the patch disk,
    /// `/var/lib/patch/<name>`, when the disk is mounted.
    pub patch_dir: bool,
    /// A socket PID 1 binds at this path and hands to the unit as
    /// descriptor 3 ([`super::listener`]).
    pub listener: Option<&'static str>,
    /// What its seccomp allow-list adds to the common part
    /// (`units::seccomp`).
    pub syscalls: super::seccomp::Syscalls,
}

pub use gateway_unit_settings::settings_path;

/// The proxy's settings (services/proxy `--config` format, docs/proxy.md).
pub fn proxy_settings(c: &Config) -> String {
    to_text(&ProxySettings::from_config(c))
}

/// The cache unit's user and group (image/src/rootfs.rs has the same).
pub const CACHE_UID: u32 = 104;
/// Where the cache keeps the appliance CA: its state directory.
pub const CACHE_CA_DIR: &str = "/var/lib/units/cache/ca";
/// The cache's share of RAM (its cgroup's memory.max).
pub const CACHE_MEMORY_PERCENT: u64 = 40;
/// Its memory tier, inside that share: the rest holds each transfer's
/// buffers and TLS state (about 256 KiB each) and the minted leaves.
pub const CACHE_TIER_PERCENT: u64 = 30;

/// The cache's settings (services/cache `run --config` format,
/// docs/cache.md): the proxy's keys, then the cache's own. In patch mode
/// the disk tier lives in the unit's directory on the patch disk.
pub fn cache_settings(c: &Config) -> String {
    let ram = nix::sys::sysinfo::sysinfo().map_or(256 << 20, |i| i.ram_total());
    let placement = CachePlacement {
        ca_dir: CACHE_CA_DIR.into(),
        memory_bytes: (ram * CACHE_TIER_PERCENT / 100).max(1 << 20),
        disk_dir: c
            .patch
            .enabled
            .then(|| format!("{}/cache", crate::disks::patch::MOUNT_POINT).into()),
        origin_ca_bundle: c.cache.origin_ca.as_ref().map(|_| CACHE_ORIGIN_CA.into()),
    };
    to_text(&CacheSettings::from_config(c, placement))
}

/// Where the cache finds `cache.origin_ca` (its runtime directory).
pub const CACHE_ORIGIN_CA: &str = "/run/units/cache/origin-ca.pem";

/// `cache.origin_ca` as a PEM file, one certificate per block with its
/// base64 in 64-column lines, whatever line breaks it was given with.
pub fn cache_files(c: &Config) -> Vec<(&'static str, String)> {
    let Some(bundle) = &c.cache.origin_ca else {
        return Vec::new();
    };
    let bodies = gateway_config::rules::pem_certificates(bundle).unwrap_or_default();
    let mut pem = String::new();
    for body in bodies {
        pem += "-----BEGIN CERTIFICATE-----\n";
        for line in body.as_bytes().chunks(64) {
            pem += &String::from_utf8_lossy(line);
            pem += "\n";
        }
        pem += "-----END CERTIFICATE-----\n";
    }
    vec![("origin-ca.pem", pem)]
}

/// The management agent's settings (docs/management-api.md).
pub fn agent_settings(c: &Config) -> String {
    to_text(&AgentSettings::from_config(c))
}

/// The SFTP server's settings (services/sftp): its port and the state
/// directory where PID 1 puts the report and the offer.
pub fn sftp_settings(_: &Config) -> String {
    to_text(&SftpSettings {
        listen: std::net::SocketAddr::from(([0, 0, 0, 0], crate::diagnostics::SFTP_PORT)),
        state_dir: crate::diagnostics::SFTP_STATE.into(),
    })
}

fn port_caps(port: u16) -> Vec<u32> {
    if port < 1024 {
        vec![CAP_NET_BIND_SERVICE]
    } else {
        Vec::new()
    }
}

/// A console text UI on `tty`: its own user, no capabilities, no settings.
const fn console(name: &'static str, tty: &'static str) -> UnitSpec {
    UnitSpec {
        name,
        binary: "/usr/bin/gateway-console",
        uid: CONSOLE_UID,
        gid: CONSOLE_GID,
        depends: &[],
        memory: MemoryLimit::ShareOfRam {
            percent: 5,
            min_mib: 32,
        },
        restart: RESPAWN,
        max_files: 64,
        enabled: |_| true,
        capabilities: |_| Vec::new(),
        settings: |_| "{}\n".to_owned(),
        files: |_| Vec::new(),
        reload: false,
        // A serial line reports no size: the console sets 80x25 there.
        args: &["--cols", "80", "--rows", "25"],
        tty: Some(tty),
        patch_dir: false,
        listener: None,
        syscalls: super::seccomp::CONSOLE,
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
        files: |_| Vec::new(),
        reload: true,
        args: &["--config", "/run/units/proxy/settings.json"],
        tty: None,
        patch_dir: false,
        listener: None,
        syscalls: super::seccomp::SERVICE,
    },
    UnitSpec {
        name: "cache",
        binary: "/usr/bin/gateway-cache",
        uid: CACHE_UID,
        gid: CACHE_UID,
        depends: &[Dependency::Network, Dependency::PatchDisk],
        memory: MemoryLimit::ShareOfRam {
            percent: CACHE_MEMORY_PERCENT,
            min_mib: 96,
        },
        restart: RESTART,
        max_files: 65_536,
        enabled: |c| c.cache.enabled,
        capabilities: |c| port_caps(c.cache.port),
        settings: cache_settings,
        files: cache_files,
        reload: true,
        args: &["run", "--config", "/run/units/cache/settings.json"],
        tty: None,
        patch_dir: true,
        listener: None,
        syscalls: super::seccomp::SERVICE,
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
        files: |_| Vec::new(),
        // A change of its settings (POD, port, interval, CA, upstream, hosts)
        // restarts it: its state is on disk and applying a configuration twice
        // changes nothing.
        reload: false,
        args: &["--config", "/run/units/agent/settings.json"],
        tty: None,
        patch_dir: false,
        listener: Some(gateway_control::protocol::AGENT_SOCKET),
        syscalls: super::seccomp::SERVICE,
    },
    UnitSpec {
        name: "sftp",
        binary: "/usr/bin/gateway-sftp",
        uid: crate::diagnostics::SFTP_UID,
        gid: crate::diagnostics::SFTP_UID,
        // Nothing listens on port 22 unless SSH is enabled or a report
        // waits (ssh.enabled, docs/diagnostics.md).
        depends: &[Dependency::Network, Dependency::SshOrReport],
        memory: MemoryLimit::ShareOfRam {
            percent: 5,
            min_mib: 32,
        },
        restart: RESTART,
        max_files: 256,
        enabled: |_| true,
        capabilities: |_| port_caps(crate::diagnostics::SFTP_PORT),
        settings: sftp_settings,
        files: |_| Vec::new(),
        reload: false,
        args: &["--config", "/run/units/sftp/settings.json"],
        tty: None,
        patch_dir: false,
        listener: None,
        syscalls: super::seccomp::SERVICE,
    },
    // The VM's screen (VMware, Hyper-V) and its first serial port.
    console("console-tty1", "tty1"),
    console("console-ttyS0", "ttyS0"),
];

pub fn unit(name: &str) -> Option<&'static UnitSpec> {
    UNITS.iter().find(|u| u.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_settings_follow_the_configuration() {
        let c = gateway_unit_settings::proxy::example_configuration();
        let text = proxy_settings(&c);
        let parsed = ProxySettings::parse(&text).unwrap();
        assert_eq!(parsed.listen.port(), 3128);
        assert_eq!(parsed.allowed_domains, ["example.com"]);
        assert_eq!(parsed.hosts["api.example.com"].to_string(), "10.0.2.2");
        let up = parsed.upstream.unwrap();
        assert_eq!(
            (
                up.host.as_str(),
                up.port,
                up.password.as_ref().map(|p| p.expose())
            ),
            ("up.example.com", 8080, Some("s3cret"))
        );
        // The defaults parse too.
        ProxySettings::parse(&proxy_settings(&Config::default())).unwrap();
    }

    #[test]
    fn the_cache_settings_follow_the_configuration() {
        let c = gateway_unit_settings::cache::example_configuration();
        let text = cache_settings(&c);
        let parsed = CacheSettings::parse(&text).unwrap();
        assert_eq!(parsed.proxy.listen.port(), 3129);
        assert!(parsed.proxy.patch);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["tls_min_version"], "1.3");
        assert_eq!(v["splice"][0], "pinned.example.com");
        assert_eq!(v["disk_dir"], "/var/lib/patch/cache");
        assert_eq!(v["ca_dir"], CACHE_CA_DIR);
        assert!(v.get("origin_ca_bundle").is_none());
        // With an origin CA: a file the settings name, in proper PEM.
        let c = c
            .with_changes(&[(
                "cache.origin_ca",
                "-----BEGIN CERTIFICATE----- TUlJQg== -----END CERTIFICATE-----",
            )])
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&cache_settings(&c)).unwrap();
        assert_eq!(v["origin_ca_bundle"], CACHE_ORIGIN_CA);
        assert_eq!(
            cache_files(&c),
            [(
                "origin-ca.pem",
                "-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n".to_owned()
            )]
        );
        // Cache mode: memory only.
        let text = cache_settings(&Config::default());
        CacheSettings::parse(&text).unwrap();
        assert!(!text.contains("disk_dir"));
    }

    #[test]
    fn the_agent_settings_follow_the_configuration() {
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
        let s = AgentSettings::parse(&agent_settings(&c)).unwrap();
        assert_eq!(s.pod.as_deref(), Some("qg1.apps.qualys.com"));
        assert_eq!((s.port, s.checkin_interval_s), (443, 5));
        assert_eq!(
            s.hosts["camspublic.qg1.apps.qualys.com"].to_string(),
            "10.0.2.2"
        );
        let up = s.upstream.unwrap();
        assert_eq!(up.password.unwrap().expose(), "s3cret");
        AgentSettings::parse(&agent_settings(&Config::default())).unwrap();
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
    fn the_memory_protections_fit_the_smallest_ram() {
        let protected: u64 = UNITS.iter().map(|u| u.memory.low_bytes()).sum();
        let smallest = crate::requirements::MIN_RAM_MIB << 20;
        // Half the smallest RAM at most: the rest is PID 1's, the kernel's
        // and the page cache's.
        assert!(
            protected <= smallest / 2,
            "{} MiB protected of {} MiB",
            protected >> 20,
            smallest >> 20
        );
        for u in UNITS {
            assert!(
                u.memory.low_bytes() < u.memory.bytes(smallest),
                "{}",
                u.name
            );
        }
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
