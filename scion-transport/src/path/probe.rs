//! Per-path probe statistics: smoothed RTT, loss window, consecutive outcomes.
//!
//! RTT smoothing follows RFC 6298 section 2 (SRTT/RTTVAR with alpha = 1/8, beta = 1/4); the
//! probe timeout is SRTT + 4*RTTVAR like an RTO, clamped to configured bounds, so a path with
//! a stable RTT is declared lossy quickly and a jittery one is not.

use std::collections::VecDeque;
use std::time::Duration;

/// Outcome history and RTT estimate for one path.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeStats {
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    /// The most recent sample; a backup probed every few hundred ms has a slow-moving SRTT.
    pub latest_rtt: Option<Duration>,
    /// Last outcomes, oldest first: `true` = answered.
    window: VecDeque<bool>,
    window_cap: usize,
    pub consecutive_misses: u32,
    pub consecutive_replies: u32,
    pub sent: u64,
    pub answered: u64,
}

impl ProbeStats {
    pub fn new(window_cap: usize) -> Self {
        ProbeStats {
            window_cap: window_cap.max(1),
            ..Default::default()
        }
    }

    fn push(&mut self, ok: bool) {
        if self.window.len() == self.window_cap {
            self.window.pop_front();
        }
        self.window.push_back(ok);
    }

    pub fn on_reply(&mut self, rtt: Duration) {
        self.answered += 1;
        self.consecutive_misses = 0;
        self.consecutive_replies = self.consecutive_replies.saturating_add(1);
        self.push(true);
        self.sample(rtt);
    }

    /// A reply that arrives after its probe was already counted lost: the RTT is real and the
    /// path works, but the loss stays in the window.
    pub fn on_late_reply(&mut self, rtt: Duration) {
        self.answered += 1;
        self.consecutive_misses = 0;
        self.consecutive_replies = self.consecutive_replies.saturating_add(1);
        self.sample(rtt);
    }

    pub fn on_loss(&mut self) {
        self.consecutive_misses = self.consecutive_misses.saturating_add(1);
        self.consecutive_replies = 0;
        self.push(false);
    }

    fn sample(&mut self, rtt: Duration) {
        self.latest_rtt = Some(rtt);
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

    /// Fraction of the outcome window that was lost; `None` before any outcome.
    pub fn loss(&self) -> Option<f32> {
        if self.window.is_empty() {
            return None;
        }
        let lost = self.window.iter().filter(|ok| !**ok).count();
        Some(lost as f32 / self.window.len() as f32)
    }

    /// True when the window is full and at least `threshold` of it was lost.
    pub fn is_lossy(&self, threshold: f32) -> bool {
        self.window.len() >= self.window_cap && self.loss().is_some_and(|l| l >= threshold)
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
        let mut s = ProbeStats::new(4);
        assert_eq!(s.timeout(MS * 80, MS * 1000, MS * 2000), MS * 1000);
        s.on_reply(MS * 10);
        assert_eq!(s.srtt, Some(MS * 10));
        assert_eq!(s.rttvar, MS * 5);
        s.on_reply(MS * 18);
        // srtt = (70 + 18) / 8 = 11; rttvar = (15 + 8) / 4 = 5.75
        assert_eq!(s.srtt, Some(MS * 11));
        assert_eq!(s.rttvar, Duration::from_micros(5750));
        assert_eq!(s.timeout(MS * 80, MS * 1000, MS * 2000), MS * 80);
        for _ in 0..40 {
            s.on_reply(MS * 300);
        }
        let t = s.timeout(MS * 80, MS * 1000, MS * 2000);
        assert!(t >= MS * 300 && t < MS * 320, "{t:?}");
    }

    #[test]
    fn loss_window_and_streaks() {
        let mut s = ProbeStats::new(4);
        assert_eq!(s.loss(), None);
        s.on_loss();
        s.on_loss();
        assert_eq!(s.consecutive_misses, 2);
        assert_eq!(s.loss(), Some(1.0));
        s.on_reply(MS);
        assert_eq!(s.consecutive_misses, 0);
        assert_eq!(s.consecutive_replies, 1);
        s.on_reply(MS);
        s.on_reply(MS);
        // window of 4: [lost, ok, ok, ok]
        assert_eq!(s.loss(), Some(0.25));
        s.on_late_reply(MS);
        assert_eq!(s.loss(), Some(0.25));
        assert_eq!(s.answered, 4);
    }
}
