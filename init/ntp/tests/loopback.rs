//! The async layer against tiny NTP responders on 127.0.0.1 (high ports, no
//! root needed): kiss-o'-death, a server that never answers, and forged
//! replies that do not echo our request. The responders are written here
//! so each misbehaviour is exact.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway_ntp::packet::{NtpPacket, MODE_SERVER};
use gateway_ntp::timestamp::NtpTimestamp;
use gateway_ntp::{run, NtpConfig, NtpStatus, OffsetClock, ServerState, SystemResolver};
use tokio::net::UdpSocket;
use tokio::sync::watch;

#[derive(Clone, Copy)]
enum Behaviour {
    /// Correct replies, from the host clock.
    Honest,
    /// Stratum 0 with this kiss code.
    Kiss(&'static [u8; 4]),
    /// First a reply with a wrong origin, then the real one.
    SpoofThenHonest,
}

async fn responder(behaviour: Behaviour) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(req) = NtpPacket::decode(&buf[..n]) else {
                continue;
            };
            let now = NtpTimestamp::from_system_time(SystemTime::now());
            let mut reply = NtpPacket {
                leap: 0,
                version: 4,
                mode: MODE_SERVER,
                stratum: 2,
                poll: 0,
                precision: -20,
                root_delay: 0,
                root_dispersion: 0,
                reference_id: *b"TEST",
                reference_ts: now,
                origin_ts: req.transmit_ts,
                receive_ts: now,
                transmit_ts: now,
            };
            match behaviour {
                Behaviour::Honest => {}
                Behaviour::Kiss(code) => {
                    reply.stratum = 0;
                    reply.reference_id = *code;
                }
                Behaviour::SpoofThenHonest => {
                    let mut forged = reply.clone();
                    forged.origin_ts = NtpTimestamp(req.transmit_ts.0 ^ 1);
                    forged.transmit_ts = NtpTimestamp(now.0.wrapping_add(100 << 32));
                    forged.receive_ts = forged.transmit_ts;
                    let _ = sock.send_to(&forged.encode(), from).await;
                }
            }
            let _ = sock.send_to(&reply.encode(), from).await;
        }
    });
    addr
}

/// Runs the client against 127.0.0.1:`port` until `done` (or 20 s).
async fn client_until(
    port: u16,
    initial_error: f64,
    done: impl Fn(&NtpStatus) -> bool,
) -> (NtpStatus, Arc<OffsetClock>) {
    let clock = Arc::new(OffsetClock::new(initial_error));
    let (tx, mut rx) = watch::channel(NtpStatus::default());
    let config = NtpConfig {
        servers: vec!["127.0.0.1".into()],
        min_poll: Duration::from_secs(1),
        max_poll: Duration::from_secs(2),
        port,
    };
    let task = tokio::spawn(run(config, clock.clone(), Arc::new(SystemResolver), tx));
    let ok = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|st| done(st)))
        .await
        .is_ok_and(|r| r.is_ok());
    task.abort();
    let st = rx.borrow().clone();
    assert!(ok, "timed out: {st:#?}");
    (st, clock)
}

#[tokio::test]
async fn deny_kiss_marks_the_server_refused_and_leaves_the_clock() {
    let addr = responder(Behaviour::Kiss(b"DENY")).await;
    let (st, clock) = client_until(addr.port(), 2.0, |st| {
        st.servers
            .first()
            .is_some_and(|s| s.state == ServerState::Refused)
    })
    .await;
    assert!(!st.synchronized);
    assert_eq!(clock.offset(), 2.0);
    assert!(st.servers[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("DENY"));
}

#[tokio::test]
async fn silent_server_is_unreachable_and_nothing_blocks() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let (st, clock) = client_until(port, 2.0, |st| {
        st.servers
            .first()
            .is_some_and(|s| s.state == ServerState::Unreachable)
    })
    .await;
    assert!(!st.synchronized);
    assert_eq!(clock.offset(), 2.0);
    assert!(st.servers[0].last_error.is_some());
}

#[tokio::test]
async fn forged_replies_are_ignored() {
    let addr = responder(Behaviour::SpoofThenHonest).await;
    let (st, clock) = client_until(addr.port(), -1.0, |st| st.synchronized).await;
    // Followed the forged +100 s replies, the clock would be far off.
    assert!(clock.offset().abs() < 0.05, "{}; {st:#?}", clock.offset());
    assert_eq!(clock.steps().len(), 1);
}

#[tokio::test]
async fn honest_loopback_server_syncs_a_small_offset_by_slewing() {
    let addr = responder(Behaviour::Honest).await;
    let (st, clock) = client_until(addr.port(), 0.040, |st| st.synchronized).await;
    assert!(clock.steps().is_empty(), "40 ms is slewed, not stepped");
    assert!(clock.offset().abs() < 0.005, "{}", clock.offset());
    assert_eq!(st.server.as_deref(), Some("127.0.0.1"));
    assert_eq!(st.stratum, Some(3));
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["synchronized"], true);
    assert_eq!(json["servers"][0]["state"], "selected");
}

/// A resolver PID 1 might plug in: a fixed map, counting lookups.
struct MapResolver {
    lookups: std::sync::atomic::AtomicUsize,
}

impl gateway_ntp::Resolve for MapResolver {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<std::net::IpAddr>> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match host {
            "time.test" => Ok(vec!["127.0.0.1".parse().unwrap()]),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not in the map",
            )),
        }
    }
}

#[tokio::test]
async fn names_go_through_the_plugged_in_resolver() {
    let addr = responder(Behaviour::Honest).await;
    let resolver = Arc::new(MapResolver { lookups: 0.into() });
    let clock = Arc::new(OffsetClock::new(0.5));
    let (tx, mut rx) = watch::channel(NtpStatus::default());
    let config = NtpConfig {
        servers: vec!["time.test".into(), "nowhere.test".into()],
        min_poll: Duration::from_secs(1),
        max_poll: Duration::from_secs(2),
        port: addr.port(),
    };
    let task = tokio::spawn(run(config, clock.clone(), resolver.clone(), tx));
    let ok = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|st| st.synchronized))
        .await
        .is_ok_and(|r| r.is_ok());
    task.abort();
    let st = rx.borrow().clone();
    assert!(ok, "timed out: {st:#?}");
    assert_eq!(st.server.as_deref(), Some("time.test"));
    assert_eq!(st.server_address, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(st.servers[1].state, ServerState::Unreachable);
    assert!(st.servers[1]
        .last_error
        .as_deref()
        .unwrap()
        .contains("not in the map"));
    assert_eq!(clock.steps().len(), 1, "500 ms is stepped");
    assert!(clock.offset().abs() < 0.005);
    // Resolved once, then the address is kept while the server answers.
    assert!(resolver.lookups.load(std::sync::atomic::Ordering::SeqCst) <= 3);
}
