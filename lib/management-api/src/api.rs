//! The management API's messages (docs/management-api.md), shared by the
//! agent and the platform simulator, and the rules both sides check: the
//! platform host names derived from the POD, the personalization code, the
//! keys the platform may set.

use std::collections::BTreeMap;

use gateway_control::protocol::Connectivity;
use gateway_control::ApiError;
use serde::{Deserialize, Serialize};

/// Every path starts with the API version.
pub const PREFIX: &str = "/api/v1";

/// The health endpoint every platform host answers (connectivity check).
pub const HEALTH: &str = "/api/v1/health";

/// The services of a POD, in the order the connectivity check lists them:
/// agent traffic, management (public, configuration, repository), CDN.
pub const SERVICES: [&str; 5] = ["qagpublic", "camspublic", "camspm", "camsrepo", "cask"];

/// Registration goes to camspublic; check-in and log upload to camspm.
pub const REGISTER_SERVICE: &str = "camspublic";
pub const CHECKIN_SERVICE: &str = "camspm";

/// `<service>.<pod>`.
pub fn host(service: &str, pod: &str) -> String {
    format!("{service}.{pod}")
}

/// The keys the platform may change: the services' settings. The network,
/// DNS, time and upstream keys stay local, so the platform can never cut an
/// appliance off from itself. PID 1 holds the agent to the same list.
pub const PLATFORM_KEYS: &[&str] = gateway_control::protocol::AGENT_SETTABLE_KEYS;

/// Personalization codes: the rule is gateway-control's, shared with the
/// console and gatewayctl.
pub fn check_personalization_code(code: &str) -> Result<(), ApiError> {
    gateway_control::protocol::check_personalization_code(code)
        .map_err(|rule| ApiError::for_key("code", rule))
}

/// `POST /api/v1/appliances/register` (camspublic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub personalization_code: String,
    /// The appliance's software version.
    pub version: String,
    pub hostname: String,
    pub mac: Option<String>,
}

/// 201 answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub appliance_id: String,
    pub name: String,
    /// The bearer token of every later request; secret.
    pub token: String,
    pub configuration: Configuration,
}

/// A configuration the platform wants, in the keys' text form. `version`
/// grows with every change an administrator makes in the platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    pub version: u64,
    pub values: BTreeMap<String, String>,
    /// An appliance CA assigned in the platform, installed before the
    /// values are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateAssignment>,
}

/// A customer-signed CA chain and its key (PEM) the cache signs with,
/// installed as `gatewayctl ca-install` would, under the same rules.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateAssignment {
    pub chain: String,
    /// Secret: never logged (see the Debug form).
    pub key: String,
}

impl std::fmt::Debug for CertificateAssignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssignment")
            .field("chain", &format_args!("{} bytes", self.chain.len()))
            .field("key", &"********")
            .finish()
    }
}

/// What became of a configuration the platform sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationResult {
    pub version: u64,
    pub applied: bool,
    /// Keys whose value changed (when applied).
    #[serde(default)]
    pub changed: Vec<String>,
    /// Why it was refused: the key and its rule.
    #[serde(default)]
    pub error: Option<ApiError>,
}

/// `POST /api/v1/appliances/<id>/checkin` (camspm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckinRequest {
    pub version: String,
    /// Unix time on the appliance.
    pub time_unix: u64,
    /// The last configuration version the appliance processed.
    pub configuration_version: u64,
    /// The outcome of that configuration, sent until a check-in carrying it
    /// succeeded.
    pub configuration_result: Option<ConfigurationResult>,
    /// The control API's `status` and `stats`, as they are (null when PID 1
    /// did not answer). `stats.cache` is the cache's statistics (hit ratio,
    /// bytes from the cache and from origins, active agents, each tier), or
    /// null while PID 1 has none from the cache.
    pub status: serde_json::Value,
    pub stats: serde_json::Value,
    pub connectivity: Vec<Connectivity>,
}

/// 200 answer to a check-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinResponse {
    /// A newer configuration than `configuration_version`, if any.
    #[serde(default)]
    pub configuration: Option<Configuration>,
    /// Logs the platform asks for (unit names, `init`, `kernel`).
    #[serde(default)]
    pub upload_logs: Vec<String>,
}

/// `POST /api/v1/appliances/<id>/logs` (camspm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogUpload {
    pub name: String,
    /// Newest first.
    pub lines: Vec<String>,
}

/// The body of every answer that is not 2xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, for programs: `unknown_personalization_code`, `unauthorized`...
    pub code: String,
    /// For people.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personalization_codes() {
        for ok in ["a", "abc-123", "0f3e-77aa-9b"] {
            check_personalization_code(ok).unwrap();
        }
        for bad in ["", "ABC", "a_b", "a b", "-ab", "ab-", "é", &"a".repeat(65)] {
            let e = check_personalization_code(bad).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("code"), "{bad}");
        }
    }

    #[test]
    fn hosts_follow_the_pod() {
        let names: Vec<String> = SERVICES
            .iter()
            .map(|s| host(s, "qg1.apps.qualys.com"))
            .collect();
        assert_eq!(names[1], "camspublic.qg1.apps.qualys.com");
        assert_eq!(names[4], "cask.qg1.apps.qualys.com");
    }
}
