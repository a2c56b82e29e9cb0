//! Selector behaviour on a virtual clock: a tiny simulated network answers probes (or not),
//! sends SCMP, and the test checks when and why the selector switches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use scion_transport::address::IsdAsn;
use scion_transport::path::{
    PathFingerprint, PathInfo, PathInterface, PathPolicy, PathState, Selector, SelectorAction,
    SelectorConfig, SwitchCause,
};

const MS: Duration = Duration::from_millis(1);
const UNIX_T0: u64 = 1_700_000_000;

fn ia(s: &str) -> IsdAsn {
    s.parse().unwrap()
}

/// Builds a path from AS hops `(ia, ingress, egress)`; per-link latency/bandwidth optional.
fn path(
    id: u64,
    hops: &[(&str, u16, u16)],
    lat_ms: &[Option<u64>],
    bw: &[Option<u64>],
) -> PathInfo {
    let mut ifs = Vec::new();
    for (i, (a, ing, eg)) in hops.iter().enumerate() {
        if i > 0 {
            ifs.push(PathInterface::new(ia(a), *ing));
        }
        if i + 1 < hops.len() {
            ifs.push(PathInterface::new(ia(a), *eg));
        }
    }
    let mut p = PathInfo::new(
        PathFingerprint::from_u64(id),
        ia(hops[0].0),
        ia(hops[hops.len() - 1].0),
        ifs,
        1472,
        UNIX_T0 + 6 * 3600,
    );
    p.latency = lat_ms.iter().map(|l| l.map(|v| MS * v as u32)).collect();
    p.bandwidth_kbps = bw.to_vec();
    p
}

/// P1 via B (low latency, low bandwidth), P2 via C (more latency, high bandwidth), P3 via D,E
/// (long), P4 via B again but over B#3 (shares A#1 and B#1 with P1).
fn topology() -> Vec<PathInfo> {
    vec![
        path(
            1,
            &[
                ("1-ff00:0:a", 0, 1),
                ("1-ff00:0:b", 1, 2),
                ("1-ff00:0:f", 1, 0),
            ],
            &[Some(2), Some(1), Some(2)],
            &[Some(1_000), Some(100_000), Some(1_000)],
        ),
        path(
            2,
            &[
                ("1-ff00:0:a", 0, 2),
                ("1-ff00:0:c", 1, 2),
                ("1-ff00:0:f", 2, 0),
            ],
            &[Some(5), Some(1), Some(5)],
            &[Some(100_000), Some(100_000), Some(50_000)],
        ),
        path(
            3,
            &[
                ("1-ff00:0:a", 0, 3),
                ("1-ff00:0:d", 1, 2),
                ("1-ff00:0:e", 1, 2),
                ("1-ff00:0:f", 3, 0),
            ],
            &[Some(10), Some(1), Some(10), Some(1), Some(10)],
            &[None, None, None, None, None],
        ),
        path(
            4,
            &[
                ("1-ff00:0:a", 0, 1),
                ("1-ff00:0:b", 1, 3),
                ("1-ff00:0:f", 4, 0),
            ],
            &[Some(2), Some(1), Some(9)],
            &[Some(1_000), Some(100_000), Some(1_000)],
        ),
    ]
}

fn fp(id: u64) -> PathFingerprint {
    PathFingerprint::from_u64(id)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    Up {
        rtt: Duration,
    },
    /// Packets vanish.
    Blackhole,
    /// Every `every`-th probe vanishes.
    Lossy {
        rtt: Duration,
        every: u32,
    },
    /// The first router answers with SCMP interface down for this interface.
    Scmp {
        ia: IsdAsn,
        ifid: u16,
        after: Duration,
    },
}

struct Sim {
    sel: Selector,
    t0: Instant,
    now: Instant,
    links: HashMap<PathFingerprint, Link>,
    sent_per_path: HashMap<PathFingerprint, u32>,
    replies: Vec<(Instant, PathFingerprint, u64)>,
    scmps: Vec<(Instant, IsdAsn, u16)>,
    switches: Vec<(Duration, PathFingerprint, SwitchCause)>,
    probes: Vec<(Duration, PathFingerprint)>,
    refreshes: Vec<Duration>,
}

impl Sim {
    fn new(cfg: SelectorConfig, paths: Vec<PathInfo>) -> Sim {
        Sim::with_rtts(cfg, paths, &[])
    }

    /// `rtts[i]` is the RTT in ms of path `i + 1` (default 10 ms), in place before any probe.
    fn with_rtts(cfg: SelectorConfig, paths: Vec<PathInfo>, rtts: &[u32]) -> Sim {
        let mut sel = Selector::new(cfg).unwrap();
        let t0 = Instant::now();
        let mut links = HashMap::new();
        for p in &paths {
            links.insert(p.fingerprint, Link::Up { rtt: MS * 10 });
        }
        for (i, r) in rtts.iter().enumerate() {
            links.insert(fp(i as u64 + 1), Link::Up { rtt: MS * *r });
        }
        sel.set_paths(t0, Duration::from_secs(UNIX_T0), paths);
        let mut s = Sim {
            sel,
            t0,
            now: t0,
            links,
            sent_per_path: HashMap::new(),
            replies: Vec::new(),
            scmps: Vec::new(),
            switches: Vec::new(),
            probes: Vec::new(),
            refreshes: Vec::new(),
        };
        s.poll();
        s
    }

    fn at(&self) -> Duration {
        self.now - self.t0
    }

    fn set(&mut self, id: u64, link: Link) {
        self.links.insert(fp(id), link);
    }

    fn poll(&mut self) {
        for a in self.sel.poll(self.now) {
            match a {
                SelectorAction::SendProbe { fingerprint, seq } => {
                    self.sel.on_probe_sent(self.now, fingerprint, seq);
                    self.probes.push((self.at(), fingerprint));
                    match self.links.get(&fingerprint).copied() {
                        Some(Link::Up { rtt }) => {
                            self.replies.push((self.now + rtt, fingerprint, seq))
                        }
                        Some(Link::Scmp { ia, ifid, after }) => {
                            self.scmps.push((self.now + after, ia, ifid))
                        }
                        Some(Link::Lossy { rtt, every }) => {
                            let n = self.sent_per_path.entry(fingerprint).or_insert(0);
                            *n += 1;
                            if !(*n).is_multiple_of(every) {
                                self.replies.push((self.now + rtt, fingerprint, seq))
                            }
                        }
                        Some(Link::Blackhole) | None => {}
                    }
                }
                SelectorAction::SwitchTo { fingerprint, cause } => {
                    self.switches.push((self.at(), fingerprint, cause))
                }
                SelectorAction::RefreshPaths => self.refreshes.push(self.at()),
            }
        }
    }

    /// Runs the event loop until `until` (relative to t0). Bounded by an event count.
    fn run_until(&mut self, until: Duration) {
        let end = self.t0 + until;
        for _ in 0..1_000_000 {
            let next_reply = self.replies.iter().map(|r| r.0).min();
            let next_scmp = self.scmps.iter().map(|r| r.0).min();
            let next_timer = self.sel.poll_timeout();
            let next = [next_reply, next_scmp, next_timer]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|t| *t <= end) else {
                self.now = end;
                self.poll();
                return;
            };
            assert!(next >= self.now, "time went backwards");
            self.now = next;
            let now = self.now;
            let due: Vec<_> = self
                .replies
                .iter()
                .filter(|r| r.0 <= now)
                .copied()
                .collect();
            self.replies.retain(|r| r.0 > now);
            for (_, f, seq) in due {
                self.sel.on_probe_reply(now, f, seq);
            }
            let due: Vec<_> = self.scmps.iter().filter(|r| r.0 <= now).copied().collect();
            self.scmps.retain(|r| r.0 > now);
            for (_, a, i) in due {
                self.sel.on_scmp_interface_down(now, a, i);
            }
            self.poll();
        }
        panic!("event loop did not reach {until:?}");
    }

    fn active(&self) -> PathFingerprint {
        self.sel.active().expect("an active path").fingerprint
    }

    fn state(&self, id: u64) -> PathState {
        self.sel
            .candidates()
            .into_iter()
            .find(|c| c.info.fingerprint == fp(id))
            .map(|c| c.state)
            .expect("path listed")
    }

    fn switches_after(&self, t: Duration) -> Vec<(Duration, PathFingerprint, SwitchCause)> {
        self.switches.iter().filter(|s| s.0 >= t).copied().collect()
    }
}

fn cfg(pref: &str) -> SelectorConfig {
    SelectorConfig {
        preference: pref.parse().unwrap(),
        ..SelectorConfig::default()
    }
}

#[test]
fn initial_choice_follows_preference() {
    let s = Sim::new(cfg(""), topology());
    assert_eq!(
        s.switches,
        vec![(Duration::ZERO, fp(1), SwitchCause::Initial)]
    );
    assert_eq!(s.sel.switch_count(), 0);

    // Reverse the daemon order: with no preference, the daemon's first path wins.
    let mut rev = topology();
    rev.reverse();
    let s = Sim::new(cfg(""), rev);
    assert_eq!(s.active(), fp(4));
    let mut rev = topology();
    rev.reverse();
    let s = Sim::new(cfg("latency"), rev);
    assert_eq!(s.active(), fp(1));
}

#[test]
fn preference_bandwidth_first_picks_a_different_path_than_latency() {
    let s = Sim::new(cfg("latency"), topology());
    assert_eq!(s.active(), fp(1), "P1 has 5 ms, P2 11 ms");
    let s = Sim::new(cfg("bandwidth,latency"), topology());
    assert_eq!(
        s.active(),
        fp(2),
        "P2 bottleneck 50 Mbit/s beats P1's 1 Mbit/s"
    );
    let s = Sim::new(cfg("hops,latency"), topology());
    assert_eq!(s.active(), fp(1));
}

#[test]
fn scmp_interface_down_switches_at_once() {
    let mut s = Sim::new(cfg("latency"), topology());
    s.run_until(MS * 1000);
    assert_eq!(s.active(), fp(1));
    let t = s.at();
    // Interface B#1 dies: P1 and P4 both use it.
    let hit = s.sel.on_scmp_interface_down(s.now, ia("1-ff00:0:b"), 1);
    assert_eq!(hit, 2);
    s.poll();
    assert_eq!(s.switches_after(t), vec![(t, fp(2), SwitchCause::ScmpDown)]);
    assert_eq!(s.state(1), PathState::Down);
    assert_eq!(s.state(4), PathState::Down);
    assert_eq!(s.state(2), PathState::Alive);
    let v = s.sel.candidates();
    let p1 = v.iter().find(|c| c.info.fingerprint == fp(1)).unwrap();
    assert!(
        p1.reason.as_deref().unwrap().contains("1-ff00:0:b#1"),
        "{:?}",
        p1.reason
    );
}

#[test]
fn silent_blackhole_detected_within_300ms() {
    // Try many phases of the blackhole relative to the probe schedule.
    let mut worst = Duration::ZERO;
    for rtt_ms in [1u64, 10, 30] {
        for phase in 0..10u32 {
            let r = rtt_ms as u32;
            let mut s = Sim::with_rtts(cfg("latency"), topology(), &[r, r, r, r]);
            s.run_until(MS * 2000 + MS * (phase * 7));
            assert_eq!(s.active(), fp(1));
            let t = s.at();
            s.set(1, Link::Blackhole);
            s.run_until(t + MS * 1000);
            let sw = s.switches_after(t);
            assert_eq!(sw.len(), 1, "rtt {rtt_ms} phase {phase}: {sw:?}");
            assert_eq!(sw[0].2, SwitchCause::ProbeLoss);
            assert_ne!(sw[0].1, fp(1));
            let took = sw[0].0 - t;
            worst = worst.max(took);
            assert!(
                took <= MS * 300,
                "rtt {rtt_ms} phase {phase}: took {took:?}"
            );
        }
    }
    eprintln!("worst silent-blackhole detection: {worst:?}");
    assert!(worst >= MS * 100, "suspiciously fast detection {worst:?}");
}

#[test]
fn flapping_path_does_not_ping_pong_then_fails_back() {
    let mut s = Sim::with_rtts(cfg("latency"), topology(), &[5, 12]);
    s.run_until(MS * 1000);
    assert_eq!(s.active(), fp(1));
    // P1 flaps: 400 ms dead, 900 ms alive, for 13 s.
    let mut t = s.at();
    let flap_start = t;
    for _ in 0..10 {
        s.set(1, Link::Blackhole);
        t += MS * 400;
        s.run_until(t);
        s.set(1, Link::Up { rtt: MS * 5 });
        t += MS * 900;
        s.run_until(t);
    }
    let during = s.switches_after(flap_start);
    assert_eq!(during.len(), 1, "one switch away, none back: {during:?}");
    assert_eq!(during[0].2, SwitchCause::ProbeLoss);
    assert_ne!(s.active(), fp(1));
    // P1 now stays up (it has been since the last 900 ms phase began): failback once, after
    // it answered probes again and then held for 2 s.
    let up_since = t - MS * 900;
    s.run_until(t + MS * 5000);
    let back = s.switches_after(t);
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!((back[0].1, back[0].2), (fp(1), SwitchCause::Better));
    let after = back[0].0 - up_since;
    assert!(
        after >= MS * 2000 && after <= MS * 3000,
        "failback after {after:?}"
    );
    assert_eq!(s.sel.switch_count(), 2);
    assert_eq!(
        s.sel.switch_counts(),
        vec![(SwitchCause::ProbeLoss, 1), (SwitchCause::Better, 1)]
    );
    // A new connection after a quiet spell starts its history over.
    s.sel.reset_switch_counts();
    assert_eq!(s.sel.switch_count(), 0);
    assert!(s.sel.switch_counts().is_empty());
}

#[test]
fn failback_after_recovery_and_not_for_marginal_gain() {
    let mut s = Sim::with_rtts(cfg("latency"), topology(), &[10, 30, 10, 10]);
    s.run_until(MS * 1000);
    let t = s.at();
    s.set(
        1,
        Link::Scmp {
            ia: ia("1-ff00:0:b"),
            ifid: 2,
            after: MS * 2,
        },
    );
    s.run_until(t + MS * 500);
    let sw = s.switches_after(t);
    assert_eq!(sw.len(), 1);
    assert_eq!(sw[0].2, SwitchCause::ScmpDown);
    assert!(sw[0].0 - t <= MS * 60, "{sw:?}");
    // P3 and P4 (10 ms) are as good as P1 (10 ms): on either, P1's return is no gain.
    let on = sw[0].1;
    let recover = s.at();
    s.set(1, Link::Up { rtt: MS * 10 });
    s.run_until(recover + MS * 6000);
    if on == fp(4) || on == fp(3) {
        assert!(
            s.switches_after(recover).is_empty(),
            "tie must not cause a switch"
        );
        assert_eq!(
            s.state(1),
            PathState::Alive,
            "recovered path is alive again"
        );
    } else {
        let back = s.switches_after(recover);
        assert_eq!(back.len(), 1, "{back:?}");
        assert_eq!(back[0].2, SwitchCause::Better);
    }
}

#[test]
fn failback_to_recovered_preferred_path() {
    // Only P1 and P2: P1 is far better (10 vs 40 ms).
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[10, 40]);
    s.run_until(MS * 1000);
    let t = s.at();
    s.set(1, Link::Blackhole);
    s.run_until(t + MS * 1500);
    assert_eq!(s.active(), fp(2));
    assert_eq!(s.state(1), PathState::Down);
    let recover = s.at();
    s.set(1, Link::Up { rtt: MS * 10 });
    s.run_until(recover + MS * 5000);
    let back = s.switches_after(recover);
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!((back[0].1, back[0].2), (fp(1), SwitchCause::Better));
    let after = back[0].0 - recover;
    // Down probes every 500 ms, 2 answers to revive, then 2 s hold.
    assert!(after >= MS * 2000 && after <= MS * 3200, "{after:?}");
}

#[test]
fn latency_increase_moves_to_better_path() {
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[10, 20]);
    s.run_until(MS * 3000);
    assert_eq!(s.active(), fp(1));
    assert!(s.switches_after(MS * 1).is_empty());
    let t = s.at();
    s.set(1, Link::Up { rtt: MS * 60 });
    let window = SelectorConfig::default().rtt_min_window;
    s.run_until(t + window + MS * 2000);
    let sw = s.switches_after(t);
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!((sw[0].1, sw[0].2), (fp(2), SwitchCause::Better));
    // The active path is judged by its minimum RTT over the window (see the flood test
    // below): the rise counts once the last fast sample has left the window.
    let took = sw[0].0 - t;
    assert!(
        took >= window - MS * 100 && took <= window + MS * 1000,
        "took {took:?}"
    );
    let rtt1 = s
        .sel
        .candidates()
        .into_iter()
        .find(|c| c.info.fingerprint == fp(1));
    assert!(rtt1.unwrap().rtt.unwrap() > MS * 40);
}

/// A flood over the active path queues its probes behind our own data: its RTT rises from
/// 4 to 16 ms while the idle detour stays at 8 ms. Moving the flood there would not help (it
/// would queue there too), so the selector must stay as long as the rise lasts less than the
/// min-RTT window; with the window off (SRTT alone) the same flood switches.
fn flood(window: Duration) -> Vec<(Duration, PathFingerprint, SwitchCause)> {
    flood_why(window).0
}

/// [`flood`], with `why_active` while the flood lasts.
fn flood_why(window: Duration) -> (Vec<(Duration, PathFingerprint, SwitchCause)>, String) {
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let c = SelectorConfig {
        rtt_min_window: window,
        ..cfg("latency")
    };
    let mut s = Sim::with_rtts(c, paths, &[4, 8]);
    s.run_until(MS * 3000);
    assert_eq!(s.active(), fp(1));
    let t = s.at();
    s.set(1, Link::Up { rtt: MS * 16 });
    s.run_until(t + MS * 4000);
    let why = s.sel.why_active().unwrap_or_default();
    s.set(1, Link::Up { rtt: MS * 4 });
    s.run_until(t + MS * 8000);
    (s.switches_after(t), why)
}

#[test]
fn self_induced_queueing_does_not_switch() {
    let window = SelectorConfig::default().rtt_min_window;
    assert!(window > MS * 4000, "the flood must fit the default window");
    let (sw, why) = flood_why(window);
    assert!(sw.is_empty(), "{sw:?}");
    // /pathz explains with the values the failback check used: the detour's 8 ms against the
    // active path's 4 ms minimum, not its flood-inflated SRTT (which ranks it second).
    assert!(
        why.starts_with(&format!(
            "kept: {} ranks first on its smoothed RTT but is not better",
            fp(2).short()
        )),
        "{why}"
    );
    assert!(
        why.contains(&format!(
            "latency: {} 8.0 ms vs active 4.0 ms, worse",
            fp(2).short()
        )),
        "{why}"
    );
    let sw = flood(Duration::ZERO);
    assert!(
        sw.first().is_some_and(|s| s.2 == SwitchCause::Better),
        "SRTT alone switches away: {sw:?}"
    );
}

#[test]
fn small_latency_noise_does_not_switch() {
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[20, 19]);
    s.run_until(MS * 10_000);
    assert_eq!(s.active(), fp(1));
    assert_eq!(s.sel.switch_count(), 0);
}

#[test]
fn all_paths_down_stays_keeps_probing_and_recovers() {
    let mut s = Sim::new(cfg("latency"), topology());
    s.run_until(MS * 1000);
    let t = s.at();
    for id in 1..=4 {
        s.set(id, Link::Blackhole);
    }
    s.run_until(t + MS * 5000);
    let sw = s.switches_after(t);
    // Every path fell silent at once (the peer is gone): no path answers after the active
    // one stopped, so there is nowhere proven to go and no failover at all.
    assert!(sw.is_empty(), "{sw:?}");
    let settled = s.at();
    let stuck_on = s.active();
    s.run_until(settled + MS * 5000);
    assert!(s.switches_after(settled).is_empty());
    assert_eq!(s.active(), stuck_on);
    for id in 1..=4 {
        assert_eq!(s.state(id), PathState::Down, "path {id}");
    }
    let why = s.sel.why_active().expect("why");
    assert!(
        why.starts_with("kept: all 4 usable paths are down"),
        "{why}"
    );
    // Still probing the active path at full rate, and the others slowly.
    let recent: Vec<_> = s.probes.iter().filter(|p| p.0 >= settled).collect();
    let on_active = recent.iter().filter(|p| p.1 == stuck_on).count();
    assert!((90..=110).contains(&on_active), "{on_active} probes in 5 s");
    assert!(recent.iter().any(|p| p.1 != stuck_on));
    // Refresh requested while nothing works, but rate-limited.
    let refreshes = s.refreshes.iter().filter(|r| **r >= t).count();
    assert!((1..=2).contains(&refreshes), "{refreshes}");
    // P3 recovers: we move to it quickly.
    let recover = s.at();
    s.set(3, Link::Up { rtt: MS * 10 });
    s.run_until(recover + MS * 3000);
    let sw = s.switches_after(recover);
    if stuck_on == fp(3) {
        assert!(sw.is_empty());
    } else {
        assert_eq!(sw.len(), 1, "{sw:?}");
        assert_eq!(sw[0].1, fp(3));
        assert!(sw[0].0 - recover <= MS * 1500, "{sw:?}");
    }
    assert_eq!(s.state(3), PathState::Alive);
}

/// Runs until the answer to the first probe over `id` sent after `t` (the links' 10 ms RTT)
/// has just arrived; returns that time.
fn run_past_first_answer_after(s: &mut Sim, id: u64, t: Duration) -> Duration {
    for _ in 0..1000 {
        if let Some(p) = s.probes.iter().find(|p| p.1 == fp(id) && p.0 > t) {
            let answered = p.0 + MS * 10;
            s.run_until(answered + MS);
            return answered;
        }
        let next = s.at() + MS * 5;
        s.run_until(next);
    }
    panic!("no probe over path {id} after {t:?}");
}

#[test]
fn in_a_total_outage_the_first_answer_revives_a_path() {
    // Every path down: the first answer is enough, there is nothing better to wait for.
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::new(cfg("latency"), paths);
    s.run_until(MS * 1000);
    let t = s.at();
    s.set(1, Link::Blackhole);
    s.set(2, Link::Blackhole);
    s.run_until(t + MS * 2000);
    let stuck_on = s.active();
    let id = if stuck_on == fp(1) { 1 } else { 2 };
    assert_eq!(s.state(id), PathState::Down);
    let recover = s.at();
    s.set(id, Link::Up { rtt: MS * 10 });
    run_past_first_answer_after(&mut s, id, recover);
    assert_eq!(s.state(id), PathState::Alive, "after one answer");

    // With another path alive, a path that went down needs two answers in a row.
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[10, 40]);
    s.run_until(MS * 1000);
    let t = s.at();
    s.set(1, Link::Blackhole);
    s.run_until(t + MS * 1500);
    assert_eq!(s.state(1), PathState::Down);
    let recover = s.at();
    s.set(1, Link::Up { rtt: MS * 10 });
    let answered = run_past_first_answer_after(&mut s, 1, recover);
    assert_eq!(s.state(1), PathState::Down, "one answer is not enough");
    run_past_first_answer_after(&mut s, 1, answered);
    assert_eq!(s.state(1), PathState::Alive, "after two answers");
}

#[test]
fn a_silent_peer_is_all_down_without_hopping_between_paths() {
    for phase in 0..10u32 {
        let mut s = Sim::with_rtts(cfg("latency"), topology(), &[10, 20, 30, 40]);
        s.run_until(MS * 2000 + MS * (phase * 13));
        assert_eq!(s.active(), fp(1));
        let t = s.at();
        for id in 1..=4 {
            s.set(id, Link::Blackhole);
        }
        // Found down like a blackhole, then the watched paths within a few probe rounds.
        let mut all_down_at = None;
        for step in 1..=100u32 {
            s.run_until(t + MS * (10 * step));
            if s.sel.all_down().is_some() {
                all_down_at = Some(s.at() - t);
                break;
            }
            if s.state(1) == PathState::Down {
                let why = s.sel.why_active().expect("why");
                assert!(why.contains("waiting for another path to answer"), "{why}");
            }
        }
        let took = all_down_at.expect("all paths down within 1 s");
        assert!(took <= MS * 700, "phase {phase}: all down after {took:?}");
        assert!(
            s.switches_after(t).is_empty(),
            "phase {phase}: {:?}",
            s.switches
        );
        // The peer comes back: the first path to answer is taken.
        let back = s.at();
        for id in 1..=4 {
            s.set(id, Link::Up { rtt: MS * 10 });
        }
        s.run_until(back + MS * 2000);
        assert!(s.sel.answering(), "phase {phase}");
        assert_eq!(s.state(1), PathState::Alive, "phase {phase}");
    }
}

#[test]
fn expiry_requests_refresh_and_switches_off_expired_path() {
    let mut paths = topology();
    // P1 expires in 10 min, the others in 6 h.
    paths[0].expiry_unix_secs = UNIX_T0 + 600;
    let mut s = Sim::new(cfg("latency"), paths);
    assert_eq!(s.active(), fp(1));
    s.run_until(Duration::from_secs(299));
    assert!(s.refreshes.is_empty(), "{:?}", s.refreshes);
    s.run_until(Duration::from_secs(301));
    assert_eq!(s.refreshes, vec![Duration::from_secs(300)]);
    // The daemon has nothing newer: we ask again every 10 s, and leave P1 when it expires.
    s.run_until(Duration::from_secs(601));
    assert!(
        s.refreshes.len() >= 25 && s.refreshes.len() <= 32,
        "{}",
        s.refreshes.len()
    );
    let sw = s.switches_after(Duration::from_secs(1));
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!(sw[0].0, Duration::from_secs(600));
    assert_eq!(sw[0].2, SwitchCause::Expiry);
    assert_eq!(s.state(1), PathState::Expired);
}

#[test]
fn refresh_keeps_state_and_replaces_vanished_active() {
    let mut s = Sim::new(cfg("latency"), topology());
    s.run_until(MS * 2000);
    let rtt_before = s.sel.candidates()[0].rtt;
    assert!(rtt_before.is_some());
    // Same paths with a later expiry: nothing changes, history kept.
    let mut fresh = topology();
    for p in &mut fresh {
        p.expiry_unix_secs += 3600;
    }
    s.sel
        .set_paths(s.now, Duration::from_secs(UNIX_T0 + 2), fresh);
    s.poll();
    assert_eq!(s.sel.switch_count(), 0);
    assert_eq!(s.sel.candidates()[0].rtt, rtt_before);
    // A refresh without P1: switch with cause Refresh.
    let t = s.at();
    let without: Vec<PathInfo> = topology().into_iter().skip(1).collect();
    s.sel
        .set_paths(s.now, Duration::from_secs(UNIX_T0 + 2), without);
    s.poll();
    let sw = s.switches_after(t);
    assert_eq!(sw.len(), 1);
    assert_eq!(sw[0].2, SwitchCause::Refresh);
    assert!(s
        .sel
        .candidates()
        .iter()
        .all(|c| c.info.fingerprint != fp(1)));
}

#[test]
fn redundancy_picks_disjoint_paths() {
    let c = SelectorConfig {
        redundancy: 2,
        ..cfg("latency")
    };
    let mut s = Sim::new(c, topology());
    s.run_until(MS * 1000);
    let set: Vec<_> = s.sel.active_set().iter().map(|p| p.fingerprint).collect();
    // P4 is the second-best by latency but shares A#1/B#1 with P1.
    assert_eq!(set, vec![fp(1), fp(2)]);
    // Both members are probed at the active rate.
    let p2 = s
        .probes
        .iter()
        .filter(|p| p.1 == fp(2) && p.0 >= MS * 500)
        .count();
    assert!(p2 >= 9, "{p2}");

    let c = SelectorConfig {
        redundancy: 3,
        ..cfg("latency")
    };
    let mut s = Sim::new(c, topology());
    s.run_until(MS * 1000);
    let set: Vec<_> = s.sel.active_set().iter().map(|p| p.fingerprint).collect();
    assert_eq!(set, vec![fp(1), fp(2), fp(3)]);
    // C dies: the set shrinks to disjoint survivors and fills with the least overlapping.
    let t = s.at();
    s.sel.on_scmp_interface_down(s.now, ia("1-ff00:0:c"), 1);
    s.run_until(t + MS * 10);
    let set: Vec<_> = s.sel.active_set().iter().map(|p| p.fingerprint).collect();
    assert_eq!(set, vec![fp(1), fp(3), fp(4)]);
    let views = s.sel.candidates();
    assert!(views.iter().filter(|v| v.in_active_set).count() == 3);
}

#[test]
fn small_mtu_and_policy_filter_with_reasons() {
    let mut paths = topology();
    paths[0].mtu = 1280; // 3 ASes: 1200 + 36 + 8 + 4 + 16 + 48 > 1280
    let c = SelectorConfig {
        policy: PathPolicy::new(
            Some(scion_transport::path::Acl::from_entries(&["- 1-ff00:0:c", "+"]).unwrap()),
            None,
        ),
        ..cfg("latency")
    };
    let s = Sim::new(c, paths);
    assert_eq!(s.active(), fp(4));
    let views = s.sel.candidates();
    let p1 = views.iter().find(|v| v.info.fingerprint == fp(1)).unwrap();
    assert_eq!(p1.state, PathState::Filtered);
    assert!(
        p1.reason.as_deref().unwrap().contains("MTU 1280"),
        "{:?}",
        p1.reason
    );
    assert_eq!(p1.rank, None);
    let p2 = views.iter().find(|v| v.info.fingerprint == fp(2)).unwrap();
    assert_eq!(p2.state, PathState::Filtered);
    assert!(
        p2.reason.as_deref().unwrap().contains("ACL denies"),
        "{:?}",
        p2.reason
    );
    assert!(s.probes.iter().all(|p| p.1 != fp(1) && p.1 != fp(2)));
}

/// The base topology plus `n` direct paths, ids 100.. (no metadata).
fn with_extra_paths(n: u64) -> Vec<PathInfo> {
    let mut many = topology();
    for i in 0..n {
        many.push(path(
            100 + i,
            &[
                ("1-ff00:0:a", 0, 10 + i as u16),
                ("1-ff00:0:f", 10 + i as u16, 0),
            ],
            &[None],
            &[None],
        ));
    }
    many
}

#[test]
fn probing_is_bounded() {
    let many = with_extra_paths(20);
    let mut s = Sim::new(cfg("latency"), many);
    s.run_until(Duration::from_secs(10));
    let per_sec = s.probes.len() as f64 / 10.0;
    // Active 20/s, at most four watched backups at ~3.3/s, one survey probe every 2 s.
    assert!(per_sec <= 35.5, "{per_sec} probes/s");
    assert!(per_sec >= 20.0, "{per_sec} probes/s");
    let count = |s: &Sim, fp: PathFingerprint| s.probes.iter().filter(|p| p.1 == fp).count();
    // The view says which paths are watched now, each answered recently; the 5 or 6 survey
    // probes so far (0, 2, ..., 10 s) went to as many other paths, once each.
    let view = s.sel.candidates();
    let watched: Vec<_> = view.iter().filter(|c| c.probed).collect();
    assert!(watched.len() <= 5, "{}", watched.len());
    assert!(watched.iter().any(|c| c.active));
    for c in &watched {
        assert!(
            c.last_answer
                .is_some_and(|t| s.now.duration_since(t) < Duration::from_secs(1)),
            "{c:?}"
        );
    }
    let surveyed: Vec<_> = view
        .iter()
        .filter(|c| !c.probed && count(&s, c.info.fingerprint) > 0)
        .collect();
    assert!((5..=6).contains(&surveyed.len()), "{}", surveyed.len());
    assert!(surveyed.iter().all(|c| count(&s, c.info.fingerprint) == 1));
    // (The one sent at 10 s may still be in flight.)
    assert!(surveyed.iter().filter(|c| c.last_answer.is_none()).count() <= 1);
    // Within one survey round (19 paths outside the watched set, 2 s each) every path has
    // answered, and none of the outside ones was asked twice before all were asked once.
    s.run_until(Duration::from_secs(10 + 40));
    let view = s.sel.candidates();
    for c in &view {
        assert!(c.last_answer.is_some(), "never probed: {c:?}");
        if !c.probed {
            let n = count(&s, c.info.fingerprint);
            assert!((1..=2).contains(&n), "{n} probes: {c:?}");
        }
    }
}

#[test]
fn in_a_total_outage_a_path_outside_the_watched_set_is_found_when_it_returns() {
    let many = with_extra_paths(4);
    let mut s = Sim::new(cfg("latency"), many);
    s.run_until(Duration::from_secs(3));
    let t = s.at();
    for id in (1..=4).chain(100..104) {
        s.set(id, Link::Blackhole);
    }
    s.run_until(t + Duration::from_secs(30));
    for id in (1..=4).chain(100..104) {
        assert_eq!(s.state(id), PathState::Down, "path {id}");
    }
    let outside = s
        .sel
        .candidates()
        .iter()
        .filter(|c| !c.probed)
        .map(|c| c.info.fingerprint)
        .collect::<Vec<_>>();
    assert!(!outside.is_empty());
    let id = (1..=4)
        .chain(100..104)
        .find(|&i| fp(i) == outside[0])
        .expect("a known path");
    // Survey probes come every 500 ms in an outage: at most 3 outside paths to go through.
    let back = s.at();
    s.set(id, Link::Up { rtt: MS * 10 });
    s.run_until(back + MS * 2000);
    assert_eq!(s.state(id), PathState::Alive);
    assert_eq!(s.active(), fp(id));
}

#[test]
fn a_path_outside_the_watched_set_that_dies_is_noticed() {
    let many = with_extra_paths(8);
    let mut s = Sim::new(cfg("latency"), many);
    s.run_until(Duration::from_secs(30));
    let outside: Vec<PathFingerprint> = s
        .sel
        .candidates()
        .iter()
        .filter(|c| !c.probed)
        .map(|c| c.info.fingerprint)
        .collect();
    assert!(outside.len() >= 4, "{}", outside.len());
    let victim = outside[outside.len() - 1];
    let id = (100..108)
        .find(|&i| fp(i) == victim)
        .expect("an added path");
    assert_eq!(s.state(id), PathState::Alive);
    let t = s.at();
    s.set(id, Link::Blackhole);
    // One survey round later (<= 9 outside paths x 2 s) its verdict is no longer "alive";
    // after three rounds it is down.
    s.run_until(t + Duration::from_secs(20));
    assert_ne!(s.state(id), PathState::Alive);
    s.run_until(t + Duration::from_secs(60));
    assert_eq!(s.state(id), PathState::Down);
    // And it comes back the same way, confirmed at once once it answers a survey probe.
    let t = s.at();
    s.set(id, Link::Up { rtt: MS * 10 });
    s.run_until(t + Duration::from_secs(20));
    assert_eq!(s.state(id), PathState::Alive);
}

#[test]
fn stray_replies_are_rejected() {
    let mut s = Sim::new(cfg(""), topology());
    assert!(!s.sel.on_probe_reply(s.now, fp(1), 9999));
    let (f, seq) = match s
        .sel
        .poll(s.now + MS * 60)
        .into_iter()
        .find_map(|a| match a {
            SelectorAction::SendProbe { fingerprint, seq } => Some((fingerprint, seq)),
            _ => None,
        }) {
        Some(x) => x,
        None => panic!("expected a probe"),
    };
    s.now += MS * 60;
    let other = if f == fp(1) { fp(2) } else { fp(1) };
    assert!(!s.sel.on_probe_reply(s.now, other, seq), "wrong path");
    assert!(s.sel.on_probe_reply(s.now + MS, f, seq));
    assert!(!s.sel.on_probe_reply(s.now + MS * 2, f, seq), "duplicate");
}

#[test]
fn bad_configs_are_rejected() {
    let bad = [
        SelectorConfig {
            redundancy: 0,
            ..SelectorConfig::default()
        },
        SelectorConfig {
            active_probe_interval: Duration::ZERO,
            ..SelectorConfig::default()
        },
        SelectorConfig {
            down_after_misses: 0,
            ..SelectorConfig::default()
        },
        SelectorConfig {
            probe_timeout_min: Duration::from_secs(5),
            ..SelectorConfig::default()
        },
        SelectorConfig {
            failback_hold: Duration::MAX,
            ..SelectorConfig::default()
        },
        SelectorConfig {
            margin: scion_transport::path::SwitchMargin {
                latency_ratio: -2.0,
                ..Default::default()
            },
            ..SelectorConfig::default()
        },
        SelectorConfig {
            lossy_threshold: f32::NAN,
            ..SelectorConfig::default()
        },
    ];
    for c in bad {
        assert!(Selector::new(c).is_err());
    }
}

#[test]
fn no_paths_asks_for_paths_then_starts() {
    let mut sel = Selector::new(SelectorConfig::default()).unwrap();
    let t0 = Instant::now();
    assert_eq!(sel.poll(t0), vec![SelectorAction::RefreshPaths]);
    assert!(sel.poll(t0 + MS * 100).is_empty());
    assert_eq!(sel.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    sel.set_paths(t0 + MS * 200, Duration::from_secs(UNIX_T0), topology());
    let acts = sel.poll(t0 + MS * 200);
    assert_eq!(
        acts[0],
        SelectorAction::SwitchTo {
            fingerprint: fp(1),
            cause: SwitchCause::Initial
        }
    );
    assert!(acts[1..]
        .iter()
        .all(|a| matches!(a, SelectorAction::SendProbe { .. })));
}

#[test]
fn persistently_lossy_active_path_is_left() {
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[10, 30]);
    s.run_until(MS * 3000);
    assert_eq!(s.active(), fp(1));
    let t = s.at();
    // Every other probe lost: never three in a row, but half the traffic gone.
    s.set(
        1,
        Link::Lossy {
            rtt: MS * 10,
            every: 2,
        },
    );
    s.run_until(t + MS * 5000);
    let sw = s.switches_after(t);
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!((sw[0].1, sw[0].2), (fp(2), SwitchCause::ProbeLoss));
    let took = sw[0].0 - t;
    eprintln!("lossy active path left after {took:?}");
    assert!(took <= MS * 1500, "{took:?}");
    assert_eq!(s.state(1), PathState::Suspect);
    // Healed: P1 comes back once its window is clean and it is better by the margin.
    let healed = s.at();
    s.set(1, Link::Up { rtt: MS * 10 });
    s.run_until(healed + MS * 10_000);
    let back = s.switches_after(healed);
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!((back[0].1, back[0].2), (fp(1), SwitchCause::Better));
}

#[test]
fn sparse_loss_does_not_switch() {
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[10, 30]);
    s.set(
        1,
        Link::Lossy {
            rtt: MS * 10,
            every: 10,
        },
    );
    s.run_until(MS * 20_000);
    assert_eq!(s.active(), fp(1));
    assert_eq!(s.sel.switch_count(), 0);
    let v = s.sel.candidates();
    let loss = v[0].loss.unwrap();
    assert!(loss > 0.0 && loss < 0.25, "{loss}");
}

#[test]
fn preferred_path_dead_from_the_start_is_left_quickly() {
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[10, 30]);
    assert_eq!(s.active(), fp(1));
    s.set(1, Link::Blackhole);
    // The first probe went out before any RTT was known (1 s timeout); later ones borrow
    // P2's measured RTT.
    s.run_until(MS * 2000);
    let sw = s.switches_after(MS);
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!((sw[0].1, sw[0].2), (fp(2), SwitchCause::ProbeLoss));
    eprintln!("dead-from-start path left after {:?}", sw[0].0);
    assert!(sw[0].0 <= MS * 400, "{sw:?}");
}

#[test]
fn datagram_cap_follows_smallest_usable_path() {
    let mut paths = topology();
    paths[1].mtu = 1400;
    paths[2].mtu = 1000; // filtered: too small for QUIC, so it does not lower the cap
    let mut sel = Selector::new(SelectorConfig::default()).unwrap();
    let t0 = Instant::now();
    assert_eq!(sel.max_datagram_payload(), None);
    sel.set_paths(t0, Duration::from_secs(UNIX_T0), paths);
    // P2: 3 ASes, estimated 2 segments / 4 hop fields: 36 + 8 + 4 + 16 + 48 = 112 B header.
    assert_eq!(sel.max_datagram_payload(), Some(1400 - 112));
    assert_eq!(sel.path(&fp(3)).map(|p| p.mtu), Some(1000));
    assert!(sel.path(&fp(99)).is_none());
}

#[test]
fn hostile_metadata_does_not_panic() {
    let mut paths = topology();
    paths[0].expiry_unix_secs = u64::MAX;
    paths[1].latency = vec![Some(Duration::MAX); 3];
    paths[2].bandwidth_kbps = vec![Some(u64::MAX), Some(0), None, Some(1), Some(u64::MAX)];
    let mut s = Sim::new(cfg("latency,bandwidth"), paths);
    s.run_until(MS * 3000);
    assert!(s.sel.active().is_some());
    assert!(s.sel.candidates().len() == 4);
}

#[test]
fn scmp_internal_down_hits_only_that_transit_pair() {
    let mut s = Sim::new(cfg("latency"), topology());
    s.run_until(MS * 500);
    // Inside B, 1 -> 2 is P1's transit; P4 goes 1 -> 3 and is unaffected.
    let hit = s.sel.on_scmp_internal_down(s.now, ia("1-ff00:0:b"), 1, 2);
    assert_eq!(hit, 1);
    s.poll();
    assert_eq!(s.state(1), PathState::Down);
    assert_eq!(s.state(4), PathState::Alive);
    assert_eq!(s.active(), fp(2));
    assert_eq!(s.switches.last().unwrap().2, SwitchCause::ScmpDown);
}

#[test]
fn both_ends_fail_over_independently() {
    // The accepting side runs its own selector over the reverse paths; a cut of the link
    // under P1 must move both directions, without either side telling the other.
    let reverse = |p: &PathInfo| {
        let mut r = p.clone();
        r.interfaces.reverse();
        std::mem::swap(&mut r.src, &mut r.dst);
        r.latency.reverse();
        r.bandwidth_kbps.reverse();
        r.fingerprint.0[31] = 0xff;
        r
    };
    let fwd = topology();
    let back: Vec<PathInfo> = fwd.iter().map(reverse).collect();
    let mut client = Sim::new(cfg("latency"), fwd);
    let mut server = Sim::new(cfg("latency"), back);
    client.run_until(MS * 1000);
    server.run_until(MS * 1000);
    let cut_rev = server.active();
    assert_eq!(client.active(), fp(1));
    // Link B#2 - F#1 dies silently in both directions.
    client.set(1, Link::Blackhole);
    server.links.insert(cut_rev, Link::Blackhole);
    client.run_until(MS * 1300);
    server.run_until(MS * 1300);
    assert_ne!(client.active(), fp(1));
    assert_ne!(server.active(), cut_rev);
    for s in [&client, &server] {
        let sw = s.switches_after(MS * 1000);
        assert_eq!(sw.len(), 1, "{sw:?}");
        assert_eq!(sw[0].2, SwitchCause::ProbeLoss);
    }
}

#[test]
fn why_active_names_the_deciding_key_hysteresis_and_single_path() {
    // P1 10 ms vs P2 40 ms: latency decided, both values and the preference named.
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency,bandwidth"), paths, &[10, 40]);
    s.run_until(MS * 3000);
    assert_eq!(s.active(), fp(1));
    let why = s.sel.why_active().expect("why");
    assert_eq!(
        why,
        format!(
            "latency: 10.0 ms vs 40.0 ms (preference latency,bandwidth) over {}",
            fp(2).short()
        )
    );

    // 20 ms active vs a 19 ms backup: ranked second, kept within the switch margin.
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[20, 19]);
    s.run_until(MS * 5000);
    assert_eq!(s.active(), fp(1));
    let why = s.sel.why_active().expect("why");
    assert!(
        why.starts_with(&format!("kept: within hysteresis of {}", fp(2).short())),
        "{why}"
    );
    assert!(
        why.contains(&format!(
            "latency: {} 19.0 ms vs active 20.0 ms, within the switch margin",
            fp(2).short()
        )),
        "{why}"
    );

    // One path only.
    let paths: Vec<PathInfo> = topology().into_iter().take(1).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[10]);
    s.run_until(MS * 1000);
    assert_eq!(s.sel.why_active().as_deref(), Some("only usable path"));

    // Bandwidth first, but the runner-up has no bandwidth metadata: latency decides, and the
    // text says bandwidth could not be compared (it is not a tie).
    let paths: Vec<PathInfo> = topology()
        .into_iter()
        .filter(|p| [fp(1), fp(3)].contains(&p.fingerprint))
        .collect();
    let mut s = Sim::with_rtts(cfg("bandwidth,latency"), paths, &[10, 0, 40]);
    s.run_until(MS * 3000);
    assert_eq!(s.active(), fp(1));
    assert_eq!(
        s.sel.why_active().expect("why"),
        format!(
            "latency: 10.0 ms vs 40.0 ms (preference bandwidth,latency; bandwidth not \
             comparable: 1000 kbps vs unknown) over {}",
            fp(3).short()
        )
    );

    // The runner-up is down: state decided, not preference.
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[40, 10]);
    s.set(2, Link::Blackhole);
    s.run_until(MS * 3000);
    assert_eq!(s.active(), fp(1));
    let why = s.sel.why_active().expect("why");
    assert_eq!(why, format!("state: alive vs down ({})", fp(2).short()));
}

/// A new connection after a quiet spell starts over: paths that went down for lost probes
/// are no longer down (nobody probed them since; acting on it read as a probe-loss failover
/// the moment probing resumed), a path a router reported down by SCMP still is, and the
/// switch counts are zero. Probing then resumes without a failover away from a path that
/// works.
#[test]
fn start_over_forgets_probe_loss_but_not_scmp() {
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths, &[10, 20]);
    s.run_until(MS * 1000);
    assert_eq!(s.active(), fp(1));
    let t = s.at();
    s.set(1, Link::Blackhole);
    s.run_until(t + MS * 1500);
    assert_eq!(s.active(), fp(2), "failed over for lost probes");
    s.set(
        2,
        Link::Scmp {
            ia: ia("1-ff00:0:a"),
            ifid: 2,
            after: MS * 2,
        },
    );
    s.run_until(t + MS * 3000);
    assert_eq!(s.state(1), PathState::Down);
    assert_eq!(s.state(2), PathState::Down);
    assert!(s.sel.switch_count() >= 1);
    s.sel.start_over();
    assert_eq!(s.sel.switch_count(), 0);
    assert_eq!(s.state(1), PathState::Unprobed);
    assert_eq!(s.state(2), PathState::Down, "SCMP-down stays down");
    let kept = s.active();
    s.set(1, Link::Up { rtt: MS * 10 });
    let t2 = s.at();
    s.run_until(t2 + MS * 2000);
    let sw = s.switches_after(t2);
    assert!(
        sw.iter().all(|w| w.2 != SwitchCause::ProbeLoss),
        "{sw:?} (kept {kept:?})"
    );
    assert_eq!(s.state(1), PathState::Alive);
}

#[test]
fn a_link_that_started_before_the_paths_holds_the_smaller_of_its_cap_and_theirs() {
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths.clone(), &[10, 40]);
    s.run_until(MS * 1000);
    let fit = s.sel.max_datagram_payload().expect("usable paths");
    // A cap above what the paths carry: they bound the held size.
    assert_eq!(s.sel.hold_datagram_payload_at_most(fit + 100), Some(fit));
    // A later, smaller cap does not lower what is held.
    assert_eq!(s.sel.hold_datagram_payload_at_most(fit - 100), Some(fit));
    // A fresh selector with a cap below the paths holds the cap.
    let mut t = Sim::with_rtts(cfg("latency"), paths, &[10, 40]);
    t.run_until(MS * 1000);
    assert_eq!(
        t.sel.hold_datagram_payload_at_most(fit - 100),
        Some(fit - 100)
    );
    assert_eq!(t.sel.held_datagram_payload(), Some(fit - 100));
    // Without usable paths nothing is held.
    let mut u = Sim::with_rtts(cfg("latency"), Vec::new(), &[]);
    u.run_until(MS * 100);
    assert_eq!(u.sel.hold_datagram_payload_at_most(1300), None);
    assert_eq!(u.sel.held_datagram_payload(), None);
}

#[test]
fn paths_too_small_for_the_links_packets_are_used_only_when_nothing_else_works() {
    // P1 is the better path (10 vs 40 ms); the link starts while both carry 1472 bytes.
    let paths: Vec<PathInfo> = topology().into_iter().take(2).collect();
    let mut s = Sim::with_rtts(cfg("latency"), paths.clone(), &[10, 40]);
    s.run_until(MS * 1000);
    assert_eq!(s.active(), fp(1));
    let held = s.sel.hold_datagram_payload().expect("a size");
    assert_eq!(held, s.sel.max_datagram_payload().unwrap());
    // A refresh says P1's MTU shrank below what the link's QUIC already sends.
    let mut smaller = paths.clone();
    smaller[0].mtu = 1350;
    let now = s.now;
    s.sel
        .set_paths(now, Duration::from_secs(UNIX_T0) + s.at(), smaller);
    let t = s.at();
    s.run_until(t + MS * 4000);
    let sw = s.switches_after(t);
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!((sw[0].1, sw[0].2), (fp(2), SwitchCause::Better));
    let why = s.sel.why_active().expect("why");
    assert!(
        why.ends_with(&format!(
            "; too small for the link's {held} B datagrams, so ranked last: {}",
            fp(1).short()
        )),
        "{why}"
    );
    // It stays on P2 although P1 is faster.
    let t = s.at();
    s.run_until(t + MS * 4000);
    assert!(s.switches_after(t).is_empty());
    // With P2 gone, P1 is still better than nothing.
    s.set(2, Link::Blackhole);
    let t = s.at();
    s.run_until(t + MS * 1000);
    assert_eq!(s.active(), fp(1));
    // P2 back: the link returns to it.
    s.set(2, Link::Up { rtt: MS * 40 });
    let t = s.at();
    s.run_until(t + MS * 5000);
    assert_eq!(s.active(), fp(2));
    // A further link's start (its hold) keeps the size; once the peer went quiet, the next
    // link holds what the paths carry then.
    s.sel.start_over();
    assert_eq!(s.sel.held_datagram_payload(), Some(held));
    s.sel.release_datagram_payload();
    assert_eq!(s.sel.held_datagram_payload(), None);
    let now_held = s.sel.hold_datagram_payload().expect("a size");
    assert!(now_held < held, "{now_held} vs {held}");
    assert_eq!(Some(now_held), s.sel.max_datagram_payload());
}
