//! One measurement against one server: offset and round-trip delay from the
//! four timestamps of an exchange (RFC 5905 §8), with the dispersion that
//! bounds its error.
//!
//! Offset convention, used throughout the crate: positive means the server is
//! ahead of us, so the local clock must move forward by `offset`.

use std::time::Instant;

use thiserror::Error;

use crate::timestamp::NtpTimestamp;

/// Our own clock's read precision, taken as 1 µs (clock_gettime on Linux is
/// far better; this only keeps dispersions from being zero).
pub const LOCAL_PRECISION: f64 = 1e-6;

/// Growth of dispersion with age: 15 ppm, the frequency tolerance (RFC 5905 PHI).
pub const PHI: f64 = 15e-6;

#[derive(Debug, Error, PartialEq)]
pub enum SampleError {
    /// The reply claims to have been sent before it was received by more
    /// than the round trip allows: a clock stepped mid-exchange, or a lie.
    #[error("exchange has negative round-trip delay ({delay_ms:.3} ms)")]
    NegativeDelay { delay_ms: f64 },
}

/// A measurement, with `offset` already corrected for any slew the kernel
/// had still to apply at the time (see `Clock::pending_slew`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds; positive: the server is ahead.
    pub offset: f64,
    /// Round-trip delay in seconds, never negative.
    pub delay: f64,
    /// Error bound of this sample at the time it was taken, seconds.
    pub dispersion: f64,
    /// When it was taken (monotonic).
    pub at: Instant,
}

/// Offset and delay from T1 (client send), T2 (server receive), T3 (server
/// send) and T4 (client receive), RFC 5905 §8:
/// offset = ((T2 - T1) + (T3 - T4)) / 2, delay = (T4 - T1) - (T3 - T2).
/// Each difference is taken on the raw timestamps first so that the
/// arithmetic stays exact across an NTP era boundary.
pub fn offset_delay(
    t1: NtpTimestamp,
    t2: NtpTimestamp,
    t3: NtpTimestamp,
    t4: NtpTimestamp,
) -> Result<(f64, f64), SampleError> {
    let offset = (t2.diff(t1) + t3.diff(t4)) / 2.0;
    let delay = t4.diff(t1) - t3.diff(t2);
    // A few microseconds below zero is rounding and timestamping noise
    // between two clocks on one host; more is a broken exchange.
    if delay < -1e-3 {
        return Err(SampleError::NegativeDelay {
            delay_ms: delay * 1e3,
        });
    }
    Ok((offset, delay.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn ts(secs: f64) -> NtpTimestamp {
        NtpTimestamp::from_system_time(UNIX_EPOCH + Duration::from_secs_f64(secs))
    }

    #[test]
    fn symmetric_path_gives_exact_offset() {
        // Server 5 s ahead, 10 ms each way, 1 ms processing.
        let (o, d) = offset_delay(ts(1000.0), ts(1005.010), ts(1005.011), ts(1000.021)).unwrap();
        assert!((o - 5.0).abs() < 1e-6, "{o}");
        assert!((d - 0.020).abs() < 1e-6, "{d}");
    }

    #[test]
    fn server_behind_gives_negative_offset() {
        let (o, _) = offset_delay(ts(1000.0), ts(900.001), ts(900.002), ts(1000.003)).unwrap();
        assert!((o + 100.0).abs() < 1e-6, "{o}");
    }

    #[test]
    fn negative_delay_is_refused() {
        let r = offset_delay(ts(1000.0), ts(1000.0), ts(1000.5), ts(1000.1));
        assert!(matches!(r, Err(SampleError::NegativeDelay { .. })));
    }

    #[test]
    fn exchange_straddling_the_era_boundary() {
        let boundary = 2_085_978_496.0; // 2036-02-07T06:28:16Z
        let (o, d) = offset_delay(
            ts(boundary - 0.010),
            ts(boundary + 1.0),
            ts(boundary + 1.001),
            ts(boundary + 0.001),
        )
        .unwrap();
        assert!((o - 1.005).abs() < 1e-6, "{o}");
        assert!((d - 0.010).abs() < 1e-6, "{d}");
    }
}
