//! Clock discipline: given the offset the selection settled on, decide
//! whether to step the clock, slew it, or wait; and how often to poll.
//!
//! - Step when the offset is beyond `STEP_THRESHOLD` (128 ms, as ntpd and
//!   RFC 5905 STEPT): at the first sync at once, since a box that booted with
//!   a wrong RTC should have the right time before anyone uses it; later only
//!   once `SPIKE_LIMIT` updates in a row agree, so one bad exchange cannot
//!   throw the clock.
//! - Otherwise slew (adjtimex): the clock is sped up or slowed down and never
//!   jumps, so timestamps stay monotonic for the services.
//! - The poll interval doubles after `STABLE_UPDATES` good updates in a row,
//!   up to the maximum, and falls back toward the minimum when offsets grow
//!   or the clock had to be stepped.
//!
//! Frequency is not trained (no PLL/FLL): the residual drift of the crystal
//! is corrected by the next slew. See docs/time.md.

use std::time::Duration;

/// Offsets beyond this are stepped, not slewed (RFC 5905 STEPT).
pub const STEP_THRESHOLD: f64 = 0.128;
/// Consecutive large offsets needed before stepping after the first sync.
pub const SPIKE_LIMIT: u32 = 3;
/// An update is "stable" when its offset is within this.
pub const STABLE_OFFSET: f64 = 0.010;
/// Stable updates in a row before the poll interval doubles.
pub const STABLE_UPDATES: u32 = 4;
/// An offset beyond this halves the poll interval.
pub const UNSTABLE_OFFSET: f64 = 0.050;

/// What to do to the local clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockAction {
    /// Jump by this many seconds.
    Step(f64),
    /// Slew by this many seconds (added to any slew still in progress).
    Slew(f64),
}

#[derive(Debug, Clone)]
pub struct Discipline {
    min_poll: Duration,
    max_poll: Duration,
    poll: Duration,
    synced: bool,
    stable: u32,
    spikes: u32,
}

impl Discipline {
    pub fn new(min_poll: Duration, max_poll: Duration) -> Self {
        Discipline {
            min_poll,
            max_poll: max_poll.max(min_poll),
            poll: min_poll,
            synced: false,
            stable: 0,
            spikes: 0,
        }
    }

    /// The current poll interval for reachable servers.
    pub fn poll(&self) -> Duration {
        self.poll
    }

    /// Whether the clock has been set from the network at least once.
    pub fn has_synced(&self) -> bool {
        self.synced
    }

    /// One update from the selection; returns what to do to the clock, or
    /// `None` to hold (a suspected spike).
    pub fn update(&mut self, offset: f64) -> Option<ClockAction> {
        let big = offset.abs() > STEP_THRESHOLD;
        if !self.synced {
            self.synced = true;
            self.stable = 0;
            return Some(if big {
                ClockAction::Step(offset)
            } else {
                ClockAction::Slew(offset)
            });
        }
        if big {
            self.spikes += 1;
            self.stable = 0;
            // Confirm (or dismiss) the jump quickly.
            self.poll = self.min_poll;
            if self.spikes < SPIKE_LIMIT {
                return None;
            }
            self.spikes = 0;
            return Some(ClockAction::Step(offset));
        }
        self.spikes = 0;
        if offset.abs() <= STABLE_OFFSET {
            self.stable += 1;
            if self.stable >= STABLE_UPDATES {
                self.stable = 0;
                self.poll = (self.poll * 2).min(self.max_poll);
            }
        } else {
            self.stable = 0;
            if offset.abs() > UNSTABLE_OFFSET {
                self.poll = (self.poll / 2).max(self.min_poll);
            }
        }
        Some(ClockAction::Slew(offset))
    }

    /// No selection possible (servers lost or disagreeing): poll more often
    /// to find out sooner.
    pub fn trouble(&mut self) {
        self.stable = 0;
        self.poll = (self.poll / 2).max(self.min_poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Discipline {
        Discipline::new(Duration::from_secs(64), Duration::from_secs(1024))
    }

    #[test]
    fn large_offset_at_first_sync_is_stepped() {
        let mut d = d();
        assert_eq!(d.update(-3600.0), Some(ClockAction::Step(-3600.0)));
        assert!(d.has_synced());
    }

    #[test]
    fn small_offset_at_first_sync_is_slewed() {
        let mut d = d();
        assert_eq!(d.update(0.05), Some(ClockAction::Slew(0.05)));
    }

    #[test]
    fn later_large_offset_needs_confirmation_before_a_step() {
        let mut d = d();
        d.update(0.001);
        d.poll = Duration::from_secs(256);
        assert_eq!(d.update(0.5), None);
        assert_eq!(d.poll(), Duration::from_secs(64), "polls fast to confirm");
        assert_eq!(d.update(0.5), None);
        assert_eq!(d.update(0.5), Some(ClockAction::Step(0.5)));
    }

    #[test]
    fn a_single_spike_is_ignored() {
        let mut d = d();
        d.update(0.001);
        assert_eq!(d.update(2.0), None);
        assert_eq!(d.update(0.002), Some(ClockAction::Slew(0.002)));
        assert_eq!(d.update(2.0), None, "spike count restarted");
    }

    #[test]
    fn poll_grows_while_stable_up_to_the_maximum() {
        let mut d = d();
        d.update(0.0);
        let mut seen = vec![d.poll().as_secs()];
        for _ in 0..40 {
            d.update(0.001);
            if seen.last() != Some(&d.poll().as_secs()) {
                seen.push(d.poll().as_secs());
            }
        }
        assert_eq!(seen, vec![64, 128, 256, 512, 1024]);
    }

    #[test]
    fn poll_shrinks_on_large_offsets_and_trouble() {
        let mut d = d();
        d.update(0.0);
        d.poll = Duration::from_secs(1024);
        d.update(0.08);
        assert_eq!(d.poll(), Duration::from_secs(512));
        d.trouble();
        assert_eq!(d.poll(), Duration::from_secs(256));
        for _ in 0..10 {
            d.trouble();
        }
        assert_eq!(d.poll(), Duration::from_secs(64));
    }

    #[test]
    fn test_sized_poll_interval() {
        let mut d = Discipline::new(Duration::from_secs(1), Duration::from_secs(4));
        for _ in 0..20 {
            d.update(0.0);
        }
        assert_eq!(d.poll(), Duration::from_secs(4));
    }
}
