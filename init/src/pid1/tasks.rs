//! PID 1's own long-lived tasks (the network, time, stats, hosts file and
//! report followers) kept running: one that panics is logged and started
//! again, after 1 s, doubling up to a minute. A panic in a spawned task is
//! caught by tokio and used to end that task silently, leaving the
//! appliance without its network or clock follower until the next boot.

use std::future::Future;
use std::time::Duration;

use tracing::error;

/// The longest wait between two starts of a task that keeps panicking.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// Runs the task `make` makes, and a new one each time it panics; a task
/// that returns is done.
pub fn keep<F, Fut>(name: &'static str, make: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        loop {
            match tokio::spawn(make()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    let payload = e.into_panic();
                    let why = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".into());
                    error!(
                        "{name}: panicked ({why}); started again in {} s",
                        delay.as_secs()
                    );
                }
                // Cancelled: the runtime is going away.
                Err(_) => return,
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_task_that_panics_is_started_again_and_one_that_returns_is_done() {
        let log = crate::testlog::capture();
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        let t0 = tokio::time::Instant::now();
        keep("follower", move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    panic!("bad answer {n}");
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 4);
        // 1 + 2 + 4 s between the starts.
        assert_eq!(t0.elapsed().as_secs(), 7);
        assert_eq!(
            log.lines()[0],
            "error: follower: panicked (bad answer 0); started again in 1 s"
        );
        assert_eq!(log.lines().len(), 3);
    }
}
