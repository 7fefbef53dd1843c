//! Fuzzes what a DHCP server (or anyone on eth0's segment) sends PID 1's
//! DHCP client (gateway-net): smoltcp's DHCP decoder, the tap that reads
//! every server frame as it passes (server MAC, message type) and the
//! client's own reading of an ACK (lease time, domain name), driven through
//! `DhcpClient::poll` over an in-memory wire. The input is up to four
//! messages, each a control byte, a time byte, a length byte and the bytes:
//! by the control byte they are the BOOTP payload or the options after a
//! server's OFFER, ACK or NAK header (so smoltcp's DISCOVER/OFFER/REQUEST/ACK
//! exchange is reached quickly), get the client's transaction id and MAC,
//! and are wrapped in a correct Ethernet/IPv4/UDP frame or go on the wire as
//! a raw frame; then time passes, and the client may be restarted.
//! Properties: no panic; a lease reported has a prefix of at
//! most 32 and a domain fit for resolv.conf; a payload that decodes
//! encodes (smoltcp's encoder) back to a payload that decodes to the same
//! message, apart from T1 and T2, which smoltcp's encoder does not write.
#![no_main]

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use gateway_net::dhcp::{DhcpClient, DhcpEvent, DhcpOptions};
use libfuzzer_sys::fuzz_target;
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, ETHERNET_HEADER_LEN,
    IPV4_HEADER_LEN, UDP_HEADER_LEN,
};

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xfe]);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 7, 1);

#[derive(Default)]
struct Wire {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let result = f(&mut buf);
        self.0.push(buf);
        result
    }
}

impl Device for Wire {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// The transaction id of the last DHCP message the client sent.
fn sent_xid(frame: &[u8]) -> Option<u32> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    Some(
        DhcpPacket::new_checked(udp.payload())
            .ok()?
            .transaction_id(),
    )
}

/// `payload` as a server's UDP 67 -> 68 datagram with correct checksums.
fn frame(payload: &[u8], broadcast: bool) -> Vec<u8> {
    let checksums = ChecksumCapabilities::default();
    let dst = if broadcast {
        Ipv4Addr::BROADCAST
    } else {
        Ipv4Addr::new(192, 168, 7, 50)
    };
    let len = payload.len();
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: if broadcast {
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
        payload_len: UDP_HEADER_LEN + len,
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
        len,
        |p| p.copy_from_slice(payload),
        &checksums,
    );
    buf
}

/// smoltcp's decoder, then its encoder, then the decoder again.
fn round_trip(payload: &[u8]) {
    let Ok(packet) = DhcpPacket::new_checked(payload) else {
        return;
    };
    let Ok(repr) = DhcpRepr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
        .expect("a decoded message encodes into its buffer_len");
    let again = DhcpPacket::new_checked(&buf[..]).expect("an encoded message is long enough");
    let mut again = DhcpRepr::parse(&again).expect("an encoded message decodes");
    again.renew_duration = repr.renew_duration;
    again.rebind_duration = repr.rebind_duration;
    assert_eq!(again, repr);
}

fn check(events: &[DhcpEvent]) {
    for event in events {
        if let DhcpEvent::Bound(lease) | DhcpEvent::Renewed(lease) = event {
            assert!(lease.prefix <= 32);
            if let Some(domain) = &lease.domain {
                assert!(!domain.is_empty() && domain.len() <= 253, "{domain:?}");
                assert!(
                    domain
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
                    "{domain:?}"
                );
            }
        }
    }
}

/// A server's reply: BOOTP header, magic cookie, message type, server id
/// and subnet mask, then `options` and the end option.
fn template(message_type: u8, options: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[..4].copy_from_slice(&[2, 1, 6, 0]);
    p[16..20].copy_from_slice(&[192, 168, 7, 50]);
    p[20..24].copy_from_slice(&SERVER_IP.octets());
    p[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    p.extend_from_slice(&[53, 1, message_type, 54, 4]);
    p.extend_from_slice(&SERVER_IP.octets());
    p.extend_from_slice(&[1, 4, 255, 255, 255, 0]);
    p.extend_from_slice(options);
    p.push(255);
    p
}

fuzz_target!(|data: &[u8]| {
    let mut wire = Wire::default();
    let mut now = Instant::from_secs(1000);
    let mut client = DhcpClient::new(CLIENT_MAC, 0x5eed, DhcpOptions::default(), &mut wire, now);
    let mut xid = 0;
    let mut rest = data;
    for _ in 0..4 {
        check(&client.poll(now, &mut wire));
        if let Some(x) = wire.tx.drain(..).filter_map(|f| sent_xid(&f)).last() {
            xid = x;
        }
        let [control, time, len, tail @ ..] = rest else {
            break;
        };
        let (bytes, tail) = tail.split_at((usize::from(*len) * 4).min(tail.len()));
        rest = tail;
        round_trip(bytes);
        let mut payload = match (control >> 3) & 3 {
            0 => bytes.to_vec(),
            1 => template(2, bytes),
            2 => template(5, bytes),
            _ => template(6, bytes),
        };
        round_trip(&payload);
        if control & 1 == 0 && payload.len() >= 34 {
            payload[4..8].copy_from_slice(&xid.to_be_bytes());
            payload[28..34].copy_from_slice(&CLIENT_MAC);
        }
        if control & 2 != 0 {
            wire.rx.push_back(payload);
        } else {
            wire.rx.push_back(frame(&payload, control & 4 != 0));
        }
        check(&client.poll(now, &mut wire));
        // Time passes, by up to about 18 hours: renewal, rebinding, expiry.
        now += Duration::from_secs(u64::from(*time) * u64::from(*time));
        let _ = client.poll_at(now);
        if control & 0x80 != 0 {
            client.restart();
        }
    }
    let _ = client.release(now, &mut wire);
});
