//! The patch disk, from outside: a blank second disk is formatted, mounted
//! and lets patch mode on (seeded on a first boot); extended while the VM
//! is off, it is grown at the next boot; a disk holding a filesystem is not
//! formatted until the administrator says so; a third disk is ignored (and
//! noted in the status); a
//! disk below `patch.min_disk_gib` is refused with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use qemu_tests::{Artifacts, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(60);
/// Commands sent before the guest listens on ttyS1 lose their first bytes.
const LISTENING: &str = "selftest serial: listening on ttyS1";

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A blank qcow2 disk of `size` (qemu-img's syntax: 2G).
fn blank(dir: &Path, name: &str, size: &str) -> PathBuf {
    let p = dir.join(name);
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", p.to_str().unwrap(), size],
    );
    p
}

/// Boots the appliance with extra virtio disks after its own, in order.
fn boot(name: &str, boot_disk: &Path, disks: &[&Path], seed: &str) -> Vm {
    let a = Artifacts::get();
    let cmdline = format!("{} {seed} gateway.selftest=serial", a.cmdline);
    let mut cfg = VmConfig::new(name, boot_disk)
        .direct_kernel(&a.kernel, &cmdline)
        // The proxy unit waits for an address; restricted, the guest
        // reaches nothing beyond QEMU's DHCP.
        .user_net(true, &[])
        .control_serial();
    for d in disks {
        let format = if d.extension().is_some_and(|e| e == "qcow2") {
            "qcow2"
        } else {
            "raw"
        };
        cfg.extra_args.push("-drive".into());
        cfg.extra_args
            .push(format!("file={},format={format},if=virtio", d.display()));
    }
    Vm::start(&cfg).unwrap()
}

fn poweroff(vm: &mut Vm) {
    vm.command("poweroff", COMMAND).unwrap();
    assert!(vm.wait_exit(BOOT).unwrap().success());
}

#[test]
fn a_blank_disk_is_formatted_for_patch_mode_and_grown_when_extended() {
    let dir = tempfile::tempdir().unwrap();
    let root = Artifacts::get().disk_copy(dir.path());
    let patch = blank(dir.path(), "patch.qcow2", "2G");
    // The first boot's seed asks for patch mode with the minimum lowered.
    let mut vm = boot(
        "disk-patch",
        &root,
        &[&patch],
        "gateway.patch.min_disk_gib=1 gateway.patch.enabled=true",
    );
    vm.wait_for(LISTENING, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| disk      patch vdb 2048 MiB: formatted; mounted at /var/lib/patch"),
        "{status}"
    );
    assert!(!status.contains("warning"), "{status}");
    let get = vm.command("get patch.enabled", COMMAND).unwrap();
    assert!(get.contains("| patch.enabled=true"), "{get}");
    // Patch mode can be turned off and on again.
    for value in ["false", "true"] {
        let r = vm
            .command(&format!("set patch.enabled={value}"), COMMAND)
            .unwrap();
        assert!(r.contains("-> exit 0"), "{r}");
    }
    // A unit sees the patch disk read-only (the cache, when it stores
    // objects there, is given it writable).
    vm.wait_for("unit proxy: started", BOOT).unwrap();
    let sandbox = vm.command("proc gateway-proxy", COMMAND).unwrap();
    assert!(sandbox.contains("mount /var/lib/patch ro,"), "{sandbox}");
    let probe = vm.command("sandbox proxy", COMMAND).unwrap();
    assert!(
        probe.contains("write /var/lib/patch/probe: denied (Read-only file system (os error 30))"),
        "{probe}"
    );
    let stats = vm.command("stats", COMMAND).unwrap();
    assert!(stats.contains("| Disk 2    "), "{stats}");
    assert!(stats.contains("(/var/lib/patch)"), "{stats}");
    poweroff(&mut vm);
    let log = vm.serial();
    assert!(log.contains("power-off: /var/lib/patch unmounted"), "{log}");
    // The units stop first, one by one, before everything else is killed.
    let units = log.find("power-off: stopping the units").unwrap();
    let stopped = log.find("unit proxy: stopped").unwrap();
    assert!(units < stopped && stopped < log.find("power-off: stopping all processes").unwrap());

    // Extended while off: grown at the next boot, still patch mode.
    run("qemu-img", &["resize", "-q", patch.to_str().unwrap(), "3G"]);
    let mut vm = boot("disk-patch-grown", &root, &[&patch], "");
    vm.wait_for(LISTENING, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| disk      patch vdb 3072 MiB: grown from 2.0 GiB to 3.0 GiB; mounted at /var/lib/patch"),
        "{status}"
    );
    let log = vm.serial();
    assert!(log.contains("patch disk vdb: checked, clean"), "{log}");
    assert!(!log.contains("formatting"), "formatted only once:\n{log}");
    poweroff(&mut vm);
}

#[test]
fn a_disk_with_a_filesystem_is_kept_until_erase_is_confirmed_and_a_third_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let root = Artifacts::get().disk_copy(dir.path());
    // Someone's data disk: an ext4 filesystem labelled "data" with a file.
    let data = dir.path().join("data.img");
    run("truncate", &["-s", "2G", data.to_str().unwrap()]);
    run(
        "mke2fs",
        &["-q", "-t", "ext4", "-L", "data", data.to_str().unwrap()],
    );
    let third = blank(dir.path(), "third.qcow2", "2G");
    let mut vm = boot(
        "disk-foreign",
        &root,
        &[&data, &third],
        "gateway.patch.min_disk_gib=1",
    );
    vm.wait_for(LISTENING, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains(
            "| disk      patch vdb 2048 MiB: holds an ext2/3/4 filesystem labelled \"data\": not formatted"
        ),
        "{status}"
    );
    assert!(
        status.contains(
            "| disk      ignored vdc 2048 MiB: ignored: the appliance uses one patch disk (vdb)"
        ),
        "{status}"
    );
    // Noted on the Info screen (control API status), apart from the
    // requirements warnings: it is not one.
    let note = "WARNING : Found a third disk vdc. The appliance uses one patch disk (vdb): the third disk is ignored";
    assert!(
        status.contains(&format!("| note      {note}\n")),
        "{status}"
    );
    let json = vm.command("status --json", COMMAND).unwrap();
    let json: Vec<&str> = json.lines().filter_map(|l| l.strip_prefix("| ")).collect();
    let parsed: gateway_control::protocol::Status = serde_json::from_str(&json.join("\n")).unwrap();
    assert!(parsed.notes.iter().any(|w| w == note), "{parsed:?}");
    assert!(!parsed.warnings.iter().any(|w| w == note), "{parsed:?}");
    let log = vm.serial();
    assert!(
        log.contains("disk vdc at pci0000:00/"),
        "the third disk is logged:\n{log}"
    );
    let r = vm.command("set patch.enabled=true", COMMAND).unwrap();
    assert!(r.contains("-> exit 1"), "{r}");
    assert!(
        r.contains("patch.enabled: the patch disk vdb is not usable: holds an ext2/3/4 filesystem"),
        "{r}"
    );
    let r = vm.command("format-patch-disk", COMMAND).unwrap();
    assert!(r.contains("-> exit 1"), "{r}");
    assert!(
        r.contains("the disk vdb holds an ext2/3/4 filesystem labelled \"data\": formatting destroys it; confirm with erase=true"),
        "{r}"
    );
    let r = vm.command("format-patch-disk --erase", COMMAND).unwrap();
    assert!(r.contains("-> exit 0"), "{r}");
    assert!(
        r.contains("| disk      patch vdb 2048 MiB: formatted; mounted at /var/lib/patch"),
        "{r}"
    );
    let r = vm.command("set patch.enabled=true", COMMAND).unwrap();
    assert!(r.contains("-> exit 0"), "{r}");
    // The third disk was never touched.
    poweroff(&mut vm);
    let out = Command::new("qemu-img")
        .args(["map", "--output=json", third.to_str().unwrap()])
        .output()
        .unwrap();
    let map = String::from_utf8_lossy(&out.stdout);
    assert!(!map.contains("\"data\": true"), "vdc was written: {map}");
}

#[test]
fn a_disk_below_the_minimum_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = Artifacts::get().disk_copy(dir.path());
    let small = blank(dir.path(), "small.qcow2", "1G");
    let mut vm = boot(
        "disk-small",
        &root,
        &[&small],
        "gateway.patch.min_disk_gib=2",
    );
    vm.wait_for(LISTENING, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| disk      patch vdb 1024 MiB: too small: 1.0 GiB; patch mode needs at least 2 GiB (patch.min_disk_gib)"),
        "{status}"
    );
    let r = vm.command("set patch.enabled=true", COMMAND).unwrap();
    assert!(r.contains("-> exit 1"), "{r}");
    assert!(
        r.contains("patch.enabled: the patch disk vdb is too small: 1.0 GiB; patch mode needs at least 2 GiB (patch.min_disk_gib)"),
        "{r}"
    );
    poweroff(&mut vm);
}
