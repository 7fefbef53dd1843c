//! The configuration's requests: `get`, `set` and `keys`, and `reset_network`,
//! which returns the network keys to their defaults through the same `set`.

use std::collections::BTreeMap;

use gateway_config::KEYS;
use gateway_control::protocol::KeyDoc;
use gateway_control::{ApiError, Response};

use crate::state::{Appliance, ChangeError};

/// The network keys `reset_network` returns to their defaults.
pub const NETWORK_KEYS: [&str; 5] = [
    "net.mode",
    "net.address",
    "net.gateway",
    "dns.servers",
    "dns.search",
];

/// A refused change as the control API answers it: the key and the rule
/// when a key is at fault.
impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> ApiError {
        match e {
            ChangeError::Refused(e) => ApiError::for_key(e.key, e.message),
            ChangeError::PatchNotReady(why) => ApiError::for_key("patch.enabled", why.to_string()),
            e @ ChangeError::Save(_) => ApiError::new(e.to_string()),
        }
    }
}

/// `get`: the whole configuration, or the keys asked for (secrets as
/// placeholders).
pub fn get(a: &Appliance, keys: &[String]) -> Response {
    let config = a.config();
    if keys.is_empty() {
        return Response::ok(config.to_pairs().into_iter().collect::<BTreeMap<_, _>>());
    }
    keys.iter()
        .map(|k| config.get(k).map(|v| (k.clone(), v)))
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map(Response::ok)
        .unwrap_or_else(|e| Response::error(ApiError::for_key(e.key, e.message)))
}

/// `set`: one change, refused whole at the first broken rule.
pub async fn set(a: &Appliance, changes: Vec<(String, String)>) -> Result<Response, ApiError> {
    Ok(Response::ok(a.set(&changes).await?))
}

/// `keys`: every key with its type, default and rule.
pub fn keys() -> Response {
    Response::ok(
        KEYS.iter()
            .map(|k| KeyDoc {
                name: k.name.into(),
                kind: k.kind.into(),
                default: k.default_text(),
                rule: k.rule.into(),
            })
            .collect::<Vec<_>>(),
    )
}

/// `reset_network`: the network keys back to their defaults, as one change.
pub async fn reset_network(a: &Appliance) -> Result<Response, ApiError> {
    let changes: Vec<(String, String)> = NETWORK_KEYS
        .iter()
        .map(|k| (k.to_string(), String::new()))
        .collect();
    set(a, changes).await
}
