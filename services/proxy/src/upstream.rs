//! Chaining through an upstream proxy (`upstream.proxy`): which destinations
//! use it, the CONNECT request it gets (with Basic credentials when a user is
//! set), and reading its answer. Sans-IO; the server does the I/O.

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

    /// The CONNECT request for `host:port`.
    pub fn connect_request(&self, host: &str, port: u16) -> Vec<u8> {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(auth) = self.authorization() {
            req.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        req.push_str("\r\n");
        req.into_bytes()
    }
}

/// The status line of the upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    /// Bytes the head took; what follows belongs to the tunnel.
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream proxy sent a malformed answer: {0}")]
    Malformed(String),
    #[error("the upstream proxy's answer head is larger than {0} bytes")]
    TooLarge(usize),
}

/// Parses the upstream's response head; `Ok(None)`: read more.
pub fn parse_response(buf: &[u8], max: usize) -> Result<Option<ResponseHead>, UpstreamError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(ResponseHead {
            status: resp.code.unwrap_or(0),
            reason: resp.reason.unwrap_or_default().to_owned(),
            len,
        })),
        Ok(httparse::Status::Partial) if buf.len() > max => Err(UpstreamError::TooLarge(max)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(UpstreamError::Malformed(e.to_string())),
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

    #[test]
    fn response_heads() {
        let r = parse_response(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\nxx",
            1024,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.len),
            (407, "Proxy Authentication Required", 73)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 Connection established\r\n", 1024),
            Ok(None)
        );
        assert!(matches!(
            parse_response(b"garbage\r\n\r\n", 1024),
            Err(UpstreamError::Malformed(_))
        ));
        assert_eq!(
            parse_response(
                format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(80)).as_bytes(),
                50
            ),
            Err(UpstreamError::TooLarge(50))
        );
    }
}
