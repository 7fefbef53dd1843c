//! Time synchronisation for the gateway: the NTP client PID 1 runs.
//!
//! This crate owns the NTP protocol (packets, samples, the per-server
//! filter, false-ticker rejection, the step/slew decision and the poll
//! interval), the clock floor, and a small async task that talks to the
//! servers over UDP and publishes a status. It owns nothing else: it does
//! not read the settings (PID 1 hands it an `NtpConfig`), does not configure
//! DNS (it asks a `Resolve`), never touches the clock except through a
//! `Clock`, and must never hold up boot or the services: `run` is spawned
//! and `enforce_floor` returns at once.
//!
//! Layout: a protocol core with no I/O and no `now()` inside (`packet`,
//! `sample`, `filter`, `select`, `discipline`, `source`, `engine`), and the
//! OS boundary (`clock`, `client`). See docs/time.md.

pub mod client;
pub mod clock;
pub mod config;
pub mod discipline;
pub mod engine;
pub mod filter;
pub mod floor;
pub mod packet;
pub mod sample;
pub mod select;
pub mod source;
pub mod status;
pub mod timestamp;

pub use client::{exchange, run, Resolve, SystemResolver};
pub use clock::{Clock, ClockError, OffsetClock, SystemClock};
pub use config::{default_servers, ConfigError, NtpConfig, DEFAULT_SERVERS};
pub use discipline::ClockAction;
pub use engine::{Engine, PollRequest};
pub use floor::{clock_floor, enforce_floor};
pub use status::{NtpStatus, ServerState, ServerStatus};
