//! Power requests (`reboot`, `poweroff`) and `reset_appliance`: answered
//! first, carried out by PID 1's main loop after.

use std::time::Duration;

use gateway_control::{ApiError, Response};
use tracing::{info, warn};

use crate::pid1::signals;
use crate::state::Appliance;

/// Answers first, then asks the main loop: the client sees its answer
/// before the shutdown stops everything.
pub fn power(a: &Appliance, request: signals::Request) -> Response {
    info!("control API: {request:?} requested");
    let power = a.power_requests();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = power.send(request);
    });
    Response::ok(())
}

/// Erases the configuration and has the next boot erase the rest, then
/// reboots.
pub async fn reset_appliance(a: &Appliance) -> Result<Response, ApiError> {
    let _one_at_a_time = a.lock_changes().await;
    match a.erase() {
        Ok(()) => {
            warn!("control API: reset appliance: configuration erased, rebooting; the boot erases logs and unit state");
            Ok(power(a, signals::Request::Reboot))
        }
        Err(e) => Err(ApiError::new(format!("reset appliance: {e}"))),
    }
}
