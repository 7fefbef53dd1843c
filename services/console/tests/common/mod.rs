//! Fixtures for the console's tests: a status and a configuration as the
//! appliance gives them, key presses by name, and screens as text.

#![allow(dead_code)]

use std::collections::BTreeMap;

use gateway_console::model::{Action, Key, Purpose, State};
use gateway_control::protocol::{
    DnsStatus, LeaseStatus, NetworkStatus, Status, TimeStatus, UnitStatus,
};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

pub fn status() -> Status {
    Status {
        version: "0.1.0".into(),
        hostname: "gateway".into(),
        uptime_s: 4000,
        storage: "persistent".into(),
        network: NetworkStatus {
            interface: "eth0".into(),
            mode: "dhcp".into(),
            mac: Some("52:54:00:12:34:56".into()),
            carrier: true,
            address: Some("10.0.2.15/24".into()),
            gateway: Some("10.0.2.2".into()),
            lease: Some(LeaseStatus {
                server: "10.0.2.2".into(),
                age_s: 30,
                expires_in_s: Some(86370),
            }),
            state: "lease from 10.0.2.2".into(),
        },
        dns: DnsStatus {
            servers: vec!["10.0.2.3".into()],
            search: None,
            source: "dhcp".into(),
        },
        time: TimeStatus {
            now_unix: 1_795_219_200,
            synchronized: true,
            servers: vec!["10.0.2.2".into()],
            server: Some("10.0.2.2".into()),
            offset_ms: Some(0.4),
            last_sync_age_s: Some(12),
            state: "synchronised".into(),
        },
        units: vec![
            UnitStatus {
                name: "proxy".into(),
                state: "active".into(),
                detail: "running, pid 212".into(),
            },
            UnitStatus {
                name: "console-tty1".into(),
                state: "active".into(),
                detail: "running, pid 213".into(),
            },
        ],
        disks: vec![],
        warnings: vec![],
        notes: vec![],
    }
}

pub fn config() -> BTreeMap<String, String> {
    [
        ("net.mode", "dhcp"),
        ("net.address", ""),
        ("net.gateway", ""),
        ("dns.servers", ""),
        ("dns.search", ""),
        ("ntp.servers", ""),
        ("upstream.proxy", ""),
        ("upstream.user", ""),
        ("upstream.password", ""),
        ("platform.pod", ""),
        ("ssh.enabled", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A console that has its status and configuration.
pub fn state() -> State {
    let mut s = State::new();
    s.status = Some(status());
    s.config = config();
    s
}

/// A console whose configuration has an upstream proxy with a user and a
/// (masked) password already set.
pub fn state_with_upstream() -> State {
    let mut s = state();
    s.config.insert(
        "upstream.proxy".into(),
        "proxy.corp.example.com:3128".into(),
    );
    s.config.insert("upstream.user".into(), "agent".into());
    s.config
        .insert("upstream.password".into(), "********".into());
    s
}

/// Presses keys named by words: `down`, `enter`, `tab`, `esc`, `space`,
/// `bs`, ... or `"text"` for each character of the text.
pub fn press(state: &mut State, keys: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    for word in keys.split_whitespace() {
        if let Some(text) = word.strip_prefix('"') {
            for c in text.trim_end_matches('"').chars() {
                actions.extend(state.key(Key::Char(c)));
            }
            continue;
        }
        let key = match word {
            "up" => Key::Up,
            "down" => Key::Down,
            "left" => Key::Left,
            "right" => Key::Right,
            "enter" => Key::Enter,
            "esc" => Key::Esc,
            "tab" => Key::Tab,
            "backtab" => Key::BackTab,
            "space" => Key::Char(' '),
            "bs" => Key::Backspace,
            "del" => Key::Delete,
            "home" => Key::Home,
            "end" => Key::End,
            "pgup" => Key::PageUp,
            "pgdn" => Key::PageDown,
            other if other.chars().count() == 1 => Key::Char(other.chars().next().unwrap()),
            other => panic!("unknown key {other}"),
        };
        actions.extend(state.key(key));
    }
    actions
}

/// The first request among `actions` for `purpose`.
pub fn sent(actions: &[Action], purpose: &Purpose) -> Option<gateway_control::Request> {
    actions
        .iter()
        .find_map(|Action::Call(p, r)| (p == purpose).then(|| r.clone()))
}

/// The screen at 80x25 as text, trailing blanks trimmed.
pub fn screen(state: &State) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 25)).unwrap();
    terminal
        .draw(|f| gateway_console::view::render(f, state))
        .unwrap();
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A report waiting for download, made at the fixture's status time.
pub fn offer() -> gateway_control::protocol::ReportOffer {
    gateway_control::protocol::ReportOffer {
        file: "gateway-diagnostics-gateway-20261121T000000Z.tar.gz.age".into(),
        size_bytes: 183_502,
        created_unix: 1_795_219_200,
        expires_unix: 1_795_219_200 + 86_400,
        user: "diagnostics".into(),
        port: 22,
        host_key_fingerprint: Some("SHA256:Wq3Hc0Z5mQe8v1nJtYb2pK7xL4sD9fGhR6uA0cVwEiM".into()),
    }
}

/// A new report's answer, with a fixed fake password.
pub fn report_created() -> serde_json::Value {
    serde_json::to_value(gateway_control::protocol::ReportCreated {
        offer: offer(),
        password: "k7qm-2xpd-9vtr-b4hn".into(),
        recipient: "age1supportkeyfortests".into(),
        contents: vec!["status.json".into(), "logs/init.log".into()],
    })
    .unwrap()
}

/// The upstream capture in `state` ("idle", "running", "done", "failed").
pub fn capture(state: &str) -> gateway_control::protocol::CaptureStatus {
    use gateway_control::protocol::CaptureStatus;
    let hop = "eth0, next hop 10.0.2.2 52:55:0a:00:02:02";
    match state {
        "idle" => CaptureStatus {
            state: "idle".into(),
            ..Default::default()
        },
        "running" => CaptureStatus {
            state: "running".into(),
            started_unix: 1_795_219_200,
            seconds: 300,
            elapsed_s: 72,
            packets: 1_234,
            bytes: 345_678,
            detail: hop.into(),
            file: None,
        },
        "done" => CaptureStatus {
            state: "done".into(),
            started_unix: 1_795_219_200,
            seconds: 300,
            elapsed_s: 300,
            packets: 5_012,
            bytes: 3_456_789,
            detail: format!("{hop}; time is up"),
            file: Some("/var/lib/gateway/diagnostics/upstream.pcap".into()),
        },
        "failed" => CaptureStatus {
            state: "failed".into(),
            started_unix: 1_795_219_200,
            seconds: 300,
            elapsed_s: 0,
            packets: 0,
            bytes: 0,
            detail: "eth0: packet socket: Operation not permitted (os error 1)".into(),
            file: Some("/var/lib/gateway/diagnostics/upstream.pcap".into()),
        },
        other => panic!("no capture fixture {other}"),
    }
}

/// The answer to `diagnostics`.
pub fn diagnostics(
    report: Option<gateway_control::protocol::ReportOffer>,
    capture: gateway_control::protocol::CaptureStatus,
) -> serde_json::Value {
    serde_json::to_value(gateway_control::protocol::DiagnosticsStatus { report, capture }).unwrap()
}
