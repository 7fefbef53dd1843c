//! The desired configuration of the interface, and the checks on a static
//! one that need no kernel (the config crate may reuse `validate_static`).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// What the interface should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    pub mode: Mode,
}

/// How the interface gets its IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mode {
    /// Address, prefix, router and DNS servers from a DHCP server.
    Dhcp,
    /// A fixed address, and optionally a default gateway inside its subnet.
    Static {
        address: Ipv4Addr,
        prefix: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<Ipv4Addr>,
    },
    /// No address; the link is up (so it can be watched, and used for
    /// nothing else).
    Unconfigured,
}

/// A static configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticError {
    #[error("prefix length /{0} is not between /1 and /32")]
    Prefix(u8),
    #[error("{0} is not a unicast host address")]
    NotUnicast(Ipv4Addr),
    #[error("{address} is the network address of {network}/{prefix}")]
    NetworkAddress {
        address: Ipv4Addr,
        network: Ipv4Addr,
        prefix: u8,
    },
    #[error("{address} is the broadcast address of {network}/{prefix}")]
    BroadcastAddress {
        address: Ipv4Addr,
        network: Ipv4Addr,
        prefix: u8,
    },
    #[error("gateway {gateway} is outside the subnet {network}/{prefix}")]
    GatewayOutsideSubnet {
        gateway: Ipv4Addr,
        network: Ipv4Addr,
        prefix: u8,
    },
    #[error("gateway {0} is the interface's own address")]
    GatewayIsSelf(Ipv4Addr),
}

/// Check a static address, prefix and gateway: a unicast address that is
/// neither the network nor the broadcast address of its subnet (/31 and /32
/// have neither, RFC 3021), and a gateway inside that subnet, likewise.
pub fn validate_static(
    address: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<(), StaticError> {
    if prefix == 0 || prefix > 32 {
        return Err(StaticError::Prefix(prefix));
    }
    check_host(address, address, prefix)?;
    if let Some(gateway) = gateway {
        if gateway == address {
            return Err(StaticError::GatewayIsSelf(gateway));
        }
        let network = network(address, prefix);
        if self::network(gateway, prefix) != network {
            return Err(StaticError::GatewayOutsideSubnet {
                gateway,
                network,
                prefix,
            });
        }
        check_host(gateway, address, prefix)?;
    }
    Ok(())
}

/// `host` must be usable as a host address in the subnet of `address`.
fn check_host(host: Ipv4Addr, address: Ipv4Addr, prefix: u8) -> Result<(), StaticError> {
    if host.is_unspecified()
        || host.is_broadcast()
        || host.is_multicast()
        || host.is_loopback()
        || u32::from(host) >> 28 == 0xf
    {
        return Err(StaticError::NotUnicast(host));
    }
    if prefix <= 30 {
        let network = network(address, prefix);
        let broadcast = Ipv4Addr::from(u32::from(network) | !mask(prefix));
        if host == network {
            return Err(StaticError::NetworkAddress {
                address: host,
                network,
                prefix,
            });
        }
        if host == broadcast {
            return Err(StaticError::BroadcastAddress {
                address: host,
                network,
                prefix,
            });
        }
    }
    Ok(())
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn network(address: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(address) & mask(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn good_static_configurations_pass() {
        assert_eq!(
            validate_static(ip("192.168.1.10"), 24, Some(ip("192.168.1.1"))),
            Ok(())
        );
        assert_eq!(validate_static(ip("10.0.0.5"), 8, None), Ok(()));
        assert_eq!(validate_static(ip("10.1.2.3"), 32, None), Ok(()));
        // /31: both addresses are hosts (RFC 3021).
        assert_eq!(
            validate_static(ip("10.0.0.0"), 31, Some(ip("10.0.0.1"))),
            Ok(())
        );
    }

    #[test]
    fn bad_static_configurations_say_why() {
        let cases = [
            (
                validate_static(ip("192.168.1.10"), 33, None),
                "prefix length /33",
            ),
            (
                validate_static(ip("192.168.1.10"), 0, None),
                "prefix length /0",
            ),
            (validate_static(ip("0.0.0.0"), 24, None), "not a unicast"),
            (validate_static(ip("224.0.0.1"), 24, None), "not a unicast"),
            (validate_static(ip("240.0.0.1"), 24, None), "not a unicast"),
            (validate_static(ip("127.0.0.2"), 8, None), "not a unicast"),
            (
                validate_static(ip("192.168.1.0"), 24, None),
                "network address of 192.168.1.0/24",
            ),
            (
                validate_static(ip("192.168.1.255"), 24, None),
                "broadcast address of 192.168.1.0/24",
            ),
            (
                validate_static(ip("192.168.1.10"), 24, Some(ip("192.168.2.1"))),
                "gateway 192.168.2.1 is outside the subnet 192.168.1.0/24",
            ),
            (
                validate_static(ip("192.168.1.10"), 24, Some(ip("192.168.1.255"))),
                "broadcast address",
            ),
            (
                validate_static(ip("192.168.1.10"), 24, Some(ip("192.168.1.0"))),
                "network address",
            ),
            (
                validate_static(ip("192.168.1.10"), 24, Some(ip("192.168.1.10"))),
                "own address",
            ),
            (
                validate_static(ip("10.1.2.3"), 32, Some(ip("10.1.2.1"))),
                "outside the subnet",
            ),
        ];
        for (result, expected) in cases {
            let message = result.expect_err(expected).to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn config_round_trips_through_json_and_refuses_unknown_keys() {
        let config = NetConfig {
            mode: Mode::Static {
                address: ip("192.168.1.10"),
                prefix: 24,
                gateway: Some(ip("192.168.1.1")),
            },
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"mode":{"kind":"static","address":"192.168.1.10","prefix":24,"gateway":"192.168.1.1"}}"#
        );
        assert_eq!(serde_json::from_str::<NetConfig>(&json).unwrap(), config);
        let dhcp: NetConfig = serde_json::from_str(r#"{"mode":{"kind":"dhcp"}}"#).unwrap();
        assert_eq!(dhcp.mode, Mode::Dhcp);
        // (serde cannot refuse unknown keys beside the tag of a unit variant
        // of an internally tagged enum: `{"kind":"dhcp","x":1}` passes.)
        assert!(serde_json::from_str::<NetConfig>(
            r#"{"mode":{"kind":"static","address":"10.0.0.2","prefix":8,"x":1}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<NetConfig>(r#"{"mode":{"kind":"dhcp"},"x":1}"#).is_err());
    }
}
