//! What a signal to PID 1 means, and how `/sbin/poweroff` and `/sbin/reboot`
//! ask for it.
//!
//! The kernel sends SIGINT on Ctrl-Alt-Del once it is told not to reboot by
//! itself (`reboot(RB_DISABLE_CAD)`). SIGTERM, SIGUSR2 and SIGPWR mean power
//! off (SIGTERM is what a hypervisor agent or an administrator sends; SIGPWR
//! is the traditional power-failure signal).

use std::process::ExitCode;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Poweroff,
    Reboot,
}

impl Request {
    pub fn signal(self) -> Signal {
        match self {
            Request::Poweroff => Signal::SIGTERM,
            Request::Reboot => Signal::SIGINT,
        }
    }

    pub fn from_signal(sig: Signal) -> Option<Request> {
        match sig {
            Signal::SIGTERM | Signal::SIGUSR2 | Signal::SIGPWR => Some(Request::Poweroff),
            Signal::SIGINT => Some(Request::Reboot),
            _ => None,
        }
    }
}

/// `/sbin/poweroff` and `/sbin/reboot`: signal PID 1. The kernel's
/// `orderly_poweroff` (Hyper-V shutdown) runs /sbin/poweroff this way.
pub fn request(r: Request) -> ExitCode {
    match kill(Pid::from_raw(1), r.signal()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{r:?}: cannot signal init: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_signal() {
        for r in [Request::Poweroff, Request::Reboot] {
            assert_eq!(Request::from_signal(r.signal()), Some(r));
        }
        assert_eq!(
            Request::from_signal(Signal::SIGPWR),
            Some(Request::Poweroff)
        );
        assert_eq!(Request::from_signal(Signal::SIGHUP), None);
        assert_eq!(Request::from_signal(Signal::SIGCHLD), None);
    }
}
