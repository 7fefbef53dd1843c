//! The agent at run time: the check-in loop (on a [`Schedule`]), the
//! registration and connectivity check, the configuration the platform
//! sends applied through PID 1's control API (`set`: the same validation
//! as a local change), and the agent's own socket answering `register` and
//! `platform` (PID 1 forwards them there).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gateway_config::Secret;
use gateway_control::protocol::{
    CaInfo, Connectivity, PlatformStatus, ProxyTestResult, ProxyTestStep, SetResult,
};
use gateway_control::server::Handler;
use gateway_control::{ApiError, Client, ClientError, Request, Response};
use gateway_resolver::Resolver;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, Notify};
use tracing::{info, warn};

use crate::connect::{tls_config, Dialer, ReachError, TlsSetupError};
use crate::schedule::Schedule;
use crate::settings::AgentSettings;
use crate::state::{self, Registration, StateError};
use gateway_management_api::api::{
    self, CertificateAssignment, CheckinRequest, CheckinResponse, Configuration,
    ConfigurationResult,
};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("name resolution: {0}")]
    Resolver(#[from] gateway_resolver::ResolverError),
    #[error("registration state: {0}")]
    State(#[from] StateError),
    #[error("bind {path}: {source}")]
    Bind {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Why a check-in did not go through.
#[derive(Debug, thiserror::Error)]
pub enum CheckinError {
    #[error("not registered")]
    NotRegistered,
    #[error("{host}: {source}")]
    Reach { host: String, source: ReachError },
    #[error("{host} answered {status}: {message}")]
    Refused {
        host: String,
        status: u16,
        message: String,
    },
    #[error("{host} answered something that is not a check-in answer: {detail}")]
    Malformed { host: String, detail: String },
    #[error("save the registration: {0}")]
    State(#[from] StateError),
}

#[derive(Debug, Default)]
struct Inner {
    registration: Option<Registration>,
    last_checkin_unix: Option<u64>,
    last_checkin_result: Option<String>,
    checkin_failures: u32,
    next_checkin_unix: Option<u64>,
    connectivity: Vec<Connectivity>,
    /// Set when the platform changed the interval.
    interval: Option<Duration>,
}

pub struct Agent {
    settings: AgentSettings,
    dialer: Dialer,
    inner: Mutex<Inner>,
    wake: Notify,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The text of an error answer: the API's `error.message`, else the body.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<api::ErrorBody>(body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(200).collect())
}

impl Agent {
    pub fn new(settings: AgentSettings) -> Result<Arc<Agent>, AgentError> {
        let dialer = Dialer {
            resolver: Self::resolver(&settings)?,
            upstream: settings.upstream.clone(),
            tls: tls_config(settings.ca_bundle.as_deref())?,
            port: settings.port,
        };
        let registration = state::load(&settings.state_dir)?;
        Ok(Arc::new(Agent {
            settings,
            dialer,
            inner: Mutex::new(Inner {
                registration,
                ..Inner::default()
            }),
            wake: Notify::new(),
        }))
    }

    fn resolver(settings: &AgentSettings) -> Result<Resolver, gateway_resolver::ResolverError> {
        let hosts = settings.hosts.clone().into_iter().collect();
        Resolver::with_resolv_conf(&settings.resolv_conf, hosts)
    }

    /// The dialer with the name servers of resolv.conf as they are now
    /// (PID 1 rewrites it when DNS changes; the agent is not restarted).
    fn dialer(&self) -> Dialer {
        let mut dialer = self.dialer.clone();
        match Self::resolver(&self.settings) {
            Ok(r) => dialer.resolver = r,
            Err(e) => warn!("name servers: {e}; keeping the previous ones"),
        }
        dialer
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.checkin_interval_s))
    }

    /// Serves the agent's socket and checks in until the process ends.
    pub async fn run(self: Arc<Self>) -> Result<(), AgentError> {
        let listener = match self.settings.socket_fd {
            Some(fd) => crate::listen::inherited(fd),
            None => gateway_control::server::bind(&self.settings.socket),
        }
        .map_err(|source| AgentError::Bind {
            path: self.settings.socket.clone(),
            source,
        })?;
        tokio::spawn(gateway_control::server::serve(listener, self.clone()));
        self.checkin_loop().await;
        Ok(())
    }

    async fn checkin_loop(&self) {
        let mut schedule = Schedule::new(self.interval(), Instant::now());
        loop {
            let wait = schedule.next_at().saturating_duration_since(Instant::now());
            self.inner.lock().await.next_checkin_unix = Some(unix_now() + wait.as_secs());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
            if let Some(interval) = self.inner.lock().await.interval.take() {
                schedule.set_interval(interval, Instant::now());
            }
            let outcome = self.checkin_once().await;
            let now = Instant::now();
            let text = match &outcome {
                Ok(summary) => {
                    schedule.success(now);
                    summary.clone()
                }
                Err(CheckinError::NotRegistered) => {
                    schedule.success(now);
                    continue;
                }
                Err(e) => {
                    schedule.failure(now, fastrand::f64());
                    warn!(
                        failures = schedule.failures(),
                        "check-in failed: {e}; the appliance keeps its configuration; next try in {:.0} s",
                        (schedule.next_at() - now).as_secs_f64()
                    );
                    e.to_string()
                }
            };
            let mut inner = self.inner.lock().await;
            inner.last_checkin_unix = Some(unix_now());
            inner.last_checkin_result = Some(text);
            inner.checkin_failures = schedule.failures();
        }
    }

    async fn control<T: DeserializeOwned + Send + 'static>(
        &self,
        request: Request,
    ) -> Result<T, ClientError> {
        let path = self.settings.control_socket.clone();
        tokio::task::spawn_blocking(move || {
            Client::connect(&path, Duration::from_secs(60))?.call_as(&request)
        })
        .await
        .unwrap_or_else(|e| {
            Err(ClientError::Protocol {
                path: Default::default(),
                detail: e.to_string(),
            })
        })
    }

    /// Applies a configuration from the platform through `set`; `Err` when
    /// PID 1 could not be asked (the configuration is tried again).
    ///
    /// `install` is the assigned certificate when it differs from the one
    /// installed last: it goes first, through `ca_install` (the same checks
    /// as `gatewayctl ca-install`), and its refusal refuses the whole
    /// configuration, so nothing changes.
    async fn apply(
        &self,
        cfg: &Configuration,
        install: Option<&CertificateAssignment>,
    ) -> Result<ConfigurationResult, ClientError> {
        let refused = |error: ApiError| ConfigurationResult {
            version: cfg.version,
            applied: false,
            changed: Vec::new(),
            error: Some(error),
        };
        if let Some(key) = cfg
            .values
            .keys()
            .find(|k| !api::PLATFORM_KEYS.contains(&k.as_str()))
        {
            return Ok(refused(ApiError::for_key(
                key.clone(),
                "the platform may not change this key: it is set on the appliance",
            )));
        }
        let mut installed = false;
        if let Some(cert) = install {
            let request = Request::CaInstall {
                chain: cert.chain.clone(),
                key: cert.key.clone(),
            };
            match self.control::<CaInfo>(request).await {
                Ok(info) => {
                    info!(
                        version = cfg.version,
                        "certificate from the platform installed: SHA-256 {}",
                        info.fingerprint_sha256
                    );
                    installed = true;
                }
                Err(ClientError::Refused(e)) => {
                    warn!(
                        version = cfg.version,
                        "certificate from the platform refused: {}", e.message
                    );
                    return Ok(refused(ApiError::for_key("certificate", e.message)));
                }
                Err(e) => return Err(e),
            }
        }
        let set = Request::Set {
            values: cfg.values.clone(),
        };
        match self.control::<SetResult>(set).await {
            Ok(mut r) => {
                if installed {
                    r.changed.insert(0, "certificate".into());
                }
                if let Some(s) = cfg.values.get("platform.checkin_interval_s") {
                    if let Ok(s) = s.parse::<u64>() {
                        self.inner.lock().await.interval = Some(Duration::from_secs(s));
                    }
                }
                info!(version = cfg.version, changed = ?r.changed, "configuration from the platform applied");
                Ok(ConfigurationResult {
                    version: cfg.version,
                    applied: true,
                    changed: r.changed,
                    error: None,
                })
            }
            Err(ClientError::Refused(e)) => {
                warn!(
                    version = cfg.version,
                    "configuration from the platform refused: {e}"
                );
                Ok(refused(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Processes a configuration newer than the last one; a summary.
    async fn take_configuration(&self, reg: &mut Registration, cfg: &Configuration) -> String {
        if cfg.version <= reg.configuration_version {
            return String::new();
        }
        let install = cfg
            .certificate
            .as_ref()
            .filter(|c| reg.certificate_chain.as_deref() != Some(c.chain.as_str()));
        match self.apply(cfg, install).await {
            Ok(result) => {
                if let (true, Some(c)) = (result.applied, install) {
                    reg.certificate_chain = Some(c.chain.clone());
                }
                let text = match &result.error {
                    None => format!("; configuration {} applied", cfg.version),
                    Some(e) => format!("; configuration {} refused: {e}", cfg.version),
                };
                reg.configuration_version = cfg.version;
                reg.pending_result = Some(result);
                text
            }
            Err(e) => format!("; configuration {} not applied yet: {e}", cfg.version),
        }
    }

    /// One check-in: status and statistics up, configuration down.
    pub async fn checkin_once(&self) -> Result<String, CheckinError> {
        let Some(mut reg) = self.inner.lock().await.registration.clone() else {
            return Err(CheckinError::NotRegistered);
        };
        let host = api::host(api::CHECKIN_SERVICE, &reg.pod);
        let status = self.control(Request::Status).await.unwrap_or_default();
        let stats = self.control(Request::Stats).await.unwrap_or_default();
        let body = CheckinRequest {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            time_unix: unix_now(),
            configuration_version: reg.configuration_version,
            configuration_result: reg.pending_result.clone(),
            status,
            stats,
            connectivity: self.inner.lock().await.connectivity.clone(),
        };
        let body = serde_json::to_vec(&body).expect("a check-in always serialises");
        let path = format!("{}/appliances/{}/checkin", api::PREFIX, reg.appliance_id);
        let resp = self
            .dialer()
            .request(&host, "POST", &path, Some(reg.token.expose()), Some(&body))
            .await
            .map_err(|source| CheckinError::Reach {
                host: host.clone(),
                source,
            })?;
        if resp.status() != 200 {
            return Err(CheckinError::Refused {
                host,
                status: resp.status(),
                message: error_message(&resp.body),
            });
        }
        let answer: CheckinResponse =
            serde_json::from_slice(&resp.body).map_err(|e| CheckinError::Malformed {
                host: host.clone(),
                detail: e.to_string(),
            })?;
        reg.pending_result = None;
        let mut summary = "ok".to_owned();
        if let Some(cfg) = &answer.configuration {
            summary += &self.take_configuration(&mut reg, cfg).await;
        }
        state::save(&self.settings.state_dir, &reg)?;
        self.inner.lock().await.registration = Some(reg.clone());
        for name in &answer.upload_logs {
            if let Err(e) = self.upload_log(&reg, name).await {
                warn!("log upload of {name}: {e}");
            }
        }
        Ok(summary)
    }

    async fn upload_log(&self, reg: &Registration, name: &str) -> Result<(), String> {
        let logs: gateway_control::protocol::LogLines = self
            .control(Request::Logs {
                name: name.to_owned(),
                lines: Some(1000),
                search: None,
            })
            .await
            .map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&api::LogUpload {
            name: logs.name,
            lines: logs.lines,
        })
        .expect("a log upload always serialises");
        let host = api::host(api::CHECKIN_SERVICE, &reg.pod);
        let path = format!("{}/appliances/{}/logs", api::PREFIX, reg.appliance_id);
        let resp = self
            .dialer()
            .request(&host, "POST", &path, Some(reg.token.expose()), Some(&body))
            .await
            .map_err(|e| e.to_string())?;
        match resp.status() {
            200..=299 => Ok(()),
            s => Err(format!(
                "{host} answered {s}: {}",
                error_message(&resp.body)
            )),
        }
    }

    /// Each platform URL's health endpoint, directly or through the
    /// upstream proxy; the result is kept for `platform` and the check-in.
    pub async fn check_connectivity(&self) -> Vec<Connectivity> {
        let Some(pod) = self.settings.pod.clone() else {
            return Vec::new();
        };
        let base = self.dialer();
        let tasks: Vec<_> = api::SERVICES
            .iter()
            .map(|service| {
                let host = api::host(service, &pod);
                let dialer = base.clone();
                let url = match dialer.port {
                    443 => format!("https://{host}{}", api::HEALTH),
                    port => format!("https://{host}:{port}{}", api::HEALTH),
                };
                tokio::spawn(async move {
                    let (ok, result) =
                        match dialer.request(&host, "GET", api::HEALTH, None, None).await {
                            Ok(r) => (
                                r.status() == 200,
                                format!("HTTP {} {}", r.status(), r.second),
                            ),
                            Err(e) => (false, e.to_string()),
                        };
                    Connectivity {
                        url,
                        ok,
                        result,
                        checked_unix: unix_now(),
                    }
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            if let Ok(c) = task.await {
                results.push(c);
            }
        }
        self.inner.lock().await.connectivity = results.clone();
        results
    }

    /// The console's proxy test: qagpublic.<pod>'s health endpoint through
    /// the upstream proxy, reported step by step (which step failed is
    /// what an administrator needs: the proxy unreachable, the proxy
    /// refusing, TLS intercepted by an unknown CA, the platform answering).
    pub async fn proxy_test(&self) -> Result<ProxyTestResult, ApiError> {
        let dialer = self.dialer();
        let Some(up) = dialer.upstream.clone() else {
            return Err(ApiError::for_key(
                "upstream.proxy",
                "no upstream proxy is set: the appliance reaches the platform directly (System > Network > Proxy)",
            ));
        };
        let Some(pod) = self.settings.pod.clone() else {
            return Err(ApiError::for_key(
                "platform.pod",
                "no POD suffix is set: the test reaches qagpublic.<pod> through the proxy (System > POD Suffix)",
            ));
        };
        let host = api::host(api::SERVICES[0], &pod);
        let proxy = format!("{}:{}", up.host, up.port);
        let target = match dialer.port {
            443 => format!("https://{host}{}", api::HEALTH),
            port => format!("https://{host}:{port}{}", api::HEALTH),
        };
        let whats = [
            format!("TCP connection to the proxy {proxy}"),
            format!("CONNECT {host}:{}", dialer.port),
            format!("TLS with {host}, certificate verified"),
            format!("GET {}", api::HEALTH),
        ];
        let result = dialer.request(&host, "GET", api::HEALTH, None, None).await;
        // The step that failed, from the error's kind; all four on success.
        let (failed_at, why) = match &result {
            Ok(r) if r.status() == 200 => (whats.len(), String::new()),
            Ok(r) => (3, format!("HTTP {} {}", r.status(), r.second)),
            Err(e @ ReachError::ProxyUnreachable { .. }) => (0, e.to_string()),
            Err(e @ (ReachError::ProxyRefused(_) | ReachError::Timeout("CONNECT"))) => {
                (1, e.to_string())
            }
            Err(e @ (ReachError::Tls(_) | ReachError::Timeout("TLS handshake"))) => {
                (2, e.to_string())
            }
            Err(e) => (3, e.to_string()),
        };
        let steps = whats
            .into_iter()
            .enumerate()
            .map(|(i, what)| {
                let (ok, result) = match i.cmp(&failed_at) {
                    std::cmp::Ordering::Less => (true, "OK".to_owned()),
                    std::cmp::Ordering::Equal => (false, why.clone()),
                    std::cmp::Ordering::Greater => (false, "not tried".to_owned()),
                };
                ProxyTestStep { what, ok, result }
            })
            .collect::<Vec<_>>();
        let ok = steps.iter().all(|s| s.ok);
        if let (true, Ok(r)) = (ok, &result) {
            info!("proxy test through {proxy}: {target}: HTTP {}", r.status());
        } else {
            warn!("proxy test through {proxy}: {target}: {why}");
        }
        Ok(ProxyTestResult {
            proxy,
            target,
            ok,
            steps,
        })
    }

    /// Registers with a personalization code, once every platform URL
    /// answered; then applies the initial configuration and checks in.
    pub async fn register(&self, code: &str) -> Result<PlatformStatus, ApiError> {
        api::check_personalization_code(code)?;
        let Some(pod) = self.settings.pod.clone() else {
            return Err(ApiError::for_key(
                "platform.pod",
                "set the POD (platform.pod) before registering",
            ));
        };
        if let Some(reg) = &self.inner.lock().await.registration {
            return Err(ApiError::new(format!(
                "already registered as {} ({}); reset the appliance to register it again",
                reg.name, reg.appliance_id
            )));
        }
        let failed: Vec<String> = self
            .check_connectivity()
            .await
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.url, c.result))
            .collect();
        if !failed.is_empty() {
            return Err(ApiError::new(format!(
                "connectivity check failed, not registering: {}",
                failed.join("; ")
            )));
        }
        let host = api::host(api::REGISTER_SERVICE, &pod);
        let status: serde_json::Value = self.control(Request::Status).await.unwrap_or_default();
        let field = |k: &str| status.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let body = api::RegisterRequest {
            personalization_code: code.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: field("hostname").unwrap_or_else(|| "gateway".into()),
            mac: status
                .pointer("/network/mac")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        };
        let body = serde_json::to_vec(&body).expect("a registration always serialises");
        let path = format!("{}/appliances/register", api::PREFIX);
        let resp = self
            .dialer()
            .request(&host, "POST", &path, None, Some(&body))
            .await
            .map_err(|e| ApiError::new(format!("{host}: {e}")))?;
        if resp.status() != 201 {
            return Err(ApiError::new(format!(
                "registration refused by {host} ({}): {}",
                resp.status(),
                error_message(&resp.body)
            )));
        }
        let answer: api::RegisterResponse = serde_json::from_slice(&resp.body)
            .map_err(|e| ApiError::new(format!("{host} answered a malformed registration: {e}")))?;
        let mut reg = Registration {
            pod,
            appliance_id: answer.appliance_id,
            name: answer.name,
            token: Secret::new(answer.token),
            configuration_version: 0,
            pending_result: None,
            certificate_chain: None,
        };
        let save = |reg: &Registration| {
            state::save(&self.settings.state_dir, reg)
                .map_err(|e| ApiError::new(format!("save the registration: {e}")))
        };
        save(&reg)?;
        info!(appliance_id = %reg.appliance_id, name = %reg.name, "registered with the platform");
        self.take_configuration(&mut reg, &answer.configuration)
            .await;
        save(&reg)?;
        self.inner.lock().await.registration = Some(reg);
        self.wake.notify_one();
        Ok(self.status().await)
    }

    pub async fn status(&self) -> PlatformStatus {
        let inner = self.inner.lock().await;
        let reg = inner.registration.as_ref();
        PlatformStatus {
            pod: self.settings.pod.clone(),
            registered: reg.is_some(),
            appliance_id: reg.map(|r| r.appliance_id.clone()),
            appliance_name: reg.map(|r| r.name.clone()),
            last_checkin_unix: inner.last_checkin_unix,
            last_checkin_result: inner.last_checkin_result.clone(),
            checkin_failures: inner.checkin_failures,
            next_checkin_unix: reg.and(inner.next_checkin_unix),
            connectivity: inner.connectivity.clone(),
        }
    }
}

impl Handler for Agent {
    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Register { code } => match self.register(&code).await {
                Ok(status) => Response::ok(status),
                Err(e) => Response::error(e),
            },
            Request::Platform { check } => {
                if check {
                    self.check_connectivity().await;
                }
                Response::ok(self.status().await)
            }
            Request::ProxyTest => match self.proxy_test().await {
                Ok(r) => Response::ok(r),
                Err(e) => Response::error(e),
            },
            _ => Response::error(ApiError::new(
                "the management agent answers register, platform and proxy_test only",
            )),
        }
    }
}
