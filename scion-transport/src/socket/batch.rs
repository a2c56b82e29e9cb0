//! Batched datagram I/O of the SCION socket: GSO on send, recvmmsg + GRO on receive.
//!
//! Send: quinn hands over a `Transmit` of up to N equal QUIC packets (the last may be shorter).
//! Each becomes one segment `[SCION/UDP header | QUIC packet]` of one buffer, sent with one
//! `sendmsg` carrying UDP_SEGMENT = header + QUIC segment size (Linux GSO: the kernel cuts the
//! buffer into datagrams; a shorter last segment is allowed). Headers come from a per-route
//! [`UdpTemplate`], so a segment costs a copy and a checksum, not a full encode. Without GSO
//! (quinn-udp reports 1 segment) the same code sends one datagram per `sendmsg`.
//!
//! quinn caps a transmit at 10 packets. Toward a peer with one active route, consecutive
//! transmits join one buffer ([`Pending`]) of up to 64 packets (one `sendmsg`). A transmit of
//! fewer than 10 packets ends the run and sends the buffer at once (an ACK or a lone message
//! never waits); so does a full buffer, or a transmit that cannot join. Otherwise the flusher,
//! woken by a new buffer, sends it as soon as the connection driver that filled it yields.
//! About half as many `sendmsg` calls for a bulk stream (the kernel's per-call work was most
//! of its share of a route's CPU), and the receiver's GRO hands quinn larger batches.
//!
//! Receive: one `recvmmsg` fills up to `BATCH_SIZE` buffers; with GRO each may hold several
//! datagrams at a fixed stride. Every segment is decoded in place; QUIC payloads are packed
//! into quinn's slots, consecutive payloads from the same peer with equal length sharing one
//! slot (quinn splits it again by `stride`). Probes and SCMP are handled on the way.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit, UdpSockRef, BATCH_SIZE};
use tokio::io::Interest;
use tracing::{debug, trace};

use super::{is_probe, Peer, ScionSocket, Sent};
use crate::address::ScionAddr;
use crate::wire::{self, FastDecoded, Received, UdpTemplate};

/// Bytes per receive buffer: one GRO super-datagram, or one datagram of any size.
const RECV_SLOT: usize = 1 << 16;
/// quinn's cap on the packets of one transmit (quinn 0.11 `MAX_TRANSMIT_SEGMENTS`): a
/// transmit this large is likely followed by more in the same driver round.
const QUINN_TRANSMIT_SEGMENTS: usize = 10;
/// Largest GSO buffer: an IPv4 UDP payload (65535 - 20 - 8), and the kernel's 64 segments.
const GSO_MAX_BYTES: usize = 65_507;
const GSO_MAX_SEGMENTS: usize = 64;
/// recvmmsg rounds per poll that may yield nothing for quinn (probes, SCMP, junk) before
/// yielding to other tasks, so a flood cannot starve the endpoint driver.
const MAX_EMPTY_ROUNDS: usize = 8;

/// Where and with which encoded headers QUIC datagrams to one peer go over one path.
#[derive(Debug)]
pub(super) struct SendRoute {
    pub(super) template: UdpTemplate,
    pub(super) next_hop: SocketAddr,
}

impl Peer {
    /// The routes QUIC datagrams use now: the active set, or the reply path before paths are
    /// known. Cached; every change of `active`, `routes` or `reply` clears the cache.
    pub(super) fn send_routes(&mut self, local: &ScionAddr) -> Arc<[SendRoute]> {
        if let Some(r) = &self.send_routes {
            return r.clone();
        }
        let mut routes: Vec<&super::Route> = self
            .active
            .iter()
            .filter_map(|f| self.routes.get(f))
            .collect();
        // Before our own paths are known, or when none is usable, answer over the reverse of
        // the peer's path. (When our policy filters every path, `ScionIncoming::accept`
        // refuses the connection, and the refusal itself must still reach the peer this way.)
        if routes.is_empty() {
            routes.extend(self.reply.as_ref());
        }
        let remote = self.remote;
        let built: Arc<[SendRoute]> = routes
            .into_iter()
            .filter_map(|r| match UdpTemplate::new(local, &remote, &r.data) {
                Ok(template) => Some(SendRoute {
                    template,
                    next_hop: r.next_hop,
                }),
                Err(e) => {
                    debug!(%remote, error = %e, "cannot encode headers for a route");
                    None
                }
            })
            .collect();
        self.send_routes = Some(built.clone());
        built
    }
}

/// State of the receive side: our buffers and how far the last `recvmmsg` batch was handed
/// to quinn (a batch can hold more packets than quinn has slots).
pub(super) struct RxState {
    buf: Box<[u8]>,
    metas: [RecvMeta; BATCH_SIZE],
    count: usize,
    next: usize,
    offset: usize,
}

impl RxState {
    pub(super) fn new() -> Self {
        RxState {
            buf: vec![0u8; RECV_SLOT * BATCH_SIZE].into_boxed_slice(),
            metas: [RecvMeta::default(); BATCH_SIZE],
            count: 0,
            next: 0,
            offset: 0,
        }
    }
}

/// quinn's receive slots being filled.
struct Slots<'a, 'b> {
    bufs: &'a mut [IoSliceMut<'b>],
    meta: &'a mut [RecvMeta],
    count: usize,
    /// Whether the last slot may take another payload of its stride.
    open: bool,
}

impl Slots<'_, '_> {
    /// Copies one QUIC datagram into a slot; false when no slot is left (try again later).
    fn push(&mut self, from: SocketAddr, payload: &[u8]) -> bool {
        let n = payload.len();
        if self.open {
            let i = self.count - 1;
            let m = &mut self.meta[i];
            if m.addr == from && n <= m.stride && m.len + n <= self.bufs[i].len() {
                self.bufs[i][m.len..m.len + n].copy_from_slice(payload);
                m.len += n;
                // A shorter datagram can only be the last of a slot (quinn splits by stride).
                self.open = n == m.stride;
                return true;
            }
        }
        if self.count >= self.bufs.len().min(self.meta.len()) {
            return false;
        }
        let i = self.count;
        if n > self.bufs[i].len() {
            trace!(
                n,
                "QUIC datagram larger than quinn's receive buffer dropped"
            );
            return true;
        }
        self.bufs[i][..n].copy_from_slice(payload);
        self.meta[i] = RecvMeta {
            addr: from,
            len: n,
            stride: n,
            ecn: None,
            dst_ip: None,
        };
        self.count += 1;
        self.open = n > 0;
        true
    }
}

/// QUIC datagrams taken from quinn and not yet handed to the kernel: consecutive transmits
/// to one peer over its one active route with one segment size, as one GSO buffer.
pub(crate) struct Pending {
    remote: ScionAddr,
    /// The peer's route set (of one route) the datagrams were encoded for.
    routes: Arc<[SendRoute]>,
    sent: Sent,
    /// The last datagram is shorter than the stride: nothing may follow it in this buffer.
    short_tail: bool,
}

/// Where one transmit goes: the peer's one active route.
struct Target {
    remote: ScionAddr,
    routes: Arc<[SendRoute]>,
    now: Instant,
}

/// The peer behind the last QUIC segment: later segments with the same source, path and
/// underlay sender skip the peer table.
struct PeerCache {
    src: ScionAddr,
    from: SocketAddr,
    path: Vec<u8>,
    synthetic: SocketAddr,
}

impl ScionSocket {
    /// GSO segments quinn may put in one transmit.
    pub(crate) fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments().clamp(1, GSO_MAX_SEGMENTS)
    }

    /// Datagrams one receive slot may describe.
    pub(crate) fn max_receive_segments(&self) -> usize {
        self.state.gro_segments().max(1)
    }

    /// Sends one quinn transmit (one or more equal-size QUIC packets) to the peer behind
    /// `transmit.destination` over every active route.
    ///
    /// With one active route and a running flusher the transmit joins [`Pending`] instead
    /// (see the module docs).
    pub(crate) fn send_transmit(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let contents = transmit.contents;
        let seg = match transmit.segment_size {
            Some(s) if s > 0 && s < contents.len() => s,
            _ => contents.len().max(1),
        };
        // Lock order: pending, then table.
        let mut pending = self.pending();
        let coalesce = self.coalesce.load(Ordering::Relaxed);
        let (routes, remote, now, mut spare) = {
            let mut table = self.table();
            let Some(remote) = table.by_synthetic.get(&transmit.destination).copied() else {
                // Unknown destination: as if lost (quinn will time out).
                return Ok(());
            };
            let spare = if pending.is_none() {
                table.spare.pop()
            } else {
                None
            };
            let Some(peer) = table.peers.get_mut(&remote) else {
                return Ok(());
            };
            let now = Instant::now();
            peer.active_at(now);
            (peer.send_routes(&self.local), remote, now, spare)
        };
        if routes.is_empty() {
            trace!(%remote, "no route yet; datagram dropped");
            return Ok(());
        }
        if coalesce && routes.len() == 1 {
            let to = Target {
                remote,
                routes,
                now,
            };
            return self.join_pending(&mut pending, to, spare, contents, seg);
        }
        // What waits goes first, so datagrams to one peer keep their order.
        self.flush_pending(&mut pending)?;
        drop(pending);
        let mut first = None;
        for (i, route) in routes.iter().enumerate() {
            let hdr = route.template.header_len();
            let mut buf = spare.take().unwrap_or_default();
            buf.clear();
            buf.reserve(contents.len().div_ceil(seg) * hdr + contents.len());
            for chunk in contents.chunks(seg) {
                route
                    .template
                    .encode_into(&mut buf, chunk)
                    .map_err(io::Error::other)?;
            }
            match self.send_segments(&buf, hdr + seg, route.next_hop) {
                Ok(()) => {}
                // Only the first copy may ask quinn to wait; redundant copies are best effort.
                Err(e) if i == 0 => return Err(e),
                Err(_) => {}
            }
            if i == 0 {
                first = Some(Sent {
                    at: now,
                    buf,
                    header: hdr,
                    stride: hdr + seg,
                });
            }
        }
        if let Some(sent) = first {
            self.remember(remote, sent);
        }
        Ok(())
    }

    /// Adds a transmit to `pending` (sending what waits there first when the transmit cannot
    /// join it). Only a full quinn transmit (more are likely to follow in the same driver
    /// round) stays there, for the flusher, which is woken once the connection driver yields;
    /// a shorter one ends the run, and a full buffer goes, at once: an ACK or a lone message
    /// never waits for a task switch. WouldBlock before the transmit joined makes quinn wait
    /// and hand it over again; once it joined, it is sent later, so it never goes out twice.
    fn join_pending(
        &self,
        slot: &mut Option<Pending>,
        to: Target,
        spare: Option<Vec<u8>>,
        contents: &[u8],
        seg: usize,
    ) -> io::Result<()> {
        let route = &to.routes[0];
        let hdr = route.template.header_len();
        let stride = hdr + seg;
        let count = contents.len().div_ceil(seg);
        let bytes = count * hdr + contents.len();
        // One sendmsg carries the whole buffer, so a flush is never half done.
        let max_segments = self
            .max_transmit_segments()
            .min(GSO_MAX_BYTES / stride)
            .max(1);
        if let Some(p) = slot.as_ref() {
            // The same route set: a path switch starts a new buffer.
            let joins = p.remote == to.remote
                && Arc::ptr_eq(&p.routes, &to.routes)
                && p.sent.header == hdr
                && p.sent.stride == stride
                && !p.short_tail
                && p.sent.segments() + count <= max_segments;
            if !joins {
                self.flush_pending(slot)?;
            }
        }
        let was_empty = slot.is_none();
        let p = slot.get_or_insert_with(|| {
            let mut buf = spare.unwrap_or_default();
            buf.clear();
            Pending {
                remote: to.remote,
                routes: to.routes.clone(),
                short_tail: false,
                sent: Sent {
                    at: to.now,
                    buf,
                    header: hdr,
                    stride,
                },
            }
        });
        let before = p.sent.buf.len();
        p.sent.buf.reserve(bytes);
        for chunk in contents.chunks(seg) {
            if let Err(e) = route.template.encode_into(&mut p.sent.buf, chunk) {
                p.sent.buf.truncate(before);
                if p.sent.buf.is_empty() {
                    *slot = None;
                }
                return Err(io::Error::other(e));
            }
        }
        p.short_tail = !contents.len().is_multiple_of(seg);
        let more_likely = count >= QUINN_TRANSMIT_SEGMENTS.min(max_segments) && !p.short_tail;
        if !more_likely || p.sent.segments() + 1 > max_segments {
            if let Err(e) = self.flush_pending(slot) {
                if e.kind() == io::ErrorKind::WouldBlock {
                    // It joined: the flusher sends it once the socket takes it.
                    self.flush_wake.notify_one();
                }
            }
        } else if was_empty {
            self.flush_wake.notify_one();
        }
        Ok(())
    }

    /// Sends what waits in `slot`; on WouldBlock it stays there. Other errors were logged by
    /// quinn-udp and count as sent (UDP may lose datagrams anyway).
    fn flush_pending(&self, slot: &mut Option<Pending>) -> io::Result<()> {
        let Some(mut p) = slot.take() else {
            return Ok(());
        };
        let mut done = 0;
        match self.send_segments_from(&p.sent.buf, p.sent.stride, p.routes[0].next_hop, &mut done) {
            Ok(()) => {
                self.remember(p.remote, p.sent);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Only what did not leave waits (several sends only without GSO).
                p.sent.buf.drain(..done);
                *slot = Some(p);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps a sent buffer for replay on a path switch (see `Peer::remember`).
    fn remember(&self, remote: ScionAddr, sent: Sent) {
        let mut table = self.table();
        let super::PeerTable { peers, spare, .. } = &mut *table;
        if let Some(peer) = peers.get_mut(&remote) {
            peer.remember(sent, spare);
        }
    }

    /// Takes what waits in `pending` for `remote`, unsent, when the buffer can be had without
    /// blocking (a path switch sends it over the new routes instead).
    pub(super) fn take_waiting(&self, remote: ScionAddr) -> Option<Sent> {
        let mut slot = match self.pending.try_lock() {
            Ok(slot) => slot,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        if slot.as_ref()?.remote != remote {
            return None;
        }
        slot.take().map(|p| p.sent)
    }

    /// From now on every transmit is sent at once; what waits is sent now (best effort).
    /// For an endpoint going away: its flusher may not run again, and quinn may still send
    /// (CONNECTION_CLOSE).
    pub(crate) fn stop_coalescing(&self) {
        let mut slot = self.pending();
        self.coalesce.store(false, Ordering::Relaxed);
        // On WouldBlock it stays: the next transmit sends it first.
        let _ = self.flush_pending(&mut slot);
    }

    fn pending(&self) -> MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends the datagrams that wait in `pending` each time the first of them arrives (the
    /// wake-up runs this right after the connection driver that added them yields), and again
    /// once the socket is writable after WouldBlock. Never returns.
    pub(super) async fn run_flusher(&self) {
        self.coalesce.store(true, Ordering::Relaxed);
        // Transmits stop waiting in `pending` when this future is dropped.
        struct Off<'a>(&'a ScionSocket);
        impl Drop for Off<'_> {
            fn drop(&mut self) {
                self.0.stop_coalescing();
            }
        }
        let _off = Off(self);
        loop {
            self.flush_wake.notified().await;
            // Bounded: each round either sends, finds nothing, or waits for writability.
            loop {
                let res = self.flush_pending(&mut self.pending());
                match res {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = self.udp.writable().await {
                            // Not seen on Linux; the next transmit sends what waits first.
                            debug!(error = %e, "SCION socket not writable");
                            break;
                        }
                    }
                    _ => break,
                }
            }
        }
    }

    /// Sends a buffer of datagrams of `stride` bytes (the last may be shorter) with as few
    /// `sendmsg` calls as GSO allows. Errors other than WouldBlock are logged by quinn-udp and
    /// count as sent (UDP may lose packets anyway).
    fn send_segments(&self, buf: &[u8], stride: usize, to: SocketAddr) -> io::Result<()> {
        self.send_segments_from(buf, stride, to, &mut 0)
    }

    /// [`Self::send_segments`], counting in `done` the bytes that left before an error.
    fn send_segments_from(
        &self,
        buf: &[u8],
        stride: usize,
        to: SocketAddr,
        done: &mut usize,
    ) -> io::Result<()> {
        let per_send = self
            .max_transmit_segments()
            .min(GSO_MAX_BYTES / stride.max(1))
            .max(1);
        for group in buf.chunks(per_send * stride) {
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: group,
                segment_size: (group.len() > stride).then_some(stride),
                src_ip: None,
            };
            // try_io clears tokio's write readiness on WouldBlock, so poll_writable waits.
            self.udp.try_io(Interest::WRITABLE, || {
                self.state.send(UdpSockRef::from(&self.udp), &transmit)
            })?;
            *done += group.len();
            self.sends.fetch_add(1, Ordering::Relaxed);
            self.datagrams
                .fetch_add(group.len().div_ceil(stride) as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Receives QUIC datagrams into quinn's slots, handling probes and SCMP on the way.
    pub(crate) fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let mut slots = Slots {
            bufs,
            meta,
            count: 0,
            open: false,
        };
        let mut cache = None;
        let mut rounds = 0;
        loop {
            self.drain(&mut rx, &mut slots, &mut cache);
            if slots.count > 0 {
                return Poll::Ready(Ok(slots.count));
            }
            if rounds == MAX_EMPTY_ROUNDS {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            rounds += 1;
            match self.udp.poll_recv_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    trace!(?e, "underlay readiness error ignored");
                    continue;
                }
                Poll::Ready(Ok(())) => {}
            }
            let RxState { buf, metas, .. } = &mut *rx;
            let mut chunks = buf.chunks_mut(RECV_SLOT).map(IoSliceMut::new);
            let mut iovs: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| chunks.next().unwrap_or_else(|| IoSliceMut::new(&mut [])));
            let got = self.udp.try_io(Interest::READABLE, || {
                self.state
                    .recv(UdpSockRef::from(&self.udp), &mut iovs, metas)
            });
            match got {
                Ok(n) => {
                    rx.count = n;
                    rx.next = 0;
                    rx.offset = 0;
                }
                // ICMP errors (e.g. port unreachable) surface here; never end the endpoint.
                Err(e) => trace!(?e, "underlay receive error ignored"),
            }
        }
    }

    /// Hands the received batch to quinn's slots until either runs out.
    fn drain(&self, rx: &mut RxState, slots: &mut Slots<'_, '_>, cache: &mut Option<PeerCache>) {
        while rx.next < rx.count {
            let m = rx.metas[rx.next];
            let base = rx.next * RECV_SLOT;
            let len = m.len.min(RECV_SLOT);
            let stride = if m.stride == 0 { len } else { m.stride };
            while rx.offset < len {
                let end = (rx.offset + stride).min(len);
                let seg = &rx.buf[base + rx.offset..base + end];
                if !self.on_segment(seg, m.addr, slots, cache) {
                    return;
                }
                rx.offset = end;
            }
            rx.next += 1;
            rx.offset = 0;
        }
    }

    /// Handles one received datagram; false when it is QUIC and no quinn slot is left.
    fn on_segment(
        &self,
        seg: &[u8],
        from: SocketAddr,
        slots: &mut Slots<'_, '_>,
        cache: &mut Option<PeerCache>,
    ) -> bool {
        let udp = match wire::decode_udp_fast(seg) {
            Ok(FastDecoded::Udp(udp)) => udp,
            Ok(FastDecoded::Fallback) => return self.on_segment_slow(seg, from, slots),
            Err(e) => {
                trace!(?e, %from, "undecodable datagram");
                return true;
            }
        };
        let payload = &seg[udp.payload.clone()];
        if udp.dst.port != self.local.port || payload.is_empty() {
            return true;
        }
        if is_probe(payload) {
            // Rare: the full decoder gives the path object the probe answer needs.
            return self.on_segment_slow(seg, from, slots);
        }
        let path = &seg[udp.path.clone()];
        let synthetic = match cache {
            Some(c) if c.src == udp.src && c.from == from && c.path == path => c.synthetic,
            _ => {
                let Some(synthetic) = self.note_reply_path(udp.src, path, from) else {
                    return true;
                };
                *cache = Some(PeerCache {
                    src: udp.src,
                    from,
                    path: path.to_vec(),
                    synthetic,
                });
                synthetic
            }
        };
        slots.push(synthetic, payload)
    }

    /// The full decoder, for SCMP, probes and anything the fast path does not handle.
    fn on_segment_slow(&self, seg: &[u8], from: SocketAddr, slots: &mut Slots<'_, '_>) -> bool {
        match wire::decode(Bytes::copy_from_slice(seg)) {
            Ok(Received::Udp(udp)) => {
                if udp.dst.port != self.local.port || udp.payload.is_empty() {
                    return true;
                }
                if is_probe(&udp.payload) {
                    self.on_probe(&udp, from);
                    return true;
                }
                match self.note_reply_path(udp.src, udp.path.raw(), from) {
                    Some(synthetic) => slots.push(synthetic, &udp.payload),
                    None => true,
                }
            }
            Ok(Received::Scmp(report)) => {
                self.on_scmp(report);
                true
            }
            Ok(Received::Other { next_header }) => {
                trace!(next_header, "ignoring non-UDP SCION packet");
                true
            }
            Err(e) => {
                trace!(?e, %from, "undecodable datagram");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 1000))
    }

    #[test]
    fn slots_pack_equal_payloads_of_one_peer_and_close_on_a_short_one() {
        let mut storage = [[0u8; 64]; 3];
        let mut bufs: Vec<IoSliceMut<'_>> =
            storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let mut meta = [RecvMeta::default(); 3];
        let mut slots = Slots {
            bufs: &mut bufs,
            meta: &mut meta,
            count: 0,
            open: false,
        };
        assert!(slots.push(addr(1), &[1; 10]));
        assert!(slots.push(addr(1), &[2; 10]));
        assert!(slots.push(addr(1), &[3; 4]), "short one ends the slot");
        assert!(slots.push(addr(1), &[4; 10]), "so this opens a new slot");
        assert!(slots.push(addr(2), &[5; 10]), "other peer: new slot");
        assert!(!slots.push(addr(1), &[6; 10]), "no slot left");
        assert!(slots.push(addr(2), &[7; 10]), "fits the open slot");
        assert!(
            !slots.push(addr(2), &[8; 100]),
            "larger than stride: no slot"
        );
        assert_eq!(slots.count, 3);
        drop(bufs);
        assert_eq!(
            (meta[0].len, meta[0].stride, meta[0].addr),
            (24, 10, addr(1))
        );
        assert_eq!((meta[1].len, meta[1].stride), (10, 10));
        assert_eq!(
            (meta[2].len, meta[2].stride, meta[2].addr),
            (20, 10, addr(2))
        );
        let mut want = vec![1u8; 10];
        want.extend_from_slice(&[2; 10]);
        want.extend_from_slice(&[3; 4]);
        assert_eq!(&storage[0][..24], &want[..]);
        let mut want = vec![5u8; 10];
        want.extend_from_slice(&[7; 10]);
        assert_eq!(&storage[2][..20], &want[..]);
    }

    #[test]
    fn oversized_payload_is_dropped_not_retried() {
        let mut storage = [0u8; 16];
        let mut bufs = [IoSliceMut::new(&mut storage)];
        let mut meta = [RecvMeta::default(); 1];
        let mut slots = Slots {
            bufs: &mut bufs,
            meta: &mut meta,
            count: 0,
            open: false,
        };
        assert!(slots.push(addr(1), &[0; 17]), "consumed (dropped)");
        assert_eq!(slots.count, 0);
    }
}
