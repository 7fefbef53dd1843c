//! The network side of the proxy: accept clients, read and check each
//! request head, then tunnel (CONNECT) or forward a plain-HTTP request
//! ([`crate::forward`]); a persistent client connection carries requests one
//! after the other, pipelined ones included.
//!
//! Every refusal is answered with a status and a one-line body that names the
//! reason, counted in [`Stats`], and ends the connection; every request gets
//! one access-log line (client, destination, result, method, bytes,
//! duration; never credentials).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;

use crate::body::{self, BodyKind};
use crate::forward::{self, Exchange};
use crate::head::{self, HeadError, Limits, RequestHead, Target};
use crate::policy::{Decision, Method, Policy};
use crate::relay;
use crate::resolver::Resolver;
use crate::stats::Stats;
use crate::upstream::{self, Upstream};

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub policy: Policy,
    pub limits: Limits,
    /// Static name -> address map; consulted before DNS.
    /// The hosts map and DNS (see [`Resolver`]).
    pub resolver: Resolver,
    /// Time a client has to send a complete request head (slow-loris guard).
    pub head_timeout: Duration,
    pub connect_timeout: Duration,
    /// A tunnel with no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; above it a client gets 503.
    pub max_connections: usize,
    /// Where tunnels and requests go instead of direct, when set.
    pub upstream: Option<Upstream>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            policy: Policy::default(),
            limits: Limits::default(),
            resolver: Resolver::hosts_only(HashMap::new()),
            head_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            max_connections: 16_384,
            upstream: None,
        }
    }
}

/// Accepts clients on `listener` with one fixed configuration.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ProxyConfig>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    // The sender goes away at once: the receiver keeps the one value.
    let (_, configs) = watch::channel(config);
    serve_with(listener, configs, slots, stats).await
}

/// Accepts clients on `listener`; each connection is its own task and takes
/// the configuration current when it arrives, so a reload changes what new
/// connections get and never drops established ones. `slots` caps the
/// connections served at once across listeners (a port change keeps them).
pub async fn serve_with(
    listener: TcpListener,
    configs: watch::Receiver<Arc<ProxyConfig>>,
    slots: Arc<Semaphore>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let full = stats.clone();
    accept_loop(
        listener,
        configs,
        slots,
        move |client, peer, config| {
            let stats = stats.clone();
            async move { handle(client, peer, &config, &stats).await }
        },
        move |client, config| {
            let stats = full.clone();
            async move { refuse_capacity(client, &stats, "gateway proxy", config.max_connections).await }
        },
    )
    .await
}

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

/// What happened to one request, for the access log.
pub struct Outcome {
    pub destination: String,
    pub result: String,
    pub up: u64,
    pub down: u64,
}

impl Outcome {
    pub fn refused(destination: &str, status: u16, reason: &str) -> Outcome {
        Outcome {
            destination: destination.into(),
            result: format!("{status} {reason}"),
            up: 0,
            down: 0,
        }
    }
}

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Read the next request (keep-alive).
    Request,
    /// The last answer is sent: close, reading off what the client still
    /// sends so the close does not reset the connection under the answer.
    Close,
    /// Nothing more to do (a tunnel ended).
    Done,
}

/// Serves a client connection: requests one after the other (keep-alive,
/// pipelining), each checked against the policy and logged on its own, until
/// one ends it.
async fn handle(mut client: TcpStream, peer: SocketAddr, config: &ProxyConfig, stats: &Stats) {
    let mut started = Instant::now();
    // Small writes (the 200, a TLS record) must not wait for the client's
    // delayed ACK: a proxy relays, it has nothing to coalesce.
    let _ = client.set_nodelay(true);
    stats.client_seen(peer.ip());
    let log = |n: u32, method: &str, outcome: &Outcome, started: Instant| {
        access_log(peer, n, method, outcome, started)
    };
    if let Decision::Deny(refusal) = config.policy.check_client(peer.ip()) {
        refuse(
            &mut client,
            stats,
            refusal.reason_label(),
            403,
            &refusal.to_string(),
        )
        .await;
        log(
            1,
            "-",
            &Outcome::refused("", 403, refusal.reason_label()),
            started,
        );
        linger_close(client).await;
        return;
    }
    // What the client sent past the current request: the start of the next
    // one (pipelining) or tunnel data. Never dropped while the connection
    // goes on, never sent anywhere before its own head has been checked.
    let mut buf = Vec::with_capacity(1024);
    let mut n = 1u32;
    loop {
        let head = match next_head(&mut client, &mut buf, config, stats, n == 1).await {
            Ok((head, at)) => {
                if n > 1 {
                    started = at;
                }
                head
            }
            Err(Some(outcome)) => {
                log(n, "-", &outcome, started);
                break;
            }
            // Idle or closed between requests: no request, no line.
            Err(None) => break,
        };
        stats.request();
        let method = head.method.clone();
        let (outcome, next) = serve_request(&mut client, peer, head, &mut buf, config, stats).await;
        log(n, &method, &outcome, started);
        match next {
            Next::Request => {
                n = n.saturating_add(1);
                // A body may have grown the buffer; an idle keep-alive
                // connection should not keep that.
                if buf.capacity() > 16 * 1024 {
                    buf.shrink_to(buf.len().max(1024));
                }
            }
            Next::Close => break,
            Next::Done => return,
        }
    }
    linger_close(client).await;
}

/// The access-log line of one request (`n`: its number on the client
/// connection). No header is logged: credentials never appear.
pub fn access_log(peer: SocketAddr, n: u32, method: &str, outcome: &Outcome, started: Instant) {
    tracing::info!(
        "access client={} dest={} result={:?} method={} up={} down={} ms={} req={}",
        peer.ip(),
        if outcome.destination.is_empty() {
            "-"
        } else {
            &outcome.destination
        },
        outcome.result,
        method,
        outcome.up,
        outcome.down,
        started.elapsed().as_millis(),
        n,
    )
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

/// One request: a local endpoint, a refusal, a tunnel (the connection's
/// last request) or a forwarded plain-HTTP request.
async fn serve_request(
    client: &mut TcpStream,
    peer: SocketAddr,
    head: RequestHead,
    buf: &mut Vec<u8>,
    config: &ProxyConfig,
    stats: &Stats,
) -> (Outcome, Next) {
    if let Target::Origin { path } = &head.target {
        return (
            local_endpoint(client, peer, &head.method, path, stats).await,
            Next::Close,
        );
    }
    let dest = format!("{}:{}", head.target.host(), head.target.port());
    let method = if head.is_connect() {
        Method::Connect
    } else {
        Method::Http
    };
    if let Decision::Deny(refusal) =
        config
            .policy
            .check_destination(method, head.target.host(), head.target.port())
    {
        refuse(
            client,
            stats,
            refusal.reason_label(),
            403,
            &refusal.to_string(),
        )
        .await;
        return (
            Outcome::refused(&dest, 403, refusal.reason_label()),
            Next::Close,
        );
    }
    // The request body's framing, before anything reaches the origin:
    // ambiguous framing is how requests are smuggled past a proxy.
    let body = if head.is_connect() {
        BodyKind::None
    } else {
        match body::request_body(head.version, &head.headers) {
            Ok(kind) => kind,
            Err(e) => {
                let status = e.status();
                refuse_malformed(client, stats, status, e.to_string()).await;
                return (Outcome::refused(&dest, status, &e.to_string()), Next::Close);
            }
        }
    };
    let via = config
        .upstream
        .as_ref()
        .filter(|u| u.applies_to(head.target.host()));
    let connected = match via {
        // The administrator chose the upstream: a local address is fine there.
        Some(u) => connect(&u.host, u.port, config, true).await,
        None => connect(head.target.host(), head.target.port(), config, false).await,
    };
    let mut upstream = match connected {
        Ok(s) => s,
        Err((status, why)) => {
            let label = if status == 403 {
                "destination"
            } else {
                "upstream"
            };
            refuse(
                client,
                stats,
                label,
                status,
                &format!("gateway proxy: {dest}: {why}"),
            )
            .await;
            return (Outcome::refused(&dest, status, &why), Next::Close);
        }
    };
    if head.is_connect() {
        let rest = std::mem::take(buf);
        // Through an upstream, the tunnel starts once it said 200; bytes it
        // sent after its answer belong to the client.
        let mut early_down = Vec::new();
        if let Some(u) = via {
            match upstream_connect(&mut upstream, u, &head.target, config).await {
                Ok(after) => early_down = after,
                Err(why) => {
                    let body = format!(
                        "gateway proxy: {dest}: upstream proxy {}:{}: {why}",
                        u.host, u.port
                    );
                    refuse(client, stats, "upstream", 502, &body).await;
                    return (Outcome::refused(&dest, 502, &why), Next::Close);
                }
            }
        }
        // The head's strings are not needed in the tunnel: freed, not kept
        // for its life (the idle-tunnel memory target).
        drop(head);
        let outcome = tunnel(client, upstream, rest, early_down, &dest, config, stats).await;
        return (outcome, Next::Done);
    }
    let exchange = Exchange {
        head: &head,
        body,
        via,
        client_keep: body::client_persistent(head.version, &head.headers),
    };
    // Boxed: a connection task is as large as its largest await, and an
    // idle tunnel should not carry the plain-HTTP forwarding state.
    let f = Box::pin(forward::forward(
        client, buf, upstream, exchange, config, stats,
    ))
    .await;
    let outcome = Outcome {
        destination: dest,
        result: f.result,
        up: f.up,
        down: f.down,
    };
    let next = if f.keep_alive {
        Next::Request
    } else {
        Next::Close
    };
    (outcome, next)
}

/// Health check for load balancers: `GET /health` on the proxy port answers
/// 200 `ok` while the service accepts and serves connections. `GET /stats`
/// (from the appliance itself only) answers the counters as JSON for the
/// console and the management agent. Anything else in origin form is not a
/// proxy request: 400 saying so.
async fn local_endpoint(
    client: &mut TcpStream,
    peer: SocketAddr,
    method: &str,
    path: &str,
    stats: &Stats,
) -> Outcome {
    let json = || stats.snapshot(Instant::now()).to_json();
    service_endpoint(client, peer, method, path, stats, "gateway proxy", json).await
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

/// Resolves (hosts map first) and connects; errors are the status for the
/// client and a reason in words.
pub async fn connect(
    host: &str,
    port: u16,
    config: &ProxyConfig,
    allow_local: bool,
) -> Result<TcpStream, (u16, String)> {
    let addrs: Vec<SocketAddr> =
        match timeout(config.connect_timeout, config.resolver.lookup(host)).await {
            Ok(Ok(ips)) => ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
            Ok(Err(why)) => return Err((502, why)),
            Err(_) => return Err((504, format!("resolving {host} timed out"))),
        };
    let Some(addr) = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
    else {
        return Err((502, format!("{host} has no address")));
    };
    // In patch mode any name is a destination, and a name may resolve to the
    // appliance itself or a link-local service: those are refused unless the
    // administrator mapped the name so in the hosts map. (In cache mode only
    // the platform's and the administrator's own domains are reachable.)
    let patch = config.policy.mode() == crate::policy::Mode::Patch;
    if patch && !allow_local && !config.resolver.is_mapped(host) && is_local_address(addr.ip()) {
        return Err((
            403,
            format!("{host} resolves to {}, a local address", addr.ip()),
        ));
    }
    match timeout(config.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err((502, format!("cannot connect to {addr}: {e}"))),
        Err(_) => Err((
            504,
            format!(
                "connecting to {addr} timed out after {:?}",
                config.connect_timeout
            ),
        )),
    }
}

/// Loopback, unspecified, link-local, multicast and broadcast addresses.
pub fn is_local_address(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Asks the upstream proxy for a tunnel; returns the bytes it sent after its
/// 200, or why it refused in words (its status and reason).
pub async fn upstream_connect(
    stream: &mut TcpStream,
    u: &Upstream,
    target: &Target,
    config: &ProxyConfig,
) -> Result<Vec<u8>, String> {
    let request = u.connect_request(target.host(), target.port());
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 2048];
    let read = async {
        loop {
            match upstream::parse_response(&buf, config.limits.max_head) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            match stream.read(&mut chunk).await {
                Ok(0) => return Err("closed the connection without an answer".to_owned()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    };
    let head = timeout(config.head_timeout, read)
        .await
        .map_err(|_| "no answer in time".to_owned())??;
    if head.status != 200 {
        return Err(format!("refused with {} {}", head.status, head.reason));
    }
    Ok(buf.split_off(head.len))
}

/// Answers the CONNECT and relays both ways until the tunnel ends;
/// `early` is what the client sent after its head, `early_down` what the
/// upstream proxy sent after its 200. Both are taken and dropped once
/// passed on: an idle tunnel keeps no buffer (the read buffer they come
/// from has room for a whole head).
pub async fn tunnel(
    client: &mut TcpStream,
    mut upstream: TcpStream,
    early: Vec<u8>,
    early_down: Vec<u8>,
    dest: &str,
    config: &ProxyConfig,
    stats: &Stats,
) -> Outcome {
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return Outcome::refused(dest, 0, "client gone");
    }
    // Bytes the client sent right after its head (a TLS ClientHello).
    if !early.is_empty() && upstream.write_all(&early).await.is_err() {
        return Outcome::refused(dest, 0, "upstream gone");
    }
    if !early_down.is_empty() && client.write_all(&early_down).await.is_err() {
        return Outcome::refused(dest, 0, "client gone");
    }
    let early_len = early.len() as u64;
    drop((early, early_down));
    stats.tunnel_opened();
    let (up, down, why) = relay::pump(client, &mut upstream, config.idle_timeout, stats).await;
    stats.tunnel_closed();
    Outcome {
        destination: dest.into(),
        result: format!("200 tunnel {why}"),
        up: up + early_len,
        down,
    }
}

/// The reason phrase of the statuses the proxy answers with itself.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// Counts a refusal under `label` and answers it with `status` and `body`.
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

    #[test]
    fn local_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "ff02::1",
        ] {
            assert!(is_local_address(a.parse().unwrap()), "{a}");
        }
        for a in [
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_local_address(a.parse().unwrap()), "{a}");
        }
    }
}
