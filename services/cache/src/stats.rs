//! The cache's counters: bytes served from the cache and fetched from
//! origins (the bandwidth saved), hits and misses, and with the proxy's
//! counters (connections, unique clients in the last hour, refusals) and the
//! tiers' sizes, the `GET /stats` answer (its type is
//! `gateway_unit_stats::CacheStats`, which PID 1 reads), as the proxy's does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use gateway_forward_proxy::stats::CLIENT_WINDOW;
use gateway_unit_stats::ProxyStats;

use crate::store::TierCounts;

#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
    revalidations: AtomicU64,
    passed: AtomicU64,
    bytes_from_cache: AtomicU64,
    bytes_from_origin: AtomicU64,
    /// Requests served from an origin fetch started by another request.
    collapsed: AtomicU64,
    /// Disk blocks read and checked against their SHA-256 (what checking
    /// costs: a range reads the blocks it touches, not the whole file).
    disk_blocks_verified: AtomicU64,
    /// Disk objects dropped because a block did not match its SHA-256.
    disk_damaged: AtomicU64,
    /// Fills shared by their readers without being stored (too large for
    /// the tiers, of unknown length grown too large, not storable statuses).
    transient_fills: AtomicU64,
    /// The most bytes one such fill held at once (its window bounds it).
    transient_peak_bytes: AtomicU64,
    /// Readers cut off for falling a window behind such a fill.
    readers_detached: AtomicU64,
    /// Agents (clients allowed by the policy that sent a proxy request)
    /// and when each was last seen. The proxy's own unique clients count
    /// every connection, refused ones and the appliance's health probes
    /// included: not what "active agents" means.
    agents: Mutex<HashMap<IpAddr, Instant>>,
}

/// What a request was, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Hit,
    Miss,
    /// Joined a fill another request started.
    Collapsed,
    /// Answered from the cache after a 304 from the origin.
    Revalidated,
    /// Relayed, not stored.
    Passed,
}

impl CacheStats {
    pub fn served(&self, what: Served) {
        let c = match what {
            Served::Hit => &self.hits,
            Served::Miss => &self.misses,
            Served::Collapsed => &self.collapsed,
            Served::Revalidated => &self.revalidations,
            Served::Passed => &self.passed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// An agent used the cache (see [`CacheStats::agents`]).
    pub fn agent_seen(&self, ip: IpAddr) {
        self.agent_seen_at(ip, Instant::now());
    }

    pub fn agent_seen_at(&self, ip: IpAddr, now: Instant) {
        if let Ok(mut a) = self.agents.lock() {
            a.insert(ip, now);
        }
    }

    /// Agents seen within [`CLIENT_WINDOW`] of `now` (the others are
    /// forgotten).
    pub fn active_agents(&self, now: Instant) -> usize {
        self.agents
            .lock()
            .map(|mut a| {
                a.retain(|_, seen| now.saturating_duration_since(*seen) < CLIENT_WINDOW);
                a.len()
            })
            .unwrap_or(0)
    }

    /// Body bytes a client got from a stored object.
    pub fn from_cache(&self, n: u64) {
        self.bytes_from_cache.fetch_add(n, Ordering::Relaxed);
    }

    /// Disk blocks read and checked.
    pub fn blocks_verified(&self, n: u64) {
        self.disk_blocks_verified.fetch_add(n, Ordering::Relaxed);
    }

    /// A disk object was dropped for a block that did not match.
    pub fn damaged(&self) {
        self.disk_damaged.fetch_add(1, Ordering::Relaxed);
    }

    /// A fill is shared without being stored.
    pub fn transient_fill(&self) {
        self.transient_fills.fetch_add(1, Ordering::Relaxed);
    }

    /// A fill not stored holds `n` bytes now.
    pub fn transient_held(&self, n: u64) {
        self.transient_peak_bytes.fetch_max(n, Ordering::Relaxed);
    }

    /// `n` readers were cut off for falling too far behind.
    pub fn detached(&self, n: u64) {
        self.readers_detached.fetch_add(n, Ordering::Relaxed);
    }

    /// Body bytes fetched from an origin (fills and relayed responses).
    pub fn from_origin(&self, n: u64) {
        self.bytes_from_origin.fetch_add(n, Ordering::Relaxed);
    }

    /// The `/stats` answer: these counters, the tiers' and the proxy's
    /// (`proxy`).
    pub fn answer(&self, proxy: ProxyStats, tiers: TierCounts) -> gateway_unit_stats::CacheStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (hits, collapsed, revalidated) =
            (l(&self.hits), l(&self.collapsed), l(&self.revalidations));
        let (misses, passed) = (l(&self.misses), l(&self.passed));
        let shared = hits + collapsed + revalidated;
        let total = shared + misses + passed;
        let ratio = if total == 0 {
            0.0
        } else {
            shared as f64 / total as f64
        };
        gateway_unit_stats::CacheStats {
            hits,
            collapsed,
            revalidated,
            misses,
            passed,
            // Four decimals, as the answer always gave it.
            hit_ratio: (ratio * 10_000.0).round() / 10_000.0,
            bytes_from_cache: l(&self.bytes_from_cache),
            bytes_from_origin: l(&self.bytes_from_origin),
            memory_objects: tiers.memory_objects,
            memory_bytes: tiers.memory_bytes,
            disk_objects: tiers.disk_objects,
            disk_bytes: tiers.disk_bytes,
            disk_blocks_verified: l(&self.disk_blocks_verified),
            disk_damaged: l(&self.disk_damaged),
            transient_fills: l(&self.transient_fills),
            transient_window_bytes: tiers.transient_window,
            transient_peak_bytes: l(&self.transient_peak_bytes),
            readers_detached: l(&self.readers_detached),
            active_agents: self.active_agents(Instant::now()) as u64,
            proxy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn active_agents_age_out_after_an_hour() {
        let s = CacheStats::default();
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        s.agent_seen_at(a, t0);
        s.agent_seen_at(a, t0);
        s.agent_seen_at(b, t0 + Duration::from_secs(1800));
        assert_eq!(s.active_agents(t0 + Duration::from_secs(1800)), 2);
        assert_eq!(s.active_agents(t0 + Duration::from_secs(3700)), 1);
    }

    /// What PID 1 reads from `/stats` (init/src/stats.rs tests the same
    /// answer read back), from the counters as the cache keeps them.
    #[test]
    fn the_answer_from_the_counters() {
        let counters = CacheStats::default();
        for what in [Served::Hit, Served::Hit, Served::Revalidated, Served::Miss] {
            counters.served(what);
        }
        counters.from_cache(3 << 20);
        counters.from_origin(1 << 20);
        counters.agent_seen("10.0.0.7".parse().unwrap());
        counters.agent_seen("10.0.0.8".parse().unwrap());
        let tiers = TierCounts {
            memory_objects: 12,
            memory_bytes: 40_960,
            disk_objects: 3,
            disk_bytes: 5 << 20,
            ..Default::default()
        };
        let proxy = gateway_forward_proxy::stats::Stats::default().snapshot(Instant::now());
        assert_eq!(
            counters.answer(proxy, tiers),
            gateway_unit_stats::CacheStats {
                hits: 2,
                revalidated: 1,
                misses: 1,
                hit_ratio: 0.75,
                bytes_from_cache: 3 << 20,
                bytes_from_origin: 1 << 20,
                memory_objects: 12,
                memory_bytes: 40_960,
                disk_objects: 3,
                disk_bytes: 5 << 20,
                active_agents: 2,
                ..Default::default()
            }
        );
        // Two thirds to four decimals, as the hand-written answer had it.
        let c = CacheStats::default();
        for what in [Served::Hit, Served::Hit, Served::Miss] {
            c.served(what);
        }
        let json = c
            .answer(Default::default(), TierCounts::default())
            .to_json();
        assert!(json.contains(r#""hit_ratio":0.6667,"#), "{json}");
    }
}
