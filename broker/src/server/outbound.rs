//! Per-connection outbound buffer with a byte limit (nats-server
//! `client.queueOutbound` / `flushOutbound`).
//!
//! Producers (any task delivering to this connection) append under a short
//! std mutex; the connection's writer task takes the pending chunks and
//! writes them. When pending bytes exceed `max_pending` the connection is
//! marked as a slow consumer and closed, so a stalled reader can never grow
//! the broker's memory without bound and never stalls the producers.
//!
//! Pending bytes live in a list of chunks of at most [`CHUNK`] bytes (like
//! nats-server's `out.nb` list of buffers up to `maxBufSize`) rather than in
//! one growing buffer: growing a large buffer reallocates and copies it,
//! briefly holding old and new copies and leaving freed blocks of every
//! size behind, which made the peak RSS of a stalled subscriber about twice
//! its pending bytes. Equal-sized chunks are reused by the allocator.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tracing::info;

use super::client::ClientShared;
use super::closed::ClosedState;
use crate::proto::ConnKind;

/// Largest chunk (nats-server `maxBufSize`, 64 KiB). A single message
/// larger than this gets a chunk of its own size.
pub const CHUNK: usize = 64 * 1024;
/// First chunk of a connection; later chunks double up to [`CHUNK`], so idle
/// connections stay small (nats-server starts at `startBufSize`).
const FIRST_CHUNK: usize = 1024;
/// Written chunks kept per connection for reuse.
const POOL_MAX: usize = 2;
/// Chunks written with one vectored write at most.
const MAX_IOV: usize = 64;

/// A message that does not fit the room left in the last chunk is split
/// across chunks when at least this much room is left (less is not worth
/// the copy through the scratch buffer).
const MIN_SPLIT_ROOM: usize = 256;

thread_local! {
    /// Where a message to be split is encoded first.
    static SPLIT_SCRATCH: std::cell::RefCell<Vec<u8>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Pending bytes as a list of chunks.
pub type Chunks = VecDeque<Vec<u8>>;

struct Inner {
    chunks: Chunks,
    /// Bytes in `chunks`.
    len: usize,
    /// Bytes the writer took and is still writing; they count as pending
    /// until written (nats-server decrements `pb` only after the write).
    in_flight: usize,
    closed: Option<ClosedState>,
    /// Written chunks (emptied) for reuse.
    pool: Vec<Vec<u8>>,
    /// Capacity of the last chunk started (the next one doubles it).
    last_cap: usize,
    /// Most bytes ever pending.
    peak: usize,
}

pub struct Outbound {
    inner: Mutex<Inner>,
    /// Wakes the writer task.
    notify: Notify,
    /// Set once the connection is closing (read without the lock).
    closing: AtomicBool,
    /// Wakes the reader task when the connection must close.
    close_notify: Notify,
    max_pending: usize,
    /// Pending bytes are above half of `max_pending`: producers should wait
    /// a little (nats-server `out.stc`, fast-producer stall).
    stalled: AtomicBool,
    /// Wakes stalled producers once the writer drained below the mark.
    stall_notify: Notify,
    /// A stall wait for this connection timed out: route readers stop waiting for it
    /// until it drains below the mark again.
    route_wait_given_up: AtomicBool,
    /// Cut the connection when pending bytes exceed `max_pending`.
    cut_on_overflow: bool,
    /// Counts a write timeout the connection survives (a route's partial
    /// write) as a slow consumer right away; set by the connection's owner.
    on_write_timeout: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// The enqueue failed because the connection is (now) closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// This very append pushed the connection over `max_pending` and cut it
    /// as a slow consumer. Exactly one append per connection reports it, so
    /// the server counts each slow consumer once (nats-server
    /// `queueOutbound` bumps `slowConsumers` once, then the client is closed).
    pub cut_now: bool,
}

const CLOSED: Closed = Closed { cut_now: false };

impl Outbound {
    pub fn new(max_pending: usize) -> Self {
        Self::with_cut(max_pending, true)
    }

    /// `cut` = false keeps the connection when it goes over `max_pending`
    /// (routes): producers stall instead and the write deadline bounds it.
    pub fn with_cut(max_pending: usize, cut: bool) -> Self {
        Outbound {
            inner: Mutex::new(Inner {
                chunks: VecDeque::new(),
                len: 0,
                in_flight: 0,
                closed: None,
                pool: Vec::new(),
                last_cap: 0,
                peak: 0,
            }),
            notify: Notify::new(),
            closing: AtomicBool::new(false),
            close_notify: Notify::new(),
            max_pending,
            stalled: AtomicBool::new(false),
            stall_notify: Notify::new(),
            route_wait_given_up: AtomicBool::new(false),
            cut_on_overflow: cut,
            on_write_timeout: OnceLock::new(),
        }
    }

    /// Sets what counts a write timeout after which the connection stays
    /// open (client.go handleWriteTimeout bumps `s.slowConsumers` for each
    /// one). Only the first call has an effect.
    pub fn on_write_timeout(&self, count: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_write_timeout.set(Box::new(count));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the buffer in a state
        // worse than "some bytes appended"; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends bytes produced by `fill`, which writes about `hint` bytes
    /// (a larger fill still works, it may just reallocate its chunk).
    /// Returns `Err(Closed { .. })` if the connection is closed or became a
    /// slow consumer with this append. Does not wake the writer: call
    /// [`Outbound::flush_signal`] after a batch.
    pub fn append_with(
        &self,
        hint: usize,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<usize, Closed> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(CLOSED);
        }
        let mut g = self.lock();
        if g.closed.is_some() {
            return Err(CLOSED);
        }
        let g = &mut *g;
        let room = g.chunks.back().map_or(0, |c| c.capacity() - c.len());
        // Position to roll back to if this append cuts the connection:
        // length of the chunk the message starts in, and whether a chunk
        // was added after it.
        let (start_len, added, pushed_after) =
            if !g.chunks.is_empty() && room < hint && room >= MIN_SPLIT_ROOM && hint <= CHUNK {
                // Like client.go queueOutbound: the message's start fills the
                // current chunk and the rest goes on in the next one, so chunks
                // stay full and pending bytes cost no more than their size.
                SPLIT_SCRATCH.with(|cell| {
                    let mut scratch = cell.borrow_mut();
                    scratch.clear();
                    fill(&mut scratch);
                    let n = scratch.len();
                    let take = room.min(n);
                    let Some(last) = g.chunks.back_mut() else {
                        return (0, 0, false);
                    };
                    let start_len = last.len();
                    last.extend_from_slice(&scratch[..take]);
                    let pushed = n > take;
                    if pushed {
                        let mut next = Self::new_chunk(g, n - take);
                        next.extend_from_slice(&scratch[take..]);
                        g.chunks.push_back(next);
                    }
                    (start_len, n, pushed)
                })
            } else {
                if room < hint || g.chunks.is_empty() {
                    let chunk = Self::new_chunk(g, hint);
                    g.chunks.push_back(chunk);
                }
                let Some(last) = g.chunks.back_mut() else {
                    return Err(CLOSED);
                };
                let before = last.len();
                fill(last);
                (before, last.len() - before, false)
            };
        g.len += added;
        let pending = g.len + g.in_flight;
        g.peak = g.peak.max(pending);
        if pending > self.max_pending / 2 && !self.stalled.load(Ordering::Relaxed) {
            self.stalled.store(true, Ordering::Release);
        }
        if pending > self.max_pending && self.cut_on_overflow {
            if pushed_after {
                g.chunks.pop_back();
            }
            if let Some(last) = g.chunks.back_mut() {
                last.truncate(start_len);
            }
            g.len -= added;
            g.closed = Some(ClosedState::SlowConsumerPendingBytes);
            self.mark_closing();
            return Err(Closed { cut_now: true });
        }
        Ok(added)
    }

    /// A chunk for at least `need` bytes: a written one from the pool, or a
    /// new one of the next size (doubling from [`FIRST_CHUNK`] to [`CHUNK`]).
    fn new_chunk(g: &mut Inner, need: usize) -> Vec<u8> {
        let cap = if g.last_cap == 0 {
            FIRST_CHUNK
        } else {
            (g.last_cap * 2).min(CHUNK)
        };
        let chunk = match g.pool.last() {
            Some(c) if c.capacity() >= need => g.pool.pop().unwrap_or_default(),
            _ => Vec::with_capacity(cap.max(need)),
        };
        g.last_cap = chunk.capacity().min(CHUNK);
        chunk
    }

    /// Appends raw bytes (protocol replies).
    pub fn append(&self, data: &[u8]) -> Result<usize, Closed> {
        self.append_with(data.len(), |b| b.extend_from_slice(data))
    }

    /// Appends and wakes the writer.
    pub fn send(&self, data: &[u8]) -> Result<usize, Closed> {
        let r = self.append(data);
        self.flush_signal();
        r
    }

    /// Wakes the writer task.
    pub fn flush_signal(&self) {
        self.notify.notify_one();
    }

    /// Waits until there is something to write or the connection closes.
    pub async fn wait(&self) {
        self.notify.notified().await
    }

    /// Moves the pending chunks into `spare` (which must be empty).
    /// Returns the close reason once closed and drained.
    pub fn take(&self, spare: &mut Chunks) -> Option<ClosedState> {
        let mut g = self.lock();
        std::mem::swap(&mut g.chunks, spare);
        g.in_flight = g.len;
        g.len = 0;
        g.closed
    }

    /// Most bytes that were ever pending on this connection.
    pub fn peak_pending(&self) -> usize {
        self.lock().peak
    }

    /// Bytes waiting to be written (including those being written).
    pub fn pending(&self) -> usize {
        let g = self.lock();
        g.len + g.in_flight
    }

    /// The writer finished writing what it took (`done`, emptied here, its
    /// full-size chunks kept for reuse): release stalled producers once
    /// pending bytes are below half of the limit.
    pub fn written(&self, done: &mut Chunks) {
        let below = {
            let mut g = self.lock();
            g.in_flight = 0;
            // Keep the last chunks written (the largest, as chunks only
            // grow); oversized single-message chunks are freed.
            while let Some(mut c) = done.pop_back() {
                if g.pool.len() >= POOL_MAX {
                    break;
                }
                if c.capacity() <= CHUNK {
                    c.clear();
                    g.pool.push(c);
                }
            }
            done.clear();
            g.len <= self.max_pending / 2
        };
        if below && self.stalled.swap(false, Ordering::AcqRel) {
            self.route_wait_given_up.store(false, Ordering::Relaxed);
            self.stall_notify.notify_waiters();
        }
    }

    /// The writer wrote `n` of the bytes it took and keeps the rest.
    pub fn partially_written(&self, n: usize) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(n);
    }

    /// A stall wait timed out: see `route_wait_given_up`.
    pub fn give_up_route_wait(&self) {
        self.route_wait_given_up.store(true, Ordering::Relaxed);
    }

    /// Whether route readers have stopped waiting for this connection (it did not drain
    /// within a stall wait, and has not since).
    pub fn route_wait_given_up(&self) -> bool {
        self.route_wait_given_up.load(Ordering::Relaxed)
    }

    /// Whether producers should slow down for this connection.
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// How long a producer waits at most (nats-server `stallDuration`:
    /// 100 ms, plus 100 ms per tenth of the upper half used, 1 s when full).
    pub fn stall_duration(&self) -> std::time::Duration {
        use std::time::Duration;
        let pb = self.pending();
        let mp = self.max_pending.max(1);
        if pb >= mp {
            return Duration::from_secs(1);
        }
        let hmp = mp / 2;
        let mut ttl = Duration::from_millis(100);
        if pb > hmp {
            let bsz = (hmp / 10).max(1);
            ttl += Duration::from_millis(100) * ((pb - hmp) / bsz) as u32;
        }
        ttl.min(Duration::from_secs(1))
    }

    /// Resolves once the connection is no longer stalled (or closes).
    pub async fn unstalled(&self) {
        loop {
            if !self.is_stalled() || self.is_closing() {
                return;
            }
            let n = self.stall_notify.notified();
            if !self.is_stalled() || self.is_closing() {
                return;
            }
            n.await;
        }
    }

    /// Marks the connection closed for `reason` (first reason wins). The
    /// writer flushes what is pending (so a final `-ERR` reaches the peer)
    /// and then ends.
    pub fn close(&self, reason: ClosedState) {
        {
            let mut g = self.lock();
            if g.closed.is_none() {
                g.closed = Some(reason);
            }
        }
        self.mark_closing();
    }

    fn mark_closing(&self) {
        self.closing.store(true, Ordering::Release);
        self.stalled.store(false, Ordering::Release);
        self.stall_notify.notify_waiters();
        self.notify.notify_one();
        self.close_notify.notify_waiters();
        self.close_notify.notify_one();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub fn closed_reason(&self) -> Option<ClosedState> {
        self.lock().closed
    }

    /// Resolves when the connection is marked closing.
    pub async fn closed(&self) {
        loop {
            if self.is_closing() {
                return;
            }
            let n = self.close_notify.notified();
            if self.is_closing() {
                return;
            }
            n.await;
        }
    }

    /// Discards pending data (after a write error / slow consumer cut).
    pub fn discard(&self) {
        let mut g = self.lock();
        g.chunks = VecDeque::new();
        g.pool = Vec::new();
        g.len = 0;
    }
}

/// A closed connection that had at least this much pending makes the
/// server hand freed memory back to the system.
pub const TRIM_AFTER_PEAK: usize = 4 * 1024 * 1024;

/// Returns free heap memory to the system after a connection with a large
/// backlog (a slow consumer) closed. glibc keeps freed chunks in its arenas,
/// so without this the RSS of a server that once buffered tens of MiB for
/// one consumer stays there, and a later backlog in another thread's arena
/// adds to it (Go's runtime returns such memory in the background).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // takes no pointers from us and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How one deadline-bounded flush of pending chunks ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEnd {
    /// Everything was written.
    Done,
    /// The write deadline passed first.
    Timeout,
    /// The transport failed.
    Error,
}

/// Writes `chunks` (from offset `off` in the first) until done, an error,
/// or `deadline` passes, with vectored writes; returns the bytes written.
/// One deadline covers the whole flush like client.go flushOutbound
/// (`SetWriteDeadline` before `nb.WriteTo`).
pub(crate) async fn write_chunks<W>(
    wr: &mut W,
    chunks: &Chunks,
    off: usize,
    deadline: Duration,
) -> (usize, WriteEnd)
where
    W: AsyncWrite + Unpin,
{
    let until = tokio::time::Instant::now() + deadline;
    let (mut idx, mut pos) = (0, off);
    let mut n = 0;
    let mut iov: Vec<std::io::IoSlice<'_>> = Vec::with_capacity(MAX_IOV.min(chunks.len()));
    loop {
        while idx < chunks.len() && pos >= chunks[idx].len() {
            idx += 1;
            pos = 0;
        }
        if idx >= chunks.len() {
            return (n, WriteEnd::Done);
        }
        iov.clear();
        iov.push(std::io::IoSlice::new(&chunks[idx][pos..]));
        for c in chunks.iter().skip(idx + 1).take(MAX_IOV - 1) {
            if !c.is_empty() {
                iov.push(std::io::IoSlice::new(c));
            }
        }
        let mut k = match tokio::time::timeout_at(until, wr.write_vectored(&iov)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (n, WriteEnd::Error),
            Ok(Ok(k)) => k,
            Err(_) => return (n, WriteEnd::Timeout),
        };
        n += k;
        while k > 0 {
            let left = chunks[idx].len() - pos;
            if k < left {
                pos += k;
                break;
            }
            k -= left;
            idx += 1;
            pos = 0;
        }
    }
}

/// Drops the first `n` bytes of `chunks` (`off` of the first are already
/// gone); returns the new offset into the first chunk.
pub(crate) fn consume(chunks: &mut Chunks, mut off: usize, mut n: usize) -> usize {
    while let Some(front) = chunks.front() {
        let left = front.len() - off;
        if n < left {
            return off + n;
        }
        n -= left;
        off = 0;
        chunks.pop_front();
    }
    0
}

/// The writer task of a connection: takes what producers appended and
/// writes it, each flush bounded by the write deadline (client.go
/// writeLoop / flushOutbound / handleWriteTimeout).
pub(crate) async fn writer_loop<W>(shared: Arc<ClientShared>, mut wr: W, deadline: Duration)
where
    W: super::io::ChunkSink,
{
    let mut chunks = Chunks::new();
    // Bytes of the first chunk already written (a route's partial write).
    let mut off = 0;
    loop {
        let closed = if chunks.is_empty() {
            shared.out.take(&mut chunks)
        } else {
            shared.out.closed_reason()
        };
        if !chunks.is_empty() || wr.has_control() {
            // A slow-consumer cut discards what is pending; do not push it.
            if closed == Some(ClosedState::SlowConsumerPendingBytes) {
                break;
            }
            let attempted = chunks.iter().map(Vec::len).sum::<usize>() - off;
            // What this flush tried (the sink may hand chunks away or rebuild them).
            let attempted_chunks = chunks.len();
            // A slow-consumer cut (max_pending) closes the socket at once, as
            // nats-server's closeConnection does without flushing: a write blocked on a
            // receiver that does not read is abandoned, not waited out to the deadline.
            let cut = async {
                shared.out.closed().await;
                if shared.out.closed_reason() != Some(ClosedState::SlowConsumerPendingBytes) {
                    std::future::pending::<()>().await;
                }
            };
            let (n, end) = tokio::select! {
                r = wr.write_pending(&mut chunks, &mut off, deadline) => r,
                _ = cut => break,
            };
            match end {
                WriteEnd::Done => {
                    shared.out.written(&mut chunks);
                    off = 0;
                    continue;
                }
                WriteEnd::Error => {
                    shared.out.close(ClosedState::WriteError);
                    shared.out.discard();
                    break;
                }
                WriteEnd::Timeout => {
                    // client.go handleWriteTimeout. A connection still owing
                    // its expected CONNECT (a client, an accepted route) is
                    // closed without a log line or a count.
                    if !super::lock(&shared.meta).connected {
                        shared.out.close(ClosedState::SlowConsumerWriteDeadline);
                        shared.out.discard();
                        break;
                    }
                    info!(
                        "{} - Slow Consumer Detected: WriteDeadline of {} exceeded with {} chunks of {} total bytes.",
                        shared.log_prefix(),
                        crate::monitor::gofmt::go_duration(deadline),
                        attempted_chunks,
                        attempted
                    );
                    // Clients are always closed; other connections only
                    // when nothing at all was written. Those closes are
                    // counted where the connection ends (its close reason).
                    if shared.kind == ConnKind::Client || n == 0 {
                        shared.out.close(ClosedState::SlowConsumerWriteDeadline);
                        shared.out.discard();
                        break;
                    }
                    // A partial write: the route stays and the rest is
                    // retried, but this timeout is a slow consumer too.
                    if let Some(count) = shared.out.on_write_timeout.get() {
                        count();
                    }
                    shared.out.partially_written(n);
                    continue;
                }
            }
        }
        if closed.is_some() {
            break;
        }
        shared.out.wait().await;
    }
    let reason = shared.out.closed_reason();
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        wr.finish(reason).await;
        wr.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_consumer_cut_keeps_memory_bounded() {
        let o = Outbound::new(100);
        assert!(o.append(&[0u8; 60]).is_ok());
        assert_eq!(o.append(&[0u8; 60]), Err(Closed { cut_now: true }));
        assert_eq!(o.pending(), 60);
        // The append over the limit counts in the peak (it decides whether
        // freed memory is handed back after the close).
        assert_eq!(o.peak_pending(), 120);
        assert_eq!(
            o.closed_reason(),
            Some(ClosedState::SlowConsumerPendingBytes)
        );
        // Later appends fail without reporting the cut again.
        assert_eq!(o.append(b"x"), Err(CLOSED));
    }

    #[test]
    fn take_moves_chunks() {
        let o = Outbound::new(1000);
        o.append(b"abc").unwrap();
        o.append(b"de").unwrap();
        let mut spare = Chunks::new();
        assert_eq!(o.take(&mut spare), None);
        assert_eq!(
            spare.iter().flatten().copied().collect::<Vec<u8>>(),
            b"abcde"
        );
        assert_eq!(spare.len(), 1, "small appends share a chunk");
        // Taken bytes count until the writer reports them written.
        assert_eq!(o.pending(), 5);
        o.append(b"f").unwrap();
        assert_eq!(o.pending(), 6);
        o.written(&mut spare);
        assert!(spare.is_empty());
        assert_eq!(o.pending(), 1);
    }

    #[test]
    fn chunks_grow_to_the_cap_and_are_reused() {
        let o = Outbound::new(usize::MAX);
        let msg = [7u8; 1000];
        for _ in 0..1000 {
            o.append(&msg).unwrap();
        }
        let mut taken = Chunks::new();
        o.take(&mut taken);
        assert_eq!(taken.iter().map(Vec::len).sum::<usize>(), 1_000_000);
        // 1 KiB, 2 KiB, ... then CHUNK-sized; never one big buffer.
        assert!(taken.iter().all(|c| c.capacity() <= CHUNK));
        assert_eq!(taken.front().map(Vec::capacity), Some(FIRST_CHUNK));
        assert!(taken.len() < 1_000_000 / (CHUNK / 2) + 8);
        o.written(&mut taken);
        // The next append reuses a written chunk.
        o.append(&msg).unwrap();
        o.take(&mut taken);
        assert_eq!(taken.front().map(Vec::capacity), Some(CHUNK));
        // A message larger than a chunk gets its own chunk.
        let big = vec![1u8; 3 * CHUNK];
        o.written(&mut taken);
        o.append(b"x").unwrap();
        o.append(&big).unwrap();
        o.take(&mut taken);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[1].len(), 3 * CHUNK);
    }

    #[test]
    fn mid_size_messages_fill_chunks() {
        // 33 KiB messages would leave half of every 64 KiB chunk empty if
        // each had to fit whole; split across chunks they fill them.
        let o = Outbound::new(usize::MAX);
        let msg: Vec<u8> = (0..33 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..200 {
            o.append(&msg).unwrap();
        }
        let mut taken = Chunks::new();
        o.take(&mut taken);
        let len: usize = taken.iter().map(Vec::len).sum();
        let cap: usize = taken.iter().map(Vec::capacity).sum();
        assert_eq!(len, 200 * msg.len());
        assert!(cap < len + len / 8, "capacity {cap} for {len} bytes");
        // The byte stream is intact.
        let all: Vec<u8> = taken.iter().flatten().copied().collect();
        assert!(all.chunks(msg.len()).all(|m| m == msg.as_slice()));
    }

    #[test]
    fn cut_rolls_back_a_split_message() {
        let o = Outbound::new(3000);
        // 1 KiB first chunk with 124 bytes left: too little to split, the
        // next message starts a 2 KiB chunk.
        o.append(&[1u8; 900]).unwrap();
        o.append(&[2u8; 700]).unwrap();
        o.append(&[3u8; 1000]).unwrap();
        // 348 bytes left: this one is split, then cut over the limit and
        // rolled back entirely.
        assert_eq!(o.pending(), 2600);
        assert_eq!(o.append(&[4u8; 1000]), Err(Closed { cut_now: true }));
        assert_eq!(o.pending(), 2600);
        let mut taken = Chunks::new();
        o.take(&mut taken);
        let all: Vec<u8> = taken.iter().flatten().copied().collect();
        assert_eq!(all.len(), 2600);
        assert!(all.iter().all(|&b| b != 4));
    }

    #[test]
    fn consume_partial() {
        let mut c: Chunks = [b"abc".to_vec(), b"de".to_vec(), b"fgh".to_vec()].into();
        let off = consume(&mut c, 0, 4);
        assert_eq!((c.len(), off), (2, 1));
        assert_eq!(&c[0][off..], b"e");
        let off = consume(&mut c, off, 2);
        assert_eq!((c.len(), off), (1, 1));
        assert_eq!(consume(&mut c, off, 2), 0);
        assert!(c.is_empty());
    }

    #[tokio::test]
    async fn vectored_write_of_chunks() {
        let c: Chunks = [b"abc".to_vec(), Vec::new(), b"de".to_vec()].into();
        let mut out = Vec::new();
        let (n, end) = write_chunks(&mut out, &c, 1, Duration::from_secs(1)).await;
        assert_eq!((n, end), (4, WriteEnd::Done));
        assert_eq!(out, b"bcde");
    }

    #[test]
    fn stall_above_half_and_release_after_write() {
        let o = Outbound::new(100);
        o.append(&[0u8; 40]).unwrap();
        assert!(!o.is_stalled());
        o.append(&[0u8; 20]).unwrap();
        assert!(o.is_stalled());
        assert!(o.stall_duration() >= std::time::Duration::from_millis(100));
        let mut spare = Chunks::new();
        o.take(&mut spare);
        // Still stalled while the taken bytes are being written.
        assert!(o.is_stalled());
        o.written(&mut spare);
        assert!(!o.is_stalled());
    }
}
