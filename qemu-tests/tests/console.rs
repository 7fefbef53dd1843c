//! The console text UI on the serial port, as an administrator uses it:
//! keys typed on ttyS0 and the screen read back through a vt100 emulator.
//! One boot goes through the main tasks: the units (the console on the VM's
//! screen, tty1, runs too), a static address other than the DHCP lease
//! (refused while wrong, then applied: Info, the title bar, the control API
//! and the kernel all say 10.0.2.20), NTP servers set, cleared back to the
//! pool defaults and set again, DNS servers, a ping of the host from the
//! static address, reset network (back to DHCP and its lease), and a reboot
//! that comes back to the main menu. The guest talks only to QEMU's user
//! network (10.0.2.x); the control API is read through the `serial`
//! selftest on ttyS1.

use std::time::{Duration, Instant};

use qemu_tests::screen::{Screen, BACKSPACE, DOWN, ENTER, LEFT, TAB, UP};
use qemu_tests::{Artifacts, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(60);
const COMMAND: Duration = Duration::from_secs(60);
const MAIN: &[&str] = &["Configuration", "Registration", "Commands"];
const LISTENING: &str = "selftest serial: listening on ttyS1";
/// What an empty `ntp.servers` means, as Info shows it.
const POOL: &str = "0.flatcar.pool.ntp.org, 1.flatcar.pool.ntp.org, \
                    2.flatcar.pool.ntp.org, 3.flatcar.pool.ntp.org";

/// From the main menu (its selection on Info) to the Info screen and back;
/// the Info screen once it shows all of `texts`.
fn info(screen: &mut Screen, texts: &[&str]) -> String {
    screen.wait_for(MAIN, STEP);
    screen.keys(&[ENTER]);
    let mut want = vec!["Appliance Name"];
    want.extend(texts);
    // The status is read again every 5 s: a change shows within one.
    let text = screen.wait_for_clean(&want, STEP);
    screen.esc();
    screen.wait_for(MAIN, STEP);
    text
}

/// The value of one Info row (`label : value`), a wrapped value joined
/// back: the text between the label and the dialog's right border.
fn info_value(screen: &str, label: &str) -> String {
    let key = format!("{label:<15} : ");
    let inner = |s: &str| s.trim_end().trim_end_matches('│').trim_end().to_owned();
    let mut rows = screen.lines().skip_while(|l| !l.contains(&key));
    let Some(first) = rows.next() else {
        panic!("no {label:?} row on the screen:\n{screen}");
    };
    let mut value = inner(first.split_once(&key).expect("found above").1);
    // A wrapped value goes on under itself, the label column blank: the
    // dialog's 2 columns of margin, then 15 + 3 for the label and colon.
    let indent = " ".repeat(20);
    for row in rows {
        let more = row
            .split_once('│')
            .map(|(_, rest)| inner(rest))
            .and_then(|rest| rest.strip_prefix(&indent).map(str::to_owned));
        match more {
            Some(more) if !more.is_empty() && !more.starts_with(' ') => {
                value.push(' ');
                value.push_str(&more);
            }
            _ => break,
        }
    }
    value
}

/// The title bar: the product on the left, eth0 and its address on the right.
fn title_bar(screen: &str) -> &str {
    screen.lines().next().unwrap_or_default().trim_end()
}

/// Waits until a row of the screen holds `key` and every one of `parts`;
/// that row.
fn wait_row(screen: &Screen, key: &str, parts: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = screen.text();
        if let Some(row) = text
            .lines()
            .find(|l| l.contains(key) && parts.iter().all(|p| l.contains(p)))
        {
            return row.to_owned();
        }
        if Instant::now() >= deadline {
            panic!("no row with {key:?} and {parts:?} within {timeout:?}; the screen:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// From the main menu (its selection on Info): System > Time, the form
/// open and showing all of `texts`.
fn time_form(screen: &mut Screen, texts: &[&str]) -> String {
    screen.wait_for(MAIN, STEP);
    screen.keys(&[UP, ENTER]);
    screen.wait_for(&["System Configuration", "Time"], STEP);
    screen.keys(&[DOWN, DOWN, ENTER]);
    let mut want = vec!["NTP Servers", "All empty: the default servers"];
    want.extend(texts);
    screen.wait_for(&want, STEP)
}

/// OK on the Time form: saved, back to the System menu, then to the main
/// menu with its selection on Info.
fn save_time(screen: &mut Screen) {
    screen.keys(&[ENTER]);
    screen.wait_for(&["Saved: ntp.servers"], STEP);
    screen.keys(&[ENTER]);
    screen.wait_for(&["System Configuration"], STEP);
    screen.esc();
    screen.wait_for(MAIN, STEP);
    screen.keys(&[DOWN]);
}

#[test]
fn the_serial_console_configures_the_network_pings_resets_and_reboots() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    // A time server on the host by address: nothing looks up a name.
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.2 gateway.selftest=serial",
        a.cmdline
    );
    let mut vm = Vm::start(
        &VmConfig::new("console", &disk)
            .direct_kernel(&a.kernel, &cmdline)
            .user_net(false, &[])
            .serial_console()
            .control_serial(),
    )
    .unwrap();
    let mut screen = Screen::new(vm.serial_console().unwrap()).unwrap();
    screen.wait_for(MAIN, BOOT);
    screen.wait_for(&["eth0 10.0.2.15/24"], STEP);
    vm.wait_for(LISTENING, BOOT).unwrap();
    // Main menu: Registration, System, Info, ...: down twice to Info.
    screen.keys(&[DOWN, DOWN]);
    let text = info(&mut screen, &["10.0.2.15/24 (DHCP", "NTP Servers"]);
    assert_eq!(
        info_value(&text, "NTP Servers"),
        "10.0.2.2 (set here)",
        "{text}"
    );

    // Diagnostics > Units: both consoles run, the VM's screen's too.
    screen.keys(&[DOWN, ENTER]);
    screen.wait_for(&["Diagnostics", "Connectivity", "Capture"], STEP);
    screen.keys(&[ENTER]);
    for unit in ["console-tty1 ", "console-ttyS0 "] {
        wait_row(&screen, unit, &["active", "running, pid "], STEP);
    }
    screen.esc();
    screen.esc();
    screen.wait_for(MAIN, STEP);
    screen.keys(&[UP]);
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| unit      console-tty1 active: running, pid "),
        "{status}"
    );

    // System > Network > First > Static: an address the DHCP server would
    // not give, so that Info can only show it if the console applied it.
    screen.keys(&[UP, ENTER, ENTER, ENTER, DOWN, ENTER]);
    screen.wait_for(&["eth0: static address", "Address:"], STEP);
    screen.keys(&["10.0.2.20"]);
    screen.wait_for(&["prefix length"], STEP);
    screen.keys(&[ENTER]);
    screen.wait_for(&["eth0: static address", "prefix length"], STEP);
    // OK with a wrong field sent nothing.
    let mode = vm.command("get net.mode", COMMAND).unwrap();
    assert!(mode.contains("| net.mode=dhcp\n"), "{mode}");
    screen.keys(&["/24", TAB, "10.0.2.2", ENTER]);
    screen.wait_for(&["Saved: net.mode"], STEP);
    screen.keys(&[ENTER]);
    screen.wait_for(&["Network Configuration"], STEP);
    screen.esc();
    screen.esc();
    screen.keys(&[DOWN]);
    // Static without DNS servers: DHCP's are gone with the lease, so no
    // name is looked up until the DNS step below.
    let text = info(
        &mut screen,
        &[
            "10.0.2.20/24 (static",
            "Gateway         : 10.0.2.2",
            "DNS Servers     : none",
        ],
    );
    assert!(
        title_bar(&text).ends_with("eth0 10.0.2.20/24"),
        "{}",
        title_bar(&text)
    );
    assert!(!text.contains("10.0.2.15"), "{text}");
    let status = vm.command("status", COMMAND).unwrap();
    assert!(status.contains("| network   eth0 static: "), "{status}");
    assert!(
        status.contains("|           address 10.0.2.20/24, gateway 10.0.2.2\n"),
        "{status}"
    );
    let addrs = vm.command("addrs", COMMAND).unwrap();
    assert!(addrs.contains("addr 10.0.2.20\n"), "{addrs}");
    assert!(!addrs.contains("addr 10.0.2.15\n"), "{addrs}");
    assert!(
        addrs.contains("route eth0 dest 0.0.0.0 gw 10.0.2.2 mask 0.0.0.0"),
        "{addrs}"
    );

    // System > Time: the seeded server, the other fields empty and dimmed
    // "optional" (the pool is used only when no server is set); a second
    // server typed in.
    time_form(&mut screen, &["NTP: 10.0.2.2", "NTP: optional"]);
    let typed = screen.fg_color("NTP: 10.0.2.2");
    let dimmed = screen.fg_color("NTP: optional");
    assert!(typed.is_some() && dimmed.is_some(), "{}", screen.text());
    assert_ne!(typed, dimmed, "a default looks like a value set");
    // Another host-side address: 10.0.2.x outside QEMU's own is nobody.
    screen.keys(&[DOWN, "10.0.2.4"]);
    save_time(&mut screen);
    let text = info(&mut screen, &["NTP Servers     : 10.0.2.2, 10.0.2.4"]);
    assert_eq!(
        info_value(&text, "NTP Servers"),
        "10.0.2.2, 10.0.2.4 (set here)",
        "{text}"
    );
    let ntp = vm.command("get ntp.servers", COMMAND).unwrap();
    assert!(ntp.contains("| ntp.servers=10.0.2.2,10.0.2.4\n"), "{ntp}");

    // Both fields erased: the defaults, shown dimmed where the values were.
    time_form(&mut screen, &["NTP: 10.0.2.2", "NTP: 10.0.2.4"]);
    screen.keys(&[BACKSPACE; 8]);
    screen.keys(&[DOWN]);
    screen.keys(&[BACKSPACE; 8]);
    let defaults: Vec<String> = (0..4)
        .map(|i| format!("NTP: {i}.flatcar.pool.ntp.org"))
        .collect();
    let defaults: Vec<&str> = defaults.iter().map(String::as_str).collect();
    screen.wait_for(&defaults, STEP);
    for d in &defaults {
        assert_eq!(screen.fg_color(d), dimmed, "{d}: {}", screen.text());
    }
    save_time(&mut screen);
    let text = info(
        &mut screen,
        &[
            "NTP Servers     : 0.flatcar.pool.ntp.org,",
            "3.flatcar.pool.ntp.org",
        ],
    );
    assert_eq!(
        info_value(&text, "NTP Servers"),
        format!("{POOL} (default pool)"),
        "{text}"
    );
    // Stored empty (the default), not as a copy of the pool's names.
    let ntp = vm.command("get ntp.servers", COMMAND).unwrap();
    assert!(ntp.contains("| ntp.servers=\n"), "{ntp}");
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains(&format!("|           servers {POOL}\n")),
        "{status}"
    );
    // Opened again, the form shows the defaults as defaults (dimmed, empty
    // fields); the host's address typed again before anything looks the
    // pool's names up.
    time_form(&mut screen, &defaults);
    for d in &defaults {
        assert_eq!(screen.fg_color(d), dimmed, "{d}: {}", screen.text());
    }
    screen.keys(&["10.0.2.2"]);
    screen.wait_for(&["NTP: 10.0.2.2", "NTP: optional"], STEP);
    save_time(&mut screen);
    let text = info(&mut screen, &["NTP Servers     : 10.0.2.2"]);
    assert_eq!(
        info_value(&text, "NTP Servers"),
        "10.0.2.2 (set here)",
        "{text}"
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
    info(
        &mut screen,
        &["10.0.2.3 (set here)", "10.0.2.20/24 (static"],
    );

    // Commands > Ping, from the static address.
    screen.keys(&[DOWN, DOWN, ENTER, ENTER]);
    screen.wait_for(&["FQDN or IPv4"], STEP);
    screen.keys(&["10.0.2.2", ENTER]);
    let text = screen.wait_for(&["packets sent"], STEP);
    assert!(
        text.contains("4 packets sent, 4 received, 0% loss"),
        "{text}"
    );
    assert!(text.contains("PING 10.0.2.2 (10.0.2.2)"), "{text}");
    assert_eq!(
        text.matches("reply from 10.0.2.2: seq=").count(),
        4,
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
    // Back on DHCP with its lease; the time servers are not network ones.
    let text = info(
        &mut screen,
        &[
            "10.0.2.15/24 (DHCP",
            "10.0.2.3 (from DHCP)",
            "Gateway         : 10.0.2.2",
        ],
    );
    assert!(
        title_bar(&text).ends_with("eth0 10.0.2.15/24"),
        "{}",
        title_bar(&text)
    );
    assert!(!text.contains("10.0.2.20"), "{text}");
    assert_eq!(
        info_value(&text, "NTP Servers"),
        "10.0.2.2 (set here)",
        "{text}"
    );
    let status = vm.command("status", COMMAND).unwrap();
    assert!(status.contains("| network   eth0 dhcp: "), "{status}");
    assert!(
        status.contains("|           address 10.0.2.15/24, gateway 10.0.2.2\n"),
        "{status}"
    );
    let addrs = vm.command("addrs", COMMAND).unwrap();
    assert!(addrs.contains("addr 10.0.2.15\n"), "{addrs}");
    assert!(!addrs.contains("addr 10.0.2.20\n"), "{addrs}");

    // Commands > Reboot, and the console is back after the boot.
    screen.keys(&[DOWN, DOWN, ENTER, DOWN, ENTER]);
    screen.wait_for(&["Reboot the appliance now?"], STEP);
    screen.keys(&[LEFT, ENTER]);
    screen.wait_for(&["Rebooting"], STEP);
    vm.wait_for_count("gateway: ready", 2, BOOT).unwrap();
    let text = screen.wait_for(MAIN, BOOT);
    assert!(!text.contains("Rebooting"), "{text}");
    // The reset kept DHCP across the reboot, and the time server stayed.
    screen.keys(&[DOWN, DOWN]);
    let text = info(&mut screen, &["10.0.2.15/24 (DHCP"]);
    assert_eq!(
        info_value(&text, "NTP Servers"),
        "10.0.2.2 (set here)",
        "{text}"
    );
    vm.wait_for_count(LISTENING, 2, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(status.contains("| network   eth0 dhcp: "), "{status}");
    assert!(
        status.contains("| unit      console-tty1 active: running, pid "),
        "{status}"
    );
}
