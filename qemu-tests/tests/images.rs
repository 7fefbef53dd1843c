//! Every hypervisor image of `make images` boots, the way its users attach
//! it, to `gateway: ready`, and powers off cleanly on the ACPI power button:
//! the OVA's disk (taken out of the archive) on VMware's LSI Logic SAS, the
//! VHD on IDE (Hyper-V Generation 1), the qcow2 on virtio (KVM, Proxmox),
//! and the raw disk with UEFI firmware and with BIOS. Also: one corrupt byte
//! in the OVA's disk fails `verify`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use qemu_tests::artifacts::copy_sparse;
use qemu_tests::{Artifacts, Bus, Vm, VmConfig};

/// Generous: TCG on a shared 2-core machine.
const BOOT: Duration = Duration::from_secs(180);
const READY: &str = "gateway: ready in ";

/// Boots `cfg` to ready, checks the boot, presses the power button and
/// checks that QEMU exits 0 after an orderly power-off.
fn boot_and_power_off(cfg: VmConfig, state_dev: &str) {
    let mut vm = Vm::start(&cfg).unwrap();
    let log = vm.wait_for(READY, BOOT).unwrap();
    assert!(
        log.contains("root filesystem: read-only"),
        "root not read-only:\n{log}"
    );
    assert!(
        log.contains(&format!("state: {state_dev} mounted on /var")),
        "state partition not mounted:\n{log}"
    );
    assert!(!log.contains("error:"), "boot logged an error:\n{log}");
    vm.power_button().unwrap();
    let status = vm.wait_exit(Duration::from_secs(120)).unwrap();
    assert!(status.success(), "QEMU exit status {status}");
    let log = vm.serial();
    assert!(log.contains("power button pressed"), "{log}");
    assert!(log.contains("power-off: /var unmounted"), "{log}");
}

/// Extracts `member` of the OVA into `dir` with GNU tar, as an
/// administrator unpacking the download would.
fn extract_from_ova(member: &str, dir: &Path) -> PathBuf {
    let st = Command::new("tar")
        .arg("-xf")
        .arg(Artifacts::dist_file(".ova"))
        .arg("-C")
        .arg(dir)
        .arg(member)
        .status()
        .unwrap();
    assert!(st.success(), "tar -x {member}");
    dir.join(member)
}

fn disk1_name() -> String {
    format!("gateway-{}-disk1.vmdk", env!("CARGO_PKG_VERSION"))
}

#[test]
fn ova_disk_boots_on_vmware_lsi_logic_sas() {
    let dir = tempfile::tempdir().unwrap();
    let vmdk = extract_from_ova(&disk1_name(), dir.path());
    // vSphere converts the stream-optimized disk on import and never writes
    // it; QEMU reads it and writes to an overlay, the same here.
    let cfg = VmConfig::new("image-ova-mptsas", &vmdk)
        .format("vmdk")
        .snapshot()
        .bus(Bus::Mptsas);
    boot_and_power_off(cfg, "/dev/sda4");
}

#[test]
fn vhd_boots_on_ide_like_hyperv_gen1() {
    let dir = tempfile::tempdir().unwrap();
    let vhd = dir.path().join("gateway.vhd");
    copy_sparse(&Artifacts::dist_file(".vhd"), &vhd);
    let cfg = VmConfig::new("image-vhd-ide", &vhd)
        .format("vpc")
        .bus(Bus::Ide);
    boot_and_power_off(cfg, "/dev/sda4");
}

#[test]
fn qcow2_boots_on_virtio() {
    let dir = tempfile::tempdir().unwrap();
    let qcow2 = dir.path().join("gateway.qcow2");
    copy_sparse(&Artifacts::dist_file(".qcow2"), &qcow2);
    let cfg = VmConfig::new("image-qcow2-virtio", &qcow2).format("qcow2");
    boot_and_power_off(cfg, "/dev/vda4");
}

#[test]
fn raw_boots_with_uefi_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Artifacts::get().disk_copy(dir.path());
    boot_and_power_off(VmConfig::new("image-raw-uefi", &raw).uefi(), "/dev/vda4");
}

#[test]
fn raw_boots_with_bios() {
    let dir = tempfile::tempdir().unwrap();
    let raw = Artifacts::get().disk_copy(dir.path());
    boot_and_power_off(VmConfig::new("image-raw-bios", &raw), "/dev/vda4");
}

#[test]
fn one_corrupt_byte_of_the_ova_disk_fails_verify() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let ova = dir.path().join("gateway.ova");
    std::fs::copy(Artifacts::dist_file(".ova"), &ova).unwrap();
    gateway_image::verify(&ova).expect("the built OVA verifies");
    let bytes = std::fs::read(&ova).unwrap();
    let disk = bytes.windows(4).position(|w| w == b"KDMV").unwrap() as u64;
    // A byte in the middle of the disk member's grains.
    let at = disk + (bytes.len() as u64 - disk) / 2;
    let f = std::fs::OpenOptions::new().write(true).open(&ova).unwrap();
    f.write_all_at(&[bytes[at as usize] ^ 0x01], at).unwrap();
    let e = gateway_image::verify(&ova).unwrap_err().to_string();
    assert!(
        e.contains("manifest digest") && e.contains(&disk1_name()),
        "{e}"
    );
}

/// vSphere's iso transport: ovf-env.xml on a CD-ROM seeds the first
/// configuration (PID 1's first-boot seed reads it with
/// `gateway_init::boot::ovfenv::read()`, below the kernel command line). The host
/// needs xorriso to make the CD-ROM.
#[test]
fn ovf_environment_on_a_cdrom_seeds_the_first_boot() {
    let dir = tempfile::tempdir().unwrap();
    let env_dir = dir.path().join("env");
    std::fs::create_dir(&env_dir).unwrap();
    std::fs::write(
        env_dir.join("ovf-env.xml"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1">
   <PlatformSection><Kind>VMware ESXi</Kind><Version>8.0.2</Version></PlatformSection>
   <PropertySection>
         <Property oe:key="gateway.net.mode" oe:value="unconfigured"/>
         <Property oe:key="gateway.dns.search" oe:value="corp.example.com"/>
         <Property oe:key="gateway.ntp.servers" oe:value="10.0.2.2"/>
   </PropertySection>
</Environment>
"#,
    )
    .unwrap();
    let iso = dir.path().join("ovf-env.iso");
    let out = Command::new("xorriso")
        .args([
            "-as", "mkisofs", "-quiet", "-J", "-R", "-V", "OVF ENV", "-o",
        ])
        .arg(&iso)
        .arg(&env_dir)
        .output()
        .expect("run xorriso (make deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let vmdk = extract_from_ova(&disk1_name(), dir.path());
    let a = Artifacts::get();
    // The kernel command line wins over the environment for ntp.servers.
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.3 gateway.selftest=ctl \
         gateway.selftest.ctl=\"get net.mode dns.search ntp.servers\"",
        a.cmdline
    );
    let cfg = VmConfig::new("image-ovf-env", &vmdk)
        .format("vmdk")
        .snapshot()
        .bus(Bus::Mptsas)
        .cdrom(&iso)
        .direct_kernel(&a.kernel, &cmdline);
    let mut vm = Vm::start(&cfg).unwrap();
    let log = vm
        .wait_for("selftest ctl: done", BOOT)
        .unwrap()
        .replace('\r', "");
    assert!(
        log.contains("selftest ctl: | net.mode=unconfigured\n"),
        "{log}"
    );
    assert!(
        log.contains("selftest ctl: | dns.search=corp.example.com\n"),
        "{log}"
    );
    assert!(
        log.contains("selftest ctl: | ntp.servers=10.0.2.3\n"),
        "{log}"
    );
}
