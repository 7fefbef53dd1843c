//! PID 1 of the gateway appliance.
//!
//! This crate owns the machine from the moment the kernel hands over: the early
//! mounts, the state partition (found, checked, grown, mounted at /var), the
//! hostname and loopback, the reaping of every child, and the orderly power-off
//! or reboot. It must never exit and never panic: a failing step is logged and
//! the boot goes on, so an administrator always reaches the console.
//!
//! The same binary is multi-call: installed as `/sbin/init`, it is also
//! `/sbin/poweroff` and `/sbin/reboot` (which signal PID 1, as the kernel's
//! `orderly_poweroff` and hypervisor shutdown requests expect), and
//! `init selftest <name>` runs the small programs the QEMU tests use to check
//! init from outside. It does not touch the services' own files.
//!
//! One folder per concern: [`boot`] (the boot sequence and its steps),
//! [`pid1`] (the main loop and what makes it process 1: reaping, children,
//! signals, the power button, shutdown), [`state`] (the live configuration
//! and the status channels the subsystems publish on), [`api`] (what each
//! control API request means, on that state), [`network`] (eth0, DNS and
//! hosts files, name lookups, time sync), [`units`] (the services, each
//! supervised in its sandbox), [`disks`], [`logs`], [`diagnostics`] (the
//! report, the upstream capture, ping, stats) and [`selftest`]. The VM's
//! documented minimums ([`requirements`]) stand alone: the console's tests
//! read them too.

pub mod api;
pub mod boot;
pub mod diagnostics;
pub mod disks;
pub mod logs;
pub mod network;
pub mod pid1;
pub mod requirements;
pub mod selftest;
pub mod state;
#[cfg(test)]
pub(crate) mod testlog;
pub mod units;

use std::path::Path;
use std::process::ExitCode;

/// Entry point of every name the binary is installed under.
pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    if std::process::id() == 1 {
        pid1::run(); // never returns
    }
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("init")
        .to_owned();
    let code = match (name.as_str(), args.get(1).map(String::as_str)) {
        ("poweroff", _) => pid1::signals::request(pid1::signals::Request::Poweroff),
        ("reboot", _) => pid1::signals::request(pid1::signals::Request::Reboot),
        (_, Some("selftest")) => selftest::run(args.get(2).map(String::as_str).unwrap_or("")),
        _ => {
            eprintln!("init: not PID 1; usage: init selftest orphans | poweroff | reboot");
            ExitCode::from(2)
        }
    };
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}
