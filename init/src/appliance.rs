//! The appliance's live state and the control API's meaning: the current
//! configuration (one source of truth, published on a watch channel that
//! each subsystem follows), the status the subsystems publish, and the
//! handler that answers the control socket.
//!
//! A change is validated as a whole, saved atomically, then published; each
//! subsystem (network, DNS files, time) redoes only what its own keys
//! changed. Nothing is published when the save fails, so what runs is
//! always what is stored.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_config::{key_info, Config, ConfigError, Seed, Store, KEYS};
use gateway_control::protocol::{
    CaptureStatus, DiagnosticsStatus, DiskStatus, DnsStatus, KeyDoc, NetworkStatus, ReportOffer,
    SetResult, Stats, Status, TimeStatus, UnitStatus,
};
use gateway_control::server::Handler;
use gateway_control::{ApiError, Request, Response};
use tokio::sync::{mpsc, watch, Mutex};
use tracing::{error, info, warn};

use crate::cmdline::GatewayArgs;
use crate::disks::{self, discover::Candidate, patch};
use crate::signals;
use crate::units::runner::UnitCommand;
use crate::uptime::uptime;

/// Where the configuration lives on the state partition.
pub const CONFIG_DIR: &str = "/var/lib/gateway";

/// The network keys `reset_network` returns to their defaults.
pub const NETWORK_KEYS: [&str; 5] = [
    "net.mode",
    "net.address",
    "net.gateway",
    "dns.servers",
    "dns.search",
];

/// `gateway.*` command-line words that are init's own, not configuration.
const INIT_ARGS: [&str; 2] = ["selftest", "selftest.ctl"];

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
    capture_stop: Arc<std::sync::atomic::AtomicBool>,
}

/// The configuration to boot with: the stored one, else (first boot) the
/// seed, saved at once so that it applies only once. The seed is the OVF
/// environment's properties (`ovf_env`, asked only on a first boot: it may
/// mount a CD), then the kernel command line, which wins for a key both give.
pub fn load_or_seed(
    store: &Store,
    args: &GatewayArgs,
    ovf_env: impl FnOnce() -> Vec<(String, String)>,
) -> Config {
    match store.load() {
        Ok(Some(config)) => {
            info!("configuration: loaded {}", store.path().display());
            log_settings(&config);
            for (key, _) in args.0.iter().filter(|(k, _)| key_info(k).is_some()) {
                info!("configuration: gateway.{key} on the command line ignored (a configuration is stored; it seeds a first boot only)");
            }
            return config;
        }
        Ok(None) => info!("configuration: none stored, first boot"),
        Err(e) => {
            error!("configuration: {e}");
            match store.quarantine() {
                Ok(bad) => warn!(
                    "configuration: moved aside to {}; starting from the seed and defaults",
                    bad.display()
                ),
                Err(e) => error!("configuration: {e}"),
            }
        }
    }
    let ovf = ovf_env();
    if !ovf.is_empty() {
        info!(
            "configuration: {} settings from the OVF environment",
            ovf.len()
        );
    }
    let seed = Seed::from_pairs(
        ovf.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(args.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    for key in &seed.applied {
        let value = seed.config.get(key).unwrap_or_default();
        info!("configuration: seeded {key}={value}");
    }
    for e in &seed.errors {
        error!("configuration: seed refused, default kept: {e}");
    }
    for other in seed
        .other
        .iter()
        .filter(|k| !INIT_ARGS.contains(&k.as_str()))
    {
        warn!("configuration: gateway.{other} on the command line is not a configuration key");
    }
    match store.save(&seed.config) {
        Ok(()) => info!("configuration: saved {}", store.path().display()),
        Err(e) => error!("configuration: {e}"),
    }
    seed.config
}

/// Logs the keys that differ from the defaults (secrets as placeholders),
/// so the console shows what the appliance runs with.
fn log_settings(config: &Config) {
    let defaults = Config::default();
    for key in defaults.changed_keys(config) {
        info!(
            "configuration: {key}={}",
            config.get(key).unwrap_or_default()
        );
    }
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
            capture_stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
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

    async fn format_patch_disk(&self, erase: bool) -> Result<Response, ApiError> {
        let _one_at_a_time = self.changing.lock().await;
        let disk = self
            .patch_disk
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| ApiError::new("no patch disk: attach a second disk and reboot"))?;
        let mounted = self
            .disks
            .borrow()
            .iter()
            .any(|d| d.role == "patch" && d.mount.is_some());
        let status = tokio::task::spawn_blocking(move || patch::format(&disk, erase, mounted))
            .await
            .map_err(|e| ApiError::new(format!("format: {e}")))?
            .map_err(ApiError::new)?;
        self.disks.send_modify(|all| {
            if let Some(d) = all.iter_mut().find(|d| d.role == "patch") {
                *d = status.clone();
            }
        });
        Ok(Response::ok(status))
    }

    async fn ca_export(&self) -> Result<Response, ApiError> {
        tokio::task::spawn_blocking(crate::cacheca::export)
            .await
            .map_err(|e| ApiError::new(format!("ca_export: {e}")))?
            .map(Response::ok)
            .map_err(ApiError::new)
    }

    /// Installs the CA, then restarts the cache so that new leaves are
    /// signed by it.
    async fn ca_install(&self, chain: String, key: String) -> Result<Response, ApiError> {
        let info = tokio::task::spawn_blocking(move || crate::cacheca::install(&chain, &key))
            .await
            .map_err(|e| ApiError::new(format!("ca_install: {e}")))?
            .map_err(ApiError::new)?;
        info!(
            "appliance CA installed (SHA-256 {}): restarting the cache",
            info.fingerprint_sha256
        );
        if self.config().cache.enabled {
            self.restart_unit("cache").await?;
        }
        Ok(Response::ok(info))
    }

    /// Builds the diagnostics report and offers it over SFTP; the answer
    /// carries the one-time password (never logged).
    async fn diagnostics_report(&self) -> Result<Response, ApiError> {
        let _one_at_a_time = self.report_lock.lock().await;
        let config = self.config();
        let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
        // The agent's view, if it answers soon; a report is wanted most
        // when something is wrong, so nothing here may block it.
        let platform = tokio::time::timeout(
            Duration::from_secs(5),
            forward_to_agent(Request::Platform { check: false }),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|r| r.result)
        .map(json);
        let gathered = crate::diagnostics::Gathered {
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "gateway".into()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config: config
                .to_pairs()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect(),
            status: json(serde_json::to_value(self.status()).unwrap_or_default()),
            stats: json(serde_json::to_value(self.stats.borrow().clone()).unwrap_or_default()),
            platform,
        };
        let places = crate::diagnostics::Places::appliance(crate::diagnostics::last_capture());
        let now = unix_now();
        let made = tokio::task::spawn_blocking(move || {
            crate::diagnostics::make_report(&gathered, &places, now)
        })
        .await
        .map_err(|e| ApiError::new(format!("diagnostics report: {e}")))?
        .map_err(|e| ApiError::new(format!("diagnostics report: {e}")))?;
        info!(
            "diagnostics report {} ({} bytes, {} files) offered over SFTP to user {} until {} UTC",
            made.offer.file,
            made.offer.size_bytes,
            made.contents.len(),
            made.offer.user,
            gateway_control::cli::utc(made.offer.expires_unix)
        );
        self.report.send_replace(Some(made.offer.clone()));
        Ok(Response::ok(made))
    }

    /// Starts the upstream capture in a thread of its own (it blocks on
    /// its socket); its progress is published on `capture`.
    fn capture_start(&self, seconds: Option<u32>) -> Result<Response, ApiError> {
        use gateway_control::protocol::MAX_CAPTURE_SECONDS;
        let seconds = seconds.unwrap_or(MAX_CAPTURE_SECONDS);
        if !(1..=MAX_CAPTURE_SECONDS).contains(&seconds) {
            return Err(ApiError::new(format!(
                "seconds: {seconds} is out of range: from 1 to {MAX_CAPTURE_SECONDS}"
            )));
        }
        if self.capture.borrow().state == "running" {
            return Err(ApiError::new(
                "a capture is already running: stop it first (capture_stop)",
            ));
        }
        let interface = crate::network::IFACE;
        let hop = crate::capture::next_hop(interface);
        let mut request =
            crate::capture::CaptureRequest::new(interface, crate::diagnostics::CAPTURE_FILE);
        request.duration = Duration::from_secs(u64::from(seconds));
        request.peer_mac = hop.map(|(_, mac)| mac);
        request
            .validate()
            .map_err(|e| ApiError::new(e.to_string()))?;
        let what = match hop {
            Some((ip, mac)) => format!(
                "{interface}, next hop {ip} {}",
                crate::capture::format_mac(&mac)
            ),
            None => format!("{interface}, every frame (no next hop in the ARP table)"),
        };
        let stop = self.capture_stop.clone();
        stop.store(false, std::sync::atomic::Ordering::SeqCst);
        let started = CaptureStatus {
            state: "running".into(),
            started_unix: unix_now(),
            seconds,
            detail: what.clone(),
            file: self.capture.borrow().file.clone(),
            ..Default::default()
        };
        self.capture.send_replace(started.clone());
        let status = self.capture.clone();
        info!("upstream capture: started for {seconds} s on {what}");
        let spawned = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut progress = |p: &crate::capture::Progress| {
                    status.send_modify(|s| {
                        s.packets = p.packets;
                        s.bytes = p.bytes;
                        s.elapsed_s = p.elapsed.as_secs();
                    })
                };
                let result = crate::capture::run(&request, &stop, &mut progress);
                status.send_modify(|s| match result {
                    Ok(summary) => {
                        let why = match summary.reason {
                            crate::capture::EndReason::Duration => "time is up",
                            crate::capture::EndReason::SizeLimit => "size limit reached",
                            crate::capture::EndReason::Stopped => "stopped",
                        };
                        info!(
                            "upstream capture: {} packets, {} bytes ({why})",
                            summary.packets, summary.bytes
                        );
                        s.state = "done".into();
                        s.packets = summary.packets;
                        s.bytes = summary.bytes;
                        s.detail = format!("{what}; {why}");
                        s.file = Some(summary.path.display().to_string());
                    }
                    Err(e) => {
                        warn!("upstream capture: {e}");
                        s.state = "failed".into();
                        s.detail = e.to_string();
                    }
                });
            });
        if let Err(e) = spawned {
            self.capture.send_modify(|s| {
                s.state = "failed".into();
                s.detail = format!("capture thread: {e}");
            });
            return Err(ApiError::new(format!("capture thread: {e}")));
        }
        Ok(Response::ok(started))
    }

    /// Ends a running capture and waits (briefly) for its file.
    async fn capture_stop(&self) -> Result<Response, ApiError> {
        if self.capture.borrow().state != "running" {
            return Err(ApiError::new("no capture is running"));
        }
        self.capture_stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut follow = self.capture.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            follow.wait_for(|s| s.state != "running"),
        )
        .await;
        Ok(Response::ok(self.capture.borrow().clone()))
    }

    /// Follows the waiting report: a download that ended (the SFTP server
    /// removed the offer) or the 24 hours passing withdraws it, which
    /// stops the `sftp` unit when SSH is disabled.
    pub async fn follow_report(self: Arc<Self>) {
        let state = std::path::Path::new(crate::diagnostics::SFTP_STATE);
        loop {
            let now = unix_now();
            let _one_at_a_time = self.report_lock.lock().await;
            let waiting = crate::diagnostics::waiting(state, now);
            let before = self.report.borrow().clone();
            if waiting != before {
                match (&before, &waiting) {
                    (Some(old), None) if now >= old.expires_unix => {
                        info!("diagnostics report {}: expired, removed", old.file)
                    }
                    (Some(old), None) => {
                        info!(
                            "diagnostics report {}: downloaded, password expired",
                            old.file
                        )
                    }
                    (_, Some(new)) => info!(
                        "diagnostics report {} waits for download until {} UTC",
                        new.file,
                        gateway_control::cli::utc(new.expires_unix)
                    ),
                    (None, None) => {}
                }
                self.report.send_replace(waiting);
            }
            drop(_one_at_a_time);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Where `restart_unit` requests go.
    pub fn set_unit_commands(&self, commands: HashMap<&'static str, mpsc::Sender<UnitCommand>>) {
        *self.unit_commands.lock().unwrap_or_else(|e| e.into_inner()) = commands;
    }

    async fn restart_unit(&self, name: &str) -> Result<Response, ApiError> {
        let tx = self
            .unit_commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = crate::units::table::UNITS.iter().map(|u| u.name).collect();
                ApiError::new(format!("no unit {name:?} (units: {})", known.join(", ")))
            })?;
        let (done, restarted) = tokio::sync::oneshot::channel();
        tx.send(UnitCommand::Restart(done))
            .await
            .map_err(|_| ApiError::new(format!("unit {name}: its supervisor has stopped")))?;
        restarted
            .await
            .map_err(|_| ApiError::new(format!("unit {name}: its supervisor has stopped")))?;
        Ok(Response::ok(()))
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
    pub async fn set(&self, changes: &[(String, String)]) -> Result<SetResult, ApiError> {
        let _one_at_a_time = self.changing.lock().await;
        let current = self.config();
        let next = current
            .with_changes(changes)
            .map_err(|e: ConfigError| ApiError::for_key(e.key, e.message))?;
        let changed = current.changed_keys(&next);
        if changed.is_empty() {
            return Ok(SetResult::default());
        }
        if next.patch.enabled && changed.iter().any(|k| k.starts_with("patch.")) {
            patch_ready(&self.disks.borrow(), &next)
                .map_err(|why| ApiError::for_key("patch.enabled", why))?;
        }
        self.store.save(&next).map_err(|e| {
            ApiError::new(format!(
                "the configuration could not be saved, nothing changed: {e}"
            ))
        })?;
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

    fn status(&self) -> Status {
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

    /// Answers first, then asks the main loop: the client sees its answer
    /// before the shutdown stops everything.
    fn power(&self, request: signals::Request) -> Response {
        info!("control API: {request:?} requested");
        let power = self.power.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = power.send(request);
        });
        Response::ok(())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether patch mode may be on with these disks.
fn patch_ready(disks: &[DiskStatus], config: &Config) -> Result<(), String> {
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

impl Handler for Appliance {
    async fn handle(&self, request: Request) -> Response {
        let result = match request {
            Request::Status => return Response::ok(self.status()),
            Request::Get { keys } => {
                let config = self.config();
                if keys.is_empty() {
                    return Response::ok(
                        config
                            .to_pairs()
                            .into_iter()
                            .collect::<std::collections::BTreeMap<_, _>>(),
                    );
                }
                keys.iter()
                    .map(|k| config.get(k).map(|v| (k.clone(), v)))
                    .collect::<Result<std::collections::BTreeMap<_, _>, _>>()
                    .map(Response::ok)
                    .map_err(|e| ApiError::for_key(e.key, e.message))
            }
            Request::Set { values } => {
                let changes: Vec<(String, String)> = values.into_iter().collect();
                self.set(&changes).await.map(Response::ok)
            }
            Request::Keys => Ok(Response::ok(
                KEYS.iter()
                    .map(|k| KeyDoc {
                        name: k.name.into(),
                        kind: k.kind.into(),
                        default: k.default.into(),
                        rule: k.rule.into(),
                    })
                    .collect::<Vec<_>>(),
            )),
            Request::Reboot => Ok(self.power(signals::Request::Reboot)),
            Request::Poweroff => Ok(self.power(signals::Request::Poweroff)),
            Request::ResetAppliance => {
                let _one_at_a_time = self.changing.lock().await;
                // The marker first: once it is on disk, the next boot erases
                // everything, whatever happens to the rest of this request.
                let requested = match &self.state_root {
                    Some(root) => crate::factory_reset::request(root),
                    None => Ok(()),
                };
                match requested
                    .map_err(|e| e.to_string())
                    .and_then(|()| self.store.remove().map_err(|e| e.to_string()))
                {
                    Ok(()) => {
                        warn!("control API: reset appliance: configuration erased, rebooting; the boot erases logs and unit state");
                        Ok(self.power(signals::Request::Reboot))
                    }
                    Err(e) => Err(ApiError::new(format!("reset appliance: {e}"))),
                }
            }
            Request::ResetNetwork => {
                let changes: Vec<(String, String)> = NETWORK_KEYS
                    .iter()
                    .map(|k| (k.to_string(), String::new()))
                    .collect();
                self.set(&changes).await.map(Response::ok)
            }
            Request::Logs {
                name,
                lines,
                search,
            } => {
                let dir = std::path::Path::new(crate::logs::LOG_ROOT);
                crate::logs::read::tail(
                    dir,
                    &name,
                    lines.unwrap_or(100) as usize,
                    search.as_deref(),
                )
                .map(|lines| Response::ok(gateway_control::protocol::LogLines { name, lines }))
                .map_err(|e| ApiError::new(e.to_string()))
            }
            Request::RestartUnit { name } => self.restart_unit(&name).await,
            Request::Ping { target, count } => crate::ping::ping(&target, count.unwrap_or(4))
                .await
                .map(Response::ok)
                .map_err(|e| ApiError::new(e.to_string())),
            Request::Stats => Ok(Response::ok(self.stats.borrow().clone())),
            Request::FormatPatchDisk { erase } => self.format_patch_disk(erase).await,
            Request::CaExport => self.ca_export().await,
            Request::CaInstall { chain, key } => self.ca_install(chain, key).await,
            request
            @ (Request::Register { .. } | Request::Platform { .. } | Request::ProxyTest) => {
                forward_to_agent(request).await
            }
            Request::DiagnosticsReport => self.diagnostics_report().await,
            Request::Diagnostics => Ok(Response::ok(DiagnosticsStatus {
                report: self.report.borrow().clone(),
                capture: self.capture.borrow().clone(),
            })),
            Request::CaptureStart { seconds } => self.capture_start(seconds),
            Request::CaptureStop => self.capture_stop().await,
        };
        result.unwrap_or_else(Response::error)
    }
}

/// The control API as the management agent sees it (its own socket,
/// [`gateway_control::protocol::AGENT_CONTROL_SOCKET`]): what a check-in
/// reports (status, stats, logs) and what applying the platform's
/// configuration needs (keys, get, set: the same rules as at the console;
/// ca_install for a certificate assigned in the platform); no power,
/// reset, disk or unit requests.
pub struct AgentControl(pub Arc<Appliance>);

impl Handler for AgentControl {
    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Status
            | Request::Stats
            | Request::Logs { .. }
            | Request::Keys
            | Request::Get { .. }
            | Request::Set { .. }
            // A certificate assigned in the platform (the same checks as
            // at the console).
            | Request::CaInstall { .. } => self.0.handle(request).await,
            _ => Response::error(ApiError::new("not available to the management agent")),
        }
    }
}

/// `register` and `platform` are the management agent's to answer (it holds
/// the platform token and the check-in state); PID 1 passes them to the
/// agent's socket and its answer back, so clients have one API.
async fn forward_to_agent(request: Request) -> Result<Response, ApiError> {
    let path = std::path::Path::new(gateway_control::protocol::AGENT_SOCKET);
    let answer = tokio::task::spawn_blocking(move || {
        // A registration runs a connectivity check of five hosts first.
        let mut client = gateway_control::Client::connect(path, Duration::from_secs(110))?;
        client.call(&request)
    })
    .await
    .map_err(|e| ApiError::new(format!("management agent: {e}")))?;
    match answer {
        Ok(result) => Ok(Response::ok(result)),
        Err(gateway_control::ClientError::Refused(e)) => Err(e),
        Err(gateway_control::ClientError::Connect { .. }) => Err(ApiError::new(
            "the management agent is not running (see gatewayctl status, unit agent)",
        )),
        Err(e) => Err(ApiError::new(format!("management agent: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appliance(
        dir: &std::path::Path,
    ) -> (Arc<Appliance>, mpsc::UnboundedReceiver<signals::Request>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Appliance::new(Store::new(dir), Some(dir.to_owned()), Config::default(), tx),
            rx,
        )
    }

    fn set(values: &[(&str, &str)]) -> Request {
        Request::Set {
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_agent_socket_answers_what_a_check_in_needs_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (a, mut rx) = appliance(dir.path());
        let agent = AgentControl(a.clone());
        let r = agent.handle(set(&[("proxy.port", "3128")])).await;
        assert!(r.ok, "{r:?}");
        let r = agent.handle(set(&[("proxy.port", "22")])).await;
        assert_eq!(r.error.unwrap().key.as_deref(), Some("proxy.port"));
        for refused in [
            Request::Reboot,
            Request::Poweroff,
            Request::ResetAppliance,
            Request::ResetNetwork,
            Request::FormatPatchDisk { erase: true },
            Request::RestartUnit {
                name: "proxy".into(),
            },
        ] {
            let r = agent.handle(refused.clone()).await;
            assert_eq!(
                r.error.unwrap().message,
                "not available to the management agent",
                "{refused:?}"
            );
        }
        assert!(rx.try_recv().is_err(), "no power request reached PID 1");
        assert_eq!(a.config().proxy.port, 3128);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_change_is_saved_published_and_described() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let mut follower = a.subscribe();
        let r = a
            .handle(set(&[("dns.servers", "10.0.0.53"), ("proxy.port", "1080")]))
            .await;
        assert!(r.ok, "{r:?}");
        let result: SetResult = serde_json::from_value(r.result.unwrap()).unwrap();
        assert_eq!(result.changed, ["dns.servers"], "proxy.port kept its value");
        assert_eq!(result.applied, ["resolv.conf rewritten"]);
        assert!(follower.has_changed().unwrap());
        assert_eq!(follower.borrow_and_update().dns.servers.len(), 1);
        let stored = Store::new(dir.path()).load().unwrap().unwrap();
        assert_eq!(stored, a.config());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_change_saves_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let follower = a.subscribe();
        let r = a
            .handle(set(&[("dns.servers", "10.0.0.53"), ("cache.port", "1080")]))
            .await;
        assert_eq!(r.error.unwrap().key.as_deref(), Some("cache.port"));
        assert!(!follower.has_changed().unwrap());
        assert!(Store::new(dir.path()).load().unwrap().is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn patch_mode_is_refused_without_a_usable_patch_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let r = a.handle(set(&[("patch.enabled", "true")])).await;
        let e = r.error.unwrap();
        assert_eq!(e.key.as_deref(), Some("patch.enabled"));
        assert!(e.message.starts_with("no patch disk"), "{e}");
        let disk = |gib: u64| DiskStatus {
            role: "patch".into(),
            device: "vdb".into(),
            size_bytes: gib << 30,
            mount: Some(patch::MOUNT_POINT.into()),
            ..Default::default()
        };
        a.disks.send_replace(vec![disk(2)]);
        let r = a
            .handle(set(&[
                ("patch.enabled", "true"),
                ("patch.min_disk_gib", "3"),
            ]))
            .await;
        assert!(r.error.unwrap().message.contains("too small: 2.0 GiB"));
        assert!(!a.config().patch.enabled, "nothing applied");
        let r = a
            .handle(set(&[
                ("patch.enabled", "true"),
                ("patch.min_disk_gib", "2"),
            ]))
            .await;
        assert!(r.ok, "{r:?}");
        assert!(a.config().patch.enabled);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_third_disk_is_noted_in_the_status_the_info_screen_shows() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let disk = |role: &str, device: &str| DiskStatus {
            role: role.into(),
            device: device.into(),
            size_bytes: 40 << 30,
            ..Default::default()
        };
        a.set_disks(disks::Found {
            statuses: vec![disk("boot", "vda"), disk("patch", "vdb")],
            patch: None,
        });
        let status = |r: Response| -> Status { serde_json::from_value(r.result.unwrap()).unwrap() };
        let before = status(a.handle(Request::Status).await);
        assert!(
            !before.notes.iter().any(|w| w.contains("disk")),
            "{:?}",
            before.notes
        );
        a.set_disks(disks::Found {
            statuses: vec![
                disk("boot", "vda"),
                disk("patch", "vdb"),
                disk("ignored", "vdc"),
            ],
            patch: None,
        });
        let after = status(a.handle(Request::Status).await);
        assert!(
            after.notes.contains(
                &"WARNING : Found a third disk vdc. The appliance uses one patch disk (vdb): the third disk is ignored".to_owned()
            ),
            "{:?}",
            after.notes
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reset_network_returns_the_network_keys_to_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _rx) = appliance(dir.path());
        let r = a
            .handle(set(&[
                ("net.mode", "static"),
                ("net.address", "10.0.0.5/24"),
                ("proxy.port", "3128"),
            ]))
            .await;
        assert!(r.ok);
        let r = a.handle(Request::ResetNetwork).await;
        assert!(r.ok, "{r:?}");
        let c = a.config();
        assert_eq!(c.get("net.mode").unwrap(), "dhcp");
        assert_eq!(c.get("net.address").unwrap(), "");
        assert_eq!(c.proxy.port, 3128, "other keys stay");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reset_appliance_erases_the_store_and_asks_for_a_reboot() {
        let dir = tempfile::tempdir().unwrap();
        let (a, mut rx) = appliance(dir.path());
        assert!(a.handle(set(&[("proxy.port", "3128")])).await.ok);
        assert!(a.handle(Request::ResetAppliance).await.ok);
        assert!(Store::new(dir.path()).load().unwrap().is_none());
        assert!(dir.path().join(crate::factory_reset::MARKER).exists());
        assert_eq!(rx.recv().await, Some(signals::Request::Reboot));
    }

    #[test]
    fn the_seed_applies_only_to_a_first_boot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let args = GatewayArgs::parse("gateway.proxy.port=3128 gateway.selftest=orphans");
        assert_eq!(load_or_seed(&store, &args, Vec::new).proxy.port, 3128);
        let later = GatewayArgs::parse("gateway.proxy.port=4128");
        assert_eq!(load_or_seed(&store, &later, Vec::new).proxy.port, 3128);
        std::fs::write(store.path(), "not json").unwrap();
        let ovf = || {
            vec![
                ("proxy.port".to_owned(), "5128".to_owned()),
                ("cache.port".to_owned(), "9128".to_owned()),
            ]
        };
        // The command line wins over the OVF environment for a key both give.
        let c = load_or_seed(&Store::new(dir.path().join("other")), &later, ovf);
        assert_eq!((c.proxy.port, c.cache.port), (4128, 9128));
        assert_eq!(
            load_or_seed(&store, &later, Vec::new).proxy.port,
            4128,
            "a broken file is set aside"
        );
        assert!(dir.path().join("config.json.bad").exists());
    }
}
