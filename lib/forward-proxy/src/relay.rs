//! The relay of an established tunnel: the CONNECT answered ([`tunnel`]),
//! then bytes both ways between the client and the destination until both
//! have closed or nothing moved for the idle timeout, with the half-close of
//! each side passed on.
//!
//! Two costs shape it. Memory: an idle tunnel must cost its task and its two
//! sockets only (the idle-tunnel target), so a buffer exists only while
//! bytes flow, borrowed from a small per-thread pool. CPU: small exchanges
//! (an agent's requests) must take as few system calls as possible, and
//! bulk transfers (downloads) should not copy every byte through user space:
//! a read that fills the 64 KiB buffer switches that direction to splice(2)
//! through a pipe, socket to socket, until the source is drained.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_http::access::Outcome;
use nix::fcntl::{splice, SpliceFFlags};
use nix::sys::socket::Shutdown;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::config::ProxyConfig;
use crate::stats::Stats;

/// One system call's worth: a relay buffer, a splice.
const CHUNK: usize = 64 * 1024;

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
    let (up, down, why) = pump(client, &mut upstream, config.idle_timeout, stats).await;
    stats.tunnel_closed();
    Outcome {
        destination: dest.into(),
        result: format!("200 tunnel {why}"),
        up: up + early_len,
        down,
    }
}

/// Copies both ways until both sides have closed (half-close passed on) or
/// nothing moved for `idle`. Returns bytes up (from `a`), bytes down and why
/// it ended.
///
/// Each direction is its own state machine (wait for its source, move what
/// it holds, wait for its destination when that is full), polled side by
/// side in this one task: a write waiting on a full destination stalls only
/// its own direction. (One loop serving a direction at a time deadlocks a
/// peer that echoes: the tunnel waits to write to it while it waits to
/// write back to the tunnel.) The directions borrow the sockets shared,
/// which the readiness calls allow, so an idle tunnel is still its task and
/// its two sockets.
///
/// The idle timer is armed once and re-armed only when it fires: activity
/// just records the time. (A timeout around each wait would insert and
/// remove a timer for every read, which shows in the tunnel rate.)
pub async fn pump(
    a: &mut TcpStream,
    b: &mut TcpStream,
    idle: Duration,
    stats: &Stats,
) -> (u64, u64, &'static str) {
    let (a, b) = (&*a, &*b);
    let started = tokio::time::Instant::now();
    // Milliseconds from `started` to the last bytes moved either way,
    // counted as they move: a bulk burst that never drains is activity
    // all along.
    let last_ms = AtomicU64::new(0);
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let moved = |total: &AtomicU64, n: u64| {
        total.fetch_add(n, Ordering::Relaxed);
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        last_ms.fetch_max(ms, Ordering::Relaxed);
    };
    let count_up = |n: u64| {
        stats.add_bytes(n, 0);
        moved(&up, n);
    };
    let count_down = |n: u64| {
        stats.add_bytes(0, n);
        moved(&down, n);
    };
    let upward = direction(a, b, &count_up);
    let downward = direction(b, a, &count_down);
    tokio::pin!(upward, downward);
    let (mut up_open, mut down_open) = (true, true);
    let timer = tokio::time::sleep_until(started + idle);
    tokio::pin!(timer);
    let why = loop {
        if !up_open && !down_open {
            break "closed";
        }
        tokio::select! {
            flow = &mut upward, if up_open => {
                up_open = false;
                if flow == Flow::WriteFailed {
                    break "upstream write failed";
                }
            }
            flow = &mut downward, if down_open => {
                down_open = false;
                if flow == Flow::WriteFailed {
                    break "client write failed";
                }
            }
            () = &mut timer => {
                let deadline = started
                    + Duration::from_millis(last_ms.load(Ordering::Relaxed))
                    + idle;
                if tokio::time::Instant::now() >= deadline {
                    break "idle timeout";
                }
                timer.as_mut().reset(deadline);
            }
        }
    };
    (
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
        why,
    )
}

/// One direction of a tunnel, `src` to `dst`, until `src` ends (the
/// half-close passed on to `dst`) or `dst` refuses bytes.
async fn direction(src: &TcpStream, dst: &TcpStream, count: &impl Fn(u64)) -> Flow {
    loop {
        if src.readable().await.is_err() {
            // The socket failed: this side is done.
            return Flow::End;
        }
        match relay_ready(src, dst, count).await {
            Flow::Drained => {}
            Flow::WriteFailed => return Flow::WriteFailed,
            // End of stream: pass the half-close on. (The shutdown of a
            // socket whose peer is gone fails harmlessly.)
            Flow::End => {
                let _ = nix::sys::socket::shutdown(dst.as_raw_fd(), Shutdown::Write);
                return Flow::End;
            }
        }
    }
}

/// How a burst of relaying ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// The source has nothing more for now.
    Drained,
    /// The source ended (or failed).
    End,
    /// The destination refused the bytes.
    WriteFailed,
}

/// Moves what `src` holds to `dst`: copied through a pooled buffer, or
/// spliced once a read fills that buffer (a bulk flow). `count` is told of
/// the bytes as they are written.
async fn relay_ready(src: &TcpStream, dst: &TcpStream, count: &impl Fn(u64)) -> Flow {
    let mut buf = buffers::take();
    let flow = loop {
        buf.clear();
        match read_ready(src, &mut buf) {
            Ok(0) => break Flow::End,
            Ok(n) => {
                if write_all(dst, &buf[..n]).await.is_err() {
                    break Flow::WriteFailed;
                }
                count(n as u64);
                if n < buf.capacity() {
                    break Flow::Drained;
                }
                // A full buffer: the rest goes socket to socket. Without a
                // pipe (out of descriptors), copying goes on.
                if let Some(pipe) = pipes::take() {
                    let flow = splice_ready(src, dst, &pipe, count).await;
                    // A refused write can leave bytes in the pipe: not reused.
                    if flow != Flow::WriteFailed {
                        pipes::give_back(pipe);
                    }
                    break flow;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Flow::Drained,
            Err(_) => break Flow::End,
        }
    };
    buffers::give_back(buf);
    flow
}

/// Writes all of `bytes` to `dst`, waiting for room when it is full,
/// through a shared borrow (the other direction reads the same socket).
async fn write_all(dst: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match dst.try_write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => dst.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what `src` holds into `buf`'s spare capacity (no zeroing). A
/// short read drained the socket (TCP hands over everything queued), so
/// its readiness is cleared then and there: otherwise the next wait would
/// return at once on the stale readiness and cost a read that finds nothing.
/// (Tokio clears only the readiness seen before the read: data arriving
/// meanwhile is not missed, and an end of stream stays visible.)
fn read_ready(src: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut drained = None;
    let r = src.try_io(Interest::READABLE, || {
        let room = buf.capacity() - buf.len();
        let n = src.try_read_buf(buf)?;
        if n > 0 && n < room {
            drained = Some(n);
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match drained {
        Some(n) => Ok(n),
        None => r,
    }
}

/// Splices `src` to `dst` through `pipe` until `src` has nothing more
/// (or ends). The pipe is emptied into `dst` after each splice in, so a
/// would-block on the way in always means the socket is drained, never
/// that the pipe is full.
async fn splice_ready(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &pipes::Pipe,
    count: &impl Fn(u64),
) -> Flow {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        let r = src.try_io(Interest::READABLE, || {
            splice(src, None, &pipe.write, None, pipes::SIZE, flags).map_err(std::io::Error::from)
        });
        let n = match r {
            Ok(0) => return Flow::End,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Flow::Drained,
            Err(_) => return Flow::End,
        };
        let mut left = n;
        while left > 0 {
            let r = dst.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, dst, None, left, flags).map_err(std::io::Error::from)
            });
            match r {
                Ok(0) => return Flow::WriteFailed,
                Ok(m) => left -= m.min(left),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if dst.writable().await.is_err() {
                        return Flow::WriteFailed;
                    }
                }
                Err(_) => return Flow::WriteFailed,
            }
        }
        count(n as u64);
        // A source that never drains into a destination that never fills
        // would keep this loop from ever waiting: give the task's other
        // direction (and the thread's other tunnels) their turn now and then.
        tokio::task::consume_budget().await;
    }
}

/// The relay buffers: a few 64 KiB buffers kept per thread, so a tunnel
/// moving a few bytes does not allocate and free 64 KiB each time (it
/// showed in the tunnel rate). A buffer given back on another thread than
/// it was taken from simply joins that thread's pool; one held by a task
/// that ends early is freed as usual.
mod buffers {
    use std::cell::RefCell;

    use super::CHUNK;

    /// At most this many spare buffers per thread (256 KiB).
    const KEPT: usize = 4;

    thread_local! {
        static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    pub fn take() -> Vec<u8> {
        POOL.with(|p| p.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(CHUNK))
    }

    pub fn give_back(mut buf: Vec<u8>) {
        if buf.capacity() != CHUNK {
            return;
        }
        buf.clear();
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < KEPT {
                p.push(buf);
            }
        });
    }
}

/// The splice pipes, pooled per thread like the buffers: a tunnel holds one
/// only while a bulk burst moves (an idle tunnel holds no descriptor beyond
/// its sockets). Only empty pipes come back.
mod pipes {
    use std::cell::RefCell;
    use std::os::fd::OwnedFd;

    use nix::fcntl::OFlag;

    pub const SIZE: usize = 256 * 1024;

    pub struct Pipe {
        pub read: OwnedFd,
        pub write: OwnedFd,
    }

    /// At most this many spare pipes per thread (128 descriptors, no
    /// memory beyond their inodes while empty): with many bulk transfers
    /// at once, writers waiting on slow readers each hold one.
    const KEPT: usize = 64;

    thread_local! {
        static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    }

    /// A pipe, or None when none can be made (descriptors exhausted).
    pub fn take() -> Option<Pipe> {
        POOL.with(|p| p.borrow_mut().pop()).or_else(|| {
            nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
                .ok()
                .map(|(read, write)| {
                    let _ =
                        nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_SETPIPE_SZ(SIZE as i32));
                    Pipe { read, write }
                })
        })
    }

    pub fn give_back(pipe: Pipe) {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < KEPT {
                p.push(pipe);
            }
        });
    }
}
