//! CONNECT between proxies: the request a proxy sends an upstream proxy
//! for a tunnel, and reading the upstream's answer. Sans-IO; the caller
//! does the I/O (`gateway-forward-proxy`'s egress).

/// The CONNECT request for `host:port` (an IPv6 literal in brackets), with
/// `Proxy-Authorization` when `authorization` is given.
pub fn request(host: &str, port: u16, authorization: Option<&str>) -> Vec<u8> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = authorization {
        req.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// The status line of the upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub status: u16,
    pub reason: String,
    /// Bytes the head took; what follows belongs to the tunnel.
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("the upstream proxy sent a malformed answer: {0}")]
    Malformed(String),
    #[error("the upstream proxy's answer head is larger than {0} bytes")]
    TooLarge(usize),
}

/// Parses the upstream's response head; `Ok(None)`: read more.
pub fn parse_response(buf: &[u8], max: usize) -> Result<Option<ConnectResponse>, ConnectError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some(ConnectResponse {
            status: resp.code.unwrap_or(0),
            reason: resp.reason.unwrap_or_default().to_owned(),
            len,
        })),
        Ok(httparse::Status::Partial) if buf.len() > max => Err(ConnectError::TooLarge(max)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(ConnectError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Err(ConnectError::Malformed(_))
        ));
        assert_eq!(
            parse_response(
                format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(80)).as_bytes(),
                50
            ),
            Err(ConnectError::TooLarge(50))
        );
    }
}
