//! The proxy's connection loop: accept clients, read and check each request
//! head, then tunnel (CONNECT) or forward a plain-HTTP request
//! (`gateway_forward_proxy::forward`); a persistent client connection
//! carries requests one after the other, pipelined ones included. The
//! pieces it is made of (the accept loop, reading heads, egress, the
//! tunnel's relay) are the engine's, which the cache shares.
//!
//! Every refusal is answered with a status and a one-line body that names the
//! reason, counted in [`Stats`], and ends the connection; every request gets
//! one access-log line (client, destination, result, method, bytes,
//! duration; never credentials).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use gateway_forward_proxy::client::{
    accept_loop, linger_close, next_head, refuse, refuse_capacity, refuse_malformed,
    service_endpoint, Admission,
};
use gateway_forward_proxy::config::ProxyConfig;
use gateway_forward_proxy::egress::{connect, upstream_connect};
use gateway_forward_proxy::forward::{self, Exchange};
use gateway_forward_proxy::policy::{Decision, Method};
use gateway_forward_proxy::relay::tunnel;
use gateway_forward_proxy::stats::Stats;
use gateway_http::access::{self, Outcome};
use gateway_http::body::{self, BodyKind};
use gateway_http::head::{RequestHead, Target};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Accepts clients on `listener` with one fixed configuration.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ProxyConfig>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let admission = Admission::new(config.max_connections, config.max_connections_per_client);
    // The sender goes away at once: the receiver keeps the one value.
    let (_, configs) = watch::channel(config);
    serve_with(listener, configs, admission, stats).await
}

/// Accepts clients on `listener`; each connection is its own task and takes
/// the configuration current when it arrives, so a reload changes what new
/// connections get and never drops established ones. `admission` caps the
/// connections served at once, in all and per client, across listeners (a
/// port change keeps them).
pub async fn serve_with(
    listener: TcpListener,
    configs: watch::Receiver<Arc<ProxyConfig>>,
    admission: Arc<Admission>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let full = stats.clone();
    accept_loop(
        listener,
        configs,
        admission,
        move |client, peer, config| {
            let stats = stats.clone();
            async move { handle(client, peer, &config, &stats).await }
        },
        move |client, _, over| {
            let stats = full.clone();
            async move { refuse_capacity(client, &stats, "gateway proxy", over).await }
        },
    )
    .await
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
        access::log(peer, n, method, outcome, started)
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
