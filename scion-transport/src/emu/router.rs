//! Border routers of the emulated network: UDP sockets on loopback, link shaping, SCMP.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, trace};

use super::forward::{self, Step};
use super::topo::{LinkEnd, LinkParams, LinkState, Topology};
use crate::address::IsdAsn;
use crate::wire::{self, ScmpKind};

/// Most packets waiting on one link direction (delay line and bandwidth queue).
const LINK_QUEUE_PACKETS: usize = 8192;
/// Longest a packet may wait for bandwidth before the link tail-drops it.
const MAX_QUEUE_DELAY: std::time::Duration = std::time::Duration::from_millis(200);
/// Largest SCMP message a router sends (scionproto's `slayers.MaxSCMPPacketLen`).
const MAX_SCMP_PACKET: usize = 1232;
/// Port of the shim dispatcher, for destinations outside the dispatched range.
pub const SHIM_DISPATCHER_PORT: u16 = 30041;
/// Largest datagram the routers read.
const RECV_BUF: usize = 65536;

/// Counters of all routers together.
#[derive(Debug, Default)]
pub struct Counters {
    pub forwarded: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub scmp_sent: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmuStats {
    pub forwarded: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub scmp_sent: u64,
}

pub(crate) struct RouterRt {
    pub key: [u8; 16],
    pub internal: Arc<UdpSocket>,
    pub internal_addr: SocketAddr,
    pub dispatched: (u16, u16),
}

struct Shaper {
    next_free: Instant,
    last_arrival: Instant,
}

pub(crate) struct IfaceRt {
    pub link: usize,
    pub socket: Arc<UdpSocket>,
    pub local_addr: SocketAddr,
    pub peer: SocketAddr,
    shaper: Mutex<Shaper>,
    delay_tx: mpsc::Sender<(Instant, Vec<u8>)>,
}

/// Everything the router tasks, daemons and control share.
pub(crate) struct Shared {
    pub topo: Topology,
    pub links: Vec<Mutex<LinkParams>>,
    pub routers: HashMap<IsdAsn, RouterRt>,
    pub ifaces: HashMap<LinkEnd, IfaceRt>,
    pub counters: Counters,
}

impl Shared {
    pub fn link_params(&self) -> Vec<LinkParams> {
        self.links
            .iter()
            .map(|m| *m.lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    pub fn stats(&self) -> EmuStats {
        let c = &self.counters;
        EmuStats {
            forwarded: c.forwarded.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            scmp_sent: c.scmp_sent.load(Ordering::Relaxed),
        }
    }
}

/// Receiving end of one link direction's delay line: (arrival time, packet).
pub(crate) type DelayRx = mpsc::Receiver<(Instant, Vec<u8>)>;

/// Sockets bound before any task starts (so addresses are known up front).
pub(crate) struct Bound {
    pub shared: Arc<Shared>,
    pub delay_rx: Vec<(LinkEnd, DelayRx)>,
}

/// Binds every router socket on `ip` (port 0) and wires interfaces to their peers.
pub(crate) async fn bind(topo: Topology, ip: IpAddr) -> io::Result<Bound> {
    let mut routers = HashMap::new();
    for spec in &topo.ases {
        let sock = crate::quic::bind_udp_socket(SocketAddr::new(ip, 0))?;
        let addr = sock.local_addr()?;
        routers.insert(
            spec.ia,
            RouterRt {
                key: spec.key,
                internal: Arc::new(sock),
                internal_addr: addr,
                dispatched: spec.dispatched_ports,
            },
        );
    }
    let mut sockets = HashMap::new();
    for (i, link) in topo.links.iter().enumerate() {
        for end in [link.a, link.b] {
            let sock = crate::quic::bind_udp_socket(SocketAddr::new(ip, 0))?;
            let addr = sock.local_addr()?;
            sockets.insert(end, (i, Arc::new(sock), addr));
        }
    }
    let mut ifaces = HashMap::new();
    let mut delay_rx = Vec::new();
    let now = Instant::now();
    for link in &topo.links {
        for (end, other) in [(link.a, link.b), (link.b, link.a)] {
            let (i, socket, local_addr) = sockets[&end].clone();
            let peer = sockets[&other].2;
            let (delay_tx, rx) = mpsc::channel(LINK_QUEUE_PACKETS);
            delay_rx.push((end, rx));
            ifaces.insert(
                end,
                IfaceRt {
                    link: i,
                    socket,
                    local_addr,
                    peer,
                    shaper: Mutex::new(Shaper {
                        next_free: now,
                        last_arrival: now,
                    }),
                    delay_tx,
                },
            );
        }
    }
    let links = topo.links.iter().map(|l| Mutex::new(l.params)).collect();
    Ok(Bound {
        shared: Arc::new(Shared {
            topo,
            links,
            routers,
            ifaces,
            counters: Counters::default(),
        }),
        delay_rx,
    })
}

/// Receive loop of one router socket; `ingress` 0 is the AS-internal socket.
pub(crate) async fn run_socket(shared: Arc<Shared>, ia: IsdAsn, ingress: u16) {
    let socket = if ingress == 0 {
        shared.routers.get(&ia).map(|r| r.internal.clone())
    } else {
        shared
            .ifaces
            .get(&LinkEnd { ia, ifid: ingress })
            .map(|i| i.socket.clone())
    };
    let Some(socket) = socket else {
        return;
    };
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let (n, _from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP port-unreachable from a departed host surfaces here on Linux; keep going.
            Err(e) => {
                trace!(%ia, ingress, ?e, "router recv error");
                continue;
            }
        };
        // Processed in place: forwarding rewrites only the path meta header and SegIDs.
        handle(&shared, ia, ingress, &mut buf[..n], 0);
    }
}

/// Delay line of one link direction: sends each packet at its arrival time.
pub(crate) async fn run_delay_line(
    shared: Arc<Shared>,
    end: LinkEnd,
    mut rx: mpsc::Receiver<(Instant, Vec<u8>)>,
) {
    let Some(iface) = shared.ifaces.get(&end) else {
        return;
    };
    while let Some((at, pkt)) = rx.recv().await {
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        let _ = iface.socket.send_to(&pkt, iface.peer).await;
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn drop_pkt(shared: &Shared, ia: IsdAsn, why: &str) {
    shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
    debug!(%ia, why, "emulator dropped a packet");
}

/// Processes one packet at AS `ia` arriving on `ingress` (0 = from a host of the AS).
pub(crate) fn handle(shared: &Shared, ia: IsdAsn, ingress: u16, pkt: &mut [u8], depth: u8) {
    let Some(router) = shared.routers.get(&ia) else {
        return;
    };
    match forward::process(pkt, ia, &router.key, ingress, now_secs()) {
        Ok(Step::Deliver) => deliver(shared, ia, router, pkt),
        Ok(Step::Forward { egress }) => {
            let end = LinkEnd { ia, ifid: egress };
            let Some(iface) = shared.ifaces.get(&end) else {
                return scmp(
                    shared,
                    ia,
                    pkt,
                    ScmpKind::ParameterProblem {
                        code: 50,
                        pointer: 0,
                    },
                    depth,
                );
            };
            let params = *shared.links[iface.link]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match params.state {
                LinkState::Down => scmp(
                    shared,
                    ia,
                    pkt,
                    ScmpKind::ExternalInterfaceDown {
                        ia,
                        ifid: egress as u64,
                    },
                    depth,
                ),
                LinkState::Blackhole => drop_pkt(shared, ia, "blackholed link"),
                LinkState::Up => {
                    if forward::finish_egress(pkt).is_err() {
                        return drop_pkt(shared, ia, "egress");
                    }
                    if pkt.len() > params.mtu as usize {
                        return drop_pkt(shared, ia, "larger than link MTU");
                    }
                    send_on_link(shared, ia, iface, &params, pkt);
                }
            }
        }
        Ok(Step::ParameterProblem { code }) => scmp(
            shared,
            ia,
            pkt,
            ScmpKind::ParameterProblem { code, pointer: 0 },
            depth,
        ),
        Err(reason) => drop_pkt(shared, ia, &format!("{reason:?}")),
    }
}

fn send_on_link(shared: &Shared, ia: IsdAsn, iface: &IfaceRt, params: &LinkParams, pkt: &[u8]) {
    if params.loss > 0.0 && rand::random::<f64>() < params.loss {
        return drop_pkt(shared, ia, "link loss");
    }
    let now = Instant::now();
    let unshaped =
        params.latency.is_zero() && params.jitter.is_zero() && params.bandwidth_kbps == 0;
    let arrival = {
        let mut s = iface.shaper.lock().unwrap_or_else(|e| e.into_inner());
        if unshaped && s.last_arrival <= now {
            None
        } else {
            let start = s.next_free.max(now);
            if start.duration_since(now) > MAX_QUEUE_DELAY {
                drop(s);
                return drop_pkt(shared, ia, "link queue full");
            }
            let tx = if params.bandwidth_kbps > 0 {
                std::time::Duration::from_secs_f64(
                    pkt.len() as f64 * 8.0 / (params.bandwidth_kbps as f64 * 1000.0),
                )
            } else {
                std::time::Duration::ZERO
            };
            s.next_free = start + tx;
            let jitter = params.jitter.mul_f64(rand::random::<f64>());
            // Keep FIFO order per direction: jitter delays, it does not reorder.
            let at = (s.next_free + params.latency + jitter).max(s.last_arrival);
            s.last_arrival = at;
            Some(at)
        }
    };
    shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
    match arrival {
        None => {
            if iface.socket.try_send_to(pkt, iface.peer).is_err() {
                drop_pkt(shared, ia, "socket busy");
            }
        }
        Some(at) => {
            if iface.delay_tx.try_send((at, pkt.to_vec())).is_err() {
                drop_pkt(shared, ia, "delay line full");
            }
        }
    }
}

fn deliver(shared: &Shared, ia: IsdAsn, router: &RouterRt, pkt: &[u8]) {
    let Ok(lay) = forward::layout(pkt) else {
        return drop_pkt(shared, ia, "layout");
    };
    let Some(ip) = forward::dst_ip(pkt, &lay) else {
        return drop_pkt(shared, ia, "service destination");
    };
    let port = if lay.next_header == wire::SCMP_PROTOCOL {
        scmp_port(pkt)
    } else {
        forward::udp_dst_port(pkt, &lay)
    };
    let Some(port) = port else {
        return drop_pkt(shared, ia, "no destination port");
    };
    // Dispatcherless rule (scionproto >= v0.12): ports outside the range go to the shim.
    let (lo, hi) = router.dispatched;
    let port = if (lo..=hi).contains(&port) {
        port
    } else {
        SHIM_DISPATCHER_PORT
    };
    shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
    if router
        .internal
        .try_send_to(pkt, SocketAddr::new(ip, port))
        .is_err()
    {
        drop_pkt(shared, ia, "socket busy");
    }
}

/// The port an SCMP message is for: the quoted packet's source port or the echo identifier.
fn scmp_port(pkt: &[u8]) -> Option<u16> {
    match wire::decode(Bytes::copy_from_slice(pkt)).ok()? {
        wire::Received::Scmp(report) => match report.kind {
            ScmpKind::EchoRequest { id, .. } | ScmpKind::EchoReply { id, .. } => Some(id),
            _ => report.quoted.map(|q| q.src.port),
        },
        _ => None,
    }
}

/// Answers `pkt` with an SCMP error from this router, sent back along the reversed path.
fn scmp(shared: &Shared, ia: IsdAsn, pkt: &[u8], kind: ScmpKind, depth: u8) {
    let Ok(lay) = forward::layout(pkt) else {
        return drop_pkt(shared, ia, "layout");
    };
    // Never answer SCMP with SCMP (RFC 4443 §2.4 (e), which SCION's SCMP follows).
    if depth > 0 || lay.next_header == wire::SCMP_PROTOCOL {
        return drop_pkt(shared, ia, "no SCMP for SCMP");
    }
    let Some(router) = shared.routers.get(&ia) else {
        return;
    };
    let Some(src_ip) = forward::src_ip(pkt, &lay) else {
        return drop_pkt(shared, ia, "service source");
    };
    let Ok(rev) = forward::reverse_path_here(pkt) else {
        return drop_pkt(shared, ia, "reverse");
    };
    let Ok(path) = wire::DataPath::from_raw(Bytes::from(rev)) else {
        return drop_pkt(shared, ia, "reverse parse");
    };
    let overhead = wire::header_overhead(&path, router.internal_addr.ip(), src_ip) + 24;
    let quote_len = pkt.len().min(MAX_SCMP_PACKET.saturating_sub(overhead));
    let quote = Bytes::copy_from_slice(&pkt[..quote_len]);
    match wire::encode_scmp_error(
        (ia, router.internal_addr.ip()),
        (lay.src_ia, src_ip),
        &path,
        &kind,
        quote,
    ) {
        Ok(mut answer) => {
            shared.counters.scmp_sent.fetch_add(1, Ordering::Relaxed);
            drop_pkt(shared, ia, "answered with SCMP");
            if lay.src_ia == ia {
                // The offender is a host of this AS: hand the answer over directly, as a real
                // router does (its path's hop fields may be the very ones that failed).
                deliver(shared, ia, router, &answer);
            } else {
                handle(shared, ia, 0, &mut answer, depth + 1);
            }
        }
        Err(e) => debug!(%ia, ?e, "SCMP encoding failed"),
    }
}
