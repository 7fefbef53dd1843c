//! Registration and check-in in the booted appliance, against the platform
//! simulator run by the test on the host's loopback (10.0.2.2 to the guest,
//! reached through the hosts map as camspublic.<pod>, camspm.<pod>...). The
//! simulator is dropped (its ports closed) before the test ends, pass or
//! fail; QEMU is killed with the `Vm`. The console's Info screen is read
//! on ttyS0 through a vt100 emulator, as an administrator would see it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gateway_management_api::api;
use gateway_platform_sim::{Sim, SimOptions};
use qemu_tests::screen::{Screen, DOWN, ENTER, UP};
use qemu_tests::{free_port, Artifacts, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(120);
const POD: &str = "sim.test";
const STEP: Duration = Duration::from_secs(60);
/// The console's main menu.
const MAIN: &[&str] = &["Configuration", "Registration", "Commands"];

/// The proxy's health check through a host forward: `200 ok` or not.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut answer = String::new();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .and_then(|()| s.read_to_string(&mut answer))
        .is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// From the console's main menu to the Info screen (two items down from
/// Registration, where the menu starts) and back; the Info screen once it
/// shows all of `texts` (the console reads the status every 5 s).
fn info(screen: &mut Screen, texts: &[&str]) -> String {
    screen.wait_for(MAIN, STEP);
    screen.keys(&[DOWN, DOWN, ENTER]);
    let text = screen.wait_for_clean(texts, STEP);
    screen.esc();
    screen.wait_for(MAIN, STEP);
    // Back on Registration, where the next call starts.
    screen.keys(&[UP, UP]);
    text
}

fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn registers_with_the_simulator_follows_a_port_change_and_keeps_serving_when_it_is_down() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(Sim::start(SimOptions {
            pod: POD.into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: None,
            codes: vec!["abc-123".into()],
            initial: Default::default(),
        }))
        .unwrap();
    let hosts: Vec<String> = api::SERVICES
        .iter()
        .map(|s| format!("{}=10.0.2.2", api::host(s, POD)))
        .collect();
    // The CA on the kernel command line: its line breaks as spaces.
    let ca = sim.ca_pem.split_whitespace().collect::<Vec<_>>().join(" ");
    let (old, new) = (free_port(), free_port());
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.2 gateway.platform.pod={POD} gateway.platform.port={} \
         gateway.platform.checkin_interval_s=3 gateway.hosts={} \
         gateway.platform.ca_bundle=\"{ca}\" gateway.selftest=serial",
        a.cmdline,
        sim.https.port(),
        hosts.join(",")
    );
    let cfg = VmConfig::new("platform", &disk)
        .direct_kernel(&a.kernel, &cmdline)
        .user_net(
            false,
            &[
                &format!("tcp:127.0.0.1:{old}-:1080"),
                &format!("tcp:127.0.0.1:{new}-:3128"),
            ],
        )
        .control_serial()
        .serial_console();
    let mut vm = Vm::start(&cfg).unwrap();
    // From the start: the console draws its screen once, then only changes.
    let mut screen = Screen::new(vm.serial_console().unwrap()).unwrap();
    vm.wait_for("unit agent: started", BOOT).unwrap();
    until("the proxy on 1080", Duration::from_secs(60), || {
        healthy(old)
    });

    let answer = vm.command("register abc-123", COMMAND).unwrap();
    assert!(
        answer.contains("appliance gateway-1 (qgs-0001-"),
        "{answer}"
    );
    let registered = sim.state.lock().unwrap().appliances()[0].clone();
    let id = registered.id.clone();
    let platform = vm.command("platform", COMMAND).unwrap();
    assert!(platform.contains(&id), "{platform}");

    // The console's Info screen shows what the platform gave: its ID and
    // name, and the connection once the first check-in went through.
    let text = info(
        &mut screen,
        &[
            &format!("Appliance ID    : {id}"),
            &format!("Appliance Name  : {}", registered.name),
            "Platform Status : Connected",
        ],
    );
    assert!(text.contains(&format!("https://qagpublic.{POD}")), "{text}");

    // A port changed in the platform: the appliance listens there after
    // its next check-in.
    sim.state
        .lock()
        .unwrap()
        .set_configuration(&id, [("proxy.port".into(), "3128".into())].into());
    until("the proxy on 3128", Duration::from_secs(60), || {
        healthy(new)
    });
    assert!(!healthy(old), "the old port still answers");
    until("the outcome reported", Duration::from_secs(30), || {
        let a = &sim.state.lock().unwrap().appliances()[0];
        a.results.iter().any(|r| r.version == 1 && r.applied)
    });
    let reported = sim.state.lock().unwrap().appliances()[0].clone();
    let status = reported.last_checkin.unwrap().status;
    assert_eq!(status["hostname"], "gateway", "{status}");

    // The platform goes away: check-ins fail, the appliance keeps serving
    // with its last configuration.
    drop(sim);
    let mut platform = String::new();
    until("a failed check-in", Duration::from_secs(60), || {
        platform = vm.command("platform", COMMAND).unwrap();
        platform.contains(&format!("check-in  camspm.{POD}: "))
    });
    assert!(platform.contains("TCP refused by 10.0.2.2:"), "{platform}");
    // The console says so, and still shows the registration.
    info(
        &mut screen,
        &[
            &format!("Platform Status : Not connected: camspm.{POD}"),
            &format!("Appliance ID    : {id}"),
        ],
    );
    assert!(healthy(new));
    let status = vm.command("status", COMMAND).unwrap();
    assert!(status.contains("agent active"), "{status}");
}

/// The simulator is a test tool: the image's root filesystem (root A of
/// the disk the tests boot) holds no `platform-sim`, and none of its
/// programs carries the simulator's code (its CA's name), while the agent
/// it tests is there.
#[test]
fn the_platform_simulator_is_not_in_the_image() {
    use gateway_image::{inspect, layout};
    let a = Artifacts::get();
    let root = layout::ROOT_A.number;
    let mut files = Vec::new();
    let mut dirs = vec!["/".to_owned()];
    while let Some(dir) = dirs.pop() {
        for e in inspect::list_dir(&a.disk, root, &dir).unwrap() {
            let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
            match e.mode & 0o170000 {
                0o040000 => dirs.push(path),
                0o100000 => files.push(path),
                _ => {}
            }
        }
    }
    assert!(
        files.iter().any(|f| f == "/usr/bin/gateway-agent"),
        "the walk missed the programs: {files:?}"
    );
    let sims: Vec<&String> = files
        .iter()
        .filter(|f| {
            f.rsplit('/')
                .next()
                .is_some_and(|n| n.contains("platform-sim"))
        })
        .collect();
    assert!(sims.is_empty(), "in the image: {sims:?}");
    let marker = b"gateway platform simulator CA";
    for program in files
        .iter()
        .filter(|f| f.starts_with("/usr/bin/") || f.starts_with("/sbin/"))
    {
        let bytes = inspect::read_file(&a.disk, root, program).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{program} carries the simulator"
        );
    }
}
