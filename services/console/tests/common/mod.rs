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
