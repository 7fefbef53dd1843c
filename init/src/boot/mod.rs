//! The boot sequence: small steps with one job each, in this order. A step that
//! fails (or panics) is logged with the reason and the boot goes on: the
//! appliance must reach its console whatever happens.

pub mod cmdline;
pub mod factory_reset;
pub mod loopback;
pub mod mounts;
pub mod ovfenv;
pub mod statefs;

use std::panic::{catch_unwind, AssertUnwindSafe};

use tracing::{error, info, warn};

use crate::disks::blockdev::Sysfs;
use crate::logs::console;
use crate::pid1::uptime::uptime;
use cmdline::GatewayArgs;
use mounts::MountOutcome;

const DEFAULT_HOSTNAME: &str = "gateway";

/// Runs one step, logging its failure or panic; returns its value if any.
pub fn step<T, E: std::fmt::Display>(name: &str, f: impl FnOnce() -> Result<T, E>) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            error!("{name}: {e}");
            None
        }
        Err(_) => {
            error!("{name}: panicked; continuing the boot");
            None
        }
    }
}

/// What the boot found, for what follows.
pub struct Booted {
    /// The command line's `gateway.*` settings.
    pub args: GatewayArgs,
    /// /var is the state partition (else a tmpfs: nothing persists).
    pub persistent: bool,
}

/// The most user namespaces that may exist (0 at boot).
pub const USER_NAMESPACES_SYSCTL: &str = "/proc/sys/user/max_user_namespaces";

/// The whole sequence.
pub fn run() -> Booted {
    // Mount first, log after: the consoles and /dev/kmsg need /dev and /sys.
    let mounted: Vec<_> = mounts::early_mounts()
        .into_iter()
        .map(|spec| {
            let r = catch_unwind(AssertUnwindSafe(|| mounts::apply(&spec)));
            (spec.target, r)
        })
        .collect();
    console::init();
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let pretty = os
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Gateway Appliance".into());
    info!("{pretty}: init starting");
    for (target, r) in mounted {
        match r {
            Ok(Ok(MountOutcome::Mounted)) => info!("mounted {target}"),
            Ok(Ok(MountOutcome::AlreadyMounted)) => info!("{target} already mounted"),
            Ok(Err(e)) => error!("{e}"),
            Err(_) => error!("mount {target}: panicked"),
        }
    }
    let args = GatewayArgs::read();

    step("root filesystem", || {
        nix::sys::statvfs::statvfs("/").map(|st| {
            if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
                info!("root filesystem: read-only");
            } else {
                warn!("root filesystem: writable (the command line lacks `ro`)");
            }
        })
    });
    step("user namespaces", || {
        // Nothing on the appliance needs a user namespace, and one is how an
        // unprivileged process gets capabilities the kernel then checks in
        // fewer places (most kernel escapes of recent years start there):
        // none may be created, by the units or anyone.
        std::fs::write(USER_NAMESPACES_SYSCTL, "0\n")
            .map(|()| info!("user namespaces: none allowed"))
    });
    step("ctrl-alt-del", || {
        // The kernel then sends SIGINT to init instead of rebooting at once.
        nix::sys::reboot::set_cad_enabled(false).map(|()| info!("ctrl-alt-del: orderly reboot"))
    });
    // Before the state partition: e2fsck refuses a superblock written "in
    // the future" of a clock that a dead RTC left in 1970.
    step("clock floor", crate::network::timesync::apply_floor);
    let persistent = step("state partition", || {
        Ok::<_, std::convert::Infallible>(statefs::prepare(&Sysfs::default()))
    })
    .unwrap_or(false);
    step("hostname", || {
        let name = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_HOSTNAME.into());
        nix::unistd::sethostname(&name).map(|()| info!("hostname: {name}"))
    });
    step("loopback", || {
        loopback::up().map(|()| info!("loopback: up"))
    });
    Booted { args, persistent }
}

/// The line the tests and the benchmark wait for.
pub fn announce_ready() {
    console::announce(&format!("gateway: ready in {} ms", uptime().as_millis()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_or_panicking_step_returns_none_and_does_not_unwind() {
        assert_eq!(step("ok", || Ok::<_, std::io::Error>(7)), Some(7));
        assert_eq!(step("err", || Err::<u8, _>("broken")), None);
        let panicked: Option<u8> = step("panics", || -> Result<u8, std::io::Error> {
            panic!("step panicked")
        });
        assert_eq!(panicked, None);
    }
}
