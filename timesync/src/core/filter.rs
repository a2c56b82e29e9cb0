//! Per-(source, path) sample filtering: a popcorn-spike filter on the delay followed by the
//! minimum-delay ("clock filter") selection of RFC 5905 section 10 over an 8-sample window.
//!
//! The pop filter drops a sample whose delay is far above the window's minimum (a queueing
//! spike). A *persistent* delay increase (a new, longer path) would be dropped forever by a
//! naive spike filter, so after [`POP_PERSIST`] consecutive "high" samples that agree with each
//! other the filter accepts the new level: the window is restarted from those samples.

use super::Sample;
use std::collections::VecDeque;

/// RFC 5905 `NSTAGE`: samples kept in the clock filter.
pub const WINDOW: usize = 8;
/// Consecutive high-delay samples after which a delay step is accepted as the new normal.
pub const POP_PERSIST: usize = 3;
/// A sample is a spike when its delay exceeds the window minimum by more than
/// `max(POP_SPREAD_K * spread, POP_REL * min, POP_MIN_S)`.
pub const POP_SPREAD_K: f64 = 4.0;
pub const POP_REL: f64 = 0.5;
pub const POP_MIN_S: f64 = 0.001;

/// What the filter made of a new sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FilterOutput {
    /// The sample was a delay spike and is held back (it may still become part of a shift).
    Spike,
    /// Accepted, but an older sample in the window still has the lowest delay.
    Held,
    /// Accepted and the window's minimum-delay sample is new: feed it to the discipline loop.
    Emit(Sample),
    /// A persistent delay change was accepted; the window restarted and this sample is emitted.
    Shift(Sample),
}

/// Filter state for one (source, path).
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    window: VecDeque<Sample>,
    high: Vec<Sample>,
    last_emitted: Option<i64>,
    /// Drop the next sample: it may straddle a path change (request on the old path, reply
    /// on the new one) and then carries half the delay difference as offset error.
    discard_next: bool,
}

impl PathFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A filter for a path that just replaced another one (see `discard_next`).
    pub fn after_path_change() -> Self {
        Self {
            discard_next: true,
            ..Self::default()
        }
    }

    /// Number of samples in the window.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Monotonic time between the oldest and the newest sample in the window, ns.
    pub fn span(&self) -> i64 {
        match (self.window.front(), self.window.back()) {
            (Some(a), Some(b)) => b.mono - a.mono,
            _ => 0,
        }
    }

    /// Lowest delay in the window, seconds.
    pub fn min_delay(&self) -> Option<f64> {
        self.window.iter().map(|s| s.delay).reduce(f64::min)
    }

    /// Spread of the window's delays above their minimum (mean excess), seconds.
    fn delay_spread(&self) -> f64 {
        match self.min_delay() {
            Some(min) if self.window.len() > 1 => {
                self.window.iter().map(|s| s.delay - min).sum::<f64>()
                    / (self.window.len() - 1) as f64
            }
            _ => 0.0,
        }
    }

    fn spike_threshold(&self, min: f64) -> f64 {
        (POP_SPREAD_K * self.delay_spread())
            .max(POP_REL * min)
            .max(POP_MIN_S)
    }

    /// The current best (minimum-delay) sample.
    pub fn best(&self) -> Option<Sample> {
        self.window
            .iter()
            .copied()
            .min_by(|a, b| a.delay.total_cmp(&b.delay))
    }

    /// RFC 5905 peer jitter: RMS difference of the window's offsets from the best sample's,
    /// each aged to the best sample's time with the clock corrections applied in between and
    /// the estimated frequency error `freq` (so neither a slew nor a known drift is mistaken
    /// for noise).
    pub fn jitter(&self, freq: f64) -> f64 {
        let Some(best) = self.best() else { return 0.0 };
        if self.window.len() < 2 {
            return 0.0;
        }
        let aged = |s: &Sample| s.offset + s.correction - freq * super::ns_to_s(s.mono - best.mono);
        let best_off = aged(&best);
        let sum: f64 = self
            .window
            .iter()
            .map(|s| {
                let d = aged(s) - best_off;
                d * d
            })
            .sum();
        (sum / (self.window.len() - 1) as f64).sqrt()
    }

    /// Drops the samples taken before `mono` (ns), spikes held for a shift included. After a
    /// gap (an outage) an old minimum-delay sample would otherwise hold back every fresh one
    /// until it left the window, although its offset has drifted with the clock since; with
    /// the window empty, the next sample is emitted at once.
    pub fn expire_before(&mut self, mono: i64) {
        self.window.retain(|s| s.mono >= mono);
        self.high.retain(|s| s.mono >= mono);
    }

    /// Feed one validated sample.
    pub fn push(&mut self, sample: Sample) -> FilterOutput {
        if std::mem::take(&mut self.discard_next) {
            return FilterOutput::Spike;
        }
        if let Some(min) = self.min_delay() {
            if sample.delay > min + self.spike_threshold(min) {
                return self.push_high(sample);
            }
        }
        self.high.clear();
        self.insert(sample);
        match self.best() {
            Some(best) if self.last_emitted.is_none_or(|t| best.mono > t) => {
                self.last_emitted = Some(best.mono);
                FilterOutput::Emit(best)
            }
            _ => FilterOutput::Held,
        }
    }

    fn push_high(&mut self, sample: Sample) -> FilterOutput {
        // The high samples must agree among themselves, otherwise they are just spikes.
        if let Some(hmin) = self.high.iter().map(|s| s.delay).reduce(f64::min) {
            if (sample.delay - hmin).abs() > POP_REL * hmin.max(POP_MIN_S) + POP_MIN_S {
                self.high.clear();
            }
        }
        self.high.push(sample);
        if self.high.len() < POP_PERSIST {
            return FilterOutput::Spike;
        }
        // Persistent shift: restart the window from the agreeing high samples, except the
        // first, which may have straddled the change (one leg on each path: its offset is off
        // by half the delay difference while its delay still looks plausible).
        self.window.clear();
        for s in std::mem::take(&mut self.high).into_iter().skip(1) {
            self.insert(s);
        }
        match self.best() {
            Some(best) => {
                self.last_emitted = Some(best.mono);
                FilterOutput::Shift(best)
            }
            None => FilterOutput::Held,
        }
    }

    fn insert(&mut self, sample: Sample) {
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(mono: i64, offset: f64, delay: f64) -> Sample {
        Sample {
            offset,
            delay,
            mono,
            correction: 0.0,
        }
    }

    #[test]
    fn emits_only_new_minimum_delay_samples() {
        let mut f = PathFilter::new();
        assert!(matches!(f.push(s(1, 0.001, 0.040)), FilterOutput::Emit(x) if x.mono == 1));
        // Higher delay than the window minimum: held, the old best is not re-emitted.
        assert_eq!(f.push(s(2, 0.002, 0.042)), FilterOutput::Held);
        assert!(matches!(f.push(s(3, 0.0015, 0.039)), FilterOutput::Emit(x) if x.mono == 3));
    }

    #[test]
    fn window_holds_eight_samples_and_old_minimum_ages_out() {
        let mut f = PathFilter::new();
        f.push(s(0, 0.0, 0.030));
        for i in 1..WINDOW as i64 {
            assert_eq!(f.push(s(i, 0.0, 0.040)), FilterOutput::Held);
        }
        assert_eq!(f.len(), WINDOW);
        // The 0.030 sample drops out; the best is now one of the 0.040 samples (the first).
        assert!(matches!(f.push(s(8, 0.0, 0.041)), FilterOutput::Emit(x) if x.mono == 1));
    }

    #[test]
    fn samples_older_than_the_bound_give_way_to_fresh_ones() {
        const S: i64 = 1_000_000_000;
        let mut f = PathFilter::new();
        f.push(s(0, 0.0, 0.0100));
        for i in 1..4 {
            assert_eq!(f.push(s(i * S, 0.0, 0.0104)), FilterOutput::Held);
        }
        // Two minutes later (an outage), with samples older than 8 s expired: the fresh
        // sample is emitted although its delay is above the old minimum's.
        f.expire_before(116 * S);
        assert!(f.is_empty());
        assert!(matches!(
            f.push(s(124 * S, 0.0005, 0.0102)),
            FilterOutput::Emit(x) if x.mono == 124 * S
        ));
        // Within the bound nothing is dropped: the window keeps its minimum.
        f.expire_before(117 * S);
        assert_eq!(f.push(s(125 * S, 0.0, 0.0110)), FilterOutput::Held);
        assert_eq!(f.best().map(|b| b.mono), Some(124 * S));
    }

    #[test]
    fn single_spike_is_rejected() {
        let mut f = PathFilter::new();
        for i in 0..4 {
            f.push(s(i, 0.0, 0.040 + i as f64 * 1e-4));
        }
        assert_eq!(f.push(s(5, 0.030, 0.200)), FilterOutput::Spike);
        assert!(matches!(f.push(s(6, 0.0, 0.0395)), FilterOutput::Emit(_)));
        // The spike did not enter the window.
        assert!(f.window.iter().all(|x| x.delay < 0.1));
    }

    #[test]
    fn persistent_delay_shift_is_accepted() {
        let mut f = PathFilter::new();
        for i in 0..8 {
            f.push(s(i, 0.0, 0.040));
        }
        assert_eq!(f.push(s(8, 0.0, 0.090)), FilterOutput::Spike);
        assert_eq!(f.push(s(9, 0.0, 0.091)), FilterOutput::Spike);
        match f.push(s(10, 0.0, 0.0905)) {
            // The first high sample (mono 8) may straddle the change and is dropped.
            FilterOutput::Shift(b) => assert_eq!(b.mono, 10),
            other => panic!("expected shift, got {other:?}"),
        }
        assert_eq!(f.len(), 2);
        assert!((f.min_delay().unwrap() - 0.0905).abs() < 1e-12);
        // Later samples on the new level are ordinary.
        assert!(matches!(f.push(s(11, 0.0, 0.0899)), FilterOutput::Emit(_)));
    }

    #[test]
    fn disagreeing_spikes_do_not_make_a_shift() {
        let mut f = PathFilter::new();
        for i in 0..8 {
            f.push(s(i, 0.0, 0.040));
        }
        assert_eq!(f.push(s(8, 0.0, 0.090)), FilterOutput::Spike);
        assert_eq!(f.push(s(9, 0.0, 0.300)), FilterOutput::Spike);
        assert_eq!(f.push(s(10, 0.0, 0.095)), FilterOutput::Spike);
        assert!((f.min_delay().unwrap() - 0.040).abs() < 1e-12);
    }

    #[test]
    fn first_sample_after_path_change_is_discarded() {
        let mut f = PathFilter::after_path_change();
        assert_eq!(f.push(s(0, 0.010, 0.060)), FilterOutput::Spike);
        assert!(f.is_empty());
        assert!(matches!(f.push(s(1, 0.0, 0.090)), FilterOutput::Emit(_)));
    }

    #[test]
    fn jitter_ignores_applied_corrections() {
        let mut f = PathFilter::new();
        // The clock was slewed by 1 ms between the samples; the offsets differ by exactly that.
        f.push(Sample {
            offset: 0.002,
            delay: 0.040,
            mono: 0,
            correction: 0.0,
        });
        f.push(Sample {
            offset: 0.001,
            delay: 0.041,
            mono: 1,
            correction: 0.001,
        });
        assert!(f.jitter(0.0) < 1e-12, "{}", f.jitter(0.0));
        // A known drift of 100 ppm over 1 s is not jitter either.
        let mut f = PathFilter::new();
        f.push(s(0, 0.0, 0.040));
        f.push(s(1_000_000_000, 0.0001, 0.041));
        assert!(f.jitter(100e-6) < 1e-12);
        assert!(f.jitter(0.0) > 9e-5);
    }
}
