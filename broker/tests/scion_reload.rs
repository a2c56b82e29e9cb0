//! SIGHUP reload of SCION routes (nats-server reload.go `routesOption`, route.go
//! `routeStillValid`): the `broker` binary in one emulated AS gets a SCION route to a broker
//! in another AS added by a reload, then removed by the next one; the removed route is closed
//! ("Route Removed") and not dialled again. Emulator on loopback only; every wait is bounded.

use std::path::Path;

use std::time::{Duration, Instant};

use broker::options::{ClusterOpts, ListenAddr, Options, ScionOpts};
use broker::server::ServerHandle;
use scion_transport::address::ScionAddr;

mod scion_common;
use scion_common::*;

const BIN: &str = env!("CARGO_BIN_EXE_broker");

impl Proc {
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as i32, sig);
        }
    }
}

/// Waits (bounded) until the file has `needle` after byte `from`; returns the text after it.
async fn wait_log(path: &Path, needle: &str, from: usize) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(t) = text.get(from..).filter(|t| t.contains(needle)) {
            return t.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {} after byte {from}:\n{text}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log_len(path: &Path) -> usize {
    std::fs::metadata(path)
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

async fn wait_routes(h: &ServerHandle, n: usize) {
    let deadline = Instant::now() + WAIT;
    while h.state.cluster.num_routes() != n {
        assert!(
            Instant::now() < deadline,
            "A has {} routes, want {n}",
            h.state.cluster.num_routes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Broker A, in process: a SCION route listener in AS A, no routes.
async fn start_a(emu: &scion_transport::emu::EmuHandle, dir: &TempDir) -> ServerHandle {
    let (daemon, topology) = as_files(emu, dir, AS_A);
    broker::server::start(Options {
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("c".into()),
            listen: Some(ListenAddr::Scion {
                isd_as: AS_A.into(),
                ip: localhost(),
                port: 0,
            }),
            ..Default::default()
        },
        scion: Some(ScionOpts {
            daemon: Some(daemon),
            topology: Some(topology),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("broker A")
}

/// Broker B's config file and log in `dir`, and the head of its config (client port
/// `client_port`, the emulator's daemon and topology for AS B, an open `cluster {` block with
/// a SCION listener): the caller adds `routes` and closes the block.
fn b_conf_head(
    emu: &scion_transport::emu::EmuHandle,
    dir: &TempDir,
    client_port: u16,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let (daemon, topology) = as_files(emu, dir, AS_B);
    let (conf, log) = (dir.0.join("b.conf"), dir.0.join("b.log"));
    let head = format!(
        "listen: 127.0.0.1:{client_port}\nlog_file: \"{}\"\nscion {{\n  daemon: \"{daemon}\"\n  topology: \"{}\"\n}}\ncluster {{\n  name: c\n  listen: \"nats://{AS_B},127.0.0.1:{}\"\n",
        log.display(),
        topology.display(),
        free_dispatched_port()
    );
    (conf, log, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_a_scion_route() {
    let emu = emulator().await;
    let dir = temp_dir("scion-reload");

    let a = start_a(&emu, &dir).await;
    let a_route: ScionAddr = route_endpoint(&a);

    // B: the binary, a SCION route listener in AS B, routes from its config file.
    let (conf, log, head) = b_conf_head(&emu, &dir, free_tcp_port());
    std::fs::write(&conf, format!("{head}}}\n")).expect("conf");
    let b = spawn_broker(BIN, &conf);
    wait_log(&log, "Server is ready", 0).await;

    let route = format!("nats-route://{a_route}");
    std::fs::write(&conf, format!("{head}  routes: [\"{route}\"]\n}}\n")).expect("conf");
    let added = log_len(&log);
    b.signal(libc::SIGHUP);
    let after = wait_log(&log, "Reloaded server configuration", added).await;
    assert!(after.contains("Reloaded: cluster routes"), "{after}");
    wait_log(&log, "Route connection created", added).await;
    wait_routes(&a, 1).await;

    std::fs::write(&conf, format!("{head}}}\n")).expect("conf");
    let removed = log_len(&log);
    b.signal(libc::SIGHUP);
    wait_log(&log, "Reloaded server configuration", removed).await;
    let after = wait_log(&log, "Router connection closed: Route Removed", removed).await;
    assert!(after.contains(&format!("Removed route {route}")), "{after}");
    wait_routes(&a, 0).await;
    // A dropped route is re-dialled within about a second (0.25 s first delay); a removed
    // one must stay gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        !text[removed..].contains("Route connection created"),
        "removed SCION route dialled again:\n{}",
        &text[removed..]
    );
    assert_eq!(a.state.cluster.num_routes(), 0);
    b.signal(libc::SIGINT);
    drop(b);
    a.shutdown().await;
}

/// A SCION route that a reload removes delivers what it had queued before its QUIC
/// connection closes, as a TCP route's close flushes it (client.go flushAndClose): quinn's
/// close discards stream data the peer has not read. Every emulated link is slowed to
/// 16 Mbit/s, so that most of the 500 KiB published just before the removal is still in
/// flight when the route ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_scion_route_delivers_its_backlog_before_it_closes() {
    use futures::StreamExt;
    const COUNT: usize = 50;
    const SIZE: usize = 10 * 1024;
    capture_logs("broker=debug");
    let emu = emulator().await;
    for end in ["1-ff00:0:110#1", "1-ff00:0:110#2", "1-ff00:0:111#2"] {
        emu.command(&format!("link {end} bandwidth 16000"))
            .expect("bandwidth");
    }
    let dir = temp_dir("scion-reload-backlog");

    // A: in process, the route listener and the subscriber.
    let a = start_a(&emu, &dir).await;
    let a_route = route_endpoint(&a);

    // B: the binary, dialling A; the publisher's side.
    let b_port = free_tcp_port();
    let (conf, log, head) = b_conf_head(&emu, &dir, b_port);
    std::fs::write(
        &conf,
        format!("{head}  routes: [\"nats-route://{a_route}\"]\n}}\n"),
    )
    .expect("conf");
    let b = spawn_broker(BIN, &conf);
    wait_log(&log, "Route connection created", 0).await;
    wait_routes(&a, 1).await;

    let na = async_nats::connect(a.client_addr.to_string())
        .await
        .expect("connect to A");
    let mut sub = na.subscribe("bulk").await.expect("subscribe");
    na.flush().await.expect("flush A");
    let nb = async_nats::connect(format!("127.0.0.1:{b_port}"))
        .await
        .expect("connect to B");
    // B routes "bulk" once A's interest has crossed the route.
    let deadline = Instant::now() + WAIT;
    loop {
        nb.publish("bulk", "probe".into()).await.expect("probe");
        nb.flush().await.expect("flush B");
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never routed to A's subscriber"
        );
    }
    // Late probes, if any, arrive before the backlog.
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        assert_eq!(&m.payload[..], b"probe");
    }

    for i in 0..COUNT {
        let mut payload = vec![b'x'; SIZE];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        nb.publish("bulk", payload.into()).await.expect("publish");
    }
    // B handles a connection's messages in order: once B delivers our own "sync" back,
    // every message before it is queued on the route (a flush only empties our buffer).
    let mut sync = nb.subscribe("sync").await.expect("subscribe sync");
    nb.publish("sync", "sync".into())
        .await
        .expect("publish sync");
    tokio::time::timeout(WAIT, sync.next())
        .await
        .expect("B delivers sync")
        .expect("sync subscription open");
    std::fs::write(&conf, format!("{head}}}\n")).expect("conf");
    let removed = log_len(&log);
    b.signal(libc::SIGHUP);
    wait_log(&log, "Router connection closed: Route Removed", removed).await;
    // A still writes to the route while it reads the backlog (an RS+ for a new
    // subscription): B must not have stopped reading, or A's write fails and A closes
    // before it has read everything.
    let _late = na.subscribe("late").await.expect("subscribe late");
    na.flush().await.expect("flush A");

    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < COUNT && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
            Ok(Some(m)) => {
                assert_eq!(m.payload.len(), SIZE);
                got.push(u64::from_be_bytes(
                    m.payload[..8].try_into().expect("8 bytes"),
                ));
            }
            Ok(None) => break,
            // The route is gone; nothing more comes.
            Err(_) if a.state.cluster.num_routes() == 0 => break,
            Err(_) => {}
        }
    }
    assert_eq!(
        got,
        (0..COUNT as u64).collect::<Vec<_>>(),
        "A's subscriber got {} of the {COUNT} messages queued before the route was removed; A's log:\n{}\nB's log:\n{}",
        got.len(),
        logs(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    b.signal(libc::SIGINT);
    drop(b);
    a.shutdown().await;
}
