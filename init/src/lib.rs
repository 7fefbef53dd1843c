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

pub mod appliance;
pub mod blockdev;
pub mod boot;
pub mod cacheca;
pub mod capture;
pub mod children;
pub mod cmdline;
pub mod console;
pub mod diagnostics;
pub mod disks;
pub mod etcfiles;
pub mod ext4;
pub mod factory_reset;
pub mod logs;
pub mod loopback;
pub mod mounts;
pub mod names;
pub mod network;
pub mod ovfenv;
pub mod pid1;
pub mod ping;
pub mod power_button;
pub mod procs;
pub mod reaper;
pub mod requirements;
pub mod selftest;
pub mod selftest_ctl;
pub mod selftest_sandbox;
pub mod selftest_tunnels;
pub mod shutdown;
pub mod signals;
pub mod statefs;
pub mod stats;
#[cfg(test)]
pub(crate) mod testlog;
pub mod timesync;
pub mod units;
pub mod uptime;

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
        ("poweroff", _) => signals::request(signals::Request::Poweroff),
        ("reboot", _) => signals::request(signals::Request::Reboot),
        (_, Some("selftest")) => selftest::run(args.get(2).map(String::as_str).unwrap_or("")),
        _ => {
            eprintln!("init: not PID 1; usage: init selftest orphans | poweroff | reboot");
            ExitCode::from(2)
        }
    };
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
}
