//! DHCPRELEASE, built with smoltcp's wire types.
//!
//! smoltcp's socket never gives a lease back, so the client builds the whole
//! Ethernet frame itself. RFC 2131 §4.4.6: the client unicasts DHCPRELEASE
//! to the server from the leased address, with `ciaddr` set to it and the
//! server identifier option; no other option is required, and no reply comes.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    DHCP_CLIENT_PORT, DHCP_SERVER_PORT, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, UDP_HEADER_LEN,
};

use super::Lease;

/// The DHCPRELEASE frame for `lease`, from `mac` to `server_mac`.
pub(crate) fn frame(
    mac: EthernetAddress,
    server_mac: EthernetAddress,
    lease: &Lease,
    xid: u32,
) -> Vec<u8> {
    let dhcp = DhcpRepr {
        message_type: DhcpMessageType::Release,
        transaction_id: xid,
        secs: 0,
        client_hardware_address: mac,
        client_ip: lease.address,
        your_ip: Ipv4Address::UNSPECIFIED,
        server_ip: Ipv4Address::UNSPECIFIED,
        router: None,
        subnet_mask: None,
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        // Same client identifier as smoltcp's DISCOVER/REQUEST, so the
        // server finds the lease it keyed by it.
        client_identifier: Some(mac),
        server_identifier: Some(lease.server_id),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: None,
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let udp = UdpRepr {
        src_port: DHCP_CLIENT_PORT,
        dst_port: DHCP_SERVER_PORT,
    };
    let dhcp_len = dhcp.buffer_len();
    let ip = Ipv4Repr {
        src_addr: lease.address,
        dst_addr: lease.server_address,
        next_header: IpProtocol::Udp,
        payload_len: UDP_HEADER_LEN + dhcp_len,
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: server_mac,
        ethertype: EthernetProtocol::Ipv4,
    };

    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + dhcp_len];
    let checksums = ChecksumCapabilities::default();
    let mut eth_frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut eth_frame);
    let mut ip_packet = Ipv4Packet::new_unchecked(eth_frame.payload_mut());
    ip.emit(&mut ip_packet, &checksums);
    let mut udp_packet = UdpPacket::new_unchecked(ip_packet.payload_mut());
    udp.emit(
        &mut udp_packet,
        &IpAddress::Ipv4(lease.address),
        &IpAddress::Ipv4(lease.server_address),
        dhcp_len,
        |payload| {
            let mut packet = DhcpPacket::new_unchecked(payload);
            // The buffer was sized by `buffer_len`, so emitting cannot run out.
            let _ = dhcp.emit(&mut packet);
        },
        &checksums,
    );
    buf
}
