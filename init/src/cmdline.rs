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
