//! A pass-through `Device` that looks at the DHCP frames going by.
//!
//! smoltcp's DHCP socket keeps the lease duration, the server's MAC and the
//! kind of each packet it sends to itself. The client needs them (lease
//! expiry in the status, DHCPRELEASE addressed to the server, discovery
//! backoff), so this wrapper notes them on the way in and out without
//! changing a byte. Parsing here is best effort: anything malformed is simply
//! not noted, and smoltcp then judges the same frame on its own.

use std::cell::RefCell;

use smoltcp::phy::{Device, DeviceCapabilities, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    IpProtocol, Ipv4Packet, UdpPacket, DHCP_CLIENT_PORT, DHCP_SERVER_PORT,
};

/// A DHCP message from a server, as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// Ethernet source: the server itself, or the relay in front of it.
    pub server_mac: EthernetAddress,
    /// The DHCP payload (BOOTP header and options).
    pub payload: Vec<u8>,
    pub message_type: DhcpMessageType,
}

/// What went by during one poll.
#[derive(Debug, Default)]
pub(crate) struct TapLog {
    /// Kinds of the DHCP messages the client sent, in order.
    pub sent: Vec<DhcpMessageType>,
    /// The last server message received.
    pub received: Option<Seen>,
}

pub(crate) struct Tap<'d, D: Device + ?Sized> {
    pub inner: &'d mut D,
    pub log: &'d RefCell<TapLog>,
}

pub(crate) struct TapRx<'d, T> {
    inner: T,
    log: &'d RefCell<TapLog>,
}

pub(crate) struct TapTx<'d, T> {
    inner: T,
    log: &'d RefCell<TapLog>,
}

impl<D: Device + ?Sized> Device for Tap<'_, D> {
    type RxToken<'a>
        = TapRx<'a, D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = TapTx<'a, D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let log = self.log;
        let (rx, tx) = self.inner.receive(timestamp)?;
        Some((TapRx { inner: rx, log }, TapTx { inner: tx, log }))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let log = self.log;
        let tx = self.inner.transmit(timestamp)?;
        Some(TapTx { inner: tx, log })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

impl<T: RxToken> RxToken for TapRx<'_, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let log = self.log;
        self.inner.consume(|frame| {
            if let Some(seen) = server_message(frame) {
                log.borrow_mut().received = Some(seen);
            }
            f(frame)
        })
    }
}

impl<T: TxToken> TxToken for TapTx<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let log = self.log;
        self.inner.consume(len, |frame| {
            let result = f(frame);
            if let Some((_, repr_type)) = dhcp_in_frame(frame, DHCP_CLIENT_PORT, DHCP_SERVER_PORT) {
                log.borrow_mut().sent.push(repr_type);
            }
            result
        })
    }
}

/// A server-to-client DHCP message in an Ethernet frame, if the frame is one.
pub(crate) fn server_message(frame: &[u8]) -> Option<Seen> {
    let (payload, message_type) = dhcp_in_frame(frame, DHCP_SERVER_PORT, DHCP_CLIENT_PORT)?;
    let eth = EthernetFrame::new_checked(frame).ok()?;
    Some(Seen {
        server_mac: eth.src_addr(),
        payload: payload.to_vec(),
        message_type,
    })
}

/// The DHCP payload and message type of a UDP `src_port` -> `dst_port`
/// datagram carried in an Ethernet frame.
pub(crate) fn dhcp_in_frame(
    frame: &[u8],
    src_port: u16,
    dst_port: u16,
) -> Option<(&[u8], DhcpMessageType)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.src_port() != src_port || udp.dst_port() != dst_port {
        return None;
    }
    let payload = udp.payload();
    let packet = DhcpPacket::new_checked(payload).ok()?;
    let repr = DhcpRepr::parse(&packet).ok()?;
    Some((payload, repr.message_type))
}
