//! Splitting a connection's byte stream into the halves its reader and
//! writer tasks own.
//!
//! `tokio::io::split` puts both halves behind one lock: every read and every
//! write of the connection takes it, and a read that finds the writer inside
//! the stream parks until the writer is done. TCP streams and QUIC streams
//! come apart without a lock (`TcpStream::into_split`; quinn's send and
//! receive streams are separate objects joined only for the generic API), so
//! the broker splits those natively and keeps the locked split for anything
//! else. Measured on the 2-core bench host (nats-bench, 1 publisher + 1
//! subscriber, 5M × 16 B, builds paused, 4 interleaved rounds, 08:02 UTC
//! 2026-11-23): median 2.45M msgs/s delivered with owned halves vs 2.17M
//! with `tokio::io::split`.

use std::future::Future;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite};

use super::outbound::{consume, write_chunks, Chunks, WriteEnd};

/// A byte stream that can be taken apart into a read half and a write half
/// owned by different tasks.
pub trait SplitIo: Send + 'static {
    /// The half the reader task owns.
    type Read: AsyncRead + Unpin + Send + 'static;
    /// The half the writer task owns.
    type Write: ChunkSink;
    /// Takes the stream apart.
    fn split_io(self) -> (Self::Read, Self::Write);
}

impl SplitIo for tokio::net::TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn split_io(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

/// Two independent halves joined for the generic API (a QUIC stream's
/// receive and send sides) come apart as they are.
impl<R, W> SplitIo for tokio::io::Join<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: ChunkSink,
{
    type Read = R;
    type Write = W;
    fn split_io(self) -> (R, W) {
        self.into_inner()
    }
}

/// Any other stream (in-memory pipes, TLS wrappers): both halves share one
/// lock, as with `tokio::io::split`.
pub struct Locked<S>(pub S);

impl<S> SplitIo for Locked<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    type Read = tokio::io::ReadHalf<S>;
    type Write = tokio::io::WriteHalf<S>;
    fn split_io(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self.0)
    }
}

/// How a connection's writer task hands its pending chunks to the transport.
pub trait ChunkSink: AsyncWrite + Unpin + Send + Sized + 'static {
    /// Writes `chunks` (from `off` in the first) within `deadline`; returns
    /// the bytes written. After a timeout `chunks` and `off` describe what is
    /// still unwritten; after `Done` the chunks left in `chunks` are spent
    /// buffers for the pool. The default copies them into the stream with
    /// vectored writes.
    fn write_pending<'a>(
        &'a mut self,
        chunks: &'a mut Chunks,
        off: &'a mut usize,
        deadline: Duration,
    ) -> impl Future<Output = (usize, WriteEnd)> + Send + 'a {
        async move {
            let (n, end) = write_chunks(self, chunks, *off, deadline).await;
            if end == WriteEnd::Timeout {
                *off = consume(chunks, *off, n);
            }
            (n, end)
        }
    }

    /// Whether the sink has bytes of its own to send even when no chunks are pending
    /// (a websocket's PONG and CLOSE frames).
    fn has_control(&self) -> bool {
        false
    }

    /// Last words before the shutdown, knowing why the connection ends (a websocket's
    /// CLOSE frame). Bounded by the caller.
    fn finish(
        &mut self,
        _reason: Option<super::closed::ClosedState>,
    ) -> impl Future<Output = ()> + Send + '_ {
        async {}
    }
}

impl ChunkSink for tokio::net::tcp::OwnedWriteHalf {}
impl<S: AsyncWrite + Send + 'static> ChunkSink for tokio::io::WriteHalf<S> {}

/// Chunks at least this full are handed to quinn as they are; emptier ones
/// are copied (a chunk given away holds its whole capacity until the peer
/// acknowledges it, and goes back to no pool).
const GIVE_AWAY_MIN: usize = super::outbound::CHUNK / 2;

/// QUIC streams take the chunks themselves (`write_chunks` with `Bytes`):
/// quinn keeps what it sends until it is acknowledged, so a copy into its
/// own buffer would be one more pass over every byte.
impl ChunkSink for quinn::SendStream {
    async fn write_pending(
        &mut self,
        chunks: &mut Chunks,
        off: &mut usize,
        deadline: Duration,
    ) -> (usize, WriteEnd) {
        let mut bufs: Vec<Bytes> = Vec::with_capacity(chunks.len());
        let mut spent = Chunks::new();
        let mut skip = *off;
        for c in chunks.drain(..) {
            let from = std::mem::take(&mut skip).min(c.len());
            if c.len() - from >= GIVE_AWAY_MIN {
                let mut b = Bytes::from(c);
                b.advance(from);
                bufs.push(b);
            } else {
                if c.len() > from {
                    bufs.push(Bytes::copy_from_slice(&c[from..]));
                }
                spent.push_back(c);
            }
        }
        *off = 0;
        let total: usize = bufs.iter().map(Bytes::len).sum();
        let until = tokio::time::Instant::now() + deadline;
        let res = tokio::time::timeout_at(until, self.write_all_chunks(&mut bufs)).await;
        let left: usize = bufs.iter().map(Bytes::len).sum();
        let n = total - left;
        match res {
            Ok(Ok(())) => {
                *chunks = spent;
                (n, WriteEnd::Done)
            }
            Ok(Err(_)) => (n, WriteEnd::Error),
            Err(_) => {
                // Rare (a stalled peer): what quinn did not take is copied back.
                chunks.extend(bufs.iter().filter(|b| !b.is_empty()).map(|b| b.to_vec()));
                (n, WriteEnd::Timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_through<S: SplitIo>(a: S, mut b: tokio::io::DuplexStream) {
        let (mut rd, mut wr) = a.split_io();
        let t = tokio::spawn(async move {
            let mut buf = [0u8; 5];
            rd.read_exact(&mut buf).await.map(|_| buf)
        });
        b.write_all(b"hello").await.unwrap();
        assert_eq!(&t.await.unwrap().unwrap(), b"hello");
        wr.write_all(b"world").await.unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"world");
    }

    #[tokio::test]
    async fn locked_halves_carry_both_directions() {
        let (a, b) = tokio::io::duplex(64);
        echo_through(Locked(a), b).await;
    }

    #[tokio::test]
    async fn joined_halves_come_apart_unlocked() {
        // Two pipes joined as one stream, like a QUIC stream's recv + send.
        let (r_far, r_near) = tokio::io::duplex(64);
        let (w_near, w_far) = tokio::io::duplex(64);
        let (near_rd, _) = tokio::io::split(r_near);
        let (_, near_wr) = tokio::io::split(w_near);
        let joined = tokio::io::join(near_rd, near_wr);
        let (mut rd, mut wr) = joined.split_io();
        let (_, mut far_wr) = tokio::io::split(r_far);
        let (mut far_rd, _) = tokio::io::split(w_far);
        far_wr.write_all(b"ping!").await.unwrap();
        let mut buf = [0u8; 5];
        rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping!");
        wr.write_all(b"pong!").await.unwrap();
        far_rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong!");
    }

    #[tokio::test]
    async fn tcp_halves_are_owned() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let (s, _) = s.unwrap();
        let c = c.unwrap();
        let (mut c_rd, mut c_wr) = c.into_split();
        let (mut rd, mut wr) = s.split_io();
        c_wr.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        wr.write_all(b"world").await.unwrap();
        c_rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"world");
    }

    /// A QUIC connection on loopback (plain quinn) with `window` bytes of
    /// stream flow control; returns the dialer's send stream and the
    /// acceptor's receive stream (and what keeps them alive).
    async fn quic_stream(
        window: u32,
    ) -> (
        quinn::SendStream,
        quinn::RecvStream,
        (quinn::Endpoint, quinn::Endpoint, quinn::Connection),
    ) {
        use scion_transport::quic::TlsConfig;
        let alpn = vec![b"t".to_vec()];
        let mut tls = TlsConfig::self_signed(&["t"]).unwrap();
        let mut transport = quinn::TransportConfig::default();
        transport.stream_receive_window(quinn::VarInt::from_u32(window));
        let transport = std::sync::Arc::new(transport);
        let mut sc = tls.server_config(&alpn).unwrap();
        sc.transport_config(transport.clone());
        let server = quinn::Endpoint::server(sc, "127.0.0.1:0".parse().unwrap()).unwrap();
        tls.skip_server_verification = true;
        let mut cc = quinn::ClientConfig::new(tls.client_crypto(&alpn).unwrap());
        cc.transport_config(transport);
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(cc);
        let addr = server.local_addr().unwrap();
        let dial = async { client.connect(addr, "t").unwrap().await.unwrap() };
        let accept = async { server.accept().await.unwrap().await.unwrap() };
        let (c, a) = tokio::join!(dial, accept);
        let mut send = c.open_uni().await.unwrap();
        // The stream reaches the acceptor with its first byte.
        send.write_all(b"!").await.unwrap();
        let mut recv = a.accept_uni().await.unwrap();
        let mut first = [0u8; 1];
        recv.read_exact(&mut first).await.unwrap();
        (send, recv, (client, server, a))
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
    }

    #[tokio::test]
    async fn quic_sink_gives_full_chunks_away_and_copies_the_rest() {
        let (mut send, mut recv, _keep) = quic_stream(4 << 20).await;
        let parts = [pattern(40_000, 1), pattern(100, 2), pattern(70_000, 3)];
        let want: Vec<u8> = parts.concat()[10..].to_vec();
        let mut chunks: Chunks = parts.iter().cloned().collect();
        let mut off = 10;
        let (n, end) = send
            .write_pending(&mut chunks, &mut off, Duration::from_secs(5))
            .await;
        assert_eq!((n, end, off), (want.len(), WriteEnd::Done, 0));
        // Only the copied chunk comes back, for the pool.
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0], parts[1]);
        send.finish().unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn quic_sink_timeout_leaves_exactly_the_unwritten_bytes() {
        // A 64 KiB window and a reader that does not read: the write stalls.
        let (mut send, _recv, _keep) = quic_stream(64 * 1024).await;
        let parts = [
            pattern(60_000, 1),
            pattern(60_000, 2),
            pattern(500, 3),
            pattern(60_000, 4),
        ];
        let all = parts.concat();
        let mut chunks: Chunks = parts.iter().cloned().collect();
        let mut off = 0;
        let (n, end) = send
            .write_pending(&mut chunks, &mut off, Duration::from_millis(300))
            .await;
        assert_eq!(end, WriteEnd::Timeout);
        assert!(n > 0 && n < all.len(), "wrote {n} of {}", all.len());
        let rest: Vec<u8> = chunks.iter().flatten().skip(off).copied().collect();
        assert_eq!(rest, all[n..].to_vec());
    }
}
