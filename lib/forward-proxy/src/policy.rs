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

use gateway_config::domain::{check_dns_name, MAX_NAME_LEN};
pub use gateway_config::domain::{
    AllowedDomain, AllowedDomainError, AllowedDomains, MAX_ALLOWED_DOMAINS,
};

/// How much of a refused host is echoed back in a refusal.
const MAX_ECHOED_HOST: usize = 255;

/// Whether an allowed-domain entry covers `host` (any port): a name covers
/// itself and its subdomains, an IPv4 address only itself.
fn covers(entry: &AllowedDomain, host: &Host) -> bool {
    match (host, entry.ipv4()) {
        (Host::Name(name), None) => domain_matches(name, entry.host()),
        (Host::Ipv4(addr), Some(allowed)) => *addr == allowed,
        _ => false,
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
                platform || self.allowed.iter().any(|entry| covers(entry, &parsed))
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
                .any(|entry| entry.port() == Some(port) && covers(entry, &parsed));
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
