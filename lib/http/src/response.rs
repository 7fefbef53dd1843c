//! An origin's (or an upstream proxy's) response head for a plain-HTTP
//! request: parsed with httparse within limits, and written again for the
//! client without the hop-by-hop fields, with the proxy's own `Connection`.
//! Sans-IO; the forwarder (`gateway-forward-proxy`'s `forward`) and the
//! cache do the reading and writing.

/// Limits on a response head: larger than a request's (cookies, CSP), still
/// bounded.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
pub const MAX_RESPONSE_FIELDS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes the head took; what follows is body.
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed response head: {0}")]
    Malformed(String),
    #[error("response head larger than {MAX_RESPONSE_HEAD} bytes or {MAX_RESPONSE_FIELDS} fields")]
    TooLarge,
}

/// Parses the response head at the start of `buf`; `Ok(None)`: read more.
pub fn parse(buf: &[u8]) -> Result<Option<ResponseHead>, ResponseError> {
    let mut fields = vec![httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut resp = httparse::Response::new(&mut fields);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_RESPONSE_HEAD => {
            Err(ResponseError::TooLarge)
        }
        Ok(httparse::Status::Complete(len)) => {
            let (Some(status), Some(version)) = (resp.code, resp.version) else {
                return Err(ResponseError::Malformed("incomplete status line".into()));
            };
            // Three digits, the first 1-5 (RFC 9110 section 15); httparse
            // takes any three digits.
            if !(100..600).contains(&status) {
                return Err(ResponseError::Malformed(format!("status {status:03}")));
            }
            Ok(Some(ResponseHead {
                status,
                reason: resp.reason.unwrap_or_default().to_owned(),
                version,
                headers: resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect(),
                len,
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            Err(ResponseError::TooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ResponseError::TooLarge),
        Err(e) => Err(ResponseError::Malformed(e.to_string())),
    }
}

/// Response fields that concern one connection only (RFC 9110 section
/// 7.6.1) and are not passed on.
pub const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "upgrade",
    "proxy-authenticate",
];

/// What the client's copy of the head says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientConnection {
    /// `Connection: close`: the proxy closes after this response.
    Close,
    /// HTTP/1.0 client that asked to keep the connection:
    /// `Connection: keep-alive`.
    KeepAlive10,
    /// HTTP/1.1 persistence is the default: nothing to say.
    Default,
}

/// The head for the client: `HTTP/1.1` status line (a proxy speaks its own
/// version), the origin's fields in order minus hop-by-hop ones (and those
/// the origin's `Connection` names), then the proxy's `Connection`.
/// `drop_framing`: leave out `Transfer-Encoding` (the body is sent decoded,
/// to an HTTP/1.0 client) and `Content-Length` when `Transfer-Encoding` is
/// present (RFC 9112 section 6.3: it must not be passed on).
pub fn client_head(head: &ResponseHead, conn: ClientConnection, dechunk: bool) -> Vec<u8> {
    let named = crate::body::connection_tokens(&head.headers);
    let has_te = head
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    let mut out = format!("HTTP/1.1 {} {}\r\n", head.status, head.reason).into_bytes();
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str())
            || named.contains(&lower)
            || (has_te && lower == "content-length")
            || (dechunk && lower == "transfer-encoding")
        {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    match conn {
        ClientConnection::Close => out.extend_from_slice(b"Connection: close\r\n"),
        ClientConnection::KeepAlive10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ClientConnection::Default => {}
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rewrites_a_head() {
        let raw = b"HTTP/1.0 200 Fine\r\nContent-Length: 5\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nETag: \"a\"\r\n\r\nhello";
        let head = parse(raw).unwrap().unwrap();
        assert_eq!(
            (head.status, head.reason.as_str(), head.version, head.len),
            (200, "Fine", 0, raw.len() - 5)
        );
        let out = client_head(&head, ClientConnection::Default, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 Fine\r\nContent-Length: 5\r\nETag: \"a\"\r\n\r\n"
        );
        let out = client_head(&head, ClientConnection::KeepAlive10, false);
        assert!(out.ends_with(b"ETag: \"a\"\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn transfer_encoding_wins_over_content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n";
        let head = parse(raw).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(client_head(&head, ClientConnection::Default, false)).unwrap(),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
        );
        assert_eq!(
            String::from_utf8(client_head(&head, ClientConnection::Close, true)).unwrap(),
            "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn partial_malformed_and_oversized_heads() {
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nA: b\r\n"), Ok(None));
        for bad in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 600 High\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ResponseError::Malformed(_))),
                "{bad:?}"
            );
        }
        let big = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(parse(big.as_bytes()), Err(ResponseError::TooLarge));
        let many: String = (0..=MAX_RESPONSE_FIELDS)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect();
        let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(parse(many.as_bytes()), Err(ResponseError::TooLarge));
    }
}
