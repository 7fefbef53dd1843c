//! The appliance boots from every disk controller a hypervisor user gives it,
//! powers off and reboots on request, grows its state partition, and its PID 1
//! reaps orphans. Each test boots its own copy of the built image.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gateway_image::inspect;
use qemu_tests::{Artifacts, Bus, Vm, VmConfig};

/// Generous: TCG on a shared 2-core machine. The boot-time figure is measured
/// by `make bench-boot`, not here.
const BOOT: Duration = Duration::from_secs(180);
const READY: &str = "gateway: ready in ";
const STATE_PARTITION: u32 = 4;
/// How long a boot may stay silent on ttyS0 before the boot loader is
/// taken to wait at a prompt: more than SeaBIOS, syslinux and the kernel
/// take to PID 1's first line under TCG on a loaded machine.
const HOLD_ALT: Duration = Duration::from_secs(60);

fn boot_to_ready(name: &str, bus: Bus) -> (tempfile::TempDir, Vm, String) {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let mut vm = Vm::start(&VmConfig::new(name, &disk).bus(bus)).unwrap();
    let log = vm.wait_for(READY, BOOT).unwrap();
    (dir, vm, log)
}

/// Boots a copy of the image with `gateway.selftest=<selftest>` added to the
/// kernel command line; returns the copy (and its directory) and the VM.
fn boot_selftest(name: &str, selftest: &str) -> (tempfile::TempDir, std::path::PathBuf, Vm) {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let cmdline = format!("{} gateway.selftest={selftest}", a.cmdline);
    let vm = Vm::start(&VmConfig::new(name, &disk).direct_kernel(&a.kernel, &cmdline)).unwrap();
    (dir, disk, vm)
}

fn assert_healthy_boot(log: &str, state_dev: &str) {
    assert!(
        log.contains("root filesystem: read-only"),
        "root not read-only:\n{log}"
    );
    assert!(
        log.contains(&format!("state: {state_dev} mounted on /var")),
        "state partition not mounted:\n{log}"
    );
    assert!(log.contains("loopback: up"), "loopback not up:\n{log}");
    assert!(!log.contains("error:"), "boot logged an error:\n{log}");
}

/// On one virtual CPU, the smallest VM a hypervisor gives (every other
/// test boots two).
#[test]
fn boots_from_virtio_blk_on_one_cpu() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let mut vm = Vm::start(&VmConfig::new("virtio", &disk).bus(Bus::Virtio).cpus(1)).unwrap();
    let log = vm.wait_for(READY, BOOT).unwrap();
    assert_healthy_boot(&log, "/dev/vda4");
}

#[test]
fn boots_from_ide_like_hyperv_gen1() {
    let (_d, _vm, log) = boot_to_ready("ide", Bus::Ide);
    assert_healthy_boot(&log, "/dev/sda4");
}

#[test]
fn boots_from_vmware_lsi_logic_sas() {
    let (_d, _vm, log) = boot_to_ready("mptsas", Bus::Mptsas);
    assert_healthy_boot(&log, "/dev/sda4");
}

#[test]
fn boots_from_vmware_pvscsi() {
    let (_d, _vm, log) = boot_to_ready("pvscsi", Bus::Pvscsi);
    assert_healthy_boot(&log, "/dev/sda4");
}

#[test]
fn boots_from_sata_ahci() {
    let (_d, _vm, log) = boot_to_ready("sata", Bus::Sata);
    assert_healthy_boot(&log, "/dev/sda4");
}

#[test]
fn boots_from_nvme() {
    let (_d, _vm, log) = boot_to_ready("nvme", Bus::Nvme);
    assert_healthy_boot(&log, "/dev/nvme0n1p4");
}

#[test]
fn boots_with_uefi_firmware() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let mut vm = Vm::start(&VmConfig::new("uefi", &disk).uefi()).unwrap();
    let log = vm.wait_for(READY, BOOT).unwrap();
    assert_healthy_boot(&log, "/dev/vda4");
}

/// Nobody at the VM's console can change the kernel command line: Alt
/// held while syslinux starts opens its `boot:` prompt unless the
/// configuration says NOESCAPE, and a label typed there with options runs
/// with them unless it says ALLOWOPTIONS 0. `gateway.selftest=serial` so
/// typed would open a root command channel on the second serial port.
#[test]
fn the_vm_console_cannot_change_the_kernel_command_line() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let mut cfg = VmConfig::new("noescape", &disk).control_serial();
    // Paused at power-on (-S): syslinux starts within a second of it,
    // sooner than a key could be sent to a running VM.
    cfg.extra_args.push("-S".into());
    let mut vm = Vm::start(&cfg).unwrap();
    vm.resume().unwrap();
    // Nothing but the kernel and PID 1 write to ttyS0 (neither SeaBIOS nor
    // syslinux is told to): Alt is held until they do. (syslinux looks at
    // Alt, Ctrl, the right Shift, Caps and Scroll Lock; QEMU's `shift` is
    // the left one.) SeaBIOS resets the keyboard as it starts, so the
    // press is repeated, as a held key's make code is.
    let deadline = Instant::now() + HOLD_ALT;
    while vm.serial().is_empty() && Instant::now() < deadline {
        vm.key_event("alt", true).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    vm.key_event("alt", false).unwrap();
    let prompted = vm.serial().is_empty();
    if prompted {
        // A prompt waits for a label: the default one, with the option.
        vm.type_text("gateway gateway.selftest=serial\n").unwrap();
    }
    let log = vm.wait_for(READY, BOOT).unwrap();
    assert!(
        !prompted && !log.contains("selftest serial"),
        "the boot loader let the keyboard in (prompt: {prompted}):\n{log}"
    );
}

/// e2fsck -f -n on the state partition inside the disk image.
fn fsck_state(disk: &Path) -> (bool, String) {
    let parts = inspect::partitions(disk).unwrap();
    let state = parts.iter().find(|p| p.number == STATE_PARTITION).unwrap();
    let out = Command::new("e2fsck")
        .arg("-f")
        .arg("-n")
        .arg(format!("{}?offset={}", disk.display(), state.start))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn power_button_powers_off_cleanly() {
    let (dir, mut vm, _) = boot_to_ready("power-button", Bus::Virtio);
    vm.power_button().unwrap();
    let status = vm.wait_exit(Duration::from_secs(120)).unwrap();
    assert!(status.success(), "QEMU exit status {status}");
    let log = vm.serial();
    assert!(log.contains("power button pressed"), "{log}");
    assert!(log.contains("power-off: /var unmounted"), "{log}");
    assert!(log.contains("power-off: now"), "{log}");
    let (clean, report) = fsck_state(&dir.path().join("disk.raw"));
    assert!(
        clean,
        "state partition not clean after power-off:\n{report}"
    );
}

#[test]
fn sigterm_from_sbin_poweroff_powers_off() {
    let (_dir, disk, mut vm) = boot_selftest("sbin-poweroff", "poweroff");
    let status = vm.wait_exit(BOOT).unwrap();
    assert!(status.success(), "QEMU exit status {status}");
    let log = vm.serial();
    assert!(log.contains("SIGTERM received: Poweroff"), "{log}");
    assert!(log.contains("power-off: now"), "{log}");
    assert!(fsck_state(&disk).0, "state partition not clean");
}

#[test]
fn power_off_kills_a_process_that_ignores_sigterm() {
    let (_dir, disk, mut vm) = boot_selftest("stubborn", "stubborn");
    let status = vm.wait_exit(BOOT).unwrap();
    assert!(status.success(), "QEMU exit status {status}");
    let log = vm.serial();
    assert!(
        log.contains("selftest stubborn: a child ignores SIGTERM"),
        "{log}"
    );
    assert!(
        log.contains("power-off: 1 processes still running after 5s: killing them"),
        "{log}"
    );
    assert!(log.contains("power-off: /var unmounted"), "{log}");
    assert!(fsck_state(&disk).0, "state partition not clean");
}

#[test]
fn ctrl_alt_del_reboots() {
    let (_d, mut vm, _) = boot_to_ready("ctrl-alt-del", Bus::Virtio);
    vm.ctrl_alt_del().unwrap();
    let log = vm.wait_for_count(READY, 2, BOOT).unwrap();
    assert!(log.contains("SIGINT received: Reboot"), "{log}");
    assert!(log.contains("reboot: /var unmounted"), "{log}");
    // The second boot found the state partition clean: it was unmounted.
    assert_eq!(log.matches("checked, clean").count(), 2, "{log}");
}

#[test]
fn boot_goes_on_without_a_state_partition() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    // Wipe the state filesystem's superblock: no partition is labelled STATE.
    let state = inspect::partitions(&disk)
        .unwrap()
        .into_iter()
        .find(|p| p.number == STATE_PARTITION)
        .unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 64 * 1024], state.start).unwrap();
    drop(f);

    let mut vm = Vm::start(&VmConfig::new("no-state", &disk)).unwrap();
    let log = vm.wait_for(READY, BOOT).unwrap();
    assert!(
        log.contains(
            "warning: state partition unavailable (no partition labelled STATE on /dev/vda)"
        ),
        "{log}"
    );
    assert!(log.contains("settings and logs will not persist"), "{log}");
    assert!(log.contains("loopback: up"), "{log}");
    // And it still powers off in order, with /var (a tmpfs) unmounted.
    vm.power_button().unwrap();
    assert!(vm.wait_exit(Duration::from_secs(120)).unwrap().success());
    assert!(vm.serial().contains("power-off: /var unmounted"));
}

#[test]
fn state_partition_grows_with_the_disk() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("small.raw");
    gateway_image::disk::build_disk(&gateway_image::disk::DiskSpec {
        kernel: a.kernel.clone(),
        root: a.root.clone(),
        out: disk.clone(),
        size: 2 << 30,
        cmdline_out: None,
    })
    .unwrap();
    let before = inspect::ext4_info(&disk, STATE_PARTITION).unwrap();
    assert!(before.blocks_count * before.block_size < 2 << 30);
    // The administrator extends the virtual disk while the VM is off.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();

    let mut vm = Vm::start(&VmConfig::new("grow", &disk)).unwrap();
    let log = vm.wait_for(READY, BOOT).unwrap();
    assert!(log.contains("state: partition /dev/vda4 grown"), "{log}");
    assert!(log.contains("state: filesystem grown"), "{log}");
    vm.power_button().unwrap();
    vm.wait_exit(Duration::from_secs(120)).unwrap();

    let parts = inspect::partitions(&disk).unwrap();
    let state = parts.iter().find(|p| p.number == STATE_PARTITION).unwrap();
    let end = state.start + state.size;
    assert!(
        end > (4 << 30) - (2 << 20) && end <= (4 << 30) - 33 * 512,
        "partition ends at {end}"
    );
    let after = inspect::ext4_info(&disk, STATE_PARTITION).unwrap();
    let fs = after.blocks_count * after.block_size;
    assert!(
        fs + after.block_size > state.size && fs <= state.size,
        "fs {fs} bytes in a {} byte partition",
        state.size
    );
    assert_eq!(after.label, "STATE");
    assert!(
        fsck_state(&disk).0,
        "state partition not clean after growing"
    );
    let v = Command::new("sfdisk")
        .arg("--verify")
        .arg(&disk)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "sfdisk --verify: {}",
        String::from_utf8_lossy(&v.stdout)
    );
}

#[test]
fn orphans_are_reaped() {
    let (_dir, _disk, mut vm) = boot_selftest("orphans", "orphans");
    let log = vm.wait_for("selftest orphans: spawned", BOOT).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("selftest orphans: spawned"))
        .unwrap();
    let adopted: usize = line
        .split("adopted by init: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no adoption count in {line:?}"));
    assert!(
        adopted > 0,
        "no orphan was re-parented to init, the test proved nothing: {line}"
    );
    assert!(line.contains("zombies left: 0"), "{line}");
}
