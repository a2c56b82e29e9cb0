//! Source selection: falseticker rejection by interval intersection (Marzullo's algorithm as
//! used by RFC 5905 section 11.2.1) and ranking with hysteresis.

use std::cmp::Ordering;

/// What selection needs to know about one reachable source with a current estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    /// Lower is preferred (operator-configured).
    pub priority: u8,
    pub stratum: u8,
    /// Estimated offset of the source relative to the local clock, seconds.
    pub offset: f64,
    /// Half-width of the correctness interval around `offset` (root distance), seconds.
    pub distance: f64,
    /// Ranking metric: the source's own root distance plus our RTT/2, seconds.
    pub metric: f64,
}

/// Result of one selection round.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection {
    /// Ids whose intervals do not meet the majority intersection.
    pub falsetickers: Vec<String>,
    /// Ids eligible for selection, best first.
    pub ranked: Vec<String>,
    /// The chosen source after hysteresis, if any.
    pub selected: Option<String>,
}

/// Minimum number of sources for falseticker detection: with two, a disagreement cannot say
/// which one lies.
pub const MIN_FOR_INTERSECTION: usize = 3;
/// A better-ranked source must win this many consecutive rounds before we switch to it.
pub const SWITCH_CONFIRM: u32 = 3;
/// ...and beat the current source's metric by this much (seconds) ...
pub const SWITCH_MARGIN_ABS: f64 = 0.0005;
/// ... or by this fraction of it, whichever is larger.
pub const SWITCH_MARGIN_REL: f64 = 0.2;

/// Marzullo: the sources whose correctness intervals contain a point shared by the largest
/// number of intervals, provided that number is a strict majority. Returns (truechimers,
/// falsetickers); with no majority every source is returned as a falseticker-candidate-free
/// set (all truechimers) and the caller decides.
pub fn intersect(cands: &[Candidate]) -> (Vec<usize>, Vec<usize>) {
    let n = cands.len();
    if n < MIN_FOR_INTERSECTION {
        return ((0..n).collect(), Vec::new());
    }
    // Edges: (value, +1 for a lower bound, -1 for an upper bound). Lower bounds sort first at
    // equal values so touching intervals count as overlapping.
    let mut edges: Vec<(f64, i32)> = Vec::with_capacity(2 * n);
    for c in cands {
        edges.push((c.offset - c.distance, 1));
        edges.push((c.offset + c.distance, -1));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let (mut best, mut count) = (0, 0);
    let (mut lo, mut hi) = (0.0, 0.0);
    for (i, &(v, kind)) in edges.iter().enumerate() {
        count += kind;
        if count > best {
            best = count;
            lo = v;
            hi = edges.get(i + 1).map_or(v, |e| e.0);
        }
    }
    if (best as usize) * 2 <= n {
        return ((0..n).collect(), Vec::new());
    }
    let mut truec = Vec::new();
    let mut falsec = Vec::new();
    for (i, c) in cands.iter().enumerate() {
        if c.offset - c.distance <= hi && c.offset + c.distance >= lo {
            truec.push(i);
        } else {
            falsec.push(i);
        }
    }
    (truec, falsec)
}

/// Total ranking order: (priority, stratum, metric, id).
pub fn rank_cmp(a: &Candidate, b: &Candidate) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then(a.stratum.cmp(&b.stratum))
        .then(a.metric.total_cmp(&b.metric))
        .then(a.id.cmp(&b.id))
}

/// Selection state carried between rounds (hysteresis).
#[derive(Debug, Clone, Default)]
pub struct Selector {
    current: Option<String>,
    challenger: Option<(String, u32)>,
}

impl Selector {
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Run one round over the currently usable candidates.
    pub fn select(&mut self, cands: &[Candidate]) -> Selection {
        let (truec, falsec) = intersect(cands);
        let mut ok: Vec<&Candidate> = truec.iter().map(|&i| &cands[i]).collect();
        ok.sort_by(|a, b| rank_cmp(a, b));
        let falsetickers = falsec.iter().map(|&i| cands[i].id.clone()).collect();
        let ranked: Vec<String> = ok.iter().map(|c| c.id.clone()).collect();
        let current = self
            .current
            .as_ref()
            .and_then(|id| ok.iter().find(|c| &c.id == id).copied());
        let selected = match (current, ok.first()) {
            (_, None) => {
                self.challenger = None;
                None
            }
            // Current is gone (lost or falseticker): take the best at once.
            (None, Some(best)) => {
                self.challenger = None;
                Some(best.id.clone())
            }
            (Some(cur), Some(best)) if best.id == cur.id => {
                self.challenger = None;
                Some(cur.id.clone())
            }
            (Some(cur), Some(best)) => {
                if clearly_better(best, cur) {
                    let rounds = match &self.challenger {
                        Some((id, n)) if *id == best.id => n + 1,
                        _ => 1,
                    };
                    if rounds >= SWITCH_CONFIRM {
                        self.challenger = None;
                        Some(best.id.clone())
                    } else {
                        self.challenger = Some((best.id.clone(), rounds));
                        Some(cur.id.clone())
                    }
                } else {
                    self.challenger = None;
                    Some(cur.id.clone())
                }
            }
        };
        self.current = selected.clone();
        Selection {
            falsetickers,
            ranked,
            selected,
        }
    }
}

fn clearly_better(best: &Candidate, cur: &Candidate) -> bool {
    if (best.priority, best.stratum) != (cur.priority, cur.stratum) {
        return (best.priority, best.stratum) < (cur.priority, cur.stratum);
    }
    let margin = SWITCH_MARGIN_ABS.max(SWITCH_MARGIN_REL * cur.metric);
    best.metric + margin < cur.metric
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, offset: f64, distance: f64, metric: f64) -> Candidate {
        Candidate {
            id: id.into(),
            priority: 0,
            stratum: 1,
            offset,
            distance,
            metric,
        }
    }

    #[test]
    fn falseticker_is_rejected_with_three_sources() {
        let cands = [
            c("a", 0.000, 0.002, 0.002),
            c("b", 0.001, 0.002, 0.002),
            c("liar", 0.100, 0.002, 0.001),
        ];
        let (t, f) = intersect(&cands);
        assert_eq!(t, vec![0, 1]);
        assert_eq!(f, vec![2]);
        let mut s = Selector::default();
        let sel = s.select(&cands);
        assert_eq!(sel.falsetickers, vec!["liar".to_string()]);
        assert_eq!(sel.selected.as_deref(), Some("a"));
    }

    #[test]
    fn two_sources_cannot_be_judged() {
        let cands = [c("a", 0.0, 0.001, 0.002), c("b", 0.5, 0.001, 0.001)];
        let (t, f) = intersect(&cands);
        assert_eq!(t.len(), 2);
        assert!(f.is_empty());
    }

    #[test]
    fn no_majority_keeps_everyone() {
        let cands = [
            c("a", 0.0, 0.001, 0.0),
            c("b", 1.0, 0.001, 0.0),
            c("c", 2.0, 0.001, 0.0),
        ];
        let (t, f) = intersect(&cands);
        assert_eq!(t.len(), 3);
        assert!(f.is_empty());
    }

    #[test]
    fn ranking_order_is_priority_stratum_metric_id() {
        let mut a = c("a", 0.0, 0.01, 0.005);
        let mut b = c("b", 0.0, 0.01, 0.001);
        assert_eq!(rank_cmp(&a, &b), Ordering::Greater);
        a.stratum = 1;
        b.stratum = 2;
        assert_eq!(rank_cmp(&a, &b), Ordering::Less);
        b.stratum = 1;
        b.priority = 1;
        assert_eq!(rank_cmp(&a, &b), Ordering::Less);
        let a2 = c("a", 0.0, 0.01, 0.001);
        let b2 = c("b", 0.0, 0.01, 0.001);
        assert_eq!(rank_cmp(&a2, &b2), Ordering::Less);
    }

    #[test]
    fn switching_has_hysteresis() {
        let mut s = Selector::default();
        let slow = c("slow", 0.0, 0.05, 0.020);
        assert_eq!(
            s.select(std::slice::from_ref(&slow)).selected.as_deref(),
            Some("slow")
        );
        // Marginally better: never switch.
        let close = c("close", 0.0, 0.05, 0.019);
        for _ in 0..10 {
            assert_eq!(
                s.select(&[slow.clone(), close.clone()]).selected.as_deref(),
                Some("slow")
            );
        }
        // Clearly better: switch after SWITCH_CONFIRM rounds.
        let fast = c("fast", 0.0, 0.05, 0.005);
        for _ in 1..SWITCH_CONFIRM {
            assert_eq!(
                s.select(&[slow.clone(), fast.clone()]).selected.as_deref(),
                Some("slow")
            );
        }
        assert_eq!(
            s.select(&[slow.clone(), fast.clone()]).selected.as_deref(),
            Some("fast")
        );
        // Current lost: immediate switch.
        assert_eq!(s.select(&[slow]).selected.as_deref(), Some("slow"));
        assert_eq!(s.select(&[]).selected, None);
    }
}
