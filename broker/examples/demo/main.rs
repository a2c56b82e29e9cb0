//! The demo driver that `scripts/demo.sh` runs once the emulator, the two brokers and the
//! timesync source and followers are up: a 1 kHz sequenced publisher on broker 1 (AS
//! 18-ffaa:1:10bf), a subscriber on broker 2 (AS 18-ffaa:1:10a0), a live view refreshed every
//! second, the path cut and restore through the emulator's control socket, then the summary,
//! `timeline.csv`, `summary.txt` and `plot.svg` in the run folder. Exits 1 if a message was
//! lost, duplicated or reordered, if a follower's error left its claimed bound (or it never
//! synchronised), or if the cut caused no path switch.
//!
//! Without `--control` (brokers on real SCIONLab ASes) the driver only announces the cut and
//! restore times in the live view for an operator who cuts the path by hand, and the
//! "no path switch" check is off. A follower's "true error" is its clock minus its own host's
//! clock, so it is ground truth only when source and follower share a host clock (the local
//! demo); on two real hosts leave `--followers` out or read it as error against the local NTP.
//!
//! ```text
//! cargo run -p broker --example demo -- --pub nats://127.0.0.1:4222 --sub nats://127.0.0.1:5222 \
//!     --monitor1 127.0.0.1:8222 --monitor2 127.0.0.1:8223 --control 127.0.0.1:30999 \
//!     --followers f1,f2 --out demo-out/run --duration 40 --cut-at 10 --restore-at 25
//! ```

mod monitor;
mod plot;
mod stats;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use tokio::time::{sleep, timeout, Instant};

use monitor::{http_get, parse_pathz, parse_routez, parse_status, short_path, RouteView};
use stats::{OffsetSample, PathTimeline, SeqTracker};

const SUBJECT: &str = "demo.seq";
const BUCKET_S: f64 = 0.1;

#[derive(Debug, Clone)]
struct Args {
    publish: String,
    subscribe: String,
    monitor1: SocketAddr,
    monitor2: SocketAddr,
    /// Emulator control socket; None = the operator cuts the path by hand (real SCIONLab).
    control: Option<SocketAddr>,
    followers: Vec<String>,
    out: PathBuf,
    duration: f64,
    cut_at: f64,
    restore_at: f64,
    rate: u32,
    cut_mode: String,
    ready_timeout: f64,
}

const USAGE: &str = "usage: demo --pub URL --sub URL --monitor1 HOST:PORT --monitor2 HOST:PORT \
[--control HOST:PORT] --out DIR [--followers f1,f2] [--duration S] [--cut-at S] [--restore-at S] \
[--rate HZ] [--cut-mode down|blackhole] [--ready-timeout S]";

fn parse_args(args: &[String]) -> Result<Args> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!("unexpected argument {flag:?}\n{USAGE}");
        };
        let value = it
            .next()
            .with_context(|| format!("--{name} needs a value"))?;
        m.insert(name.to_string(), value.clone());
    }
    let mut take = |k: &str| m.remove(k);
    let need =
        |v: Option<String>, k: &str| v.with_context(|| format!("--{k} is required\n{USAGE}"));
    // HOST:PORT with an IP or a name (a SCIONLab host's name), resolved once at start.
    let addr = |v: String, k: &str| -> Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        // IPv4 first when a name has both: the brokers' monitoring listens on IPv4 by
        // default, and `localhost` often resolves to ::1 first.
        match v.to_socket_addrs() {
            Ok(found) => {
                let found: Vec<SocketAddr> = found.collect();
                found
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(found.first())
                    .copied()
                    .with_context(|| format!("--{k} {v:?}: the name has no address"))
            }
            Err(e) => bail!("--{k} {v:?}: expected HOST:PORT ({e})"),
        }
    };
    let num = |v: Option<String>, k: &str, d: f64| -> Result<f64> {
        match v {
            None => Ok(d),
            Some(s) => match s.parse::<f64>() {
                Ok(x) if x.is_finite() && (0.0..=86_400.0).contains(&x) => Ok(x),
                _ => bail!("--{k} {s:?}: expected seconds within 0..86400"),
            },
        }
    };
    let a = Args {
        publish: need(take("pub"), "pub")?,
        subscribe: need(take("sub"), "sub")?,
        monitor1: addr(need(take("monitor1"), "monitor1")?, "monitor1")?,
        monitor2: addr(need(take("monitor2"), "monitor2")?, "monitor2")?,
        control: take("control").map(|v| addr(v, "control")).transpose()?,
        out: PathBuf::from(need(take("out"), "out")?),
        followers: take("followers")
            .map(|s| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        duration: num(take("duration"), "duration", 40.0)?,
        cut_at: num(take("cut-at"), "cut-at", 10.0)?,
        restore_at: num(take("restore-at"), "restore-at", 25.0)?,
        rate: match take("rate") {
            None => 1000,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|r| (1..=100_000).contains(r))
                .with_context(|| format!("--rate {s:?}: expected 1..100000"))?,
        },
        cut_mode: take("cut-mode").unwrap_or_else(|| "down".into()),
        ready_timeout: num(take("ready-timeout"), "ready-timeout", 60.0)?,
    };
    if let Some(k) = m.keys().next() {
        bail!("unknown flag --{k}\n{USAGE}");
    }
    if !matches!(a.cut_mode.as_str(), "down" | "blackhole") {
        bail!("--cut-mode must be down or blackhole");
    }
    if !(a.cut_at < a.restore_at && a.restore_at < a.duration) {
        bail!("need --cut-at < --restore-at < --duration");
    }
    Ok(a)
}

/// What the subscriber and the status listener collect.
#[derive(Default)]
struct Collected {
    seq: SeqTracker,
    paths: PathTimeline,
    /// (messages, worst one-way latency ms) per bucket.
    buckets: Vec<(u32, f64)>,
    latencies_ms: Vec<f64>,
    bad_payloads: u64,
    status: BTreeMap<String, Vec<OffsetSample>>,
}

fn unix_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

async fn connect(url: &str, name: &str) -> Result<async_nats::Client> {
    let opts = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2));
    let client = timeout(Duration::from_secs(20), opts.connect(url))
        .await
        .with_context(|| format!("{name}: no connection to {url} within 20 s"))??;
    // retry_on_initial_connect returns before the connection exists; wait for it.
    timeout(Duration::from_secs(20), client.flush())
        .await
        .with_context(|| format!("{name}: {url} did not answer within 20 s"))??;
    Ok(client)
}

async fn routez(addr: SocketAddr) -> Result<RouteView> {
    parse_routez(&http_get(addr, "/routez").await?)
}

/// Waits, bounded, until both brokers show a SCION route with an active path.
async fn wait_route(a: &Args) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(a.ready_timeout);
    loop {
        let r1 = routez(a.monitor1).await.unwrap_or_default();
        let r2 = routez(a.monitor2).await.unwrap_or_default();
        if r1.up && r2.up && !r1.hops.is_empty() && !r2.hops.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the SCION route between the brokers did not come up within {} s (see s1.log, s2.log)", a.ready_timeout);
        }
        sleep(Duration::from_millis(200)).await;
    }
}

fn spawn_subscriber(
    mut sub: async_nats::Subscriber,
    col: Arc<Mutex<Collected>>,
    t0: Arc<Mutex<Option<Instant>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let now = Instant::now();
            let recv_ns = unix_ns();
            let Some(start) = *t0.lock().unwrap_or_else(|e| e.into_inner()) else {
                continue;
            };
            let t = now.duration_since(start).as_secs_f64();
            let text = String::from_utf8_lossy(&m.payload);
            let mut parts = text.split(' ');
            let seq = parts.next().and_then(|s| s.parse::<u64>().ok());
            let sent_ns = parts.next().and_then(|s| s.parse::<i128>().ok());
            let tag = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Scion-Path"))
                .map(|v| v.as_str().to_string());
            let mut c = col.lock().unwrap_or_else(|e| e.into_inner());
            let (Some(seq), Some(sent_ns)) = (seq, sent_ns) else {
                c.bad_payloads += 1;
                continue;
            };
            if !c.seq.on_msg(seq, t) {
                c.bad_payloads += 1;
                continue;
            }
            c.paths.on_msg(tag.as_deref(), t);
            let lat = (recv_ns - sent_ns) as f64 / 1e6;
            let b = (t / BUCKET_S) as usize;
            if c.buckets.len() <= b {
                c.buckets.resize(b + 1, (0, 0.0));
            }
            c.buckets[b].0 += 1;
            c.buckets[b].1 = c.buckets[b].1.max(lat);
            c.latencies_ms.push(lat);
        }
    })
}

fn spawn_status(
    mut sub: async_nats::Subscriber,
    col: Arc<Mutex<Collected>>,
    t0: Arc<Mutex<Option<Instant>>>,
    boot: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let now = Instant::now();
            // Before the stream starts, times are negative (seconds before the start).
            let t = match *t0.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(start) => now.duration_since(start).as_secs_f64(),
                None => -(now.duration_since(boot).as_secs_f64() + 1e-3),
            };
            if let Ok((id, s)) = parse_status(&m.payload, t) {
                let mut c = col.lock().unwrap_or_else(|e| e.into_inner());
                c.status.entry(id).or_default().push(s);
            }
        }
    })
}

struct View<'a> {
    a: &'a Args,
    tty: bool,
    labels: BTreeMap<String, Vec<String>>,
    /// Every frame is also appended here (the run folder's demo.log).
    log: Option<std::fs::File>,
}

impl View<'_> {
    fn label(&self, tag: &str) -> String {
        self.labels
            .get(tag)
            .map(|h| short_path(h))
            .unwrap_or_else(|| tag.to_string())
    }

    fn draw(
        &mut self,
        t: f64,
        sent: u64,
        c: &Collected,
        r1: &RouteView,
        r2: &RouteView,
        note: &str,
    ) {
        let stream_path = c
            .paths
            .changes
            .last()
            .map(|p| self.label(&p.tag))
            .unwrap_or_else(|| "-".into());
        let rtt = |r: &RouteView| {
            r.rtt_ms
                .map(|v| format!("{v:.1} ms"))
                .unwrap_or_else(|| "-".into())
        };
        let (gap, _) = c.seq.longest_gap();
        let mut lines = vec![
            format!(
                "t={t:5.1}s  sent {sent}  delivered {}  in flight {}  dup {}  reordered {}  longest gap {:.0} ms   {note}",
                c.seq.unique(),
                sent.saturating_sub(c.seq.unique()),
                c.seq.duplicated(),
                c.seq.reordered(),
                gap * 1e3
            ),
            format!(
                "  stream s1->s2 path: {stream_path}   (switches seen in data: {})",
                c.paths.switches()
            ),
            format!(
                "  route s1 active: {}  rtt {}  switches {}",
                short_path(&r1.hops),
                rtt(r1),
                r1.path_switches
            ),
            format!(
                "  route s2 active: {}  rtt {}  switches {}",
                short_path(&r2.hops),
                rtt(r2),
                r2.path_switches
            ),
        ];
        for id in &self.a.followers {
            let line = match c.status.get(id).and_then(|v| v.last()) {
                Some(s) => format!(
                    "  follower {id}: {:8}  error {:+9.1} µs  claimed bound ±{:.1} µs  path resets {}{}",
                    s.state,
                    s.true_offset_ns as f64 / 1e3,
                    s.max_error_ns as f64 / 1e3,
                    s.path_switches,
                    if s.breaks_bound() { "  BOUND BROKEN" } else { "" }
                ),
                None => format!("  follower {id}: no status yet"),
            };
            lines.push(line);
        }
        if let Some(f) = self.log.as_mut() {
            for l in &lines {
                let _ = writeln!(f, "{l}");
            }
        }
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\x1b[H\x1b[2J");
            let _ = writeln!(
                out,
                "nats-scion demo: s1 (18-ffaa:1:10bf) -> SCION route -> s2 (18-ffaa:1:10a0), {} msg/s; cut at {:.0}s, restore at {:.0}s, end at {:.0}s\n",
                self.a.rate, self.a.cut_at, self.a.restore_at, self.a.duration
            );
        }
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
    }
}

async fn control(a: &Args, cmd: &str) -> Result<()> {
    let Some(addr) = a.control else {
        return Ok(());
    };
    let answer = scion_transport::emu::send_control(addr, cmd)
        .await
        .with_context(|| format!("emulator control {cmd:?}"))?;
    if answer.trim() != "ok" {
        bail!("emulator refused {cmd:?}: {answer}");
    }
    Ok(())
}

async fn run(a: Args) -> Result<bool> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let boot = Instant::now();
    let publisher = connect(&a.publish, "demo-publisher").await?;
    let subscriber = connect(&a.subscribe, "demo-subscriber").await?;
    wait_route(&a).await?;

    let col = Arc::new(Mutex::new(Collected::default()));
    let t0: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let seq_sub = subscriber.subscribe(SUBJECT).await?;
    let status_sub = subscriber.subscribe("time.status.*").await?;
    let mut ready_sub = subscriber.subscribe("demo.ready").await?;
    subscriber.flush().await?;
    let sub_task = spawn_subscriber(seq_sub, col.clone(), t0.clone());
    let status_task = spawn_status(status_sub, col.clone(), t0.clone(), boot);

    // Interest travels over the route in order: once demo.ready arrives, demo.seq's has too.
    let deadline = Instant::now() + Duration::from_secs_f64(a.ready_timeout);
    loop {
        publisher.publish("demo.ready", "ping".into()).await?;
        publisher.flush().await?;
        if timeout(Duration::from_millis(300), ready_sub.next())
            .await
            .is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("subscription interest did not reach broker 1 over the route");
        }
    }
    // Followers must claim sync before the stream starts (their startup step is not an error).
    loop {
        let pending: Vec<String> = {
            let c = col.lock().unwrap_or_else(|e| e.into_inner());
            a.followers
                .iter()
                .filter(|id| {
                    c.status
                        .get(*id)
                        .and_then(|v| v.last())
                        .is_none_or(|s| s.state == "startup")
                })
                .cloned()
                .collect()
        };
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "followers {pending:?} did not synchronise within {} s (see follower logs)",
                a.ready_timeout
            );
        }
        sleep(Duration::from_millis(200)).await;
    }

    let r1_start = routez(a.monitor1).await?;
    let r2_start = routez(a.monitor2).await?;
    let start = Instant::now();
    *t0.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);

    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let pub_task = {
        let (p, sent, stop, rate, dur) = (
            publisher.clone(),
            sent.clone(),
            stop.clone(),
            a.rate,
            a.duration,
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let el = start.elapsed().as_secs_f64().min(dur);
                let target = (el * f64::from(rate)) as u64;
                while sent.load(Ordering::Relaxed) < target {
                    let seq = sent.load(Ordering::Relaxed);
                    let body = format!("{seq} {}", unix_ns());
                    if p.publish(SUBJECT, body.into()).await.is_err() {
                        // async-nats buffers while reconnecting; an error means the client is gone.
                        return;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                if el >= dur || stop.load(Ordering::Relaxed) {
                    let _ = timeout(Duration::from_secs(5), p.flush()).await;
                    return;
                }
            }
        })
    };

    let mut view = View {
        a: &a,
        tty: std::io::stdout().is_terminal(),
        labels: BTreeMap::new(),
        log: std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(a.out.join("demo.log"))
            .ok(),
    };
    let mut timeline = String::from("t_s,sent,delivered,dup,stream_path,s1_path,s1_rtt_ms,s1_switches,s2_path,s2_rtt_ms,s2_switches\n");
    let mut events: Vec<(f64, String)> = Vec::new();
    let mut cut_link: Option<String> = None;
    let mut restored = false;
    let mut note = String::new();
    let mut r1 = r1_start.clone();
    let mut r2 = r2_start.clone();
    let mut next_draw = 0.0;
    loop {
        sleep(Duration::from_millis(100)).await;
        let t = start.elapsed().as_secs_f64();
        if cut_link.is_none() && t >= a.cut_at {
            let link = monitor::link_to_cut(&r1, &r2).context("no active path to cut")?;
            control(&a, &format!("link {link} {}", a.cut_mode)).await?;
            note = match a.control {
                Some(_) => format!("[link {link} {}]", a.cut_mode),
                None => format!("[cut the path now, e.g. the link at {link}]"),
            };
            events.push((
                t,
                match a.control {
                    Some(_) => format!("{} {link}", a.cut_mode),
                    None => "cut by hand (announced)".to_string(),
                },
            ));
            cut_link = Some(link);
        }
        if !restored && t >= a.restore_at {
            if let Some(link) = &cut_link {
                control(&a, &format!("link {link} up")).await?;
                note = match a.control {
                    Some(_) => format!("[link {link} restored]"),
                    None => "[restore the path now]".to_string(),
                };
                events.push((
                    t,
                    match a.control {
                        Some(_) => format!("restore {link}"),
                        None => "restore by hand (announced)".to_string(),
                    },
                ));
            }
            restored = true;
        }
        if t >= next_draw || t >= a.duration {
            next_draw += 1.0;
            r1 = routez(a.monitor1).await.unwrap_or_default();
            r2 = routez(a.monitor2).await.unwrap_or_default();
            for m in [a.monitor1, a.monitor2] {
                if let Ok(body) = http_get(m, "/pathz").await {
                    if let Ok(map) = parse_pathz(&body) {
                        view.labels.extend(map);
                    }
                }
            }
            let n = sent.load(Ordering::Relaxed);
            let c = col.lock().unwrap_or_else(|e| e.into_inner());
            view.draw(t, n, &c, &r1, &r2, &note);
            let rtt = |r: &RouteView| r.rtt_ms.map(|v| format!("{v:.2}")).unwrap_or_default();
            timeline.push_str(&format!(
                "{t:.2},{n},{},{},{},{},{},{},{},{},{}\n",
                c.seq.unique(),
                c.seq.duplicated(),
                c.paths.changes.last().map(|p| p.tag.as_str()).unwrap_or(""),
                short_path(&r1.hops),
                rtt(&r1),
                r1.path_switches,
                short_path(&r2.hops),
                rtt(&r2),
                r2.path_switches
            ));
        }
        if t >= a.duration {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = timeout(Duration::from_secs(10), pub_task).await;
    let total = sent.load(Ordering::Relaxed);
    // Bounded drain: whatever is still in flight arrives within a few RTTs.
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while col.lock().unwrap_or_else(|e| e.into_inner()).seq.unique() < total
        && Instant::now() < drain_deadline
    {
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_millis(300)).await; // late duplicates would show up here
    sub_task.abort();
    status_task.abort();
    let r1_end = routez(a.monitor1).await.unwrap_or_default();
    let r2_end = routez(a.monitor2).await.unwrap_or_default();

    let c = col.lock().unwrap_or_else(|e| e.into_inner());
    summarize(
        &a,
        &view,
        &c,
        total,
        &events,
        [&r1_start, &r1_end, &r2_start, &r2_end],
        cut_link.is_some(),
        timeline,
    )
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    a: &Args,
    view: &View,
    c: &Collected,
    total: u64,
    events: &[(f64, String)],
    r: [&RouteView; 4],
    did_cut: bool,
    timeline: String,
) -> Result<bool> {
    let [r1s, r1e, r2s, r2e] = r;
    let lost = c.seq.lost(total);
    let (gap, gap_at) = c.seq.longest_gap();
    let mut failures: Vec<String> = Vec::new();
    let mut s = String::new();
    s.push_str(&format!(
        "== summary ({:.0} s at {} msg/s, cut {} at {:.0} s, restored at {:.0} s)\n",
        a.duration, a.rate, a.cut_mode, a.cut_at, a.restore_at
    ));
    s.push_str(&format!(
        "messages: sent {total}  received {}  lost {lost}  duplicated {}  reordered {}  bad payloads {}\n",
        c.seq.unique(),
        c.seq.duplicated(),
        c.seq.reordered(),
        c.bad_payloads
    ));
    s.push_str(&format!(
        "longest gap between deliveries: {:.1} ms (starting at t={gap_at:.2} s)\n",
        gap * 1e3
    ));
    if let Some((cut_t, _)) = events.first() {
        let g = c.seq.gap_after(*cut_t, 3.0).unwrap_or(0.0);
        s.push_str(&format!(
            "longest gap within 3 s after the cut: {:.1} ms (below {:.0} ms counts as no gap)\n",
            g * 1e3,
            stats::NOTABLE_GAP_S * 1e3
        ));
    }
    if !c.seq.gaps().is_empty() {
        let list: Vec<String> = c
            .seq
            .gaps()
            .iter()
            .take(12)
            .map(|(at, len)| format!("t={at:.2}s {:.0}ms", len * 1e3))
            .collect();
        s.push_str(&format!(
            "gaps of {:.0} ms or more: {} ({})\n",
            stats::NOTABLE_GAP_S * 1e3,
            c.seq.gaps().len(),
            list.join(", ")
        ));
    }
    let p = |q| stats::percentile(&c.latencies_ms, q).unwrap_or(f64::NAN);
    s.push_str(&format!(
        "one-way latency: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms\n",
        p(50.0),
        p(99.0),
        p(100.0)
    ));
    let sw1 = r1e.path_switches.saturating_sub(r1s.path_switches);
    let sw2 = r2e.path_switches.saturating_sub(r2s.path_switches);
    s.push_str(&format!(
        "path switches: s1->s2 route {sw1}, s2->s1 route {sw2}, seen in the stream's headers {}\n",
        c.paths.switches()
    ));
    for (i, tag) in c.paths.distinct().iter().enumerate() {
        s.push_str(&format!("  path {}: {tag}  {}\n", i + 1, view.label(tag)));
    }
    for ch in &c.paths.changes {
        s.push_str(&format!(
            "  t={:6.2}s stream on {}\n",
            ch.t,
            view.label(&ch.tag)
        ));
    }
    for id in &a.followers {
        let samples: Vec<OffsetSample> = c
            .status
            .get(id)
            .map(|v| v.iter().filter(|x| x.t >= 0.0).cloned().collect())
            .unwrap_or_default();
        match stats::summarize_offsets(&samples) {
            Some(o) => {
                s.push_str(&format!(
                    "follower {id}: |error| p50 {:.1} µs  p99 {:.1} µs  max {:.1} µs  (claimed bound up to {:.1} µs, {} samples, {} outside the bound)\n",
                    o.p50_us, o.p99_us, o.max_us, o.max_bound_us, o.samples, o.violations
                ));
                if o.violations > 0 {
                    failures.push(format!(
                        "follower {id}: error outside its claimed bound in {} samples",
                        o.violations
                    ));
                }
            }
            None => failures.push(format!(
                "follower {id}: no synchronised status during the run"
            )),
        }
    }
    if lost > 0 {
        let miss = c.seq.missing(total, 10);
        failures.push(format!("{lost} messages lost (first: {miss:?})"));
    }
    if c.seq.duplicated() > 0 {
        failures.push(format!("{} messages duplicated", c.seq.duplicated()));
    }
    if c.seq.reordered() > 0 {
        failures.push(format!("{} messages out of order", c.seq.reordered()));
    }
    if c.bad_payloads > 0 {
        failures.push(format!("{} unreadable messages", c.bad_payloads));
    }
    if total == 0 {
        failures.push("nothing was published".into());
    }
    if did_cut && a.control.is_some() && sw1 + sw2 == 0 && c.paths.switches() == 0 {
        failures
            .push("the cut caused no path switch: the cut link was not on the active path".into());
    }
    if failures.is_empty() {
        s.push_str("RESULT: PASS\n");
    } else {
        for f in &failures {
            s.push_str(&format!("FAIL: {f}\n"));
        }
    }
    print!("\n{s}");

    let mut labels: Vec<(String, String)> = c
        .paths
        .distinct()
        .into_iter()
        .map(|t| {
            let l = format!("{}  ({t})", view.label(&t));
            (t, l)
        })
        .collect();
    if labels.is_empty() {
        labels.push(("-".into(), "no tagged messages".into()));
    }
    let data = plot::PlotData {
        title: format!(
            "nats-scion demo: 18-ffaa:1:10bf -> 18-ffaa:1:10a0, {} msg/s, {} lost, longest gap {:.0} ms",
            a.rate,
            lost,
            gap * 1e3
        ),
        duration: a.duration,
        events: events.to_vec(),
        followers: a
            .followers
            .iter()
            .map(|id| {
                let v = c.status.get(id).cloned().unwrap_or_default();
                (id.clone(), v.into_iter().filter(|x| x.t >= 0.0).collect())
            })
            .collect(),
        paths: c.paths.changes.clone(),
        path_labels: labels,
        delivery: c
            .buckets
            .iter()
            .enumerate()
            .map(|(i, (n, l))| (i as f64 * BUCKET_S, *n, *l))
            .collect(),
        bucket_s: BUCKET_S,
    };
    let w = |name: &str, body: &str| {
        std::fs::write(a.out.join(name), body).with_context(|| format!("writing {name}"))
    };
    w("plot.svg", &plot::render(&data))?;
    w("summary.txt", &s)?;
    w("timeline.csv", &timeline)?;
    let mut offsets = String::from("follower,t_s,state,true_error_ns,claimed_bound_ns\n");
    for (id, v) in &c.status {
        for x in v {
            offsets.push_str(&format!(
                "{id},{:.3},{},{},{}\n",
                x.t, x.state, x.true_offset_ns, x.max_error_ns
            ));
        }
    }
    w("offsets.csv", &offsets)?;
    println!(
        "wrote {}/{{plot.svg,summary.txt,timeline.csv,offsets.csv}}",
        a.out.display()
    );
    Ok(failures.is_empty())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}\n\nHOST may be a name or an IP address. See the file header of broker/examples/demo/main.rs and the README.");
        return std::process::ExitCode::SUCCESS;
    }
    let a = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(a).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn args_parse_and_reject() {
        let base = "--pub nats://a:1 --sub nats://b:2 --monitor1 127.0.0.1:1 --monitor2 127.0.0.1:2 --control 127.0.0.1:3 --out /tmp/x";
        let a = parse_args(&v(&format!(
            "{base} --followers f1,f2 --duration 18 --cut-at 4 --restore-at 8"
        )))
        .expect("ok");
        assert_eq!(a.followers, vec!["f1", "f2"]);
        assert_eq!(a.duration, 18.0);
        assert_eq!(a.rate, 1000);
        // A host name (here one /etc/hosts resolves) is taken like an IP.
        let named = parse_args(&v(
            &base.replace("--monitor1 127.0.0.1:1", "--monitor1 localhost:8222")
        ))
        .expect("a name");
        assert_eq!(named.monitor1.port(), 8222);
        assert!(named.monitor1.ip().is_loopback() && named.monitor1.is_ipv4());
        for bad in [
            base.replace("--monitor1 127.0.0.1:1", "--monitor1 8222"),
            format!("{base} --bogus 1"),
            format!("{base} --cut-mode sideways"),
            format!("{base} --cut-at 30 --restore-at 20"),
            format!("{base} --rate 0"),
            format!("{base} --duration NaN"),
            "--pub x".to_string(),
            format!("{base} stray"),
        ] {
            assert!(parse_args(&v(&bad)).is_err(), "{bad}");
        }
    }
}
