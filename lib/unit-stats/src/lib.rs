//! The `GET /stats` answers of the service units, one serde type per
//! unit's JSON: the proxy's counters ([`ProxyStats`], on its port and as the
//! `proxy` part of the cache's) and the cache's ([`CacheStats`],
//! docs/cache.md). The service fills and serialises its type; PID 1 reads
//! the cache's answer with the same type (init/src/stats.rs), so the two
//! sides cannot drift apart.
//!
//! This crate owns the JSON's shape and field names, not the counting (the
//! services' own) nor what PID 1 publishes from it (the control API's
//! `stats`, `gateway-control`'s). Every field is defaulted: an answer from a
//! service that adds or drops a counter still parses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The proxy's counters: connections, request heads read, tunnels open,
/// bytes each way, unique clients of the last hour, refusals by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyStats {
    pub connections: u64,
    /// Request heads read; a keep-alive connection carries several.
    pub requests: u64,
    pub active_tunnels: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Client addresses seen in the last hour, refused ones included.
    #[serde(rename = "unique_clients_last_hour")]
    pub unique_clients: u64,
    /// Refusals by reason label (`destination`, `port`, `client`, ...).
    pub refusals: BTreeMap<String, u64>,
}

/// The cache's counters (docs/cache.md, "Statistics"), with the proxy's
/// for its port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheStats {
    /// Served from a stored or filling object.
    pub hits: u64,
    /// Waited for a fill another request started.
    pub collapsed: u64,
    /// A stored copy confirmed by a 304.
    pub revalidated: u64,
    /// Started a fill.
    pub misses: u64,
    /// Relayed, not stored.
    pub passed: u64,
    /// (hits + collapsed + revalidated) / all requests, 0-1, to 4 decimals.
    pub hit_ratio: f64,
    /// Body bytes clients got from the cache instead of an origin.
    pub bytes_from_cache: u64,
    /// Body bytes fetched from origins (fills and relayed responses).
    pub bytes_from_origin: u64,
    pub memory_objects: u64,
    pub memory_bytes: u64,
    pub disk_objects: u64,
    pub disk_bytes: u64,
    /// Disk blocks read and checked against their SHA-256.
    pub disk_blocks_verified: u64,
    /// Disk objects dropped because a block did not match.
    pub disk_damaged: u64,
    /// Fills shared by their readers without being stored.
    pub transient_fills: u64,
    /// The bytes each such fill may hold behind its readers.
    pub transient_window_bytes: u64,
    /// The most bytes one such fill held at once.
    pub transient_peak_bytes: u64,
    /// Readers cut off for holding such a fill's window full too long.
    pub readers_detached: u64,
    /// Agents that used the cache in the last 60 minutes.
    pub active_agents: u64,
    /// The proxy's counters for the cache's port.
    pub proxy: ProxyStats,
}

impl ProxyStats {
    /// The answer's JSON (one line).
    pub fn to_json(&self) -> String {
        // Numbers and string keys only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl CacheStats {
    /// The answer's JSON (one line).
    pub fn to_json(&self) -> String {
        // Numbers and string keys only (the ratio is finite): serialising
        // cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_names_are_the_documented_ones() {
        let c = CacheStats {
            hits: 1,
            hit_ratio: 0.3333,
            proxy: ProxyStats {
                unique_clients: 2,
                refusals: [("port".to_owned(), 1)].into(),
                ..ProxyStats::default()
            },
            ..CacheStats::default()
        };
        assert_eq!(
            c.to_json(),
            r#"{"hits":1,"collapsed":0,"revalidated":0,"misses":0,"passed":0,"hit_ratio":0.3333,"bytes_from_cache":0,"bytes_from_origin":0,"memory_objects":0,"memory_bytes":0,"disk_objects":0,"disk_bytes":0,"disk_blocks_verified":0,"disk_damaged":0,"transient_fills":0,"transient_window_bytes":0,"transient_peak_bytes":0,"readers_detached":0,"active_agents":0,"proxy":{"connections":0,"requests":0,"active_tunnels":0,"bytes_up":0,"bytes_down":0,"unique_clients_last_hour":2,"refusals":{"port":1}}}"#
        );
        let back: CacheStats = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(back, c);
        // A partial answer parses, the rest defaulted.
        let partial: CacheStats = serde_json::from_str(r#"{"hits":1,"hit_ratio":1.0}"#).unwrap();
        assert_eq!((partial.hits, partial.hit_ratio), (1, 1.0));
    }
}
