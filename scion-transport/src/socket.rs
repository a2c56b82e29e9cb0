//! The SCION socket: a tokio UDP socket whose port is the SCION/UDP port (dispatcherless),
//! with one path selector per remote address.
//!
//! Receive side: every datagram is decoded and demultiplexed: SCION/UDP payloads of exactly
//! the probe size starting with 0x00 and a probe kind are probes, other SCION/UDP payloads go to
//! QUIC, SCMP goes to the selector. The first byte alone does not separate them: a peer that
//! advertises `grease_quic_bit` (RFC 9287; quinn does by default) receives packets with the
//! 0x40 fixed bit cleared, and after header protection about one in 64 of those starts with
//! 0x00. A probe's 18 bytes are shorter than any valid QUIC packet, so size decides. Our
//! endpoints also stop advertising the greasing (see `quic.rs`). SCMP is accepted only when it
//! quotes a packet we sent (our address and port, to a peer we know), and it never becomes a
//! socket or connection error: it only marks paths down.
//!
//! Send side: QUIC datagrams go over the selector's active set (one path, or N disjoint paths
//! in redundant mode), or, before the selector has paths, over the reverse of the path the peer
//! last used to reach us.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quinn::udp::{UdpSockRef, UdpSocketState};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, Notify};
use tracing::{debug, info, warn};

use crate::address::{IsdAsn, ScionAddr};
use crate::daemon::DaemonClient;
use crate::path::{
    CandidateView, PathFingerprint, PathState, Selector, SelectorAction, SelectorConfig,
    SwitchCause,
};
use crate::wire::{self, DataPath, ScionPath, ScmpKind};

mod batch;

/// First byte of a probe frame; never the first byte of a QUIC packet.
pub const PROBE_TAG: u8 = 0x00;
/// The shim dispatcher's port (scionproto `underlay.EndhostPort`): border routers deliver
/// packets for ports outside the AS's dispatched range there.
pub const SHIM_DISPATCHER_PORT: u16 = 30041;
const PROBE_REQUEST: u8 = 1;
const PROBE_REPLY: u8 = 2;
const PROBE_LEN: usize = 18;
/// Bound on remembered probe sequence numbers per peer.
const MAX_PENDING_PROBES: usize = 4096;
/// Longest the path driver sleeps when no selector asks for an earlier wake-up.
const DRIVER_IDLE: Duration = Duration::from_millis(100);
/// QUIC datagrams (GSO segments) remembered per peer for replay after a failover: at least
/// this many (or all sent), at most one send buffer more.
const REPLAY_PACKETS: usize = 128;
/// Send buffers kept for reuse once the replay memory lets go of them (a send buffer holds up
/// to 64 QUIC packets, ~90 KB; without reuse every transmit allocated one).
const SPARE_BUFFERS: usize = 16;
/// Replay window after an SCMP-signalled switch: datagrams this young were likely sent into
/// the broken link before the router's answer arrived.
const REPLAY_SCMP: Duration = Duration::from_millis(50);
/// Upper bound of the replay window after a probe-loss switch.
const REPLAY_MAX: Duration = Duration::from_millis(500);
/// Datagrams re-sent when a path answers again after every path was down: the newest ones
/// QUIC sent, whatever their age (see `Peer::track_outage`).
const REPLAY_AFTER_OUTAGE: usize = 4;
/// An outage that starts again this soon after one ended continues it (a path revived by a
/// single answer that fails again).
const OUTAGE_FLAP: Duration = Duration::from_secs(1);
/// Peers without traffic this long are forgotten (QUIC keep-alives keep live ones fresh).
const PEER_IDLE: Duration = Duration::from_secs(120);

/// A peer with no QUIC datagram either way for this long has no live connection: every
/// connection idles out before (routes after 30 s, client links after 5 s; both send
/// keep-alives well within that while alive, and keep retransmitting through an outage). Its
/// paths are then no longer probed, so a broker that shut down or went away stops being
/// reported as path failures, and the switch counts start over when a connection comes back.
const PEER_QUIET: Duration = Duration::from_secs(35);

/// After the last [`PeerHold`] on a peer is dropped (its route or client link closed), QUIC
/// traffic within this time is the closing handshake's, not a new connection: the peer stays
/// quiet through it.
const RELEASE_SETTLE: Duration = Duration::from_secs(2);

impl Peer {
    /// Not probed: released by its last link (and no traffic since the closing handshake),
    /// or no QUIC traffic for [`PEER_QUIET`].
    fn quiet(&self, now: Instant) -> bool {
        let released = self.holds == 0
            && self
                .released_at
                .is_some_and(|t| self.last_activity <= t + RELEASE_SETTLE);
        released || now.saturating_duration_since(self.last_activity) > PEER_QUIET
    }

    /// QUIC traffic with the peer at `now`; after a quiet spell, a new connection: what the
    /// probes said before (an outage that ended the old one, with nobody probing since) and
    /// the switch history start over (see `Selector::start_over`).
    fn active_at(&mut self, now: Instant) {
        self.start_over_if_quiet(now);
        self.last_activity = now;
        if self.released_at.is_some_and(|t| now > t + RELEASE_SETTLE) {
            self.released_at = None;
        }
    }
}

impl Peer {
    /// A link holds the peer and no other does: it starts with a clean slate.
    fn first_hold(&mut self) {
        self.released_at = None;
        // A link came up: a later refusal is a new episode, worth a warning again.
        self.refusal_logged = false;
        // The handshake just crossed the active path: what probes said while the peer was
        // away (every path silent) is stale, and acting on it would read as a probe-loss
        // failover of the new link.
        if let Some(s) = self.selector.as_mut() {
            s.start_over();
        }
        self.outage_since = None;
        self.outages = 0;
        self.outage_time = Duration::ZERO;
        // An earlier link's outage is not one this link's first outage continues.
        self.last_outage = None;
    }

    /// A quiet peer becomes active again: what its probes said before and its switch history
    /// start over (`Selector::start_over`), and switches before the first answer again are
    /// logged as "no answer yet".
    fn start_over_if_quiet(&mut self, now: Instant) {
        if self.quiet(now) {
            if let Some(s) = self.selector.as_mut() {
                s.start_over();
                s.release_datagram_payload();
            }
            self.early_link_payload = None;
            self.last_probe_reply.clear();
            self.end_outage(now);
            // Datagrams of a closed connection are nothing to replay for the next one.
            self.recent.clear();
            self.recent_segments = 0;
        }
    }

    /// Notes the start or end of a stretch with every usable path down, in the log (a
    /// warning each way: the failover lines only say where traffic moved, and with every
    /// path down it cannot move) and in the counts. Before the peer ever answered a probe
    /// it is not an outage: the peer is not up yet (the dialler's error says so). True when
    /// an outage ended: then the caller re-sends the newest datagrams. QUIC's own recovery
    /// would wait for its next probe timeout, which doubles with each one lost, so it can
    /// come as late again as the outage lasted; an ack-eliciting packet that arrives draws
    /// the peer's ACK, and that ACK restarts QUIC's sending at once.
    fn track_outage(&mut self, now: Instant) -> bool {
        let Some(selector) = self.selector.as_ref() else {
            return false;
        };
        // It starts when every usable path is down, and ends only when one answers (not
        // when a refresh brings paths nobody has probed yet).
        if self.outage_since.is_none() {
            let Some((n, reasons)) = selector.all_down() else {
                return false;
            };
            if self.last_probe_reply.is_empty() {
                return false;
            }
            // A path revived by one answer (see `Selector::on_probe_reply`) that fails again
            // within OUTAGE_FLAP did not end the outage: it goes on, counted and logged once.
            if let Some((started, ended, length)) = self.last_outage {
                if now.saturating_duration_since(ended) < OUTAGE_FLAP {
                    self.outage_since = Some(started);
                    self.outage_time = self.outage_time.saturating_sub(length);
                    debug!(
                        "SCION paths to {}: all {n} usable paths are down again ({})",
                        self.remote,
                        reasons.join("; ")
                    );
                    return false;
                }
            }
            self.outage_since = Some(now);
            self.outages += 1;
            warn!(
                "SCION paths to {}: all {n} usable paths are down ({}); traffic waits for one to come back",
                self.remote,
                reasons.join("; ")
            );
        } else if selector.answering() {
            let active = self
                .active
                .first()
                .map(|f| f.short())
                .unwrap_or_else(|| "-".into());
            if let Some(d) = self.close_outage(now) {
                warn!(
                    "SCION paths to {}: path {active} usable again after {} with every path down",
                    self.remote,
                    fmt_gap(Some(d))
                );
                return true;
            }
        }
        false
    }

    /// Closes a going outage because the last link to the peer closed (said once; what
    /// follows is no link's outage, and the quiet time is not counted).
    fn end_outage(&mut self, now: Instant) {
        if let Some(d) = self.close_outage(now) {
            warn!(
                "SCION paths to {}: link closed after {} with no path answering",
                self.remote,
                fmt_gap(Some(d))
            );
        }
    }

    /// Ends a going outage at `now`, adding it to the total; returns its length.
    fn close_outage(&mut self, now: Instant) -> Option<Duration> {
        let since = self.outage_since.take()?;
        let d = now.saturating_duration_since(since);
        self.outage_time += d;
        self.last_outage = Some((since, now, d));
        Some(d)
    }

    fn outage_stats(&self, now: Instant) -> OutageStats {
        let current = self.outage_since.map(|t| now.saturating_duration_since(t));
        OutageStats {
            current,
            count: self.outages,
            total: self.outage_time + current.unwrap_or_default(),
        }
    }
}

/// Held by a route or client link for as long as it uses its peer; dropping the last one
/// stops probing the peer's paths at once (the socket cannot see QUIC connections end, and
/// would otherwise probe until [`PEER_QUIET`] of silence).
pub struct PeerHold {
    socket: std::sync::Weak<ScionSocket>,
    remote: ScionAddr,
    /// Whether the peer's count was raised (not when the peer table was full).
    counted: bool,
}

impl Drop for PeerHold {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        if let Some(socket) = self.socket.upgrade() {
            socket.release(self.remote);
        }
    }
}

impl std::fmt::Debug for PeerHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerHold({})", self.remote)
    }
}
/// Wait after a failed daemon query before asking again.
const LOAD_RETRY: Duration = Duration::from_secs(2);
/// Bound on peers one socket tracks (each holds a selector and probe state).
const MAX_PEERS: usize = 4096;
/// Synthetic IPv6 prefix (ULA fd5c:10::/32) under which quinn sees SCION peers.
const SYNTHETIC_PREFIX: [u16; 2] = [0xfd5c, 0x0010];

/// A path switch, for logs and metrics.
#[derive(Debug, Clone)]
pub struct PathEvent {
    pub remote: ScionAddr,
    pub from: Option<PathFingerprint>,
    pub to: PathFingerprint,
    pub cause: SwitchCause,
    pub at: SystemTime,
    /// Time since the old path last answered a probe (for SCMP and probe-loss switches): how
    /// long traffic on it may have been lost before the switch.
    pub gap: Option<Duration>,
    /// Hops of the new path as `ISD-AS#if` sequence.
    pub hops: String,
}

impl PathEvent {
    /// The one log line for this switch (the socket logs it; the broker and the proxy only
    /// read events for metrics and /pathz, so every switch appears once, in these words).
    pub fn log_line(&self) -> String {
        let from = self.from.map(|f| f.short()).unwrap_or_else(|| "-".into());
        format!(
            "SCION path to {} switched: cause={} gap={} from={} to={} hops=[{}]",
            self.remote,
            self.cause,
            fmt_gap(self.gap),
            from,
            self.to.short(),
            self.hops
        )
    }
}

/// A gap for humans: `91.5ms` below 10 s (0.1 ms is finer than a probe interval's
/// jitter), `12.3s` above, `-` when there is none (switch not caused by a failure).
pub fn fmt_gap(gap: Option<Duration>) -> String {
    match gap {
        None => "-".into(),
        Some(g) if g < Duration::from_secs(10) => format!("{:.1}ms", g.as_secs_f64() * 1e3),
        Some(g) => format!("{:.1}s", g.as_secs_f64()),
    }
}

/// Where and how to send to one peer over one path.
#[derive(Debug, Clone)]
struct Route {
    data: DataPath,
    next_hop: SocketAddr,
}

struct Peer {
    remote: ScionAddr,
    synthetic: SocketAddr,
    selector: Option<Selector>,
    routes: HashMap<PathFingerprint, Route>,
    active: Vec<PathFingerprint>,
    reply: Option<Route>,
    reply_raw: Vec<u8>,
    probe_fp: HashMap<u64, PathFingerprint>,
    last_probe_reply: HashMap<PathFingerprint, Instant>,
    /// The last path load failed (logged at warn once per outage).
    load_failing: bool,
    /// Paths whose filtering (policy ACL, sequence, MTU) was logged already.
    filtered_logged: std::collections::HashSet<PathFingerprint>,
    /// A connection from this peer was refused (every path filtered) and logged at warn.
    refusal_logged: bool,
    wants_paths: bool,
    loading: bool,
    /// No daemon query before this time (back-off after a failed one).
    next_load: Option<Instant>,
    /// Recently sent QUIC datagrams, replayed on the new path after a failover so the gap
    /// does not wait for QUIC's loss detection (QUIC drops the duplicates, RFC 9000 §12.3).
    recent: VecDeque<Sent>,
    /// Datagrams held in `recent`.
    recent_segments: usize,
    /// Encoded headers for the current active set (None after any route change).
    send_routes: Option<Arc<[batch::SendRoute]>>,
    /// Last datagram sent to or received from the peer (idle peers are forgotten).
    last_activity: Instant,
    /// Live [`PeerHold`]s (links using this peer).
    holds: u32,
    /// When the last hold was dropped.
    released_at: Option<Instant>,
    /// Since when every usable path has been down (after the peer had answered a probe).
    outage_since: Option<Instant>,
    /// Outages that ended, and their total length.
    outages: u64,
    outage_time: Duration,
    /// The last outage that ended: its start, end and length.
    last_outage: Option<(Instant, Instant, Duration)>,
    /// The packet size cap of a link that started before the peer had usable paths (an
    /// acceptor's, from the reply path): the selector holds it once paths arrive.
    early_link_payload: Option<usize>,
}

/// A peer's outages: stretches with every usable path down.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OutageStats {
    /// How long the current outage has lasted, if one is going on.
    pub current: Option<Duration>,
    /// Outages so far (the current one included).
    pub count: u64,
    /// Their total length (the current one up to now included).
    pub total: Duration,
}

/// Which recent datagrams a replay re-sends.
#[derive(Debug, Clone, Copy)]
enum Replay {
    /// Those sent within this long.
    Window(Duration),
    /// The newest this many, however old.
    Newest(usize),
}

/// One GSO buffer, sent and kept for replay or waiting to be sent: datagrams of `stride`
/// bytes (the last may be shorter), each `header` bytes of SCION/UDP header followed by a
/// QUIC packet.
struct Sent {
    at: Instant,
    buf: Vec<u8>,
    header: usize,
    stride: usize,
}

impl Sent {
    fn segments(&self) -> usize {
        self.buf.len().div_ceil(self.stride.max(1))
    }

    /// Keeps only the last `n` datagrams, in a buffer of their size.
    fn keep_last(&mut self, n: usize) {
        let stride = self.stride.max(1);
        let start = self.segments().saturating_sub(n) * stride;
        if start > 0 || self.buf.capacity() > self.buf.len() * 2 {
            self.buf = self.buf[start..].to_vec();
        }
    }

    fn payloads(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.buf
            .chunks(self.stride.max(1))
            .filter_map(|d| d.get(self.header..))
    }
}

impl Peer {
    /// Drops replay entries older than the longest replay window, except the newest (for the
    /// end of an outage, see `track_outage`).
    fn trim_recent(&mut self, now: Instant) {
        while let Some(front) = self.recent.front() {
            if self.recent.len() == 1 || now.saturating_duration_since(front.at) <= REPLAY_MAX {
                break;
            }
            self.recent_segments -= front.segments();
            self.recent.pop_front();
        }
        // The one kept past the window needs only its last REPLAY_AFTER_OUTAGE datagrams, not
        // a send buffer's whole capacity.
        if let Some(last) = self.recent.back_mut() {
            if now.saturating_duration_since(last.at) > REPLAY_MAX {
                last.keep_last(REPLAY_AFTER_OUTAGE);
                self.recent_segments = last.segments();
            }
        }
    }

    /// Keeps a sent buffer for replay, bounded by age and by datagram count; the buffers it
    /// lets go of go to `spare` for the next transmits.
    fn remember(&mut self, sent: Sent, spare: &mut Vec<Vec<u8>>) {
        let n = sent.segments();
        while let Some(front) = self.recent.front() {
            let old = sent.at.saturating_duration_since(front.at) > REPLAY_MAX;
            // Over the bound, the oldest buffer goes only if REPLAY_PACKETS stay without it.
            let spare_front = self.recent_segments + n > REPLAY_PACKETS
                && self.recent_segments - front.segments() + n >= REPLAY_PACKETS;
            if !old && !spare_front {
                break;
            }
            self.recent_segments -= front.segments();
            if let Some(front) = self.recent.pop_front() {
                if spare.len() < SPARE_BUFFERS {
                    spare.push(front.buf);
                }
            }
        }
        self.recent_segments += n;
        self.recent.push_back(sent);
    }
}

#[derive(Default)]
struct PeerTable {
    peers: HashMap<ScionAddr, Peer>,
    by_synthetic: HashMap<SocketAddr, ScionAddr>,
    next_id: u32,
    /// Send buffers to reuse (see [`SPARE_BUFFERS`]).
    spare: Vec<Vec<u8>>,
}

/// Errors of sending toward a peer that has no usable path yet.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("no path to {0}: the daemon returned none")]
    NoPaths(ScionAddr),
    #[error("no usable path to {remote}: of {count} paths, {states}{hint}")]
    NoUsablePath {
        remote: ScionAddr,
        count: usize,
        /// How many are in which state ("2 filtered, 1 expired").
        states: String,
        /// What to look at for the states present.
        hint: &'static str,
    },
    #[error("cannot ask the SCION daemon for paths: {0}")]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error("too many peers on one socket (limit {0})")]
    TooManyPeers(usize),
}

/// The shared socket state used by quinn (through `quic.rs`) and by the path driver.
pub struct ScionSocket {
    udp: UdpSocket,
    /// quinn-udp's view of `udp`: GSO/GRO support, sendmsg/recvmmsg with control messages.
    state: UdpSocketState,
    local: ScionAddr,
    token: u64,
    selector_config: SelectorConfig,
    daemon: Option<DaemonClient>,
    table: Mutex<PeerTable>,
    rx: Mutex<batch::RxState>,
    events: broadcast::Sender<PathEvent>,
    wake: Notify,
    /// QUIC datagrams taken from quinn and not yet sent (see [`batch::Pending`]).
    pending: Mutex<Option<batch::Pending>>,
    /// Wakes [`Self::run_flusher`] when `pending` gets its first datagrams.
    flush_wake: Notify,
    /// Whether a flusher runs, so that transmits may wait in `pending`.
    coalesce: std::sync::atomic::AtomicBool,
    /// QUIC datagram sends: `sendmsg` calls and the datagrams they carried.
    sends: std::sync::atomic::AtomicU64,
    datagrams: std::sync::atomic::AtomicU64,
    /// Border routers' underlay addresses by interface id, to answer packets a shim
    /// dispatcher handed over (see [`Self::reply_hop`]).
    interface_addrs: std::sync::OnceLock<HashMap<u16, SocketAddr>>,
}

/// How the QUIC datagrams of one endpoint left: `datagrams` in `sends` system calls (GSO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    pub sends: u64,
    pub datagrams: u64,
}

impl std::fmt::Debug for ScionSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScionSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl ScionSocket {
    /// Wraps a bound UDP socket whose address is `local`'s host address and port.
    ///
    /// Fails only if the socket's options cannot be read or set (quinn-udp enables GRO,
    /// packet info and don't-fragment where the kernel has them, and reports what it got).
    pub fn new(
        udp: UdpSocket,
        local: ScionAddr,
        selector_config: SelectorConfig,
        daemon: Option<DaemonClient>,
    ) -> io::Result<Self> {
        let (events, _) = broadcast::channel(256);
        let state = UdpSocketState::new(UdpSockRef::from(&udp))?;
        Ok(ScionSocket {
            udp,
            state,
            local,
            token: rand::random(),
            selector_config,
            daemon,
            table: Mutex::new(PeerTable::default()),
            rx: Mutex::new(batch::RxState::new()),
            events,
            wake: Notify::new(),
            pending: Mutex::new(None),
            flush_wake: Notify::new(),
            coalesce: std::sync::atomic::AtomicBool::new(false),
            sends: Default::default(),
            datagrams: Default::default(),
            interface_addrs: std::sync::OnceLock::new(),
        })
    }

    /// Whether a refused connection from `remote` is the first since its peer entry was made
    /// (the refusal is logged at warn once, then at debug on every redial).
    pub fn first_refusal(&self, remote: ScionAddr) -> bool {
        let mut table = self.table();
        match table.peers.get_mut(&remote) {
            Some(peer) => !std::mem::replace(&mut peer.refusal_logged, true),
            None => true,
        }
    }

    /// The reasons, when the selector knows paths to `remote` and filtered every one of them
    /// (scion.policy, MTU); None when some path is allowed or none is known.
    pub fn every_path_filtered(&self, remote: ScionAddr) -> Option<Vec<String>> {
        let stats = self.path_stats(remote);
        if stats.is_empty() || stats.iter().any(|c| c.state != PathState::Filtered) {
            return None;
        }
        let mut reasons: Vec<String> = stats.into_iter().filter_map(|c| c.reason).collect();
        reasons.sort();
        reasons.dedup();
        Some(reasons)
    }

    /// Tells the socket which border router serves each interface of the local AS (from
    /// topology.json or the daemon), for packets that come through a shim dispatcher. Set
    /// once, at bind; later calls change nothing.
    pub fn set_interface_addrs(&self, addrs: HashMap<u16, SocketAddr>) {
        let _ = self.interface_addrs.set(addrs);
    }

    /// Where to answer a datagram from SCION source `src` over `path_raw` that the kernel
    /// got from `from`: `from` itself (the border router that delivered it, or a host of our
    /// AS), unless `from` is a shim dispatcher, port 30041 on our address or on loopback, as
    /// scionproto's snet recognises one. The shim forwards what a router delivered to a port
    /// outside the dispatched range, and drops what is sent to it, so the answer goes to the
    /// router of the interface the packet came in through, or, inside the AS, to the source
    /// host's own port (snet `lastHop`).
    pub(crate) fn reply_hop(
        &self,
        from: SocketAddr,
        src: &ScionAddr,
        path_raw: &[u8],
    ) -> Option<SocketAddr> {
        let shim = from.port() == SHIM_DISPATCHER_PORT
            && (from.ip() == self.local.ip || from.ip().is_loopback());
        if !shim {
            return Some(from);
        }
        if path_raw.is_empty() {
            return Some(SocketAddr::new(src.ip, src.port));
        }
        let ifid = DataPath::from_raw(Bytes::copy_from_slice(path_raw))
            .ok()?
            .arrival_interface()?;
        let hop = self
            .interface_addrs
            .get()
            .and_then(|m| m.get(&ifid))
            .copied();
        if hop.is_none() {
            debug!(%src, ifid, "no border router known for the interface a shim-forwarded packet came in through");
        }
        hop
    }

    pub fn local(&self) -> ScionAddr {
        self.local
    }

    /// QUIC datagram sends so far.
    pub fn send_stats(&self) -> SendStats {
        use std::sync::atomic::Ordering::Relaxed;
        SendStats {
            sends: self.sends.load(Relaxed),
            datagrams: self.datagrams.load(Relaxed),
        }
    }

    /// Path switch events (bounded; slow receivers miss the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<PathEvent> {
        self.events.subscribe()
    }

    fn table(&self) -> MutexGuard<'_, PeerTable> {
        // A panic while holding the lock cannot leave the table inconsistent in a way that
        // matters more than losing the socket, so keep going with the inner value.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stable synthetic address quinn uses for `remote` (created on first use).
    pub fn synthetic_for(&self, remote: ScionAddr) -> Result<SocketAddr, PathError> {
        let mut table = self.table();
        Self::peer_entry(&mut table, remote, self.local.ia).map(|p| p.synthetic)
    }

    fn peer_entry(
        table: &mut PeerTable,
        remote: ScionAddr,
        local_ia: IsdAsn,
    ) -> Result<&mut Peer, PathError> {
        if !table.peers.contains_key(&remote) {
            if table.peers.len() >= MAX_PEERS {
                return Err(PathError::TooManyPeers(MAX_PEERS));
            }
            table.next_id = table.next_id.wrapping_add(1);
            let id = table.next_id;
            let ip = Ipv6Addr::new(
                SYNTHETIC_PREFIX[0],
                SYNTHETIC_PREFIX[1],
                0,
                0,
                0,
                0,
                (id >> 16) as u16,
                id as u16,
            );
            let synthetic = SocketAddr::new(IpAddr::V6(ip), remote.port);
            table.by_synthetic.insert(synthetic, remote);
            let same_as = remote.ia == local_ia;
            table.peers.insert(
                remote,
                Peer {
                    remote,
                    synthetic,
                    selector: None,
                    routes: HashMap::new(),
                    active: Vec::new(),
                    reply: same_as.then(|| Route {
                        data: DataPath::empty(),
                        next_hop: SocketAddr::new(remote.ip, remote.port),
                    }),
                    reply_raw: Vec::new(),
                    probe_fp: HashMap::new(),
                    last_probe_reply: HashMap::new(),
                    filtered_logged: Default::default(),
                    refusal_logged: false,
                    load_failing: false,
                    wants_paths: !same_as,
                    loading: false,
                    next_load: None,
                    recent: VecDeque::new(),
                    recent_segments: 0,
                    send_routes: None,
                    last_activity: Instant::now(),
                    holds: 0,
                    released_at: None,
                    outage_since: None,
                    outages: 0,
                    outage_time: Duration::ZERO,
                    last_outage: None,
                    early_link_payload: None,
                },
            );
        }
        table
            .peers
            .get_mut(&remote)
            .ok_or(PathError::TooManyPeers(MAX_PEERS))
    }

    /// A hold on `remote` for a link that uses it (see [`PeerHold`]). The first hold starts
    /// a new link: path state and switch counts start over (`Selector::start_over`; what
    /// happened while dialling, or to an earlier link, is not this link's history). A
    /// further hold (a new link while an older one still holds the peer: another client of
    /// the same proxy, or the dead connection of a restarted peer until its reset arrives)
    /// changes nothing: the counts are the peer's, shared by its links, and must not go
    /// back under the older ones.
    pub fn hold(self: &Arc<Self>, remote: ScionAddr) -> PeerHold {
        let mut table = self.table();
        let mut counted = false;
        if let Ok(p) = Self::peer_entry(&mut table, remote, self.local.ia) {
            if p.holds == 0 {
                p.first_hold();
            }
            p.holds += 1;
            counted = true;
        }
        drop(table);
        self.wake.notify_one();
        PeerHold {
            socket: Arc::downgrade(self),
            remote,
            counted,
        }
    }

    /// A dial to `remote` starts, or a connection from it is accepted: a peer that was quiet
    /// (released by its last link, or silent) is probed again at once, starting over (see
    /// `Selector::start_over`), instead of sending the handshake over what it last knew and
    /// waking only after the release's settle time. It is no longer quiet from now on, so
    /// what the new link holds (`hold_link_payload`) is not started over by its next packet.
    pub fn wake_for_dial(&self, remote: ScionAddr) {
        let now = Instant::now();
        let mut table = self.table();
        let Some(p) = table.peers.get_mut(&remote) else {
            return;
        };
        p.start_over_if_quiet(now);
        p.released_at = None;
        p.last_activity = now;
        drop(table);
        self.wake.notify_one();
    }

    fn release(&self, remote: ScionAddr) {
        let mut table = self.table();
        if let Some(p) = table.peers.get_mut(&remote) {
            p.holds = p.holds.saturating_sub(1);
            if p.holds == 0 {
                let now = Instant::now();
                p.released_at = Some(now);
                p.end_outage(now);
                debug!(%remote, "SCION peer released by its last link: no more probing");
            }
        }
    }

    /// The SCION address behind a synthetic address quinn reports.
    pub fn remote_of(&self, synthetic: SocketAddr) -> Option<ScionAddr> {
        self.table().by_synthetic.get(&synthetic).copied()
    }

    /// Candidate paths to `remote` with state, RTT, loss and rank (empty if unknown peer).
    /// Paths of a quiet peer (no link) are not probed, whatever the selector's plan says.
    pub fn path_stats(&self, remote: ScionAddr) -> Vec<CandidateView> {
        let table = self.table();
        let Some(p) = table.peers.get(&remote) else {
            return Vec::new();
        };
        let quiet = p.quiet(Instant::now());
        let mut view = p
            .selector
            .as_ref()
            .map(Selector::candidates)
            .unwrap_or_default();
        if quiet {
            for c in &mut view {
                c.probed = false;
            }
        }
        view
    }

    /// Stretches with every usable path to `remote` down (see [`OutageStats`]).
    pub fn outage_stats(&self, remote: ScionAddr) -> OutageStats {
        let now = Instant::now();
        self.table()
            .peers
            .get(&remote)
            .map(|p| p.outage_stats(now))
            .unwrap_or_default()
    }

    /// Whether `remote` already has a selected path (or needs none: same AS).
    pub fn has_active_path(&self, remote: ScionAddr) -> bool {
        if remote.ia == self.local.ia {
            return false;
        }
        self.table()
            .peers
            .get(&remote)
            .and_then(|p| p.selector.as_ref())
            .is_some_and(|s| s.active().is_some())
    }

    /// Why the active path to `remote` is the active one (see `Selector::why_active`).
    pub fn why_active(&self, remote: ScionAddr) -> Option<String> {
        self.table()
            .peers
            .get(&remote)
            .and_then(|p| p.selector.as_ref())
            .and_then(Selector::why_active)
    }

    /// Path switches for `remote` so far, by cause.
    pub fn switch_counts(&self, remote: ScionAddr) -> Vec<(crate::path::SwitchCause, u64)> {
        self.table()
            .peers
            .get(&remote)
            .and_then(|p| p.selector.as_ref())
            .map(Selector::switch_counts)
            .unwrap_or_default()
    }

    /// Number of path switches for `remote` so far.
    pub fn switch_count(&self, remote: ScionAddr) -> u64 {
        self.table()
            .peers
            .get(&remote)
            .and_then(|p| p.selector.as_ref())
            .map(Selector::switch_count)
            .unwrap_or(0)
    }

    /// Fetches paths for `remote` from the daemon and installs them in its selector.
    ///
    /// Returns the number of usable paths; AS-local peers need none and return 0.
    pub async fn load_paths(&self, remote: ScionAddr, refresh: bool) -> Result<usize, PathError> {
        if remote.ia == self.local.ia {
            self.synthetic_for(remote)?;
            return Ok(0);
        }
        let daemon = self.daemon.as_ref().ok_or(PathError::NoPaths(remote))?;
        let paths = daemon.paths(self.local.ia, remote.ia, refresh).await?;
        self.install_paths(remote, paths)
    }

    /// Installs `paths` (from a daemon or a static list) for `remote`.
    pub fn install_paths(
        &self,
        remote: ScionAddr,
        paths: Vec<ScionPath>,
    ) -> Result<usize, PathError> {
        if paths.is_empty() {
            return Err(PathError::NoPaths(remote));
        }
        let now = Instant::now();
        let mut table = self.table();
        let peer = Self::peer_entry(&mut table, remote, self.local.ia)?;
        let mut infos = Vec::with_capacity(paths.len());
        for p in paths {
            let Some(next_hop) = p.next_hop else {
                debug!(%remote, "ignoring a path without first-hop router");
                continue;
            };
            let info = p.to_path_info();
            peer.routes.insert(
                info.fingerprint,
                Route {
                    data: p.data,
                    next_hop,
                },
            );
            infos.push(info);
        }
        let count = infos.len();
        peer.send_routes = None;
        // Forget routes of paths the source no longer lists (the selector drops them too).
        peer.routes
            .retain(|fp, _| infos.iter().any(|i| i.fingerprint == *fp));
        if peer.selector.is_none() {
            // The header's host addresses are ours and the peer's: 4 bytes each for IPv4, 16
            // for IPv6 (an IPv4 host talking to an IPv6 one has 20).
            let mut cfg = self.selector_config.clone();
            cfg.host_addr_bytes =
                (wire::host_addr_len(self.local.ip) + wire::host_addr_len(remote.ip)) as u16;
            match Selector::new(cfg) {
                Ok(s) => peer.selector = Some(s),
                Err(e) => {
                    warn!(%remote, error = %e, "invalid selector configuration");
                    return Err(PathError::NoUsablePath {
                        remote,
                        count,
                        states: "none usable".into(),
                        hint: " (invalid selector configuration)",
                    });
                }
            }
        }
        if let Some(selector) = peer.selector.as_mut() {
            selector.set_paths(now, unix_now(), infos);
            if let Some(cap) = peer.early_link_payload {
                if selector.hold_datagram_payload_at_most(cap).is_some() {
                    peer.early_link_payload = None;
                }
            }
            for c in selector.candidates() {
                if let (crate::path::PathState::Filtered, Some(reason)) = (c.state, &c.reason) {
                    // Once per path: every redial reloads the paths, and an ACL that denies
                    // them all would otherwise repeat the whole list every second.
                    if peer.filtered_logged.insert(c.info.fingerprint) {
                        info!(%remote, path = %c.info.fingerprint.short(), hops = %c.info.hop_sequence(), reason, "path filtered");
                    } else {
                        debug!(%remote, path = %c.info.fingerprint.short(), reason, "path filtered");
                    }
                }
            }
        }
        peer.wants_paths = false;
        peer.loading = false;
        self.drive_peer(peer, now);
        let (usable, states, hint) = match peer.selector.as_ref() {
            Some(s) if s.active().is_some() => (true, String::new(), ""),
            Some(s) => {
                let (states, hint) = unusable_summary(&s.candidates());
                (false, states, hint)
            }
            None => (false, "none usable".to_string(), ""),
        };
        drop(table);
        self.wake.notify_one();
        if usable {
            Ok(count)
        } else {
            Err(PathError::NoUsablePath {
                remote,
                count,
                states,
                hint,
            })
        }
    }

    /// Smallest UDP payload budget over the usable candidate paths to `remote`.
    pub fn payload_budget(&self, remote: ScionAddr) -> Option<u16> {
        let table = self.table();
        let peer = table.peers.get(&remote)?;
        let selector = peer.selector.as_ref()?;
        selector
            .candidates()
            .iter()
            .filter(|c| c.rank.is_some())
            .filter_map(|c| {
                let route = peer.routes.get(&c.info.fingerprint)?;
                let overhead = wire::header_overhead(&route.data, self.local.ip, remote.ip);
                (c.info.mtu as usize).checked_sub(overhead)
            })
            .min()
            .map(|v| v.min(u16::MAX as usize) as u16)
    }

    /// `max_payload` for a link that starts now: the selector holds that size and
    /// ranks paths too small for it last from now on (`Selector::hold_datagram_payload`).
    /// A link that starts before the peer has usable paths (an acceptor whose path lookup
    /// has not finished) is capped from the reply path; that cap is kept, and once paths
    /// arrive the selector holds it, or what every usable path carries if that is less.
    pub fn hold_link_payload(&self, remote: ScionAddr, local_mtu: u16) -> Option<u16> {
        let size = self.max_payload(remote, local_mtu);
        if let Some(p) = self.table().peers.get_mut(&remote) {
            let held = p
                .selector
                .as_mut()
                .and_then(Selector::hold_datagram_payload);
            if held.is_none() {
                let cap = size.map(usize::from);
                p.early_link_payload = p.early_link_payload.max(cap);
            }
        }
        size
    }

    /// The datagram size the selector holds for the links to `remote` (see
    /// [`Self::hold_link_payload`]).
    pub fn held_link_payload(&self, remote: ScionAddr) -> Option<usize> {
        self.table()
            .peers
            .get(&remote)
            .and_then(|p| p.selector.as_ref())
            .and_then(Selector::held_datagram_payload)
    }

    /// Largest UDP payload toward `remote` that fits the path MTU: the smallest budget over
    /// its usable candidate paths, or, before it has any (an AS-local peer, or an acceptor
    /// whose path lookup has not finished), `local_mtu` minus the header of the reply path
    /// (the reverse of the path the peer's packets came over has the same length). None when
    /// nothing about the peer is known yet.
    fn max_payload(&self, remote: ScionAddr, local_mtu: u16) -> Option<u16> {
        if let Some(budget) = self.payload_budget(remote) {
            return Some(budget);
        }
        let table = self.table();
        let route = table.peers.get(&remote)?.reply.as_ref()?;
        let overhead = wire::header_overhead(&route.data, self.local.ip, remote.ip);
        (local_mtu as usize)
            .checked_sub(overhead)
            .map(|v| v.min(u16::MAX as usize) as u16)
    }

    /// Polls the selector of `peer` and carries out its actions.
    fn drive_peer(&self, peer: &mut Peer, now: Instant) {
        // No connection: no probing (late probe answers and SCMP must not restart it either).
        if peer.quiet(now) {
            return;
        }
        let Some(selector) = peer.selector.as_mut() else {
            return;
        };
        let actions = selector.poll(now);
        // The window of a failover's replay in this round, if one was made.
        let mut replayed: Option<Duration> = None;
        for action in actions {
            match action {
                SelectorAction::SendProbe { fingerprint, seq } => {
                    if let Some(route) = peer.routes.get(&fingerprint) {
                        let frame = probe_frame(PROBE_REQUEST, seq, self.token);
                        match wire::encode_udp(&self.local, &peer.remote, &route.data, frame) {
                            Ok(pkt) => {
                                let _ = self.udp.try_send_to(&pkt, route.next_hop);
                            }
                            Err(e) => debug!(?e, "probe encoding failed"),
                        }
                        if peer.probe_fp.len() >= MAX_PENDING_PROBES {
                            peer.probe_fp.clear();
                        }
                        peer.probe_fp.insert(seq, fingerprint);
                        if let Some(s) = peer.selector.as_mut() {
                            s.on_probe_sent(now, fingerprint, seq);
                        }
                    }
                }
                SelectorAction::SwitchTo { fingerprint, cause } => {
                    let from = peer.active.first().copied();
                    if let Some(s) = peer.selector.as_ref() {
                        peer.active = s.active_set().iter().map(|p| p.fingerprint).collect();
                        if peer.active.is_empty() {
                            peer.active.push(fingerprint);
                        }
                    }
                    peer.send_routes = None;
                    let gap = match cause {
                        SwitchCause::ScmpDown | SwitchCause::ProbeLoss => from
                            .and_then(|f| peer.last_probe_reply.get(&f))
                            .map(|t| now.saturating_duration_since(*t)),
                        _ => None,
                    };
                    let hops = peer
                        .selector
                        .as_ref()
                        .and_then(|s| s.active().map(|p| p.hop_sequence()))
                        .unwrap_or_default();
                    let window = match cause {
                        SwitchCause::ScmpDown => Some(REPLAY_SCMP),
                        SwitchCause::ProbeLoss => {
                            Some(gap.map_or(REPLAY_MAX, |g| (g + REPLAY_SCMP).min(REPLAY_MAX)))
                        }
                        _ => None,
                    };
                    if let Some(window) = window {
                        self.replay(peer, now, Replay::Window(window));
                        replayed = Some(window);
                    }
                    let event = PathEvent {
                        remote: peer.remote,
                        from,
                        to: fingerprint,
                        cause,
                        at: SystemTime::now(),
                        gap,
                        hops,
                    };
                    // Failures are warnings; a first choice or a move to a better path is not.
                    // Probe loss from a peer that never answered a probe on any path says
                    // nothing about the paths (no socket there yet, or it is down): that is
                    // for the caller's connect error, the paths are only being tried in turn.
                    if cause == SwitchCause::ProbeLoss && peer.last_probe_reply.is_empty() {
                        debug!(
                            "{} (no probe answer from {} on any path yet)",
                            event.log_line(),
                            peer.remote
                        );
                    } else if cause.is_failure() {
                        warn!("{}", event.log_line());
                    } else {
                        info!("{}", event.log_line());
                    }
                    let _ = self.events.send(event);
                }
                SelectorAction::RefreshPaths => {
                    peer.wants_paths = true;
                }
            }
        }
        // The active set can also change without a SwitchTo (redundant mode membership).
        if let Some(s) = peer.selector.as_ref() {
            let set: Vec<PathFingerprint> = s.active_set().iter().map(|p| p.fingerprint).collect();
            if !set.is_empty() && set != peer.active {
                peer.active = set;
                peer.send_routes = None;
            }
        }
        if peer.track_outage(now) {
            // Unless a failover to the revived path has just replayed the newest already.
            let newest_sent = replayed.is_some_and(|w| {
                peer.recent
                    .back()
                    .is_some_and(|s| now.saturating_duration_since(s.at) <= w)
            });
            if !newest_sent {
                self.replay(peer, now, Replay::Newest(REPLAY_AFTER_OUTAGE));
            }
        }
    }

    /// Re-sends recent datagrams over the (new) active routes.
    fn replay(&self, peer: &mut Peer, now: Instant, which: Replay) {
        let routes = peer.send_routes(&self.local);
        if routes.is_empty() {
            // Nowhere to send: what waits for the flusher stays there.
            return;
        }
        let mut replayed = 0;
        let mut pkt = Vec::new();
        let chosen: Vec<&[u8]> = match which {
            Replay::Window(window) => peer
                .recent
                .iter()
                .filter(|s| now.saturating_duration_since(s.at) <= window)
                .flat_map(Sent::payloads)
                .collect(),
            Replay::Newest(n) => {
                let mut newest: Vec<&[u8]> = peer
                    .recent
                    .iter()
                    .rev()
                    .flat_map(|s| s.payloads().rev())
                    .take(n)
                    .collect();
                newest.reverse();
                newest
            }
        };
        // Datagrams still waiting for the flusher were encoded for the old routes: all of
        // them go out over the new ones, after the recent ones.
        let waiting = self.take_waiting(peer.remote);
        for payload in chosen
            .into_iter()
            .chain(waiting.iter().flat_map(Sent::payloads))
        {
            for route in routes.iter() {
                pkt.clear();
                if route.template.encode_into(&mut pkt, payload).is_ok() {
                    let _ = self.udp.try_send_to(&pkt, route.next_hop);
                    replayed += 1;
                }
            }
        }
        // Sent now, so a second switch within the window replays them too.
        if let Some(sent) = waiting {
            peer.remember(sent, &mut Vec::new());
        }
        debug!(remote = %peer.remote, replayed, ?which, "replayed recent datagrams");
    }

    /// Waits until the socket takes datagrams again (after a send met WouldBlock).
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.udp.writable().await
    }

    /// Remembers the reverse of the path a peer used, creating the peer on first contact.
    fn note_reply_path(
        &self,
        src: ScionAddr,
        path_raw: &[u8],
        from: SocketAddr,
    ) -> Option<SocketAddr> {
        // Without a known router for a shim-forwarded packet the datagram still counts;
        // only answers over the reply path are lost (our own paths do not need it).
        let from = self.reply_hop(from, &src, path_raw).unwrap_or(from);
        let mut table = self.table();
        let new_peer = !table.peers.contains_key(&src);
        let peer = match Self::peer_entry(&mut table, src, self.local.ia) {
            Ok(p) => p,
            Err(e) => {
                debug!(%e, "dropping datagram from a new peer");
                return None;
            }
        };
        let reply_hop = peer.reply.as_ref().map(|r| r.next_hop);
        if peer.reply_raw.as_slice() != path_raw || reply_hop != Some(from) {
            let reversed =
                DataPath::from_raw(Bytes::copy_from_slice(path_raw)).and_then(|p| p.reversed());
            match reversed {
                Ok(rev) => {
                    peer.reply = Some(Route {
                        data: rev,
                        next_hop: from,
                    });
                    peer.reply_raw = path_raw.to_vec();
                    peer.send_routes = None;
                }
                Err(e) => debug!(?e, "cannot reverse the peer's path"),
            }
        }
        peer.active_at(Instant::now());
        let synthetic = peer.synthetic;
        if new_peer && peer.wants_paths {
            drop(table);
            self.wake.notify_one();
        }
        Some(synthetic)
    }

    fn on_probe(&self, udp: &wire::UdpDatagram, from: SocketAddr) {
        let p = &udp.payload;
        if p.len() != PROBE_LEN {
            return;
        }
        let seq = u64::from_be_bytes(p[2..10].try_into().unwrap_or_default());
        let token = u64::from_be_bytes(p[10..18].try_into().unwrap_or_default());
        match p[1] {
            PROBE_REQUEST => {
                // Echo over the reverse of the probed path, so the RTT is that path's.
                let Ok(rev) = udp.path.reversed() else {
                    return;
                };
                let Some(hop) = self.reply_hop(from, &udp.src, udp.path.raw()) else {
                    return;
                };
                let frame = probe_frame(PROBE_REPLY, seq, token);
                if let Ok(pkt) = wire::encode_udp(&self.local, &udp.src, &rev, frame) {
                    let _ = self.udp.try_send_to(&pkt, hop);
                }
            }
            PROBE_REPLY if token == self.token => {
                let now = Instant::now();
                let mut table = self.table();
                let Some(peer) = table.peers.get_mut(&udp.src) else {
                    return;
                };
                let Some(fp) = peer.probe_fp.remove(&seq) else {
                    return;
                };
                if let Some(s) = peer.selector.as_mut() {
                    if s.on_probe_reply(now, fp, seq) {
                        peer.last_probe_reply.insert(fp, now);
                    }
                }
                self.drive_peer(peer, now);
            }
            _ => {}
        }
    }

    fn on_scmp(&self, report: wire::ScmpReport) {
        let Some(quoted) = report.quoted else {
            return;
        };
        // SCMP is unauthenticated, so only what a border router on one of our paths could
        // have sent counts: an error about our own packet ...
        if quoted.src != self.local {
            debug!(quoted = %quoted.src, "SCMP quoting someone else's packet ignored");
            return;
        }
        let about = match &report.kind {
            ScmpKind::ExternalInterfaceDown { ia, .. }
            | ScmpKind::InternalConnectivityDown { ia, .. } => Some(*ia),
            ScmpKind::ParameterProblem { code, .. } if path_problem_text(*code).is_some() => None,
            other => {
                debug!(kind = ?other, from = %report.from.0, "SCMP error");
                return;
            }
        };
        // ... sent from the AS whose interface it reports (a router speaks for its own AS) ...
        if about.is_some_and(|ia| ia != report.from.0) {
            debug!(from = %report.from.0, ?about, "SCMP about another AS's interface ignored");
            return;
        }
        let now = Instant::now();
        let mut table = self.table();
        let Some(peer) = table.peers.get_mut(&quoted.dst) else {
            return;
        };
        // ... quoting a packet that went over one of our paths to that peer (the same hop
        // fields, MACs included) ...
        let Some(hops) = quoted.path.hop_field_bytes() else {
            return;
        };
        let via = peer
            .routes
            .iter()
            .find(|(_, r)| r.data.hop_field_bytes() == Some(hops))
            .map(|(fp, _)| *fp);
        let via_reply = peer
            .reply
            .as_ref()
            .is_some_and(|r| r.data.hop_field_bytes() == Some(hops));
        if via.is_none() && !via_reply {
            debug!(remote = %peer.remote, "SCMP quoting a packet on none of our paths ignored");
            return;
        }
        let Some(selector) = peer.selector.as_mut() else {
            return;
        };
        if let ScmpKind::ParameterProblem { code, .. } = report.kind {
            // A router of an AS on one of our candidate paths refused that path's own fields.
            let from = report.from.0;
            let Some(fp) = via.filter(|fp| selector.path(fp).is_some_and(|p| p.crosses(from)))
            else {
                debug!(remote = %peer.remote, %from, code, "SCMP parameter problem from an AS off our path ignored");
                return;
            };
            let what = path_problem_text(code).unwrap_or("path problem");
            let why = format!("SCMP parameter problem from {from}: {what} (code {code})");
            if selector.on_scmp_path_problem(now, fp, &why) {
                info!(remote = %peer.remote, path = %fp, "{why}: path marked down, asking the daemon for fresh paths");
                peer.wants_paths = true;
                self.drive_peer(peer, now);
            } else {
                debug!(remote = %peer.remote, path = %fp, "{why} (again)");
            }
            return;
        }
        // ... and naming an interface that path crosses.
        if !scmp_names_a_hop_of(
            &report.kind,
            via.and_then(|fp| selector.path(&fp)),
            &quoted.path,
        ) {
            debug!(
                remote = %peer.remote,
                "SCMP about an interface the quoted path does not cross ignored: {}",
                scmp_down_text(&report.kind)
            );
            return;
        }
        let before = selector.scmp_down_count();
        let marked = match &report.kind {
            ScmpKind::ExternalInterfaceDown { ia, ifid } => match u16::try_from(*ifid) {
                Ok(ifid) => selector.on_scmp_interface_down(now, *ia, ifid),
                Err(_) => 0,
            },
            ScmpKind::InternalConnectivityDown {
                ia,
                ingress,
                egress,
            } => match (u16::try_from(*ingress), u16::try_from(*egress)) {
                (Ok(i), Ok(e)) => selector.on_scmp_internal_down(now, *ia, i, e),
                _ => 0,
            },
            _ => 0,
        };
        if marked > 0 {
            // Every probe on a path through a dead link draws another SCMP error: log the
            // paths that went down now, and the repeats (which only refresh them) at debug.
            let newly = selector.scmp_down_count().saturating_sub(before);
            let what = scmp_down_text(&report.kind);
            if newly > 0 {
                info!(remote = %peer.remote, paths = newly, "SCMP marked paths down: {what}");
            } else {
                debug!(remote = %peer.remote, paths = marked, "SCMP (again): {what}");
            }
            self.drive_peer(peer, now);
        }
    }

    /// Runs selectors on their timers and loads paths when asked, and sends the QUIC datagrams
    /// that wait in `pending`; ends when `self` is dropped by everyone else.
    pub async fn run_driver(self: Arc<Self>) {
        tokio::select! {
            _ = self.drive_paths() => {}
            _ = self.run_flusher() => {}
        }
    }

    async fn drive_paths(self: &Arc<Self>) {
        loop {
            let now = Instant::now();
            let mut next = now + DRIVER_IDLE;
            let mut to_load = Vec::new();
            {
                let mut table = self.table();
                let idle: Vec<(ScionAddr, SocketAddr)> = table
                    .peers
                    .values()
                    .filter(|p| {
                        p.holds == 0 && now.saturating_duration_since(p.last_activity) > PEER_IDLE
                    })
                    .map(|p| (p.remote, p.synthetic))
                    .collect();
                for (remote, synthetic) in idle {
                    debug!(%remote, "forgetting idle SCION peer");
                    table.peers.remove(&remote);
                    table.by_synthetic.remove(&synthetic);
                }
                for peer in table.peers.values_mut() {
                    peer.trim_recent(now);
                    if peer.quiet(now) {
                        // No connection: nothing to probe paths for (see PEER_QUIET).
                        continue;
                    }
                    self.drive_peer(peer, now);
                    if let Some(t) = peer.selector.as_ref().and_then(Selector::poll_timeout) {
                        next = next.min(t);
                    }
                    let backoff_over = peer.next_load.is_none_or(|t| t <= now);
                    if peer.wants_paths && !peer.loading && backoff_over && self.daemon.is_some() {
                        peer.loading = true;
                        to_load.push((peer.remote, peer.selector.is_some()));
                    }
                }
            }
            for (remote, refresh) in to_load {
                let me = self.clone();
                tokio::spawn(async move {
                    let res = me.load_paths(remote, refresh).await;
                    let mut table = me.table();
                    let Some(p) = table.peers.get_mut(&remote) else {
                        return;
                    };
                    match res {
                        // Once per outage at warn (the daemon is retried every LOAD_RETRY),
                        // and once when it answers again.
                        Err(e) => {
                            if std::mem::replace(&mut p.load_failing, true) {
                                debug!(%remote, error = %e, "loading SCION paths failed (again)");
                            } else {
                                warn!(%remote, error = %e, "loading SCION paths failed; retrying");
                            }
                            p.loading = false;
                            p.next_load = Some(Instant::now() + LOAD_RETRY);
                        }
                        Ok(_) => {
                            if std::mem::replace(&mut p.load_failing, false) {
                                info!(%remote, "loading SCION paths works again");
                            }
                        }
                    }
                });
            }
            if Arc::strong_count(self) <= 1 {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next.max(now + Duration::from_millis(1)))) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

/// Whether a SCION/UDP payload is one of our probe frames (never a QUIC packet: see the
/// module docs).
fn is_probe(payload: &[u8]) -> bool {
    payload.len() == PROBE_LEN
        && payload[0] == PROBE_TAG
        && matches!(payload[1], PROBE_REQUEST | PROBE_REPLY)
}

fn probe_frame(kind: u8, seq: u64, token: u64) -> Bytes {
    let mut frame = Vec::with_capacity(PROBE_LEN);
    frame.push(PROBE_TAG);
    frame.push(kind);
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&token.to_be_bytes());
    Bytes::from(frame)
}

/// Whether the interface (or the pair of interfaces) an SCMP error names lies on the path of
/// the packet it quotes: checked against the path's metadata when it is one of our candidates,
/// else (the reversed path a peer reached us on) against the interface ids in its hop fields.
fn scmp_names_a_hop_of(
    kind: &ScmpKind,
    info: Option<&crate::path::PathInfo>,
    path: &DataPath,
) -> bool {
    // Without the path's metadata only interface ids can be checked, not their ASes; 0 is
    // the ingress a router names for a packet of a host in its own AS.
    let crossed = |id: u16| {
        id != 0
            && path
                .hop_interfaces()
                .iter()
                .any(|&(i, e)| i == id || e == id)
    };
    match *kind {
        ScmpKind::ExternalInterfaceDown { ia, ifid } => match (u16::try_from(ifid), info) {
            (Ok(ifid), Some(info)) => info.uses_interface(ia, ifid),
            (Ok(ifid), None) => crossed(ifid),
            (Err(_), _) => false,
        },
        ScmpKind::InternalConnectivityDown {
            ia,
            ingress,
            egress,
        } => match (u16::try_from(ingress), u16::try_from(egress), info) {
            (Ok(i), Ok(e), Some(info)) => info.uses_internal(ia, i, e),
            (Ok(i), Ok(e), None) => (i == 0 || crossed(i)) && crossed(e),
            _ => false,
        },
        _ => false,
    }
}

/// How many of `paths` are in which state, and a hint on what to check for the states present
/// (for [`PathError::NoUsablePath`]).
fn unusable_summary(paths: &[CandidateView]) -> (String, &'static str) {
    let mut counts = std::collections::BTreeMap::<PathState, usize>::new();
    for c in paths {
        *counts.entry(c.state).or_default() += 1;
    }
    let states = counts
        .iter()
        .map(|(state, k)| format!("{k} {state}"))
        .collect::<Vec<_>>()
        .join(", ");
    let has = |s: PathState| paths.iter().any(|c| c.state == s);
    let hint = if has(PathState::Expired) {
        "; expired paths carry hop fields past their expiry time: check this host's clock"
    } else if has(PathState::Filtered) {
        "; the \"path filtered\" log lines say why (scion.policy, MTU)"
    } else {
        ""
    };
    (states, hint)
}

/// What an SCMP Parameter Problem code about the path itself means (scionproto
/// `slayers.SCMPCode*`, 48-53); None for codes about other headers.
fn path_problem_text(code: u8) -> Option<&'static str> {
    Some(match code {
        48 => "invalid path",
        49 => "unknown hop field ingress interface",
        50 => "unknown hop field egress interface",
        51 => "invalid hop field MAC",
        52 => "path expired",
        53 => "invalid segment change",
        _ => return None,
    })
}

/// An SCMP down report in the operators' notation (`interface down 18-ffaa:0:1208#2`).
fn scmp_down_text(kind: &ScmpKind) -> String {
    match kind {
        ScmpKind::ExternalInterfaceDown { ia, ifid } => format!("interface down {ia}#{ifid}"),
        ScmpKind::InternalConnectivityDown {
            ia,
            ingress,
            egress,
        } => format!("internal connectivity down in {ia} between #{ingress} and #{egress}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer in 1-ff00:0:112 as seen from 1-ff00:0:111.
    fn test_peer(table: &mut PeerTable) -> &mut Peer {
        let remote = ScionAddr {
            ia: IsdAsn(0x1_ff00_0000_0112),
            ip: IpAddr::from([127, 0, 0, 1]),
            port: 31001,
        };
        ScionSocket::peer_entry(table, remote, IsdAsn(0x1_ff00_0000_0111)).expect("peer")
    }

    #[test]
    fn a_peer_without_quic_traffic_goes_quiet_and_wakes_on_traffic() {
        let mut table = PeerTable::default();
        let peer = test_peer(&mut table);
        let t0 = peer.last_activity;
        assert!(!peer.quiet(t0 + PEER_QUIET / 2));
        assert!(peer.quiet(t0 + PEER_QUIET * 2));
        peer.active_at(t0 + PEER_QUIET * 2);
        assert!(!peer.quiet(t0 + PEER_QUIET * 2));
        // Every connection has idled out by then.
        assert!(PEER_QUIET > Duration::from_secs(30));
    }

    #[test]
    fn a_released_peer_is_quiet_through_the_closing_handshake_and_wakes_after() {
        let mut table = PeerTable::default();
        let peer = test_peer(&mut table);
        let t0 = peer.last_activity;
        peer.holds = 1;
        assert!(!peer.quiet(t0));
        // The link closes: quiet at once, and the CONNECTION_CLOSE exchange keeps it quiet.
        peer.holds = 0;
        peer.released_at = Some(t0);
        assert!(peer.quiet(t0));
        peer.active_at(t0 + RELEASE_SETTLE / 2);
        assert!(peer.quiet(t0 + RELEASE_SETTLE / 2));
        // Traffic well after the close is a new connection (one without a hold, too).
        let later = t0 + RELEASE_SETTLE * 2;
        peer.active_at(later);
        assert!(!peer.quiet(later));
        assert!(peer.released_at.is_none());
        // Held again while released: not quiet.
        peer.released_at = Some(later);
        peer.holds = 1;
        assert!(!peer.quiet(later));
    }

    #[test]
    fn a_new_link_does_not_continue_an_earlier_links_outage() {
        let mut table = PeerTable::default();
        let peer = test_peer(&mut table);
        let t0 = peer.last_activity;
        peer.outages = 1;
        peer.outage_time = Duration::from_secs(3);
        peer.last_outage = Some((t0, t0 + Duration::from_secs(3), Duration::from_secs(3)));
        peer.released_at = Some(t0 + Duration::from_secs(4));
        peer.first_hold();
        assert_eq!((peer.outages, peer.outage_time), (0, Duration::ZERO));
        assert!(
            peer.last_outage.is_none(),
            "would be continued within OUTAGE_FLAP"
        );
        assert!(peer.released_at.is_none());
    }

    #[test]
    fn replay_memory_is_bounded_and_hands_buffers_back() {
        let mut table = PeerTable::default();
        let peer = test_peer(&mut table);
        let mut spare = Vec::new();
        let t0 = Instant::now();
        // Ten datagrams of 100 bytes per transmit: thirteen keep at least 128 datagrams.
        let sent = |at: Instant| Sent {
            at,
            buf: vec![0u8; 1000],
            header: 40,
            stride: 100,
        };
        for _ in 0..13 {
            peer.remember(sent(t0), &mut spare);
        }
        assert_eq!((peer.recent_segments, spare.len()), (130, 0));
        peer.remember(sent(t0), &mut spare);
        assert_eq!((peer.recent_segments, spare.len()), (130, 1));
        assert_eq!(
            spare[0].capacity(),
            1000,
            "the old buffer itself, for reuse"
        );
        // Past the replay window everything older goes, and the spare list stays bounded.
        peer.remember(sent(t0 + REPLAY_MAX * 2), &mut spare);
        assert_eq!(peer.recent_segments, 10);
        assert_eq!(spare.len(), 14.min(SPARE_BUFFERS));
        assert_eq!(peer.recent.front().map(|s| s.payloads().count()), Some(10));
    }

    #[test]
    fn past_the_window_the_newest_datagrams_stay_in_a_small_buffer() {
        let mut table = PeerTable::default();
        let peer = test_peer(&mut table);
        let mut spare = Vec::new();
        let t0 = Instant::now();
        // Three transmits of ten datagrams (the last one shorter); each datagram's bytes
        // say which transmit and which datagram it is.
        for n in 0..3u8 {
            let mut buf = Vec::with_capacity(64 * 1024);
            for d in 0..10u8 {
                let len = if d == 9 { 60 } else { 100 };
                buf.extend(std::iter::repeat_n(n * 16 + d, len));
            }
            peer.remember(
                Sent {
                    at: t0,
                    buf,
                    header: 40,
                    stride: 100,
                },
                &mut spare,
            );
        }
        peer.trim_recent(t0 + REPLAY_MAX / 2);
        assert_eq!(peer.recent_segments, 30, "all inside the window");
        peer.trim_recent(t0 + REPLAY_MAX * 4);
        assert_eq!(peer.recent.len(), 1);
        assert_eq!(peer.recent_segments, REPLAY_AFTER_OUTAGE);
        let kept = peer.recent.back().expect("the newest");
        let firsts: Vec<(u8, usize)> = kept.payloads().map(|p| (p[0], p.len())).collect();
        assert_eq!(firsts, vec![(38, 60), (39, 60), (40, 60), (41, 20)]);
        assert!(kept.buf.capacity() < 1024, "{}", kept.buf.capacity());
        // The next transmit replaces it.
        peer.remember(
            Sent {
                at: t0 + REPLAY_MAX * 4,
                buf: vec![0u8; 1000],
                header: 40,
                stride: 100,
            },
            &mut spare,
        );
        assert_eq!(peer.recent_segments, 10);
    }

    #[test]
    fn probes_are_told_from_quic_by_size_not_first_byte() {
        let req = probe_frame(PROBE_REQUEST, 7, 9);
        let rep = probe_frame(PROBE_REPLY, 7, 9);
        assert!(is_probe(&req) && is_probe(&rep));
        // A short-header QUIC packet with a greased (cleared) fixed bit whose protected bits
        // happen to be zero: it starts with 0x00 but must go to QUIC.
        let mut quic = vec![0u8; 1200];
        quic[1] = PROBE_REQUEST;
        assert!(!is_probe(&quic));
        assert!(!is_probe(&req[..PROBE_LEN - 1]));
        let mut other_kind = req.to_vec();
        other_kind[1] = 3;
        assert!(!is_probe(&other_kind));
    }
}
