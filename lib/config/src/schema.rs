//! The configuration as stored: one struct per key group, serde with unknown
//! fields refused, a schema version, and the defaults of a factory appliance.
//!
//! Values here are already typed (addresses, ports, domains); a value that
//! parses can still break a rule that involves other keys (a gateway outside
//! the subnet, two services on one port): [`Config::validate`] checks those.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

/// The schema version written by this build. A store holding a newer
/// version is refused rather than misread (see `store`).
pub const SCHEMA_VERSION: u32 = 1;

/// The whole configuration of an appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub version: u32,
    pub net: Net,
    pub dns: Dns,
    /// Static name -> IPv4 map, like /etc/hosts; names are lowercase.
    pub hosts: BTreeMap<String, Ipv4Addr>,
    pub ntp: Ntp,
    pub upstream: Upstream,
    pub platform: Platform,
    pub proxy: Proxy,
    pub cache: Cache,
    pub patch: Patch,
    /// Entries as written by the administrator, each a valid
    /// [`crate::domain::AllowedDomain`].
    pub allowed_domains: Vec<String>,
    pub tls: Tls,
    pub ssh: Ssh,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: SCHEMA_VERSION,
            net: Net::default(),
            dns: Dns::default(),
            hosts: BTreeMap::new(),
            ntp: Ntp::default(),
            upstream: Upstream::default(),
            platform: Platform::default(),
            proxy: Proxy::default(),
            cache: Cache::default(),
            patch: Patch::default(),
            allowed_domains: Vec::new(),
            tls: Tls::default(),
            ssh: Ssh::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    #[default]
    Dhcp,
    Static,
    Unconfigured,
}

impl fmt::Display for NetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetMode::Dhcp => "dhcp",
            NetMode::Static => "static",
            NetMode::Unconfigured => "unconfigured",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Net {
    pub mode: NetMode,
    /// Used in static mode: the address with its prefix length.
    pub address: Option<Ipv4Net>,
    /// Used in static mode: the default gateway, inside the subnet.
    pub gateway: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Manual servers (at most 3); empty means those from DHCP.
    pub servers: Vec<Ipv4Addr>,
    pub search: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ntp {
    /// Host names or IPv4 addresses; empty means [`DEFAULT_NTP_SERVERS`].
    pub servers: Vec<String>,
}

/// The time servers used when `ntp.servers` is empty.
pub const DEFAULT_NTP_SERVERS: [&str; 4] = [
    "0.flatcar.pool.ntp.org",
    "1.flatcar.pool.ntp.org",
    "2.flatcar.pool.ntp.org",
    "3.flatcar.pool.ntp.org",
];

impl Ntp {
    /// The servers actually used: the configured ones, else the defaults.
    pub fn effective_servers(&self) -> Vec<String> {
        if self.servers.is_empty() {
            DEFAULT_NTP_SERVERS.iter().map(|s| s.to_string()).collect()
        } else {
            self.servers.clone()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstream {
    /// The upstream proxy every service goes through, when set.
    pub proxy: Option<HostPort>,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// A host name or IPv4 address with a port, written `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A secret (a password): stored, never printed. `Debug` and `Display` show a
/// placeholder so that a logged configuration cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What is shown instead of a secret.
pub const REDACTED: &str = "********";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Platform {
    /// The POD suffix, such as `qg1.apps.qualys.com`.
    pub pod: Option<String>,
    /// The platform's HTTPS port (443; another for a simulator).
    pub port: u16,
    /// Seconds between two check-ins.
    pub checkin_interval_s: u32,
    /// PEM certificates trusted for the platform besides the built-in
    /// roots (an inspecting upstream proxy's CA, a simulator's CA).
    pub ca_bundle: Option<String>,
}

/// The scanner appliance checks in every 3 minutes.
pub const DEFAULT_CHECKIN_INTERVAL_S: u32 = 180;

impl Default for Platform {
    fn default() -> Self {
        Platform {
            pod: None,
            port: 443,
            checkin_interval_s: DEFAULT_CHECKIN_INTERVAL_S,
            ca_bundle: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proxy {
    pub port: u16,
}

/// The proxy's port when none is set (QGS's default).
pub const DEFAULT_PROXY_PORT: u16 = 1080;
/// The cache's port when none is set (QGS's default).
pub const DEFAULT_CACHE_PORT: u16 = 8080;

impl Default for Proxy {
    fn default() -> Self {
        Proxy {
            port: DEFAULT_PROXY_PORT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    pub port: u16,
    pub enabled: bool,
    /// Domains tunnelled without interception (clients that pin
    /// certificates).
    pub splice: Vec<String>,
    /// Extra CA certificates (PEM) trusted for origins, besides the public
    /// roots: a corporate proxy upstream that re-signs traffic.
    pub origin_ca: Option<String>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            port: DEFAULT_CACHE_PORT,
            enabled: true,
            splice: Vec::new(),
            origin_ca: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Patch {
    pub enabled: bool,
    /// The smallest patch disk patch mode accepts, GiB.
    pub min_disk_gib: u32,
    /// The private networks patch-mode clients may reach (every other
    /// private address is refused after resolution); by default all of
    /// [`PRIVATE_RANGES`]. Loopback, link-local and the like are refused in
    /// every mode whatever this says.
    pub private_destinations: Vec<IpNet>,
}

/// The private ranges: RFC 1918's three IPv4 networks and IPv6 unique local
/// addresses (RFC 4193).
pub const PRIVATE_RANGES: [&str; 4] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

/// [`PRIVATE_RANGES`], parsed.
pub fn private_ranges() -> Vec<IpNet> {
    PRIVATE_RANGES
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect()
}

/// QGS asks for a patch disk of at least 250 GB: counted in GiB, as the
/// hypervisors that make such a disk count it (docs/disks.md).
pub const DEFAULT_MIN_DISK_GIB: u32 = 250;

impl Default for Patch {
    fn default() -> Self {
        Patch {
            enabled: false,
            min_disk_gib: DEFAULT_MIN_DISK_GIB,
            private_destinations: private_ranges(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub min_version: TlsVersion,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ssh {
    pub enabled: bool,
}
