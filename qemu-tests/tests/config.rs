//! The configuration store and the control API in the booted appliance: the
//! real `gatewayctl` talking to PID 1, changes that survive a reboot, the
//! first-boot seed from the kernel command line, and a power cut in the
//! middle of a burst of saves.

use std::time::Duration;

use qemu_tests::{Artifacts, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(180);
const READY: &str = "gateway: ready in ";

/// Boots `disk` with the image's command line plus `extra`.
fn boot(name: &str, disk: &std::path::Path, extra: &str) -> Vm {
    let a = Artifacts::get();
    let cmdline = format!("{} {extra}", a.cmdline);
    Vm::start(&VmConfig::new(name, disk).direct_kernel(&a.kernel, &cmdline)).unwrap()
}

/// The serial log with Unix line ends (the console's tty writes CR LF).
fn lf(log: String) -> String {
    log.replace('\r', "")
}

#[test]
fn a_setting_changed_with_gatewayctl_survives_a_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Artifacts::get().disk_copy(dir.path());
    // The same script runs at every boot: the second run finds the values
    // already there, which only a persisted change explains.
    let script = "set ntp.servers=10.0.2.2 dns.search=corp.example.com;\
                  get ntp.servers dns.search;\
                  set proxy.port=22;\
                  reboot";
    let mut vm = boot(
        "ctl-reboot",
        &disk,
        &format!("gateway.selftest=ctl gateway.selftest.ctl=\"{script}\""),
    );
    let log = lf(vm
        .wait_for_count("selftest ctl: done", 2, BOOT * 2)
        .unwrap());
    let (first, second) = log.split_at(log.find("selftest ctl: done").unwrap());
    assert!(
        first.contains("configuration: none stored, first boot"),
        "{first}"
    );
    assert!(
        first.contains("selftest ctl: | changed: dns.search, ntp.servers"),
        "{first}"
    );
    assert!(
        first.contains("selftest ctl: | applied: resolv.conf rewritten"),
        "{first}"
    );
    assert!(
        first.contains("selftest ctl: | ntp.servers=10.0.2.2\n"),
        "{first}"
    );
    assert!(
        first.contains("selftest ctl: | dns.search=corp.example.com\n"),
        "{first}"
    );
    assert!(
        first.contains("selftest ctl: $ gatewayctl set proxy.port=22 -> exit 1"),
        "{first}"
    );
    assert!(
        first.contains(
            "selftest ctl: ! gatewayctl: proxy.port: 22 is not allowed: a port from 1 to 65535"
        ),
        "{first}"
    );
    assert!(first.contains("control API: Reboot requested"), "{first}");
    assert!(
        second.contains("configuration: loaded /var/lib/gateway/config.json"),
        "{second}"
    );
    assert!(
        second.contains("configuration: ntp.servers=10.0.2.2"),
        "{second}"
    );
    assert!(
        second.contains("selftest ctl: | nothing changed"),
        "{second}"
    );
    assert!(!log.contains("error:"), "{log}");
}

#[test]
fn the_kernel_command_line_seeds_a_first_boot_only() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Artifacts::get().disk_copy(dir.path());
    let seed =
        "gateway.hosts=api.example.com=10.0.2.2 gateway.allowed_domains=example.com,example.net \
                gateway.proxy.port=22 gateway.cache.port=3128 gateway.nonsense=1";
    let mut vm = boot(
        "seed",
        &disk,
        &format!("{seed} gateway.selftest=ctl gateway.selftest.ctl=\"get hosts allowed_domains proxy.port cache.port\""),
    );
    let log = lf(vm.wait_for("selftest ctl: done", BOOT).unwrap());
    assert!(
        log.contains("configuration: seeded hosts=api.example.com=10.0.2.2"),
        "{log}"
    );
    assert!(
        log.contains(
            "error: configuration: seed refused, default kept: proxy.port: 22 is not allowed"
        ),
        "{log}"
    );
    assert!(
        log.contains("warning: configuration: gateway.nonsense on the command line is not a configuration key"),
        "{log}"
    );
    for line in [
        "| hosts=api.example.com=10.0.2.2\n",
        "| allowed_domains=example.com,example.net\n",
        "| proxy.port=1080\n",
        "| cache.port=3128\n",
    ] {
        assert!(
            log.contains(&format!("selftest ctl: {line}")),
            "{line}: {log}"
        );
    }
    vm.kill();

    // A later boot with another seed keeps the stored configuration.
    let mut vm = boot(
        "seed-again",
        &disk,
        "gateway.cache.port=4128 gateway.selftest=ctl gateway.selftest.ctl=\"get cache.port\"",
    );
    let log = lf(vm.wait_for("selftest ctl: done", BOOT).unwrap());
    assert!(log.contains("selftest ctl: | cache.port=3128\n"), "{log}");
    assert!(
        log.contains("configuration: gateway.cache.port on the command line ignored"),
        "{log}"
    );
}

#[test]
fn a_power_cut_during_a_burst_of_saves_leaves_a_valid_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Artifacts::get().disk_copy(dir.path());
    let mut vm = boot("burst", &disk, "gateway.selftest=burst");
    vm.wait_for("selftest burst: 300 writes", BOOT).unwrap();
    vm.kill();

    let mut vm = boot("burst-after", &disk, "");
    let log = vm.wait_for(READY, BOOT).unwrap();
    assert!(
        log.contains("configuration: loaded /var/lib/gateway/config.json"),
        "{log}"
    );
    assert!(
        log.contains("configuration: proxy.port=3000")
            || log.contains("configuration: proxy.port=3001"),
        "{log}"
    );
    assert!(log.contains("configuration: dns.search=burst"), "{log}");
    assert!(!log.contains("error:"), "{log}");
}

/// The text after `label` up to the end of its line in a serial answer.
fn after<'a>(answer: &'a str, label: &str) -> &'a str {
    answer
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no {label:?} in {answer}"))
}

#[test]
fn reset_appliance_erases_the_configuration_the_logs_and_the_unit_state() {
    const COMMAND: Duration = Duration::from_secs(120);
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let cmdline = format!("{} gateway.selftest=serial", a.cmdline);
    let cfg = VmConfig::new("reset", &disk)
        .direct_kernel(&a.kernel, &cmdline)
        .control_serial();
    let mut vm = Vm::start(&cfg).unwrap();
    vm.wait_for("selftest serial: listening on ttyS1", BOOT)
        .unwrap();

    let set = vm.command("set ntp.servers=10.0.2.2", COMMAND).unwrap();
    assert!(set.contains("exit 0"), "{set}");
    // init.log holds this boot from its first line.
    // (The serial selftest splits its commands on blanks: one-word searches.)
    let first_boot = "--search stored,";
    let boots = vm
        .command(&format!("logs init -n 1000 {first_boot}"), COMMAND)
        .unwrap();
    assert_eq!(
        boots.matches("first boot").count(),
        1,
        "{boots}\n{}",
        vm.command("logs init -n 1000", COMMAND).unwrap()
    );
    // The cache's CA lives in its unit's state directory.
    let before = vm.command("ca-export", COMMAND).unwrap();
    let ca_before = after(&before, "SHA-256 fingerprint:").to_owned();
    let reset = vm.command("reset-appliance --yes", COMMAND).unwrap();
    assert!(reset.contains("exit 0"), "{reset}");

    let log = lf(vm
        .wait_for_count("selftest serial: listening on ttyS1", 2, BOOT)
        .unwrap());
    let (_, second) = log.split_at(log.find("reset appliance: configuration erased").unwrap());
    assert!(
        second.contains("reset appliance: state partition erased"),
        "{second}"
    );
    assert!(
        second.contains("configuration: none stored, first boot"),
        "{second}"
    );

    let ntp = vm.command("get ntp.servers", COMMAND).unwrap();
    assert!(ntp.contains("ntp.servers=\n"), "{ntp}");
    // The first boot's lines went with its log: one boot in init.log.
    let boots = vm
        .command(&format!("logs init -n 1000 {first_boot}"), COMMAND)
        .unwrap();
    assert_eq!(boots.matches("first boot").count(), 1, "{boots}");
    let erased = vm
        .command("logs init -n 1000 --search erased,", COMMAND)
        .unwrap();
    assert!(!erased.contains("rebooting"), "{erased}");
    let after_reset = vm.command("ca-export", COMMAND).unwrap();
    let ca_after = after(&after_reset, "SHA-256 fingerprint:");
    assert_ne!(ca_before, ca_after, "the appliance CA survived the reset");
}
