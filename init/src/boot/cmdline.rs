//! The kernel command line's `gateway.<key>=<value>` settings.
//!
//! Parsed once from /proc/cmdline. Only the `gateway.` namespace is ours; the
//! rest belongs to the kernel. Quoted values (`gateway.x="a b"`) are honoured
//! the way the kernel splits them.

use std::collections::BTreeMap;

/// The `gateway.*` settings of a command line, keys without the prefix.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GatewayArgs(pub BTreeMap<String, String>);

impl GatewayArgs {
    pub fn parse(cmdline: &str) -> Self {
        let mut map = BTreeMap::new();
        for word in split_words(cmdline) {
            if let Some(rest) = word.strip_prefix("gateway.") {
                let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
                if !key.is_empty() {
                    map.insert(key.to_owned(), value.to_owned());
                }
            }
        }
        GatewayArgs(map)
    }

    pub fn read() -> Self {
        Self::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// `text` (a kernel log line that may quote the command line) with the
/// value of every secret key (`gateway.upstream.password=...`) replaced by
/// the redaction placeholder, quoted or not: the kernel prints its command
/// line at boot, and the log files go into diagnostics reports.
pub fn redact_secrets(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for key in gateway_config::KEYS.iter().filter(|k| k.secret) {
        let needle = format!("gateway.{}=", key.name);
        let mut from = 0;
        while let Some(at) = out[from..].find(&needle) {
            let start = from + at + needle.len();
            let rest = &out[start..];
            let len = match rest.strip_prefix('"') {
                Some(quoted) => quoted.find('"').map_or(rest.len(), |q| q + 2),
                None => rest.find(char::is_whitespace).unwrap_or(rest.len()),
            };
            let mut s = out.into_owned();
            s.replace_range(start..start + len, gateway_config::REDACTED);
            from = start + gateway_config::REDACTED.len();
            out = std::borrow::Cow::Owned(s);
        }
    }
    out
}

/// Splits on whitespace outside double quotes and drops the quotes, as the
/// kernel's `next_arg` does.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_a_logged_command_line() {
        let line = "Kernel command line: console=ttyS0 gateway.upstream.password=S3cret gateway.upstream.user=u";
        assert_eq!(
            redact_secrets(line),
            "Kernel command line: console=ttyS0 gateway.upstream.password=******** gateway.upstream.user=u"
        );
        let quoted =
            "Command line: gateway.upstream.password=\"a b\" quiet gateway.upstream.password=x";
        assert_eq!(
            redact_secrets(quoted),
            "Command line: gateway.upstream.password=******** quiet gateway.upstream.password=********"
        );
        assert!(matches!(
            redact_secrets("nothing secret here"),
            std::borrow::Cow::Borrowed(_)
        ));
        // Every secret key is covered, not only the one named above.
        for key in gateway_config::KEYS.iter().filter(|k| k.secret) {
            let line = format!("gateway.{}=zzz", key.name);
            assert!(!redact_secrets(&line).contains("zzz"), "{}", key.name);
        }
    }

    #[test]
    fn keeps_only_gateway_keys() {
        let a = GatewayArgs::parse(
            "root=PARTUUID=x ro quiet gateway.selftest=orphans gateway.net.mode=dhcp console=ttyS0\n",
        );
        assert_eq!(a.get("selftest"), Some("orphans"));
        assert_eq!(a.get("net.mode"), Some("dhcp"));
        assert_eq!(a.0.len(), 2);
    }

    #[test]
    fn quoted_values_and_bare_keys() {
        let a = GatewayArgs::parse(r#"gateway.dns.search="a b" gateway.flag gateway.="x""#);
        assert_eq!(a.get("dns.search"), Some("a b"));
        assert_eq!(a.get("flag"), Some(""));
        assert_eq!(a.0.len(), 2);
    }
}
