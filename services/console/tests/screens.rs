//! Every screen at 80x25 through ratatui's TestBackend, compared with the
//! text in tests/snapshots/<name>.txt. `UPDATE_SNAPSHOTS=1 cargo test -p
//! gateway-console --test screens` rewrites them; review the diff.

mod common;

use std::path::Path;

use common::{capture, press, report_created, screen, state, state_with_upstream};
use gateway_console::model::{Purpose, Refusal, State};
use gateway_control::protocol::{
    CacheStats, Connectivity, CpuStats, DiskUsage, InterfaceCounters, MemoryStats, PingReply,
    PingResult, PlatformStatus, ProxyTestResult, ProxyTestStep, SetResult, Stats, UnitStats,
};

fn check(name: &str, state: &State) {
    let text = screen(state);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert!(
        text == expected,
        "screen {name} differs from {}:\n{text}",
        path.display()
    );
}

fn at(keys: &str) -> State {
    let mut s = state();
    press(&mut s, keys);
    s
}

#[test]
fn menus() {
    check("main", &at(""));
    check("system", &at("down enter"));
    check("network", &at("down enter enter"));
    check("diagnostics", &at("down down down enter"));
    check("log_pick", &at("down down down enter down enter"));
    check("commands", &at("up enter"));
    check("commands_back_focused", &at("up enter tab"));
}

#[test]
fn network_interface() {
    check("net_mode", &at("down enter enter enter"));
    check(
        "net_mode_static_marked",
        &at("down enter enter enter down space"),
    );
    check("static_form", &at("down enter enter enter down enter"));
    check(
        "static_form_typing",
        &at(r#"down enter enter enter down enter "10.0.2.15""#),
    );
    check(
        "static_form_gateway_outside",
        &at(r#"down enter enter enter down enter "10.0.2.15/24" tab "10.0.3.1""#),
    );
}

#[test]
fn dns_proxy_pod_time_ssh() {
    check("dns_form", &at("down enter enter down enter"));
    check(
        "dns_form_error",
        &at(r#"down enter enter down enter "8.8.8""#),
    );
    let mut s = state_with_upstream();
    press(&mut s, "down enter enter down down enter");
    check("proxy_form", &s);
    press(&mut s, r#"tab tab tab "secret""#);
    check("proxy_form_password_typed", &s);
    check(
        "proxy_form_no_port",
        &at(r#"down enter enter down down enter "p.example.com""#),
    );
    check(
        "pod_form",
        &at(r#"down enter down enter "qg1.apps.qualys.com""#),
    );
    check(
        "pod_form_error",
        &at(r#"down enter down enter "qg1..qualys""#),
    );
    check("time_form", &at("down enter down down enter"));
    // An NTP server that is no host name: the rule under the field.
    check(
        "time_form_error",
        &at(r#"down enter down down enter "ntp..example""#),
    );
    check("ssh", &at("down enter up up enter"));
}

#[test]
fn info() {
    check("info", &at("down down enter"));
    // Registered, checked in: Connected, with the platform's ID and name.
    let mut s = state();
    s.config
        .insert("platform.pod".into(), "qg1.apps.qualys.com".into());
    s.platform = Some(gateway_control::protocol::PlatformStatus {
        pod: Some("qg1.apps.qualys.com".into()),
        registered: true,
        appliance_id: Some("qgs-0042".into()),
        appliance_name: Some("branch-office-gw".into()),
        last_checkin_unix: Some(1_795_219_200),
        last_checkin_result: Some("ok".into()),
        ..Default::default()
    });
    press(&mut s, "down down enter");
    check("info_registered", &s);
    // The warnings exactly as init makes them, for a VM with 100 MiB of
    // memory and a 2 GiB boot disk, so the snapshot follows init's words.
    let mut s = state();
    s.status.as_mut().unwrap().warnings =
        gateway_init::requirements::warnings(100 << 20, Some(2 << 30));
    assert_eq!(s.status.as_ref().unwrap().warnings.len(), 2);
    s.config
        .insert("platform.pod".into(), "qg1.apps.qualys.com".into());
    press(&mut s, "down down enter");
    check("info_requirements", &s);
    // The heading and the closing line the console adds are init's (QGS's).
    assert_eq!(
        gateway_console::view::REQUIREMENTS,
        gateway_init::requirements::MISMATCH
    );
    assert_eq!(
        gateway_console::view::REQUIREMENTS_REFER,
        gateway_init::requirements::REFER
    );
    // A third disk, as init notes it: shown, but not as a requirement.
    let mut s = state();
    let disk = |role: &str, device: &str| gateway_control::protocol::DiskStatus {
        role: role.into(),
        device: device.into(),
        size_bytes: 40 << 30,
        ..Default::default()
    };
    s.status.as_mut().unwrap().notes = gateway_init::disks::ignored_warnings(&[
        disk("boot", "vda"),
        disk("patch", "vdb"),
        disk("ignored", "vdc"),
    ]);
    assert_eq!(s.status.as_ref().unwrap().notes.len(), 1);
    press(&mut s, "down down enter");
    let text = screen(&s);
    assert!(!text.contains("Requirements mismatch"), "{text}");
    check("info_notes", &s);
    let mut s = gateway_console::model::State::new();
    s.status_error = Some("cannot reach the control socket /run/gateway/control.sock: No such file or directory (os error 2) (is this the appliance, and are you root?)".into());
    press(&mut s, "down down enter");
    check("info_unreachable", &s);
}

#[test]
fn diagnostics() {
    check("units", &at("down down down enter enter"));
    check(
        "units_restart",
        &at("down down down enter enter down enter"),
    );
    // Yes: restarted, or the refusal in words.
    let mut s = at("down down down enter enter down enter left enter");
    check("units_restart_waiting", &s);
    s.answer(
        Purpose::Restart("console-tty1".into()),
        Ok(serde_json::json!({})),
    );
    check("units_restart_done", &s);
    let mut s = at("down down down enter enter down enter left enter");
    s.answer(
        Purpose::Restart("console-tty1".into()),
        Err(Refusal::new(
            "unit console-tty1: its supervisor has stopped",
        )),
    );
    check("units_restart_refused", &s);
    let mut s = at("down down down enter down enter enter");
    let lines: Vec<String> = (0..60)
        .rev()
        .map(|i| format!("{:>8.3} unit proxy: message number {i}", f64::from(i) * 1.5))
        .collect();
    s.answer(
        Purpose::Logs("proxy".into()),
        Ok(serde_json::json!({"name": "proxy", "lines": lines})),
    );
    check("logs", &s);
    press(&mut s, r#"/ "number" space "4""#);
    check("logs_search_prompt", &s);
    press(&mut s, "enter");
    check("logs_found", &s);
    press(&mut s, r#"? "nothing" enter"#);
    check("logs_not_found", &s);
    let mut s = at("down down down enter down down enter");
    check("stats_waiting", &s);
    s.answer(
        Purpose::Stats,
        Err(gateway_console::model::Refusal {
            key: None,
            message: "statistics are not served yet".into(),
        }),
    );
    check("stats_unavailable", &s);
    let stats = Stats {
        uptime_s: 100,
        cpu: CpuStats {
            cores: 2,
            busy_percent: 3.5,
            load: [0.1, 0.05, 0.0],
        },
        memory: MemoryStats {
            total_bytes: 256 << 20,
            available_bytes: 200 << 20,
        },
        disks: vec![
            DiskUsage {
                label: "Disk 1".into(),
                mount: "/var".into(),
                total_bytes: 40 << 30,
                used_bytes: 12 << 20,
            },
            DiskUsage {
                label: "Disk 2".into(),
                mount: "/var/lib/patch".into(),
                total_bytes: 100 << 30,
                used_bytes: 1 << 30,
            },
        ],
        network: vec![InterfaceCounters {
            name: "eth0".into(),
            rx_bytes: 3 << 20,
            tx_bytes: 1 << 20,
            ..Default::default()
        }],
        units: vec![UnitStats {
            name: "proxy".into(),
            state: "active".into(),
            cpu_percent: 0.7,
            cpu_total_s: 1.0,
            memory_bytes: 3 << 20,
            memory_limit_bytes: Some(64 << 20),
        }],
        cache: None,
    };
    // Without the cache's section (its unit not active, or silent).
    s.answer(Purpose::Stats, Ok(serde_json::to_value(&stats).unwrap()));
    check("stats", &s);
    // With it, and the four units of the appliance: the whole screen still
    // fits a 25-line VT, the OK button included.
    let unit = |name: &str, mib: u64| UnitStats {
        name: name.into(),
        state: "active".into(),
        cpu_percent: 1.5,
        cpu_total_s: 2.0,
        memory_bytes: mib << 20,
        memory_limit_bytes: Some(96 << 20),
    };
    let full = Stats {
        units: vec![
            unit("proxy", 3),
            unit("cache", 40),
            unit("agent", 5),
            unit("sftp", 2),
        ],
        cache: Some(CacheStats {
            hits: 120,
            misses: 40,
            hit_ratio: 0.75,
            bytes_from_cache: 5 << 30,
            bytes_from_origin: 512 << 20,
            memory_objects: 1234,
            memory_bytes: 80 << 20,
            disk_objects: 1,
            disk_bytes: 700 << 10,
            active_agents: 17,
            ..Default::default()
        }),
        ..stats
    };
    s.answer(Purpose::Stats, Ok(serde_json::to_value(&full).unwrap()));
    check("stats_cache", &s);
    assert!(screen(&s).contains("< OK >"), "{}", screen(&s));
    // System > Certificate: the appliance CA with its fingerprint.
    let mut s = at("down enter up enter");
    check("ca_waiting", &s);
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBkzCCATmgAwIBAgIUQ2F0YWxvZyBvZiB0aGUgYXBwbGlhbmNlIENBIHRlc3Qw\nCgYIKoZIzj0EAwIwJTEjMCEGA1UEAwwaR2F0ZXdheSBBcHBsaWFuY2UgQ0EgMWE2\n-----END CERTIFICATE-----\n";
    s.answer(
        Purpose::Ca,
        Ok(serde_json::json!({
            "pem": pem,
            "fingerprint_sha256": "3F:A1:0C:77:5B:E2:90:1D:44:8A:6F:23:C9:0E:B7:51:2D:6A:88:F0:13:4C:9E:A2:75:B1:0D:E4:36:C8:59:7A"
        })),
    );
    check("ca", &s);
    check("connectivity", &at("down down down enter up up up enter"));
    // Each service's result: reachable, and each way of not being so.
    let mut s = at("down down down enter up up up enter");
    let pod = "qg1.apps.qualys.com";
    let checked = |host: &str, ok: bool, result: &str| Connectivity {
        url: format!("https://{host}.{pod}/api/v1/health"),
        ok,
        result: result.into(),
        checked_unix: 1_795_219_200,
    };
    let platform = PlatformStatus {
        pod: Some(pod.into()),
        connectivity: vec![
            checked("qagpublic", true, "HTTP 200 OK"),
            checked(
                "camspublic",
                false,
                "DNS failure: camspublic.qg1.apps.qualys.com has no address",
            ),
            checked("camspm", false, "TCP refused by 64.39.104.113:443"),
            checked(
                "camsrepo",
                false,
                "TLS failure: invalid peer certificate: UnknownIssuer",
            ),
            checked("cask", false, "HTTP 503 Service Unavailable"),
        ],
        ..Default::default()
    };
    s.answer(
        Purpose::Connectivity,
        Ok(serde_json::to_value(&platform).unwrap()),
    );
    check("connectivity_result", &s);
    // No POD suffix: nothing to check, and where to set it.
    let mut s = at("down down down enter up up up enter");
    s.answer(
        Purpose::Connectivity,
        Ok(serde_json::to_value(PlatformStatus::default()).unwrap()),
    );
    check("connectivity_no_pod", &s);
    // Diagnostics > Proxy: busy, then a step that failed.
    let mut s = at("down down down enter down down down enter");
    check("proxy_test", &s);
    let step = |what: &str, ok: bool, result: &str| ProxyTestStep {
        what: what.into(),
        ok,
        result: result.into(),
    };
    let result = ProxyTestResult {
        proxy: "10.0.0.9:3128".into(),
        target: "https://qagpublic.qg1.apps.qualys.com/api/v1/health".into(),
        ok: false,
        steps: vec![
            step("TCP connection to the proxy 10.0.0.9:3128", true, "OK"),
            step("CONNECT qagpublic.qg1.apps.qualys.com:443", true, "OK"),
            step(
                "TLS with qagpublic.qg1.apps.qualys.com, certificate verified",
                false,
                "TLS failure: invalid peer certificate: UnknownIssuer",
            ),
            step("GET /api/v1/health", false, "not tried"),
        ],
    };
    s.answer(
        Purpose::ProxyTest,
        Ok(serde_json::to_value(&result).unwrap()),
    );
    check("proxy_test_failed", &s);
}

#[test]
fn diagnostics_report() {
    let mut s = at("down down down enter up up enter");
    check("report_reading", &s);
    s.answer(
        Purpose::Diagnostics,
        Ok(common::diagnostics(None, capture("idle"))),
    );
    check("report", &s);
    press(&mut s, "enter");
    check("report_building", &s);
    s.answer(Purpose::Report, Ok(report_created()));
    check("report_made", &s);
    press(&mut s, "enter");
    check("report_waiting", &s);
    press(&mut s, "enter");
    check("report_replace", &s);
    press(&mut s, "left enter");
    s.answer(
        Purpose::Report,
        Err(Refusal::new(
            "support key /usr/share/gateway/support-recipient.age.pub: No such file or directory (os error 2)",
        )),
    );
    check("report_refused", &s);
    // No address known: the command says where to put it.
    let mut s = at("down down down enter up up enter");
    s.status.as_mut().unwrap().network.address = None;
    s.answer(Purpose::Report, Ok(report_created()));
    let text = common::screen(&s);
    assert!(
        text.contains("sftp -P 22 diagnostics@<appliance address>"),
        "{text}"
    );
}

#[test]
fn upstream_capture() {
    let mut s = at("down down down enter up enter");
    check("capture_reading", &s);
    for name in ["idle", "running", "done", "failed"] {
        s.answer(
            Purpose::Diagnostics,
            Ok(common::diagnostics(None, capture(name))),
        );
        check(&format!("capture_{name}"), &s);
    }
    press(&mut s, "enter");
    s.answer(
        Purpose::CaptureStart,
        Err(Refusal::new(
            "a capture is already running: stop it first (capture_stop)",
        )),
    );
    check("capture_refused", &s);
}

#[test]
fn commands() {
    check("ping_form", &at("up enter enter"));
    check("ping_form_error", &at(r#"up enter enter "10.0.2""#));
    let mut s = at(r#"up enter enter "10.0.2.2" enter"#);
    check("ping_waiting", &s);
    let result = PingResult {
        target: "10.0.2.2".into(),
        address: "10.0.2.2".into(),
        sent: 4,
        received: 3,
        loss_percent: 25.0,
        replies: (1..4)
            .map(|seq| PingReply {
                seq,
                time_ms: 0.25 * f64::from(seq),
            })
            .collect(),
    };
    s.answer(Purpose::Ping, Ok(serde_json::to_value(result).unwrap()));
    check("ping_result", &s);
    // A name that does not resolve: the refusal in words.
    let mut s = at(r#"up enter enter "nowhere.example.com" enter"#);
    s.answer(
        Purpose::Ping,
        Err(Refusal::new("nowhere.example.com has no address")),
    );
    check("ping_error", &s);
    check("reboot", &at("up enter down enter"));
    check("shutdown", &at("up enter down down enter"));
    check("reset_appliance", &at("up enter up up enter"));
    check("reset_network", &at("up enter up enter"));
    check("reset_network_yes", &at("up enter up enter left"));
}

#[test]
fn registration() {
    check("registration", &at("enter"));
    // Capitals: the rule under the field, nothing sent.
    check("registration_error", &at(r#"enter "Bad-Code""#));
    let mut s = state();
    s.config
        .insert("platform.pod".into(), "qg1.apps.qualys.com".into());
    press(&mut s, r#"enter "4f2a-77c1-qgs" enter"#);
    check("registration_waiting", &s);
    let mut refused = s.clone();
    s.answer(
        Purpose::Register,
        Ok(serde_json::to_value(PlatformStatus {
            pod: Some("qg1.apps.qualys.com".into()),
            registered: true,
            appliance_id: Some("qgs-0001-5d2c9a4e".into()),
            appliance_name: Some("branch-office-gw".into()),
            ..Default::default()
        })
        .unwrap()),
    );
    check("registration_done", &s);
    refused.answer(
        Purpose::Register,
        Err(Refusal::new(
            "registration refused by camspublic.qg1.apps.qualys.com (404): personalization code \"4f2a-77c1-qgs\" is not known to this platform",
        )),
    );
    check("registration_refused", &refused);
}

#[test]
fn messages() {
    let mut s = at(r#"down enter enter down enter "10.0.2.3""#);
    press(&mut s, "enter");
    s.answer(
        Purpose::Save,
        Ok(serde_json::to_value(SetResult {
            changed: vec!["dns.servers".into()],
            applied: vec!["resolv.conf rewritten".into()],
        })
        .unwrap()),
    );
    check("saved", &s);
    let mut s = at(r#"down enter down enter "qg1.apps.qualys.com" enter"#);
    s.answer(
        Purpose::Save,
        Err(gateway_console::model::Refusal {
            key: Some("platform.pod".into()),
            message: "refused by the appliance for a test".into(),
        }),
    );
    check("pod_refused", &s);
}
