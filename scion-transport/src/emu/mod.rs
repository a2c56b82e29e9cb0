//! `scion-emu`: a SCION network on one machine, for tests, benchmarks and the demo.
//!
//! Border routers forward real SCION packets hop by hop (MACs checked with per-AS keys), each
//! AS has a daemon speaking sciond's gRPC API, and links can be shaped, cut (SCMP-signalled)
//! or blackholed at run time through [`EmuHandle`] or the control socket (see [`control`]).
//!
//! Hosts reach their AS's router over UDP on loopback, as real end hosts reach theirs. Links
//! between ASes are emulated in memory: after the link's delay (none when unshaped) the far
//! router processes the packet in the same task, so a packet costs UDP system calls only where
//! it enters and leaves the network. (Each interface still binds its underlay socket, the
//! address topology.json names, and forwards what arrives there.)
//!
//! Routers read with recvmmsg + GRO and send with GSO (quinn-udp): a batch of packets with the
//! same next hop goes out in a few system calls, so the emulator forwards well above what one
//! QUIC connection needs (see `tests/emu_rate.rs` and the transport bench).

mod batch;
pub mod control;
mod daemon;
pub mod forward;
pub mod paths;
mod router;
pub mod shim;
pub mod topo;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use scion_protobuf::daemon::v1::daemon_service_server::DaemonServiceServer;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

pub use control::{parse_command, Command, CommandError, LinkChange};
pub use router::{EmuStats, SHIM_DISPATCHER_PORT};
pub use topo::{LinkEnd, LinkParams, LinkState, Topology, TopologyError};

use crate::address::IsdAsn;
use router::Shared;

/// Errors of starting or controlling the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    #[error("emulator socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no link has interface {0}")]
    UnknownInterface(LinkEnd),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Options of [`Emulator::start`].
#[derive(Debug, Clone)]
pub struct EmuOptions {
    /// Loopback address the routers, daemons and control socket bind to (port 0 each).
    pub ip: IpAddr,
    /// Fixed control socket address (None = `ip` with an ephemeral port).
    pub control: Option<SocketAddr>,
    /// Lifetime of the paths the daemons hand out.
    pub hops: paths::HopLifetime,
    /// Run a shim dispatcher on this address, port 30041 (see [`shim`]).
    pub shim: Option<IpAddr>,
    /// AS-internal address of an AS's border router, where its hosts send their packets,
    /// instead of `ip`: an AS with IPv6 hosts next to one with IPv4 hosts.
    pub internal_ip: Vec<(crate::address::IsdAsn, IpAddr)>,
}

impl Default for EmuOptions {
    fn default() -> Self {
        EmuOptions {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            control: None,
            hops: paths::HopLifetime::default(),
            shim: None,
            internal_ip: Vec::new(),
        }
    }
}

/// Starts emulated networks.
pub struct Emulator;

impl Emulator {
    /// Binds every socket, then starts routers, daemons and the control socket.
    pub async fn start(topology: Topology, options: EmuOptions) -> Result<EmuHandle, EmuError> {
        let bound = router::bind(topology, options.ip, &options.internal_ip).await?;
        let shared = bound.shared;
        // Bound before any task starts, so a taken port stops nothing half-started.
        let shim = match options.shim {
            Some(ip) => {
                let routers = shared.routers.values().map(|r| r.internal_addr).collect();
                Some(shim::Shim::start(ip, routers).await?)
            }
            None => None,
        };
        let mut tasks = Vec::new();
        for ia in shared.routers.keys() {
            tasks.push(tokio::spawn(router::run_socket(shared.clone(), *ia, 0)));
        }
        for end in shared.ifaces.keys() {
            tasks.push(tokio::spawn(router::run_socket(
                shared.clone(),
                end.ia,
                end.ifid,
            )));
        }
        for (end, rx) in bound.delay_rx {
            tasks.push(tokio::spawn(router::run_delay_line(
                shared.clone(),
                end,
                rx,
            )));
        }
        let mut daemons = BTreeMap::new();
        for spec in &shared.topo.ases {
            let listener = TcpListener::bind(SocketAddr::new(options.ip, 0)).await?;
            daemons.insert(spec.ia, listener.local_addr()?);
            let service = daemon::WithPortRange {
                inner: DaemonServiceServer::new(daemon::EmuDaemon {
                    ia: spec.ia,
                    shared: shared.clone(),
                    hops: options.hops,
                }),
                range: spec.dispatched_ports,
            };
            // Nagle plus delayed ACKs would add ~40 ms to every daemon answer.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            tasks.push(tokio::spawn(async move {
                if let Err(e) = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming)
                    .await
                {
                    tracing::warn!(?e, "emulated daemon stopped");
                }
            }));
        }
        let control_sock =
            UdpSocket::bind(options.control.unwrap_or(SocketAddr::new(options.ip, 0))).await?;
        let control = control_sock.local_addr()?;
        let handle_shared = shared.clone();
        let daemons_for_show = daemons.clone();
        tasks.push(tokio::spawn(async move {
            serve_control(control_sock, handle_shared, daemons_for_show).await
        }));
        Ok(EmuHandle {
            shared,
            daemons,
            control,
            tasks,
            shim,
        })
    }
}

/// A running emulated network; dropping it stops every router and daemon.
pub struct EmuHandle {
    shared: Arc<Shared>,
    daemons: BTreeMap<IsdAsn, SocketAddr>,
    control: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    shim: Option<shim::Shim>,
}

impl Drop for EmuHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl EmuHandle {
    /// gRPC address of the AS's daemon (what `SCION_DAEMON_ADDRESS` would hold).
    pub fn daemon_addr(&self, ia: IsdAsn) -> Option<SocketAddr> {
        self.daemons.get(&ia).copied()
    }

    /// AS-internal address of the AS's border router.
    pub fn router_addr(&self, ia: IsdAsn) -> Option<SocketAddr> {
        self.shared.routers.get(&ia).map(|r| r.internal_addr)
    }

    /// Address of the control socket.
    pub fn control_addr(&self) -> SocketAddr {
        self.control
    }

    /// Address of the shim dispatcher, when one runs.
    pub fn shim_addr(&self) -> Option<SocketAddr> {
        self.shim.as_ref().map(shim::Shim::addr)
    }

    pub fn topology(&self) -> &Topology {
        &self.shared.topo
    }

    /// Changes a link named by either of its ends.
    pub fn set_link(&self, end: LinkEnd, change: LinkChange) -> Result<(), EmuError> {
        apply(&self.shared, end, change)
    }

    /// Runs one control command, returning its text answer.
    pub fn command(&self, line: &str) -> Result<String, EmuError> {
        run_command(&self.shared, &self.daemons, line)
    }

    pub fn stats(&self) -> EmuStats {
        self.shared.stats()
    }

    /// The AS's topology.json (scionproto format) with its router and dispatched ports.
    pub fn topology_json(&self, ia: IsdAsn) -> Option<String> {
        topology_json(&self.shared, ia)
    }

    /// Human-readable summary of addresses (also the `show` control command).
    pub fn describe(&self) -> String {
        describe(&self.shared, &self.daemons)
    }
}

fn apply(shared: &Shared, end: LinkEnd, change: LinkChange) -> Result<(), EmuError> {
    let link = shared
        .topo
        .link_of(end)
        .ok_or(EmuError::UnknownInterface(end))?;
    let mut p = shared.links[link].lock().unwrap_or_else(|e| e.into_inner());
    match change {
        LinkChange::State(s) => p.state = s,
        LinkChange::Latency(d) => p.latency = d,
        LinkChange::Jitter(d) => p.jitter = d,
        LinkChange::Loss(l) => p.loss = l,
        LinkChange::BandwidthKbps(b) => p.bandwidth_kbps = b,
    }
    tracing::info!(%end, ?change, "emulated link changed");
    Ok(())
}

fn run_command(
    shared: &Shared,
    daemons: &BTreeMap<IsdAsn, SocketAddr>,
    line: &str,
) -> Result<String, EmuError> {
    match parse_command(line)? {
        Command::Link(end, change) => {
            apply(shared, end, change)?;
            Ok("ok".into())
        }
        Command::Show => Ok(describe(shared, daemons)),
    }
}

fn describe(shared: &Shared, daemons: &BTreeMap<IsdAsn, SocketAddr>) -> String {
    let mut out = String::new();
    for spec in &shared.topo.ases {
        let router = shared.routers.get(&spec.ia).map(|r| r.internal_addr);
        out.push_str(&format!(
            "as {} core={} daemon={} router={} dispatched_ports={}-{}\n",
            spec.ia,
            spec.core,
            daemons
                .get(&spec.ia)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            router.map(|a| a.to_string()).unwrap_or_default(),
            spec.dispatched_ports.0,
            spec.dispatched_ports.1
        ));
    }
    let params = shared.link_params();
    for (link, p) in shared.topo.links.iter().zip(params) {
        out.push_str(&format!(
            "link {} {} state={:?} latency_ms={} jitter_ms={} bandwidth_kbps={} loss={}\n",
            link.a,
            link.b,
            p.state,
            p.latency.as_secs_f64() * 1000.0,
            p.jitter.as_secs_f64() * 1000.0,
            p.bandwidth_kbps,
            p.loss
        ));
    }
    out
}

/// topology.json's `link_to`: what the AS across the link is to us (scionproto's words),
/// from each AS's distance in links to the nearest core AS: core to core is `core`, the
/// side nearer the core is the `parent`, and two non-core ASes as near are `peer`s.
fn link_to(ours: usize, theirs: usize, both_core: bool) -> &'static str {
    match ours.cmp(&theirs) {
        _ if both_core => "core",
        std::cmp::Ordering::Greater => "parent",
        std::cmp::Ordering::Less => "child",
        std::cmp::Ordering::Equal => "peer",
    }
}

/// Links from each AS to the nearest core AS (0 for a core AS; ASes with no way to a core
/// count as farthest).
fn core_distance(topo: &Topology) -> BTreeMap<IsdAsn, usize> {
    let mut dist: BTreeMap<IsdAsn, usize> = topo
        .ases
        .iter()
        .filter(|a| a.core)
        .map(|a| (a.ia, 0))
        .collect();
    // Bellman-Ford style relaxation: at most one round per AS.
    for _ in 0..topo.ases.len() {
        let mut changed = false;
        for l in &topo.links {
            for (x, y) in [(l.a.ia, l.b.ia), (l.b.ia, l.a.ia)] {
                if let Some(&dx) = dist.get(&x) {
                    if dist.get(&y).is_none_or(|&dy| dy > dx + 1) {
                        dist.insert(y, dx + 1);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    dist
}

fn topology_json(shared: &Shared, ia: IsdAsn) -> Option<String> {
    let spec = shared.topo.as_spec(ia)?;
    let router = shared.routers.get(&ia)?;
    let mut interfaces = serde_json::Map::new();
    let dist = core_distance(&shared.topo);
    for (end, iface) in shared.ifaces.iter().filter(|(e, _)| e.ia == ia) {
        let link = &shared.topo.links[iface.link];
        let remote = if link.a == *end { link.b } else { link.a };
        interfaces.insert(
            end.ifid.to_string(),
            serde_json::json!({
                "underlay": {"local": iface.local_addr.to_string(), "remote": iface.peer.to_string()},
                "isd_as": remote.ia.to_string(),
                "link_to": link_to(
                    dist.get(&ia).copied().unwrap_or(usize::MAX),
                    dist.get(&remote.ia).copied().unwrap_or(usize::MAX),
                    spec.core && shared.topo.as_spec(remote.ia).is_some_and(|r| r.core),
                ),
                "mtu": link.params.mtu,
            }),
        );
    }
    let json = serde_json::json!({
        "isd_as": ia.to_string(),
        "mtu": spec.mtu,
        "attributes": if spec.core { vec!["core"] } else { vec![] },
        "dispatched_ports": format!("{}-{}", spec.dispatched_ports.0, spec.dispatched_ports.1),
        "border_routers": {
            format!("br{}-1", ia.to_string().replace([':', '-'], "_")): {
                "internal_addr": router.internal_addr.to_string(),
                "interfaces": interfaces,
            }
        }
    });
    serde_json::to_string_pretty(&json).ok()
}

async fn serve_control(
    socket: UdpSocket,
    shared: Arc<Shared>,
    daemons: BTreeMap<IsdAsn, SocketAddr>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let answer = match std::str::from_utf8(&buf[..n]) {
            Ok(line) => match run_command(&shared, &daemons, line.trim()) {
                Ok(text) => text,
                Err(e) => format!("error: {e}"),
            },
            Err(_) => "error: command is not UTF-8".to_string(),
        };
        let _ = socket.send_to(answer.as_bytes(), from).await;
    }
}

/// Sends one command to a running emulator's control socket and returns its answer.
pub async fn send_control(control: SocketAddr, line: &str) -> std::io::Result<String> {
    let bind: SocketAddr = if control.is_ipv4() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    } else {
        "[::1]:0".parse().map_err(std::io::Error::other)?
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.send_to(line.as_bytes(), control).await?;
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer from emulator")
        })??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Runs an emulator until Ctrl-C: prints its addresses and, if `topology_dir` is given, writes
/// one `<ISD-AS>.topology.json` per AS there (for `TransportConfig::topology`).
pub async fn serve(
    topology: Topology,
    options: EmuOptions,
    topology_dir: Option<&std::path::Path>,
) -> Result<(), EmuError> {
    let handle = Emulator::start(topology, options).await?;
    if let Some(dir) = topology_dir {
        std::fs::create_dir_all(dir)?;
        for spec in &handle.topology().ases {
            if let Some(json) = handle.topology_json(spec.ia) {
                let name = format!("{}.topology.json", spec.ia.to_string().replace(':', "_"));
                std::fs::write(dir.join(name), json)?;
            }
        }
    }
    println!("control {}", handle.control_addr());
    if let Some(shim) = handle.shim_addr() {
        println!("shim {shim}");
    }
    print!("{}", handle.describe());
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    tokio::signal::ctrl_c().await?;
    Ok(())
}
