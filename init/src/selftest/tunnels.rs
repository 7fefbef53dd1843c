//! The `tunnels N PORT ADDR` selftest command: many idle tunnels through the
//! proxy unit, inside the appliance (where the open-files limits are the
//! appliance's own, not those of a build machine). Blocking sockets: this
//! is a test program, not part of PID 1's life.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROXY: (&str, u16) = ("127.0.0.1", 1080);

fn raise_open_files(n: u64) {
    let limit = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads the struct we pass; nothing else is touched.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

fn proxy_stats() -> String {
    let Ok(mut s) = TcpStream::connect(PROXY) else {
        return "no answer".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = s.write_all(b"GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_owned()
}

fn proxy_memory() -> String {
    let rss = crate::pid1::procs::pids_of("gateway-proxy")
        .first()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
        })
        .unwrap_or_default();
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/proxy/memory.current").unwrap_or_default();
    format!("rss_kib={rss} cgroup_bytes={}", cgroup.trim())
}

/// Agents per source address: each tunnel's client comes from one of the
/// loopback network's addresses, at most this many from each, as from
/// that many agents behind one address. (The proxy holds at most
/// `max_connections_per_client`, 2048 by default, from one address.)
const PER_ADDRESS: usize = 1000;

/// A connection to the proxy from 127.0.0.(2 + i / PER_ADDRESS).
fn connect_as_agent(i: usize) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let host = u8::try_from(2 + i / PER_ADDRESS).unwrap_or(u8::MAX);
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, host], 0)).into())?;
    socket.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], PROXY.1)).into())?;
    Ok(socket.into())
}

/// Opens `n` tunnels to a listener of its own on `addr:port`: the
/// appliance's eth0 address (the proxy refuses loopback destinations); the
/// report, one string per line.
pub fn hold(n: usize, port: u16, addr: std::net::Ipv4Addr) -> Vec<String> {
    raise_open_files((2 * n + 1024) as u64);
    let mut out = Vec::new();
    let listener = match TcpListener::bind((addr, port)) {
        Ok(l) => l,
        Err(e) => return vec![format!("tunnels: listen on {port}: {e}")],
    };
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let sink = accepted.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    });
    // The unit may have started an instant ago: wait until it listens.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(PROXY).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = proxy_memory();
    let start = Instant::now();
    let mut clients = Vec::with_capacity(n);
    let request = format!("CONNECT {addr}:{port} HTTP/1.1\r\nHost: {addr}:{port}\r\n\r\n");
    for i in 0..n {
        let opened = connect_as_agent(i).and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            c.write_all(request.as_bytes())?;
            let mut head = [0u8; 39];
            c.read_exact(&mut head)?;
            if &head[..12] != b"HTTP/1.1 200" {
                return Err(std::io::Error::other(
                    String::from_utf8_lossy(&head).into_owned(),
                ));
            }
            Ok(c)
        });
        match opened {
            Ok(c) => clients.push(c),
            Err(e) => {
                out.push(format!("tunnels: tunnel {i} failed: {e}"));
                break;
            }
        }
    }
    out.push(format!(
        "tunnels: {} open in {} ms",
        clients.len(),
        start.elapsed().as_millis()
    ));
    // Data crosses the first, a middle and the last tunnel.
    let picks: Vec<usize> = [0, clients.len() / 2, clients.len().saturating_sub(1)]
        .into_iter()
        .collect();
    for &i in &picks {
        if let Some(c) = clients.get_mut(i) {
            let _ = c.write_all(format!("ping{i}\n").as_bytes());
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut seen = 0;
    for s in accepted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter_mut()
    {
        let _ = s.set_nonblocking(true);
        let mut buf = [0u8; 64];
        if let Ok(k) = s.read(&mut buf) {
            if k > 0 && buf.starts_with(b"ping") {
                seen += 1;
            }
        }
    }
    out.push(format!(
        "tunnels: data crossed {seen} of {} probed",
        picks.len()
    ));
    out.push(format!(
        "tunnels: accepted {}",
        accepted.lock().map(|a| a.len()).unwrap_or(0)
    ));
    out.push(format!("tunnels: proxy stats {}", proxy_stats()));
    out.push(format!(
        "tunnels: proxy memory before {before}, with the tunnels {}",
        proxy_memory()
    ));
    drop(clients);
    out
}
