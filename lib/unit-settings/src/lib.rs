//! The settings file each unit reads (`/run/units/<name>/settings.json`):
//! one typed contract per unit, written by PID 1 from the configuration
//! (`from_config`) and deserialised by the service with the same type, so
//! a key added here is a field the compiler chases on both sides.
//!
//! This crate owns the shape of those files, their defaults (each written
//! once) and the one error type for reading them. It must not validate what
//! a service decides (allowed domains, timeouts, TLS versions): each service
//! keeps its own checks on the value it reads, with errors naming the key.

pub mod agent;
pub mod cache;
mod error;
pub mod proxy;
pub mod sftp;

pub use agent::AgentSettings;
pub use cache::{CacheOnly, CachePlacement, CacheSettings};
pub use error::{load, parse_json, SettingsError};
pub use proxy::{ProxySettings, UpstreamSettings};
pub use sftp::SftpSettings;

pub use gateway_paths::settings_path;

/// The text of a settings file: pretty JSON and a final newline.
pub fn to_text<T: serde::Serialize>(settings: &T) -> String {
    // Serialising these plain structs (strings, numbers, maps with string
    // keys) cannot fail.
    serde_json::to_string_pretty(settings).unwrap_or_default() + "\n"
}
