//! Offset after first sync, our client against chronyd as client, both
//! syncing to one chronyd server over a veth link between two network
//! namespaces. Both clients start one hour behind (ours: an `OffsetClock`;
//! chronyd: libfaketime `-3600s`); the server and the true time are the
//! host's clock, so what is left of the hour after the first sync is each
//! client's error. Neither touches the host's clock (`OffsetClock`,
//! `chronyd -Q`).
//!
//! Run as root: `cargo run --release -p gateway-ntp --example bench-ntp`
//! (RUNS=<n> for more rounds; default 5).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_ntp::{run, NtpConfig, NtpStatus, OffsetClock, SystemResolver};
use tokio::sync::watch;

const SERVER: &str = "10.77.0.1";
const WRONG_BY: f64 = -3600.0;

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut tb = common::Testbed::new("bench");
    tb.start_chrony(SERVER, None);
    let up = tb.in_client_ns(|| common::wait_for_server(SERVER, 123));
    assert!(
        up.is_some(),
        "chronyd server did not answer: {}",
        tb.chrony_log(SERVER)
    );

    println!("NTP first-sync offset over a veth link, {runs} runs, client 1 h behind");
    println!(
        "{:>4}  {:>16} {:>10}  {:>18} {:>10}",
        "run", "gateway-ntp (µs)", "time (s)", "chronyd -Q (µs)", "time (s)"
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 1..=runs {
        let (o, ot) = tb.in_client_ns(ours_once);
        let (c, ct) = chrony_once(&tb.client_ns.name);
        println!(
            "{i:>4}  {:>16.1} {:>10.2}  {:>18} {:>10.2}",
            o * 1e6,
            ot,
            c.map(|c| format!("{:.1}", c * 1e6))
                .unwrap_or_else(|| "-".into()),
            ct
        );
        ours.push(o.abs());
        if let Some(c) = c {
            theirs.push(c.abs());
        }
    }
    println!(
        "median |offset|: gateway-ntp {:.1} µs, chronyd {} µs",
        median(&mut ours) * 1e6,
        if theirs.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}", median(&mut theirs) * 1e6)
        }
    );
}

/// Our client with default poll settings (2 s burst spacing, as chrony's
/// iburst): the clock's error right after the first clock update, and the
/// time it took.
fn ours_once() -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = Arc::new(OffsetClock::new(WRONG_BY));
        let (tx, mut rx) = watch::channel(NtpStatus::default());
        let config = NtpConfig {
            servers: vec![SERVER.into()],
            ..NtpConfig::default()
        };
        let start = Instant::now();
        let task = tokio::spawn(run(config, clock.clone(), Arc::new(SystemResolver), tx));
        let synced =
            tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|st| st.synchronized)).await;
        let took = start.elapsed().as_secs_f64();
        task.abort();
        assert!(matches!(synced, Ok(Ok(_))), "no sync within 60 s");
        (clock.offset(), took)
    })
}

/// `chronyd -Q` (measure, print, never set the clock) under libfaketime
/// one hour behind: its error is what it reports minus the hour.
fn chrony_once(ns: &str) -> (Option<f64>, f64) {
    let start = Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, common::CHRONYD, "-Q", "-u", "root"])
        .arg(format!("server {SERVER} iburst"))
        .env("LD_PRELOAD", common::LIBFAKETIME)
        .env("FAKETIME", format!("{WRONG_BY}s"))
        .output()
        .expect("running chronyd -Q");
    let took = start.elapsed().as_secs_f64();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // "System clock wrong by 3599.999987 seconds (ignored)"
    let wrong_by = text
        .split("wrong by ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok());
    if wrong_by.is_none() {
        eprintln!("chronyd -Q output not understood:\n{text}");
    }
    // It measured the server `wrong_by` ahead; the truth is -WRONG_BY. The
    // difference has the sign of our figure (the clock's error had it
    // stepped by what it measured).
    (wrong_by.map(|w| w + WRONG_BY), took)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
