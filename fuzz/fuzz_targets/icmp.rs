//! Fuzzes what comes back on the diagnostics ping's raw ICMP socket: any
//! IPv4 datagram from anyone (`gateway_init::diagnostics::ping`). The input
//! gives the addresses and identifier, then the datagram. Properties: no
//! panic; a datagram taken as ours is an IPv4 echo reply (type 0) with our
//! identifier, and its sequence is the one read; and our own request,
//! answered by the target (type 0, checksum redone) behind any valid IPv4
//! header, is taken with its sequence.
#![no_main]

use std::net::Ipv4Addr;

use gateway_init::diagnostics::ping::{checksum, echo_request, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, datagram)) = data.split_first_chunk::<10>() else {
        return;
    };
    let from = Ipv4Addr::new(head[0], head[1], head[2], head[3]);
    let to = Ipv4Addr::new(head[4], head[5], head[6], head[7]);
    let id = u16::from_be_bytes([head[8], head[9]]);
    if let Some(seq) = parse_reply(datagram, from, to, id) {
        let ihl = usize::from(datagram[0] & 0x0f) * 4;
        assert_eq!(datagram[0] >> 4, 4);
        assert!(ihl >= 20 && datagram.len() >= ihl + 8);
        let icmp = &datagram[ihl..];
        assert_eq!(icmp[0], 0);
        assert_eq!(u16::from_be_bytes([icmp[4], icmp[5]]), id);
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), seq);
    }

    // The answer to a request of ours, behind a header of 5 to 15 words.
    let seq = u16::from_be_bytes([head[2], head[3]]);
    let words = 5 + usize::from(head[0] % 11);
    let payload = datagram.get(words * 4..).unwrap_or_default();
    let mut reply = echo_request(id, seq, payload);
    assert_eq!(checksum(&reply), 0, "a request's checksum verifies");
    reply[0] = 0;
    reply[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&reply);
    reply[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0u8; words * 4];
    ip[0] = 0x40 | words as u8;
    ip[12..16].copy_from_slice(&to.octets());
    ip.extend_from_slice(&reply);
    assert_eq!(parse_reply(&ip, from, to, id), Some(seq));
});
