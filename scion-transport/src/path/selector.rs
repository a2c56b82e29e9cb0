//! The path selector: a pure state machine choosing the path for one remote SCION address.
//!
//! Shaped like quinn-proto's `Connection`: inputs are methods taking `now`, outputs are polled
//! ([`Selector::poll`] returns actions, [`Selector::poll_timeout`] says when to poll next). It
//! owns no socket and reads no clock, so tests drive it on a virtual clock.
//!
//! Both ends of a connection run one: nothing here assumes the dialing side (Go pan fails over
//! only on the dialer and never fails back).
//!
//! Behaviour, with the defaults of [`SelectorConfig`]:
//! - Start on the best path by preference (daemon order when the preference is empty).
//! - Probe the active path every 50 ms, and watch a few backups every 300 ms: the best two by
//!   current standing plus the best two by preference regardless of state, so a preferred
//!   path that went down is watched for its recovery.
//! - A probe is lost when unanswered after SRTT + 4 RTTVAR (at least 80 ms); three losses in a
//!   row mark a path Down. A silent blackhole on the active path is thus detected within about
//!   150 ms (three probe intervals) + one timeout, under 300 ms for paths with RTT below ~100 ms.
//! - SCMP interface down (quoting our own packet; the I/O side checks that) marks every path
//!   through that interface Down at once; the next `poll` switches.
//! - A Down path comes back after two answered probes sent after it went down.
//! - The active path is left for a better one only when that one has answered every probe for
//!   2 s and is better by a margin (latency: 10% + 2 ms; bandwidth: 10%), so flapping paths
//!   do not cause ping-pong and failback happens once a path is stable again.
//! - Paths are refreshed (action `RefreshPaths`) 5 min before expiry and when nothing usable is
//!   left; expired paths are never used; paths too small for QUIC are filtered with a reason.
//! - `redundancy: n` exposes the n best mutually disjoint live paths as the active set.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::model::{PathFingerprint, PathInfo};
use super::policy::PathPolicy;
use super::preference::{PathMetrics, PathPreference, SwitchMargin, Verdict};
use super::probe::ProbeStats;
use crate::address::IsdAsn;

/// Selector tuning. `Default` gives the values described in the module docs.
#[derive(Debug, Clone)]
pub struct SelectorConfig {
    pub preference: PathPreference,
    pub policy: PathPolicy,
    /// Smallest UDP payload a path must carry: QUIC needs 1200-byte datagrams (RFC 9000 14.1).
    pub min_payload: u16,
    /// Source + destination host address bytes in the SCION header (8 = IPv4 to IPv4).
    pub host_addr_bytes: u16,
    pub active_probe_interval: Duration,
    pub backup_probe_interval: Duration,
    /// Interval for Down paths that are watched for recovery.
    pub down_probe_interval: Duration,
    /// How many backups to watch (twice: by standing and by preference; overlaps count once).
    pub probed_backups: usize,
    pub probe_timeout_min: Duration,
    /// Timeout while a path has no RTT sample yet.
    pub probe_timeout_initial: Duration,
    pub probe_timeout_max: Duration,
    /// Consecutive lost probes that mark a path Down.
    pub down_after_misses: u32,
    /// Consecutive answered probes that bring a Down path back.
    pub revive_after_replies: u32,
    /// How long a better path must have answered every probe before we switch to it.
    pub failback_hold: Duration,
    pub margin: SwitchMargin,
    pub refresh_before_expiry: Duration,
    /// Minimum time between two `RefreshPaths` actions.
    pub refresh_retry: Duration,
    /// Paths in the active set (1 = plain failover; n > 1 = send over n disjoint paths).
    pub redundancy: usize,
    /// Probe outcomes kept for the loss figure.
    pub loss_window: usize,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            preference: PathPreference::default(),
            policy: PathPolicy::default(),
            min_payload: 1200,
            host_addr_bytes: 8,
            active_probe_interval: Duration::from_millis(50),
            backup_probe_interval: Duration::from_millis(300),
            down_probe_interval: Duration::from_millis(500),
            probed_backups: 2,
            probe_timeout_min: Duration::from_millis(80),
            probe_timeout_initial: Duration::from_secs(1),
            probe_timeout_max: Duration::from_secs(2),
            down_after_misses: 3,
            revive_after_replies: 2,
            failback_hold: Duration::from_secs(2),
            margin: SwitchMargin::default(),
            refresh_before_expiry: Duration::from_secs(300),
            refresh_retry: Duration::from_secs(10),
            redundancy: 1,
            loss_window: 20,
        }
    }
}

/// A configuration the selector cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorConfigError {
    #[error("selector: {0} must be greater than zero")]
    Zero(&'static str),
    #[error("selector: probe_timeout_min ({min:?}) is above probe_timeout_max ({max:?})")]
    TimeoutBounds { min: Duration, max: Duration },
}

/// Why the selector changed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchCause {
    /// First path chosen.
    Initial,
    /// The active path crosses an interface reported down by SCMP.
    ScmpDown,
    /// The active path stopped answering probes.
    ProbeLoss,
    /// A better path has been stable for the hold time.
    Better,
    /// The active path's hop fields expired.
    Expiry,
    /// A path refresh no longer lists (or no longer allows) the active path.
    Refresh,
}

impl fmt::Display for SwitchCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SwitchCause::Initial => "initial",
            SwitchCause::ScmpDown => "scmp-down",
            SwitchCause::ProbeLoss => "probe-loss",
            SwitchCause::Better => "better",
            SwitchCause::Expiry => "expiry",
            SwitchCause::Refresh => "refresh",
        })
    }
}

/// What the I/O side must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorAction {
    /// Send probe `seq` over this path now, then call `on_probe_sent`.
    SendProbe {
        fingerprint: PathFingerprint,
        seq: u64,
    },
    /// Use this path for data from now on.
    SwitchTo {
        fingerprint: PathFingerprint,
        cause: SwitchCause,
    },
    /// Ask the path source for fresh paths and pass them to `set_paths`.
    RefreshPaths,
}

/// A path's standing, as shown on /pathz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathState {
    /// Answers probes.
    Alive,
    /// Not probed yet (or no outcome yet).
    Unprobed,
    /// Lost its last one or two probes.
    Suspect,
    /// SCMP interface down, or too many lost probes in a row.
    Down,
    /// Hop fields expired.
    Expired,
    /// Removed by MTU or policy (see `reason`).
    Filtered,
}

impl fmt::Display for PathState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathState::Alive => "alive",
            PathState::Unprobed => "unprobed",
            PathState::Suspect => "suspect",
            PathState::Down => "down",
            PathState::Expired => "expired",
            PathState::Filtered => "filtered",
        })
    }
}

/// One path as /pathz shows it.
#[derive(Debug, Clone)]
pub struct CandidateView {
    pub info: PathInfo,
    pub state: PathState,
    /// Smoothed probe RTT.
    pub rtt: Option<Duration>,
    pub rtt_var: Option<Duration>,
    /// Lost fraction of the recent probes.
    pub loss: Option<f32>,
    /// Why the path is Down, Filtered or Expired.
    pub reason: Option<String>,
    pub active: bool,
    pub in_active_set: bool,
    /// Position in the selector's current ranking (0 = best), if usable at all.
    pub rank: Option<usize>,
    pub probes_sent: u64,
    pub probes_answered: u64,
}

#[derive(Debug, Clone)]
enum DownReason {
    Scmp(String),
    ProbeLoss(u32),
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
    last_refresh_request: Option<Instant>,
    last_now: Option<Instant>,
}

impl Selector {
    pub fn new(cfg: SelectorConfig) -> Result<Self, SelectorConfigError> {
        for (name, d) in [
            ("active_probe_interval", cfg.active_probe_interval),
            ("backup_probe_interval", cfg.backup_probe_interval),
            ("down_probe_interval", cfg.down_probe_interval),
            ("probe_timeout_min", cfg.probe_timeout_min),
            ("refresh_retry", cfg.refresh_retry),
        ] {
            if d.is_zero() {
                return Err(SelectorConfigError::Zero(name));
            }
        }
        if cfg.down_after_misses == 0 {
            return Err(SelectorConfigError::Zero("down_after_misses"));
        }
        if cfg.revive_after_replies == 0 {
            return Err(SelectorConfigError::Zero("revive_after_replies"));
        }
        if cfg.redundancy == 0 {
            return Err(SelectorConfigError::Zero("redundancy"));
        }
        if cfg.probe_timeout_min > cfg.probe_timeout_max {
            return Err(SelectorConfigError::TimeoutBounds {
                min: cfg.probe_timeout_min,
                max: cfg.probe_timeout_max,
            });
        }
        Ok(Selector {
            cfg,
            cands: Vec::new(),
            index: HashMap::new(),
            active: None,
            ever_active: false,
            pending: HashMap::new(),
            next_seq: 1,
            switches: 0,
            last_refresh_request: None,
            last_now: None,
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
            let remaining = Duration::from_secs(info.expiry_unix_secs).saturating_sub(unix_now);
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
                    stats: ProbeStats::new(self.cfg.loss_window),
                    alive_since: None,
                    last_probe_sent: None,
                    last_data_rx: None,
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
        let revive_after = self.cfg.revive_after_replies;
        let c = &mut self.cands[i];
        let rtt = now.saturating_duration_since(p.sent_at);
        if p.lost {
            c.stats.on_late_reply(rtt);
        } else {
            c.stats.on_reply(rtt);
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

    fn timeout_of(&self, i: usize) -> Duration {
        self.cands[i].stats.timeout(
            self.cfg.probe_timeout_min,
            self.cfg.probe_timeout_initial,
            self.cfg.probe_timeout_max,
        )
    }

    fn state_of(&self, c: &Candidate, now: Instant) -> PathState {
        if c.filtered.is_some() {
            PathState::Filtered
        } else if now >= c.expires_at {
            PathState::Expired
        } else if c.down.is_some() {
            PathState::Down
        } else if c.stats.consecutive_misses > 0 {
            PathState::Suspect
        } else if c.stats.answered == 0 {
            PathState::Unprobed
        } else {
            PathState::Alive
        }
    }

    fn metrics<'a>(&self, c: &'a Candidate) -> PathMetrics<'a> {
        PathMetrics {
            info: &c.info,
            measured_rtt: c.stats.srtt,
        }
    }

    /// Usable paths (not filtered or expired) by preference only, any state.
    fn preferred_order(&self, now: Instant) -> Vec<usize> {
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
    fn ranking(&self, now: Instant) -> Vec<usize> {
        let mut idx = self.preferred_order(now);
        // Stable: keeps the preference order inside each class.
        idx.sort_by_key(|&i| self.state_of(&self.cands[i], now));
        idx
    }

    fn active_index(&self) -> Option<usize> {
        self.active.and_then(|f| self.index.get(&f).copied())
    }

    /// Whether `cand` should replace `cur` as a failback: better by preference beyond the
    /// margin, or, with no preference, earlier in the daemon's order.
    ///
    /// Both RTT estimates are taken in favour of staying: the candidate at the worse of its
    /// SRTT and latest sample, the active path at the better of the two. A backup is probed
    /// only every few hundred ms, so its SRTT lags a change; a single sample is noisy. Leaving a
    /// working path on either alone would be a needless (and possibly wrong) switch.
    fn is_better(&self, cand: usize, cur: usize) -> bool {
        let (c, a) = (&self.cands[cand], &self.cands[cur]);
        if self.cfg.preference.is_empty() {
            return cand < cur;
        }
        let pick = |s: &ProbeStats, worst: bool| match (s.srtt, s.latest_rtt) {
            (Some(x), Some(y)) => Some(if worst { x.max(y) } else { x.min(y) }),
            (x, y) => x.or(y),
        };
        let cm = PathMetrics {
            info: &c.info,
            measured_rtt: pick(&c.stats, true),
        };
        let am = PathMetrics {
            info: &a.info,
            measured_rtt: pick(&a.stats, false),
        };
        self.cfg
            .preference
            .compare_with_margin(&cm, &am, &self.cfg.margin)
            == Verdict::Better
    }

    fn switch(&mut self, i: usize, cause: SwitchCause, out: &mut Vec<SelectorAction>) {
        let fingerprint = self.cands[i].info.fingerprint;
        self.active = Some(fingerprint);
        if cause != SwitchCause::Initial {
            self.switches += 1;
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
        for (i, due) in self.probe_plan(now) {
            if due > now {
                continue;
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
        let mut lost: Vec<(u64, PathFingerprint)> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.lost && p.deadline <= now)
            .map(|(s, p)| (*s, p.fingerprint))
            .collect();
        // Apply in send order so streak counts are deterministic.
        lost.sort_unstable_by_key(|(s, _)| *s);
        for (seq, fp) in lost {
            if let Some(p) = self.pending.get_mut(&seq) {
                p.lost = true;
            }
            let Some(&i) = self.index.get(&fp) else {
                continue;
            };
            let down_after = self.cfg.down_after_misses;
            let c = &mut self.cands[i];
            c.stats.on_loss();
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
        let best_state = self.state_of(&self.cands[best], now);
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
            // From a Down path move only to something not known to be down; from an expired
            // or refused one, to the least bad path there is.
            let must_leave = active_state != PathState::Down;
            if best != ai && (must_leave || best_state < PathState::Down) {
                self.switch(best, cause, out);
            }
            return;
        }
        let hold = self.cfg.failback_hold;
        let better = ranking.iter().copied().find(|&i| {
            let c = &self.cands[i];
            i != ai
                && self.state_of(c, now) == PathState::Alive
                && c.alive_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= hold)
                && self.is_better(i, ai)
        });
        if let Some(i) = better {
            self.switch(i, SwitchCause::Better, out);
        }
    }

    /// When the next `RefreshPaths` is due, if any.
    fn refresh_due(&self, now: Instant) -> Option<Instant> {
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

    /// Paths to probe with their next due time.
    fn probe_plan(&self, now: Instant) -> Vec<(usize, Instant)> {
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
        roles
            .into_iter()
            .map(|(i, role)| {
                let c = &self.cands[i];
                let interval = match (role, &c.down) {
                    (Role::Active, _) => self.cfg.active_probe_interval,
                    // A Down path that started answering again is confirmed quickly.
                    (Role::Backup, Some(_)) if c.stats.consecutive_replies > 0 => {
                        self.cfg.active_probe_interval
                    }
                    (Role::Backup, Some(_)) => self.cfg.down_probe_interval,
                    (Role::Backup, None) => self.cfg.backup_probe_interval,
                };
                let due = c.last_probe_sent.map_or(now, |t| t + interval);
                (i, due)
            })
            .collect()
    }

    /// Active path first, then (redundancy > 1) the best live paths sharing no interface with
    /// those already chosen; if too few disjoint paths exist, the least overlapping live ones.
    fn active_set_indices(&self, now: Instant, ranking: &[usize]) -> Vec<usize> {
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

    /// The earliest time `poll` has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let now = self.last_now?;
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        for p in self.pending.values().filter(|p| !p.lost) {
            consider(p.deadline);
        }
        for (_, due) in self.probe_plan(now) {
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

    /// Every known path, ranked ones first (best first), then filtered and expired ones.
    pub fn candidates(&self) -> Vec<CandidateView> {
        let Some(now) = self.last_now else {
            return Vec::new();
        };
        let ranking = self.ranking(now);
        let set = self.active_set_indices(now, &ranking);
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
                    PathState::Down => c.down.as_ref().map(|(r, _)| match r {
                        DownReason::Scmp(s) => s.clone(),
                        DownReason::ProbeLoss(n) => format!("{n} probes lost in a row"),
                    }),
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
                }
            })
            .collect()
    }
}
