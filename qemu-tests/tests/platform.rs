//! Registration and check-in in the booted appliance, against the platform
//! simulator run by the test on the host's loopback (10.0.2.2 to the guest,
//! reached through the hosts map as camspublic.<pod>, camspm.<pod>...). The
//! simulator is dropped (its ports closed) before the test ends, pass or
//! fail; QEMU is killed with the `Vm`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gateway_agent::api;
use gateway_agent::sim::{Sim, SimOptions};
use qemu_tests::{free_port, Artifacts, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(120);
const POD: &str = "sim.test";

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
        .control_serial();
    let mut vm = Vm::start(&cfg).unwrap();
    vm.wait_for("unit agent: started", BOOT).unwrap();
    until("the proxy on 1080", Duration::from_secs(60), || {
        healthy(old)
    });

    let answer = vm.command("register abc-123", COMMAND).unwrap();
    assert!(
        answer.contains("appliance gateway-1 (qgs-0001-"),
        "{answer}"
    );
    let id = sim.state.lock().unwrap().appliances()[0].id.clone();
    let platform = vm.command("platform", COMMAND).unwrap();
    assert!(platform.contains(&id), "{platform}");

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
    assert!(healthy(new));
    let status = vm.command("status", COMMAND).unwrap();
    assert!(status.contains("agent active"), "{status}");
}
