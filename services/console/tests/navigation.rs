//! The navigation model driven by keys, sans-IO: state + key -> state +
//! requests. Nothing is sent until OK on a valid form or Yes on a question.

mod common;

use common::{
    capture, diagnostics, offer, press, report_created, sent, state, state_with_upstream,
};
use gateway_console::menu::{ConfirmKind, MenuId};
use gateway_console::model::{Action, CaptureView, Purpose, Refusal, ReportView, Screen, State};
use gateway_control::protocol::{
    Connectivity, PlatformStatus, ProxyTestResult, ProxyTestStep, SetResult,
};
use gateway_control::Request;

fn set(pairs: &[(&str, &str)]) -> Request {
    Request::Set {
        values: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn saved(s: &mut gateway_console::model::State, changed: &[&str]) -> Vec<Action> {
    let result = SetResult {
        changed: changed.iter().map(|c| c.to_string()).collect(),
        applied: vec![],
    };
    s.answer(Purpose::Save, Ok(serde_json::to_value(result).unwrap()))
}

fn top_menu(s: &gateway_console::model::State) -> Option<MenuId> {
    match s.top() {
        Screen::Menu(m) => Some(m.id),
        _ => None,
    }
}

#[test]
fn a_static_address_is_sent_once_valid_and_the_console_returns_to_its_menu() {
    let mut s = state();
    assert!(press(&mut s, "down enter enter enter down enter").is_empty());
    assert!(matches!(s.top(), Screen::Form(_)));
    // Wrong as typed: nothing is sent on ENTER, the rule is shown.
    assert!(press(&mut s, r#""10.0.2.15" enter"#).is_empty());
    let Screen::Form(form) = s.top() else {
        panic!()
    };
    assert!(form.fields[0]
        .error
        .as_ref()
        .unwrap()
        .contains("prefix length"));
    let actions = press(&mut s, r#""/24" tab "10.0.2.2" enter"#);
    assert_eq!(
        sent(&actions, &Purpose::Save),
        Some(set(&[
            ("net.mode", "static"),
            ("net.address", "10.0.2.15/24"),
            ("net.gateway", "10.0.2.2")
        ]))
    );
    assert!(s.busy.is_some());
    assert!(
        press(&mut s, "esc down").is_empty(),
        "keys wait for the answer"
    );
    let after = saved(&mut s, &["net.mode", "net.address", "net.gateway"]);
    // The forms are refreshed from the appliance.
    assert!(sent(&after, &Purpose::Config).is_some());
    assert!(matches!(s.top(), Screen::Message(m) if !m.error));
    press(&mut s, "enter");
    assert_eq!(top_menu(&s), Some(MenuId::Network));
}

#[test]
fn dhcp_and_unconfigured_are_set_from_the_radio_list() {
    let mut s = state();
    press(&mut s, "down enter enter enter");
    // SPACE marks, ENTER on OK takes the marked one.
    let a = press(&mut s, "down down space tab enter");
    assert_eq!(
        sent(&a, &Purpose::Save),
        Some(set(&[("net.mode", "unconfigured")]))
    );
    let mut s = state();
    let a = press(&mut s, "down enter enter enter enter");
    assert_eq!(sent(&a, &Purpose::Save), Some(set(&[("net.mode", "dhcp")])));
    // Cancel sends nothing.
    let mut s = state();
    assert!(press(&mut s, "down enter enter enter backtab enter").is_empty());
    assert_eq!(top_menu(&s), Some(MenuId::Network));
}

#[test]
fn back_and_esc_return_to_the_previous_screen_and_the_main_menu_stays() {
    let mut s = state();
    press(&mut s, "esc esc");
    assert_eq!(top_menu(&s), Some(MenuId::Main));
    press(&mut s, "down enter enter down enter");
    assert!(matches!(s.top(), Screen::Form(_)));
    press(&mut s, "esc");
    assert_eq!(top_menu(&s), Some(MenuId::Network));
    press(&mut s, "tab enter");
    assert_eq!(top_menu(&s), Some(MenuId::System));
    press(&mut s, "esc");
    assert_eq!(top_menu(&s), Some(MenuId::Main));
    // Back from a form's button, without sending.
    let a = press(&mut s, r#"enter down enter "x" tab tab enter"#);
    assert!(a.is_empty());
    assert_eq!(top_menu(&s), Some(MenuId::System));
}

#[test]
fn dns_and_time_forms_send_lists_and_empty_restores_defaults() {
    let mut s = state();
    let a = press(
        &mut s,
        r#"down enter enter down enter "10.0.2.3" down "10.0.2.4" down down "corp.example.com" enter"#,
    );
    assert_eq!(
        sent(&a, &Purpose::Save),
        Some(set(&[
            ("dns.servers", "10.0.2.3,10.0.2.4"),
            ("dns.search", "corp.example.com")
        ]))
    );
    let mut s = state();
    let a = press(&mut s, "down enter down down enter enter");
    assert_eq!(sent(&a, &Purpose::Save), Some(set(&[("ntp.servers", "")])));
}

#[test]
fn a_refusal_lands_on_the_field_it_names() {
    let mut s = state();
    press(
        &mut s,
        r#"down enter down enter "qg1.apps.qualys.com" enter"#,
    );
    s.answer(
        Purpose::Save,
        Err(Refusal {
            key: Some("platform.pod".into()),
            message: "no".into(),
        }),
    );
    let Screen::Form(form) = s.top() else {
        panic!("still on the form")
    };
    assert_eq!(form.fields[0].error.as_deref(), Some("no"));
    assert!(s.busy.is_none());
}

#[test]
fn dangerous_commands_default_to_no() {
    for (keys, request) in [
        ("up enter down enter", Request::Reboot),
        ("up enter down down enter", Request::Poweroff),
        ("up enter up up enter", Request::ResetAppliance),
        ("up enter up enter", Request::ResetNetwork),
    ] {
        let mut s = state();
        assert!(press(&mut s, &format!("{keys} enter")).is_empty(), "{keys}");
        assert_eq!(top_menu(&s), Some(MenuId::Commands));
        let mut s = state();
        let a = press(&mut s, &format!("{keys} left enter"));
        let Some(Action::Call(_, r)) = a.first() else {
            panic!("{keys}: nothing sent")
        };
        assert_eq!(r, &request);
        let mut s = state();
        let a = press(&mut s, &format!("{keys} y enter"));
        assert_eq!(a.len(), 1, "{keys}: y answers yes");
    }
}

#[test]
fn ping_units_logs_and_stats_ask_the_appliance() {
    let mut s = state();
    let a = press(&mut s, r#"up enter enter "10.0.2.2" enter"#);
    assert_eq!(
        sent(&a, &Purpose::Ping),
        Some(Request::Ping {
            target: "10.0.2.2".into(),
            count: Some(4)
        })
    );
    let mut s = state();
    let a = press(&mut s, "down down down enter enter down enter left enter");
    assert_eq!(
        sent(&a, &Purpose::Restart("console-tty1".into())),
        Some(Request::RestartUnit {
            name: "console-tty1".into()
        })
    );
    let mut s = state();
    let a = press(&mut s, "down down down enter down enter down down enter");
    assert_eq!(
        sent(&a, &Purpose::Logs("init".into())),
        Some(Request::Logs {
            name: "init".into(),
            lines: Some(2000),
            search: None
        })
    );
    let mut s = state();
    let a = press(&mut s, "down down down enter down down enter");
    assert!(sent(&a, &Purpose::Stats).is_some());
    let tick = s.tick();
    assert!(sent(&tick, &Purpose::Stats).is_some());
    assert!(sent(&tick, &Purpose::Status).is_some());
}

#[test]
fn registration_checks_the_code_before_sending_it_and_connectivity_asks_for_a_check() {
    let mut s = state();
    // Registration: a code with capitals is refused on the field.
    let a = press(&mut s, r#"enter "Bad-Code" enter"#);
    assert!(sent(&a, &Purpose::Register).is_none());
    let Screen::Form(f) = s.top() else {
        panic!("the form stays")
    };
    assert!(f.fields[0]
        .error
        .as_deref()
        .unwrap()
        .starts_with("a personalization code is"));
    let a = press(
        &mut s,
        r#"home del del del del del del del del "good-code-1" enter"#,
    );
    assert_eq!(
        sent(&a, &Purpose::Register),
        Some(Request::Register {
            code: "good-code-1".into()
        })
    );
    // Diagnostics > Connectivity runs the check.
    let mut s = state();
    let a = press(&mut s, "down down down enter up up up enter");
    assert_eq!(
        sent(&a, &Purpose::Connectivity),
        Some(Request::Platform { check: true })
    );
}

#[test]
fn a_registration_waits_for_its_answer_then_shows_the_id_or_the_refusal() {
    const OPEN: &str = "enter";
    let registered = || {
        serde_json::to_value(PlatformStatus {
            pod: Some("qg1.apps.qualys.com".into()),
            registered: true,
            appliance_id: Some("qgs-0001-5d2c9a4e".into()),
            appliance_name: Some("branch-office-gw".into()),
            ..Default::default()
        })
        .unwrap()
    };
    // Only lowercase letters, digits and dashes, not at either end: each
    // wrong code keeps the form and sends nothing.
    for bad in ["Bad-Code", "-abc", "abc-", "ab_c", "ab.c"] {
        let mut s = state();
        let a = press(&mut s, &format!(r#"{OPEN} "{bad}" enter"#));
        assert!(a.is_empty(), "{bad:?} was sent");
        let Screen::Form(f) = s.top() else {
            panic!("{bad:?}: the form stays")
        };
        assert!(
            f.fields[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("lowercase letters, digits and dashes")),
            "{bad:?}: {:?}",
            f.fields[0].error
        );
        assert!(s.busy.is_none());
    }
    // A good code: sent once, then the console waits and takes no key.
    let mut s = state();
    let a = press(&mut s, r#"enter "4f2a-77c1-qgs" enter"#);
    assert_eq!(
        a,
        [Action::Call(
            Purpose::Register,
            Request::Register {
                code: "4f2a-77c1-qgs".into()
            }
        )]
    );
    assert!(s.busy.as_deref().unwrap().starts_with("Registering"));
    assert!(press(&mut s, "esc enter").is_empty(), "keys wait");
    assert!(s.tick().is_empty(), "no refresh while it registers");
    let waiting = s.clone();
    // Registered: the ID and the name, and Info knows it; ENTER goes back
    // to the main menu, the form gone.
    s.answer(Purpose::Register, Ok(registered()));
    assert!(s.busy.is_none());
    let Screen::Message(m) = s.top() else {
        panic!("the result")
    };
    assert!(!m.error, "{m:?}");
    assert!(
        m.lines.iter().any(|l| l.contains("qgs-0001-5d2c9a4e")),
        "{m:?}"
    );
    assert!(
        m.lines.iter().any(|l| l.contains("branch-office-gw")),
        "{m:?}"
    );
    assert!(s.platform.as_ref().is_some_and(|p| p.registered));
    press(&mut s, "enter");
    assert_eq!(top_menu(&s), Some(MenuId::Main));
    assert_eq!(s.stack.len(), 1);
    // Refused by the platform: why, in words, over the form, which keeps
    // the code for another try.
    let mut s = waiting;
    s.answer(
        Purpose::Register,
        Err(Refusal::new(
            "registration refused by camspublic.qg1.apps.qualys.com (404): personalization code \"4f2a-77c1-qgs\" is not known to this platform",
        )),
    );
    assert!(s.busy.is_none());
    let Screen::Message(m) = s.top() else {
        panic!("the refusal")
    };
    assert!(m.error);
    assert_eq!(m.lines[0], "The appliance was not registered:");
    assert!(
        m.lines[1].contains("is not known to this platform"),
        "{m:?}"
    );
    assert!(s.platform.is_none(), "nothing registered");
    press(&mut s, "enter");
    let Screen::Form(f) = s.top() else {
        panic!("back on the form")
    };
    assert_eq!(f.fields[0].value, "4f2a-77c1-qgs");
    // The same code again, as it is.
    let a = press(&mut s, "enter");
    assert_eq!(
        sent(&a, &Purpose::Register),
        Some(Request::Register {
            code: "4f2a-77c1-qgs".into()
        })
    );
}

#[test]
fn disable_ssh_sends_ssh_enabled_false_only_on_ok() {
    const OPEN: &str = "down enter up up enter";
    let enabled = || {
        let mut s = state();
        s.config.insert("ssh.enabled".into(), "true".into());
        s
    };
    // The list opens on the current setting.
    let mut s = enabled();
    press(&mut s, OPEN);
    let Screen::Choice(c) = s.top() else {
        panic!("the SSH list")
    };
    assert_eq!(c.options[c.chosen], "Enabled");
    // Marking Disabled and moving to OK send nothing; OK sends the setting.
    assert!(press(&mut s, "down space tab").is_empty());
    let a = press(&mut s, "enter");
    assert_eq!(
        a,
        [Action::Call(
            Purpose::Save,
            set(&[("ssh.enabled", "false")])
        )]
    );
    saved(&mut s, &["ssh.enabled"]);
    press(&mut s, "enter");
    assert_eq!(top_menu(&s), Some(MenuId::System));
    // ENTER on the Disabled line takes it at once.
    let mut s = enabled();
    let a = press(&mut s, &format!("{OPEN} down enter"));
    assert_eq!(
        sent(&a, &Purpose::Save),
        Some(set(&[("ssh.enabled", "false")]))
    );
    // Cancel, or Esc, after marking Disabled: nothing sent, SSH stays on.
    let mut s = enabled();
    assert!(press(&mut s, &format!("{OPEN} down space backtab enter")).is_empty());
    assert_eq!(top_menu(&s), Some(MenuId::System));
    let mut s = enabled();
    assert!(press(&mut s, &format!("{OPEN} down space esc")).is_empty());
    assert_eq!(top_menu(&s), Some(MenuId::System));
}

#[test]
fn the_proxy_form_sends_host_port_user_and_password_together_on_ok() {
    const OPEN: &str = "down enter enter down down enter";
    let mut s = state();
    // Typing and moving between the fields sends nothing.
    let a = press(
        &mut s,
        &format!(r#"{OPEN} "proxy.corp.example.com" tab "3128" tab "agent" tab "s3cret-pass""#),
    );
    assert!(a.is_empty(), "{a:?}");
    assert!(s.busy.is_none());
    // OK: one set of exactly the three keys, host and port joined.
    let a = press(&mut s, "tab enter");
    assert_eq!(
        a,
        [Action::Call(
            Purpose::Save,
            set(&[
                ("upstream.proxy", "proxy.corp.example.com:3128"),
                ("upstream.user", "agent"),
                ("upstream.password", "s3cret-pass"),
            ])
        )]
    );
    // A host without its port: the rule, nothing sent.
    let mut s = state();
    assert!(press(&mut s, &format!(r#"{OPEN} "proxy.corp.example.com" enter"#)).is_empty());
    let Screen::Form(f) = s.top() else {
        panic!("the form stays")
    };
    assert!(f.fields[1].error.as_deref().unwrap().contains("port"));
    // A password already set and the field left empty: it is kept (not
    // sent); the rest is.
    let mut s = state_with_upstream();
    let a = press(&mut s, &format!(r#"{OPEN} tab bs bs bs bs "8080" enter"#));
    assert_eq!(
        sent(&a, &Purpose::Save),
        Some(set(&[
            ("upstream.proxy", "proxy.corp.example.com:8080"),
            ("upstream.user", "agent"),
        ]))
    );
}

#[test]
fn a_connectivity_check_with_a_failure_is_shown_as_an_error() {
    const OPEN: &str = "down down down enter up up up enter";
    let checked = |host: &str, ok: bool, result: &str| Connectivity {
        url: format!("https://{host}.qg1.apps.qualys.com/api/v1/health"),
        ok,
        result: result.into(),
        checked_unix: 1_795_219_200,
    };
    let answer = |connectivity: Vec<Connectivity>, pod: Option<&str>| {
        serde_json::to_value(PlatformStatus {
            pod: pod.map(str::to_owned),
            connectivity,
            ..Default::default()
        })
        .unwrap()
    };
    let all_ok = vec![
        checked("qagpublic", true, "HTTP 200 OK"),
        checked("camspm", true, "HTTP 200 OK"),
    ];
    let mut one_down = all_ok.clone();
    one_down.push(checked("cask", false, "HTTP 503 Service Unavailable"));
    for (connectivity, pod, error, last) in [
        (
            all_ok,
            Some("qg1.apps.qualys.com"),
            false,
            "Every platform service is reachable.",
        ),
        (
            one_down,
            Some("qg1.apps.qualys.com"),
            true,
            "1 of 3 platform services are not reachable.",
        ),
        (
            vec![],
            None,
            true,
            "No POD suffix: set it in System > POD Suffix.",
        ),
    ] {
        let mut s = state();
        press(&mut s, OPEN);
        s.answer(Purpose::Connectivity, Ok(answer(connectivity, pod)));
        assert!(s.busy.is_none());
        let Screen::Message(m) = s.top() else {
            panic!("the result")
        };
        assert_eq!(m.error, error, "{m:?}");
        assert_eq!(m.lines.last().map(String::as_str), Some(last), "{m:?}");
        press(&mut s, "enter");
        assert_eq!(top_menu(&s), Some(MenuId::Diagnostics));
    }
}

#[test]
fn the_proxy_test_runs_and_shows_each_step_or_the_refusal() {
    let keys = "down down down enter down down down enter";
    let mut s = state();
    let a = press(&mut s, keys);
    assert_eq!(sent(&a, &Purpose::ProxyTest), Some(Request::ProxyTest));
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
            step(
                "CONNECT qagpublic.qg1.apps.qualys.com:443",
                false,
                "upstream proxy refused CONNECT: 407 Proxy Authentication Required",
            ),
            step(
                "TLS with qagpublic.qg1.apps.qualys.com, certificate verified",
                false,
                "not tried",
            ),
            step("GET /api/v1/health", false, "not tried"),
        ],
    };
    s.answer(
        Purpose::ProxyTest,
        Ok(serde_json::to_value(&result).unwrap()),
    );
    let Screen::Message(m) = s.top() else {
        panic!("{keys}")
    };
    assert!(m.error);
    assert!(
        m.lines
            .iter()
            .any(|l| l.contains("407 Proxy Authentication Required")),
        "{m:?}"
    );
    press(&mut s, "enter");
    assert_eq!(top_menu(&s), Some(MenuId::Diagnostics));
    // No upstream proxy: the refusal, in words.
    press(&mut s, "down down down enter");
    s.answer(
        Purpose::ProxyTest,
        Err(Refusal::new(
            "upstream.proxy: no upstream proxy is set: the appliance reaches the platform directly (System > Network > Proxy)",
        )),
    );
    let Screen::Message(m) = s.top() else {
        panic!("{keys}")
    };
    assert!(
        m.error && m.lines[0].contains("no upstream proxy is set"),
        "{m:?}"
    );
}

const REPORT: &str = "down down down enter up up enter";
const CAPTURE: &str = "down down down enter up enter";

fn report_view(s: &State) -> &ReportView {
    match s.top() {
        Screen::Report(v) => v,
        other => panic!("not the report screen: {other:?}"),
    }
}

fn capture_view(s: &State) -> &CaptureView {
    match s.top() {
        Screen::Capture(v) => v,
        other => panic!("not the capture screen: {other:?}"),
    }
}

#[test]
fn the_report_screen_reads_what_waits_then_makes_a_report_with_its_password() {
    let mut s = state();
    let a = press(&mut s, REPORT);
    assert_eq!(sent(&a, &Purpose::Diagnostics), Some(Request::Diagnostics));
    assert_eq!(sent(&a, &Purpose::Status), Some(Request::Status));
    assert_eq!(report_view(&s).waiting, None);
    // Nothing is made while what waits is still being read.
    assert!(press(&mut s, "enter").is_empty());
    s.answer(Purpose::Diagnostics, Ok(diagnostics(None, capture("idle"))));
    assert_eq!(report_view(&s).waiting, Some(Ok(None)));
    // None waiting: no question, the report is made at once.
    let a = press(&mut s, "enter");
    assert_eq!(sent(&a, &Purpose::Report), Some(Request::DiagnosticsReport));
    assert_eq!(
        s.busy.as_deref(),
        Some("Building the diagnostics report...")
    );
    assert!(press(&mut s, "esc enter").is_empty(), "keys wait");
    s.answer(Purpose::Report, Ok(report_created()));
    assert!(s.busy.is_none());
    let Screen::ReportMade(new) = s.top() else {
        panic!("the result screen")
    };
    assert_eq!(new.password, "k7qm-2xpd-9vtr-b4hn");
    assert_eq!(new.offer, offer());
    // The password is not in the state's Debug (what a panic would print).
    assert!(!format!("{s:?}").contains("k7qm-2xpd-9vtr-b4hn"));
    // ENTER returns to the report screen, which now shows the new one.
    press(&mut s, "enter");
    assert_eq!(report_view(&s).waiting, Some(Ok(Some(offer()))));
    assert!(!format!("{:?}", s.stack).contains("k7qm"));
    press(&mut s, "esc");
    assert_eq!(top_menu(&s), Some(MenuId::Diagnostics));
}

#[test]
fn a_waiting_report_is_replaced_only_after_a_question() {
    let mut s = state();
    press(&mut s, REPORT);
    s.answer(
        Purpose::Diagnostics,
        Ok(diagnostics(Some(offer()), capture("idle"))),
    );
    // The question defaults to No: ENTER sends nothing and returns.
    assert!(press(&mut s, "enter").is_empty());
    assert!(matches!(
        s.top(),
        Screen::Confirm {
            kind: ConfirmKind::ReplaceReport,
            ..
        }
    ));
    assert!(press(&mut s, "enter").is_empty());
    assert!(matches!(s.top(), Screen::Report(_)));
    let a = press(&mut s, "enter left enter");
    assert_eq!(sent(&a, &Purpose::Report), Some(Request::DiagnosticsReport));
    // A refusal is shown in words; the question is gone.
    s.answer(
        Purpose::Report,
        Err(Refusal::new("support key /usr/share/gateway/support-recipient.age.pub: No such file or directory (os error 2)")),
    );
    assert!(s.busy.is_none());
    let Screen::Message(m) = s.top() else {
        panic!("an error message")
    };
    assert!(m.error);
    assert!(m.lines.iter().any(|l| l.contains("support key")));
    press(&mut s, "enter");
    // The report still waiting is still shown.
    assert_eq!(report_view(&s).waiting, Some(Ok(Some(offer()))));
    // Back button.
    press(&mut s, "tab enter");
    assert_eq!(top_menu(&s), Some(MenuId::Diagnostics));
}

#[test]
fn the_report_screen_says_why_it_could_not_read_what_waits() {
    let mut s = state();
    press(&mut s, REPORT);
    s.answer(
        Purpose::Diagnostics,
        Err(Refusal::new("unknown variant `diagnostics`")),
    );
    assert_eq!(
        report_view(&s).waiting,
        Some(Err("unknown variant `diagnostics`".into()))
    );
    // A report can still be asked for.
    let a = press(&mut s, "enter");
    assert!(sent(&a, &Purpose::Report).is_some());
}

#[test]
fn the_capture_screen_starts_refreshes_and_stops_the_capture() {
    let mut s = state();
    let a = press(&mut s, CAPTURE);
    assert_eq!(sent(&a, &Purpose::Diagnostics), Some(Request::Diagnostics));
    assert_eq!(capture_view(&s).status, None);
    assert!(press(&mut s, "enter").is_empty(), "still reading");
    s.answer(Purpose::Diagnostics, Ok(diagnostics(None, capture("idle"))));
    assert!(!capture_view(&s).running());
    // Not running: the ticks leave it alone.
    assert!(sent(&s.tick(), &Purpose::Diagnostics).is_none());
    let a = press(&mut s, "enter");
    assert_eq!(
        sent(&a, &Purpose::CaptureStart),
        Some(Request::CaptureStart { seconds: Some(300) })
    );
    assert!(s.busy.is_some());
    s.answer(
        Purpose::CaptureStart,
        Ok(serde_json::to_value(capture("running")).unwrap()),
    );
    assert!(s.busy.is_none());
    assert!(capture_view(&s).running());
    // Running: every tick asks again, and the answer lands on the screen.
    assert_eq!(
        sent(&s.tick(), &Purpose::Diagnostics),
        Some(Request::Diagnostics)
    );
    let mut later = capture("running");
    later.elapsed_s = 77;
    later.packets = 1_300;
    s.answer(Purpose::Diagnostics, Ok(diagnostics(None, later.clone())));
    assert_eq!(capture_view(&s).status, Some(Ok(later)));
    // The button now stops it.
    let a = press(&mut s, "enter");
    assert_eq!(sent(&a, &Purpose::CaptureStop), Some(Request::CaptureStop));
    s.answer(
        Purpose::CaptureStop,
        Ok(serde_json::to_value(capture("done")).unwrap()),
    );
    assert!(!capture_view(&s).running());
    assert!(sent(&s.tick(), &Purpose::Diagnostics).is_none());
    press(&mut s, "esc");
    assert_eq!(top_menu(&s), Some(MenuId::Diagnostics));
    // An answer for a screen that was left changes nothing.
    let before = s.clone();
    s.answer(Purpose::Diagnostics, Ok(diagnostics(None, capture("idle"))));
    assert_eq!(s, before);
}

#[test]
fn a_refused_capture_is_said_in_words_and_the_status_read_again() {
    let mut s = state();
    press(&mut s, CAPTURE);
    s.answer(Purpose::Diagnostics, Ok(diagnostics(None, capture("idle"))));
    press(&mut s, "enter");
    let a = s.answer(
        Purpose::CaptureStart,
        Err(Refusal::new(
            "a capture is already running: stop it first (capture_stop)",
        )),
    );
    assert_eq!(sent(&a, &Purpose::Diagnostics), Some(Request::Diagnostics));
    let Screen::Message(m) = s.top() else {
        panic!("an error message")
    };
    assert!(m.error);
    assert_eq!(m.lines[0], "The capture could not be started:");
    assert!(m.lines[1].starts_with("a capture is already running"));
    // The status read meanwhile lands on the capture screen under it.
    s.answer(
        Purpose::Diagnostics,
        Ok(diagnostics(None, capture("running"))),
    );
    press(&mut s, "enter");
    assert!(capture_view(&s).running());
    // Back, by its button.
    press(&mut s, "right enter");
    assert_eq!(top_menu(&s), Some(MenuId::Diagnostics));
}
