//! When to check in: every interval after a check-in that reached the
//! platform; after failures, a jittered exponential backoff, so a fleet of
//! appliances does not retry in step when the platform comes back.
//!
//! Sans-IO: the caller passes the time and the jitter (a number in [0, 1))
//! and sleeps until [`Schedule::next_at`].

use std::time::{Duration, Instant};

/// The first retry waits at most this long (less when the interval is
/// shorter), then the wait doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(10);
/// The longest wait between retries, unless the interval is longer.
pub const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    /// Failed attempts since the last success.
    failures: u32,
    next: Instant,
}

impl Schedule {
    /// The first check-in is due at once.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Schedule {
            interval,
            failures: 0,
            next: now,
        }
    }

    pub fn next_at(&self) -> Instant {
        self.next
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The platform answered: the next check-in is one interval away.
    pub fn success(&mut self, now: Instant) {
        self.failures = 0;
        self.next = now + self.interval;
    }

    /// The platform was not reached: wait the backoff, of which the second
    /// half is random ("equal jitter": never less than half the step).
    pub fn failure(&mut self, now: Instant, jitter: f64) {
        self.failures = self.failures.saturating_add(1);
        let first = BACKOFF_FIRST.min(self.interval);
        let max = BACKOFF_MAX.max(self.interval);
        let step = first
            .saturating_mul(1u32 << (self.failures - 1).min(20))
            .min(max);
        let jitter = jitter.clamp(0.0, 1.0);
        self.next = now + step / 2 + step.mul_f64(jitter) / 2;
    }

    /// A new interval (from the platform or the administrator) takes effect
    /// from the last check-in: the next one moves earlier or later.
    pub fn set_interval(&mut self, interval: Duration, now: Instant) {
        if self.failures == 0 {
            let last = self.next.checked_sub(self.interval).unwrap_or(now);
            self.next = (last + interval).max(now);
        }
        self.interval = interval;
    }

    /// Check in now (after a registration).
    pub fn due_now(&mut self, now: Instant) {
        self.next = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn checks_in_at_once_then_every_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(3 * MIN, t0);
        assert_eq!(s.next_at(), t0);
        s.success(t0);
        assert_eq!(s.next_at(), t0 + 3 * MIN);
        s.success(t0 + 3 * MIN);
        assert_eq!(s.next_at(), t0 + 6 * MIN);
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() {
        let t0 = Instant::now();
        let mut s = Schedule::new(3 * MIN, t0);
        let mut waits = Vec::new();
        for _ in 0..10 {
            s.failure(t0, 1.0);
            waits.push(s.next_at() - t0);
        }
        let secs: Vec<u64> = waits.iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 640, 900, 900, 900]);
        // With no jitter, half the step.
        s.failure(t0, 0.0);
        assert_eq!(s.next_at() - t0, Duration::from_secs(450));
        s.failure(t0, 0.5);
        assert_eq!(s.next_at() - t0, Duration::from_secs(675));
        // Back to the interval after a success.
        s.success(t0);
        assert_eq!((s.next_at() - t0, s.failures()), (3 * MIN, 0));
    }

    #[test]
    fn a_short_interval_starts_the_backoff_lower_and_a_long_one_caps_it_higher() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), t0);
        s.failure(t0, 1.0);
        assert_eq!(s.next_at() - t0, Duration::from_secs(2));
        s.failure(t0, 1.0);
        assert_eq!(s.next_at() - t0, Duration::from_secs(4));
        let mut s = Schedule::new(60 * MIN, t0);
        for _ in 0..30 {
            s.failure(t0, 1.0);
        }
        assert_eq!(s.next_at() - t0, 60 * MIN);
    }

    #[test]
    fn a_new_interval_counts_from_the_last_check_in() {
        let t0 = Instant::now();
        let mut s = Schedule::new(3 * MIN, t0);
        s.success(t0);
        s.set_interval(MIN, t0 + Duration::from_secs(10));
        assert_eq!(s.next_at(), t0 + MIN);
        // Already past: due now.
        s.set_interval(Duration::from_secs(5), t0 + Duration::from_secs(30));
        assert_eq!(s.next_at(), t0 + Duration::from_secs(30));
    }
}
