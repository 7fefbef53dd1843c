//! `gateway-proxy`: runs the proxy with settings from its command line (init
//! passes them from the configuration store). Errors name the option.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use clap::Parser;

use gateway_forward_proxy::client::Admission;
use gateway_forward_proxy::config::{ProxyConfig, ToProxyConfig};
use gateway_forward_proxy::policy::{default_agent_networks, AllowedDomains, Mode, Policy};
use gateway_forward_proxy::stats::Stats;
use gateway_forward_proxy::upstream::{Credentials, Secret, Upstream};
use gateway_resolver::Resolver;

use crate::server::{serve, serve_with};

#[derive(Debug, Parser)]
#[command(
    name = "gateway-proxy",
    version,
    about = "The gateway appliance's explicit forward proxy"
)]
struct Args {
    /// Settings from this JSON file instead of the options below (see
    /// docs/proxy.md); re-read on SIGHUP without dropping tunnels.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["allowed", "hosts", "patch", "agent_networks", "upstream"])]
    config: Option<PathBuf>,
    /// Address and port to listen on.
    #[arg(long, default_value_t = gateway_unit_settings::proxy::default_listen())]
    listen: SocketAddr,
    /// An allowed destination domain beyond the platform's, `name` or
    /// `name:port` (the port then may be used too); up to 10.
    #[arg(long = "allow", value_name = "DOMAIN[:PORT]")]
    allowed: Vec<String>,
    /// A static host entry `name=ip`, used instead of DNS.
    #[arg(long = "host", value_name = "NAME=IP", value_parser = parse_host_entry)]
    hosts: Vec<(String, IpAddr)>,
    /// resolv.conf naming the DNS servers for destinations (a missing file:
    /// the --host entries alone).
    #[arg(long, value_name = "FILE", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Patch mode: any destination, clients limited to the agent networks.
    #[arg(long)]
    patch: bool,
    /// Agent networks (CIDR) allowed in patch mode; default RFC 1918 + loopback.
    #[arg(long = "agent-network", value_name = "CIDR")]
    agent_networks: Vec<ipnet::IpNet>,
    /// Seconds a client has to send its request head.
    #[arg(long, default_value_t = 10)]
    head_timeout: u64,
    /// Seconds a tunnel may stay without traffic.
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// Upstream proxy `host:port` that tunnels and requests go through.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_upstream)]
    upstream: Option<(String, u16)>,
    /// User for the upstream proxy (Basic authentication).
    #[arg(long, requires = "upstream")]
    upstream_user: Option<String>,
    /// File holding the upstream proxy's password (a file, never the command
    /// line, which every local user can read).
    #[arg(long, requires = "upstream_user")]
    upstream_password_file: Option<std::path::PathBuf>,
    /// A destination domain that goes direct, not through the upstream (repeat).
    #[arg(long = "upstream-bypass", value_name = "DOMAIN", requires = "upstream")]
    upstream_bypass: Vec<String>,
    /// Connections served at once; above it clients get 503.
    #[arg(long, default_value_t = 16_384)]
    max_connections: usize,
}

fn parse_host_entry(s: &str) -> Result<(String, IpAddr), String> {
    let (name, ip) = s
        .split_once('=')
        .ok_or_else(|| format!("--host {s:?}: expected name=ip"))?;
    let ip = ip
        .parse()
        .map_err(|_| format!("--host {s:?}: {ip:?} is not an IP address"))?;
    if name.is_empty() {
        return Err(format!("--host {s:?}: the name is empty"));
    }
    Ok((name.to_ascii_lowercase(), ip))
}

fn parse_upstream(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("--upstream {s:?}: expected host:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("--upstream {s:?}: the port must be 1-65535"))?;
    if host.is_empty() {
        return Err(format!("--upstream {s:?}: the host is empty"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    gateway_unit_main::runtime(None).map_err(|e| {
        eprintln!("gateway-proxy: {e}");
        ExitCode::FAILURE
    })
}

/// Logs to stderr as init collects them from a unit (the cache's too).
pub fn init_logging() {
    gateway_unit_main::init_logging();
}

pub fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    if let Some(path) = args.config.clone() {
        return run_with_file(path);
    }
    let allowed = match AllowedDomains::parse(args.allowed.iter().map(String::as_str)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gateway-proxy: --allow: {e}");
            return ExitCode::from(2);
        }
    };
    let upstream = match args.upstream {
        None => None,
        Some((host, port)) => {
            let credentials = match (args.upstream_user, args.upstream_password_file) {
                (None, _) => None,
                (Some(user), None) => Some(Credentials {
                    user,
                    password: Secret::new(""),
                }),
                (Some(user), Some(path)) => match std::fs::read_to_string(&path) {
                    Ok(p) => Some(Credentials {
                        user,
                        password: Secret::new(p.trim_end_matches(['\r', '\n'])),
                    }),
                    Err(e) => {
                        eprintln!(
                            "gateway-proxy: --upstream-password-file {}: {e}",
                            path.display()
                        );
                        return ExitCode::from(2);
                    }
                },
            };
            Some(Upstream {
                host,
                port,
                credentials,
                bypass: args.upstream_bypass,
            })
        }
    };
    let hosts = args.hosts.into_iter().collect::<HashMap<_, _>>();
    let resolver = if args.resolv_conf.exists() {
        match Resolver::from_resolv_conf(&args.resolv_conf, hosts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("gateway-proxy: --resolv-conf {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        Resolver::hosts_only(hosts)
    };
    let mode = if args.patch { Mode::Patch } else { Mode::Cache };
    let networks = if args.agent_networks.is_empty() {
        default_agent_networks()
    } else {
        args.agent_networks
    };
    let config = ProxyConfig {
        policy: Policy::new(mode, allowed, networks),
        resolver,
        head_timeout: Duration::from_secs(args.head_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_connections: args.max_connections,
        upstream,
        ..ProxyConfig::default()
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gateway-proxy: listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        // The bound address: with port 0 the system chose it.
        let bound = listener.local_addr().unwrap_or(args.listen);
        tracing::info!("listening on {bound}");
        // On a worker, as with --config: the thread that blocks on this
        // future is not one, and accepting there would hand every new
        // connection to a worker across threads (a wake-up each).
        match tokio::spawn(serve(
            listener,
            Arc::new(config),
            Arc::new(Stats::default()),
        ))
        .await
        {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("gateway-proxy: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("gateway-proxy: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `--config FILE`: settings from the file, re-read on SIGHUP. A reload
/// applies new settings to new connections; established tunnels keep
/// running. A new listen address is bound before the old one is closed;
/// when anything in the new file is wrong, nothing of it is applied.
fn run_with_file(path: PathBuf) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        // The handler first, the file after: init starts a unit with SIGHUP
        // ignored, so a reload sent before this point is lost, and only a
        // file read after it is sure to be the newest.
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("gateway-proxy: watch SIGHUP: {e}");
                return ExitCode::FAILURE;
            }
        };
        let settings = match crate::settings::load(&path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("gateway-proxy: --config {e}");
                return ExitCode::from(2);
            }
        };
        let config = match settings.to_config() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("gateway-proxy: --config {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let mut listen = settings.listen;
        let listener = match TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gateway-proxy: listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let slots = Admission::new(config.max_connections, config.max_connections_per_client);
        let stats = Arc::new(Stats::default());
        let (configs, rx) = watch::channel(Arc::new(config));
        let mut accepting = tokio::spawn(serve_with(listener, rx.clone(), slots.clone(), stats.clone()));
        tracing::info!("listening on {listen}");
        loop {
            hup.recv().await;
            let new = match crate::settings::load(&path).and_then(|s| s.to_config().map(|c| (s, c))) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("reload: {e}; keeping the running configuration");
                    continue;
                }
            };
            let (settings, config) = new;
            if settings.listen != listen {
                match TcpListener::bind(settings.listen).await {
                    Ok(l) => {
                        let new_accepting = tokio::spawn(serve_with(l, rx.clone(), slots.clone(), stats.clone()));
                        let old = std::mem::replace(&mut accepting, new_accepting);
                        // Closed before we say so: the old port refuses from now on.
                        old.abort();
                        let _ = old.await;
                        tracing::info!("now listening on {} instead of {listen}", settings.listen);
                        listen = settings.listen;
                    }
                    Err(e) => {
                        tracing::error!(
                            "reload: listen on {}: {e}; keeping the running configuration on {listen}",
                            settings.listen
                        );
                        continue;
                    }
                }
            }
            configs.send_replace(Arc::new(config));
            tracing::info!("reload: configuration applied from {}", path.display());
        }
    })
}
