//! HTTP/1.1 on the wire, as the forward proxy, the cache and the management
//! API read and write it: a proxy request head with its size limits and
//! target forms ([`head`]), message framing and the chunked decoder
//! ([`body`]), an origin's response head and its copy for the client
//! ([`response`]), CONNECT between proxies ([`connect`]), the short answers
//! a service writes itself with their reason phrases ([`answer`]), and the
//! access-log line of one request ([`access`]).
//!
//! This crate owns the bytes, not what is done with them: the parsers are
//! sans-IO (bytes in, a parsed head or "read more" out), the writers take
//! any `AsyncWrite`. It must not open sockets, resolve names, read a
//! clock for a decision or know the policy, the cache or the management
//! API's meaning; those are its users' (`gateway-forward-proxy`,
//! `gateway-cache`, `gateway-management-api`), siblings on it.

pub mod access;
pub mod answer;
pub mod body;
pub mod connect;
pub mod head;
pub mod response;
