//! The clock floor: a time the clock is never allowed to be before. A box
//! with a dead RTC boots in 1970; certificates, logs and DHCP leases all go
//! wrong from there. At boot PID 1 raises the clock to the floor, and the
//! client never steps the clock below it (a server claiming 1970 is wrong).
//!
//! The floor is the later of a fixed date (this code cannot run before it
//! was written) and `SOURCE_DATE_EPOCH` at build time when the image build
//! sets it (reproducible builds set it to the last commit's date).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::{Clock, ClockError};

/// 2025-01-01T00:00:00Z.
pub const FIXED_FLOOR_UNIX_SECS: u64 = 1_735_689_600;

/// The floor for this build.
pub fn clock_floor() -> SystemTime {
    let build = option_env!("SOURCE_DATE_EPOCH")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(FIXED_FLOOR_UNIX_SECS.max(build))
}

/// Raises `clock` to `floor` if it is below it. Returns whether it did.
/// Cheap and never blocks: PID 1 calls it early at boot, before any service
/// reads the time, with `SystemClock` and `clock_floor()`.
pub fn enforce_floor<C: Clock + ?Sized>(clock: &C, floor: SystemTime) -> Result<bool, ClockError> {
    if clock.now() >= floor {
        return Ok(false);
    }
    tracing::warn!(
        now = ?clock.now(),
        floor = ?floor,
        "clock is before the floor (dead RTC?); raising it to the floor"
    );
    clock.set(floor)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::OffsetClock;

    #[test]
    fn floor_is_at_least_2025() {
        assert!(clock_floor() >= UNIX_EPOCH + Duration::from_secs(FIXED_FLOOR_UNIX_SECS));
    }

    #[test]
    fn a_1970_clock_is_raised_to_the_floor() {
        let host = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let c = OffsetClock::new(-host.as_secs_f64() + 5.0); // 1970-01-01T00:00:05
        let floor = clock_floor();
        assert!(enforce_floor(&c, floor).unwrap());
        let err = c.now().duration_since(floor).unwrap();
        assert!(err < Duration::from_secs(1));
    }

    #[test]
    fn a_clock_past_the_floor_is_left_alone() {
        let c = OffsetClock::new(0.0);
        assert!(!enforce_floor(&c, clock_floor()).unwrap());
        assert_eq!(c.offset(), 0.0);
    }
}
