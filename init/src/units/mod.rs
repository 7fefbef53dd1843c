//! The services the appliance runs, as units: one table of declarations
//! ([`table`]), a sandbox for each ([`sandbox`]), a log file each
//! ([`crate::logs`]), and a supervising task each ([`runner`]) that restarts a
//! unit with backoff ([`backoff`]) and applies configuration changes to it.

pub mod backoff;
pub mod runner;
pub mod sandbox;
pub mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tracing::{info, warn};

use tokio::sync::mpsc;

use crate::appliance::Appliance;
use runner::UnitCommand;

/// Starts a supervising task for every unit; returns the channels that
/// reach them (for the control API's restart).
pub fn start_all(appliance: &Arc<Appliance>) -> HashMap<&'static str, mpsc::Sender<UnitCommand>> {
    table::UNITS
        .iter()
        .map(|spec| {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(runner::run(spec, appliance.clone(), rx));
            (spec.name, tx)
        })
        .collect()
}

/// The running units' process ids, for the ordered stop at shutdown (which
/// runs after the supervising tasks are gone).
static RUNNING: Mutex<Vec<(&str, i32)>> = Mutex::new(Vec::new());

pub(crate) fn record_started(name: &'static str, pid: i32) {
    let mut r = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    r.retain(|(n, _)| *n != name);
    r.push((name, pid));
}

pub(crate) fn record_exited(name: &str) {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(n, _)| *n != name);
}

/// Stops the units one at a time in the reverse of the table's order
/// (what depends on another stops first): SIGTERM to its process group,
/// SIGKILL after `timeout`. Reaps as it waits (PID 1's runtime is gone).
pub fn stop_in_order(timeout: Duration) {
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for spec in table::UNITS.iter().rev() {
        let Some(&(_, pid)) = running.iter().find(|(n, _)| *n == spec.name) else {
            continue;
        };
        let group = Pid::from_raw(pid);
        if killpg(group, Signal::SIGTERM) == Err(Errno::ESRCH) {
            continue;
        }
        let deadline = Instant::now() + timeout;
        let gone = || {
            crate::reaper::reap_all();
            kill(group, None) == Err(Errno::ESRCH)
        };
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if gone() {
            info!("unit {}: stopped", spec.name);
        } else {
            warn!(
                "unit {}: still running {timeout:?} after SIGTERM: killing it",
                spec.name
            );
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}
