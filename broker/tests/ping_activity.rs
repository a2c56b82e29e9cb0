//! The server's PING to a client is skipped while the client is busy
//! (nats-server 2.9.10 client.go `processPingTimer`): activity (messages
//! published or delivered, (un)subscriptions) or a PING from the client
//! within the last ping_interval delays it. The first timed PING always goes
//! out (no RTT sample yet), and an idle client keeps being pinged.
//!
//! Each scenario runs against our broker and against nats-server with
//! `ping_interval: "1s"` and must give the same PING counts.

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use harness::{local_opts, start_broker, RefServer, STEP_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long each client is watched.
const WINDOW: Duration = Duration::from_millis(3500);
/// The busy clients' pace.
const PACE: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Only answers the server's PINGs.
    Idle,
    /// Publishes (to a subject nobody has) every PACE.
    Publisher,
    /// Sends its own PING every PACE.
    Pinger,
    /// Receives a message every PACE (published by a helper connection).
    Receiver,
}

/// Connects, runs `role` for WINDOW and returns how many PINGs the server
/// sent this client.
async fn count_pings(addr: SocketAddr, role: Role) -> usize {
    let mut s = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    s.set_nodelay(true).unwrap();
    // Each client has its own subject: only the receiver gets messages.
    let subject = format!("act.{role:?}");
    s.write_all(format!("CONNECT {{\"verbose\":false}}\r\nSUB {subject} 1\r\n").as_bytes())
        .await
        .unwrap();
    let mut helper = if role == Role::Receiver {
        let mut h = TcpStream::connect(addr).await.unwrap();
        h.write_all(b"CONNECT {\"verbose\":false}\r\n")
            .await
            .unwrap();
        Some(h)
    } else {
        None
    };
    let (mut rd, mut wr) = s.into_split();
    let mut pace = tokio::time::interval(PACE);
    let end = tokio::time::Instant::now() + WINDOW;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut pings = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = pace.tick() => match role {
                Role::Idle => {}
                Role::Publisher => wr.write_all(b"PUB nobody 1\r\nx\r\n").await.unwrap(),
                Role::Pinger => wr.write_all(b"PING\r\n").await.unwrap(),
                Role::Receiver => {
                    // The helper never answers PINGs: it stays connected
                    // only because publishing keeps it active. If it is cut
                    // (Stale Connection), the receiver goes idle and the
                    // PING count below shows it.
                    if let Some(h) = helper.as_mut() {
                        let _ = h.write_all(format!("PUB {subject} 1\r\nx\r\n").as_bytes()).await;
                    }
                }
            },
            r = rd.read(&mut chunk) => {
                let n = r.expect("read");
                assert!(n > 0, "{role:?}: server closed the connection");
                buf.extend_from_slice(&chunk[..n]);
                while let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    let line: Vec<u8> = buf.drain(..p + 2).collect();
                    if line == b"PING\r\n" {
                        pings += 1;
                        wr.write_all(b"PONG\r\n").await.unwrap();
                    }
                }
            }
        }
    }
    pings
}

async fn counts(addr: SocketAddr) -> Vec<(Role, usize)> {
    let roles = [Role::Idle, Role::Publisher, Role::Pinger, Role::Receiver];
    let runs = roles.map(|r| tokio::spawn(async move { (r, count_pings(addr, r).await) }));
    let mut out = Vec::new();
    for r in runs {
        out.push(r.await.unwrap());
    }
    out
}

fn check(label: &str, got: &[(Role, usize)]) {
    for &(role, n) in got {
        match role {
            // First PING after 1..1.2 s, then one per second.
            Role::Idle => assert!(n >= 3, "{label}: idle client got {n} PINGs in {WINDOW:?}"),
            // Only the first (RTT) PING; activity delays every later one.
            _ => assert_eq!(n, 1, "{label}: busy {role:?} client got {n} PINGs"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_clients_are_not_pinged() {
    let mut o = local_opts();
    o.ping_interval = Duration::from_secs(1);
    let ours = start_broker(o).await;
    let theirs = RefServer::start("ping_interval: \"1s\"")
        .unwrap_or_else(|e| panic!("needs the reference nats-server 2.9.10: {e}"));
    let (a, b) = tokio::join!(counts(ours.client_addr), counts(theirs.addr));
    eprintln!("PINGs in {WINDOW:?}: ours {a:?}, nats-server {b:?}");
    check("nats-server", &b);
    check("ours", &a);
    ours.shutdown().await;
}

/// When a client's first PING comes, per scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstPing {
    /// Never sends CONNECT: timed from accept.
    NoConnect,
    /// Sends CONNECT 1.5 s after connecting: timed from the CONNECT.
    LateConnect,
    /// CONNECT at once and again 1.5 s later: timed from the second one.
    Reconnect,
}

const CONNECT_AT: Duration = Duration::from_millis(1500);

/// Time from the scenario's reference point to the first PING received.
async fn first_ping_after(addr: SocketAddr, sc: FirstPing) -> Duration {
    let mut s = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect");
    s.set_nodelay(true).unwrap();
    let mut reference = tokio::time::Instant::now();
    if sc == FirstPing::Reconnect {
        s.write_all(b"CONNECT {\"verbose\":false}\r\n")
            .await
            .unwrap();
    }
    let connect_at = reference + CONNECT_AT;
    let mut connect_sent = sc == FirstPing::NoConnect;
    let give_up = reference + Duration::from_secs(8);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(connect_at), if !connect_sent => {
                s.write_all(b"CONNECT {\"verbose\":false}\r\n").await.unwrap();
                reference = tokio::time::Instant::now();
                connect_sent = true;
            }
            _ = tokio::time::sleep_until(give_up) => panic!("{sc:?}: no PING within 8 s"),
            r = s.read(&mut chunk) => {
                let n = r.expect("read");
                assert!(n > 0, "{sc:?}: server closed the connection");
                buf.extend_from_slice(&chunk[..n]);
                while let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    let line: Vec<u8> = buf.drain(..p + 2).collect();
                    if line == b"PING\r\n" {
                        assert!(connect_sent, "{sc:?}: PING before the CONNECT");
                        return reference.elapsed();
                    }
                }
            }
        }
    }
}

async fn first_pings(addr: SocketAddr) -> Vec<(FirstPing, Duration)> {
    let all = [
        FirstPing::NoConnect,
        FirstPing::LateConnect,
        FirstPing::Reconnect,
    ];
    let runs = all.map(|sc| tokio::spawn(async move { (sc, first_ping_after(addr, sc).await) }));
    let mut out = Vec::new();
    for r in runs {
        out.push(r.await.unwrap());
    }
    out
}

fn check_first(label: &str, got: &[(FirstPing, Duration)]) {
    let ms = Duration::from_millis;
    for &(sc, d) in got {
        let (lo, hi) = match sc {
            // Armed at accept with the full 3 s ping_interval.
            FirstPing::NoConnect => (ms(2900), ms(4500)),
            // Each CONNECT re-arms it: min(3 s, 2 s) + up to 20 %.
            FirstPing::LateConnect | FirstPing::Reconnect => (ms(1900), ms(3000)),
        };
        assert!(
            (lo..=hi).contains(&d),
            "{label}: {sc:?} first PING after {d:?}, expected {lo:?}..{hi:?}"
        );
    }
}

/// The first PING timer: nats-server 2.9.10 arms it at accept with the full
/// ping_interval (server.go createClient → setPingTimer) and re-arms it at
/// every CONNECT with min(ping_interval, 2 s) plus up to 20 % jitter
/// (client.go processConnect → clearPingTimer + setFirstPingTimer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_ping_timer_starts_at_connect() {
    let mut o = local_opts();
    o.ping_interval = Duration::from_secs(3);
    let ours = start_broker(o).await;
    let theirs = RefServer::start("ping_interval: \"3s\"")
        .unwrap_or_else(|e| panic!("needs the reference nats-server 2.9.10: {e}"));
    let (a, b) = tokio::join!(first_pings(ours.client_addr), first_pings(theirs.addr));
    eprintln!("first PING: ours {a:?}, nats-server {b:?}");
    check_first("nats-server", &b);
    check_first("ours", &a);
    ours.shutdown().await;
}
