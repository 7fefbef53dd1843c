//! The agent against the platform simulator on loopback, with a fake PID 1
//! (gateway-control's server and a handler that validates changes with the
//! real configuration rules). Everything a test starts is dropped with it.

#[path = "../../proxy/tests/common/squid.rs"]
#[allow(dead_code)]
mod squid;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_agent::settings::{AgentSettings, UpstreamSettings};
use gateway_agent::Agent;
use gateway_config::Config;
use gateway_control::protocol::{
    CaInfo, CacheStats, LogLines, PlatformStatus, ProxyTestResult, SetResult, Stats, Status,
};
use gateway_control::server::Handler;
use gateway_control::{ApiError, Client, ClientError, Request, Response};
use gateway_management_api::api::{self, CertificateAssignment, ConfigurationResult};
use gateway_platform_sim::{ApplianceRecord, Sim, SimOptions};

const POD: &str = "sim.test";

/// PID 1 as far as the agent sees it: a configuration changed by `set`
/// under the real rules.
struct FakePid1 {
    config: Mutex<Config>,
    sets: Mutex<u32>,
    /// The chains `ca_install` accepted, in order.
    installed: Mutex<Vec<String>>,
    /// The cache section of `stats` (None: the cache unit not active).
    cache: Mutex<Option<CacheStats>>,
}

impl Handler for FakePid1 {
    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Status => Response::ok(Status {
                hostname: "gw-test".into(),
                ..Status::default()
            }),
            Request::Stats => Response::ok(Stats {
                uptime_s: 42,
                cache: self.cache.lock().unwrap().clone(),
                ..Stats::default()
            }),
            Request::Logs { name, .. } => Response::ok(LogLines {
                name,
                lines: vec!["line two".into(), "line one".into()],
            }),
            Request::Set { values } => {
                *self.sets.lock().unwrap() += 1;
                let mut config = self.config.lock().unwrap();
                let changes: Vec<_> = values.into_iter().collect();
                match config.with_changes(&changes) {
                    Ok(next) => {
                        let changed = config
                            .changed_keys(&next)
                            .iter()
                            .map(|k| k.to_string())
                            .collect();
                        *config = next;
                        Response::ok(SetResult {
                            changed,
                            applied: vec![],
                        })
                    }
                    Err(e) => Response::error(ApiError::for_key(e.key, e.message)),
                }
            }
            // PID 1's real checks run gateway-cache (tested there): here a
            // key that is not a key is the refusal.
            Request::CaInstall { chain, key } => {
                if !key.contains("PRIVATE KEY") {
                    return Response::error(ApiError::new(
                        "the key does not match the certificate",
                    ));
                }
                self.installed.lock().unwrap().push(chain.clone());
                Response::ok(CaInfo {
                    pem: chain,
                    fingerprint_sha256: "AB:CD".into(),
                })
            }
            _ => Response::error(ApiError::new("not in this test")),
        }
    }
}

struct Setup {
    dir: tempfile::TempDir,
    pid1: Arc<FakePid1>,
    agent: Arc<Agent>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn sim(codes: &[&str], initial: &[(&str, &str)]) -> Sim {
    Sim::start(SimOptions {
        pod: POD.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        codes: codes.iter().map(|c| c.to_string()).collect(),
        initial: initial
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
    .await
    .unwrap()
}

fn settings(dir: &Path, port: u16, ca: &str) -> AgentSettings {
    AgentSettings {
        pod: Some(POD.into()),
        port,
        checkin_interval_s: 1,
        ca_bundle: Some(ca.into()),
        upstream: None,
        hosts: api::SERVICES
            .iter()
            .map(|s| (api::host(s, POD), "127.0.0.1".parse().unwrap()))
            .collect(),
        resolv_conf: dir.join("no-resolv.conf"),
        control_socket: dir.join("control.sock"),
        state_dir: dir.join("state"),
        socket: dir.join("agent.sock"),
        socket_fd: None,
    }
}

async fn start(edit: impl FnOnce(&mut AgentSettings), sim: &Sim) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pid1 = Arc::new(FakePid1 {
        config: Mutex::new(Config::default()),
        sets: Mutex::new(0),
        installed: Mutex::new(Vec::new()),
        cache: Mutex::new(None),
    });
    let mut s = settings(dir.path(), sim.https.port(), &sim.ca_pem);
    edit(&mut s);
    let listener = gateway_control::server::bind(&s.control_socket).unwrap();
    let mut tasks = vec![tokio::spawn(gateway_control::server::serve(
        listener,
        pid1.clone(),
    ))];
    let agent = Agent::new(s).unwrap();
    let runner = agent.clone();
    tasks.push(tokio::spawn(async move {
        runner.run().await.unwrap();
    }));
    let sock = dir.path().join("agent.sock");
    wait_for("the agent's socket", || sock.exists()).await;
    Setup {
        dir,
        pid1,
        agent,
        tasks,
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request on the agent's socket, the way PID 1 forwards it.
async fn call(setup: &Setup, request: Request) -> Result<PlatformStatus, ClientError> {
    call_as(setup, request).await
}

async fn call_as<T: serde::de::DeserializeOwned + Send + 'static>(
    setup: &Setup,
    request: Request,
) -> Result<T, ClientError> {
    let path: PathBuf = setup.dir.path().join("agent.sock");
    tokio::task::spawn_blocking(move || {
        Client::connect(&path, Duration::from_secs(60))?.call_as(&request)
    })
    .await
    .unwrap()
}

fn register(code: &str) -> Request {
    Request::Register { code: code.into() }
}

fn appliance(sim: &Sim) -> ApplianceRecord {
    sim.state.lock().unwrap().appliances()[0].clone()
}

/// A change made in the platform, and what the appliance reported of it.
async fn change(sim: &Sim, id: &str, key: &str, value: &str, version: u64) -> ConfigurationResult {
    let values = [(key.to_owned(), value.to_owned())].into();
    let desired = sim
        .state
        .lock()
        .unwrap()
        .set_configuration(id, values)
        .unwrap();
    assert_eq!(desired.version, version);
    let reported = || {
        appliance(sim)
            .results
            .into_iter()
            .find(|r| r.version == version)
    };
    wait_for("the outcome reported", || reported().is_some()).await;
    reported().unwrap()
}

fn proxy_port(setup: &Setup) -> u16 {
    setup.pid1.config.lock().unwrap().proxy.port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_checks_in_applies_and_reports_refused_configuration() {
    let sim = sim(&["abc-123"], &[("proxy.port", "1081")]).await;
    let s = start(|_| {}, &sim).await;

    // The code is checked before anything is sent, then by the platform.
    let e = call(&s, register("ABC")).await.unwrap_err().to_string();
    assert!(e.starts_with("code: a personalization code is"), "{e}");
    let e = call(&s, register("nope-1")).await.unwrap_err().to_string();
    assert!(
        e.contains("404") && e.contains("not known to this platform"),
        "{e}"
    );

    let status = call(&s, register("abc-123")).await.unwrap();
    assert!(status.registered);
    assert_eq!(status.connectivity.len(), 5);
    assert!(
        status
            .connectivity
            .iter()
            .all(|c| c.ok && c.result == "HTTP 200 OK"),
        "{status:?}"
    );
    let id = status.appliance_id.clone().unwrap();
    assert_eq!(appliance(&sim).id, id);
    assert_eq!(status.appliance_name.as_deref(), Some("gw-test-1"));
    // The initial configuration went through `set`.
    assert_eq!(proxy_port(&s), 1081);
    let e = call(&s, register("abc-123")).await.unwrap_err().to_string();
    assert!(e.contains("already registered"), "{e}");

    // Kept private on the state partition.
    let file = s.dir.path().join("state/registration.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A change in the platform arrives at the next check-in.
    let r = change(&sim, &id, "proxy.port", "3128", 2).await;
    assert_eq!(proxy_port(&s), 3128);
    let a = appliance(&sim);
    assert!(r.applied && r.changed == ["proxy.port"], "{r:?}");
    let last = a.last_checkin.unwrap();
    assert_eq!(last.status["hostname"], "gw-test");
    assert_eq!(last.stats["uptime_s"], 42);

    // A value the rules refuse: nothing changes, the key and rule go back.
    let r = change(&sim, &id, "proxy.port", "22", 3).await;
    let err = r.error.unwrap();
    assert!(!r.applied);
    assert_eq!(err.key.as_deref(), Some("proxy.port"));
    assert!(err.message.contains("except 22"), "{err}");
    assert_eq!(proxy_port(&s), 3128);

    // A key the platform may not set is refused by the agent itself.
    let sets = *s.pid1.sets.lock().unwrap();
    let r = change(&sim, &id, "net.mode", "static", 4).await;
    assert_eq!(r.error.unwrap().key.as_deref(), Some("net.mode"));
    assert_eq!(*s.pid1.sets.lock().unwrap(), sets, "nothing reached PID 1");

    // Logs on request.
    sim.state
        .lock()
        .unwrap()
        .request_logs(&id, vec!["proxy".into()]);
    wait_for("the log upload", || !appliance(&sim).logs.is_empty()).await;
    assert_eq!(appliance(&sim).logs[0].lines, ["line two", "line one"]);

    let status = call(&s, Request::Platform { check: false }).await.unwrap();
    assert!(status.last_checkin_result.unwrap().starts_with("ok"));
    assert!(status.last_checkin_unix.is_some());
}

/// Waits for a check-in after those counted so far; what it reported.
async fn next_checkin(sim: &Sim) -> api::CheckinRequest {
    let seen = appliance(sim).checkins;
    wait_for("the next check-in", || appliance(sim).checkins > seen).await;
    appliance(sim).last_checkin.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_in_carries_the_cache_statistics_while_the_cache_gives_them() {
    let sim = sim(&["abc-123"], &[]).await;
    let s = start(|_| {}, &sim).await;
    *s.pid1.cache.lock().unwrap() = Some(CacheStats {
        hits: 30,
        misses: 10,
        hit_ratio: 0.75,
        bytes_from_cache: 3 << 30,
        bytes_from_origin: 1 << 30,
        memory_objects: 120,
        memory_bytes: 64 << 20,
        disk_objects: 9,
        disk_bytes: 2 << 30,
        active_agents: 17,
        ..CacheStats::default()
    });
    assert!(call(&s, register("abc-123")).await.unwrap().registered);
    let last = next_checkin(&sim).await;
    // What the platform got, field by field as the platform reads them
    // (docs/management-api.md).
    let cache = &last.stats["cache"];
    assert_eq!(cache["hit_ratio"], 0.75, "{cache}");
    assert_eq!(cache["bytes_from_cache"], 3u64 << 30);
    assert_eq!(cache["bytes_from_origin"], 1u64 << 30);
    assert_eq!(cache["active_agents"], 17);
    assert_eq!(
        (
            cache["memory_objects"].as_u64(),
            cache["memory_bytes"].as_u64()
        ),
        (Some(120), Some(64 << 20))
    );
    assert_eq!(
        (cache["disk_objects"].as_u64(), cache["disk_bytes"].as_u64()),
        (Some(9), Some(2 << 30))
    );
    assert_eq!(
        (cache["hits"].as_u64(), cache["misses"].as_u64()),
        (Some(30), Some(10))
    );
    assert_eq!(
        last.stats["uptime_s"], 42,
        "the rest of the stats as before"
    );

    // The cache stopped: PID 1 leaves the section out, and the check-in
    // says so (null) instead of repeating old figures.
    *s.pid1.cache.lock().unwrap() = None;
    // A check-in may already be under way with the old stats: the one
    // after it asked PID 1 again.
    next_checkin(&sim).await;
    let last = next_checkin(&sim).await;
    assert!(last.stats["cache"].is_null(), "{}", last.stats);
    assert_eq!(last.stats["uptime_s"], 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_down_means_backoff_and_the_last_configuration_kept() {
    let sim = sim(&["abc-123"], &[("proxy.port", "1081")]).await;
    let s = start(|_| {}, &sim).await;
    call(&s, register("abc-123")).await.unwrap();
    wait_for("a check-in", || appliance(&sim).checkins >= 1).await;
    let port = sim.https.port();
    drop(sim);
    // When each failure in a row is seen.
    let mut seen: Vec<Instant> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while seen.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} failed check-ins",
            seen.len()
        );
        let failures = s.agent.status().await.checkin_failures as usize;
        while seen.len() < failures {
            seen.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = s.agent.status().await;
    let result = status.last_checkin_result.unwrap();
    assert!(
        result.contains(&format!("camspm.{POD}: TCP refused by 127.0.0.1:{port}")),
        "{result}"
    );
    // Backoff from a 1 s interval: 1, 2, 4, 8 s steps, each at least
    // halved by the jitter: 7.5 s at least (a fixed interval: 4 s).
    let span = seen[4] - seen[0];
    assert!(span >= Duration::from_millis(7300), "{span:?}");
    assert_eq!(proxy_port(&s), 1081, "the last configuration is kept");
    assert!(status.registered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_in_words() {
    let sim = sim(&["abc-123"], &[]).await;
    let other = self::sim(&[], &[]).await;
    let s = start(|st| st.ca_bundle = Some(other.ca_pem.clone()), &sim).await;
    let status = call(&s, Request::Platform { check: true }).await.unwrap();
    assert_eq!(status.connectivity.len(), 5);
    for c in &status.connectivity {
        assert!(!c.ok);
        assert_eq!(
            c.result,
            "TLS failure: invalid peer certificate: UnknownIssuer"
        );
    }
    let e = call(&s, register("abc-123")).await.unwrap_err().to_string();
    assert!(
        e.contains("connectivity check failed, not registering"),
        "{e}"
    );
    assert!(sim.state.lock().unwrap().appliances().is_empty());
    // Without the bundle, the built-in roots do not know the simulator either.
    let s2 = start(|st| st.ca_bundle = None, &sim).await;
    let status = call(&s2, Request::Platform { check: true }).await.unwrap();
    assert!(
        status
            .connectivity
            .iter()
            .all(|c| c.result.contains("UnknownIssuer")),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_an_upstream_proxy_with_basic_authentication() {
    let sim = sim(&["abc-123"], &[("proxy.port", "1081")]).await;
    let squid = tokio::task::spawn_blocking(move || {
        let names: Vec<String> = api::SERVICES.iter().map(|s| api::host(s, POD)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        squid::start_squid(Some(("agent", "s3cret")), &names)
    })
    .await
    .unwrap();
    let upstream = |password: &str| UpstreamSettings {
        host: "127.0.0.1".into(),
        port: squid.port,
        user: Some("agent".into()),
        password: Some(gateway_config::Secret::new(password)),
        bypass: Vec::new(),
    };
    // The agent's hosts map is empty: only the proxy resolves the names.
    let wrong = start(
        |st| {
            st.hosts = BTreeMap::new();
            st.upstream = Some(upstream("wrong"));
        },
        &sim,
    )
    .await;
    let status = call(&wrong, Request::Platform { check: true })
        .await
        .unwrap();
    assert!(
        status.connectivity.iter().all(
            |c| c.result == "upstream proxy refused CONNECT: 407 Proxy Authentication Required"
        ),
        "{status:?}"
    );
    // The proxy test names the step that failed.
    let test: ProxyTestResult = call_as(&wrong, Request::ProxyTest).await.unwrap();
    assert!(!test.ok, "{test:?}");
    assert_eq!(test.proxy, format!("127.0.0.1:{}", squid.port));
    let results: Vec<(bool, &str)> = test
        .steps
        .iter()
        .map(|s| (s.ok, s.result.as_str()))
        .collect();
    assert_eq!(
        results,
        [
            (true, "OK"),
            (
                false,
                "upstream proxy refused CONNECT: 407 Proxy Authentication Required"
            ),
            (false, "not tried"),
            (false, "not tried"),
        ]
    );
    let s = start(
        |st| {
            st.hosts = BTreeMap::new();
            st.upstream = Some(upstream("s3cret"));
        },
        &sim,
    )
    .await;
    let test: ProxyTestResult = call_as(&s, Request::ProxyTest).await.unwrap();
    assert!(test.ok, "{test:?}");
    assert_eq!(test.steps.len(), 4);
    assert!(
        test.steps.iter().all(|s| s.ok && s.result == "OK"),
        "{test:?}"
    );
    assert_eq!(
        test.target,
        format!("https://qagpublic.{POD}:{}/api/v1/health", sim.https.port())
    );
    let status = call(&s, register("abc-123")).await.unwrap();
    assert!(status.registered, "{status:?}");
    assert_eq!(proxy_port(&s), 1081);
    wait_for("a check-in", || appliance(&sim).checkins >= 1).await;

    // Without an upstream proxy there is nothing to test: the key says why.
    let direct = start(|_| {}, &sim).await;
    let e = call_as::<ProxyTestResult>(&direct, Request::ProxyTest)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("upstream.proxy: no upstream proxy is set"),
        "{e}"
    );
}

/// A certificate assigned in the platform, and what the appliance reported.
async fn assign(sim: &Sim, id: &str, chain: &str, key: &str, version: u64) -> ConfigurationResult {
    let desired = sim
        .state
        .lock()
        .unwrap()
        .assign_certificate(
            id,
            CertificateAssignment {
                chain: chain.into(),
                key: key.into(),
            },
        )
        .unwrap();
    assert_eq!(desired.version, version);
    let reported = || {
        appliance(sim)
            .results
            .into_iter()
            .find(|r| r.version == version)
    };
    wait_for("the outcome reported", || reported().is_some()).await;
    reported().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_assigned_in_the_platform_is_installed_once_and_a_bad_one_refused() {
    let sim = sim(&["abc-123"], &[]).await;
    let s = start(|_| {}, &sim).await;
    let status = call(&s, register("abc-123")).await.unwrap();
    let id = status.appliance_id.unwrap();
    let chain = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    let r = assign(&sim, &id, chain, key, 1).await;
    assert!(r.applied, "{r:?}");
    assert_eq!(r.changed, ["certificate"]);
    assert_eq!(*s.pid1.installed.lock().unwrap(), [chain]);

    // A later change carries the same certificate: not installed again
    // (an install restarts the cache).
    let r = change(&sim, &id, "proxy.port", "3128", 2).await;
    assert!(r.applied, "{r:?}");
    assert_eq!(r.changed, ["proxy.port"]);
    assert_eq!(s.pid1.installed.lock().unwrap().len(), 1);

    // A refused certificate refuses the configuration, with the reason;
    // nothing else of it is applied.
    let other = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
    let sets = *s.pid1.sets.lock().unwrap();
    let r = assign(&sim, &id, other, "not a key", 3).await;
    assert!(!r.applied, "{r:?}");
    let e = r.error.unwrap();
    assert_eq!(e.key.as_deref(), Some("certificate"));
    assert!(e.message.contains("does not match"), "{e}");
    assert_eq!(*s.pid1.sets.lock().unwrap(), sets);
    assert_eq!(s.pid1.installed.lock().unwrap().len(), 1);
    // The key never reaches the agent's log or its state file.
    let state = std::fs::read_to_string(s.dir.path().join("state/registration.json")).unwrap();
    assert!(!state.contains("PRIVATE KEY"), "{state}");
}

/// The connectivity check's words for each way a platform host can fail,
/// one host each in the same check (so each result is its own host's):
/// a health endpoint answering 503, a name the hosts map does not have
/// (and no name server: nothing leaves loopback), a closed loopback port,
/// a certificate from a CA the appliance does not trust; and one host
/// that answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_platform_url_failing_is_reported_in_its_own_words() {
    let sim = sim(&["abc-123"], &[]).await;
    let port = sim.https.port();
    // Another CA's simulator on 127.0.0.3, same port: all of 127/8 is
    // loopback, and the port is free there since 127.0.0.1 holds it.
    let untrusted = Sim::start(SimOptions {
        pod: POD.into(),
        listen: format!("127.0.0.3:{port}").parse().unwrap(),
        admin: None,
        codes: vec![],
        initial: BTreeMap::new(),
    })
    .await
    .unwrap();
    assert_ne!(untrusted.ca_pem, sim.ca_pem);
    assert!(sim.state.lock().unwrap().set_health("qagpublic", 503));
    let at = |service: &str, ip: &str| (api::host(service, POD), ip.parse().unwrap());
    let s = start(
        |st| {
            st.hosts = [
                at("qagpublic", "127.0.0.1"),
                // camspublic: not in the map, and no resolv.conf.
                // Nothing listens on 127.0.0.2: the kernel refuses.
                at("camspm", "127.0.0.2"),
                at("camsrepo", "127.0.0.3"),
                at("cask", "127.0.0.1"),
            ]
            .into();
        },
        &sim,
    )
    .await;
    let url = |service: &str| format!("https://{}:{port}/api/v1/health", api::host(service, POD));
    let expected = [
        (
            url("qagpublic"),
            false,
            "HTTP 503 Service Unavailable".to_owned(),
        ),
        (
            url("camspublic"),
            false,
            format!("DNS failure: cannot resolve camspublic.{POD}: no name server is configured"),
        ),
        (
            url("camspm"),
            false,
            format!("TCP refused by 127.0.0.2:{port}"),
        ),
        (
            url("camsrepo"),
            false,
            "TLS failure: invalid peer certificate: UnknownIssuer".to_owned(),
        ),
        (url("cask"), true, "HTTP 200 OK".to_owned()),
    ];
    let seen = |status: &PlatformStatus| -> Vec<(String, bool, String)> {
        status
            .connectivity
            .iter()
            .map(|c| (c.url.clone(), c.ok, c.result.clone()))
            .collect()
    };
    let status = call(&s, Request::Platform { check: true }).await.unwrap();
    assert_eq!(seen(&status), expected);

    // Registration names each failure and sends nothing.
    let e = call(&s, register("abc-123")).await.unwrap_err().to_string();
    for (url, _, result) in &expected[..4] {
        assert!(e.contains(&format!("{url}: {result}")), "{e}");
    }
    assert!(!e.contains(&expected[4].0), "{e}");
    assert!(sim.state.lock().unwrap().appliances().is_empty());

    // The switch goes back: qagpublic answers 200 again.
    assert!(sim.state.lock().unwrap().set_health("qagpublic", 200));
    let status = call(&s, Request::Platform { check: true }).await.unwrap();
    let mut healed = expected.clone();
    healed[0] = (url("qagpublic"), true, "HTTP 200 OK".to_owned());
    assert_eq!(seen(&status), healed);
    // Only the services of a POD and final statuses are switches.
    let mut state = sim.state.lock().unwrap();
    assert!(!state.set_health("www", 503));
    assert!(!state.set_health("cask", 99));
}

/// One platform-pushed value of `key`: what the appliance reported and its
/// configuration after.
async fn push(
    sim: &Sim,
    s: &Setup,
    id: &str,
    key: &str,
    value: &str,
    version: u64,
) -> (ConfigurationResult, Config) {
    let r = change(sim, id, key, value, version).await;
    (r, s.pid1.config.lock().unwrap().clone())
}

/// Every service key the platform may set, beyond proxy.port: a bad value
/// is refused by PID 1's rules with exactly the error a local change of it
/// gets, reported with its key, and the appliance keeps its whole last good
/// configuration; a good value is applied, that key alone changed; a
/// configuration with one bad value among good ones is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_keys_from_the_platform_get_the_local_rules_and_are_applied() {
    let sim = sim(&["abc-123"], &[]).await;
    let s = start(|_| {}, &sim).await;
    let id = call(&s, register("abc-123"))
        .await
        .unwrap()
        .appliance_id
        .unwrap();
    let defaults = Config::default();
    // (key, refused, accepted): each refusal a different rule.
    let cases = [
        // The cross-key rule: the proxy's port (1080 by default).
        ("cache.port", "1080", "8443"),
        ("cache.enabled", "yes", "false"),
        ("patch.enabled", "on", "true"),
        (
            "allowed_domains",
            "example.com,https://x.com",
            "example.com,10.1.2.3:8443",
        ),
        ("tls.min_version", "1.1", "1.3"),
    ];
    let mut version = 0;
    for (key, bad, good) in cases {
        assert_ne!(defaults.get(key).unwrap(), good, "{key}: not a change");
        let before = s.pid1.config.lock().unwrap().clone();
        let local = before.with_changes(&[(key, bad)]).unwrap_err();
        let sets = *s.pid1.sets.lock().unwrap();

        version += 1;
        let (r, after) = push(&sim, &s, &id, key, bad, version).await;
        assert!(!r.applied && r.changed.is_empty(), "{key}={bad}: {r:?}");
        let e = r.error.unwrap();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert_eq!(e.message, local.message, "{key}={bad}");
        // PID 1 was asked (its rules refused, not the agent's).
        assert_eq!(*s.pid1.sets.lock().unwrap(), sets + 1, "{key}={bad}");
        assert_eq!(after, before, "{key}={bad} changed the configuration");

        // The fix replaces the bad value in the platform's desired set.
        version += 1;
        let (r, after) = push(&sim, &s, &id, key, good, version).await;
        assert!(r.applied && r.error.is_none(), "{key}={good}: {r:?}");
        assert_eq!(r.changed, [key]);
        assert_eq!(after.get(key).unwrap(), good);
        assert_eq!(after, before.with_changes(&[(key, good)]).unwrap());
    }
    let good = s.pid1.config.lock().unwrap().clone();
    assert_eq!(good.cache.port, 8443);
    assert!(!good.cache.enabled && good.patch.enabled);

    // All or nothing: a good cache.port with a bad allowed_domains.
    let values = [
        ("cache.port".to_owned(), "9090".to_owned()),
        ("allowed_domains".to_owned(), "www.example.com".to_owned()),
    ]
    .into();
    let desired = sim
        .state
        .lock()
        .unwrap()
        .set_configuration(&id, values)
        .unwrap();
    version += 1;
    assert_eq!(desired.version, version);
    wait_for("the outcome reported", || {
        appliance(&sim).results.iter().any(|r| r.version == version)
    })
    .await;
    let r = appliance(&sim)
        .results
        .into_iter()
        .find(|r| r.version == version)
        .unwrap();
    assert!(!r.applied, "{r:?}");
    assert_eq!(r.error.unwrap().key.as_deref(), Some("allowed_domains"));
    assert_eq!(*s.pid1.config.lock().unwrap(), good, "a part was applied");
}
