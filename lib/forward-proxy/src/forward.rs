//! One plain-HTTP exchange on a client connection: the request (head and
//! exactly its body) to the origin or the upstream proxy, the response
//! (head and exactly its body) back to the client, and whether the client
//! connection can carry the next request.
//!
//! Each request gets its own origin connection, asked to close after the
//! response (`Connection: close`). Reusing an origin connection would save a
//! handshake per request, but a reused connection the origin closed while it
//! sat idle fails with the request already sent, and only idempotent requests
//! may be retried then; one connection per request has no such case, never
//! lets an origin's stray bytes reach the next request's client, and every
//! request is resolved, checked and connected on its own. The agents' plain
//! HTTP is a small share of their traffic (most of it is CONNECT), so the
//! handshake is a small price. The client side stays persistent.
//!
//! Request body and response run at once: an origin may answer before it has
//! read the whole body (a 413, or the `100 Continue` a client waits for). The
//! framing rules and the chunked decoder are [`gateway_http::body`]'s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use gateway_http::answer::respond_error;
use gateway_http::body::{self, BodyKind, ChunkedDecoder, ChunkedError};
use gateway_http::head::{RequestHead, Target};
use gateway_http::response::{self, ClientConnection};

use crate::config::ProxyConfig;
use crate::stats::Stats;
use crate::upstream::Upstream;

/// Bytes moved per system call while a body flows.
const CHUNK: usize = 64 * 1024;
/// Interim (1xx) responses accepted before the final one.
const MAX_INTERIM: usize = 16;

/// The request being forwarded.
pub struct Exchange<'a> {
    pub head: &'a RequestHead,
    /// The request body's framing, already checked.
    pub body: BodyKind,
    /// The upstream proxy this request goes through, if any.
    pub via: Option<&'a Upstream>,
    /// The client asked for a persistent connection.
    pub client_keep: bool,
}

/// How the exchange went, for the access log and the connection loop.
pub struct Forwarded {
    /// The final status the client got (0: none).
    pub status: u16,
    pub result: String,
    /// Request bytes sent on (head and body).
    pub up: u64,
    /// Response bytes sent to the client (heads and body).
    pub down: u64,
    /// The client connection may carry the next request.
    pub keep_alive: bool,
}

/// Why the request body could not be passed on.
#[derive(Debug)]
enum UploadError {
    ClientClosed,
    ClientTimeout,
    Malformed(ChunkedError),
    OriginWrite,
}

/// Why the response could not be passed on; `status` is what the client
/// gets when nothing of the response has reached it yet.
struct Failed {
    status: u16,
    why: String,
}

fn failed(status: u16, why: impl Into<String>) -> Failed {
    Failed {
        status,
        why: why.into(),
    }
}

struct Relayed {
    status: u16,
    close_after: bool,
}

/// Forwards one request on `origin` (a fresh connection to the origin or to
/// the upstream proxy). `buf` holds what the client sent past the request
/// head; on return it holds what was read past the request body (the next
/// pipelined request), untouched.
///
/// Generic over both streams so the cache can forward what it does not
/// store over the TLS connections it terminates and opens.
pub async fn forward<C, O>(
    client: &mut C,
    buf: &mut Vec<u8>,
    mut origin: O,
    ex: Exchange<'_>,
    config: &ProxyConfig,
    stats: &Stats,
) -> Forwarded
where
    C: AsyncRead + AsyncWrite + Unpin,
    O: AsyncRead + AsyncWrite + Unpin,
{
    let request = origin_request(
        &target_authority_as_host(ex.head),
        ex.via.map(|u| u.authorization()),
        ex.body,
    );
    if origin.write_all(&request).await.is_err() {
        let why = "the origin closed before the request was sent";
        stats.refused("upstream");
        let _ = respond_error(client, 502, &format!("gateway proxy: {why}")).await;
        return Forwarded {
            status: 502,
            result: format!("502 {why}"),
            up: 0,
            down: 0,
            keep_alive: false,
        };
    }
    stats.add_bytes(request.len() as u64, 0);
    let head_sent = AtomicBool::new(false);
    let mut down = 0u64;
    let (uploaded, downloaded) = {
        let (mut cr, mut cw) = tokio::io::split(&mut *client);
        let (mut or, mut ow) = tokio::io::split(&mut origin);
        let upload = send_body(&mut cr, buf, &mut ow, ex.body, config.idle_timeout, stats);
        let download = relay_response(&mut or, &mut cw, &ex, config, stats, &head_sent, &mut down);
        tokio::pin!(upload, download);
        let mut uploaded: Option<Result<u64, UploadError>> = None;
        let downloaded = loop {
            tokio::select! {
                // The body first when both are ready: a body that is complete
                // keeps the connection.
                biased;
                r = &mut upload, if uploaded.is_none() => {
                    let client_side = matches!(r, Err(ref e) if !matches!(e, UploadError::OriginWrite));
                    uploaded = Some(r);
                    // The client failed mid-body: the origin has half a
                    // request; stop here.
                    if client_side {
                        break None;
                    }
                }
                r = &mut download => break Some(r),
            }
        };
        (uploaded, downloaded)
    };
    let up = request.len() as u64
        + uploaded
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .copied()
            .unwrap_or(0);
    let sent = head_sent.load(Ordering::Relaxed);
    let forwarded = |status: u16, result: String, keep_alive: bool, down: u64| Forwarded {
        status,
        result,
        up,
        down,
        keep_alive,
    };
    match downloaded {
        None => {
            let (status, why) = match uploaded {
                Some(Err(UploadError::Malformed(e))) => {
                    (400, format!("malformed chunked request body: {e}"))
                }
                Some(Err(UploadError::ClientTimeout)) => {
                    (408, "request body not received in time".into())
                }
                _ => (400, "request body cut short".into()),
            };
            if !sent {
                stats.refused(if status == 408 {
                    "timeout"
                } else {
                    "malformed"
                });
                let _ = respond_error(client, status, &format!("gateway proxy: {why}")).await;
                down = 0;
            }
            forwarded(
                if sent { 0 } else { status },
                format!("{status} {why}"),
                false,
                down,
            )
        }
        Some(Err(f)) => {
            if !sent && f.status != 0 {
                stats.refused("upstream");
                let _ = respond_error(client, f.status, &format!("gateway proxy: {}", f.why)).await;
            }
            let status = if sent { 0 } else { f.status };
            forwarded(status, format!("{} {}", f.status, f.why), false, down)
        }
        Some(Ok(r)) => {
            let body_done = matches!(uploaded, Some(Ok(_)));
            let keep = !r.close_after && body_done;
            forwarded(r.status, format!("{} forwarded", r.status), keep, down)
        }
    }
}

/// Passes the request body on, exactly: `buf` first, then reads from the
/// client. Whatever was read past the body stays in `buf`.
async fn send_body<R, W>(
    client: &mut R,
    buf: &mut Vec<u8>,
    origin: &mut W,
    kind: BodyKind,
    idle: Duration,
    stats: &Stats,
) -> Result<u64, UploadError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = match kind {
        BodyKind::Length(n) => n,
        BodyKind::Chunked => 0,
        BodyKind::None | BodyKind::UntilClose => return Ok(0),
    };
    let mut decoder = ChunkedDecoder::new();
    let mut sent = 0u64;
    loop {
        let take = match kind {
            BodyKind::Chunked => decoder.feed(buf, |_| {}).map_err(UploadError::Malformed)?,
            _ => left.min(buf.len() as u64) as usize,
        };
        if take > 0 {
            // A stalled origin (not reading) is given up after `idle`, as a
            // silent one is.
            match timeout(idle, origin.write_all(&buf[..take])).await {
                Ok(Ok(())) => {}
                _ => return Err(UploadError::OriginWrite),
            }
            buf.drain(..take);
            sent += take as u64;
            stats.add_bytes(take as u64, 0);
        }
        let done = match kind {
            BodyKind::Chunked => decoder.is_done(),
            _ => {
                left -= take as u64;
                left == 0
            }
        };
        if done {
            return Ok(sent);
        }
        buf.reserve(CHUNK);
        match timeout(idle, client.read_buf(buf)).await {
            Err(_) => return Err(UploadError::ClientTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(UploadError::ClientClosed),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads more into `buf` within `idle`; 0 means the peer closed.
async fn read_more<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    idle: Duration,
) -> Result<usize, Failed> {
    buf.reserve(CHUNK);
    match timeout(idle, r.read_buf(buf)).await {
        Err(_) => Err(failed(
            504,
            format!("no answer from the origin within {idle:?}"),
        )),
        Ok(Err(e)) => Err(failed(502, format!("reading the response: {e}"))),
        Ok(Ok(n)) => Ok(n),
    }
}

/// The client side of a response: counts what it is sent, and marks that
/// the response has started (an error can no longer be answered).
struct ToClient<'a, W> {
    client: &'a mut W,
    stats: &'a Stats,
    head_sent: &'a AtomicBool,
    down: &'a mut u64,
    idle: Duration,
}

impl<W: AsyncWrite + Unpin> ToClient<'_, W> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failed> {
        self.head_sent.store(true, Ordering::Relaxed);
        // A client that stops reading is given up after `idle`.
        match timeout(self.idle, self.client.write_all(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(failed(0, "client gone")),
            Err(_) => return Err(failed(0, "client stopped reading")),
        }
        *self.down += bytes.len() as u64;
        self.stats.add_bytes(0, bytes.len() as u64);
        Ok(())
    }
}

/// Reads the response head (after any interim 1xx ones, which go to an
/// HTTP/1.1 client as they come), then exactly the body its framing says.
async fn relay_response<R, W>(
    origin: &mut R,
    client: &mut W,
    ex: &Exchange<'_>,
    config: &ProxyConfig,
    stats: &Stats,
    head_sent: &AtomicBool,
    down: &mut u64,
) -> Result<Relayed, Failed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let idle = config.idle_timeout;
    let mut rbuf = Vec::new();
    let mut interim = 0;
    let mut out = ToClient {
        client,
        stats,
        head_sent,
        down,
        idle,
    };
    let head = loop {
        let head = loop {
            match response::parse(&rbuf) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => return Err(failed(502, format!("the origin sent a {e}"))),
            }
            if read_more(origin, &mut rbuf, idle).await? == 0 {
                return Err(failed(
                    502,
                    "the origin closed the connection without a response",
                ));
            }
        };
        rbuf.drain(..head.len);
        match head.status {
            101 => {
                return Err(failed(
                    502,
                    "the origin switched protocols, which is not relayed",
                ))
            }
            100..=199 => {
                interim += 1;
                if interim > MAX_INTERIM {
                    return Err(failed(502, "the origin sent too many interim responses"));
                }
                // RFC 9110 section 15.2: never to an HTTP/1.0 client.
                if ex.head.version >= 1 {
                    out.send(&response::client_head(
                        &head,
                        ClientConnection::Default,
                        false,
                    ))
                    .await?;
                }
            }
            _ => break head,
        }
    };
    if let (Some(u), 407) = (ex.via, head.status) {
        // Our credentials, not the client's: an upstream refusal (as for
        // tunnels).
        return Err(failed(
            502,
            format!(
                "upstream proxy {}:{} refused with 407 {}",
                u.host, u.port, head.reason
            ),
        ));
    }
    let kind = body::response_body(ex.head.method == "HEAD", head.status, &head.headers)
        .map_err(|e| failed(502, format!("the origin's response framing: {e}")))?;
    // An HTTP/1.0 client cannot read chunked: it gets the data, delimited by
    // the close.
    let dechunk = kind == BodyKind::Chunked && ex.head.version == 0;
    let close_after = !ex.client_keep || kind == BodyKind::UntilClose || dechunk;
    let conn = match (close_after, ex.head.version) {
        (true, _) => ClientConnection::Close,
        (false, 0) => ClientConnection::KeepAlive10,
        (false, _) => ClientConnection::Default,
    };
    out.send(&response::client_head(&head, conn, dechunk))
        .await?;
    let cut = |what: &str| failed(502, format!("the origin closed the connection {what}"));
    match kind {
        BodyKind::None => {}
        BodyKind::Length(n) => {
            let mut left = n;
            loop {
                // Bytes past the length are not the client's: dropped with
                // the origin connection.
                let take = left.min(rbuf.len() as u64) as usize;
                if take > 0 {
                    out.send(&rbuf[..take]).await?;
                    left -= take as u64;
                }
                rbuf.clear();
                if left == 0 {
                    break;
                }
                if read_more(origin, &mut rbuf, idle).await? == 0 {
                    return Err(cut("before the end of the body"));
                }
            }
        }
        BodyKind::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut data = Vec::new();
            loop {
                data.clear();
                let take = decoder
                    .feed(&rbuf, |d| {
                        if dechunk {
                            data.extend_from_slice(d)
                        }
                    })
                    .map_err(|e| {
                        failed(
                            502,
                            format!("the origin sent a malformed chunked body: {e}"),
                        )
                    })?;
                let bytes = if dechunk { &data[..] } else { &rbuf[..take] };
                if !bytes.is_empty() {
                    out.send(bytes).await?;
                }
                rbuf.clear();
                if decoder.is_done() {
                    break;
                }
                if read_more(origin, &mut rbuf, idle).await? == 0 {
                    return Err(cut("inside the chunked body"));
                }
            }
        }
        BodyKind::UntilClose => loop {
            if !rbuf.is_empty() {
                out.send(&rbuf).await?;
                rbuf.clear();
            }
            if read_more(origin, &mut rbuf, idle).await? == 0 {
                break;
            }
        },
    }
    Ok(Relayed {
        status: head.status,
        close_after,
    })
}

/// Hop-by-hop request fields a proxy must not pass on (RFC 9110 section
/// 7.6.1), the proxy's own credentials, and the framing fields (written
/// again from the checked framing).
const NOT_PASSED_ON: [&str; 10] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "transfer-encoding",
];

/// The request as the origin gets it: origin-form target, no hop-by-hop
/// headers (nor those the client's `Connection` names), the body's framing
/// as checked, and `Connection: close` (one origin connection per request,
/// see the module comment).
///
/// Through an upstream proxy (`via` is `Some`, holding its credentials if
/// any), the target stays in absolute form and carries our own
/// `Proxy-Authorization`, never the client's.
pub fn origin_request(head: &RequestHead, via: Option<Option<String>>, body: BodyKind) -> Vec<u8> {
    let path = match &head.target {
        Target::Absolute { path, .. } => path.as_str(),
        Target::Origin { path } => path.as_str(),
        Target::Authority { .. } => "/",
    };
    let target = match via {
        Some(_) => format!("http://{}{path}", host_header(&head.target)),
        None => path.to_owned(),
    };
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, target).into_bytes();
    if let Some(Some(auth)) = &via {
        out.extend_from_slice(format!("Proxy-Authorization: {auth}\r\n").as_bytes());
    }
    if head.header("host").is_none() {
        out.extend_from_slice(format!("Host: {}\r\n", host_header(&head.target)).as_bytes());
    }
    let named = body::connection_tokens(&head.headers);
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if NOT_PASSED_ON.contains(&lower.as_str()) || named.contains(&lower) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    match body {
        BodyKind::Length(n) => out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes()),
        BodyKind::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyKind::None | BodyKind::UntilClose => {}
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// The head with the client's `Host` fields dropped when its target is in
/// absolute form: a proxy ignores them and sends the target's authority
/// (RFC 9112 3.2.2), which [`origin_request`] writes when no `Host` is
/// left. Otherwise a client could name one host in the URL (the one the
/// policy allowed and the connection went to) and another to the origin.
/// An origin-form head (a request inside a connection the cache
/// terminated) keeps its `Host`: there is no other authority to send.
fn target_authority_as_host(head: &RequestHead) -> std::borrow::Cow<'_, RequestHead> {
    let absolute = matches!(head.target, Target::Absolute { .. });
    if !absolute || head.header("host").is_none() {
        return std::borrow::Cow::Borrowed(head);
    }
    let mut own = head.clone();
    own.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("host"));
    std::borrow::Cow::Owned(own)
}

fn host_header(target: &Target) -> String {
    let (host, port) = (target.host(), target.port());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_http::head::{self, Limits};

    #[test]
    fn origin_request_drops_hop_by_hop_and_credentials() {
        let raw = "GET http://a.b:8080/x?y HTTP/1.1\r\nHost: a.b:8080\r\nProxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n";
        let head = head::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        let out = String::from_utf8(origin_request(&head, None, BodyKind::None)).unwrap();
        assert_eq!(
            out,
            "GET /x?y HTTP/1.1\r\nHost: a.b:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn through_an_upstream_the_target_stays_absolute_with_our_credentials() {
        let raw = "GET http://a.b:8080/x HTTP/1.1\r\nHost: a.b:8080\r\nProxy-Authorization: Basic Y2xpZW50\r\n\r\n";
        let head = head::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        let out = String::from_utf8(origin_request(
            &head,
            Some(Some("Basic b3Vycw==".into())),
            BodyKind::None,
        ))
        .unwrap();
        assert_eq!(
            out,
            "GET http://a.b:8080/x HTTP/1.1\r\nProxy-Authorization: Basic b3Vycw==\r\nHost: a.b:8080\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn an_absolute_form_request_carries_its_target_as_host_not_the_clients() {
        let raw = "GET http://a.b:8080/x HTTP/1.1\r\nHost: internal.corp\r\nAccept: */*\r\n\r\n";
        let head = head::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        let out = origin_request(&target_authority_as_host(&head), None, BodyKind::None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nHost: a.b:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        // An origin-form head keeps its Host: it is the only authority.
        let raw = "GET /x HTTP/1.1\r\nHost: a.b\r\n\r\n";
        let head = head::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            target_authority_as_host(&head).header("host"),
            Some(&b"a.b"[..])
        );
    }

    #[test]
    fn origin_request_adds_a_missing_host() {
        let head = head::parse(b"GET http://a.b/ HTTP/1.0\r\n\r\n", &Limits::default())
            .unwrap()
            .unwrap();
        let out = String::from_utf8(origin_request(&head, None, BodyKind::None)).unwrap();
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: a.b\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn framing_is_written_from_the_checked_body_and_named_fields_dropped() {
        let raw = "POST http://a.b/up HTTP/1.1\r\nHost: a.b\r\nConnection: X-Secret-Hop\r\nX-Secret-Hop: 1\r\nTransfer-Encoding: Chunked\r\nX-Kept: 2\r\n\r\n";
        let head = head::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        let out = String::from_utf8(origin_request(&head, None, BodyKind::Chunked)).unwrap();
        assert_eq!(
            out,
            "POST /up HTTP/1.1\r\nHost: a.b\r\nX-Kept: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        let raw = "POST http://a.b/up HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n";
        let head = head::parse(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        let out = String::from_utf8(origin_request(&head, None, BodyKind::Length(3))).unwrap();
        assert_eq!(
            out,
            "POST /up HTTP/1.1\r\nHost: a.b\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
    }
}
