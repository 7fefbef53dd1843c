//! The messages of the control API. Documented for users in
//! `docs/control-api.md`; a change here is a change there.
//!
//! A request is one JSON object on one line, tagged by `cmd`; the response
//! is one JSON object on one line: `{"ok":true,"result":...}` or
//! `{"ok":false,"error":{"key":...,"message":...}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use gateway_paths::{AGENT_CONTROL_SOCKET, AGENT_SOCKET, CONTROL_SOCKET as DEFAULT_SOCKET};

/// The longest request line the server reads; a configuration change is far
/// smaller, so a longer line is a confused or hostile client.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The appliance's state: [`Status`].
    Status,
    /// Configuration values in text form, secrets redacted: all keys, or
    /// those listed. Result: an object key -> value.
    Get {
        #[serde(default)]
        keys: Vec<String>,
    },
    /// Changes keys (text form; empty restores the default). All or
    /// nothing: the first broken rule refuses the whole change. Result:
    /// [`SetResult`].
    Set {
        values: BTreeMap<String, String>,
    },
    /// The keys with their type, default and rule: [`KeyDoc`] list.
    Keys,
    Reboot,
    Poweroff,
    /// Factory state: the stored configuration is removed and the appliance
    /// reboots into a first boot.
    ResetAppliance,
    /// The network keys (net.*, dns.*) return to their defaults.
    ResetNetwork,
    /// The newest lines of a log (a unit's, `init` or `kernel`), newest
    /// first, those containing `search` when given: [`LogLines`].
    Logs {
        name: String,
        #[serde(default)]
        lines: Option<u32>,
        #[serde(default)]
        search: Option<String>,
    },
    /// Restarts a unit (also one marked failed).
    RestartUnit {
        name: String,
    },
    /// ICMP echo to a host name or IPv4 address: [`PingResult`].
    Ping {
        target: String,
        #[serde(default)]
        count: Option<u32>,
    },
    /// CPU, memory, disks, network counters and per-unit usage: [`Stats`].
    Stats,
    /// Formats the patch disk (ext4) and mounts it. A disk that already
    /// holds a filesystem or a partition table is refused unless
    /// `erase` is true. Result: [`DiskStatus`] of the patch disk.
    FormatPatchDisk {
        #[serde(default)]
        erase: bool,
    },
    /// The appliance CA the cache signs with (agents import it): [`CaInfo`];
    /// generated when there is none yet.
    CaExport,
    /// Makes a customer-signed chain and its key (PEM) the appliance CA;
    /// refused with the reason when the key does not match, the
    /// certificate is not a CA, or a certificate is expired. [`CaInfo`].
    CaInstall {
        chain: String,
        key: String,
    },
    /// Registers the appliance with the platform (`platform.pod`) using a
    /// personalization code; answered by the management agent after a
    /// connectivity check. Result: [`PlatformStatus`].
    Register {
        code: String,
    },
    /// The management agent's view of the platform: [`PlatformStatus`];
    /// with `check`, the connectivity check runs first.
    Platform {
        #[serde(default)]
        check: bool,
    },
    /// Reaches the first platform URL (qagpublic.<pod>) through the upstream
    /// proxy (`upstream.proxy`), step by step; answered by the management
    /// agent. Result: [`ProxyTestResult`].
    ProxyTest,
    /// Builds a diagnostics report (logs, configuration with secrets
    /// redacted, status, stats, the last upstream capture), encrypted to
    /// the support key, and offers it over SFTP to the user `diagnostics`
    /// with a new one-time password, which only this answer carries.
    /// Replaces a report still waiting. Result: [`ReportCreated`].
    DiagnosticsReport,
    /// The report waiting for download and the upstream capture:
    /// [`DiagnosticsStatus`].
    Diagnostics,
    /// Captures the traffic between eth0 and its next hop for `seconds`
    /// (1 to 300, default 300) into a pcap file that replaces the previous
    /// one when the capture ends. Result: [`CaptureStatus`].
    CaptureStart {
        #[serde(default)]
        seconds: Option<u32>,
    },
    /// Ends a running capture now (what was captured is kept).
    /// Result: [`CaptureStatus`].
    CaptureStop,
}

/// The upstream proxy test: each step of reaching a platform URL through
/// the proxy, the first failure ending it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyTestResult {
    /// `host:port` of the upstream proxy.
    pub proxy: String,
    /// The URL reached through it.
    pub target: String,
    pub ok: bool,
    pub steps: Vec<ProxyTestStep>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyTestStep {
    pub what: String,
    pub ok: bool,
    /// `OK`, what went wrong in words, or `not tried`.
    pub result: String,
}

/// The keys the management agent may `set` on its own socket
/// ([`AGENT_CONTROL_SOCKET`]): the services' settings the platform manages.
/// PID 1 enforces the list, so a compromised agent cannot turn SSH on,
/// change the upstream proxy, the hosts map or the network; the agent keeps
/// the same list to refuse a platform's configuration before applying any
/// of it.
pub const AGENT_SETTABLE_KEYS: &[&str] = &[
    "proxy.port",
    "cache.port",
    "cache.enabled",
    "patch.enabled",
    "allowed_domains",
    "tls.min_version",
    "platform.checkin_interval_s",
];

/// The longest upstream capture (`capture_start`), in seconds.
pub const MAX_CAPTURE_SECONDS: u32 = 300;

/// The user the diagnostics report is offered to over SFTP.
pub const REPORT_USER: &str = "diagnostics";

/// A diagnostics report waiting for download.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportOffer {
    /// Its file name in the SFTP directory.
    pub file: String,
    pub size_bytes: u64,
    pub created_unix: u64,
    /// When the password stops working (24 hours after the report was
    /// made), unless a download ended before.
    pub expires_unix: u64,
    pub user: String,
    /// The SFTP port (22).
    pub port: u16,
    /// The SSH host key's SHA-256 fingerprint (`SHA256:...`), once the
    /// SFTP server has made its key.
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
}

/// The answer to `diagnostics_report`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportCreated {
    pub offer: ReportOffer,
    /// The one-time password: shown to the administrator, never stored in
    /// clear nor logged.
    pub password: String,
    /// The age public key the report is encrypted to.
    pub recipient: String,
    /// The files inside the archive.
    pub contents: Vec<String>,
}

/// The upstream capture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStatus {
    /// `idle` (none taken since boot), `running`, `done` or `failed`.
    pub state: String,
    #[serde(default)]
    pub started_unix: u64,
    /// How long it was asked to run.
    #[serde(default)]
    pub seconds: u32,
    #[serde(default)]
    pub elapsed_s: u64,
    #[serde(default)]
    pub packets: u64,
    #[serde(default)]
    pub bytes: u64,
    /// What it captures (`eth0, next hop 10.0.2.2 52:55:...`), why it
    /// ended or why it failed, in words.
    #[serde(default)]
    pub detail: String,
    /// The pcap file of the last complete capture, if there is one.
    #[serde(default)]
    pub file: Option<String>,
}

/// The answer to `diagnostics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticsStatus {
    pub report: Option<ReportOffer>,
    pub capture: CaptureStatus,
}

/// Personalization codes (`register`): 1 to 64 lowercase letters, digits
/// and dashes, not starting or ending with a dash. Checked before anything
/// is sent, by every client and by the agent.
pub fn check_personalization_code(code: &str) -> Result<(), String> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !code.starts_with('-')
        && !code.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err("a personalization code is 1 to 64 lowercase letters, digits and dashes, not starting or ending with a dash".into())
    }
}

/// The answer to `ca_export` and `ca_install`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaInfo {
    /// The chain, PEM.
    pub pem: String,
    /// SHA-256 of the CA certificate, `AB:CD:...`.
    pub fingerprint_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Response {
    pub fn ok(result: impl Serialize) -> Self {
        Response {
            ok: true,
            result: Some(serde_json::to_value(result).unwrap_or(serde_json::Value::Null)),
            error: None,
        }
    }

    pub fn error(error: ApiError) -> Self {
        Response {
            ok: false,
            result: None,
            error: Some(error),
        }
    }
}

/// A refusal: which key (when a setting is at fault) and why, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ApiError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ApiError {
    pub fn new(message: impl Into<String>) -> Self {
        ApiError {
            key: None,
            message: message.into(),
        }
    }

    pub fn for_key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

/// The answer to `set`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetResult {
    /// Keys whose value changed (a value set to what it was is not).
    pub changed: Vec<String>,
    /// What was redone to apply them, in words ("resolv.conf rewritten").
    pub applied: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDoc {
    pub name: String,
    pub kind: String,
    pub default: String,
    pub rule: String,
}

/// The answer to `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub hostname: String,
    pub uptime_s: u64,
    /// "persistent" when the configuration lives on the state partition,
    /// "memory" when /var is a tmpfs (changes are lost at reboot).
    pub storage: String,
    pub network: NetworkStatus,
    pub dns: DnsStatus,
    pub time: TimeStatus,
    pub units: Vec<UnitStatus>,
    /// The boot disk, the patch disk and any ignored disk, in the stable
    /// order the appliance chose them.
    #[serde(default)]
    pub disks: Vec<DiskStatus>,
    /// Requirements the VM does not meet (memory, primary disk), in the
    /// wording of the Info screen; empty when all are met.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Other things the administrator should know, shown on the Info
    /// screen apart from the requirements (they are not one): a disk the
    /// appliance ignores, patch mode on without its disk.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    /// "boot", "patch" or "ignored".
    pub role: String,
    /// The kernel's name (sda, vdb, nvme0n1): for the eyes only, it is not
    /// stable across boots.
    pub device: String,
    /// Where it sits (controller, then target), e.g. "pci 0000:00:04.0 0:0:1:0".
    pub location: String,
    pub size_bytes: u64,
    /// Filesystem found on it (ext4, xfs...) or none.
    pub filesystem: Option<String>,
    /// Where it is mounted, when it is.
    pub mount: Option<String>,
    /// What the appliance did or why not, in words ("mounted at
    /// /var/lib/patch", "too small: 1.0 GiB, patch mode needs at least 2
    /// GiB (patch.min_disk_gib)").
    pub state: String,
}

/// The answer to `stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub uptime_s: u64,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    /// "Disk 1" is the boot disk's state partition, "Disk 2" the patch disk.
    pub disks: Vec<DiskUsage>,
    pub network: Vec<InterfaceCounters>,
    pub units: Vec<UnitStats>,
    /// The cache unit's counters (its `GET /stats`): None (null) when the
    /// unit is not active or did not answer in time. Defaulted so that an
    /// answer from a PID 1 without it still parses.
    #[serde(default)]
    pub cache: Option<CacheStats>,
}

/// The cache's counters as its `GET /stats` gives them (docs/cache.md),
/// for the Stats screen, `gatewayctl stats` and the management agent. Each
/// field is defaulted: a cache that adds or drops a counter still parses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheStats {
    /// Served from a stored or filling object.
    pub hits: u64,
    /// Waited for a fill another request started.
    pub collapsed: u64,
    /// A stored copy confirmed by a 304.
    pub revalidated: u64,
    /// Started a fill.
    pub misses: u64,
    /// Relayed, not stored.
    pub passed: u64,
    /// (hits + collapsed + revalidated) / all requests, 0-1.
    pub hit_ratio: f64,
    /// Body bytes clients got from the cache instead of an origin: the
    /// bandwidth saved.
    pub bytes_from_cache: u64,
    pub bytes_from_origin: u64,
    pub memory_objects: u64,
    pub memory_bytes: u64,
    pub disk_objects: u64,
    pub disk_bytes: u64,
    pub disk_blocks_verified: u64,
    pub disk_damaged: u64,
    /// Agents that used the cache in the last 60 minutes.
    pub active_agents: u64,
}

impl CacheStats {
    /// The share of the bytes clients got that came from the cache rather
    /// than an origin, as a percentage (0 before any byte was served).
    pub fn saved_percent(&self) -> f64 {
        let total = self.bytes_from_cache as f64 + self.bytes_from_origin as f64;
        if total == 0.0 {
            0.0
        } else {
            self.bytes_from_cache as f64 * 100.0 / total
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    pub cores: u32,
    /// Share of all cores busy over the last sampling interval, 0-100.
    pub busy_percent: f64,
    pub load: [f64; 3],
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// "Disk 1", "Disk 2".
    pub label: String,
    pub mount: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitStats {
    pub name: String,
    pub state: String,
    /// Share of one core over the last sampling interval (100 = one core).
    pub cpu_percent: f64,
    pub cpu_total_s: f64,
    pub memory_bytes: u64,
    /// The cgroup's memory.max.
    pub memory_limit_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub interface: String,
    /// dhcp, static or unconfigured.
    pub mode: String,
    pub mac: Option<String>,
    pub carrier: bool,
    /// address/prefix.
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub lease: Option<LeaseStatus>,
    /// What the network is doing, in words ("lease from 10.0.2.2",
    /// "waiting for a DHCP offer", "no carrier").
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    pub server: String,
    /// Seconds since the lease was obtained or renewed.
    pub age_s: u64,
    /// Seconds until it expires, when known.
    pub expires_in_s: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsStatus {
    pub servers: Vec<String>,
    pub search: Option<String>,
    /// "manual" (dns.servers), "dhcp" or "none".
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeStatus {
    /// The appliance's clock, Unix seconds (UTC; the appliance has no
    /// other time zone).
    pub now_unix: u64,
    pub synchronized: bool,
    pub servers: Vec<String>,
    /// The server whose time the clock follows.
    pub server: Option<String>,
    /// The last measured offset, milliseconds (positive: the clock was
    /// behind).
    pub offset_ms: Option<f64>,
    /// Seconds since the last sample that set or steered the clock.
    pub last_sync_age_s: Option<u64>,
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitStatus {
    pub name: String,
    /// active, activating (restarting after an exit), inactive or failed.
    pub state: String,
    /// In words: the pid, why it waits, why it failed.
    #[serde(default)]
    pub detail: String,
}

/// The answer to `register` and `platform`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformStatus {
    /// The POD suffix the agent uses, when `platform.pod` is set.
    pub pod: Option<String>,
    pub registered: bool,
    pub appliance_id: Option<String>,
    pub appliance_name: Option<String>,
    /// Unix time of the last check-in attempt, and its result in words
    /// ("ok", "configuration 4 applied", "camspm.<pod>: TCP refused").
    pub last_checkin_unix: Option<u64>,
    pub last_checkin_result: Option<String>,
    /// Check-ins that failed in a row (the platform unreachable); 0 after
    /// one that went through.
    #[serde(default)]
    pub checkin_failures: u32,
    /// Unix time of the next check-in.
    pub next_checkin_unix: Option<u64>,
    /// The last connectivity check, one entry per platform URL.
    pub connectivity: Vec<Connectivity>,
}

/// One platform URL and what reaching it gave, in words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connectivity {
    pub url: String,
    pub ok: bool,
    /// "HTTP 200", "DNS failure: ...", "TCP refused", "TLS failure: ...".
    pub result: String,
    /// Unix time of the check.
    pub checked_unix: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLines {
    pub name: String,
    /// Newest first.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PingResult {
    pub target: String,
    pub address: String,
    pub sent: u32,
    pub received: u32,
    pub loss_percent: f64,
    pub replies: Vec<PingReply>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PingReply {
    pub seq: u16,
    pub time_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_cmd() {
        let r: Request =
            serde_json::from_str(r#"{"cmd":"set","values":{"proxy.port":"3128"}}"#).unwrap();
        assert_eq!(
            r,
            Request::Set {
                values: [("proxy.port".to_owned(), "3128".to_owned())].into()
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::ResetNetwork).unwrap(),
            r#"{"cmd":"reset_network"}"#
        );
        let r: Request = serde_json::from_str(r#"{"cmd":"get"}"#).unwrap();
        assert_eq!(r, Request::Get { keys: vec![] });
        // A misspelt field is refused, not ignored (serde cannot do this
        // for the variants without fields).
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"get","key":["a"]}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format_disk"}"#).is_err());
        let r: Request = serde_json::from_str(r#"{"cmd":"platform"}"#).unwrap();
        assert_eq!(r, Request::Platform { check: false });
    }

    #[test]
    fn stats_without_a_cache_section_still_parse() {
        // What a PID 1 from before the cache section answers.
        let old = r#"{"uptime_s":7,"cpu":{"cores":1,"busy_percent":0.0,"load":[0.0,0.0,0.0]},"memory":{"total_bytes":1,"available_bytes":1},"disks":[],"network":[],"units":[]}"#;
        let s: Stats = serde_json::from_str(old).unwrap();
        assert_eq!((s.uptime_s, s.cache), (7, None));
        // The cache's own JSON, with fields this side does not know.
        let cache: CacheStats = serde_json::from_str(
            r#"{"hits":3,"hit_ratio":0.75,"bytes_from_cache":300,"bytes_from_origin":100,"active_agents":2,"proxy":{"connections":4},"new_counter":1}"#,
        )
        .unwrap();
        assert_eq!((cache.hits, cache.misses, cache.active_agents), (3, 0, 2));
        assert_eq!(cache.saved_percent(), 75.0);
        assert_eq!(CacheStats::default().saved_percent(), 0.0);
    }

    #[test]
    fn responses_carry_a_result_or_an_error() {
        let ok = serde_json::to_string(&Response::ok(SetResult::default())).unwrap();
        assert_eq!(ok, r#"{"ok":true,"result":{"applied":[],"changed":[]}}"#);
        let err = Response::error(ApiError::for_key("proxy.port", "22 is not allowed"));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"ok":false,"error":{"key":"proxy.port","message":"22 is not allowed"}}"#
        );
        assert_eq!(
            err.error.unwrap().to_string(),
            "proxy.port: 22 is not allowed"
        );
    }
}
