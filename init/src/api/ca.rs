//! The appliance CA's requests: `ca_export` and `ca_install` (which restarts
//! the cache so that new leaves are signed by the new CA).

use gateway_control::{ApiError, Response};
use tracing::info;

use crate::state::Appliance;
use crate::units::cacheca;

pub async fn export() -> Result<Response, ApiError> {
    tokio::task::spawn_blocking(cacheca::export)
        .await
        .map_err(|e| ApiError::new(format!("ca_export: {e}")))?
        .map(Response::ok)
        .map_err(|e| ApiError::new(e.to_string()))
}

/// Installs the CA, then restarts the cache so that new leaves are
/// signed by it.
pub async fn install(a: &Appliance, chain: String, key: String) -> Result<Response, ApiError> {
    let info = tokio::task::spawn_blocking(move || cacheca::install(&chain, &key))
        .await
        .map_err(|e| ApiError::new(format!("ca_install: {e}")))?
        .map_err(|e| ApiError::new(e.to_string()))?;
    info!(
        "appliance CA installed (SHA-256 {}): restarting the cache",
        info.fingerprint_sha256
    );
    if a.config().cache.enabled {
        super::units::restart(a, "cache").await?;
    }
    Ok(Response::ok(info))
}
