//! A broker killed with SIGKILL and restarted at once on the same SCION address: its peer's
//! route to the dead process must go and be re-dialled within a few round trips, as a
//! nats-server route sees the TCP reset of a restarted peer, not after QUIC's 30 s idle
//! timeout (until which the peer sent everything into the dead connection while probes,
//! answered by the new process, said the paths were fine). The restarted process answers
//! the old connection's packets with a QUIC stateless reset the peer accepts: both
//! processes derive the reset key from the machine id and the address. Emulator on
//! loopback only; every wait is bounded.

use std::time::{Duration, Instant};

use scion_transport::address::ScionAddr;

mod scion_common;
use scion_common::*;

const BIN: &str = env!("CARGO_BIN_EXE_broker");

/// Starts the broker binary on `conf` and waits for a new "Server is ready" in `log`.
async fn start(conf: &std::path::Path, log: &std::path::Path) -> Proc {
    let before = ready_count(log);
    let p = spawn_broker(BIN, conf);
    wait_ready(log, before).await;
    p
}

/// Waits (12 s, well below QUIC's 30 s idle timeout) until `h` has exactly one route, to
/// another server than `old`'s.
async fn wait_new_route(h: &broker::server::ServerHandle, old: &str, restarted: Instant) {
    let deadline = restarted + Duration::from_secs(12);
    loop {
        let ids = remote_ids(h);
        if ids.len() == 1 && ids[0] != old {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} routes to {ids:?} {:?} after the restart (old {old})\n{}",
            h.state.name,
            restarted.elapsed(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Remote server ids of `h`'s routes.
fn remote_ids(h: &broker::server::ServerHandle) -> Vec<String> {
    h.state
        .cluster
        .routes()
        .iter()
        .map(|r| r.meta.lock().expect("meta").remote_id.clone())
        .collect()
}

/// Broker process `a` in AS A (SCION cluster listen), in-process broker `b` in AS B with a
/// route to it, the route up. The emulator and folder live as long as the returned values.
struct Pair {
    _emu: scion_transport::emu::EmuHandle,
    _dir: TempDir,
    conf: std::path::PathBuf,
    log: std::path::PathBuf,
    a: Proc,
    a_addr: ScionAddr,
    b: broker::server::ServerHandle,
}

async fn a_and_b_routed(tag: &str) -> Pair {
    capture_logs("info");
    let emu = emulator().await;
    let dir = temp_dir(tag);
    let sport = free_dispatched_port();
    let (conf, log) = write_conf(
        &emu,
        &dir,
        AS_A,
        &format!(
            "server_name: a\ncluster {{\n  name: c1\n  listen: \"nats://{AS_A},127.0.0.1:{sport}\"\n}}"
        ),
    );
    let a = start(&conf, &log).await;
    let a_addr = ScionAddr {
        ia: ia(AS_A),
        ip: localhost(),
        port: sport,
    };
    let b = broker::server::start(scion_node(
        "b",
        &emu,
        &dir,
        AS_B,
        0,
        vec![scion_route(a_addr)],
    ))
    .await
    .expect("b starts");
    wait_routes(&b, 1).await;
    Pair {
        _emu: emu,
        _dir: dir,
        conf,
        log,
        a,
        a_addr,
        b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_to_a_killed_and_restarted_peer_is_redialled_at_once() {
    let Pair {
        _emu,
        _dir,
        conf,
        log,
        mut a,
        b,
        ..
    } = a_and_b_routed("peer-restart").await;
    let old = remote_ids(&b);
    assert_eq!(old.len(), 1, "{old:?}");

    // SIGKILL: no QUIC close leaves; then the same config again, on the same address.
    a.0.kill().expect("kill");
    let _ = a.0.wait();
    let _a2 = start(&conf, &log).await;
    let restarted = Instant::now();
    // The new process has another server id; b's route must move to it (the route's
    // keep-alive, every 2 s, draws the reset), well before the 30 s idle timeout.
    wait_new_route(&b, &old[0], restarted).await;
    assert!(logs().contains("Router connection closed"), "{}", logs());
    b.shutdown().await;
}

/// A broker process that shuts down gracefully (SIGTERM) closes its SCION route links before
/// it exits: its peer drops the route at once, as a nats-server peer sees the TCP close,
/// instead of keeping a dead route (and its queue subscriptions) until QUIC's 30 s idle
/// timeout. Nothing restarts on that address, so no stateless reset could tell the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_shuts_down_closes_the_route_before_it_exits() {
    let Pair {
        _emu, _dir, a, b, ..
    } = a_and_b_routed("peer-shutdown").await;
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(a.0.id() as i32, libc::SIGTERM);
    }
    let mut a = a;
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "a did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exited = Instant::now();
    // Well below the 30 s idle timeout (and the 2 s keep-alive: no probe is needed).
    while b.state.cluster.num_routes() != 0 {
        assert!(
            exited.elapsed() < Duration::from_secs(5),
            "b still has its route to a {:?} after a exited",
            exited.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.shutdown().await;
}

/// The other way round: the dialling side is killed and restarted (it dials from its
/// cluster listen address). The acceptor must not keep the dead process's route next to
/// the new one until the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_drops_the_route_of_a_killed_and_restarted_dialler_at_once() {
    capture_logs("info");
    let emu = emulator().await;
    let dir = temp_dir("dialler-restart");
    let b = broker::server::start(scion_node("b", &emu, &dir, AS_B, 0, Vec::new()))
        .await
        .expect("b starts");
    let b_addr = route_endpoint(&b);
    let sport = free_dispatched_port();
    let (conf, log) = write_conf(
        &emu,
        &dir,
        AS_A,
        &format!(
            "server_name: a\ncluster {{\n  name: c1\n  listen: \"nats://{AS_A},127.0.0.1:{sport}\"\n  \
             routes: [\"nats-route://{b_addr}\"]\n}}"
        ),
    );
    let mut a = start(&conf, &log).await;
    wait_routes(&b, 1).await;
    let old = remote_ids(&b);
    a.0.kill().expect("kill");
    let _ = a.0.wait();
    let _a2 = start(&conf, &log).await;
    let restarted = Instant::now();
    wait_new_route(&b, &old[0], restarted).await;
    b.shutdown().await;
}

/// A killed peer that stays away: every path falls silent at once. The survivor reports
/// that all paths are down, and does not first hop from path to path blaming each on
/// probe loss (it used to log two or three such failovers before the outage warning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_is_one_outage_not_a_string_of_failovers() {
    let Pair {
        _emu,
        _dir,
        mut a,
        a_addr,
        b,
        ..
    } = a_and_b_routed("peer-dead").await;
    // Let both paths answer a few probes, so each has a record to lose.
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Kill only while every path answers: a probe lost just before the kill (a stall on a
    // loaded machine) followed by a backup's answer would make one failover right.
    let ep = route_scion_endpoint(&b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ep
        .path_stats(a_addr)
        .iter()
        .all(|c| c.state == scion_transport::path::PathState::Alive)
    {
        assert!(Instant::now() < deadline, "paths never all alive");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = logs().len();
    a.0.kill().expect("kill");
    let _ = a.0.wait();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(5);
    let outage = format!("SCION paths to {a_addr}: all ");
    loop {
        let since = logs()[before..].to_string();
        if since.contains(&outage) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no all-paths-down warning {:?} after the kill\n{since}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = killed.elapsed();
    // Give a string of failovers time to show if there were going to be one.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let since = logs()[before..].to_string();
    let switches: Vec<&str> = since
        .lines()
        .filter(|l| l.contains("switched: cause=probe-loss"))
        .collect();
    assert!(
        switches.is_empty(),
        "failovers after the peer died (outage warning after {took:?}):\n{since}"
    );
    b.shutdown().await;
}
