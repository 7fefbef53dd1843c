//! Time for PID 1: the clock floor at boot (a dead RTC never sets 1970), and
//! the NTP client following `ntp.servers`, restarted when they change. Time
//! sync runs beside everything else and never holds up the boot.

use std::sync::Arc;
use std::time::SystemTime;

use gateway_config::Config;
use gateway_control::protocol::TimeStatus;
use gateway_ntp::{clock_floor, enforce_floor, NtpConfig, NtpStatus, SystemClock};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::state::Appliance;

/// Raises the clock to the floor when it is below it.
pub fn apply_floor() -> Result<(), gateway_ntp::ClockError> {
    if enforce_floor(&SystemClock, clock_floor())? {
        warn!("time: the clock was before this build's floor (dead RTC?): raised to it");
    }
    Ok(())
}

/// What the console and `gatewayctl status` show.
pub fn summarise(status: &NtpStatus, servers: &[String], now: SystemTime) -> TimeStatus {
    let state = if status.synchronized {
        "synchronised".to_owned()
    } else if status.servers.iter().any(|s| s.reachable) {
        "measuring".to_owned()
    } else if status.servers.iter().any(|s| s.last_error.is_some()) {
        "no server reachable".to_owned()
    } else {
        "waiting for servers".to_owned()
    };
    TimeStatus {
        now_unix: now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        synchronized: status.synchronized,
        servers: servers.to_vec(),
        server: status.server.clone(),
        offset_ms: status.offset_ms,
        last_sync_age_s: status
            .last_sync
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs()),
        state,
    }
}

/// Runs the NTP client for the configured servers; restarts it when they
/// change. Publishes its status on the appliance.
pub async fn follow(appliance: Arc<Appliance>) {
    let mut config = appliance.subscribe();
    loop {
        let servers = servers_of(&config.borrow_and_update());
        let (tx, mut status) = watch::channel(NtpStatus::default());
        let ntp = NtpConfig {
            servers: servers.clone(),
            ..NtpConfig::default()
        };
        let task = tokio::spawn(gateway_ntp::run(
            ntp,
            Arc::new(SystemClock),
            Arc::new(super::names::SharedResolver),
            tx,
        ));
        info!("time: following {}", servers.join(", "));
        let mut was_synchronized = false;
        let mut running = true;
        loop {
            tokio::select! {
                changed = config.changed() => {
                    if changed.is_err() {
                        task.abort();
                        return;
                    }
                    if servers_of(&config.borrow_and_update()) != servers {
                        task.abort();
                        break;
                    }
                }
                changed = status.changed(), if running => {
                    if changed.is_err() {
                        // The task ended: only an invalid configuration does.
                        error!("time: the NTP client stopped; it restarts when ntp.servers changes");
                        running = false;
                        continue;
                    }
                    let s = status.borrow_and_update().clone();
                    if s.synchronized != was_synchronized {
                        was_synchronized = s.synchronized;
                        if s.synchronized {
                            info!(
                                "time: synchronised to {} (offset {:.3} ms)",
                                s.server.as_deref().unwrap_or("?"),
                                s.offset_ms.unwrap_or(0.0)
                            );
                        } else {
                            warn!("time: no longer synchronised");
                        }
                    }
                    appliance.time.send_replace(summarise(&s, &servers, SystemTime::now()));
                }
            }
        }
    }
}

fn servers_of(config: &Config) -> Vec<String> {
    config.ntp.effective_servers()
}
