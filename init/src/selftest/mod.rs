//! Programs the QEMU tests run under init to check it from outside.
//! Started by init when the kernel command line has `gateway.selftest=<name>`;
//! they print their verdict on the console, which the test reads.
//!
//! `poweroff`: runs /sbin/poweroff, as the kernel does for a Hyper-V shutdown.
//!
//! `stubborn`: leaves a child that ignores SIGTERM, then asks for power-off:
//! init must kill it after its stop timeout and still power off.
//!
//! `orphans`: double-forks children so that their grandchildren are
//! re-parented to PID 1, plus children that exit while their own children are
//! already zombies (re-parented as zombies); waits, then counts the zombies
//! left in the whole system. Init reaps them or the count is not zero.
//!
//! `ctl`, `serial` and `burst`: see [`ctl`], whose `sandbox` and `tunnels`
//! commands are [`sandbox`] (with `escape`, its probe) and [`tunnels`].

pub mod ctl;
pub mod sandbox;
pub mod tunnels;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult};

use crate::pid1::procs;

const DOUBLE_FORKS: usize = 20;
const ZOMBIE_PARENTS: usize = 5;

pub fn run(name: &str) -> ExitCode {
    match name {
        "orphans" => orphans(),
        "diag" => diag(),
        "stubborn" => stubborn(),
        "ctl" => ctl::ctl(),
        "serial" => ctl::serial(),
        "burst" => ctl::burst(),
        "escape" => sandbox::escape(),
        // What a hypervisor's shutdown request does through the kernel's
        // orderly_poweroff: run /sbin/poweroff, which signals PID 1.
        "poweroff" => match std::process::Command::new("/sbin/poweroff").status() {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            Ok(s) => {
                println!("selftest poweroff: /sbin/poweroff exited with {s}");
                ExitCode::FAILURE
            }
            Err(e) => {
                println!("selftest poweroff: cannot run /sbin/poweroff: {e}");
                ExitCode::FAILURE
            }
        },
        other => {
            eprintln!(
                "selftest: unknown test {other:?} (known: orphans, poweroff, stubborn, diag, ctl, serial, burst, escape)"
            );
            ExitCode::from(2)
        }
    }
}

fn fork_or_exit() -> ForkResult {
    // SAFETY: the self-test is single-threaded (no runtime, no threads), so
    // the child may run any code after fork.
    match unsafe { fork() } {
        Ok(r) => r,
        Err(e) => {
            println!("selftest orphans: fork failed: {e}");
            std::process::exit(1);
        }
    }
}

fn orphans() -> ExitCode {
    let me = getpid();
    // Grandchildren that outlive their parent: re-parented to PID 1 alive,
    // then exit there.
    for _ in 0..DOUBLE_FORKS {
        match fork_or_exit() {
            ForkResult::Child => {
                if let ForkResult::Child = fork_or_exit() {
                    // Long enough to outlive the forking loop on a loaded
                    // machine under TCG, where the count below is taken.
                    std::thread::sleep(Duration::from_millis(2500));
                }
                std::process::exit(0);
            }
            ForkResult::Parent { child } => {
                let _ = waitpid(child, None);
            }
        }
    }
    // Children whose own children die first and are never waited for: they
    // are re-parented to PID 1 already zombies.
    for _ in 0..ZOMBIE_PARENTS {
        if let ForkResult::Child = fork_or_exit() {
            if let ForkResult::Child = fork_or_exit() {
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(200));
            std::process::exit(0);
        }
    }
    // The double-forked grandchildren are alive for 2.5 s: check they now
    // belong to init, so the test shows re-parenting really happened.
    std::thread::sleep(Duration::from_millis(100));
    let procs = procs::list(Path::new("/proc"));
    // Our grandchildren carry our command name (whatever path ran us).
    let my_comm = procs
        .iter()
        .find(|p| p.pid == me.as_raw())
        .map(|p| p.comm.clone());
    let adopted = procs
        .iter()
        .filter(|p| p.ppid == 1 && p.pid != me.as_raw() && Some(&p.comm) == my_comm.as_ref())
        .count();
    // Everything above has exited by then; give init time to reap.
    std::thread::sleep(Duration::from_millis(4000));
    let zombies: Vec<String> = procs::list(Path::new("/proc"))
        .iter()
        .filter(|p| p.is_zombie() && p.ppid != me.as_raw())
        .map(|p| format!("{}({}) parent {}", p.pid, p.comm, p.ppid))
        .collect();
    println!(
        "selftest orphans: spawned {} orphans, adopted by init: {adopted}, zombies left: {}{}",
        DOUBLE_FORKS + ZOMBIE_PARENTS,
        zombies.len(),
        if zombies.is_empty() {
            String::new()
        } else {
            format!(" [{}]", zombies.join(", "))
        }
    );
    if zombies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints what a developer needs when a controller or driver misbehaves:
/// interrupts, SCSI and SAS objects in sysfs, and the kernel log.
fn diag() -> ExitCode {
    std::thread::sleep(Duration::from_secs(3));
    println!("--- /proc/interrupts");
    println!(
        "{}",
        std::fs::read_to_string("/proc/interrupts").unwrap_or_default()
    );
    for class in [
        "scsi_host",
        "sas_host",
        "sas_phy",
        "sas_port",
        "sas_device",
        "sas_end_device",
        "scsi_device",
        "block",
    ] {
        let names: Vec<String> = std::fs::read_dir(Path::new("/sys/class").join(class))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        println!("--- /sys/class/{class}: {}", names.join(" "));
    }
    println!("--- kernel log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    {
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = std::io::Read::read(&mut f, &mut buf) {
            print!("{}", String::from_utf8_lossy(&buf[..n]));
        }
    }
    println!("--- diag done");
    ExitCode::SUCCESS
}

fn stubborn() -> ExitCode {
    use nix::sys::signal::{signal, SigHandler, Signal};
    if let ForkResult::Child = fork_or_exit() {
        // SAFETY: SIG_IGN installs no handler code; nothing else runs in this
        // freshly forked single-threaded child.
        let _ = unsafe { signal(Signal::SIGTERM, SigHandler::SigIgn) };
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    println!("selftest stubborn: a child ignores SIGTERM; asking for power-off");
    crate::pid1::signals::request(crate::pid1::signals::Request::Poweroff)
}
