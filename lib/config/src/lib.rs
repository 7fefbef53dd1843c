//! The appliance's configuration: one typed, versioned schema, the rules every
//! key obeys, its text form (the same for the kernel command line seed, the
//! control API and `gatewayctl`), and the store that persists it on the state
//! partition with atomic replace.
//!
//! This crate owns what a valid configuration is and how it is kept; it must
//! not apply anything (no sockets, no processes): PID 1 reads a [`Config`]
//! and does the work. Services and tools link it for the types and the
//! checks, so a rule is written once.

pub mod domain;
pub mod keys;
pub mod rules;
pub mod schema;
pub mod seed;
pub mod store;

pub use keys::{key_info, KeyInfo, KEYS};
pub use rules::ConfigError;
pub use schema::{
    Config, NetMode, Secret, TlsVersion, DEFAULT_NTP_SERVERS, REDACTED, SCHEMA_VERSION,
};
pub use seed::Seed;
pub use store::{Store, StoreError};
