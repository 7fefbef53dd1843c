//! PID 1 reaps every child with `waitpid(-1)`, so a part of init that
//! started a process cannot wait for it itself (the reaper would take the
//! status first). It registers the pid here instead, before yielding to the
//! runtime, and the reaper hands it the exit status.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use nix::sys::wait::WaitStatus;
use tokio::sync::oneshot;

fn waiting() -> &'static Mutex<HashMap<i32, oneshot::Sender<WaitStatus>>> {
    static WAITING: OnceLock<Mutex<HashMap<i32, oneshot::Sender<WaitStatus>>>> = OnceLock::new();
    WAITING.get_or_init(Default::default)
}

/// Registers `pid`; the receiver gets its exit status. Call it right after
/// the spawn, with no `.await` in between: on PID 1's single-threaded
/// runtime the reaper cannot run in that gap.
pub fn watch(pid: i32) -> oneshot::Receiver<WaitStatus> {
    let (tx, rx) = oneshot::channel();
    waiting()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid, tx);
    rx
}

/// Called by the reaper for each child it collected; true when someone was
/// waiting for it.
pub fn deliver(pid: i32, status: WaitStatus) -> bool {
    let tx = waiting()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pid);
    match tx {
        Some(tx) => {
            let _ = tx.send(status);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;

    #[test]
    fn a_watched_pid_gets_its_status_and_others_are_orphans() {
        let rx = watch(4242);
        assert!(deliver(4242, WaitStatus::Exited(Pid::from_raw(4242), 3)));
        assert_eq!(
            rx.blocking_recv().unwrap(),
            WaitStatus::Exited(Pid::from_raw(4242), 3)
        );
        assert!(!deliver(4243, WaitStatus::Exited(Pid::from_raw(4243), 0)));
    }
}
