//! The appliance's live state: the current configuration (one source of
//! truth, kept in the store on the state partition and published on a watch
//! channel that each subsystem follows), the status channels the subsystems
//! publish on, and the handles the control API's requests reach (the power
//! requests to the main loop, the units' supervisors, the patch disk found
//! at boot, the running capture). What the requests mean is the control
//! API's ([`crate::api`]); the first-boot seed is [`seed`]'s, the status
//! answer [`status`]'s.
//!
//! A change is validated as a whole, saved atomically, then published; each
//! subsystem (network, DNS files, time) redoes only what its own keys
//! changed. Nothing is published when the save fails, so what runs is
//! always what is stored.

pub mod seed;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use gateway_config::{Config, ConfigError, Store};
use gateway_control::protocol::{
    CaptureStatus, DiskStatus, DnsStatus, NetworkStatus, ReportOffer, SetResult, Stats, TimeStatus,
    UnitStatus,
};
use tokio::sync::{mpsc, watch, Mutex, MutexGuard};
use tracing::{error, info};

use crate::disks::{self, discover::Candidate, patch};
use crate::pid1::signals;
use crate::units::command::UnitCommand;

pub use seed::load_or_seed;

/// Where the configuration lives on the state partition.
pub const CONFIG_DIR: &str = "/var/lib/gateway";

pub struct Appliance {
    store: Store,
    /// The state partition's mount point; None when /var is a tmpfs.
    state_root: Option<std::path::PathBuf>,
    config: watch::Sender<Config>,
    /// Serialises changes: validate, save and publish happen as one.
    changing: Mutex<()>,
    power: mpsc::UnboundedSender<signals::Request>,
    pub network: watch::Sender<NetworkStatus>,
    pub dns: watch::Sender<DnsStatus>,
    pub time: watch::Sender<TimeStatus>,
    pub units: watch::Sender<Vec<UnitStatus>>,
    pub stats: watch::Sender<Stats>,
    pub disks: watch::Sender<Vec<DiskStatus>>,
    /// The disk chosen as patch disk at boot, for `format_patch_disk`.
    patch_disk: std::sync::Mutex<Option<Candidate>>,
    /// The units' supervising tasks, set once they start.
    unit_commands: std::sync::Mutex<HashMap<&'static str, mpsc::Sender<UnitCommand>>>,
    /// The diagnostics report waiting for download (the `sftp` unit runs
    /// while there is one, or when SSH is enabled).
    pub report: watch::Sender<Option<ReportOffer>>,
    /// One report at a time, and not while its expiry is being checked.
    report_lock: Mutex<()>,
    /// The upstream capture, and the flag that ends a running one.
    pub capture: watch::Sender<CaptureStatus>,
    capture_stop: Arc<AtomicBool>,
}

/// Why a change of the configuration was refused; nothing was saved or
/// published.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// A key or a value breaks a rule of the configuration.
    #[error("{0}")]
    Refused(#[from] ConfigError),
    /// Patch mode on without a usable patch disk.
    #[error("patch.enabled: {0}")]
    PatchNotReady(#[from] patch::NotReady),
    /// The store could not save the new configuration.
    #[error("the configuration could not be saved, nothing changed: {0}")]
    Save(gateway_config::StoreError),
}

/// Why the configuration could not be erased (reset appliance).
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// The marker that has the next boot erase the state partition.
    #[error("{0}")]
    Marker(std::io::Error),
    /// The stored configuration could not be removed.
    #[error("{0}")]
    Remove(gateway_config::StoreError),
}

impl Appliance {
    pub fn new(
        store: Store,
        state_root: Option<std::path::PathBuf>,
        config: Config,
        power: mpsc::UnboundedSender<signals::Request>,
    ) -> Arc<Self> {
        Arc::new(Appliance {
            store,
            state_root,
            config: watch::Sender::new(config),
            changing: Mutex::new(()),
            power,
            network: watch::Sender::new(NetworkStatus::default()),
            dns: watch::Sender::new(DnsStatus::default()),
            time: watch::Sender::new(TimeStatus::default()),
            units: watch::Sender::new(Vec::new()),
            stats: watch::Sender::new(Stats::default()),
            disks: watch::Sender::new(Vec::new()),
            patch_disk: std::sync::Mutex::new(None),
            unit_commands: std::sync::Mutex::new(HashMap::new()),
            report: watch::Sender::new(None),
            report_lock: Mutex::new(()),
            capture: watch::Sender::new(CaptureStatus {
                state: "idle".into(),
                file: crate::diagnostics::last_capture().map(|p| p.display().to_string()),
                ..Default::default()
            }),
            capture_stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// What the boot found on the disks.
    pub fn set_disks(&self, found: disks::Found) {
        if let Err(why) = patch_ready(&found.statuses, &self.config()) {
            if self.config().patch.enabled {
                error!("patch mode is on but {why}");
            }
        }
        *self.patch_disk.lock().unwrap_or_else(|e| e.into_inner()) = found.patch;
        self.disks.send_replace(found.statuses);
    }

    /// The disk chosen as patch disk at boot, if any.
    pub fn patch_disk(&self) -> Option<Candidate> {
        self.patch_disk
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where `restart_unit` requests go.
    pub fn set_unit_commands(&self, commands: HashMap<&'static str, mpsc::Sender<UnitCommand>>) {
        *self.unit_commands.lock().unwrap_or_else(|e| e.into_inner()) = commands;
    }

    /// The supervisor of the unit `name`, once the units started.
    pub fn unit_commands(&self, name: &str) -> Option<mpsc::Sender<UnitCommand>> {
        self.unit_commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Held while a change of the configuration or of the disks is made:
    /// one at a time.
    pub async fn lock_changes(&self) -> MutexGuard<'_, ()> {
        self.changing.lock().await
    }

    /// Held while a report is made or its expiry checked: one at a time.
    pub async fn lock_report(&self) -> MutexGuard<'_, ()> {
        self.report_lock.lock().await
    }

    /// The flag that ends a running capture.
    pub fn capture_stop(&self) -> Arc<AtomicBool> {
        self.capture_stop.clone()
    }

    /// The channel to the main loop for power requests.
    pub fn power_requests(&self) -> mpsc::UnboundedSender<signals::Request> {
        self.power.clone()
    }

    pub fn store_path(&self) -> PathBuf {
        self.store.path()
    }

    /// Follows the configuration: each subsystem keeps one.
    pub fn subscribe(&self) -> watch::Receiver<Config> {
        self.config.subscribe()
    }

    pub fn config(&self) -> Config {
        self.config.borrow().clone()
    }

    /// Applies `changes` (key, text value) as one change: refused whole on
    /// the first broken rule, with nothing saved or applied.
    pub async fn set(&self, changes: &[(String, String)]) -> Result<SetResult, ChangeError> {
        let _one_at_a_time = self.changing.lock().await;
        let current = self.config();
        let next = current.with_changes(changes)?;
        let changed = current.changed_keys(&next);
        if changed.is_empty() {
            return Ok(SetResult::default());
        }
        if next.patch.enabled && changed.iter().any(|k| k.starts_with("patch.")) {
            patch_ready(&self.disks.borrow(), &next)?;
        }
        self.store.save(&next).map_err(ChangeError::Save)?;
        for key in &changed {
            // get() shows a secret as a placeholder: safe to log.
            info!("configuration: {key}={}", next.get(key).unwrap_or_default());
        }
        self.config.send_replace(next);
        Ok(SetResult {
            applied: effects(&changed),
            changed: changed.into_iter().map(str::to_owned).collect(),
        })
    }

    /// Reset appliance: the factory-reset marker first (once it is on
    /// disk, the next boot erases everything, whatever happens next), then
    /// the stored configuration. The caller holds [`Appliance::lock_changes`].
    pub fn erase(&self) -> Result<(), EraseError> {
        if let Some(root) = &self.state_root {
            crate::boot::factory_reset::request(root).map_err(EraseError::Marker)?;
        }
        self.store.remove().map_err(EraseError::Remove)
    }
}

/// Whether patch mode may be on with these disks.
fn patch_ready(disks: &[DiskStatus], config: &Config) -> Result<(), patch::NotReady> {
    let disk = disks.iter().find(|d| d.role == "patch");
    patch::ready(disk, config.patch.min_disk_gib)
}

/// What a change of `keys` redoes, in words, for the answer to `set`.
fn effects(keys: &[&str]) -> Vec<String> {
    let touched = |prefix: &str| keys.iter().any(|k| k.starts_with(prefix));
    let mut out = Vec::new();
    if touched("net.") {
        out.push("eth0 reconfigured".to_owned());
    }
    if touched("dns.") {
        out.push("resolv.conf rewritten".to_owned());
    }
    if touched("hosts") {
        out.push("hosts map rewritten".to_owned());
    }
    if touched("ntp.") {
        out.push("time sync restarted with the new servers".to_owned());
    }
    out
}
