//! The management agent's side of the control API: the handler of its own
//! socket ([`AgentControl`]), and the requests PID 1 passes on to the agent
//! ([`forward`]).

use std::sync::Arc;
use std::time::Duration;

use gateway_control::protocol::AGENT_SETTABLE_KEYS;
use gateway_control::server::Handler;
use gateway_control::{ApiError, Request, Response};

use crate::state::Appliance;

/// The control API as the management agent sees it (its own socket,
/// [`gateway_control::protocol::AGENT_CONTROL_SOCKET`]): what a check-in
/// reports (status, stats, logs) and what applying the platform's
/// configuration needs (keys, get, and set of the platform's keys only,
/// [`AGENT_SETTABLE_KEYS`], under the same rules as at the console;
/// ca_install for a certificate assigned in the platform); no power,
/// reset, disk or unit requests.
pub struct AgentControl(pub Arc<Appliance>);

impl Handler for AgentControl {
    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Status
            | Request::Stats
            | Request::Logs { .. }
            | Request::Keys
            | Request::Get { .. }
            // A certificate assigned in the platform (the same checks as
            // at the console).
            | Request::CaInstall { .. } => self.0.handle(request).await,
            // The platform's keys only, checked before any is applied.
            Request::Set { values } => match values
                .keys()
                .find(|k| !AGENT_SETTABLE_KEYS.contains(&k.as_str()))
            {
                Some(key) => Response::error(ApiError::for_key(
                    key.as_str(),
                    format!(
                        "not settable by the management agent (it may set {}); change it at the console or with gatewayctl",
                        AGENT_SETTABLE_KEYS.join(", ")
                    ),
                )),
                None => self.0.handle(Request::Set { values }).await,
            },
            _ => Response::error(ApiError::new("not available to the management agent")),
        }
    }
}

/// `register` and `platform` are the management agent's to answer (it holds
/// the platform token and the check-in state); PID 1 passes them to the
/// agent's socket and its answer back, so clients have one API.
pub async fn forward(request: Request) -> Result<Response, ApiError> {
    // The socket is PID 1's and always accepts (a connection waits in its
    // backlog for an agent that is restarting): one that is not running at
    // all is said at once.
    if !crate::units::is_running("agent") {
        return Err(not_running());
    }
    let path = std::path::Path::new(gateway_control::protocol::AGENT_SOCKET);
    let answer = tokio::task::spawn_blocking(move || {
        // A registration runs a connectivity check of five hosts first.
        let mut client = gateway_control::Client::connect(path, Duration::from_secs(110))?;
        client.call(&request)
    })
    .await
    .map_err(|e| ApiError::new(format!("management agent: {e}")))?;
    match answer {
        Ok(result) => Ok(Response::ok(result)),
        Err(gateway_control::ClientError::Refused(e)) => Err(e),
        Err(gateway_control::ClientError::Connect { .. }) => Err(not_running()),
        Err(e) => Err(ApiError::new(format!("management agent: {e}"))),
    }
}

fn not_running() -> ApiError {
    ApiError::new("the management agent is not running (see gatewayctl status, unit agent)")
}
