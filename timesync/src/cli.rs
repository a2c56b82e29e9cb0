//! Command line: argument definitions and the subcommands. `main.rs` only calls [`main`].

use crate::clock::{DisciplinedClock, FakeSkew, KernelClock, VirtualClock};
use crate::core::wire::{
    self, decode_beacon, Announce, FollowerStatus, ANNOUNCE_PREFIX, BEACON_SUBJECT, HDR_SOURCE,
    STATUS_PREFIX,
};
use crate::core::{DisciplineConfig, EngineConfig, SourceConfig};
use crate::follow::{run_follow, FollowOptions};
use crate::source::{run_source, SourceOptions};
use crate::steer;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Time synchronisation over NATS.
/// Largest value of the `*-ms` options: one hour. Larger values overflowed the time
/// arithmetic (a panic, or a poll period wrapped to 1 ns that spun the process).
const MAX_MS: u64 = 3_600_000;

/// A positive, finite number (`--max-step-s`).
fn positive_finite(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be a positive number".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A finite number, 0 or more (`--step-threshold-ms`: 0 steps any startup offset).
fn non_negative_finite(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Ok(_) => Err("must be a number, 0 or more".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Parser)]
#[command(name = "timesync", version)]
pub struct Cli {
    /// NATS server URL; repeat for failover (tried in order, reconnects rotate).
    #[arg(
        short = 's',
        long = "server",
        global = true,
        default_value = "nats://127.0.0.1:4222"
    )]
    pub servers: Vec<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve time: answer requests on time.sync.<id>, beacon on time.system, announce.
    Source(SourceArgs),
    /// Follow one or more sources and keep a disciplined clock.
    Follow(FollowArgs),
    /// List the sources announcing themselves.
    Sources(ListArgs),
    /// List followers and their status.
    Followers(FollowersArgs),
    /// Show a follower's tracking state (like `chronyc tracking`).
    Tracking(TrackingArgs),
    /// Print time.system beacons with decoded headers.
    Tail(TailArgs),
    /// Run the benchmark scenarios, print the comparison table, write an SVG plot.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Clone, Copy, Args)]
pub struct SkewArgs {
    /// Testing only: start this clock skewed by this many ms relative to the host clock.
    #[arg(
        long = "fake-offset-ms",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub offset_ms: f64,
    /// Testing only: run this clock fast (+) or slow (-) by this many ppm.
    #[arg(
        long = "fake-ppm",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub ppm: f64,
}

impl SkewArgs {
    pub fn skew(&self) -> Result<FakeSkew> {
        if !self.offset_ms.is_finite() || self.offset_ms.abs() > 1e9 {
            bail!("--fake-offset-ms must be a finite number of ms below 1e9");
        }
        if !self.ppm.is_finite() || self.ppm.abs() > 1000.0 {
            bail!("--fake-ppm must be within ±1000");
        }
        Ok(FakeSkew {
            offset_ns: (self.offset_ms * 1e6).round() as i64,
            freq: self.ppm * 1e-6,
        })
    }
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Source id (one subject token: A-Z a-z 0-9 - _).
    #[arg(long)]
    pub id: String,
    #[arg(long, default_value_t = 1)]
    pub stratum: u8,
    /// Preference announced to followers (lower wins).
    #[arg(long, default_value_t = 0)]
    pub priority: u8,
    #[arg(long = "beacon-ms", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub beacon_ms: u64,
    #[arg(long = "announce-ms", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub announce_ms: u64,
    #[command(flatten)]
    pub skew: SkewArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClockMode {
    /// Keep a virtual clock; never touch the host clock.
    Observe,
    /// Steer the host clock through adjtimex (needs CAP_SYS_TIME).
    Discipline,
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Follower id (one subject token).
    #[arg(long)]
    pub id: String,
    /// Source to follow as ID or ID:PRIORITY; repeatable. Without any, sources are
    /// discovered from time.announce.* for --discover-ms.
    #[arg(long = "source")]
    pub sources: Vec<String>,
    #[arg(long = "discover-ms", default_value_t = 2500, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub discover_ms: u64,
    #[arg(long, value_enum, default_value_t = ClockMode::Observe)]
    pub clock: ClockMode,
    /// Discipline even if another time daemon runs.
    #[arg(long)]
    pub force: bool,
    /// Run the start checks of the clock mode, query the kernel clock read-only
    /// (adjtimex modes=0), print the result and exit: nothing is changed, no connection made.
    #[arg(long)]
    pub check: bool,
    /// Refuse steps larger than this (seconds).
    #[arg(long = "max-step-s", default_value_t = steer::DEFAULT_MAX_STEP_S, value_parser = positive_finite)]
    pub max_step_s: f64,
    /// Startup offsets above this are stepped, smaller ones slewed (ms).
    #[arg(long = "step-threshold-ms", default_value_t = 10.0, value_parser = non_negative_finite)]
    pub step_threshold_ms: f64,
    #[arg(long = "poll-ms", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub poll_ms: u64,
    /// Requests per poll, back to back; the minimum-delay one is used.
    #[arg(long, default_value_t = crate::core::EngineConfig::default().burst, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub burst: u32,
    #[arg(long = "timeout-ms", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub timeout_ms: u64,
    #[arg(long = "status-ms", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    pub status_ms: u64,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9123).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    #[command(flatten)]
    pub skew: SkewArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// How long to listen for announcements.
    #[arg(long = "wait-ms", default_value_t = 2500, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub wait_ms: u64,
}

#[derive(Debug, Args)]
pub struct FollowersArgs {
    /// Also show each follower's per-source view.
    #[arg(short, long)]
    pub verbose: bool,
    #[arg(long = "wait-ms", default_value_t = 1500, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub wait_ms: u64,
}

#[derive(Debug, Args)]
pub struct TrackingArgs {
    /// Follower id; without it the first follower heard from is shown.
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long = "wait-ms", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(0..=MAX_MS))]
    pub wait_ms: u64,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only beacons of this source.
    pub source: Option<String>,
    /// Stop after this many beacons (default: run until interrupted).
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
}

/// Connect to the first reachable server of the list; async-nats keeps the rest for
/// reconnects.
pub async fn connect(servers: &[String], name: &str, retry: bool) -> Result<async_nats::Client> {
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .map(|s| s.parse().with_context(|| format!("bad server URL {s:?}")))
        .collect::<Result<_>>()?;
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(3));
    let label = servers.join(", ");
    // The client, once made: a connection line names the server actually reached (after a
    // reconnect through a discovered URL it is not one of `servers`).
    let made: Arc<std::sync::OnceLock<async_nats::Client>> = Arc::default();
    if retry {
        // The long-running commands (source, follow) keep trying and say what the
        // connection does: a follower whose broker went away is in holdover for a reason.
        let l = label.clone();
        // One connection error per outage at warn, the retries' at debug.
        let quiet = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let made = made.clone();
        opts = opts.retry_on_initial_connect().event_callback(move |ev| {
            let (l, quiet, made) = (l.clone(), quiet.clone(), made.clone());
            async move {
                use std::sync::atomic::Ordering::Relaxed;
                match ev {
                    async_nats::Event::Connected => {
                        quiet.store(false, Relaxed);
                        // The first connection can beat `connect` returning the client.
                        for _ in 0..20 {
                            if made.get().is_some() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        match made.get().map(|c| c.server_info()) {
                            Some(i) => info!(
                                servers = %l,
                                server = %i.server_name,
                                at = %format!("{}:{}", i.host, i.port),
                                "connected to NATS"
                            ),
                            None => info!(servers = %l, "connected to NATS"),
                        }
                    }
                    async_nats::Event::Disconnected => {
                        warn!(servers = %l, "disconnected from NATS: reconnecting")
                    }
                    async_nats::Event::ClientError(e) if quiet.swap(true, Relaxed) => {
                        debug!(servers = %l, "NATS: {e}")
                    }
                    other => warn!(servers = %l, "NATS: {other}"),
                }
            }
        });
    }
    let client = opts
        .connect(addrs)
        .await
        .with_context(|| format!("connect to {label}"))?;
    let _ = made.set(client.clone());
    if retry {
        let c = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if c.connection_state() != async_nats::connection::State::Connected {
                warn!(servers = %label, "not connected to NATS yet: still trying");
            }
        });
    }
    Ok(client)
}

/// Resolves once `shutdown` is true.
async fn shut_down(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn parse_source(spec: &str) -> Result<SourceConfig> {
    let (id, prio) = match spec.split_once(':') {
        Some((id, p)) => (
            id,
            p.parse()
                .with_context(|| format!("bad priority in --source {spec:?}"))?,
        ),
        None => (spec, 0),
    };
    wire::validate_id(id).with_context(|| format!("--source {spec:?}"))?;
    Ok(SourceConfig {
        id: id.to_string(),
        priority: prio,
    })
}

/// Shutdown flag flipped by Ctrl-C / SIGTERM.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        let _ = tx.send(true);
    });
    rx
}

pub async fn main(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Source(a) => source(&cli.servers, a).await,
        Command::Follow(a) => follow(&cli.servers, a).await,
        Command::Sources(a) => sources(&cli.servers, a).await,
        Command::Followers(a) => followers(&cli.servers, a).await,
        Command::Tracking(a) => tracking(&cli.servers, a).await,
        Command::Tail(a) => tail(&cli.servers, a).await,
        Command::Bench(a) => crate::bench::run(a).await,
    }
}

fn nonzero_ms(name: &str, ms: u64) -> Result<Duration> {
    if ms == 0 {
        bail!("{name} must be greater than 0");
    }
    Ok(Duration::from_millis(ms))
}

async fn source(servers: &[String], a: SourceArgs) -> Result<()> {
    wire::validate_id(&a.id).context("--id")?;
    if a.stratum == 0 || a.stratum >= 16 {
        bail!("--stratum must be 1..=15");
    }
    let opts = SourceOptions {
        id: a.id.clone(),
        stratum: a.stratum,
        priority: a.priority,
        leap: 0,
        root_delay_ns: 0,
        root_dispersion_ns: 0,
        beacon_interval: nonzero_ms("--beacon-ms", a.beacon_ms)?,
        announce_interval: nonzero_ms("--announce-ms", a.announce_ms)?,
        skew: a.skew.skew()?,
    };
    let client = connect(servers, &format!("timesync-source-{}", a.id), true).await?;
    let shutdown = shutdown_signal();
    // Until the broker answers, the source waits in its subscribe; a signal still ends it.
    tokio::select! {
        r = run_source(client, opts, shutdown.clone()) => r?,
        _ = shut_down(shutdown) => {}
    }
    Ok(())
}

/// Discipline-mode start checks (CAP_SYS_TIME, no other time daemon unless `force`), then
/// a read-only query of the kernel clock. Nothing is written yet.
pub fn discipline_preflight(force: bool, skew: FakeSkew) -> Result<KernelClock> {
    if skew != FakeSkew::default() {
        bail!("--fake-offset-ms/--fake-ppm only apply to --clock observe");
    }
    let procs = steer::scan_processes().context("scan /proc for time daemons")?;
    let found = steer::conflicts(&procs);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for w in steer::check_start(&found, steer::has_cap_sys_time(&status), force)? {
        warn!("{w}");
    }
    Ok(KernelClock::open()?)
}

/// `follow --check`: the start checks and a read-only kernel clock query, printed.
fn check_clock(mode: ClockMode, force: bool, skew: FakeSkew) -> Result<()> {
    match mode {
        ClockMode::Observe => {
            println!("clock observe: no privilege needed, the host clock is never touched");
        }
        ClockMode::Discipline => {
            let k = discipline_preflight(force, skew)?.state();
            println!("clock discipline: start checks passed (CAP_SYS_TIME held; no other time daemon running, or --force)");
            println!(
                "kernel clock (adjtimex modes=0, read-only): state {}, frequency {:+.3} ppm, status 0x{:04x} [{}], maxerror {} us, esterror {} us, tick {} us, tai {} s",
                k.state_name(),
                k.freq_ppm,
                k.status,
                k.status_names().join(" "),
                k.maxerror_us,
                k.esterror_us,
                k.tick_us,
                k.tai_s
            );
            println!("nothing changed; without --check, follow would switch off the kernel PLL/FLL and steer CLOCK_REALTIME from {:+.3} ppm", k.freq_ppm);
        }
    }
    Ok(())
}

async fn discover(client: &async_nats::Client, wait: Duration) -> Result<Vec<Announce>> {
    let mut sub = client.subscribe(format!("{ANNOUNCE_PREFIX}.*")).await?;
    let mut seen = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.next()).await {
        match serde_json::from_slice::<Announce>(&msg.payload) {
            Ok(a) if wire::validate_id(&a.id).is_ok() => {
                seen.insert(a.id.clone(), a);
            }
            Ok(a) => warn!(id = a.id, "announcement with an unusable id"),
            Err(err) => warn!(subject = %msg.subject, %err, "bad announcement"),
        }
    }
    Ok(seen.into_values().collect())
}

async fn follow(servers: &[String], a: FollowArgs) -> Result<()> {
    wire::validate_id(&a.id).context("--id")?;
    if !(a.step_threshold_ms.is_finite() && a.step_threshold_ms >= 0.0) {
        bail!("--step-threshold-ms must be a non-negative number");
    }
    if !(a.max_step_s.is_finite() && a.max_step_s > 0.0) {
        bail!("--max-step-s must be a positive number");
    }
    if a.burst == 0 || a.burst > 16 {
        bail!("--burst must be 1..=16");
    }
    let poll = nonzero_ms("--poll-ms", a.poll_ms)?;
    let timeout = nonzero_ms("--timeout-ms", a.timeout_ms)?;
    let status_interval = nonzero_ms("--status-ms", a.status_ms)?;
    let mut sources = a
        .sources
        .iter()
        .map(|s| parse_source(s))
        .collect::<Result<Vec<_>>>()?;
    if a.check {
        return check_clock(a.clock, a.force, a.skew.skew()?);
    }
    // The start checks first (a refusal should not wait for the network); the clock is
    // taken over only once there is something to follow.
    let skew = a.skew.skew()?;
    let preflight = match a.clock {
        ClockMode::Discipline => Some(discipline_preflight(a.force, skew)?),
        ClockMode::Observe => None,
    };
    let client = connect(servers, &format!("timesync-follow-{}", a.id), true).await?;
    if sources.is_empty() {
        let found = tokio::select! {
            f = discover(&client, Duration::from_millis(a.discover_ms)) => f?,
            _ = shut_down(shutdown_signal()) => return Ok(()),
        };
        sources = found
            .into_iter()
            .map(|x| SourceConfig {
                id: x.id,
                priority: x.priority,
            })
            .collect();
        info!(count = sources.len(), "discovered sources");
        if sources.is_empty()
            && client.connection_state() != async_nats::connection::State::Connected
        {
            bail!(
                "no sources discovered: not connected to NATS at {} (pass --source ID to wait for a source)",
                servers.join(", ")
            );
        }
    }
    let clock: Arc<dyn DisciplinedClock> = match preflight {
        Some(k) => Arc::new(k.take_over(a.max_step_s)?),
        None => Arc::new(VirtualClock::new(skew)),
    };
    let mut engine = EngineConfig {
        poll_ns: poll.as_nanos() as i64,
        burst: a.burst,
        request_timeout_ns: timeout.as_nanos() as i64,
        discipline: DisciplineConfig {
            step_threshold: a.step_threshold_ms / 1e3,
            ..DisciplineConfig::default()
        },
        ..EngineConfig::default()
    };
    // Loss detection must stay within ~3 s but never undercut one poll plus its timeout.
    engine.lost_after_ns = engine
        .lost_after_ns
        .max(engine.poll_ns + engine.request_timeout_ns);
    let shutdown = shutdown_signal();
    let (status_tx, status_rx) = watch::channel(None);
    if let Some(addr) = a.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind metrics on {addr}"))?;
        let addr = listener.local_addr().unwrap_or(addr);
        info!(%addr, "metrics listening");
        tokio::spawn(crate::metrics::serve(listener, status_rx, shutdown.clone()));
    }
    let opts = FollowOptions {
        id: a.id,
        sources,
        engine,
        status_interval,
    };
    run_follow(client, clock, opts, status_tx, shutdown).await?;
    Ok(())
}

async fn sources(servers: &[String], a: ListArgs) -> Result<()> {
    let client = connect(servers, "timesync-cli", false).await?;
    let found = discover(&client, Duration::from_millis(a.wait_ms)).await?;
    println!(
        "{:<20} {:>4} {:>7} {:>4} {:>10} {:>10} {:>9} {:>10}",
        "SOURCE", "STR", "PRIO", "LEAP", "ROOTDLY", "ROOTDISP", "UPTIME", "SERVED"
    );
    for s in &found {
        println!(
            "{:<20} {:>4} {:>7} {:>4} {:>10} {:>10} {:>8}s {:>10}",
            s.id,
            s.stratum,
            s.priority,
            s.leap,
            fmt_ns(s.root_delay_ns),
            fmt_ns(s.root_dispersion_ns),
            s.uptime_s,
            s.served
        );
    }
    if found.is_empty() {
        println!("(no source announced itself within {} ms)", a.wait_ms);
    }
    Ok(())
}

/// Human-readable signed duration.
pub fn fmt_ns(ns: i64) -> String {
    if ns == i64::MAX {
        return "-".into();
    }
    let a = ns.unsigned_abs();
    if a >= 1_000_000_000 {
        format!("{:.3}s", ns as f64 / 1e9)
    } else if a >= 1_000_000 {
        format!("{:.3}ms", ns as f64 / 1e6)
    } else {
        format!("{:.1}us", ns as f64 / 1e3)
    }
}

async fn collect_status(
    client: &async_nats::Client,
    wait: Duration,
    want: Option<&str>,
) -> Result<BTreeMap<String, FollowerStatus>> {
    let subject = match want {
        Some(id) => wire::status_subject(id),
        None => format!("{STATUS_PREFIX}.*"),
    };
    let mut sub = client.subscribe(subject).await?;
    let mut seen = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.next()).await {
        match serde_json::from_slice::<FollowerStatus>(&msg.payload) {
            Ok(s) => {
                seen.insert(s.id.clone(), s);
                if want.is_some() {
                    break;
                }
            }
            Err(err) => warn!(subject = %msg.subject, %err, "bad status message"),
        }
    }
    Ok(seen)
}

async fn followers(servers: &[String], a: FollowersArgs) -> Result<()> {
    let client = connect(servers, "timesync-cli", false).await?;
    let seen = collect_status(&client, Duration::from_millis(a.wait_ms), None).await?;
    println!(
        "{:<20} {:<16} {:<9} {:>12} {:>12} {:>12} {:<16}",
        "FOLLOWER", "ADDRESS", "STATE", "OFFSET", "DELAY", "MAXERR", "SOURCE"
    );
    for s in seen.values() {
        let t = &s.tracking;
        println!(
            "{:<20} {:<16} {:<9} {:>12} {:>12} {:>12} {:<16}",
            s.id,
            s.address,
            t.state.as_str(),
            fmt_ns(t.offset_ns),
            fmt_ns(t.delay_ns),
            fmt_ns(t.max_error_ns),
            t.selected.as_deref().unwrap_or("-")
        );
        if a.verbose {
            for src in &t.sources {
                println!(
                    "    {} {:<16} reach={} offset={} delay={} jitter={} path={} request_path={} samples={} rejected={} failures={} host_offset={}{}",
                    if src.selected { '*' } else if src.falseticker { 'x' } else { ' ' },
                    src.id,
                    u8::from(src.reachable),
                    src.offset_ns.map_or("-".into(), fmt_ns),
                    src.delay_ns.map_or("-".into(), fmt_ns),
                    fmt_ns(src.jitter_ns),
                    src.path.as_deref().unwrap_or("-"),
                    src.request_path.as_deref().unwrap_or("-"),
                    src.samples,
                    src.rejected,
                    src.failures,
                    fmt_ns(s.host_offset_ns),
                    src.last_error.as_deref().map(|e| format!(" last_error={e}")).unwrap_or_default(),
                );
            }
        }
    }
    if seen.is_empty() {
        println!("(no follower status within {} ms)", a.wait_ms);
    }
    Ok(())
}

async fn tracking(servers: &[String], a: TrackingArgs) -> Result<()> {
    let client = connect(servers, "timesync-cli", false).await?;
    let seen = collect_status(&client, Duration::from_millis(a.wait_ms), a.id.as_deref()).await?;
    let Some(s) = seen.values().next() else {
        bail!("no follower status received within {} ms", a.wait_ms);
    };
    let t = &s.tracking;
    println!(
        "Follower        : {} ({}, clock {})",
        s.id, s.address, s.mode
    );
    println!("State           : {}", t.state.as_str());
    println!("Reference       : {}", t.selected.as_deref().unwrap_or("-"));
    println!(
        "System offset   : {} (source minus local)",
        fmt_ns(t.offset_ns)
    );
    println!("Last offset     : {}", fmt_ns(t.last_offset_ns));
    println!("Root delay      : {}", fmt_ns(t.delay_ns));
    println!("Jitter          : {}", fmt_ns(t.jitter_ns));
    println!(
        "Frequency       : {:.3} ppm applied, {:.3} ± {:.3} ppm estimated",
        t.freq_ppm, t.est_freq_ppm, t.freq_sigma_ppm
    );
    println!("Max error       : {}", fmt_ns(t.max_error_ns));
    println!(
        "Last update     : {}",
        t.since_update_ms
            .map_or("never".into(), |m| format!("{m} ms ago"))
    );
    println!("Steps           : {}", t.steps);
    println!("Path switches   : {}", t.path_switches);
    println!("Source switches : {}", t.source_switches);
    Ok(())
}

async fn tail(servers: &[String], a: TailArgs) -> Result<()> {
    let client = connect(servers, "timesync-cli", false).await?;
    let mut sub = client.subscribe(BEACON_SUBJECT).await?;
    let mut n = 0u64;
    // Per source: (epoch, last sequence number), to report what did not arrive in order.
    let mut last: BTreeMap<String, (Option<u64>, u64)> = BTreeMap::new();
    while let Some(msg) = sub.next().await {
        let header = |name: &str| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str())
        };
        if let Some(want) = &a.source {
            if header(HDR_SOURCE) != Some(want.as_str()) {
                continue;
            }
        }
        match decode_beacon(&msg.payload, header) {
            Ok(b) => {
                if let (Some(src), Some(seq)) = (b.source.as_deref(), b.seq) {
                    if let Some(note) = sequence_note(last.get(src).copied(), b.epoch, seq) {
                        println!("# source={src} {note}");
                    }
                    last.insert(src.to_string(), (b.epoch, seq));
                }
                println!(
                    "{} source={} seq={} tx_ns={} stratum={} leap={} epoch={}",
                    b.micros,
                    b.source.as_deref().unwrap_or("-"),
                    b.seq.map_or("-".into(), |v| v.to_string()),
                    b.tx_ns.map_or("-".into(), |v| v.to_string()),
                    b.stratum.map_or("-".into(), |v| v.to_string()),
                    b.leap.map_or("-".into(), |v| v.to_string()),
                    b.epoch.map_or("-".into(), |v| v.to_string()),
                )
            }
            Err(err) => println!("undecodable beacon: {err}"),
        }
        n += 1;
        if a.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    Ok(())
}

/// What `tail` says about a beacon's sequence number after `prev` (epoch, seq) of the
/// same source: beacons that never came, ones out of order, a restart (new epoch).
fn sequence_note(prev: Option<(Option<u64>, u64)>, epoch: Option<u64>, seq: u64) -> Option<String> {
    let (pe, ps) = prev?;
    if pe != epoch {
        return Some(format!(
            "restarted: epoch {} (sequence starts over)",
            epoch.map_or("-".into(), |e| e.to_string())
        ));
    }
    if seq == ps.wrapping_add(1) {
        None
    } else if seq > ps {
        Some(format!(
            "gap: {} beacon(s) missing (seq {}..{})",
            seq - ps - 1,
            ps + 1,
            seq - 1
        ))
    } else {
        Some(format!("out of order: seq {seq} after {ps}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reports_gaps_reordering_and_restarts() {
        assert_eq!(sequence_note(None, Some(1), 7), None);
        assert_eq!(sequence_note(Some((Some(1), 6)), Some(1), 7), None);
        assert_eq!(
            sequence_note(Some((Some(1), 6)), Some(1), 9).as_deref(),
            Some("gap: 2 beacon(s) missing (seq 7..8)")
        );
        assert_eq!(
            sequence_note(Some((Some(1), 6)), Some(1), 5).as_deref(),
            Some("out of order: seq 5 after 6")
        );
        assert_eq!(
            sequence_note(Some((Some(1), 6)), Some(2), 1).as_deref(),
            Some("restarted: epoch 2 (sequence starts over)")
        );
    }

    #[test]
    fn source_specs_parse_and_reject_garbage() {
        assert_eq!(
            parse_source("a").unwrap(),
            SourceConfig {
                id: "a".into(),
                priority: 0
            }
        );
        assert_eq!(parse_source("b:3").unwrap().priority, 3);
        assert!(parse_source("b:x").is_err());
        assert!(parse_source("b.c").is_err());
        assert!(parse_source("").is_err());
    }

    /// Times are bounded at parse time: an hour of poll or timeout used to overflow the
    /// nanosecond arithmetic (a panic) or wrap into a 1 ns poll that spun the process.
    #[test]
    fn time_options_are_bounded() {
        let parse = |extra: &[&str]| {
            let mut v = vec!["timesync", "follow", "--id", "f", "--source", "s"];
            v.extend_from_slice(extra);
            Cli::try_parse_from(v)
        };
        assert!(parse(&["--poll-ms", "3600000", "--timeout-ms", "1"]).is_ok());
        for bad in [
            &["--poll-ms", "9223372036854"][..],
            &["--poll-ms", "0"],
            &["--timeout-ms", "10000000000000"],
            &["--status-ms", "3600001"],
            &["--burst", "0"],
            &["--max-step-s", "inf"],
            &["--step-threshold-ms=-1"],
        ] {
            let e = parse(bad).expect_err("refused");
            let flag = bad[0].split('=').next().unwrap_or_default();
            assert!(e.to_string().contains(flag), "{bad:?}: {e}");
        }
    }

    #[test]
    fn cli_parses_documented_forms() {
        let c = Cli::try_parse_from([
            "timesync",
            "-s",
            "nats://a:4222",
            "-s",
            "nats://b:4222",
            "follow",
            "--id",
            "f1",
            "--source",
            "s1",
            "--source",
            "s2:1",
            "--fake-offset-ms",
            "-250",
            "--fake-ppm",
            "100",
            "--metrics",
            "127.0.0.1:9100",
        ])
        .unwrap();
        assert_eq!(c.servers.len(), 2);
        match c.command {
            Command::Follow(f) => {
                assert_eq!(f.sources, vec!["s1", "s2:1"]);
                assert_eq!(f.clock, ClockMode::Observe);
                assert_eq!(f.skew.offset_ms, -250.0);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["timesync", "follow", "--id", "f", "--clock", "bogus"]).is_err()
        );
        let c = Cli::try_parse_from(["timesync", "followers", "-v"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Followers(FollowersArgs { verbose: true, .. })
        ));
    }

    #[test]
    fn skew_is_validated() {
        assert!(SkewArgs {
            offset_ms: f64::NAN,
            ppm: 0.0
        }
        .skew()
        .is_err());
        assert!(SkewArgs {
            offset_ms: 0.0,
            ppm: 5000.0
        }
        .skew()
        .is_err());
        assert_eq!(
            SkewArgs {
                offset_ms: 1.5,
                ppm: -2.0
            }
            .skew()
            .unwrap(),
            FakeSkew {
                offset_ns: 1_500_000,
                freq: -2e-6
            }
        );
    }

    #[test]
    fn durations_format_readably() {
        assert_eq!(fmt_ns(1_500), "1.5us");
        assert_eq!(fmt_ns(-2_500_000), "-2.500ms");
        assert_eq!(fmt_ns(3_000_000_000), "3.000s");
        assert_eq!(fmt_ns(i64::MAX), "-");
    }
}
