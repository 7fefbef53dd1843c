//! One request to an origin, answered from the cache where the rules allow:
//! a hit (revalidated first when stale), a collapsed miss (joins the fill
//! another request started), a miss (starts the fill, in its own task), or
//! a pass-through (the proxy's forwarding, nothing stored). Ranges,
//! HEAD and client conditionals are answered from the stored object.

use std::sync::Arc;
use std::time::SystemTime;

use gateway_forward_proxy::client::refuse_malformed;
use gateway_forward_proxy::forward::{self, Exchange};
use gateway_http::access::Outcome;
use gateway_http::answer::respond_error;
use gateway_http::body::{self, BodyKind, ChunkedDecoder};
use gateway_http::head::{RequestHead, Target};
use gateway_http::response::{self, ClientConnection, HOP_BY_HOP};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::timeout;

use crate::fetch::{self, Ask, FetchError, FillPlan, Origin, Response};
use crate::object::{
    epoch_secs, Body, DiskBody, Framing, Join, Meta, Object, ReadError, Revalidation, Source, Tier,
};
use crate::rules::{self, RangeAnswer, RequestClass};
use crate::service::{Next, Service};
use crate::stats::Served;
use crate::store::{FillTicket, Lookup, Resolved};

/// Bytes read from a memory object per write to the client.
const READ_CHUNK: usize = 256 * 1024;

/// How an answer from a stored object went.
enum Sent {
    Done(Outcome, Next),
    /// The object could not be read (a block did not match its SHA-256,
    /// the file is gone or short) before anything was sent: it is dropped,
    /// and the request looks it up again (and fills it).
    Dropped,
    /// The object cannot answer this request (a HEAD or a range of an
    /// object not stored, or whose length is not known yet): the request
    /// is sent to the origin on its own.
    Elsewhere,
}

impl From<(Outcome, Next)> for Sent {
    fn from((o, n): (Outcome, Next)) -> Sent {
        Sent::Done(o, n)
    }
}

fn dest(origin: &Origin) -> String {
    format!("{}:{}", origin.host, origin.port)
}

fn path_of(head: &RequestHead) -> &str {
    match &head.target {
        Target::Origin { path } | Target::Absolute { path, .. } => path,
        Target::Authority { .. } => "/",
    }
}

/// The head with its target normalised ([`rules::normalise_target`]): the
/// one target both the key and the origin request are made from. Were the
/// origin asked with the client's spelling, an origin that reads
/// `/x/%2e%2e/f` otherwise than `/f` would have its answer stored under
/// `/f`'s key and served to everyone who asks for `/f`. The head is copied
/// only when its target changes (most are normal already).
fn with_normalised_target(head: &RequestHead) -> std::borrow::Cow<'_, RequestHead> {
    let (Target::Origin { path } | Target::Absolute { path, .. }) = &head.target else {
        return std::borrow::Cow::Borrowed(head);
    };
    let normal = rules::normalise_target(path);
    if normal == *path {
        return std::borrow::Cow::Borrowed(head);
    }
    let mut own = head.clone();
    if let Target::Origin { path } | Target::Absolute { path, .. } = &mut own.target {
        *path = normal;
    }
    std::borrow::Cow::Owned(own)
}

pub async fn serve_request<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    head: &RequestHead,
    buf: &mut Vec<u8>,
    origin: &Origin,
    svc: &Service,
) -> (Outcome, Next) {
    let head = &*with_normalised_target(head);
    match rules::classify_request(&head.method, &head.headers) {
        RequestClass::PassThrough(why) => pass_through(client, head, buf, origin, svc, why).await,
        class => shared(client, head, origin, svc, class == RequestClass::Head).await,
    }
}

/// Relays the request as the proxy does; nothing is stored.
async fn pass_through<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    head: &RequestHead,
    buf: &mut Vec<u8>,
    origin: &Origin,
    svc: &Service,
    why: &str,
) -> (Outcome, Next) {
    svc.cache_stats.served(Served::Passed);
    let body = match body::request_body(head.version, &head.headers) {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            refuse_malformed(client, &svc.stats, status, e.to_string()).await;
            return (
                Outcome::refused(&dest(origin), status, &e.to_string()),
                Next::Close,
            );
        }
    };
    let (stream, absolute) = match fetch::open(origin, &svc.config).await {
        Ok(s) => s,
        Err(e) => return (error_answer(client, svc, origin, e).await, Next::Close),
    };
    let via = if absolute {
        svc.config.proxy.upstream.as_ref()
    } else {
        None
    };
    let ex = Exchange {
        head,
        body,
        via,
        client_keep: body::client_persistent(head.version, &head.headers),
    };
    let f = forward::forward(client, buf, stream, ex, &svc.config.proxy, &svc.stats).await;
    svc.cache_stats.from_origin(f.down);
    let o = Outcome {
        destination: dest(origin),
        result: format!("{} pass ({why})", f.result),
        up: f.up,
        down: f.down,
    };
    (
        o,
        if f.keep_alive {
            Next::Request
        } else {
            Next::Close
        },
    )
}

async fn error_answer<S: AsyncWrite + Unpin>(
    client: &mut S,
    svc: &Service,
    origin: &Origin,
    e: FetchError,
) -> Outcome {
    svc.stats.refused("upstream");
    let _ = respond_error(
        client,
        e.status,
        &format!("gateway cache: {}: {}", dest(origin), e.why),
    )
    .await;
    Outcome::refused(&dest(origin), e.status, &e.why)
}

/// What the first request of a miss learns from the fill task.
enum FillStart {
    Stored(Started),
    /// Not storable: the response is this request's alone to relay.
    Relay(Response),
    Failed(FetchError),
}

/// GET and HEAD: from the cache when possible.
async fn shared<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    head: &RequestHead,
    origin: &Origin,
    svc: &Service,
    is_head: bool,
) -> (Outcome, Next) {
    let primary = rules::cache_key(origin.https, &origin.host, origin.port, path_of(head));
    // A damaged disk object is dropped and looked up again: a second round
    // finds nothing and fills.
    for _ in 0..3 {
        match svc.store.lookup(&primary, &head.headers) {
            Lookup::Found(o) => {
                let stale = !o.meta().is_fresh(SystemTime::now());
                if o.is_complete() && (stale || rules::wants_revalidation(&head.headers)) {
                    let sent = match o.join_revalidation() {
                        Join::Lead(lead) => revalidate(client, head, origin, svc, o, lead).await,
                        Join::Wait(mut rx) => {
                            // Another request is asking the origin: its 304
                            // answers this one too; anything else, look again.
                            while rx.borrow_and_update().is_none() && rx.changed().await.is_ok() {}
                            if *rx.borrow() != Some(true) {
                                continue;
                            }
                            send_object(client, head, origin, svc, &o, Served::Revalidated, None)
                                .await
                        }
                    };
                    match sent {
                        Sent::Done(o, n) => return (o, n),
                        Sent::Dropped => continue,
                        Sent::Elsewhere => return own_fetch(client, head, origin, svc).await,
                    }
                }
                match send_object(client, head, origin, svc, &o, Served::Hit, None).await {
                    Sent::Done(o, n) => return (o, n),
                    Sent::Dropped => continue,
                    Sent::Elsewhere => return own_fetch(client, head, origin, svc).await,
                }
            }
            Lookup::Wait(mut rx) => {
                let resolved = loop {
                    if let Some(r) = rx.borrow_and_update().clone() {
                        break r;
                    }
                    if rx.changed().await.is_err() {
                        break Resolved::NotShared;
                    }
                };
                if let Resolved::Object(o) = resolved {
                    if varies_alike(&o, &primary, head) {
                        match send_object(client, head, origin, svc, &o, Served::Collapsed, None)
                            .await
                        {
                            Sent::Done(o, n) => return (o, n),
                            Sent::Dropped => continue,
                            Sent::Elsewhere => break,
                        }
                    }
                }
                return own_fetch(client, head, origin, svc).await;
            }
            Lookup::Fill(ticket) => {
                if is_head {
                    // A HEAD does not fill; it is relayed.
                    drop(ticket);
                    return own_fetch(client, head, origin, svc).await;
                }
                return miss(client, head, origin, svc, ticket, &primary).await;
            }
        }
    }
    own_fetch(client, head, origin, svc).await
}

/// Whether a stored object answers this request given its `Vary`.
fn varies_alike(o: &Object, primary: &str, head: &RequestHead) -> bool {
    let meta = o.meta();
    let want = if meta.vary.is_empty() {
        primary.to_owned()
    } else {
        format!("{primary}{}", rules::vary_key(&meta.vary, &head.headers))
    };
    want == meta.key
}

/// The first request of a miss: the fill task fetches (and goes on
/// without this request if it leaves); this request then reads the object
/// like any other, or relays a response that is not stored.
async fn miss<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    head: &RequestHead,
    origin: &Origin,
    svc: &Service,
    ticket: FillTicket,
    primary: &str,
) -> (Outcome, Next) {
    let (tx, rx) = oneshot::channel();
    let task = FillTask {
        head: head.clone(),
        origin: origin.clone(),
        primary: primary.to_owned(),
        store: svc.store.clone(),
        stats: svc.cache_stats.clone(),
        config: svc.config.clone(),
    };
    tokio::spawn(async move {
        let start = task.run(ticket, &[]).await;
        let _ = tx.send(start);
    });
    match rx.await {
        Ok(FillStart::Stored(Started { object: o, own })) => {
            match send_object(client, head, origin, svc, &o, Served::Miss, own).await {
                Sent::Done(o, n) => (o, n),
                // Unreadable as soon as stored (and dropped), or not an
                // answer to this request (a range of an object not stored):
                // this client's answer comes from the origin.
                Sent::Dropped | Sent::Elsewhere => own_fetch(client, head, origin, svc).await,
            }
        }
        // The shared fetch asked for the whole object; a client that wanted
        // a range of one that is not stored (too large, no length) asks
        // for its range itself rather than get the whole.
        Ok(FillStart::Relay(resp))
            if resp.head.status == 200 && rules::header(&head.headers, "range").is_some() =>
        {
            drop(resp);
            own_fetch(client, head, origin, svc).await
        }
        Ok(FillStart::Relay(resp)) => relay(client, head, origin, svc, resp, "not stored").await,
        Ok(FillStart::Failed(e)) => (error_answer(client, svc, origin, e).await, Next::Close),
        Err(_) => (
            error_answer(
                client,
                svc,
                origin,
                FetchError {
                    status: 502,
                    why: "the fetch ended".into(),
                },
            )
            .await,
            Next::Close,
        ),
    }
}

struct FillTask {
    head: RequestHead,
    origin: Origin,
    primary: String,
    store: Arc<crate::store::Store>,
    stats: Arc<crate::stats::CacheStats>,
    config: crate::settings::CacheConfig,
}

impl FillTask {
    /// Fetches, and when the response is storable makes the object,
    /// publishes it to the waiters and fills it in a task of its own.
    async fn run(self, ticket: FillTicket, extra: &[(String, Vec<u8>)]) -> FillStart {
        let (head, origin) = (&self.head, &self.origin);
        let resp = match fetch::exchange(origin, head, Ask::Shared(extra), &self.config).await {
            Ok(r) => r,
            Err(e) => return FillStart::Failed(e),
        };
        // A client asking for a range of an object that is not stored asks
        // for it itself; the fill is shared only if others wait for it.
        let share = ticket.waiters() > 0 || rules::header(&head.headers, "range").is_none();
        match self.start(resp, share) {
            Ok(started) => {
                ticket.resolve(Resolved::Object(started.object.clone()));
                FillStart::Stored(started)
            }
            Err(resp) => FillStart::Relay(*resp),
        }
    }

    /// The object for a response, filling: stored when storable (one of
    /// unknown length while it fits, see [`fetch::fill`]); else, when
    /// `share` and the response may be shared (see [`rules::shareable`]), a
    /// transient object its waiters read as it comes, never stored. The
    /// response back when it is this request's alone to relay.
    fn start(&self, resp: Response, share: bool) -> Result<Started, Box<Response>> {
        let (length, framing) = match resp.body {
            BodyKind::Length(n) => (Some(n), Framing::Sized),
            BodyKind::None => (Some(0), Framing::Sized),
            BodyKind::Chunked => (None, Framing::Chunked),
            BodyKind::UntilClose => (None, Framing::UntilClose),
        };
        // Chunked: stored from its first byte while it fits (the last
        // chunk proves it whole); its growth is checked by the fill.
        let checked = length.or((framing == Framing::Chunked).then_some(0));
        let mut tier = match rules::storable(
            resp.head.status,
            &resp.head.headers,
            checked,
            self.config.max_object_bytes,
        ) {
            Ok(n) if framing == Framing::Chunked => {
                (n <= self.store.growing_limit()).then_some(Tier::Memory)
            }
            Ok(n) => self.store.tier_for(n),
            Err(why) => {
                tracing::debug!("not stored ({why}): {}", rules::loggable(&self.primary));
                None
            }
        };
        let window = self.store.transient_window();
        // Admission: the memory this fill may hold, within what the fills
        // under way may hold together (Store::reserve_fill). A disk fill
        // holds a block at a time; a memory one its length (or, growing,
        // what it may grow to or hold as a window once it outgrows that).
        let mut reservation = None;
        if tier == Some(Tier::Memory) {
            let bytes = match length {
                Some(n) => n,
                None => self.store.growing_limit().max(window),
            };
            reservation = self.store.reserve_fill(bytes);
            if reservation.is_none() {
                tracing::debug!(
                    "not stored (the fills under way hold the memory budget): {}",
                    rules::loggable(&self.primary)
                );
                tier = None;
            }
        }
        let shared = share && rules::shareable(resp.head.status, &resp.head.headers);
        if tier.is_none() && shared {
            reservation = self.store.reserve_fill(window);
        }
        if tier.is_none() && reservation.is_none() {
            return Err(Box::new(resp));
        }
        let vary = rules::vary_names(&resp.head.headers).unwrap_or_default();
        let key = if vary.is_empty() {
            self.primary.clone()
        } else {
            format!(
                "{}{}",
                self.primary,
                rules::vary_key(&vary, &self.head.headers)
            )
        };
        let now = SystemTime::now();
        let meta = Meta {
            key: key.clone(),
            status: resp.head.status,
            reason: resp.head.reason.clone(),
            headers: end_to_end(&resp.head.headers),
            length: length.unwrap_or(0),
            fresh_until: epoch_secs(now + rules::freshness(&resp.head.headers, now)),
            vary,
        };
        let plan = FillPlan {
            stored: tier.is_some(),
            max_len: self.config.max_object_bytes,
            window,
            idle: self.config.proxy.idle_timeout,
            grace: self.config.proxy.idle_timeout.min(SLOW_READER_GRACE),
        };
        let (o, tmp) = match tier {
            None => {
                tracing::debug!(
                    "shared, not stored ({} {framing:?}): {}",
                    resp.head.status,
                    rules::loggable(&key)
                );
                let o = Object::followed(meta, framing, Some(plan.window));
                self.store.add_transient(&key, o.clone());
                self.stats.transient_fill();
                (o, None)
            }
            Some(Tier::Memory) if framing != Framing::Sized => {
                (Object::followed(meta, framing, None), None)
            }
            Some(Tier::Memory) => (
                Object::new(meta, crate::store::Store::memory_body(), Tier::Memory),
                None,
            ),
            Some(Tier::Disk) => {
                let made = self.store.disk.as_ref().map(|d| d.temp_file(&key));
                match made {
                    Some(Ok((path, file))) => {
                        let file = Arc::new(file);
                        let body = DiskBody::filling(path.clone(), file.clone());
                        (
                            Object::new(meta, Body::File(body), Tier::Disk),
                            Some((path, file)),
                        )
                    }
                    Some(Err(e)) => {
                        tracing::warn!(
                            "disk tier: create a file for {}: {e}; not stored",
                            rules::loggable(&key)
                        );
                        return Err(Box::new(resp));
                    }
                    None => return Err(Box::new(resp)),
                }
            }
        };
        if plan.stored {
            self.store.insert(&key, o.clone());
        }
        self.stats.served(Served::Miss);
        // This request's reader, opened before the fill runs: a fill that
        // is not stored (or stops being stored) holds only a window of
        // bytes and stops when it has no reader, so on a fast origin it
        // could otherwise run a window ahead and stop before this request
        // reads its first byte.
        let own = if o.follows() { o.source().ok() } else { None };
        let filling = fetch::fill(
            o.clone(),
            resp,
            tmp,
            self.store.clone(),
            self.stats.clone(),
            plan,
        );
        tokio::spawn(async move {
            filling.await;
            // Held for as long as the fill runs.
            drop(reservation);
        });
        Ok(Started { object: o, own })
    }
}

/// An object a request has just started filling, with that request's
/// reader of it when it is followed (see [`FillTask::start`]).
struct Started {
    object: Arc<Object>,
    own: Option<Source>,
}

/// How long a fill that is not stored waits for a reader holding its window
/// full before cutting that reader off (at most the idle timeout).
const SLOW_READER_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The origin's fields worth storing: without hop-by-hop and framing
/// fields (the cache frames its answers itself).
fn end_to_end(fields: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let named = body::connection_tokens(fields);
    fields
        .iter()
        .filter(|(n, _)| {
            let l = n.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&l.as_str())
                && !named.contains(&l)
                && !matches!(
                    l.as_str(),
                    "content-length" | "transfer-encoding" | "trailer" | "age"
                )
        })
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// A stale object: asked again with its validators. 304 refreshes it; a
/// storable 200 replaces it; anything else is relayed and the old object
/// dropped. When the origin cannot be reached, the stale object is served,
/// unless its `Cache-Control` forbids it (`no-cache`, and once stale
/// `must-revalidate`, `proxy-revalidate`, `s-maxage`): 504 then.
async fn revalidate<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    head: &RequestHead,
    origin: &Origin,
    svc: &Service,
    old: Arc<Object>,
    lead: Revalidation,
) -> Sent {
    let meta = old.meta();
    let mut extra = Vec::new();
    if let Some(etag) = meta.header("etag") {
        extra.push(("If-None-Match".to_owned(), etag.as_bytes().to_vec()));
    }
    if let Some(lm) = meta.header("last-modified") {
        extra.push(("If-Modified-Since".to_owned(), lm.as_bytes().to_vec()));
    }
    let resp = match fetch::exchange(origin, head, Ask::Shared(&extra), &svc.config).await {
        Ok(r) => r,
        Err(e) => {
            let stored: Vec<(String, Vec<u8>)> = meta
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
                .collect();
            let stale = !meta.is_fresh(SystemTime::now());
            if !rules::may_serve_unvalidated(&stored, stale) {
                // RFC 9111 section 4.2.4: must-revalidate and its kin
                // forbid a stale answer; the object stays for the next
                // request to revalidate. Dropping the lead sends the
                // waiters to look again (and ask the origin themselves).
                tracing::info!(
                    "revalidate {}: {}; its Cache-Control forbids serving it unvalidated: 504",
                    rules::loggable(&meta.key),
                    e.why
                );
                drop(lead);
                let e = FetchError {
                    status: 504,
                    why: format!(
                        "{}; the stored copy may not be served without revalidation (Cache-Control)",
                        e.why
                    ),
                };
                return Sent::Done(error_answer(client, svc, origin, e).await, Next::Close);
            }
            tracing::info!(
                "revalidate {}: {}; serving the stored copy",
                rules::loggable(&meta.key),
                e.why
            );
            lead.done();
            return send_object(client, head, origin, svc, &old, Served::Hit, None).await;
        }
    };
    if resp.head.status == 304 && !extra.is_empty() {
        refresh(&old, &resp.head.headers, svc);
        lead.done();
        return send_object(client, head, origin, svc, &old, Served::Revalidated, None).await;
    }
    // Replaced or dropped: the waiters look again once this is in place.
    svc.store.remove(&meta.key, &old);
    let primary = meta.key.split('\n').next().unwrap_or_default().to_owned();
    let task = FillTask {
        head: head.clone(),
        origin: origin.clone(),
        primary,
        store: svc.store.clone(),
        stats: svc.cache_stats.clone(),
        config: svc.config.clone(),
    };
    let started = task.start(resp, rules::header(&head.headers, "range").is_none());
    drop(lead);
    match started {
        Ok(Started { object: o, own }) => {
            send_object(client, head, origin, svc, &o, Served::Miss, own).await
        }
        Err(resp) => relay(client, head, origin, svc, *resp, "not stored")
            .await
            .into(),
    }
}

/// A 304 from the origin: new freshness, and the validators and caching
/// fields it sent replace the stored ones (RFC 9111 section 4.3.4).
fn refresh(o: &Arc<Object>, fields: &[(String, Vec<u8>)], svc: &Service) {
    let now = SystemTime::now();
    let updated = {
        let Ok(mut m) = o.meta.lock() else { return };
        for (n, v) in end_to_end(fields) {
            m.headers.retain(|(old, _)| !old.eq_ignore_ascii_case(&n));
            m.headers.push((n, v));
        }
        let all: Vec<(String, Vec<u8>)> = m
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
            .collect();
        m.fresh_until = epoch_secs(now + rules::freshness(&all, now));
        m.clone()
    };
    // Its fields changed size: the memory tier counts them.
    svc.store.reaccount(&updated.key, o);
    if let (Some(disk), Body::File(body)) = (&svc.store.disk, &o.body) {
        if let Some(sha) = o.sha256.lock().ok().and_then(|s| *s) {
            if let Err(e) = disk.write_meta(&updated, &sha, &o.blocks(), &body.path()) {
                tracing::warn!(
                    "disk tier: {}: update metadata: {e}",
                    rules::loggable(&updated.key)
                );
            }
        }
    }
}

/// Fetches for this request alone (not shared, nothing stored).
async fn own_fetch<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    head: &RequestHead,
    origin: &Origin,
    svc: &Service,
) -> (Outcome, Next) {
    svc.cache_stats.served(Served::Passed);
    match fetch::exchange(origin, head, Ask::Own, &svc.config).await {
        Ok(resp) => relay(client, head, origin, svc, resp, "own fetch").await,
        Err(e) => (error_answer(client, svc, origin, e).await, Next::Close),
    }
}

/// Relays a response that is not stored: its head rewritten for the
/// client, then exactly its body.
async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    head: &RequestHead,
    origin: &Origin,
    svc: &Service,
    mut resp: Response,
    what: &str,
) -> (Outcome, Next) {
    let idle = svc.config.proxy.idle_timeout;
    let mut keep = body::client_persistent(head.version, &head.headers);
    let dechunk = head.version == 0 && resp.body == BodyKind::Chunked;
    if resp.body == BodyKind::UntilClose || dechunk {
        keep = false;
    }
    let conn = match (keep, head.version) {
        (false, _) => ClientConnection::Close,
        (true, 0) => ClientConnection::KeepAlive10,
        (true, _) => ClientConnection::Default,
    };
    let status = resp.head.status;
    let mut down = 0u64;
    let out = response::client_head(&resp.head, conn, dechunk);
    let failed = |down| {
        (
            Outcome {
                destination: dest(origin),
                result: format!("{status} {what}, cut short"),
                up: 0,
                down,
            },
            Next::Close,
        )
    };
    if timeout(idle, client.write_all(&out))
        .await
        .map_or(true, |r| r.is_err())
    {
        return failed(0);
    }
    down += out.len() as u64;
    let mut left = match resp.body {
        BodyKind::Length(n) => n,
        _ => u64::MAX,
    };
    let mut decoder = ChunkedDecoder::new();
    let mut buf = std::mem::take(&mut resp.rest);
    let mut done = matches!(resp.body, BodyKind::None) || left == 0;
    while !done {
        if buf.is_empty() {
            buf.reserve(64 * 1024);
            match timeout(idle, resp.stream.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ if resp.body == BodyKind::UntilClose => break,
                _ => return failed(down),
            }
        }
        let (send, rest): (Vec<u8>, usize) = match resp.body {
            BodyKind::Length(_) => {
                let take = (left.min(buf.len() as u64)) as usize;
                left -= take as u64;
                done = left == 0;
                (buf[..take].to_vec(), take)
            }
            BodyKind::Chunked => {
                let mut data = Vec::new();
                let used = match decoder.feed(&buf, |d| data.extend_from_slice(d)) {
                    Ok(n) => n,
                    Err(_) => return failed(down),
                };
                done = decoder.is_done();
                (if dechunk { data } else { buf[..used].to_vec() }, used)
            }
            _ => (buf.clone(), buf.len()),
        };
        buf.drain(..rest);
        if timeout(idle, client.write_all(&send))
            .await
            .map_or(true, |r| r.is_err())
        {
            return failed(down);
        }
        down += send.len() as u64;
        svc.cache_stats.from_origin(send.len() as u64);
    }
    let o = Outcome {
        destination: dest(origin),
        result: format!("{status} {what}"),
        up: 0,
        down,
    };
    (o, if keep { Next::Request } else { Next::Close })
}

/// Answers from a stored (or filling) object: 304 for a matching client
/// conditional, 206 for a range, 416 for a range past the end, else 200;
/// HEAD gets the head alone. Bytes go out as the fill provides them.
///
/// Disk bodies are checked block by block as they are read (see
/// [`Object::read_counted`]). The first block of a complete object is read
/// before the head is sent, so an object found damaged there (or unreadable)
/// is dropped and fetched again for this very request ([`Sent::Dropped`]);
/// one found damaged later ends the response short (the client sees fewer
/// bytes than its `Content-Length`, never a wrong one) and is dropped, so
/// the next request fetches it again.
async fn send_object<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    head: &RequestHead,
    origin: &Origin,
    svc: &Service,
    o: &Arc<Object>,
    served: Served,
    own: Option<Source>,
) -> Sent {
    // Complete first: then the metadata has the final length.
    let complete = o.is_complete();
    let meta = o.meta();
    // The length is known: from the start, or the fill is done.
    let sized = complete || o.is_sized();
    let is_head = head.method == "HEAD";
    if (is_head || rules::header(&head.headers, "range").is_some()) && (!sized || o.is_transient())
    {
        return Sent::Elsewhere;
    }
    // Opened once per response, before anything is sent (or when the fill
    // started, by the request that started it): a reader of a replaced
    // object keeps its bytes.
    let src = match own.map_or_else(|| o.source(), Ok) {
        Ok(src) => src,
        Err(e) if o.is_transient() => {
            // A fill not stored whose first bytes are gone: looked up
            // again, this request fills anew or fetches on its own.
            tracing::debug!("{}: {e}", rules::loggable(&meta.key));
            return Sent::Dropped;
        }
        Err(e) => {
            tracing::warn!(
                "disk tier: {}: the stored object cannot be opened: {e}; dropped, fetching again",
                rules::loggable(&meta.key)
            );
            svc.store.remove(&meta.key, o);
            return Sent::Dropped;
        }
    };
    let plan = ObjectAnswer::plan(head, &meta, sized, served);
    let body = BodyOut {
        o,
        src: &src,
        key: &meta.key,
        svc,
        chunk_max: match o.tier {
            // Disk reads go a block at a time: each is read and checked whole.
            Tier::Disk => crate::disk::BLOCK as usize,
            Tier::Memory => READ_CHUNK,
        },
        counted: served != Served::Miss,
    };
    // A complete object's first bytes before the head (a filling one's
    // come as the origin sends them: the head goes first).
    let mut first = None;
    if plan.body_wanted && plan.start < plan.end && o.is_complete() {
        match body.read(plan.start, plan.end).await {
            Ok(c) if !c.is_empty() => first = Some(c),
            other => {
                unreadable(svc, o, &meta.key, other.err());
                return Sent::Dropped;
            }
        }
    }
    if served != Served::Miss {
        svc.cache_stats.served(served);
    }
    let out = plan.head_text(&meta, head.version);
    let idle = svc.config.proxy.idle_timeout;
    let (status, label) = (plan.status, plan.label);
    let outcome = |down, result: String| Outcome {
        destination: dest(origin),
        result,
        up: 0,
        down,
    };
    if timeout(idle, client.write_all(out.as_bytes()))
        .await
        .map_or(true, |r| r.is_err())
    {
        return Sent::Done(
            outcome(0, format!("{status} {label}, client gone")),
            Next::Close,
        );
    }
    let sent = if plan.body_wanted {
        body.send(client, &plan, first, idle).await
    } else {
        Ok(0)
    };
    let _ = client.flush().await;
    match sent {
        Ok(n) => Sent::Done(
            outcome(out.len() as u64 + n, format!("{status} {label}")),
            if plan.keep {
                Next::Request
            } else {
                Next::Close
            },
        ),
        Err((n, why)) => Sent::Done(
            outcome(out.len() as u64 + n, format!("{status} {label}, {why}")),
            Next::Close,
        ),
    }
}

/// What a response from an object is: its status, the part of the body it
/// carries (`start..end`; `u64::MAX` as the end of a length not known yet),
/// its framing and whether the connection goes on. Decided from the request
/// and the object's metadata alone, before anything is read or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ObjectAnswer {
    status: u16,
    reason: String,
    start: u64,
    end: u64,
    /// The object's length, for the `Content-Range` of a partial answer.
    len: u64,
    sized: bool,
    body_wanted: bool,
    /// Of a length not known yet, to an HTTP/1.1 client.
    chunked_out: bool,
    keep: bool,
    label: &'static str,
}

impl ObjectAnswer {
    fn plan(head: &RequestHead, meta: &Meta, sized: bool, served: Served) -> ObjectAnswer {
        let len = meta.length;
        // Of a length not known yet: chunked to an HTTP/1.1 client, else
        // until the connection closes.
        let chunked_out = !sized && head.version != 0;
        let keep = body::client_persistent(head.version, &head.headers) && (sized || chunked_out);
        let label = match served {
            Served::Miss => "MISS",
            Served::Collapsed => "HIT-COLLAPSED",
            Served::Revalidated => "REVALIDATED",
            _ => "HIT",
        };
        let (etag, lm) = (meta.header("etag"), meta.header("last-modified"));
        let range = match rules::header(&head.headers, "if-range") {
            // A range applies only to the representation the client has.
            Some(v)
                if Some(String::from_utf8_lossy(v).as_ref()) != etag
                    && Some(String::from_utf8_lossy(v).as_ref()) != lm =>
            {
                RangeAnswer::Full
            }
            _ => rules::range(&head.headers, len),
        };
        let reason = meta.reason.as_str();
        let (status, reason, start, end) = if meta.status != 200 {
            // A shared answer that is not stored (a 404, a 503): as it came.
            (meta.status, reason, 0, if sized { len } else { u64::MAX })
        } else if rules::not_modified(&head.headers, etag, lm) {
            (304, "Not Modified", 0, 0)
        } else if !sized {
            (200, reason, 0, u64::MAX)
        } else {
            match range {
                RangeAnswer::Full => (meta.status, reason, 0, len),
                RangeAnswer::Partial { start, end } => (206, "Partial Content", start, end + 1),
                RangeAnswer::Unsatisfiable => (416, "Range Not Satisfiable", 0, 0),
            }
        };
        ObjectAnswer {
            status,
            reason: reason.to_owned(),
            start,
            end,
            len,
            sized,
            body_wanted: head.method != "HEAD" && !matches!(status, 204 | 304 | 416),
            chunked_out,
            keep,
            label,
        }
    }

    /// The response head: the stored fields, the framing, `X-Cache`.
    fn head_text(&self, meta: &Meta, version: u8) -> String {
        let (status, start, end, len) = (self.status, self.start, self.end, self.len);
        let mut out = format!("HTTP/1.1 {status} {}\r\n", self.reason);
        for (n, v) in &meta.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        match status {
            304 => {}
            206 => out.push_str(&format!(
                "Content-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\n",
                end - start,
                end - 1
            )),
            416 => out.push_str(&format!(
                "Content-Length: 0\r\nContent-Range: bytes */{len}\r\n"
            )),
            _ if self.sized => out.push_str(&format!("Content-Length: {len}\r\n")),
            _ if self.chunked_out => out.push_str("Transfer-Encoding: chunked\r\n"),
            _ => {}
        }
        if !meta
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("accept-ranges"))
        {
            out.push_str("Accept-Ranges: bytes\r\n");
        }
        out.push_str(&format!("X-Cache: {}\r\n", self.label));
        if !self.keep {
            out.push_str("Connection: close\r\n");
        } else if version == 0 {
            out.push_str("Connection: keep-alive\r\n");
        }
        out.push_str("\r\n");
        out
    }
}

/// The body side of a response from an object: reads `src` a chunk at a
/// time (a disk block, checked whole), counting what was verified and, but
/// for a miss, what the cache served.
struct BodyOut<'a> {
    o: &'a Arc<Object>,
    src: &'a Source,
    key: &'a str,
    svc: &'a Service,
    chunk_max: usize,
    counted: bool,
}

impl BodyOut<'_> {
    async fn read(&self, at: u64, end: u64) -> Result<Vec<u8>, ReadError> {
        let want = ((end - at) as usize).min(self.chunk_max);
        let (c, verified) = self.o.read_counted(self.src, at, want).await?;
        self.svc.cache_stats.blocks_verified(verified);
        Ok(c)
    }

    /// Sends `plan.start..plan.end` (`first` already read), framed as the
    /// plan says, then the last chunk of a chunked answer once the fill is
    /// whole. The bytes sent, or with them why the response ended short
    /// (the connection then closes, so the client never takes a part for
    /// the whole).
    async fn send<S: AsyncWrite + Unpin>(
        &self,
        client: &mut S,
        plan: &ObjectAnswer,
        mut first: Option<Vec<u8>>,
        idle: std::time::Duration,
    ) -> Result<u64, (u64, &'static str)> {
        let mut down = 0u64;
        let mut at = plan.start;
        while at < plan.end {
            let chunk = match first.take() {
                Some(c) => c,
                None => match self.read(at, plan.end).await {
                    Ok(c) if !c.is_empty() => c,
                    // Of unknown length: the fill ended there.
                    Ok(_) if !plan.sized => break,
                    Ok(_) | Err(ReadError::Failed) => return Err((down, "origin transfer failed")),
                    Err(ReadError::Detached) => {
                        return Err((down, "too slow for a fill not stored"))
                    }
                    Err(e) => {
                        let damaged = matches!(e, ReadError::Damaged(_));
                        unreadable(self.svc, self.o, self.key, Some(e));
                        return Err((
                            down,
                            if damaged {
                                "stored object damaged"
                            } else {
                                "stored object unreadable"
                            },
                        ));
                    }
                },
            };
            let n = chunk.len() as u64;
            let framed = if plan.chunked_out {
                let mut f = Vec::with_capacity(chunk.len() + 16);
                f.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                f.extend_from_slice(&chunk);
                f.extend_from_slice(b"\r\n");
                f
            } else {
                chunk
            };
            if timeout(idle, client.write_all(&framed))
                .await
                .map_or(true, |r| r.is_err())
            {
                return Err((down, "client gone"));
            }
            at += n;
            down += framed.len() as u64;
            if self.counted {
                self.svc.cache_stats.from_cache(n);
            }
        }
        // The last chunk only once the fill is whole: a failed one ended
        // the response above without it, so the client knows it is short.
        if plan.chunked_out {
            if timeout(idle, client.write_all(b"0\r\n\r\n"))
                .await
                .map_or(true, |r| r.is_err())
            {
                return Err((down, "client gone"));
            }
            down += 5;
        }
        Ok(down)
    }
}

/// A stored object could not be read (`e`; none: it read as empty): it is
/// dropped, so the next lookup fetches it again, and the log says why.
fn unreadable(svc: &Service, o: &Arc<Object>, key: &str, e: Option<ReadError>) {
    match e {
        Some(ReadError::Damaged(block)) => {
            let from = block.saturating_mul(crate::disk::BLOCK);
            tracing::warn!(
                "disk tier: {}: block {block} (bytes {from}-{}) does not match its SHA-256; \
                 dropped, fetching again",
                rules::loggable(key),
                from.saturating_add(crate::disk::BLOCK)
                    .min(o.length())
                    .saturating_sub(1)
            );
            svc.cache_stats.damaged();
        }
        Some(e) => tracing::warn!("{}: {e}; dropped", rules::loggable(key)),
        None => tracing::warn!(
            "{}: the stored object reads as empty; dropped",
            rules::loggable(key)
        ),
    }
    svc.store.remove(key, o);
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_http::head::{parse, Limits};

    fn head(raw: &str) -> RequestHead {
        parse(raw.as_bytes(), &Limits::default()).unwrap().unwrap()
    }

    fn meta(len: u64) -> Meta {
        Meta {
            key: "GET http://a.b/x".into(),
            status: 200,
            reason: "OK".into(),
            headers: vec![("ETag".into(), "\"v1\"".into())],
            length: len,
            fresh_until: 0,
            vary: Vec::new(),
        }
    }

    #[test]
    fn an_answer_is_planned_from_the_request_and_the_metadata_alone() {
        let m = meta(1000);
        let whole = ObjectAnswer::plan(&head("GET /x HTTP/1.1\r\n\r\n"), &m, true, Served::Hit);
        assert_eq!(
            (whole.status, whole.start, whole.end, whole.keep),
            (200, 0, 1000, true)
        );
        assert!(whole
            .head_text(&m, 1)
            .contains("Content-Length: 1000\r\nAccept-Ranges: bytes\r\nX-Cache: HIT\r\n\r\n"));

        let part = ObjectAnswer::plan(
            &head("GET /x HTTP/1.1\r\nRange: bytes=10-19\r\n\r\n"),
            &m,
            true,
            Served::Hit,
        );
        assert_eq!((part.status, part.start, part.end), (206, 10, 20));
        assert!(part
            .head_text(&m, 1)
            .contains("Content-Range: bytes 10-19/1000\r\n"));

        let same = ObjectAnswer::plan(
            &head("GET /x HTTP/1.1\r\nIf-None-Match: \"v1\"\r\n\r\n"),
            &m,
            true,
            Served::Revalidated,
        );
        assert_eq!(
            (same.status, same.body_wanted, same.label),
            (304, false, "REVALIDATED")
        );

        // Of a length not known yet: chunked to HTTP/1.1, until the close
        // to HTTP/1.0 (which then cannot keep the connection).
        let filling = ObjectAnswer::plan(&head("GET /x HTTP/1.1\r\n\r\n"), &m, false, Served::Miss);
        assert_eq!(
            (filling.chunked_out, filling.end, filling.label),
            (true, u64::MAX, "MISS")
        );
        assert!(filling
            .head_text(&m, 1)
            .contains("Transfer-Encoding: chunked\r\n"));
        let old = ObjectAnswer::plan(
            &head("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            &m,
            false,
            Served::Miss,
        );
        assert_eq!((old.chunked_out, old.keep), (false, false));
        assert!(old.head_text(&m, 0).contains("Connection: close\r\n"));
    }
}
