//! Domain names as the administrator writes them: the `allowed_domains`
//! entries (`name[:port]`) and the DNS-name syntax check shared by every key
//! that holds a name (`platform.pod`, `dns.search`, `hosts`).
//!
//! Pure parsing: what a name is allowed to be, and a message naming the entry
//! and the rule when it is not. What a domain *covers* at run time is the
//! proxy's business.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// How many `allowed_domains` entries an administrator may add.
pub const MAX_ALLOWED_DOMAINS: usize = 10;

/// Longest DNS name in text form, without the trailing dot (RFC 1035 §2.3.4:
/// 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

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

    /// The address, when the entry is an IPv4 address rather than a name.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4
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
pub fn check_dns_name(name: &str, lenient: bool) -> Result<(), &'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(s: &str) -> AllowedDomain {
        s.parse().unwrap()
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
}
