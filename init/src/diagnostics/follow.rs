//! The report waiting for download, followed: a download that ended (the
//! SFTP server removed the offer) or the 24 hours passing withdraws it,
//! which stops the `sftp` unit when SSH is disabled.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::state::Appliance;

/// Checks the report's files every 2 s for the life of PID 1's runtime and
/// publishes what changed on the state's `report` channel.
pub async fn follow_report(a: Arc<Appliance>) {
    let state = Path::new(super::SFTP_STATE);
    loop {
        let now = super::unix_now();
        let _one_at_a_time = a.lock_report().await;
        let waiting = super::waiting(state, now);
        let before = a.report.borrow().clone();
        if waiting != before {
            match (&before, &waiting) {
                (Some(old), None) if now >= old.expires_unix => {
                    info!("diagnostics report {}: expired, removed", old.file)
                }
                (Some(old), None) => {
                    info!(
                        "diagnostics report {}: downloaded, password expired",
                        old.file
                    )
                }
                (_, Some(new)) => info!(
                    "diagnostics report {} waits for download until {} UTC",
                    new.file,
                    gateway_control::cli::utc(new.expires_unix)
                ),
                (None, None) => {}
            }
            a.report.send_replace(waiting);
        }
        drop(_one_at_a_time);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
