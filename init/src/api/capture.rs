//! `capture_start` and `capture_stop`: the upstream capture runs in a thread
//! of its own (it blocks on its socket) and publishes its progress on the
//! state's `capture` channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway_control::protocol::{CaptureStatus, MAX_CAPTURE_SECONDS};
use gateway_control::{ApiError, Response};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::diagnostics::capture::{self, CaptureError, CaptureRequest, EndReason, Summary};
use crate::diagnostics::{unix_now, CAPTURE_FILE};
use crate::state::Appliance;

/// Starts the upstream capture in a thread of its own (it blocks on
/// its socket); its progress is published on `capture`.
pub fn start(a: &Appliance, seconds: Option<u32>) -> Result<Response, ApiError> {
    let seconds = seconds.unwrap_or(MAX_CAPTURE_SECONDS);
    if !(1..=MAX_CAPTURE_SECONDS).contains(&seconds) {
        return Err(ApiError::new(format!(
            "seconds: {seconds} is out of range: from 1 to {MAX_CAPTURE_SECONDS}"
        )));
    }
    if a.capture.borrow().state == "running" {
        return Err(ApiError::new(
            "a capture is already running: stop it first (capture_stop)",
        ));
    }
    let (mut request, what) = request(seconds)?;
    request.redact = upstream_secrets(&a.config());
    let stop = a.capture_stop();
    stop.store(false, Ordering::SeqCst);
    let started = CaptureStatus {
        state: "running".into(),
        started_unix: unix_now(),
        seconds,
        detail: what.clone(),
        file: a.capture.borrow().file.clone(),
        ..Default::default()
    };
    a.capture.send_replace(started.clone());
    let status = a.capture.clone();
    info!("upstream capture: started for {seconds} s on {what}");
    let spawned = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || run(&request, &stop, &status, &what));
    if let Err(e) = spawned {
        a.capture.send_modify(|s| {
            s.state = "failed".into();
            s.detail = format!("capture thread: {e}");
        });
        return Err(ApiError::new(format!("capture thread: {e}")));
    }
    Ok(Response::ok(started))
}

/// The capture of eth0 for `seconds`, limited to the next hop when the ARP
/// table knows it; with the words that describe it.
fn request(seconds: u32) -> Result<(CaptureRequest, String), ApiError> {
    let interface = gateway_net::IFACE;
    let hop = capture::next_hop(interface);
    let mut request = CaptureRequest::new(interface, CAPTURE_FILE);
    request.duration = Duration::from_secs(u64::from(seconds));
    request.peer_mac = hop.map(|(_, mac)| mac);
    request
        .validate()
        .map_err(|e| ApiError::new(e.to_string()))?;
    let what = match hop {
        Some((ip, mac)) => format!("{interface}, next hop {ip} {}", capture::format_mac(&mac)),
        None => format!("{interface}, every frame (no next hop in the ARP table)"),
    };
    Ok((request, what))
}

/// What the capture hides besides every `Proxy-Authorization` value: the
/// upstream proxy's Basic token and, when long enough not to blank out
/// ordinary bytes, its password (a password is sent only base64-encoded,
/// but a client could type it into a plain request).
fn upstream_secrets(c: &gateway_config::Config) -> capture::Redactions {
    use base64::Engine;
    let mut secrets = Vec::new();
    if let Some(password) = &c.upstream.password {
        let user = c.upstream.user.as_deref().unwrap_or_default();
        let token = format!("{user}:{}", password.expose());
        secrets.push(
            base64::engine::general_purpose::STANDARD
                .encode(token)
                .into_bytes(),
        );
        if password.expose().len() >= 4 {
            secrets.push(password.expose().as_bytes().to_vec());
        }
    }
    capture::Redactions { secrets }
}

/// The capture thread: runs it, publishing its progress, then its end.
fn run(
    request: &CaptureRequest,
    stop: &Arc<AtomicBool>,
    status: &watch::Sender<CaptureStatus>,
    what: &str,
) {
    let mut progress = |p: &capture::Progress| {
        status.send_modify(|s| {
            s.packets = p.packets;
            s.bytes = p.bytes;
            s.elapsed_s = p.elapsed.as_secs();
        })
    };
    let result = capture::run(request, stop, &mut progress);
    status.send_modify(|s| finished(s, result, what));
}

/// The status of a capture that ended, `result` its end.
fn finished(s: &mut CaptureStatus, result: Result<Summary, CaptureError>, what: &str) {
    match result {
        Ok(summary) => {
            let why = match summary.reason {
                EndReason::Duration => "time is up",
                EndReason::SizeLimit => "size limit reached",
                EndReason::Stopped => "stopped",
            };
            info!(
                "upstream capture: {} packets, {} bytes ({why})",
                summary.packets, summary.bytes
            );
            s.state = "done".into();
            s.packets = summary.packets;
            s.bytes = summary.bytes;
            s.detail = format!("{what}; {why}");
            s.file = Some(summary.path.display().to_string());
        }
        Err(e) => {
            warn!("upstream capture: {e}");
            s.state = "failed".into();
            s.detail = e.to_string();
        }
    }
}

/// Ends a running capture and waits (briefly) for its file.
pub async fn stop(a: &Appliance) -> Result<Response, ApiError> {
    if a.capture.borrow().state != "running" {
        return Err(ApiError::new("no capture is running"));
    }
    a.capture_stop().store(true, Ordering::SeqCst);
    let mut follow = a.capture.subscribe();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        follow.wait_for(|s| s.state != "running"),
    )
    .await;
    Ok(Response::ok(a.capture.borrow().clone()))
}
