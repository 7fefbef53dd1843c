//! One task per unit: waits for what the unit depends on, writes its
//! settings, starts it in its sandbox, keeps its output in its log file,
//! applies configuration changes (SIGHUP for a unit that reloads, a restart
//! otherwise), restarts it with backoff when it exits, gives up (failed)
//! when it keeps failing, and restarts it on an administrator's request.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_config::Config;
use gateway_control::protocol::{DiskStatus, DnsStatus, NetworkStatus, ReportOffer, UnitStatus};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use super::backoff::{AfterExit, Backoff};
use super::command::UnitCommand;
use super::sandbox::{self, Prepared, SandboxError};
use super::table::{settings_path, Dependency, UnitSpec};
use crate::logs::file::{LogFile, MAX_BYTES};
use crate::logs::lines::Lines;
use crate::logs::LOG_ROOT;
use crate::pid1::children;
use crate::state::Appliance;

/// How long a unit has to exit after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a unit did not start (or its new settings were not written): the
/// unit's status detail says it in these words.
#[derive(Debug, thiserror::Error)]
pub enum UnitStartError {
    /// Its sandbox, or a file in it, could not be made.
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
    #[error("open {path}: {source}")]
    OpenTerminal {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    ShareTerminal {
        path: String,
        source: std::io::Error,
    },
    #[error("output pipe: {0}")]
    Pipe(std::io::Error),
    #[error("bind {path}: {source}")]
    Listener {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("start {binary}: {source}")]
    Spawn {
        binary: &'static str,
        source: std::io::Error,
    },
}

fn publish(a: &Appliance, name: &str, state: &str, detail: String) {
    a.units.send_modify(|units| {
        let status = UnitStatus {
            name: name.to_owned(),
            state: state.to_owned(),
            detail,
        };
        match units.iter_mut().find(|u| u.name == name) {
            Some(u) => *u = status,
            None => units.push(status),
        }
    });
}

/// Why the unit may not start yet, in words; None when it may.
fn waiting_for(spec: &UnitSpec, a: &Appliance, config: &Config) -> Option<&'static str> {
    if !(spec.enabled)(config) {
        return Some("disabled");
    }
    spec.depends.iter().find_map(|d| match d {
        Dependency::Network => a
            .network
            .borrow()
            .address
            .is_none()
            .then_some("waiting for the network"),
        Dependency::PatchDisk => (config.patch.enabled
            && !a
                .disks
                .borrow()
                .iter()
                .any(|d| d.role == "patch" && d.mount.is_some()))
        .then_some("waiting for the patch disk (patch mode)"),
        Dependency::SshOrReport => (!config.ssh.enabled && a.report.borrow().is_none())
            .then_some("SSH disabled and no diagnostics report waiting"),
    })
}

/// What a unit's task follows while it waits to start.
struct Follow<'a> {
    config: &'a mut watch::Receiver<Config>,
    network: &'a mut watch::Receiver<NetworkStatus>,
    disks: &'a mut watch::Receiver<Vec<DiskStatus>>,
    report: &'a mut watch::Receiver<Option<ReportOffer>>,
}

/// Waits until nothing keeps the unit from starting (see [`waiting_for`]),
/// publishing why it waits meanwhile; false when the appliance's state is
/// gone (the task ends). A restart request while it waits is answered (the
/// unit starts as soon as it may anyway).
async fn wait_until_startable(
    spec: &UnitSpec,
    appliance: &Appliance,
    f: &mut Follow<'_>,
    commands: &mut mpsc::Receiver<UnitCommand>,
) -> bool {
    let wants_report = spec.depends.contains(&Dependency::SshOrReport);
    loop {
        let c = f.config.borrow_and_update().clone();
        f.disks.borrow_and_update();
        let Some(why) = waiting_for(spec, appliance, &c) else {
            return true;
        };
        publish(appliance, spec.name, "inactive", why.into());
        tokio::select! {
            r = f.config.changed() => if r.is_err() { return false },
            r = f.network.changed() => if r.is_err() { return false },
            r = f.disks.changed() => if r.is_err() { return false },
            r = f.report.changed(), if wants_report => if r.is_err() { return false },
            Some(UnitCommand::Restart(done)) = commands.recv() => { let _ = done.send(()); }
        }
    }
}

fn ram_bytes() -> u64 {
    nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total())
        .unwrap_or(256 << 20)
}

/// The unit's settings file and the files it names, from `config`.
fn render(spec: &UnitSpec, config: &Config) -> Vec<(&'static str, String)> {
    let mut files = (spec.files)(config);
    files.push(("settings.json", (spec.settings)(config)));
    files
}

/// Writes them into the unit's runtime directory, the settings last (they
/// name the others).
fn write_all(sandbox: &Prepared, files: &[(&'static str, String)]) -> Result<(), SandboxError> {
    for (name, text) in files {
        sandbox.write_private(name, text)?;
    }
    Ok(())
}

/// A running unit.
struct Running {
    pid: i32,
    started: Instant,
    exited: oneshot::Receiver<WaitStatus>,
    /// What was written for it: its settings and the files they name.
    settings: Vec<(&'static str, String)>,
    caps: Vec<u32>,
    /// Its sandbox, where a reload writes the new settings.
    sandbox: Arc<Prepared>,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    nix::fcntl::fcntl(
        &r,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(std::io::Error::from)?;
    Ok((r, w))
}

/// A unit's terminal, three times (stdin, stdout, stderr); opened without
/// becoming PID 1's controlling terminal (the unit takes it in its session).
fn terminal(tty: &str) -> Result<(Stdio, Stdio, Stdio), UnitStartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = format!("/dev/{tty}");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .map_err(|source| UnitStartError::OpenTerminal {
            path: path.clone(),
            source,
        })?;
    let dup = |f: &std::fs::File| {
        f.try_clone()
            .map_err(|source| UnitStartError::ShareTerminal {
                path: path.clone(),
                source,
            })
    };
    Ok((dup(&file)?.into(), dup(&file)?.into(), file.into()))
}

/// The unit's stdin, stdout and stderr: its terminal, or none and a pipe
/// whose read end (returned) goes to its log.
fn connect(spec: &UnitSpec, cmd: &mut Command) -> Result<Option<OwnedFd>, UnitStartError> {
    Ok(match spec.tty {
        Some(tty) => {
            let (stdin, stdout, stderr) = terminal(tty)?;
            cmd.env("TERM", "linux")
                .stdin(stdin)
                .stdout(stdout)
                .stderr(stderr);
            None
        }
        None => {
            let (read, write) = pipe().map_err(UnitStartError::Pipe)?;
            let err_write = write.try_clone().map_err(UnitStartError::Pipe)?;
            cmd.stdin(Stdio::null())
                .stdout(Stdio::from(write))
                .stderr(Stdio::from(err_write));
            Some(read)
        }
    })
}

/// Copies the unit's output into its log file until the pipe closes: in
/// lines of a bounded length, bytes that are not UTF-8 kept as U+FFFD.
async fn keep_output(read: OwnedFd, mut log: LogFile) {
    let Ok(mut receiver) = tokio::net::unix::pipe::Receiver::from_owned_fd(read) else {
        return;
    };
    let mut lines = Lines::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match receiver.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => lines.push(&buf[..n]).iter().for_each(|l| log.line(l)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if let Some(last) = lines.finish() {
        log.line(&last);
    }
}

fn start(spec: &'static UnitSpec, config: &Config) -> Result<Running, UnitStartError> {
    let caps = (spec.capabilities)(config);
    let memory = spec.memory.bytes(ram_bytes());
    let cgroup = match sandbox::cgroup(spec, memory) {
        Ok(dir) => Some(dir),
        Err(e) => {
            warn!(
                "unit {}: no cgroup, running without a memory limit: {e}",
                spec.name
            );
            None
        }
    };
    let prepared = Prepared::new(spec, &caps, cgroup.as_deref())?;
    let settings = render(spec, config);
    write_all(&prepared, &settings)?;
    debug_assert_eq!(
        prepared.runtime_path.join("settings.json"),
        Path::new(&settings_path(spec.name))
    );
    let mut cmd = Command::new(spec.binary);
    cmd.args(spec.args)
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin:/sbin")
        .current_dir(&prepared.state_path);
    let output = connect(spec, &mut cmd)?;
    if let Some(path) = spec.listener {
        let fd = super::listener::get(path)
            .map_err(|source| UnitStartError::Listener { path, source })?;
        // SAFETY: `pass` makes two plain system calls on a descriptor that
        // PID 1 keeps open for its life.
        unsafe {
            cmd.pre_exec(move || super::listener::pass(fd));
        }
    }
    let prepared = Arc::new(prepared);
    let in_child = prepared.clone();
    // SAFETY: `enter` only makes system calls on data prepared before the
    // fork (see its documentation).
    unsafe {
        cmd.pre_exec(move || in_child.enter());
    }
    let (child, exited) =
        children::spawn_watched(&mut cmd).map_err(|source| UnitStartError::Spawn {
            binary: spec.binary,
            source,
        })?;
    let pid = child.id() as i32;
    drop(child);
    super::record_started(spec.name, pid);
    if let Some(read) = output {
        let log = LogFile::new(Path::new(LOG_ROOT), spec.name, MAX_BYTES);
        tokio::spawn(keep_output(read, log));
    }
    info!(
        "unit {}: started, pid {pid}, memory limit {} MiB{}",
        spec.name,
        memory >> 20,
        if caps.is_empty() {
            String::new()
        } else {
            format!(", capabilities {caps:?}")
        }
    );
    Ok(Running {
        pid,
        started: Instant::now(),
        exited,
        settings,
        caps,
        sandbox: prepared,
    })
}

fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

/// SIGTERM to the unit's process group, SIGKILL after the timeout; waits
/// for the exit.
async fn stop(name: &str, running: Running) -> WaitStatus {
    stop_process(name, running.pid, running.exited).await
}

/// [`stop`] for the process group led by `pid`, whose exit `exited` reports.
async fn stop_process(
    name: &str,
    pid: i32,
    mut exited: oneshot::Receiver<WaitStatus>,
) -> WaitStatus {
    let group = Pid::from_raw(pid);
    let _ = killpg(group, Signal::SIGTERM);
    let status = match tokio::time::timeout(STOP_TIMEOUT, &mut exited).await {
        Ok(Ok(status)) => status,
        _ => {
            warn!("unit {name}: still running {STOP_TIMEOUT:?} after SIGTERM: killing it");
            let _ = killpg(group, Signal::SIGKILL);
            exited.await.unwrap_or(WaitStatus::StillAlive)
        }
    };
    super::record_exited(name);
    status
}

/// How a supervised run of a unit ended.
enum Ended {
    /// The unit exited by itself: it is restarted after its backoff.
    Exited(WaitStatus),
    /// PID 1 stopped it (disabled, new settings, the patch disk, a restart
    /// request): it starts again as soon as it may.
    Stopped,
    /// The appliance's state is gone: the task ends.
    Gone,
}

/// What a configuration change means for a running unit.
enum Change {
    /// Nothing it reads changed.
    None,
    /// New settings, for a unit that reloads them on SIGHUP.
    Reload(Vec<(&'static str, String)>),
    /// It may no longer run: it stops.
    Stop,
    /// New settings it takes only at start: it restarts.
    Restart,
}

/// Decides (and logs) what the configuration `c` means for `running`.
fn change(spec: &UnitSpec, appliance: &Appliance, running: &Running, c: &Config) -> Change {
    if !(spec.enabled)(c) {
        info!("unit {}: disabled: stopping it", spec.name);
        return Change::Stop;
    }
    let wants_report = spec.depends.contains(&Dependency::SshOrReport);
    if wants_report && !c.ssh.enabled && appliance.report.borrow().is_none() {
        info!(
            "unit {}: SSH disabled and no diagnostics report waiting: stopping it",
            spec.name
        );
        return Change::Stop;
    }
    let settings = render(spec, c);
    let caps = (spec.capabilities)(c);
    if settings == running.settings && caps == running.caps {
        Change::None
    } else if spec.reload && caps == running.caps {
        Change::Reload(settings)
    } else {
        info!("unit {}: settings changed: restarting it", spec.name);
        Change::Restart
    }
}

/// Writes the new settings and sends SIGHUP; on a failure the unit keeps
/// running with the old ones.
fn reload(spec: &UnitSpec, running: &mut Running, settings: Vec<(&'static str, String)>) {
    match write_all(&running.sandbox, &settings) {
        Ok(()) => {
            let _ = kill(Pid::from_raw(running.pid), Signal::SIGHUP);
            info!("unit {}: settings changed: reloaded (SIGHUP)", spec.name);
            running.settings = settings;
        }
        Err(e) => error!("unit {}: {e}", spec.name),
    }
}

/// Supervises a started unit until it exits or PID 1 stops it: applies
/// configuration, DNS, patch disk and report changes, and restart requests.
async fn supervise(
    spec: &'static UnitSpec,
    appliance: &Appliance,
    mut running: Running,
    ch: &mut Channels,
    backoff: &mut Backoff,
) -> Ended {
    let wants_report = spec.depends.contains(&Dependency::SshOrReport);
    loop {
        tokio::select! {
            status = &mut running.exited => {
                return Ended::Exited(status.unwrap_or(WaitStatus::StillAlive));
            }
            r = ch.config.changed() => {
                if r.is_err() { return Ended::Gone }
                let c = ch.config.borrow_and_update().clone();
                match change(spec, appliance, &running, &c) {
                    Change::None => {}
                    Change::Reload(settings) => reload(spec, &mut running, settings),
                    Change::Stop => {
                        stop(spec.name, running).await;
                        return Ended::Stopped;
                    }
                    Change::Restart => {
                        stop(spec.name, running).await;
                        backoff.reset();
                        return Ended::Stopped;
                    }
                }
            }
            r = ch.disks.changed(), if spec.patch_dir => {
                if r.is_err() { return Ended::Gone }
                // The patch disk came (a format) or went: the unit's
                // directory there is part of its sandbox.
                let mounted = ch
                    .disks
                    .borrow_and_update()
                    .iter()
                    .any(|d| d.role == "patch" && d.mount.is_some());
                if mounted != running.sandbox.patch_path.is_some() {
                    info!("unit {}: the patch disk changed: restarting it", spec.name);
                    stop(spec.name, running).await;
                    backoff.reset();
                    return Ended::Stopped;
                }
            }
            r = ch.report.changed(), if wants_report => {
                if r.is_err() { return Ended::Gone }
                let c = ch.config.borrow().clone();
                if waiting_for(spec, appliance, &c).is_some() {
                    info!("unit {}: no diagnostics report waiting and SSH disabled: stopping it", spec.name);
                    stop(spec.name, running).await;
                    return Ended::Stopped;
                }
            }
            r = ch.dns.changed(), if spec.reload => {
                if r.is_err() { return Ended::Gone }
                // The unit's resolver read resolv.conf when it started.
                ch.dns.borrow_and_update();
                let _ = kill(Pid::from_raw(running.pid), Signal::SIGHUP);
                info!("unit {}: DNS servers changed: reloaded (SIGHUP)", spec.name);
            }
            Some(UnitCommand::Restart(done)) = ch.commands.recv() => {
                info!("unit {}: restart requested", spec.name);
                stop(spec.name, running).await;
                backoff.reset();
                let _ = done.send(());
                return Ended::Stopped;
            }
        }
    }
}

/// After a unit exited by itself: waits its backoff (a restart request cuts
/// it short), or, failed after too many quick exits, the slow retry or an
/// administrator's restart. False when the appliance's state is gone.
async fn after_exit(
    spec: &UnitSpec,
    appliance: &Appliance,
    status: WaitStatus,
    started: Instant,
    ch: &mut Channels,
    backoff: &mut Backoff,
) -> bool {
    let now = Instant::now();
    match backoff.exited(started, now) {
        AfterExit::RestartAt(at) => {
            let wait = at - now;
            warn!(
                "unit {}: exited ({}); restarting in {} s",
                spec.name,
                describe(&status),
                wait.as_secs()
            );
            publish(
                appliance,
                spec.name,
                "activating",
                format!(
                    "exited ({}); restarting in {} s",
                    describe(&status),
                    wait.as_secs()
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                Some(UnitCommand::Restart(done)) = ch.commands.recv() => { backoff.reset(); let _ = done.send(()); }
            }
            true
        }
        AfterExit::Failed { retry_at } => {
            let why = format!(
                "exited {} times in a row ({}); tried again in {} s, or now with gatewayctl restart {}",
                backoff.quick_failures(),
                describe(&status),
                spec.restart.retry_failed.as_secs(),
                spec.name
            );
            error!("unit {}: failed: {why}", spec.name);
            publish(appliance, spec.name, "failed", why);
            let retry = tokio::time::sleep_until(retry_at.into());
            tokio::pin!(retry);
            loop {
                tokio::select! {
                    r = ch.config.changed() => if r.is_err() { return false },
                    Some(UnitCommand::Restart(done)) = ch.commands.recv() => {
                        info!("unit {}: restart requested", spec.name);
                        backoff.reset();
                        let _ = done.send(());
                        return true;
                    }
                    () = &mut retry => {
                        info!("unit {}: trying again after its failure", spec.name);
                        return true;
                    }
                }
            }
        }
    }
}

/// What a unit's task follows for its life.
struct Channels {
    config: watch::Receiver<Config>,
    network: watch::Receiver<NetworkStatus>,
    dns: watch::Receiver<DnsStatus>,
    disks: watch::Receiver<Vec<DiskStatus>>,
    report: watch::Receiver<Option<ReportOffer>>,
    commands: mpsc::Receiver<UnitCommand>,
}

/// The unit's life, for as long as PID 1 runs.
pub async fn run(
    spec: &'static UnitSpec,
    appliance: Arc<Appliance>,
    commands: mpsc::Receiver<UnitCommand>,
) {
    let mut ch = Channels {
        config: appliance.subscribe(),
        network: appliance.network.subscribe(),
        dns: appliance.dns.subscribe(),
        disks: appliance.disks.subscribe(),
        report: appliance.report.subscribe(),
        commands,
    };
    let mut backoff = Backoff::new(spec.restart);
    publish(&appliance, spec.name, "inactive", "starting".into());
    loop {
        let mut follow = Follow {
            config: &mut ch.config,
            network: &mut ch.network,
            disks: &mut ch.disks,
            report: &mut ch.report,
        };
        if !wait_until_startable(spec, &appliance, &mut follow, &mut ch.commands).await {
            return;
        }
        let current = ch.config.borrow_and_update().clone();
        // What the unit starts with is not a change to reload for (and a
        // SIGHUP before its handler is installed would kill it).
        ch.dns.borrow_and_update();
        let running = match start(spec, &current) {
            Ok(r) => r,
            Err(e) => {
                error!("unit {}: {e}", spec.name);
                publish(&appliance, spec.name, "failed", e.to_string());
                // Retry on the next change or an administrator's restart.
                tokio::select! {
                    r = ch.config.changed() => if r.is_err() { return },
                    Some(UnitCommand::Restart(done)) = ch.commands.recv() => { let _ = done.send(()); }
                }
                continue;
            }
        };
        publish(
            &appliance,
            spec.name,
            "active",
            format!("running, pid {}", running.pid),
        );
        let started = running.started;
        let status = match supervise(spec, &appliance, running, &mut ch, &mut backoff).await {
            Ended::Exited(status) => status,
            Ended::Stopped => continue,
            Ended::Gone => return,
        };
        super::record_exited(spec.name);
        if !after_exit(spec, &appliance, status, started, &mut ch, &mut backoff).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::cap::total_cap;

    /// A small filesystem of our own for the logs (the cap is a share of
    /// it), unmounted when dropped.
    struct Tmpfs(tempfile::TempDir);

    impl Tmpfs {
        fn new(size: &str) -> Tmpfs {
            let dir = tempfile::tempdir().unwrap();
            nix::mount::mount(
                Some("tmpfs"),
                dir.path(),
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some(format!("size={size}").as_str()),
            )
            .expect("mount a tmpfs (the test runs as root, as the appliance's tests do)");
            Tmpfs(dir)
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = nix::mount::umount(self.0.path());
        }
    }

    use crate::testlog::dir_bytes;

    /// What a unit's wait follows, subscribed as the supervisor does.
    struct Watching {
        config: watch::Receiver<Config>,
        network: watch::Receiver<NetworkStatus>,
        disks: watch::Receiver<Vec<DiskStatus>>,
        report: watch::Receiver<Option<ReportOffer>>,
    }

    impl Watching {
        fn new(a: &Appliance) -> Watching {
            Watching {
                config: a.subscribe(),
                network: a.network.subscribe(),
                disks: a.disks.subscribe(),
                report: a.report.subscribe(),
            }
        }

        fn follow(&mut self) -> Follow<'_> {
            Follow {
                config: &mut self.config,
                network: &mut self.network,
                disks: &mut self.disks,
                report: &mut self.report,
            }
        }
    }

    /// Runs `f` on a runtime like PID 1's; for a test that holds a lock
    /// of the test binary's for its whole length, outside the runtime.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A unit that prints bytes that are not UTF-8, then a line without an
    /// end longer than the bound, then more: all of it reaches its log (the
    /// log stopped at the first invalid byte).
    #[test]
    fn a_unit_printing_binary_and_endless_lines_keeps_its_log() {
        let _alone = crate::testlog::own_children();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("sh")
            .args([
                "-c",
                "printf 'before\\377\\376binary\\n'; head -c 100000 /dev/zero | tr '\\0' x; echo; echo after",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = OwnedFd::from(child.stdout.take().unwrap());
        block_on(keep_output(
            out,
            LogFile::new(dir.path(), "binary", MAX_BYTES),
        ));
        assert!(child.wait().unwrap().success());
        let text = std::fs::read_to_string(dir.path().join("binary.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with("] before\u{fffd}\u{fffd}binary"),
            "{:?}",
            lines[0]
        );
        assert!(lines.last().unwrap().ends_with("] after"), "{text:.200}");
        let xs: usize = lines.iter().map(|l| l.matches('x').count()).sum();
        assert_eq!(xs, 100_000);
        assert!(lines
            .iter()
            .all(|l| l.len() <= crate::logs::lines::MAX_LINE + 16));
    }

    #[test]
    fn a_flooded_unit_log_stays_under_the_cap_and_keeps_the_newest_lines() {
        // Mounting a filesystem of our own needs root (the appliance's test
        // machines run as root); elsewhere the test says so and passes.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs for the logs needs root");
            return;
        }
        let _alone = crate::testlog::own_children();
        let fs = Tmpfs::new("64m");
        let dir = fs.0.path();
        let cap = total_cap(dir);
        assert_eq!(cap, 64 * (1 << 20) / 10, "10 % of the filesystem");
        // Other units' logs from before: old rotated files, and current
        // ones about to rotate (full: they count as full whatever they
        // hold, and here they really are).
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            std::fs::write(dir.join(format!("{name}.log.1")), vec![b'x'; 1 << 20]).unwrap();
            let old = std::time::SystemTime::now() - Duration::from_secs(3600 * (3 - i as u64));
            std::fs::File::options()
                .write(true)
                .open(dir.join(format!("{name}.log.1")))
                .unwrap()
                .set_modified(old)
                .unwrap();
            std::fs::write(
                dir.join(format!("{name}.log")),
                vec![b'y'; MAX_BYTES as usize],
            )
            .unwrap();
        }
        // A unit that writes 40 MB through its output pipe, as fast as it can.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "yes 'flood flood flood flood flood flood flood flood flood flood' | head -n 600000; echo newest-line",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = OwnedFd::from(child.stdout.take().unwrap());
        block_on(keep_output(out, LogFile::new(dir, "flood", MAX_BYTES)));
        assert!(child.wait().unwrap().success());

        // Every file counts: the rotated ones and the current ones, the
        // flood's own included.
        let total = dir_bytes(dir);
        assert!(total <= cap, "{total} bytes of logs, cap {cap}");
        let newest = crate::logs::read::tail(dir, "flood", 1, None).unwrap();
        assert!(newest[0].ends_with("] newest-line"), "{newest:?}");
        // The worst moment: the flood's current file grown to the brink of
        // its next rotation.
        let current = dir.join("flood.log");
        let mut log = LogFile::new(dir, "flood", MAX_BYTES);
        let line = b"[    1.000] top-up\n".len() as u64;
        while std::fs::metadata(&current).unwrap().len() + line <= MAX_BYTES {
            log.line_at(Duration::from_secs(1), "top-up");
        }
        assert!(std::fs::metadata(&current).unwrap().len() > MAX_BYTES - line);
        let total = dir_bytes(dir);
        assert!(
            total <= cap,
            "{total} bytes of logs at the brink of a rotation, cap {cap}"
        );
        log.line_at(Duration::from_secs(1), "after the rotation");
        let total = dir_bytes(dir);
        assert!(
            total <= cap,
            "{total} bytes of logs after a rotation, cap {cap}"
        );
        // The oldest rotated logs went first; current files are never removed.
        assert!(!dir.join("a.log.1").exists());
        assert!(!dir.join("b.log.1").exists());
        assert!(
            dir.join("c.log.1").exists(),
            "only what the cap needed went"
        );
        for name in ["a", "b", "c"] {
            assert!(dir.join(format!("{name}.log")).exists());
        }
        assert!(dir.join("flood.log.1").exists());
    }

    /// An appliance whose network and disks the test reports, for a unit's
    /// wait before it starts (kept with what it needs to stay open).
    struct Waiting {
        appliance: Arc<Appliance>,
        _dir: tempfile::TempDir,
        _commands: mpsc::Sender<UnitCommand>,
    }

    fn appliance(config: Config) -> (Waiting, mpsc::Receiver<UnitCommand>) {
        let dir = tempfile::tempdir().unwrap();
        let (power, _) = mpsc::unbounded_channel();
        let appliance = Appliance::new(
            gateway_config::Store::new(dir.path()),
            Some(dir.path().to_owned()),
            config,
            power,
        );
        let (tx, rx) = mpsc::channel(4);
        (
            Waiting {
                appliance,
                _dir: dir,
                _commands: tx,
            },
            rx,
        )
    }

    fn detail(a: &Appliance, name: &str) -> (String, String) {
        let units = a.units.borrow();
        let u = units.iter().find(|u| u.name == name).unwrap();
        (u.state.clone(), u.detail.clone())
    }

    /// Whether `wait` is still waiting after the runtime had time to act on
    /// what changed.
    async fn still_waiting(
        wait: &mut std::pin::Pin<&mut impl std::future::Future<Output = bool>>,
    ) -> bool {
        tokio::time::timeout(Duration::from_millis(100), wait.as_mut())
            .await
            .is_err()
    }

    /// A unit failed after its quick exits is tried again at the slow
    /// interval with nobody asking, and says when in its status (it stayed
    /// down until someone restarted it by hand).
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_failed_unit_is_tried_again_at_the_slow_interval() {
        let (w, commands) = appliance(Config::default());
        let a = &w.appliance;
        let spec = crate::units::table::unit("proxy").unwrap();
        let mut ch = Channels {
            config: a.subscribe(),
            network: a.network.subscribe(),
            dns: a.dns.subscribe(),
            disks: a.disks.subscribe(),
            report: a.report.subscribe(),
            commands,
        };
        let mut backoff = Backoff::new(spec.restart);
        for _ in 1..spec.restart.give_up_after {
            backoff.exited(Instant::now(), Instant::now());
        }
        let status = WaitStatus::Exited(Pid::from_raw(1), 1);
        let t0 = tokio::time::Instant::now();
        let again = tokio::time::timeout(
            spec.restart.retry_failed * 2,
            after_exit(spec, a, status, Instant::now(), &mut ch, &mut backoff),
        )
        .await;
        assert_eq!(again, Ok(true), "tried again");
        let waited = t0.elapsed();
        assert!(
            (spec.restart.retry_failed..spec.restart.retry_failed + Duration::from_secs(1))
                .contains(&waited),
            "{waited:?}"
        );
        let (state, why) = detail(a, "proxy");
        assert_eq!(state, "failed");
        assert!(
            why.starts_with("exited 5 times in a row (exit status 1); tried again in 300 s"),
            "{why}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_unit_that_needs_the_network_starts_only_once_eth0_has_an_address() {
        let (w, mut commands) = appliance(Config::default());
        let a = &w.appliance;
        let spec = super::super::table::unit("proxy").unwrap();
        let mut watching = Watching::new(a);
        let mut follow = watching.follow();
        let wait = wait_until_startable(spec, a, &mut follow, &mut commands);
        tokio::pin!(wait);
        assert!(still_waiting(&mut wait).await);
        assert_eq!(
            detail(a, "proxy"),
            ("inactive".into(), "waiting for the network".into())
        );
        // A carrier and a DHCP exchange under way are not an address yet;
        // nor is a configuration change.
        a.network.send_modify(|n| {
            n.carrier = true;
            n.state = "waiting for a DHCP offer".into();
        });
        assert!(still_waiting(&mut wait).await);
        a.set(&[("proxy.port".into(), "3128".into())])
            .await
            .unwrap();
        assert!(still_waiting(&mut wait).await);
        assert_eq!(detail(a, "proxy").1, "waiting for the network");
        // The lease comes: it may start.
        a.network.send_modify(|n| {
            n.address = Some("10.0.2.15/24".into());
            n.state = "lease from 10.0.2.2".into();
        });
        let started = tokio::time::timeout(Duration::from_secs(5), wait.as_mut()).await;
        assert_eq!(
            started,
            Ok(true),
            "the unit did not start with the network up"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn in_patch_mode_the_cache_waits_for_the_network_and_the_mounted_patch_disk() {
        let config = Config::default()
            .with_changes(&[("patch.enabled", "true")])
            .unwrap();
        let (w, mut commands) = appliance(config);
        let a = &w.appliance;
        let spec = super::super::table::unit("cache").unwrap();
        let mut watching = Watching::new(a);
        let mut follow = watching.follow();
        let wait = wait_until_startable(spec, a, &mut follow, &mut commands);
        tokio::pin!(wait);
        assert!(still_waiting(&mut wait).await);
        assert_eq!(detail(a, "cache").1, "waiting for the network");
        a.network
            .send_modify(|n| n.address = Some("10.0.2.15/24".into()));
        assert!(still_waiting(&mut wait).await);
        assert_eq!(
            detail(a, "cache").1,
            "waiting for the patch disk (patch mode)"
        );
        // A patch disk that is there but not mounted (it holds something
        // else) is not ready.
        let disk = |mount: Option<&str>| DiskStatus {
            role: "patch".into(),
            device: "vdb".into(),
            size_bytes: 300 << 30,
            mount: mount.map(str::to_owned),
            state: "holds an XFS filesystem: not formatted".into(),
            ..Default::default()
        };
        a.disks.send_replace(vec![disk(None)]);
        assert!(still_waiting(&mut wait).await);
        a.disks
            .send_replace(vec![disk(Some(crate::disks::patch::MOUNT_POINT))]);
        let started = tokio::time::timeout(Duration::from_secs(5), wait.as_mut()).await;
        assert_eq!(
            started,
            Ok(true),
            "the cache did not start with its disk mounted"
        );
    }

    /// `sh -c script` leading its own process group, as a unit does, its
    /// exit delivered the way PID 1's reaper does (here by a thread that
    /// waits for that one pid only); returned once it wrote `ready`.
    fn watched(script: &str, dir: &Path) -> (i32, oneshot::Receiver<WaitStatus>) {
        use std::os::unix::process::CommandExt;
        let ready = dir.join("ready");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .env("READY", &ready)
            .process_group(0);
        let (child, exited) = children::spawn_watched(&mut cmd).unwrap();
        let pid = child.id() as i32;
        drop(child);
        std::thread::spawn(move || {
            if let Ok(status) = nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
                children::deliver(pid, status);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the unit did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        (pid, exited)
    }

    #[test]
    fn a_restarted_unit_that_ignores_sigterm_is_killed_5_s_later() {
        let _alone = crate::testlog::own_children();
        let dir = tempfile::tempdir().unwrap();
        let log = crate::testlog::capture();
        // A unit that exits on SIGTERM is not killed.
        let (pid, exited) = watched(r#"echo > "$READY"; sleep 60 & wait"#, dir.path());
        let t0 = Instant::now();
        let status = block_on(stop_process("agent", pid, exited));
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert_eq!(
            status,
            WaitStatus::Signaled(Pid::from_raw(pid), Signal::SIGTERM, false)
        );
        assert!(log.lines().is_empty(), "{:?}", log.lines());
        // One that ignores it (its sleep too, which inherits that) is killed
        // after STOP_TIMEOUT, and says so.
        let (pid, exited) = watched(r#"trap '' TERM; echo > "$READY"; sleep 60"#, dir.path());
        let t0 = Instant::now();
        let status = block_on(stop_process("proxy", pid, exited));
        let took = t0.elapsed();
        assert!(
            (STOP_TIMEOUT..STOP_TIMEOUT + Duration::from_millis(1500)).contains(&took),
            "killed {took:?} after SIGTERM"
        );
        assert_eq!(
            status,
            WaitStatus::Signaled(Pid::from_raw(pid), Signal::SIGKILL, false)
        );
        assert_eq!(
            log.lines(),
            ["warning: unit proxy: still running 5s after SIGTERM: killing it"]
        );
    }
}
