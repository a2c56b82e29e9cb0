//! Border routers of the emulated network: UDP sockets on loopback, link shaping, SCMP.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, trace};

use super::batch::{Group, Out, RecvBufs, RouterSocket, Source};
use super::forward::{self, HopKey, Step};
use super::topo::{LinkEnd, LinkParams, LinkState, Topology};
use crate::address::IsdAsn;
use crate::wire::{self, ScmpKind};

/// Most packets waiting on one link direction (delay line and bandwidth queue).
const LINK_QUEUE_PACKETS: usize = 8192;
/// Delay-line entry buffers kept for reuse per link direction (up to 64 KB each).
const SPARE_ENTRY_BUFFERS: usize = 32;
/// Longest a packet may wait for bandwidth before the link tail-drops it.
const MAX_QUEUE_DELAY: std::time::Duration = std::time::Duration::from_millis(200);
/// Largest SCMP message a router sends (scionproto's `slayers.MaxSCMPPacketLen`).
const MAX_SCMP_PACKET: usize = 1232;
/// Port of the shim dispatcher, for destinations outside the dispatched range.
pub use crate::socket::SHIM_DISPATCHER_PORT;

/// Maps looked up per packet: SipHash showed up in the forwarding profile.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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
    pub key: HopKey,
    pub internal: RouterSocket,
    pub internal_addr: SocketAddr,
    pub dispatched: (u16, u16),
}

struct Shaper {
    next_free: Instant,
    last_arrival: Instant,
}

pub(crate) struct IfaceRt {
    pub link: usize,
    pub socket: RouterSocket,
    pub local_addr: SocketAddr,
    /// The other end's socket address (its underlay address in topology.json).
    pub peer: SocketAddr,
    /// The other end of the link: where packets sent on this interface are processed next.
    pub peer_end: LinkEnd,
    shaper: Mutex<Shaper>,
    delay_tx: mpsc::Sender<DelayBatch>,
    /// Packets in this direction's delay line (handed over or still collected by a task).
    queued: AtomicUsize,
    /// Buffers of delay-line entries already sent on, for the next entries (grown ones: a
    /// new buffer was copied several times while it grew to a GRO batch).
    spare: Mutex<Vec<Vec<u8>>>,
}

/// Packets that entered one link direction at once and arrive at the far end at the same
/// time, in order: everything one received batch sends over a latency-shaped link travels
/// as one delay-line entry. One entry per packet (an allocation, a copy and a channel send
/// each) cost the 1 KiB route benchmark about 3 % of its throughput (interleaved A/B).
pub(crate) struct DelayBatch {
    at: Instant,
    data: Vec<u8>,
    lens: Vec<u16>,
}

/// What one task produced while handling packets, besides the packets it sends right away:
/// SCMP answers, and packets for shaped links not yet handed to their delay lines.
pub(crate) struct Work<'s> {
    answers: Answers<'s>,
    delayed: Vec<(&'s IfaceRt, DelayBatch)>,
}

impl<'s> Work<'s> {
    fn new() -> Self {
        Work {
            answers: Vec::new(),
            delayed: Vec::new(),
        }
    }

    /// Puts a packet on `iface`'s delay line for arrival at `at`: into the entry being
    /// collected for that direction when it has the same arrival time, else a new entry
    /// (the previous one is handed over first, so the direction stays in order).
    fn delay(&mut self, shared: &Shared, ia: IsdAsn, iface: &'s IfaceRt, at: Instant, pkt: &[u8]) {
        if let Some(i) = self
            .delayed
            .iter()
            .position(|(f, _)| std::ptr::eq(*f, iface))
        {
            let batch = &mut self.delayed[i].1;
            // At most a GRO batch per entry: a larger one was copied again and again as it
            // grew (up to a whole receive call, 1 MB).
            if batch.at == at && batch.data.len() + pkt.len() <= super::batch::SLOT_BYTES {
                batch.data.extend_from_slice(pkt);
                batch.lens.push(pkt.len() as u16);
                return;
            }
            let (f, batch) = self.delayed.swap_remove(i);
            hand_over(shared, ia, f, batch);
        }
        let spare = iface.spare.lock().ok().and_then(|mut s| s.pop());
        let mut data = spare.unwrap_or_else(|| Vec::with_capacity(pkt.len() * 8));
        data.clear();
        data.extend_from_slice(pkt);
        self.delayed.push((
            iface,
            DelayBatch {
                at,
                data,
                lens: vec![pkt.len() as u16],
            },
        ));
    }

    /// Hands every collected entry to its delay line.
    fn flush_delayed(&mut self, shared: &Shared, ia: IsdAsn) {
        for (iface, batch) in self.delayed.drain(..) {
            hand_over(shared, ia, iface, batch);
        }
    }
}

/// Sends an entry into its delay line; a closed line (emulator shutting down) drops it.
fn hand_over(shared: &Shared, ia: IsdAsn, iface: &IfaceRt, batch: DelayBatch) {
    let n = batch.lens.len();
    if iface.delay_tx.try_send(batch).is_err() {
        iface.queued.fetch_sub(n, Ordering::Relaxed);
        shared
            .counters
            .dropped
            .fetch_add(n as u64, Ordering::Relaxed);
        debug!(%ia, packets = n, "emulator dropped packets: delay line closed or full");
    }
}

/// Everything the router tasks, daemons and control share.
pub(crate) struct Shared {
    pub topo: Topology,
    pub links: Vec<Mutex<LinkParams>>,
    pub routers: FastMap<IsdAsn, RouterRt>,
    pub ifaces: FastMap<LinkEnd, IfaceRt>,
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

/// Receiving end of one link direction's delay line.
pub(crate) type DelayRx = mpsc::Receiver<DelayBatch>;

/// Sockets bound before any task starts (so addresses are known up front).
pub(crate) struct Bound {
    pub shared: Arc<Shared>,
    pub delay_rx: Vec<(LinkEnd, DelayRx)>,
}

/// Binds every router socket on `ip` (port 0; an AS listed in `internal` has its AS-internal
/// socket on that address instead) and wires interfaces to their peers.
pub(crate) async fn bind(
    topo: Topology,
    ip: IpAddr,
    internal: &[(IsdAsn, IpAddr)],
) -> io::Result<Bound> {
    let mut routers = FastMap::default();
    for spec in &topo.ases {
        let own = internal.iter().find(|(ia, _)| *ia == spec.ia).map(|e| e.1);
        let sock = RouterSocket::bind(SocketAddr::new(own.unwrap_or(ip), 0))?;
        let addr = sock.addr;
        routers.insert(
            spec.ia,
            RouterRt {
                key: HopKey::new(&spec.key),
                internal: sock,
                internal_addr: addr,
                dispatched: spec.dispatched_ports,
            },
        );
    }
    let mut sockets = HashMap::new();
    for (i, link) in topo.links.iter().enumerate() {
        for end in [link.a, link.b] {
            let sock = RouterSocket::bind(SocketAddr::new(ip, 0))?;
            sockets.insert(end, (i, sock));
        }
    }
    let addrs: HashMap<LinkEnd, SocketAddr> =
        sockets.iter().map(|(end, (_, s))| (*end, s.addr)).collect();
    let mut ifaces = FastMap::default();
    let mut delay_rx = Vec::new();
    let now = Instant::now();
    for link in &topo.links {
        for (end, other) in [(link.a, link.b), (link.b, link.a)] {
            let Some((i, socket)) = sockets.remove(&end) else {
                continue;
            };
            let local_addr = socket.addr;
            let peer = addrs[&other];
            let (delay_tx, rx) = mpsc::channel(LINK_QUEUE_PACKETS);
            delay_rx.push((end, rx));
            ifaces.insert(
                end,
                IfaceRt {
                    link: i,
                    socket,
                    local_addr,
                    peer,
                    peer_end: other,
                    shaper: Mutex::new(Shaper {
                        next_free: now,
                        last_arrival: now,
                    }),
                    delay_tx,
                    queued: AtomicUsize::new(0),
                    spare: Mutex::new(Vec::new()),
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
///
/// Reads a batch, processes every packet in place (forwarding rewrites only the path meta
/// header and SegIDs, never a length), and sends runs of consecutive packets with the same
/// next hop and size as one GSO send.
pub(crate) async fn run_socket(shared: Arc<Shared>, ia: IsdAsn, ingress: u16) {
    let shared: &Shared = &shared;
    let socket = if ingress == 0 {
        shared.routers.get(&ia).map(|r| &r.internal)
    } else {
        shared
            .ifaces
            .get(&LinkEnd { ia, ifid: ingress })
            .map(|i| &i.socket)
    };
    let Some(socket) = socket else {
        return;
    };
    let mut bufs = RecvBufs::new();
    let mut group = Group::new();
    let mut work = Work::new();
    loop {
        let n = match bufs.recv_from(socket).await {
            Ok(n) => n,
            // ICMP port-unreachable from a departed host surfaces here on Linux; keep going.
            Err(e) => {
                trace!(%ia, ingress, ?e, "router recv error");
                continue;
            }
        };
        let clock = Clock::now();
        for slot in 0..n {
            let stride = bufs.stride(slot);
            let len = bufs.datagram_mut(slot).len();
            let mut off = 0;
            while off < len && stride > 0 {
                let end = (off + stride).min(len);
                let pkt = &mut bufs.datagram_mut(slot)[off..end];
                let out = handle(shared, ia, ingress, pkt, &clock, 0, &mut work);
                send_answers(shared, ia, &mut group, Some(&bufs), &mut work.answers);
                if let Some(out) = out {
                    if !group.fits(&out, end - off) {
                        flush(shared, ia, &mut group, Some(&bufs));
                    }
                    group.push(out, &bufs, slot, off..end);
                }
                off = end;
            }
        }
        flush(shared, ia, &mut group, Some(&bufs));
        work.flush_delayed(shared, ia);
    }
}

/// Delay line of one link direction: at each entry's arrival time the far end's router
/// processes its packets (and those of every other entry already due), and what leaves that
/// router goes out in the same (GSO) sends.
pub(crate) async fn run_delay_line(shared: Arc<Shared>, end: LinkEnd, mut rx: DelayRx) {
    let shared: &Shared = &shared;
    let Some(iface) = shared.ifaces.get(&end) else {
        return;
    };
    let far = iface.peer_end;
    let mut group = Group::new();
    let mut work = Work::new();
    let mut next = None;
    loop {
        let batch = match next.take() {
            Some(batch) => batch,
            None => match rx.recv().await {
                Some(batch) => batch,
                None => return,
            },
        };
        if batch.at > Instant::now() {
            tokio::time::sleep_until(batch.at).await;
        }
        let clock = Clock::now();
        let mut due = Some(batch);
        // Bounded by the channel's capacity; the first entry not yet due waits for its time.
        while let Some(mut batch) = due.take() {
            iface.queued.fetch_sub(batch.lens.len(), Ordering::Relaxed);
            // Packets leave straight from the entry's buffer (runs of equal size to the same
            // host as one GSO send), so the group is sent before the entry is dropped.
            let mut off = 0;
            for &len in &batch.lens {
                let range = off..off + len as usize;
                let Some(pkt) = batch.data.get_mut(range.clone()) else {
                    break;
                };
                off = range.end;
                let out = handle(shared, far.ia, far.ifid, pkt, &clock, 0, &mut work);
                send_answers(
                    shared,
                    far.ia,
                    &mut group,
                    Some(&batch.data[..]),
                    &mut work.answers,
                );
                if let Some(out) = out {
                    if !group.fits(&out, range.len()) {
                        flush(shared, far.ia, &mut group, Some(&batch.data[..]));
                    }
                    group.push(out, &batch.data[..], 0, range);
                }
            }
            flush(shared, far.ia, &mut group, Some(&batch.data[..]));
            if let Ok(mut spare) = iface.spare.lock() {
                if spare.len() < SPARE_ENTRY_BUFFERS {
                    spare.push(batch.data);
                }
            }
            match rx.try_recv() {
                Ok(b) if b.at > clock.now => next = Some(b),
                Ok(b) => due = Some(b),
                Err(_) => {}
            }
        }
        work.flush_delayed(shared, far.ia);
    }
}

/// Sends a finished group; a refused send drops (and counts) all its packets.
fn flush<S: Source + ?Sized>(shared: &Shared, ia: IsdAsn, group: &mut Group<'_>, bufs: Option<&S>) {
    let Some(f) = group.take(bufs) else {
        return;
    };
    if f.out
        .socket
        .try_send(f.out.to, f.contents, f.segment)
        .is_err()
    {
        shared
            .counters
            .dropped
            .fetch_add(f.count as u64, Ordering::Relaxed);
        debug!(%ia, packets = f.count, "emulator dropped packets: socket busy");
    }
}

/// Sends the SCMP answers of the packet just handled, after the group collected before it,
/// so everything a task sends keeps its order.
fn send_answers<'s, S: Source + ?Sized>(
    shared: &Shared,
    ia: IsdAsn,
    group: &mut Group<'s>,
    bufs: Option<&S>,
    answers: &mut Answers<'s>,
) {
    if answers.is_empty() {
        return;
    }
    flush(shared, ia, group, bufs);
    for (out, answer) in answers.drain(..) {
        send_one(shared, ia, out, &answer);
    }
}

fn send_one(shared: &Shared, ia: IsdAsn, out: Out<'_>, pkt: &[u8]) {
    if out.socket.try_send(out.to, pkt, pkt.len()).is_err() {
        drop_pkt(shared, ia, "socket busy");
    }
}

/// Time of one received batch: every packet in it arrived at about the same moment.
pub(crate) struct Clock {
    now: Instant,
    secs: u64,
}

impl Clock {
    pub fn now() -> Clock {
        Clock {
            now: Instant::now(),
            secs: now_secs(),
        }
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

/// SCMP answers a router produced while handling one packet, with where each goes.
pub(crate) type Answers<'s> = Vec<(Out<'s>, Vec<u8>)>;

/// Most link crossings one packet may make inside the emulator: a SCION path has at most
/// 3 × 63 hop fields and every crossing uses at least one, so this is only a safety bound.
const MAX_CROSSINGS: usize = 192;

/// Processes one packet at AS `ia` arriving on `ingress` (0 = from a host of the AS).
///
/// Returns where the (rewritten in place) packet leaves for when it goes out on the fast path
/// now; `None` when it was dropped, answered, or queued on a shaped link. A packet sent on an
/// unshaped link is processed by the far end's router right away: links are emulated in
/// memory, only hosts are reached over UDP. SCMP answers are added to `answers`.
pub(crate) fn handle<'s>(
    shared: &'s Shared,
    ia: IsdAsn,
    ingress: u16,
    pkt: &mut [u8],
    clock: &Clock,
    depth: u8,
    work: &mut Work<'s>,
) -> Option<Out<'s>> {
    let (mut ia, mut ingress) = (ia, ingress);
    for _ in 0..MAX_CROSSINGS {
        match step(shared, ia, ingress, pkt, clock, depth, work) {
            Next::Out(out) => return Some(out),
            Next::Gone => return None,
            Next::Across(far) => (ia, ingress) = (far.ia, far.ifid),
        }
    }
    drop_pkt(shared, ia, "too many link crossings");
    None
}

/// What one router did with a packet.
enum Next<'s> {
    /// Leaves over UDP now (to a host of the AS).
    Out(Out<'s>),
    /// Crossed an unshaped link: the router at this end processes it next.
    Across(LinkEnd),
    /// Dropped, answered with SCMP, or queued on a shaped link.
    Gone,
}

/// One router's part of [`handle`].
fn step<'s>(
    shared: &'s Shared,
    ia: IsdAsn,
    ingress: u16,
    pkt: &mut [u8],
    clock: &Clock,
    depth: u8,
    work: &mut Work<'s>,
) -> Next<'s> {
    let Some(router) = shared.routers.get(&ia) else {
        return Next::Gone;
    };
    match forward::process(pkt, ia, &router.key, ingress, clock.secs) {
        Ok(Step::Deliver) => match deliver(shared, ia, router, pkt) {
            Some(out) => Next::Out(out),
            None => Next::Gone,
        },
        Ok(Step::Forward { egress }) => {
            let end = LinkEnd { ia, ifid: egress };
            let Some(iface) = shared.ifaces.get(&end) else {
                let kind = ScmpKind::ParameterProblem {
                    code: 50,
                    pointer: 0,
                };
                scmp(shared, ia, pkt, kind, clock, depth, work);
                return Next::Gone;
            };
            let params = *shared.links[iface.link]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match params.state {
                LinkState::Down => {
                    let kind = ScmpKind::ExternalInterfaceDown {
                        ia,
                        ifid: egress as u64,
                    };
                    scmp(shared, ia, pkt, kind, clock, depth, work);
                    Next::Gone
                }
                LinkState::Blackhole => {
                    drop_pkt(shared, ia, "blackholed link");
                    Next::Gone
                }
                LinkState::Up => {
                    if forward::finish_egress(pkt).is_err() {
                        drop_pkt(shared, ia, "egress");
                        return Next::Gone;
                    }
                    if pkt.len() > params.mtu as usize {
                        drop_pkt(shared, ia, "larger than link MTU");
                        return Next::Gone;
                    }
                    if send_on_link(shared, ia, iface, &params, pkt, clock.now, work) {
                        Next::Across(iface.peer_end)
                    } else {
                        Next::Gone
                    }
                }
            }
        }
        Ok(Step::ParameterProblem { code }) => {
            let kind = ScmpKind::ParameterProblem { code, pointer: 0 };
            scmp(shared, ia, pkt, kind, clock, depth, work);
            Next::Gone
        }
        Err(reason) => {
            drop_pkt(shared, ia, &format!("{reason:?}"));
            Next::Gone
        }
    }
}

/// Link shaping of one packet: `true` = it crosses now (unshaped and nothing queued), else it
/// went into the link's delay line (or was dropped by loss or a full queue).
fn send_on_link<'s>(
    shared: &Shared,
    ia: IsdAsn,
    iface: &'s IfaceRt,
    params: &LinkParams,
    pkt: &[u8],
    now: Instant,
    work: &mut Work<'s>,
) -> bool {
    if params.loss > 0.0 && rand::random::<f64>() < params.loss {
        drop_pkt(shared, ia, "link loss");
        return false;
    }
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
                drop_pkt(shared, ia, "link queue full");
                return false;
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
        None => true,
        Some(at) => {
            if iface.queued.fetch_add(1, Ordering::Relaxed) >= LINK_QUEUE_PACKETS {
                iface.queued.fetch_sub(1, Ordering::Relaxed);
                drop_pkt(shared, ia, "delay line full");
            } else {
                work.delay(shared, ia, iface, at, pkt);
            }
            false
        }
    }
}

fn deliver<'s>(
    shared: &'s Shared,
    ia: IsdAsn,
    router: &'s RouterRt,
    pkt: &[u8],
) -> Option<Out<'s>> {
    let Ok(lay) = forward::layout(pkt) else {
        drop_pkt(shared, ia, "layout");
        return None;
    };
    let Some(ip) = forward::dst_ip(pkt, &lay) else {
        drop_pkt(shared, ia, "service destination");
        return None;
    };
    let port = if lay.next_header == wire::SCMP_PROTOCOL {
        scmp_port(pkt)
    } else {
        forward::udp_dst_port(pkt, &lay)
    };
    let Some(port) = port else {
        drop_pkt(shared, ia, "no destination port");
        return None;
    };
    // Dispatcherless rule (scionproto >= v0.12): ports outside the range go to the shim.
    let (lo, hi) = router.dispatched;
    let port = if (lo..=hi).contains(&port) {
        port
    } else {
        SHIM_DISPATCHER_PORT
    };
    shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
    Some(Out {
        socket: &router.internal,
        to: SocketAddr::new(ip, port),
    })
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
fn scmp<'s>(
    shared: &'s Shared,
    ia: IsdAsn,
    pkt: &[u8],
    kind: ScmpKind,
    clock: &Clock,
    depth: u8,
    work: &mut Work<'s>,
) {
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
            let out = if lay.src_ia == ia {
                // The offender is a host of this AS: hand the answer over directly, as a real
                // router does (its path's hop fields may be the very ones that failed).
                deliver(shared, ia, router, &answer)
            } else {
                handle(shared, ia, 0, &mut answer, clock, depth + 1, work)
            };
            if let Some(out) = out {
                work.answers.push((out, answer));
            }
        }
        Err(e) => debug!(%ia, ?e, "SCMP encoding failed"),
    }
}
