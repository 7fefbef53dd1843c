//! NTP time formats (RFC 5905 §6): the 64-bit timestamp and the 32-bit short
//! format, their conversion to and from `SystemTime`, and era-safe differences.
//!
//! A timestamp holds seconds since 1900 modulo 2^32 (one "era" is 136 years),
//! so a timestamp alone does not name an instant: it is placed in the era
//! closest to a pivot the caller knows (the local clock). Differences between
//! two timestamps use wrapping two's-complement arithmetic, which is correct
//! across an era boundary as long as the two are within 68 years of each other
//! (RFC 5905 §6, "the 64-bit timestamp ... arithmetic").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (the NTP prime epoch) to 1970-01-01 (Unix).
pub const UNIX_OFFSET_SECS: u64 = 2_208_988_800;

const FRAC: f64 = 4_294_967_296.0; // 2^32

/// A 64-bit NTP timestamp: 32 bits of seconds in the era, 32 bits of fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    pub const ZERO: NtpTimestamp = NtpTimestamp(0);

    /// The timestamp of `t`; instants before 1900 or after the current era
    /// wrap, which is what the wire format does.
    pub fn from_system_time(t: SystemTime) -> Self {
        let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                (d.as_secs().wrapping_add(UNIX_OFFSET_SECS)) as i64,
                d.subsec_nanos(),
            ),
            Err(e) => {
                // Before 1970: count backwards, keeping the fraction positive.
                let d = e.duration();
                let mut secs = UNIX_OFFSET_SECS as i64 - d.as_secs() as i64;
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                (secs, nanos)
            }
        };
        let frac = ((u64::from(nanos) << 32) / 1_000_000_000) as u32;
        NtpTimestamp(((secs as u32 as u64) << 32) | u64::from(frac))
    }

    /// The instant this timestamp names in the era closest to `pivot`.
    pub fn to_system_time(self, pivot: SystemTime) -> SystemTime {
        let here = NtpTimestamp::from_system_time(pivot);
        let diff = self.diff(here);
        offset_time(pivot, diff)
    }

    /// `self - earlier` in seconds, correct across an era boundary.
    pub fn diff(self, earlier: NtpTimestamp) -> f64 {
        self.0.wrapping_sub(earlier.0) as i64 as f64 / FRAC
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// `t` moved by `secs` seconds (negative moves back).
pub fn offset_time(t: SystemTime, secs: f64) -> SystemTime {
    let d = Duration::from_secs_f64(secs.abs().min(1e12));
    if secs >= 0.0 {
        t.checked_add(d).unwrap_or(t)
    } else {
        t.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

/// The 32-bit short format (16.16 seconds), used for root delay and dispersion.
pub fn short_to_secs(v: u32) -> f64 {
    f64::from(v) / 65_536.0
}

pub fn secs_to_short(secs: f64) -> u32 {
    (secs.clamp(0.0, 65_535.0) * 65_536.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_is_ntp_2208988800() {
        let ts = NtpTimestamp::from_system_time(UNIX_EPOCH);
        assert_eq!(ts.0 >> 32, UNIX_OFFSET_SECS);
        assert_eq!(ts.0 & 0xffff_ffff, 0);
    }

    #[test]
    fn round_trip_keeps_sub_microsecond_precision() {
        let t = UNIX_EPOCH + Duration::new(1_750_000_000, 123_456_789);
        let back = NtpTimestamp::from_system_time(t).to_system_time(t);
        let err = match back.duration_since(t) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(err < Duration::from_nanos(2), "{err:?}");
    }

    #[test]
    fn difference_across_the_2036_era_boundary() {
        // Era 0 ends 2036-02-07T06:28:16Z = Unix 2085978496.
        let boundary = UNIX_EPOCH + Duration::from_secs(2_085_978_496);
        let before = NtpTimestamp::from_system_time(boundary - Duration::from_secs(1));
        let after = NtpTimestamp::from_system_time(boundary + Duration::from_secs(1));
        assert!(after.0 < before.0, "the raw value wraps");
        assert!((after.diff(before) - 2.0).abs() < 1e-9);
        assert!((before.diff(after) + 2.0).abs() < 1e-9);
        // Placed near a pivot in era 1, the timestamp lands in era 1.
        let placed = after.to_system_time(boundary);
        assert_eq!(placed, boundary + Duration::from_secs(1));
    }

    #[test]
    fn before_1970_counts_back() {
        let t = UNIX_EPOCH - Duration::new(10, 250_000_000);
        let ts = NtpTimestamp::from_system_time(t);
        let unix = NtpTimestamp::from_system_time(UNIX_EPOCH);
        assert!((ts.diff(unix) + 10.25).abs() < 1e-9);
    }

    #[test]
    fn short_format() {
        assert_eq!(secs_to_short(1.5), 0x0001_8000);
        assert_eq!(short_to_secs(0x0001_8000), 1.5);
        assert_eq!(secs_to_short(-1.0), 0);
    }
}
