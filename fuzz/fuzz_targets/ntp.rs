//! Fuzzes what an NTP server (or anyone on the path) sends PID 1: the
//! packet decoder, the reply checks and the engine that takes a checked
//! reply. Properties: no panic; a packet that decodes encodes back to the
//! same 48 bytes; a reply whose origin is not the request's is refused; an
//! accepted reply reaches the engine without a panic, whatever its
//! timestamps.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime};

use gateway_ntp::config::NtpConfig;
use gateway_ntp::engine::Engine;
use gateway_ntp::packet::{NtpPacket, ReplyError, PACKET_LEN};
use gateway_ntp::source::Outcome;
use gateway_ntp::timestamp::NtpTimestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = NtpPacket::decode(data) else {
        return;
    };
    assert_eq!(p.encode()[..], data[..PACKET_LEN]);
    let other = NtpTimestamp(p.origin_ts.0.wrapping_add(1));
    assert!(matches!(
        p.check_reply(other),
        Err(ReplyError::OriginMismatch
            | ReplyError::BadMode { .. }
            | ReplyError::BadVersion { .. })
    ));
    let Ok(reply) = p.check_reply(p.origin_ts) else {
        return;
    };
    let word = |i: usize| {
        data.get(i..i + 8)
            .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()))
    };
    let now = Instant::now();
    let config = NtpConfig {
        servers: vec!["192.0.2.1".into()],
        min_poll: Duration::from_secs(1),
        max_poll: Duration::from_secs(64),
        port: 123,
    };
    let mut engine = Engine::new(&config, SystemTime::UNIX_EPOCH, now);
    for (n, poll) in engine.due(now).into_iter().enumerate() {
        let outcome = Outcome::Reply {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            reply: reply.clone(),
            t1: NtpTimestamp(word(PACKET_LEN)),
            t4: NtpTimestamp(word(PACKET_LEN + 8)),
            pending_slew: 0.0,
        };
        let _ = engine.handle(
            poll.source,
            poll.epoch,
            outcome,
            now + Duration::from_secs(n as u64),
        );
    }
    let _ = engine.status();
});
