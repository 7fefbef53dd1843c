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
use crate::schema::{Config, HostPort, NetMode, Secret, TlsVersion, REDACTED};

/// What the documentation and `gatewayctl keys` say about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: &'static str,
    /// The value's type, in words.
    pub kind: &'static str,
    /// The default in text form ("" when unset).
    pub default: &'static str,
    /// The rule a value must follow.
    pub rule: &'static str,
    /// A secret: shown as [`REDACTED`], never logged.
    pub secret: bool,
}

const fn key(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    rule: &'static str,
) -> KeyInfo {
    KeyInfo {
        name,
        kind,
        default,
        rule,
        secret: false,
    }
}

/// The port rule, shared by `proxy.port` and `cache.port`.
pub const PORT_RULE: &str = "a port from 1 to 65535, except 22, 23, 2379, 2380, 4001, 5514, 7001 and 48081-48086 (used by the appliance), different from the other service's port";

/// Every key, in the order `get` lists them.
pub const KEYS: &[KeyInfo] = &[
    key("net.mode", "dhcp | static | unconfigured", "dhcp", "one of dhcp, static, unconfigured; static needs net.address"),
    key("net.address", "IPv4 address/prefix", "", "an IPv4 address with a prefix length from 1 to 32, such as 192.168.1.10/24; not the subnet's network or broadcast address"),
    key("net.gateway", "IPv4 address", "", "an IPv4 address inside the subnet of net.address, other than the address itself"),
    key("dns.servers", "list of IPv4 addresses", "", "at most 3 unicast IPv4 addresses, no repeats; empty means those from DHCP"),
    key("dns.search", "domain name", "", "a domain name such as corp.example.com"),
    key("hosts", "map name=IPv4", "", "at most 256 entries name=address, each name a host name (letters, digits, hyphens, dots) listed once"),
    key("ntp.servers", "list of host names or IPv4 addresses", "", "at most 8 host names or IPv4 addresses, no repeats; empty means 0.flatcar.pool.ntp.org to 3.flatcar.pool.ntp.org"),
    key("upstream.proxy", "host:port", "", "a host name or IPv4 address and a port from 1 to 65535, such as proxy.corp.example.com:3128"),
    key("upstream.user", "text", "", "1 to 255 printable characters without a colon; needs upstream.proxy"),
    KeyInfo {
        secret: true,
        ..key("upstream.password", "secret text", "", "1 to 255 printable characters; needs upstream.user")
    },
    key("platform.pod", "domain name", "", "the POD's domain suffix, such as qg1.apps.qualys.com"),
    key("platform.port", "port", "443", "a port from 1 to 65535: the platform's HTTPS port (443 unless a platform simulator listens elsewhere)"),
    key("platform.checkin_interval_s", "integer (seconds)", "180", "a whole number of seconds from 1 to 86400 between two check-ins"),
    key("platform.ca_bundle", "PEM certificates", "", "one or more PEM certificates (-----BEGIN CERTIFICATE----- base64 -----END CERTIFICATE-----; line breaks may be spaces) trusted for the platform besides the built-in roots"),
    key("proxy.port", "port", "1080", PORT_RULE),
    key("cache.port", "port", "8080", PORT_RULE),
    key("cache.enabled", "boolean", "true", "true or false"),
    key("cache.origin_ca", "PEM certificates", "", "one or more PEM certificates (line breaks may be spaces), at most 64 KiB, trusted for origins besides the built-in roots: a corporate proxy upstream that re-signs traffic"),
    key("cache.splice", "list of domain names", "", "at most 50 domain names, no repeats; each also covers its subdomains, which the cache tunnels without intercepting TLS (for clients that pin certificates)"),
    key("patch.enabled", "boolean", "false", "true or false; true needs a patch disk of at least patch.min_disk_gib"),
    key("patch.min_disk_gib", "integer (GiB)", "250", "a whole number of GiB from 1 to 65536: the smallest second disk patch mode accepts"),
    key("allowed_domains", "list of domain[:port]", "", "at most 10 domain names or IPv4 addresses, each optionally with :port; no scheme, no path, no www. prefix, no repeats"),
    key("tls.min_version", "1.2 | 1.3", "1.2", "1.2 or 1.3 (TLS 1.0 and 1.1 are not offered: the TLS library does not speak them)"),
    key("ssh.enabled", "boolean", "false", "true or false"),
];

/// The description of `name`, if it is a key.
pub fn key_info(name: &str) -> Option<&'static KeyInfo> {
    KEYS.iter().find(|k| k.name == name)
}

fn syntax(key: &str, expected: &str) -> ConfigError {
    ConfigError::new(key, expected)
}

/// Splits a comma-separated list, trimming blanks and dropping empty items.
fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn ipv4(key: &str, value: &str) -> Result<Ipv4Addr, ConfigError> {
    value.parse().map_err(|_| {
        syntax(
            key,
            &format!("{value:?} is not an IPv4 address (four numbers 0-255 separated by dots)"),
        )
    })
}

fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(syntax(
            key,
            &format!("{value:?} is not a boolean: write true or false"),
        )),
    }
}

fn port(key: &str, value: &str) -> Result<u16, ConfigError> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(
            key,
            &format!("{value:?} is not a port number: {PORT_RULE}"),
        ));
    }
    value
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| syntax(key, &format!("{value:?} is out of range: {PORT_RULE}")))
}

/// A number from `min` to `max`; the error says `what` is expected.
fn number<T: TryFrom<u64>>(
    key: &str,
    value: &str,
    min: u64,
    max: u64,
    what: &str,
) -> Result<T, ConfigError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| syntax(key, &format!("{value:?} is not {what} from {min} to {max}")))
}

impl Config {
    /// Sets `key` from its text form; an empty value restores the default.
    /// Checks the syntax only: call [`Config::validate`] before keeping the
    /// result ([`Config::with_changes`] does both).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        let default = Config::default();
        let empty = value.is_empty();
        match key {
            "net.mode" => {
                self.net.mode = match value {
                    "" | "dhcp" => NetMode::Dhcp,
                    "static" => NetMode::Static,
                    "unconfigured" => NetMode::Unconfigured,
                    _ => return Err(syntax(key, &format!("{value:?} is not a mode: write dhcp, static or unconfigured"))),
                }
            }
            "net.address" => {
                self.net.address = if empty {
                    None
                } else {
                    Some(value.parse::<Ipv4Net>().map_err(|_| {
                        syntax(key, &format!("{value:?} is not an IPv4 address with a prefix length, such as 192.168.1.10/24"))
                    })?)
                }
            }
            "net.gateway" => self.net.gateway = if empty { None } else { Some(ipv4(key, value)?) },
            "dns.servers" => {
                self.dns.servers = list(value).into_iter().map(|s| ipv4(key, s)).collect::<Result<_, _>>()?
            }
            "dns.search" => self.dns.search = (!empty).then(|| value.to_ascii_lowercase()),
            "hosts" => {
                let mut hosts = BTreeMap::new();
                for item in list(value) {
                    let (name, addr) = item.split_once('=').ok_or_else(|| {
                        syntax(key, &format!("{item:?} is not an entry name=address, such as gw.example.com=10.0.0.1"))
                    })?;
                    let name = name.trim().to_ascii_lowercase();
                    if hosts.insert(name.clone(), ipv4(key, addr.trim())?).is_some() {
                        return Err(ConfigError::new(key, &format!("{name:?} is listed more than once")));
                    }
                }
                self.hosts = hosts;
            }
            "ntp.servers" => self.ntp.servers = list(value).into_iter().map(str::to_ascii_lowercase).collect(),
            "upstream.proxy" => {
                self.upstream.proxy = if empty {
                    None
                } else {
                    let (host, p) = value.rsplit_once(':').ok_or_else(|| {
                        syntax(key, &format!("{value:?} has no port: write host:port, such as proxy.example.com:3128"))
                    })?;
                    Some(HostPort {
                        host: host.to_ascii_lowercase(),
                        port: p.parse().ok().filter(|&p| p != 0).ok_or_else(|| {
                            syntax(key, &format!("{p:?} is not a port from 1 to 65535"))
                        })?,
                    })
                }
            }
            "upstream.user" => self.upstream.user = (!empty).then(|| value.to_owned()),
            "upstream.password" => self.upstream.password = (!empty).then(|| Secret::new(value)),
            "platform.pod" => self.platform.pod = (!empty).then(|| value.to_ascii_lowercase()),
            "platform.port" => {
                self.platform.port = if empty {
                    default.platform.port
                } else {
                    number(key, value, 1, 65535, "a port")?
                }
            }
            "platform.checkin_interval_s" => {
                self.platform.checkin_interval_s = if empty {
                    default.platform.checkin_interval_s
                } else {
                    number(key, value, 1, 86400, "a whole number of seconds")?
                }
            }
            "platform.ca_bundle" => self.platform.ca_bundle = (!empty).then(|| value.to_owned()),
            "proxy.port" => self.proxy.port = if empty { default.proxy.port } else { port(key, value)? },
            "cache.port" => self.cache.port = if empty { default.cache.port } else { port(key, value)? },
            "cache.enabled" => self.cache.enabled = if empty { default.cache.enabled } else { boolean(key, value)? },
            "cache.origin_ca" => self.cache.origin_ca = (!empty).then(|| value.to_owned()),
            "cache.splice" => self.cache.splice = list(value).into_iter().map(str::to_ascii_lowercase).collect(),
            "patch.enabled" => self.patch.enabled = if empty { default.patch.enabled } else { boolean(key, value)? },
            "patch.min_disk_gib" => {
                self.patch.min_disk_gib = if empty {
                    default.patch.min_disk_gib
                } else {
                    number(key, value, 1, 65536, "a whole number of GiB")?
                }
            }
            "allowed_domains" => self.allowed_domains = list(value).into_iter().map(str::to_owned).collect(),
            "tls.min_version" => {
                self.tls.min_version = match value {
                    "" | "1.2" => TlsVersion::V1_2,
                    "1.3" => TlsVersion::V1_3,
                    "1.0" | "1.1" => {
                        return Err(ConfigError::new(key, &format!("TLS {value} is not supported: the TLS library does not speak 1.0 or 1.1; write 1.2 or 1.3")))
                    }
                    _ => return Err(syntax(key, &format!("{value:?} is not a TLS version: write 1.2 or 1.3"))),
                }
            }
            "ssh.enabled" => self.ssh.enabled = if empty { default.ssh.enabled } else { boolean(key, value)? },
            _ => return Err(ConfigError::unknown_key(key)),
        }
        Ok(())
    }

    /// The text form of `key`; a secret shows as [`REDACTED`] when set.
    pub fn get(&self, key: &str) -> Result<String, ConfigError> {
        let join = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(",");
        let opt = |v: Option<String>| v.unwrap_or_default();
        Ok(match key {
            "net.mode" => self.net.mode.to_string(),
            "net.address" => opt(self.net.address.map(|a| a.to_string())),
            "net.gateway" => opt(self.net.gateway.map(|a| a.to_string())),
            "dns.servers" => join(&mut self.dns.servers.iter().map(|a| a.to_string())),
            "dns.search" => opt(self.dns.search.clone()),
            "hosts" => join(&mut self.hosts.iter().map(|(n, a)| format!("{n}={a}"))),
            "ntp.servers" => self.ntp.servers.join(","),
            "upstream.proxy" => opt(self.upstream.proxy.as_ref().map(|p| p.to_string())),
            "upstream.user" => opt(self.upstream.user.clone()),
            "upstream.password" => {
                opt(self.upstream.password.as_ref().map(|_| REDACTED.to_owned()))
            }
            "platform.pod" => opt(self.platform.pod.clone()),
            "platform.port" => self.platform.port.to_string(),
            "platform.checkin_interval_s" => self.platform.checkin_interval_s.to_string(),
            "platform.ca_bundle" => opt(self.platform.ca_bundle.clone()),
            "proxy.port" => self.proxy.port.to_string(),
            "cache.port" => self.cache.port.to_string(),
            "cache.enabled" => self.cache.enabled.to_string(),
            "cache.origin_ca" => opt(self.cache.origin_ca.clone()),
            "cache.splice" => self.cache.splice.join(","),
            "patch.enabled" => self.patch.enabled.to_string(),
            "patch.min_disk_gib" => self.patch.min_disk_gib.to_string(),
            "allowed_domains" => self.allowed_domains.join(","),
            "tls.min_version" => self.tls.min_version.to_string(),
            "ssh.enabled" => self.ssh.enabled.to_string(),
            _ => return Err(ConfigError::unknown_key(key)),
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
            .map(|k| k.name)
            .filter(|k| match *k {
                // The redacted form hides a changed password.
                "upstream.password" => self.upstream.password != other.upstream.password,
                _ => self.get(k).ok() != other.get(k).ok(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_its_default() {
        let config = Config::default();
        for k in KEYS {
            assert_eq!(config.get(k.name).unwrap(), k.default, "{}", k.name);
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
