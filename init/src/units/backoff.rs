//! When to start a unit again after it exits: exponential backoff, reset by
//! a run that lasted; a unit that keeps failing quickly is marked failed and
//! tried again at a slow interval (or at once when an administrator restarts
//! it). No clock inside: the caller passes the times.

use std::time::Instant;

use super::table::RestartPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start again at this instant.
    RestartAt(Instant),
    /// Too many quick failures in a row: failed, tried again at this
    /// instant (the policy's slow `retry_failed`) unless restarted sooner.
    Failed { retry_at: Instant },
}

#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RestartPolicy,
    /// Quick failures in a row.
    quick_failures: u32,
}

impl Backoff {
    pub fn new(policy: RestartPolicy) -> Self {
        Backoff {
            policy,
            quick_failures: 0,
        }
    }

    /// The unit started at `started` exited at `now`.
    pub fn exited(&mut self, started: Instant, now: Instant) -> AfterExit {
        if now.saturating_duration_since(started) >= self.policy.stable {
            self.quick_failures = 0;
        }
        self.quick_failures += 1;
        if self.quick_failures >= self.policy.give_up_after {
            return AfterExit::Failed {
                retry_at: now + self.policy.retry_failed,
            };
        }
        let delay = self
            .policy
            .first
            .saturating_mul(1 << (self.quick_failures - 1).min(16))
            .min(self.policy.max);
        AfterExit::RestartAt(now + delay)
    }

    /// An administrator's restart: a fresh start.
    pub fn reset(&mut self) {
        self.quick_failures = 0;
    }

    pub fn quick_failures(&self) -> u32 {
        self.quick_failures
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::units::table::RESTART;

    #[test]
    fn quick_failures_back_off_then_fail_and_retry_slowly() {
        let mut b = Backoff::new(RESTART);
        let t0 = Instant::now();
        let mut t = t0;
        let mut delays = Vec::new();
        loop {
            let started = t;
            t += Duration::from_secs(1);
            match b.exited(started, t) {
                AfterExit::RestartAt(at) => {
                    delays.push((at - t).as_secs());
                    t = at;
                }
                AfterExit::Failed { retry_at } => {
                    assert_eq!(retry_at, t + RESTART.retry_failed);
                    break;
                }
            }
        }
        assert_eq!(delays, [1, 2, 4, 8]);
        assert_eq!(b.quick_failures(), RESTART.give_up_after);
        // The slow retry fails quickly again: failed again, for as long.
        let started = t + RESTART.retry_failed;
        let t = started + Duration::from_secs(1);
        assert_eq!(
            b.exited(started, t),
            AfterExit::Failed {
                retry_at: t + RESTART.retry_failed
            }
        );
        b.reset();
        assert_eq!(
            b.exited(t, t),
            AfterExit::RestartAt(t + Duration::from_secs(1))
        );
    }

    #[test]
    fn a_run_that_lasted_resets_the_backoff() {
        let mut b = Backoff::new(RESTART);
        let t = Instant::now();
        for _ in 0..3 {
            b.exited(t, t);
        }
        let later = t + RESTART.stable + Duration::from_secs(1);
        assert_eq!(
            b.exited(t, later),
            AfterExit::RestartAt(later + RESTART.first)
        );
    }

    #[test]
    fn the_delay_is_capped() {
        let policy = RestartPolicy {
            give_up_after: 100,
            ..RESTART
        };
        let mut b = Backoff::new(policy);
        let t = Instant::now();
        let mut last = AfterExit::Failed { retry_at: t };
        for _ in 0..50 {
            last = b.exited(t, t);
        }
        assert_eq!(last, AfterExit::RestartAt(t + RESTART.max));
    }
}
