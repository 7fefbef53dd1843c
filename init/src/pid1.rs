//! PID 1's life: boot, then wait for signals (children exiting, power-off and
//! reboot requests, the ACPI power button) until asked to stop. It never
//! returns: an exiting PID 1 is a kernel panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::cmdline::GatewayArgs;
use crate::reaper::reap_all;
use crate::signals::Request;
use crate::{boot, power_button, shutdown};

pub fn run() -> ! {
    std::panic::set_hook(Box::new(|info| {
        error!("panic: {info}");
    }));
    // Outside the main loop, so the power button still reaches a loop that
    // was restarted after a failure.
    let (press_tx, mut presses) = mpsc::unbounded_channel();
    let mut booted = false;
    let request = loop {
        match catch_unwind(AssertUnwindSafe(|| {
            life(&mut booted, &press_tx, &mut presses)
        })) {
            Ok(Ok(request)) => break request,
            Ok(Err(e)) => error!("init: {e}; retrying in 1 s"),
            Err(_) => error!("init: main loop panicked; restarting it in 1 s"),
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    shutdown::shutdown(request)
}

/// Boots (the first time), then serves signals until a power-off or reboot
/// request.
fn life(
    booted: &mut bool,
    press_tx: &mpsc::UnboundedSender<()>,
    presses: &mut mpsc::UnboundedReceiver<()>,
) -> std::io::Result<Request> {
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
        if !*booted {
            *booted = true;
            let args = boot::run();
            let buttons = power_button::find(Path::new("/sys/class/input"));
            if buttons.is_empty() {
                warn!("no ACPI power button found");
            }
            let press_tx = press_tx.clone();
            power_button::watch(buttons, move || {
                let _ = press_tx.send(());
            });
            boot::announce_ready();
            start_selftest(&args);
        }

        loop {
            reap_all();
            tokio::select! {
                _ = child.recv() => {}
                Some(()) = presses.recv() => {
                    info!("power button pressed");
                    return Ok(Request::Poweroff);
                }
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
