//! The proxy service (port 1080): an explicit HTTP/1.1 forward proxy for the
//! endpoint agents, with the appliance's connection security.
//!
//! This crate is the service's front: its command line and settings file
//! ([`cli`], [`settings`]) and its connection loop ([`server`]: each
//! request checked, then tunnelled, forwarded or answered by a local
//! endpoint). The engine under it, which the cache shares, is
//! `gateway-forward-proxy`'s (policy, configuration, egress, forwarding,
//! the tunnels' relay, counters); the HTTP/1.1 wire code is
//! `gateway-http`'s. It does not read the appliance configuration store:
//! its settings are handed to it.

pub mod cli;
pub mod server;
pub mod settings;
