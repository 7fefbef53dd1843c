//! The little HTTP/1.1 the management API needs, both sides: one request
//! per connection (`Connection: close`), JSON bodies framed by
//! `Content-Length`. The management API defines that framing
//! (docs/management-api.md), so there is no chunked coding to decode.
//! Status lines carry `gateway-http`'s reason phrases, the proxy's and the
//! cache's; the heads are read here, not with `gateway-http`'s proxy
//! request parser, whose target forms and limits are a proxy's.

use gateway_http::answer::reason_phrase;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest head or body either side accepts.
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed before a complete {0}")]
    Truncated(&'static str),
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("{what} larger than {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
}

/// A parsed message: the first line's parts, the header fields (names in
/// lowercase) and the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Request: method; response: the status code as text.
    pub first: String,
    /// Request: the path; response: the reason phrase.
    pub second: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A response's status code (0 when this is not a response).
    pub fn status(&self) -> u16 {
        self.first.parse().unwrap_or(0)
    }
}

/// Writes one message: `start` is the request or status line, without CRLF.
pub async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    start: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!("{start}\r\n");
    for (name, value) in headers {
        out += &format!("{name}: {value}\r\n");
    }
    out += &format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// Writes one response: the status line with the status's reason phrase.
pub async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let start = format!("HTTP/1.1 {status} {}", reason_phrase(status));
    write(stream, &start, headers, body).await
}

enum Kind {
    Request,
    Response,
}

/// Reads a request (the simulator's side).
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Message, HttpError> {
    read(stream, Kind::Request).await
}

/// Reads a response (the agent's side).
pub async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Message, HttpError> {
    read(stream, Kind::Response).await
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S, kind: Kind) -> Result<Message, HttpError> {
    let what = match kind {
        Kind::Request => "request",
        Kind::Response => "response",
    };
    let mut buf = Vec::with_capacity(4096);
    let (mut msg, head_len) = loop {
        if let Some(parsed) = parse_head(&buf, &kind)? {
            break parsed;
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::TooLarge {
                what: "head",
                limit: MAX_HEAD,
            });
        }
        if read_some(stream, &mut buf).await? == 0 {
            return Err(HttpError::Truncated(what));
        }
    };
    let length = match msg.header("content-length") {
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| HttpError::Malformed {
                what,
                detail: format!("Content-Length {v:?}"),
            })?,
        None => 0,
    };
    if length > MAX_BODY {
        return Err(HttpError::TooLarge {
            what: "body",
            limit: MAX_BODY,
        });
    }
    while buf.len() < head_len + length {
        if read_some(stream, &mut buf).await? == 0 {
            return Err(HttpError::Truncated(what));
        }
    }
    msg.body = buf[head_len..head_len + length].to_vec();
    Ok(msg)
}

/// One read; a TLS peer that closes without close_notify after a complete
/// message is the same as a close.
async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}

fn parse_head(buf: &[u8], kind: &Kind) -> Result<Option<(Message, usize)>, HttpError> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let malformed = |what, e: httparse::Error| HttpError::Malformed {
        what,
        detail: e.to_string(),
    };
    let (first, second, len, fields) = match kind {
        Kind::Request => {
            let mut req = httparse::Request::new(&mut fields);
            match req.parse(buf).map_err(|e| malformed("request", e))? {
                httparse::Status::Partial => return Ok(None),
                httparse::Status::Complete(len) => (
                    req.method.unwrap_or("").to_owned(),
                    req.path.unwrap_or("").to_owned(),
                    len,
                    req.headers.to_vec(),
                ),
            }
        }
        Kind::Response => {
            let mut resp = httparse::Response::new(&mut fields);
            match resp.parse(buf).map_err(|e| malformed("response", e))? {
                httparse::Status::Partial => return Ok(None),
                httparse::Status::Complete(len) => (
                    resp.code.unwrap_or(0).to_string(),
                    resp.reason.unwrap_or("").to_owned(),
                    len,
                    resp.headers.to_vec(),
                ),
            }
        }
    };
    let headers = fields
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok(Some((
        Message {
            first,
            second,
            headers,
            body: Vec::new(),
        },
        len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_and_a_response_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        write(
            &mut a,
            "POST /api/v1/x HTTP/1.1",
            &[("Host", "h")],
            b"{\"a\":1}",
        )
        .await
        .unwrap();
        let req = read_request(&mut b).await.unwrap();
        assert_eq!(
            (req.first.as_str(), req.second.as_str()),
            ("POST", "/api/v1/x")
        );
        assert_eq!(req.header("host"), Some("h"));
        assert_eq!(req.body, b"{\"a\":1}");
        write(&mut b, "HTTP/1.1 404 Not Found", &[], b"no")
            .await
            .unwrap();
        drop(b);
        let resp = read_response(&mut a).await.unwrap();
        assert_eq!((resp.status(), resp.body.as_slice()), (404, &b"no"[..]));
    }

    #[tokio::test]
    async fn a_response_carries_its_reason_phrase() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_response(&mut b, 409, &[], b"{}").await.unwrap();
        drop(b);
        let resp = read_response(&mut a).await.unwrap();
        assert_eq!((resp.status(), resp.second.as_str()), (409, "Conflict"));
    }

    #[tokio::test]
    async fn a_truncated_body_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        drop(a);
        assert!(matches!(
            read_response(&mut b).await,
            Err(HttpError::Truncated("response"))
        ));
    }
}
