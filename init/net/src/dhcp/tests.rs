//! The client fed constructed server packets through an in-memory device on
//! a fake clock: every exchange, timer and refusal runs in microseconds.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr,
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, UDP_HEADER_LEN,
};

use super::{DhcpClient, DhcpEvent, DhcpOptions};

const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0xfe]);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 7, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 168, 7, 50);
const DNS: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 168, 7, 1), Ipv4Addr::new(9, 9, 9, 9)];

/// A device whose wire is two queues.
#[derive(Default)]
struct Queue {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct QueueRx(Vec<u8>);
struct QueueTx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for QueueRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for QueueTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let result = f(&mut buf);
        self.0.push(buf);
        result
    }
}

impl Device for Queue {
    type RxToken<'a> = QueueRx;
    type TxToken<'a> = QueueTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(QueueRx, QueueTx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((QueueRx(frame), QueueTx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<QueueTx<'_>> {
        Some(QueueTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// A DHCP message the client sent, decoded with checksums verified.
#[derive(Debug)]
struct Sent {
    eth_dst: EthernetAddress,
    ip_src: Ipv4Addr,
    ip_dst: Ipv4Addr,
    message_type: DhcpMessageType,
    xid: u32,
    client_ip: Ipv4Addr,
    requested_ip: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
}

fn decode(frame: &[u8]) -> Option<Sent> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let checksums = ChecksumCapabilities::default();
    let ip_packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv4Repr::parse(&ip_packet, &checksums).ok()?;
    let udp_packet = UdpPacket::new_checked(ip_packet.payload()).ok()?;
    let udp = UdpRepr::parse(
        &udp_packet,
        &IpAddress::Ipv4(ip.src_addr),
        &IpAddress::Ipv4(ip.dst_addr),
        &checksums,
    )
    .ok()?;
    assert_eq!((udp.src_port, udp.dst_port), (68, 67));
    let dhcp_packet = DhcpPacket::new_checked(udp_packet.payload()).ok()?;
    let dhcp = DhcpRepr::parse(&dhcp_packet).ok()?;
    Some(Sent {
        eth_dst: eth.dst_addr(),
        ip_src: ip.src_addr,
        ip_dst: ip.dst_addr,
        message_type: dhcp.message_type,
        xid: dhcp.transaction_id,
        client_ip: dhcp.client_ip,
        requested_ip: dhcp.requested_ip,
        server_id: dhcp.server_identifier,
    })
}

/// What the server puts in a reply.
#[derive(Clone)]
struct Reply {
    message_type: DhcpMessageType,
    xid: u32,
    your_ip: Ipv4Addr,
    subnet_mask: Option<Ipv4Addr>,
    lease_secs: Option<u32>,
    renew_secs: Option<u32>,
    rebind_secs: Option<u32>,
    domain: Option<&'static [u8]>,
    chaddr: EthernetAddress,
}

impl Reply {
    fn new(message_type: DhcpMessageType, xid: u32) -> Self {
        let nak = message_type == DhcpMessageType::Nak;
        Reply {
            message_type,
            xid,
            your_ip: if nak { Ipv4Addr::UNSPECIFIED } else { OFFERED },
            subnet_mask: (!nak).then_some(Ipv4Addr::new(255, 255, 255, 0)),
            lease_secs: (!nak).then_some(100),
            renew_secs: None,
            rebind_secs: None,
            domain: (!nak).then_some(b"lan.example"),
            chaddr: EthernetAddress(CLIENT_MAC),
        }
    }

    /// The reply as an Ethernet frame, server to client, unicast as dnsmasq
    /// sends it.
    fn frame(&self) -> Vec<u8> {
        let nak = self.message_type == DhcpMessageType::Nak;
        // smoltcp's DhcpRepr does not emit T1/T2, so they go in as raw options.
        let renew = self.renew_secs.map(u32::to_be_bytes);
        let rebind = self.rebind_secs.map(u32::to_be_bytes);
        let mut extra = Vec::new();
        if let Some(data) = self.domain {
            extra.push(DhcpOption { kind: 15, data });
        }
        if let Some(data) = &renew {
            extra.push(DhcpOption { kind: 58, data });
        }
        if let Some(data) = &rebind {
            extra.push(DhcpOption { kind: 59, data });
        }
        let dhcp = DhcpRepr {
            message_type: self.message_type,
            transaction_id: self.xid,
            secs: 0,
            client_hardware_address: self.chaddr,
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: self.your_ip,
            server_ip: SERVER_IP,
            router: (!nak).then_some(SERVER_IP),
            subnet_mask: self.subnet_mask,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: false,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(SERVER_IP),
            parameter_request_list: None,
            dns_servers: (!nak).then(|| DNS.iter().copied().collect()),
            max_size: None,
            lease_duration: self.lease_secs,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &extra,
        };
        let dst = if nak {
            Ipv4Addr::BROADCAST
        } else {
            self.your_ip
        };
        udp_frame(&dhcp, dst)
    }
}

fn udp_frame(dhcp: &DhcpRepr, dst: Ipv4Addr) -> Vec<u8> {
    let dhcp_len = dhcp.buffer_len();
    let checksums = ChecksumCapabilities::default();
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + dhcp_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: if dst.is_broadcast() {
            EthernetAddress::BROADCAST
        } else {
            EthernetAddress(CLIENT_MAC)
        },
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    Ipv4Repr {
        src_addr: SERVER_IP,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: UDP_HEADER_LEN + dhcp_len,
        hop_limit: 64,
    }
    .emit(&mut ip, &checksums);
    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
    UdpRepr {
        src_port: 67,
        dst_port: 68,
    }
    .emit(
        &mut udp,
        &IpAddress::Ipv4(SERVER_IP),
        &IpAddress::Ipv4(dst),
        dhcp_len,
        |payload| dhcp.emit(&mut DhcpPacket::new_unchecked(payload)).unwrap(),
        &checksums,
    );
    buf
}

/// The server's answer to an ARP request, if the frame is one for it.
fn arp_reply(frame: &[u8]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?
    else {
        return None;
    };
    assert_eq!(target_protocol_addr, SERVER_IP, "ARP for someone else");
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: SERVER_MAC,
        source_protocol_addr: SERVER_IP,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + reply.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: source_hardware_addr,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    reply.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    Some(buf)
}

/// Client, wire and clock.
struct Harness {
    client: DhcpClient,
    wire: Queue,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with_options(DhcpOptions::default())
    }

    fn with_options(options: DhcpOptions) -> Self {
        let mut wire = Queue::default();
        let now = Instant::from_secs(1000);
        let client = DhcpClient::new(CLIENT_MAC, 0x5eed, options, &mut wire, now);
        Harness { client, wire, now }
    }

    /// Poll at the current time; answer ARP like the server would and
    /// poll again until quiet. Returns events and the DHCP messages sent.
    fn poll(&mut self) -> (Vec<DhcpEvent>, Vec<Sent>) {
        let mut events = Vec::new();
        let mut sent = Vec::new();
        loop {
            events.extend(self.client.poll(self.now, &mut self.wire));
            let frames = std::mem::take(&mut self.wire.tx);
            let mut answered = false;
            for frame in frames {
                if let Some(reply) = arp_reply(&frame) {
                    self.wire.rx.push_back(reply);
                    answered = true;
                } else if let Some(message) = decode(&frame) {
                    sent.push(message);
                } else {
                    panic!("client sent an unexpected frame: {frame:02x?}");
                }
            }
            if !answered {
                return (events, sent);
            }
        }
    }

    fn feed(&mut self, frame: Vec<u8>) -> (Vec<DhcpEvent>, Vec<Sent>) {
        self.wire.rx.push_back(frame);
        self.poll()
    }

    fn advance_to(&mut self, at: Instant) {
        assert!(at >= self.now);
        self.now = at;
    }

    /// Run the clock to the client's next deadline and poll there.
    fn run_to_next(&mut self) -> (Vec<DhcpEvent>, Vec<Sent>) {
        let at = self
            .client
            .poll_at(self.now)
            .expect("client has a deadline");
        self.now = self.now.max(at);
        self.poll()
    }

    /// DISCOVER, OFFER, REQUEST, ACK. Returns the ACK's events.
    fn bind_with(&mut self, ack: impl FnOnce(&mut Reply)) -> Vec<DhcpEvent> {
        let (_, sent) = self.poll();
        let discover = only(&sent, DhcpMessageType::Discover);
        let (_, sent) = self.feed(Reply::new(DhcpMessageType::Offer, discover.xid).frame());
        let request = only(&sent, DhcpMessageType::Request);
        let mut reply = Reply::new(DhcpMessageType::Ack, request.xid);
        ack(&mut reply);
        let (events, sent) = self.feed(reply.frame());
        assert!(
            sent.is_empty(),
            "nothing to send right after the ACK: {sent:?}"
        );
        events
    }

    fn bind(&mut self) -> Vec<DhcpEvent> {
        self.bind_with(|_| {})
    }
}

fn only(sent: &[Sent], message_type: DhcpMessageType) -> &Sent {
    assert_eq!(sent.len(), 1, "expected one {message_type:?}, got {sent:?}");
    assert_eq!(sent[0].message_type, message_type, "{sent:?}");
    &sent[0]
}

fn bound(events: &[DhcpEvent]) -> &super::Lease {
    match events {
        [DhcpEvent::Bound(lease)] => lease,
        other => panic!("expected one Bound, got {other:?}"),
    }
}

#[test]
fn discover_offer_request_ack_binds_the_lease() {
    let mut h = Harness::new();
    let (events, sent) = h.poll();
    assert!(events.is_empty());
    let discover = only(&sent, DhcpMessageType::Discover);
    assert_eq!(discover.ip_src, Ipv4Addr::UNSPECIFIED);
    assert_eq!(discover.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(discover.eth_dst, EthernetAddress::BROADCAST);

    let (events, sent) = h.feed(Reply::new(DhcpMessageType::Offer, discover.xid).frame());
    assert!(events.is_empty());
    let request = only(&sent, DhcpMessageType::Request);
    assert_eq!(request.requested_ip, Some(OFFERED));
    assert_eq!(request.server_id, Some(SERVER_IP));
    assert_eq!(request.ip_dst, Ipv4Addr::BROADCAST);

    let (events, _) = h.feed(Reply::new(DhcpMessageType::Ack, request.xid).frame());
    let lease = bound(&events);
    assert_eq!(lease.address, OFFERED);
    assert_eq!(lease.prefix, 24);
    assert_eq!(lease.router, Some(SERVER_IP));
    assert_eq!(lease.dns, DNS.to_vec());
    assert_eq!(lease.domain.as_deref(), Some("lan.example"));
    assert_eq!(lease.server_id, SERVER_IP);
    assert_eq!(lease.duration, Duration::from_secs(100));
    assert_eq!(lease.obtained_at, h.now);
    assert_eq!(h.client.lease(), Some(lease));
}

#[test]
fn discover_is_retransmitted_with_exponential_backoff() {
    let mut h = Harness::new();
    let mut times = Vec::new();
    for _ in 0..8 {
        let (_, sent) = h.run_to_next();
        only(&sent, DhcpMessageType::Discover);
        times.push(h.now);
    }
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).secs()).collect();
    // 4, 8, 16, 32, 64, 64, 64 seconds, each within ±1 s.
    let expected = [4u64, 8, 16, 32, 64, 64, 64];
    for (gap, want) in gaps.iter().zip(expected) {
        assert!(gap.abs_diff(want) <= 1, "gaps {gaps:?}");
    }
}

#[test]
fn request_is_retransmitted_with_backoff_then_discovery_restarts() {
    let mut h = Harness::new();
    let (_, sent) = h.poll();
    let discover = only(&sent, DhcpMessageType::Discover);
    let (_, sent) = h.feed(Reply::new(DhcpMessageType::Offer, discover.xid).frame());
    only(&sent, DhcpMessageType::Request);
    let mut times = vec![h.now];
    loop {
        let (events, sent) = h.run_to_next();
        assert!(events.is_empty());
        if sent.is_empty() {
            continue; // the deadline that notices the retries are used up
        }
        if sent[0].message_type == DhcpMessageType::Discover {
            break;
        }
        only(&sent, DhcpMessageType::Request);
        times.push(h.now);
    }
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).secs()).collect();
    // smoltcp: 5 s, doubling every two tries, five tries in all.
    assert_eq!(gaps, vec![5, 5, 10, 10]);
}

#[test]
fn renewal_is_unicast_from_the_leased_address_and_extends_the_lease() {
    let mut h = Harness::new();
    bound(&h.bind());
    // Nothing until T1 (half of the 100 s lease).
    let t1 = h.now + Duration::from_secs(50);
    assert_eq!(h.client.poll_at(h.now), Some(t1));
    let (events, sent) = h.run_to_next();
    assert!(events.is_empty());
    let renew = only(&sent, DhcpMessageType::Request);
    assert_eq!(renew.ip_src, OFFERED);
    assert_eq!(renew.ip_dst, SERVER_IP);
    assert_eq!(renew.eth_dst, SERVER_MAC, "unicast to the server's MAC");
    assert_eq!(renew.client_ip, OFFERED);
    assert_eq!(
        renew.requested_ip, None,
        "RFC 2131: no requested-ip when renewing"
    );

    let (events, sent) = h.feed(Reply::new(DhcpMessageType::Ack, renew.xid).frame());
    assert!(sent.is_empty());
    match events.as_slice() {
        [DhcpEvent::Renewed(lease)] => {
            assert_eq!(lease.address, OFFERED);
            assert_eq!(lease.obtained_at, t1);
            assert_eq!(lease.expires_at(), t1 + Duration::from_secs(100));
        }
        other => panic!("expected Renewed, got {other:?}"),
    }
}

#[test]
fn server_t1_and_t2_are_honoured() {
    let mut h = Harness::new();
    let start = h.now;
    bound(&h.bind_with(|ack| {
        ack.renew_secs = Some(10);
        ack.rebind_secs = Some(20);
    }));
    let (_, sent) = h.run_to_next();
    only(&sent, DhcpMessageType::Request);
    assert_eq!(h.now, start + Duration::from_secs(10));
}

#[test]
fn unanswered_renewal_rebinds_by_broadcast_then_the_lease_expires() {
    let mut h = Harness::new();
    let start = h.now;
    bound(&h.bind());
    let mut rebinds = 0;
    let events = loop {
        let (events, sent) = h.run_to_next();
        if !events.is_empty() {
            break events;
        }
        for message in &sent {
            assert_eq!(message.message_type, DhcpMessageType::Request);
            if message.ip_dst == Ipv4Addr::BROADCAST {
                // T2 = 87.5 s into the 100 s lease.
                assert!(h.now >= start + Duration::from_millis(87_500));
                assert_eq!(message.ip_src, OFFERED);
                rebinds += 1;
            } else {
                assert_eq!(message.ip_dst, SERVER_IP);
            }
        }
    };
    assert!(rebinds >= 1, "no rebinding broadcast before expiry");
    assert_eq!(events, vec![DhcpEvent::Lost]);
    assert_eq!(h.now, start + Duration::from_secs(100));
    assert_eq!(h.client.lease(), None);
    // And discovery starts over.
    let (_, sent) = h.poll();
    only(&sent, DhcpMessageType::Discover);
}

#[test]
fn nak_to_a_request_restarts_discovery() {
    let mut h = Harness::new();
    let (_, sent) = h.poll();
    let discover = only(&sent, DhcpMessageType::Discover);
    let (_, sent) = h.feed(Reply::new(DhcpMessageType::Offer, discover.xid).frame());
    let request = only(&sent, DhcpMessageType::Request);
    let (events, sent) = h.feed(Reply::new(DhcpMessageType::Nak, request.xid).frame());
    assert!(events.is_empty(), "nothing was bound, nothing is lost");
    only(&sent, DhcpMessageType::Discover);
}

#[test]
fn nak_to_a_renewal_loses_the_lease_and_restarts_discovery() {
    let mut h = Harness::new();
    bound(&h.bind());
    let (_, sent) = h.run_to_next();
    let renew = only(&sent, DhcpMessageType::Request);
    let (events, sent) = h.feed(Reply::new(DhcpMessageType::Nak, renew.xid).frame());
    assert_eq!(events, vec![DhcpEvent::Lost]);
    only(&sent, DhcpMessageType::Discover);
    // A new address from the new exchange is a new Bound.
    let (_, sent) = {
        let discover_xid = sent[0].xid;
        let mut offer = Reply::new(DhcpMessageType::Offer, discover_xid);
        offer.your_ip = Ipv4Addr::new(192, 168, 7, 99);
        h.feed(offer.frame())
    };
    let request = only(&sent, DhcpMessageType::Request);
    let mut ack = Reply::new(DhcpMessageType::Ack, request.xid);
    ack.your_ip = Ipv4Addr::new(192, 168, 7, 99);
    let (events, _) = h.feed(ack.frame());
    assert_eq!(bound(&events).address, Ipv4Addr::new(192, 168, 7, 99));
}

#[test]
fn replies_for_another_exchange_or_client_are_ignored() {
    let mut h = Harness::new();
    let (_, sent) = h.poll();
    let xid = only(&sent, DhcpMessageType::Discover).xid;
    // Wrong transaction id.
    let (events, sent) = h.feed(Reply::new(DhcpMessageType::Offer, xid ^ 1).frame());
    assert!(events.is_empty() && sent.is_empty());
    // Another client's hardware address.
    let mut offer = Reply::new(DhcpMessageType::Offer, xid);
    offer.chaddr = EthernetAddress([2, 9, 9, 9, 9, 9]);
    let (events, sent) = h.feed(offer.frame());
    assert!(events.is_empty() && sent.is_empty());
    // An ACK while discovering.
    let (events, sent) = h.feed(Reply::new(DhcpMessageType::Ack, xid).frame());
    assert!(events.is_empty() && sent.is_empty());
}

#[test]
fn ack_without_subnet_mask_is_not_bound() {
    let mut h = Harness::new();
    let events = h.bind_with(|ack| ack.subnet_mask = None);
    assert!(events.is_empty());
    assert_eq!(h.client.lease(), None);
}

#[test]
fn ack_without_lease_time_gets_the_default() {
    let mut h = Harness::new();
    let events = h.bind_with(|ack| ack.lease_secs = None);
    assert_eq!(bound(&events).duration, Duration::from_secs(120));
}

#[test]
fn unsafe_domain_names_are_dropped() {
    for bad in [&b"lan\nnameserver 6.6.6.6"[..], b"", b"a b", &[0xff, 0xfe]] {
        let mut h = Harness::new();
        let bad: &'static [u8] = Box::leak(bad.to_vec().into_boxed_slice());
        let events = h.bind_with(|ack| ack.domain = Some(bad));
        assert_eq!(bound(&events).domain, None, "{bad:?}");
    }
    let mut h = Harness::new();
    let events = h.bind_with(|ack| ack.domain = Some(b"corp.example.\0"));
    assert_eq!(bound(&events).domain.as_deref(), Some("corp.example"));
}

#[test]
fn malformed_frames_are_dropped_without_panic() {
    let mut h = Harness::new();
    let (_, sent) = h.poll();
    let xid = only(&sent, DhcpMessageType::Discover).xid;
    let offer = Reply::new(DhcpMessageType::Offer, xid).frame();

    let mut bad_frames: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 13],
        offer[..20].to_vec(),
        offer[..ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + 4].to_vec(),
        offer[..offer.len() - 40].to_vec(),
    ];
    // A corrupted UDP checksum.
    let mut bad_sum = offer.clone();
    let at = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + 6;
    bad_sum[at] ^= 0x55;
    bad_frames.push(bad_sum);
    // IPv4 header length claiming more than the frame has.
    let mut bad_ihl = offer.clone();
    bad_ihl[ETHERNET_HEADER_LEN] = 0x4f;
    bad_frames.push(bad_ihl);
    for frame in bad_frames {
        let (events, sent) = h.feed(frame);
        assert!(events.is_empty() && sent.is_empty());
    }

    // Pseudo-random corruption of every part of an OFFER and an ACK (with
    // the checksums fixed up, so the mangled bytes reach the DHCP parser).
    let ack = Reply::new(DhcpMessageType::Ack, xid).frame();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..3000 {
        let mut frame = if round % 2 == 0 {
            offer.clone()
        } else {
            ack.clone()
        };
        let dhcp_start = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
        for _ in 0..1 + next() % 8 {
            let at = dhcp_start + (next() as usize % (frame.len() - dhcp_start));
            frame[at] = next() as u8;
        }
        if next() % 4 == 0 {
            let cut = dhcp_start + (next() as usize % (frame.len() - dhcp_start));
            frame.truncate(cut);
            let ip_len = (frame.len() - ETHERNET_HEADER_LEN) as u16;
            frame[ETHERNET_HEADER_LEN + 2..ETHERNET_HEADER_LEN + 4]
                .copy_from_slice(&ip_len.to_be_bytes());
            let udp_len = ip_len - IPV4_HEADER_LEN as u16;
            let u = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;
            frame[u + 4..u + 6].copy_from_slice(&udp_len.to_be_bytes());
            let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETHERNET_HEADER_LEN..]);
            ip.fill_checksum();
        }
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETHERNET_HEADER_LEN..]);
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
            udp.fill_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst));
        }
        h.wire.rx.push_back(frame);
        // Whatever happens, it must not panic; restart when it binds.
        let events = h.client.poll(h.now, &mut h.wire);
        h.wire.tx.clear();
        if !events.is_empty() {
            h = Harness::new();
            h.poll();
        }
    }
}

#[test]
fn release_is_unicast_to_the_server_and_forgets_the_lease() {
    let mut h = Harness::new();
    bound(&h.bind());
    let released = h
        .client
        .release(h.now, &mut h.wire)
        .expect("a lease to release");
    assert_eq!(released.address, OFFERED);
    let frames = std::mem::take(&mut h.wire.tx);
    assert_eq!(frames.len(), 1);
    let release = decode(&frames[0]).expect("a well-formed DHCP frame");
    assert_eq!(release.message_type, DhcpMessageType::Release);
    assert_eq!(release.eth_dst, SERVER_MAC);
    assert_eq!(release.ip_src, OFFERED);
    assert_eq!(release.ip_dst, SERVER_IP);
    assert_eq!(release.client_ip, OFFERED);
    assert_eq!(release.server_id, Some(SERVER_IP));
    assert_eq!(h.client.lease(), None);
    // Nothing to release twice.
    assert!(h.client.release(h.now, &mut h.wire).is_none());
    assert!(h.wire.tx.is_empty());
}

#[test]
fn restart_keeps_the_lease_until_a_new_ack() {
    let mut h = Harness::new();
    bound(&h.bind());
    h.advance_to(h.now + Duration::from_secs(5));
    h.client.restart();
    assert!(h.client.lease().is_some(), "held across the restart");
    let (events, sent) = h.poll();
    assert!(events.is_empty(), "no Lost on restart: {events:?}");
    let discover = only(&sent, DhcpMessageType::Discover);
    let (_, sent) = h.feed(Reply::new(DhcpMessageType::Offer, discover.xid).frame());
    let request = only(&sent, DhcpMessageType::Request);
    let (events, _) = h.feed(Reply::new(DhcpMessageType::Ack, request.xid).frame());
    assert!(
        matches!(events.as_slice(), [DhcpEvent::Renewed(l)] if l.obtained_at == h.now),
        "same parameters: a renewal, not a new bind: {events:?}"
    );
}

#[test]
fn restart_without_a_server_loses_the_held_lease_at_expiry() {
    let mut h = Harness::new();
    let start = h.now;
    bound(&h.bind());
    h.client.restart();
    let events = loop {
        let (events, _) = h.run_to_next();
        if !events.is_empty() {
            break events;
        }
    };
    assert_eq!(events, vec![DhcpEvent::Lost]);
    assert_eq!(h.now, start + Duration::from_secs(100));
    assert_eq!(h.client.lease(), None);
}

#[test]
fn max_lease_caps_the_granted_duration() {
    let mut h = Harness::with_options(DhcpOptions {
        max_lease: Some(Duration::from_secs(10)),
    });
    let events = h.bind();
    assert_eq!(bound(&events).duration, Duration::from_secs(10));
}
