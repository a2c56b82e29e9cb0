//! Brokers in two SCION ASes of the emulator, routed over QUIC/SCION: a 1 kHz
//! sequenced stream keeps every message, in order, through an SCMP-signalled
//! link cut and through a silent blackhole; clients reach a SCION client
//! listener through `broker proxy`; a flood across a bandwidth-limited SCION
//! route backs up without the route being cut or losing a message.

use std::time::Duration;

use broker::options::{ClusterOpts, ListenAddr, Options, RouteUrl, ScionOpts};
use broker::server::{start, ServerHandle};
use futures::StreamExt;
use scion_transport::address::ScionAddr;
use scion_transport::emu::{EmuHandle, EmuOptions, Emulator, Topology};
use tokio::time::{sleep, timeout, Instant};

mod scion_common;
use scion_common::*;

fn scion_opts(emu: &EmuHandle, dir: &TempDir, as_: &str, pref: &str) -> ScionOpts {
    let topo = dir.0.join(format!("{}.json", as_.replace(':', "_")));
    std::fs::write(&topo, emu.topology_json(ia(as_)).unwrap()).unwrap();
    ScionOpts {
        path_preference: pref.split(',').map(str::to_string).collect(),
        daemon: Some(emu.daemon_addr(ia(as_)).unwrap().to_string()),
        topology: Some(topo),
        path_header: true,
        ..Default::default()
    }
}

fn node(
    name: &str,
    emu: &EmuHandle,
    dir: &TempDir,
    as_: &str,
    routes: Vec<RouteUrl>,
    pref: &str,
) -> Options {
    Options {
        server_name: Some(name.into()),
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("c1".into()),
            listen: Some(ListenAddr::Scion {
                isd_as: as_.into(),
                ip: localhost(),
                port: 0,
            }),
            routes,
            ..Default::default()
        },
        scion: Some(scion_opts(emu, dir, as_, pref)),
        ..Default::default()
    }
}

async fn wait_interest(h: &ServerHandle, subject: &str) {
    let deadline = Instant::now() + WAIT;
    while !h.state.sublist.read().unwrap().has_interest(subject) {
        assert!(Instant::now() < deadline, "no interest on {}", h.state.name);
        sleep(Duration::from_millis(10)).await;
    }
}

struct Pair {
    emu: EmuHandle,
    a: ServerHandle,
    b: ServerHandle,
    _dir: TempDir,
}

async fn pair(pref: &str) -> Pair {
    pair_with(pref, |_| {}).await
}

/// Like [`pair`], with `tweak` applied to A's options (the publisher's side,
/// which owns the route's outbound buffer).
async fn pair_with(pref: &str, tweak: impl FnOnce(&mut Options)) -> Pair {
    pair_on(TOPO, pref, tweak).await
}

/// [`pair_with`] on the emulated topology `topo` (ASes 111 and 112 as in [`TOPO`]).
async fn pair_on(topo: &str, pref: &str, tweak: impl FnOnce(&mut Options)) -> Pair {
    let emu = Emulator::start(Topology::from_toml(topo).unwrap(), EmuOptions::default())
        .await
        .unwrap();
    let dir = TempDir(std::env::temp_dir().join(format!(
        "broker-scion-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut oa = node("a", &emu, &dir, AS_A, vec![], pref);
    tweak(&mut oa);
    let a = start(oa).await.expect("start a");
    let ra = route_endpoint(&a);
    let b = start(node("b", &emu, &dir, AS_B, vec![scion_route(ra)], pref))
        .await
        .expect("start b");
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    Pair {
        emu,
        a,
        b,
        _dir: dir,
    }
}

/// Publishes `n` sequenced messages at ~1 kHz on A while `cut` runs after
/// `cut_after` messages; returns (received in order, max gap).
async fn sequenced_stream(p: &Pair, n: u32, cut_after: u32, cut: &str) -> (Duration, Vec<String>) {
    let s = sequenced_stream_with(p, n, &[(cut_after, cut)]).await;
    (s.max_gap, s.tags)
}

/// What `sequenced_stream_with` saw.
struct StreamRun {
    /// Longest time between two deliveries.
    max_gap: Duration,
    /// The `Nats-Scion-Path` values, each change once.
    tags: Vec<String>,
    /// When each command of the script was sent.
    commands_at: Vec<Instant>,
    /// When each message arrived, by number.
    arrivals: Vec<Instant>,
}

/// Like `sequenced_stream`, with each emulator command of `script` sent just before the
/// message whose number goes with it.
async fn sequenced_stream_with(p: &Pair, n: u32, script: &[(u32, &str)]) -> StreamRun {
    let na = async_nats::connect(p.a.client_addr.to_string())
        .await
        .unwrap();
    let nb = async_nats::connect(p.b.client_addr.to_string())
        .await
        .unwrap();
    let mut sub = nb.subscribe("time.seq").await.unwrap();
    nb.flush().await.unwrap();
    wait_interest(&p.a, "time.seq").await;

    let publisher = {
        let na = na.clone();
        let script: Vec<(u32, String)> = script.iter().map(|(i, c)| (*i, c.to_string())).collect();
        let control = p.emu.control_addr();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let mut commands_at = Vec::new();
            for i in 0..n {
                tick.tick().await;
                for (_, cmd) in script.iter().filter(|(at, _)| *at == i) {
                    let r = scion_transport::emu::send_control(control, cmd).await;
                    assert!(r.is_ok(), "control: {r:?}");
                    commands_at.push(Instant::now());
                }
                na.publish("time.seq", i.to_string().into()).await.unwrap();
            }
            na.flush().await.unwrap();
            commands_at
        })
    };
    let mut next = 0u32;
    let mut last = Instant::now();
    let mut max_gap = Duration::ZERO;
    let mut tags: Vec<String> = Vec::new();
    let mut arrivals = Vec::with_capacity(n as usize);
    while next < n {
        let m = timeout(WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("stalled at {next} of {n}"))
            .unwrap();
        let v: u32 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        let tag = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Scion-Path"))
            .map(|v| v.as_str().to_string())
            .expect("messages over a SCION route carry Nats-Scion-Path");
        if tags.last() != Some(&tag) {
            tags.push(tag);
        }
        assert_eq!(v, next, "lost, duplicated or reordered");
        let now = Instant::now();
        if next > 0 {
            max_gap = max_gap.max(now - last);
        }
        last = now;
        arrivals.push(now);
        next += 1;
    }
    let commands_at = publisher.await.unwrap();
    // Nothing after the last one (no duplicates).
    assert!(timeout(Duration::from_millis(300), sub.next())
        .await
        .is_err());
    StreamRun {
        max_gap,
        tags,
        commands_at,
        arrivals,
    }
}

/// The hops of the path `from`'s route endpoint uses toward `to`'s.
fn active_hops(from: &ServerHandle, to: &ServerHandle) -> String {
    let ep = from
        .state
        .scion
        .lock()
        .unwrap()
        .route_endpoint
        .clone()
        .expect("SCION route endpoint");
    let stats = ep.path_stats(route_endpoint(to));
    let active = stats.iter().find(|c| c.active).expect("an active path");
    active.info.hop_sequence()
}

/// Where the preferences disagree: the direct link is quick (1 ms) but narrow (10 Mbit/s),
/// the path through the core AS slower (2 + 2 ms) but wide (1 Gbit/s).
const TOPO_FAST_NARROW: &str = r#"
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
latency_ms = 2
bandwidth_kbps = 1000000
[[link]]
a = "1-ff00:0:110#2"
b = "1-ff00:0:112#1"
latency_ms = 2
bandwidth_kbps = 1000000
[[link]]
a = "1-ff00:0:111#2"
b = "1-ff00:0:112#2"
latency_ms = 1
bandwidth_kbps = 10000
"#;

/// `path_preference` decides the route's path on both ends (the Go prototype applied it only
/// when dialling): `latency` takes the quick direct link, `bandwidth,latency` the wide path
/// through the core, from the daemon's metadata; either way messages cross.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_preference_picks_different_paths_on_both_ends() {
    for (pref, via_core) in [("latency", false), ("bandwidth,latency", true)] {
        let p = pair_on(TOPO_FAST_NARROW, pref, |_| {}).await;
        for (side, hops) in [
            ("dialer b", active_hops(&p.b, &p.a)),
            ("acceptor a", active_hops(&p.a, &p.b)),
        ] {
            assert_eq!(
                hops.contains("1-ff00:0:110"),
                via_core,
                "{pref}: {side} uses {hops}"
            );
        }
        let na = async_nats::connect(p.a.client_addr.to_string())
            .await
            .unwrap();
        let mut sub = na.subscribe("pref.t").await.unwrap();
        na.flush().await.unwrap();
        wait_interest(&p.b, "pref.t").await;
        let nb = async_nats::connect(p.b.client_addr.to_string())
            .await
            .unwrap();
        nb.publish("pref.t", pref.to_string().into()).await.unwrap();
        nb.flush().await.unwrap();
        let m = timeout(WAIT, sub.next())
            .await
            .expect("in time")
            .expect("msg");
        assert_eq!(&m.payload[..], pref.as_bytes());
    }
}

/// A latency rise on the active path moves the route to the better one, on both ends,
/// without losing, duplicating or reordering a message of the 1 kHz stream. The selector
/// judges a path by its minimum RTT over 5 s, so the switch comes a few seconds after the
/// change; the stream runs for 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_moves_to_the_better_path_when_latency_rises() {
    capture_logs("info");
    let p = pair("latency").await;
    for (from, to) in [(&p.b, &p.a), (&p.a, &p.b)] {
        let hops = active_hops(from, to);
        assert!(!hops.contains("1-ff00:0:110"), "starts direct: {hops}");
    }
    let (_gap, tags) = sequenced_stream(&p, 15_000, 500, "link 1-ff00:0:111#2 latency 40").await;
    for (side, from, to) in [("dialer b", &p.b, &p.a), ("acceptor a", &p.a, &p.b)] {
        let hops = active_hops(from, to);
        assert!(hops.contains("1-ff00:0:110"), "{side} still on {hops}");
    }
    // Messages forwarded after the switch name the new path.
    assert!(tags.len() >= 2, "one path tag only: {tags:?}");
}

fn active_link(p: &Pair) -> String {
    // With "latency", the direct 111#2 - 112#2 link (1 ms) beats the path
    // through the core (4 ms).
    let ep = route_scion_endpoint(&p.b);
    let ra = route_endpoint(&p.a);
    let stats = ep.path_stats(ra);
    let active = stats.iter().find(|c| c.active).expect("an active path");
    active.info.hop_sequence()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_survives_scmp_signalled_cut() {
    capture_logs("info");
    let p = pair("latency").await;
    let before = active_link(&p);
    assert!(
        !before.contains("1-ff00:0:110"),
        "direct path first: {before}"
    );
    let (gap, tags) = sequenced_stream(&p, 2000, 700, "link 1-ff00:0:111#2 down").await;
    let after = active_link(&p);
    assert_ne!(before, after, "switched to the path through the core");
    assert_eq!(tags.len(), 2, "the path header changed once: {tags:?}");
    eprintln!("SCMP cut: max delivery gap {gap:?}");
    // Each switch is one line (the transport's), kebab-case cause, failures at WARN.
    let a_to_b = format!("path to {} switched:", route_endpoint(&p.b));
    let logs = logs();
    let switches: Vec<&str> = logs.lines().filter(|l| l.contains("switched")).collect();
    let scmp: Vec<&&str> = switches
        .iter()
        .filter(|l| l.contains(&a_to_b) && l.contains("cause=scmp-down"))
        .collect();
    assert_eq!(scmp.len(), 1, "one line for A's SCMP switch: {switches:#?}");
    assert!(scmp[0].contains("WARN"), "{}", scmp[0]);
    for l in &switches {
        let cause = l.split("cause=").nth(1).unwrap_or("");
        assert!(
            cause.starts_with(|c: char| c.is_ascii_lowercase()),
            "kebab-case cause: {l}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_survives_silent_blackhole() {
    capture_logs("info");
    let p = pair("latency").await;
    let before = active_link(&p);
    let (gap, tags) = sequenced_stream(&p, 2000, 700, "link 1-ff00:0:111#2 blackhole").await;
    let after = active_link(&p);
    assert_ne!(before, after);
    assert!(tags.len() >= 2, "the path header changed: {tags:?}");
    eprintln!("blackhole: max delivery gap {gap:?}");
    // No SCMP tells of a blackhole: A's switch is found by lost probes, logged as a failover
    // with its gap (how fast is for the benchmark, scion_bench).
    let a_to_b = format!("path to {} switched:", route_endpoint(&p.b));
    let logs = logs();
    let lost: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&a_to_b) && l.contains("cause=probe-loss"))
        .collect();
    // (At least one: tests run side by side and ports get reused, so an earlier test's line
    // may name the same address.)
    assert!(!lost.is_empty(), "a probe-loss switch line for A: {logs}");
    let line = lost[lost.len() - 1];
    assert!(line.contains("WARN"), "{line}");
    let gap_field = line.split("gap=").nth(1).unwrap_or("");
    assert!(
        gap_field.starts_with(|c: char| c.is_ascii_digit()),
        "the gap is measured: {line}"
    );
}

/// A configured SCION route to an address where nothing answers: while the QUIC handshake
/// waits, the endpoint's probes go unanswered on every path and it tries them in turn, but a
/// peer that never answered on any path says nothing about the paths, so none of that is
/// logged as a path failover (WRN); the dial error names the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_is_not_logged_as_path_failovers() {
    capture_logs("info");
    let emu = Emulator::start(Topology::from_toml(TOPO).unwrap(), EmuOptions::default())
        .await
        .unwrap();
    let dir = temp_dir("silent-peer");
    // A socket in B's AS (dispatched range) that receives and never answers.
    let silent = (32_500..32_767)
        .rev()
        .find_map(|port| std::net::UdpSocket::bind((localhost(), port)).ok())
        .expect("a free port in the dispatched range");
    let dead = ScionAddr {
        ia: ia(AS_B),
        ip: localhost(),
        port: silent.local_addr().unwrap().port(),
    };
    let a = start(node(
        "a",
        &emu,
        &dir,
        AS_A,
        vec![scion_route(dead)],
        "latency",
    ))
    .await
    .expect("start a");
    let dial_error = format!("dial scion {dead}: i/o timeout");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !logs().contains(&dial_error) {
        assert!(Instant::now() < deadline, "no {dial_error:?}:\n{}", logs());
        sleep(Duration::from_millis(50)).await;
    }
    let to_dead = format!("path to {dead} switched:");
    let logs = logs();
    let failovers: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&to_dead) && l.contains("WARN"))
        .collect();
    assert!(failovers.is_empty(), "{failovers:#?}");
    a.shutdown().await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_client_through_proxy_to_scion_listener() {
    let emu = Emulator::start(Topology::from_toml(TOPO).unwrap(), EmuOptions::default())
        .await
        .unwrap();
    let dir = TempDir(std::env::temp_dir().join(format!(
        "broker-proxy-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut o = node("s", &emu, &dir, AS_A, vec![], "latency");
    o.cluster = ClusterOpts::default();
    o.scion_listen = Some(ListenAddr::Scion {
        isd_as: AS_A.into(),
        ip: localhost(),
        port: 0,
    });
    let srv = start(o).await.unwrap();
    let upstream = srv
        .state
        .scion
        .lock()
        .unwrap()
        .client_endpoint
        .as_ref()
        .unwrap()
        .local_addr();
    let so = scion_opts(&emu, &dir, AS_B, "latency");
    let proxy = broker::proxy::start(broker::proxy::ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
        more_upstreams: Vec::new(),
        local: ScionAddr {
            ia: ia(AS_B),
            ip: localhost(),
            port: 0,
        },
        daemon: so.daemon.clone(),
        topology: so.topology.clone(),
        path_preference: None,
    })
    .await
    .unwrap();
    // One client over SCION (through the proxy), one over TCP directly.
    let over_scion = timeout(WAIT, async_nats::connect(proxy.listen.to_string()))
        .await
        .unwrap()
        .unwrap();
    let direct = async_nats::connect(srv.client_addr.to_string())
        .await
        .unwrap();
    let mut sub = over_scion.subscribe("p.>").await.unwrap();
    over_scion.flush().await.unwrap();
    wait_interest(&srv, "p.0").await;
    for i in 0..50 {
        direct.publish(format!("p.{i}"), "x".into()).await.unwrap();
    }
    direct.flush().await.unwrap();
    for i in 0..50 {
        let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
        assert_eq!(m.subject.as_str(), format!("p.{i}"));
    }
    // Request/reply the other way.
    let mut svc = direct.subscribe("svc").await.unwrap();
    direct.flush().await.unwrap();
    wait_interest(&srv, "svc").await;
    let d2 = direct.clone();
    tokio::spawn(async move {
        if let Some(m) = svc.next().await {
            d2.publish(m.reply.unwrap(), "pong".into()).await.unwrap();
            d2.flush().await.unwrap();
        }
    });
    let r = timeout(WAIT, over_scion.request("svc", "ping".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.payload, "pong".as_bytes());
    // /connz-level data: the SCION client shows its SCION address.
    let labels: Vec<_> = broker::server::lock(&srv.state.clients)
        .values()
        .filter_map(|c| c.label.clone())
        .collect();
    assert!(
        labels.iter().any(|l| l.contains(AS_B)),
        "a client labelled with its SCION address: {labels:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_learns_cluster_listeners_and_fails_over() {
    let emu = Emulator::start(Topology::from_toml(TOPO).unwrap(), EmuOptions::default())
        .await
        .unwrap();
    let dir = TempDir(std::env::temp_dir().join(format!(
        "broker-proxy-fo-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let scion_listen = |as_: &str| {
        Some(ListenAddr::Scion {
            isd_as: as_.into(),
            ip: localhost(),
            port: 0,
        })
    };
    let mut oa = node("a", &emu, &dir, AS_A, vec![], "latency");
    oa.scion_listen = scion_listen(AS_A);
    let a = start(oa).await.unwrap();
    let mut ob = node(
        "b",
        &emu,
        &dir,
        AS_B,
        vec![scion_route(route_endpoint(&a))],
        "latency",
    );
    ob.scion_listen = scion_listen(AS_B);
    let b = start(ob).await.unwrap();
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    let client_ep = |h: &ServerHandle| {
        h.state
            .scion
            .lock()
            .unwrap()
            .client_endpoint
            .as_ref()
            .unwrap()
            .local_addr()
    };
    let (ua, ub) = (client_ep(&a), client_ep(&b));
    // A advertises B's SCION client listener to SCION clients.
    let deadline = Instant::now() + WAIT;
    while !a
        .state
        .cluster
        .scion_connect_urls()
        .contains(&ub.to_string())
    {
        assert!(
            Instant::now() < deadline,
            "A never learned B's SCION listener"
        );
        sleep(Duration::from_millis(20)).await;
    }
    let so = scion_opts(&emu, &dir, AS_B, "latency");
    let proxy = broker::proxy::start(broker::proxy::ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: ua,
        more_upstreams: Vec::new(),
        local: ScionAddr {
            ia: ia(AS_B),
            ip: localhost(),
            port: 0,
        },
        daemon: so.daemon.clone(),
        topology: so.topology.clone(),
        path_preference: None,
    })
    .await
    .unwrap();
    // async-nats through the proxy: it must not see the SCION URLs (it would
    // refuse to connect) and must get through to A.
    let nc = timeout(WAIT, async_nats::connect(proxy.listen.to_string()))
        .await
        .unwrap()
        .unwrap();
    assert!(
        nc.server_info()
            .connect_urls
            .iter()
            .all(|u| !u.contains("ff00")),
        "SCION URLs leaked to a TCP client: {:?}",
        nc.server_info().connect_urls
    );
    let mut sub = nc.subscribe("fo").await.unwrap();
    nc.flush().await.unwrap();
    wait_interest(&a, "fo").await;
    // Kill A: the client reconnects to the proxy, which now dials B.
    a.shutdown().await;
    let nb = async_nats::connect(b.client_addr.to_string())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        nb.publish("fo", "after".into()).await.unwrap();
        nb.flush().await.unwrap();
        if let Ok(Some(m)) = timeout(Duration::from_millis(200), sub.next()).await {
            assert_eq!(m.payload, "after".as_bytes());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "client never came back through B"
        );
    }
    let labels: Vec<_> = broker::server::lock(&b.state.clients)
        .values()
        .filter_map(|c| c.label.clone())
        .collect();
    assert!(!labels.is_empty(), "the proxied client now lives on B");
    let _ = ub;
}

/// Connection ids of a server's routes (a change = the route was cut).
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

/// A flood into a SCION route that drains far slower than it is fed: the
/// backlog takes many write deadlines to drain, yet the route is never cut
/// (nats-server closes a route on a write timeout only when nothing at all
/// was written, client.go handleWriteTimeout) and every message arrives
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_over_slow_scion_route_keeps_route_and_messages() {
    // Short enough that the ~4 s flood spans several deadlines (a writer
    // that cut routes on every timeout fails here), long enough that a
    // loaded CI machine does not see QUIC accept zero bytes for a whole
    // deadline — nats-server closes a route only then (client.go
    // handleWriteTimeout), and so do we.
    const DEADLINE: Duration = Duration::from_millis(1000);
    const N: u32 = 12_000;
    const SIZE: usize = 1024;
    let p = pair_with("latency", |o| o.write_deadline = DEADLINE).await;
    // 24 Mbit/s (3 MB/s) on every link, both paths: the 12 MB flood needs
    // about 4 s, four deadlines.
    for link in ["1-ff00:0:111#2", "1-ff00:0:110#1", "1-ff00:0:110#2"] {
        p.emu
            .command(&format!("link {link} bandwidth 24000"))
            .expect("bandwidth");
    }
    let ids = (route_ids(&p.a), route_ids(&p.b));
    assert_eq!(ids.0.len(), 1);

    let na = async_nats::connect(p.a.client_addr.to_string())
        .await
        .unwrap();
    let nb = async_nats::connect(p.b.client_addr.to_string())
        .await
        .unwrap();
    let mut sub = nb.subscribe("flood").await.unwrap();
    nb.flush().await.unwrap();
    wait_interest(&p.a, "flood").await;

    // Largest backlog of A's route while the flood runs.
    let route = p.a.state.cluster.routes().pop().expect("route on A");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = {
        let (route, peak) = (route.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(
                    route.shared.out.pending(),
                    std::sync::atomic::Ordering::Relaxed,
                );
                sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let publisher = tokio::spawn(async move {
        for i in 0..N {
            let mut payload = vec![0u8; SIZE];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            na.publish("flood", payload.into()).await.unwrap();
        }
        na.flush().await.unwrap();
        // Kept open until everything arrived: async-nats' flush() does not
        // wait for the server, and a close with unread bytes (RST) would drop
        // the PUBs still in the socket.
        na
    });
    let mut next = 0u32;
    while next < N {
        let m = timeout(WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("stalled at {next} of {N}"))
            .unwrap();
        assert_eq!(m.payload.len(), SIZE);
        let v = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
        assert_eq!(v, next, "lost, duplicated or reordered");
        next += 1;
    }
    let _na = timeout(WAIT, publisher).await.unwrap().unwrap();
    sampler.abort();
    assert!(timeout(Duration::from_millis(300), sub.next())
        .await
        .is_err());
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    // 3 MB/s drains 600 KB per deadline: the backlog needed several.
    assert!(
        peak > 2 << 20,
        "the flood never backed up the route (peak {peak} bytes)"
    );
    assert_eq!(
        (route_ids(&p.a), route_ids(&p.b)),
        ids,
        "the route was cut and formed again"
    );
    let closed_routes =
        p.a.state
            .closed
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.snapshot.kind == broker::proto::ConnKind::Route)
            .count();
    assert_eq!(closed_routes, 0, "a route was closed on A");
    eprintln!("flood: peak route backlog {peak} bytes, route kept");
}

/// A broker whose SCION peer and emulator are gone exits promptly: the QUIC
/// route cannot flush to anyone, so shutdown must not wait for it (it took
/// 5 s, the server's whole drain bound). Once seen slow in session 3; since shutdown
/// re-closes late-registered connections it passed every run (alone, in the suite, with two
/// CPU hogs running), about 11 ms each, so it runs in CI again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_when_scion_peer_and_network_are_gone() {
    let Pair { emu, a, b, _dir } = pair("latency").await;
    drop(emu);
    let t = Instant::now();
    b.shutdown().await;
    let b_took = t.elapsed();
    let t = Instant::now();
    a.shutdown().await;
    let a_took = t.elapsed();
    eprintln!("shutdown without network: b {b_took:?}, a {a_took:?}");
    assert!(b_took < Duration::from_millis(2500), "b took {b_took:?}");
    assert!(a_took < Duration::from_millis(2500), "a took {a_took:?}");
}

/// Two brokers in one AS on a TCP cluster, each with a SCION client listener: the one
/// that starts second dials its route at once, and its route INFO must already name
/// its SCION listener (the listener is bound with the TCP client listener, before
/// "Server is ready" and before any route), or a proxy on the first never learns it
/// and cannot fail over to it. Nothing re-announces the listener later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scion_client_listener_is_announced_in_the_first_route_info() {
    let emu = Emulator::start(Topology::from_toml(TOPO).unwrap(), EmuOptions::default())
        .await
        .unwrap();
    let dir = TempDir(std::env::temp_dir().join(format!(
        "broker-scion-urls-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let opts = |name: &str, routes: Vec<RouteUrl>| Options {
        server_name: Some(name.into()),
        host: "127.0.0.1".into(),
        port: -1,
        scion_listen: Some(ListenAddr::Scion {
            isd_as: AS_A.into(),
            ip: localhost(),
            port: 0,
        }),
        cluster: ClusterOpts {
            name: Some("c1".into()),
            listen: Some(ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: -1,
            }),
            routes,
            ..Default::default()
        },
        scion: Some(scion_opts(&emu, &dir, AS_A, "latency")),
        ..Default::default()
    };
    let a = start(opts("a", vec![])).await.unwrap();
    let ra = a
        .state
        .cluster
        .listen_addr
        .lock()
        .unwrap()
        .expect("cluster");
    // Three rounds: a second broker that announced late would be missed in some.
    for round in 0..3 {
        let b = start(opts(
            &format!("b{round}"),
            vec![RouteUrl {
                url: format!("nats-route://{ra}"),
                user: None,
                password: None,
                target: broker::options::RouteTarget::Tcp {
                    host: ra.ip().to_string(),
                    port: ra.port(),
                },
            }],
        ))
        .await
        .unwrap();
        let ub = b
            .state
            .scion
            .lock()
            .unwrap()
            .client_endpoint
            .as_ref()
            .expect("SCION client listener bound by start()")
            .local_addr()
            .to_string();
        let deadline = Instant::now() + WAIT;
        while !a.state.cluster.scion_connect_urls().contains(&ub) {
            assert!(
                Instant::now() < deadline,
                "round {round}: A never learned B's SCION listener {ub}: {:?}",
                a.state.cluster.scion_connect_urls()
            );
            sleep(Duration::from_millis(20)).await;
        }
        b.shutdown().await;
    }
}

/// Broker a in AS A, and broker b in AS B with a SCION route to a and an ACL that denies
/// every path (`tweak` adjusts b's options before it starts); returns both and a's route
/// address.
async fn dialer_with_every_path_denied(
    emu: &EmuHandle,
    dir: &TempDir,
    tweak: impl FnOnce(&mut Options),
) -> (ServerHandle, ServerHandle, ScionAddr) {
    let a = start(node("a", emu, dir, AS_A, vec![], "latency"))
        .await
        .expect("start a");
    let target = route_endpoint(&a);
    let mut ob = node("b", emu, dir, AS_B, vec![scion_route(target)], "latency");
    if let Some(s) = ob.scion.as_mut() {
        s.policy_acl = vec!["-".into()];
    }
    tweak(&mut ob);
    let b = start(ob).await.expect("start b");
    (a, b, target)
}

/// A SCION route that cannot come up logs its dial failures at error level as the TCP
/// dialer does (server.go shouldReportConnectErr): attempt 1 and every
/// `connect_error_reports`, the others at debug level. An ACL that denies every path makes
/// each attempt fail at once, about once a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scion_dial_failures_are_reported_as_connect_error_reports_says() {
    capture_logs("info");
    let emu = Emulator::start(Topology::from_toml(TOPO).unwrap(), EmuOptions::default())
        .await
        .unwrap();
    let dir = temp_dir("connect-error-reports");
    let (a, b, target) =
        dialer_with_every_path_denied(&emu, &dir, |o| o.connect_error_reports = 2).await;
    let dial = format!("dial scion {target}");
    let reported = |n: u32| {
        let attempt = format!("(attempt {n})");
        logs().lines().any(|l| {
            l.contains("ERROR")
                && l.contains("Error trying to connect to route")
                && l.contains(&attempt)
                && l.contains(&dial)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !reported(4) {
        assert!(
            Instant::now() < deadline,
            "attempt 4 was not reported at error level:\n{}",
            logs()
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert!(reported(1) && reported(2), "attempts 1 and 2:\n{}", logs());
    assert!(!reported(3), "attempt 3 at error level:\n{}", logs());
    b.shutdown().await;
    a.shutdown().await;
}

/// An ACL that denies every path: the route cannot come up and is redialled about once a
/// second; each filtered path is logged once (with its reason), not on every redial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_filtered_by_policy_are_logged_once() {
    capture_logs("info");
    let emu = Emulator::start(Topology::from_toml(TOPO).unwrap(), EmuOptions::default())
        .await
        .unwrap();
    let dir = temp_dir("acl-deny-all");
    let (a, b, target) = dialer_with_every_path_denied(&emu, &dir, |_| {}).await;
    let to_a = format!("remote={target}");
    let filtered = || {
        logs()
            .lines()
            .filter(|l| l.contains("path filtered") && l.contains(&to_a) && l.contains("INFO"))
            .count()
    };
    // Several redials (at least three seconds' worth).
    let deadline = Instant::now() + Duration::from_secs(15);
    while filtered() == 0 {
        assert!(
            Instant::now() < deadline,
            "no 'path filtered' line:\n{}",
            logs()
        );
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_secs(3)).await;
    let n = filtered();
    // The two-paths topology has at most a handful of paths from B to A.
    assert!(
        n <= 4,
        "{n} 'path filtered' lines after several redials:\n{}",
        logs()
    );
    assert_eq!(a.state.cluster.num_routes(), 0);
    // The dial error counts the paths by state and says where the reasons are.
    assert!(
        logs()
            .lines()
            .any(|l| l.contains("Error trying to connect to route")
                && l.contains(&target.to_string())
                && l.contains("no usable path to")
                && l.contains(" filtered; the \"path filtered\" log lines say why")),
        "no dial error naming the filtered paths:\n{}",
        logs()
    );
    b.shutdown().await;
    a.shutdown().await;
}

/// The accepting side's ACL holds too: when it denies every path to the dialer, the broker
/// refuses the connection and says why, instead of answering over the reverse of the
/// dialer's path (which crosses what it denies), so the route does not come up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_policy_denying_every_path_refuses_the_route() {
    capture_logs("info");
    let emu = Emulator::start(Topology::from_toml(TOPO).unwrap(), EmuOptions::default())
        .await
        .unwrap();
    let dir = temp_dir("acl-deny-acceptor");
    let mut oa = node("a", &emu, &dir, AS_A, vec![], "latency");
    if let Some(s) = oa.scion.as_mut() {
        s.policy_acl = vec!["-".into()];
    }
    let a = start(oa).await.expect("start a");
    let target = route_endpoint(&a);
    let b = start(node(
        "b",
        &emu,
        &dir,
        AS_B,
        vec![scion_route(target)],
        "latency",
    ))
    .await
    .expect("start b");
    let refused = || {
        logs().lines().any(|l| {
            l.contains("WARN")
                && l.contains("refusing the SCION connection from")
                && l.contains(AS_B)
                && l.contains("every path to it is filtered")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !refused() {
        assert!(
            Instant::now() < deadline,
            "no refusal logged by the acceptor:\n{}",
            logs()
        );
        sleep(Duration::from_millis(50)).await;
    }
    // The dialer hears the refusal (it goes back over the reverse of its path) and says so.
    let dial = format!("dial scion {target}");
    let told = || {
        logs().lines().any(|l| {
            l.contains("Error trying to connect to route")
                && l.contains(&dial)
                && l.contains("refused")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !told() {
        assert!(
            Instant::now() < deadline,
            "the dialer did not log the refusal:\n{}",
            logs()
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.state.cluster.num_routes(), 0);
    assert_eq!(b.state.cluster.num_routes(), 0);
    b.shutdown().await;
    a.shutdown().await;
}

/// Every path between A and B cut (SCMP-signalled): failover cannot help, and that is said
/// once each way (a warning when the last usable path goes, one when a path is back, with
/// how long it lasted) and counted in /pathz and /metrics, instead of passing as one
/// failover's gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_every_path_is_reported_with_its_length() {
    capture_logs("info");
    let p = pair("latency").await;
    let ep = route_scion_endpoint(&p.a);
    let rb = route_endpoint(&p.b);
    assert_eq!(ep.outage_stats(rb).count, 0);
    // A's both links: the direct one and the one to the core. Traffic draws the SCMP.
    let na = async_nats::connect(p.a.client_addr.to_string())
        .await
        .unwrap();
    p.emu.command("link 1-ff00:0:111#2 down").unwrap();
    p.emu.command("link 1-ff00:0:111#1 down").unwrap();
    let deadline = Instant::now() + WAIT;
    while ep.outage_stats(rb).current.is_none() {
        assert!(Instant::now() < deadline, "no outage seen\n{}", logs());
        na.publish("x", "y".into()).await.unwrap();
        sleep(Duration::from_millis(20)).await;
    }
    let started = format!("SCION paths to {rb}: all 2 usable paths are down (SCMP interface down");
    assert!(logs().contains(&started), "{}", logs());
    sleep(Duration::from_millis(300)).await;
    p.emu.command("link 1-ff00:0:111#2 up").unwrap();
    p.emu.command("link 1-ff00:0:111#1 up").unwrap();
    let deadline = Instant::now() + WAIT;
    while ep.outage_stats(rb).current.is_some() {
        assert!(Instant::now() < deadline, "outage never ended\n{}", logs());
        sleep(Duration::from_millis(20)).await;
    }
    let o = ep.outage_stats(rb);
    assert_eq!(o.count, 1, "{o:?}");
    assert!(o.total >= Duration::from_millis(300), "{o:?}");
    let ended = format!("SCION paths to {rb}: path ");
    let logs = logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&ended) && l.contains("usable again after"))
        .unwrap_or_else(|| panic!("no end line\n{logs}"));
    assert!(line.contains("WARN"), "{line}");
    // Once each way, though probes went on failing through the outage.
    assert_eq!(logs.matches(&started).count(), 1, "{logs}");
}

/// Every path between A and B silently gone for 3 s in the middle of a 1 kHz stream, then
/// back: the route holds (the outage is well inside QUIC's idle timeout), every message
/// arrives once and in order, and the stream resumes as soon as a probe finds a path back,
/// not at QUIC's next probe timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_a_total_outage() {
    capture_logs("info");
    let p = pair("latency").await;
    let ids = route_ids(&p.a);
    let run = sequenced_stream_with(
        &p,
        5000,
        &[
            (1000, "link 1-ff00:0:111#2 blackhole"),
            (1000, "link 1-ff00:0:111#1 blackhole"),
            (4000, "link 1-ff00:0:111#2 up"),
            (4000, "link 1-ff00:0:111#1 up"),
        ],
    )
    .await;
    let restored = run.commands_at[3];
    let resumed = *run
        .arrivals
        .iter()
        .find(|t| **t > restored)
        .expect("deliveries after the links came back");
    let resume = resumed - restored;
    eprintln!(
        "total outage of 3 s: max delivery gap {:?}, first delivery {resume:?} and the backlog \
         delivered {:?} after the links came back",
        run.max_gap,
        run.arrivals[4000].saturating_duration_since(restored)
    );
    // Without the re-send the stream waited for QUIC's next probe timeout (about 0.9 s
    // here, and it doubles with every one lost); with it, the first probe answer plus a
    // round trip (about 120 ms).
    assert!(
        resume < Duration::from_millis(500),
        "the stream resumed {resume:?} after the links came back\n{}",
        logs()
    );
    assert_eq!(
        route_ids(&p.a),
        ids,
        "the route was not re-dialed\n{}",
        logs()
    );
}

/// A path that comes back for a moment inside an outage (every path down, one answers, then
/// fails again within a second) does not end it: one outage is counted and its start is
/// warned about once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_back_for_a_moment_does_not_end_the_outage() {
    capture_logs("info");
    let p = pair("latency").await;
    let ep = route_scion_endpoint(&p.a);
    let rb = route_endpoint(&p.b);
    let na = async_nats::connect(p.a.client_addr.to_string())
        .await
        .unwrap();
    // Traffic draws the SCMP that tells A its links are down.
    let until = |want_outage: bool, what: &'static str| {
        let na = na.clone();
        let ep = ep.clone();
        async move {
            let deadline = Instant::now() + WAIT;
            while ep.outage_stats(rb).current.is_some() != want_outage {
                assert!(Instant::now() < deadline, "{what}\n{}", logs());
                na.publish("x", "y".into()).await.unwrap();
                sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let links = ["link 1-ff00:0:111#2", "link 1-ff00:0:111#1"];
    for l in links {
        p.emu.command(&format!("{l} down")).unwrap();
    }
    until(true, "no outage seen").await;
    for l in links {
        p.emu.command(&format!("{l} up")).unwrap();
    }
    until(false, "no path came back").await;
    let back = Instant::now();
    for l in links {
        p.emu.command(&format!("{l} down")).unwrap();
    }
    until(true, "the links going down again went unnoticed").await;
    assert!(
        back.elapsed() < Duration::from_secs(1),
        "{:?}",
        back.elapsed()
    );
    let o = ep.outage_stats(rb);
    assert_eq!(o.count, 1, "one outage, not two: {o:?}");
    for l in links {
        p.emu.command(&format!("{l} up")).unwrap();
    }
    until(false, "the outage never ended").await;
    let started = format!("SCION paths to {rb}: all 2 usable paths are down");
    assert_eq!(logs().matches(&started).count(), 1, "{}", logs());
    assert_eq!(ep.outage_stats(rb).count, 1);
}

/// A route link holds the QUIC datagram size it started with (paths that turn up later too
/// small for it rank last), on the dialing end and, with paths by then, on the accepting one;
/// taking the link into use (its hold) does not forget it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_links_hold_the_datagram_size_they_started_with() {
    let p = pair("latency").await;
    let (ea, eb) = (route_scion_endpoint(&p.a), route_scion_endpoint(&p.b));
    let (ra, rb) = (route_endpoint(&p.a), route_endpoint(&p.b));
    for (ep, remote, end) in [(&eb, ra, "B"), (&ea, rb, "A")] {
        let held = ep.held_link_payload(remote);
        // two-paths.toml: 1472-byte MTU everywhere, less the SCION/UDP header of the
        // longer path.
        assert!(
            held.is_some_and(|h| (1200..1472).contains(&h)),
            "{end}: held {held:?}"
        );
    }
}

/// A route the acceptor refuses (wrong cluster credentials) gets the acceptor's last words
/// over SCION, as over TCP: `-ERR 'Authorization Violation'` reaches the dialer before the
/// link closes (quinn drops stream data not yet sent when a connection closes, so a close
/// must come after the last bytes left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_route_hears_the_authorization_violation() {
    capture_logs("info");
    let emu = emulator().await;
    let dir = temp_dir("scion-route-auth");
    let mut oa = node("a", &emu, &dir, AS_A, vec![], "latency");
    oa.cluster.username = Some("route".into());
    oa.cluster.password = Some("right".into());
    let a = start(oa).await.expect("start a");
    let ra = route_endpoint(&a);
    let mut url = scion_route(ra);
    url.user = Some("route".into());
    url.password = Some("wrong".into());
    let b = start(node("b", &emu, &dir, AS_B, vec![url], "latency"))
        .await
        .expect("start b");
    let prefix = format!("{ra}");
    let deadline = Instant::now() + WAIT;
    loop {
        let heard = logs()
            .lines()
            .any(|l| l.contains("Authorization Violation") && l.contains(&prefix));
        if heard {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b never heard a's -ERR:\n{}",
            logs()
        );
        sleep(Duration::from_millis(20)).await;
    }
    b.shutdown().await;
    a.shutdown().await;
}
