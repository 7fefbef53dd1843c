//! Talking to origins: a connection (direct or through the upstream proxy,
//! TLS verified for https), one request, its response head; and the fill
//! task that reads a storable body into an object, whoever is reading it.

use std::sync::Arc;
use std::time::Duration;

use gateway_forward_proxy::egress::{connect, upstream_connect};
use gateway_http::body::{self, BodyKind};
use gateway_http::head::{RequestHead, Scheme, Target};
use gateway_http::response::{self, ResponseHead};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::object::{Body, Object, Progress, Room, Tier, SEGMENT};
use crate::rules;
use crate::settings::CacheConfig;
use crate::stats::CacheStats;
use crate::store::Store;

/// A byte stream to an origin (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

/// A failure before anything reached the client: the status it gets and
/// why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub status: u16,
    pub why: String,
}

fn fail(status: u16, why: impl Into<String>) -> FetchError {
    FetchError {
        status,
        why: why.into(),
    }
}

/// Opens a connection for `origin`: through the upstream proxy when it
/// applies (CONNECT for https, absolute-form requests for http), TLS with
/// the origin's certificate verified for https. Returns the stream and
/// whether requests must be in absolute form (plain HTTP via the upstream).
pub async fn open(
    origin: &Origin,
    config: &CacheConfig,
) -> Result<(Box<dyn Io>, bool), FetchError> {
    let p = &config.proxy;
    let via = p.upstream.as_ref().filter(|u| u.applies_to(&origin.host));
    let tcp = match via {
        Some(u) => connect(&u.host, u.port, p, true).await,
        None => connect(&origin.host, origin.port, p, false).await,
    }
    .map_err(|(s, why)| fail(s, format!("{}:{}: {why}", origin.host, origin.port)))?;
    if !origin.https {
        return Ok((Box::new(tcp), via.is_some()));
    }
    let mut tcp = tcp;
    if let Some(u) = via {
        let target = Target::Authority {
            host: origin.host.clone(),
            port: origin.port,
        };
        // Bytes an upstream sends after its 200 before our ClientHello
        // would be a protocol error: TLS starts with the server's answer.
        upstream_connect(&mut tcp, u, &target, p)
            .await
            .map_err(|why| fail(502, format!("upstream proxy {}:{}: {why}", u.host, u.port)))?;
    }
    let name = rustls_pki_types::ServerName::try_from(origin.host.clone())
        .map_err(|e| fail(502, format!("{}: {e}", origin.host)))?;
    let connector = tokio_rustls::TlsConnector::from(config.origin_tls.clone());
    let tls = timeout(p.connect_timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| fail(504, format!("{}: TLS handshake timed out", origin.host)))?
        .map_err(|e| fail(502, format!("{}: TLS: {e}", origin.host)))?;
    Ok((Box::new(tls), false))
}

/// Which request goes to the origin.
#[derive(Debug, Clone, Copy)]
pub enum Ask<'a> {
    /// The request that fills a shared object: the client's request
    /// without what concerns only that client (Range, conditionals), plus
    /// these fields (the cache's own conditionals when revalidating). `Host`
    /// is the origin's as the key names it: a client naming another host
    /// could otherwise fill the key with another site's answer.
    Shared(&'a [(String, Vec<u8>)]),
    /// The client's GET or HEAD as it is, for that client alone.
    Own,
}

/// The request with an absolute target naming `origin` (the form the
/// proxy's request writer turns into origin form, or keeps for an
/// upstream proxy).
fn with_origin(head: &RequestHead, origin: &Origin) -> RequestHead {
    let mut h = head.clone();
    if let Target::Origin { path } = &h.target {
        h.target = Target::Absolute {
            scheme: Scheme::Http,
            host: origin.host.clone(),
            port: origin.port,
            path: path.clone(),
        };
    }
    h
}

/// The bytes of the request `ask` describes; `via`: through the upstream
/// proxy in absolute form, with its credentials if any.
fn request(
    head: &RequestHead,
    origin: &Origin,
    ask: Ask<'_>,
    via: Option<Option<String>>,
) -> Vec<u8> {
    let mut h = with_origin(head, origin);
    if let Ask::Shared(extra) = ask {
        h.headers.retain(|(n, _)| {
            let n = n.to_ascii_lowercase();
            n != "host" && !crate::rules::PER_CLIENT.contains(&n.as_str())
        });
        let default_port = if origin.https { 443 } else { 80 };
        let host = if origin.host.contains(':') {
            format!("[{}]", origin.host)
        } else {
            origin.host.clone()
        };
        let host = if origin.port == default_port {
            host
        } else {
            format!("{host}:{}", origin.port)
        };
        h.headers.insert(0, ("Host".to_owned(), host.into_bytes()));
        h.headers.extend(extra.iter().cloned());
        h.method = "GET".into();
    }
    gateway_forward_proxy::forward::origin_request(&h, via, BodyKind::None)
}

/// A response whose head has been read; `rest` holds body bytes read with it.
pub struct Response {
    pub head: ResponseHead,
    pub body: BodyKind,
    pub stream: Box<dyn Io>,
    pub rest: Vec<u8>,
}

/// Sends the request `ask` makes of `head` on a new connection and reads
/// the final response head (interim 1xx ones are skipped).
pub async fn exchange(
    origin: &Origin,
    head: &RequestHead,
    ask: Ask<'_>,
    config: &CacheConfig,
) -> Result<Response, FetchError> {
    let (mut stream, absolute) = open(origin, config).await?;
    let via = absolute.then(|| {
        config
            .proxy
            .upstream
            .as_ref()
            .and_then(|u| u.authorization())
    });
    let head_request = matches!(ask, Ask::Own) && head.method == "HEAD";
    let request = request(head, origin, ask, via);
    let idle = config.proxy.idle_timeout;
    timeout(idle, stream.write_all(&request))
        .await
        .map_err(|_| fail(504, "the origin did not take the request in time"))?
        .map_err(|e| fail(502, format!("send the request: {e}")))?;
    let mut buf = Vec::with_capacity(8192);
    loop {
        match response::parse(&buf) {
            Ok(Some(head)) if (100..200).contains(&head.status) => {
                buf.drain(..head.len);
                continue;
            }
            Ok(Some(head)) => {
                let body = body::response_body(head_request, head.status, &head.headers)
                    .map_err(|e| fail(502, format!("the origin's response framing: {e}")))?;
                let rest = buf.split_off(head.len);
                return Ok(Response {
                    head,
                    body,
                    stream,
                    rest,
                });
            }
            Ok(None) => {}
            Err(e) => return Err(fail(502, format!("the origin's response: {e}"))),
        }
        let n = timeout(idle, stream.read_buf(&mut buf))
            .await
            .map_err(|_| fail(504, "the origin sent no response in time"))?
            .map_err(|e| fail(502, format!("read the response: {e}")))?;
        if n == 0 {
            return Err(fail(502, "the origin closed before its response"));
        }
    }
}

/// How a fill treats its object.
#[derive(Debug, Clone, Copy)]
pub struct FillPlan {
    /// The object is in the index (stored); else it is transient.
    pub stored: bool,
    /// The largest body stored (`max_object_bytes`): an object of unknown
    /// length that grows past it (or past its tier) stops being stored.
    pub max_len: u64,
    /// The window a transient object holds behind its readers.
    pub window: u64,
    /// The origin's idle timeout, and how long a transient fill waits for
    /// its slowest reader before cutting it off.
    pub idle: Duration,
    pub grace: Duration,
}

/// Reads a response's body into `o` as the origin sends it (a known
/// length, chunks, or until the origin closes), whoever is reading it. A
/// stored object is then kept for good (disk: fsync, rename, metadata) or,
/// on any failure, marked failed and dropped: a truncated body is never
/// stored. One of unknown length that outgrows what may be stored goes on
/// as a transient object for the readers it has. A transient object's
/// fill keeps within its window ([`Object::make_room`]) and stops when it
/// has no reader left and needs room.
pub async fn fill(
    o: Arc<Object>,
    mut resp: Response,
    disk_tmp: Option<(std::path::PathBuf, Arc<std::fs::File>)>,
    store: Arc<Store>,
    stats: Arc<CacheStats>,
    plan: FillPlan,
) {
    let meta = o.meta();
    let key = meta.key.clone();
    let mut stored = plan.stored;
    let mut hasher = Sha256::new();
    // Disk bodies are checked block by block on every read: their hashes
    // are made here, from the bytes as they came, and given to the object
    // as each block is written, so readers of the fill check them too.
    let mut blocks = (o.tier == Tier::Disk).then(crate::disk::BlockHasher::default);
    let mut decoder = body::ChunkedDecoder::new();
    let mut filled = 0u64;
    let mut buf = std::mem::take(&mut resp.rest);
    let mut data = Vec::new();
    let kind = resp.body;
    let ok = loop {
        data.clear();
        let done = match kind {
            BodyKind::Length(n) => {
                let take = ((n - filled) as usize).min(buf.len());
                data.extend_from_slice(&buf[..take]);
                filled + take as u64 == n
            }
            BodyKind::Chunked => {
                if let Err(e) = decoder.feed(&buf, |d| data.extend_from_slice(d)) {
                    tracing::info!(
                        "cache fill {}: the origin's chunked framing: {e}; not stored",
                        rules::loggable(&key)
                    );
                    break false;
                }
                decoder.is_done()
            }
            BodyKind::UntilClose => {
                data.extend_from_slice(&buf);
                false
            }
            BodyKind::None => true,
        };
        // Bytes past the body's end are not the object's.
        buf.clear();
        if !data.is_empty() {
            if !stored {
                match o.make_room(data.len(), plan.grace).await {
                    Room::Made { detached } if detached > 0 => {
                        tracing::info!(
                            "cache fill {}: {detached} reader(s) a window behind for {:?}: cut off",
                            rules::loggable(&key),
                            plan.grace
                        );
                        stats.detached(detached);
                    }
                    Room::Made { .. } => {}
                    Room::NoReaders => {
                        tracing::info!(
                            "cache fill {}: not stored and no reader left at {filled} bytes: stopped",
                            rules::loggable(&key)
                        );
                        break false;
                    }
                }
            }
            if stored {
                hasher.update(&data);
                if let Some(b) = blocks.as_mut() {
                    b.update(&data);
                }
            }
            if let Err(e) = o.append(&data, filled) {
                tracing::warn!("cache fill {}: store: {e}", rules::loggable(&key));
                break false;
            }
            if let Some(b) = blocks.as_mut() {
                o.add_blocks(b.take_done());
            }
            let before = filled;
            filled += data.len() as u64;
            stats.from_origin(data.len() as u64);
            if !stored {
                stats.transient_held(o.transient_peak());
            } else if !o.is_sized()
                && before.div_ceil(SEGMENT as u64) != filled.div_ceil(SEGMENT as u64)
            {
                // A new segment: counted as it grows, and no longer stored
                // once too large (its readers go on following the fill).
                if !store.grown(&key, &o, filled, plan.max_len) {
                    tracing::info!(
                        "cache fill {}: {filled} bytes without a known length, more than may be stored: \
                         shared, not stored",
                        rules::loggable(&key)
                    );
                    stored = false;
                    o.make_transient(plan.window);
                    store.add_transient(&key, o.clone());
                    stats.transient_fill();
                }
            }
        }
        if done {
            break true;
        }
        buf.reserve(64 * 1024);
        match timeout(plan.idle, resp.stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            // Unframed: the close is the end (never stored, see above).
            Ok(Ok(_)) if kind == BodyKind::UntilClose => break true,
            Ok(Ok(_)) => {
                tracing::info!(
                    "cache fill {}: the origin closed at {filled} bytes of {kind:?}; not stored",
                    rules::loggable(&key)
                );
                break false;
            }
            Ok(Err(e)) => {
                tracing::info!(
                    "cache fill {}: {e} at {filled} bytes of {kind:?}; not stored",
                    rules::loggable(&key)
                );
                break false;
            }
            Err(_) => {
                tracing::info!(
                    "cache fill {}: the origin stalled at {filled} bytes of {kind:?}; not stored",
                    rules::loggable(&key)
                );
                break false;
            }
        }
    };
    if !ok {
        o.finish(Progress::Failed);
        if stored {
            store.remove(&key, &o);
        } else {
            store.end_transient(&key, &o);
        }
        if let Some((tmp, _)) = disk_tmp {
            let _ = std::fs::remove_file(tmp);
        }
        return;
    }
    if !stored {
        o.finish(Progress::Complete);
        store.end_transient(&key, &o);
        tracing::debug!(
            "cache fill {}: {filled} bytes shared, not stored",
            rules::loggable(&key)
        );
        return;
    }
    let meta = o.meta();
    let sha: [u8; 32] = hasher.finalize().into();
    if let Ok(mut s) = o.sha256.lock() {
        *s = Some(sha);
    }
    if let Some(b) = blocks {
        o.add_blocks(b.finish());
    }
    if let (Tier::Disk, Some((tmp, file)), Body::File(body)) = (o.tier, disk_tmp, &o.body) {
        let (meta2, store2, hashes) = (meta.clone(), store.clone(), o.blocks());
        let committed = tokio::task::spawn_blocking(move || match &store2.disk {
            Some(disk) => disk.commit(&tmp, &file, &meta2, &sha, &hashes),
            None => Err(std::io::Error::other("no disk tier")),
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match committed {
            Ok(data) => body.committed(data),
            Err(e) => {
                tracing::warn!(
                    "cache fill {}: commit to disk: {e}; not stored",
                    rules::loggable(&key)
                );
                // Readers already have every byte; the object just is not kept.
                o.finish(Progress::Complete);
                store.remove(&key, &o);
                return;
            }
        }
    }
    if !o.is_sized() {
        // Its final length counts (and may evict others).
        store.grown(&key, &o, filled, plan.max_len);
    }
    o.finish(Progress::Complete);
    tracing::debug!(
        "cache fill {}: {filled} bytes stored",
        rules::loggable(&key)
    );
}
