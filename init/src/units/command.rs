//! What the control API asks of a running unit's supervisor. Its own file so
//! that the appliance state, which sends these, and the runner, which
//! answers them, do not import each other.

use tokio::sync::oneshot;

pub enum UnitCommand {
    /// Stop the unit and start it again; `done` answers once the runner has
    /// acted on it.
    Restart(oneshot::Sender<()>),
}
