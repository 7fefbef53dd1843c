//! `make bench-cache`: the cache against Debian's nginx (proxy_cache) and
//! squid, side by side in one run, on loopback. Prints figures; asserts
//! nothing. All three serve plain HTTP from memory (nginx as a reverse
//! proxy, the two others as forward proxies), so the figures compare the
//! caches; one more row gives ours through TLS interception.
//!
//! - Hit throughput: one 100 MB object, warm, to 1 and to 50 clients, in
//!   `BENCH_ROUNDS` (5) interleaved rounds (every peer runs for the whole
//!   bench), with ours over the faster nginx per round.
//! - Origin bytes: 100 clients at once on one cold 20 MB object (nginx and
//!   squid by default, and with proxy_cache_lock / collapsed_forwarding).
//! - Time to first byte for clients that arrive during a fill: the origin
//!   sends a 20 MB object over about 2 s; 20 clients come 200 ms after the
//!   first.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "../../../../services/cache/tests/common/shared.rs"]
mod shared;
use shared::pattern;

const NAME: &str = "bench.example.com";
const HIT_LEN: usize = 100 << 20;
const COLD_LEN: usize = 20 << 20;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn wait_listening(port: u16, what: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            eprintln!("{what} did not listen on {port}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The origin: objects by path, the bytes of body it sent per path.
#[derive(Default)]
struct Origin {
    objects: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    sent: Mutex<HashMap<String, u64>>,
    /// Requests per path (what the cache asked the origin for).
    requests: Mutex<HashMap<String, u64>>,
    /// Bytes per 10 ms for a trickled path (a slow fill); 0: all at once.
    trickle: AtomicU64,
}

impl Origin {
    fn sent(&self, path: &str) -> u64 {
        self.sent
            .lock()
            .map(|s| s.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn requests(&self, path: &str) -> u64 {
        self.requests
            .lock()
            .map(|r| r.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

async fn origin_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, o: Arc<Origin>) {
    let Some(head) = shared::read_request_head(&mut s).await else {
        return;
    };
    let target = head.split(' ').nth(1).unwrap_or("/").to_owned();
    // Absolute form from a forward proxy, origin form from nginx.
    let path = match target.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map(|i| rest[i..].to_owned())
            .unwrap_or("/".into()),
        None => target,
    };
    if let Ok(mut r) = o.requests.lock() {
        *r.entry(path.clone()).or_default() += 1;
    }
    let body = o.objects.lock().ok().and_then(|m| m.get(&path).cloned());
    let Some(body) = body else {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=3600\r\nLast-Modified: Sun, 01 Nov 2026 00:00:00 GMT\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let trickle = if path.starts_with("/trickle") {
        o.trickle.load(Ordering::Relaxed) as usize
    } else {
        0
    };
    let step = if trickle == 0 { 1 << 20 } else { trickle };
    for piece in body.chunks(step) {
        if s.write_all(piece).await.is_err() {
            return;
        }
        if let Ok(mut m) = o.sent.lock() {
            *m.entry(path.clone()).or_default() += piece.len() as u64;
        }
        if trickle > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// How a client reaches the origin through a peer.
#[derive(Clone)]
enum How {
    /// Absolute-form requests to a forward proxy.
    Forward,
    /// Origin-form requests to a reverse proxy.
    Reverse,
    /// CONNECT, TLS trusting the peer's CA, origin-form requests inside.
    Intercept(Arc<rustls::ClientConfig>),
}

/// A cache under test.
struct Peer {
    name: String,
    port: u16,
    how: How,
    /// The origin's port this peer's clients name (plain or TLS).
    origin_port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// The peer once it listens on `port`.
    fn started(
        name: String,
        port: u16,
        how: How,
        origin_port: u16,
        child: Child,
        dir: tempfile::TempDir,
    ) -> Option<Peer> {
        let peer = Peer {
            name,
            port,
            how,
            origin_port,
            child,
            _dir: dir,
        };
        wait_listening(port, &peer.name).then_some(peer)
    }
}

fn spawn(cmd: &mut Command) -> Option<Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("start {cmd:?}: {e}"))
        .ok()
}

/// Ours; with `intercept`, clients go through CONNECT and TLS to the
/// origin's TLS port.
fn start_ours(ports: (u16, u16), origin_ca: &Path, intercept: bool) -> Option<Peer> {
    let dir = tempfile::tempdir().ok()?;
    let port = free_port();
    let (plain, tls) = ports;
    let settings = format!(
        r#"{{"listen": "127.0.0.1:{port}", "allowed_domains": ["{NAME}:{plain}", "{NAME}:{tls}"],
            "hosts": {{"{NAME}": "127.0.0.1"}}, "resolv_conf": "/nonexistent", "ca_dir": {:?},
            "origin_ca_bundle": {origin_ca:?}, "memory_bytes": 536870912}}"#,
        dir.path().join("ca")
    );
    let file = dir.path().join("cache.json");
    std::fs::write(&file, settings).ok()?;
    let exe = std::env::current_exe()
        .ok()?
        .with_file_name("gateway-cache");
    let child = spawn(Command::new(exe).arg("run").arg("--config").arg(&file))?;
    if !intercept {
        return Peer::started(
            "gateway-cache".into(),
            port,
            How::Forward,
            plain,
            child,
            dir,
        );
    }
    let name = "gateway-cache, HTTPS (TLS interception)".to_owned();
    let mut peer = Peer::started(name, port, How::Forward, tls, child, dir)?;
    // The CA exists once the cache listens.
    let ca = std::fs::read(peer._dir.path().join("ca").join("ca.pem")).ok()?;
    peer.how = How::Intercept(client_config(&ca)?);
    Some(peer)
}

/// A TLS client trusting the CA in `pem`.
fn client_config(pem: &[u8]) -> Option<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(gateway_cache::tls::provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}

/// The origin's TLS side: a certificate for NAME from a CA of its own,
/// written to `ca_file` for the cache to trust.
fn origin_tls(ca_file: &Path) -> Option<tokio_rustls::TlsAcceptor> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().ok()?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).ok()?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    std::fs::write(ca_file, ca.self_signed(&ca_key).ok()?.pem()).ok()?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().ok()?;
    let cert = CertificateParams::new(vec![NAME.to_owned()])
        .ok()?
        .signed_by(&key, &issuer)
        .ok()?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(gateway_cache::tls::provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .ok()?;
    Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn writable_dir() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().ok()?;
    // nginx's workers and squid drop to their own users.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).ok()?;
    Some(dir)
}

fn start_nginx(origin_port: u16, lock: bool) -> Option<Peer> {
    let dir = writable_dir()?;
    let d = dir.path().display();
    let port = free_port();
    let lock = if lock { "on" } else { "off" };
    // sendfile and tcp_nopush are off by default; nginx serves its cache
    // files with them in any tuned deployment, so without them its hit
    // throughput would be understated.
    let conf = format!(
        "daemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n access_log off;\n sendfile on;\n tcp_nopush on;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         proxy_cache_path {d}/cache keys_zone=c:10m max_size=1g;\n\
         server {{\n  listen 127.0.0.1:{port};\n  location / {{\n   proxy_pass http://127.0.0.1:{origin_port};\n\
           proxy_cache c;\n   proxy_cache_valid 200 1h;\n   proxy_cache_lock {lock};\n   proxy_cache_lock_timeout 60s;\n  }}\n }}\n}}\n"
    );
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, conf).ok()?;
    let child = spawn(
        Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(dir.path()),
    )?;
    Peer::started(
        format!("nginx 1.22 (proxy_cache_lock {lock})"),
        port,
        How::Reverse,
        origin_port,
        child,
        dir,
    )
}

fn start_squid(origin_port: u16, collapsed: bool) -> Option<Peer> {
    let dir = writable_dir()?;
    let d = dir.path().display();
    let port = free_port();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 {NAME}\n")).ok()?;
    let collapsed = if collapsed { "on" } else { "off" };
    let conf = format!(
        "http_port 127.0.0.1:{port}\npid_filename none\ncache_log {d}/cache.log\naccess_log none\n\
         cache_mem 512 MB\nmaximum_object_size_in_memory 200 MB\nmaximum_object_size 200 MB\n\
         collapsed_forwarding {collapsed}\ncoredump_dir {d}\nhosts_file {}\ndns_nameservers 127.0.0.1\n\
         max_filedescriptors 16384\nshutdown_lifetime 0 seconds\nhttp_access allow all\n",
        hosts.display()
    );
    let file = dir.path().join("squid.conf");
    std::fs::write(&file, conf).ok()?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).ok()?;
    let child = spawn(
        Command::new("/usr/sbin/squid")
            .arg("-N")
            .arg("-f")
            .arg(&file),
    )?;
    Peer::started(
        format!("squid 5.7 (collapsed_forwarding {collapsed})"),
        port,
        How::Forward,
        origin_port,
        child,
        dir,
    )
}

/// One GET through `peer`; returns (time to the first body byte, body
/// bytes, total time).
async fn get(
    peer_port: u16,
    how: How,
    origin_port: u16,
    path: String,
) -> Option<(Duration, u64, Duration)> {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", peer_port)).await.ok()?;
    let host = format!("{NAME}:{origin_port}");
    let tail = format!("HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    match how {
        How::Forward => response(s, format!("GET http://{host}{path} {tail}"), start).await,
        How::Reverse => response(s, format!("GET {path} {tail}"), start).await,
        How::Intercept(config) => {
            s.write_all(format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
                .await
                .ok()?;
            let answer = shared::read_request_head(&mut s).await?;
            if !answer.starts_with("HTTP/1.1 200") {
                eprintln!("{answer}");
                return None;
            }
            let name = rustls_pki_types::ServerName::try_from(NAME).ok()?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, s)
                .await
                .ok()?;
            response(tls, format!("GET {path} {tail}"), start).await
        }
    }
}

/// Sends `req` and reads the response: (time to the first body byte,
/// body bytes, total time), counted from `start`.
async fn response<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: String,
    start: Instant,
) -> Option<(Duration, u64, Duration)> {
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut head = Vec::new();
    let mut body = 0u64;
    let mut first = None;
    loop {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        if first.is_none() {
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = head.len() - end - 4;
                if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
                    eprintln!("{}", String::from_utf8_lossy(&head[..end]));
                    return None;
                }
                body += rest as u64;
                if rest > 0 {
                    first = Some(start.elapsed());
                }
                head.clear();
                if first.is_none() {
                    first = Some(Duration::ZERO);
                }
            }
        } else {
            if first == Some(Duration::ZERO) {
                first = Some(start.elapsed());
            }
            body += n as u64;
        }
    }
    Some((first.unwrap_or_default(), body, start.elapsed()))
}

/// `clients` GETs at once; aggregate MB/s of the bodies (None if any
/// failed or came short).
async fn parallel(
    peer: &Peer,
    origin_port: u16,
    path: &str,
    clients: usize,
    len: usize,
) -> Option<f64> {
    let start = Instant::now();
    let target = format!("/{path}");
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(get(
                peer.port,
                peer.how.clone(),
                origin_port,
                target.clone(),
            ))
        })
        .collect();
    let mut ok = true;
    for t in tasks {
        ok &= matches!(t.await, Ok(Some((_, n, _))) if n == len as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    ok.then(|| (clients * len) as f64 / secs / 1e6)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The hit rounds: `BENCH_ROUNDS` (5), each measuring every peer once, one
/// after the other, so that a load on the shared machine that comes and
/// goes lands on all of them rather than on one peer's figures.
fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1)
}

/// The median and the range of some MB/s figures, as a table cell.
fn spread(v: &[f64]) -> String {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(lo), Some(mid), Some(hi)) => format!("{mid:.0} MB/s ({lo:.0}-{hi:.0})"),
        _ => "failed".into(),
    }
}

fn median_f(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Hit throughput of one 100 MB object (warm) to 1 and to 50 clients.
async fn hit_once(peer: &Peer, slot: usize) -> (Option<f64>, Option<f64>) {
    let hit = format!("hit{slot}");
    let one = parallel(peer, peer.origin_port, &hit, 1, HIT_LEN).await;
    let fifty = parallel(peer, peer.origin_port, &hit, 50, HIT_LEN).await;
    (one, fifty)
}

/// The origin-bytes and TTFB cells of a peer's row.
async fn fills(peer: &Peer, origin: &Arc<Origin>, slot: usize) -> String {
    let origin_port = peer.origin_port;
    // Origin bytes for 100 clients on a cold object.
    let cold = format!("cold{slot}");
    let _ = parallel(peer, origin_port, &cold, 100, COLD_LEN).await;
    let cold_bytes = origin.sent(&format!("/{cold}"));
    let cold_requests = origin.requests(&format!("/{cold}"));
    let copies = cold_bytes as f64 / COLD_LEN as f64;
    // TTFB of clients arriving during a fill.
    let trickle = format!("trickle{slot}");
    let first = tokio::spawn(get(
        peer.port,
        peer.how.clone(),
        origin_port,
        format!("/{trickle}"),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(get(
                peer.port,
                peer.how.clone(),
                origin_port,
                format!("/{trickle}"),
            ))
        })
        .collect();
    let mut ttfb = Vec::new();
    for w in waiting {
        if let Ok(Some((t, _, _))) = w.await {
            ttfb.push(t);
        }
    }
    let fill = first.await.ok().flatten().map(|r| r.2).unwrap_or_default();
    let max = ttfb.iter().max().copied().unwrap_or_default();
    format!(
        // The integers too: "1.0x" rounds; one copy is exactly COLD_LEN
        // bytes in one request.
        "{copies:.1}x ({cold_bytes} of {COLD_LEN} bytes, {cold_requests} requests) | {:.0} ms / {:.0} ms (fill {:.0} ms)",
        median(ttfb).as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        fill.as_secs_f64() * 1e3
    )
}

fn main() {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("bench-cache: no runtime");
        return;
    };
    rt.block_on(async {
        let origin = Arc::new(Origin::default());
        // 20 MB over ~2 s: 100 KB every 10 ms.
        origin.trickle.store(100_000, Ordering::Relaxed);
        let (Ok(listener), Ok(tls_listener), Ok(dir)) = (
            TcpListener::bind("127.0.0.1:0").await,
            TcpListener::bind("127.0.0.1:0").await,
            tempfile::tempdir(),
        ) else {
            return;
        };
        let origin_ca = dir.path().join("origin-ca.pem");
        let Some(acceptor) = origin_tls(&origin_ca) else {
            eprintln!("bench-cache: the origin's certificate");
            return;
        };
        let origin_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let tls_port = tls_listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let o = origin.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(origin_conn(s, o.clone()));
            }
        });
        let o = origin.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = tls_listener.accept().await {
                let (acceptor, o) = (acceptor.clone(), o.clone());
                tokio::spawn(async move {
                    if let Ok(s) = acceptor.accept(s).await {
                        origin_conn(s, o).await;
                    }
                });
            }
        });
        let ports = (origin_port, tls_port);
        let ca = origin_ca.clone();
        let ca2 = origin_ca.clone();
        let peers: Vec<Box<dyn Fn() -> Option<Peer>>> = vec![
            Box::new(move || start_ours(ports, &ca, false)),
            Box::new(move || start_nginx(origin_port, false)),
            Box::new(move || start_nginx(origin_port, true)),
            Box::new(move || start_squid(origin_port, false)),
            Box::new(move || start_squid(origin_port, true)),
            Box::new(move || start_ours(ports, &ca2, true)),
        ];
        if let Ok(mut m) = origin.objects.lock() {
            for round in 0..peers.len() {
                m.insert(format!("/hit{round}"), Arc::new(pattern(HIT_LEN, round as u8)));
                m.insert(format!("/cold{round}"), Arc::new(pattern(COLD_LEN, round as u8 + 50)));
                m.insert(format!("/trickle{round}"), Arc::new(pattern(COLD_LEN, round as u8 + 100)));
            }
        }
        // Every peer runs for the whole bench, each with its own objects.
        let started: Vec<Option<Peer>> = peers.iter().map(|start| start()).collect();
        for (slot, peer) in started.iter().enumerate() {
            if let Some(peer) = peer {
                let _ = get(peer.port, peer.how.clone(), peer.origin_port, format!("/hit{slot}")).await;
            }
        }
        let n = rounds();
        let mut ones = vec![Vec::new(); started.len()];
        let mut fifties = vec![Vec::new(); started.len()];
        for round in 1..=n {
            for (slot, peer) in started.iter().enumerate() {
                if let Some(peer) = peer {
                    let (one, fifty) = hit_once(peer, slot).await;
                    ones[slot].extend(one);
                    fifties[slot].extend(fifty);
                }
            }
            eprintln!("hit round {round} of {n} done");
        }
        println!("| cache | hit 1 client: median (range) of {n} rounds | hit 50 clients | origin bytes (copies, bytes, requests), 100 clients cold | TTFB while filling: median / max |");
        println!("|---|---|---|---|---|");
        for (slot, peer) in started.iter().enumerate() {
            match peer {
                Some(peer) => {
                    let rest = fills(peer, &origin, slot).await;
                    println!(
                        "| {} | {} | {} | {rest} |",
                        peer.name,
                        spread(&ones[slot]),
                        spread(&fifties[slot])
                    );
                }
                None => println!("| (peer {slot}: did not start) | | | | |"),
            }
        }
        // Ours (plain HTTP, slot 0) against the faster nginx (slots 1 and 2)
        // of the same round: the median and the range of the per-round
        // ratios.
        for (what, v) in [("1 client", &ones), ("50 clients", &fifties)] {
            let ratios: Vec<f64> = (0..n)
                .filter_map(|r| {
                    let ours = *v[0].get(r)?;
                    let nginx = v[1].get(r).copied().unwrap_or(0.0).max(v[2].get(r).copied().unwrap_or(0.0));
                    (nginx > 0.0).then(|| ours / nginx)
                })
                .collect();
            let mut sorted = ratios.clone();
            sorted.sort_by(f64::total_cmp);
            if let (Some(lo), Some(mid), Some(hi)) = (sorted.first(), median_f(&ratios), sorted.last()) {
                println!(
                    "hit throughput, {what}: gateway-cache / the faster nginx of each round: x{mid:.2} (x{lo:.2}-x{hi:.2}) (target >= 1)"
                );
            }
        }
    });
}
