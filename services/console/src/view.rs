//! Drawing: a pure function of the [`State`]. Two header lines (the
//! product and eth0's address; the keys), then the top screen as a dialog
//! box on a blue background, in the 16 colours of a Linux VT.

use gateway_config::DEFAULT_NTP_SERVERS;
use gateway_control::cli::{ping_text, utc};
use gateway_control::protocol::{
    CacheStats, CaptureStatus, PingResult, ReportOffer, Stats, Status,
};
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::form::{Form, FormFocus};
use crate::logs::LogView;
use crate::model::{Button, CaptureView, Choice, Menu, NewReport, ReportView, Screen, State};

pub const PRODUCT: &str = "Gateway Appliance";
pub const HELP: &str = "USE: arrows to navigate, ENTER to confirm, SPACE to select, TAB to focus";
const LOG_HELP: &str =
    "USE: arrows or PgUp/PgDn to navigate, ENTER to exit   / search fwd, ? backward";

const BACKGROUND: Style = Style::new().bg(Color::Blue).fg(Color::White);
const DIALOG: Style = Style::new().bg(Color::Gray).fg(Color::Black);
const SELECTED: Style = Style::new().bg(Color::Blue).fg(Color::White);
const INPUT: Style = Style::new().bg(Color::Black).fg(Color::White);
const DIM: Style = Style::new().bg(Color::Black).fg(Color::DarkGray);
const ERROR: Style = Style::new().bg(Color::Gray).fg(Color::Red);
/// The requirements message of QGS, word for word (init's
/// `requirements::MISMATCH`; a test keeps the two equal).
pub const REQUIREMENTS: &str = "Requirements mismatch : This appliance does not meet the minimal requirements and may not function correctly.";
/// The line QGS closes the requirements warnings with (init's
/// `requirements::REFER`).
pub const REQUIREMENTS_REFER: &str = "Please refer to the CAMS setup instructions";

/// Draws the whole screen.
pub fn render(f: &mut Frame, state: &State) {
    let area = f.area();
    f.render_widget(Clear, area);
    f.render_widget(Block::new().style(BACKGROUND), area);
    header(f, area, state);
    let body = Rect {
        y: area.y + 2,
        height: area.height.saturating_sub(2),
        ..area
    };
    match state.top() {
        Screen::Menu(m) => menu(f, body, state, m),
        Screen::Choice(c) => choice(f, body, c),
        Screen::Form(form) => form_screen(f, body, form),
        Screen::Info { scroll } => {
            let lines = info_lines(state, body.width.saturating_sub(8));
            let page = usize::from(body.height.saturating_sub(5));
            let top = (*scroll).min(lines.len().saturating_sub(page));
            let title = if lines.len() > page {
                format!(
                    "Info ({}-{} of {}, arrows scroll)",
                    top + 1,
                    (top + page).min(lines.len()),
                    lines.len()
                )
            } else {
                "Info".to_owned()
            };
            dialog(f, body, &title, &lines[top..], &[("OK", true)], None);
        }
        Screen::Units { selected, button } => units(f, body, state, *selected, *button),
        Screen::Logs(view) => logs(f, area, view),
        Screen::Stats(stats) => {
            let lines = match stats {
                Ok(s) => stats_lines(s),
                Err(e) => wrap(e, body.width.saturating_sub(8)),
            };
            dialog(f, body, "Stats", &plain(lines), &[("OK", true)], None);
        }
        Screen::Ping(p) => {
            dialog(
                f,
                body,
                "Ping",
                &plain(ping_lines(p)),
                &[("OK", true)],
                None,
            );
        }
        Screen::Report(view) => report(f, body, view),
        Screen::ReportMade(new) => {
            let lines = report_made_lines(state, new, body.width.saturating_sub(8));
            dialog(f, body, "Diagnostics report", &lines, &[("OK", true)], None);
        }
        Screen::Capture(view) => capture(f, body, view),
        Screen::Confirm { kind, button } => {
            let yes = *button == Button::Ok;
            dialog(
                f,
                body,
                &kind.title(),
                &plain(kind.question()),
                &[("Yes", yes), ("No", !yes)],
                None,
            );
        }
        Screen::Message(m) => {
            let mut lines = Vec::new();
            for l in &m.lines {
                lines.extend(wrap(l, body.width.saturating_sub(8)));
            }
            let style = if m.error { ERROR } else { DIALOG };
            let lines: Vec<Line> = lines.into_iter().map(|l| Line::styled(l, style)).collect();
            dialog(f, body, &m.title, &lines, &[("OK", true)], None);
        }
    }
    if let Some(busy) = &state.busy {
        let lines = plain(wrap(busy, 50));
        dialog(f, body, "Please wait", &lines, &[], None);
    }
}

fn header(f: &mut Frame, area: Rect, state: &State) {
    let version = state
        .status
        .as_ref()
        .map(|s| format!(" {}", s.version))
        .unwrap_or_default();
    let right = match (&state.status, &state.status_error) {
        (_, Some(_)) => "control API unreachable".to_owned(),
        (Some(s), None) => format!(
            "{} {}",
            s.network.interface,
            s.network.address.as_deref().unwrap_or("no address")
        ),
        (None, None) => String::new(),
    };
    let left = format!(" {PRODUCT}{version}");
    let pad = usize::from(area.width).saturating_sub(left.len() + right.len() + 1);
    let title = format!("{left}{}{right} ", " ".repeat(pad));
    let bar = Style::new()
        .bg(Color::Cyan)
        .fg(Color::Black)
        .add_modifier(Modifier::BOLD);
    f.render_widget(
        Paragraph::new(Line::styled(title, bar)).style(bar),
        Rect { height: 1, ..area },
    );
    let help = match state.top() {
        Screen::Logs(_) => LOG_HELP,
        _ => HELP,
    };
    f.render_widget(
        Paragraph::new(format!(" {help}")).style(BACKGROUND),
        Rect {
            y: area.y + 1,
            height: 1,
            ..area
        },
    );
}

fn plain(lines: Vec<String>) -> Vec<Line<'static>> {
    lines.into_iter().map(Line::from).collect()
}

/// Splits `text` into lines of at most `width` characters, at spaces.
pub fn wrap(text: &str, width: u16) -> Vec<String> {
    let width = usize::from(width.max(10));
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let head: String = line.chars().take(width).collect();
            line = line.chars().skip(width).collect();
            out.push(head);
        }
    }
    out.push(line);
    out
}

/// A dialog box centred in `body`: a title, `lines`, and a row of buttons
/// (label, focused). `cursor` is a position inside the lines (column,
/// line) where the terminal's cursor goes.
fn dialog(
    f: &mut Frame,
    body: Rect,
    title: &str,
    lines: &[Line],
    buttons: &[(&str, bool)],
    cursor: Option<(u16, u16)>,
) {
    let content_w = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
    let buttons_w: u16 = buttons.iter().map(|(l, _)| l.len() as u16 + 6).sum();
    let width = (content_w.max(buttons_w).max(title.len() as u16 + 4) + 6)
        .max(40)
        .min(body.width.saturating_sub(2));
    let extra = if buttons.is_empty() { 2 } else { 4 };
    let height = (lines.len() as u16 + extra).min(body.height.saturating_sub(1));
    let area = Rect {
        x: body.x + (body.width.saturating_sub(width)) / 2,
        y: body.y + (body.height.saturating_sub(height)) / 2,
        width,
        height,
    };
    f.render_widget(Clear, area);
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Line::from(format!(" {title} ")).centered())
        .style(DIALOG);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let text_area = Rect {
        x: inner.x + 2,
        width: inner.width.saturating_sub(3),
        height: inner.height.saturating_sub(extra - 2),
        ..inner
    };
    f.render_widget(Paragraph::new(lines.to_vec()), text_area);
    if !buttons.is_empty() {
        let mut spans = Vec::new();
        for (i, (label, focused)) in buttons.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw("    "));
            }
            let style = if *focused { SELECTED } else { DIALOG };
            spans.push(Span::styled(format!("< {label} >"), style));
        }
        let row = Rect {
            y: inner.y + inner.height.saturating_sub(1),
            height: 1,
            ..inner
        };
        f.render_widget(Paragraph::new(Line::from(spans).centered()), row);
    }
    if let Some((col, line)) = cursor {
        if line < text_area.height {
            f.set_cursor_position(Position::new(
                (text_area.x + col).min(text_area.right().saturating_sub(1)),
                text_area.y + line,
            ));
        }
    }
}

fn menu(f: &mut Frame, body: Rect, state: &State, m: &Menu) {
    let items = m.id.items(state.status.as_ref());
    let tag_w = items.iter().map(|i| i.tag.len()).max().unwrap_or(0);
    let help_w = items.iter().map(|i| i.help.len()).max().unwrap_or(0);
    let lines: Vec<Line> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let text = format!(" {:tag_w$}   {:help_w$} ", item.tag, item.help);
            let style = if i == m.selected { SELECTED } else { DIALOG };
            Line::styled(text, style)
        })
        .collect();
    let buttons: &[(&str, bool)] = if m.id.has_back() {
        &[
            ("OK", m.button == Button::Ok),
            ("Back", m.button == Button::Back),
        ]
    } else {
        &[("OK", true)]
    };
    dialog(f, body, m.id.title(), &lines, buttons, None);
}

fn choice(f: &mut Frame, body: Rect, c: &Choice) {
    let lines: Vec<Line> = c
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mark = if i == c.chosen { '*' } else { ' ' };
            let style = if i == c.cursor && c.button.is_none() {
                SELECTED
            } else {
                DIALOG
            };
            Line::styled(format!(" ({mark}) {o:<14}"), style)
        })
        .collect();
    dialog(
        f,
        body,
        c.kind.title(),
        &lines,
        &[
            ("OK", c.button != Some(Button::Back)),
            ("Cancel", c.button == Some(Button::Back)),
        ],
        None,
    );
}

fn form_screen(f: &mut Frame, body: Rect, form: &Form) {
    let label_w = form.fields.iter().map(|x| x.label.len()).max().unwrap_or(0) + 2;
    let text_w = body.width.saturating_sub(10);
    let field_w = usize::from(text_w).saturating_sub(label_w + 1).min(40);
    let mut lines: Vec<Line> = form.intro.iter().map(|l| Line::from(l.clone())).collect();
    if !lines.is_empty() {
        lines.push(Line::from(""));
    }
    let mut cursor = None;
    for (i, field) in form.fields.iter().enumerate() {
        let focused = form.focus == FormFocus::Field(i);
        let shown = field.shown();
        let count = shown.chars().count();
        // Long values scroll so the cursor stays in view.
        let skip = field.cursor.saturating_sub(field_w.saturating_sub(1));
        let visible: String = shown.chars().skip(skip).take(field_w).collect();
        let placeholder = form.placeholder_of(i);
        let (text, style) = if count == 0 && !placeholder.is_empty() {
            (placeholder.chars().take(field_w).collect(), DIM)
        } else {
            (visible, INPUT)
        };
        let pad = field_w.saturating_sub(text.chars().count());
        let label_style = if focused {
            DIALOG.add_modifier(Modifier::BOLD)
        } else {
            DIALOG
        };
        if focused {
            cursor = Some(((label_w + field.cursor - skip) as u16, lines.len() as u16));
        }
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:label_w$}", format!("{}:", field.label)),
                label_style,
            ),
            Span::styled(text, style),
            Span::styled(" ".repeat(pad), INPUT),
        ]));
        if form.touched {
            if let Some(e) = &field.error {
                for l in wrap(&format!("^ {e}"), text_w.saturating_sub(label_w as u16)) {
                    lines.push(Line::from(vec![
                        Span::styled(" ".repeat(label_w), DIALOG),
                        Span::styled(l, ERROR),
                    ]));
                }
            }
        }
    }
    if let Some(e) = &form.error {
        lines.push(Line::from(""));
        lines.extend(wrap(e, text_w).into_iter().map(|l| Line::styled(l, ERROR)));
    }
    let ok = form.focus == FormFocus::Ok;
    let back = form.focus == FormFocus::Back;
    dialog(
        f,
        body,
        form.title,
        &lines,
        &[("OK", ok), ("Back", back)],
        cursor,
    );
}

fn units(f: &mut Frame, body: Rect, state: &State, selected: usize, button: Button) {
    let units = state
        .status
        .as_ref()
        .map(|s| s.units.as_slice())
        .unwrap_or_default();
    let name_w = units.iter().map(|u| u.name.len()).max().unwrap_or(4).max(4);
    let detail_w = usize::from(body.width.saturating_sub(12)).saturating_sub(name_w + 14);
    let mut lines = vec![Line::from(format!(
        " {:name_w$}  {:<10}  detail",
        "unit", "state"
    ))];
    for (i, u) in units.iter().enumerate() {
        let detail: String = u.detail.chars().take(detail_w).collect();
        let text = format!(" {:name_w$}  {:<10}  {detail:detail_w$}", u.name, u.state);
        let style = if i == selected { SELECTED } else { DIALOG };
        lines.push(Line::styled(text, style));
    }
    if units.is_empty() {
        lines.push(Line::from(" (no status yet)"));
    }
    dialog(
        f,
        body,
        "Units",
        &lines,
        &[
            ("Restart", button == Button::Ok),
            ("Back", button == Button::Back),
        ],
        None,
    );
}

fn logs(f: &mut Frame, area: Rect, view: &LogView) {
    let body = Rect {
        y: area.y + 2,
        height: area.height.saturating_sub(3),
        ..area
    };
    let width = usize::from(area.width);
    let lines: Vec<Line> = view
        .lines
        .iter()
        .enumerate()
        .skip(view.top)
        .take(usize::from(body.height))
        .map(|(i, l)| {
            let text: String = l.chars().take(width).collect();
            let style = if Some(i) == view.found {
                SELECTED
            } else {
                DIALOG
            };
            Line::styled(format!("{text:width$}"), style)
        })
        .collect();
    f.render_widget(Paragraph::new(lines).style(DIALOG), body);
    let status = match (&view.prompt, &view.note) {
        (Some((forward, text)), _) => format!("{}{text}", if *forward { '/' } else { '?' }),
        (None, Some(note)) => note.clone(),
        (None, None) if view.lines.is_empty() => format!("{}: empty", view.name),
        (None, None) => format!(
            "{}: lines {}-{} of {}, newest first",
            view.name,
            view.top + 1,
            (view.top + usize::from(body.height)).min(view.lines.len()),
            view.lines.len()
        ),
    };
    let row = Rect {
        y: area.y + area.height.saturating_sub(1),
        height: 1,
        ..area
    };
    f.render_widget(Paragraph::new(format!(" {status}")).style(BACKGROUND), row);
    if view.prompt.is_some() {
        f.set_cursor_position(Position::new(
            (status.chars().count() as u16 + 1).min(area.width.saturating_sub(1)),
            row.y,
        ));
    }
}

fn duration(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s / 60 % 60),
        _ => format!("{} days {} h", s / 86_400, s / 3600 % 24),
    }
}

/// Info's platform rows: the connection in words ("Connected" or why
/// not), the URL checked, the appliance ID and name.
fn platform_rows(state: &State, pod: Option<&str>) -> (String, String, String, Option<String>) {
    // The URL whose answer the status reports: once registered, the
    // check-in the agent makes every interval (its path holds the
    // appliance ID, too long for the row: the service and the word say
    // it); before, the management service's health endpoint.
    let registered = state.platform.as_ref().is_some_and(|p| p.registered);
    let url = match pod {
        None => "none (no POD suffix)".to_owned(),
        Some(p) if registered => format!("https://camspm.{p} (check-in)"),
        Some(p) => format!("https://camspm.{p}/api/v1/health"),
    };
    let Some(p) = &state.platform else {
        return (
            "Not connected: the management agent does not answer".into(),
            url,
            "not registered".into(),
            None,
        );
    };
    let status = if pod.is_none() {
        "Not connected: no POD suffix (System > POD Suffix)".to_owned()
    } else if !p.registered {
        "Not connected: not registered (Registration)".to_owned()
    } else if p.checkin_failures > 0 {
        format!(
            "Not connected: {}",
            p.last_checkin_result.clone().unwrap_or_default()
        )
    } else if p.last_checkin_unix.is_some() {
        "Connected".to_owned()
    } else {
        "Registered, first check-in pending".to_owned()
    };
    (
        status,
        url,
        p.appliance_id
            .clone()
            .unwrap_or_else(|| "not registered".into()),
        p.appliance_name.clone(),
    )
}

/// The Info screen's lines: the requirements warnings in QGS's words when
/// there are any, then what the status carries.
pub fn info_lines(state: &State, width: u16) -> Vec<Line<'static>> {
    let Some(s) = &state.status else {
        let why = state
            .status_error
            .clone()
            .unwrap_or_else(|| "Reading the status...".into());
        return plain(wrap(&why, width));
    };
    let pod = state.config.get("platform.pod").filter(|p| !p.is_empty());
    let mut rows = network_rows(s);
    let (platform, url, id, name) = platform_rows(state, pod.map(String::as_str));
    rows.extend([("Platform Status", platform), ("Status URL", url)]);
    rows.extend(dns_time_rows(s));
    rows.extend([
        ("Appliance ID", id),
        ("Appliance Name", name.unwrap_or_else(|| s.hostname.clone())),
        (
            "Platform URL",
            pod.map_or("no POD suffix (System > POD Suffix)".into(), |p| {
                format!("https://qagpublic.{p}")
            }),
        ),
        ("System Updates", "not available in this build".into()),
        ("Build-version", s.version.clone()),
        ("Service Version", format!("gateway-proxy {}", s.version)),
        ("Uptime", duration(s.uptime_s)),
    ]);
    if s.storage == "memory" {
        rows.push((
            "Storage",
            "in memory only (no state partition): changes are lost at reboot".into(),
        ));
    }
    let mut lines: Vec<Line> = Vec::new();
    // First, so they are seen without scrolling.
    if !s.warnings.is_empty() {
        // As QGS lays it out: the heading, each warning as the appliance
        // words it ("WARNING : ..."), then where to read more.
        let message = std::iter::once(REQUIREMENTS)
            .chain(s.warnings.iter().map(String::as_str))
            .chain(std::iter::once(REQUIREMENTS_REFER));
        for text in message {
            for l in wrap(text, width) {
                lines.push(Line::styled(l, ERROR));
            }
        }
        lines.push(Line::from(""));
    }
    // The appliance's other notes (a disk it ignores, patch mode without
    // its disk): as visible, but not under the requirements heading.
    if !s.notes.is_empty() {
        for l in s.notes.iter().flat_map(|n| wrap(n, width)) {
            lines.push(Line::styled(l, ERROR));
        }
        lines.push(Line::from(""));
    }
    lines.extend(rows.into_iter().flat_map(|(label, value)| {
        wrap(&value, width.saturating_sub(18))
            .into_iter()
            .enumerate()
            .map(move |(i, v)| {
                let label = if i == 0 { label } else { "" };
                let colon = if i == 0 { ':' } else { ' ' };
                Line::from(format!("{label:<15} {colon} {v}"))
            })
    }));
    lines
}

fn network_rows(s: &Status) -> Vec<(&'static str, String)> {
    let n = &s.network;
    let mode = match n.mode.as_str() {
        "dhcp" => "DHCP",
        "static" => "static",
        "unconfigured" => "unconfigured",
        other => other,
    };
    vec![
        (
            "eth0",
            format!(
                "{} ({mode}, {})",
                n.address.as_deref().unwrap_or("no address"),
                n.state
            ),
        ),
        (
            "MAC address",
            n.mac.clone().unwrap_or_else(|| "unknown".into()),
        ),
        (
            "Gateway",
            n.gateway.clone().unwrap_or_else(|| "none".into()),
        ),
    ]
}

fn dns_time_rows(s: &Status) -> Vec<(&'static str, String)> {
    let source = match s.dns.source.as_str() {
        "manual" => "set here",
        "dhcp" => "from DHCP",
        _ => "none",
    };
    let servers = if s.dns.servers.is_empty() {
        "none".to_owned()
    } else {
        format!("{} ({source})", s.dns.servers.join(", "))
    };
    let t = &s.time;
    let mut ntp = t.state.clone();
    if let Some(server) = &t.server {
        ntp += &format!(", server {server}");
    }
    if let Some(offset) = t.offset_ms {
        ntp += &format!(", offset {offset:.1} ms");
    }
    vec![
        ("DNS Servers", servers),
        (
            "Search domain",
            s.dns.search.clone().unwrap_or_else(|| "none".into()),
        ),
        ("System Time", utc(t.now_unix)),
        ("System Timezone", "UTC (UTC, +0000)".into()),
        ("NTP Status", ntp),
        ("NTP Servers", ntp_servers(&t.servers)),
    ]
}

/// The servers the time client asks, and whether they are the defaults
/// (nothing set: the pool) or set here, as the DNS row says where its
/// servers come from.
fn ntp_servers(servers: &[String]) -> String {
    if servers.is_empty() {
        return "none".into();
    }
    let source = if servers
        .iter()
        .map(String::as_str)
        .eq(DEFAULT_NTP_SERVERS.iter().copied())
    {
        "default pool"
    } else {
        "set here"
    };
    format!("{} ({source})", servers.join(", "))
}

fn bytes(n: u64) -> String {
    let n = n as f64;
    const MIB: f64 = 1024.0 * 1024.0;
    if n >= 1024.0 * MIB {
        format!("{:.1} GiB", n / 1024.0 / MIB)
    } else {
        format!("{:.1} MiB", n / MIB)
    }
}

fn stats_lines(s: &Stats) -> Vec<String> {
    let c = &s.cpu;
    let m = &s.memory;
    let mut lines = vec![
        format!(
            "CPU      : {} cores, {:.1} % busy, load {:.2} {:.2} {:.2}",
            c.cores, c.busy_percent, c.load[0], c.load[1], c.load[2]
        ),
        format!(
            "Memory   : {} used of {}",
            bytes(m.total_bytes.saturating_sub(m.available_bytes)),
            bytes(m.total_bytes)
        ),
    ];
    for d in &s.disks {
        let pct = (d.used_bytes * 100).checked_div(d.total_bytes).unwrap_or(0);
        lines.push(format!(
            "{:<9}: {} used of {} ({pct} %), {}",
            d.label,
            bytes(d.used_bytes),
            bytes(d.total_bytes),
            d.mount
        ));
    }
    for n in &s.network {
        lines.push(format!(
            "{:<9}: received {}, sent {}, errors {}",
            n.name,
            bytes(n.rx_bytes),
            bytes(n.tx_bytes),
            n.rx_errors + n.tx_errors
        ));
    }
    lines.push(String::new());
    lines.extend(cache_lines(s.cache.as_ref()));
    lines.push(String::new());
    lines.push(format!(
        "{:<16}{:<10}{:>7}  {}",
        "Unit", "State", "CPU %", "Memory"
    ));
    for u in &s.units {
        let limit = u
            .memory_limit_bytes
            .map(|l| format!(" of {}", bytes(l)))
            .unwrap_or_default();
        lines.push(format!(
            "{:<16}{:<10}{:>7.1}  {}{limit}",
            u.name,
            u.state,
            u.cpu_percent,
            bytes(u.memory_bytes)
        ));
    }
    lines
}

/// The Stats screen's Cache block: hit ratio and active agents, the bytes
/// served from the cache against those fetched from origins (the bandwidth
/// saved), and what each tier holds.
fn cache_lines(cache: Option<&CacheStats>) -> Vec<String> {
    let Some(c) = cache else {
        // PID 1 leaves the section out while the cache unit is not active
        // and when its /stats did not answer in time.
        return vec!["Cache    : no statistics (not running or not answering)".into()];
    };
    let count = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    vec![
        format!(
            "Cache    : hit ratio {:.1} %, {} in the last 60 min",
            c.hit_ratio * 100.0,
            count(c.active_agents, "active agent", "active agents")
        ),
        // The share first: the bytes can grow long, and the line must stay
        // within an 80-column VT (the dialog does not wrap).
        format!(
            "Saved    : {:.1} %, {} from the cache, {} from origins",
            c.saved_percent(),
            size(c.bytes_from_cache),
            size(c.bytes_from_origin)
        ),
        format!(
            "In memory: {}, {}",
            count(c.memory_objects, "object", "objects"),
            size(c.memory_bytes)
        ),
        format!(
            "On disk  : {}, {}",
            count(c.disk_objects, "object", "objects"),
            size(c.disk_bytes)
        ),
    ]
}

/// A size for the eyes: bytes, KiB or MiB.
fn size(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} bytes"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => bytes(n),
    }
}

/// `42 s`, `5 min`, `1 min 12 s`.
fn minutes(s: u64) -> String {
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// `label    : value` rows, long values wrapped under themselves.
fn rows(rows: Vec<(&str, String)>, width: u16) -> Vec<String> {
    rows.into_iter()
        .flat_map(|(label, value)| {
            wrap(&value, width.saturating_sub(11))
                .into_iter()
                .enumerate()
                .map(move |(i, v)| {
                    let (label, colon) = if i == 0 { (label, ':') } else { ("", ' ') };
                    format!("{label:<8} {colon} {v}")
                })
        })
        .collect()
}

/// What the report is, as the Report screen opens with it.
const REPORT_INTRO: &str = "A diagnostics report gathers the logs, the configuration (secrets removed), the status and the last upstream capture into an archive encrypted for support. It is downloaded over SFTP with a one-time password.";

fn report(f: &mut Frame, body: Rect, view: &ReportView) {
    let width = body.width.saturating_sub(8);
    let mut lines = wrap(REPORT_INTRO, width);
    lines.push(String::new());
    match &view.waiting {
        None => lines.push("Reading the diagnostics status...".into()),
        Some(Err(e)) => lines.extend(wrap(
            &format!("What is waiting could not be read: {e}"),
            width,
        )),
        Some(Ok(None)) => lines.push("No report is waiting for download.".into()),
        Some(Ok(Some(o))) => {
            lines.push("A report is waiting for download:".into());
            lines.extend(offer_rows(o, width));
            lines.push(String::new());
            lines.extend(wrap(
                "The password was shown when it was made; make a new report for a new password.",
                width,
            ));
        }
    }
    let generate = view.button == Button::Ok;
    dialog(
        f,
        body,
        "Diagnostics report",
        &plain(lines),
        &[("Generate report", generate), ("Back", !generate)],
        None,
    );
}

fn offer_rows(o: &ReportOffer, width: u16) -> Vec<String> {
    rows(
        vec![
            ("File", o.file.clone()),
            ("Size", size(o.size_bytes)),
            ("Made", format!("{} UTC", utc(o.created_unix))),
            (
                "Expires",
                format!(
                    "{} UTC, or after one complete download",
                    utc(o.expires_unix)
                ),
            ),
        ],
        width,
    )
}

/// eth0's address without its prefix, for the download command.
fn appliance_address(state: &State) -> String {
    state
        .status
        .as_ref()
        .and_then(|s| s.network.address.as_deref())
        .and_then(|a| a.split('/').next())
        .filter(|a| !a.is_empty())
        .unwrap_or("<appliance address>")
        .to_owned()
}

/// A new report: who downloads it, with which password, how, until when.
pub fn report_made_lines(state: &State, new: &NewReport, width: u16) -> Vec<Line<'static>> {
    let o = &new.offer;
    let strong = DIALOG.add_modifier(Modifier::BOLD);
    let mut lines = vec![
        Line::from("Diagnostics report is available via SFTP using :"),
        Line::from(""),
        Line::styled(format!("  Username => {}", o.user), strong),
        Line::styled(format!("  Password => {}", new.password), strong),
        Line::from(""),
        Line::styled(
            format!(
                "  sftp -P {} {}@{}",
                o.port,
                o.user,
                appliance_address(state)
            ),
            strong,
        ),
        Line::from(""),
    ];
    let mut details = vec![
        ("File", o.file.clone()),
        ("Expires", format!("{} UTC (24 h)", utc(o.expires_unix))),
    ];
    if let Some(fp) = &o.host_key_fingerprint {
        details.push(("Host key", fp.clone()));
    }
    lines.extend(plain(rows(details, width)));
    lines.push(Line::from(""));
    lines.extend(plain(wrap(
        "Give the password to support; it works for one download or 24 hours.",
        width,
    )));
    lines.extend(plain(wrap(
        "The report is encrypted: only support can read it.",
        width,
    )));
    lines
}

/// What the Capture screen opens with (QGS: "Generate Upstream PCAP File").
const CAPTURE_INTRO: &str = "Captures the traffic between eth0 and its next hop (upstream) for 5 minutes into a PCAP file. Any PCAP file previously generated will be overwritten in the process. Then generate a diagnostics report (Diagnostics > Report): the PCAP file is included in it.";

pub fn capture_lines(c: &CaptureStatus, width: u16) -> Vec<String> {
    let state = match c.state.as_str() {
        "idle" => "no capture since the appliance started".to_owned(),
        "running" => format!(
            "running, {} of {}",
            minutes(c.elapsed_s),
            minutes(c.seconds.into())
        ),
        "done" => format!("done, after {}", minutes(c.elapsed_s)),
        "failed" => format!("failed, after {}", minutes(c.elapsed_s)),
        other => other.to_owned(),
    };
    let mut r = vec![("State", state)];
    if c.state != "idle" {
        r.extend([
            ("Started", format!("{} UTC", utc(c.started_unix))),
            ("Packets", c.packets.to_string()),
            ("Bytes", size(c.bytes)),
        ]);
    }
    if !c.detail.is_empty() {
        r.push(("Detail", c.detail.clone()));
    }
    r.push((
        "File",
        match (&c.file, c.state.as_str()) {
            (None, _) => "none yet".to_owned(),
            // The previous capture's, until this one ends.
            (Some(f), "running" | "failed") => format!("{f} (from the previous capture)"),
            (Some(f), _) => f.clone(),
        },
    ));
    rows(r, width)
}

fn capture(f: &mut Frame, body: Rect, view: &CaptureView) {
    let width = body.width.saturating_sub(8);
    let mut lines = plain(wrap(CAPTURE_INTRO, width));
    lines.push(Line::from(""));
    match &view.status {
        None => lines.push(Line::from("Reading the capture status...")),
        Some(Err(e)) => lines.extend(
            wrap(&format!("The capture status could not be read: {e}"), width)
                .into_iter()
                .map(|l| Line::styled(l, ERROR)),
        ),
        Some(Ok(c)) => {
            let failed = c.state == "failed";
            lines.extend(capture_lines(c, width).into_iter().map(|l| {
                if failed {
                    Line::styled(l, ERROR)
                } else {
                    Line::from(l)
                }
            }));
            if c.state == "running" {
                lines.push(Line::from(""));
                lines.extend(plain(wrap(
                    "Stop capture ends it now; what was captured is kept.",
                    width,
                )));
            }
        }
    }
    let action = if view.running() {
        "Stop capture"
    } else {
        "Start capture (5 minutes)"
    };
    let ok = view.button == Button::Ok;
    dialog(
        f,
        body,
        "Upstream capture",
        &lines,
        &[(action, ok), ("Back", !ok)],
        None,
    );
}

fn ping_lines(p: &PingResult) -> Vec<String> {
    let mut lines: Vec<String> = ping_text(p).lines().map(str::to_owned).collect();
    lines.insert(lines.len().saturating_sub(1), String::new());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_long_words() {
        assert_eq!(wrap("aaa bbb ccc", 10), ["aaa bbb", "ccc"]);
        assert_eq!(wrap(&"x".repeat(25), 10).len(), 3);
    }

    #[test]
    fn ntp_servers_say_whether_they_are_the_default_pool() {
        let pool: Vec<String> = DEFAULT_NTP_SERVERS.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            ntp_servers(&pool),
            format!("{} (default pool)", DEFAULT_NTP_SERVERS.join(", "))
        );
        assert_eq!(ntp_servers(&pool[..1]), "0.flatcar.pool.ntp.org (set here)");
        assert_eq!(
            ntp_servers(&["10.0.2.2".into(), "10.0.2.4".into()]),
            "10.0.2.2, 10.0.2.4 (set here)"
        );
        assert_eq!(ntp_servers(&[]), "none");
    }
}
