//! The cache unit's settings (services/cache `run --config`, docs/cache.md):
//! the proxy's keys for its own listener, then the cache's own keys, in one
//! flat JSON object. serde cannot refuse unknown keys through `flatten`, so
//! the file is split by key name and each part read by its strict type.

use std::net::SocketAddr;
use std::path::PathBuf;

use gateway_config::Config;
use serde::{Deserialize, Serialize};

use crate::{ProxySettings, SettingsError};

/// The keys only the cache has. Everything else in the file is the
/// proxy's (`listen`, `allowed_domains`, `hosts`, `resolv_conf`, `patch`,
/// `agent_networks`, `upstream`, timeouts, `max_connections`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheOnly {
    #[serde(default = "default_ca_dir")]
    pub ca_dir: PathBuf,
    #[serde(default = "default_min_version")]
    pub tls_min_version: String,
    /// Domains (and their subdomains) tunnelled without interception.
    #[serde(default)]
    pub splice: Vec<String>,
    /// PEM bundle of extra CAs trusted for origins (beside Mozilla's).
    #[serde(default)]
    pub origin_ca_bundle: Option<PathBuf>,
    #[serde(default = "default_memory")]
    pub memory_bytes: u64,
    /// The patch disk's cache directory; none: memory tier only.
    #[serde(default)]
    pub disk_dir: Option<PathBuf>,
    /// The disk tier may use the file system's size minus this.
    #[serde(default = "default_reserve")]
    pub disk_reserve_bytes: u64,
    /// An upper bound on the disk tier below the file system's size.
    #[serde(default)]
    pub disk_max_bytes: Option<u64>,
    #[serde(default = "default_max_object")]
    pub max_object_bytes: u64,
    #[serde(default = "default_leaf_cache")]
    pub leaf_cache: usize,
}

/// The names of [`CacheOnly`]'s fields: how the file is split.
const CACHE_KEYS: [&str; 10] = [
    "ca_dir",
    "tls_min_version",
    "splice",
    "origin_ca_bundle",
    "memory_bytes",
    "disk_dir",
    "disk_reserve_bytes",
    "disk_max_bytes",
    "max_object_bytes",
    "leaf_cache",
];

fn default_ca_dir() -> PathBuf {
    PathBuf::from("/var/lib/cache/ca")
}
fn default_min_version() -> String {
    gateway_config::TlsVersion::default().to_string()
}
fn default_memory() -> u64 {
    64 << 20
}
fn default_reserve() -> u64 {
    1 << 30
}
fn default_max_object() -> u64 {
    8 << 30
}
fn default_leaf_cache() -> usize {
    1000
}

impl Default for CacheOnly {
    fn default() -> Self {
        CacheOnly {
            ca_dir: default_ca_dir(),
            tls_min_version: default_min_version(),
            splice: Vec::new(),
            origin_ca_bundle: None,
            memory_bytes: default_memory(),
            disk_dir: None,
            disk_reserve_bytes: default_reserve(),
            disk_max_bytes: None,
            max_object_bytes: default_max_object(),
            leaf_cache: default_leaf_cache(),
        }
    }
}

/// The whole settings file.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub proxy: ProxySettings,
    pub cache: CacheOnly,
}

/// What PID 1 decides for the cache beside the configuration: where its
/// files are and how much memory its tier gets.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePlacement {
    pub ca_dir: PathBuf,
    pub memory_bytes: u64,
    /// In patch mode, the cache's directory on the patch disk.
    pub disk_dir: Option<PathBuf>,
    /// Where `cache.origin_ca` is written, when it is set.
    pub origin_ca_bundle: Option<PathBuf>,
}

fn default_cache_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], gateway_config::schema::DEFAULT_CACHE_PORT))
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            proxy: ProxySettings {
                listen: default_cache_listen(),
                ..ProxySettings::default()
            },
            cache: CacheOnly::default(),
        }
    }
}

impl CacheSettings {
    /// What PID 1 writes for the cache unit.
    pub fn from_config(c: &Config, at: CachePlacement) -> Self {
        CacheSettings {
            proxy: ProxySettings {
                listen: SocketAddr::from(([0, 0, 0, 0], c.cache.port)),
                ..ProxySettings::from_config(c)
            },
            cache: CacheOnly {
                ca_dir: at.ca_dir,
                tls_min_version: c.tls.min_version.to_string(),
                splice: c.cache.splice.clone(),
                origin_ca_bundle: at.origin_ca_bundle,
                memory_bytes: at.memory_bytes,
                disk_dir: at.disk_dir,
                ..CacheOnly::default()
            },
        }
    }

    /// Splits the file into the cache's keys and the proxy's, each read by
    /// its own strict type (a key neither knows is refused by the proxy's).
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let parse_err = |source| SettingsError::Parse {
            path: PathBuf::new(),
            source,
        };
        let mut all: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(parse_err)?;
        let mut ours = serde_json::Map::new();
        for key in CACHE_KEYS {
            if let Some(v) = all.remove(key) {
                ours.insert(key.to_owned(), v);
            }
        }
        // The cache's port by default, not the proxy's.
        all.entry("listen")
            .or_insert_with(|| serde_json::Value::String(default_cache_listen().to_string()));
        let cache: CacheOnly =
            serde_json::from_value(serde_json::Value::Object(ours)).map_err(parse_err)?;
        let proxy: ProxySettings =
            serde_json::from_value(serde_json::Value::Object(all)).map_err(parse_err)?;
        Ok(CacheSettings { proxy, cache })
    }
}

impl Serialize for CacheSettings {
    /// One flat object: the proxy's keys, then the cache's.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut all = match serde_json::to_value(&self.proxy).map_err(S::Error::custom)? {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        if let serde_json::Value::Object(ours) =
            serde_json::to_value(&self.cache).map_err(S::Error::custom)?
        {
            all.extend(ours.into_iter().filter(|(_, v)| !v.is_null()));
        }
        all.serialize(s)
    }
}

/// A patch-mode configuration that sets every key the cache's own settings
/// carry (port, splice list, TLS minimum, allowed domains): the fixture both
/// sides of the contract test with (PID 1's writer and the cache's checks).
#[doc(hidden)]
pub fn example_configuration() -> Config {
    Config::default()
        .with_changes(&[
            ("cache.port", "3129"),
            ("cache.splice", "pinned.example.com"),
            ("tls.min_version", "1.3"),
            ("allowed_domains", "example.com"),
            ("patch.enabled", "true"),
        ])
        .expect("the example configuration follows the rules")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_keys_are_the_fields() {
        let v = serde_json::to_value(CacheOnly {
            disk_dir: Some("/d".into()),
            disk_max_bytes: Some(1),
            origin_ca_bundle: Some("/o".into()),
            ..CacheOnly::default()
        })
        .unwrap();
        let mut names: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        let mut keys = CACHE_KEYS.map(String::from).to_vec();
        names.sort();
        keys.sort();
        assert_eq!(names, keys);
    }

    #[test]
    fn defaults_listen_on_the_cache_port_and_the_written_file_reads_back() {
        assert_eq!(
            CacheSettings::parse("{}").unwrap(),
            CacheSettings::default()
        );
        assert_eq!(CacheSettings::default().proxy.listen.port(), 8080);
        let c = Config::default()
            .with_changes(&[("cache.port", "3129"), ("patch.enabled", "true")])
            .unwrap();
        let s = CacheSettings::from_config(
            &c,
            CachePlacement {
                ca_dir: "/ca".into(),
                memory_bytes: 1 << 24,
                disk_dir: Some("/p/cache".into()),
                origin_ca_bundle: None,
            },
        );
        let text = crate::to_text(&s);
        assert_eq!(CacheSettings::parse(&text).unwrap(), s);
        assert!(!text.contains("null"), "{text}");
        let err = CacheSettings::parse(r#"{"memory_byte": 1}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `memory_byte`"),
            "{err}"
        );
    }
}
