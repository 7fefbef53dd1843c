//! eth0, DNS and time in the booted appliance, against real peers: QEMU's
//! user-mode DHCP server, and chronyd run by the test on the host's loopback
//! (10.0.2.2 to the guest). What the guest reports is read through the real
//! `gatewayctl`; the kernel's addresses and routes through /proc.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qemu_tests::chrony::Chrony;
use qemu_tests::{Artifacts, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);

fn boot(
    name: &str,
    cfg: impl FnOnce(VmConfig) -> VmConfig,
    extra: &str,
) -> (tempfile::TempDir, Vm) {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let cmdline = format!("{} {extra}", a.cmdline);
    let vm = Vm::start(&cfg(
        VmConfig::new(name, &disk).direct_kernel(&a.kernel, &cmdline)
    ))
    .unwrap();
    (dir, vm)
}

fn lf(log: String) -> String {
    log.replace('\r', "")
}

/// The lines the ctl selftest printed for one `status`, after `from`.
fn after<'a>(log: &'a str, from: &str) -> &'a str {
    &log[log
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not in:\n{log}"))..]
}

#[test]
fn dhcp_from_qemu_user_networking_configures_eth0_and_dns() {
    // Unrestricted, or QEMU's DHCP server leaves out the router and DNS
    // options. The guest is given only 10.0.2.2 to talk to (a time server
    // by address: no name lookups), and runs nothing else that sends.
    let (_d, mut vm) = boot(
        "dhcp",
        |c| c.user_net(false, &[]),
        "gateway.ntp.servers=10.0.2.2 gateway.hosts=gw.example.com=10.0.2.2 \
         gateway.selftest=ctl gateway.selftest.ctl=\"wait /network/lease;status;addrs;ping -c 2 gw.example.com\"",
    );
    let log = lf(vm.wait_for("selftest ctl: done", BOOT).unwrap());
    assert!(log.contains("wait /network/lease: true"), "{log}");
    let status = after(&log, "gatewayctl status -> exit 0");
    assert!(status.contains("| network   eth0 dhcp: "), "{status}");
    assert!(
        status.contains("address 10.0.2.15/24, gateway 10.0.2.2"),
        "{status}"
    );
    assert!(status.contains("lease from 10.0.2.2"), "{status}");
    assert!(status.contains("| dns       10.0.2.3 (dhcp)"), "{status}");
    // The kernel holds the lease's address and default route.
    assert!(log.contains("selftest ctl: addr 10.0.2.15\n"), "{log}");
    assert!(
        log.contains("selftest ctl: route eth0 dest 0.0.0.0 gw 10.0.2.2 mask 0.0.0.0"),
        "{log}"
    );
    assert!(
        log.contains("network: eth0: lease from 10.0.2.2 for 86400 s, bound in "),
        "{log}"
    );
    assert!(
        log.contains("dns: /run/resolv.conf written: 10.0.2.3 (dhcp)"),
        "{log}"
    );
}

#[test]
fn a_seeded_static_address_then_a_switch_to_dhcp_leaves_nothing_behind() {
    let script = "wait /network/address;status;addrs;\
                  set net.mode=dhcp;wait /network/lease;status;addrs;\
                  set net.mode=static;sleep 2;status;addrs";
    let (_d, mut vm) = boot(
        "static",
        |c| c.user_net(false, &[]),
        &format!(
            "gateway.net.mode=static gateway.net.address=10.0.2.50/24 gateway.net.gateway=10.0.2.2 \
             gateway.dns.servers=10.0.2.3 gateway.ntp.servers=10.0.2.2 \
             gateway.selftest=ctl gateway.selftest.ctl=\"{script}\""
        ),
    );
    let log = lf(vm.wait_for("selftest ctl: done", BOOT).unwrap());
    let parts: Vec<&str> = log.split("gatewayctl status -> exit 0").collect();
    assert_eq!(parts.len(), 4, "{log}");
    let (static1, dhcp, static2) = (parts[1], parts[2], parts[3]);
    assert!(static1.contains("| network   eth0 static"), "{static1}");
    assert!(
        static1.contains("address 10.0.2.50/24, gateway 10.0.2.2"),
        "{static1}"
    );
    assert!(
        static1.contains("selftest ctl: addr 10.0.2.50\n"),
        "{static1}"
    );
    assert!(
        static1.contains("| dns       10.0.2.3 (manual)"),
        "{static1}"
    );
    // After the switch to DHCP the static address is gone from the kernel.
    assert!(
        dhcp.contains("address 10.0.2.15/24, gateway 10.0.2.2"),
        "{dhcp}"
    );
    let dhcp_addrs = &dhcp[..dhcp.find("gatewayctl set").unwrap_or(dhcp.len())];
    assert!(
        dhcp_addrs.contains("selftest ctl: addr 10.0.2.15\n"),
        "{dhcp}"
    );
    assert!(
        !dhcp_addrs.contains("selftest ctl: addr 10.0.2.50"),
        "{dhcp}"
    );
    // And back to static: the lease's address and route do not linger.
    assert!(
        static2.contains("address 10.0.2.50/24, gateway 10.0.2.2"),
        "{static2}"
    );
    assert!(
        static2.contains("selftest ctl: addr 10.0.2.50\n"),
        "{static2}"
    );
    assert!(
        !static2.contains("selftest ctl: addr 10.0.2.15"),
        "{static2}"
    );
    assert_eq!(
        static2
            .matches("selftest ctl: route eth0 dest 0.0.0.0")
            .count(),
        1,
        "{static2}"
    );
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for QEMU's `-rtc base=`.
fn rtc_base(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    gateway_control::cli::utc(secs).replace(' ', "T")
}

#[test]
fn ntp_corrects_a_clock_started_an_hour_wrong() {
    let chrony = Chrony::start().unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let base = rtc_base(hour_ago);
    // Unrestricted so the guest reaches the host's loopback; it is given
    // only 10.0.2.2 to talk to.
    let (_d, mut vm) = boot(
        "ntp",
        |c| {
            let mut c = c.user_net(false, &[]);
            c.extra_args.extend(["-rtc".to_owned(), format!("base={base}")]);
            c
        },
        "gateway.ntp.servers=10.0.2.2 gateway.selftest=ctl gateway.selftest.ctl=\"wait /time/synchronized;status\"",
    );
    let log = lf(vm
        .wait_for("selftest ctl: done", BOOT)
        .unwrap_or_else(|e| panic!("{e}\nchronyd:\n{}", chrony.log())));
    assert!(
        log.contains("wait /time/synchronized: true"),
        "{log}\nchronyd:\n{}",
        chrony.log()
    );
    assert!(log.contains("time: synchronised to 10.0.2.2"), "{log}");
    // The step is about an hour (the guest's clock started an hour behind).
    let step = log
        .lines()
        .find_map(|l| l.split("stepping the clock offset_s=").nth(1))
        .unwrap_or_else(|| panic!("no step in:\n{log}"));
    let step: f64 = step.trim().parse().unwrap();
    assert!((3590.0..3610.0).contains(&step), "stepped by {step} s");
    // The guest's clock now reads the host's time.
    let line = after(&log, "| time      ");
    let shown = &line["| time      ".len().."| time      ".len() + 19];
    let now = gateway_control::cli::utc(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let secs = |s: &str| -> i64 {
        let p: Vec<i64> = s[11..].split(':').map(|x| x.parse().unwrap()).collect();
        p[0] * 3600 + p[1] * 60 + p[2]
    };
    assert_eq!(&shown[..10], &now[..10], "guest {shown}, host {now}");
    assert!(
        (secs(&now) - secs(shown)).abs() < 60,
        "guest {shown}, host {now}"
    );
    assert!(
        line.contains("synchronised: synchronised, server 10.0.2.2"),
        "{line}"
    );
}
