//! Pure bookkeeping of the demo: the sequenced stream, the follower offsets, and the summary.
//! Times are seconds since the start of the stream, passed in by the caller.

/// Tracks a stream of sequence numbers 0, 1, 2, … as they arrive.
#[derive(Debug, Default)]
pub struct SeqTracker {
    seen: Vec<bool>,
    unique: u64,
    duplicated: u64,
    reordered: u64,
    highest: Option<u64>,
    last_arrival: Option<f64>,
    longest_gap: f64,
    longest_gap_at: f64,
    /// Every gap of at least [`NOTABLE_GAP_S`]: (when it began, length), in order.
    gaps: Vec<(f64, f64)>,
}

/// Gaps between deliveries at least this long are listed (a 1 kHz stream has 1 ms gaps).
pub const NOTABLE_GAP_S: f64 = 0.05;

/// Sequence numbers above this are refused as garbage (no demo runs this long at 1 kHz).
pub const MAX_SEQ: u64 = 100_000_000;

impl SeqTracker {
    /// Records message `seq` arriving at `t`. Returns false for a sequence number out of range.
    pub fn on_msg(&mut self, seq: u64, t: f64) -> bool {
        if seq > MAX_SEQ {
            return false;
        }
        let i = seq as usize;
        if self.seen.len() <= i {
            self.seen.resize(i + 1, false);
        }
        if self.seen[i] {
            self.duplicated += 1;
        } else {
            self.seen[i] = true;
            self.unique += 1;
        }
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        if let Some(prev) = self.last_arrival {
            if t - prev >= NOTABLE_GAP_S && self.gaps.len() < 10_000 {
                self.gaps.push((prev, t - prev));
            }
            if t - prev > self.longest_gap {
                self.longest_gap = t - prev;
                self.longest_gap_at = prev;
            }
        }
        self.last_arrival = Some(t);
        true
    }

    pub fn unique(&self) -> u64 {
        self.unique
    }
    pub fn duplicated(&self) -> u64 {
        self.duplicated
    }
    pub fn reordered(&self) -> u64 {
        self.reordered
    }
    /// Longest time between two consecutive arrivals, and when it began.
    pub fn longest_gap(&self) -> (f64, f64) {
        (self.longest_gap, self.longest_gap_at)
    }
    /// Gaps of at least [`NOTABLE_GAP_S`]: (when each began, its length).
    pub fn gaps(&self) -> &[(f64, f64)] {
        &self.gaps
    }
    /// The longest gap that began within `window` seconds after `at` (e.g. a path cut).
    pub fn gap_after(&self, at: f64, window: f64) -> Option<f64> {
        self.gaps
            .iter()
            .filter(|(start, len)| *start + len >= at && *start <= at + window)
            .map(|(_, len)| *len)
            .fold(None, |m, l| Some(m.map_or(l, |x: f64| x.max(l))))
    }
    /// Messages among the first `sent` that never arrived.
    pub fn lost(&self, sent: u64) -> u64 {
        let n = (sent as usize).min(self.seen.len());
        let got = self.seen[..n].iter().filter(|s| **s).count() as u64;
        sent - got
    }
    /// The first missing sequence numbers below `sent` (at most `max`), for the log.
    pub fn missing(&self, sent: u64, max: usize) -> Vec<u64> {
        (0..sent)
            .filter(|s| !self.seen.get(*s as usize).copied().unwrap_or(false))
            .take(max)
            .collect()
    }
}

/// Nearest-rank percentile of `values` (p in 0..=100); None when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// One status report of a timesync follower.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetSample {
    pub t: f64,
    pub state: String,
    /// Follower clock minus the host clock (the source serves the host clock): the true error.
    pub true_offset_ns: i64,
    /// The follower's own bound on its error.
    pub max_error_ns: i64,
    pub path_switches: u64,
}

impl OffsetSample {
    /// Whether the true error lies outside the follower's claimed bound. Only a synchronised
    /// (or holdover) follower makes a claim; in startup the bound is meaningless.
    pub fn breaks_bound(&self) -> bool {
        self.state != "startup"
            && self.true_offset_ns.unsigned_abs() > self.max_error_ns.max(0) as u64
    }
}

/// Offset figures of one follower over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetSummary {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub max_bound_us: f64,
    pub violations: usize,
}

/// Summarises the samples taken while the follower claimed sync; None if it never did.
pub fn summarize_offsets(samples: &[OffsetSample]) -> Option<OffsetSummary> {
    let synced: Vec<&OffsetSample> = samples.iter().filter(|s| s.state != "startup").collect();
    if synced.is_empty() {
        return None;
    }
    let abs: Vec<f64> = synced
        .iter()
        .map(|s| s.true_offset_ns.unsigned_abs() as f64 / 1e3)
        .collect();
    Some(OffsetSummary {
        samples: synced.len(),
        p50_us: percentile(&abs, 50.0).unwrap_or(0.0),
        p99_us: percentile(&abs, 99.0).unwrap_or(0.0),
        max_us: abs.iter().copied().fold(0.0, f64::max),
        max_bound_us: synced
            .iter()
            .map(|s| s.max_error_ns as f64 / 1e3)
            .fold(0.0, f64::max),
        violations: synced.iter().filter(|s| s.breaks_bound()).count(),
    })
}

/// A change of the path the stream's messages arrived on (from their Nats-Scion-Path header).
#[derive(Debug, Clone, PartialEq)]
pub struct PathChange {
    pub t: f64,
    pub tag: String,
}

/// Records the tag of each message; keeps only the changes.
#[derive(Debug, Default)]
pub struct PathTimeline {
    pub changes: Vec<PathChange>,
    pub untagged: u64,
}

impl PathTimeline {
    pub fn on_msg(&mut self, tag: Option<&str>, t: f64) {
        let Some(tag) = tag else {
            self.untagged += 1;
            return;
        };
        if self.changes.last().map(|c| c.tag.as_str()) != Some(tag) {
            self.changes.push(PathChange {
                t,
                tag: tag.to_string(),
            });
        }
    }
    /// Switches seen in the data: changes after the first path.
    pub fn switches(&self) -> usize {
        self.changes.len().saturating_sub(1)
    }
    /// Distinct tags in order of first use.
    pub fn distinct(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.changes {
            if !out.contains(&c.tag) {
                out.push(c.tag.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_tracker_counts_loss_dup_reorder_and_gap() {
        let mut s = SeqTracker::default();
        for (seq, t) in [
            (0, 0.0),
            (1, 0.001),
            (3, 0.002),
            (2, 0.003),
            (3, 0.004),
            (5, 0.5),
        ] {
            assert!(s.on_msg(seq, t));
        }
        assert_eq!(s.unique(), 5);
        assert_eq!(s.duplicated(), 1);
        assert_eq!(s.reordered(), 1); // the second 3 is a duplicate, not a reorder
        assert_eq!(s.lost(6), 1);
        assert_eq!(s.missing(6, 10), vec![4]);
        assert_eq!(s.lost(8), 3);
        let (gap, at) = s.longest_gap();
        assert!((gap - 0.496).abs() < 1e-9 && (at - 0.004).abs() < 1e-9);
        assert_eq!(s.gaps().len(), 1);
        assert!(s
            .gap_after(0.3, 1.0)
            .is_some_and(|g| (g - 0.496).abs() < 1e-9));
        assert_eq!(s.gap_after(0.6, 1.0), None);
        assert!(!s.on_msg(MAX_SEQ + 1, 1.0));
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    fn sample(state: &str, off: i64, bound: i64) -> OffsetSample {
        OffsetSample {
            t: 0.0,
            state: state.into(),
            true_offset_ns: off,
            max_error_ns: bound,
            path_switches: 0,
        }
    }

    #[test]
    fn offsets_ignore_startup_and_count_violations() {
        let s = [
            sample("startup", 250_000_000, 0),
            sample("sync", -40_000, 1_000_000),
            sample("sync", 20_000, 1_000_000),
            sample("holdover", 3_000_000, 2_000_000),
        ];
        assert!(!s[0].breaks_bound());
        assert!(s[3].breaks_bound());
        let sum = summarize_offsets(&s).expect("synced");
        assert_eq!(sum.samples, 3);
        assert_eq!(sum.violations, 1);
        assert_eq!(sum.max_us, 3000.0);
        assert_eq!(sum.p50_us, 40.0);
        assert!(summarize_offsets(&s[..1]).is_none());
    }

    #[test]
    fn path_timeline_keeps_changes() {
        let mut p = PathTimeline::default();
        p.on_msg(Some("aa"), 0.0);
        p.on_msg(Some("aa"), 0.1);
        p.on_msg(None, 0.2);
        p.on_msg(Some("bb"), 0.3);
        p.on_msg(Some("aa"), 0.9);
        assert_eq!(p.switches(), 2);
        assert_eq!(p.untagged, 1);
        assert_eq!(p.distinct(), vec!["aa".to_string(), "bb".to_string()]);
    }
}
