//! `restart_unit`: asks the unit's supervisor to stop it and start it
//! again, and answers once it has.

use gateway_control::{ApiError, Response};

use crate::state::Appliance;
use crate::units::command::UnitCommand;

pub async fn restart(a: &Appliance, name: &str) -> Result<Response, ApiError> {
    let tx = a.unit_commands(name).ok_or_else(|| {
        let known: Vec<&str> = crate::units::table::UNITS.iter().map(|u| u.name).collect();
        ApiError::new(format!("no unit {name:?} (units: {})", known.join(", ")))
    })?;
    let stopped = || ApiError::new(format!("unit {name}: its supervisor has stopped"));
    let (done, restarted) = tokio::sync::oneshot::channel();
    tx.send(UnitCommand::Restart(done))
        .await
        .map_err(|_| stopped())?;
    restarted.await.map_err(|_| stopped())?;
    Ok(Response::ok(()))
}
