//! The `status` answer (the console's Info screen, `gatewayctl status`, the
//! agent's check-in): what each subsystem published, with the VM's
//! requirement warnings and the notes on its disks.

use gateway_control::protocol::{Status, TimeStatus};

use super::{patch_ready, Appliance};
use crate::disks;
use crate::pid1::uptime::uptime;

impl Appliance {
    pub fn status(&self) -> Status {
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            uptime_s: uptime().as_secs(),
            storage: if self.state_root.is_some() {
                "persistent"
            } else {
                "memory"
            }
            .to_owned(),
            network: self.network.borrow().clone(),
            dns: self.dns.borrow().clone(),
            time: TimeStatus {
                now_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                ..self.time.borrow().clone()
            },
            units: self.units.borrow().clone(),
            disks: self.disks.borrow().clone(),
            warnings: self.warnings(),
            notes: self.notes(),
        }
    }

    /// The Info screen's requirements warnings: what the VM misses.
    fn warnings(&self) -> Vec<String> {
        let mem = nix::sys::sysinfo::sysinfo().map_or(0, |i| i.ram_total());
        let disks = self.disks.borrow();
        let boot = disks
            .iter()
            .find(|d| d.role == "boot")
            .map(|d| d.size_bytes);
        crate::requirements::warnings(mem, boot)
    }

    /// The Info screen's other notes: a disk the appliance ignores, patch
    /// mode without its disk.
    fn notes(&self) -> Vec<String> {
        let disks = self.disks.borrow();
        let mut out = disks::ignored_warnings(&disks);
        let config = self.config();
        if config.patch.enabled {
            if let Err(why) = patch_ready(&disks, &config) {
                out.push(format!("WARNING : Patch mode is on but {why}"));
            }
        }
        out
    }
}
