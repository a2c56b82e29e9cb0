//! Per-connection outbound buffer with a byte limit (nats-server
//! `client.queueOutbound` / `flushOutbound`).
//!
//! Producers (any task delivering to this connection) append under a short
//! std mutex; the connection's writer task swaps the buffer out and writes it.
//! When pending bytes exceed `max_pending` the connection is marked as a slow
//! consumer and closed, so a stalled reader can never grow the broker's memory
//! without bound and never stalls the producers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use super::closed::ClosedState;

/// Buffers kept between flushes are trimmed back to this size.
const RETAINED_CAPACITY: usize = 64 * 1024;

struct Inner {
    buf: Vec<u8>,
    /// Bytes the writer took and is still writing; they count as pending
    /// until written (nats-server decrements `pb` only after the write).
    in_flight: usize,
    closed: Option<ClosedState>,
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
    /// Cut the connection when pending bytes exceed `max_pending`.
    cut_on_overflow: bool,
}

/// Growth step of the pending buffer once it is large.
const GROW_STEP: usize = 64 * 1024;
/// First allocation of the pending buffer.
const MIN_STEP: usize = 1024;

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
                buf: Vec::new(),
                in_flight: 0,
                closed: None,
            }),
            notify: Notify::new(),
            closing: AtomicBool::new(false),
            close_notify: Notify::new(),
            max_pending,
            stalled: AtomicBool::new(false),
            stall_notify: Notify::new(),
            cut_on_overflow: cut,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the buffer in a state
        // worse than "some bytes appended"; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends bytes produced by `fill`. Returns `Err(Closed { .. })` if the
    /// connection is closed or became a slow consumer with this append.
    /// Does not wake the writer: call [`Outbound::flush_signal`] after a batch.
    pub fn append_with(&self, fill: impl FnOnce(&mut Vec<u8>)) -> Result<usize, Closed> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(CLOSED);
        }
        let mut g = self.lock();
        if g.closed.is_some() {
            return Err(CLOSED);
        }
        let before = g.buf.len();
        // Grow in bounded steps instead of doubling, so a consumer close to
        // max_pending does not hold twice that in capacity.
        // Small connections start small (idle clients cost little memory).
        let cap = g.buf.capacity();
        if cap - before < GROW_STEP.min(cap.max(MIN_STEP)) {
            let room = self.max_pending.saturating_sub(before) + GROW_STEP;
            let grow = cap.clamp(MIN_STEP, room.max(MIN_STEP));
            g.buf.reserve_exact(grow);
        }
        fill(&mut g.buf);
        let added = g.buf.len() - before;
        let pending = g.buf.len() + g.in_flight;
        if pending > self.max_pending / 2 && !self.stalled.load(Ordering::Relaxed) {
            self.stalled.store(true, Ordering::Release);
        }
        if pending > self.max_pending && self.cut_on_overflow {
            g.buf.truncate(before);
            g.closed = Some(ClosedState::SlowConsumerPendingBytes);
            drop(g);
            self.mark_closing();
            return Err(Closed { cut_now: true });
        }
        Ok(added)
    }

    /// Appends raw bytes (protocol replies).
    pub fn append(&self, data: &[u8]) -> Result<usize, Closed> {
        self.append_with(|b| b.extend_from_slice(data))
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

    /// Swaps the pending bytes into `spare` (which must be empty).
    /// Returns the close reason once closed and drained.
    pub fn take(&self, spare: &mut Vec<u8>) -> Option<ClosedState> {
        let mut g = self.lock();
        std::mem::swap(&mut g.buf, spare);
        g.in_flight = spare.len();
        if g.buf.capacity() > RETAINED_CAPACITY && spare.len() < RETAINED_CAPACITY {
            g.buf.shrink_to(RETAINED_CAPACITY);
        }
        g.closed
    }

    /// Bytes waiting to be written (including those being written).
    pub fn pending(&self) -> usize {
        let g = self.lock();
        g.buf.len() + g.in_flight
    }

    /// The writer finished writing what it took: release stalled producers
    /// once pending bytes are below half of the limit.
    pub fn written(&self) {
        let below = {
            let mut g = self.lock();
            g.in_flight = 0;
            g.buf.len() <= self.max_pending / 2
        };
        if below && self.stalled.swap(false, Ordering::AcqRel) {
            self.stall_notify.notify_waiters();
        }
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
        g.buf = Vec::new();
    }
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
        assert_eq!(
            o.closed_reason(),
            Some(ClosedState::SlowConsumerPendingBytes)
        );
        // Later appends fail without reporting the cut again.
        assert_eq!(o.append(b"x"), Err(CLOSED));
    }

    #[test]
    fn take_swaps() {
        let o = Outbound::new(1000);
        o.append(b"abc").unwrap();
        let mut spare = Vec::new();
        assert_eq!(o.take(&mut spare), None);
        assert_eq!(spare, b"abc");
        // Taken bytes count until the writer reports them written.
        assert_eq!(o.pending(), 3);
        o.written();
        assert_eq!(o.pending(), 0);
    }

    #[test]
    fn stall_above_half_and_release_after_write() {
        let o = Outbound::new(100);
        o.append(&[0u8; 40]).unwrap();
        assert!(!o.is_stalled());
        o.append(&[0u8; 20]).unwrap();
        assert!(o.is_stalled());
        assert!(o.stall_duration() >= std::time::Duration::from_millis(100));
        let mut spare = Vec::new();
        o.take(&mut spare);
        // Still stalled while the taken bytes are being written.
        assert!(o.is_stalled());
        o.written();
        assert!(!o.is_stalled());
    }
}
