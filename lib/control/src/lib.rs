//! The control API of PID 1: the JSON protocol spoken on its Unix socket
//! (one request per line, one response per line), the server side framing
//! (PID 1 supplies the [`server::Handler`]), a blocking client, and the
//! `gatewayctl` command line built on that client.
//!
//! This crate owns the protocol, not its meaning: it must not read or write
//! the configuration, touch the network or the clock. PID 1 does those in
//! its handler; the console TUI and `gatewayctl` are clients.

pub mod cli;
pub mod client;
pub mod protocol;
pub mod server;

pub use client::{Client, ClientError};
pub use protocol::{ApiError, Request, Response, DEFAULT_SOCKET};
