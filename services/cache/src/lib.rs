//! The cache service (port 8080): agents use it as their HTTPS proxy and
//! trust the appliance CA; it terminates their TLS with leaves it mints
//! ([`ca`], [`leaf`]), serves what it holds and fetches the rest from the
//! origin once, however many agents ask at the same time.
//!
//! This crate owns the CA files in its CA directory, the cache policy
//! (what may be stored and served, sans-IO), the memory and disk tiers and
//! the interception. Connection security, the client side of its port,
//! upstream chaining and forwarding are the forward-proxy engine's
//! ([`gateway_forward_proxy`], which the proxy shares), the HTTP/1.1 wire
//! code `gateway_http`'s, reused as they are. It does not read the configuration store: init hands it a
//! settings file.

pub mod blocks;
pub mod ca;
pub mod cli;
pub mod disk;
pub mod fetch;
pub mod leaf;
pub mod object;
pub mod prefixed;
pub mod rules;
pub mod run;
pub mod serve;
pub mod server;
pub mod service;
pub mod settings;
pub mod stats;
pub mod store;
pub mod tls;
