//! The client side of a service port (the proxy's, the cache's): the accept
//! loop with its cap on connections, reading each request head within its
//! time and size limits, the answers to refusals (counted in [`Stats`]),
//! the local endpoints (`/health`, `/stats`), and the close after a final
//! answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_http::access::Outcome;
use gateway_http::answer::{reason_phrase, respond};
use gateway_http::head::{self, HeadError, Limits, RequestHead};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;

use crate::config::ProxyConfig;
use crate::stats::Stats;

/// The accept loop of a service port (the proxy's, the cache's): each
/// connection is its own task, `handle`d with the value `current` holds
/// when it arrives; above the connections `slots` allows, `over_capacity`
/// answers it instead.
pub async fn accept_loop<C, H, HF, R, RF>(
    listener: TcpListener,
    current: watch::Receiver<Arc<C>>,
    slots: Arc<Semaphore>,
    handle: H,
    over_capacity: R,
) -> std::io::Result<()>
where
    C: Send + Sync + 'static,
    H: Fn(TcpStream, SocketAddr, Arc<C>) -> HF,
    HF: std::future::Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream, Arc<C>) -> RF,
    RF: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            // Out of file descriptors or similar: back off rather than spin.
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let value = current.borrow().clone();
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let task = handle(client, peer, value);
                tokio::spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(over_capacity(client, value));
            }
        }
    }
}

/// 503 for a connection above the cap.
pub async fn refuse_capacity(mut client: TcpStream, stats: &Stats, service: &str, limit: usize) {
    let body = format!("{service}: too many connections (limit {limit})");
    refuse(&mut client, stats, "capacity", 503, &body).await;
}
/// Closes after a final answer: our side first (the client reads the end of
/// the answer), then whatever the client still sends is read off for a short
/// while. Closing with unread bytes would send a reset, and a reset can make
/// the client's system drop our answer before the client read it.
pub async fn linger_close(mut client: TcpStream) {
    let _ = client.shutdown().await;
    let mut sink = vec![0u8; 4096];
    let mut drained = 0usize;
    let _ = timeout(Duration::from_secs(2), async {
        while drained < 1 << 20 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Reads the next request head. The first has `head_timeout` from the
/// connection's start; a later one may wait `idle_timeout` for its first
/// byte (an idle keep-alive connection), then has `head_timeout` to be
/// complete. `Err(None)`: the connection ended between requests.
pub async fn next_head<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    buf: &mut Vec<u8>,
    config: &ProxyConfig,
    stats: &Stats,
    first: bool,
) -> Result<(RequestHead, Instant), Option<Outcome>> {
    if !first && buf.is_empty() {
        buf.reserve(2048);
        match timeout(config.idle_timeout, client.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Err(None),
        }
    }
    let at = Instant::now();
    match timeout(config.head_timeout, read_head(client, buf, &config.limits)).await {
        Err(_) => {
            let body = "gateway proxy: request head not received in time";
            refuse(client, stats, "timeout", 408, body).await;
            Err(Some(Outcome::refused("", 408, "head timeout")))
        }
        Ok(Err(ReadHeadError::Closed)) if first => {
            Err(Some(Outcome::refused("", 0, "closed before a request")))
        }
        Ok(Err(ReadHeadError::Closed)) => Err(Some(Outcome::refused(
            "",
            0,
            "closed inside a request head",
        ))),
        Ok(Err(ReadHeadError::Head(e))) => {
            let status = e.status();
            refuse_malformed(client, stats, status, e.to_string()).await;
            Err(Some(Outcome::refused("", status, "bad request")))
        }
        Ok(Ok(head)) => {
            buf.drain(..head.len);
            Ok((head, at))
        }
    }
}
/// The local endpoints of a service port (the proxy's, the cache's):
/// `/health`, `/stats` from loopback with `stats_json`'s answer, and 400
/// naming `service` for any other origin-form request.
pub async fn service_endpoint<W: AsyncWrite + Unpin>(
    client: &mut W,
    peer: SocketAddr,
    method: &str,
    path: &str,
    stats: &Stats,
    service: &str,
    stats_json: impl FnOnce() -> String,
) -> Outcome {
    let get = method == "GET" || method == "HEAD";
    match path {
        "/health" if get => {
            let _ = respond(client, 200, "OK", "ok").await;
            Outcome::refused("/health", 200, "health")
        }
        "/stats" if get && peer.ip().is_loopback() => {
            let _ = respond(client, 200, "OK", &stats_json()).await;
            Outcome::refused("/stats", 200, "stats")
        }
        _ => {
            let body = format!(
                "{service}: {path} is not a proxy request; use an absolute URL (http://host/...) or CONNECT host:port"
            );
            refuse(client, stats, "malformed", 400, &body).await;
            Outcome::refused(path, 400, "origin-form")
        }
    }
}

/// Why no request head could be read.
pub enum ReadHeadError {
    /// The connection closed or failed first.
    Closed,
    /// The head is malformed or over a limit.
    Head(HeadError),
}

/// Reads until `buf` holds a complete head (what follows it stays in `buf`).
pub async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limits: &Limits,
) -> Result<RequestHead, ReadHeadError> {
    // On the heap: an array here would sit in every connection's task for
    // its whole life (the task stores every await point's locals).
    let mut chunk = vec![0u8; 2048];
    loop {
        match head::parse(buf, limits) {
            Ok(Some(h)) => return Ok(h),
            Ok(None) => {}
            Err(e) => return Err(ReadHeadError::Head(e)),
        }
        let n = r
            .read(&mut chunk)
            .await
            .map_err(|_| ReadHeadError::Closed)?;
        if n == 0 {
            return Err(ReadHeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
/// A request the proxy cannot read: `status`, with the error in words.
pub async fn refuse_malformed<W: AsyncWrite + Unpin>(
    client: &mut W,
    stats: &Stats,
    status: u16,
    error: String,
) {
    refuse(
        client,
        stats,
        "malformed",
        status,
        &format!("gateway proxy: {error}"),
    )
    .await;
}

/// Counts a refusal under `label` and answers it with `status` and `body`.
pub async fn refuse<W: AsyncWrite + Unpin>(
    client: &mut W,
    stats: &Stats,
    label: &'static str,
    status: u16,
    body: &str,
) {
    stats.refused(label);
    let _ = respond(client, status, reason_phrase(status), body).await;
}
