//! The per-server clock filter (RFC 5905 §10, simplified): keeps the last
//! eight samples of one server and offers the one with the smallest
//! round-trip delay, since queueing delay is what makes an NTP sample wrong
//! (an asymmetric wait adds up to half of it to the offset). Jitter is the
//! spread of the other samples' offsets around the chosen one.

use std::collections::VecDeque;
use std::time::Instant;

use crate::sample::{Sample, LOCAL_PRECISION, PHI};

/// Samples kept per server (RFC 5905 NSTAGE).
pub const FILTER_LEN: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct ClockFilter {
    samples: VecDeque<Sample>,
}

/// What the filter makes of its samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterOutput {
    pub offset: f64,
    pub delay: f64,
    /// Dispersion of the chosen sample, grown with its age.
    pub dispersion: f64,
    /// RMS of the other samples' offsets around the chosen one, seconds.
    pub jitter: f64,
    /// When the chosen sample was taken.
    pub at: Instant,
}

impl ClockFilter {
    pub fn add(&mut self, sample: Sample) {
        if self.samples.len() == FILTER_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// Moves every stored offset by `-correction` after the local clock was
    /// corrected by `correction`: the samples then still say how far off the
    /// clock is now, so the filter keeps its history across a correction.
    pub fn shift(&mut self, correction: f64) {
        for s in &mut self.samples {
            s.offset -= correction;
        }
    }

    /// The minimum-delay sample, its aged dispersion and the jitter.
    pub fn best(&self, now: Instant) -> Option<FilterOutput> {
        let best = self
            .samples
            .iter()
            .min_by(|a, b| a.delay.total_cmp(&b.delay))?;
        let n = self.samples.len();
        let jitter = if n > 1 {
            let sum: f64 = self
                .samples
                .iter()
                .map(|s| (s.offset - best.offset).powi(2))
                .sum();
            (sum / (n - 1) as f64).sqrt()
        } else {
            0.0
        }
        .max(LOCAL_PRECISION);
        let age = now.saturating_duration_since(best.at).as_secs_f64();
        Some(FilterOutput {
            offset: best.offset,
            delay: best.delay,
            dispersion: best.dispersion + PHI * age,
            jitter,
            at: best.at,
        })
    }

    /// The newest sample, for status reporting.
    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(at: Instant, offset: f64, delay: f64) -> Sample {
        Sample {
            offset,
            delay,
            dispersion: 1e-5,
            at,
        }
    }

    #[test]
    fn empty_filter_has_no_output() {
        assert_eq!(ClockFilter::default().best(Instant::now()), None);
    }

    #[test]
    fn picks_the_minimum_delay_sample() {
        let t = Instant::now();
        let mut f = ClockFilter::default();
        f.add(sample(t, 0.030, 0.060)); // delayed on the way back
        f.add(sample(t, 0.001, 0.002));
        f.add(sample(t, -0.020, 0.045)); // delayed on the way out
        let out = f.best(t).unwrap();
        assert_eq!(out.offset, 0.001);
        assert_eq!(out.delay, 0.002);
        let expect = ((0.029f64.powi(2) + 0.021f64.powi(2)) / 2.0).sqrt();
        assert!((out.jitter - expect).abs() < 1e-12);
    }

    #[test]
    fn keeps_only_the_last_eight() {
        let t = Instant::now();
        let mut f = ClockFilter::default();
        f.add(sample(t, 9.0, 0.0001)); // the best, but the oldest
        for i in 0..FILTER_LEN {
            f.add(sample(t, i as f64 * 1e-3, 0.01));
        }
        assert_eq!(f.len(), FILTER_LEN);
        assert!(f.best(t).unwrap().offset < 1.0, "the 9 s sample aged out");
    }

    #[test]
    fn shift_follows_a_clock_correction() {
        let t = Instant::now();
        let mut f = ClockFilter::default();
        f.add(sample(t, 3600.0, 0.001));
        f.add(sample(t, 3600.002, 0.003));
        f.shift(3600.0);
        let out = f.best(t).unwrap();
        assert!(out.offset.abs() < 1e-9);
        assert!((f.last().unwrap().offset - 0.002).abs() < 1e-9);
    }

    #[test]
    fn dispersion_grows_with_age() {
        let t = Instant::now();
        let mut f = ClockFilter::default();
        f.add(sample(t, 0.0, 0.001));
        let later = t + Duration::from_secs(1000);
        let d = f.best(later).unwrap().dispersion;
        assert!((d - (1e-5 + PHI * 1000.0)).abs() < 1e-9);
    }
}
