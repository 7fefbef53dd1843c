//! `make bench-boot`: boot figures of the built image, printed, not asserted.
//!
//! Boots a copy of build/gateway.raw five times under QEMU (TCG unless
//! ACCEL=kvm) and reports the median time from starting QEMU to the
//! `gateway: ready` line (host clock) and the guest's own uptime at that
//! line; then the kernel size, the root filesystem's used size and the
//! image's size on disk.

use std::process::Command;
use std::time::{Duration, Instant};

use qemu_tests::{Artifacts, Vm, VmConfig};

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn allocated(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn main() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut host_ms = Vec::new();
    let mut guest_ms = Vec::new();
    for run in 1..=RUNS {
        let disk = a.disk_copy(dir.path());
        let started = Instant::now();
        let mut vm =
            Vm::start(&VmConfig::new(&format!("bench-boot-{run}"), &disk)).expect("start QEMU");
        let log = vm
            .wait_for("gateway: ready in ", Duration::from_secs(300))
            .expect("boot");
        let host = started.elapsed().as_secs_f64() * 1000.0;
        let guest: f64 = log
            .lines()
            .find_map(|l| l.split("gateway: ready in ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        println!("run {run}: QEMU start to ready {host:.0} ms (guest uptime {guest:.0} ms)");
        host_ms.push(host);
        guest_ms.push(guest);
        drop(vm);
        let _ = std::fs::remove_file(&disk);
    }
    let accel = std::env::var("ACCEL").unwrap_or_else(|_| "tcg".into());
    println!();
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "boot ({accel}, median of {RUNS}): {:.0} ms from QEMU start to ready (best {:.0}); guest uptime at ready {:.0} ms (best {:.0}); target: 3000 ms under TCG",
        median(host_ms.clone()),
        best(&host_ms),
        median(guest_ms.clone()),
        best(&guest_ms)
    );

    let kernel = std::fs::metadata(&a.kernel).map(|m| m.len()).unwrap_or(0);
    println!("kernel: {} ({} bytes)", mib(kernel), kernel);
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(&a.root)
        .output()
        .expect("run dumpe2fs");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let used = (field("Block count:") - field("Free blocks:")) * field("Block size:");
    println!(
        "root filesystem: {} used of {} (target: under 20 MiB)",
        mib(used),
        mib(field("Block count:") * field("Block size:"))
    );
    let disk_len = std::fs::metadata(&a.disk).map(|m| m.len()).unwrap_or(0);
    println!(
        "image: {} on disk, {} virtual ({})",
        mib(allocated(&a.disk)),
        mib(disk_len),
        a.disk.display()
    );
}
