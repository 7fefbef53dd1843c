//! PID 1's life: boot, then wait for signals (children exiting, power-off and
//! reboot requests, the ACPI power button) until asked to stop. It never
//! returns: an exiting PID 1 is a kernel panic.

pub mod children;
pub mod power_button;
pub mod procs;
pub mod reaper;
pub mod shutdown;
pub mod signals;
pub mod tasks;
pub mod uptime;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use std::sync::Arc;

use gateway_config::Store;

use crate::boot::cmdline::GatewayArgs;
use crate::network::{self, etcfiles, timesync};
use crate::state::{self, Appliance};
use crate::{boot, units};
use signals::Request;

/// What survives a restart of the main loop.
struct Kept {
    press_tx: mpsc::UnboundedSender<()>,
    presses: mpsc::UnboundedReceiver<()>,
    /// Power requests from the control API.
    api_tx: mpsc::UnboundedSender<Request>,
    api: mpsc::UnboundedReceiver<Request>,
    appliance: Option<Arc<Appliance>>,
}

pub fn run() -> ! {
    std::panic::set_hook(Box::new(|info| {
        error!("panic: {info}");
    }));
    // Outside the main loop, so the power button still reaches a loop that
    // was restarted after a failure.
    let (press_tx, presses) = mpsc::unbounded_channel();
    let (api_tx, api) = mpsc::unbounded_channel();
    let mut kept = Kept {
        press_tx,
        presses,
        api_tx,
        api,
        appliance: None,
    };
    let request = loop {
        match catch_unwind(AssertUnwindSafe(|| life(&mut kept))) {
            Ok(Ok(request)) => break request,
            Ok(Err(e)) => error!("init: {e}; retrying in 1 s"),
            Err(_) => error!("init: main loop panicked; restarting it in 1 s"),
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    shutdown::shutdown(request)
}

/// Boots (the first time), starts the live subsystems (again after a
/// restart: they die with the runtime), then serves signals until a
/// power-off or reboot request.
fn life(kept: &mut Kept) -> std::io::Result<Request> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Handlers first: PID 1 ignores any signal it has no handler for, so a
        // request arriving during the boot would otherwise be lost.
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        let mut pwr = signal(SignalKind::from_raw(Signal::SIGPWR as i32))?;
        let mut child = signal(SignalKind::child())?;
        match &kept.appliance {
            Some(a) => {
                warn!("init: restarting the live subsystems");
                start_live(a);
            }
            None => {
                let booted = boot::run();
                let buttons = power_button::find(Path::new("/sys/class/input"));
                if buttons.is_empty() {
                    warn!("no ACPI power button found");
                }
                let press_tx = kept.press_tx.clone();
                power_button::watch(buttons, move || {
                    let _ = press_tx.send(());
                });
                let store = Store::new(state::CONFIG_DIR);
                let config = boot::step("configuration", || {
                    Ok::<_, std::convert::Infallible>(state::load_or_seed(
                        &store,
                        &booted.args,
                        crate::boot::ovfenv::read,
                    ))
                })
                .unwrap_or_default();
                let found = boot::step("disks", || {
                    Ok::<_, std::convert::Infallible>(crate::disks::prepare(
                        &crate::disks::blockdev::Sysfs::default(),
                        config.patch.min_disk_gib,
                    ))
                })
                .unwrap_or_default();
                let a = Appliance::new(
                    store,
                    booted
                        .persistent
                        .then(|| std::path::PathBuf::from(crate::boot::statefs::MOUNT_POINT)),
                    config,
                    kept.api_tx.clone(),
                );
                a.set_disks(found);
                kept.appliance = Some(a.clone());
                start_live(&a);
                boot::announce_ready();
                start_selftest(&booted.args);
            }
        }

        loop {
            children::reap_and_deliver();
            tokio::select! {
                _ = child.recv() => {}
                Some(()) = kept.presses.recv() => {
                    info!("power button pressed");
                    return Ok(Request::Poweroff);
                }
                Some(r) = kept.api.recv() => return Ok(r),
                _ = term.recv() => return Ok(requested(Signal::SIGTERM)),
                _ = int.recv() => return Ok(requested(Signal::SIGINT)),
                _ = usr2.recv() => return Ok(requested(Signal::SIGUSR2)),
                _ = pwr.recv() => return Ok(requested(Signal::SIGPWR)),
            }
        }
    })
}

fn requested(sig: Signal) -> Request {
    let r = Request::from_signal(sig).unwrap_or(Request::Poweroff);
    info!("{sig} received: {r:?}");
    r
}

/// The management agent's socket ([`crate::api::AgentControl`]),
/// owned by the agent's user so its sandbox may connect.
fn serve_agent_control(a: &Arc<Appliance>) {
    let path = Path::new(gateway_control::protocol::AGENT_CONTROL_SOCKET);
    let Some(agent) = units::table::unit("agent") else {
        return;
    };
    let bound = gateway_control::server::bind(path).and_then(|listener| {
        std::os::unix::fs::chown(path, Some(agent.uid), Some(agent.gid))?;
        Ok(listener)
    });
    match bound {
        Ok(listener) => {
            let handler = Arc::new(crate::api::AgentControl(a.clone()));
            tokio::spawn(gateway_control::server::serve(listener, handler));
        }
        Err(e) => error!("control API for the agent: {}: {e}", path.display()),
    }
}

/// The tasks that follow the configuration and serve the control API.
/// Each logs its own failures; none can stop the others.
fn start_live(a: &Arc<Appliance>) {
    match gateway_control::server::bind(Path::new(gateway_control::DEFAULT_SOCKET)) {
        Ok(listener) => {
            info!(
                "control API: listening on {}",
                gateway_control::DEFAULT_SOCKET
            );
            // The console (group console) is the one other client.
            let path = Path::new(gateway_control::DEFAULT_SOCKET);
            if let Err(e) = gateway_control::server::allow_group(path, units::table::CONSOLE_GID) {
                error!(
                    "control API: the console cannot use {}: {e}",
                    path.display()
                );
            }
            tokio::spawn(gateway_control::server::serve(listener, a.clone()));
        }
        Err(e) => error!("control API: {}: {e}", gateway_control::DEFAULT_SOCKET),
    }
    serve_agent_control(a);
    // Each started again if it panics (tasks.rs).
    let followed = a.clone();
    tasks::keep("hosts file", move || {
        etcfiles::follow_hosts(followed.subscribe())
    });
    let followed = a.clone();
    tasks::keep("time", move || timesync::follow(followed.clone()));
    let followed = a.clone();
    tasks::keep("network", move || network::follow(followed.clone()));
    let followed = a.clone();
    tasks::keep("stats", move || {
        crate::diagnostics::stats::follow(followed.clone())
    });
    // Before the units start: a report left waiting at the last shutdown
    // is in place when the `sftp` unit decides whether to run.
    let followed = a.clone();
    tasks::keep("diagnostics report", move || {
        crate::diagnostics::follow::follow_report(followed.clone())
    });
    a.set_unit_commands(units::start_all(a));
    // One follower for the life of PID 1, even if this loop restarts.
    static KMSG: std::sync::Once = std::sync::Once::new();
    KMSG.call_once(|| {
        let r = std::thread::Builder::new()
            .name("kmsg".into())
            .spawn(|| crate::logs::kmsg::follow(Path::new(crate::logs::LOG_ROOT)));
        if let Err(e) = r {
            error!("logs: cannot start the kernel log follower: {e}");
        }
    });
}

fn start_selftest(args: &GatewayArgs) {
    if let Some(name) = args.get("selftest") {
        info!("selftest {name}: starting");
        if let Err(e) = std::process::Command::new("/proc/self/exe")
            .args(["selftest", name])
            .spawn()
        {
            error!("selftest {name}: {e}");
        }
    }
}
