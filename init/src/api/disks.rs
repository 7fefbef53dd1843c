//! `format_patch_disk`: formats the patch disk found at boot (erasing what
//! it holds only when asked) and mounts it.

use gateway_control::{ApiError, Response};

use crate::disks::patch;
use crate::state::Appliance;

pub async fn format_patch_disk(a: &Appliance, erase: bool) -> Result<Response, ApiError> {
    let _one_at_a_time = a.lock_changes().await;
    let disk = a
        .patch_disk()
        .ok_or_else(|| ApiError::new("no patch disk: attach a second disk and reboot"))?;
    let mounted = a
        .disks
        .borrow()
        .iter()
        .any(|d| d.role == "patch" && d.mount.is_some());
    let status = tokio::task::spawn_blocking(move || patch::format(&disk, erase, mounted))
        .await
        .map_err(|e| ApiError::new(format!("format: {e}")))?
        .map_err(|e| ApiError::new(e.to_string()))?;
    a.disks.send_modify(|all| {
        if let Some(d) = all.iter_mut().find(|d| d.role == "patch") {
            *d = status.clone();
        }
    });
    Ok(Response::ok(status))
}
