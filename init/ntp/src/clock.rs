//! The local clock behind a trait: reading it, stepping it, slewing it. The
//! real one (`SystemClock`) goes through clock_settime/adjtimex; the test one
//! (`OffsetClock`) is the host's time plus a virtual offset, so tests can
//! start "one hour wrong" and check the correction without ever touching the
//! host's clock.

use std::io;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::timestamp::offset_time;

#[derive(Debug, Error)]
pub enum ClockError {
    #[error("stepping the clock by {offset:.6} s (adjtimex ADJ_SETOFFSET): {source}")]
    Step { offset: f64, source: io::Error },
    #[error("slewing the clock by {offset:.6} s (adjtimex ADJ_OFFSET_SINGLESHOT): {source}")]
    Slew { offset: f64, source: io::Error },
    #[error("reading the pending slew (adjtimex ADJ_OFFSET_SS_READ): {source}")]
    ReadSlew { source: io::Error },
    #[error("setting the clock (clock_settime CLOCK_REALTIME): {source}")]
    Set { source: io::Error },
}

/// The clock the client reads and corrects.
pub trait Clock: Send + Sync + 'static {
    /// The current time by this clock.
    fn now(&self) -> SystemTime;
    /// Jumps the clock by `offset` seconds (positive: forward).
    fn step(&self, offset: f64) -> Result<(), ClockError>;
    /// Adds `offset` seconds to the correction being slewed in; the clock
    /// runs slightly fast or slow until it has gained or lost that much.
    fn slew(&self, offset: f64) -> Result<(), ClockError>;
    /// Seconds of slew still to be applied. Subtracted from each measured
    /// offset, so a measurement taken while a slew is in progress says how
    /// far off the clock will be once it is done, and is not slewed twice.
    fn pending_slew(&self) -> f64;
    /// Sets the clock to `t` (the clock floor at boot).
    fn set(&self, t: SystemTime) -> Result<(), ClockError>;
}

/// CLOCK_REALTIME, corrected through the kernel's adjtimex interface as
/// chrony does: ADJ_SETOFFSET steps atomically (no read-modify-write race),
/// ADJ_OFFSET_SINGLESHOT slews at the kernel's fixed 500 ppm.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    fn adjtimex(tx: &mut libc::timex) -> io::Result<()> {
        // SAFETY: `tx` is a valid, initialised timex the kernel reads and
        // writes back for the duration of the call only.
        let rc = unsafe { libc::adjtimex(tx) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn zeroed_timex() -> libc::timex {
        // SAFETY: timex is a plain C struct of integers; all-zero is valid
        // and means "change nothing".
        unsafe { std::mem::zeroed() }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn step(&self, offset: f64) -> Result<(), ClockError> {
        let mut tx = Self::zeroed_timex();
        tx.modes = libc::ADJ_SETOFFSET | libc::ADJ_NANO;
        // The kernel wants tv_sec + tv_usec (nanoseconds under ADJ_NANO)
        // with 0 <= tv_usec < 1e9, also for negative offsets.
        let secs = offset.floor();
        let nanos = ((offset - secs) * 1e9).round() as i64;
        let (secs, nanos) = if nanos >= 1_000_000_000 {
            (secs as i64 + 1, 0)
        } else {
            (secs as i64, nanos)
        };
        tx.time.tv_sec = secs as _;
        tx.time.tv_usec = nanos as _;
        Self::adjtimex(&mut tx).map_err(|source| ClockError::Step { offset, source })
    }

    fn slew(&self, offset: f64) -> Result<(), ClockError> {
        let pending = self.read_pending_slew()?;
        let mut tx = Self::zeroed_timex();
        tx.modes = libc::ADJ_OFFSET_SINGLESHOT;
        tx.offset = ((pending + offset) * 1e6).round() as _;
        Self::adjtimex(&mut tx).map_err(|source| ClockError::Slew { offset, source })
    }

    fn pending_slew(&self) -> f64 {
        // A failed read means no slew we know of: 0 is the safe answer.
        self.read_pending_slew().unwrap_or(0.0)
    }

    fn set(&self, t: SystemTime) -> Result<(), ClockError> {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let ts = libc::timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        };
        // SAFETY: `ts` is a valid timespec that outlives the call.
        let rc = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
        if rc < 0 {
            return Err(ClockError::Set {
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

impl SystemClock {
    /// The slew still pending in the kernel, seconds.
    pub fn read_pending_slew(&self) -> Result<f64, ClockError> {
        let mut tx = Self::zeroed_timex();
        tx.modes = libc::ADJ_OFFSET_SS_READ;
        Self::adjtimex(&mut tx).map_err(|source| ClockError::ReadSlew { source })?;
        Ok(tx.offset as f64 / 1e6)
    }
}

/// A virtual clock for tests: the host's time plus an offset that `step`,
/// `slew` and `set` change. Slews apply at once (a real slew takes
/// |offset| / 500 ppm); `pending_slew` is therefore always 0, and a test
/// sees the full correction as soon as the client decides it.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: Mutex<f64>,
    steps: Mutex<Vec<f64>>,
    slews: Mutex<Vec<f64>>,
}

impl OffsetClock {
    /// A clock `offset` seconds ahead of the host (negative: behind).
    pub fn new(offset: f64) -> Self {
        OffsetClock {
            offset: Mutex::new(offset),
            ..Default::default()
        }
    }

    /// How far this clock is from the host's, seconds: the error left.
    pub fn offset(&self) -> f64 {
        *lock(&self.offset)
    }

    /// Every step applied so far, in order.
    pub fn steps(&self) -> Vec<f64> {
        lock(&self.steps).clone()
    }

    /// Every slew applied so far, in order.
    pub fn slews(&self) -> Vec<f64> {
        lock(&self.slews).clone()
    }
}

/// A poisoned lock only means another thread panicked holding a float.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Clock for OffsetClock {
    fn now(&self) -> SystemTime {
        offset_time(SystemTime::now(), self.offset())
    }

    fn step(&self, offset: f64) -> Result<(), ClockError> {
        *lock(&self.offset) += offset;
        lock(&self.steps).push(offset);
        Ok(())
    }

    fn slew(&self, offset: f64) -> Result<(), ClockError> {
        *lock(&self.offset) += offset;
        lock(&self.slews).push(offset);
        Ok(())
    }

    fn pending_slew(&self) -> f64 {
        0.0
    }

    fn set(&self, t: SystemTime) -> Result<(), ClockError> {
        let host = SystemTime::now();
        let off = match t.duration_since(host) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        *lock(&self.offset) = off;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn offset_clock_steps_and_slews() {
        let c = OffsetClock::new(-3600.0);
        let behind = SystemTime::now().duration_since(c.now()).unwrap();
        assert!((behind.as_secs_f64() - 3600.0).abs() < 1.0);
        c.step(3600.0).unwrap();
        c.slew(0.25).unwrap();
        assert!((c.offset() - 0.25).abs() < 1e-12);
        assert_eq!(c.steps(), vec![3600.0]);
        assert_eq!(c.slews(), vec![0.25]);
        assert_eq!(c.pending_slew(), 0.0);
    }

    #[test]
    fn offset_clock_set() {
        let c = OffsetClock::new(0.0);
        c.set(UNIX_EPOCH + Duration::from_secs(86_400)).unwrap();
        let t = c.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!((86_399..=86_401).contains(&t));
    }

    #[test]
    fn system_clock_reads_pending_slew_without_changing_it() {
        // Read-only adjtimex is allowed to anyone and changes nothing.
        let p = SystemClock.read_pending_slew().unwrap();
        assert!(p.abs() < 10.0);
    }
}
