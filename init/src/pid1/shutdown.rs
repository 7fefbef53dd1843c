//! Orderly power-off and reboot: every process is asked to stop (SIGTERM),
//! given [`STOP_TIMEOUT`], then killed; the disks are synced, /var unmounted
//! (or made read-only when something still holds it), the root remounted
//! read-only, and the kernel told to power off or reboot.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::mount::{mount, umount, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{sync, Pid};
use tracing::{info, warn};

use super::procs;
use super::reaper::reap_all;
use super::signals::Request;
use crate::boot::statefs::MOUNT_POINT;

pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `sig` to every process but PID 1 and waits (reaping) until none is
/// left or `timeout` passes. Returns how many are left.
fn stop_all(sig: Signal, timeout: Duration) -> usize {
    let _ = kill(Pid::from_raw(-1), sig);
    let deadline = Instant::now() + timeout;
    loop {
        reap_all();
        let left = procs::list(Path::new("/proc"))
            .iter()
            .filter(|p| p.pid != 1)
            .count();
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn shutdown(request: Request) -> ! {
    let verb = match request {
        Request::Poweroff => "power-off",
        Request::Reboot => "reboot",
    };
    info!("{verb}: stopping the units");
    crate::units::stop_in_order(crate::units::runner::STOP_TIMEOUT);
    info!("{verb}: stopping all processes");
    let left = stop_all(Signal::SIGTERM, STOP_TIMEOUT);
    if left > 0 {
        warn!("{verb}: {left} processes still running after {STOP_TIMEOUT:?}: killing them");
        let left = stop_all(Signal::SIGKILL, KILL_TIMEOUT);
        if left > 0 {
            warn!("{verb}: {left} processes did not die");
        }
    }
    // The kernel log follower (a thread of ours) writes to /var/log.
    crate::logs::stop();
    sync();
    // The patch disk is mounted inside /var: it goes first.
    let patch = crate::disks::patch::MOUNT_POINT;
    if crate::boot::mounts::is_mount_point(Path::new(patch)) {
        unmount(verb, patch);
    }
    unmount(verb, MOUNT_POINT);
    if let Err(e) = remount_ro("/") {
        warn!("{verb}: remount / read-only: {e}");
    }
    sync();
    info!("{verb}: now");
    let mode = match request {
        Request::Poweroff => RebootMode::RB_POWER_OFF,
        Request::Reboot => RebootMode::RB_AUTOBOOT,
    };
    let err = reboot(mode);
    // Only reached when the kernel refused: stay alive, an exiting PID 1 panics.
    warn!("{verb}: the kernel refused: {err:?}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Unmounts `target`, or makes it read-only when something still holds it.
fn unmount(verb: &str, target: &str) {
    match umount(target) {
        Ok(()) => info!("{verb}: {target} unmounted"),
        Err(e) => {
            warn!("{verb}: unmount {target}: {e}: remounting it read-only");
            if let Err(e) = remount_ro(target) {
                warn!("{verb}: remount {target} read-only: {e}");
            }
        }
    }
}

fn remount_ro(target: &str) -> nix::Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
}
