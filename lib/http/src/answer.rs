//! The short answers a service writes itself (the proxy's and the cache's
//! errors, health and stats: plain text, `Connection: close`), and the
//! reason phrases of the statuses our programs answer with (the management
//! API's too).

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The reason phrase (RFC 9110 section 15) of the statuses the proxy, the
/// cache and the management API answer with; "Error" for any other.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// An error answer with the status's own reason phrase; the connection is
/// closed after it.
pub async fn respond_error<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    body: &str,
) -> std::io::Result<()> {
    respond(w, status, reason_phrase(status), body).await
}

/// A complete short answer; the connection is closed after it.
pub async fn respond<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    reason: &str,
    body: &str,
) -> std::io::Result<()> {
    let body = format!("{body}\n");
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    w.write_all(msg.as_bytes()).await?;
    w.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_answer_names_its_status_and_closes() {
        let mut out = Vec::new();
        respond_error(&mut out, 431, "too big").await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n"
        );
        assert_eq!(reason_phrase(201), "Created");
        assert_eq!(reason_phrase(599), "Error");
    }
}
