//! Per-path probe statistics: smoothed RTT, loss window, consecutive outcomes.
//!
//! RTT smoothing follows RFC 6298 section 2 (SRTT/RTTVAR with alpha = 1/8, beta = 1/4); the
//! probe timeout is SRTT + 4*RTTVAR like an RTO, clamped to configured bounds, so a path with
//! a stable RTT is declared lossy quickly and a jittery one is not.
//!
//! Besides SRTT, each path keeps the minimum RTT over a sliding time window (like BBR's
//! min_rtt filter, RFC 9002 section 5.2 also tracks a min_rtt): probes share queues with our
//! own data, so a flood over the active path inflates its SRTT by the flood's own queueing;
//! the windowed minimum stays at what the path costs without that queue.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Outcome history and RTT estimate for one path.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeStats {
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    /// The most recent sample; a backup probed every few hundred ms has a slow-moving SRTT.
    pub latest_rtt: Option<Duration>,
    /// Samples that may still become the window minimum: (time, RTT), times increasing and
    /// RTTs strictly increasing (a monotonic queue, so the minimum is the front).
    min_filter: VecDeque<(Instant, Duration)>,
    /// Span of the RTT minimum.
    min_window: Duration,
    /// Last outcomes, oldest first: `None` = answered, `Some(seq)` = probe `seq` timed out
    /// (kept so a late answer can turn it back into an answered one).
    window: VecDeque<Option<u64>>,
    window_cap: usize,
    pub consecutive_misses: u32,
    pub consecutive_replies: u32,
    pub sent: u64,
    pub answered: u64,
    /// When the last probe answer arrived (the age of `srtt`/`latest_rtt`).
    pub last_answer: Option<Instant>,
}

impl ProbeStats {
    pub fn new(window_cap: usize, min_window: Duration) -> Self {
        ProbeStats {
            window_cap: window_cap.max(1),
            min_window,
            ..Default::default()
        }
    }

    fn push(&mut self, outcome: Option<u64>) {
        if self.window.len() == self.window_cap {
            self.window.pop_front();
        }
        self.window.push_back(outcome);
    }

    pub fn on_reply(&mut self, now: Instant, rtt: Duration) {
        self.answered += 1;
        self.consecutive_misses = 0;
        self.consecutive_replies = self.consecutive_replies.saturating_add(1);
        self.push(None);
        self.sample(now, rtt);
    }

    /// The answer to probe `seq` arrives after it was already counted lost: the RTT is real
    /// and the packet was not lost, so its loss leaves the window (the timeout already did
    /// its work on the state: suspect, down). /pathz showed `loss 0.05` for 31 of 31
    /// answered probes before this.
    pub fn on_late_reply(&mut self, now: Instant, rtt: Duration, seq: u64) {
        self.answered += 1;
        if let Some(o) = self.window.iter_mut().find(|o| **o == Some(seq)) {
            *o = None;
        }
        self.consecutive_misses = 0;
        self.consecutive_replies = self.consecutive_replies.saturating_add(1);
        self.sample(now, rtt);
    }

    /// Smallest RTT sampled within the min window before `now` (None if there is none).
    pub fn min_rtt(&self, now: Instant) -> Option<Duration> {
        self.min_filter
            .iter()
            .find(|(t, _)| now.saturating_duration_since(*t) <= self.min_window)
            .map(|(_, rtt)| *rtt)
    }

    /// Probe `seq` timed out.
    pub fn on_loss(&mut self, seq: u64) {
        self.consecutive_misses = self.consecutive_misses.saturating_add(1);
        self.consecutive_replies = 0;
        self.push(Some(seq));
    }

    fn sample(&mut self, now: Instant, rtt: Duration) {
        self.latest_rtt = Some(rtt);
        self.last_answer = Some(now);
        // A newer sample no larger than older ones outlives them as the minimum, and
        // samples older than the window are gone: at most one entry per sample in the window.
        while self.min_filter.back().is_some_and(|(_, r)| *r >= rtt) {
            self.min_filter.pop_back();
        }
        while self
            .min_filter
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.min_window)
        {
            self.min_filter.pop_front();
        }
        self.min_filter.push_back((now, rtt));
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// Fraction of the outcome window that was never answered; `None` before any outcome.
    /// f64 so that /pathz shows 0.05, not f32's 0.05000000074505806.
    pub fn loss(&self) -> Option<f64> {
        if self.window.is_empty() {
            return None;
        }
        let lost = self.window.iter().filter(|o| o.is_some()).count();
        Some(lost as f64 / self.window.len() as f64)
    }

    /// True when the window is full and at least `threshold` of it was lost.
    pub fn is_lossy(&self, threshold: f32) -> bool {
        self.window.len() >= self.window_cap
            && self.loss().is_some_and(|l| l >= f64::from(threshold))
    }

    /// Forgets the outcome history (not the RTT): a path that came back starts afresh.
    pub fn clear_window(&mut self) {
        self.window.clear();
    }

    /// How long to wait for a probe's answer before counting it lost.
    pub fn timeout(&self, min: Duration, initial: Duration, max: Duration) -> Duration {
        match self.srtt {
            None => initial.clamp(min, max),
            Some(srtt) => (srtt + self.rttvar * 4).clamp(min, max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rtt_smoothing_and_timeout() {
        let now = crate::test_now();
        let mut s = ProbeStats::new(4, MS * 1000);
        assert_eq!(s.timeout(MS * 80, MS * 1000, MS * 2000), MS * 1000);
        s.on_reply(now, MS * 10);
        assert_eq!(s.srtt, Some(MS * 10));
        assert_eq!(s.rttvar, MS * 5);
        s.on_reply(now, MS * 18);
        // srtt = (70 + 18) / 8 = 11; rttvar = (15 + 8) / 4 = 5.75
        assert_eq!(s.srtt, Some(MS * 11));
        assert_eq!(s.rttvar, Duration::from_micros(5750));
        assert_eq!(s.timeout(MS * 80, MS * 1000, MS * 2000), MS * 80);
        for _ in 0..40 {
            s.on_reply(now, MS * 300);
        }
        let t = s.timeout(MS * 80, MS * 1000, MS * 2000);
        assert!(t >= MS * 300 && t < MS * 320, "{t:?}");
    }

    #[test]
    fn loss_window_and_streaks() {
        let now = crate::test_now();
        let mut s = ProbeStats::new(4, MS * 1000);
        assert_eq!(s.loss(), None);
        s.on_loss(1);
        s.on_loss(2);
        assert_eq!(s.consecutive_misses, 2);
        assert_eq!(s.loss(), Some(1.0));
        s.on_reply(now, MS);
        assert_eq!(s.consecutive_misses, 0);
        assert_eq!(s.consecutive_replies, 1);
        s.on_reply(now, MS);
        s.on_reply(now, MS);
        // window of 4: [lost 2, ok, ok, ok]
        assert_eq!(s.loss(), Some(0.25));
        // Probe 1's loss has left the window: its late answer changes nothing.
        s.on_late_reply(now, MS, 1);
        assert_eq!(s.loss(), Some(0.25));
        // Probe 2 was answered after all: nothing in the window is lost now.
        s.on_late_reply(now, MS, 2);
        assert_eq!(s.loss(), Some(0.0));
        assert_eq!(s.answered, 5);
    }

    #[test]
    fn loss_is_exact_in_f64() {
        let now = crate::test_now();
        let mut s = ProbeStats::new(20, MS * 1000);
        s.on_loss(0);
        for _ in 0..19 {
            s.on_reply(now, MS);
        }
        // f64 all the way: as f32 widened to f64 this was 0.05000000074505806.
        let loss: f64 = s.loss().unwrap_or(1.0);
        assert_eq!(loss.to_string(), "0.05");
    }

    #[test]
    fn windowed_min_rtt_follows_the_window() {
        let t0 = crate::test_now();
        let mut s = ProbeStats::new(4, MS * 1000);
        assert_eq!(s.min_rtt(t0), None);
        s.on_reply(t0, MS * 10);
        s.on_reply(t0 + MS * 100, MS * 30);
        s.on_reply(t0 + MS * 200, MS * 20);
        // 30 can never be the minimum while 20 (newer) is in the window.
        assert_eq!(s.min_filter.len(), 2);
        assert_eq!(s.min_rtt(t0 + MS * 500), Some(MS * 10));
        // The 10 ms sample ages out; the 20 ms one (t0+200) is still inside.
        assert_eq!(s.min_rtt(t0 + MS * 1100), Some(MS * 20));
        assert_eq!(s.min_rtt(t0 + MS * 1300), None);
        // A later, larger sample: the expired ones are dropped on the way.
        s.on_late_reply(t0 + MS * 1300, MS * 50, 9);
        assert_eq!(s.min_filter.len(), 1);
        assert_eq!(s.min_rtt(t0 + MS * 1300), Some(MS * 50));
    }
}
