//! A user-space TCP delay proxy for tests and benchmarks (`tc netem` is not available on
//! these machines). Each direction delays every chunk by a base delay plus exponential
//! jitter, keeps byte order, and can be cut. A cut stalls both directions the way a dead
//! link stalls TCP: nothing gets through, the connections stay open, and bytes sent
//! meanwhile arrive once the link returns (TCP would retransmit them; dropping them would
//! corrupt the NATS byte stream, which no real outage does). Profiles can be switched while
//! connections are live.
//!
//! Delays ride on tokio timers, which have millisecond granularity: every chunk is late by a
//! further 0–1 ms, which behaves like extra jitter.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Delay profile. `up` is client -> server, `down` server -> client.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Profile {
    pub up: Duration,
    pub down: Duration,
    /// Mean of the exponential jitter added to every chunk, each direction.
    pub jitter: Duration,
    /// Stall both directions (see the module docs).
    pub cut: bool,
}

impl Profile {
    pub fn symmetric(rtt: Duration, jitter: Duration) -> Self {
        Self {
            up: rtt / 2,
            down: rtt / 2,
            jitter,
            cut: false,
        }
    }
}

/// Chunks in flight per direction before the reader waits.
const QUEUE: usize = 4096;
const CHUNK: usize = 16 * 1024;

/// A running proxy; dropping it stops accepting (live connections end with their peers).
pub struct DelayProxy {
    addr: SocketAddr,
    profile: watch::Sender<Profile>,
    _stop: watch::Sender<bool>,
}

impl DelayProxy {
    /// Listen on 127.0.0.1:0 and forward to `upstream`.
    pub async fn start(upstream: SocketAddr, profile: Profile) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (ptx, prx) = watch::channel(profile);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop_rx.changed() => return,
                };
                let prx = prx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, prx.clone(), true));
                    tokio::spawn(pump(sr, cw, prx, false));
                });
            }
        });
        Ok(Self {
            addr,
            profile: ptx,
            _stop: stop_tx,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    pub fn set(&self, profile: Profile) {
        let _ = self.profile.send(profile);
    }

    pub fn profile(&self) -> Profile {
        *self.profile.borrow()
    }
}

/// Small deterministic PRNG for the jitter (no shared state between directions).
struct Rng(u64);
impl Rng {
    fn exp(&mut self, mean: Duration) -> Duration {
        if mean.is_zero() {
            return Duration::ZERO;
        }
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let u = ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        mean.mul_f64(-u.ln())
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    profile: watch::Receiver<Profile>,
    up: bool,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let mut link = profile.clone();
    let writer = tokio::spawn(async move {
        while let Some((at, data)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            // While cut, hold the bytes; the watch only ends if the proxy is gone.
            if link.wait_for(|p| !p.cut).await.is_err() {
                return;
            }
            if to.write_all(&data).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut rng = Rng(if up {
        0x1234_5678_9abc_def1
    } else {
        0x0fed_cba9_8765_4321
    });
    let mut last = Instant::now();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        let p = *profile.borrow();
        let base = if up { p.up } else { p.down };
        // Never reorder: a chunk leaves no earlier than the one before it.
        let at = (now + base + rng.exp(p.jitter)).max(last);
        last = at;
        if tx.send((at, buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn rtt(c: &mut TcpStream) -> Option<Duration> {
        let t = Instant::now();
        c.write_all(b"x").await.ok()?;
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut b))
            .await
            .ok()?
            .ok()?;
        Some(t.elapsed())
    }

    #[tokio::test]
    async fn delays_switches_and_cuts() {
        let echo = echo_server().await;
        let p = DelayProxy::start(
            echo,
            Profile::symmetric(Duration::from_millis(40), Duration::ZERO),
        )
        .await
        .unwrap();
        let mut c = TcpStream::connect(p.addr()).await.unwrap();
        let r = rtt(&mut c).await.unwrap();
        assert!(
            r >= Duration::from_millis(40) && r < Duration::from_millis(80),
            "{r:?}"
        );
        p.set(Profile::symmetric(
            Duration::from_millis(90),
            Duration::ZERO,
        ));
        let r = rtt(&mut c).await.unwrap();
        assert!(
            r >= Duration::from_millis(90) && r < Duration::from_millis(140),
            "{r:?}"
        );
        p.set(Profile {
            cut: true,
            ..p.profile()
        });
        assert!(rtt(&mut c).await.is_none(), "cut link must not answer");
        // Restored: the stalled byte and its echo arrive, then the link works again.
        p.set(Profile::symmetric(
            Duration::from_millis(10),
            Duration::ZERO,
        ));
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut b))
            .await
            .expect("stalled byte delivered after restore")
            .unwrap();
        assert!(rtt(&mut c).await.is_some());
    }
}
