//! `gateway-cache run --config FILE`: opens the CA (generating it at first
//! start), the tiers, and serves; SIGHUP reads the settings and the CA again.
//! A bad file or CA leaves the running service as it was, and the log says
//! why. The tiers (`memory_bytes`, `disk_*`) and `max_connections` are read
//! at start only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use gateway_forward_proxy::client::Admission;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::leaf::Leaves;
use crate::server::{serve, Service};
use crate::settings::{CacheSettings, ToCacheConfig};
use crate::stats::CacheStats;
use crate::store::Store;

/// A service from settings, with the CA of its `ca_dir`, sharing the store
/// and counters of the one it replaces.
pub fn service(
    settings: &CacheSettings,
    store: Arc<Store>,
    stats: Arc<gateway_forward_proxy::stats::Stats>,
    cache_stats: Arc<CacheStats>,
) -> Result<Service, String> {
    let config = settings.to_config().map_err(|e| e.to_string())?;
    let ca = crate::ca::load_or_generate(&settings.cache.ca_dir, SystemTime::now())
        .map_err(|e| format!("CA in {}: {e}", settings.cache.ca_dir.display()))?;
    let leaves = Leaves::new(Arc::new(ca), config.min_version, settings.cache.leaf_cache)
        .map_err(|e| e.to_string())?;
    Ok(Service {
        config,
        leaves: Arc::new(leaves),
        store,
        stats,
        cache_stats,
    })
}

/// The store the settings ask for (memory budget, disk tier).
pub fn store(settings: &CacheSettings) -> Result<Arc<Store>, String> {
    let c = &settings.cache;
    let disk = match &c.disk_dir {
        None => None,
        Some(dir) => Some(
            crate::disk::Disk::open(dir, c.disk_reserve_bytes, c.disk_max_bytes)
                .map_err(|e| format!("disk_dir {}: {e}", dir.display()))?,
        ),
    };
    Ok(Store::new(c.memory_bytes, disk))
}

fn load(path: &Path) -> Result<CacheSettings, String> {
    crate::settings::load(path).map_err(|e| e.to_string())
}

pub fn run(path: PathBuf) -> Result<(), ExitCode> {
    let runtime = gateway_unit_main::runtime(None).map_err(|e| {
        eprintln!("gateway-cache: {e}");
        ExitCode::FAILURE
    })?;
    runtime.block_on(async move {
        let fail = |e: String| {
            eprintln!("gateway-cache: {e}");
            ExitCode::FAILURE
        };
        // The handler first, the file after: init starts a unit with SIGHUP
        // ignored, so a reload sent before this point is lost, and only a
        // file read after it is sure to be the newest.
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| fail(format!("watch SIGHUP: {e}")))?;
        let settings = load(&path).map_err(|e| {
            eprintln!("gateway-cache: --config {e}");
            ExitCode::from(2)
        })?;
        let store = store(&settings).map_err(fail)?;
        let stats = Arc::new(gateway_forward_proxy::stats::Stats::default());
        let cache_stats = Arc::new(CacheStats::default());
        let svc =
            service(&settings, store.clone(), stats.clone(), cache_stats.clone()).map_err(fail)?;
        tracing::info!(
            "appliance CA {} (SHA-256 {})",
            settings.cache.ca_dir.display(),
            svc.leaves.ca_fingerprint()
        );
        let mut listen = settings.proxy.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| fail(format!("listen on {listen}: {e}")))?;
        let slots = Admission::new(
            svc.config.proxy.max_connections,
            svc.config.proxy.max_connections_per_client,
        );
        let (services, rx) = watch::channel(Arc::new(svc));
        let mut accepting = tokio::spawn(serve(listener, rx.clone(), slots.clone()));
        tracing::info!("listening on {listen}");
        loop {
            hup.recv().await;
            let new = load(&path).and_then(|s| {
                let svc = service(&s, store.clone(), stats.clone(), cache_stats.clone())?;
                Ok((s, svc))
            });
            let (settings, svc) = match new {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("reload: {e}; keeping the running configuration");
                    continue;
                }
            };
            if settings.proxy.listen != listen {
                match TcpListener::bind(settings.proxy.listen).await {
                    Ok(l) => {
                        let old = std::mem::replace(
                            &mut accepting,
                            tokio::spawn(serve(l, rx.clone(), slots.clone())),
                        );
                        old.abort();
                        let _ = old.await;
                        tracing::info!(
                            "now listening on {} instead of {listen}",
                            settings.proxy.listen
                        );
                        listen = settings.proxy.listen;
                    }
                    Err(e) => {
                        tracing::error!(
                            "reload: listen on {}: {e}; keeping the running configuration",
                            settings.proxy.listen
                        );
                        continue;
                    }
                }
            }
            services.send_replace(Arc::new(svc));
            tracing::info!("reload: configuration applied from {}", path.display());
        }
    })
}
