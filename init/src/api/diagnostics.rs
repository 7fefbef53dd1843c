//! The requests an administrator finds out what is wrong with: `logs`,
//! `ping`, `diagnostics_report` (builds the report and offers it over SFTP)
//! and `diagnostics` (the report waiting and the capture's state).

use std::path::Path;
use std::time::Duration;

use gateway_control::protocol::{DiagnosticsStatus, LogLines};
use gateway_control::{ApiError, Request, Response};
use tracing::info;

use crate::diagnostics::{self, unix_now, Gathered, Places};
use crate::state::Appliance;

/// `logs`: the last lines of a log, or those matching `search`.
pub fn logs(name: String, lines: Option<u32>, search: Option<&str>) -> Result<Response, ApiError> {
    let dir = Path::new(crate::logs::LOG_ROOT);
    crate::logs::read::tail(dir, &name, lines.unwrap_or(100) as usize, search)
        .map(|lines| Response::ok(LogLines { name, lines }))
        .map_err(|e| ApiError::new(e.to_string()))
}

/// `ping`: ICMP echo to a host, four times unless asked otherwise.
pub async fn ping(target: &str, count: Option<u32>) -> Result<Response, ApiError> {
    diagnostics::ping::ping(target, count.unwrap_or(4))
        .await
        .map(Response::ok)
        .map_err(|e| ApiError::new(e.to_string()))
}

/// `diagnostics`: the report waiting for download and the capture.
pub fn status(a: &Appliance) -> Response {
    Response::ok(DiagnosticsStatus {
        report: a.report.borrow().clone(),
        capture: a.capture.borrow().clone(),
    })
}

/// Builds the diagnostics report and offers it over SFTP; the answer
/// carries the one-time password (never logged).
pub async fn report(a: &Appliance) -> Result<Response, ApiError> {
    let _one_at_a_time = a.lock_report().await;
    let gathered = gather(a).await;
    let places = Places::appliance(diagnostics::last_capture());
    let now = unix_now();
    let made =
        tokio::task::spawn_blocking(move || diagnostics::make_report(&gathered, &places, now))
            .await
            .map_err(|e| ApiError::new(format!("diagnostics report: {e}")))?
            .map_err(|e| ApiError::new(format!("diagnostics report: {e}")))?;
    info!(
        "diagnostics report {} ({} bytes, {} files) offered over SFTP to user {} until {} UTC",
        made.offer.file,
        made.offer.size_bytes,
        made.contents.len(),
        made.offer.user,
        gateway_control::cli::utc(made.offer.expires_unix)
    );
    a.report.send_replace(Some(made.offer.clone()));
    Ok(Response::ok(made))
}

/// The texts the report holds: the configuration (secrets redacted), the
/// status and stats answers, and the agent's view of the platform.
async fn gather(a: &Appliance) -> Gathered {
    let config = a.config();
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    // The agent's view, if it answers soon; a report is wanted most
    // when something is wrong, so nothing here may block it.
    let platform = tokio::time::timeout(
        Duration::from_secs(5),
        super::agent::forward(Request::Platform { check: false }),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .and_then(|r| r.result)
    .map(json);
    Gathered {
        hostname: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "gateway".into()),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        config: config
            .to_pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect(),
        status: json(serde_json::to_value(a.status()).unwrap_or_default()),
        stats: json(serde_json::to_value(a.stats.borrow().clone()).unwrap_or_default()),
        platform,
    }
}
