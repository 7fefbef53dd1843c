//! The network side: accept agents, check them and their destinations with
//! the proxy's policy, then for each request either tunnel (CONNECT to a
//! spliced domain), intercept (CONNECT: TLS terminated with a minted leaf,
//! the requests inside served by [`crate::serve`]), or serve a plain-HTTP
//! absolute-form request the same way. `GET /health` and `GET /stats` (from
//! the appliance itself) answer as the proxy's do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use gateway_forward_proxy::client::{
    accept_loop, linger_close, next_head, refuse, refuse_capacity, service_endpoint, Admission,
};
use gateway_forward_proxy::egress;
use gateway_forward_proxy::policy::{domain_matches, Decision, Method};
use gateway_forward_proxy::relay::tunnel;
use gateway_http::access::{self, Outcome};
use gateway_http::answer::respond_error;
use gateway_http::head::{RequestHead, Target};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::fetch::Origin;
use crate::leaf::MinVersion;
use crate::prefixed::Prefixed;
use crate::serve::serve_request;
pub use crate::service::{Next, Service};

/// Accepts clients on `listener`; each connection takes the service
/// current when it arrives.
pub async fn serve(
    listener: TcpListener,
    services: watch::Receiver<Arc<Service>>,
    slots: Arc<Admission>,
) -> std::io::Result<()> {
    accept_loop(
        listener,
        services,
        slots,
        |client, peer, svc| async move { handle(client, peer, &svc).await },
        |client, svc, over| async move {
            refuse_capacity(client, &svc.stats, "gateway cache", over).await
        },
    )
    .await
}

use access::log;

async fn handle(mut client: TcpStream, peer: SocketAddr, svc: &Service) {
    let _ = client.set_nodelay(true);
    // The proxy's counters (connections, unique clients) count every
    // connection, as on the proxy's port; the cache's active agents are
    // recorded below, once the client is allowed and asks for a proxy
    // request.
    svc.stats.client_seen(peer.ip());
    let mut started = Instant::now();
    if let Decision::Deny(r) = svc.config.proxy.policy.check_client(peer.ip()) {
        refuse(
            &mut client,
            &svc.stats,
            r.reason_label(),
            403,
            &r.to_string(),
        )
        .await;
        log(
            peer,
            1,
            "-",
            &Outcome::refused("", 403, r.reason_label()),
            started,
        );
        linger_close(client).await;
        return;
    }
    let mut buf = Vec::with_capacity(1024);
    let mut n = 1u32;
    let mut agent = false;
    loop {
        let Some(head) = next_request(&mut client, &mut buf, peer, n, &mut started, svc).await
        else {
            break;
        };
        // An active agent is an allowed client using the cache as a proxy:
        // not a request to the cache itself (origin form: the health check
        // and `GET /stats`, from the appliance or a monitor).
        if !agent && !matches!(head.target, Target::Origin { .. }) {
            svc.cache_stats.agent_seen(peer.ip());
            agent = true;
        }
        let method = head.method.clone();
        let next = match &head.target {
            Target::Origin { path } => {
                let o = local_endpoint(&mut client, peer, &head.method, path, svc).await;
                log(peer, n, &method, &o, started);
                Next::Close
            }
            Target::Authority { host, port } => {
                let (host, port) = (host.clone(), *port);
                connect_request(client, peer, head, buf, svc, host, port, started).await;
                return;
            }
            Target::Absolute { host, port, .. } => {
                let origin = Origin {
                    https: false,
                    host: host.clone(),
                    port: *port,
                };
                if let Some(o) = check_destination(&mut client, svc, Method::Http, &origin).await {
                    log(peer, n, &method, &o, started);
                    break;
                }
                let (o, next) = serve_request(&mut client, &head, &mut buf, &origin, svc).await;
                log(peer, n, &method, &o, started);
                next
            }
        };
        match next {
            Next::Request => n = n.saturating_add(1),
            Next::Close => break,
        }
    }
    linger_close(client).await;
}

/// The policy's answer for a destination; a refusal is answered here.
async fn check_destination<S: AsyncWrite + Unpin>(
    client: &mut S,
    svc: &Service,
    method: Method,
    origin: &Origin,
) -> Option<Outcome> {
    let dest = format!("{}:{}", origin.host, origin.port);
    match svc
        .config
        .proxy
        .policy
        .check_destination(method, &origin.host, origin.port)
    {
        Decision::Allow => None,
        Decision::Deny(r) => {
            refuse(client, &svc.stats, r.reason_label(), 403, &r.to_string()).await;
            Some(Outcome::refused(&dest, 403, r.reason_label()))
        }
    }
}

fn spliced(svc: &Service, host: &str) -> bool {
    svc.config.splice.iter().any(|d| domain_matches(host, d))
}

/// CONNECT: a tunnel for spliced domains, an interception otherwise.
#[allow(clippy::too_many_arguments)]
async fn connect_request(
    mut client: TcpStream,
    peer: SocketAddr,
    head: RequestHead,
    buf: Vec<u8>,
    svc: &Service,
    host: String,
    port: u16,
    started: Instant,
) {
    let origin = Origin {
        https: true,
        host,
        port,
    };
    let dest = format!("{}:{}", origin.host, origin.port);
    if let Some(o) = check_destination(&mut client, svc, Method::Connect, &origin).await {
        log(peer, 1, "CONNECT", &o, started);
        linger_close(client).await;
        return;
    }
    let p = &svc.config.proxy;
    if spliced(svc, &origin.host) {
        let via = p.upstream.as_ref().filter(|u| u.applies_to(&origin.host));
        let connected = match via {
            Some(u) => egress::connect(&u.host, u.port, p, true).await,
            None => egress::connect(&origin.host, origin.port, p, false).await,
        };
        let mut up = match connected {
            Ok(s) => s,
            Err((status, why)) => {
                refuse(
                    &mut client,
                    &svc.stats,
                    "upstream",
                    status,
                    &format!("gateway cache: {dest}: {why}"),
                )
                .await;
                log(
                    peer,
                    1,
                    "CONNECT",
                    &Outcome::refused(&dest, status, &why),
                    started,
                );
                return;
            }
        };
        let mut early_down = Vec::new();
        if let Some(u) = via {
            match egress::upstream_connect(&mut up, u, &head.target, p).await {
                Ok(after) => early_down = after,
                Err(why) => {
                    refuse(
                        &mut client,
                        &svc.stats,
                        "upstream",
                        502,
                        &format!("gateway cache: {dest}: {why}"),
                    )
                    .await;
                    log(
                        peer,
                        1,
                        "CONNECT",
                        &Outcome::refused(&dest, 502, &why),
                        started,
                    );
                    return;
                }
            }
        }
        let o = tunnel(&mut client, up, buf, early_down, &dest, p, &svc.stats).await;
        log(peer, 1, "CONNECT", &o, started);
        return;
    }
    let config = match svc.leaves.config_for(&origin.host) {
        Ok(c) => c,
        Err(e) => {
            refuse(
                &mut client,
                &svc.stats,
                "malformed",
                502,
                &format!("gateway cache: {e}"),
            )
            .await;
            log(
                peer,
                1,
                "CONNECT",
                &Outcome::refused(&dest, 502, "leaf"),
                started,
            );
            return;
        }
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let stream = Prefixed::new(buf, client);
    let accept = async {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await?;
        start.into_stream(config).await
    };
    let tls = match tokio::time::timeout(p.head_timeout, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let why = handshake_failure(&e, svc.config.min_version);
            tracing::info!("client {}: TLS for {dest}: {why}", peer.ip());
            log(
                peer,
                1,
                "CONNECT",
                &Outcome::refused(&dest, 0, "tls handshake failed"),
                started,
            );
            return;
        }
        Err(_) => {
            log(
                peer,
                1,
                "CONNECT",
                &Outcome::refused(&dest, 0, "tls handshake timeout"),
                started,
            );
            return;
        }
    };
    intercepted(tls, peer, &origin, svc).await;
}

/// A handshake failure in words; a client refused for its TLS versions
/// gets the reason spelled out. Matched on the error rustls returned (the
/// `io::Error` carries it), not on its text: rustls 0.23 says
/// `Tls12NotOffered` to a TLS 1.0/1.1 ClientHello that carries
/// signature_algorithms, which no text match of the older names caught.
fn handshake_failure(e: &std::io::Error, min: MinVersion) -> String {
    use rustls::PeerIncompatible as P;
    let text = e.to_string();
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return text;
    };
    match (tls, min) {
        // No TLS 1.3 offered by a client whose ClientHello is 1.2 (no
        // supported_versions), or whose supported_versions stop at 1.2.
        (
            rustls::Error::PeerIncompatible(
                P::SupportedVersionsExtensionRequired | P::Tls12NotOfferedOrEnabled,
            ),
            MinVersion::Tls13,
        ) => format!(
            "{text}: TLS 1.2 refused: tls.min_version is 1.3 (the client offers TLS 1.2 at most)"
        ),
        // What rustls says to a ClientHello of TLS 1.0 or 1.1: its version
        // below 1.2 (`Tls12NotOffered`), supported_versions without 1.2 or
        // 1.3, no signature_algorithms (a TLS 1.0/1.1 hello has none); or
        // the client's own protocol_version alert.
        (
            rustls::Error::PeerIncompatible(
                P::Tls12NotOffered
                | P::Tls12NotOfferedOrEnabled
                | P::SignatureAlgorithmsExtensionRequired
                | P::SupportedVersionsExtensionRequired,
            )
            | rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion),
            _,
        ) => format!(
            "{text}: the client offers no TLS version this service speaks; TLS 1.0 and 1.1 are refused because rustls does not implement them (they are deprecated by RFC 8996)"
        ),
        _ => text,
    }
}

/// The next request head of a connection (`n`: its number), counted;
/// `None` when the connection ends (logged when it ended inside a head).
async fn next_request<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    n: u32,
    started: &mut Instant,
    svc: &Service,
) -> Option<RequestHead> {
    match next_head(s, buf, &svc.config.proxy, &svc.stats, n == 1).await {
        Ok((head, at)) => {
            if n > 1 {
                *started = at;
            }
            svc.stats.request();
            Some(head)
        }
        Err(Some(o)) => {
            log(peer, n, "-", &o, *started);
            None
        }
        Err(None) => None,
    }
}

/// The requests inside an intercepted connection, one after the other.
async fn intercepted<S: AsyncRead + AsyncWrite + Unpin>(
    mut tls: S,
    peer: SocketAddr,
    origin: &Origin,
    svc: &Service,
) {
    let mut buf = Vec::with_capacity(1024);
    let mut n = 1u32;
    let mut started = Instant::now();
    loop {
        let Some(head) = next_request(&mut tls, &mut buf, peer, n, &mut started, svc).await else {
            break;
        };
        let method = head.method.clone();
        if !matches!(head.target, Target::Origin { .. }) {
            let why = "inside an intercepted connection, requests use origin form (GET /path)";
            let _ = respond_error(&mut tls, 400, &format!("gateway cache: {why}")).await;
            log(peer, n, &method, &Outcome::refused("", 400, why), started);
            break;
        }
        let (o, next) = serve_request(&mut tls, &head, &mut buf, origin, svc).await;
        log(peer, n, &method, &o, started);
        match next {
            Next::Request => n = n.saturating_add(1),
            Next::Close => break,
        }
    }
    let _ = tls.shutdown().await;
}

async fn local_endpoint(
    client: &mut TcpStream,
    peer: SocketAddr,
    method: &str,
    path: &str,
    svc: &Service,
) -> Outcome {
    let json = || {
        let proxy = svc.stats.snapshot(Instant::now());
        svc.cache_stats.answer(proxy, svc.store.counts()).to_json()
    };
    service_endpoint(
        client,
        peer,
        method,
        path,
        &svc.stats,
        "gateway cache",
        json,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_client_is_told_why() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let old = "TLS 1.0 and 1.1 are refused because rustls does not implement them";
        for e in [
            rustls::PeerIncompatible::SignatureAlgorithmsExtensionRequired,
            rustls::PeerIncompatible::SupportedVersionsExtensionRequired,
            // A TLS 1.1 ClientHello with signature_algorithms (rustls 0.23).
            rustls::PeerIncompatible::Tls12NotOffered,
            rustls::PeerIncompatible::Tls12NotOfferedOrEnabled,
        ] {
            let why = handshake_failure(&io(rustls::Error::PeerIncompatible(e)), MinVersion::Tls12);
            assert!(why.contains(old), "{why}");
        }
        // The same refusal as rustls wraps it through tokio-rustls, kind Other.
        let other_kind = std::io::Error::other(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ));
        assert!(handshake_failure(&other_kind, MinVersion::Tls12).contains(old));
        // A TLS 1.1 client is an old one with a 1.3 minimum too.
        let why = handshake_failure(
            &io(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls12NotOffered,
            )),
            MinVersion::Tls13,
        );
        assert!(why.contains(old), "{why}");
        let other = std::io::Error::other("connection reset");
        assert_eq!(
            handshake_failure(&other, MinVersion::Tls12),
            "connection reset"
        );
        let unrelated = io(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::NoCipherSuitesInCommon,
        ));
        assert!(!handshake_failure(&unrelated, MinVersion::Tls12).contains("TLS 1."));
    }

    #[test]
    fn a_tls_1_2_client_is_told_about_the_minimum() {
        for e in [
            rustls::PeerIncompatible::SupportedVersionsExtensionRequired,
            rustls::PeerIncompatible::Tls12NotOfferedOrEnabled,
        ] {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::PeerIncompatible(e),
            );
            let why = handshake_failure(&e, MinVersion::Tls13);
            assert!(
                why.contains("TLS 1.2 refused: tls.min_version is 1.3"),
                "{why}"
            );
            assert!(!why.contains("TLS 1.0 and 1.1"), "{why}");
        }
    }
}
