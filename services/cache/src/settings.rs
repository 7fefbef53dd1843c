//! The cache's settings file, as init writes it: the proxy's settings
//! (same keys, same checks, read by the proxy's own code) plus the cache's
//! own keys below. JSON, unknown keys refused, errors name their key.

use std::path::PathBuf;
use std::sync::Arc;

use gateway_proxy::server::ProxyConfig;
use gateway_proxy::settings::{ProxySettings, SettingsError};
use serde::Deserialize;

use crate::leaf::MinVersion;

/// The keys only the cache has. Everything else in the file is the
/// proxy's (`listen`, `allowed_domains`, `hosts`, `resolv_conf`, `patch`,
/// `agent_networks`, `upstream`, timeouts, `max_connections`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
    "1.2".into()
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

/// The whole settings file, read.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub proxy: ProxySettings,
    pub cache: CacheOnly,
}

/// The running configuration the settings describe (less the CA and the
/// tiers, which the service opens itself).
#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub proxy: ProxyConfig,
    pub min_version: MinVersion,
    pub splice: Vec<String>,
    pub origin_tls: Arc<rustls::ClientConfig>,
    pub max_object_bytes: u64,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl CacheSettings {
    pub fn load(path: &std::path::Path) -> Result<Self, SettingsError> {
        gateway_proxy::settings::load_with(path, Self::parse)
    }

    /// Splits the file into the cache's keys and the proxy's, each read by
    /// its own strict parser (a key neither knows is refused by the proxy's).
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let parse_err = |source| SettingsError::Parse {
            path: String::new(),
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
            .or_insert_with(|| serde_json::Value::String("0.0.0.0:8080".into()));
        let cache: CacheOnly =
            serde_json::from_value(serde_json::Value::Object(ours)).map_err(parse_err)?;
        let proxy = ProxySettings::parse(&serde_json::Value::Object(all).to_string())?;
        let s = CacheSettings { proxy, cache };
        s.to_config()?;
        Ok(s)
    }

    pub fn to_config(&self) -> Result<CacheConfig, SettingsError> {
        let c = &self.cache;
        let min_version = match c.tls_min_version.as_str() {
            "1.2" => MinVersion::Tls12,
            "1.3" => MinVersion::Tls13,
            other => {
                return Err(invalid(
                    "tls_min_version",
                    format!(
                        "{other:?} is not 1.2 or 1.3 (TLS 1.0 and 1.1 are not offered: rustls does not implement them)"
                    ),
                ))
            }
        };
        // Each entry follows the allowed-domains rules (no scheme, no path,
        // a valid name); the list has no count limit.
        for d in &c.splice {
            gateway_proxy::policy::AllowedDomain::try_from(d.as_str())
                .map_err(|e| invalid("splice", e.to_string()))?;
        }
        if c.memory_bytes < (1 << 20) {
            return Err(invalid("memory_bytes", "must be at least 1 MiB"));
        }
        if c.max_object_bytes == 0 {
            return Err(invalid("max_object_bytes", "must be at least 1"));
        }
        if c.leaf_cache == 0 {
            return Err(invalid("leaf_cache", "must be at least 1"));
        }
        if c.disk_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(invalid("disk_dir", "must be an absolute path"));
        }
        let origin_tls = crate::tls::origin_config(c.origin_ca_bundle.as_deref())
            .map_err(|e| invalid("origin_ca_bundle", e.to_string()))?;
        Ok(CacheConfig {
            proxy: self.proxy.to_config()?,
            min_version,
            splice: c.splice.iter().map(|d| d.to_ascii_lowercase()).collect(),
            origin_tls,
            max_object_bytes: c.max_object_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_full_file() {
        let s = CacheSettings::parse("{}").unwrap();
        assert_eq!(s.proxy.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.cache.memory_bytes, 64 << 20);
        let s = CacheSettings::parse(
            r#"{"listen": "127.0.0.1:3129", "allowed_domains": ["example.com"], "patch": true,
                "ca_dir": "/tmp/ca", "tls_min_version": "1.3", "splice": ["pinned.example.com"],
                "memory_bytes": 10485760, "disk_dir": "/var/cache/patch", "disk_reserve_bytes": 0,
                "max_object_bytes": 1000, "leaf_cache": 5}"#,
        )
        .unwrap();
        let c = s.to_config().unwrap();
        assert_eq!(c.min_version, MinVersion::Tls13);
        assert_eq!(c.splice, vec!["pinned.example.com"]);
        assert_eq!(s.proxy.listen, "127.0.0.1:3129".parse().unwrap());
    }

    #[test]
    fn errors_name_the_key() {
        for (text, needle) in [
            (
                r#"{"tls_min_version": "1.1"}"#,
                "tls_min_version: \"1.1\" is not 1.2 or 1.3",
            ),
            (
                r#"{"memory_bytes": 5}"#,
                "memory_bytes: must be at least 1 MiB",
            ),
            (r#"{"splice": ["https://x.com"]}"#, "splice: "),
            (
                r#"{"disk_dir": "rel"}"#,
                "disk_dir: must be an absolute path",
            ),
            (
                r#"{"origin_ca_bundle": "/nonexistent"}"#,
                "origin_ca_bundle",
            ),
            (r#"{"memmory_bytes": 5}"#, "unknown field `memmory_bytes`"),
            (
                r#"{"idle_timeout_s": 0}"#,
                "idle_timeout_s: 0 is not between",
            ),
        ] {
            let err = CacheSettings::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
