//! The management API (docs/management-api.md) between the appliance's
//! management agent and the platform: the messages and the rules both
//! sides check ([`api`]), and the little HTTP/1.1 they speak ([`http`]).
//!
//! This crate owns the wire contract only; it must not hold either side's
//! behaviour (the agent's schedule, the platform's storage), so the agent,
//! the platform simulator and the platform server share it as siblings.

pub mod api;
pub mod http;
