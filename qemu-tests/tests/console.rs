//! The console text UI on the serial port, as an administrator uses it:
//! keys typed on ttyS0 and the screen read back through a vt100 emulator.
//! One boot goes through the main tasks: a static address (refused while
//! wrong, then applied and seen on the Info screen), DNS servers, a ping of
//! the host, reset network (back to DHCP), and a reboot that comes back to
//! the main menu. The guest talks only to QEMU's user network (10.0.2.x).

use std::time::Duration;

use qemu_tests::screen::{Screen, DOWN, ENTER, LEFT, TAB, UP};
use qemu_tests::{Artifacts, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(60);
const MAIN: &[&str] = &["Configuration", "Registration", "Commands"];

/// From the main menu (its selection on Info) to the Info screen and back;
/// the Info screen once it shows all of `texts`.
fn info(screen: &mut Screen, texts: &[&str]) -> String {
    screen.wait_for(MAIN, STEP);
    screen.keys(&[ENTER]);
    let mut want = vec!["Appliance Name"];
    want.extend(texts);
    // The status is read again every 5 s: a change shows within one.
    let text = screen.wait_for(&want, STEP);
    screen.esc();
    screen.wait_for(MAIN, STEP);
    text
}

#[test]
fn the_serial_console_configures_the_network_pings_resets_and_reboots() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    // A time server on the host by address: nothing looks up a name.
    let cmdline = format!("{} gateway.ntp.servers=10.0.2.2", a.cmdline);
    let mut vm = Vm::start(
        &VmConfig::new("console", &disk)
            .direct_kernel(&a.kernel, &cmdline)
            .user_net(false, &[])
            .serial_console(),
    )
    .unwrap();
    let mut screen = Screen::new(vm.serial_console().unwrap()).unwrap();
    screen.wait_for(MAIN, BOOT);
    screen.wait_for(&["eth0 10.0.2.15/24"], STEP);
    // Main menu: Registration, System, Info, ...: down twice to Info.
    screen.keys(&[DOWN, DOWN]);
    info(&mut screen, &["10.0.2.15/24 (DHCP"]);

    // System > Network > First > Static.
    screen.keys(&[UP, ENTER, ENTER, ENTER, DOWN, ENTER]);
    screen.wait_for(&["eth0: static address", "Address:"], STEP);
    screen.keys(&["10.0.2.15"]);
    screen.wait_for(&["prefix length"], STEP);
    screen.keys(&[ENTER]);
    screen.wait_for(&["eth0: static address", "prefix length"], STEP);
    screen.keys(&["/24", TAB, "10.0.2.2", ENTER]);
    screen.wait_for(&["Saved: net.mode"], STEP);
    screen.keys(&[ENTER]);
    screen.wait_for(&["Network Configuration"], STEP);
    screen.esc();
    screen.esc();
    screen.keys(&[DOWN]);
    info(
        &mut screen,
        &["10.0.2.15/24 (static", "Gateway         : 10.0.2.2"],
    );

    // System > Network > DNS.
    screen.keys(&[UP, ENTER, ENTER, DOWN, ENTER]);
    screen.wait_for(&["DNS Servers", "Search domain:"], STEP);
    screen.keys(&["10.0.2.3", ENTER]);
    screen.wait_for(&["Saved: dns.servers"], STEP);
    screen.keys(&[ENTER]);
    screen.esc();
    screen.esc();
    screen.keys(&[DOWN]);
    info(&mut screen, &["10.0.2.3 (set here)"]);

    // Commands > Ping.
    screen.keys(&[DOWN, DOWN, ENTER, ENTER]);
    screen.wait_for(&["FQDN or IPv4"], STEP);
    screen.keys(&["10.0.2.2", ENTER]);
    let text = screen.wait_for(&["packets sent"], STEP);
    assert!(
        text.contains("4 packets sent, 4 received, 0% loss"),
        "{text}"
    );
    screen.keys(&[ENTER]);
    screen.esc();

    // Commands > Reset network: No is the default, Yes is one key left.
    screen.wait_for(&["Reset network"], STEP);
    screen.keys(&[UP, ENTER]);
    screen.wait_for(&["Reset network interface?"], STEP);
    screen.keys(&[LEFT, ENTER]);
    screen.wait_for(&["Saved:"], STEP);
    screen.keys(&[ENTER]);
    screen.esc();
    screen.keys(&[UP, UP]);
    info(&mut screen, &["10.0.2.15/24 (DHCP", "10.0.2.3 (from DHCP)"]);

    // Commands > Reboot, and the console is back after the boot.
    screen.keys(&[DOWN, DOWN, ENTER, DOWN, ENTER]);
    screen.wait_for(&["Reboot the appliance now?"], STEP);
    screen.keys(&[LEFT, ENTER]);
    screen.wait_for(&["Rebooting"], STEP);
    vm.wait_for_count("gateway: ready", 2, BOOT).unwrap();
    let text = screen.wait_for(MAIN, BOOT);
    assert!(!text.contains("Rebooting"), "{text}");
    // The reset kept DHCP across the reboot.
    screen.keys(&[DOWN, DOWN]);
    info(&mut screen, &["10.0.2.15/24 (DHCP"]);
}
