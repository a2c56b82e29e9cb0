//! The follower engine: polls sources, validates and filters samples per (source, path),
//! selects a source and drives the discipline loop. Pure: the driver calls `handle_*` with
//! `now` and carries out the returned [`Action`]s.

use super::discipline::{ClockAction, Discipline, DisciplineConfig, SyncState};
use super::filter::{FilterOutput, PathFilter};
use super::sample::{measure, Outstanding, ReplyTimes, Sample, SampleError};
use super::select::{Candidate, Selector, MIN_FOR_INTERSECTION};
use super::{ns_to_s, MonoNs, WallNs, PHI};
use serde::{Deserialize, Serialize};

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a request with this nonce to the source, then report the transmit timestamp with
    /// [`Engine::handle_transmitted`].
    Send { source: String, nonce: u64 },
    /// Apply a clock correction.
    Clock(ClockAction),
    /// Call [`Engine::handle_timer`] at (or after) this time. Replaces earlier timers.
    SetTimer { at: MonoNs },
}

/// One configured source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub id: String,
    pub priority: u8,
}

/// Engine tunables (all times in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    pub poll_ns: i64,
    /// Requests per poll (>= 1); sent back to back, each after the previous answer. Only the
    /// burst's minimum-delay exchange goes on to the clock filter (`Source::burst_best`).
    pub burst: u32,
    /// Requests in the first poll, so the startup decision rests on a min-delay choice.
    pub startup_burst: u32,
    pub request_timeout_ns: i64,
    /// A source with no valid reply for this long is unreachable.
    pub lost_after_ns: i64,
    /// Consecutive failed requests after which a source is unreachable.
    pub lost_after_failures: u32,
    /// Period of the steering/selection tick.
    pub tick_ns: i64,
    pub discipline: DisciplineConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            poll_ns: 500_000_000,
            // The first exchange of a poll finds the source (and the NATS server) idle; their
            // wake-up lands on the outbound leg only, so that exchange is biased (measured on
            // loopback: +70..85 µs mean offset error at +290 µs delay), while the exchanges
            // that follow it back to back are not (mean within ±3 µs, sd 10-15 µs). A burst
            // of 3 with min-delay selection keeps a warm exchange; see README "loopback".
            burst: 3,
            startup_burst: 4,
            request_timeout_ns: 1_000_000_000,
            lost_after_ns: 2_000_000_000,
            lost_after_failures: 2,
            tick_ns: 250_000_000,
            discipline: DisciplineConfig::default(),
        }
    }
}

/// A reply as the driver received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub times: ReplyTimes,
    pub stratum: u8,
    pub leap: u8,
    pub root_delay_ns: i64,
    pub root_dispersion_ns: i64,
    /// SCION path fingerprint of the reply (header `Nats-Scion-Path`), if any.
    pub path: Option<String>,
    /// SCION path fingerprint the request travelled, as the source echoed it (header
    /// `Timesync-Request-Path`), if any.
    pub request_path: Option<String>,
    /// The source instance's epoch (its start time, ms): a new value means the source
    /// restarted, maybe with another clock.
    pub epoch: u64,
}

/// Why a request produced no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestFailure {
    Timeout,
    NoResponders,
    Other,
}

/// Per-source view for status output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    pub id: String,
    pub priority: u8,
    pub stratum: u8,
    pub reachable: bool,
    pub selected: bool,
    pub falseticker: bool,
    /// Offset of the source relative to the local clock now, ns (from the filter's best).
    pub offset_ns: Option<i64>,
    pub delay_ns: Option<i64>,
    pub jitter_ns: i64,
    pub path: Option<String>,
    /// Path of the request leg, when the source echoes it (see [`Reply::request_path`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_path: Option<String>,
    pub path_switches: u64,
    pub delay_shifts: u64,
    /// Times the source restarted (its epoch changed) while followed.
    #[serde(default)]
    pub restarts: u64,
    pub samples: u64,
    pub rejected: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

/// What `timesync tracking` shows (like `chronyc tracking`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracking {
    pub state: SyncState,
    pub selected: Option<String>,
    /// Current estimated offset (source minus local), ns.
    pub offset_ns: i64,
    /// Last measured (filtered) offset, ns.
    pub last_offset_ns: i64,
    pub delay_ns: i64,
    pub jitter_ns: i64,
    /// Commanded frequency correction, ppm.
    pub freq_ppm: f64,
    /// Estimated raw-clock frequency error, ppm, and its one-sigma uncertainty.
    pub est_freq_ppm: f64,
    pub freq_sigma_ppm: f64,
    /// Bound on |local clock - source clock|, ns.
    pub max_error_ns: i64,
    pub since_update_ms: Option<i64>,
    pub steps: u64,
    pub path_switches: u64,
    pub source_switches: u64,
    pub sources: Vec<SourceReport>,
}

/// The paths of an exchange: (reply leg, request leg).
type PathKey = (Option<String>, Option<String>);

/// Filters of paths a source was measured on before, kept for when it comes back to them.
const MAX_STASHED_PATHS: usize = 4;

#[derive(Debug, Clone)]
struct Source {
    cfg: SourceConfig,
    path: Option<String>,
    request_path: Option<String>,
    filter: PathFilter,
    /// The filters of the other paths (both legs) this source was measured on, most recent
    /// last: a path that comes back resumes its own filter instead of starting over, so a
    /// route flapping between two paths still yields samples.
    stash: Vec<(PathKey, PathFilter)>,
    /// The source's epoch as last seen.
    epoch: Option<u64>,
    restarts: u64,
    /// The source restarted since its last sample was used: the loop re-acquires it.
    restarted: bool,
    next_poll: MonoNs,
    burst_left: u32,
    /// Minimum-delay sample of the burst in progress. A burst's exchanges measure the same
    /// instant, so only its best one is a new observation; pushing all of them into the
    /// 8-stage filter would shrink the filter's reach in time to a few polls and let the
    /// (biased) cold exchanges count as independent samples.
    burst_best: Option<Sample>,
    pending: Vec<(u64, Option<WallNs>, MonoNs)>,
    last_reply: Option<MonoNs>,
    consecutive_failures: u32,
    stratum: u8,
    root_delay: f64,
    root_dispersion: f64,
    last_fed: Option<MonoNs>,
    /// The path to this source changed since its last sample was used: see
    /// [`Discipline::reset_phase`].
    phase_reset: bool,
    falseticker: bool,
    path_switches: u64,
    delay_shifts: u64,
    samples: u64,
    rejected: u64,
    failures: u64,
    last_error: Option<String>,
}

impl Source {
    fn reachable(&self, now: MonoNs, cfg: &EngineConfig) -> bool {
        self.last_reply
            .is_some_and(|t| now - t <= cfg.lost_after_ns)
            && self.consecutive_failures < cfg.lost_after_failures
    }
}

/// Statistics of the sample last fed to the loop (kept through holdover for max-error).
#[derive(Debug, Clone, Copy, Default)]
struct FedStats {
    delay: f64,
    jitter: f64,
    root: f64,
}

/// The follower's pure state machine.
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: EngineConfig,
    sources: Vec<Source>,
    discipline: Discipline,
    selector: Selector,
    selected: Option<String>,
    next_nonce: u64,
    next_tick: MonoNs,
    fed: Option<FedStats>,
    source_switches: u64,
    started: MonoNs,
}

/// Polls to wait at startup for enough sources before deciding on a step.
const STARTUP_GRACE_POLLS: i64 = 3;

impl Engine {
    /// `nonce_seed` should be random so replies to an earlier incarnation cannot match.
    pub fn new(
        cfg: EngineConfig,
        sources: Vec<SourceConfig>,
        now: MonoNs,
        initial_freq: f64,
        nonce_seed: u64,
    ) -> Self {
        let sources = sources
            .into_iter()
            .map(|cfg| Source {
                cfg,
                path: None,
                request_path: None,
                filter: PathFilter::new(),
                stash: Vec::new(),
                epoch: None,
                restarts: 0,
                restarted: false,
                next_poll: now,
                burst_left: 0,
                burst_best: None,
                pending: Vec::new(),
                last_reply: None,
                consecutive_failures: 0,
                stratum: 16,
                root_delay: 0.0,
                root_dispersion: 0.0,
                last_fed: None,
                phase_reset: false,
                falseticker: false,
                path_switches: 0,
                delay_shifts: 0,
                samples: 0,
                rejected: 0,
                failures: 0,
                last_error: None,
            })
            .collect();
        Self {
            cfg,
            sources,
            discipline: Discipline::new(cfg.discipline, now, initial_freq),
            selector: Selector::default(),
            selected: None,
            next_nonce: nonce_seed,
            next_tick: now,
            fed: None,
            source_switches: 0,
            started: now,
        }
    }

    pub fn discipline(&self) -> &Discipline {
        &self.discipline
    }

    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    /// Each source's restart count (epoch changes seen).
    pub fn restarts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.sources.iter().map(|s| (s.cfg.id.as_str(), s.restarts))
    }

    /// Samples in the clock filter of `source` and the time they span, ns (tests and
    /// diagnostics).
    pub fn filter_extent(&self, source: &str) -> Option<(usize, i64)> {
        self.sources
            .iter()
            .find(|s| s.cfg.id == source)
            .map(|s| (s.filter.len(), s.filter.span()))
    }

    /// Cumulative correction applied up to `now` (seconds); drivers can check their clock.
    pub fn correction(&self, now: MonoNs) -> f64 {
        self.discipline.correction(now)
    }

    fn send(&mut self, idx: usize, now: MonoNs, out: &mut Vec<Action>) {
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        let src = &mut self.sources[idx];
        src.pending.push((nonce, None, now));
        out.push(Action::Send {
            source: src.cfg.id.clone(),
            nonce,
        });
    }

    fn next_timer(&self) -> MonoNs {
        let mut at = self.next_tick;
        for s in &self.sources {
            at = at.min(s.next_poll);
            for &(_, _, sent) in &s.pending {
                at = at.min(sent + self.cfg.request_timeout_ns);
            }
        }
        at
    }

    fn finish(&self, mut out: Vec<Action>) -> Vec<Action> {
        out.push(Action::SetTimer {
            at: self.next_timer(),
        });
        out
    }

    /// The timer fired: expire requests, start polls, re-run selection and steering.
    pub fn handle_timer(&mut self, now: MonoNs) -> Vec<Action> {
        let mut out = Vec::new();
        for i in 0..self.sources.len() {
            let timeout = self.cfg.request_timeout_ns;
            let expired: Vec<u64> = self.sources[i]
                .pending
                .iter()
                .filter(|p| now - p.2 >= timeout)
                .map(|p| p.0)
                .collect();
            for nonce in expired {
                self.fail(i, nonce, RequestFailure::Timeout);
            }
            if self.sources[i].next_poll <= now || self.sources[i].pending.is_empty() {
                // A burst cut short by a failure, or still open at the next poll: use what
                // it measured.
                out.extend(self.flush_burst(i, now));
            }
            if self.sources[i].next_poll <= now {
                let src = &mut self.sources[i];
                let burst = if src.last_reply.is_none() {
                    self.cfg.startup_burst
                } else {
                    self.cfg.burst
                };
                src.burst_left = burst.max(1) - 1;
                // Keep the poll grid; skip missed slots instead of bunching up.
                while src.next_poll <= now {
                    src.next_poll += self.cfg.poll_ns.max(1);
                }
                self.send(i, now, &mut out);
            }
        }
        if now >= self.next_tick {
            while self.next_tick <= now {
                self.next_tick += self.cfg.tick_ns.max(1);
            }
            self.reselect(now);
            out.extend(self.discipline.tick(now).into_iter().map(Action::Clock));
        }
        self.finish(out)
    }

    /// The driver sent request `nonce` at follower clock time `t1`.
    pub fn handle_transmitted(&mut self, source: &str, nonce: u64, t1: WallNs) {
        if let Some(src) = self.sources.iter_mut().find(|s| s.cfg.id == source) {
            if let Some(p) = src.pending.iter_mut().find(|p| p.0 == nonce) {
                p.1 = Some(t1);
            }
        }
    }

    fn fail(&mut self, idx: usize, nonce: u64, why: RequestFailure) {
        let src = &mut self.sources[idx];
        let before = src.pending.len();
        src.pending.retain(|p| p.0 != nonce);
        if src.pending.len() != before {
            src.consecutive_failures += 1;
            src.failures += 1;
            src.burst_left = 0;
            src.last_error = Some(format!("{why:?}"));
        }
    }

    /// A request failed without a reply (no responders, client error, timeout seen first by
    /// the driver).
    pub fn handle_failure(
        &mut self,
        now: MonoNs,
        source: &str,
        nonce: u64,
        why: RequestFailure,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(i) = self.sources.iter().position(|s| s.cfg.id == source) {
            self.fail(i, nonce, why);
            self.reselect(now);
            if self.sources[i].pending.is_empty() {
                out.extend(self.flush_burst(i, now));
            }
        }
        self.finish(out)
    }

    /// The reply to request `nonce` arrived at follower clock time `t4` (monotonic `now`).
    /// The reply's own nonce must echo it (else [`SampleError::NonceMismatch`]).
    pub fn handle_reply(
        &mut self,
        now: MonoNs,
        source: &str,
        nonce: u64,
        reply: Reply,
        t4: WallNs,
    ) -> Result<Vec<Action>, SampleError> {
        let Some(i) = self.sources.iter().position(|s| s.cfg.id == source) else {
            return Ok(self.finish(Vec::new()));
        };
        let correction = self.discipline.correction(now);
        let src = &mut self.sources[i];
        let Some(pos) = src.pending.iter().position(|p| p.0 == nonce) else {
            // Late (already timed out) or duplicate reply: RFC 5905 "duplicate" check.
            src.rejected += 1;
            return Ok(self.finish(Vec::new()));
        };
        let (nonce, t1, _) = src.pending.remove(pos);
        let Some(t1) = t1 else {
            src.rejected += 1;
            return Ok(self.finish(Vec::new()));
        };
        let sample = match measure(Outstanding { nonce, t1 }, reply.times, t4, now, correction) {
            Ok(s) => s,
            Err(e) => {
                src.rejected += 1;
                src.last_error = Some(e.to_string());
                return Err(e);
            }
        };
        if reply.leap == 3 || reply.stratum == 0 || reply.stratum >= 16 {
            // An unsynchronised source (RFC 5905 leap 3 / stratum 16) is not a reference.
            src.rejected += 1;
            src.last_error = Some("source unsynchronised".into());
            return Ok(self.finish(Vec::new()));
        }
        if src.epoch.is_some_and(|e| e != reply.epoch) {
            // A restarted source: its clock may have moved by any amount, so nothing measured
            // before says anything about it now. Start its filters over and let the loop
            // re-acquire it (startup rules) when it is used next.
            src.restarts += 1;
            src.filter = PathFilter::new();
            src.stash.clear();
            src.burst_best = None;
            src.last_fed = None;
            src.phase_reset = true;
            src.restarted = true;
            src.last_error = Some(format!("source restarted (epoch {})", reply.epoch));
        }
        src.epoch = Some(reply.epoch);
        src.samples += 1;
        src.last_reply = Some(now);
        src.consecutive_failures = 0;
        src.stratum = reply.stratum;
        src.root_delay = reply.root_delay_ns.max(0) as f64 / 1e9;
        src.root_dispersion = reply.root_dispersion_ns.max(0) as f64 / 1e9;
        if src.path != reply.path || src.request_path != reply.request_path {
            // A different path (either leg) has a different delay and asymmetry: it gets its
            // own filter, the one it had if the source was measured on it before.
            let known = src.path.is_some() || src.request_path.is_some();
            if known || !src.filter.is_empty() {
                src.path_switches += 1;
            }
            let first = !known && src.filter.is_empty();
            let old_key: PathKey = (src.path.take(), src.request_path.take());
            let new_key: PathKey = (reply.path.clone(), reply.request_path.clone());
            let old = std::mem::take(&mut src.filter);
            if !old.is_empty() {
                src.stash.retain(|(k, _)| k != &old_key);
                src.stash.push((old_key, old));
                if src.stash.len() > MAX_STASHED_PATHS {
                    src.stash.remove(0);
                }
            }
            let resumed = src
                .stash
                .iter()
                .position(|(k, _)| k == &new_key)
                .map(|p| src.stash.remove(p).1);
            (src.path, src.request_path) = new_key;
            // Each message names its own legs, so a resumed path's samples are its own; a
            // new path's first exchange is dropped (the path may have changed under it).
            src.filter = match resumed {
                Some(f) => f,
                None if first => PathFilter::new(),
                None => PathFilter::after_path_change(),
            };
            // Another path's asymmetry may differ by up to half its delay from the one the
            // loop was fitted to, resumed or not: the loop must take it as phase, not as
            // frequency.
            if !first {
                src.phase_reset = true;
            }
            // Exchanges on the old path are no evidence about the new one.
            src.burst_best = None;
        }
        if src.burst_best.is_none_or(|b| sample.delay < b.delay) {
            src.burst_best = Some(sample);
        }
        let mut out = Vec::new();
        if src.burst_left > 0 {
            src.burst_left -= 1;
            self.send(i, now, &mut out);
            self.reselect(now);
            return Ok(self.finish(out));
        }
        out.extend(self.flush_burst(i, now));
        Ok(self.finish(out))
    }

    /// The burst of source `i` is over: its minimum-delay sample goes through the pop and
    /// clock filters and, if the source is selected and the filter emits, to the loop.
    fn flush_burst(&mut self, i: usize, now: MonoNs) -> Vec<Action> {
        let Some(sample) = self.sources[i].burst_best.take() else {
            return Vec::new();
        };
        // Samples older than twice the window's reach in polls are stale after a gap.
        let max_age = 2 * super::filter::WINDOW as i64 * self.cfg.poll_ns.max(1);
        self.sources[i]
            .filter
            .expire_before(sample.mono.saturating_sub(max_age));
        let output = self.sources[i].filter.push(sample);
        let emitted = match output {
            FilterOutput::Emit(s) => Some(s),
            FilterOutput::Shift(s) => {
                self.sources[i].delay_shifts += 1;
                self.sources[i].phase_reset = true;
                Some(s)
            }
            FilterOutput::Spike | FilterOutput::Held => None,
        };
        self.reselect(now);
        if self.selected.as_deref() == Some(self.sources[i].cfg.id.as_str()) {
            self.feed(i, now, emitted)
        } else {
            // Not the loop's reference: its restart concerns only its own filters.
            self.sources[i].restarted = false;
            Vec::new()
        }
    }

    fn feed(&mut self, i: usize, now: MonoNs, emitted: Option<Sample>) -> Vec<Action> {
        if std::mem::take(&mut self.sources[i].restarted) {
            // The reference restarted: acquire it again as at startup (a step if its clock
            // moved by more than the step threshold), keeping the learned frequency.
            self.discipline.restart(now);
        }
        let src = &self.sources[i];
        let sample = if self.discipline.state() == SyncState::Startup {
            // The startup decision (step or slew) rests on the best of the startup burst,
            // which the filter holds once that burst is over.
            if src.filter.is_empty() {
                return Vec::new();
            }
            // With several sources, wait (a bounded time) until enough of them answered for
            // the falseticker check, so a lying source cannot decide the startup step.
            let want = self.sources.len().min(MIN_FOR_INTERSECTION);
            let have = self
                .sources
                .iter()
                .filter(|s| s.reachable(now, &self.cfg) && !s.filter.is_empty())
                .count();
            if have < want && now - self.started < STARTUP_GRACE_POLLS * self.cfg.poll_ns {
                return Vec::new();
            }
            src.filter.best()
        } else {
            emitted
        };
        let Some(sample) = sample else {
            return Vec::new();
        };
        if src.last_fed.is_some_and(|t| sample.mono <= t) {
            return Vec::new();
        }
        let jitter = src.filter.jitter(self.discipline.estimated_frequency());
        let stats = FedStats {
            delay: sample.delay,
            jitter,
            root: src.root_delay / 2.0 + src.root_dispersion,
        };
        if std::mem::take(&mut self.sources[i].phase_reset) {
            self.discipline.reset_phase(now, sample.delay / 2.0);
        }
        self.sources[i].last_fed = Some(sample.mono);
        let actions: Vec<Action> = self
            .discipline
            .update(now, sample, jitter)
            .into_iter()
            .map(Action::Clock)
            .collect();
        if actions
            .iter()
            .any(|a| matches!(a, Action::Clock(ClockAction::Step { .. })))
        {
            // Exchanges in flight straddle the step (t1 before it, t4 read before or after
            // it, the correction read after it): their samples would be off by the step.
            // Their replies are dropped as late ones; the sources poll again.
            for s in &mut self.sources {
                s.pending.clear();
            }
        }
        // A sample the loop held back (an outlier) is no update: the bound keeps growing
        // from the last one used.
        if !self.discipline.holding() {
            self.fed = Some(stats);
        }
        actions
    }

    fn candidates(&mut self, now: MonoNs) -> Vec<Candidate> {
        let corr = self.discipline.correction(now);
        let freq = self.discipline.estimated_frequency();
        let mut cands = Vec::new();
        for s in &self.sources {
            if !s.reachable(now, &self.cfg) {
                continue;
            }
            let Some(best) = s.filter.best() else {
                continue;
            };
            let age = ns_to_s(now - best.mono).max(0.0);
            let root = s.root_delay / 2.0 + s.root_dispersion;
            cands.push(Candidate {
                id: s.cfg.id.clone(),
                priority: s.cfg.priority,
                stratum: s.stratum,
                offset: best.offset - (corr - best.correction) + freq * age,
                distance: root + best.delay / 2.0 + s.filter.jitter(freq) + PHI * age,
                metric: root + s.filter.min_delay().unwrap_or(best.delay) / 2.0,
            });
        }
        cands
    }

    fn reselect(&mut self, now: MonoNs) {
        let cands = self.candidates(now);
        let sel = self.selector.select(&cands);
        for s in &mut self.sources {
            s.falseticker = sel.falsetickers.contains(&s.cfg.id);
        }
        if sel.selected != self.selected {
            if self.selected.is_some() && sel.selected.is_some() {
                self.source_switches += 1;
            }
            // A different source has its own path asymmetry.
            if let Some(new) = &sel.selected {
                if let Some(s) = self.sources.iter_mut().find(|s| &s.cfg.id == new) {
                    s.phase_reset = true;
                }
            }
            self.selected = sel.selected;
        }
        self.discipline.set_holdover(self.selected.is_none());
    }

    /// Bound on |local - source| at `now`, seconds: the source's root distance, half the
    /// round trip of the sample last used (the worst-case asymmetry), its jitter, the residual
    /// phase not yet slewed out plus three sigma of the estimate, and PHI growth since the
    /// last update (RFC 5905 dispersion). Infinite before the first update.
    pub fn max_error(&self, now: MonoNs) -> f64 {
        let Some(fed) = self.fed else {
            return f64::INFINITY;
        };
        let d = &self.discipline;
        fed.root
            + fed.delay / 2.0
            + fed.jitter
            + self.offset_at(now).abs()
            + 3.0 * d.offset_sigma()
            + d.holdover_dispersion(now)
            + d.held_offset()
    }

    /// Estimated offset (source minus local clock) at `now`, seconds.
    pub fn offset_at(&self, now: MonoNs) -> f64 {
        self.discipline.offset_at(now)
    }

    pub fn tracking(&self, now: MonoNs) -> Tracking {
        let ns = |s: f64| super::s_to_ns(s);
        let sel = self.selected.as_deref();
        let fed = self.fed.unwrap_or_default();
        let d = &self.discipline;
        let corr = d.correction(now);
        Tracking {
            state: d.state(),
            selected: self.selected.clone(),
            offset_ns: ns(self.offset_at(now)),
            last_offset_ns: ns(d.last_offset()),
            delay_ns: ns(fed.delay),
            jitter_ns: ns(fed.jitter),
            freq_ppm: d.frequency() * 1e6,
            est_freq_ppm: d.estimated_frequency() * 1e6,
            freq_sigma_ppm: d.frequency_sigma() * 1e6,
            max_error_ns: {
                let m = self.max_error(now);
                if m.is_finite() {
                    ns(m)
                } else {
                    i64::MAX
                }
            },
            since_update_ms: d.last_update().map(|t| (now - t) / 1_000_000),
            steps: d.steps(),
            path_switches: self.sources.iter().map(|s| s.path_switches).sum(),
            source_switches: self.source_switches,
            sources: self
                .sources
                .iter()
                .map(|s| {
                    let best = s.filter.best();
                    SourceReport {
                        id: s.cfg.id.clone(),
                        priority: s.cfg.priority,
                        stratum: s.stratum,
                        reachable: s.reachable(now, &self.cfg),
                        selected: sel == Some(s.cfg.id.as_str()),
                        falseticker: s.falseticker,
                        offset_ns: best.map(|b| {
                            let age = ns_to_s(now - b.mono).max(0.0);
                            ns(b.offset - (corr - b.correction) + d.estimated_frequency() * age)
                        }),
                        delay_ns: best.map(|b| ns(b.delay)),
                        jitter_ns: ns(s.filter.jitter(d.estimated_frequency())),
                        path: s.path.clone(),
                        request_path: s.request_path.clone(),
                        path_switches: s.path_switches,
                        delay_shifts: s.delay_shifts,
                        restarts: s.restarts,
                        samples: s.samples,
                        rejected: s.rejected,
                        failures: s.failures,
                        last_error: s.last_error.clone(),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request in flight when the clock is stepped is dropped: its reply, read against the
    /// stepped clock, would be a sample off by the whole step.
    #[test]
    fn an_exchange_in_flight_across_a_step_is_dropped() {
        let mut e = Engine::new(
            EngineConfig::default(),
            vec![
                SourceConfig {
                    id: "a".into(),
                    priority: 0,
                },
                SourceConfig {
                    id: "b".into(),
                    priority: 0,
                },
            ],
            0,
            0.0,
            1,
        );
        let reply = |nonce, t1: i64, offset: i64| Reply {
            times: ReplyTimes {
                nonce,
                t1_echo: t1,
                t2: t1 + 1_000_000 + offset,
                t3: t1 + 1_000_100 + offset,
            },
            stratum: 1,
            leap: 0,
            root_delay_ns: 0,
            root_dispersion_ns: 0,
            path: None,
            request_path: None,
            epoch: 1,
        };
        // Both sources agree the follower is 1 s behind; their startup bursts run side by
        // side, one exchange at a time, 2 ms round trips, until the loop steps.
        let mut now = 0i64;
        let mut actions = e.handle_timer(now);
        let mut stepped = false;
        let mut held = None;
        for _ in 0..200 {
            if stepped {
                break;
            }
            let sends: Vec<(String, u64)> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Send { source, nonce } => Some((source.clone(), *nonce)),
                    _ => None,
                })
                .collect();
            actions = Vec::new();
            for (src, nonce) in sends {
                let t1 = now;
                e.handle_transmitted(&src, nonce, t1);
                // Keep one of b's exchanges in flight for after the step.
                if src == "b" && held.is_none() && nonce > 4 {
                    held = Some((nonce, t1));
                    continue;
                }
                now += 2_000_000;
                let out = e
                    .handle_reply(now, &src, nonce, reply(nonce, t1, 1_000_000_000), now)
                    .expect("sample");
                stepped |= out
                    .iter()
                    .any(|a| matches!(a, Action::Clock(ClockAction::Step { .. })));
                actions.extend(out);
            }
            if actions.iter().all(|a| !matches!(a, Action::Send { .. })) {
                now += 100_000_000;
                actions.extend(e.handle_timer(now));
            }
        }
        assert!(stepped, "the loop stepped");
        let (nonce, t1) = held.expect("an exchange of b held in flight");
        let b = |e: &Engine| e.tracking(0).sources[1].clone();
        let (samples, rejected) = (b(&e).samples, b(&e).rejected);
        // Its reply arrives after the step, read against the stepped clock.
        now += 2_000_000;
        let t4 = now + 1_000_000_000;
        let out = e.handle_reply(now, "b", nonce, reply(nonce, t1, 1_000_000_000), t4);
        assert!(out.is_ok(), "{out:?}");
        assert_eq!(
            b(&e).samples,
            samples,
            "no sample from the straddling exchange"
        );
        assert_eq!(b(&e).rejected, rejected + 1);
    }

    /// A reply is matched to the request it answers (the driver knows which), and a reply
    /// that echoes another nonce is rejected as such, not taken for another request.
    #[test]
    fn reply_with_another_nonce_is_rejected_as_a_mismatch() {
        let mut e = Engine::new(
            EngineConfig::default(),
            vec![SourceConfig {
                id: "s".into(),
                priority: 0,
            }],
            0,
            0.0,
            100,
        );
        let sent: Vec<u64> = e
            .handle_timer(0)
            .into_iter()
            .filter_map(|a| match a {
                Action::Send { nonce, .. } => Some(nonce),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![100]);
        e.handle_transmitted("s", 100, 1_000);
        let reply = |nonce| Reply {
            times: ReplyTimes {
                nonce,
                t1_echo: 1_000,
                t2: 2_000,
                t3: 2_100,
            },
            stratum: 1,
            leap: 0,
            root_delay_ns: 0,
            root_dispersion_ns: 0,
            path: None,
            request_path: None,
            epoch: 1,
        };
        let r = e.handle_reply(10, "s", 100, reply(101), 3_000);
        assert_eq!(
            r.unwrap_err(),
            SampleError::NonceMismatch {
                want: 100,
                got: 101
            }
        );
        let tr = e.tracking(10);
        assert_eq!(tr.sources[0].rejected, 1);
        assert_eq!(tr.sources[0].samples, 0);
    }
}
