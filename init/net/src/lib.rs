//! Network on eth0: DHCP client (smoltcp over AF_PACKET), static and unconfigured modes, rtnetlink, resolv.conf
//!
//! WIP: crate doc written with the manager.

pub mod dhcp;
