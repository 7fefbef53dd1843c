//! The services the appliance runs, as units: one table of declarations
//! ([`table`]), a sandbox for each ([`sandbox`]), a log file each
//! ([`crate::logs`]), and a supervising task each ([`runner`]) that restarts a
//! unit with backoff ([`backoff`]) and applies configuration changes to it.

pub mod backoff;
pub mod runner;
pub mod sandbox;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::appliance::Appliance;
use runner::UnitCommand;

/// Starts a supervising task for every unit; returns the channels that
/// reach them (for the control API's restart).
pub fn start_all(appliance: &Arc<Appliance>) -> HashMap<&'static str, mpsc::Sender<UnitCommand>> {
    table::UNITS
        .iter()
        .map(|spec| {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(runner::run(spec, appliance.clone(), rx));
            (spec.name, tx)
        })
        .collect()
}
