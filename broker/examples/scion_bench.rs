//! Benchmarks for the SCION route links (issue 5), run side by side in one
//! process on loopback:
//!
//! 1. route throughput: `nats-xbench` (publisher on A, subscriber on B) across
//!    a TCP route and across a QUIC/SCION route through the emulator with
//!    shaping off, 16 B and 1 KiB messages;
//! 2. failover gap: a 1 kHz sequenced stream across the SCION route while
//!    the active link is cut, SCMP-signalled (`down`) and silently
//!    (`blackhole`), repeated; p50/p99/max of the longest delivery gap, and
//!    whether anything was lost or duplicated.
//!
//! ```sh
//! cargo run --release -p broker --example scion_bench -- [--rounds N] [--xbench PATH]
//! ```
//! `--xbench` defaults to `$NATS_PEERS_BIN/nats-xbench` or the folder
//! printed by `shared/peers/setup.sh`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use broker::options::{ClusterOpts, ListenAddr, Options, RouteTarget, RouteUrl, ScionOpts};
use broker::server::{start, ServerHandle};
use futures::StreamExt;
use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::emu::{send_control, EmuHandle, EmuOptions, Emulator, Topology};
use tokio::time::{sleep, timeout, Instant};

const TOPO: &str = include_str!("../../scion-transport/emu/two-paths.toml");
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

fn tcp_node(name: &str, routes: Vec<RouteUrl>) -> Options {
    Options {
        server_name: Some(name.into()),
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("bench".into()),
            listen: Some(ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: -1,
            }),
            routes,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn scion_node(name: &str, emu: &EmuHandle, dir: &Dir, as_: &str, routes: Vec<RouteUrl>) -> Options {
    let topo = dir.0.join(format!("{}.json", as_.replace(':', "_")));
    std::fs::write(&topo, emu.topology_json(ia(as_)).expect("AS in topology")).expect("write");
    Options {
        server_name: Some(name.into()),
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

fn xbench(bin: &str, a: &ServerHandle, b: &ServerHandle, n: usize, size: usize) -> Option<f64> {
    let out = std::process::Command::new(bin)
        .args([
            "-p",
            &format!("nats://{}", a.client_addr),
            "-s",
            &format!("nats://{}", b.client_addr),
            "-n",
            &n.to_string(),
            "-ms",
            &size.to_string(),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "... end-to-end sub 123456 msgs/s ..."
    let i = text.find("end-to-end sub ")?;
    text[i + 15..].split_whitespace().next()?.parse().ok()
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
    let cut = cut.to_string();
    let n = 1000u32;
    let publisher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for i in 0..n {
            tick.tick().await;
            if i == 300 {
                let _ = send_control(control, &cut).await;
            }
            let _ = na.publish("gap", i.to_string().into()).await;
        }
        let _ = na.flush().await;
    });
    let mut next = 0u32;
    let mut bad = false;
    let mut last = Instant::now();
    let mut gap = Duration::ZERO;
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
                last = now;
                next = v.saturating_add(1);
            }
            _ => {
                bad = true;
                break;
            }
        }
    }
    let _ = publisher.await;
    (gap, bad)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut rounds = 10usize;
    let mut xb: Option<String> = std::env::var("NATS_PEERS_BIN")
        .ok()
        .map(|d| format!("{d}/nats-xbench"));
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--rounds" => {
                rounds = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(rounds);
                i += 1;
            }
            "--xbench" => {
                xb = args.get(i + 1).cloned();
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let xb = xb.unwrap_or_else(|| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/nats-peers/bin/nats-xbench")
    });

    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topology"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let dir = Dir(std::env::temp_dir().join(format!("scion-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("tmp dir");

    let ta = start(tcp_node("tcp-a", vec![])).await.expect("tcp a");
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
    ))
    .await
    .expect("tcp b");
    wait_routes(&tb).await;

    let sa = start(scion_node("scion-a", &emu, &dir, AS_A, vec![]))
        .await
        .expect("scion a");
    let sra: ScionAddr = sa
        .state
        .scion
        .lock()
        .expect("lock")
        .route_endpoint
        .as_ref()
        .expect("route endpoint")
        .local_addr();
    let sb = start(scion_node(
        "scion-b",
        &emu,
        &dir,
        AS_B,
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
    ))
    .await
    .expect("scion b");
    wait_routes(&sb).await;

    println!("## Route throughput (nats-xbench, publisher on A, subscriber on B), msgs/s, median of {} runs", 3);
    println!();
    println!("| size | TCP route | SCION route | SCION/TCP |");
    println!("|---|---|---|---|");
    for (size, n) in [(16usize, 500_000usize), (1024, 200_000)] {
        let mut t = Vec::new();
        let mut s = Vec::new();
        for _ in 0..3 {
            if let Some(v) = xbench(&xb, &ta, &tb, n, size) {
                t.push(v);
            }
            if let Some(v) = xbench(&xb, &sa, &sb, n, size) {
                s.push(v);
            }
        }
        let (mt, ms) = (median(&mut t), median(&mut s));
        println!("| {size} B | {mt:.0} | {ms:.0} | {:.2} |", ms / mt);
    }

    println!();
    println!("## Failover gap across the SCION route (1 kHz stream, {rounds} cuts each)");
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
            let (g, b) = outage(&sa, &sb, &emu, cmd).await;
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
    println!();
    println!("Path RTT on the direct link: 2 x 1 ms emulated latency; shaping off otherwise.");
}
