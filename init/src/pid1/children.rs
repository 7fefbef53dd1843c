//! PID 1 reaps every child with `waitpid(-1)`, so a part of init that
//! started a process cannot wait for it itself (the reaper would take the
//! status first). It registers the pid here instead, and the reaper hands it
//! the exit status. [`spawn_watched`] registers under the lock the reaper
//! takes ([`reap_and_deliver`]), so even a child started from another
//! thread cannot exit unregistered.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// Held while a child is spawned and registered, and while the reaper
/// collects: a child's exit is never collected before it is registered.
static SPAWNING: Mutex<()> = Mutex::new(());

fn spawning() -> std::sync::MutexGuard<'static, ()> {
    SPAWNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Collects every exited child and hands each registered one its status.
/// Returns the orphans (nobody waited for them).
pub fn reap_and_deliver() -> Vec<(Pid, WaitStatus)> {
    let _g = spawning();
    super::reaper::reap_all()
        .into_iter()
        .filter(|(pid, status)| !deliver(pid.as_raw(), *status))
        .collect()
}

/// Spawns `cmd` and registers the child; the receiver gets its status.
pub fn spawn_watched(cmd: &mut Command) -> std::io::Result<(Child, oneshot::Receiver<WaitStatus>)> {
    let _g = spawning();
    let child = cmd.spawn()?;
    let rx = watch(child.id() as i32);
    Ok((child, rx))
}

fn exit_status(status: WaitStatus) -> ExitStatus {
    match status {
        WaitStatus::Exited(_, code) => ExitStatus::from_raw((code & 0xff) << 8),
        WaitStatus::Signaled(_, sig, _) => ExitStatus::from_raw(sig as i32),
        _ => ExitStatus::from_raw(0xff << 8),
    }
}

/// Runs a tool to its end and collects its output, like
/// [`Command::output`], whether or not PID 1's reaper is running: the
/// status comes from the reaper, or from our own wait when it was not.
/// Blocking: call it from a blocking thread once the runtime runs.
pub fn output(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (mut child, mut rx) = spawn_watched(cmd)?;
    let pid = child.id() as i32;
    let mut err = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = &mut err {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    let mut stdout = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    let stderr = errors.join().unwrap_or_default();
    let status = loop {
        match rx.try_recv() {
            Ok(status) => break status,
            Err(oneshot::error::TryRecvError::Closed) => break WaitStatus::StillAlive,
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let collected = {
            let _g = spawning();
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) | Err(Errno::EINTR) => None,
                Ok(status) => {
                    waiting()
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&pid);
                    Some(status)
                }
                Err(_) => None,
            }
        };
        if let Some(status) = collected {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status: exit_status(status),
        stdout,
        stderr,
    })
}

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

    #[test]
    fn output_collects_a_tool_run_with_or_without_a_reaper() {
        let out =
            output(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        // With a reaper collecting in another thread, as under PID 1 (it
        // would collect other tests' children too: they wait).
        let _alone = crate::testlog::reaping_any_child();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reaper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    reap_and_deliver();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        for _ in 0..20 {
            let out = output(Command::new("sh").args(["-c", "exit 7"])).unwrap();
            assert_eq!(out.status.code(), Some(7));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reaper.join().unwrap();
    }

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
