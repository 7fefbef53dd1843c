//! The proxy service (port 1080): an explicit HTTP/1.1 forward proxy for the
//! endpoint agents, with the appliance's connection security.
//!
//! This crate owns the proxy's protocol logic, written sans-IO so it is tested
//! without sockets: parsing a request head with its size limits ([`head`]),
//! message framing and the chunked decoder ([`body`]), an origin's response
//! head ([`response`]), and deciding whether a destination and a client are
//! allowed ([`policy`]). The network layer (accepting, tunnelling, plain-HTTP
//! keep-alive in [`forward`], the tunnels' relay in [`relay`], upstream
//! chaining) is built on these.
//! It does not read the appliance configuration store: its settings are
//! handed to it.

pub mod body;
pub mod cli;
pub mod forward;
pub mod head;
pub mod policy;
pub mod relay;
pub mod response;
pub mod server;
pub mod settings;
pub mod stats;
pub mod upstream;

/// The shared resolver (hosts map, then DNS), re-exported for the proxy's
/// callers and tests.
pub use gateway_resolver as resolver;
