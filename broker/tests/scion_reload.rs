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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_a_scion_route() {
    let emu = emulator().await;
    let dir = temp_dir("scion-reload");

    // A: in process, a SCION route listener in AS A, no routes.
    let (daemon_a, topo_a) = as_files(&emu, &dir, AS_A);
    let a = broker::server::start(Options {
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
            daemon: Some(daemon_a),
            topology: Some(topo_a),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("broker A");
    let a_route: ScionAddr = a
        .state
        .scion
        .lock()
        .expect("lock")
        .route_endpoint
        .as_ref()
        .expect("SCION route endpoint")
        .local_addr();

    // B: the binary, a SCION route listener in AS B, routes from its config file.
    let (daemon_b, topo_b) = as_files(&emu, &dir, AS_B);
    let (conf, log) = (dir.0.join("b.conf"), dir.0.join("b.log"));
    let head = format!(
        "listen: 127.0.0.1:{}\nlog_file: \"{}\"\nscion {{\n  daemon: \"{daemon_b}\"\n  topology: \"{}\"\n}}\ncluster {{\n  name: c\n  listen: \"nats://{AS_B},127.0.0.1:{}\"\n",
        free_tcp_port(),
        log.display(),
        topo_b.display(),
        free_dispatched_port()
    );
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
