//! Reaching a platform host: the name through the shared resolver (hosts
//! map, then DNS), TCP directly or through the upstream proxy (`CONNECT`,
//! Basic authentication), then TLS that always verifies the certificate
//! against the built-in roots plus the configured CA bundle. Each failure
//! says in words which step failed, for the connectivity check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use gateway_resolver::Resolver;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::settings::UpstreamSettings;
use gateway_management_api::http::{self, HttpError, Message};

/// Each step (resolve, connect, handshake, the exchange) has this long.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    #[error("DNS failure: {0}")]
    Dns(String),
    #[error("TCP refused by {0}")]
    TcpRefused(SocketAddr),
    #[error("TCP failure to {addr}: {reason}")]
    Tcp { addr: SocketAddr, reason: String },
    #[error("timeout: {0}")]
    Timeout(&'static str),
    #[error("upstream proxy {proxy} unreachable: {reason}")]
    ProxyUnreachable { proxy: String, reason: String },
    #[error("upstream proxy refused CONNECT: {0}")]
    ProxyRefused(String),
    #[error("TLS failure: {0}")]
    Tls(String),
    #[error("HTTP failure: {0}")]
    Http(#[from] HttpError),
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("platform.ca_bundle: {0}")]
    Bundle(String),
}

/// The TLS client configuration: webpki's roots (Mozilla's list, built in:
/// the appliance has no certificate store of its own) plus `ca_bundle`.
/// There is no way to turn verification off.
pub fn tls_config(ca_bundle: Option<&str>) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(bundle) = ca_bundle {
        for (i, body) in gateway_config::rules::pem_certificates(bundle)
            .map_err(TlsSetupError::Bundle)?
            .iter()
            .enumerate()
        {
            let der = base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| TlsSetupError::Bundle(format!("certificate {}: {e}", i + 1)))?;
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| TlsSetupError::Bundle(format!("certificate {}: {e}", i + 1)))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Bundle(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// How the agent reaches the platform.
#[derive(Clone)]
pub struct Dialer {
    pub resolver: Resolver,
    pub upstream: Option<UpstreamSettings>,
    pub tls: Arc<rustls::ClientConfig>,
    /// The platform's HTTPS port.
    pub port: u16,
}

async fn step<T, E>(
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ReachError>
where
    ReachError: From<E>,
{
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(r) => r.map_err(ReachError::from),
        Err(_) => Err(ReachError::Timeout(what)),
    }
}

impl From<std::io::Error> for ReachError {
    fn from(e: std::io::Error) -> Self {
        ReachError::Http(HttpError::Io(e))
    }
}

impl Dialer {
    async fn tcp(&self, host: &str, port: u16) -> Result<TcpStream, ReachError> {
        let addrs = step("resolving", async {
            self.resolver.lookup(host).await.map_err(ReachError::Dns)
        })
        .await?;
        let mut last = ReachError::Dns(format!("{host} has no address"));
        for ip in addrs {
            let addr = SocketAddr::new(ip, port);
            match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = ReachError::TcpRefused(addr)
                }
                Ok(Err(e)) => {
                    last = ReachError::Tcp {
                        addr,
                        reason: e.to_string(),
                    }
                }
                Err(_) => last = ReachError::Timeout("TCP connect"),
            }
        }
        Err(last)
    }

    /// A TCP connection to `host:port`, through the upstream proxy when
    /// one is set.
    async fn tunnel(&self, host: &str) -> Result<TcpStream, ReachError> {
        let Some(up) = &self.upstream else {
            return self.tcp(host, self.port).await;
        };
        let proxy = format!("{}:{}", up.host, up.port);
        let mut s =
            self.tcp(&up.host, up.port)
                .await
                .map_err(|e| ReachError::ProxyUnreachable {
                    proxy: proxy.clone(),
                    reason: e.to_string(),
                })?;
        let target = format!("{host}:{}", self.port);
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(user) = &up.user {
            let pair = format!(
                "{user}:{}",
                up.password.as_ref().map(|p| p.expose()).unwrap_or("")
            );
            let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
            head += &format!("Proxy-Authorization: Basic {b64}\r\n");
        }
        head += "\r\n";
        step("CONNECT", async {
            s.write_all(head.as_bytes()).await?;
            // Byte by byte up to the blank line: what follows is the
            // origin's, and TLS has not started yet.
            let mut buf = Vec::new();
            while !buf.ends_with(b"\r\n\r\n") {
                if buf.len() > http::MAX_HEAD || s.read_u8().await.map(|b| buf.push(b)).is_err() {
                    return Err(ReachError::ProxyRefused("no complete answer".into()));
                }
            }
            let text = String::from_utf8_lossy(&buf);
            let line = text.lines().next().unwrap_or("").to_owned();
            let code = line.split_whitespace().nth(1).unwrap_or("");
            if code.starts_with('2') {
                Ok(())
            } else {
                Err(ReachError::ProxyRefused(
                    line.split_once(' ')
                        .map(|x| x.1)
                        .unwrap_or(&line)
                        .to_owned(),
                ))
            }
        })
        .await?;
        Ok(s)
    }

    /// A verified TLS connection to `host`.
    pub async fn connect(&self, host: &str) -> Result<TlsStream<TcpStream>, ReachError> {
        let tcp = self.tunnel(host).await?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| ReachError::Tls(format!("{host} is not a valid server name: {e}")))?;
        let connector = TlsConnector::from(self.tls.clone());
        match tokio::time::timeout(STEP_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(ReachError::Tls(
                e.get_ref()
                    .map(|inner| inner.to_string())
                    .unwrap_or_else(|| e.to_string()),
            )),
            Err(_) => Err(ReachError::Timeout("TLS handshake")),
        }
    }

    /// One request to `https://<host>:<port><path>`; a JSON body when given.
    pub async fn request(
        &self,
        host: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Message, ReachError> {
        let mut tls = self.connect(host).await?;
        let authority = if self.port == 443 {
            host.to_owned()
        } else {
            format!("{host}:{}", self.port)
        };
        let bearer = token.map(|t| format!("Bearer {t}"));
        let agent = format!("gateway-agent/{}", env!("CARGO_PKG_VERSION"));
        let mut headers = vec![
            ("Host", authority.as_str()),
            ("User-Agent", agent.as_str()),
            ("Accept", "application/json"),
        ];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b));
        }
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        step("HTTP exchange", async {
            http::write(
                &mut tls,
                &format!("{method} {path} HTTP/1.1"),
                &headers,
                body.unwrap_or_default(),
            )
            .await?;
            http::read_response(&mut tls).await
        })
        .await
    }
}
