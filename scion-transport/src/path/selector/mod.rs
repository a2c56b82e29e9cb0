//! The path selector: a pure state machine choosing the path for one remote SCION address.
//!
//! Shaped like a sans-I/O protocol state machine (STYLE.md): inputs are methods taking `now`,
//! outputs are polled ([`Selector::poll`] returns actions, [`Selector::poll_timeout`] says when
//! to poll next). It owns no socket and reads no clock, so tests drive it on a virtual clock.
//!
//! Both ends of a connection run one: nothing here assumes the dialing side (Go pan fails over
//! only on the dialer and never fails back).
//!
//! Behaviour, with the defaults of [`SelectorConfig`]:
//! - Start on the best path by preference (daemon order when the preference is empty).
//! - Probe the active path every 50 ms, and watch a few backups every 300 ms: the best two by
//!   current standing plus the best two by preference regardless of state, so a preferred
//!   path that went down is watched for its recovery. Every 2 s the least recently probed of
//!   the other paths gets one survey probe, so none keeps an old verdict for long.
//! - A probe is lost when unanswered after SRTT + 4 RTTVAR (at least 80 ms); three losses in a
//!   row mark a path Down. A silent blackhole on the active path is thus detected within about
//!   150 ms (three probe intervals) + one timeout, under 300 ms for paths with RTT below ~100 ms.
//! - A Down active path (probe loss) is left only for a path that answered a probe sent after
//!   the active one's first lost probe, and missed none since; meanwhile the backups are
//!   probed every 50 ms. A peer that died silences every path at once: no such path exists,
//!   and the result is one "all paths down" instead of a hop from path to path. A blackhole
//!   failover thus also waits for a backup's round trip.
//! - SCMP interface down (quoting our own packet; the I/O side checks that) marks every path
//!   through that interface Down at once; the next `poll` switches.
//! - A Down path comes back after two answered probes sent after it went down.
//! - The active path is left for a better one only when that one has answered every probe for
//!   2 s and is better by a margin (latency: 10% + 2 ms; bandwidth: 10%), so flapping paths
//!   do not cause ping-pong and failback happens once a path is stable again. The active
//!   path's latency is its minimum RTT over the last 5 s: its probes queue behind our own
//!   data, and a flood must not look like a slower path (a real rise counts after 5 s).
//! - Paths are refreshed (action `RefreshPaths`) 5 min before expiry and when nothing usable is
//!   left; expired paths are never used; paths too small for QUIC are filtered with a reason.
//! - `redundancy: n` exposes the n best mutually disjoint live paths as the active set.

mod config;
mod plan;
mod view;
mod why;

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use config::{SelectorConfig, SelectorConfigError};
pub use view::{CandidateView, PathState, SelectorAction, SwitchCause};

use super::model::{PathFingerprint, PathInfo};
use super::probe::ProbeStats;
use crate::address::IsdAsn;

/// Longest lifetime we believe a path has (SCION hop fields expire within 24 h).
const MAX_PATH_LIFETIME: Duration = Duration::from_secs(2 * 24 * 3600);

#[derive(Debug, Clone)]
enum DownReason {
    Scmp(String),
    ProbeLoss(u32),
}

impl DownReason {
    /// For /pathz and the log.
    fn text(&self) -> String {
        match self {
            DownReason::Scmp(s) => s.clone(),
            DownReason::ProbeLoss(n) => format!("{n} probes lost in a row"),
        }
    }
}

#[derive(Debug, Clone)]
struct Candidate {
    info: PathInfo,
    expires_at: Instant,
    filtered: Option<String>,
    down: Option<(DownReason, Instant)>,
    stats: ProbeStats,
    /// Since when the path has answered every probe (reset by any loss or SCMP).
    alive_since: Option<Instant>,
    last_probe_sent: Option<Instant>,
    last_data_rx: Option<Instant>,
    /// When the first probe of the latest run of lost probes was sent: from then on the path
    /// carried nothing we know of.
    misses_since: Option<Instant>,
    /// When the most recent answered probe was sent: the path worked at that time.
    answered_sent_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Pending {
    fingerprint: PathFingerprint,
    sent_at: Instant,
    deadline: Instant,
    lost: bool,
}

/// Probing role of a path, deciding its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Active,
    Backup,
    /// Outside the watched set: one probe now and then (`survey_interval`).
    Survey,
}

/// Chooses and maintains the path to one remote.
#[derive(Debug)]
pub struct Selector {
    cfg: SelectorConfig,
    cands: Vec<Candidate>,
    index: HashMap<PathFingerprint, usize>,
    active: Option<PathFingerprint>,
    ever_active: bool,
    pending: HashMap<u64, Pending>,
    next_seq: u64,
    switches: u64,
    /// `switches` by cause, in the order causes first occurred.
    switches_by_cause: Vec<(SwitchCause, u64)>,
    last_refresh_request: Option<Instant>,
    /// When the last survey probe went out.
    last_survey: Option<Instant>,
    last_now: Option<Instant>,
    /// The UDP payload size the link's QUIC may grow to, held when the link started (see
    /// [`Self::hold_datagram_payload`]): paths that carry less rank below those that do.
    link_payload: Option<usize>,
}

impl Selector {
    /// A selector with no paths yet; fails on a configuration it cannot run with.
    pub fn new(cfg: SelectorConfig) -> Result<Self, SelectorConfigError> {
        cfg.validate()?;
        Ok(Selector {
            cfg,
            cands: Vec::new(),
            index: HashMap::new(),
            active: None,
            ever_active: false,
            pending: HashMap::new(),
            next_seq: 1,
            switches: 0,
            switches_by_cause: Vec::new(),
            last_refresh_request: None,
            last_survey: None,
            last_now: None,
            link_payload: None,
        })
    }

    pub fn config(&self) -> &SelectorConfig {
        &self.cfg
    }

    fn touch(&mut self, now: Instant) {
        // Inputs may arrive slightly out of order from different tasks; never go back.
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
    }

    /// Replaces the path list (initial load or refresh). `unix_now` is the wall clock, used
    /// only to turn each path's expiry into a deadline on the monotonic clock. Paths keep
    /// their probe history when a refresh lists the same fingerprint again; duplicates in
    /// `paths` are dropped.
    pub fn set_paths(&mut self, now: Instant, unix_now: Duration, paths: Vec<PathInfo>) {
        self.touch(now);
        let mut old: HashMap<PathFingerprint, Candidate> = self
            .cands
            .drain(..)
            .map(|c| (c.info.fingerprint, c))
            .collect();
        self.index.clear();
        for info in paths {
            if self.index.contains_key(&info.fingerprint) {
                continue;
            }
            let filtered = self.filter_reason(&info);
            // Hop fields live at most a day; the cap keeps a bogus expiry from overflowing.
            let remaining = Duration::from_secs(info.expiry_unix_secs)
                .saturating_sub(unix_now)
                .min(MAX_PATH_LIFETIME);
            let expires_at = now + remaining;
            let cand = match old.remove(&info.fingerprint) {
                Some(mut c) => {
                    c.info = info;
                    c.expires_at = expires_at;
                    c.filtered = filtered;
                    c
                }
                None => Candidate {
                    info,
                    expires_at,
                    filtered,
                    down: None,
                    stats: ProbeStats::new(self.cfg.loss_window, self.cfg.rtt_min_window),
                    alive_since: None,
                    last_probe_sent: None,
                    last_data_rx: None,
                    misses_since: None,
                    answered_sent_at: None,
                },
            };
            self.index.insert(cand.info.fingerprint, self.cands.len());
            self.cands.push(cand);
        }
        let index = &self.index;
        self.pending
            .retain(|_, p| index.contains_key(&p.fingerprint));
    }

    fn filter_reason(&self, info: &PathInfo) -> Option<String> {
        if let Err(e) = info.validate() {
            return Some(e.to_string());
        }
        let host = self.cfg.host_addr_bytes as usize;
        let payload = info.max_payload(host);
        if payload < self.cfg.min_payload as usize {
            return Some(format!(
                "MTU {} minus {} B SCION/UDP header leaves {} B, below the {} B QUIC needs",
                info.mtu,
                info.scion_udp_header_len(host),
                payload,
                self.cfg.min_payload
            ));
        }
        if let Err(r) = self.cfg.policy.check(info) {
            return Some(format!("policy: {r}"));
        }
        None
    }

    /// SCMP External-Interface-Down for `ia#ifid`: every path through it is Down. Returns how
    /// many paths were affected.
    pub fn on_scmp_interface_down(&mut self, now: Instant, ia: IsdAsn, ifid: u16) -> usize {
        self.touch(now);
        let why = format!("SCMP interface down {ia}#{ifid}");
        self.mark_down_where(now, &why, |p| p.uses_interface(ia, ifid))
    }

    /// SCMP Parameter Problem about one path's own fields (a hop field with a bad MAC or
    /// expired, an unknown interface, an invalid path): that path is Down, as described by
    /// `why`, until probes over it are answered again (the I/O side also asks for fresh
    /// paths). True when SCMP had not marked the path Down already (every probe over a
    /// broken path draws the same error again).
    pub fn on_scmp_path_problem(
        &mut self,
        now: Instant,
        fingerprint: PathFingerprint,
        why: &str,
    ) -> bool {
        self.touch(now);
        let was_down = self.cands.iter().any(|c| {
            c.info.fingerprint == fingerprint && matches!(c.down, Some((DownReason::Scmp(_), _)))
        });
        self.mark_down_where(now, why, |p| p.fingerprint == fingerprint) > 0 && !was_down
    }

    /// SCMP Internal-Connectivity-Down inside `ia` between `ingress` and `egress`.
    pub fn on_scmp_internal_down(
        &mut self,
        now: Instant,
        ia: IsdAsn,
        ingress: u16,
        egress: u16,
    ) -> usize {
        self.touch(now);
        let why = format!("SCMP internal connectivity down {ia} {ingress}->{egress}");
        self.mark_down_where(now, &why, |p| p.uses_internal(ia, ingress, egress))
    }

    fn mark_down_where(
        &mut self,
        now: Instant,
        why: &str,
        hit: impl Fn(&PathInfo) -> bool,
    ) -> usize {
        let mut n = 0;
        for c in self.cands.iter_mut().filter(|c| hit(&c.info)) {
            c.down = Some((DownReason::Scmp(why.to_string()), now));
            c.alive_since = None;
            c.stats.consecutive_replies = 0;
            n += 1;
        }
        n
    }

    /// The I/O side sent probe `seq` (time it from here rather than from `poll`).
    pub fn on_probe_sent(&mut self, now: Instant, fingerprint: PathFingerprint, seq: u64) {
        self.touch(now);
        let timeout = match self.index.get(&fingerprint) {
            Some(&i) => self.timeout_of(i),
            None => return,
        };
        if let Some(p) = self.pending.get_mut(&seq) {
            if p.fingerprint == fingerprint && !p.lost {
                p.sent_at = now;
                p.deadline = now + timeout;
            }
        }
    }

    /// A probe answer arrived. Returns false for unknown, mismatched or duplicate answers.
    pub fn on_probe_reply(&mut self, now: Instant, fingerprint: PathFingerprint, seq: u64) -> bool {
        self.touch(now);
        let Some(p) = self.pending.get(&seq) else {
            return false;
        };
        if p.fingerprint != fingerprint {
            return false;
        }
        let Some(p) = self.pending.remove(&seq) else {
            return false;
        };
        let Some(&i) = self.index.get(&fingerprint) else {
            return false;
        };
        // With every usable path down there is nothing to prefer to a path that answers
        // again: the first answer brings it back (waiting for more keeps the outage going).
        let revive_after = if self.every_usable_down(now) {
            1
        } else {
            self.cfg.revive_after_replies
        };
        let c = &mut self.cands[i];
        let rtt = now.saturating_duration_since(p.sent_at);
        c.answered_sent_at = Some(c.answered_sent_at.map_or(p.sent_at, |t| t.max(p.sent_at)));
        if p.lost {
            c.stats.on_late_reply(now, rtt, seq);
        } else {
            c.stats.on_reply(now, rtt);
        }
        match &c.down {
            // Only probes sent after the path went down prove it came back.
            Some((_, since)) if p.sent_at < *since => {
                c.stats.consecutive_replies = 0;
            }
            Some(_) => {
                if c.stats.consecutive_replies >= revive_after {
                    c.down = None;
                    c.alive_since = Some(now);
                    c.stats.clear_window();
                }
            }
            None => {
                if c.alive_since.is_none() {
                    c.alive_since = Some(now);
                }
            }
        }
        true
    }

    /// Data arrived from the peer over (the reverse of) this path. Informational only: the
    /// peer picks its own return path, so this proves nothing about our direction.
    pub fn on_data_received(&mut self, now: Instant, fingerprint: PathFingerprint) {
        self.touch(now);
        if let Some(&i) = self.index.get(&fingerprint) {
            self.cands[i].last_data_rx = Some(now);
        }
    }

    /// Probe timeout for path `i`. Before its first answer, a path borrows a guess from its
    /// siblings: every path leads to the same peer, so four times the slowest measured SRTT is
    /// a generous bound; this lets a path that is dead from the start be found in a few
    /// hundred ms instead of `probe_timeout_initial`.
    fn timeout_of(&self, i: usize) -> Duration {
        let initial = self
            .cands
            .iter()
            .filter_map(|c| c.stats.srtt)
            .max()
            .map_or(self.cfg.probe_timeout_initial, |s| {
                (s * 4).min(self.cfg.probe_timeout_initial)
            });
        self.cands[i].stats.timeout(
            self.cfg.probe_timeout_min,
            initial,
            self.cfg.probe_timeout_max,
        )
    }

    fn active_index(&self) -> Option<usize> {
        self.active.and_then(|f| self.index.get(&f).copied())
    }

    fn switch(&mut self, i: usize, cause: SwitchCause, out: &mut Vec<SelectorAction>) {
        let fingerprint = self.cands[i].info.fingerprint;
        self.active = Some(fingerprint);
        if cause != SwitchCause::Initial {
            self.switches += 1;
            match self.switches_by_cause.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, n)) => *n += 1,
                None => self.switches_by_cause.push((cause, 1)),
            }
        }
        self.ever_active = true;
        out.push(SelectorAction::SwitchTo { fingerprint, cause });
    }

    /// Processes timers and returns what to do now.
    pub fn poll(&mut self, now: Instant) -> Vec<SelectorAction> {
        self.touch(now);
        let now = self.last_now.unwrap_or(now);
        let mut out = Vec::new();
        self.expire_probes(now);
        self.decide_switch(now, &mut out);
        if self.refresh_due(now).is_some_and(|t| t <= now) {
            self.last_refresh_request = Some(now);
            out.push(SelectorAction::RefreshPaths);
        }
        for (i, due, role) in self.probe_plan(now) {
            if due > now {
                continue;
            }
            if role == Role::Survey {
                self.last_survey = Some(now);
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let timeout = self.timeout_of(i);
            let c = &mut self.cands[i];
            c.last_probe_sent = Some(now);
            c.stats.sent += 1;
            let fingerprint = c.info.fingerprint;
            self.pending.insert(
                seq,
                Pending {
                    fingerprint,
                    sent_at: now,
                    deadline: now + timeout,
                    lost: false,
                },
            );
            out.push(SelectorAction::SendProbe { fingerprint, seq });
        }
        out
    }

    fn expire_probes(&mut self, now: Instant) {
        let mut lost: Vec<(u64, PathFingerprint, Instant)> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.lost && p.deadline <= now)
            .map(|(s, p)| (*s, p.fingerprint, p.sent_at))
            .collect();
        // Apply in send order so streak counts are deterministic.
        lost.sort_unstable_by_key(|(s, _, _)| *s);
        for (seq, fp, sent_at) in lost {
            if let Some(p) = self.pending.get_mut(&seq) {
                p.lost = true;
            }
            let Some(&i) = self.index.get(&fp) else {
                continue;
            };
            let down_after = self.cfg.down_after_misses;
            let c = &mut self.cands[i];
            c.stats.on_loss(seq);
            if c.stats.consecutive_misses == 1 {
                c.misses_since = Some(sent_at);
            }
            c.alive_since = None;
            if c.down.is_none() && c.stats.consecutive_misses >= down_after {
                c.down = Some((DownReason::ProbeLoss(c.stats.consecutive_misses), now));
            }
        }
        // Keep lost probes a while to recognise late answers, then forget them.
        let grace = self.cfg.probe_timeout_max * 2;
        self.pending
            .retain(|_, p| !p.lost || now.saturating_duration_since(p.sent_at) < grace);
    }

    fn decide_switch(&mut self, now: Instant, out: &mut Vec<SelectorAction>) {
        let ranking = self.ranking(now);
        let Some(&best) = ranking.first() else {
            return;
        };
        let Some(ai) = self.active_index() else {
            let cause = if self.ever_active {
                SwitchCause::Refresh
            } else {
                SwitchCause::Initial
            };
            self.switch(best, cause, out);
            return;
        };
        let active_state = self.state_of(&self.cands[ai], now);
        let cause = match active_state {
            PathState::Alive | PathState::Unprobed | PathState::Suspect => None,
            PathState::Filtered => Some(SwitchCause::Refresh),
            PathState::Expired => Some(SwitchCause::Expiry),
            PathState::Down => Some(match self.cands[ai].down {
                Some((DownReason::Scmp(_), _)) => SwitchCause::ScmpDown,
                _ => SwitchCause::ProbeLoss,
            }),
        };
        if let Some(cause) = cause {
            // From an expired or refused path, to the least bad path there is; from a Down
            // one, see `failover_target`.
            let target = if active_state == PathState::Down {
                self.failover_target(now, ai, &ranking)
            } else {
                Some(best)
            };
            if let Some(i) = target.filter(|&i| i != ai) {
                self.switch(i, cause, out);
            }
            return;
        }
        // Leave a working path only for one that has answered every probe for the hold time:
        // either it is better by preference, or the active path keeps losing probes.
        let hold = self.cfg.failback_hold;
        let active_lossy = self.cands[ai].stats.is_lossy(self.cfg.lossy_threshold);
        let active_small = self.too_small(&self.cands[ai]);
        let target = ranking.iter().copied().find_map(|i| {
            let c = &self.cands[i];
            let stable = i != ai
                && self.state_of(c, now) == PathState::Alive
                && c.alive_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= hold);
            let small = self.too_small(c);
            if !stable || (small && !active_small) {
                None
            } else if active_small && !small {
                // Back to a path that carries the link's packets, whatever the preference.
                Some((i, SwitchCause::Better))
            } else if self.is_better(now, i, ai) {
                Some((i, SwitchCause::Better))
            } else if active_lossy {
                Some((i, SwitchCause::ProbeLoss))
            } else {
                None
            }
        });
        if let Some((i, cause)) = target {
            self.switch(i, cause, out);
        }
    }

    /// Where to go from the Down active path `ai`: the best path not known to be down, and,
    /// when the active path went down by probe loss, one that has answered a probe sent after
    /// the active path's probes stopped being answered. Paths that have not answered since
    /// then may be just as silent: when the peer itself is gone (killed, rebooting, its
    /// address taken away), every path stops answering at once, and hopping from one
    /// still-unproven path to the next only adds failover lines before "all paths down".
    /// While the active path misses probes, the watched paths are probed at the active rate
    /// (`probe_plan`), so a working one proves itself within a probe round trip.
    /// A path an SCMP message reported down is left for any path not known to be down: the
    /// router said which interface broke, so the peer is not in question.
    pub(super) fn failover_target(
        &self,
        now: Instant,
        ai: usize,
        ranking: &[usize],
    ) -> Option<usize> {
        let since = match self.cands[ai].down {
            Some((DownReason::ProbeLoss(_), _)) => self.cands[ai].misses_since,
            _ => None,
        };
        ranking.iter().copied().find(|&i| {
            let c = &self.cands[i];
            i != ai
                && self.state_of(c, now) < PathState::Down
                // Answered since, and not missed a probe after that answer (a path with a
                // shorter one-way delay can answer just before the peer dies).
                && since.is_none_or(|t| {
                    c.answered_sent_at.is_some_and(|a| a >= t) && c.stats.consecutive_misses == 0
                })
        })
    }

    /// The earliest time `poll` has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let now = self.last_now?;
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        for p in self.pending.values().filter(|p| !p.lost) {
            consider(p.deadline);
        }
        for (_, due, _) in self.probe_plan(now) {
            consider(due);
        }
        if let Some(due) = self.refresh_due(now) {
            consider(due);
        }
        for c in &self.cands {
            if c.expires_at > now {
                consider(c.expires_at);
            }
            if let Some(since) = c.alive_since {
                let ripe = since + self.cfg.failback_hold;
                if ripe > now {
                    consider(ripe);
                }
            }
        }
        t.map(|t| t.max(now))
    }

    /// The path data should use now.
    pub fn active(&self) -> Option<&PathInfo> {
        self.active_index().map(|i| &self.cands[i].info)
    }

    /// The known path with this fingerprint.
    pub fn path(&self, fingerprint: &PathFingerprint) -> Option<&PathInfo> {
        self.index.get(fingerprint).map(|&i| &self.cands[i].info)
    }

    /// Largest UDP payload every usable (not filtered, not expired) path carries: the cap
    /// for QUIC's MTU discovery, so a switch never lands on a path too small for the packets
    /// QUIC already sends. `None` without usable paths.
    pub fn max_datagram_payload(&self) -> Option<usize> {
        let now = self.last_now?;
        let host = self.cfg.host_addr_bytes as usize;
        self.cands
            .iter()
            .filter(|c| {
                !matches!(
                    self.state_of(c, now),
                    PathState::Filtered | PathState::Expired
                )
            })
            .map(|c| c.info.max_payload(host))
            .min()
    }

    /// The paths to send each datagram on: the active one, plus disjoint live ones when
    /// `redundancy` > 1. States are as of the last input or poll.
    pub fn active_set(&self) -> Vec<&PathInfo> {
        let Some(now) = self.last_now else {
            return Vec::new();
        };
        let ranking = self.ranking(now);
        self.active_set_indices(now, &ranking)
            .into_iter()
            .map(|i| &self.cands[i].info)
            .collect()
    }

    /// Number of path changes after the initial choice.
    pub fn switch_count(&self) -> u64 {
        self.switches
    }

    /// Starts the switch counts over (a new connection to the peer after a quiet spell:
    /// what happened to the paths of the old one is not this one's history).
    pub fn reset_switch_counts(&mut self) {
        self.switches = 0;
        self.switches_by_cause.clear();
    }

    /// Forgets what probes said about every path, and the switch counts: a new connection
    /// after a quiet spell (no probing) must not act on the old one's outage, which would
    /// read as a probe-loss failover the moment probing resumes. Paths marked down by SCMP
    /// stay down until a probe answers (the router said so; it is not stale evidence of
    /// silence). The paths and the active one are kept; every path is probed afresh.
    pub fn start_over(&mut self) {
        for c in &mut self.cands {
            if matches!(c.down, Some((DownReason::ProbeLoss(_), _))) {
                c.down = None;
            }
            c.stats = ProbeStats::new(self.cfg.loss_window, self.cfg.rtt_min_window);
            c.alive_since = None;
            c.last_probe_sent = None;
            c.misses_since = None;
            c.answered_sent_at = None;
        }
        self.pending.clear();
        self.last_survey = None;
        self.reset_switch_counts();
    }

    /// Forgets the held datagram size: the links that held it are gone (the peer went
    /// quiet), and the next one holds its own.
    pub fn release_datagram_payload(&mut self) {
        self.link_payload = None;
    }

    /// The datagram size held for the peer's links, if any (see `hold_datagram_payload`).
    pub fn held_datagram_payload(&self) -> Option<usize> {
        self.link_payload
    }

    /// A link starts with QUIC's packet size capped at [`Self::max_datagram_payload`]: that
    /// size is held, and from now on a path that cannot carry it (one that appears later, or
    /// whose MTU shrinks) ranks below the paths of its state that can, and is never chosen
    /// over one as the better path. QUIC's packets would be lost on it until its black-hole
    /// detection fell back to 1200 bytes. Returns the size held.
    pub fn hold_datagram_payload(&mut self) -> Option<usize> {
        let now = self.max_datagram_payload();
        self.link_payload = self.link_payload.max(now);
        self.link_payload
    }

    /// [`Self::hold_datagram_payload`] for a link that started before there were paths (an
    /// acceptor's, capped at `cap` from the reply path): holds what every usable path
    /// carries, as a dialler with these paths would, or `cap` if that is less. Its packets
    /// can be larger when the reply path carries more than the smallest path (MTU discovery
    /// ran there, up to `cap`); a path between the two sizes then counts as fitting. Returns
    /// the size held; None (nothing held) without usable paths.
    pub fn hold_datagram_payload_at_most(&mut self, cap: usize) -> Option<usize> {
        let size = self.max_datagram_payload()?.min(cap);
        self.link_payload = self.link_payload.max(Some(size));
        self.link_payload
    }

    /// Whether `c` carries less than the held datagram size (see `hold_datagram_payload`).
    fn too_small(&self, c: &Candidate) -> bool {
        self.link_payload
            .is_some_and(|held| c.info.max_payload(self.cfg.host_addr_bytes as usize) < held)
    }

    /// [`switch_count`](Self::switch_count) by cause (causes that never occurred are left out).
    pub fn switch_counts(&self) -> Vec<(SwitchCause, u64)> {
        self.switches_by_cause.clone()
    }

    /// When every usable path is Down, or none is usable (at the last input): how many
    /// usable paths there are and why they are down (distinct reasons, at most three).
    pub fn all_down(&self) -> Option<(usize, Vec<String>)> {
        let now = self.last_now?;
        let ranking = self.ranking(now);
        let Some(&best) = ranking.first() else {
            return Some((0, vec!["no usable path".to_string()]));
        };
        if self.state_of(&self.cands[best], now) != PathState::Down {
            return None;
        }
        let mut reasons: Vec<String> = Vec::new();
        for &i in &ranking {
            let Some((reason, _)) = &self.cands[i].down else {
                continue;
            };
            let why = reason.text();
            if !reasons.contains(&why) && reasons.len() < 3 {
                reasons.push(why);
            }
        }
        Some((ranking.len(), reasons))
    }

    /// Whether there are usable paths and every one is Down.
    fn every_usable_down(&self, now: Instant) -> bool {
        self.ranking(now)
            .first()
            .is_some_and(|&best| self.state_of(&self.cands[best], now) == PathState::Down)
    }

    /// Whether a usable path answers probes (Alive, or Suspect: answering if not every
    /// probe) at the last input. A path not probed yet does not count.
    pub fn answering(&self) -> bool {
        let Some(now) = self.last_now else {
            return false;
        };
        self.ranking(now).first().is_some_and(|&i| {
            matches!(
                self.state_of(&self.cands[i], now),
                PathState::Alive | PathState::Suspect
            )
        })
    }

    /// How many known paths are marked Down by SCMP right now.
    pub fn scmp_down_count(&self) -> usize {
        self.cands
            .iter()
            .filter(|c| matches!(c.down, Some((DownReason::Scmp(_), _))))
            .count()
    }

    /// Every known path, ranked ones first (best first), then filtered and expired ones.
    pub fn candidates(&self) -> Vec<CandidateView> {
        let Some(now) = self.last_now else {
            return Vec::new();
        };
        let ranking = self.ranking(now);
        let set = self.active_set_indices(now, &ranking);
        let probed: Vec<usize> = self
            .probe_plan(now)
            .into_iter()
            .filter(|(_, _, role)| *role != Role::Survey)
            .map(|(i, _, _)| i)
            .collect();
        let ai = self.active_index();
        let mut order = ranking.clone();
        order.extend((0..self.cands.len()).filter(|i| !ranking.contains(i)));
        order
            .into_iter()
            .map(|i| {
                let c = &self.cands[i];
                let state = self.state_of(c, now);
                let reason = match state {
                    PathState::Filtered => c.filtered.clone(),
                    PathState::Expired => Some("hop fields expired".to_string()),
                    PathState::Down => c.down.as_ref().map(|(r, _)| r.text()),
                    PathState::Suspect => Some(format!(
                        "{} probe(s) lost in a row",
                        c.stats.consecutive_misses
                    )),
                    _ => None,
                };
                CandidateView {
                    info: c.info.clone(),
                    state,
                    rtt: c.stats.srtt,
                    rtt_var: c.stats.srtt.map(|_| c.stats.rttvar),
                    loss: c.stats.loss(),
                    reason,
                    active: Some(i) == ai,
                    in_active_set: set.contains(&i),
                    rank: ranking.iter().position(|&r| r == i),
                    probes_sent: c.stats.sent,
                    probes_answered: c.stats.answered,
                    last_data_rx: c.last_data_rx,
                    probed: probed.contains(&i),
                    last_answer: c.stats.last_answer,
                }
            })
            .collect()
    }
}
