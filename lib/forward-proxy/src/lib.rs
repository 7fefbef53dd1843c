//! The forward-proxy engine the proxy (port 1080) and the cache (port 8080)
//! share: who may connect and which destinations they may reach
//! ([`policy`], sans-IO), the running configuration ([`config`], read from
//! the unit's settings), the client side of a service port ([`client`]:
//! accept loop, request heads within their limits, refusals, `/health` and
//! `/stats`), reaching a destination ([`egress`]: resolve, the local-address
//! rule, connect, an upstream proxy's tunnel; [`upstream`] says which
//! destinations go through it), one plain-HTTP exchange ([`forward`]),
//! tunnels and their relay ([`relay`]), and the counters ([`stats`]).
//!
//! This crate owns how a request is checked, connected and relayed; the
//! bytes on the wire are `gateway-http`'s. It must not hold what one
//! service alone does (the proxy's connection loop and binary front are
//! `gateway-proxy`'s, the cache's policy, tiers and interception
//! `gateway-cache`'s), nor read the configuration store or a settings file:
//! its settings are handed to it.

pub mod client;
pub mod config;
pub mod egress;
pub mod forward;
pub mod policy;
pub mod relay;
pub mod stats;
pub mod upstream;
