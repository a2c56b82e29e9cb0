//! `timesync bench`: runs the scenarios against Debian's nats-server on loopback,
//! with the user-space delay proxy where a WAN is needed, and prints our figures beside the
//! naive seed approach's (set the clock to each received `time.system` value) from the same
//! run. Sources and followers are child processes of this binary; all run on this host, so a
//! follower's true error is its reported `host_offset_ns` (virtual clock minus
//! CLOCK_REALTIME) minus the source's skew, which is zero here.

pub mod natsd;
pub mod proxy;
pub mod svg;

use crate::cli::{connect, fmt_ns};
use crate::clock::{realtime_ns, FakeSkew};
use crate::core::wire::{FollowerStatus, BEACON_SUBJECT, HDR_SOURCE};
use crate::core::{SourceConfig, SyncState};
use anyhow::{Context, Result};
use futures::StreamExt;
use natsd::Natsd;
use proxy::{DelayProxy, Profile};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Where to write the offset-over-time plot.
    #[arg(long, default_value = "timesync-bench.svg")]
    pub svg: PathBuf,
    /// Shorter phases (for a smoke run; figures are less settled).
    #[arg(long)]
    pub quick: bool,
    /// Requests per poll for the followers (default: the follower's default). `--burst 1`
    /// shows what single exchanges per poll achieve.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub burst: Option<u32>,
}

/// One status observation of a follower.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// Seconds since the bench started, at the time the follower took the status.
    pub t: f64,
    /// Host CLOCK_REALTIME when the status was taken.
    pub at_ns: i64,
    pub error_ns: i64,
    pub max_error_ns: i64,
    pub state: SyncState,
    pub steps: u64,
}

/// A `timesync` role running as a child process of the bench (killed on drop), so the
/// figures are those of the real binary, one process per role as deployed.
pub struct Role {
    child: tokio::process::Child,
}

impl Role {
    pub fn spawn(url: &str, args: &[String]) -> Result<Self> {
        let exe = std::env::current_exe().context("locate the timesync binary")?;
        let child = tokio::process::Command::new(exe)
            .arg("-s")
            .arg(url)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawn timesync role")?;
        Ok(Self { child })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A follower process and a subscription to its status (taken directly from nats-server,
/// never through the delay proxy).
pub struct Follower {
    _role: Role,
    sub: async_nats::Subscriber,
    _client: async_nats::Client,
}

impl Follower {
    pub async fn start(
        url: &str,
        status_url: &str,
        id: &str,
        sources: Vec<SourceConfig>,
        skew: FakeSkew,
        burst: Option<u32>,
    ) -> Result<Self> {
        let client = connect(&[status_url.to_string()], "bench-status", false).await?;
        let sub = client
            .subscribe(crate::core::wire::status_subject(id))
            .await?;
        client.flush().await?;
        let mut args: Vec<String> = vec![
            "follow".into(),
            "--id".into(),
            id.into(),
            "--status-ms".into(),
            "100".into(),
            "--fake-offset-ms".into(),
            (skew.offset_ns as f64 / 1e6).to_string(),
            "--fake-ppm".into(),
            (skew.freq * 1e6).to_string(),
        ];
        if let Some(b) = burst {
            args.push("--burst".into());
            args.push(b.to_string());
        }
        for s in sources {
            args.push("--source".into());
            args.push(format!("{}:{}", s.id, s.priority));
        }
        let role = Role::spawn(url, &args)?;
        Ok(Self {
            _role: role,
            sub,
            _client: client,
        })
    }

    /// Next status (bounded). `origin` is the bench start (CLOCK_REALTIME ns).
    pub async fn next(&mut self, origin: i64) -> Option<(Point, FollowerStatus)> {
        let msg = tokio::time::timeout(Duration::from_secs(3), self.sub.next())
            .await
            .ok()??;
        let st: FollowerStatus = serde_json::from_slice(&msg.payload).ok()?;
        let t = &st.tracking;
        Some((
            Point {
                t: (st.at_unix_ns - origin) as f64 / 1e9,
                at_ns: st.at_unix_ns,
                error_ns: st.host_offset_ns,
                max_error_ns: t.max_error_ns,
                state: t.state,
                steps: t.steps,
            },
            st,
        ))
    }

    pub async fn stop(self) {
        self._role.stop().await;
    }
}

/// The naive seed approach: a subscriber that sets its clock to every beacon's payload.
/// Its error just after each beacon is `payload - true time at receipt`.
pub struct Naive {
    rx: mpsc::Receiver<(f64, i64)>,
    _task: tokio::task::JoinHandle<()>,
}

impl Naive {
    pub async fn start(url: &str, source: &str, origin: i64) -> Result<Self> {
        let client = connect(&[url.to_string()], "naive", false).await?;
        let mut sub = client.subscribe(BEACON_SUBJECT).await?;
        let (tx, rx) = mpsc::channel(4096);
        let source = source.to_string();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Some(msg) = sub.next().await {
                let now = realtime_ns();
                let from = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(HDR_SOURCE))
                    .map(|v| v.as_str() == source);
                if from != Some(true) {
                    continue;
                }
                let Some(us) = std::str::from_utf8(&msg.payload)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                else {
                    continue;
                };
                let _ = tx.try_send(((now - origin) as f64 / 1e9, us * 1000 - now));
            }
        });
        Ok(Self { rx, _task: task })
    }

    /// All errors recorded since the last call.
    pub fn drain(&mut self) -> Vec<(f64, i64)> {
        let mut v = Vec::new();
        while let Ok(x) = self.rx.try_recv() {
            v.push(x);
        }
        v
    }
}

/// A source process; returns once it announces itself.
pub async fn start_source(url: &str, id: &str, priority: u8) -> Result<Role> {
    let client = connect(&[url.to_string()], "bench-wait", false).await?;
    let mut sub = client
        .subscribe(crate::core::wire::announce_subject(id))
        .await?;
    client.flush().await?;
    let role = Role::spawn(
        url,
        &[
            "source".into(),
            "--id".into(),
            id.into(),
            "--priority".into(),
            priority.to_string(),
        ],
    )?;
    tokio::time::timeout(Duration::from_secs(15), sub.next())
        .await
        .context("source did not announce itself within 15 s")?;
    Ok(role)
}

/// p-quantile of |x|.
pub fn abs_quantile(v: impl IntoIterator<Item = i64>, p: f64) -> Option<i64> {
    let mut v: Vec<i64> = v.into_iter().map(|x| x.saturating_abs()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[((v.len() - 1) as f64 * p).round() as usize])
}

/// Signed error distribution of a measurement window: a bias shows as a mean far from zero
/// next to a small standard deviation, noise the other way round.
pub fn distribution(v: &[i64]) -> Option<String> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let sd = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let mut s = v.to_vec();
    s.sort_unstable();
    let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    Some(format!(
        "n {}, mean {}, sd {}, min {}, p50 {}, max {}",
        v.len(),
        us(mean.round() as i64),
        us(sd.round() as i64),
        us(q(0.0)),
        us(q(0.5)),
        us(q(1.0))
    ))
}

struct Row {
    scenario: &'static str,
    metric: &'static str,
    ours: String,
    naive: String,
    target: &'static str,
    pass: Option<bool>,
}

fn print_header() {
    println!(
        "{:<30} {:<22} {:<40} {:<22} {:<16} OK",
        "SCENARIO", "METRIC", "TIMESYNC", "NAIVE (set clock = beacon)", "TARGET"
    );
}

fn print_row(r: &Row) {
    println!(
        "{:<30} {:<22} {:<40} {:<22} {:<16} {}",
        r.scenario,
        r.metric,
        r.ours,
        r.naive,
        r.target,
        match r.pass {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        }
    );
}

/// Collect the follower's statuses taken during the next `dur` (older, queued statuses are
/// skipped) and the naive subscriber's errors from the same window.
async fn observe(
    f: &mut Follower,
    naive: &mut Naive,
    dur: Duration,
    origin: i64,
    pts: &mut Vec<Point>,
    npts: &mut Vec<(f64, i64)>,
) -> (Vec<Point>, Vec<(f64, i64)>) {
    let start = realtime_ns();
    let end = start + dur.as_nanos() as i64;
    let mut mine = Vec::new();
    let _ = naive.drain();
    // Bounded: statuses come every 100 ms and `next` times out after 3 s.
    while let Some((p, _)) = f.next(origin).await {
        if p.at_ns < start {
            continue;
        }
        if p.at_ns >= end {
            break;
        }
        mine.push(p);
        pts.push(p);
    }
    let (t0, t1) = ((start - origin) as f64 / 1e9, (end - origin) as f64 / 1e9);
    let nv: Vec<(f64, i64)> = naive
        .drain()
        .into_iter()
        .filter(|x| x.0 >= t0 && x.0 < t1)
        .collect();
    npts.extend(nv.iter().copied());
    (mine, nv)
}

/// Wait until the follower is in sync and its error has stayed below `limit_ns` for 10 s of
/// statuses (bounded by `max`). The statuses seen are kept for the plot.
async fn settle(
    f: &mut Follower,
    origin: i64,
    limit_ns: i64,
    max: Duration,
    pts: &mut Vec<Point>,
) -> bool {
    let start = realtime_ns();
    let end = start + max.as_nanos() as i64;
    let mut good = 0;
    while let Some((p, _)) = f.next(origin).await {
        if p.at_ns < start {
            continue;
        }
        pts.push(p);
        if p.at_ns >= end {
            return false;
        }
        if p.state == SyncState::Sync && p.error_ns.abs() < limit_ns {
            good += 1;
            if good >= 100 {
                return true;
            }
        } else {
            good = 0;
        }
    }
    false
}

/// Says when the follower did not settle (100 statuses in a row in sync within `limit`)
/// within the warm-up, which `--quick` shortens to 20 s: that alone makes the row NO, whatever
/// the error window shows.
fn unsettled_note(settled: bool, warm: Duration, limit: &str) {
    if !settled {
        println!(
            "    not settled within the {} s warm-up (100 statuses in a row in sync within {limit}); \
             a NO for that reason alone says the follower needed longer to converge",
            warm.as_secs()
        );
    }
}

/// Time from now until the follower reports selecting `want` (status timestamps; bounded).
async fn time_to_select(f: &mut Follower, want: &str, max: Duration) -> Option<Duration> {
    let start = realtime_ns();
    let end = start + max.as_nanos() as i64;
    while let Some((p, st)) = f.next(start).await {
        if p.at_ns < start {
            continue;
        }
        if p.at_ns >= end {
            return None;
        }
        if st.tracking.selected.as_deref() == Some(want) {
            return Some(Duration::from_nanos((p.at_ns - start) as u64));
        }
    }
    None
}

fn since(origin: i64) -> f64 {
    (realtime_ns() - origin) as f64 / 1e9
}

fn us(ns: i64) -> String {
    fmt_ns(ns)
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let (warm, measure, switch) = if args.quick {
        (
            Duration::from_secs(20),
            Duration::from_secs(10),
            Duration::from_secs(20),
        )
    } else {
        (
            Duration::from_secs(60),
            Duration::from_secs(30),
            Duration::from_secs(40),
        )
    };
    let natsd = Natsd::start().await.context("start nats-server")?;
    let url = natsd.url();
    let origin = realtime_ns();
    let mut rows = Vec::new();
    let mut markers = Vec::new();
    let (mut lo_pts, mut lo_naive) = (Vec::new(), Vec::new());
    let (mut wan_pts, mut wan_naive) = (Vec::new(), Vec::new());

    println!(
        "timesync bench: server binary {} on {url}, follower burst {}",
        natsd::server_bin(),
        args.burst
            .map_or_else(|| "default".to_string(), |b| b.to_string())
    );
    let src = start_source(&url, "ref", 0).await?;
    let skew = FakeSkew {
        offset_ns: 250_000_000,
        freq: 100e-6,
    };
    let only_ref = vec![SourceConfig {
        id: "ref".into(),
        priority: 0,
    }];
    let wan = DelayProxy::start(
        natsd.addr(),
        Profile::symmetric(Duration::from_millis(40), Duration::from_micros(500)),
    )
    .await?;
    let mut f_lo = Follower::start(
        &url,
        &url,
        "bench-loopback",
        only_ref.clone(),
        skew,
        args.burst,
    )
    .await?;
    let mut f_wan = Follower::start(
        &wan.url(),
        &url,
        "bench-wan",
        only_ref.clone(),
        skew,
        args.burst,
    )
    .await?;
    let mut n_lo = Naive::start(&url, "ref", origin).await?;
    let mut n_wan = Naive::start(&wan.url(), "ref", origin).await?;

    // --- 1. loopback ---------------------------------------------------------------
    println!("[1/5] loopback: converging from +250 ms / +100 ppm ...");
    let ok = settle(&mut f_lo, origin, 100_000, warm, &mut lo_pts).await;
    markers.push((since(origin), "loopback measure".to_string()));
    let (m, n) = observe(
        &mut f_lo,
        &mut n_lo,
        measure,
        origin,
        &mut lo_pts,
        &mut lo_naive,
    )
    .await;
    let ours = abs_quantile(m.iter().map(|p| p.error_ns), 0.99);
    let naive = abs_quantile(n.iter().map(|x| x.1), 0.99);
    rows.push(Row {
        scenario: "loopback (nats-server)",
        metric: "p99 |error|",
        ours: ours.map_or("-".into(), us),
        naive: naive.map_or("-".into(), us),
        target: "<= 50us",
        pass: Some(ok && ours.is_some_and(|v| v <= 50_000)),
    });
    print_row(rows.last().expect("just pushed"));
    unsettled_note(ok, warm, "100us");
    let errs: Vec<i64> = m.iter().map(|p| p.error_ns).collect();
    if let Some(d) = distribution(&errs) {
        println!("    timesync error over the window: {d}");
    }
    f_lo.stop().await;

    // --- 2. 40 ms RTT with jitter --------------------------------------------------
    println!("[2/5] 40 ms RTT + 0.5 ms mean jitter per direction ...");
    let ok = settle(&mut f_wan, origin, 2_000_000, warm, &mut wan_pts).await;
    markers.push((since(origin), "40 ms RTT".to_string()));
    let (m, n) = observe(
        &mut f_wan,
        &mut n_wan,
        measure,
        origin,
        &mut wan_pts,
        &mut wan_naive,
    )
    .await;
    let ours = abs_quantile(m.iter().map(|p| p.error_ns), 0.99);
    let naive = abs_quantile(n.iter().map(|x| x.1), 0.99);
    rows.push(Row {
        scenario: "40 ms RTT + jitter (proxy)",
        metric: "p99 |error|",
        ours: ours.map_or("-".into(), us),
        naive: naive.map_or("-".into(), us),
        target: "<= 1ms",
        pass: Some(ok && ours.is_some_and(|v| v <= 1_000_000)),
    });
    print_row(rows.last().expect("just pushed"));
    unsettled_note(ok, warm, "2ms");
    let errs: Vec<i64> = m.iter().map(|p| p.error_ns).collect();
    if let Some(d) = distribution(&errs) {
        println!("    timesync error over the window: {d}");
    }

    // --- 3. 40 -> 90 ms symmetric switch -------------------------------------------
    println!("[3/5] switching the path to 90 ms RTT ...");
    let steps_before = m.last().map_or(0, |p| p.steps);
    wan.set(Profile::symmetric(
        Duration::from_millis(90),
        Duration::from_micros(500),
    ));
    markers.push((since(origin), "-> 90 ms".to_string()));
    let (m, n) = observe(
        &mut f_wan,
        &mut n_wan,
        switch,
        origin,
        &mut wan_pts,
        &mut wan_naive,
    )
    .await;
    let ours = abs_quantile(m.iter().map(|p| p.error_ns), 1.0);
    let naive = abs_quantile(n.iter().map(|x| x.1), 1.0);
    let steps_after = m.last().map_or(0, |p| p.steps);
    rows.push(Row {
        scenario: "40 -> 90 ms RTT switch",
        metric: "max |error| after",
        ours: format!(
            "{} ({} steps)",
            ours.map_or("-".into(), us),
            steps_after - steps_before
        ),
        naive: naive.map_or("-".into(), us),
        target: "<= 2ms, no step",
        pass: Some(ours.is_some_and(|v| v <= 2_000_000) && steps_after == steps_before),
    });
    print_row(rows.last().expect("just pushed"));

    // --- 4. asymmetric switch ------------------------------------------------------
    println!("[4/5] back to 40 ms, then an asymmetric 40/50 ms path ...");
    wan.set(Profile::symmetric(
        Duration::from_millis(40),
        Duration::from_micros(500),
    ));
    markers.push((since(origin), "-> 40 ms".to_string()));
    let _ = observe(
        &mut f_wan,
        &mut n_wan,
        switch,
        origin,
        &mut wan_pts,
        &mut wan_naive,
    )
    .await;
    wan.set(Profile {
        up: Duration::from_millis(40),
        down: Duration::from_millis(50),
        jitter: Duration::from_micros(500),
        cut: false,
    });
    markers.push((since(origin), "-> 40/50 ms".to_string()));
    let (m, n) = observe(
        &mut f_wan,
        &mut n_wan,
        switch,
        origin,
        &mut wan_pts,
        &mut wan_naive,
    )
    .await;
    let worst = abs_quantile(m.iter().map(|p| p.error_ns), 1.0);
    let covered = m.iter().all(|p| p.error_ns.abs() <= p.max_error_ns);
    let margin = m.iter().map(|p| p.max_error_ns - p.error_ns.abs()).min();
    let naive = abs_quantile(n.iter().map(|x| x.1), 1.0);
    rows.push(Row {
        scenario: "asymmetric 40/50 ms switch",
        metric: "max |error|; covered",
        ours: format!(
            "{}; {} (min margin {})",
            worst.map_or("-".into(), us),
            if covered { "yes" } else { "NO" },
            margin.map_or("-".into(), us)
        ),
        naive: format!("{}; no bound", naive.map_or("-".into(), us)),
        target: "max-error covers",
        pass: Some(covered && !m.is_empty()),
    });
    print_row(rows.last().expect("just pushed"));
    f_wan.stop().await;

    // --- 5. failover -----------------------------------------------------------------
    println!("[5/5] source failover: blackhole the primary, then stop it ...");
    let cut = DelayProxy::start(natsd.addr(), Profile::default()).await?;
    let primary = start_source(&cut.url(), "primary", 0).await?;
    let backup = start_source(&url, "backup", 1).await?;
    let both = vec![
        SourceConfig {
            id: "primary".into(),
            priority: 0,
        },
        SourceConfig {
            id: "backup".into(),
            priority: 1,
        },
    ];
    let mut f_fo = Follower::start(&url, &url, "bench-failover", both, skew, args.burst).await?;
    let warm_fo = time_to_select(&mut f_fo, "primary", Duration::from_secs(20)).await;
    let _ = settle(
        &mut f_fo,
        origin,
        1_000_000,
        Duration::from_secs(15),
        &mut Vec::new(),
    )
    .await;
    cut.set(Profile {
        cut: true,
        ..Profile::default()
    });
    let blackhole = time_to_select(&mut f_fo, "backup", Duration::from_secs(15)).await;
    cut.set(Profile::default());
    let back = time_to_select(&mut f_fo, "primary", Duration::from_secs(20)).await;
    primary.stop().await;
    let stopped = time_to_select(&mut f_fo, "backup", Duration::from_secs(15)).await;
    let fmt_d = |d: Option<Duration>| {
        d.map_or("not within 15 s".to_string(), |d| {
            format!("{:.2}s", d.as_secs_f64())
        })
    };
    let three = Duration::from_secs(3);
    rows.push(Row {
        scenario: "failover: primary blackholed",
        metric: "time to backup",
        ours: fmt_d(blackhole),
        naive: "never (no failover)".into(),
        target: "<= 3s",
        pass: Some(warm_fo.is_some() && blackhole.is_some_and(|d| d <= three)),
    });
    print_row(rows.last().expect("just pushed"));
    rows.push(Row {
        scenario: "failover: primary stopped",
        metric: "time to backup",
        ours: fmt_d(stopped),
        naive: "never (no failover)".into(),
        target: "<= 3s",
        pass: Some(back.is_some() && stopped.is_some_and(|d| d <= three)),
    });
    print_row(rows.last().expect("just pushed"));
    f_fo.stop().await;
    backup.stop().await;
    src.stop().await;

    // --- report ------------------------------------------------------------------------
    println!("\nsummary:");
    print_header();
    for r in &rows {
        print_row(r);
    }
    let to_ms = |v: &[Point]| {
        v.iter()
            .map(|p| (p.t, p.error_ns as f64 / 1e6))
            .collect::<Vec<_>>()
    };
    let naive_ms = |v: &[(f64, i64)]| {
        v.iter()
            .map(|&(t, e)| (t, e as f64 / 1e6))
            .collect::<Vec<_>>()
    };
    let plot = svg::render(
        "timesync vs naive (clock := beacon): error against ground truth",
        &[
            svg::Panel {
                title: "40 ms RTT proxy path: switches to 90 ms and to asymmetric 40/50 ms".into(),
                y_label: "error (ms)".into(),
                series: vec![
                    svg::Series {
                        name: "naive".into(),
                        color: "#d62728",
                        points: naive_ms(&wan_naive),
                    },
                    svg::Series {
                        name: "timesync".into(),
                        color: "#1f77b4",
                        points: to_ms(&wan_pts),
                    },
                    svg::Series {
                        name: "timesync max-error".into(),
                        color: "#9ecae1",
                        points: wan_pts
                            .iter()
                            .map(|p| (p.t, p.max_error_ns as f64 / 1e6))
                            .collect(),
                    },
                ],
            },
            svg::Panel {
                title: "timesync on the proxy path, zoomed".into(),
                y_label: "error (ms)".into(),
                series: vec![svg::Series {
                    name: "timesync".into(),
                    color: "#1f77b4",
                    points: to_ms(&wan_pts),
                }],
            },
            svg::Panel {
                title: "loopback through nats-server".into(),
                y_label: "error (us)".into(),
                series: vec![
                    svg::Series {
                        name: "naive".into(),
                        color: "#d62728",
                        points: lo_naive.iter().map(|&(t, e)| (t, e as f64 / 1e3)).collect(),
                    },
                    svg::Series {
                        name: "timesync".into(),
                        color: "#1f77b4",
                        points: lo_pts
                            .iter()
                            .map(|p| (p.t, p.error_ns as f64 / 1e3))
                            .collect(),
                    },
                ],
            },
        ],
        &markers,
    );
    std::fs::write(&args.svg, plot).with_context(|| format!("write {}", args.svg.display()))?;
    println!("\nplot written to {}", args.svg.display());
    natsd.stop().await;
    Ok(())
}
