//! Deterministic simulation: a true timeline, sources with known clocks, links with known
//! delays, and a follower whose raw clock has a known offset and frequency error. Every
//! reported error is exact ground truth (local clock minus true time).

use super::engine::{Action, Engine, EngineConfig, Reply, SourceConfig};
use super::sample::ReplyTimes;
use super::{ClockAction, SyncState};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One-way delays of a link at a given moment (seconds) and whether it carries traffic.
#[derive(Debug, Clone, Copy)]
pub struct LinkState {
    pub fwd: f64,
    pub back: f64,
    /// Mean of the exponential queueing jitter added to each direction.
    pub jitter: f64,
    pub up: bool,
}

pub struct SimSource {
    pub id: String,
    pub priority: u8,
    /// Source clock minus true time (a falseticker has a non-zero value).
    pub clock_offset: f64,
    pub link: Box<dyn Fn(f64) -> LinkState>,
    /// Reply path fingerprint as a function of true time.
    pub path: Box<dyn Fn(f64) -> Option<String>>,
    /// Request path fingerprint (as the source echoes it) as a function of true time.
    pub request_path: Box<dyn Fn(f64) -> Option<String>>,
    /// Wake-up latency of an idle source: a request arriving more than `.0` seconds after
    /// the source last served one waits `.1` seconds before it is stamped (t2), i.e. the
    /// delay lands on the outbound leg only. Models a process that sleeps between polls.
    pub cold: Option<(f64, f64)>,
    /// The source restarts at `.0` (true time) with its clock then at `.1` from true time:
    /// its epoch changes.
    pub restart: Option<(f64, f64)>,
    last_served: f64,
}

/// Follower clock: raw(T) = offset0 + T * (1 + ppm); local = raw + phase + freq*(raw-ref).
struct Clock {
    offset0: f64,
    ppm: f64,
    phase: f64,
    freq: f64,
    reference: f64,
}

impl Clock {
    fn raw(&self, t: f64) -> f64 {
        self.offset0 + t * (1.0 + self.ppm)
    }
    fn local(&self, t: f64) -> f64 {
        let r = self.raw(t);
        r + self.phase + self.freq * (r - self.reference)
    }
    fn mono(&self, t: f64) -> i64 {
        // Monotonic ns = raw clock; offset0 only shifts it, which the engine never sees.
        (self.raw(t) * 1e9).round() as i64
    }
    fn true_time_of_mono(&self, mono: i64) -> f64 {
        (mono as f64 / 1e9 - self.offset0) / (1.0 + self.ppm)
    }
    fn apply(&mut self, t: f64, a: ClockAction) {
        let r = self.raw(t);
        match a {
            ClockAction::Step { offset } => self.phase += offset,
            ClockAction::SetFrequency { freq } => {
                self.phase += self.freq * (r - self.reference);
                self.reference = r;
                self.freq = freq;
            }
        }
    }
}

#[derive(Debug)]
enum Ev {
    Timer(i64),
    AtSource { src: usize, nonce: u64, t1: i64 },
    Reply { src: usize, reply: Reply },
}

struct Queued {
    t: f64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (t, seq).
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}

/// One observation of the follower, every 100 ms of true time.
#[derive(Debug, Clone)]
pub struct Obs {
    pub t: f64,
    pub error: f64,
    pub max_error: f64,
    pub state: SyncState,
    pub selected: Option<String>,
    pub steps: u64,
}

pub struct Sim {
    clock: Clock,
    pub engine: Engine,
    sources: Vec<SimSource>,
    queue: BinaryHeap<Queued>,
    seq: u64,
    rng: u64,
    timer: Option<i64>,
    pub obs: Vec<Obs>,
    next_obs: f64,
}

impl Sim {
    pub fn new(offset0: f64, ppm: f64, sources: Vec<SimSource>, cfg: EngineConfig) -> Self {
        let clock = Clock {
            offset0,
            ppm,
            phase: 0.0,
            freq: 0.0,
            reference: 0.0,
        };
        let engine = Engine::new(
            cfg,
            sources
                .iter()
                .map(|s| SourceConfig {
                    id: s.id.clone(),
                    priority: s.priority,
                })
                .collect(),
            clock.mono(0.0),
            0.0,
            0x5eed,
        );
        let mut sim = Sim {
            clock,
            engine,
            sources,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            timer: None,
            obs: Vec::new(),
            next_obs: 0.0,
        };
        let m = sim.clock.mono(0.0);
        sim.timer = Some(m);
        sim.push(0.0, Ev::Timer(m));
        sim
    }

    fn push(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            t,
            seq: self.seq,
            ev,
        });
    }

    fn uniform(&mut self) -> f64 {
        // xorshift64*: deterministic, good enough for jitter.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn exp(&mut self, mean: f64) -> f64 {
        if mean <= 0.0 {
            0.0
        } else {
            -mean * self.uniform().ln()
        }
    }

    fn local_ns(&self, t: f64) -> i64 {
        (self.clock.local(t) * 1e9).round() as i64
    }

    fn run_actions(&mut self, t: f64, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { source, nonce } => {
                    let Some(src) = self.sources.iter().position(|s| s.id == source) else {
                        continue;
                    };
                    let t1 = self.local_ns(t);
                    self.engine.handle_transmitted(&source, nonce, t1);
                    let link = (self.sources[src].link)(t);
                    if link.up {
                        let d = link.fwd + self.exp(link.jitter);
                        self.push(t + d, Ev::AtSource { src, nonce, t1 });
                    }
                }
                Action::Clock(c) => self.clock.apply(t, c),
                Action::SetTimer { at } => {
                    if self.timer != Some(at) {
                        self.timer = Some(at);
                        let tt = self.clock.true_time_of_mono(at).max(t);
                        self.push(tt, Ev::Timer(at));
                    }
                }
            }
        }
    }

    /// Advance to true time `until`.
    pub fn run_until(&mut self, until: f64) {
        while let Some(q) = self.queue.peek() {
            if q.t > until {
                break;
            }
            let Some(Queued { t, ev, .. }) = self.queue.pop() else {
                break;
            };
            while self.next_obs <= t {
                let ot = self.next_obs;
                self.observe(ot);
                self.next_obs += 0.1;
            }
            match ev {
                Ev::Timer(at) => {
                    if self.timer != Some(at) {
                        continue; // superseded
                    }
                    self.timer = None;
                    let m = self.clock.mono(t).max(at);
                    let a = self.engine.handle_timer(m);
                    self.run_actions(t, a);
                }
                Ev::AtSource { src, nonce, t1 } => {
                    let s = &mut self.sources[src];
                    let wake = match s.cold {
                        Some((idle, wake)) if t - s.last_served > idle => wake,
                        _ => 0.0,
                    };
                    let t = t + wake;
                    s.last_served = t;
                    let (clock_offset, epoch) = match s.restart {
                        Some((at, offset)) if t >= at => (offset, 2),
                        _ => (s.clock_offset, 1),
                    };
                    let t2 = ((t + clock_offset) * 1e9).round() as i64;
                    let t3 = t2 + 30_000;
                    let link = (s.link)(t);
                    let path = (s.path)(t);
                    let request_path = (s.request_path)(t);
                    if link.up {
                        let d = 30e-6 + link.back + self.exp(link.jitter);
                        let reply = Reply {
                            times: ReplyTimes {
                                nonce,
                                t1_echo: t1,
                                t2,
                                t3,
                            },
                            stratum: 1,
                            leap: 0,
                            root_delay_ns: 0,
                            root_dispersion_ns: 1_000,
                            path,
                            request_path,
                            epoch,
                        };
                        self.push(t + d, Ev::Reply { src, reply });
                    }
                }
                Ev::Reply { src, reply } => {
                    let id = self.sources[src].id.clone();
                    let t4 = self.local_ns(t);
                    let m = self.clock.mono(t);
                    let nonce = reply.times.nonce;
                    if let Ok(a) = self.engine.handle_reply(m, &id, nonce, reply, t4) {
                        self.run_actions(t, a);
                    }
                }
            }
        }
        while self.next_obs <= until {
            let ot = self.next_obs;
            self.observe(ot);
            self.next_obs += 0.1;
        }
    }

    fn observe(&mut self, t: f64) {
        let m = self.clock.mono(t);
        let tr = self.engine.tracking(m);
        self.obs.push(Obs {
            t,
            error: self.clock.local(t) - t,
            max_error: self.engine.max_error(m),
            state: tr.state,
            selected: tr.selected,
            steps: tr.steps,
        });
    }
}

pub fn fixed_link(rtt: f64, jitter: f64) -> Box<dyn Fn(f64) -> LinkState> {
    Box::new(move |_| LinkState {
        fwd: rtt / 2.0,
        back: rtt / 2.0,
        jitter,
        up: true,
    })
}

pub fn source(id: &str, priority: u8, link: Box<dyn Fn(f64) -> LinkState>) -> SimSource {
    SimSource {
        id: id.into(),
        priority,
        clock_offset: 0.0,
        link,
        path: Box::new(|_| None),
        request_path: Box::new(|_| None),
        cold: None,
        restart: None,
        last_served: f64::NEG_INFINITY,
    }
}

/// p-quantile of |error| over observations with t in [from, to).
pub fn abs_quantile(obs: &[Obs], from: f64, to: f64, p: f64) -> f64 {
    let mut v: Vec<f64> = obs
        .iter()
        .filter(|o| o.t >= from && o.t < to)
        .map(|o| o.error.abs())
        .collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_covered(obs: &[Obs], from: f64) {
        for o in obs.iter().filter(|o| o.t >= from) {
            assert!(
                o.error.abs() <= o.max_error,
                "t={:.1}: |error| {:.6} exceeds max_error {:.6}",
                o.t,
                o.error,
                o.max_error
            );
        }
    }

    fn first_sync(obs: &[Obs]) -> f64 {
        obs.iter()
            .find(|o| o.state != SyncState::Startup)
            .map(|o| o.t)
            .expect("never synchronised")
    }

    #[test]
    fn converges_from_250ms_and_100ppm() {
        let mut sim = Sim::new(
            0.250,
            100e-6,
            vec![source("a", 0, fixed_link(0.001, 20e-6))],
            EngineConfig::default(),
        );
        sim.run_until(300.0);
        let o = &sim.obs;
        assert!(first_sync(o) < 5.0);
        // Exactly one step (the startup one), then slewing only.
        assert_eq!(o.last().unwrap().steps, 1);
        let p99 = abs_quantile(o, 60.0, 300.0, 0.99);
        eprintln!("1 ms RTT p99 {p99:.9} s");
        assert!(p99 < 50e-6, "p99 after convergence {p99}");
        let f = sim.engine.discipline().estimated_frequency();
        assert!((f + 100e-6).abs() < 0.5e-6, "frequency estimate {f}");
        assert_covered(o, first_sync(o));
    }

    #[test]
    fn small_startup_offset_is_slewed_not_stepped() {
        let mut sim = Sim::new(
            -0.004,
            -30e-6,
            vec![source("a", 0, fixed_link(0.001, 20e-6))],
            EngineConfig::default(),
        );
        sim.run_until(120.0);
        assert_eq!(sim.obs.last().unwrap().steps, 0);
        assert!(abs_quantile(&sim.obs, 60.0, 120.0, 0.99) < 50e-6);
    }

    /// The first exchange of each poll finds the source asleep (+300 µs on the outbound leg,
    /// +150 µs offset error, as measured on loopback by `examples/exchange_probe.rs`). A
    /// burst's minimum-delay selection keeps the warm exchanges; without a burst every
    /// sample carries the bias and no two-way filter can see it.
    #[test]
    fn burst_min_delay_avoids_cold_source_bias() {
        let run = |burst: u32| {
            let mut s = source("a", 0, fixed_link(0.000_200, 10e-6));
            s.cold = Some((0.100, 0.000_300));
            let cfg = EngineConfig {
                burst,
                ..EngineConfig::default()
            };
            let mut sim = Sim::new(0.0, 20e-6, vec![s], cfg);
            sim.run_until(120.0);
            let p99 = abs_quantile(&sim.obs, 60.0, 120.0, 0.99);
            assert_covered(&sim.obs, first_sync(&sim.obs));
            p99
        };
        let (single, burst) = (run(1), run(3));
        eprintln!("cold source: p99 burst 1 {single:.9} s, burst 3 {burst:.9} s");
        // Without a burst the whole 150 µs bias remains.
        assert!(single > 120e-6, "{single}");
        assert!(burst < 30e-6, "{burst}");
    }

    #[test]
    fn burst_feeds_one_sample_per_poll() {
        let mut sim = Sim::new(
            0.0,
            0.0,
            vec![source("a", 0, fixed_link(0.001, 50e-6))],
            EngineConfig::default(),
        );
        sim.run_until(30.0);
        let tr = sim.engine.tracking(0);
        let polls = 30.0 / 0.5;
        // Every exchange counts as a sample, but only one per burst reaches the filter, whose
        // 8 stages then reach back 8 polls.
        assert!(tr.sources[0].samples as f64 >= 3.0 * (polls - 2.0));
        let (len, span) = sim.engine.filter_extent("a").unwrap();
        assert_eq!(len, 8);
        // 8 samples, one per 500 ms poll: 7 poll intervals (a few ms of burst slack).
        assert!((span - 3_500_000_000).abs() < 50_000_000, "span {span} ns");
    }

    pub(super) fn shift_link(asym_back: f64) -> Box<dyn Fn(f64) -> LinkState> {
        Box::new(move |t| {
            if t < 200.0 {
                LinkState {
                    fwd: 0.020,
                    back: 0.020,
                    jitter: 0.0003,
                    up: true,
                }
            } else {
                LinkState {
                    fwd: 0.045 - asym_back / 2.0,
                    back: 0.045 + asym_back / 2.0,
                    jitter: 0.0003,
                    up: true,
                }
            }
        })
    }

    #[test]
    fn symmetric_delay_shift_40_to_90ms_has_small_excursion() {
        let mut sim = Sim::new(
            0.05,
            20e-6,
            vec![source("a", 0, shift_link(0.0))],
            EngineConfig::default(),
        );
        sim.run_until(400.0);
        let o = &sim.obs;
        let before = abs_quantile(o, 100.0, 200.0, 0.99);
        assert!(before < 1e-3, "p99 at 40 ms RTT {before}");
        let excursion = abs_quantile(o, 200.0, 400.0, 1.0);
        eprintln!("40 ms p99 {before:.6} s, excursion after 40->90 ms switch {excursion:.6} s");
        assert!(excursion < 2e-3, "excursion after switch {excursion}");
        assert_eq!(o.last().unwrap().steps, 1);
        assert_covered(o, first_sync(o));
    }

    #[test]
    fn asymmetric_delay_shift_is_covered_by_max_error() {
        // 40 ms symmetric -> 40 ms out / 50 ms back: a 5 ms offset error nobody can see.
        let mut sim = Sim::new(
            0.0,
            20e-6,
            vec![source("a", 0, shift_link(0.010))],
            EngineConfig::default(),
        );
        sim.run_until(400.0);
        let o = &sim.obs;
        assert_covered(o, first_sync(o));
        let late = abs_quantile(o, 350.0, 400.0, 0.5);
        assert!((late - 0.005).abs() < 1e-3, "settled error {late}");
        // The asymmetry is taken as a phase change, not a frequency change: no overshoot.
        let worst = abs_quantile(o, 200.0, 400.0, 1.0);
        eprintln!("asymmetric: settled {late:.6} s, worst {worst:.6} s");
        assert!(worst < 0.0055, "overshoot to {worst}");
    }

    /// 10 ms each way, down from 300 s to 420 s, and `slower` more each way once back.
    fn link_down_300_to_420(slower: f64) -> Box<dyn Fn(f64) -> LinkState> {
        Box::new(move |t| {
            let extra = if t >= 420.0 { slower } else { 0.0 };
            LinkState {
                fwd: 0.010 + extra,
                back: 0.010 + extra,
                jitter: 0.0001,
                up: !(300.0..420.0).contains(&t),
            }
        })
    }

    #[test]
    fn holdover_for_120s_stays_within_max_error() {
        let link = link_down_300_to_420(0.0);
        let mut sim = Sim::new(
            0.3,
            100e-6,
            vec![source("a", 0, link)],
            EngineConfig::default(),
        );
        sim.run_until(420.0);
        let o = &sim.obs;
        let last = o.last().unwrap();
        assert_eq!(last.state, SyncState::Holdover);
        assert!(o
            .iter()
            .filter(|x| x.t > 303.0)
            .all(|x| x.state == SyncState::Holdover));
        assert_covered(o, first_sync(o));
        let worst = abs_quantile(o, 300.0, 420.0, 1.0);
        assert!(worst < 300e-6, "holdover drift {worst}");
        // Recovery: back in sync when the link returns, without a step.
        sim.run_until(440.0);
        assert_eq!(sim.obs.last().unwrap().state, SyncState::Sync);
        assert_eq!(sim.obs.last().unwrap().steps, 1);
    }

    /// After a 2-minute outage the path comes back 0.3 ms slower each way (not enough for a
    /// delay shift): the old minimum-delay samples are stale, and the first fresh sample is
    /// used at once instead of after eight polls, when the last old one leaves the window.
    #[test]
    fn first_sample_after_an_outage_is_used_at_once() {
        let link = link_down_300_to_420(0.0003);
        let mut sim = Sim::new(
            0.3,
            100e-6,
            vec![source("a", 0, link)],
            EngineConfig::default(),
        );
        sim.run_until(419.0);
        assert_eq!(sim.obs.last().unwrap().state, SyncState::Holdover);
        // Four polls after the return the loop has been fed again (it would wait for the
        // eighth poll while the old minimum held the window).
        sim.run_until(422.0);
        let now = sim.clock.mono(422.0);
        let since = sim.engine.tracking(now).since_update_ms;
        assert!(
            since.is_some_and(|ms| ms < 1500),
            "last loop update {since:?} ms ago"
        );
    }

    #[test]
    fn lost_source_is_replaced_within_3s_without_step() {
        let a_link: Box<dyn Fn(f64) -> LinkState> = Box::new(|t| LinkState {
            fwd: 0.005,
            back: 0.005,
            jitter: 0.0001,
            up: t < 100.0,
        });
        let mut sim = Sim::new(
            0.02,
            10e-6,
            vec![
                source("a", 0, a_link),
                source("b", 1, fixed_link(0.012, 0.0001)),
            ],
            EngineConfig::default(),
        );
        sim.run_until(200.0);
        let o = &sim.obs;
        assert!(o
            .iter()
            .filter(|x| x.t > 20.0 && x.t < 100.0)
            .all(|x| x.selected.as_deref() == Some("a")));
        let switched = o
            .iter()
            .find(|x| x.t >= 100.0 && x.selected.as_deref() == Some("b"))
            .map(|x| x.t)
            .unwrap();
        assert!(
            switched - 100.0 <= 3.0,
            "failover took {}",
            switched - 100.0
        );
        assert_eq!(o.last().unwrap().steps, 1);
        assert!(abs_quantile(o, 100.0, 200.0, 1.0) < 1e-3);
        assert_covered(o, first_sync(o));
    }

    #[test]
    fn falseticker_is_never_selected() {
        let mut liar = source("liar", 0, fixed_link(0.002, 0.00005));
        liar.clock_offset = 0.100;
        let mut sim = Sim::new(
            0.0,
            5e-6,
            vec![
                liar,
                source("b", 1, fixed_link(0.004, 0.00005)),
                source("c", 1, fixed_link(0.006, 0.00005)),
            ],
            EngineConfig::default(),
        );
        sim.run_until(120.0);
        let o = &sim.obs;
        assert!(o.iter().all(|x| x.selected.as_deref() != Some("liar")));
        assert!(abs_quantile(o, 30.0, 120.0, 1.0) < 500e-6);
        let tr = sim.engine.tracking(0);
        let l = tr.sources.iter().find(|s| s.id == "liar").unwrap();
        assert!(l.falseticker);
    }

    #[test]
    fn path_change_resets_filter_state() {
        let mut s = source(
            "a",
            0,
            Box::new(|t| LinkState {
                fwd: if t < 50.0 { 0.010 } else { 0.030 },
                back: if t < 50.0 { 0.010 } else { 0.030 },
                jitter: 0.0001,
                up: true,
            }),
        );
        s.path = Box::new(|t| Some(if t < 50.0 { "p1".into() } else { "p2".into() }));
        let mut sim = Sim::new(0.0, 0.0, vec![s], EngineConfig::default());
        sim.run_until(100.0);
        let tr = sim.engine.tracking(0);
        assert_eq!(tr.path_switches, 1);
        // The new path's samples were used directly (no pop-filter delay): no delay shift.
        assert_eq!(tr.sources[0].delay_shifts, 0);
        assert_eq!(tr.sources[0].path.as_deref(), Some("p2"));
        assert!(abs_quantile(&sim.obs, 50.0, 100.0, 1.0) < 1e-3);
    }

    /// The source restarts 40 s in with its clock 2 s ahead (new epoch): the follower starts
    /// that source over and re-acquires it with one step, keeping its frequency estimate,
    /// instead of reading the jump as a frequency error and slewing at 500 ppm for an hour.
    #[test]
    fn source_restart_with_a_clock_jump_is_reacquired_by_a_step() {
        let mut s = source("a", 0, fixed_link(0.002, 20e-6));
        s.restart = Some((40.0, 2.0));
        let mut sim = Sim::new(0.100, 50e-6, vec![s], EngineConfig::default());
        sim.run_until(80.0);
        let tr = sim.engine.tracking(0);
        assert_eq!(tr.sources[0].restarts, 1);
        // The startup step, then the re-acquisition step.
        assert_eq!(tr.steps, 2);
        let after: Vec<&Obs> = sim.obs.iter().filter(|o| o.t >= 50.0).collect();
        assert!(!after.is_empty());
        for o in after {
            // Following the source, which is now 2 s ahead of true time.
            assert!(
                (o.error - 2.0).abs() < 1e-3,
                "t={:.1} error {:.6}",
                o.t,
                o.error
            );
        }
        let f = sim.engine.discipline().estimated_frequency();
        assert!((f + 50e-6).abs() < 2e-6, "frequency estimate {f}");
    }

    /// The route alternates between two SCION paths of different delay every poll: each
    /// path resumes its own filter, so the follower synchronises and stays synchronised
    /// (a single filter replaced on every change never filled, and the first exchange after
    /// each change was dropped: it stayed in startup forever).
    #[test]
    fn flapping_between_two_paths_still_synchronises() {
        let mut s = source(
            "a",
            0,
            Box::new(|t| {
                let p1 = ((t / 0.5) as i64) % 2 == 1;
                LinkState {
                    fwd: if p1 { 0.012 } else { 0.010 },
                    back: if p1 { 0.012 } else { 0.010 },
                    jitter: 50e-6,
                    up: true,
                }
            }),
        );
        s.path = Box::new(|t| {
            Some(
                if ((t / 0.5) as i64) % 2 == 1 {
                    "p1"
                } else {
                    "p0"
                }
                .into(),
            )
        });
        let mut sim = Sim::new(0.050, 20e-6, vec![s], EngineConfig::default());
        sim.run_until(120.0);
        let tr = sim.engine.tracking(0);
        assert!(tr.path_switches > 50, "{} path switches", tr.path_switches);
        assert!(first_sync(&sim.obs) < 10.0);
        let p99 = abs_quantile(&sim.obs, 60.0, 120.0, 0.99);
        assert!(p99 < 1e-3, "p99 error {p99}");
        assert_covered(&sim.obs, 30.0);
    }

    /// Two paths whose outbound legs differ by 8 ms (4 ms of asymmetry) alternate every
    /// 5 s: a path that comes back resumes its filter, but the loop, fitted to the other
    /// path's asymmetry, must take the difference as phase: the frequency estimate stays
    /// near the true value (it was off by about 300 ppm when only new paths reset the
    /// phase).
    #[test]
    fn alternating_asymmetric_paths_do_not_drag_the_frequency() {
        let p1 = |t: f64| ((t / 5.0) as i64) % 2 == 1;
        let mut s = source(
            "a",
            0,
            Box::new(move |t| LinkState {
                fwd: if p1(t) { 0.018 } else { 0.010 },
                back: 0.010,
                jitter: 50e-6,
                up: true,
            }),
        );
        s.path = Box::new(move |t| Some(if p1(t) { "p1" } else { "p0" }.into()));
        // The raw clock runs 20 ppm fast: the estimate (source minus local) is -20 ppm.
        let mut sim = Sim::new(0.050, 20e-6, vec![s], EngineConfig::default());
        sim.run_until(200.0);
        let f = sim.engine.discipline().estimated_frequency();
        assert!(
            (f + 20e-6).abs() < 5e-6,
            "frequency estimate {:.1} ppm",
            f * 1e6
        );
        let p99 = abs_quantile(&sim.obs, 60.0, 200.0, 0.99);
        assert!(p99 < 4e-3, "p99 error {p99}");
        assert_covered(&sim.obs, 30.0);
    }

    /// Only the request leg moves (each end of a SCION route picks its own path): the
    /// outbound delay changes while the reply path stays, which shifts the offset by half
    /// the change unless the filter restarts on the echoed request path.
    #[test]
    fn request_path_change_alone_resets_filter_state() {
        let mut s = source(
            "a",
            0,
            Box::new(|t| LinkState {
                fwd: if t < 50.0 { 0.010 } else { 0.030 },
                back: 0.010,
                jitter: 0.0001,
                up: true,
            }),
        );
        s.path = Box::new(|_| Some("back".into()));
        s.request_path = Box::new(|t| Some(if t < 50.0 { "q1".into() } else { "q2".into() }));
        let mut sim = Sim::new(0.0, 0.0, vec![s], EngineConfig::default());
        sim.run_until(100.0);
        let tr = sim.engine.tracking(0);
        assert_eq!(tr.path_switches, 1);
        assert_eq!(tr.sources[0].delay_shifts, 0);
        assert_eq!(tr.sources[0].request_path.as_deref(), Some("q2"));
        assert_eq!(tr.sources[0].path.as_deref(), Some("back"));
    }
}
