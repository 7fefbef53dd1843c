//! The services the appliance runs, as units: one table of declarations
//! ([`table`]), a sandbox for each ([`sandbox`]), a log file each
//! ([`crate::logs`]), and a supervising task each ([`runner`]) that restarts a
//! unit with backoff ([`backoff`]) and applies configuration changes to it.
//! The cache's appliance CA is read and installed by running the cache's
//! own binary as its user ([`cacheca`]).

pub mod backoff;
pub mod cacheca;
pub mod command;
pub mod listener;
pub mod runner;
pub mod sandbox;
pub mod seccomp;
pub mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tracing::{info, warn};

use tokio::sync::mpsc;

use crate::state::Appliance;
use command::UnitCommand;

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

/// Whether the unit `name` has a process (it started and has not exited).
pub fn is_running(name: &str) -> bool {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(n, _)| *n == name)
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
    stop_units(&running, timeout, || {
        crate::pid1::reaper::reap_all();
    });
}

/// [`stop_in_order`] for the units `running` (name, pid of the group
/// leader), in whatever order they started; `reap` collects the exited
/// children (PID 1: all of them), without which an exited unit would stay a
/// zombie and count as running.
fn stop_units(running: &[(&str, i32)], timeout: Duration, mut reap: impl FnMut()) {
    for spec in table::UNITS.iter().rev() {
        let Some(&(_, pid)) = running.iter().find(|(n, _)| *n == spec.name) else {
            continue;
        };
        let group = Pid::from_raw(pid);
        if killpg(group, Signal::SIGTERM) == Err(Errno::ESRCH) {
            continue;
        }
        let deadline = Instant::now() + timeout;
        let mut gone = || {
            reap();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command};

    /// A stand-in for a unit: `sh -c script` leading its own process group
    /// (as a unit leads its session), started once it wrote "ready" to
    /// `events` (a signal before its trap is set would find the default).
    fn unit_process(script: &str, name: &str, events: &std::path::Path) -> Child {
        let child = Command::new("sh")
            .args(["-c", script])
            .env("NAME", name)
            .env("EVENTS", events)
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(events)
            .unwrap_or_default()
            .contains(&format!("ready {name}\n"))
        {
            assert!(Instant::now() < deadline, "{name} did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    /// Exits on SIGTERM, 200 ms after it (a unit finishing its work),
    /// noting both in `$EVENTS`.
    const POLITE: &str = r#"trap 'echo "term $NAME" >> "$EVENTS"; sleep 0.2; echo "exit $NAME" >> "$EVENTS"; exit 0' TERM
echo "ready $NAME" >> "$EVENTS"
sleep 60 & wait"#;
    /// Ignores SIGTERM (and so does its sleep, which inherits that).
    const STUBBORN: &str = r#"trap '' TERM
echo "ready $NAME" >> "$EVENTS"
sleep 60"#;

    /// Reaps only the test's own children (the test binary runs other
    /// tests' children beside them).
    fn reaper<'a>(children: &'a mut [(&'static str, Child)]) -> impl FnMut() + 'a {
        move || {
            for (_, child) in children.iter_mut() {
                let _ = child.try_wait();
            }
        }
    }

    #[test]
    fn at_power_off_the_units_stop_one_at_a_time_in_the_reverse_of_the_table() {
        let _alone = crate::testlog::own_children();
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        // Started in an order of their own (by name): the table decides.
        let mut names: Vec<&'static str> = table::UNITS.iter().map(|u| u.name).collect();
        names.sort();
        let mut children: Vec<(&'static str, Child)> = names
            .iter()
            .map(|&n| (n, unit_process(POLITE, n, &events)))
            .collect();
        let running: Vec<(&str, i32)> = children.iter().map(|(n, c)| (*n, c.id() as i32)).collect();
        let log = crate::testlog::capture();
        stop_units(&running, runner::STOP_TIMEOUT, reaper(&mut children));

        // Each got SIGTERM only once the one before had exited.
        let text = std::fs::read_to_string(&events).unwrap();
        let stops: Vec<&str> = text.lines().filter(|l| !l.starts_with("ready ")).collect();
        let expected: Vec<String> = table::UNITS
            .iter()
            .rev()
            .flat_map(|u| [format!("term {}", u.name), format!("exit {}", u.name)])
            .collect();
        assert_eq!(stops, expected);
        // The consoles go first, the proxy, which the others were started
        // beside, last.
        assert_eq!(stops.first(), Some(&"term console-ttyS0"));
        assert_eq!(stops.last(), Some(&"exit proxy"));
        let stopped: Vec<String> = table::UNITS
            .iter()
            .rev()
            .map(|u| format!("unit {}: stopped", u.name))
            .collect();
        assert_eq!(log.lines(), stopped);
        for (name, child) in &mut children {
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(0), "{name}: {status:?}");
        }
    }

    #[test]
    fn a_unit_that_ignores_sigterm_is_killed_5_s_later_and_the_next_then_stops() {
        let _alone = crate::testlog::own_children();
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        // The agent comes after the proxy in the table: it stops first.
        let mut children = [
            ("proxy", unit_process(POLITE, "proxy", &events)),
            ("agent", unit_process(STUBBORN, "agent", &events)),
        ];
        let running: Vec<(&str, i32)> = children.iter().map(|(n, c)| (*n, c.id() as i32)).collect();
        let log = crate::testlog::capture();
        let t0 = Instant::now();
        let mut agent_gone = None;
        {
            let (proxy, agent) = children.split_at_mut(1);
            let (agent, proxy) = (&mut agent[0].1, &mut proxy[0].1);
            stop_units(&running, runner::STOP_TIMEOUT, || {
                if agent_gone.is_none() && matches!(agent.try_wait(), Ok(Some(_))) {
                    agent_gone = Some(t0.elapsed());
                }
                let _ = proxy.try_wait();
            });
        }
        let agent_gone = agent_gone.expect("the agent was reaped while stopping");
        assert!(
            (runner::STOP_TIMEOUT..runner::STOP_TIMEOUT + Duration::from_millis(1500))
                .contains(&agent_gone),
            "the agent died {agent_gone:?} after SIGTERM"
        );
        let status = children[1].1.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        // The proxy got its SIGTERM only after the agent was gone.
        let text = std::fs::read_to_string(&events).unwrap();
        assert!(!text.contains("term agent"), "{text}");
        assert!(text.ends_with("term proxy\nexit proxy\n"), "{text}");
        assert_eq!(children[0].1.wait().unwrap().code(), Some(0));
        assert_eq!(
            log.lines(),
            [
                "warning: unit agent: still running 5s after SIGTERM: killing it",
                "unit proxy: stopped"
            ]
        );
    }
}
