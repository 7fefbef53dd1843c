//! Every log line's way. PID 1's own messages go to each console and to
//! the kernel log, prefixed with the uptime ([`console`]). On the state
//! partition, in `/var/log/gateway`: one file per unit (its stdout and
//! stderr), `init.log` (PID 1's own messages) and `kernel.log` (the rest of
//! the kernel log), each rotated by size ([`file`]); a total cap that
//! removes the oldest rotated files first and nothing else ([`cap`]); the
//! kernel log follower that fills the last two ([`kmsg`]); a unit's output
//! cut into bounded lines ([`lines`]); and tail and search for the control
//! API ([`read`]).
pub mod cap;
pub mod console;
pub mod file;
pub mod kmsg;
pub mod lines;
pub mod read;

pub const LOG_ROOT: &str = "/var/log/gateway";

/// Set at power-off before /var is unmounted; the kernel log follower
/// writes only while holding it unset, so no log file is open after.
static STOPPED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// Runs `write` unless the logs were stopped.
pub fn while_running(write: impl FnOnce()) {
    let stopped = STOPPED.lock().unwrap_or_else(|e| e.into_inner());
    if !*stopped {
        write();
    }
}

/// No more writes to /var/log from here on (power-off).
pub fn stop() {
    *STOPPED.lock().unwrap_or_else(|e| e.into_inner()) = true;
}
