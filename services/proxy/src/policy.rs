//! The proxy's connection security: which clients may use the proxy and which
//! destinations (host and port) they may reach through it.
//!
//! Sans-IO: no sockets, no clock, no DNS. The server asks [`Policy`] twice per
//! request, [`Policy::check_client`] when a connection is accepted and
//! [`Policy::check_destination`] once the request head names a target, and
//! answers a [`Decision::Deny`] with a 403 whose body is the [`Refusal`]'s
//! `Display`.
//!
//! The two modes:
//! - [`Mode::Cache`] (the default): any client address may connect, but only
//!   the platform domains ([`PLATFORM_DOMAINS`], [`OS_UPDATE_HOST`]) and the
//!   administrator's [`AllowedDomains`] (at most [`MAX_ALLOWED_DOMAINS`]) are
//!   reachable. A domain covers itself and its subdomains.
//! - [`Mode::Patch`]: any destination host is reachable, but only clients
//!   from the agent networks (by default [`default_agent_networks`]) may
//!   connect.
//!
//! In both modes the port rule holds: CONNECT goes to 443 and plain HTTP to 80
//! or 443, unless an allowed domain entry written `name:port` opens another
//! port for the hosts it covers.
//!
//! Hosts arrive from the network and may be anything: they are checked here
//! (length, characters, labels) and anything that is not a host name or an IP
//! literal is denied, never a panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// The host the appliance fetches its OS updates from. QGS (the Qualys
/// Gateway Service) uses it, and it stays the appliance's update host until
/// the project has its own, so it is reachable in cache mode.
pub const OS_UPDATE_HOST: &str = "update.release.flatcar-linux.net";

/// The Qualys platform domains, reachable in cache mode without configuration.
pub const PLATFORM_DOMAINS: [&str; 8] = [
    "qualys.com",
    "qualys.eu",
    "qualys.ca",
    "qualys.in",
    "qualys.ae",
    "qualys.co.uk",
    "qualys.com.au",
    "qualysksa.com",
];

/// How many `allowed_domains` entries an administrator may add.
pub const MAX_ALLOWED_DOMAINS: usize = 10;

/// Longest DNS name in text form, without the trailing dot (RFC 1035 §2.3.4:
/// 255 octets on the wire).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
/// How much of a refused host is echoed back in a refusal.
const MAX_ECHOED_HOST: usize = 255;

/// Why an `allowed_domains` entry, or the list of them, was refused. Each
/// message names the entry and the rule it broke, for the administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedDomainError {
    #[error("allowed domain entry is empty: give a domain name such as \"example.com\"")]
    Empty,
    #[error("allowed domain {entry:?} contains whitespace: give only the domain name, such as \"example.com\"")]
    HasWhitespace { entry: String },
    #[error("allowed domain {entry:?} has a URL scheme: give only the domain name, without \"http://\" or \"https://\"")]
    HasScheme { entry: String },
    #[error("allowed domain {entry:?} has a path: give only the domain name, without \"/...\"")]
    HasPath { entry: String },
    #[error("allowed domain {entry:?} starts with \"www.\": give {suggestion:?} instead, a domain also covers its subdomains")]
    HasWwwPrefix { entry: String, suggestion: String },
    #[error(
        "allowed domain {entry:?} has an invalid port: write name:port with a port from 1 to 65535"
    )]
    InvalidPort { entry: String },
    #[error("allowed domain {entry:?} is an IPv6 address: only domain names and IPv4 addresses are supported")]
    Ipv6Address { entry: String },
    #[error("allowed domain {entry:?} is not a valid DNS name: {reason}")]
    InvalidName { entry: String, reason: &'static str },
    #[error(
        "too many allowed domains: {count} given, at most {MAX_ALLOWED_DOMAINS} are supported"
    )]
    TooMany { count: usize },
    #[error("allowed domain {entry:?} is listed more than once")]
    Duplicate { entry: String },
}

/// One validated `allowed_domains` entry: `name[:port]`, where `name` is a DNS
/// name (stored lowercase, without a trailing dot) or an IPv4 address.
///
/// A name covers itself and its subdomains; an IPv4 address covers only
/// itself. A port opens that port for the covered hosts in addition to the
/// standard ones (443 for CONNECT, 80 and 443 for plain HTTP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedDomain {
    name: String,
    ipv4: Option<Ipv4Addr>,
    port: Option<u16>,
}

impl AllowedDomain {
    /// The domain name (lowercase, no trailing dot) or the IPv4 address.
    pub fn host(&self) -> &str {
        &self.name
    }

    /// The extra port this entry opens, if it was written `name:port`.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether this entry covers `host` (any port).
    fn covers(&self, host: &Host) -> bool {
        match (host, self.ipv4) {
            (Host::Name(name), None) => domain_matches(name, &self.name),
            (Host::Ipv4(addr), Some(allowed)) => *addr == allowed,
            _ => false,
        }
    }
}

impl fmt::Display for AllowedDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl TryFrom<&str> for AllowedDomain {
    type Error = AllowedDomainError;

    fn try_from(entry: &str) -> Result<Self, Self::Error> {
        let owned = || entry.to_owned();
        if entry.is_empty() {
            return Err(AllowedDomainError::Empty);
        }
        if entry.chars().any(char::is_whitespace) {
            return Err(AllowedDomainError::HasWhitespace { entry: owned() });
        }
        if entry.contains("://") {
            return Err(AllowedDomainError::HasScheme { entry: owned() });
        }
        if entry.contains(['/', '?', '#']) {
            return Err(AllowedDomainError::HasPath { entry: owned() });
        }
        if entry.starts_with('[') || entry.parse::<Ipv6Addr>().is_ok() {
            return Err(AllowedDomainError::Ipv6Address { entry: owned() });
        }
        let (name, port) = match entry.rsplit_once(':') {
            Some((name, port)) => (
                name,
                Some(
                    parse_port(port)
                        .ok_or_else(|| AllowedDomainError::InvalidPort { entry: owned() })?,
                ),
            ),
            None => (entry, None),
        };
        if name.contains(':') {
            // Several colons and not an IPv6 address.
            return Err(AllowedDomainError::InvalidPort { entry: owned() });
        }
        // A fully qualified name may end with one dot; it means the same name.
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Ok(addr) = name.parse::<Ipv4Addr>() {
            return Ok(AllowedDomain {
                name: addr.to_string(),
                ipv4: Some(addr),
                port,
            });
        }
        let lower = name.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("www.") {
            let suggestion = match port {
                Some(port) => format!("{rest}:{port}"),
                None => rest.to_owned(),
            };
            return Err(AllowedDomainError::HasWwwPrefix {
                entry: owned(),
                suggestion,
            });
        }
        check_dns_name(&lower, false).map_err(|reason| AllowedDomainError::InvalidName {
            entry: owned(),
            reason,
        })?;
        Ok(AllowedDomain {
            name: lower,
            ipv4: None,
            port,
        })
    }
}

impl FromStr for AllowedDomain {
    type Err = AllowedDomainError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        AllowedDomain::try_from(entry)
    }
}

/// A port written in an entry: decimal digits only (no sign), 1 to 65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&port| port != 0)
}

/// Checks a lowercase DNS name without trailing dot (RFC 1035 §2.3.1, RFC
/// 1123 §2.1): 2 labels or more, each 1-63 letters, digits or hyphens, not
/// starting or ending with a hyphen, 253 characters at most; the last label
/// is not all digits, so the name cannot be mistaken for an IPv4 address (RFC
/// 3696 §2). `lenient` is for hosts from the network: it also admits
/// underscores and hyphens at label edges, which real host names carry.
fn check_dns_name(name: &str, lenient: bool) -> Result<(), &'static str> {
    if name.len() > MAX_NAME_LEN {
        return Err("longer than 253 characters");
    }
    if !name.is_ascii() {
        return Err("only ASCII letters, digits, hyphens and dots are allowed (write internationalised names as xn--)");
    }
    let mut labels = 0usize;
    let mut last = "";
    for label in name.split('.') {
        labels += 1;
        last = label;
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a leading dot)");
        }
        if label.len() > MAX_LABEL_LEN {
            return Err("a label is longer than 63 characters");
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || (lenient && b == b'_');
        if !label.bytes().all(allowed) {
            return Err("only letters, digits, hyphens and dots are allowed");
        }
        if !lenient && (label.starts_with('-') || label.ends_with('-')) {
            return Err("a label starts or ends with a hyphen");
        }
    }
    if labels < 2 {
        return Err("it needs at least two labels, such as \"example.com\"");
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the last label is all digits (an IPv4 address must have four numbers)");
    }
    Ok(())
}

/// The administrator's validated `allowed_domains`: at most
/// [`MAX_ALLOWED_DOMAINS`], no entry twice. `x.com` and `x.com:8443` are two
/// different entries (the second opens a port), so both may be listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedDomains(Vec<AllowedDomain>);

impl AllowedDomains {
    /// Checks the count and refuses duplicates (after normalisation, so
    /// `X.com` and `x.com.` are the same entry).
    pub fn new(entries: Vec<AllowedDomain>) -> Result<Self, AllowedDomainError> {
        if entries.len() > MAX_ALLOWED_DOMAINS {
            return Err(AllowedDomainError::TooMany {
                count: entries.len(),
            });
        }
        for (i, entry) in entries.iter().enumerate() {
            if entries[..i].contains(entry) {
                return Err(AllowedDomainError::Duplicate {
                    entry: entry.to_string(),
                });
            }
        }
        Ok(AllowedDomains(entries))
    }

    /// Parses and checks a list of entries as written in the configuration;
    /// the first bad entry is the error.
    pub fn parse<I, S>(entries: I) -> Result<Self, AllowedDomainError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parsed = entries
            .into_iter()
            .map(|s| AllowedDomain::try_from(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        AllowedDomains::new(parsed)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AllowedDomain> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the proxy is for on this appliance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Destinations restricted to the platform and allowed domains; any client.
    #[default]
    Cache,
    /// Any destination; clients restricted to the agent networks.
    Patch,
}

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `CONNECT host:port`: a tunnel (standard port 443).
    Connect,
    /// A plain HTTP request in absolute form, `http://host[:port]/...`
    /// (standard ports 80 and 443).
    Http,
}

impl Method {
    /// The ports open for every reachable host with this method.
    pub fn standard_ports(self) -> &'static [u16] {
        match self {
            Method::Connect => &[443],
            Method::Http => &[80, 443],
        }
    }
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Refusal),
}

/// Why a request was refused. `Display` is the 403 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The host is not reachable in this mode (or is not a host at all).
    DestinationNotAllowed { host: String },
    /// The host is reachable, not on this port.
    PortNotAllowed { host: String, port: u16 },
    /// The client's address is outside the agent networks (patch mode).
    ClientNotAllowed { client: IpAddr },
}

impl Refusal {
    /// The HTTP status to answer with: 403 for every refusal.
    pub fn status(&self) -> u16 {
        403
    }

    /// A fixed label for refusal statistics.
    pub fn reason_label(&self) -> &'static str {
        match self {
            Refusal::DestinationNotAllowed { .. } => "destination",
            Refusal::PortNotAllowed { .. } => "port",
            Refusal::ClientNotAllowed { .. } => "client",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DestinationNotAllowed { host } => {
                write!(
                    f,
                    "403 Forbidden: destination {host} is not allowed by this gateway"
                )
            }
            Refusal::PortNotAllowed { host, port } => {
                write!(
                    f,
                    "403 Forbidden: port {port} of {host} is not allowed by this gateway"
                )
            }
            Refusal::ClientNotAllowed { client } => {
                write!(
                    f,
                    "403 Forbidden: client {client} is not allowed by this gateway"
                )
            }
        }
    }
}

/// The agent networks used in patch mode unless configured: the RFC 1918
/// private ranges, plus loopback 127.0.0.0/8 so that local tests and the
/// appliance's own health checks through the proxy work.
pub fn default_agent_networks() -> Vec<IpNet> {
    let v4 =
        |a, b, c, d, len| IpNet::V4(ipnet::Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len));
    vec![
        v4(10, 0, 0, 0, 8),
        v4(172, 16, 0, 0, 12),
        v4(192, 168, 0, 0, 16),
        v4(127, 0, 0, 0, 8),
    ]
}

/// The proxy's connection security: the mode, the administrator's allowed
/// domains, and the agent networks (only consulted in patch mode; an empty
/// list there admits no client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    mode: Mode,
    allowed: AllowedDomains,
    agent_networks: Vec<IpNet>,
}

impl Default for Policy {
    /// Cache mode, no extra domains, the default agent networks.
    fn default() -> Self {
        Policy::new(
            Mode::default(),
            AllowedDomains::default(),
            default_agent_networks(),
        )
    }
}

impl Policy {
    pub fn new(mode: Mode, allowed: AllowedDomains, agent_networks: Vec<IpNet>) -> Self {
        Policy {
            mode,
            allowed,
            agent_networks,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn allowed(&self) -> &AllowedDomains {
        &self.allowed
    }

    pub fn agent_networks(&self) -> &[IpNet] {
        &self.agent_networks
    }

    /// May this client address use the proxy? Any address in cache mode; in
    /// patch mode only the agent networks. An IPv4-mapped IPv6 address
    /// (`::ffff:10.1.2.3`, as a dual-stack socket reports IPv4 peers) is
    /// judged as its IPv4 address.
    pub fn check_client(&self, client: IpAddr) -> Decision {
        let client = canonical_ip(client);
        match self.mode {
            Mode::Cache => Decision::Allow,
            Mode::Patch if self.agent_networks.iter().any(|net| net.contains(&client)) => {
                Decision::Allow
            }
            Mode::Patch => Decision::Deny(Refusal::ClientNotAllowed { client }),
        }
    }

    /// May a client reach `host` on `port` with `method`? `host` is as the
    /// request named it (a name, an IPv4 literal, an IPv6 literal with or
    /// without brackets); anything else is denied.
    pub fn check_destination(&self, method: Method, host: &str, port: u16) -> Decision {
        let Some(parsed) = Host::parse(host) else {
            return Decision::Deny(Refusal::DestinationNotAllowed { host: echo(host) });
        };
        let reachable = match self.mode {
            Mode::Patch => true,
            Mode::Cache => {
                let platform = match &parsed {
                    Host::Name(name) => PLATFORM_DOMAINS
                        .iter()
                        .chain([&OS_UPDATE_HOST])
                        .any(|domain| domain_matches(name, domain)),
                    Host::Ipv4(_) | Host::Ipv6(_) => false,
                };
                platform || self.allowed.iter().any(|entry| entry.covers(&parsed))
            }
        };
        if !reachable {
            return Decision::Deny(Refusal::DestinationNotAllowed {
                host: parsed.to_string(),
            });
        }
        let port_open = method.standard_ports().contains(&port)
            || self
                .allowed
                .iter()
                .any(|entry| entry.port == Some(port) && entry.covers(&parsed));
        if port_open {
            Decision::Allow
        } else {
            Decision::Deny(Refusal::PortNotAllowed {
                host: parsed.to_string(),
                port,
            })
        }
    }
}

/// Does `host` fall under `domain`: the domain itself or one of its
/// subdomains (`a.qualys.com` under `qualys.com`, `evilqualys.com` not)?
/// Case-insensitive; one trailing dot of `host` is ignored. An IP literal is
/// never under a domain. The host's syntax is not checked here, the
/// [`Policy`] does that.
pub fn domain_matches(host: &str, domain: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if domain.is_empty() || host.parse::<IpAddr>().is_ok() {
        return false;
    }
    if host.len() == domain.len() {
        return host.eq_ignore_ascii_case(domain);
    }
    // A subdomain: a non-empty prefix, a dot, then the domain.
    host.len() > domain.len() + 1 && {
        let split = host.len() - domain.len();
        // Byte slicing: a non-ASCII host could put `split` inside a
        // character, so compare bytes, never `&str` slices.
        let (prefix, suffix) = host.as_bytes().split_at(split);
        prefix.last() == Some(&b'.') && suffix.eq_ignore_ascii_case(domain.as_bytes())
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; other addresses unchanged.
fn canonical_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// A destination host that passed the syntax checks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
    Ipv4(Ipv4Addr),
    /// Not IPv4-mapped (those are [`Host::Ipv4`]).
    Ipv6(Ipv6Addr),
}

impl Host {
    fn parse(raw: &str) -> Option<Host> {
        // Bound the work before anything else: a name plus one trailing dot,
        // or a bracketed IPv6 literal, is never longer.
        if raw.is_empty() || raw.len() > MAX_NAME_LEN + 1 {
            return None;
        }
        let unbracketed = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        if let Ok(v6) = unbracketed.unwrap_or(raw).parse::<Ipv6Addr>() {
            return Some(match canonical_ip(IpAddr::V6(v6)) {
                IpAddr::V4(v4) => Host::Ipv4(v4),
                IpAddr::V6(v6) => Host::Ipv6(v6),
            });
        }
        let name = raw.strip_suffix('.').unwrap_or(raw);
        if let Ok(v4) = name.parse::<Ipv4Addr>() {
            return Some(Host::Ipv4(v4));
        }
        let name = name.to_ascii_lowercase();
        check_dns_name(&name, true).ok()?;
        Some(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ipv4(addr) => write!(f, "{addr}"),
            Host::Ipv6(addr) => write!(f, "[{addr}]"),
        }
    }
}

/// A refused host as it may be echoed in a 403 body: printable ASCII only
/// (anything else becomes `?`), at most [`MAX_ECHOED_HOST`] characters.
fn echo(host: &str) -> String {
    let mut out: String = host
        .chars()
        .take(MAX_ECHOED_HOST)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if out.is_empty() {
        out.push_str("(empty)");
    } else if host.chars().nth(MAX_ECHOED_HOST).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(s: &str) -> AllowedDomain {
        s.parse().unwrap()
    }

    fn domains(entries: &[&str]) -> AllowedDomains {
        AllowedDomains::parse(entries).unwrap()
    }

    fn cache(entries: &[&str]) -> Policy {
        Policy::new(Mode::Cache, domains(entries), default_agent_networks())
    }

    fn patch(entries: &[&str]) -> Policy {
        Policy::new(Mode::Patch, domains(entries), default_agent_networks())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn denied_destination(host: &str) -> Decision {
        Decision::Deny(Refusal::DestinationNotAllowed { host: host.into() })
    }

    fn denied_port(host: &str, port: u16) -> Decision {
        Decision::Deny(Refusal::PortNotAllowed {
            host: host.into(),
            port,
        })
    }

    // --- domain_matches ---

    #[test]
    fn a_domain_matches_itself_and_its_subdomains() {
        assert!(domain_matches("qualys.com", "qualys.com"));
        assert!(domain_matches("a.qualys.com", "qualys.com"));
        assert!(domain_matches(
            "qagpublic.qg1.apps.qualys.com",
            "qualys.com"
        ));
        assert!(domain_matches("sub.sub.qualys.co.uk", "qualys.co.uk"));
    }

    #[test]
    fn a_domain_does_not_match_lookalikes() {
        assert!(!domain_matches("evilqualys.com", "qualys.com"));
        assert!(!domain_matches("qualys.com.evil.net", "qualys.com"));
        assert!(!domain_matches("qualys.co", "qualys.com"));
        assert!(!domain_matches("com", "qualys.com"));
        assert!(!domain_matches(".qualys.com", "qualys.com"));
        assert!(!domain_matches("qualys.com.au", "qualys.com"));
        assert!(!domain_matches("qualys.co.uk", "sub.qualys.co.uk"));
        assert!(!domain_matches("", "qualys.com"));
        assert!(!domain_matches("qualys.com", ""));
    }

    #[test]
    fn matching_ignores_case_and_one_trailing_dot() {
        assert!(domain_matches("QUALYS.COM.", "qualys.com"));
        assert!(domain_matches("A.Qualys.Com", "qualys.com"));
        assert!(domain_matches("a.qualys.com.", "QUALYS.com"));
        assert!(!domain_matches("qualys.com..", "qualys.com"));
    }

    #[test]
    fn an_ip_literal_never_matches_a_domain() {
        assert!(!domain_matches("1.2.3.4", "3.4"));
        assert!(!domain_matches("::1", "1"));
    }

    #[test]
    fn matching_non_ascii_hosts_does_not_panic() {
        assert!(!domain_matches("ééqualys.com", "qualys.com"));
        assert!(!domain_matches("aé.com", "qualys.com"));
        assert!(!domain_matches("xqualys.coméé", "qualys.com"));
        assert!(domain_matches("é.qualys.com", "qualys.com")); // syntax is the Policy's job
    }

    // --- AllowedDomain parsing ---

    #[test]
    fn entries_are_parsed_and_lowercased() {
        let d = domain("Example.COM");
        assert_eq!((d.host(), d.port()), ("example.com", None));
        let d = domain("updates.example.com:8443");
        assert_eq!((d.host(), d.port()), ("updates.example.com", Some(8443)));
        assert_eq!(d.to_string(), "updates.example.com:8443");
        assert_eq!(domain("example.com.").host(), "example.com");
        assert_eq!(
            domain("my-host.example.co.uk").host(),
            "my-host.example.co.uk"
        );
        assert_eq!(
            domain("xn--bcher-kva.example").host(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            AllowedDomain::try_from("a.b:1").map(|d| d.port()),
            Ok(Some(1))
        );
        assert_eq!(
            AllowedDomain::try_from("a.b:65535").map(|d| d.port()),
            Ok(Some(65535))
        );
    }

    #[test]
    fn ipv4_entries_are_allowed() {
        let d = domain("192.0.2.10");
        assert_eq!((d.host(), d.port()), ("192.0.2.10", None));
        let d = domain("192.0.2.10:8080");
        assert_eq!((d.host(), d.port()), ("192.0.2.10", Some(8080)));
    }

    fn refused(entry: &str) -> (AllowedDomainError, String) {
        let err = AllowedDomain::try_from(entry).unwrap_err();
        let message = err.to_string();
        (err, message)
    }

    #[test]
    fn an_empty_entry_is_refused() {
        let (err, message) = refused("");
        assert_eq!(err, AllowedDomainError::Empty);
        assert!(message.contains("empty"), "{message}");
    }

    #[test]
    fn whitespace_is_refused() {
        for entry in [
            " ",
            "example.com ",
            " example.com",
            "exa mple.com",
            "example.com\t",
            "a.com\nb.com",
        ] {
            let (err, message) = refused(entry);
            assert_eq!(
                err,
                AllowedDomainError::HasWhitespace {
                    entry: entry.into()
                }
            );
            assert!(
                message.contains(&format!("{entry:?}")) && message.contains("whitespace"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_scheme_is_refused() {
        for entry in [
            "https://x.com",
            "http://",
            "http://x.com:8080",
            "ftp://x.com",
        ] {
            let (err, message) = refused(entry);
            assert_eq!(
                err,
                AllowedDomainError::HasScheme {
                    entry: entry.into()
                }
            );
            assert!(
                message.contains(&format!("{entry:?}")) && message.contains("scheme"),
                "{message}"
            );
        }
        assert_eq!(
            refused("https://x.com").1,
            "allowed domain \"https://x.com\" has a URL scheme: give only the domain name, without \"http://\" or \"https://\""
        );
    }

    #[test]
    fn a_path_is_refused() {
        for entry in ["x.com/path", "x.com/", "x.com:8443/a", "x.com?q", "x.com#f"] {
            let (err, message) = refused(entry);
            assert_eq!(
                err,
                AllowedDomainError::HasPath {
                    entry: entry.into()
                }
            );
            assert!(
                message.contains(&format!("{entry:?}")) && message.contains("path"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_www_prefix_is_refused_with_a_suggestion() {
        let (err, message) = refused("www.x.com");
        assert_eq!(
            err,
            AllowedDomainError::HasWwwPrefix {
                entry: "www.x.com".into(),
                suggestion: "x.com".into()
            }
        );
        assert_eq!(
            message,
            "allowed domain \"www.x.com\" starts with \"www.\": give \"x.com\" instead, a domain also covers its subdomains"
        );
        let (err, _) = refused("WWW.X.com:8443");
        assert_eq!(
            err,
            AllowedDomainError::HasWwwPrefix {
                entry: "WWW.X.com:8443".into(),
                suggestion: "x.com:8443".into()
            }
        );
        // Only the label "www", not a name that starts with those letters.
        assert_eq!(domain("wwwx.com").host(), "wwwx.com");
        assert_eq!(domain("www2.x.com").host(), "www2.x.com");
    }

    #[test]
    fn a_bad_port_is_refused() {
        for entry in [
            "x.com:",
            "x.com:0",
            "x.com:65536",
            "x.com:http",
            "x.com:+443",
            "x.com:-1",
            "a:b:c",
        ] {
            let (err, message) = refused(entry);
            assert_eq!(
                err,
                AllowedDomainError::InvalidPort {
                    entry: entry.into()
                },
                "{entry}"
            );
            assert!(
                message.contains(&format!("{entry:?}")) && message.contains("port"),
                "{message}"
            );
        }
    }

    #[test]
    fn an_ipv6_entry_is_refused() {
        for entry in ["::1", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:443"] {
            let (err, message) = refused(entry);
            assert_eq!(
                err,
                AllowedDomainError::Ipv6Address {
                    entry: entry.into()
                }
            );
            assert!(
                message.contains(&format!("{entry:?}")) && message.contains("IPv6"),
                "{message}"
            );
        }
    }

    #[test]
    fn invalid_dns_names_are_refused_with_the_rule() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!(
            "{}.com",
            [
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(60)
            ]
            .join(".")
        );
        assert_eq!(long_name.len(), 256);
        let cases = [
            ("localhost", "at least two labels"),
            ("com", "at least two labels"),
            ("a..com", "empty label"),
            (".a.com", "empty label"),
            ("x.com..", "empty label"),
            (".", "empty label"),
            (":443", "empty label"),
            ("-a.com", "hyphen"),
            ("a-.com", "hyphen"),
            ("a.-com", "hyphen"),
            ("a_b.com", "only letters, digits, hyphens and dots"),
            ("a*.com", "only letters, digits, hyphens and dots"),
            ("*.x.com", "only letters, digits, hyphens and dots"),
            ("bücher.de", "xn--"),
            (long_label.as_str(), "longer than 63"),
            (long_name.as_str(), "longer than 253"),
            ("1.2.3", "all digits"),
            ("1.2.3.400", "all digits"),
            ("010.1.1.1", "all digits"),
        ];
        for (entry, rule) in cases {
            let (err, message) = refused(entry);
            assert!(
                matches!(&err, AllowedDomainError::InvalidName { entry: e, .. } if e == entry),
                "{entry}: {err:?}"
            );
            assert!(
                message.contains(&format!("{entry:?}")) && message.contains(rule),
                "{entry}: {message}"
            );
        }
        // At the limits: a 63-character label and a 253-character name pass.
        assert!(AllowedDomain::try_from(format!("{}.com", "a".repeat(63)).as_str()).is_ok());
        let max_name = format!(
            "{}.com",
            [
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(57)
            ]
            .join(".")
        );
        assert_eq!(max_name.len(), 253);
        assert!(AllowedDomain::try_from(max_name.as_str()).is_ok());
        // A digit-only label is fine where it is not the last one.
        assert_eq!(domain("123.example.com").host(), "123.example.com");
    }

    // --- AllowedDomains ---

    #[test]
    fn up_to_ten_entries_are_accepted() {
        let entries: Vec<String> = (0..10).map(|i| format!("d{i}.example.com")).collect();
        let list = AllowedDomains::parse(&entries).unwrap();
        assert_eq!(list.len(), 10);
        assert!(AllowedDomains::default().is_empty());
    }

    #[test]
    fn more_than_ten_entries_are_refused() {
        let entries: Vec<AllowedDomain> = (0..11)
            .map(|i| domain(&format!("d{i}.example.com")))
            .collect();
        let err = AllowedDomains::new(entries).unwrap_err();
        assert_eq!(err, AllowedDomainError::TooMany { count: 11 });
        assert_eq!(
            err.to_string(),
            "too many allowed domains: 11 given, at most 10 are supported"
        );
    }

    #[test]
    fn duplicates_are_refused_after_normalisation() {
        let err = AllowedDomains::parse(["a.com", "Example.com.", "example.COM"]).unwrap_err();
        assert_eq!(
            err,
            AllowedDomainError::Duplicate {
                entry: "example.com".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "allowed domain \"example.com\" is listed more than once"
        );
        let err = AllowedDomains::parse(["x.com:8443", "X.com:8443"]).unwrap_err();
        assert_eq!(
            err,
            AllowedDomainError::Duplicate {
                entry: "x.com:8443".into()
            }
        );
        // A name with and without a port, or with two ports, is not a duplicate.
        assert_eq!(
            AllowedDomains::parse(["x.com", "x.com:8443", "x.com:9443"]).map(|l| l.len()),
            Ok(3)
        );
    }

    #[test]
    fn a_list_reports_its_first_bad_entry() {
        let err =
            AllowedDomains::parse(["good.com", "https://bad.com", "www.bad.com"]).unwrap_err();
        assert_eq!(
            err,
            AllowedDomainError::HasScheme {
                entry: "https://bad.com".into()
            }
        );
    }

    // --- Refusal ---

    #[test]
    fn refusals_are_403_with_a_label_and_a_sentence() {
        let destination = Refusal::DestinationNotAllowed {
            host: "example.org".into(),
        };
        let port = Refusal::PortNotAllowed {
            host: "qualys.com".into(),
            port: 8443,
        };
        let client = Refusal::ClientNotAllowed {
            client: ip("8.8.8.8"),
        };
        assert_eq!(
            [destination.status(), port.status(), client.status()],
            [403; 3]
        );
        assert_eq!(
            [
                destination.reason_label(),
                port.reason_label(),
                client.reason_label()
            ],
            ["destination", "port", "client"]
        );
        assert_eq!(
            destination.to_string(),
            "403 Forbidden: destination example.org is not allowed by this gateway"
        );
        assert_eq!(
            port.to_string(),
            "403 Forbidden: port 8443 of qualys.com is not allowed by this gateway"
        );
        assert_eq!(
            client.to_string(),
            "403 Forbidden: client 8.8.8.8 is not allowed by this gateway"
        );
    }

    // --- cache mode destinations ---

    #[test]
    fn the_default_policy_is_cache_mode_with_private_agent_networks() {
        let policy = Policy::default();
        assert_eq!(policy.mode(), Mode::Cache);
        assert!(policy.allowed().is_empty());
        assert_eq!(policy.agent_networks(), default_agent_networks().as_slice());
    }

    #[test]
    fn platform_domains_and_the_update_host_are_reachable_by_default() {
        let policy = Policy::default();
        for host in PLATFORM_DOMAINS.iter().chain([&OS_UPDATE_HOST]) {
            assert_eq!(
                policy.check_destination(Method::Connect, host, 443),
                Decision::Allow,
                "{host}"
            );
            let sub = format!("qagpublic.{host}");
            assert_eq!(
                policy.check_destination(Method::Connect, &sub, 443),
                Decision::Allow,
                "{sub}"
            );
        }
        for host in [
            "QUALYS.COM.",
            "sub.sub.qualys.co.uk",
            "a.qualys.com.au",
            "scanservice1.qg2.apps.qualys.eu",
        ] {
            assert_eq!(
                policy.check_destination(Method::Connect, host, 443),
                Decision::Allow,
                "{host}"
            );
        }
    }

    #[test]
    fn other_destinations_are_refused_in_cache_mode() {
        let policy = Policy::default();
        for host in [
            "evilqualys.com",
            "qualys.com.evil.net",
            "example.org",
            "flatcar-linux.net",
            "release.flatcar-linux.net",
        ] {
            assert_eq!(
                policy.check_destination(Method::Connect, host, 443),
                denied_destination(host),
                "{host}"
            );
            assert_eq!(
                policy.check_destination(Method::Http, host, 80),
                denied_destination(host),
                "{host}"
            );
        }
        // The refusal names the host as normalised.
        assert_eq!(
            policy.check_destination(Method::Connect, "Example.ORG.", 443),
            denied_destination("example.org")
        );
    }

    #[test]
    fn allowed_domains_extend_the_reachable_set() {
        let policy = cache(&["example.org", "192.0.2.10"]);
        for host in [
            "example.org",
            "cdn.example.org",
            "EXAMPLE.ORG.",
            "192.0.2.10",
            "qualys.com",
        ] {
            assert_eq!(
                policy.check_destination(Method::Connect, host, 443),
                Decision::Allow,
                "{host}"
            );
        }
        for host in [
            "notexample.org",
            "example.org.evil.net",
            "192.0.2.11",
            "10.192.0.2.10",
        ] {
            assert!(
                matches!(
                    policy.check_destination(Method::Connect, host, 443),
                    Decision::Deny(_)
                ),
                "{host}"
            );
        }
    }

    #[test]
    fn ip_literal_hosts_only_match_ip_entries() {
        // No domain entry covers an IP literal, however the digits line up.
        let policy = cache(&["example.org"]);
        for host in ["1.2.3.4", "127.0.0.1", "::1", "[::1]", "[2001:db8::1]"] {
            assert!(
                matches!(
                    policy.check_destination(Method::Connect, host, 443),
                    Decision::Deny(_)
                ),
                "{host}"
            );
        }
        assert_eq!(
            policy.check_destination(Method::Connect, "[2001:db8::1]", 443),
            denied_destination("[2001:db8::1]")
        );
        // An IPv4-mapped IPv6 literal reaches the IPv4 address, so it is judged as one.
        let policy = cache(&["192.0.2.10"]);
        assert_eq!(
            policy.check_destination(Method::Connect, "[::ffff:192.0.2.10]", 443),
            Decision::Allow
        );
        assert_eq!(
            policy.check_destination(Method::Connect, "::ffff:192.0.2.10", 443),
            Decision::Allow
        );
        assert_eq!(
            policy.check_destination(Method::Connect, "192.0.2.10.", 443),
            Decision::Allow
        );
    }

    // --- ports ---

    #[test]
    fn connect_is_limited_to_443() {
        let policy = Policy::default();
        assert_eq!(
            policy.check_destination(Method::Connect, "qualys.com", 443),
            Decision::Allow
        );
        for port in [80, 0, 22, 8443, 65535] {
            assert_eq!(
                policy.check_destination(Method::Connect, "qualys.com", port),
                denied_port("qualys.com", port)
            );
        }
    }

    #[test]
    fn plain_http_is_limited_to_80_and_443() {
        let policy = Policy::default();
        assert_eq!(
            policy.check_destination(Method::Http, "qualys.com", 80),
            Decision::Allow
        );
        assert_eq!(
            policy.check_destination(Method::Http, "qualys.com", 443),
            Decision::Allow
        );
        for port in [8080, 22, 0] {
            assert_eq!(
                policy.check_destination(Method::Http, "a.qualys.com", port),
                denied_port("a.qualys.com", port)
            );
        }
    }

    #[test]
    fn an_entry_with_a_port_opens_that_port_for_the_hosts_it_covers() {
        let policy = cache(&["example.org:8443", "192.0.2.10:8080", "qualys.com:9443"]);
        for method in [Method::Connect, Method::Http] {
            assert_eq!(
                policy.check_destination(method, "example.org", 8443),
                Decision::Allow
            );
            assert_eq!(
                policy.check_destination(method, "a.example.org", 8443),
                Decision::Allow
            );
            assert_eq!(
                policy.check_destination(method, "example.org", 443),
                Decision::Allow
            );
            assert_eq!(
                policy.check_destination(method, "192.0.2.10", 8080),
                Decision::Allow
            );
            assert_eq!(
                policy.check_destination(method, "qualys.com", 9443),
                Decision::Allow
            );
            // Only that port, and only for that entry's hosts.
            assert_eq!(
                policy.check_destination(method, "example.org", 9443),
                denied_port("example.org", 9443)
            );
            assert_eq!(
                policy.check_destination(method, "192.0.2.10", 8443),
                denied_port("192.0.2.10", 8443)
            );
            assert_eq!(
                policy.check_destination(method, "qualys.eu", 9443),
                denied_port("qualys.eu", 9443)
            );
            assert_eq!(
                policy.check_destination(method, "qualys.eu", 8443),
                denied_port("qualys.eu", 8443)
            );
        }
        assert_eq!(
            policy.check_destination(Method::Connect, "example.org", 80),
            denied_port("example.org", 80)
        );
    }

    // --- patch mode ---

    #[test]
    fn patch_mode_lifts_the_destination_check_but_keeps_the_port_rule() {
        let policy = patch(&["repo.example.net:8443"]);
        for host in [
            "example.org",
            "evilqualys.com",
            "8.8.8.8",
            "[2001:db8::1]",
            "download.windowsupdate.com",
        ] {
            assert_eq!(
                policy.check_destination(Method::Connect, host, 443),
                Decision::Allow,
                "{host}"
            );
            assert_eq!(
                policy.check_destination(Method::Http, host, 80),
                Decision::Allow,
                "{host}"
            );
        }
        assert_eq!(
            policy.check_destination(Method::Connect, "example.org", 80),
            denied_port("example.org", 80)
        );
        assert_eq!(
            policy.check_destination(Method::Http, "example.org", 8080),
            denied_port("example.org", 8080)
        );
        assert_eq!(
            policy.check_destination(Method::Connect, "repo.example.net", 8443),
            Decision::Allow
        );
        assert_eq!(
            policy.check_destination(Method::Connect, "example.org", 8443),
            denied_port("example.org", 8443)
        );
    }

    #[test]
    fn cache_mode_admits_any_client() {
        let policy = Policy::default();
        for client in ["8.8.8.8", "10.1.2.3", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert_eq!(policy.check_client(ip(client)), Decision::Allow, "{client}");
        }
    }

    #[test]
    fn patch_mode_admits_only_the_agent_networks() {
        let policy = patch(&[]);
        for client in [
            "10.0.0.1",
            "10.255.255.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.20",
            "127.0.0.1",
            "127.8.9.10",
        ] {
            assert_eq!(policy.check_client(ip(client)), Decision::Allow, "{client}");
        }
        for client in [
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "8.8.8.8",
            "11.0.0.1",
            "::1",
            "2001:db8::1",
            "fe80::1",
        ] {
            let refusal = Refusal::ClientNotAllowed { client: ip(client) };
            assert_eq!(
                policy.check_client(ip(client)),
                Decision::Deny(refusal),
                "{client}"
            );
        }
    }

    #[test]
    fn ipv4_mapped_clients_are_judged_as_ipv4() {
        let policy = patch(&[]);
        assert_eq!(policy.check_client(ip("::ffff:10.1.2.3")), Decision::Allow);
        assert_eq!(
            policy.check_client(ip("::ffff:192.168.0.9")),
            Decision::Allow
        );
        // The refusal names the IPv4 address.
        assert_eq!(
            policy.check_client(ip("::ffff:8.8.8.8")),
            Decision::Deny(Refusal::ClientNotAllowed {
                client: ip("8.8.8.8")
            })
        );
    }

    #[test]
    fn configured_agent_networks_replace_the_default() {
        let nets = vec![
            "100.64.0.0/10".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let policy = Policy::new(Mode::Patch, AllowedDomains::default(), nets);
        assert_eq!(policy.check_client(ip("100.64.1.1")), Decision::Allow);
        assert_eq!(policy.check_client(ip("2001:db8::5")), Decision::Allow);
        assert!(matches!(
            policy.check_client(ip("10.0.0.1")),
            Decision::Deny(_)
        ));
        let nobody = Policy::new(Mode::Patch, AllowedDomains::default(), Vec::new());
        assert!(matches!(
            nobody.check_client(ip("10.0.0.1")),
            Decision::Deny(_)
        ));
    }

    // --- garbage from the network ---

    #[test]
    fn garbage_hosts_are_denied_without_panicking() {
        let huge = "a".repeat(100_000);
        let huge_sub = format!("{}.qualys.com", "a.".repeat(5_000));
        let long_label = format!("{}.qualys.com", "a".repeat(64));
        let garbage = [
            "",
            ".",
            "..",
            " ",
            "qualys .com",
            "qualys.com ",
            "a..qualys.com",
            ".qualys.com",
            "qualys.com..",
            "é.qualys.com",
            "qualys.com\r\nX: y",
            "qualys.com/x",
            "qualys.com:443",
            "[qualys.com]",
            "[::1",
            "1.2.3",
            "0x7f.0.0.1",
            "\u{0}",
            huge.as_str(),
            huge_sub.as_str(),
            long_label.as_str(),
        ];
        for policy in [Policy::default(), patch(&["qualys.com:8443"])] {
            for host in garbage {
                for method in [Method::Connect, Method::Http] {
                    let decision = policy.check_destination(method, host, 443);
                    assert!(
                        matches!(
                            &decision,
                            Decision::Deny(Refusal::DestinationNotAllowed { .. })
                        ),
                        "{host:.40}: {decision:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_refused_garbage_host_is_echoed_safely() {
        let policy = Policy::default();
        let Decision::Deny(refusal) =
            policy.check_destination(Method::Connect, "bad\r\nhost é", 443)
        else {
            panic!("garbage allowed");
        };
        assert_eq!(
            refusal.to_string(),
            "403 Forbidden: destination bad??host?? is not allowed by this gateway"
        );
        assert_eq!(
            policy.check_destination(Method::Connect, "", 443),
            denied_destination("(empty)")
        );
        let Decision::Deny(Refusal::DestinationNotAllowed { host }) =
            policy.check_destination(Method::Connect, &"x".repeat(10_000), 443)
        else {
            panic!("huge host allowed");
        };
        assert_eq!(host.len(), MAX_ECHOED_HOST + 3);
        assert!(host.ends_with("..."));
    }

    #[test]
    fn network_hosts_may_carry_underscores_and_edge_hyphens() {
        // Real host names break the strict rules entries follow; the proxy
        // still serves them where the destination is allowed.
        let policy = Policy::default();
        for host in ["_dmarc.qualys.com", "a_b.qualys.com", "-x.qualys.com"] {
            assert_eq!(
                policy.check_destination(Method::Connect, host, 443),
                Decision::Allow,
                "{host}"
            );
        }
    }
}
