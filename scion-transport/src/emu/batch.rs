//! Batched UDP I/O of the emulated border routers (quinn-udp): recvmmsg + GRO in, GSO out.
//!
//! A router reads up to [`RECV_SLOTS`] datagrams per system call; with GRO one datagram may
//! hold many SCION packets of equal size (`stride`). Forwarding rewrites packets in place
//! without changing their length, so consecutive packets that leave through the same socket
//! to the same address can go out again as one GSO send: on loopback the kernel hands such a
//! send to a GRO-enabled receiver as one unit, so a batch crosses each hop in a few system calls.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams read per receive call.
pub(crate) const RECV_SLOTS: usize = 16;
/// Size of one receive slot: the largest UDP datagram, so a GRO batch is never truncated.
pub(crate) const SLOT_BYTES: usize = 65536;
/// Largest GSO send: the UDP length field limits one datagram (and one GSO send) to 64 KiB.
const MAX_GSO_BYTES: usize = 65000;

/// One router socket with quinn-udp's batched I/O state.
#[derive(Debug)]
pub(crate) struct RouterSocket {
    io: UdpSocket,
    state: UdpSocketState,
    pub addr: SocketAddr,
}

impl RouterSocket {
    pub fn bind(addr: SocketAddr) -> io::Result<RouterSocket> {
        let io = crate::quic::bind_udp_socket(addr)?;
        let state = UdpSocketState::new((&io).into())?;
        let addr = io.local_addr()?;
        Ok(RouterSocket { io, state, addr })
    }

    /// Most packets one send may carry (1 when the kernel refused GSO).
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments().clamp(1, 64)
    }

    /// Waits for and reads a batch of datagrams; returns how many `meta` entries are filled.
    pub async fn recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        self.io
            .async_io(Interest::READABLE, || {
                self.state.recv((&self.io).into(), bufs, meta)
            })
            .await
    }

    /// Sends without waiting: `contents` is one packet, or several packets of `segment` bytes
    /// each (the last may be shorter) sent with GSO. A full socket buffer is `WouldBlock`,
    /// like a busy router port; the caller drops and counts.
    pub fn try_send(&self, to: SocketAddr, contents: &[u8], segment: usize) -> io::Result<()> {
        let segment_size = (contents.len() > segment).then_some(segment);
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        let sent = self.io.try_io(Interest::WRITABLE, || {
            self.state.try_send((&self.io).into(), &transmit)
        });
        match sent {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock && segment_size.is_some() => {
                // The kernel refused GSO (quinn-udp has now switched it off): one by one.
                tracing::debug!(?e, "GSO send failed, sending packets singly");
                for chunk in contents.chunks(segment) {
                    self.try_send(to, chunk, chunk.len())?;
                }
                Ok(())
            }
            other => other,
        }
    }
}

/// Receive storage of one router socket.
pub(crate) struct RecvBufs {
    storage: Vec<u8>,
    pub meta: Vec<RecvMeta>,
}

impl RecvBufs {
    pub fn new() -> RecvBufs {
        RecvBufs {
            storage: vec![0u8; RECV_SLOTS * SLOT_BYTES],
            meta: vec![RecvMeta::default(); RECV_SLOTS],
        }
    }

    /// Reads a batch from `socket`; returns the number of datagrams.
    pub async fn recv_from(&mut self, socket: &RouterSocket) -> io::Result<usize> {
        let mut slices: Vec<IoSliceMut<'_>> = self
            .storage
            .chunks_mut(SLOT_BYTES)
            .map(IoSliceMut::new)
            .collect();
        socket.recv(&mut slices, &mut self.meta).await
    }

    /// Datagram `i` of the last batch (its received bytes).
    pub fn datagram_mut(&mut self, i: usize) -> &mut [u8] {
        let len = self.meta[i].len.min(SLOT_BYTES);
        &mut self.storage[i * SLOT_BYTES..i * SLOT_BYTES + len]
    }

    /// Bytes `range` of datagram `i`.
    pub fn bytes(&self, i: usize, range: std::ops::Range<usize>) -> &[u8] {
        &self.storage[i * SLOT_BYTES + range.start..i * SLOT_BYTES + range.end]
    }

    /// Packet size within datagram `i` (its GRO stride; the whole datagram without GRO).
    pub fn stride(&self, i: usize) -> usize {
        let m = &self.meta[i];
        if m.stride == 0 || m.stride > m.len {
            m.len
        } else {
            m.stride
        }
    }
}

/// Packets a [`Group`] can point into: receive slots, or one flat buffer (slot ignored).
pub(crate) trait Source {
    fn bytes(&self, slot: usize, range: std::ops::Range<usize>) -> &[u8];
}

impl Source for RecvBufs {
    fn bytes(&self, slot: usize, range: std::ops::Range<usize>) -> &[u8] {
        RecvBufs::bytes(self, slot, range)
    }
}

impl Source for [u8] {
    fn bytes(&self, _slot: usize, range: std::ops::Range<usize>) -> &[u8] {
        &self[range]
    }
}

/// Where a packet leaves to: a router socket and the UDP address it sends to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out<'s> {
    pub socket: &'s RouterSocket,
    pub to: SocketAddr,
}

impl PartialEq for Out<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.socket, other.socket) && self.to == other.to
    }
}

/// Packets collected for one GSO send: equal size, the same [`Out`], consecutive.
///
/// Packets of one received datagram lie back to back in its receive slot, so a group inside one
/// slot is sent straight from there; a group that spans slots is copied into `scratch`.
pub(crate) struct Group<'s> {
    out: Option<Out<'s>>,
    /// Slot and byte range of the in-place packets (while not copied).
    slot: usize,
    start: usize,
    end: usize,
    copied: bool,
    scratch: Vec<u8>,
    segment: usize,
    count: usize,
    /// The last packet is shorter than `segment`: nothing may follow it.
    closed: bool,
}

/// What to do with a group that is ready to go out.
pub(crate) struct Flush<'g, 's> {
    pub out: Out<'s>,
    pub contents: &'g [u8],
    pub segment: usize,
    pub count: usize,
}

impl<'s> Group<'s> {
    pub fn new() -> Group<'s> {
        Group {
            out: None,
            slot: 0,
            start: 0,
            end: 0,
            copied: false,
            scratch: Vec::with_capacity(SLOT_BYTES),
            segment: 0,
            count: 0,
            closed: false,
        }
    }

    /// Whether a packet of `len` bytes to `out` can join the group.
    pub fn fits(&self, out: &Out<'s>, len: usize) -> bool {
        self.out.as_ref() == Some(out)
            && !self.closed
            && len <= self.segment
            && self.count < out.socket.max_segments()
            && self.len() + len <= MAX_GSO_BYTES
    }

    fn len(&self) -> usize {
        if self.copied {
            self.scratch.len()
        } else {
            self.end - self.start
        }
    }

    /// Adds the packet at `range` of slot `slot` in `bufs`; the caller checked [`Self::fits`]
    /// or the group is empty.
    pub fn push<S: Source + ?Sized>(
        &mut self,
        out: Out<'s>,
        bufs: &S,
        slot: usize,
        range: std::ops::Range<usize>,
    ) {
        let len = range.len();
        if self.out.is_none() {
            *self = Group {
                out: Some(out),
                slot,
                start: range.start,
                end: range.end,
                copied: false,
                scratch: std::mem::take(&mut self.scratch),
                segment: len,
                count: 1,
                closed: false,
            };
            self.scratch.clear();
            return;
        }
        if !self.copied && slot == self.slot && range.start == self.end {
            self.end = range.end;
        } else {
            if !self.copied {
                self.scratch.clear();
                self.scratch
                    .extend_from_slice(bufs.bytes(self.slot, self.start..self.end));
                self.copied = true;
            }
            self.scratch.extend_from_slice(bufs.bytes(slot, range));
        }
        self.count += 1;
        self.closed = len < self.segment;
    }

    /// Takes the group for sending (None when empty); the group is empty afterwards.
    pub fn take<'g, S: Source + ?Sized>(
        &'g mut self,
        bufs: Option<&'g S>,
    ) -> Option<Flush<'g, 's>> {
        let out = self.out.take()?;
        let contents = if self.copied {
            &self.scratch[..]
        } else {
            bufs?.bytes(self.slot, self.start..self.end)
        };
        let flush = Flush {
            out,
            contents,
            segment: self.segment,
            count: self.count,
        };
        self.copied = false;
        self.closed = false;
        Some(flush)
    }
}
