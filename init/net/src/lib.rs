//! Network configuration of eth0 for PID 1: DHCP, static, or unconfigured.
//!
//! This crate owns one interface (eth0 on the appliance): its link state,
//! its IPv4 addresses, and the IPv4 default routes that leave through it.
//! The DHCP client is smoltcp's DHCPv4 socket over an AF_PACKET socket
//! filtered to ARP and DHCP; the lease is applied to the kernel through
//! rtnetlink, and the kernel's own IP stack carries all traffic. It renders
//! and writes resolv.conf when asked.
//!
//! It must not touch other interfaces, other routes (other tables, routes
//! through other interfaces), firewall rules, sysctls, or /etc: resolv.conf
//! goes to a path the caller gives (/run/resolv.conf). It never panics on
//! what arrives from the network, and holds no process-wide state, so PID 1
//! can restart a failed manager.
//!
//! Entry points: [`NetManager`] (async, tokio) with [`NetConfig`] and
//! [`NetStatus`]; [`validate_static`]; [`resolv`] for resolv.conf.

/// The one interface the appliance configures.
pub const IFACE: &str = "eth0";

pub mod config;
pub mod dhcp;
pub mod link;
pub mod manager;
pub mod packet;
pub mod resolv;
pub mod status;

pub use config::{validate_static, Mode, NetConfig, StaticError};
pub use dhcp::DhcpOptions;
pub use manager::{ManagerOptions, NetError, NetManager};
pub use status::{Ipv4Net, LeaseStatus, NetStatus};
