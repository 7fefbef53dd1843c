//! Counters for the Info/Stats screens and the management agent: unique
//! clients in the last hour, active tunnels, bytes each way, refusals by
//! reason. Cheap to update from every connection task; a [`Stats::snapshot`]
//! is the `/stats` answer's type ([`ProxyStats`]).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gateway_unit_stats::ProxyStats;

/// The window of "unique clients" (QGS shows agents seen in the last hour).
pub const CLIENT_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicU64,
    requests: AtomicU64,
    active_tunnels: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    clients: Mutex<HashMap<IpAddr, Instant>>,
}

impl Stats {
    pub fn client_seen(&self, ip: IpAddr) {
        self.client_seen_at(ip, Instant::now());
    }

    pub fn client_seen_at(&self, ip: IpAddr, now: Instant) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.clients.lock() {
            c.insert(ip, now);
        }
    }

    /// One more request head read (of any kind, refused ones included).
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tunnel_opened(&self) {
        self.active_tunnels.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tunnel_closed(&self) {
        self.active_tunnels.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, up: u64, down: u64) {
        self.bytes_up.fetch_add(up, Ordering::Relaxed);
        self.bytes_down.fetch_add(down, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: &'static str) {
        if let Ok(mut r) = self.refusals.lock() {
            *r.entry(reason).or_default() += 1;
        }
    }

    /// The counters now; clients not seen within [`CLIENT_WINDOW`] of `now`
    /// are forgotten.
    pub fn snapshot(&self, now: Instant) -> ProxyStats {
        let unique_clients = self
            .clients
            .lock()
            .map(|mut c| {
                c.retain(|_, seen| now.saturating_duration_since(*seen) < CLIENT_WINDOW);
                c.len() as u64
            })
            .unwrap_or(0);
        ProxyStats {
            connections: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            active_tunnels: self.active_tunnels.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
            unique_clients,
            refusals: self
                .refusals
                .lock()
                .map(|r| r.iter().map(|(k, v)| (k.to_string(), *v)).collect())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_clients_age_out_after_an_hour() {
        let s = Stats::default();
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        s.client_seen_at(a, t0);
        s.client_seen_at(a, t0);
        s.client_seen_at(b, t0 + Duration::from_secs(1800));
        assert_eq!(s.snapshot(t0 + Duration::from_secs(1800)).unique_clients, 2);
        assert_eq!(s.snapshot(t0 + Duration::from_secs(3600)).unique_clients, 1);
        assert_eq!(s.snapshot(t0 + Duration::from_secs(5400)).unique_clients, 0);
        assert_eq!(s.snapshot(t0).connections, 3);
    }

    #[test]
    fn counters() {
        let s = Stats::default();
        s.tunnel_opened();
        s.tunnel_opened();
        s.tunnel_closed();
        s.add_bytes(10, 20);
        s.refused("destination");
        s.refused("destination");
        s.refused("port");
        s.request();
        let snap = s.snapshot(Instant::now());
        assert_eq!(
            (snap.active_tunnels, snap.bytes_up, snap.bytes_down),
            (1, 10, 20)
        );
        assert_eq!(snap.refusals.get("destination"), Some(&2));
        assert_eq!(snap.refusals.get("port"), Some(&1));
        assert_eq!(
            snap.to_json(),
            r#"{"connections":0,"requests":1,"active_tunnels":1,"bytes_up":10,"bytes_down":20,"unique_clients_last_hour":0,"refusals":{"destination":2,"port":1}}"#
        );
    }
}
