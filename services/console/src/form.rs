//! The console's forms: text fields that are checked as they are typed,
//! with the rules of the configuration crate (the same parsers PID 1 runs,
//! so a rule is written once), and that give the keys to `set` only when
//! every field is right. Nothing here talks to the appliance.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use gateway_config::rules::{check_host_name, MAX_DNS_SERVERS};
use gateway_config::{Config, DEFAULT_NTP_SERVERS};

/// What `get` shows for a secret that is set.
pub const REDACTED: &str = "********";

/// The longest value a field takes (a host name, a list item).
const MAX_VALUE_LEN: usize = 253;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    /// net.address and net.gateway, with net.mode=static.
    Static,
    /// dns.servers (up to 3) and dns.search.
    Dns,
    /// upstream.proxy (host, port), upstream.user, upstream.password.
    Proxy,
    /// platform.pod.
    Pod,
    /// ntp.servers.
    Time,
    /// The target of a ping (sent as a command, not a setting).
    Ping,
    /// A personalization code (sent as a registration, not a setting).
    Register,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    /// The configuration key the field feeds (an error on it lands here).
    pub key: &'static str,
    pub value: String,
    /// Cursor position, in characters.
    pub cursor: usize,
    /// Shown as stars.
    pub secret: bool,
    /// Shown dimmed while the field is empty.
    pub placeholder: String,
    /// The rule the value breaks, when it does.
    pub error: Option<String>,
}

impl Field {
    fn new(label: &'static str, key: &'static str, value: &str) -> Field {
        Field {
            label,
            key,
            value: value.to_owned(),
            cursor: value.chars().count(),
            secret: false,
            placeholder: String::new(),
            error: None,
        }
    }

    fn placeholder(mut self, text: &str) -> Field {
        self.placeholder = text.to_owned();
        self
    }

    /// What the screen shows: the value, or stars for a secret.
    pub fn shown(&self) -> String {
        if self.secret {
            "*".repeat(self.value.chars().count())
        } else {
            self.value.clone()
        }
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.value
            .char_indices()
            .nth(chars)
            .map_or(self.value.len(), |(i, _)| i)
    }

    pub fn insert(&mut self, c: char) {
        if c.is_control() || self.value.chars().count() >= MAX_VALUE_LEN {
            return;
        }
        let at = self.byte_at(self.cursor);
        self.value.insert(at, c);
        self.cursor += 1;
    }

    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let at = self.byte_at(self.cursor);
            self.value.remove(at);
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.value.chars().count() {
            let at = self.byte_at(self.cursor);
            self.value.remove(at);
        }
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.value.chars().count());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.value.chars().count();
    }
}

/// Where the keyboard is in a form: a field, or one of the two buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormFocus {
    Field(usize),
    Ok,
    Back,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub title: &'static str,
    /// Lines of explanation above the fields.
    pub intro: Vec<String>,
    pub fields: Vec<Field>,
    pub focus: FormFocus,
    /// Errors are shown once the administrator typed or pressed OK.
    pub touched: bool,
    /// A refusal that belongs to no field (the appliance's answer).
    pub error: Option<String>,
    /// The upstream password is set and the field was left empty: keep it.
    keep_secret: bool,
}

fn value<'a>(config: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    config.get(key).map_or("", String::as_str)
}

/// Checks one key's text form with the configuration's own parser and
/// rules, alone on a default configuration; the rule it breaks, if any.
fn check_key(key: &str, value: &str) -> Option<String> {
    Config::default()
        .with_changes(&[(key, value)])
        .err()
        .map(|e| e.message)
}

impl Form {
    /// What an empty field `i` shows dimmed. The Time form's defaults are
    /// the pool servers used when no server is set at all: once one is
    /// typed, only it is used, so the other fields say "optional" rather
    /// than suggest pool servers that would not be asked.
    pub fn placeholder_of(&self, i: usize) -> &str {
        let Some(field) = self.fields.get(i) else {
            return "";
        };
        if self.kind == FormKind::Time && self.fields.iter().any(|f| !f.value.is_empty()) {
            return "optional";
        }
        &field.placeholder
    }

    /// The form for `kind`, filled with the current configuration.
    pub fn new(kind: FormKind, config: &BTreeMap<String, String>) -> Form {
        let list = |key: &str| -> Vec<String> {
            value(config, key)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let nth = |items: &[String], i: usize| items.get(i).cloned().unwrap_or_default();
        let mut keep_secret = false;
        let (title, intro, fields): (_, Vec<&str>, _) = match kind {
            FormKind::Static => (
                "eth0: static address",
                vec![
                    "Address with its prefix length (/24 is 255.255.255.0),",
                    "and the default gateway inside that subnet.",
                ],
                vec![
                    Field::new("Address", "net.address", value(config, "net.address"))
                        .placeholder("e.g. 192.168.1.10/24"),
                    Field::new("Gateway", "net.gateway", value(config, "net.gateway"))
                        .placeholder("e.g. 192.168.1.1"),
                ],
            ),
            FormKind::Dns => {
                let servers = list("dns.servers");
                let mut fields: Vec<Field> = (0..MAX_DNS_SERVERS)
                    .map(|i| Field::new("DNS", "dns.servers", &nth(&servers, i)))
                    .collect();
                fields[0].placeholder = "empty: the servers DHCP gives".into();
                fields.push(
                    Field::new("Search domain", "dns.search", value(config, "dns.search"))
                        .placeholder("e.g. corp.example.com"),
                );
                ("DNS Servers", vec![], fields)
            }
            FormKind::Proxy => {
                let (host, port) = value(config, "upstream.proxy")
                    .rsplit_once(':')
                    .map_or((String::new(), String::new()), |(h, p)| {
                        (h.to_owned(), p.to_owned())
                    });
                keep_secret = value(config, "upstream.password") == REDACTED;
                let mut password = Field::new("Password", "upstream.password", "");
                password.secret = true;
                if keep_secret {
                    password.placeholder = "(set; empty keeps it)".into();
                }
                (
                    "Upstream proxy server",
                    vec![
                        "The proxy the appliance goes through to reach the platform;",
                        "empty host: none.",
                    ],
                    vec![
                        Field::new("Host or IP", "upstream.proxy", &host)
                            .placeholder("e.g. proxy.corp.example.com"),
                        Field::new("Port", "upstream.proxy", &port).placeholder("e.g. 3128"),
                        Field::new("User", "upstream.user", value(config, "upstream.user"))
                            .placeholder("optional"),
                        password,
                    ],
                )
            }
            FormKind::Pod => (
                "POD suffix",
                vec!["The platform's URL suffix (POD), such as qg1.apps.qualys.com."],
                vec![Field::new(
                    "POD suffix",
                    "platform.pod",
                    value(config, "platform.pod"),
                )],
            ),
            FormKind::Time => {
                let servers = list("ntp.servers");
                let fields = (0..servers.len().max(DEFAULT_NTP_SERVERS.len()))
                    .map(|i| {
                        Field::new("NTP", "ntp.servers", &nth(&servers, i))
                            .placeholder(DEFAULT_NTP_SERVERS.get(i).copied().unwrap_or(""))
                    })
                    .collect();
                (
                    "NTP Servers",
                    vec!["All empty: the default servers (shown dimmed) are used."],
                    fields,
                )
            }
            FormKind::Register => (
                "Registration",
                vec![
                    "The personalization code from the platform (lowercase letters,",
                    "digits and dashes). The POD suffix must be set (System).",
                ],
                vec![Field::new("Personalization code", "target", "")
                    .placeholder("e.g. 4f2a-77c1-qgs")],
            ),
            FormKind::Ping => (
                "Ping",
                vec!["FQDN or IPv4"],
                vec![Field::new("Target", "target", "").placeholder("e.g. 10.0.2.2")],
            ),
        };
        Form {
            kind,
            title,
            intro: intro.into_iter().map(str::to_owned).collect(),
            fields,
            focus: FormFocus::Field(0),
            touched: false,
            error: None,
            keep_secret,
        }
    }

    fn values(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.value.trim()).collect()
    }

    fn joined(&self, key: &str) -> String {
        self.fields
            .iter()
            .filter(|f| f.key == key)
            .map(|f| f.value.trim())
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The keys to set, before any check.
    fn changes(&self) -> Vec<(String, String)> {
        let v = self.values();
        let pairs: Vec<(&str, String)> = match self.kind {
            FormKind::Static => vec![
                ("net.mode", "static".into()),
                ("net.address", v[0].into()),
                ("net.gateway", v[1].into()),
            ],
            FormKind::Dns => vec![
                ("dns.servers", self.joined("dns.servers")),
                ("dns.search", v[3].into()),
            ],
            FormKind::Proxy => {
                let proxy = match (v[0], v[1]) {
                    ("", "") => String::new(),
                    (host, port) => format!("{host}:{port}"),
                };
                let mut pairs = vec![("upstream.proxy", proxy), ("upstream.user", v[2].into())];
                if !(self.keep_secret && v[3].is_empty() && !v[2].is_empty()) {
                    pairs.push(("upstream.password", self.fields[3].value.clone()));
                }
                pairs
            }
            FormKind::Pod => vec![("platform.pod", v[0].into())],
            FormKind::Time => vec![("ntp.servers", self.joined("ntp.servers"))],
            FormKind::Ping | FormKind::Register => vec![],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// A field's own rule, before the form is checked as a whole.
    fn check_alone(&self, i: usize) -> Option<String> {
        let f = &self.fields[i];
        let v = f.value.trim();
        match (self.kind, f.key) {
            (FormKind::Static, "net.address") if v.is_empty() => {
                Some("a static address is needed, such as 192.168.1.10/24".into())
            }
            (FormKind::Dns | FormKind::Time, key) if key.ends_with(".servers") => check_key(key, v),
            (FormKind::Proxy, _) if i == 0 && !v.is_empty() => {
                check_key("upstream.proxy", &format!("{v}:1"))
            }
            (FormKind::Proxy, _) if i == 1 => {
                let host = self.fields[0].value.trim();
                match v.parse::<u16>() {
                    _ if v.is_empty() && host.is_empty() => None,
                    Ok(p) if p > 0 => None,
                    _ => Some(format!("{v:?} is not a port from 1 to 65535")),
                }
            }
            (FormKind::Ping, _) => check_target(v).err(),
            (FormKind::Register, _) => {
                gateway_control::protocol::check_personalization_code(v).err()
            }
            // Keys without rules between keys; the others are checked with
            // the whole form.
            (_, key @ ("net.address" | "dns.search" | "platform.pod")) => check_key(key, v),
            _ => None,
        }
    }

    /// Checks every field (each alone, then the form as a whole with the
    /// configuration's cross-key rules) and records the errors on the
    /// fields; the keys to set when all is right.
    pub fn check(&mut self) -> Option<Vec<(String, String)>> {
        for i in 0..self.fields.len() {
            self.fields[i].error = self.check_alone(i);
        }
        if self.fields.iter().any(|f| f.error.is_some()) {
            return None;
        }
        let changes = self.changes();
        let mut checked = changes.clone();
        if self.kind == FormKind::Proxy && !checked.iter().any(|(k, _)| k == "upstream.password") {
            // The stored password stays: check the rest as if it were there.
            checked.push(("upstream.password".into(), "kept".into()));
        }
        match Config::default().with_changes(&checked) {
            Ok(_) => Some(changes),
            Err(e) => {
                self.refused(&e.key, e.message);
                None
            }
        }
    }

    /// Puts an error on the field of `key` (net.mode's on the address), or
    /// on the form when no field has that key.
    pub fn refused(&mut self, key: &str, message: String) {
        let key = if key == "net.mode" {
            "net.address"
        } else {
            key
        };
        match self.fields.iter_mut().rev().find(|f| f.key == key) {
            Some(f) => f.error = Some(message),
            None => self.error = Some(format!("{key}: {message}")),
        }
    }

    /// The ping target, once checked.
    pub fn target(&self) -> String {
        self.fields[0].value.trim().to_owned()
    }

    pub fn field_mut(&mut self) -> Option<&mut Field> {
        match self.focus {
            FormFocus::Field(i) => self.fields.get_mut(i),
            _ => None,
        }
    }

    /// Moves the focus forward (`Tab`, `Down`) or back through the fields
    /// and the two buttons.
    pub fn move_focus(&mut self, forward: bool) {
        let n = self.fields.len();
        let at = match self.focus {
            FormFocus::Field(i) => i,
            FormFocus::Ok => n,
            FormFocus::Back => n + 1,
        };
        let next = if forward {
            (at + 1) % (n + 2)
        } else {
            (at + n + 1) % (n + 2)
        };
        self.focus = match next {
            i if i < n => FormFocus::Field(i),
            i if i == n => FormFocus::Ok,
            _ => FormFocus::Back,
        };
    }

    /// After an edit: check again, so errors follow the typing.
    pub fn edited(&mut self) {
        self.touched = true;
        self.error = None;
        let _ = self.check();
    }
}

/// A ping target: an IPv4 address or a host name.
pub fn check_target(target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("give a host name (FQDN) or an IPv4 address".into());
    }
    if target.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if target.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "{target:?} is not an IPv4 address (four numbers 0-255 separated by dots)"
        ));
    }
    check_host_name(target).map_err(|rule| format!("{target:?} is not a host name: {rule}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn typed(form: &mut Form, i: usize, text: &str) {
        form.focus = FormFocus::Field(i);
        let f = form.field_mut().unwrap();
        f.value.clear();
        f.cursor = 0;
        for c in text.chars() {
            f.insert(c);
        }
        form.edited();
    }

    #[test]
    fn a_static_form_gives_mode_address_and_gateway() {
        let mut f = Form::new(FormKind::Static, &config(&[]));
        typed(&mut f, 0, "10.0.2.15/24");
        typed(&mut f, 1, "10.0.2.2");
        let changes = f.check().unwrap();
        assert_eq!(
            changes,
            [
                ("net.mode".to_owned(), "static".to_owned()),
                ("net.address".into(), "10.0.2.15/24".into()),
                ("net.gateway".into(), "10.0.2.2".into())
            ]
        );
    }

    #[test]
    fn errors_land_on_the_field_with_the_rule() {
        let mut f = Form::new(FormKind::Static, &config(&[]));
        typed(&mut f, 0, "10.0.2.15");
        assert!(f.fields[0]
            .error
            .as_ref()
            .unwrap()
            .contains("prefix length"));
        typed(&mut f, 0, "10.0.2.15/24");
        typed(&mut f, 1, "10.0.3.1");
        assert!(f.fields[0].error.is_none());
        assert!(f.fields[1]
            .error
            .as_ref()
            .unwrap()
            .contains("not inside the subnet"));
        assert!(f.check().is_none());
    }

    #[test]
    fn dns_fields_join_and_a_bad_one_is_named() {
        let mut f = Form::new(FormKind::Dns, &config(&[("dns.servers", "10.0.0.53")]));
        assert_eq!(f.fields[0].value, "10.0.0.53");
        typed(&mut f, 1, "8.8.8");
        assert!(f.fields[1].error.as_ref().unwrap().contains("not an IPv4"));
        typed(&mut f, 1, "");
        typed(&mut f, 2, "10.0.1.53");
        assert_eq!(
            f.check().unwrap()[0],
            ("dns.servers".into(), "10.0.0.53,10.0.1.53".into())
        );
        typed(&mut f, 2, "10.0.0.53");
        assert!(f.fields[2].error.is_some() || f.fields[0].error.is_some());
    }

    #[test]
    fn a_kept_password_is_not_sent_and_an_unset_proxy_clears_it() {
        let c = config(&[
            ("upstream.proxy", "p.example.com:3128"),
            ("upstream.user", "agent"),
            ("upstream.password", REDACTED),
        ]);
        let mut f = Form::new(FormKind::Proxy, &c);
        assert_eq!(f.fields[0].value, "p.example.com");
        assert_eq!(f.fields[1].value, "3128");
        let changes = f.check().unwrap();
        assert!(!changes.iter().any(|(k, _)| k == "upstream.password"));
        for i in 0..3 {
            typed(&mut f, i, "");
        }
        let changes = f.check().unwrap();
        assert!(changes.contains(&("upstream.password".into(), String::new())));
        typed(&mut f, 0, "p.example.com");
        assert!(f.fields[1].error.as_ref().unwrap().contains("port"));
    }

    #[test]
    fn ping_targets() {
        assert!(check_target("10.0.2.2").is_ok());
        assert!(check_target("gw.example.com").is_ok());
        assert!(check_target("10.0.2").is_err());
        assert!(check_target("bad name").is_err());
    }

    #[test]
    fn editing_moves_the_cursor_by_characters() {
        let mut f = Field::new("x", "x", "ab");
        f.left();
        f.insert('é');
        assert_eq!(f.value, "aéb");
        f.backspace();
        f.home();
        f.delete();
        assert_eq!(f.value, "b");
        f.end();
        assert_eq!(f.cursor, 1);
    }
}
