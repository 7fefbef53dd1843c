//! Helpers for the cache's client tests: a scripted origin on loopback (TLS
//! under a test CA, and plain), the cache in-process on loopback, curl.
//! Everything listens on 127.0.0.1 and lives in a runtime the test owns:
//! dropping it (also when a test fails) closes every socket.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gateway_cache::server::{serve, Service};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// The origin's name, mapped to 127.0.0.1 in the cache's hosts map.
pub const NAME: &str = "gw-test.example.com";

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// How the origin sends one resource.
#[derive(Clone)]
pub enum Mode {
    Normal,
    /// Sends this many body bytes, then closes (a dying origin).
    DieAfter(usize),
    /// Sends this many body bytes, then waits for the gate to open.
    Gate(usize, Arc<tokio::sync::Notify>),
    /// Waits this long before answering (a slow origin).
    SlowHead(std::time::Duration),
    /// Reads the request, then closes without answering (an origin that is
    /// down behind its address: the cache gets no response).
    Hangup,
    /// `Transfer-Encoding: chunked` (no `Content-Length`), chunks of 10,000
    /// bytes; with a gate: this many body bytes, then waits for it.
    Chunked(Option<(usize, Arc<tokio::sync::Notify>)>),
    /// Chunked, and closes after this many body bytes, before the last
    /// chunk (a body cut short).
    ChunkedDieAfter(usize),
    /// Says `Content-Length` is this, sends the body, closes (a hostile
    /// origin).
    ClaimsLength(u64),
}

#[derive(Clone)]
pub struct Resource {
    pub status: u16,
    pub body: Arc<Vec<u8>>,
    pub headers: Vec<(String, String)>,
    pub mode: Mode,
}

impl Resource {
    pub fn ok(body: Vec<u8>, headers: &[(&str, &str)]) -> Resource {
        Resource {
            status: 200,
            body: Arc::new(body),
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            mode: Mode::Normal,
        }
    }
}

/// A scripted origin: serves `resources` by path, one request per
/// connection, and records every request head it got.
#[derive(Default)]
pub struct OriginState {
    pub resources: Mutex<HashMap<String, Resource>>,
    pub requests: Mutex<Vec<String>>,
    pub count: AtomicUsize,
}

impl OriginState {
    pub fn set(&self, path: &str, r: Resource) {
        self.resources.lock().unwrap().insert(path.into(), r);
    }

    /// Requests the origin got for `path`.
    pub fn hits(&self, path: &str) -> usize {
        let line = format!(" {path} HTTP/1.1");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.lines().next().is_some_and(|l| l.ends_with(&line)))
            .count()
    }

    pub fn last_request(&self, path: &str) -> String {
        let line = format!(" {path} HTTP/1.1");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.lines().next().is_some_and(|l| l.ends_with(&line)))
            .cloned()
            .unwrap_or_default()
    }
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, state: Arc<OriginState>) {
    let Some(head) = shared::read_request_head(&mut s).await else {
        return;
    };
    state.requests.lock().unwrap().push(head.clone());
    state.count.fetch_add(1, Ordering::SeqCst);
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let res = state.resources.lock().unwrap().get(&path).cloned();
    let Some(res) = res else {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
            .await;
        let _ = s.shutdown().await;
        return;
    };
    let inm = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("If-None-Match: ")
                .or_else(|| l.strip_prefix("if-none-match: "))
        })
        .map(str::to_owned);
    let etag = res
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone());
    if let Mode::SlowHead(d) = &res.mode {
        tokio::time::sleep(*d).await;
    }
    if let Mode::Hangup = &res.mode {
        return;
    }
    // If-Modified-Since, only without If-None-Match (RFC 9110 section
    // 13.1.3): not modified when the resource's Last-Modified is not after
    // it. Both must parse as HTTP dates, else the full response.
    let ims = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("if-modified-since")
                .then(|| v.trim().to_owned())
        })
        .and_then(|v| gateway_cache::rules::parse_http_date(&v));
    let last_modified = res
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("last-modified"))
        .and_then(|(_, v)| gateway_cache::rules::parse_http_date(v));
    let unmodified_since = matches!((ims, last_modified), (Some(since), Some(lm)) if lm <= since);
    let mut out = String::new();
    let not_modified = match &inm {
        Some(_) => inm == etag,
        None => unmodified_since,
    };
    let chunked = matches!(res.mode, Mode::Chunked(_) | Mode::ChunkedDieAfter(_));
    if not_modified {
        out.push_str("HTTP/1.1 304 Not Modified\r\n");
    } else if chunked {
        out.push_str(&format!(
            "HTTP/1.1 {} X\r\nTransfer-Encoding: chunked\r\n",
            res.status
        ));
    } else {
        let length = match res.mode {
            Mode::ClaimsLength(n) => n,
            _ => res.body.len() as u64,
        };
        out.push_str(&format!(
            "HTTP/1.1 {} X\r\nContent-Length: {length}\r\n",
            res.status,
        ));
    }
    for (n, v) in &res.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    if s.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    if not_modified || method == "HEAD" {
        let _ = s.shutdown().await;
        return;
    }
    let body = &res.body[..];
    match &res.mode {
        Mode::Normal | Mode::SlowHead(_) | Mode::Hangup | Mode::ClaimsLength(_) => {
            let _ = s.write_all(body).await;
        }
        Mode::DieAfter(n) => {
            let _ = s.write_all(&body[..*n]).await;
            let _ = s.flush().await;
            return; // dropped: the connection closes short of its length
        }
        Mode::Gate(n, gate) => {
            let _ = s.write_all(&body[..*n]).await;
            let _ = s.flush().await;
            gate.notified().await;
            let _ = s.write_all(&body[*n..]).await;
        }
        Mode::Chunked(_) | Mode::ChunkedDieAfter(_) => {
            let (gate, die) = match &res.mode {
                Mode::Chunked(g) => (g.clone(), usize::MAX),
                Mode::ChunkedDieAfter(n) => (None, *n),
                _ => (None, usize::MAX),
            };
            let held = gate.as_ref().map_or(usize::MAX, |(n, _)| *n);
            let (mut sent, mut waited) = (0, false);
            for piece in body.chunks(10_000) {
                if !waited && sent >= held {
                    let _ = s.flush().await;
                    if let Some((_, g)) = &gate {
                        g.notified().await;
                    }
                    waited = true;
                }
                if sent >= die {
                    let _ = s.flush().await;
                    return; // dropped: no last chunk
                }
                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                framed.extend_from_slice(piece);
                framed.extend_from_slice(b"\r\n");
                if s.write_all(&framed).await.is_err() {
                    return;
                }
                sent += piece.len();
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        }
    }
    let _ = s.shutdown().await;
}

pub struct TestCa {
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

pub fn test_ca() -> TestCa {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "Test origin CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

fn origin_tls(ca: &TestCa) -> Arc<rustls::ServerConfig> {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![NAME.to_owned()])
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der)
    .unwrap();
    Arc::new(config)
}

/// The whole test set-up: origins, the cache, their runtime and files.
pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub origin: Arc<OriginState>,
    pub tls_port: u16,
    pub plain_port: u16,
    pub dir: tempfile::TempDir,
    pub origin_ca: PathBuf,
    /// Whether the settings name `origin_ca` as `origin_ca_bundle` (the
    /// test origin's CA trusted); false: the built-in roots only.
    pub trust_origin_ca: bool,
    pub cache: Option<Cache>,
}

pub struct Cache {
    pub addr: SocketAddr,
    pub service: Arc<Service>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl World {
    /// Origins up (TLS and plain, both on loopback); the cache not yet.
    pub fn new() -> World {
        // The cache's log in the test's output (shown when a test fails).
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let rt = runtime();
        let origin = Arc::new(OriginState::default());
        let ca = test_ca();
        let dir = tempfile::tempdir().unwrap();
        let origin_ca = dir.path().join("origin-ca.pem");
        std::fs::write(&origin_ca, &ca.pem).unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(origin_tls(&ca));
        let (tls_listener, plain_listener) = rt.block_on(async {
            (
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            )
        });
        let tls_port = tls_listener.local_addr().unwrap().port();
        let plain_port = plain_listener.local_addr().unwrap().port();
        let state = origin.clone();
        rt.spawn(async move {
            while let Ok((s, _)) = tls_listener.accept().await {
                let (tls, state) = (tls.clone(), state.clone());
                tokio::spawn(async move {
                    if let Ok(s) = tls.accept(s).await {
                        serve_one(s, state).await;
                    }
                });
            }
        });
        let state = origin.clone();
        rt.spawn(async move {
            while let Ok((s, _)) = plain_listener.accept().await {
                tokio::spawn(serve_one(s, state.clone()));
            }
        });
        World {
            rt,
            origin,
            tls_port,
            plain_port,
            dir,
            origin_ca,
            trust_origin_ca: true,
            cache: None,
        }
    }

    /// The settings file's text: the origins allowed and mapped, the test
    /// CA trusted for origins, `extra` JSON fields appended.
    pub fn settings_json(&self, extra: &str) -> String {
        format!(
            r#"{{"listen": "127.0.0.1:8080", "allowed_domains": ["{NAME}:{}", "{NAME}:{}"],
                "hosts": {{"{NAME}": "127.0.0.1"}}, "resolv_conf": "/nonexistent/resolv.conf",
                "ca_dir": {:?}, "origin_ca_bundle": {}, "idle_timeout_s": 20{extra}}}"#,
            self.tls_port,
            self.plain_port,
            self.ca_dir(),
            if self.trust_origin_ca {
                format!("{:?}", self.origin_ca)
            } else {
                "null".to_owned()
            },
        )
    }

    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    pub fn ca_pem(&self) -> PathBuf {
        self.ca_dir().join("ca.pem")
    }

    /// Starts (or restarts) the cache with `extra` settings.
    pub fn start_cache(&mut self, extra: &str) {
        self.stop_cache();
        let settings = gateway_cache::settings::parse(&self.settings_json(extra)).unwrap();
        let store = gateway_cache::run::store(&settings).unwrap();
        let service =
            gateway_cache::run::service(&settings, store, Default::default(), Default::default())
                .unwrap();
        let service = Arc::new(service);
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (_tx, rx) = watch::channel(service.clone());
        let slots = gateway_forward_proxy::client::Admission::new(1000, 1000);
        let task = self.rt.spawn(async move {
            let _keep = _tx;
            serve(listener, rx, slots).await
        });
        self.cache = Some(Cache {
            addr,
            service,
            task,
        });
    }

    /// Stops accepting (connections already served finish on their own).
    pub fn stop_cache(&mut self) {
        if let Some(mut c) = self.cache.take() {
            c.task.abort();
            let _ = self.rt.block_on(&mut c.task);
        }
    }

    pub fn cache_addr(&self) -> SocketAddr {
        self.cache.as_ref().expect("cache started").addr
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{NAME}:{}{path}", self.tls_port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{NAME}:{}{path}", self.plain_port)
    }

    /// curl through the cache, trusting the appliance CA.
    pub fn curl(&self, url: &str, args: &[&str]) -> Fetched {
        let out_file = self
            .dir
            .path()
            .join(format!("body-{}", COUNTER.fetch_add(1, Ordering::Relaxed)));
        let proxy = format!("http://{}", self.cache_addr());
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "30", "--proxy", &proxy, "--cacert"])
            .arg(self.ca_pem())
            .args(["-D", "-", "-o"])
            .arg(&out_file)
            .args(args)
            .arg(url)
            .output()
            .expect("run curl");
        let body = std::fs::read(&out_file).unwrap_or_default();
        let _ = std::fs::remove_file(&out_file);
        Fetched::new(output, body)
    }

    /// The cache's statistics, as `GET /stats` answers them.
    pub fn stats(&self) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://{}/stats", self.cache_addr()))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Fetched {
    pub ok: bool,
    pub status: u16,
    /// The final response's header lines (the proxy's CONNECT answer left
    /// out).
    pub headers: Vec<String>,
    pub body: Vec<u8>,
    pub stderr: String,
}

impl Fetched {
    fn new(output: std::process::Output, body: Vec<u8>) -> Fetched {
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let last = text
            .split("\r\n\r\n")
            .filter(|b| b.starts_with("HTTP/"))
            .last()
            .unwrap_or("")
            .to_owned();
        let mut lines = last.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Fetched {
            ok: output.status.success(),
            status,
            headers: lines.map(str::to_owned).collect(),
            body,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    gateway_cache::disk::hex(&sha2::Sha256::digest(data))
}

pub mod shared;
pub use shared::pattern;

pub fn object_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default()
}
