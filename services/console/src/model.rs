//! The console's navigation model, sans-IO: a [`State`] takes a [`Key`], an
//! answer of the control API or a tick of the clock, changes, and returns
//! the requests to send ([`Action`]). Screens are a stack: Back (Esc) pops
//! one. Rendering ([`crate::view`]) reads the state and changes nothing.

use std::collections::BTreeMap;

use gateway_control::protocol::{
    CaInfo, CaptureStatus, DiagnosticsStatus, LogLines, PingResult, PlatformStatus,
    ProxyTestResult, ReportCreated, ReportOffer, Request, SetResult, Stats, Status,
    MAX_CAPTURE_SECONDS,
};

use crate::form::{Form, FormFocus, FormKind};
use crate::logs::LogView;
use crate::menu::{ConfirmKind, Go, MenuId};

/// Why a request failed: the appliance's refusal (naming a key when a
/// setting is at fault), or why the socket could not be used.
pub use gateway_control::protocol::ApiError as Refusal;

pub use crate::key::Key;

/// What an answer is for, so it lands on the right screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// The status, for the title bar, Info and Units (refreshed on ticks).
    Status,
    /// Every key's value, to fill the forms.
    Config,
    /// A `set` (or reset network) from a form or a choice.
    Save,
    Restart(String),
    Logs(String),
    Stats,
    /// The appliance CA, for the Certificate screen.
    Ca,
    /// The platform status, quietly, for Info.
    Platform,
    /// A connectivity check, for its screen.
    Connectivity,
    /// The upstream proxy test, for its screen.
    ProxyTest,
    /// A registration with a personalization code.
    Register,
    Ping,
    /// The report waiting and the upstream capture, for the Report and
    /// Capture screens (refreshed on ticks while a capture runs).
    Diagnostics,
    /// A new diagnostics report.
    Report,
    CaptureStart,
    CaptureStop,
    /// Reboot, power-off, reset appliance.
    Power(ConfirmKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Call(Purpose, Request),
}

/// The two buttons under a list: OK (or Yes) and Back (or No).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Ok,
    Back,
}

impl Button {
    fn other(self) -> Button {
        match self {
            Button::Ok => Button::Back,
            Button::Back => Button::Ok,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    pub id: MenuId,
    pub selected: usize,
    pub button: Button,
}

/// What a radio list sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceKind {
    NetMode,
    Ssh,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub kind: ChoiceKind,
    pub options: Vec<&'static str>,
    pub cursor: usize,
    /// The option marked (*).
    pub chosen: usize,
    pub button: Option<Button>,
}

impl ChoiceKind {
    pub fn title(self) -> &'static str {
        match self {
            ChoiceKind::NetMode => "Network interface configuration",
            ChoiceKind::Ssh => "SSH access",
        }
    }

    fn options(self) -> Vec<&'static str> {
        match self {
            ChoiceKind::NetMode => vec!["DHCP", "Static", "Unconfigured"],
            ChoiceKind::Ssh => vec!["Enabled", "Disabled"],
        }
    }

    fn current(self, config: &BTreeMap<String, String>) -> usize {
        let get = |k: &str| config.get(k).map(String::as_str).unwrap_or_default();
        match self {
            ChoiceKind::NetMode => match get("net.mode") {
                "static" => 1,
                "unconfigured" => 2,
                _ => 0,
            },
            ChoiceKind::Ssh => usize::from(get("ssh.enabled") != "true"),
        }
    }
}

/// Diagnostics > Report: the report waiting for download, and a button to
/// make a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportView {
    /// `None` while the appliance is asked; then the report waiting (if
    /// any), or why it could not be read.
    pub waiting: Option<Result<Option<ReportOffer>, String>>,
    /// `Ok` is "Generate report".
    pub button: Button,
}

/// A report just made, with its one-time password. The password lives
/// only here, for the screen: it is dropped when the screen closes, and
/// `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewReport {
    pub offer: ReportOffer,
    pub password: String,
}

impl std::fmt::Debug for NewReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewReport")
            .field("offer", &self.offer)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Diagnostics > Capture: the upstream capture's status, and a button to
/// start it (or stop it while it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureView {
    /// `None` while the appliance is asked; then the capture, or why it
    /// could not be read.
    pub status: Option<Result<CaptureStatus, String>>,
    /// `Ok` is "Start capture" or, while one runs, "Stop capture".
    pub button: Button,
}

impl CaptureView {
    pub fn running(&self) -> bool {
        matches!(&self.status, Some(Ok(c)) if c.state == "running")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub title: String,
    pub lines: Vec<String>,
    pub error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    Menu(Menu),
    Choice(Choice),
    Form(Form),
    Info {
        scroll: usize,
    },
    Units {
        selected: usize,
        button: Button,
    },
    Logs(LogView),
    Stats(Result<Stats, String>),
    Ping(PingResult),
    Report(ReportView),
    /// A report just made: how to download it, with its password.
    ReportMade(NewReport),
    Capture(CaptureView),
    Confirm {
        kind: ConfirmKind,
        button: Button,
    },
    Message(Message),
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub stack: Vec<Screen>,
    pub status: Option<Status>,
    /// The management agent's view of the platform (Info), when it answers.
    pub platform: Option<PlatformStatus>,
    /// Why the status could not be read, when it could not.
    pub status_error: Option<String>,
    pub config: BTreeMap<String, String>,
    /// A request is on its way: what the screen says while it waits.
    pub busy: Option<String>,
    /// The terminal's size, for paging.
    pub rows: u16,
}

fn call(purpose: Purpose, request: Request) -> Vec<Action> {
    vec![Action::Call(purpose, request)]
}

/// The proxy test: where it went, then a line per step.
pub fn proxy_test_lines(r: &ProxyTestResult) -> Vec<String> {
    let mut lines = vec![
        format!("Through the upstream proxy {}", r.proxy),
        format!("to {}:", r.target),
        String::new(),
    ];
    for s in &r.steps {
        lines.push(format!(
            "{} {}: {}",
            if s.ok { "OK  " } else { "FAIL" },
            s.what,
            s.result
        ));
    }
    lines.push(String::new());
    lines.push(
        if r.ok {
            "The platform is reachable through the proxy."
        } else {
            "The platform is not reachable through the proxy."
        }
        .to_owned(),
    );
    lines
}

/// One line per platform URL and what reaching it gave, then how many
/// could not be reached.
pub fn connectivity_lines(p: &PlatformStatus) -> Vec<String> {
    if p.connectivity.is_empty() {
        return vec![match &p.pod {
            None => "No POD suffix: set it in System > POD Suffix.".to_owned(),
            Some(_) => "Nothing was checked.".to_owned(),
        }];
    }
    let mut lines: Vec<String> = p
        .connectivity
        .iter()
        .map(|c| {
            format!(
                "{} {}: {}",
                if c.ok { "OK  " } else { "FAIL" },
                c.url,
                c.result
            )
        })
        .collect();
    let failed = p.connectivity.iter().filter(|c| !c.ok).count();
    lines.push(String::new());
    lines.push(match failed {
        0 => "Every platform service is reachable.".to_owned(),
        n => format!(
            "{n} of {} platform services are not reachable.",
            p.connectivity.len()
        ),
    });
    lines
}

/// Whether a connectivity check leaves something to fix: a service not
/// reachable, or nothing checked at all.
fn connectivity_failed(p: &PlatformStatus) -> bool {
    p.connectivity.is_empty() || p.connectivity.iter().any(|c| !c.ok)
}

/// What the Certificate screen says: what the CA is for, its fingerprint
/// (to compare with what an agent's system shows), how to export it, and
/// the PEM itself.
pub fn ca_lines(ca: &CaInfo) -> Vec<String> {
    let mut lines = vec![
        "Agents using the cache port (8080) trust this CA.".to_owned(),
        "SHA-256 fingerprint:".to_owned(),
        ca.fingerprint_sha256.clone(),
        "Export it with: gatewayctl ca-export > appliance-ca.pem".to_owned(),
        String::new(),
    ];
    lines.extend(ca.pem.lines().map(str::to_owned));
    lines
}

fn message(title: &str, lines: Vec<String>, error: bool) -> Screen {
    Screen::Message(Message {
        title: title.to_owned(),
        lines,
        error,
    })
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    pub fn new() -> State {
        State {
            stack: vec![Screen::Menu(Menu {
                id: MenuId::Main,
                selected: 0,
                button: Button::Ok,
            })],
            status: None,
            platform: None,
            status_error: None,
            config: BTreeMap::new(),
            busy: None,
            rows: 25,
        }
    }

    /// What to ask for when the console starts.
    pub fn start(&self) -> Vec<Action> {
        let mut a = call(Purpose::Status, Request::Status);
        a.extend(call(Purpose::Config, Request::Get { keys: vec![] }));
        a.extend(call(Purpose::Platform, Request::Platform { check: false }));
        a
    }

    pub fn top(&self) -> &Screen {
        self.stack.last().expect("the main menu is never popped")
    }

    fn top_mut(&mut self) -> &mut Screen {
        self.stack
            .last_mut()
            .expect("the main menu is never popped")
    }

    fn back(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
    }

    /// Every few seconds: the status again, the stats on their screen and
    /// the upstream capture on its screen while it runs.
    pub fn tick(&mut self) -> Vec<Action> {
        if self.busy.is_some() {
            return vec![];
        }
        let mut a = call(Purpose::Status, Request::Status);
        a.extend(call(Purpose::Platform, Request::Platform { check: false }));
        match self.top() {
            Screen::Stats(_) => a.extend(call(Purpose::Stats, Request::Stats)),
            // The elapsed time and the packets move while it runs.
            Screen::Capture(c) if c.running() => {
                a.extend(call(Purpose::Diagnostics, Request::Diagnostics))
            }
            _ => {}
        }
        a
    }

    /// Lines a page of a long screen holds.
    pub fn page(&self) -> usize {
        usize::from(self.rows.saturating_sub(10)).max(1)
    }

    pub fn key(&mut self, key: Key) -> Vec<Action> {
        if self.busy.is_some() {
            return vec![];
        }
        let page = self.page();
        let units = self.status.as_ref().map_or(0, |s| s.units.len());
        let status = self.status.clone();
        match self.top_mut() {
            Screen::Menu(menu) => {
                let id = menu.id;
                let n = id.items(status.as_ref()).len();
                match key {
                    Key::Up => menu.selected = (menu.selected + n - 1) % n.max(1),
                    Key::Down => menu.selected = (menu.selected + 1) % n.max(1),
                    Key::Tab | Key::BackTab | Key::Left | Key::Right if id.has_back() => {
                        menu.button = menu.button.other()
                    }
                    Key::Esc => self.back(),
                    Key::Enter if menu.button == Button::Back => self.back(),
                    Key::Enter => {
                        let items = id.items(status.as_ref());
                        if let Some(item) = items.get(menu.selected) {
                            return self.open(item.go.clone());
                        }
                    }
                    _ => {}
                }
            }
            Screen::Choice(choice) => {
                let n = choice.options.len();
                match (key, choice.button) {
                    (Key::Up, _) => choice.cursor = (choice.cursor + n - 1) % n,
                    (Key::Down, _) => choice.cursor = (choice.cursor + 1) % n,
                    (Key::Char(' '), _) => choice.chosen = choice.cursor,
                    (Key::Tab | Key::Right, None) => choice.button = Some(Button::Ok),
                    (Key::Tab | Key::Right, Some(Button::Ok)) => choice.button = Some(Button::Back),
                    (Key::Tab | Key::Right, Some(Button::Back)) => choice.button = None,
                    (Key::BackTab | Key::Left, b) => {
                        choice.button = match b {
                            None => Some(Button::Back),
                            Some(Button::Back) => Some(Button::Ok),
                            Some(Button::Ok) => None,
                        }
                    }
                    (Key::Esc, _) | (Key::Enter, Some(Button::Back)) => self.back(),
                    (Key::Enter, b) => {
                        if b.is_none() {
                            // ENTER on the list takes the line it is on.
                            choice.chosen = choice.cursor;
                        }
                        let (kind, chosen) = (choice.kind, choice.chosen);
                        return self.choose(kind, chosen);
                    }
                    _ => {}
                }
            }
            Screen::Form(form) => match form_key(form, key) {
                None => self.back(),
                Some(true) => return self.submit(),
                Some(false) => {}
            },
            Screen::Info { scroll } => match key {
                Key::Up => *scroll = scroll.saturating_sub(1),
                Key::Down => *scroll += 1,
                Key::PageUp => *scroll = scroll.saturating_sub(page),
                Key::PageDown => *scroll += page,
                Key::Enter | Key::Esc => self.back(),
                _ => {}
            },
            Screen::Units { selected, button } => match key {
                Key::Up => *selected = selected.saturating_sub(1),
                Key::Down => *selected = (*selected + 1).min(units.saturating_sub(1)),
                Key::Tab | Key::BackTab | Key::Left | Key::Right => *button = button.other(),
                Key::Esc => self.back(),
                Key::Enter if *button == Button::Back => self.back(),
                Key::Enter => {
                    let name = status
                        .as_ref()
                        .and_then(|s| s.units.get(*selected))
                        .map(|u| u.name.clone());
                    if let Some(name) = name {
                        return self.open(Go::Confirm(ConfirmKind::RestartUnit(name)));
                    }
                }
                _ => {}
            },
            Screen::Logs(view) => {
                if view.key(key, page) {
                    self.back();
                }
            }
            Screen::Report(view) => match key {
                Key::Tab | Key::BackTab | Key::Left | Key::Right => {
                    view.button = view.button.other()
                }
                Key::Esc => self.back(),
                Key::Enter if view.button == Button::Back => self.back(),
                Key::Enter => match &view.waiting {
                    // Still asking what is waiting.
                    None => {}
                    Some(Ok(Some(_))) => {
                        return self.open(Go::Confirm(ConfirmKind::ReplaceReport));
                    }
                    Some(_) => return self.make_report(),
                },
                _ => {}
            },
            Screen::Capture(view) => match key {
                Key::Tab | Key::BackTab | Key::Left | Key::Right => {
                    view.button = view.button.other()
                }
                Key::Esc => self.back(),
                Key::Enter if view.button == Button::Back => self.back(),
                Key::Enter if view.status.is_none() => {}
                Key::Enter if view.running() => {
                    self.busy = Some("Stopping the capture...".into());
                    return call(Purpose::CaptureStop, Request::CaptureStop);
                }
                Key::Enter => {
                    self.busy = Some("Starting the capture...".into());
                    return call(
                        Purpose::CaptureStart,
                        Request::CaptureStart {
                            seconds: Some(MAX_CAPTURE_SECONDS),
                        },
                    );
                }
                _ => {}
            },
            Screen::Stats(_) | Screen::Ping(_) | Screen::ReportMade(_) | Screen::Message(_) => {
                if matches!(key, Key::Enter | Key::Esc) {
                    self.back();
                }
            }
            Screen::Confirm { kind, button } => match key {
                Key::Tab | Key::BackTab | Key::Left | Key::Right => *button = button.other(),
                Key::Char('y' | 'Y') => *button = Button::Ok,
                Key::Char('n' | 'N') => *button = Button::Back,
                Key::Esc => self.back(),
                Key::Enter if *button == Button::Back => self.back(),
                Key::Enter => {
                    let kind = kind.clone();
                    return self.confirmed(kind);
                }
                _ => {}
            },
        }
        vec![]
    }

    /// Opens what a menu entry leads to.
    fn open(&mut self, go: Go) -> Vec<Action> {
        match go {
            Go::Menu(id) => {
                self.stack.push(Screen::Menu(Menu {
                    id,
                    selected: 0,
                    button: Button::Ok,
                }));
                if id == MenuId::LogPick {
                    return call(Purpose::Status, Request::Status);
                }
            }
            Go::ProxyTest => {
                self.busy = Some("Testing the upstream proxy...".into());
                return call(Purpose::ProxyTest, Request::ProxyTest);
            }
            Go::NetMode => self.push_choice(ChoiceKind::NetMode),
            Go::Ssh => self.push_choice(ChoiceKind::Ssh),
            Go::Form(kind) => self.stack.push(Screen::Form(Form::new(kind, &self.config))),
            Go::Info => {
                self.stack.push(Screen::Info { scroll: 0 });
                let mut a = call(Purpose::Status, Request::Status);
                a.extend(call(Purpose::Config, Request::Get { keys: vec![] }));
                return a;
            }
            Go::Units => {
                self.stack.push(Screen::Units {
                    selected: 0,
                    button: Button::Ok,
                });
                return call(Purpose::Status, Request::Status);
            }
            Go::Log(name) => {
                self.busy = Some(format!("Reading the log {name}..."));
                return call(
                    Purpose::Logs(name.clone()),
                    Request::Logs {
                        name,
                        lines: Some(2000),
                        search: None,
                    },
                );
            }
            Go::Stats => {
                self.stack
                    .push(Screen::Stats(Err("Reading the statistics...".into())));
                return call(Purpose::Stats, Request::Stats);
            }
            Go::Connectivity => {
                self.busy = Some("Checking each platform service...".into());
                return call(Purpose::Connectivity, Request::Platform { check: true });
            }
            Go::Ca => {
                self.busy = Some("Reading the appliance CA...".into());
                return call(Purpose::Ca, Request::CaExport);
            }
            Go::Report => {
                self.stack.push(Screen::Report(ReportView {
                    waiting: None,
                    button: Button::Ok,
                }));
                // The status too: the download command names eth0's address.
                let mut a = call(Purpose::Diagnostics, Request::Diagnostics);
                a.extend(call(Purpose::Status, Request::Status));
                return a;
            }
            Go::Capture => {
                self.stack.push(Screen::Capture(CaptureView {
                    status: None,
                    button: Button::Ok,
                }));
                return call(Purpose::Diagnostics, Request::Diagnostics);
            }
            Go::Confirm(kind) => self.stack.push(Screen::Confirm {
                kind,
                // The safe answer is the default.
                button: Button::Back,
            }),
        }
        vec![]
    }

    /// Builds a new diagnostics report (it replaces the one waiting).
    fn make_report(&mut self) -> Vec<Action> {
        self.busy = Some("Building the diagnostics report...".into());
        call(Purpose::Report, Request::DiagnosticsReport)
    }

    fn push_choice(&mut self, kind: ChoiceKind) {
        let current = kind.current(&self.config);
        self.stack.push(Screen::Choice(Choice {
            kind,
            options: kind.options(),
            cursor: current,
            chosen: current,
            button: None,
        }));
    }

    fn save(&mut self, values: Vec<(String, String)>) -> Vec<Action> {
        self.busy = Some("Saving...".into());
        call(
            Purpose::Save,
            Request::Set {
                values: values.into_iter().collect(),
            },
        )
    }

    fn choose(&mut self, kind: ChoiceKind, chosen: usize) -> Vec<Action> {
        match (kind, chosen) {
            (ChoiceKind::NetMode, 1) => {
                self.stack
                    .push(Screen::Form(Form::new(FormKind::Static, &self.config)));
                vec![]
            }
            (ChoiceKind::NetMode, n) => {
                let mode = if n == 0 { "dhcp" } else { "unconfigured" };
                self.save(vec![("net.mode".into(), mode.into())])
            }
            (ChoiceKind::Ssh, n) => {
                let enabled = if n == 0 { "true" } else { "false" };
                self.save(vec![("ssh.enabled".into(), enabled.into())])
            }
        }
    }

    /// OK on a form: checked, then sent; nothing is sent while a field is
    /// wrong.
    fn submit(&mut self) -> Vec<Action> {
        let Screen::Form(form) = self.top_mut() else {
            return vec![];
        };
        form.touched = true;
        let Some(changes) = form.check() else {
            return vec![];
        };
        if form.kind == FormKind::Register {
            let code = form.target();
            self.busy = Some(
                "Registering: checking the platform services, then sending the code...".into(),
            );
            return call(Purpose::Register, Request::Register { code });
        }
        if form.kind == FormKind::Ping {
            let target = form.target();
            self.busy = Some(format!("Pinging {target} (4 packets)..."));
            return call(
                Purpose::Ping,
                Request::Ping {
                    target,
                    count: Some(4),
                },
            );
        }
        self.save(changes)
    }

    fn confirmed(&mut self, kind: ConfirmKind) -> Vec<Action> {
        let (request, waiting) = match &kind {
            ConfirmKind::Reboot => (Request::Reboot, "Rebooting..."),
            ConfirmKind::Shutdown => (Request::Poweroff, "Shutting down..."),
            ConfirmKind::ResetAppliance => (Request::ResetAppliance, "Resetting the appliance..."),
            ConfirmKind::ResetNetwork => {
                self.busy = Some("Resetting the network interface...".into());
                return call(Purpose::Save, Request::ResetNetwork);
            }
            ConfirmKind::RestartUnit(name) => {
                self.busy = Some(format!("Restarting {name}..."));
                return call(
                    Purpose::Restart(name.clone()),
                    Request::RestartUnit { name: name.clone() },
                );
            }
            ConfirmKind::ReplaceReport => return self.make_report(),
        };
        self.busy = Some(waiting.into());
        call(Purpose::Power(kind), request)
    }

    /// An answer of the control API: the result, or the refusal in words.
    pub fn answer(
        &mut self,
        purpose: Purpose,
        result: Result<serde_json::Value, Refusal>,
    ) -> Vec<Action> {
        fn decode<T: serde::de::DeserializeOwned>(
            r: Result<serde_json::Value, Refusal>,
        ) -> Result<T, Refusal> {
            r.and_then(|v| {
                serde_json::from_value(v)
                    .map_err(|e| Refusal::new(format!("unexpected answer: {e}")))
            })
        }
        match purpose {
            Purpose::Status => match decode::<Status>(result) {
                Ok(s) => {
                    self.status = Some(s);
                    self.status_error = None;
                }
                Err(e) => self.status_error = Some(e.message),
            },
            Purpose::Config => {
                if let Ok(c) = decode::<BTreeMap<String, String>>(result) {
                    self.config = c;
                }
            }
            Purpose::Save => {
                self.busy = None;
                return self.saved(decode::<SetResult>(result));
            }
            Purpose::Restart(name) => {
                self.busy = None;
                self.back();
                let m = match result {
                    Ok(_) => message(
                        "Units",
                        vec![format!("The unit {name} was asked to start again.")],
                        false,
                    ),
                    Err(e) => message(
                        "Units",
                        vec![
                            format!("The unit {name} could not be restarted:"),
                            e.to_string(),
                        ],
                        true,
                    ),
                };
                self.stack.push(m);
                return call(Purpose::Status, Request::Status);
            }
            Purpose::Logs(name) => {
                self.busy = None;
                match decode::<LogLines>(result) {
                    Ok(l) => self.stack.push(Screen::Logs(LogView::new(name, l.lines))),
                    Err(e) => self.stack.push(message("Logs", vec![e.to_string()], true)),
                }
            }
            Purpose::Stats => {
                if let Screen::Stats(s) = self.top_mut() {
                    *s = decode::<Stats>(result).map_err(|e| e.to_string());
                }
            }
            Purpose::Platform => self.platform = decode::<PlatformStatus>(result).ok(),
            Purpose::Connectivity => {
                self.busy = None;
                let screen = match decode::<PlatformStatus>(result) {
                    Ok(p) => {
                        let (lines, failed) = (connectivity_lines(&p), connectivity_failed(&p));
                        self.platform = Some(p);
                        message("Connectivity", lines, failed)
                    }
                    Err(e) => message("Connectivity", vec![e.to_string()], true),
                };
                self.stack.push(screen);
            }
            Purpose::ProxyTest => {
                self.busy = None;
                let screen = match decode::<ProxyTestResult>(result) {
                    Ok(r) => message("Proxy test", proxy_test_lines(&r), !r.ok),
                    Err(e) => message("Proxy test", vec![e.to_string()], true),
                };
                self.stack.push(screen);
            }
            Purpose::Register => {
                self.busy = None;
                let screen = match decode::<PlatformStatus>(result) {
                    Ok(p) => {
                        let given =
                            |v: &Option<String>| v.clone().unwrap_or_else(|| "not given".into());
                        let lines = vec![
                            "The appliance is registered.".to_owned(),
                            format!("Appliance ID   : {}", given(&p.appliance_id)),
                            format!("Appliance Name : {}", given(&p.appliance_name)),
                        ];
                        self.platform = Some(p);
                        // The form goes: back to the main menu.
                        self.back();
                        message("Registration", lines, false)
                    }
                    // Over the form, which keeps the code to correct it.
                    Err(e) => message(
                        "Registration",
                        vec![
                            "The appliance was not registered:".to_owned(),
                            e.to_string(),
                        ],
                        true,
                    ),
                };
                self.stack.push(screen);
            }
            Purpose::Ca => {
                self.busy = None;
                let screen = match decode::<CaInfo>(result) {
                    Ok(ca) => message("Appliance CA", ca_lines(&ca), false),
                    Err(e) => message("Appliance CA", vec![e.to_string()], true),
                };
                self.stack.push(screen);
            }
            Purpose::Ping => {
                self.busy = None;
                match decode::<PingResult>(result) {
                    Ok(p) => self.stack.push(Screen::Ping(p)),
                    Err(e) => self.stack.push(message("Ping", vec![e.to_string()], true)),
                }
            }
            Purpose::Diagnostics => {
                let d = decode::<DiagnosticsStatus>(result).map_err(|e| e.to_string());
                // The screen may be under a message or a question; once a
                // menu is on top, it was left meanwhile.
                let screen = self
                    .stack
                    .iter_mut()
                    .rev()
                    .take_while(|s| !matches!(s, Screen::Menu(_)))
                    .find(|s| matches!(s, Screen::Report(_) | Screen::Capture(_)));
                match screen {
                    Some(Screen::Report(view)) => view.waiting = Some(d.map(|d| d.report)),
                    Some(Screen::Capture(view)) => view.status = Some(d.map(|d| d.capture)),
                    _ => {}
                }
            }
            Purpose::Report => {
                self.busy = None;
                if matches!(self.top(), Screen::Confirm { .. }) {
                    self.back();
                }
                match decode::<ReportCreated>(result) {
                    Ok(r) => {
                        if let Screen::Report(view) = self.top_mut() {
                            view.waiting = Some(Ok(Some(r.offer.clone())));
                        }
                        self.stack.push(Screen::ReportMade(NewReport {
                            offer: r.offer,
                            password: r.password,
                        }));
                    }
                    Err(e) => self.stack.push(message(
                        "Diagnostics report",
                        vec![
                            "The diagnostics report could not be made:".to_owned(),
                            e.to_string(),
                        ],
                        true,
                    )),
                }
            }
            Purpose::CaptureStart | Purpose::CaptureStop => {
                self.busy = None;
                match decode::<CaptureStatus>(result) {
                    Ok(c) => {
                        if let Screen::Capture(view) = self.top_mut() {
                            view.status = Some(Ok(c));
                        }
                    }
                    Err(e) => {
                        let what = if purpose == Purpose::CaptureStart {
                            "The capture could not be started:"
                        } else {
                            "The capture could not be stopped:"
                        };
                        self.stack.push(message(
                            "Upstream capture",
                            vec![what.to_owned(), e.to_string()],
                            true,
                        ));
                        // What the capture is doing now, under the message.
                        return call(Purpose::Diagnostics, Request::Diagnostics);
                    }
                }
            }
            Purpose::Power(kind) => match result {
                // The appliance stops in a moment: say what happens meanwhile.
                Ok(_) => {
                    self.busy = Some(match kind {
                        ConfirmKind::Shutdown => "Shutting down: the appliance powers off.".into(),
                        _ => "Rebooting: the console comes back after the boot.".into(),
                    })
                }
                Err(e) => {
                    self.busy = None;
                    self.back();
                    self.stack
                        .push(message(&kind.title(), vec![e.to_string()], true));
                }
            },
        }
        vec![]
    }

    fn saved(&mut self, result: Result<SetResult, Refusal>) -> Vec<Action> {
        match result {
            Ok(r) => {
                // Back to the menu the change was made from.
                while !matches!(self.top(), Screen::Menu(_)) {
                    self.stack.pop();
                }
                let mut lines = if r.changed.is_empty() {
                    vec!["Nothing changed.".to_owned()]
                } else {
                    vec![format!("Saved: {}.", r.changed.join(", "))]
                };
                lines.extend(r.applied.iter().map(|a| format!("Applied: {a}.")));
                self.stack.push(message("Saved", lines, false));
                let mut a = call(Purpose::Config, Request::Get { keys: vec![] });
                a.extend(call(Purpose::Status, Request::Status));
                a
            }
            Err(e) => {
                match (self.top_mut(), &e.key) {
                    (Screen::Form(form), Some(key)) => form.refused(key, e.message),
                    (Screen::Form(form), None) => form.error = Some(e.message),
                    _ => self
                        .stack
                        .push(message("Not saved", vec![e.to_string()], true)),
                }
                vec![]
            }
        }
    }
}

/// A key in a form: `Some(true)` submits, `Some(false)` stays, `None` goes
/// back.
fn form_key(form: &mut Form, key: Key) -> Option<bool> {
    match (key, form.focus) {
        (Key::Esc, _) | (Key::Enter, FormFocus::Back) => return None,
        (Key::Enter, _) => return Some(true),
        (Key::Tab | Key::Down, _) => form.move_focus(true),
        (Key::BackTab | Key::Up, _) => form.move_focus(false),
        (Key::Left | Key::Right, FormFocus::Ok) => form.focus = FormFocus::Back,
        (Key::Left | Key::Right, FormFocus::Back) => form.focus = FormFocus::Ok,
        (key, FormFocus::Field(_)) => {
            let Some(field) = form.field_mut() else {
                return Some(false);
            };
            match key {
                Key::Char(c) => field.insert(c),
                Key::Backspace => field.backspace(),
                Key::Delete => field.delete(),
                Key::Left => field.left(),
                Key::Right => field.right(),
                Key::Home => field.home(),
                Key::End => field.end(),
                _ => return Some(false),
            }
            if matches!(key, Key::Char(_) | Key::Backspace | Key::Delete) {
                form.edited();
            }
        }
        _ => {}
    }
    Some(false)
}
