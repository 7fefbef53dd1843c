//! rtnetlink operations on one interface: link up, carrier, IPv4 addresses,
//! the default route, and reading them back to verify.
//!
//! Only the interface given by name is touched, and of the routing table
//! only default routes that leave through it. Carrier changes are watched
//! through the RTNLGRP_LINK multicast group rather than by polling
//! /sys/class/net/<if>/carrier: the kernel tells at once (link-up to
//! DISCOVER is then a matter of milliseconds, not of a polling period) and
//! nothing wakes up while nothing changes. The manager still re-reads the
//! state now and then, because a netlink multicast socket drops messages
//! when its buffer overflows.

use std::net::{IpAddr, Ipv4Addr};

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::{Handle, LinkUnspec, MulticastGroup, RouteMessageBuilder};

/// A failed rtnetlink operation, with the interface it was for.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("opening a netlink socket: {0}")]
    Connect(std::io::Error),
    #[error("interface {name} not found")]
    NotFound { name: String },
    #[error("{op} on {name}: {source}")]
    Netlink {
        op: &'static str,
        name: String,
        source: rtnetlink::Error,
    },
}

/// What the kernel says about the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub carrier: bool,
    /// RFC 2863 operational state, as `ip link` prints it ("UP", "DOWN", ...).
    pub oper_state: String,
    pub mac: Option<[u8; 6]>,
}

/// An IPv4 default route leaving through the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Option<Ipv4Addr>,
    message: RouteMessage,
}

/// One interface, by index, with a netlink handle.
#[derive(Debug, Clone)]
pub struct Link {
    handle: Handle,
    pub index: u32,
    pub name: String,
}

/// Open a netlink connection; its task runs on the current tokio runtime.
pub fn connect() -> Result<Handle, LinkError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connect)?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Subscribe to link notifications (RTNLGRP_LINK): every change of flags,
/// carrier or operational state of any interface arrives as a message.
pub fn link_events() -> Result<UnboundedReceiver<LinkMessage>, LinkError> {
    let (connection, _, mut messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).map_err(LinkError::Connect)?;
    tokio::spawn(connection);
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            if let NetlinkMessage {
                payload: NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)),
                ..
            } = message
            {
                if tx.unbounded_send(link).is_err() {
                    break;
                }
            }
        }
    });
    Ok(rx)
}

impl Link {
    /// The interface called `name`.
    pub async fn open(handle: Handle, name: &str) -> Result<Link, LinkError> {
        let mut links = handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(Some(message)) => Ok(Link {
                handle,
                index: message.header.index,
                name: name.to_string(),
            }),
            Ok(None) => Err(LinkError::NotFound {
                name: name.to_string(),
            }),
            // ENODEV is how the kernel says there is no such interface.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
                Err(LinkError::NotFound {
                    name: name.to_string(),
                })
            }
            Err(source) => Err(self_error("reading the link", name, source)),
        }
    }

    fn error(&self, op: &'static str, source: rtnetlink::Error) -> LinkError {
        self_error(op, &self.name, source)
    }

    /// Bring the link administratively up.
    pub async fn set_up(&self) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(self.index).up().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| self.error("setting the link up", e))
    }

    /// Bring the link administratively down.
    pub async fn set_down(&self) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(self.index).down().build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| self.error("setting the link down", e))
    }

    /// Flags, carrier, operational state and MAC, as the kernel has them.
    pub async fn state(&self) -> Result<LinkState, LinkError> {
        let mut links = self.handle.link().get().match_index(self.index).execute();
        match links.try_next().await {
            Ok(Some(message)) => Ok(link_state(&message)),
            Ok(None) => Err(LinkError::NotFound {
                name: self.name.clone(),
            }),
            Err(e) => Err(self.error("reading the link", e)),
        }
    }

    /// The IPv4 addresses on the interface, with prefix lengths.
    pub async fn ipv4_addresses(&self) -> Result<Vec<(Ipv4Addr, u8)>, LinkError> {
        Ok(self
            .ipv4_address_messages()
            .await?
            .iter()
            .filter_map(|m| Some((message_ipv4(m)?, m.header.prefix_len)))
            .collect())
    }

    async fn ipv4_address_messages(&self) -> Result<Vec<AddressMessage>, LinkError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.error("listing addresses", e))?;
        Ok(messages
            .into_iter()
            .filter(|m| m.header.family == AddressFamily::Inet && m.header.index == self.index)
            .collect())
    }

    /// Remove every IPv4 address from the interface (the kernel removes the
    /// routes that depended on them with them).
    pub async fn flush_ipv4(&self) -> Result<(), LinkError> {
        for message in self.ipv4_address_messages().await? {
            match self.handle.address().del(message).execute().await {
                Ok(()) => {}
                // Gone already (removed with a primary address): fine.
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {
                    continue
                }
                Err(e) => return Err(self.error("deleting an address", e)),
            }
        }
        Ok(())
    }

    /// Add an address; one already there is not an error.
    pub async fn add_address(&self, address: Ipv4Addr, prefix: u8) -> Result<(), LinkError> {
        self.handle
            .address()
            .add(self.index, IpAddr::V4(address), prefix)
            .replace()
            .execute()
            .await
            .map_err(|e| self.error("adding an address", e))
    }

    /// Make `gateway` the IPv4 default route, through this interface.
    pub async fn replace_default_route(
        &self,
        gateway: Ipv4Addr,
        protocol: RouteProtocol,
    ) -> Result<(), LinkError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(self.index)
            .protocol(protocol)
            .build();
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(|e| self.error("replacing the default route", e))
    }

    /// IPv4 default routes in the main table that leave through this
    /// interface.
    pub async fn default_routes(&self) -> Result<Vec<DefaultRoute>, LinkError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.error("listing routes", e))?;
        Ok(routes
            .into_iter()
            .filter(|r| {
                r.header.address_family == AddressFamily::Inet
                    && r.header.destination_prefix_length == 0
                    && route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
                    && r.attributes.contains(&RouteAttribute::Oif(self.index))
            })
            .map(|r| DefaultRoute {
                gateway: r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(gw)) => Some(*gw),
                    _ => None,
                }),
                message: r,
            })
            .collect())
    }

    /// Delete the IPv4 default routes that leave through this interface.
    pub async fn delete_default_routes(&self) -> Result<(), LinkError> {
        for route in self.default_routes().await? {
            match self.handle.route().del(route.message).execute().await {
                Ok(()) => {}
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => {}
                Err(e) => return Err(self.error("deleting a default route", e)),
            }
        }
        Ok(())
    }
}

fn self_error(op: &'static str, name: &str, source: rtnetlink::Error) -> LinkError {
    LinkError::Netlink {
        op,
        name: name.to_string(),
        source,
    }
}

/// The table of a route: the RTA_TABLE attribute if present (tables above
/// 255 only exist there), else the header's.
fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

fn message_ipv4(message: &AddressMessage) -> Option<Ipv4Addr> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's
    // on point-to-point links, the same otherwise.
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(a)) => Some(*a),
        _ => None,
    });
    local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V4(a)) => Some(*a),
            _ => None,
        })
    })
}

/// Link state from an RTM_NEWLINK message (a reply or a notification).
pub fn link_state(message: &LinkMessage) -> LinkState {
    let flags = message.header.flags;
    let oper_state = message
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::OperState(state) => Some(oper_state_name(*state)),
            _ => None,
        })
        .unwrap_or_else(|| "UNKNOWN".to_string());
    let mac = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
        _ => None,
    });
    LinkState {
        admin_up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
        oper_state,
        mac,
    }
}

fn oper_state_name(state: State) -> String {
    match state {
        State::Unknown => "UNKNOWN".into(),
        State::NotPresent => "NOTPRESENT".into(),
        State::Down => "DOWN".into(),
        State::LowerLayerDown => "LOWERLAYERDOWN".into(),
        State::Testing => "TESTING".into(),
        State::Dormant => "DORMANT".into(),
        State::Up => "UP".into(),
        State::Other(n) => format!("OTHER({n})"),
        _ => "UNKNOWN".into(),
    }
}
