//! Ranking, probe planning and the redundant active set: the read-only decisions of the
//! selector, kept apart from its input handling.

use std::time::Instant;

use super::{Candidate, Role, Selector};
use crate::path::preference::{PathMetrics, Verdict};
use crate::path::probe::ProbeStats;
use crate::path::selector::PathState;

impl Selector {
    pub(super) fn state_of(&self, c: &Candidate, now: Instant) -> PathState {
        if c.filtered.is_some() {
            PathState::Filtered
        } else if now >= c.expires_at {
            PathState::Expired
        } else if c.down.is_some() {
            PathState::Down
        } else if c.stats.consecutive_misses > 0 || c.stats.is_lossy(self.cfg.lossy_threshold) {
            PathState::Suspect
        } else if c.stats.answered == 0 {
            PathState::Unprobed
        } else {
            PathState::Alive
        }
    }

    pub(super) fn metrics<'a>(&self, c: &'a Candidate) -> PathMetrics<'a> {
        PathMetrics {
            info: &c.info,
            measured_rtt: c.stats.srtt,
        }
    }

    /// Usable paths (not filtered or expired) by preference only, any state.
    pub(super) fn preferred_order(&self, now: Instant) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.cands.len())
            .filter(|&i| {
                !matches!(
                    self.state_of(&self.cands[i], now),
                    PathState::Filtered | PathState::Expired
                )
            })
            .collect();
        self.cfg
            .preference
            .sort_by_metrics(&mut idx, |&i| self.metrics(&self.cands[i]));
        idx
    }

    /// Usable paths best first: live before unprobed before suspect before down, preference
    /// order within each class.
    pub(super) fn ranking(&self, now: Instant) -> Vec<usize> {
        let mut idx = self.preferred_order(now);
        // Stable: keeps the preference order inside each class; within a state, paths too
        // small for the link's packets come last.
        idx.sort_by_cached_key(|&i| {
            let c = &self.cands[i];
            (self.state_of(c, now), self.too_small(c))
        });
        idx
    }

    /// Whether `cand` should replace `cur` as a failback: better by preference beyond the
    /// margin, or, with no preference, earlier in the daemon's order.
    ///
    /// Both RTT estimates are taken in favour of staying: the candidate at the worse of its
    /// SRTT and latest sample, the active path at the better of the two and of its minimum
    /// over `rtt_min_window`. A backup is probed only every few hundred ms, so its SRTT lags a
    /// change; a single sample is noisy. Leaving a working path on either alone would be a
    /// needless (and possibly wrong) switch. The active path carries our data, and its probes
    /// queue behind it: under a flood its SRTT grows by the flood's own queueing (16 ms
    /// instead of 4 on the emulator's 1 ms links), which another path would not fix, since
    /// the flood would move along and queue there. Its windowed minimum does not grow.
    pub(super) fn is_better(&self, now: Instant, cand: usize, cur: usize) -> bool {
        if self.cfg.preference.is_empty() {
            return cand < cur;
        }
        let (cm, am) = self.failback_metrics(now, cand, cur);
        self.cfg
            .preference
            .compare_with_margin(&cm, &am, &self.cfg.margin)
            == Verdict::Better
    }

    /// The metrics [`Self::is_better`] compares: the candidate at the worse of its SRTT and
    /// latest sample, the active path at the best of those and its windowed minimum.
    pub(super) fn failback_metrics(
        &self,
        now: Instant,
        cand: usize,
        cur: usize,
    ) -> (PathMetrics<'_>, PathMetrics<'_>) {
        let (c, a) = (&self.cands[cand], &self.cands[cur]);
        let pick = |s: &ProbeStats, worst: bool| match (s.srtt, s.latest_rtt) {
            (Some(x), Some(y)) => Some(if worst { x.max(y) } else { x.min(y) }),
            (x, y) => x.or(y),
        };
        let active_rtt = match (pick(&a.stats, false), a.stats.min_rtt(now)) {
            (Some(x), Some(m)) => Some(x.min(m)),
            (x, m) => x.or(m),
        };
        (
            PathMetrics {
                info: &c.info,
                measured_rtt: pick(&c.stats, true),
            },
            PathMetrics {
                info: &a.info,
                measured_rtt: active_rtt,
            },
        )
    }

    /// When the next `RefreshPaths` is due, if any.
    pub(super) fn refresh_due(&self, now: Instant) -> Option<Instant> {
        let usable: Vec<&Candidate> = self
            .cands
            .iter()
            .filter(|c| {
                !matches!(
                    self.state_of(c, now),
                    PathState::Filtered | PathState::Expired
                )
            })
            .collect();
        let nothing_live = usable
            .iter()
            .all(|c| self.state_of(c, now) == PathState::Down);
        let due = if nothing_live {
            now
        } else {
            usable
                .iter()
                .map(|c| {
                    c.expires_at
                        .checked_sub(self.cfg.refresh_before_expiry)
                        .unwrap_or(now)
                })
                .min()?
        };
        Some(match self.last_refresh_request {
            Some(t) => due.max(t + self.cfg.refresh_retry),
            None => due,
        })
    }

    /// Paths to probe with their next due time and role: the watched set (active set,
    /// backups, and Down paths whose last probe was answered, to confirm their recovery
    /// quickly), then the one path outside it probed least recently (never probed first,
    /// ties in ranking order: state, then preference), due `survey_interval` after the last
    /// survey probe
    /// (`down_probe_interval` while no path is alive: the survey may then be the only way to
    /// find one that works).
    pub(super) fn probe_plan(&self, now: Instant) -> Vec<(usize, Instant, Role)> {
        let mut roles: Vec<(usize, Role)> = Vec::new();
        let ranking = self.ranking(now);
        for i in self.active_set_indices(now, &ranking) {
            roles.push((i, Role::Active));
        }
        let k = self.cfg.probed_backups;
        let by_rank = ranking.iter().copied();
        let by_pref = self.preferred_order(now).into_iter();
        for i in by_rank
            .filter(|i| !roles.iter().any(|(j, _)| j == i))
            .take(k)
            .collect::<Vec<_>>()
            .into_iter()
            .chain(
                by_pref
                    .filter(|i| !roles.iter().any(|(j, _)| j == i))
                    .take(k)
                    .collect::<Vec<_>>(),
            )
        {
            if !roles.iter().any(|(j, _)| *j == i) {
                roles.push((i, Role::Backup));
            }
        }
        let recovering: Vec<usize> = ranking
            .iter()
            .copied()
            .filter(|&i| {
                let c = &self.cands[i];
                c.down.is_some() && c.stats.consecutive_replies > 0
            })
            .filter(|i| !roles.iter().any(|(j, _)| j == i))
            .collect();
        roles.extend(recovering.into_iter().map(|i| (i, Role::Backup)));
        let surveyed = ranking
            .iter()
            .copied()
            .filter(|i| !roles.iter().any(|(j, _)| j == i))
            .min_by_key(|&i| self.cands[i].last_probe_sent);
        let none_alive = ranking
            .first()
            .is_none_or(|&i| self.state_of(&self.cands[i], now) != PathState::Alive);
        let survey_interval = if none_alive {
            self.cfg.down_probe_interval.min(self.cfg.survey_interval)
        } else {
            self.cfg.survey_interval
        };
        // While the active path misses probes, its backups are probed at the active rate: a
        // failover by probe loss waits for a path that answered after the misses began.
        let active_missing = self
            .active_index()
            .is_some_and(|ai| self.cands[ai].stats.consecutive_misses > 0);
        let mut plan: Vec<(usize, Instant, Role)> = roles
            .into_iter()
            .map(|(i, role)| {
                let c = &self.cands[i];
                let interval = match (role, &c.down) {
                    // (Survey entries are added below, with their own due time.)
                    (Role::Active | Role::Survey, _) => self.cfg.active_probe_interval,
                    // A Down path that started answering again is confirmed quickly.
                    (Role::Backup, Some(_)) if c.stats.consecutive_replies > 0 => {
                        self.cfg.active_probe_interval
                    }
                    (Role::Backup, Some(_)) => self.cfg.down_probe_interval,
                    (Role::Backup, None) if active_missing => self.cfg.active_probe_interval,
                    (Role::Backup, None) => self.cfg.backup_probe_interval,
                };
                let due = c.last_probe_sent.map_or(now, |t| t + interval);
                (i, due, role)
            })
            .collect();
        if let Some(i) = surveyed {
            let due = self.last_survey.map_or(now, |t| t + survey_interval);
            plan.push((i, due, Role::Survey));
        }
        plan
    }

    /// Active path first, then (redundancy > 1) the best live paths sharing no interface with
    /// those already chosen; if too few disjoint paths exist, the least overlapping live ones.
    pub(super) fn active_set_indices(&self, now: Instant, ranking: &[usize]) -> Vec<usize> {
        let Some(ai) = self.active_index() else {
            return Vec::new();
        };
        let mut set = vec![ai];
        let n = self.cfg.redundancy;
        if n <= 1 {
            return set;
        }
        let live: Vec<usize> = ranking
            .iter()
            .copied()
            .filter(|&i| i != ai && self.state_of(&self.cands[i], now) < PathState::Down)
            .collect();
        for &i in &live {
            if set.len() >= n {
                break;
            }
            if set
                .iter()
                .all(|&j| self.cands[i].info.is_disjoint(&self.cands[j].info))
            {
                set.push(i);
            }
        }
        while set.len() < n {
            let overlap = |i: usize| -> usize {
                set.iter()
                    .map(|&j| {
                        self.cands[i]
                            .info
                            .shared_interfaces(&self.cands[j].info)
                            .len()
                    })
                    .sum()
            };
            let next = live
                .iter()
                .copied()
                .filter(|i| !set.contains(i))
                .min_by_key(|&i| overlap(i));
            match next {
                Some(i) => set.push(i),
                None => break,
            }
        }
        set
    }
}
