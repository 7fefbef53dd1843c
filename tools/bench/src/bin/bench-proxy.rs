//! `make bench-proxy`: the proxy against Debian's squid, side by side in one
//! run, on loopback. Prints figures and ratios; asserts nothing.
//!
//! - CONNECT tunnels per second: each a new connection, CONNECT, 64 bytes
//!   echoed, close; 32 clients at once for a few seconds.
//! - Added latency: p50/p99 of that exchange, against the same exchange
//!   made directly to the origin.
//! - Bulk throughput through one tunnel and through 100 at once.
//! - Memory per idle tunnel: the proxy's RSS growth over 2,000 open tunnels.
//! - CPU per tunnel: the proxy's user + system time (its process tree, from
//!   /proc) over the tunnels of the rate measurement.
//!
//! With two CPUs or more, each proxy runs pinned to CPU 1 and this program
//! (the clients and the origins) to CPU 0, as a load generator and a server
//! have their own machines: otherwise the clients take CPU from the proxy
//! they measure, and squid, which uses one CPU, and gateway-proxy, which
//! would use both, are not compared on equal terms. `BENCH_PIN=0` measures
//! unpinned, everything sharing every CPU.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NAME: &str = "bench.qualys.com";
const RATE_SECONDS: u64 = 3;
const RATE_CLIENTS: usize = 32;
const IDLE_TUNNELS: usize = 2000;

#[path = "../../../../services/proxy/tests/common/squid.rs"]
mod squid;

use squid::{free_port, wait_listening};

/// A proxy under test: its port and its process (for its memory).
struct Peer {
    name: &'static str,
    port: u16,
    pid: u32,
    _own: Option<Child>,
    _squid: Option<squid::Squid>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(c) = self._own.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_ours(origin_ports: &[u16], cpu: Option<usize>) -> Peer {
    let port = free_port();
    let exe = std::env::current_exe()
        .unwrap()
        .with_file_name("gateway-proxy");
    // Pinned from its start, so that its runtime sizes itself to that CPU.
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--host",
        &format!("{NAME}=127.0.0.1"),
    ]);
    for p in origin_ports {
        cmd.args(["--allow", &format!("{NAME}:{p}")]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run gateway-proxy (cargo build --release)");
    wait_listening(port, "gateway-proxy");
    Peer {
        name: "gateway-proxy",
        port,
        pid: child.id(),
        _own: Some(child),
        _squid: None,
    }
}

fn start_squid(cpu: Option<usize>) -> Peer {
    let sq = squid::start_squid(None, &[NAME]);
    if let Some(cpu) = cpu {
        pin(sq.child.id(), cpu);
    }
    Peer {
        name: "squid 5.7",
        port: sq.port,
        pid: sq.child.id(),
        _own: None,
        _squid: Some(sq),
    }
}

/// Echo origin: writes back what it reads.
async fn echo_origin() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// Sink origin: reads an 8-byte length, then that many bytes, then answers
/// one byte. (No half-close: squid closes a tunnel on the first EOF.)
async fn sink_origin() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut len = [0u8; 8];
                if s.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut left = u64::from_le_bytes(len);
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => left = left.saturating_sub(n as u64),
                    }
                }
                let _ = s.write_all(b"k").await;
            });
        }
    });
    port
}

/// CONNECT through the proxy at `proxy` (None: straight to the origin).
async fn open(proxy: Option<u16>, origin: u16) -> std::io::Result<TcpStream> {
    let Some(p) = proxy else {
        return TcpStream::connect(("127.0.0.1", origin)).await;
    };
    let mut s = TcpStream::connect(("127.0.0.1", p)).await?;
    s.set_nodelay(true)?;
    s.write_all(
        format!("CONNECT {NAME}:{origin} HTTP/1.1\r\nHost: {NAME}:{origin}\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut head = Vec::new();
    let mut b = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b).await?;
        if n == 0 {
            return Err(std::io::Error::other("proxy closed"));
        }
        head.extend_from_slice(&b[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&head).into_owned(),
        ));
    }
    Ok(s)
}

async fn one_exchange(proxy: Option<u16>, origin: u16) -> std::io::Result<()> {
    let mut s = open(proxy, origin).await?;
    s.write_all(&[7u8; 64]).await?;
    let mut back = [0u8; 64];
    s.read_exact(&mut back).await?;
    Ok(())
}

/// Tunnels per second and latencies (ms) of the whole exchange.
async fn rate(proxy: Option<u16>, origin: u16) -> (f64, Vec<f64>, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..RATE_CLIENTS {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match one_exchange(proxy, origin).await {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(RATE_SECONDS)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_by(f64::total_cmp);
    (all.len() as f64 / RATE_SECONDS as f64, all, errors)
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p) as usize]
}

/// MB/s through `streams` tunnels, each sending `bytes` to the sink.
async fn throughput(proxy: u16, sink: u16, streams: usize, bytes: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        tasks.push(tokio::spawn(async move {
            let mut s = open(Some(proxy), sink).await.expect("tunnel");
            let chunk = vec![1u8; 64 * 1024];
            s.write_all(&(bytes as u64).to_le_bytes())
                .await
                .expect("write");
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len());
                s.write_all(&chunk[..n]).await.expect("write");
                left -= n;
            }
            let mut k = [0u8; 1];
            s.read_exact(&mut k).await.expect("ack");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (streams * bytes) as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// The pids of a process tree (squid runs helpers).
fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            all.extend(tree(c));
        }
    }
    all
}

/// Every thread of every process of `pid`'s tree on `cpu` (util-linux's
/// taskset; affinity is per thread).
fn pin(pid: u32, cpu: usize) {
    for p in tree(pid) {
        let ok = Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu.to_string(), &p.to_string()])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("taskset: could not pin {p} to CPU {cpu}");
        }
    }
}

/// User and system CPU seconds of a process tree so far.
fn cpu_seconds(pid: u32) -> [f64; 2] {
    // Clock ticks: 100 per second on every Linux this runs on.
    const TICKS: f64 = 100.0;
    tree(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|stat| {
            // After the command name in parentheses: state is field 3,
            // utime 14 and stime 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some([
                f.get(11)?.parse::<f64>().ok()?,
                f.get(12)?.parse::<f64>().ok()?,
            ])
        })
        .fold([0.0, 0.0], |t, c| {
            [t[0] + c[0] / TICKS, t[1] + c[1] / TICKS]
        })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches(" kB").trim().to_owned())
            })
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// RSS of a process and its children (squid runs helpers).
fn rss_tree_kib(pid: u32) -> u64 {
    tree(pid).into_iter().map(rss_kib).sum()
}

async fn idle_memory(peer: &Peer, origin: u16) -> f64 {
    let before = rss_tree_kib(peer.pid);
    let mut held = Vec::with_capacity(IDLE_TUNNELS);
    for _ in 0..IDLE_TUNNELS {
        match open(Some(peer.port), origin).await {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!("{}: tunnel {} failed: {e}", peer.name, held.len());
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_tree_kib(peer.pid);
    let n = held.len().max(1);
    drop(held);
    (after.saturating_sub(before)) as f64 * 1024.0 / n as f64
}

fn main() {
    let pinned = std::env::var("BENCH_PIN").map_or(true, |v| v != "0")
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    // Pinned to one CPU, the load generator runs on one thread: two workers
    // on one CPU would only add switches and cross-thread wake-ups to the
    // side that must not be the bottleneck.
    let runtime = if pinned {
        pin(std::process::id(), 0);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    runtime.expect("tokio runtime").block_on(run(pinned));
}

async fn run(pinned: bool) {
    let echo = echo_origin().await;
    let sink = sink_origin().await;
    let server_cpu = pinned.then_some(1);
    if pinned {
        println!(
            "pinned: each proxy on CPU 1, the clients and origins on CPU 0 (BENCH_PIN=0: unpinned)"
        );
    } else {
        println!("unpinned: the proxies, the clients and the origins share every CPU");
    }
    let peers = [
        start_ours(&[echo, sink], server_cpu),
        start_squid(server_cpu),
    ];
    let (_, direct, _) = rate(None, echo).await;
    println!(
        "direct to the origin: p50 {:.3} ms, p99 {:.3} ms",
        pct(&direct, 0.5),
        pct(&direct, 0.99)
    );
    // The tunnel rate is measured in interleaved rounds, ours then squid's,
    // and the ratio taken per round: these machines are shared, and a load
    // that comes and goes would otherwise land on one peer's measurement.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let mut rates = [Vec::new(), Vec::new()];
    let mut lats = [Vec::new(), Vec::new()];
    let mut errors = [0usize, 0];
    let mut ones = [Vec::new(), Vec::new()];
    let mut hundreds = [Vec::new(), Vec::new()];
    let mut cpus = [Vec::new(), Vec::new()];
    let mut users = [Vec::new(), Vec::new()];
    let mut bulk_cpu = [Vec::new(), Vec::new()];
    let mut bulk100_cpu = [Vec::new(), Vec::new()];
    let mut ratios = [Vec::new(), Vec::new(), Vec::new()];
    for round in 1..=rounds {
        let mut this = [[0.0; 3]; 2];
        for (i, peer) in peers.iter().enumerate() {
            let cpu_before = cpu_seconds(peer.pid);
            let (per_s, lat, e) = rate(Some(peer.port), echo).await;
            let tunnels = (per_s * RATE_SECONDS as f64).max(1.0);
            let cpu_after = cpu_seconds(peer.pid);
            let per = |k: usize| (cpu_after[k] - cpu_before[k]) * 1e6 / tunnels;
            cpus[i].push(per(0) + per(1));
            users[i].push(per(0));
            let cpu_before = cpu_seconds(peer.pid);
            let one = throughput(peer.port, sink, 1, 256 << 20).await;
            let cpu_after = cpu_seconds(peer.pid);
            // CPU seconds per GB relayed (the 256 MiB of the one stream).
            let gb = (256u64 << 20) as f64 / 1e9;
            bulk_cpu[i].push((cpu_after[0] + cpu_after[1] - cpu_before[0] - cpu_before[1]) / gb);
            let cpu_before = cpu_seconds(peer.pid);
            let hundred = throughput(peer.port, sink, 100, 2 << 20).await;
            let cpu_after = cpu_seconds(peer.pid);
            let gb = (100u64 * (2 << 20)) as f64 / 1e9;
            bulk100_cpu[i].push((cpu_after[0] + cpu_after[1] - cpu_before[0] - cpu_before[1]) / gb);
            this[i] = [per_s, one, hundred];
            rates[i].push(per_s);
            ones[i].push(one);
            hundreds[i].push(hundred);
            lats[i].extend(lat);
            errors[i] += e;
        }
        for (k, r) in ratios.iter_mut().enumerate() {
            r.push(this[0][k] / this[1][k]);
        }
        println!(
            "round {round}: tunnels/s {:.0} vs {:.0} (x{:.2}), 1 stream {:.0} vs {:.0} MB/s (x{:.2}), 100 streams {:.0} vs {:.0} MB/s (x{:.2})",
            this[0][0],
            this[1][0],
            this[0][0] / this[1][0],
            this[0][1],
            this[1][1],
            this[0][1] / this[1][1],
            this[0][2],
            this[1][2],
            this[0][2] / this[1][2],
        );
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        pct(&v, 0.5)
    };
    let mut rows = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        lats[i].sort_by(f64::total_cmp);
        let per_s = median(&rates[i]);
        let one = median(&ones[i]);
        let hundred = median(&hundreds[i]);
        let idle = idle_memory(peer, echo).await;
        println!(
            "{:<14} tunnels/s {:>8.0} (errors {})  p50 +{:.3} ms over direct, p99 {:.3} ms (direct {:.3})  1 stream {:>7.0} MB/s  100 streams {:>7.0} MB/s  idle tunnel {:>6.0} bytes",
            peer.name,
            per_s,
            errors[i],
            pct(&lats[i], 0.5) - pct(&direct, 0.5),
            pct(&lats[i], 0.99),
            pct(&direct, 0.99),
            one,
            hundred,
            idle
        );
        rows.push((
            per_s,
            one,
            hundred,
            idle,
            median(&cpus[i]),
            median(&users[i]),
            median(&bulk_cpu[i]),
            median(&bulk100_cpu[i]),
        ));
    }
    let (o, s) = (rows[0], rows[1]);
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("x{:.2} (x{lo:.2}-x{hi:.2})", median(v))
    };
    println!();
    println!("medians of {rounds} interleaved rounds (figures above are medians too; the range of the per-round ratios in brackets)");
    println!(
        "gateway-proxy / squid: tunnel rate {} (target >= 2), 1-stream throughput {}, 100-stream {} (target >= 1), idle tunnel memory {:.0} bytes vs {:.0} (target < 10 KB)",
        range(&ratios[0]),
        range(&ratios[1]),
        range(&ratios[2]),
        o.3,
        s.3
    );
    println!(
        "CPU per tunnel (the proxy's own time over the rate rounds, medians): {:.0} us (user {:.0}) vs {:.0} us (user {:.0}): squid needs x{:.2} as much",
        o.4,
        o.5,
        s.4,
        s.5,
        s.4 / o.4
    );
    println!(
        "CPU per GB relayed (medians): one stream {:.2} s vs {:.2} s (squid needs x{:.2} as much), 100 streams {:.2} s vs {:.2} s (x{:.2})",
        o.6,
        s.6,
        s.6 / o.6,
        o.7,
        s.7,
        s.7 / o.7
    );
}
