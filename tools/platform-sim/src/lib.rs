//! The platform simulator: the management API (docs/management-api.md)
//! over HTTPS with a certificate from its own CA (written out for the
//! appliance's `platform.ca_bundle`), accepting the personalization codes
//! it was given; and a plain-HTTP admin interface on loopback through which
//! a test (or someone evaluating the appliance) changes an appliance's
//! configuration and reads what it reported. Not part of the image.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use gateway_management_api::api::{
    self, CertificateAssignment, CheckinRequest, CheckinResponse, Configuration,
    ConfigurationResult, ErrorBody, LogUpload, RegisterRequest, RegisterResponse,
};
use gateway_management_api::http::{self, Message};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What a test reads about one appliance (the admin interface's
/// `GET /appliances`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplianceRecord {
    pub id: String,
    pub name: String,
    pub personalization_code: String,
    #[serde(skip)]
    pub token: String,
    /// What the platform wants the appliance to have.
    pub desired: Configuration,
    pub checkins: u64,
    pub last_checkin: Option<CheckinRequest>,
    /// Every configuration outcome the appliance reported, oldest first.
    pub results: Vec<ConfigurationResult>,
    pub logs: Vec<LogUpload>,
    /// Logs to ask for at the next check-in.
    pub upload_logs: Vec<String>,
}

#[derive(Debug, Default)]
pub struct SimState {
    /// Code -> the appliance registered with it.
    codes: BTreeMap<String, Option<String>>,
    appliances: BTreeMap<String, ApplianceRecord>,
    /// The configuration every new appliance starts with.
    initial: BTreeMap<String, String>,
    /// Service (`qagpublic`...) -> the status its health endpoint answers
    /// instead of 200: a platform host that is up but unwell, for the
    /// connectivity check's wording.
    health: BTreeMap<String, u16>,
}

impl SimState {
    pub fn appliances(&self) -> Vec<ApplianceRecord> {
        self.appliances.values().cloned().collect()
    }

    /// Merges `values` into the appliance's desired configuration as a new
    /// version, sent at its next check-in.
    pub fn set_configuration(
        &mut self,
        id: &str,
        values: BTreeMap<String, String>,
    ) -> Option<Configuration> {
        let a = self.appliances.get_mut(id)?;
        a.desired.version += 1;
        a.desired.values.extend(values);
        Some(a.desired.clone())
    }

    /// Assigns an appliance CA (chain and key, PEM) as a new version of
    /// the desired configuration.
    pub fn assign_certificate(
        &mut self,
        id: &str,
        certificate: CertificateAssignment,
    ) -> Option<Configuration> {
        let a = self.appliances.get_mut(id)?;
        a.desired.version += 1;
        a.desired.certificate = Some(certificate);
        Some(a.desired.clone())
    }

    pub fn request_logs(&mut self, id: &str, names: Vec<String>) -> bool {
        self.appliances
            .get_mut(id)
            .map(|a| a.upload_logs.extend(names))
            .is_some()
    }

    pub fn add_code(&mut self, code: &str) {
        self.codes.entry(code.to_owned()).or_insert(None);
    }

    /// Makes `service`'s health endpoint (`GET /api/v1/health` on
    /// `<service>.<pod>`) answer `status`; 200 makes it healthy again.
    /// False when `service` is not one of [`api::SERVICES`] or `status` is
    /// not a final HTTP status (200 to 599).
    pub fn set_health(&mut self, service: &str, status: u16) -> bool {
        if !api::SERVICES.contains(&service) || !(200..=599).contains(&status) {
            return false;
        }
        if status == 200 {
            self.health.remove(service);
        } else {
            self.health.insert(service.to_owned(), status);
        }
        true
    }

    /// What the health endpoint of the host named in `host` (a `Host`
    /// header: `<service>.<pod>[:port]`) answers.
    fn health_status(&self, host: Option<&str>) -> u16 {
        let service = host.and_then(|h| h.split(['.', ':']).next()).unwrap_or("");
        self.health.get(service).copied().unwrap_or(200)
    }
}

pub struct SimOptions {
    pub pod: String,
    /// The HTTPS listener for every platform host (127.0.0.1:0 for a test).
    pub listen: SocketAddr,
    /// The admin interface (plain HTTP; loopback).
    pub admin: Option<SocketAddr>,
    pub codes: Vec<String>,
    /// The configuration given at registration.
    pub initial: BTreeMap<String, String>,
}

/// A running simulator; dropping it stops it (the ports close).
pub struct Sim {
    pub https: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// The CA that signed the HTTPS certificate, PEM.
    pub ca_pem: String,
    pub state: Arc<Mutex<SimState>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A CA and a certificate for every host of `pod` (and `localhost`).
pub fn certificates(pod: &str) -> Result<(String, rustls::ServerConfig), SimError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own per run: a client trusting another simulator's
    // CA then finds no issuer (UnknownIssuer, as with any unknown CA)
    // rather than a same-named CA whose signature does not match.
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("gateway platform simulator CA {:08x}", fastrand::u32(..)),
    );
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut names: Vec<String> = api::SERVICES.iter().map(|s| api::host(s, pod)).collect();
    names.push("localhost".into());
    let leaf = CertificateParams::new(names)?;
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &Issuer::from_params(&ca, &ca_key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    Ok((ca_cert.pem(), config))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })
}

impl Sim {
    pub async fn start(options: SimOptions) -> Result<Sim, SimError> {
        let (ca_pem, tls) = certificates(&options.pod)?;
        let state = Arc::new(Mutex::new(SimState {
            codes: options.codes.iter().map(|c| (c.clone(), None)).collect(),
            initial: options.initial,
            ..SimState::default()
        }));
        let https = bind(options.listen).await?;
        let https_addr = https.local_addr().map_err(|source| SimError::Bind {
            addr: options.listen,
            source,
        })?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let mut tasks = vec![tokio::spawn(accept_loop(
            https,
            state.clone(),
            move |s, state| {
                let acceptor = acceptor.clone();
                async move {
                    if let Ok(tls) = acceptor.accept(s).await {
                        serve_one(tls, |m| platform(&state, m)).await;
                    }
                }
            },
        ))];
        let mut admin_addr = None;
        if let Some(addr) = options.admin {
            let admin = bind(addr).await?;
            admin_addr = admin.local_addr().ok();
            tasks.push(tokio::spawn(accept_loop(
                admin,
                state.clone(),
                |s, state| async move {
                    serve_one(s, |m| admin_api(&state, m)).await;
                },
            )));
        }
        Ok(Sim {
            https: https_addr,
            admin: admin_addr,
            ca_pem,
            state,
            tasks,
        })
    }
}

async fn accept_loop<F, Fut>(listener: TcpListener, state: Arc<Mutex<SimState>>, f: F)
where
    F: Fn(tokio::net::TcpStream, Arc<Mutex<SimState>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    while let Ok((s, _)) = listener.accept().await {
        tokio::spawn(f(s, state.clone()));
    }
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    route: impl FnOnce(&Message) -> (u16, Vec<u8>),
) {
    let Ok(req) = http::read_request(&mut s).await else {
        return;
    };
    let (status, body) = route(&req);
    let _ = http::write_response(
        &mut s,
        status,
        &[("Content-Type", "application/json")],
        &body,
    )
    .await;
    let _ = s.shutdown().await;
}

fn json(status: u16, body: &impl Serialize) -> (u16, Vec<u8>) {
    (status, serde_json::to_vec(body).unwrap_or_default())
}

fn error(status: u16, code: &str, message: impl Into<String>) -> (u16, Vec<u8>) {
    json(status, &ErrorBody::new(code, message))
}

fn parse<'a, T: Deserialize<'a>>(m: &'a Message) -> Result<T, (u16, Vec<u8>)> {
    serde_json::from_slice(&m.body).map_err(|e| error(400, "malformed_request", e.to_string()))
}

/// The management API.
fn platform(state: &Mutex<SimState>, m: &Message) -> (u16, Vec<u8>) {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let path = m.second.as_str();
    let rest = path.strip_prefix(api::PREFIX).unwrap_or("");
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    let result = match (m.first.as_str(), parts.as_slice()) {
        ("GET", ["health"]) => match state.health_status(m.header("host")) {
            200 => Ok(json(200, &serde_json::json!({"status": "ok"}))),
            status => Err(error(
                status,
                "unhealthy",
                "this host was made unhealthy through the simulator's admin interface",
            )),
        },
        ("POST", ["appliances", "register"]) => register(&mut state, m),
        ("POST", ["appliances", id, what @ ("checkin" | "logs")]) => authorised(&mut state, id, m)
            .and_then(|a| match *what {
                "checkin" => checkin(a, m),
                _ => parse::<LogUpload>(m).map(|l| {
                    a.logs.push(l);
                    json(202, &serde_json::json!({}))
                }),
            }),
        _ => Err(error(
            404,
            "not_found",
            format!("no such resource: {} {path}", m.first),
        )),
    };
    result.unwrap_or_else(|e| e)
}

fn register(state: &mut SimState, m: &Message) -> Result<(u16, Vec<u8>), (u16, Vec<u8>)> {
    let req: RegisterRequest = parse(m)?;
    let code = req.personalization_code;
    match state.codes.get(&code) {
        None => {
            return Err(error(
                404,
                "unknown_personalization_code",
                format!("personalization code {code:?} is not known to this platform"),
            ))
        }
        Some(Some(id)) => {
            return Err(error(
                409,
                "already_registered",
                format!("personalization code {code:?} was used by appliance {id}"),
            ))
        }
        Some(None) => {}
    }
    let n = state.appliances.len() + 1;
    let id = format!("qgs-{n:04}-{:08x}", fastrand::u32(..));
    let token: String = (0..32).map(|_| fastrand::alphanumeric()).collect();
    let desired = Configuration {
        version: u64::from(!state.initial.is_empty()),
        values: state.initial.clone(),
        certificate: None,
    };
    let record = ApplianceRecord {
        id: id.clone(),
        name: format!("{}-{n}", req.hostname),
        personalization_code: code.clone(),
        token: token.clone(),
        desired: desired.clone(),
        checkins: 0,
        last_checkin: None,
        results: Vec::new(),
        logs: Vec::new(),
        upload_logs: Vec::new(),
    };
    let answer = RegisterResponse {
        appliance_id: id.clone(),
        name: record.name.clone(),
        token,
        configuration: desired,
    };
    state.codes.insert(code, Some(id.clone()));
    state.appliances.insert(id, record);
    Ok(json(201, &answer))
}

fn authorised<'a>(
    state: &'a mut SimState,
    id: &str,
    m: &Message,
) -> Result<&'a mut ApplianceRecord, (u16, Vec<u8>)> {
    let token = m
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    match state.appliances.get_mut(id) {
        Some(a) if Some(a.token.as_str()) == token => Ok(a),
        _ => Err(error(
            401,
            "unauthorized",
            "unknown appliance or wrong token",
        )),
    }
}

fn checkin(a: &mut ApplianceRecord, m: &Message) -> Result<(u16, Vec<u8>), (u16, Vec<u8>)> {
    let req: CheckinRequest = parse(m)?;
    a.checkins += 1;
    if let Some(r) = &req.configuration_result {
        a.results.push(r.clone());
    }
    let configuration = (a.desired.version > req.configuration_version).then(|| a.desired.clone());
    a.last_checkin = Some(req);
    Ok(json(
        200,
        &CheckinResponse {
            configuration,
            upload_logs: std::mem::take(&mut a.upload_logs),
        },
    ))
}

/// The admin interface: `GET /appliances`, `PUT /appliances/<id>/configuration`
/// (an object key -> value), `PUT /appliances/<id>/certificate`
/// (`{"chain","key"}`, PEM), `POST /appliances/<id>/logs` (a list of names),
/// `POST /codes` (a code as a JSON string), `PUT /health/<service>` (the
/// status, a JSON number, its health endpoint answers from then on).
fn admin_api(state: &Mutex<SimState>, m: &Message) -> (u16, Vec<u8>) {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let parts: Vec<&str> = m.second.split('/').skip(1).collect();
    let result = match (m.first.as_str(), parts.as_slice()) {
        ("GET", ["appliances"]) => Ok(json(200, &state.appliances())),
        ("PUT", ["appliances", id, "configuration"]) => parse(m).and_then(|values| {
            state
                .set_configuration(id, values)
                .map(|c| json(200, &c))
                .ok_or_else(|| error(404, "not_found", format!("no appliance {id}")))
        }),
        ("PUT", ["appliances", id, "certificate"]) => parse(m).and_then(|certificate| {
            state
                .assign_certificate(id, certificate)
                .map(|c| json(200, &c))
                .ok_or_else(|| error(404, "not_found", format!("no appliance {id}")))
        }),
        ("POST", ["appliances", id, "logs"]) => parse(m).and_then(|names| {
            if state.request_logs(id, names) {
                Ok(json(202, &serde_json::json!({})))
            } else {
                Err(error(404, "not_found", format!("no appliance {id}")))
            }
        }),
        ("PUT", ["health", service]) => parse::<u16>(m).and_then(|status| {
            if state.set_health(service, status) {
                Ok(json(200, &serde_json::json!({"service": service, "status": status})))
            } else {
                Err(error(
                    400,
                    "malformed_request",
                    format!(
                        "{service:?} {status}: the service is one of {} and the status from 200 to 599",
                        api::SERVICES.join(", ")
                    ),
                ))
            }
        }),
        ("POST", ["codes"]) => parse::<String>(m).map(|code| {
            state.add_code(&code);
            json(201, &serde_json::json!({}))
        }),
        _ => Err(error(404, "not_found", "no such admin resource")),
    };
    result.unwrap_or_else(|e| e)
}

/// `platform-sim --pod POD [--listen ADDR] [--admin ADDR] [--ca-out FILE]
/// [--code CODE]... [--set KEY=VALUE]...`: prints one line
/// `https=<addr> admin=<addr>` once listening, then serves until killed.
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    #[derive(Parser)]
    #[command(about = "The management platform's simulator (tests, evaluation)")]
    struct Cli {
        #[arg(long)]
        pod: String,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8444")]
        admin: SocketAddr,
        /// Where to write the CA certificate (PEM) for platform.ca_bundle.
        #[arg(long)]
        ca_out: Option<std::path::PathBuf>,
        /// A personalization code the platform accepts (repeat).
        #[arg(long = "code")]
        codes: Vec<String>,
        /// Initial configuration given at registration, KEY=VALUE (repeat).
        #[arg(long = "set")]
        initial: Vec<String>,
    }
    let cli = Cli::parse();
    let initial = cli
        .initial
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let run = async {
        let sim = Sim::start(SimOptions {
            pod: cli.pod,
            listen: cli.listen,
            admin: Some(cli.admin),
            codes: cli.codes,
            initial,
        })
        .await
        .map_err(|e| e.to_string())?;
        if let Some(path) = &cli.ca_out {
            std::fs::write(path, &sim.ca_pem).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        println!(
            "https={} admin={}",
            sim.https,
            sim.admin.map(|a| a.to_string()).unwrap_or_default()
        );
        let _ = tokio::signal::ctrl_c().await;
        Ok::<(), String>(())
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("platform-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("platform-sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
