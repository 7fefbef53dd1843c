//! The keys of the configuration and their text form: `gateway.<key>=<value>`
//! on the kernel command line, `gatewayctl set <key>=<value>`, and the
//! control API's `set` all go through [`Config::set`], so a value means the
//! same everywhere.
//!
//! Text form: lists are comma-separated (`a,b`), the hosts map is
//! `name=ip,name=ip`, the upstream proxy is `host:port`, booleans are `true`
//! or `false`. An empty value restores the key's default.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::rules::ConfigError;
pub use crate::rules::PORT_RULE;
use crate::schema::{Config, HostPort, NetMode, Secret, TlsVersion, REDACTED};

/// One key: what the documentation, `gatewayctl keys` and the OVF
/// descriptor say about it, and how its text form is read and written. The
/// name is written here once; [`Config::set`] and [`Config::get`] look the
/// key up in [`KEYS`], and the default is [`Config::default`]'s value.
#[derive(Debug, Clone, Copy)]
pub struct KeyInfo {
    pub name: &'static str,
    /// The value's type, in words.
    pub kind: &'static str,
    /// The rule a value must follow.
    pub rule: &'static str,
    /// A secret: shown as [`REDACTED`], never logged.
    pub secret: bool,
    /// The label of the OVF property that sets it at first boot, for the
    /// keys offered there (image/src/ovf.rs), in the order vSphere shows them.
    pub ovf_label: Option<&'static str>,
    /// The values an enumeration takes (the OVF property's value map).
    pub choices: &'static [&'static str],
    /// The text form, unredacted (only [`Config::get`] and
    /// [`Config::changed_keys`] call it).
    get: fn(&Config) -> String,
    /// Sets the value from its trimmed text form, empty meaning the
    /// default; the error says what was expected.
    set: fn(&mut Config, &str) -> Result<(), String>,
}

impl KeyInfo {
    /// The default in text form ("" when unset): that of [`Config::default`].
    pub fn default_text(&self) -> String {
        (self.get)(&Config::default())
    }
}

const fn key(
    name: &'static str,
    kind: &'static str,
    rule: &'static str,
    get: fn(&Config) -> String,
    set: fn(&mut Config, &str) -> Result<(), String>,
) -> KeyInfo {
    KeyInfo {
        name,
        kind,
        rule,
        secret: false,
        ovf_label: None,
        choices: &[],
        get,
        set,
    }
}

const fn ovf(label: &'static str, k: KeyInfo) -> KeyInfo {
    KeyInfo {
        ovf_label: Some(label),
        ..k
    }
}

/// Every key, in the order `get` lists them.
#[rustfmt::skip]
pub const KEYS: &[KeyInfo] = &[
    ovf("Network mode", KeyInfo {
        choices: &["dhcp", "static", "unconfigured"],
        ..key("net.mode", "dhcp | static | unconfigured", "one of dhcp, static, unconfigured; static needs net.address",
            |c| c.net.mode.to_string(),
            |c, v| {
                c.net.mode = match v {
                    "" | "dhcp" => NetMode::Dhcp,
                    "static" => NetMode::Static,
                    "unconfigured" => NetMode::Unconfigured,
                    _ => return Err(format!("{v:?} is not a mode: write dhcp, static or unconfigured")),
                };
                Ok(())
            })
    }),
    ovf("IPv4 address/prefix (static mode)",
        key("net.address", "IPv4 address/prefix", "an IPv4 address with a prefix length from 1 to 32, such as 192.168.1.10/24; not the subnet's network or broadcast address",
            |c| opt(c.net.address),
            |c, v| {
                c.net.address = unless_empty(v, |v| {
                    v.parse::<Ipv4Net>().map_err(|_| format!("{v:?} is not an IPv4 address with a prefix length, such as 192.168.1.10/24"))
                })?;
                Ok(())
            })),
    ovf("Default gateway (static mode)",
        key("net.gateway", "IPv4 address", "an IPv4 address inside the subnet of net.address, other than the address itself",
            |c| opt(c.net.gateway),
            |c, v| { c.net.gateway = unless_empty(v, ipv4)?; Ok(()) })),
    ovf("DNS servers (comma-separated)",
        key("dns.servers", "list of IPv4 addresses", "at most 3 unicast IPv4 addresses, no repeats; empty means those from DHCP",
            |c| join(&c.dns.servers),
            |c, v| { c.dns.servers = list(v).into_iter().map(ipv4).collect::<Result<_, _>>()?; Ok(()) })),
    ovf("DNS search domain",
        key("dns.search", "domain name", "a domain name such as corp.example.com",
            |c| opt(c.dns.search.as_ref()),
            |c, v| { c.dns.search = (!v.is_empty()).then(|| v.to_ascii_lowercase()); Ok(()) })),
    key("hosts", "map name=IPv4", "at most 256 entries name=address, each name a host name (letters, digits, hyphens, dots) listed once",
        |c| join(c.hosts.iter().map(|(n, a)| format!("{n}={a}"))),
        |c, v| {
            let mut hosts = BTreeMap::new();
            for item in list(v) {
                let (name, addr) = item.split_once('=').ok_or_else(|| {
                    format!("{item:?} is not an entry name=address, such as gw.example.com=10.0.0.1")
                })?;
                let name = name.trim().to_ascii_lowercase();
                if hosts.insert(name.clone(), ipv4(addr.trim())?).is_some() {
                    return Err(format!("{name:?} is listed more than once"));
                }
            }
            c.hosts = hosts;
            Ok(())
        }),
    ovf("NTP servers (comma-separated)",
        key("ntp.servers", "list of host names or IPv4 addresses", "at most 8 host names or IPv4 addresses, no repeats; empty means 0.flatcar.pool.ntp.org to 3.flatcar.pool.ntp.org",
            |c| c.ntp.servers.join(","),
            |c, v| { c.ntp.servers = lowercase_list(v); Ok(()) })),
    key("upstream.proxy", "host:port", "a host name or IPv4 address and a port from 1 to 65535, such as proxy.corp.example.com:3128",
        |c| opt(c.upstream.proxy.as_ref()),
        |c, v| {
            c.upstream.proxy = unless_empty(v, |v| {
                let (host, p) = v.rsplit_once(':').ok_or_else(|| {
                    format!("{v:?} has no port: write host:port, such as proxy.example.com:3128")
                })?;
                Ok(HostPort {
                    host: host.to_ascii_lowercase(),
                    port: p.parse().ok().filter(|&p| p != 0)
                        .ok_or_else(|| format!("{p:?} is not a port from 1 to 65535"))?,
                })
            })?;
            Ok(())
        }),
    key("upstream.user", "text", "1 to 255 printable characters without a colon; needs upstream.proxy",
        |c| opt(c.upstream.user.as_ref()),
        |c, v| { c.upstream.user = (!v.is_empty()).then(|| v.to_owned()); Ok(()) }),
    KeyInfo {
        secret: true,
        ..key("upstream.password", "secret text", "1 to 255 printable characters; needs upstream.user",
            |c| opt(c.upstream.password.as_ref().map(Secret::expose)),
            |c, v| { c.upstream.password = (!v.is_empty()).then(|| Secret::new(v)); Ok(()) })
    },
    key("platform.pod", "domain name", "the POD's domain suffix, such as qg1.apps.qualys.com",
        |c| opt(c.platform.pod.as_ref()),
        |c, v| { c.platform.pod = (!v.is_empty()).then(|| v.to_ascii_lowercase()); Ok(()) }),
    key("platform.port", "port", "a port from 1 to 65535: the platform's HTTPS port (443 unless a platform simulator listens elsewhere)",
        |c| c.platform.port.to_string(),
        |c, v| { c.platform.port = or_default(v, |d| d.platform.port, |v| number(v, 1, 65535, "a port"))?; Ok(()) }),
    key("platform.checkin_interval_s", "integer (seconds)", "a whole number of seconds from 1 to 86400 between two check-ins",
        |c| c.platform.checkin_interval_s.to_string(),
        |c, v| {
            c.platform.checkin_interval_s = or_default(v, |d| d.platform.checkin_interval_s, |v| number(v, 1, 86400, "a whole number of seconds"))?;
            Ok(())
        }),
    key("platform.ca_bundle", "PEM certificates", "one or more PEM certificates (-----BEGIN CERTIFICATE----- base64 -----END CERTIFICATE-----; line breaks may be spaces) trusted for the platform besides the built-in roots",
        |c| opt(c.platform.ca_bundle.as_ref()),
        |c, v| { c.platform.ca_bundle = (!v.is_empty()).then(|| v.to_owned()); Ok(()) }),
    key("proxy.port", "port", PORT_RULE,
        |c| c.proxy.port.to_string(),
        |c, v| { c.proxy.port = or_default(v, |d| d.proxy.port, port)?; Ok(()) }),
    key("cache.port", "port", PORT_RULE,
        |c| c.cache.port.to_string(),
        |c, v| { c.cache.port = or_default(v, |d| d.cache.port, port)?; Ok(()) }),
    key("cache.enabled", "boolean", "true or false",
        |c| c.cache.enabled.to_string(),
        |c, v| { c.cache.enabled = or_default(v, |d| d.cache.enabled, boolean)?; Ok(()) }),
    key("cache.origin_ca", "PEM certificates", "one or more PEM certificates (line breaks may be spaces), at most 64 KiB, trusted for origins besides the built-in roots: a corporate proxy upstream that re-signs traffic",
        |c| opt(c.cache.origin_ca.as_ref()),
        |c, v| { c.cache.origin_ca = (!v.is_empty()).then(|| v.to_owned()); Ok(()) }),
    key("cache.splice", "list of domain names", "at most 50 domain names, no repeats; each also covers its subdomains, which the cache tunnels without intercepting TLS (for clients that pin certificates)",
        |c| c.cache.splice.join(","),
        |c, v| { c.cache.splice = lowercase_list(v); Ok(()) }),
    key("patch.enabled", "boolean", "true or false; true needs a patch disk of at least patch.min_disk_gib",
        |c| c.patch.enabled.to_string(),
        |c, v| { c.patch.enabled = or_default(v, |d| d.patch.enabled, boolean)?; Ok(()) }),
    key("patch.min_disk_gib", "integer (GiB)", "a whole number of GiB from 1 to 65536: the smallest second disk patch mode accepts",
        |c| c.patch.min_disk_gib.to_string(),
        |c, v| {
            c.patch.min_disk_gib = or_default(v, |d| d.patch.min_disk_gib, |v| number(v, 1, 65536, "a whole number of GiB"))?;
            Ok(())
        }),
    key("patch.private_destinations", "list of networks | none", "none, or at most 16 networks in CIDR form (10.20.0.0/16) inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or fc00::/7, no repeats: the private networks patch-mode clients may reach; empty means all four",
        |c| if c.patch.private_destinations.is_empty() { "none".to_owned() } else { join(&c.patch.private_destinations) },
        |c, v| {
            c.patch.private_destinations = match v {
                "" => Config::default().patch.private_destinations,
                "none" => Vec::new(),
                v => list(v)
                    .into_iter()
                    .map(|n| n.parse().map_err(|_| format!("{n:?} is not a network in CIDR form, such as 10.20.0.0/16")))
                    .collect::<Result<_, _>>()?,
            };
            Ok(())
        }),
    key("allowed_domains", "list of domain[:port]", "at most 10 domain names or IPv4 addresses, each optionally with :port; no scheme, no path, no www. prefix, no repeats",
        |c| c.allowed_domains.join(","),
        |c, v| { c.allowed_domains = list(v).into_iter().map(str::to_owned).collect(); Ok(()) }),
    KeyInfo {
        choices: &["1.2", "1.3"],
        ..key("tls.min_version", "1.2 | 1.3", "1.2 or 1.3 (TLS 1.0 and 1.1 are not offered: the TLS library does not speak them)",
            |c| c.tls.min_version.to_string(),
            |c, v| {
                c.tls.min_version = match v {
                    "" | "1.2" => TlsVersion::V1_2,
                    "1.3" => TlsVersion::V1_3,
                    "1.0" | "1.1" => {
                        return Err(format!("TLS {v} is not supported: the TLS library does not speak 1.0 or 1.1; write 1.2 or 1.3"))
                    }
                    _ => return Err(format!("{v:?} is not a TLS version: write 1.2 or 1.3")),
                };
                Ok(())
            })
    },
    key("ssh.enabled", "boolean", "true or false",
        |c| c.ssh.enabled.to_string(),
        |c, v| { c.ssh.enabled = or_default(v, |d| d.ssh.enabled, boolean)?; Ok(()) }),
];

/// The description of `name`, if it is a key.
pub fn key_info(name: &str) -> Option<&'static KeyInfo> {
    KEYS.iter().find(|k| k.name == name)
}

/// The text form of an optional value: "" when unset.
fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A list's text form: its items' text forms, comma-separated.
fn join(v: impl IntoIterator<Item = impl ToString>) -> String {
    v.into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// None for an empty value, else what `parse` makes of it.
fn unless_empty<T>(
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

/// The default's field for an empty value, else what `parse` makes of it.
fn or_default<T>(
    value: &str,
    field: impl FnOnce(Config) -> T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    if value.is_empty() {
        Ok(field(Config::default()))
    } else {
        parse(value)
    }
}

/// Splits a comma-separated list, trimming blanks and dropping empty items.
fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A list of names, lowercased.
fn lowercase_list(value: &str) -> Vec<String> {
    list(value)
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect()
}

fn ipv4(value: &str) -> Result<Ipv4Addr, String> {
    value.parse().map_err(|_| {
        format!("{value:?} is not an IPv4 address (four numbers 0-255 separated by dots)")
    })
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean: write true or false")),
    }
}

fn port(value: &str) -> Result<u16, String> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{value:?} is not a port number: {PORT_RULE}"));
    }
    value
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{value:?} is out of range: {PORT_RULE}"))
}

/// A number from `min` to `max`; the error says `what` is expected.
fn number<T: TryFrom<u64>>(value: &str, min: u64, max: u64, what: &str) -> Result<T, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("{value:?} is not {what} from {min} to {max}"))
}

impl Config {
    /// Sets `key` from its text form; an empty value restores the default.
    /// Checks the syntax only: call [`Config::validate`] before keeping the
    /// result ([`Config::with_changes`] does both).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let k = key_info(key).ok_or_else(|| ConfigError::unknown_key(key))?;
        (k.set)(self, value.trim()).map_err(|why| ConfigError::new(k.name, &why))
    }

    /// The text form of `key`; a secret shows as [`REDACTED`] when set.
    pub fn get(&self, key: &str) -> Result<String, ConfigError> {
        let k = key_info(key).ok_or_else(|| ConfigError::unknown_key(key))?;
        let text = (k.get)(self);
        Ok(if k.secret && !text.is_empty() {
            REDACTED.to_owned()
        } else {
            text
        })
    }

    /// Every key with its text form, in [`KEYS`] order, secrets redacted.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        KEYS.iter()
            .map(|k| (k.name, self.get(k.name).unwrap_or_default()))
            .collect()
    }

    /// This configuration with `changes` applied, if the result is valid as
    /// a whole; `self` is untouched either way, so a refused change leaves
    /// nothing half-applied.
    pub fn with_changes<K, V>(&self, changes: &[(K, V)]) -> Result<Config, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut next = self.clone();
        for (k, v) in changes {
            next.set(k.as_ref(), v.as_ref())?;
        }
        next.validate()?;
        Ok(next)
    }

    /// The keys whose text form differs between `self` and `other`.
    pub fn changed_keys(&self, other: &Config) -> Vec<&'static str> {
        KEYS.iter()
            // Unredacted: the redacted form would hide a changed password.
            .filter(|k| (k.get)(self) != (k.get)(other))
            .map(|k| k.name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_its_default() {
        // The factory appliance's values (QGS's where it has them); every
        // other key is unset.
        let factory = [
            ("net.mode", "dhcp"),
            ("platform.port", "443"),
            ("platform.checkin_interval_s", "180"),
            ("proxy.port", "1080"),
            ("cache.port", "8080"),
            ("cache.enabled", "true"),
            ("patch.enabled", "false"),
            ("patch.min_disk_gib", "250"),
            (
                "patch.private_destinations",
                "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
            ),
            ("tls.min_version", "1.2"),
            ("ssh.enabled", "false"),
        ];
        let config = Config::default();
        for k in KEYS {
            let want = factory
                .iter()
                .find(|(n, _)| *n == k.name)
                .map_or("", |f| f.1);
            assert_eq!(k.default_text(), want, "{}", k.name);
            assert_eq!(config.get(k.name).unwrap(), want, "{}", k.name);
            let mut c = config.clone();
            c.set(k.name, "").unwrap();
            assert_eq!(c, config, "empty value restores the default of {}", k.name);
        }
    }

    #[test]
    fn text_forms_round_trip() {
        let examples = [
            ("net.mode", "static"),
            ("net.address", "192.168.1.10/24"),
            ("net.gateway", "192.168.1.1"),
            ("dns.servers", "10.0.0.53,10.0.1.53"),
            ("dns.search", "corp.example.com"),
            ("hosts", "a.example.com=10.0.0.1,b=10.0.0.2"),
            ("ntp.servers", "10.0.2.2,ntp.example.com"),
            ("upstream.proxy", "proxy.example.com:3128"),
            ("upstream.user", "agent"),
            ("platform.pod", "qg1.apps.qualys.com"),
            ("platform.port", "8443"),
            ("platform.checkin_interval_s", "5"),
            (
                "platform.ca_bundle",
                "-----BEGIN CERTIFICATE----- TUlJQg== -----END CERTIFICATE-----",
            ),
            ("proxy.port", "3128"),
            ("cache.port", "8443"),
            ("cache.enabled", "false"),
            (
                "cache.origin_ca",
                "-----BEGIN CERTIFICATE----- TUlJQg== -----END CERTIFICATE-----",
            ),
            ("cache.splice", "pinned.example.com,updates.example.org"),
            ("patch.enabled", "true"),
            ("patch.min_disk_gib", "1"),
            ("patch.private_destinations", "10.20.0.0/16,fd00::/8"),
            ("allowed_domains", "example.com,10.1.2.3:8443"),
            ("tls.min_version", "1.3"),
            ("ssh.enabled", "true"),
        ];
        let mut c = Config::default();
        for (k, v) in examples {
            c.set(k, v).unwrap();
            assert_eq!(c.get(k).unwrap(), v);
        }
        c.validate().unwrap();
        assert_eq!(
            examples.len() + 1,
            KEYS.len(),
            "every key but the password has an example"
        );
    }

    #[test]
    fn a_password_is_never_shown() {
        let c = Config::default()
            .with_changes(&[
                ("upstream.proxy", "p.example.com:3128"),
                ("upstream.user", "u"),
                ("upstream.password", "hunter2"),
            ])
            .unwrap();
        assert_eq!(c.get("upstream.password").unwrap(), REDACTED);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", c.to_pairs()).contains("hunter2"));
        let other = c.with_changes(&[("upstream.password", "other")]).unwrap();
        assert_eq!(c.changed_keys(&other), ["upstream.password"]);
    }

    #[test]
    fn syntax_errors_name_the_key() {
        let c = Config::default();
        for (k, v, words) in [
            ("net.mode", "auto", "dhcp, static or unconfigured"),
            ("net.address", "10.0.0.1", "prefix length"),
            ("net.gateway", "10.0.0", "not an IPv4 address"),
            (
                "dns.servers",
                "1.1.1.1,dns.google",
                "\"dns.google\" is not an IPv4",
            ),
            ("hosts", "a.example.com", "name=address"),
            ("hosts", "a=10.0.0.1,A=10.0.0.2", "more than once"),
            ("upstream.proxy", "proxy.example.com", "no port"),
            ("upstream.proxy", "proxy.example.com:0", "1 to 65535"),
            ("proxy.port", "-1", "not a port"),
            ("proxy.port", "70000", "out of range"),
            ("cache.enabled", "yes", "true or false"),
            ("platform.port", "0", "1 to 65535"),
            ("platform.checkin_interval_s", "0", "from 1 to 86400"),
            ("tls.min_version", "1.1", "does not speak"),
            ("no.such.key", "x", "unknown key"),
        ] {
            let err = c.with_changes(&[(k, v)]).unwrap_err();
            assert_eq!(err.key, k);
            let text = err.to_string();
            assert!(text.starts_with(&format!("{k}: ")), "{text}");
            assert!(text.contains(words), "{k}={v}: {text}");
        }
    }

    #[test]
    fn a_refused_change_leaves_the_config_untouched() {
        let c = Config::default();
        let before = c.clone();
        assert!(c
            .with_changes(&[("proxy.port", "3128"), ("cache.port", "22")])
            .is_err());
        assert_eq!(c, before);
    }
}
