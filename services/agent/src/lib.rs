//! The management agent (`gateway-agent`, the unit `agent`): registers the
//! appliance with the platform using a personalization code, checks in on
//! a schedule with health and statistics, and applies the configuration the
//! platform sends through PID 1's control API, so it gets the same
//! validation as a change made at the console. The management API's
//! messages and HTTP framing are `gateway_management_api`'s (shared with the
//! platform); the simulator the tests use is `tools/platform-sim`.
//!
//! This crate must not write the configuration or touch the network setup:
//! it asks PID 1 (`status`, `stats`, `logs`, `set`). The check-in schedule
//! ([`schedule`]) is sans-IO; TLS to the platform always verifies.

pub mod agent;
pub mod connect;
pub mod listen;
pub mod schedule;
pub mod settings;
pub mod state;

pub use agent::Agent;
pub use settings::AgentSettings;

/// `gateway-agent --config FILE`: the unit's entry point.
pub fn main() -> std::process::ExitCode {
    gateway_unit_main::init_logging();
    let path = match gateway_unit_main::config_arg("gateway-agent") {
        Ok(p) => p,
        Err(status) => return status,
    };
    gateway_unit_main::exit("gateway-agent", || {
        let settings = settings::load(&path).map_err(|e| e.to_string())?;
        let runtime = gateway_unit_main::runtime(Some(2))?;
        runtime.block_on(async {
            let agent = Agent::new(settings).map_err(|e| e.to_string())?;
            agent.run().await.map_err(|e| e.to_string())
        })
    })
}
