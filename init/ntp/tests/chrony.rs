//! Host integration tests: the client against real chronyd servers in
//! network namespaces the tests create. The client corrects an
//! `OffsetClock` (host time plus a virtual error), never the host's clock;
//! chronyd runs with `-x` and does not touch it either.
//!
//! Run as root: `cargo test -p gateway-ntp --test chrony`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gateway_ntp::{run, NtpConfig, NtpStatus, OffsetClock, ServerState, SystemResolver};
use tokio::sync::watch;

use common::{wait_for_server, Testbed};

/// Runs the client against `servers` with a clock `initial_error` seconds
/// off, until `done` holds for the status (or 30 s pass). Returns the
/// clock's remaining error and the last status.
fn sync_against(
    tb: &Testbed,
    servers: &[&str],
    initial_error: f64,
    done: impl Fn(&NtpStatus) -> bool + Send + 'static,
) -> (f64, NtpStatus, Arc<OffsetClock>) {
    let servers: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
    tb.in_client_ns(move || {
        for s in &servers {
            assert!(
                wait_for_server(s, 123).is_some(),
                "chronyd on {s} did not answer"
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let clock = Arc::new(OffsetClock::new(initial_error));
            let (tx, mut rx) = watch::channel(NtpStatus::default());
            let config = NtpConfig {
                servers,
                min_poll: Duration::from_secs(1),
                max_poll: Duration::from_secs(4),
                port: 123,
            };
            let task = tokio::spawn(run(config, clock.clone(), Arc::new(SystemResolver), tx));
            let waited = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    if done(&rx.borrow_and_update()) {
                        break;
                    }
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
            task.abort();
            let status = rx.borrow().clone();
            assert!(waited.is_ok(), "timed out; last status: {status:#?}");
            (clock.offset(), status, clock)
        })
    })
}

#[test]
fn one_hour_wrong_clock_is_corrected_against_chrony() {
    let mut tb = Testbed::new("one");
    tb.start_chrony("10.77.0.1", None);

    let (error, st, clock) = sync_against(&tb, &["10.77.0.1"], -3600.0, |st| {
        st.synchronized && st.servers[0].reach.count_ones() >= 6
    });

    assert!(
        error.abs() < 0.050,
        "clock still {error} s off; steps {:?} slews {:?}; status {st:#?}",
        clock.steps(),
        clock.slews()
    );
    assert_eq!(
        clock.steps().len(),
        1,
        "one step, then slews: {:?}",
        clock.steps()
    );
    assert!((clock.steps()[0] - 3600.0).abs() < 0.050);
    assert!(st.synchronized);
    assert_eq!(st.server.as_deref(), Some("10.77.0.1"));
    assert_eq!(st.stratum, Some(9), "chrony is local stratum 8");
    assert!(st.last_sync.is_some());
    assert_eq!(st.servers[0].state, ServerState::Selected);
    assert!(
        st.offset_ms.unwrap().abs() < 50.0,
        "later updates are small: {st:#?}"
    );
    eprintln!(
        "offset after sync: {:.3} ms (steps {:?}, slews {:?})",
        error * 1e3,
        clock.steps(),
        clock.slews()
    );
}

#[test]
fn false_ticker_among_three_chrony_servers_is_ignored() {
    let mut tb = Testbed::new("three");
    tb.start_chrony("10.77.0.1", None);
    tb.start_chrony("10.77.0.2", None);
    tb.start_chrony("10.77.0.3", Some("+30s"));

    // First make sure the false-ticker really serves time 30 s ahead.
    let fake = tb.in_client_ns(|| wait_for_server("10.77.0.3", 123));
    let fake =
        fake.unwrap_or_else(|| panic!("faked chronyd silent: {}", tb.chrony_log("10.77.0.3")));
    assert!(
        (fake - 30.0).abs() < 0.5,
        "libfaketime chronyd serves {fake} s off"
    );

    let (error, st, clock) =
        sync_against(&tb, &["10.77.0.1", "10.77.0.2", "10.77.0.3"], 5.0, |st| {
            st.synchronized && st.servers[2].state == ServerState::Falseticker
        });

    assert!(error.abs() < 0.050, "clock {error} s off; status {st:#?}");
    assert!(
        clock.steps().iter().all(|s| (s + 5.0).abs() < 0.050),
        "never followed the false-ticker: {:?}",
        clock.steps()
    );
    assert_eq!(st.servers[2].state, ServerState::Falseticker, "{st:#?}");
    assert!((st.servers[2].offset_ms.unwrap() - 30_000.0).abs() < 500.0);
    assert_ne!(st.server.as_deref(), Some("10.77.0.3"));
    for s in &st.servers[..2] {
        assert!(
            matches!(s.state, ServerState::Selected | ServerState::Candidate),
            "{st:#?}"
        );
    }
}
