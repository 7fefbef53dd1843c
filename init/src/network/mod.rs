//! The appliance on its network, as PID 1 keeps it: eth0 and DNS (here:
//! the network manager follows the `net.*` keys, and /run/resolv.conf,
//! where /etc/resolv.conf points, follows the `dns.*` keys and the DHCP
//! lease), the hosts map ([`etcfiles`]), PID 1's own name lookups
//! ([`names`]) and the time from NTP servers ([`timesync`]). Only what
//! changed is redone: a DNS change rewrites the file and leaves eth0 alone;
//! a network change reconfigures eth0.

pub mod etcfiles;
pub mod names;
pub mod timesync;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_config::{Config, NetMode};
use gateway_control::protocol::{DnsStatus, LeaseStatus, NetworkStatus};
use gateway_net::{resolv, Mode, NetConfig, NetManager, NetStatus};
use tracing::{error, info, warn};

use crate::state::Appliance;

pub use gateway_net::IFACE;
pub const RESOLV_CONF: &str = "/run/resolv.conf";

/// The manager's configuration for the `net.*` keys.
pub fn net_config(config: &Config) -> NetConfig {
    let mode = match (config.net.mode, config.net.address) {
        (NetMode::Static, Some(net)) => Mode::Static {
            address: net.addr(),
            prefix: net.prefix_len(),
            gateway: config.net.gateway,
        },
        // The config's rules make static without an address impossible;
        // DHCP is the safe reading if it ever happened.
        (NetMode::Static, None) | (NetMode::Dhcp, _) => Mode::Dhcp,
        (NetMode::Unconfigured, _) => Mode::Unconfigured,
    };
    NetConfig { mode }
}

fn mode_name(mode: &Mode) -> &'static str {
    match mode {
        Mode::Dhcp => "dhcp",
        Mode::Static { .. } => "static",
        Mode::Unconfigured => "unconfigured",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the console and `gatewayctl status` show of eth0.
pub fn summarise(s: &NetStatus, now_unix: u64) -> NetworkStatus {
    NetworkStatus {
        interface: s.interface.clone(),
        mode: s.mode.as_ref().map(mode_name).unwrap_or("").to_owned(),
        mac: s.mac.clone(),
        carrier: s.carrier,
        address: s.address.map(|a| format!("{}/{}", a.address, a.prefix)),
        gateway: s.gateway.map(|g| g.to_string()),
        lease: s.lease.as_ref().map(|l| LeaseStatus {
            server: l.server.to_string(),
            age_s: now_unix.saturating_sub(l.obtained_at_unix),
            expires_in_s: Some(l.expires_at_unix.saturating_sub(now_unix)),
        }),
        state: match &s.last_error {
            Some(e) => format!("{} (last error: {e})", s.state),
            None => s.state.clone(),
        },
    }
}

/// The DNS in effect: manual servers win over DHCP's; a manual search
/// domain over the lease's.
pub fn dns_in_effect(config: &Config, s: &NetStatus) -> (DnsStatus, String) {
    let servers: &[Ipv4Addr] = resolv::effective(&config.dns.servers, &s.dhcp_dns);
    let search = config.dns.search.clone().or_else(|| s.dhcp_domain.clone());
    let source = if !config.dns.servers.is_empty() {
        "manual"
    } else if !s.dhcp_dns.is_empty() {
        "dhcp"
    } else {
        "none"
    };
    let text = resolv::render(servers, search.as_deref());
    let status = DnsStatus {
        servers: servers.iter().map(|a| a.to_string()).collect(),
        search,
        source: source.to_owned(),
    };
    (status, text)
}

/// Runs for the life of PID 1: takes eth0 (waiting for it if the NIC is
/// missing), applies `net.*` whenever it changes, and keeps resolv.conf and
/// the published status current.
pub async fn follow(appliance: Arc<Appliance>) {
    let mut config = appliance.subscribe();
    let mut reported = String::new();
    let mut manager = loop {
        match NetManager::new(IFACE).await {
            Ok(m) => break m,
            Err(e) => {
                // Once per distinct reason: a VM without a NIC would
                // otherwise fill the console.
                if e.to_string() != reported {
                    reported = e.to_string();
                    warn!("network: {IFACE}: {e}; retrying every 5 s");
                }
                appliance.network.send_replace(NetworkStatus {
                    interface: IFACE.into(),
                    state: format!("no {IFACE}: {e}"),
                    ..NetworkStatus::default()
                });
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let mut status = manager.status();
    let mut applied: Option<NetConfig> = None;
    let mut resolv_written: Option<String> = None;
    let mut last = NetStatus::new(IFACE);
    loop {
        let current = config.borrow_and_update().clone();
        let want = net_config(&current);
        if applied.as_ref() != Some(&want) {
            info!("network: {IFACE}: applying {}", describe(&want.mode));
            match manager.apply(want.clone()).await {
                Ok(()) => info!("network: {IFACE}: {} applied", mode_name(&want.mode)),
                Err(e) => error!("network: {IFACE}: {e}"),
            }
            // Not retried in a loop: the status shows the error, and the
            // next change (or carrier return) tries again.
            applied = Some(want);
        }
        let s = status.borrow_and_update().clone();
        report_changes(&last, &s);
        let (dns, text) = dns_in_effect(&current, &s);
        if resolv_written.as_ref() != Some(&text) {
            match resolv::write_atomic(Path::new(RESOLV_CONF), &text) {
                Ok(()) => {
                    info!(
                        "dns: {RESOLV_CONF} written: {} ({})",
                        if dns.servers.is_empty() {
                            "no servers".to_owned()
                        } else {
                            dns.servers.join(", ")
                        },
                        dns.source
                    );
                    resolv_written = Some(text);
                }
                Err(e) => error!("dns: {e}"),
            }
        }
        // Only a real change notifies: units reload on it.
        appliance.dns.send_if_modified(|d| {
            let changed = *d != dns;
            if changed {
                *d = dns;
            }
            changed
        });
        appliance.network.send_replace(summarise(&s, unix_now()));
        last = s;
        tokio::select! {
            changed = config.changed() => if changed.is_err() { return },
            changed = status.changed() => if changed.is_err() {
                error!("network: the manager stopped; eth0 is left as it is");
                return;
            },
        }
    }
}

fn describe(mode: &Mode) -> String {
    match mode {
        Mode::Static {
            address,
            prefix,
            gateway,
        } => format!(
            "static {address}/{prefix}{}",
            gateway.map(|g| format!(" via {g}")).unwrap_or_default()
        ),
        other => mode_name(other).to_owned(),
    }
}

/// Logs what an administrator watching the console wants to know: the
/// address in use, the lease, the carrier, errors.
fn report_changes(old: &NetStatus, new: &NetStatus) {
    if old.carrier != new.carrier {
        info!(
            "network: {IFACE}: carrier {}",
            if new.carrier { "up" } else { "down" }
        );
    }
    if old.address != new.address || old.gateway != new.gateway {
        match new.address {
            Some(a) => info!(
                "network: {IFACE}: address {}/{}{}",
                a.address,
                a.prefix,
                new.gateway
                    .map(|g| format!(", gateway {g}"))
                    .unwrap_or_else(|| ", no gateway".into())
            ),
            None => info!("network: {IFACE}: no address"),
        }
    }
    let lease_key = |s: &NetStatus| {
        s.lease
            .as_ref()
            .map(|l| (l.server, l.obtained_at_unix, l.renewals))
    };
    if lease_key(old) != lease_key(new) {
        if let Some(l) = &new.lease {
            let bound = new
                .dhcp_bound_in_ms
                .map(|ms| format!(", bound in {ms} ms"))
                .unwrap_or_default();
            if l.renewals == 0 {
                info!(
                    "network: {IFACE}: lease from {} for {} s{bound}",
                    l.server, l.duration_secs
                );
            } else {
                info!(
                    "network: {IFACE}: lease renewed by {} for {} s",
                    l.server, l.duration_secs
                );
            }
        }
    }
    if old.last_error != new.last_error {
        if let Some(e) = &new.last_error {
            warn!("network: {IFACE}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_net_keys_map_to_the_manager_modes() {
        let c = Config::default()
            .with_changes(&[
                ("net.mode", "static"),
                ("net.address", "10.0.2.50/24"),
                ("net.gateway", "10.0.2.2"),
            ])
            .unwrap();
        assert_eq!(
            net_config(&c).mode,
            Mode::Static {
                address: "10.0.2.50".parse().unwrap(),
                prefix: 24,
                gateway: Some("10.0.2.2".parse().unwrap())
            }
        );
        let c = c.with_changes(&[("net.mode", "dhcp")]).unwrap();
        assert_eq!(net_config(&c).mode, Mode::Dhcp);
        let c = c.with_changes(&[("net.mode", "unconfigured")]).unwrap();
        assert_eq!(net_config(&c).mode, Mode::Unconfigured);
    }

    #[test]
    fn manual_dns_wins_over_the_lease() {
        let mut s = NetStatus::new(IFACE);
        s.dhcp_dns = vec!["10.0.2.3".parse().unwrap()];
        s.dhcp_domain = Some("lan".into());
        let (dns, text) = dns_in_effect(&Config::default(), &s);
        assert_eq!(
            (dns.servers, dns.source.as_str(), dns.search.as_deref()),
            (vec!["10.0.2.3".to_owned()], "dhcp", Some("lan"))
        );
        assert!(text.contains("nameserver 10.0.2.3"), "{text}");
        let manual = Config::default()
            .with_changes(&[
                ("dns.servers", "10.9.9.9"),
                ("dns.search", "corp.example.com"),
            ])
            .unwrap();
        let (dns, text) = dns_in_effect(&manual, &s);
        assert_eq!(
            (dns.servers, dns.source.as_str()),
            (vec!["10.9.9.9".to_owned()], "manual")
        );
        assert!(
            text.contains("nameserver 10.9.9.9") && !text.contains("10.0.2.3"),
            "{text}"
        );
        assert!(text.contains("search corp.example.com"), "{text}");
    }
}
