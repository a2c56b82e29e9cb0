//! Monitoring of routes over SCION (issue 5, path observability): /routez
//! shows the peer's SCION address, active path and switch count; /pathz
//! lists candidate paths with state and the reason for the active one;
//! /metrics carries the same numbers; a link cut shows up as a switch.
//!
//! Runs on the in-process SCION emulator; loopback only, bounded waits.

use std::net::SocketAddr;
use std::time::Duration;

use broker::options::{ClusterOpts, ListenAddr, Options, RouteUrl, ScionOpts};
use broker::server::start;
use scion_transport::address::ScionAddr;
use scion_transport::emu::EmuHandle;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};

mod scion_common;
use scion_common::*;

fn node(emu: &EmuHandle, dir: &TempDir, as_: &str, routes: Vec<RouteUrl>) -> Options {
    let topo = dir.0.join(format!("{}.json", as_.replace(':', "_")));
    std::fs::write(&topo, emu.topology_json(ia(as_)).expect("topology")).expect("write");
    Options {
        host: "127.0.0.1".into(),
        port: -1,
        http_host: "127.0.0.1".into(),
        http_port: -1,
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
        scion: Some(ScionOpts {
            path_preference: vec!["latency".into()],
            daemon: Some(emu.daemon_addr(ia(as_)).expect("daemon").to_string()),
            topology: Some(topo),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("in time")
        .expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

async fn wait_json(addr: SocketAddr, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(addr, path).await;
        if status == 200 {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if pred(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{path} never satisfied: {v}");
        } else {
            assert!(Instant::now() < deadline, "{path}: {status} {body}");
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// A route that comes back after its peer went away starts with a clean path history: the
/// dialer's probe-loss switches while the peer was gone (and the old route's) are not the
/// new route's, and nothing is reported as a failover when it forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_comes_back_starts_with_no_switches() {
    let emu = emulator().await;
    let dir = temp_dir("monscion-back");
    let port = free_dispatched_port();
    let node_a = || {
        let mut o = node(&emu, &dir, AS_A, vec![]);
        o.cluster.listen = Some(ListenAddr::Scion {
            isd_as: AS_A.into(),
            ip: localhost(),
            port,
        });
        o
    };
    let a = start(node_a()).await.expect("start a");
    let ra = route_endpoint(&a);
    let b = start(node(&emu, &dir, AS_B, vec![scion_route(ra)]))
        .await
        .expect("start b");
    let mb = b.http_addr.expect("monitoring");
    wait_json(mb, "/routez", |v| v["num_routes"] == 1).await;
    a.shutdown().await;
    wait_json(mb, "/routez", |v| v["num_routes"] == 0).await;
    // B keeps dialling (each dial wakes the released peer: its probes find every path
    // silent and fail over while nobody answers).
    sleep(Duration::from_secs(4)).await;
    let a = start(node_a()).await.expect("restart a");
    let v = wait_json(mb, "/routez", |v| {
        v["num_routes"] == 1 && v["routes"][0]["scion"]["path"].is_object()
    })
    .await;
    // Past the new route's first probes.
    sleep(Duration::from_millis(1500)).await;
    let v2 = wait_json(mb, "/pathz", |v| v["num_destinations"] == 1).await;
    let d = &v2["destinations"][0];
    assert_eq!(d["connected"], true, "{d}");
    // No failover on the new route (a move back to the better path once it answers again
    // may follow; that is a choice, not a failure).
    for cause in ["probe-loss", "scmp-down"] {
        assert!(d["switches_by_cause"][cause].is_null(), "{d}\nroutez: {v}");
    }
    let last = d["last_switch"]["cause"].as_str().unwrap_or("better");
    assert_eq!(last, "better", "{d}");
    b.shutdown().await;
    a.shutdown().await;
}

/// A configured SCION route whose peer never answers is on /pathz too, not connected, with the
/// paths the dialler found and their state: what an operator needs to see why it is not up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathz_shows_a_configured_route_that_is_not_up() {
    let emu = emulator().await;
    let dir = temp_dir("monscion-down");
    // Nobody listens there: the route is dialled and never comes up.
    let nobody = ScionAddr {
        ia: ia(AS_A),
        ip: localhost(),
        port: free_dispatched_port(),
    };
    let b = start(node(&emu, &dir, AS_B, vec![scion_route(nobody)]))
        .await
        .expect("start b");
    let mb = b.http_addr.expect("monitoring");
    let v = wait_json(mb, "/pathz", |v| {
        v["destinations"][0]["paths"]
            .as_array()
            .is_some_and(|p| p.len() >= 2)
    })
    .await;
    let d = &v["destinations"][0];
    assert_eq!(v["num_destinations"], 1, "{v}");
    assert_eq!(d["link"], "route");
    assert_eq!(d["connected"], false, "{d}");
    assert_eq!(d["id"], 0);
    assert_eq!(d["remote"], nobody.to_string());
    assert!(d["why_active"].is_string(), "{d}");
    let (_, routez) = get(mb, "/routez").await;
    let routez: Value = serde_json::from_str(&routez).expect("json");
    assert_eq!(routez["num_routes"], 0);
    b.shutdown().await;
}

/// Once a SCION route closes, the side that accepted it stops probing the peer's paths at
/// once (it used to go on for 35 s of silence, and /pathz and the metrics kept showing it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_side_stops_probing_a_peer_whose_route_closed() {
    let emu = emulator().await;
    let dir = temp_dir("monscion-hold");
    let a = start(node(&emu, &dir, AS_A, vec![]))
        .await
        .expect("start a");
    let ra = route_endpoint(&a);
    let b = start(node(&emu, &dir, AS_B, vec![scion_route(ra)]))
        .await
        .expect("start b");
    let rb = route_endpoint(&b);
    let ma = a.http_addr.expect("monitoring");
    wait_json(ma, "/routez", |v| v["num_routes"] == 1).await;
    let ep = a
        .state
        .scion
        .lock()
        .ok()
        .and_then(|g| g.route_endpoint.clone())
        .expect("route endpoint");
    let probes = || -> u64 { ep.path_stats(rb).iter().map(|c| c.probes_sent).sum() };
    let before = probes();
    sleep(Duration::from_millis(500)).await;
    assert!(probes() > before, "probing while the route is up");
    b.shutdown().await;
    wait_json(ma, "/routez", |v| v["num_routes"] == 0).await;
    // Past the closing handshake's settle time, then nothing more goes out.
    sleep(Duration::from_millis(2500)).await;
    let settled = probes();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(probes(), settled, "probes after the route closed");
    a.shutdown().await;
}

/// A switch that happened before anyone asked the monitoring port is shown: the server
/// follows its links' path events from the start, not from the first /pathz or /metrics
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_before_the_first_monitoring_request_is_shown() {
    let emu = emulator().await;
    let dir = temp_dir("monscion-early");
    let a = start(node(&emu, &dir, AS_A, vec![]))
        .await
        .expect("start a");
    let ra = route_endpoint(&a);
    let b = start(node(&emu, &dir, AS_B, vec![scion_route(ra)]))
        .await
        .expect("start b");
    wait_routes(&b, 1).await;
    let ep = route_scion_endpoint(&b);
    // Both paths answer before the cut, so the SCMP error moves the route to the other one.
    let deadline = Instant::now() + WAIT;
    while ep.path_stats(ra).iter().filter(|c| c.rtt.is_some()).count() < 2 {
        assert!(Instant::now() < deadline, "paths: {:?}", ep.path_stats(ra));
        sleep(Duration::from_millis(20)).await;
    }
    let before = ep.switch_count(ra);
    let r =
        scion_transport::emu::send_control(emu.control_addr(), "link 1-ff00:0:111#2 down").await;
    assert!(r.is_ok(), "control: {r:?}");
    let deadline = Instant::now() + WAIT;
    while ep.switch_count(ra) == before {
        assert!(Instant::now() < deadline, "no switch after the cut");
        sleep(Duration::from_millis(20)).await;
    }
    // The first request to B's monitoring port.
    let mb = b.http_addr.expect("monitoring");
    let (status, body) = get(mb, "/pathz").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let sw = &v["destinations"][0]["last_switch"];
    assert_eq!(sw["cause"], "scmp-down", "{v}");
    assert!(sw["gap"].is_string(), "{sw}");
    let (_, metrics) = get(mb, "/metrics").await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("nats_scion_path_last_switch_gap_seconds{link=\"route\"")
            && l.contains("cause=\"scmp-down\"")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routez_pathz_metrics_over_scion() {
    let emu = emulator().await;
    let dir = temp_dir("monscion");
    let a = start(node(&emu, &dir, AS_A, vec![]))
        .await
        .expect("start a");
    let ra = route_endpoint(&a);
    let b = start(node(&emu, &dir, AS_B, vec![scion_route(ra)]))
        .await
        .expect("start b");
    let mb = b.http_addr.expect("monitoring");

    // /routez: the SCION side of the route.
    let v = wait_json(mb, "/routez", |v| {
        v["num_routes"] == 1 && v["routes"][0]["scion"]["path"].is_object()
    })
    .await;
    let scion = &v["routes"][0]["scion"];
    assert_eq!(scion["remote"], ra.to_string());
    let hops = scion["path"]["hops"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(hops.len() >= 2, "hops: {scion}");
    assert!(hops.iter().all(|h| h.as_str().unwrap_or("").contains('#')));
    // The daemon announces link latencies on this topology: the route shows the path's.
    assert!(
        scion["path"]["latency"]
            .as_str()
            .is_some_and(|l| l.ends_with("ms")),
        "announced latency: {scion}"
    );
    let first_active = scion["path"]["fingerprint"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let switches_before = scion["path_switches"].as_u64().unwrap_or(0);

    // /pathz: two candidates toward A (direct, and through the core), one active.
    let v = wait_json(mb, "/pathz", |v| {
        v["destinations"][0]["paths"]
            .as_array()
            .is_some_and(|p| p.len() >= 2)
    })
    .await;
    let d = &v["destinations"][0];
    assert_eq!(d["link"], "route");
    assert_eq!(d["connected"], true);
    assert_eq!(d["remote"], ra.to_string());
    assert_eq!(d["remote_id"], a.state.id.as_str());
    let paths = d["paths"].as_array().cloned().unwrap_or_default();
    assert_eq!(paths.iter().filter(|p| p["active"] == true).count(), 1);
    assert_eq!(d["active"], first_active.as_str());
    // The deciding criterion against the runner-up, with both values.
    let why = d["why_active"].as_str().unwrap_or("");
    assert!(
        why.starts_with("latency: ") && why.contains(" ms vs ") && why.contains("(preference "),
        "why_active: {why}"
    );
    for p in &paths {
        // Loss is the unanswered share of recent probes, exact in f64 (never
        // 0.05000000074505806), and 0 when every probe was answered.
        let (sent, answered) = (p["probes_sent"].as_u64(), p["probes_answered"].as_u64());
        if let Some(loss) = p["loss"].as_f64() {
            let text = p["loss"].to_string();
            assert!(text.len() <= 6, "loss {text} in {p}");
            if sent.is_some() && sent == answered {
                assert_eq!(loss, 0.0, "all probes answered: {p}");
            }
        }
    }
    for p in &paths {
        assert!(
            p["state"].is_string() && p["mtu"].as_u64().unwrap_or(0) > 0,
            "{p}"
        );
    }
    // Two paths: both probed (the active one and a backup), each with the age of its RTT.
    for p in &paths {
        assert_eq!(p["probed"], true, "{p}");
        if p["rtt"].is_string() {
            assert!(p["rtt_age"].is_string(), "{p}");
        }
    }

    // /varz names the SCION cluster address and the bound route port.
    let v = wait_json(mb, "/varz", |v| v["routes"] == 1).await;
    assert_eq!(v["cluster"]["addr"], format!("{AS_B},127.0.0.1"));
    assert_eq!(v["cluster"]["cluster_port"], route_endpoint(&b).port);
    assert_eq!(
        v["cluster"]["urls"][0],
        format!("[{},{}]:{}", ra.ia, ra.ip, ra.port)
    );

    // /metrics carries the same.
    let (_, metrics) = get(mb, "/metrics").await;
    assert!(
        metrics.contains("nats_scion_path_candidates{link=\"route\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("nats_scion_route_path_switches{rid="),
        "{metrics}"
    );

    // Cut the direct link (SCMP signalled): the route switches path, and
    // /routez and /pathz say so.
    let r =
        scion_transport::emu::send_control(emu.control_addr(), "link 1-ff00:0:111#2 down").await;
    assert!(r.is_ok(), "control: {r:?}");
    let v = wait_json(mb, "/routez", |v| {
        let s = &v["routes"][0]["scion"];
        s["path_switches"].as_u64().unwrap_or(0) > switches_before
            && s["path"]["fingerprint"].as_str().unwrap_or("") != first_active
    })
    .await;
    eprintln!("after cut: {}", v["routes"][0]["scion"]);
    let v = wait_json(mb, "/pathz", |v| {
        v["destinations"][0]["last_switch"].is_object()
    })
    .await;
    let sw = &v["destinations"][0]["last_switch"];
    assert_eq!(sw["from"], first_active.as_str());
    assert!(sw["cause"].is_string(), "{sw}");
    // Counted by cause, in /pathz and /metrics, with the failover gap.
    let cause = sw["cause"].as_str().unwrap_or("").to_string();
    let by_cause = &v["destinations"][0]["switches_by_cause"];
    assert!(by_cause[&cause].as_u64().unwrap_or(0) >= 1, "{by_cause}");
    let (_, metrics) = get(mb, "/metrics").await;
    let counted = format!("cause=\"{cause}\"}} ");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("nats_scion_path_switches_by_cause{link=\"route\"")
                && l.contains(&counted)
        ),
        "{metrics}"
    );
    assert!(sw["gap"].is_string(), "a failover's gap is measured: {sw}");
    assert!(
        metrics.lines().any(|l| l
            .starts_with("nats_scion_path_last_switch_gap_seconds{link=\"route\"")
            && l.contains(&counted)),
        "{metrics}"
    );
    // And in the failover gap histogram, which outlives the next switch.
    let hist = format!(
        "nats_scion_path_failover_gap_seconds_count{{link=\"route\",remote=\"{}\"}} ",
        ra
    );
    let observed = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&hist)?.parse::<u64>().ok());
    assert!(observed.is_some_and(|n| n >= 1), "{metrics}");

    // A server without SCION answers /pathz with no destinations.
    let plain = start(Options {
        host: "127.0.0.1".into(),
        port: -1,
        http_host: "127.0.0.1".into(),
        http_port: -1,
        ..Default::default()
    })
    .await
    .expect("start plain");
    let (status, body) = get(plain.http_addr.expect("monitoring"), "/pathz").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["num_destinations"], 0, "{v}");
    assert_eq!(v["destinations"], serde_json::json!([]), "{v}");
    assert!(v["server_id"].is_string() && v["now"].is_string(), "{v}");
    plain.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
}

/// A broker in AS A with a SCION client listener (and monitoring), and `broker proxy` in
/// AS B, with its own view of the topology, in front of it.
async fn client_listener_and_proxy(
    emu: &EmuHandle,
    dir: &TempDir,
) -> (broker::server::ServerHandle, broker::proxy::Proxy) {
    let mut o = node(emu, dir, AS_A, vec![]);
    o.cluster = ClusterOpts::default();
    o.scion_listen = Some(ListenAddr::Scion {
        isd_as: AS_A.into(),
        ip: localhost(),
        port: 0,
    });
    let srv = start(o).await.expect("start");
    let upstream = srv
        .state
        .scion
        .lock()
        .map(|g| g.client_endpoint.as_ref().map(|e| e.local_addr()))
        .ok()
        .flatten()
        .expect("SCION client endpoint");
    let b_scion = node(emu, dir, AS_B, vec![]).scion.expect("scion opts");
    let proxy = broker::proxy::start(broker::proxy::ProxyConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        upstream,
        more_upstreams: Vec::new(),
        local: ScionAddr {
            ia: ia(AS_B),
            ip: localhost(),
            port: 0,
        },
        daemon: b_scion.daemon.clone(),
        topology: b_scion.topology.clone(),
        path_preference: None,
    })
    .await
    .expect("proxy");
    (srv, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connz_and_pathz_show_a_client_over_scion() {
    let emu = emulator().await;
    let dir = temp_dir("monscion-c");
    let (srv, proxy) = client_listener_and_proxy(&emu, &dir).await;
    let over_scion = timeout(
        WAIT,
        async_nats::ConnectOptions::new()
            .name("via-scion")
            .connect(proxy.listen.to_string()),
    )
    .await
    .expect("in time")
    .expect("connect through proxy");
    let direct = timeout(
        WAIT,
        async_nats::ConnectOptions::new()
            .name("direct")
            .connect(srv.client_addr.to_string()),
    )
    .await
    .expect("in time")
    .expect("connect");
    over_scion.flush().await.expect("flush");
    direct.flush().await.expect("flush");

    let m = srv.http_addr.expect("monitoring");
    let v = wait_json(m, "/connz", |v| {
        v["num_connections"] == 2
            && v["connections"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["scion"]["path"].is_object()))
    })
    .await;
    let conns = v["connections"].as_array().cloned().unwrap_or_default();
    let via = conns
        .iter()
        .find(|c| c["name"] == "via-scion")
        .expect("the SCION client");
    let remote = via["scion"]["remote"].as_str().unwrap_or("").to_string();
    assert!(remote.starts_with(&format!("[{AS_B},")), "{via}");
    assert!(via["scion"]["path"]["hops"]
        .as_array()
        .is_some_and(|h| !h.is_empty()));
    assert!(via["scion"]["path"]["latency"].is_string(), "{via}");
    let plain = conns
        .iter()
        .find(|c| c["name"] == "direct")
        .expect("the TCP client");
    assert!(plain.get("scion").is_none(), "{plain}");

    let v = wait_json(m, "/pathz", |v| v["num_destinations"] == 1).await;
    let d = &v["destinations"][0];
    assert_eq!(d["link"], "client");
    assert_eq!(d["id"], via["cid"]);
    assert_eq!(d["remote"], remote.as_str());
    assert!(d["paths"].as_array().is_some_and(|p| !p.is_empty()));
    drop(over_scion);
    drop(direct);
    srv.shutdown().await;
}

/// A SCION client link whose peer falls silent (both of the broker's AS links blackholed:
/// no SCMP, nothing arrives) closes when QUIC's idle bound passes, and /connz names it as
/// nats-server names a client whose PINGs went unanswered: "Stale Connection" (it was
/// "Read Error").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_scion_client_link_closes_as_stale_connection() {
    let emu = emulator().await;
    let dir = temp_dir("monscion-stale");
    let (srv, proxy) = client_listener_and_proxy(&emu, &dir).await;
    // A plain client through the proxy, answered.
    let mut tcp = timeout(WAIT, tokio::net::TcpStream::connect(proxy.listen))
        .await
        .expect("in time")
        .expect("connect proxy");
    tcp.write_all(b"CONNECT {\"verbose\":false,\"name\":\"silent\"}\r\nPING\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("PONG") {
        let n = timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("PONG in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before PONG: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let m = srv.http_addr.expect("monitoring");
    wait_json(m, "/connz", |v| v["num_connections"] == 1).await;

    for link in ["1-ff00:0:111#1", "1-ff00:0:111#2"] {
        scion_transport::emu::send_control(emu.control_addr(), &format!("link {link} blackhole"))
            .await
            .expect("blackhole");
    }
    // The client link's idle bound is 5 s (wait_json allows 15).
    let v = wait_json(m, "/connz?state=closed", |v| v["num_connections"] == 1).await;
    let c = &v["connections"][0];
    assert_eq!(c["name"], "silent", "{v}");
    assert_eq!(c["reason"], "Stale Connection", "{v}");
    drop(tcp);
    drop(proxy);
    srv.shutdown().await;
}
