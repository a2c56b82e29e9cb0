//! Shared pieces of the broker's SCION integration tests: the emulated two-path topology and
//! its ASes, temporary folders, and the daemon address and topology.json each AS's broker is
//! given. Emulator on loopback only.
#![allow(dead_code)]

#[path = "../harness/go_client.rs"]
mod go_client;
#[path = "../harness/pki.rs"]
mod pki;
#[allow(unused_imports)]
pub use go_client::{expect_go_client, go_client};
#[path = "../../../scion-transport/tests/support/netns.rs"]
mod netns;
#[path = "../harness/ports.rs"]
mod ports;
#[allow(unused_imports)]
pub use netns::in_private_netns;
#[allow(unused_imports)]
pub use pki::{capture_logs, logs, TestCa};

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use scion_transport::address::IsdAsn;
use scion_transport::emu::{EmuHandle, EmuOptions, Emulator, Topology};

pub const TOPO: &str = include_str!("../../../scion-transport/emu/two-paths.toml");
pub const AS_A: &str = "1-ff00:0:111";
pub const AS_B: &str = "1-ff00:0:112";
/// Upper bound of any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(15);

/// A folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh folder under the system temp dir, named after `tag`, the process and a random number.
pub fn temp_dir(tag: &str) -> TempDir {
    let d = TempDir(std::env::temp_dir().join(format!(
        "broker-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    )));
    std::fs::create_dir_all(&d.0).expect("dir");
    d
}

pub fn ia(s: &str) -> IsdAsn {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

pub fn localhost() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// The emulator running [`TOPO`].
pub async fn emulator() -> EmuHandle {
    Emulator::start(
        Topology::from_toml(TOPO).expect("topology"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator")
}

/// Daemon address and topology.json path (written into `dir`) of `as_`.
pub fn as_files(emu: &EmuHandle, dir: &TempDir, as_: &str) -> (String, PathBuf) {
    let topo = dir.0.join(format!("{}.json", as_.replace(':', "_")));
    std::fs::write(&topo, emu.topology_json(ia(as_)).expect("topology")).expect("write");
    (emu.daemon_addr(ia(as_)).expect("daemon").to_string(), topo)
}

/// A broker's SCION route endpoint (its SCION `cluster.listen`).
pub fn route_scion_endpoint(
    h: &broker::server::ServerHandle,
) -> std::sync::Arc<scion_transport::quic::ScionEndpoint> {
    h.state
        .scion
        .lock()
        .ok()
        .and_then(|g| g.route_endpoint.clone())
        .expect("SCION route endpoint")
}

/// The address of a broker's SCION route endpoint.
pub fn route_endpoint(h: &broker::server::ServerHandle) -> scion_transport::address::ScionAddr {
    route_scion_endpoint(h).local_addr()
}

/// `nats-route://[ISD-AS,IP]:port` to `a`, as `cluster.routes` holds it.
pub fn scion_route(a: scion_transport::address::ScionAddr) -> broker::options::RouteUrl {
    broker::options::RouteUrl {
        url: format!("nats-route://{a}"),
        user: None,
        password: None,
        target: broker::options::RouteTarget::Scion {
            isd_as: a.ia.to_string(),
            ip: a.ip,
            port: a.port,
        },
    }
}

/// Waits (up to [`WAIT`]) until `h` has at least `n` routes.
pub async fn wait_routes(h: &broker::server::ServerHandle, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.state.cluster.num_routes() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: {} routes, want {n}\n{}",
            h.state.name,
            h.state.cluster.num_routes(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A broker in `as_` with a SCION cluster listener on `port` (0 = any in the dispatched
/// range), the emulator's daemon and topology.json for that AS, the given routes, cluster
/// name "c1", and a TCP client port on loopback.
pub fn scion_node(
    name: &str,
    emu: &EmuHandle,
    dir: &TempDir,
    as_: &str,
    port: u16,
    routes: Vec<broker::options::RouteUrl>,
) -> broker::options::Options {
    use broker::options::{ClusterOpts, ListenAddr, Options, ScionOpts};
    let (daemon, topology) = as_files(emu, dir, as_);
    Options {
        server_name: Some(name.into()),
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("c1".into()),
            listen: Some(ListenAddr::Scion {
                isd_as: as_.into(),
                ip: localhost(),
                port,
            }),
            routes,
            ..Default::default()
        },
        scion: Some(ScionOpts {
            daemon: Some(daemon),
            topology: Some(topology),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A free UDP port in the emulated ASes' dispatched range (31000-32767), where the routers
/// deliver SCION packets straight to the port; never the same number twice in this test
/// process (the ports are checked and released, and tests run in parallel: every emulated
/// AS shares 127.0.0.1, so two brokers of parallel tests were once given one port).
pub fn free_dispatched_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let start = 31000 + rand::random_range(0..1700u16);
    let port = (start..32767)
        .chain(31000..start)
        .find(|p| !given.contains(p) && std::net::UdpSocket::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in the dispatched range");
    given.push(port);
    port
}

/// A free loopback TCP port (see `harness/ports.rs`).
pub fn free_tcp_port() -> u16 {
    ports::free_port()
}

/// A child process killed and reaped when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The broker binary started on `conf` (output discarded; it logs to its `log_file`).
pub fn spawn_broker(bin: &str, conf: &std::path::Path) -> Proc {
    Proc(
        std::process::Command::new(bin)
            .args(["-c", conf.to_str().expect("path")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn broker"),
    )
}

/// How many times the broker log at `log` said it is ready.
pub fn ready_count(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("Server is ready")
        .count()
}

/// Waits (up to [`WAIT`]) until `log` says "Server is ready" more than `before` times.
pub async fn wait_ready(log: &std::path::Path, before: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while ready_count(log) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "broker never became ready:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `<dir>/a.conf` for a broker process in `as_`: a free TCP client port, a log file
/// (`<dir>/a.log`, returned), the emulator's daemon and topology.json for `as_`, and `body`
/// (the listen or cluster block under test).
pub fn write_conf(emu: &EmuHandle, dir: &TempDir, as_: &str, body: &str) -> (PathBuf, PathBuf) {
    let (daemon, topo) = as_files(emu, dir, as_);
    let (conf, log) = (dir.0.join("a.conf"), dir.0.join("a.log"));
    std::fs::write(
        &conf,
        format!(
            "port: {}\nlog_file: \"{}\"\n{body}\nscion {{\n  daemon: \"{daemon}\"\n  topology: \"{}\"\n}}\n",
            free_tcp_port(),
            log.display(),
            topo.display()
        ),
    )
    .expect("conf");
    (conf, log)
}
