//! The cache's settings file, as init writes it: the typed contract is
//! `gateway_unit_settings::CacheSettings` (the proxy's keys, read and
//! checked by the proxy's own code, plus the cache's own keys); this module
//! checks the cache's values, with errors naming their key.

use std::path::Path;
use std::sync::Arc;

use gateway_forward_proxy::config::{ProxyConfig, ToProxyConfig};
pub use gateway_unit_settings::{CacheOnly, CacheSettings, SettingsError};

use crate::leaf::MinVersion;

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
    SettingsError::invalid(key, reason)
}

/// Reads and checks the settings file at `path`.
pub fn load(path: &Path) -> Result<CacheSettings, SettingsError> {
    gateway_unit_settings::load(path, parse)
}

/// Parses and checks settings text.
pub fn parse(text: &str) -> Result<CacheSettings, SettingsError> {
    let s = CacheSettings::parse(text)?;
    s.to_config()?;
    Ok(s)
}

/// The cache's reading of its settings: the running configuration.
pub trait ToCacheConfig {
    fn to_config(&self) -> Result<CacheConfig, SettingsError>;
}

impl ToCacheConfig for CacheSettings {
    fn to_config(&self) -> Result<CacheConfig, SettingsError> {
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
            gateway_forward_proxy::policy::AllowedDomain::try_from(d.as_str())
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
        let s = parse("{}").unwrap();
        assert_eq!(s.proxy.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.cache.memory_bytes, 64 << 20);
        let s = parse(
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

    /// The contract from the other side: what PID 1 writes from the
    /// configuration passes the cache's checks (patch mode with its disk
    /// directory, and the defaults).
    #[test]
    fn the_settings_pid1_writes_pass_the_checks() {
        use gateway_config::Config;
        use gateway_unit_settings::CachePlacement;
        let patch = gateway_unit_settings::cache::example_configuration();
        for (c, disk_dir) in [
            (patch, Some("/var/lib/patch/cache".into())),
            (Config::default(), None),
        ] {
            let placement = CachePlacement {
                ca_dir: "/var/lib/units/cache/ca".into(),
                memory_bytes: 64 << 20,
                disk_dir,
                origin_ca_bundle: None,
            };
            let s = CacheSettings::from_config(&c, placement);
            let parsed = parse(&gateway_unit_settings::to_text(&s)).unwrap();
            assert_eq!(parsed, s);
        }
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
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
