//! A proxy request head, parsed from the bytes a client sent so far.
//!
//! Sans-IO: [`parse`] is fed the buffer and answers "need more" (`Ok(None)`),
//! a complete [`RequestHead`], or a [`HeadError`] that carries the status the
//! client gets (400, 414, 431). The byte-level HTTP/1.1 grammar is httparse's;
//! this module adds the limits and the proxy's reading of the request target:
//! authority-form for CONNECT (`host:443`), absolute-form (`http://host/x`)
//! for everything else. An origin-form target (`/x`) is not a proxy request.

/// Size limits, checked before any parsing effort is spent past them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole head: request line and headers (431 above it).
    pub max_head: usize,
    /// The request line (414 above it).
    pub max_request_line: usize,
    /// How many header fields (431 above it).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Agents send short heads; 16 KiB is squid's default reply-header
        // scale and far above any legitimate proxy request.
        Limits {
            max_head: 16 * 1024,
            max_request_line: 8 * 1024,
            max_headers: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
}

/// Where the client wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// CONNECT host:port.
    Authority { host: String, port: u16 },
    /// An absolute URL; `path` is the origin-form to send on (`/x?y`).
    Absolute {
        scheme: Scheme,
        host: String,
        port: u16,
        path: String,
    },
    /// An origin-form target (`/health`): a request to the proxy itself,
    /// not through it. Only the service's own endpoints answer it.
    Origin { path: String },
}

impl Target {
    pub fn host(&self) -> &str {
        match self {
            Target::Authority { host, .. } | Target::Absolute { host, .. } => host,
            Target::Origin { .. } => "",
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Target::Authority { port, .. } | Target::Absolute { port, .. } => *port,
            Target::Origin { .. } => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: Target,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes of the buffer the head took; what follows is body or the next
    /// request (pipelining) or tunnel data.
    pub len: usize,
}

impl RequestHead {
    pub fn is_connect(&self) -> bool {
        self.method.eq_ignore_ascii_case("CONNECT")
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request header fields too large (more than {limit} bytes)")]
    HeadTooLarge { limit: usize },
    #[error("too many header fields (more than {limit})")]
    TooManyHeaders { limit: usize },
    #[error("request line too long (more than {limit} bytes)")]
    RequestLineTooLong { limit: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    /// RFC 9112 3.2: a request with more than one `Host` field line is a
    /// 400; which one an origin would take is anyone's guess.
    #[error("malformed request: more than one Host header field")]
    DuplicateHost,
    #[error("bad request target {target:?}: {reason}")]
    BadTarget {
        target: String,
        reason: &'static str,
    },
}

impl HeadError {
    /// The HTTP status the client is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::HeadTooLarge { .. } | HeadError::TooManyHeaders { .. } => 431,
            HeadError::RequestLineTooLong { .. } => 414,
            HeadError::Malformed(_) | HeadError::DuplicateHost | HeadError::BadTarget { .. } => 400,
        }
    }
}

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete, read more.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, HeadError> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n");
    match line_end {
        Some(n) if n > limits.max_request_line => {
            return Err(HeadError::RequestLineTooLong {
                limit: limits.max_request_line,
            })
        }
        None if buf.len() > limits.max_request_line => {
            return Err(HeadError::RequestLineTooLong {
                limit: limits.max_request_line,
            })
        }
        _ => {}
    }
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head {
                return Err(HeadError::HeadTooLarge {
                    limit: limits.max_head,
                });
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyHeaders {
                limit: limits.max_headers,
            })
        }
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    if len > limits.max_head {
        return Err(HeadError::HeadTooLarge {
            limit: limits.max_head,
        });
    }
    // Complete implies all three are present.
    let (Some(method), Some(raw_target), Some(version)) = (req.method, req.path, req.version)
    else {
        return Err(HeadError::Malformed("incomplete request line".into()));
    };
    let target = if method.eq_ignore_ascii_case("CONNECT") {
        parse_authority(raw_target)?
    } else {
        parse_absolute(raw_target)?
    };
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    let hosts = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .count();
    if hosts > 1 {
        return Err(HeadError::DuplicateHost);
    }
    Ok(Some(RequestHead {
        method: method.to_owned(),
        target,
        version,
        headers,
        len,
    }))
}

fn bad(target: &str, reason: &'static str) -> HeadError {
    HeadError::BadTarget {
        target: target.chars().take(200).collect(),
        reason,
    }
}

/// `host:port` (CONNECT): the port is required.
fn parse_authority(target: &str) -> Result<Target, HeadError> {
    let (host, port) = split_host_port(target)?;
    let port = port.ok_or_else(|| bad(target, "CONNECT needs host:port"))?;
    Ok(Target::Authority { host, port })
}

/// `http://host[:port][/path][?query]`.
fn parse_absolute(target: &str) -> Result<Target, HeadError> {
    if target.starts_with('/') {
        return Ok(Target::Origin {
            path: target.to_owned(),
        });
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(bad(target, "not an absolute URL"));
    };
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad(
            target,
            "only http:// URLs are proxied this way; use CONNECT for https",
        ));
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = path.split('#').next().unwrap_or_default();
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    let (host, port) = split_host_port(authority)?;
    Ok(Target::Absolute {
        scheme: Scheme::Http,
        host,
        port: port.unwrap_or(80),
        path,
    })
}

/// Splits `host[:port]` or `[v6][:port]`, checking both parts.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), HeadError> {
    if s.contains('@') {
        return Err(bad(s, "credentials in the URL are not accepted"));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(s, "unclosed [ in host"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(s, "bad IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad(s, "junk after ]"))?),
        };
        (v6.to_owned(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (s.to_owned(), None),
        }
    };
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && (host.contains(':') // a checked IPv6 literal
            || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
    if !valid_host {
        return Err(bad(s, "bad host name"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(bad(s, "port must be 1-65535")),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(s: &str) -> Result<Option<RequestHead>, HeadError> {
        parse(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn connect_with_pipelined_tunnel_bytes() {
        let raw = "CONNECT qagpublic.qg1.apps.qualys.com:443 HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n\x16\x03\x01";
        let h = parse_all(raw).unwrap().unwrap();
        assert!(h.is_connect());
        assert_eq!(
            h.target,
            Target::Authority {
                host: "qagpublic.qg1.apps.qualys.com".into(),
                port: 443
            }
        );
        assert_eq!(h.len, raw.len() - 3);
        assert_eq!(h.header("proxy-connection"), Some(&b"keep-alive"[..]));
        assert_eq!(h.version, 1);
    }

    #[test]
    fn absolute_form_defaults_and_case() {
        let h = parse_all("GET http://Example.COM/a/b?c=d#frag HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            h.target,
            Target::Absolute {
                scheme: Scheme::Http,
                host: "example.com".into(),
                port: 80,
                path: "/a/b?c=d".into()
            }
        );
        assert_eq!(h.version, 0);
        let h = parse_all("GET http://h:8080 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            h.target,
            Target::Absolute {
                scheme: Scheme::Http,
                host: "h".into(),
                port: 8080,
                path: "/".into()
            }
        );
        let h = parse_all("GET http://h?q HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.target.port(), 80);
        assert!(matches!(h.target, Target::Absolute { ref path, .. } if path == "/?q"));
    }

    #[test]
    fn origin_form_is_a_request_to_the_proxy_itself() {
        let h = parse_all("GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            h.target,
            Target::Origin {
                path: "/health".into()
            }
        );
        assert_eq!((h.target.host(), h.target.port()), ("", 0));
    }

    #[test]
    fn ipv6_literals() {
        let h = parse_all("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            h.target,
            Target::Authority {
                host: "2001:db8::1".into(),
                port: 443
            }
        );
        assert_eq!(
            parse_all("CONNECT [zz::1]:443 HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        assert_eq!(parse_all(""), Ok(None));
        assert_eq!(parse_all("CONNECT a.b:443 HTTP/1.1\r\nHost: a"), Ok(None));
    }

    #[test]
    fn bad_targets_are_400_with_the_reason() {
        for (raw, reason) in [
            ("CONNECT a.b HTTP/1.1\r\n\r\n", "CONNECT needs host:port"),
            ("CONNECT a.b:0 HTTP/1.1\r\n\r\n", "port must be 1-65535"),
            ("CONNECT a.b:65536 HTTP/1.1\r\n\r\n", "port must be 1-65535"),
            ("CONNECT a.b:+44 HTTP/1.1\r\n\r\n", "port must be 1-65535"),
            ("CONNECT :443 HTTP/1.1\r\n\r\n", "bad host name"),
            ("CONNECT a%2f.b:443 HTTP/1.1\r\n\r\n", "bad host name"),
            (
                "CONNECT u:p@a.b:443 HTTP/1.1\r\n\r\n",
                "credentials in the URL are not accepted",
            ),
            (
                "GET https://a.b/ HTTP/1.1\r\n\r\n",
                "only http:// URLs are proxied this way; use CONNECT for https",
            ),
            ("GET a.b/x HTTP/1.1\r\n\r\n", "not an absolute URL"),
            (
                "GET http://u:p@a.b/ HTTP/1.1\r\n\r\n",
                "credentials in the URL are not accepted",
            ),
        ] {
            match parse_all(raw) {
                Err(e @ HeadError::BadTarget { reason: r, .. }) => {
                    assert_eq!(r, reason, "{raw:?}");
                    assert_eq!(e.status(), 400);
                }
                other => panic!("{raw:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn limits_give_414_and_431() {
        let limits = Limits {
            max_head: 200,
            max_request_line: 100,
            max_headers: 4,
        };
        let long_line = format!("GET http://a.b/{} HTTP/1.1\r\n\r\n", "x".repeat(200));
        assert_eq!(
            parse(long_line.as_bytes(), &limits).unwrap_err().status(),
            414
        );
        // Still no end of line, already past the limit: refuse before the end.
        assert_eq!(
            parse(&long_line.as_bytes()[..150], &limits)
                .unwrap_err()
                .status(),
            414
        );
        let big = format!("GET http://a.b/ HTTP/1.1\r\nX: {}\r\n", "y".repeat(300));
        assert_eq!(
            parse(big.as_bytes(), &limits).unwrap_err(),
            HeadError::HeadTooLarge { limit: 200 }
        );
        let many = "GET http://a.b/ HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
        assert_eq!(
            parse(many.as_bytes(), &limits).unwrap_err(),
            HeadError::TooManyHeaders { limit: 4 }
        );
        assert_eq!(parse(many.as_bytes(), &limits).unwrap_err().status(), 431);
    }

    #[test]
    fn two_host_fields_are_a_400_whatever_their_values() {
        for raw in [
            "GET http://a.b/ HTTP/1.1\r\nHost: a.b\r\nHost: c.d\r\n\r\n",
            "GET http://a.b/ HTTP/1.1\r\nHost: a.b\r\nhost: a.b\r\n\r\n",
            "CONNECT a.b:443 HTTP/1.1\r\nHOST: a.b\r\nHost: c.d\r\n\r\n",
        ] {
            let e = parse(raw.as_bytes(), &Limits::default()).unwrap_err();
            assert_eq!(
                (e.clone(), e.status()),
                (HeadError::DuplicateHost, 400),
                "{raw:?}"
            );
        }
        let one = parse(
            b"GET http://a.b/ HTTP/1.1\r\nHost: a.b\r\n\r\n",
            &Limits::default(),
        );
        assert!(matches!(one, Ok(Some(_))));
    }

    #[test]
    fn garbage_is_400_never_a_panic() {
        for raw in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET http://a.b/ HTTP/9.9\r\n\r\n",
            b"\xff\xfe CONNECT",
        ] {
            if let Err(e) = parse(raw, &Limits::default()) {
                assert_eq!(e.status(), 400, "{raw:?}");
            }
        }
        // Every prefix of a valid head is either incomplete or complete.
        let raw = b"CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n";
        for n in 0..raw.len() {
            assert_eq!(parse(&raw[..n], &Limits::default()), Ok(None), "prefix {n}");
        }
    }
}
