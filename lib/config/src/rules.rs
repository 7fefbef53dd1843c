//! The rules a configuration obeys, key by key and between keys, checked on
//! every change and on every load: a stored file that breaks a rule is
//! refused like a bad `set`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::domain::{check_dns_name, AllowedDomains, MAX_NAME_LEN};
use crate::schema::{Config, NetMode, SCHEMA_VERSION};

/// The rule of `proxy.port` and `cache.port`, as errors and the key table say it.
pub const PORT_RULE: &str = "a port from 1 to 65535, except 22, 23, 2379, 2380, 4001, 5514, 7001 and 48081-48086 (used by the appliance), different from the other service's port";

/// A value that breaks a rule: the key and the rule, in words, for the
/// administrator. Displayed as `key: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: &str, message: &str) -> Self {
        ConfigError {
            key: key.to_owned(),
            message: message.to_owned(),
        }
    }

    pub fn unknown_key(key: &str) -> Self {
        ConfigError::new(
            key,
            "unknown key (gatewayctl keys lists them; see docs/configuration.md)",
        )
    }
}

/// Ports the appliance keeps for itself or that QGS reserves (SSH, telnet,
/// etcd, fleet, syslog, its internal services): a service may not take them.
pub const RESERVED_PORTS: [u16; 7] = [22, 23, 2379, 2380, 4001, 5514, 7001];
/// The range QGS reserves for its internal services.
pub const RESERVED_PORT_RANGE: std::ops::RangeInclusive<u16> = 48081..=48086;

pub const MAX_DNS_SERVERS: usize = 3;
pub const MAX_NTP_SERVERS: usize = 8;
/// The largest `cache.origin_ca` bundle.
pub const MAX_ORIGIN_CA_BYTES: usize = 64 * 1024;

/// Domains the cache tunnels without interception.
pub const MAX_SPLICE: usize = 50;
/// At most this many entries in `patch.private_destinations`.
pub const MAX_PRIVATE_DESTINATIONS: usize = 16;
pub const MAX_HOSTS: usize = 256;
const MAX_CREDENTIAL_LEN: usize = 255;

fn fail(key: &str, message: impl AsRef<str>) -> Result<(), ConfigError> {
    Err(ConfigError::new(key, message.as_ref()))
}

/// A host name as the administrator may write it in the hosts map, a search
/// domain or a server name: one label or more (an /etc/hosts name may be a
/// single label), letters, digits and hyphens.
pub fn check_host_name(name: &str) -> Result<(), &'static str> {
    if name.contains('.') {
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.parse::<Ipv4Addr>().is_ok() {
            return Err("it is an address, not a name");
        }
        return check_dns_name(name, false);
    }
    if name.is_empty() || name.len() > 63 {
        return Err("a name is 1 to 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || name.starts_with('-')
        || name.ends_with('-')
    {
        return Err("only letters, digits and hyphens (not at either end) are allowed");
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a name is not all digits");
    }
    Ok(())
}

/// An address a host may have: not 0.0.0.0, loopback, multicast, broadcast
/// or in 240.0.0.0/4.
/// The base64 bodies of the PEM certificates in `text`, whitespace removed:
/// line breaks may have become spaces on the kernel command line. Checks the
/// armour and that each body is base64 the agent decodes (standard
/// alphabet, padded); the TLS library parses the certificates.
pub fn pem_certificates(text: &str) -> Result<Vec<String>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut bodies = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(after) = rest.strip_prefix(BEGIN) else {
            return Err(format!(
                "certificate {} does not start with {BEGIN}",
                bodies.len() + 1
            ));
        };
        let Some((body, next)) = after.split_once(END) else {
            return Err(format!("certificate {} has no {END}", bodies.len() + 1));
        };
        let body: String = body.split_whitespace().collect();
        let decodes = || {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(&body)
                .is_ok()
        };
        if body.is_empty() || !decodes() {
            return Err(format!(
                "certificate {} is not base64 between its markers",
                bodies.len() + 1
            ));
        }
        bodies.push(body);
        rest = next.trim_start();
    }
    if bodies.is_empty() {
        return Err(format!("no certificate: expected {BEGIN} ... {END}"));
    }
    Ok(bodies)
}

fn check_unicast(addr: Ipv4Addr) -> Result<(), &'static str> {
    if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || addr.is_broadcast() {
        return Err("it is not a unicast address (0.0.0.0, 127.x, multicast and broadcast addresses are not)");
    }
    if addr.octets()[0] >= 240 {
        return Err("addresses from 240.0.0.0 up are reserved");
    }
    Ok(())
}

fn check_port(key: &str, port: u16) -> Result<(), ConfigError> {
    if port == 0 || RESERVED_PORTS.contains(&port) || RESERVED_PORT_RANGE.contains(&port) {
        return fail(key, format!("{port} is not allowed: {PORT_RULE}"));
    }
    Ok(())
}

fn check_credential(key: &str, value: &str, colon_allowed: bool) -> Result<(), ConfigError> {
    if value.is_empty() || value.chars().count() > MAX_CREDENTIAL_LEN {
        return fail(key, "must be 1 to 255 characters");
    }
    if value.chars().any(char::is_control) {
        return fail(key, "must not contain control characters");
    }
    if !colon_allowed && value.contains(':') {
        return fail(key, "must not contain a colon (Basic authentication separates the user from the password with one)");
    }
    Ok(())
}

fn check_address(key: &str, net: Ipv4Net) -> Result<(), ConfigError> {
    check_unicast(net.addr()).or_else(|rule| fail(key, format!("{net}: {rule}")))?;
    if net.prefix_len() == 0 {
        return fail(key, "the prefix length must be from 1 to 32");
    }
    if net.prefix_len() <= 30 && (net.addr() == net.network() || net.addr() == net.broadcast()) {
        return fail(
            key,
            format!(
                "{net} is the network or broadcast address of {}: give a host address",
                net.trunc()
            ),
        );
    }
    Ok(())
}

impl Config {
    /// Checks every rule; the first broken one is the error. A cross-key
    /// error names the key whose change (or reset) repairs it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != SCHEMA_VERSION {
            return fail(
                "version",
                format!("schema version {} is not {SCHEMA_VERSION}", self.version),
            );
        }
        self.validate_net()?;
        self.validate_names()?;
        self.validate_upstream()?;
        check_port("proxy.port", self.proxy.port)?;
        check_port("cache.port", self.cache.port)?;
        if self.proxy.port == self.cache.port {
            return fail(
                "cache.port",
                format!("{} is already proxy.port: {PORT_RULE}", self.cache.port),
            );
        }
        if let Some(pem) = &self.cache.origin_ca {
            if pem.len() > MAX_ORIGIN_CA_BYTES {
                return fail(
                    "cache.origin_ca",
                    format!("{} bytes: at most 64 KiB", pem.len()),
                );
            }
            if let Err(why) = pem_certificates(pem) {
                return fail("cache.origin_ca", why);
            }
        }
        if self.cache.splice.len() > MAX_SPLICE {
            return fail(
                "cache.splice",
                format!("{} domains: at most {MAX_SPLICE}", self.cache.splice.len()),
            );
        }
        for (i, name) in self.cache.splice.iter().enumerate() {
            if let Err(why) = check_dns_name(name, false) {
                return fail("cache.splice", format!("{name:?}: {why}"));
            }
            if self.cache.splice[..i].contains(name) {
                return fail("cache.splice", format!("{name:?} is listed more than once"));
            }
        }
        self.validate_private_destinations()?;
        AllowedDomains::parse(&self.allowed_domains)
            .map(drop)
            .or_else(|e| fail("allowed_domains", e.to_string()))
    }

    fn validate_private_destinations(&self) -> Result<(), ConfigError> {
        const KEY: &str = "patch.private_destinations";
        let nets = &self.patch.private_destinations;
        if nets.len() > MAX_PRIVATE_DESTINATIONS {
            return fail(
                KEY,
                format!(
                    "{} networks: at most {MAX_PRIVATE_DESTINATIONS}",
                    nets.len()
                ),
            );
        }
        let ranges = crate::schema::private_ranges();
        for (i, net) in nets.iter().enumerate() {
            if net.trunc() != *net {
                return fail(
                    KEY,
                    format!("{net} has host bits set: write {}", net.trunc()),
                );
            }
            if !ranges.iter().any(|r| r.contains(net)) {
                return fail(
                    KEY,
                    format!("{net} is not inside the private ranges 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7"),
                );
            }
            if nets[..i].contains(net) {
                return fail(KEY, format!("{net} is listed more than once"));
            }
        }
        Ok(())
    }

    fn validate_net(&self) -> Result<(), ConfigError> {
        if let Some(net) = self.net.address {
            check_address("net.address", net)?;
        }
        if let Some(gw) = self.net.gateway {
            let Some(net) = self.net.address else {
                return fail(
                    "net.gateway",
                    "needs net.address (the gateway must be inside its subnet)",
                );
            };
            check_unicast(gw).or_else(|rule| fail("net.gateway", format!("{gw}: {rule}")))?;
            if !net.contains(&gw) {
                return fail(
                    "net.gateway",
                    format!(
                        "{gw} is not inside the subnet {} of net.address",
                        net.trunc()
                    ),
                );
            }
            if gw == net.addr() {
                return fail("net.gateway", format!("{gw} is net.address itself"));
            }
            if net.prefix_len() <= 30 && (gw == net.network() || gw == net.broadcast()) {
                return fail(
                    "net.gateway",
                    format!(
                        "{gw} is the network or broadcast address of {}",
                        net.trunc()
                    ),
                );
            }
        }
        if self.net.mode == NetMode::Static && self.net.address.is_none() {
            return fail(
                "net.mode",
                "static needs net.address (an IPv4 address/prefix)",
            );
        }
        if self.dns.servers.len() > MAX_DNS_SERVERS {
            return fail(
                "dns.servers",
                format!(
                    "{} servers given, at most {MAX_DNS_SERVERS}",
                    self.dns.servers.len()
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for &server in &self.dns.servers {
            check_unicast(server)
                .or_else(|rule| fail("dns.servers", format!("{server}: {rule}")))?;
            if !seen.insert(server) {
                return fail("dns.servers", format!("{server} is listed more than once"));
            }
        }
        Ok(())
    }

    fn validate_names(&self) -> Result<(), ConfigError> {
        if let Some(search) = &self.dns.search {
            check_host_name(search)
                .or_else(|rule| fail("dns.search", format!("{search:?}: {rule}")))?;
        }
        if self.hosts.len() > MAX_HOSTS {
            return fail(
                "hosts",
                format!("{} entries given, at most {MAX_HOSTS}", self.hosts.len()),
            );
        }
        for (name, &addr) in &self.hosts {
            check_host_name(name).or_else(|rule| fail("hosts", format!("{name:?}: {rule}")))?;
            check_unicast(addr).or_else(|rule| fail("hosts", format!("{name}={addr}: {rule}")))?;
        }
        if self.ntp.servers.len() > MAX_NTP_SERVERS {
            return fail(
                "ntp.servers",
                format!(
                    "{} servers given, at most {MAX_NTP_SERVERS}",
                    self.ntp.servers.len()
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for server in &self.ntp.servers {
            check_server(server)
                .or_else(|rule| fail("ntp.servers", format!("{server:?}: {rule}")))?;
            if !seen.insert(server) {
                return fail("ntp.servers", format!("{server} is listed more than once"));
            }
        }
        if let Some(pod) = &self.platform.pod {
            check_dns_name(pod, false).or_else(|rule| {
                fail(
                    "platform.pod",
                    format!("{pod:?} is not a domain name: {rule}"),
                )
            })?;
        }
        if self.platform.port == 0 {
            return fail("platform.port", "0 is not a port from 1 to 65535");
        }
        if !(1..=86400).contains(&self.platform.checkin_interval_s) {
            return fail(
                "platform.checkin_interval_s",
                format!(
                    "{} is not a whole number of seconds from 1 to 86400",
                    self.platform.checkin_interval_s
                ),
            );
        }
        if let Some(bundle) = &self.platform.ca_bundle {
            if let Err(rule) = pem_certificates(bundle) {
                return fail("platform.ca_bundle", rule);
            }
        }
        Ok(())
    }

    fn validate_upstream(&self) -> Result<(), ConfigError> {
        let up = &self.upstream;
        if let Some(proxy) = &up.proxy {
            check_server(&proxy.host)
                .or_else(|rule| fail("upstream.proxy", format!("{:?}: {rule}", proxy.host)))?;
            if proxy.port == 0 {
                return fail("upstream.proxy", "the port must be from 1 to 65535");
            }
        }
        if let Some(user) = &up.user {
            check_credential("upstream.user", user, false)?;
            if up.proxy.is_none() {
                return fail("upstream.user", "needs upstream.proxy");
            }
        }
        if let Some(password) = &up.password {
            // The message never quotes the value: it is a secret.
            check_credential("upstream.password", password.expose(), true)?;
            if up.user.is_none() {
                return fail("upstream.password", "needs upstream.user");
            }
        }
        Ok(())
    }
}

/// A server given by name or IPv4 address.
fn check_server(server: &str) -> Result<(), &'static str> {
    match server.parse::<Ipv4Addr>() {
        Ok(addr) => check_unicast(addr),
        Err(_) if server.len() > MAX_NAME_LEN => Err("longer than 253 characters"),
        Err(_) => check_host_name(server),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(changes: &[(&str, &str)]) -> ConfigError {
        Config::default().with_changes(changes).unwrap_err()
    }

    #[test]
    fn reserved_and_equal_ports_are_refused() {
        for p in [
            "22", "23", "2379", "2380", "4001", "5514", "7001", "48081", "48083", "48086",
        ] {
            let err = refused(&[("proxy.port", p)]);
            assert_eq!(err.key, "proxy.port", "{p}");
            assert!(err.message.contains("is not allowed"), "{err}");
            assert_eq!(refused(&[("cache.port", p)]).key, "cache.port");
        }
        for p in ["1", "80", "443", "48080", "48087", "65535"] {
            Config::default()
                .with_changes(&[("proxy.port", p)])
                .unwrap();
        }
        let err = refused(&[("cache.port", "1080")]);
        assert_eq!(
            err.to_string(),
            format!("cache.port: 1080 is already proxy.port: {PORT_RULE}")
        );
        // Swapping both in one change is fine.
        Config::default()
            .with_changes(&[("proxy.port", "8080"), ("cache.port", "1080")])
            .unwrap();
    }

    #[test]
    fn static_network_rules() {
        assert_eq!(refused(&[("net.mode", "static")]).key, "net.mode");
        let ok = [
            ("net.mode", "static"),
            ("net.address", "10.1.2.3/24"),
            ("net.gateway", "10.1.2.1"),
        ];
        Config::default().with_changes(&ok).unwrap();
        for (address, gateway, words) in [
            ("10.1.2.0/24", "", "network or broadcast"),
            ("10.1.2.255/24", "", "network or broadcast"),
            ("127.0.0.5/8", "", "not a unicast"),
            ("224.0.0.5/8", "", "not a unicast"),
            ("10.1.2.3/0", "", "prefix length"),
            (
                "10.1.2.3/24",
                "10.1.3.1",
                "not inside the subnet 10.1.2.0/24",
            ),
            ("10.1.2.3/24", "10.1.2.3", "net.address itself"),
            ("10.1.2.3/24", "10.1.2.255", "network or broadcast"),
        ] {
            let err = refused(&[
                ("net.mode", "static"),
                ("net.address", address),
                ("net.gateway", gateway),
            ]);
            assert!(err.message.contains(words), "{address} {gateway}: {err}");
        }
        // A /31 or /32 has no network or broadcast address to avoid.
        Config::default()
            .with_changes(&[("net.address", "10.0.0.0/31")])
            .unwrap();
        assert_eq!(
            refused(&[("net.gateway", "10.0.0.1")]).message,
            "needs net.address (the gateway must be inside its subnet)"
        );
    }

    #[test]
    fn dns_ntp_hosts_and_pod_rules() {
        assert!(
            refused(&[("dns.servers", "1.1.1.1,1.0.0.1,8.8.8.8,8.8.4.4")])
                .message
                .contains("at most 3")
        );
        assert!(refused(&[("dns.servers", "1.1.1.1,1.1.1.1")])
            .message
            .contains("more than once"));
        assert!(refused(&[("dns.servers", "0.0.0.0")])
            .message
            .contains("unicast"));
        assert!(refused(&[("dns.search", "bad_name.com")])
            .message
            .contains("letters"));
        assert!(refused(&[("hosts", "-x=10.0.0.1")])
            .message
            .contains("\"-x\""));
        assert!(refused(&[("hosts", "x=127.0.0.1")])
            .message
            .contains("x=127.0.0.1"));
        assert!(refused(&[("ntp.servers", "a,b,c,d,e,f,g,h,i")])
            .message
            .contains("at most 8"));
        assert!(refused(&[("ntp.servers", "pool..ntp.org")])
            .message
            .contains("empty label"));
        for (bundle, words) in [
            ("MIIB", "does not start"),
            (
                "-----BEGIN CERTIFICATE----- MI*B -----END CERTIFICATE-----",
                "not base64",
            ),
            ("-----BEGIN CERTIFICATE----- MIIB", "has no"),
            // Found by the pem fuzz target: the alphabet, but not base64
            // (the agent's decoding refused it after the key was set).
            (
                "-----BEGIN CERTIFICATE-----0-----END CERTIFICATE-----",
                "not base64",
            ),
            (
                "-----BEGIN CERTIFICATE----- MIIB== -----END CERTIFICATE-----",
                "not base64",
            ),
            (
                "-----BEGIN CERTIFICATE----- QR== -----END CERTIFICATE-----",
                "not base64",
            ),
            (
                "-----BEGIN CERTIFICATE----- Q=Q= -----END CERTIFICATE-----",
                "not base64",
            ),
        ] {
            let err = refused(&[("platform.ca_bundle", bundle)]);
            assert!(err.message.contains(words), "{bundle}: {err}");
        }
        assert_eq!(
            pem_certificates(
                "-----BEGIN CERTIFICATE-----\nMII\nBQQ==\n-----END CERTIFICATE-----\n\
                 -----BEGIN CERTIFICATE----- QQ== -----END CERTIFICATE-----"
            )
            .unwrap(),
            ["MIIBQQ==", "QQ=="]
        );
        assert!(refused(&[("platform.pod", "qualys")])
            .message
            .contains("two labels"));
        Config::default()
            .with_changes(&[
                ("hosts", "gw=10.0.0.1,api.example.com=10.0.0.2"),
                ("ntp.servers", "time.example.com,10.0.2.2"),
            ])
            .unwrap();
    }

    #[test]
    fn upstream_rules_never_echo_the_password() {
        assert_eq!(
            refused(&[("upstream.user", "u")]).message,
            "needs upstream.proxy"
        );
        let base = [("upstream.proxy", "p.example.com:3128")];
        let c = Config::default().with_changes(&base).unwrap();
        assert_eq!(
            c.with_changes(&[("upstream.password", "pw")])
                .unwrap_err()
                .message,
            "needs upstream.user"
        );
        assert!(c
            .with_changes(&[("upstream.user", "a:b")])
            .unwrap_err()
            .message
            .contains("colon"));
        let err = c
            .with_changes(&[("upstream.user", "u"), ("upstream.password", "sec\u{7}ret")])
            .unwrap_err();
        assert!(!err.to_string().contains("sec"), "{err}");
        assert!(refused(&[("upstream.proxy", "bad host:3128")])
            .message
            .contains("bad host"));
    }

    #[test]
    fn an_origin_ca_is_pem_certificates_only() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIBkzCCATmgAwIBAgIU\nQ2F0YQ==\n-----END CERTIFICATE-----";
        let c = Config::default()
            .with_changes(&[("cache.origin_ca", cert)])
            .unwrap();
        assert_eq!(c.get("cache.origin_ca").unwrap(), cert);
        let key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        let err = refused(&[("cache.origin_ca", key)]);
        assert_eq!(err.key, "cache.origin_ca");
        assert!(err.message.contains("does not start with"), "{err}");
        let err = refused(&[("cache.origin_ca", "-----BEGIN CERTIFICATE-----\nMIIB\n")]);
        assert!(
            err.message.contains("has no -----END CERTIFICATE-----"),
            "{err}"
        );
    }

    #[test]
    fn private_destinations_are_private_networks_listed_once() {
        for (value, says) in [
            ("8.8.8.0/24", "not inside the private ranges"),
            ("127.0.0.0/8", "not inside the private ranges"),
            ("10.0.0.0/7", "not inside the private ranges"),
            ("10.1.2.3/16", "host bits set: write 10.1.0.0/16"),
            ("10.1.0.0/16,10.1.0.0/16", "listed more than once"),
        ] {
            let err = refused(&[("patch.private_destinations", value)]);
            assert_eq!(err.key, "patch.private_destinations", "{value}");
            assert!(err.message.contains(says), "{value}: {err}");
        }
        let mut c = Config::default();
        c.set("patch.private_destinations", "10.20.0.0/16,fd00::/8")
            .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.get("patch.private_destinations").unwrap(),
            "10.20.0.0/16,fd00::/8"
        );
        c.set("patch.private_destinations", "none").unwrap();
        assert!(c.patch.private_destinations.is_empty());
        assert_eq!(c.get("patch.private_destinations").unwrap(), "none");
        c.set("patch.private_destinations", "").unwrap();
        assert_eq!(
            c.get("patch.private_destinations").unwrap(),
            "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
        );
        let err = c.set("patch.private_destinations", "ten").unwrap_err();
        assert!(
            err.to_string().contains("not a network in CIDR form"),
            "{err}"
        );
    }

    #[test]
    fn splice_entries_are_domain_names_listed_once() {
        let err = refused(&[("cache.splice", "pinned.example.com,https://x.com")]);
        assert_eq!(err.key, "cache.splice");
        assert!(err.message.starts_with("\"https://x.com\": "), "{err}");
        let err = refused(&[("cache.splice", "a.example.com,A.example.com")]);
        assert_eq!(err.message, "\"a.example.com\" is listed more than once");
    }

    #[test]
    fn allowed_domains_rules_come_from_the_domain_parser() {
        let err = refused(&[("allowed_domains", "example.com,https://x.com")]);
        assert_eq!(err.key, "allowed_domains");
        assert!(err.message.contains("scheme"), "{err}");
        assert!(refused(&[("allowed_domains", "www.x.com")])
            .message
            .contains("\"x.com\" instead"));
        assert!(refused(&[(
            "allowed_domains",
            "a.com,b.com,c.com,d.com,e.com,f.com,g.com,h.com,i.com,j.com,k.com"
        )])
        .message
        .contains("at most 10"));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let c = Config {
            version: SCHEMA_VERSION + 1,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "version");
    }
}
