//! Where the appliance's runtime files are, written once for PID 1, which
//! creates them, and for the programs that open them: the control sockets,
//! the name-service files, each unit's settings file.
//!
//! This crate holds names only (no code, no dependencies), so that a crate
//! needing a path does not have to link the crate that serves it.

/// Where PID 1 listens (mode 0660, root and the console group).
pub const CONTROL_SOCKET: &str = "/run/gateway/control.sock";

/// Where the management agent serves `register`, `platform` and
/// `proxy_test`; PID 1 forwards those requests there, so the control socket
/// stays the one API. PID 1 binds it (root's, mode 0600, in a directory the
/// agent cannot write) and hands the listening socket to the agent, so the
/// path root connects to is never the agent's to change.
pub const AGENT_SOCKET: &str = "/run/gateway/agent.sock";

/// The management agent's own view of the control API, owned by its user:
/// `status`, `stats`, `logs`, `keys`, `get`, `set` and `ca_install` only (PID 1 refuses
/// the rest there: no power, reset or disk requests).
pub const AGENT_CONTROL_SOCKET: &str = "/run/gateway/agent-control.sock";

/// The agent's state directory (registration, its socket).
pub const AGENT_STATE_DIR: &str = "/var/lib/units/agent";

/// Where PID 1 keeps the hosts map and the DNS settings (/etc points here).
pub const HOSTS_FILE: &str = "/etc/hosts";
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where a unit's settings file is written: `/run/units/<name>/settings.json`.
pub fn settings_path(name: &str) -> String {
    format!("/run/units/{name}/settings.json")
}
