//! The client side of a service port (the proxy's, the cache's): the accept
//! loop with its caps on connections (in all, and from one address: a
//! single host must not take every slot, nor the memory their pending heads
//! hold), reading each request head within its
//! time and size limits, the answers to refusals (counted in [`Stats`]),
//! the local endpoints (`/health`, `/stats`), and the close after a final
//! answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_http::access::Outcome;
use gateway_http::answer::{reason_phrase, respond};
use gateway_http::head::{self, HeadError, Limits, RequestHead};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

use crate::config::ProxyConfig;
use crate::stats::Stats;

/// Who is served: at most `total` connections at once (across the
/// listeners of a service, so a port change keeps the count), at most
/// `per_client` of them from one address. Read at start only.
#[derive(Debug)]
pub struct Admission {
    total: Arc<Semaphore>,
    total_limit: usize,
    per_client: usize,
    clients: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The service holds its `limit` connections.
    Total { limit: usize },
    /// This address holds its `limit` connections.
    Client { ip: IpAddr, limit: usize },
}

/// An admitted connection's place, given back when it is dropped.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    ip: IpAddr,
    admission: Arc<Admission>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut clients = self
            .admission
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = clients.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                clients.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    pub fn new(total: usize, per_client: usize) -> Arc<Admission> {
        Arc::new(Admission {
            total: Arc::new(Semaphore::new(total)),
            total_limit: total,
            per_client,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// A place for a connection from `ip` (an IPv4-mapped address counts
    /// as the IPv4 address it is), or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Over> {
        let ip = ip.to_canonical();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let held = clients.get(&ip).copied().unwrap_or(0);
        if held >= self.per_client {
            return Err(Over::Client {
                ip,
                limit: self.per_client,
            });
        }
        let slot = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Over::Total {
                limit: self.total_limit,
            })?;
        clients.insert(ip, held + 1);
        Ok(Admitted {
            _slot: slot,
            ip,
            admission: self.clone(),
        })
    }
}

/// The accept loop of a service port (the proxy's, the cache's): each
/// connection is its own task, `handle`d with the value `current` holds
/// when it arrives; one that `admission` refuses gets `over_capacity`'s
/// answer instead.
pub async fn accept_loop<C, H, HF, R, RF>(
    listener: TcpListener,
    current: watch::Receiver<Arc<C>>,
    admission: Arc<Admission>,
    handle: H,
    over_capacity: R,
) -> std::io::Result<()>
where
    C: Send + Sync + 'static,
    H: Fn(TcpStream, SocketAddr, Arc<C>) -> HF,
    HF: std::future::Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream, Arc<C>, Over) -> RF,
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
        match admission.admit(peer.ip()) {
            Ok(place) => {
                let task = handle(client, peer, value);
                tokio::spawn(async move {
                    task.await;
                    drop(place);
                });
            }
            Err(over) => {
                tokio::spawn(over_capacity(client, value, over));
            }
        }
    }
}

/// 503 for a connection above a cap, naming it.
pub async fn refuse_capacity(mut client: TcpStream, stats: &Stats, service: &str, over: Over) {
    let body = match over {
        Over::Total { limit } => format!("{service}: too many connections (limit {limit})"),
        Over::Client { ip, limit } => {
            format!("{service}: too many connections from {ip} (limit {limit} per client)")
        }
    };
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
