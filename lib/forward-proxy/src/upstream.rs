//! Chaining through an upstream proxy (`upstream.proxy`): which destinations
//! use it, and the CONNECT request it gets (with Basic credentials when a
//! user is set; the bytes and reading the answer are
//! [`gateway_http::connect`]'s). Sans-IO; the server does the I/O.

use base64::Engine as _;

use crate::policy::domain_matches;

/// A password kept out of logs and debug output: the configuration's type.
pub use gateway_config::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
    /// Destinations (domains with their subdomains) that go direct instead.
    pub bypass: Vec<String>,
}

impl Upstream {
    pub fn applies_to(&self, host: &str) -> bool {
        !self.bypass.iter().any(|d| domain_matches(host, d))
    }

    /// The `Proxy-Authorization` value, when a user is set.
    pub fn authorization(&self) -> Option<String> {
        self.credentials.as_ref().map(|c| {
            let raw = format!("{}:{}", c.user, c.password.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
    }

    /// The CONNECT request for `host:port`, with our credentials.
    pub fn connect_request(&self, host: &str, port: u16) -> Vec<u8> {
        gateway_http::connect::request(host, port, self.authorization().as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(creds: bool) -> Upstream {
        Upstream {
            host: "proxy.corp".into(),
            port: 3128,
            credentials: creds.then(|| Credentials {
                user: "agent".into(),
                password: Secret::new("s3cret"),
            }),
            bypass: vec!["corp.example".into()],
        }
    }

    #[test]
    fn connect_request_with_and_without_credentials() {
        assert_eq!(
            String::from_utf8(upstream(false).connect_request("qualys.com", 443)).unwrap(),
            "CONNECT qualys.com:443 HTTP/1.1\r\nHost: qualys.com:443\r\n\r\n"
        );
        // base64("agent:s3cret")
        assert_eq!(
            String::from_utf8(upstream(true).connect_request("2001:db8::1", 443)).unwrap(),
            "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\nProxy-Authorization: Basic YWdlbnQ6czNjcmV0\r\n\r\n"
        );
    }

    #[test]
    fn bypass_domains_go_direct() {
        let u = upstream(false);
        assert!(u.applies_to("qagpublic.qg1.apps.qualys.com"));
        assert!(!u.applies_to("corp.example"));
        assert!(!u.applies_to("files.corp.example"));
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let text = format!("{:?}", upstream(true));
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("agent"));
    }
}
