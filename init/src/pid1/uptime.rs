//! Time since the kernel started, the clock every boot step is logged against.

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// CLOCK_BOOTTIME: counts from kernel start, including suspend; what the
/// "ready in N ms" line and the kernel's own printk timestamps measure.
pub fn uptime() -> Duration {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}
