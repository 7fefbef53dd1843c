//! What the manager reports: the interface as configured and as the kernel
//! has it. PID 1's control API returns it as JSON, so every field is plain
//! data and times are Unix seconds (wall clock at the moment of the event:
//! a later clock step, e.g. by NTP at boot, does not move them).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::config::Mode;

/// An address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Net {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

/// The DHCP lease in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// Server identifier (option 54).
    pub server: Ipv4Addr,
    /// When the last ACK (first or renewal) was received.
    pub obtained_at_unix: u64,
    /// When the lease runs out unless renewed.
    pub expires_at_unix: u64,
    /// Lease time granted by the last ACK.
    pub duration_secs: u64,
    /// Renewals (or rebinds) acknowledged since the lease was bound.
    pub renewals: u32,
}

/// State of the managed interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetStatus {
    pub interface: String,
    /// The configured mode (None until the first `apply`).
    pub mode: Option<Mode>,
    /// One line for a person: "dhcp: bound", "dhcp: discovering (no carrier)", ...
    pub state: String,
    pub carrier: bool,
    /// RFC 2863 operational state as the kernel reports it.
    pub oper_state: String,
    pub mac: Option<String>,
    /// The IPv4 address applied to the kernel (verified by reading back).
    pub address: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers from the DHCP lease (the caller decides whether manual
    /// servers override them).
    pub dhcp_dns: Vec<Ipv4Addr>,
    /// Domain name from the DHCP lease (option 15).
    pub dhcp_domain: Option<String>,
    pub lease: Option<LeaseStatus>,
    /// Milliseconds from the start of the DHCP exchange (DHCP mode applied,
    /// or carrier back) to the lease applied on the kernel, for the last bind.
    pub dhcp_bound_in_ms: Option<u64>,
    /// The last failure, kept until a later operation succeeds.
    pub last_error: Option<String>,
}

impl NetStatus {
    /// Nothing known yet about `interface`.
    pub fn new(interface: &str) -> Self {
        NetStatus {
            interface: interface.to_string(),
            mode: None,
            state: "starting".to_string(),
            carrier: false,
            oper_state: "UNKNOWN".to_string(),
            mac: None,
            address: None,
            gateway: None,
            dhcp_dns: Vec::new(),
            dhcp_domain: None,
            lease: None,
            dhcp_bound_in_ms: None,
            last_error: None,
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_serialises_to_plain_json() {
        let mut status = NetStatus::new("eth0");
        status.mode = Some(Mode::Dhcp);
        status.mac = Some(format_mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        status.address = Some(Ipv4Net {
            address: Ipv4Addr::new(10, 0, 0, 5),
            prefix: 24,
        });
        status.dhcp_dns = vec![Ipv4Addr::new(10, 0, 0, 1)];
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["mode"]["kind"], "dhcp");
        assert_eq!(json["mac"], "52:54:00:12:34:56");
        assert_eq!(json["address"]["address"], "10.0.0.5");
        assert_eq!(json["address"]["prefix"], 24);
        assert_eq!(json["dhcp_dns"][0], "10.0.0.1");
        assert_eq!(json["lease"], serde_json::Value::Null);
        let back: NetStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }
}
