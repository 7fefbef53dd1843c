//! The diagnostics-report download server (`gateway-sftp`, the unit `sftp`):
//! an SSH server that offers one directory, read-only, over SFTP, to the user
//! `diagnostics`, who signs in with a one-time password. It owns the SSH host
//! key and the download itself; PID 1 owns everything else (it writes the
//! settings, the offer and the report, and deletes them when the offer
//! expires).
//!
//! Files, all under the settings' `state_dir`:
//! - `host_key`: the ed25519 host key (OpenSSH private key format, mode
//!   0600), generated at the first start ([`hostkey`]);
//!   `host_key.fingerprint` holds its `SHA256:...` fingerprint and a newline,
//!   for the console.
//! - `offer.json`, written by PID 1 ([`offer`]): who may sign in, the salted
//!   SHA-256 of the one-time password, when it expires, and which file of
//!   `report/` is offered. Read afresh at every sign-in; absent or unreadable
//!   means no report is waiting and every password fails.
//! - `report/<file>`: the one file shown, as `/<file>` in a read-only root.
//!
//! Behaviour: password authentication only; a session gets `session`
//! channels whose only accepted request is the `sftp` subsystem ([`ssh`]);
//! shells, commands, terminals, agent and X11 forwarding and every kind of
//! port forwarding are refused. The SFTP view ([`sftp`], paths checked by
//! [`view`]) lists and serves only the report; anything that writes, and any
//! path outside the root, is refused without touching the filesystem. When
//! one open handle has returned every byte of the report ([`coverage`]) and
//! closes, the download is complete: the offer and the report are deleted,
//! so the password stops working. Idle sessions end after 10 minutes, at
//! most 8 connections at once; SIGTERM ends the server at once with status 0.

pub mod coverage;
pub mod hostkey;
pub mod offer;
pub mod server;
pub mod settings;
pub mod sftp;
pub mod ssh;
pub mod view;

pub use settings::Settings;

/// A client's text (user name, path, subsystem) as logged: escaped, so it
/// cannot forge log lines, and cut, so it cannot flood the log.
pub(crate) fn for_log(text: &str) -> String {
    const MAX: usize = 80;
    let mut shown: String = text
        .chars()
        .take(MAX)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().nth(MAX).is_some() {
        shown.push_str("...");
    }
    shown
}

/// `gateway-sftp --config FILE`: the unit's entry point.
pub fn main() -> std::process::ExitCode {
    gateway_unit_main::init_logging();
    let path = match gateway_unit_main::config_arg("gateway-sftp") {
        Ok(p) => p,
        Err(status) => return status,
    };
    gateway_unit_main::exit("gateway-sftp", || {
        let settings = settings::load(&path).map_err(|e| e.to_string())?;
        // Two workers: downloads are few and small, and the appliance has
        // little memory.
        let runtime = gateway_unit_main::runtime(Some(2))?;
        runtime
            .block_on(server::run(settings))
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_text_is_escaped_and_cut_for_the_log() {
        assert_eq!(super::for_log("diagnostics"), "diagnostics");
        assert_eq!(super::for_log("a\nINFO fake"), "a\\nINFO fake");
        let long = "x".repeat(1000);
        assert_eq!(super::for_log(&long), format!("{}...", "x".repeat(80)));
    }
}
