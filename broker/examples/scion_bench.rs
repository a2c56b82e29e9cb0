//! Benchmarks for the SCION route links (issue 5), run side by side in one
//! process on loopback:
//!
//! 1. route throughput: `nats-xbench` (publisher on A, subscriber on B) across
//!    a TCP route and across a QUIC/SCION route through the emulator, 16 B and
//!    1 KiB messages, runs interleaved (TCP, SCION, TCP, ...). The emulator
//!    runs `two-paths.toml` as is: link latency on (1 ms per direct link, so
//!    an RTT of about 2-4 ms with timer rounding), no bandwidth limit, no
//!    loss. `--flat` turns latency off (like the transport bench's bulk
//!    figure); then all paths look alike to the selector and the route may
//!    run through the core AS (two forwarding hops instead of one);
//! 2. failover gap: a 1 kHz sequenced stream across the SCION route while
//!    the active link is cut, SCMP-signalled (`down`) and silently
//!    (`blackhole`), repeated; p50/p99/max of the longest delivery gap, and
//!    whether anything was lost or duplicated;
//! 3. total outage: the same stream while every path is silently gone for 2 s, then back;
//!    how soon after the paths' return the first message and the whole backlog arrive.
//!
//! CPU per message is this process's (brokers, emulator, kernel work on their sockets) and,
//! separately, the xbench clients'; with both cores busy, throughput ratio ≈ inverse ratio of
//! the two summed.
//!
//! ```sh
//! cargo run --release -p broker --example scion_bench -- [--rounds N] [--runs N]
//!     [--sizes 16,1024] [--msgs N] [--flat] [--latency MS] [--reverse]
//!     [--no-failover] [--no-throughput] [--scion-only] [--mtu BYTES] [--same-as]
//!     [--tcp-tls] [--xbench PATH]
//! ```
//! `--rounds` cuts per failover kind (default 10), `--runs` xbench runs per
//! size and route kind (default 3). `--reverse` publishes on B (the node
//! that dialed the route) and subscribes on A; `--latency` sets every
//! emulated link's one-way latency (a long path: the SCION route is then
//! bounded by QUIC's flow-control windows). `--mtu` sets every emulated AS
//! and link MTU (e.g. 8972 for jumbo-frame links); `--same-as` puts both
//! SCION brokers in one AS, so their route needs no border router (SCION
//! packets with an empty path, as between two hosts of one SCIONLab AS).
//! `--tcp-tls` gives the TCP route `cluster { tls {...} }` (certificates of a fresh CA): an
//! encrypted TCP route beside the encrypted QUIC/SCION one.
//! `RUST_LOG=warn` shows the brokers' logs.
//! `--xbench` defaults to `$NATS_PEERS_BIN/nats-xbench` or the folder
//! printed by `shared/peers/setup.sh`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use broker::options::{
    ClusterOpts, ListenAddr, Options, RouteTarget, RouteUrl, ScionOpts, TlsOpts,
};
use broker::server::{start, ServerHandle};
use futures::StreamExt;
use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::emu::{send_control, EmuHandle, EmuOptions, Emulator, Topology};
use tokio::time::{sleep, timeout, Instant};

/// Failover topology: two disjoint paths, the direct one with 1 ms links.
const TOPO: &str = include_str!("../../scion-transport/emu/two-paths.toml");
/// The same network with shaping off (no link latency), for `--flat`.
const TOPO_FLAT: &str = r#"
[[as]]
ia = "1-ff00:0:110"
core = true
[[as]]
ia = "1-ff00:0:111"
[[as]]
ia = "1-ff00:0:112"
[[link]]
a = "1-ff00:0:110#1"
b = "1-ff00:0:111#1"
[[link]]
a = "1-ff00:0:110#2"
b = "1-ff00:0:112#1"
[[link]]
a = "1-ff00:0:111#2"
b = "1-ff00:0:112#2"
"#;
/// Longest one xbench run may take before it counts as failed.
const XBENCH_LIMIT: Duration = Duration::from_secs(90);
const AS_A: &str = "1-ff00:0:111";
const AS_B: &str = "1-ff00:0:112";

fn ia(s: &str) -> IsdAsn {
    s.parse().expect("valid ISD-AS")
}

fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Pending-bytes limit of the bench nodes: the Go subscriber of nats-xbench
/// drains slower than a TCP route delivers 1 KiB messages, and at the
/// default 64 MiB its server cuts it as a slow consumer mid-run. The route
/// is what is measured, so give the subscriber's server room for the whole
/// run; the publisher's server keeps the default, so its route outbound
/// (what a flood backs up) has the usual limit.
const BENCH_MAX_PENDING: usize = 512 << 20;

fn max_pending(subscriber_side: bool) -> usize {
    if subscriber_side {
        BENCH_MAX_PENDING
    } else {
        Options::default().max_pending
    }
}

#[path = "../tests/harness/pki.rs"]
mod pki;

/// Cluster TLS files for the TCP bench node `name` (issued by `ca` into `dir`).
fn tcp_tls(ca: &pki::TestCa, dir: &Dir, name: &str) -> TlsOpts {
    let (cert, key) = ca.issue(&dir.0, name, &["127.0.0.1", "localhost"]);
    TlsOpts {
        cert_file: Some(cert),
        key_file: Some(key),
        ca_file: Some(ca.write(&dir.0, &format!("{name}-ca.pem"))),
        verify: false,
        timeout: None,
    }
}

fn tcp_node(name: &str, routes: Vec<RouteUrl>, sub_side: bool, tls: Option<TlsOpts>) -> Options {
    Options {
        server_name: Some(name.into()),
        max_pending: max_pending(sub_side),
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("bench".into()),
            listen: Some(ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: -1,
            }),
            routes,
            tls,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn scion_node(
    name: &str,
    emu: &EmuHandle,
    dir: &Dir,
    as_: &str,
    routes: Vec<RouteUrl>,
    sub_side: bool,
) -> Options {
    let topo = dir.0.join(format!("{}.json", as_.replace(':', "_")));
    std::fs::write(&topo, emu.topology_json(ia(as_)).expect("AS in topology")).expect("write");
    Options {
        server_name: Some(name.into()),
        max_pending: max_pending(sub_side),
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("bench".into()),
            listen: Some(ListenAddr::Scion {
                isd_as: as_.into(),
                ip: localhost(),
                port: 0,
            }),
            routes,
            ..Default::default()
        },
        scion: Some(ScionOpts {
            path_preference: vec!["latency".into()],
            daemon: Some(emu.daemon_addr(ia(as_)).expect("daemon").to_string()),
            topology: Some(topo),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn wait_routes(h: &ServerHandle) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.state.cluster.num_routes() < 1 {
        assert!(Instant::now() < deadline, "route did not form");
        sleep(Duration::from_millis(20)).await;
    }
}

/// One nats-xbench run; `Err` carries what it printed when it did not
/// finish (timeout, or killed after [`XBENCH_LIMIT`]).
fn xbench(bin: &str, a: SocketAddr, b: SocketAddr, n: usize, size: usize) -> Result<f64, String> {
    let mut child = std::process::Command::new(bin)
        .args([
            "-p",
            &format!("nats://{a}"),
            "-s",
            &format!("nats://{b}"),
            "-n",
            &n.to_string(),
            "-ms",
            &size.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{bin}: {e}"))?;
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > XBENCH_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {XBENCH_LIMIT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // "... end-to-end sub 123456 msgs/s ..."
    let parsed = text.find("end-to-end sub ").and_then(|i| {
        text[i + 15..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
    });
    parsed.ok_or_else(|| text.trim().to_string())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// One outage: 1 kHz stream, cut after 300 messages, 1000 messages in all.
/// Returns (longest gap, lost or reordered).
async fn outage(
    a: &ServerHandle,
    b: &ServerHandle,
    emu: &EmuHandle,
    cut: &str,
) -> (Duration, bool) {
    let r = stream(a, b, emu, 1000, &[(300, cut)]).await;
    (r.gap, r.bad)
}

/// What one sequenced stream saw.
struct StreamRun {
    /// Longest time between two deliveries.
    gap: Duration,
    /// Something lost, duplicated or reordered.
    bad: bool,
    /// When each emulator command was sent.
    commands_at: Vec<Instant>,
    /// When each message arrived, by number (up to the first bad one).
    arrivals: Vec<Instant>,
}

/// `n` sequenced messages at 1 kHz from A to B, each command of `script` sent just before
/// the message whose number goes with it.
async fn stream(
    a: &ServerHandle,
    b: &ServerHandle,
    emu: &EmuHandle,
    n: u32,
    script: &[(u32, &str)],
) -> StreamRun {
    let na = async_nats::connect(a.client_addr.to_string())
        .await
        .expect("connect a");
    let nb = async_nats::connect(b.client_addr.to_string())
        .await
        .expect("connect b");
    let mut sub = nb.subscribe("gap").await.expect("sub");
    nb.flush().await.expect("flush");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.state.sublist.read().expect("lock").has_interest("gap") && Instant::now() < deadline {
        sleep(Duration::from_millis(5)).await;
    }
    let control = emu.control_addr();
    let script: Vec<(u32, String)> = script.iter().map(|(i, c)| (*i, c.to_string())).collect();
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut commands_at = Vec::new();
        for i in 0..n {
            tick.tick().await;
            for (_, cmd) in script.iter().filter(|(at, _)| *at == i) {
                let _ = send_control(control, cmd).await;
                commands_at.push(Instant::now());
            }
            let _ = na.publish("gap", i.to_string().into()).await;
        }
        let _ = na.flush().await;
        commands_at
    });
    let mut next = 0u32;
    let mut bad = false;
    let mut last = Instant::now();
    let mut gap = Duration::ZERO;
    let mut arrivals = Vec::with_capacity(n as usize);
    while next < n {
        match timeout(Duration::from_secs(5), sub.next()).await {
            Ok(Some(m)) => {
                let v: u32 = std::str::from_utf8(&m.payload)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u32::MAX);
                if v != next {
                    bad = true;
                }
                let now = Instant::now();
                if next > 0 {
                    gap = gap.max(now - last);
                }
                if !bad {
                    arrivals.push(now);
                }
                last = now;
                next = v.saturating_add(1);
            }
            _ => {
                bad = true;
                break;
            }
        }
    }
    let commands_at = publisher.await.unwrap_or_default();
    StreamRun {
        gap,
        bad,
        commands_at,
        arrivals,
    }
}

/// Bench settings from the command line.
struct Args {
    rounds: usize,
    runs: usize,
    sizes: Vec<usize>,
    flat: bool,
    failover: bool,
    throughput: bool,
    /// One-way latency set on every emulated link for the throughput part.
    latency_ms: Option<f64>,
    /// Publisher on B (the dialing side) instead of A.
    reverse: bool,
    /// Skip the TCP runs (for profiling the SCION route alone).
    scion_only: bool,
    /// Messages per xbench run (default 500k for <= 64 B, else 200k).
    msgs: Option<usize>,
    /// MTU of every emulated AS and link (default: the topology's, 1472).
    mtu: Option<u16>,
    /// Both SCION brokers in one AS (no border router between them).
    same_as: bool,
    /// TLS on the TCP route.
    tcp_tls: bool,
    xbench: String,
}

const USAGE: &str = "usage: scion_bench [--rounds N] [--runs N] [--sizes 16,1024] [--msgs N] \
[--flat] [--latency MS] [--reverse] [--no-failover] [--no-throughput] [--scion-only] \
[--mtu BYTES] [--same-as] [--tcp-tls] [--xbench PATH]  (details: the header of broker/examples/scion_bench.rs)";

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let mut a = Args {
        rounds: 10,
        runs: 3,
        sizes: vec![16, 1024],
        flat: false,
        failover: true,
        throughput: true,
        msgs: None,
        reverse: false,
        scion_only: false,
        latency_ms: None,
        mtu: None,
        same_as: false,
        tcp_tls: false,
        xbench: std::env::var("NATS_PEERS_BIN")
            .map(|d| format!("{d}/nats-xbench"))
            .unwrap_or_else(|_| {
                let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
                format!("{home}/.cache/nats-peers/bin/nats-xbench")
            }),
    };
    /// A flag's value, or exit 2 naming the flag (no silent default for a typo).
    fn value<T: std::str::FromStr>(flag: &str, val: Option<&String>) -> T {
        match val.map(|v| (v, v.trim().parse::<T>())) {
            Some((_, Ok(x))) => x,
            Some((v, Err(_))) => {
                eprintln!("{flag} {v:?}: not a valid value (see --help)");
                std::process::exit(2);
            }
            None => {
                eprintln!("{flag} needs a value (see --help)");
                std::process::exit(2);
            }
        }
    }
    let mut i = 1;
    while i < args.len() {
        let val = args.get(i + 1);
        let flag = args[i].as_str();
        match flag {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--rounds" => a.rounds = value(flag, val),
            "--runs" => a.runs = value(flag, val),
            "--sizes" => {
                let v: String = value(flag, val);
                a.sizes = v
                    .split(',')
                    .map(|x| value::<usize>(flag, Some(&x.to_string())))
                    .collect();
            }
            "--latency" => a.latency_ms = Some(value(flag, val)),
            "--msgs" => a.msgs = Some(value(flag, val)),
            "--mtu" => a.mtu = Some(value(flag, val)),
            "--xbench" => a.xbench = value(flag, val),
            "--flat" => {
                a.flat = true;
                i += 1;
                continue;
            }
            "--reverse" => {
                a.reverse = true;
                i += 1;
                continue;
            }
            "--same-as" => {
                a.same_as = true;
                i += 1;
                continue;
            }
            "--tcp-tls" => {
                a.tcp_tls = true;
                i += 1;
                continue;
            }
            "--scion-only" => {
                a.scion_only = true;
                i += 1;
                continue;
            }
            "--no-failover" => {
                a.failover = false;
                i += 1;
                continue;
            }
            "--no-throughput" => {
                a.throughput = false;
                i += 1;
                continue;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    a
}

/// Two SCION nodes (A in 1-ff00:0:111, B dialing A from 1-ff00:0:112) on
/// an emulator running `topo`.
struct ScionPair {
    emu: EmuHandle,
    a: ServerHandle,
    b: ServerHandle,
    _dir: Dir,
}

/// `reverse`: the subscriber will be on A (see [`BENCH_MAX_PENDING`]).
async fn scion_pair(topo: &str, tag: &str, reverse: bool, as_b: &str) -> ScionPair {
    let emu = Emulator::start(
        Topology::from_toml(topo).expect("topology"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let dir = Dir(std::env::temp_dir().join(format!("scion-bench-{}-{tag}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("tmp dir");
    let a = start(scion_node(
        &format!("{tag}-a"),
        &emu,
        &dir,
        AS_A,
        vec![],
        reverse,
    ))
    .await
    .expect("scion a");
    let sra: ScionAddr = a
        .state
        .scion
        .lock()
        .expect("lock")
        .route_endpoint
        .as_ref()
        .expect("route endpoint")
        .local_addr();
    let b = start(scion_node(
        &format!("{tag}-b"),
        &emu,
        &dir,
        as_b,
        vec![RouteUrl {
            url: format!("nats-route://{sra}"),
            user: None,
            password: None,
            target: RouteTarget::Scion {
                isd_as: sra.ia.to_string(),
                ip: sra.ip,
                port: sra.port,
            },
        }],
        !reverse,
    ))
    .await
    .expect("scion b");
    wait_routes(&b).await;
    wait_routes(&a).await;
    ScionPair {
        emu,
        a,
        b,
        _dir: dir,
    }
}

/// Connection ids of a server's routes: a change means a route was cut and
/// formed again.
fn route_ids(h: &ServerHandle) -> Vec<u64> {
    let mut v: Vec<u64> = h
        .state
        .cluster
        .routes()
        .iter()
        .map(|r| r.shared.cid)
        .collect();
    v.sort_unstable();
    v
}

/// CPU time (user + system) this process has used: brokers and emulator,
/// not the xbench clients. Per message it is a cost figure that the load of
/// other processes on the machine does not distort much.
fn cpu_time() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// CPU time of finished child processes (the xbench clients).
fn children_cpu_time() -> Duration {
    rusage(libc::RUSAGE_CHILDREN)
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs xbench off the runtime's worker threads (the brokers and the
/// emulator run on them) and notes whether the route survived.
async fn xbench_run(
    bin: &str,
    a: &ServerHandle,
    b: &ServerHandle,
    n: usize,
    size: usize,
) -> (Result<f64, String>, bool, f64, f64) {
    let before = (route_ids(a), route_ids(b));
    let (bin, pa, pb) = (bin.to_string(), a.client_addr, b.client_addr);
    let (cpu, kids) = (cpu_time(), children_cpu_time());
    let r = tokio::task::spawn_blocking(move || xbench(&bin, pa, pb, n, size))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let cpu = cpu_time().saturating_sub(cpu);
    let kids = children_cpu_time().saturating_sub(kids);
    let kept = before == (route_ids(a), route_ids(b));
    let per_msg = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    (r, kept, per_msg(cpu), per_msg(kids))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args = parse_args();
    let xb = args.xbench.clone();

    if args.throughput {
        let tls_dir =
            Dir(std::env::temp_dir().join(format!("scion-bench-tls-{}", std::process::id())));
        let tls = args.tcp_tls.then(|| {
            std::fs::create_dir_all(&tls_dir.0).expect("tls dir");
            let ca = pki::TestCa::new("bench");
            (
                tcp_tls(&ca, &tls_dir, "tcp-a"),
                tcp_tls(&ca, &tls_dir, "tcp-b"),
            )
        });
        let (tls_a, tls_b) = tls.unzip();
        let tcp_kind = if args.tcp_tls { "TCP+TLS" } else { "TCP" };
        let ta = start(tcp_node("tcp-a", vec![], args.reverse, tls_a))
            .await
            .expect("tcp a");
        let ra = *ta.state.cluster.listen_addr.lock().expect("lock");
        let ra = ra.expect("route port");
        let tb = start(tcp_node(
            "tcp-b",
            vec![RouteUrl {
                url: format!("nats-route://{ra}"),
                user: None,
                password: None,
                target: RouteTarget::Tcp {
                    host: ra.ip().to_string(),
                    port: ra.port(),
                },
            }],
            !args.reverse,
            tls_b,
        ))
        .await
        .expect("tcp b");
        wait_routes(&tb).await;
        let topo = if args.flat { TOPO_FLAT } else { TOPO };
        let topo = match args.mtu {
            Some(mtu) => scion_transport::emu::topo::with_mtu(topo, mtu),
            None => topo.to_string(),
        };
        let sp = scion_pair(
            &topo,
            "tp",
            args.reverse,
            if args.same_as { AS_A } else { AS_B },
        )
        .await;
        if let Some(ms) = args.latency_ms {
            for link in ["1-ff00:0:111#2", "1-ff00:0:110#1", "1-ff00:0:110#2"] {
                sp.emu
                    .command(&format!("link {link} latency {ms}"))
                    .expect("latency");
            }
            println!("(every emulated link set to {ms} ms one way; the TCP route stays on bare loopback)");
        }

        println!(
            "## Route throughput (nats-xbench, publisher on {}), msgs/s, median of {} runs, emulator {}",
            if args.reverse {
                "B (dialer), subscriber on A"
            } else {
                "A (acceptor), subscriber on B"
            },
            args.runs,
            if args.flat {
                "with shaping off (no link latency)"
            } else {
                "running two-paths.toml (link latency on, no bandwidth limit)"
            }
        );
        println!();
        println!("| size | {tcp_kind} route | SCION route | SCION/{tcp_kind} (median of run pairs) | CPU ns/msg {tcp_kind} | CPU ns/msg SCION | CPU ns/msg xbench {tcp_kind}, SCION | runs ok {tcp_kind}, SCION | routes cut {tcp_kind}, SCION |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for &size in &args.sizes {
            let n = args
                .msgs
                .unwrap_or(if size <= 64 { 500_000 } else { 200_000 });
            let (mut t, mut s) = (Vec::new(), Vec::new());
            let (mut tcpu, mut scpu) = (Vec::new(), Vec::new());
            let (mut tcut, mut scut) = (0, 0);
            let (mut tkid, mut skid) = (Vec::new(), Vec::new());
            // SCION/TCP of each run's adjacent pair: the host's speed drifts over minutes,
            // and a pair shares most of that drift.
            let mut ratios = Vec::new();
            for _ in 0..args.runs {
                let (tn, sn) = (t.len(), s.len());
                let pairs = if args.reverse {
                    [(false, &tb, &ta), (true, &sp.b, &sp.a)]
                } else {
                    [(false, &ta, &tb), (true, &sp.a, &sp.b)]
                };
                for (scion, a, b) in pairs {
                    if args.scion_only && !scion {
                        continue;
                    }
                    let st0 = sp.emu.stats();
                    let (r, kept, ns, kid_ns) = xbench_run(&xb, a, b, n, size).await;
                    if scion {
                        let st1 = sp.emu.stats();
                        eprintln!(
                            "emulator: forwarded {} delivered {} dropped {}",
                            st1.forwarded - st0.forwarded,
                            st1.delivered - st0.delivered,
                            st1.dropped - st0.dropped
                        );
                    }
                    let kind = if scion { "SCION" } else { tcp_kind };
                    match r {
                        Ok(v) => {
                            eprintln!("{kind} {size} B: {v:.0} msgs/s, {ns:.0} ns CPU/msg, xbench {kid_ns:.0} ns CPU/msg");
                            if scion {
                                s.push(v);
                                scpu.push(ns);
                                skid.push(kid_ns);
                            } else {
                                t.push(v);
                                tcpu.push(ns);
                                tkid.push(kid_ns);
                            }
                        }
                        Err(e) => eprintln!("{kind} {size} B: failed: {e}"),
                    }
                    if !kept {
                        eprintln!("{kind} {size} B: the route was cut and formed again");
                        if scion {
                            scut += 1
                        } else {
                            tcut += 1
                        }
                        wait_routes(a).await;
                        wait_routes(b).await;
                    }
                }
                if t.len() > tn && s.len() > sn {
                    ratios.push(s[sn] / t[tn]);
                }
            }
            let (nt, ns) = (t.len(), s.len());
            let (mt, ms) = (median(&mut t), median(&mut s));
            let (ct, cs) = (median(&mut tcpu), median(&mut scpu));
            let (kt, ks) = (median(&mut tkid), median(&mut skid));
            println!(
                "| {size} B | {mt:.0} | {ms:.0} | {:.2} | {ct:.0} | {cs:.0} | {kt:.0}, {ks:.0} | {nt}/{runs}, {ns}/{runs} | {tcut}, {scut} |",
                median(&mut ratios),
                runs = args.runs,
            );
        }
    }

    if !args.failover {
        return;
    }
    let rounds = args.rounds;
    let sp = scion_pair(TOPO, "fo", false, AS_B).await;
    let (sa, sb, emu) = (&sp.a, &sp.b, &sp.emu);
    println!();
    println!("## Failover gap across the SCION route (1 kHz stream, {rounds} cuts each, two-paths.toml: direct path 1 ms per link)");
    println!();
    println!("| cut | p50 | p99 | max | rounds with loss/dup/reorder |");
    println!("|---|---|---|---|---|");
    for (kind, cmd, restore) in [
        (
            "SCMP-signalled (link down)",
            "link 1-ff00:0:111#2 down",
            "link 1-ff00:0:111#2 up",
        ),
        (
            "silent blackhole",
            "link 1-ff00:0:111#2 blackhole",
            "link 1-ff00:0:111#2 up",
        ),
    ] {
        let mut gaps = Vec::new();
        let mut bad = 0;
        for _ in 0..rounds {
            let (g, b) = outage(sa, sb, emu, cmd).await;
            gaps.push(g.as_secs_f64() * 1e3);
            bad += usize::from(b);
            let _ = send_control(emu.control_addr(), restore).await;
            // Let both ends fail back to the direct path (hysteresis 2 s).
            sleep(Duration::from_millis(3500)).await;
        }
        println!(
            "| {kind} | {:.1} ms | {:.1} ms | {:.1} ms | {bad} |",
            pct(&mut gaps, 0.5),
            pct(&mut gaps, 0.99),
            pct(&mut gaps, 1.0)
        );
    }

    // Every path gone at once (both of A's links blackholed) for OUTAGE_MS, then back:
    // nothing can fail over, and what matters is how soon the stream resumes once a path
    // is back, and that nothing is lost.
    println!();
    println!("## Total outage across the SCION route (1 kHz stream, every path silently gone for {OUTAGE_MS} ms, {rounds} rounds)");
    println!();
    println!("| after the paths are back | p50 | p99 | max | rounds with loss/dup/reorder |");
    println!("|---|---|---|---|---|");
    let (mut first, mut backlog) = (Vec::new(), Vec::new());
    let mut bad = 0;
    let back = 300 + OUTAGE_MS;
    for _ in 0..rounds {
        let r = stream(
            sa,
            sb,
            emu,
            back + 500,
            &[
                (300, "link 1-ff00:0:111#2 blackhole"),
                (300, "link 1-ff00:0:111#1 blackhole"),
                (back, "link 1-ff00:0:111#2 up"),
                (back, "link 1-ff00:0:111#1 up"),
            ],
        )
        .await;
        let restored = r.commands_at.get(3).copied();
        let first_after =
            restored.and_then(|t| r.arrivals.iter().find(|a| **a > t).map(|a| *a - t));
        let backlog_after = restored.and_then(|t| {
            r.arrivals
                .get(back as usize)
                .map(|a| a.saturating_duration_since(t))
        });
        match (first_after, backlog_after, r.bad) {
            (Some(f), Some(b), false) => {
                first.push(f.as_secs_f64() * 1e3);
                backlog.push(b.as_secs_f64() * 1e3);
            }
            _ => bad += 1,
        }
        // Let both ends settle on the direct path again.
        sleep(Duration::from_millis(3500)).await;
    }
    for (what, v) in [
        ("first delivery", &mut first),
        ("backlog delivered", &mut backlog),
    ] {
        println!(
            "| {what} | {:.1} ms | {:.1} ms | {:.1} ms | {bad} |",
            pct(v, 0.5),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
}

/// Length of the total outage of the failover benchmark, in ms (= messages at 1 kHz).
const OUTAGE_MS: u32 = 2000;
