//! write_deadline: a subscriber that stops reading while a producer floods
//! is closed as a slow consumer once a flush to it takes longer than the
//! deadline (nats-server client.go flushOutbound / handleWriteTimeout), is
//! listed in `/connz?state=closed` as "Slow Consumer (Write Deadline)", is
//! counted in `/varz` `slow_consumers`, and everyone else keeps being
//! served. The pending-bytes limit is far away, so only the deadline can
//! cut it.

mod harness;
mod route_ref;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use harness::{get_json, local_opts, start_broker, Raw, STEP_TIMEOUT};
use route_ref::{
    answered, our_addrs, our_opts, route_info, route_peer, wait_json, Addrs, RefCluster,
};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_is_cut_by_write_deadline() {
    let mut o = local_opts();
    o.write_deadline = Duration::from_millis(500);
    o.max_pending = 256 * 1024 * 1024;
    o.http_host = "127.0.0.1".into();
    o.http_port = -1;
    let srv = start_broker(o).await;
    let http = srv.http_addr.expect("monitoring port");

    // The stalled subscriber: small receive buffer, stops reading after its
    // SUB is confirmed.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = tokio::time::timeout(STEP_TIMEOUT, sock.connect(srv.client_addr))
        .await
        .unwrap()
        .unwrap();
    let mut stalled = Raw {
        stream,
        pending: Vec::new(),
        eof: false,
    };
    stalled.read_line().await;
    stalled
        .send(b"CONNECT {\"verbose\":false,\"name\":\"stalled\"}\r\nSUB big 1\r\nPING\r\n")
        .await;
    assert_eq!(stalled.read_pongs(1).await, b"PONG\r\n");

    // A healthy subscriber on the same subject, reading all along.
    let url = format!("nats://{}", srv.client_addr);
    let healthy = async_nats::connect(&url).await.unwrap();
    let mut hsub = healthy.subscribe("big").await.unwrap();
    healthy.flush().await.unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let r2 = received.clone();
    let reader = tokio::spawn(async move {
        while hsub.next().await.is_some() {
            r2.fetch_add(1, Ordering::Relaxed);
        }
    });

    let publisher = async_nats::connect(&url).await.unwrap();
    let msg = Bytes::from(vec![b'x'; 64 * 1024]);
    let slow = || srv.state.stats.slow_consumers.load(Ordering::Relaxed);
    let mut sent = 0usize;
    let start = tokio::time::Instant::now();
    // Bounded: at most 2 GiB or 30 s of publishing.
    while slow() == 0 && sent < 32 * 1024 && start.elapsed() < Duration::from_secs(30) {
        for _ in 0..16 {
            publisher.publish("big", msg.clone()).await.unwrap();
            sent += 1;
        }
        tokio::time::timeout(WAIT, publisher.flush())
            .await
            .expect("publisher stalled beyond bounds")
            .unwrap();
        // Pace on the healthy subscriber (at most 4 MiB behind), so only
        // the stalled one can fall behind, whatever the machine's load.
        let deadline = tokio::time::Instant::now() + WAIT;
        while received.load(Ordering::Relaxed) + 64 < sent && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(slow(), 1, "no write-deadline cut after {sent} messages");
    let pending_at_cut = sent * 64;
    eprintln!("cut after {sent} messages ({pending_at_cut} KiB published)");

    // The cut is by the deadline, not by pending bytes.
    let connz = loop {
        let v = get_json(http, "/connz?state=closed").await;
        if v["num_connections"].as_u64() == Some(1) {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(40), "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let conn = &connz["connections"][0];
    assert_eq!(conn["name"], "stalled", "{connz}");
    assert_eq!(conn["reason"], "Slow Consumer (Write Deadline)", "{connz}");
    // What was left unflushed at the cut (nats-server saves the closed connection before
    // the teardown), not 0.
    assert!(conn["pending_bytes"].as_u64().unwrap_or(0) > 0, "{connz}");
    let varz = get_json(http, "/varz").await;
    assert_eq!(varz["slow_consumers"], 1, "{varz}");

    // The stalled socket was closed by the server.
    let _ = stalled.read_to_close(Duration::from_secs(10)).await;
    assert!(stalled.eof, "stalled subscriber was not disconnected");

    // Everyone else is still served: the publisher keeps publishing and the
    // healthy subscriber gets every message.
    for _ in 0..16 {
        publisher.publish("big", msg.clone()).await.unwrap();
        sent += 1;
    }
    tokio::time::timeout(WAIT, publisher.flush())
        .await
        .expect("publisher stalled after the cut")
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while received.load(Ordering::Relaxed) < sent && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        received.load(Ordering::Relaxed),
        sent,
        "healthy lost messages"
    );
    let fresh = async_nats::connect(&url).await.unwrap();
    tokio::time::timeout(WAIT, fresh.flush())
        .await
        .expect("new client served")
        .unwrap();
    reader.abort();
    srv.shutdown().await;
}

/// The fast-producer stall holds a publisher message by message (client.go
/// deliverMsg calls stalledWait before queueing each message to a consumer
/// above half its max_pending, 100 ms or more each). So a consumer that
/// stops reading is cut by the write deadline long before small messages
/// can fill its pending limit, as nats-server does; stalling only once per
/// read let ~64 KiB of small messages through per read and cut it on
/// pending bytes instead (with these limits: within about 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_messages_stall_until_write_deadline() {
    let mut o = local_opts();
    o.write_deadline = Duration::from_secs(3);
    o.max_pending = 512 * 1024;
    let srv = start_broker(o).await;

    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = tokio::time::timeout(STEP_TIMEOUT, sock.connect(srv.client_addr))
        .await
        .unwrap()
        .unwrap();
    let mut stalled = Raw {
        stream,
        pending: Vec::new(),
        eof: false,
    };
    stalled.read_line().await;
    stalled
        .send(b"CONNECT {\"verbose\":false}\r\nSUB s 1\r\nPING\r\n")
        .await;
    assert_eq!(stalled.read_pongs(1).await, b"PONG\r\n");

    // A raw publisher writing 1 KiB messages as fast as the server takes
    // them, from its own task, until the stalled subscriber is gone.
    let mut publisher = Raw::connect(srv.client_addr).await;
    publisher.read_line().await;
    publisher.send(b"CONNECT {\"verbose\":false}\r\n").await;
    let mut msg = b"PUB s 1024\r\n".to_vec();
    msg.extend_from_slice(&[b'x'; 1024]);
    msg.extend_from_slice(b"\r\n");
    let batch = msg.repeat(64);
    let closed_reason = || {
        srv.state
            .closed
            .lock()
            .unwrap()
            .iter()
            .find_map(|c| c.snapshot.reason)
    };
    let start = tokio::time::Instant::now();
    let mut sent = 0usize;
    while closed_reason().is_none() && start.elapsed() < Duration::from_secs(20) {
        // Whole batches only (a cancelled write would cut a message in
        // two); bounded, as the stall ends when the subscriber is cut.
        tokio::time::timeout(Duration::from_secs(20), publisher.stream.write_all(&batch))
            .await
            .expect("publisher blocked for 20 s")
            .expect("publisher write");
        sent += 64;
    }
    let reason = closed_reason();
    eprintln!(
        "stalled subscriber closed after {:?} ({sent} messages offered): {reason:?}",
        start.elapsed()
    );
    assert_eq!(
        reason,
        Some(broker::server::ClosedState::SlowConsumerWriteDeadline),
        "expected the write deadline to cut the stalled subscriber"
    );
    // The publisher is served again once the consumer is gone.
    let _ = publisher.read_to_close(Duration::from_millis(10)).await;
    publisher.send(b"PING\r\n").await;
    let got = publisher.read_until(b"PONG\r\n").await;
    assert!(
        got.ends_with(b"PONG\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    srv.shutdown().await;
}

/// Publishes 64 KiB messages on `big` (which a route peer that stopped
/// reading is subscribed to) until the server drops that route; returns
/// `/varz` `slow_consumers` afterwards and the messages published.
async fn cut_stalled_route(a: Addrs) -> (u64, usize) {
    let info = format!("{}RS+ $G big\r\n", route_info("FAKEROUTE"));
    let mut peer = route_peer(a.route, "FAKEROUTE", &info, Some(4096)).await;
    assert!(answered(&mut peer).await, "route handshake");
    wait_json(a.http, "/routez", |v| v["num_routes"] == 1).await;

    let publisher = async_nats::connect(format!("nats://{}", a.client))
        .await
        .unwrap();
    let msg = Bytes::from(vec![b'x'; 64 * 1024]);
    let start = tokio::time::Instant::now();
    let mut sent = 0usize;
    // Bounded: at most 1 GiB or 30 s of publishing. nats-server keeps no
    // closed routes (client.go markConnAsClosed saves only CLIENT and LEAF
    // connections), so the cut shows as the route leaving /routez.
    while sent < 16 * 1024 && start.elapsed() < Duration::from_secs(30) {
        for _ in 0..16 {
            publisher.publish("big", msg.clone()).await.unwrap();
            sent += 1;
        }
        tokio::time::timeout(WAIT, publisher.flush())
            .await
            .expect("publisher stalled beyond bounds")
            .unwrap();
        if get_json(a.http, "/routez").await["num_routes"] == 0 {
            break;
        }
    }
    let routez = get_json(a.http, "/routez").await;
    assert_eq!(
        routez["num_routes"], 0,
        "route not cut after {sent} messages: {routez}"
    );
    let varz = get_json(a.http, "/varz").await;
    // The peer, which never read, finds the connection closed.
    let _ = peer.read_to_close(Duration::from_secs(10)).await;
    assert!(peer.eof, "route peer was not disconnected");
    // The publisher is still served.
    tokio::time::timeout(WAIT, publisher.flush())
        .await
        .expect("publisher served after the cut")
        .unwrap();
    (varz["slow_consumers"].as_u64().unwrap_or(0), sent)
}

/// A route whose peer stops reading is cut by the write deadline and counted
/// in `/varz` `slow_consumers` as nats-server 2.9.10 counts it: client.go
/// handleWriteTimeout bumps `s.slowConsumers` on every write timeout of any
/// kind of connection (only one still owing its expected CONNECT is not
/// counted), keeps a route whose flush wrote part of its data and closes it
/// when a flush wrote nothing. Against a peer that stops reading, the first
/// timeouts are partial and the last empty: nats-server shows 2 or 3 for
/// this scenario, one per logged timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_route_cut_by_write_deadline_counts_as_slow_consumer() {
    let mut o = our_opts();
    o.write_deadline = Duration::from_millis(500);
    let ours = start_broker(o).await;
    let theirs = RefCluster::start("write_deadline: \"500ms\"");
    let (o, t) = tokio::join!(
        cut_stalled_route(our_addrs(&ours)),
        cut_stalled_route(theirs.addrs)
    );
    let their_timeouts = theirs
        .log()
        .iter()
        .filter(|l| l.contains("Slow Consumer Detected: WriteDeadline"))
        .count() as u64;
    eprintln!(
        "slow_consumers after the route cut (count, messages): ours {o:?}, \
         nats-server {t:?} with {their_timeouts} write timeouts logged"
    );
    // nats-server counts each write timeout: at least one partial (the
    // route stays) and the empty one that closes it.
    assert_eq!(
        t.0, their_timeouts,
        "nats-server counts every write timeout"
    );
    assert!(t.0 >= 2, "nats-server: {t:?}");
    // How many partial timeouts come before the empty one depends on when
    // the kernel frees send space for a peer that stopped reading, so the
    // exact number is not compared; ours counts each one as well.
    assert!(o.0 >= 2, "ours counted only the closing timeout: {o:?}");
    assert_eq!(
        ours.state.stats.slow_consumers.load(Ordering::Relaxed),
        o.0,
        "/varz and the server counter disagree"
    );
    ours.shutdown().await;
}

/// A subscriber cut for pending bytes (max_pending) is disconnected at once, as
/// nats-server's closeConnection closes the socket without flushing, even while a
/// write to it is blocked: not when the (here 60 s) write deadline runs out, and with
/// one slow-consumer line, not a write-deadline one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pending_cut_closes_a_blocked_subscriber_at_once() {
    let mut o = local_opts();
    o.write_deadline = Duration::from_secs(60);
    o.max_pending = 64 * 1024;
    let srv = start_broker(o).await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = tokio::time::timeout(STEP_TIMEOUT, sock.connect(srv.client_addr))
        .await
        .unwrap()
        .unwrap();
    let mut stalled = Raw {
        stream,
        pending: Vec::new(),
        eof: false,
    };
    stalled.read_line().await;
    stalled
        .send(b"CONNECT {\"verbose\":false}\r\nSUB s 1\r\nPING\r\n")
        .await;
    assert_eq!(stalled.read_pongs(1).await, b"PONG\r\n");

    let publisher = async_nats::connect(format!("nats://{}", srv.client_addr))
        .await
        .unwrap();
    let msg = Bytes::from(vec![b'y'; 8 * 1024]);
    let slow = || srv.state.stats.slow_consumers.load(Ordering::Relaxed);
    let start = tokio::time::Instant::now();
    // Bounded: 32 MiB or 30 s of publishing (the kernel's socket buffers take megabytes
    // before the pending bytes grow).
    let mut sent = 0;
    while slow() == 0 && sent < 4096 && start.elapsed() < Duration::from_secs(30) {
        for _ in 0..32 {
            publisher.publish("s", msg.clone()).await.unwrap();
            sent += 1;
        }
        let _ = tokio::time::timeout(WAIT, publisher.flush()).await;
    }
    assert_eq!(slow(), 1, "no max_pending cut after {sent} messages");
    // Without reading from the cut subscriber (reading would unblock the write): the
    // server is done with it well before the write deadline.
    let cut = tokio::time::Instant::now();
    while srv.state.clients.lock().unwrap().len() > 1 {
        assert!(
            cut.elapsed() < Duration::from_secs(10),
            "still connected {:?} after the cut: the blocked write is being waited out",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stalled.read_to_close(Duration::from_secs(10)).await;
    assert!(stalled.eof, "the cut subscriber was not disconnected");
    srv.shutdown().await;
}
