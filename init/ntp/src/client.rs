//! The thin async layer around `Engine`: resolves names, sends requests and
//! waits for replies over UDP (tokio), applies clock actions, and publishes
//! the status on a watch channel. Everything it decides, it asks the engine.
//!
//! `run` is one task that owns its exchanges in a `JoinSet`: aborting or
//! dropping it stops every exchange with it, so a configuration change is
//! "abort the task, start a new one" and costs nothing but the new burst.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};

use crate::clock::Clock;
use crate::config::{ConfigError, NtpConfig};
use crate::engine::{Engine, PollRequest};
use crate::floor::clock_floor;
use crate::packet::{NtpPacket, ReplyError};
use crate::source::Outcome;
use crate::status::NtpStatus;
use crate::timestamp::NtpTimestamp;

/// How long to wait for a reply (capped by the minimum poll).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a name lookup may take before the poll counts as failed.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns a server name into addresses. PID 1 can plug its own resolver in
/// (its DNS settings, its hosts map); `SystemResolver` uses the libc one.
pub trait Resolve: Send + Sync + 'static {
    fn resolve(&self, host: &str) -> impl Future<Output = io::Result<Vec<IpAddr>>> + Send;
}

/// `tokio::net::lookup_host` (getaddrinfo on a blocking thread).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// Runs the NTP client until the task is dropped. Returns at once only if
/// `config` is invalid. Never blocks the caller's boot: spawn it.
///
/// ```no_run
/// # async fn f() {
/// use std::sync::Arc;
/// use gateway_ntp::{run, NtpConfig, NtpStatus, SystemClock, SystemResolver};
/// let (tx, rx) = tokio::sync::watch::channel(NtpStatus::default());
/// let task = tokio::spawn(run(NtpConfig::default(), Arc::new(SystemClock), Arc::new(SystemResolver), tx));
/// // ... on a change of `ntp.servers`: task.abort(), then spawn run again.
/// # }
/// ```
pub async fn run<C: Clock + ?Sized, R: Resolve>(
    config: NtpConfig,
    clock: Arc<C>,
    resolver: Arc<R>,
    status: watch::Sender<NtpStatus>,
) -> Result<Infallible, ConfigError> {
    config.validate()?;
    let reply_timeout = REPLY_TIMEOUT.min(config.min_poll);
    let mut engine = Engine::new(&config, clock_floor(), Instant::now().into_std());
    let mut exchanges = JoinSet::new();
    // Which source each exchange task serves, to recover from one failing.
    let mut tasks: HashMap<tokio::task::Id, (usize, u64)> = HashMap::new();
    status.send_replace(engine.status());
    tracing::info!(servers = ?config.effective_servers(), "NTP client started");

    loop {
        for req in engine.due(Instant::now().into_std()) {
            let clock = clock.clone();
            let resolver = resolver.clone();
            let port = config.port;
            let key = (req.source, req.epoch);
            let handle = exchanges.spawn(async move {
                exchange(&req, port, &*clock, &*resolver, reply_timeout).await
            });
            tasks.insert(handle.id(), key);
        }
        let wake = engine.next_wakeup().map(Instant::from_std);
        tokio::select! {
            _ = sleep_until_opt(wake) => {}
            Some(joined) = exchanges.join_next_with_id(), if !exchanges.is_empty() => {
                let (id, outcome) = match joined {
                    Ok(r) => r,
                    // Exchanges do not panic; if one did, its source must
                    // still leave the in-flight state, as a failed poll.
                    Err(e) => {
                        tracing::error!(error = %e, "NTP exchange task failed");
                        let error = format!("exchange failed: {e}");
                        (e.id(), Outcome::NoReply { addr: None, error })
                    }
                };
                let Some((source, epoch)) = tasks.remove(&id) else {
                    continue;
                };
                let was_synced = engine.status().synchronized;
                if let Some(action) = engine.handle(source, epoch, outcome, Instant::now().into_std()) {
                    match apply(&*clock, action) {
                        Ok(()) => engine.applied(action, clock.now()),
                        Err(e) => tracing::error!(error = %e, "NTP clock correction failed"),
                    }
                }
                let st = engine.status();
                if st.synchronized != was_synced {
                    tracing::info!(
                        synchronized = st.synchronized,
                        server = ?st.server,
                        offset_ms = ?st.offset_ms,
                        "NTP synchronisation changed"
                    );
                }
                status.send_replace(st);
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn apply<C: Clock + ?Sized>(
    clock: &C,
    action: crate::ClockAction,
) -> Result<(), crate::clock::ClockError> {
    match action {
        crate::ClockAction::Step(x) => {
            tracing::info!(offset_s = x, "stepping the clock");
            clock.step(x)
        }
        crate::ClockAction::Slew(x) => clock.slew(x),
    }
}

/// One request/reply with one server: resolve if needed, send, and wait for
/// a reply that echoes our request. Replies that do not (stale, duplicated,
/// forged) are dropped and the wait goes on until the deadline.
pub async fn exchange<C: Clock + ?Sized, R: Resolve>(
    req: &PollRequest,
    port: u16,
    clock: &C,
    resolver: &R,
    reply_timeout: Duration,
) -> Outcome {
    let addr = match req.addr {
        Some(a) => a,
        None => match resolve_one(resolver, &req.name).await {
            Ok(a) => a,
            Err(error) => return Outcome::NoReply { addr: None, error },
        },
    };
    match query(addr, port, clock, reply_timeout).await {
        Ok(o) => o,
        Err(e) => Outcome::NoReply {
            addr: Some(addr),
            error: e.to_string(),
        },
    }
}

async fn resolve_one<R: Resolve>(resolver: &R, name: &str) -> Result<IpAddr, String> {
    let addrs = tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(name))
        .await
        .map_err(|_| format!("resolving {name}: timed out"))?
        .map_err(|e| format!("resolving {name}: {e}"))?;
    // IPv4 first: the appliance's uplink is IPv4; IPv6 if that is all.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("resolving {name}: no addresses"))
}

async fn query<C: Clock + ?Sized>(
    addr: IpAddr,
    port: u16,
    clock: &C,
    reply_timeout: Duration,
) -> io::Result<Outcome> {
    let local: SocketAddr = match addr {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await?;
    // A connected socket only receives from the server's address and port.
    sock.connect((addr, port)).await?;
    // A random transmit timestamp: only someone who saw the request can
    // answer it (the real send time stays here as T1).
    let cookie = NtpTimestamp(rand::random::<u64>());
    let request = NtpPacket::client_request(cookie).encode();
    let t1 = NtpTimestamp::from_system_time(clock.now());
    sock.send(&request).await?;
    let deadline = Instant::now() + reply_timeout;
    let mut buf = [0u8; 1024];
    loop {
        let n = match timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no reply")),
        };
        let t4 = NtpTimestamp::from_system_time(clock.now());
        let Ok(packet) = NtpPacket::decode(&buf[..n]) else {
            tracing::debug!(%addr, len = n, "short NTP reply dropped");
            continue;
        };
        return Ok(match packet.check_reply(cookie) {
            Ok(reply) => Outcome::Reply {
                addr,
                reply,
                t1,
                t4,
                pending_slew: clock.pending_slew(),
            },
            Err(ReplyError::OriginMismatch) => {
                tracing::debug!(%addr, "NTP reply not matching our request dropped");
                continue;
            }
            Err(error) => Outcome::Rejected { addr, error },
        });
    }
}
