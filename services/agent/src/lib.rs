//! The management agent (`gateway-agent`, the unit `agent`): registers the
//! appliance with the platform using a personalization code, checks in on
//! a schedule with health and statistics, and applies the configuration the
//! platform sends through PID 1's control API, so it gets the same
//! validation as a change made at the console. Also the platform simulator
//! ([`sim`], binary `platform-sim`) the tests and evaluators use.
//!
//! This crate must not write the configuration or touch the network setup:
//! it asks PID 1 (`status`, `stats`, `logs`, `set`). The check-in schedule
//! ([`schedule`]) is sans-IO; TLS to the platform always verifies.

pub mod agent;
pub mod api;
pub mod connect;
pub mod http;
pub mod schedule;
pub mod settings;
pub mod sim;
pub mod state;

pub use agent::Agent;
pub use settings::AgentSettings;

/// `gateway-agent --config FILE`: the unit's entry point.
pub fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .init();
    let path = match std::env::args().collect::<Vec<_>>().as_slice() {
        [_, flag, path] if flag == "--config" => std::path::PathBuf::from(path),
        _ => {
            eprintln!("usage: gateway-agent --config FILE");
            return std::process::ExitCode::from(2);
        }
    };
    let run = || -> Result<(), String> {
        let settings = AgentSettings::load(&path).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("start the runtime: {e}"))?;
        runtime.block_on(async {
            let agent = Agent::new(settings).map_err(|e| e.to_string())?;
            agent.run().await.map_err(|e| e.to_string())
        })
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway-agent: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
