//! Integration tests with the async-nats client against our broker on
//! loopback: pub/sub, wildcards, queue groups, request/reply, headers,
//! no-responders, auth, permissions, limits, auto-unsubscribe, slow
//! consumers, drain and flush.

mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerError};
use broker::options::{Options, Permissions, SubjectPermission, User};
use broker::server::ServerHandle;
use bytes::Bytes;
use futures::StreamExt;
use harness::{local_opts, start_broker, Raw, STEP_TIMEOUT};

const WAIT: Duration = Duration::from_secs(5);

fn url(h: &ServerHandle) -> String {
    format!("nats://{}", h.client_addr)
}

async fn connect(h: &ServerHandle) -> async_nats::Client {
    connect_with(h, ConnectOptions::new()).await
}

async fn connect_with(h: &ServerHandle, o: ConnectOptions) -> async_nats::Client {
    tokio::time::timeout(WAIT, o.connect(url(h)))
        .await
        .expect("connect timed out")
        .expect("connect")
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("timed out waiting for a message")
        .expect("subscription ended")
}

#[tokio::test]
async fn pub_sub_and_wildcards() {
    let srv = start_broker(local_opts()).await;
    let c = connect(&srv).await;
    let mut exact = c.subscribe("foo.bar").await.unwrap();
    let mut star = c.subscribe("foo.*").await.unwrap();
    let mut gt = c.subscribe("foo.>").await.unwrap();
    let mut mid = c.subscribe("*.bar.*").await.unwrap();
    c.flush().await.unwrap();
    for s in ["foo.bar", "foo.baz", "foo.bar.baz", "x.bar.y", "foo"] {
        c.publish(s, Bytes::from(s)).await.unwrap();
    }
    c.publish("end", Bytes::new()).await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(next(&mut exact).await.payload, "foo.bar");
    assert_eq!(next(&mut star).await.payload, "foo.bar");
    assert_eq!(next(&mut star).await.payload, "foo.baz");
    for want in ["foo.bar", "foo.baz", "foo.bar.baz"] {
        let m = next(&mut gt).await;
        assert_eq!(m.payload, want);
        assert_eq!(m.subject.as_str(), want);
    }
    assert_eq!(next(&mut mid).await.payload, "foo.bar.baz");
    assert_eq!(next(&mut mid).await.payload, "x.bar.y");
    // Nothing else arrived on the narrow subscriptions.
    for sub in [&mut exact, &mut star] {
        sub.unsubscribe().await.unwrap();
        assert!(
            tokio::time::timeout(WAIT, sub.next())
                .await
                .unwrap()
                .is_none(),
            "unexpected extra message"
        );
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_delivers_each_message_once() {
    let srv = start_broker(local_opts()).await;
    const N: usize = 600;
    let mut members = Vec::new();
    for _ in 0..3 {
        let c = connect(&srv).await;
        let sub = c.queue_subscribe("work", "workers".into()).await.unwrap();
        c.flush().await.unwrap();
        members.push((c, sub));
    }
    let watcher = connect(&srv).await;
    let mut all = watcher.subscribe("work").await.unwrap();
    watcher.flush().await.unwrap();
    let publisher = connect(&srv).await;
    for i in 0..N {
        publisher
            .publish("work", Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();

    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut per_member = [0usize; 3];
    let mut total = 0;
    let mut merged = futures::stream::select_all(
        members
            .iter_mut()
            .enumerate()
            .map(|(k, (_, sub))| sub.map(move |m| (k, m)).boxed()),
    );
    while total < N {
        let (k, m) = tokio::time::timeout(WAIT, merged.next())
            .await
            .unwrap_or_else(|_| panic!("only {total} of {N} queue messages arrived"))
            .expect("queue subscription ended");
        let i: usize = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        *seen.entry(i).or_default() += 1;
        per_member[k] += 1;
        total += 1;
    }
    drop(merged);
    // No extra deliveries: each member's flush round-trips after anything
    // the broker queued for it, and then its queue must be empty.
    for (c, sub) in members.iter_mut() {
        c.flush().await.unwrap();
        sub.unsubscribe().await.unwrap();
        assert!(
            tokio::time::timeout(WAIT, sub.next())
                .await
                .unwrap()
                .is_none(),
            "extra queue delivery"
        );
    }
    assert_eq!(total, N, "per member {per_member:?}");
    assert_eq!(seen.len(), N);
    assert!(
        seen.values().all(|&n| n == 1),
        "a message was delivered twice"
    );
    assert!(
        per_member.iter().all(|&n| n > 0),
        "a member got nothing: {per_member:?}"
    );
    // The plain subscriber gets every message.
    for i in 0..N {
        assert_eq!(next(&mut all).await.payload, i.to_string());
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn request_reply_and_headers() {
    let srv = start_broker(local_opts()).await;
    let responder = connect(&srv).await;
    let mut svc = responder.subscribe("svc.upper").await.unwrap();
    responder.flush().await.unwrap();
    let r2 = responder.clone();
    let task = tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            let Some(reply) = m.reply else { continue };
            let mut h = async_nats::HeaderMap::new();
            if let Some(hs) = &m.headers {
                if let Some(v) = hs.get("X-Trace") {
                    h.insert("X-Trace", v.as_str());
                }
            }
            h.insert("X-Served-By", "responder");
            let body = String::from_utf8_lossy(&m.payload).to_uppercase();
            r2.publish_with_headers(reply, h, body.into())
                .await
                .unwrap();
        }
    });
    let c = connect(&srv).await;
    let resp = tokio::time::timeout(WAIT, c.request("svc.upper", "hello".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.payload, "HELLO");
    let mut h = async_nats::HeaderMap::new();
    h.insert("X-Trace", "abc-123");
    h.append("X-Multi", "1");
    h.append("X-Multi", "2");
    let req = async_nats::Request::new()
        .payload("with headers".into())
        .headers(h);
    let resp = tokio::time::timeout(WAIT, c.send_request("svc.upper", req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.payload, "WITH HEADERS");
    let hs = resp.headers.expect("reply headers");
    assert_eq!(hs.get("X-Trace").unwrap().as_str(), "abc-123");
    assert_eq!(hs.get("X-Served-By").unwrap().as_str(), "responder");

    // Headers round-trip on plain publish, multi-valued included.
    let mut sub = c.subscribe("hdr").await.unwrap();
    c.flush().await.unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.append("A", "1");
    h.append("A", "2");
    h.insert("B", "x y z");
    c.publish_with_headers("hdr", h, "p".into()).await.unwrap();
    let m = next(&mut sub).await;
    let hs = m.headers.unwrap();
    let a: Vec<&str> = hs.get_all("A").map(|v| v.as_str()).collect();
    assert_eq!(a, ["1", "2"]);
    assert_eq!(hs.get("B").unwrap().as_str(), "x y z");
    assert_eq!(m.payload, "p");
    task.abort();
    srv.shutdown().await;
}

#[tokio::test]
async fn request_without_responders_fails_fast() {
    let srv = start_broker(local_opts()).await;
    let c = connect(&srv).await;
    let start = std::time::Instant::now();
    let err = tokio::time::timeout(WAIT, c.request("nobody.home", "x".into()))
        .await
        .expect("no-responders should answer before the request timeout")
        .expect_err("request must fail");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    assert!(start.elapsed() < Duration::from_secs(2));
    srv.shutdown().await;
}

#[tokio::test]
async fn user_password_and_token_auth() {
    let mut o = local_opts();
    o.authorization.user = Some("alice".into());
    o.authorization.password = Some("s3cr3t".into());
    let srv = start_broker(o).await;
    let c = connect_with(
        &srv,
        ConnectOptions::with_user_and_password("alice".into(), "s3cr3t".into()),
    )
    .await;
    c.flush().await.unwrap();
    assert!(c.server_info().auth_required);
    for (u, p) in [("alice", "wrong"), ("bob", "s3cr3t")] {
        let r = tokio::time::timeout(
            WAIT,
            ConnectOptions::with_user_and_password(u.into(), p.into()).connect(url(&srv)),
        )
        .await
        .expect("rejection should be prompt");
        let Err(err) = r else {
            panic!("bad credentials {u}/{p} must be rejected");
        };
        assert_eq!(
            err.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{err}"
        );
    }
    srv.shutdown().await;

    let mut o = local_opts();
    o.authorization.token = Some("tok".into());
    let srv = start_broker(o).await;
    let c = connect_with(&srv, ConnectOptions::with_token("tok".into())).await;
    c.flush().await.unwrap();
    let r = tokio::time::timeout(
        WAIT,
        ConnectOptions::with_token("nope".into()).connect(url(&srv)),
    )
    .await
    .unwrap();
    assert_eq!(
        r.err().unwrap().kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );
    let r = tokio::time::timeout(WAIT, ConnectOptions::new().connect(url(&srv)))
        .await
        .unwrap();
    assert!(r.is_err(), "no credentials must be rejected");
    srv.shutdown().await;
}

fn perms_opts() -> Options {
    let mut o = local_opts();
    o.authorization.users = vec![User {
        username: "limited".into(),
        password: "pw".into(),
        allowed_connection_types: Vec::new(),
        permissions: Some(Permissions {
            publish: Some(SubjectPermission {
                allow: vec!["ok.>".into(), "_INBOX.>".into()],
                deny: vec![],
            }),
            subscribe: Some(SubjectPermission {
                allow: vec!["ok.>".into(), "_INBOX.>".into()],
                deny: vec!["ok.secret".into()],
            }),
            allow_responses: None,
        }),
    }];
    o
}

#[tokio::test]
async fn permission_violations_reach_the_client() {
    let srv = start_broker(perms_opts()).await;
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let e2 = errors.clone();
    let c = connect_with(
        &srv,
        ConnectOptions::with_user_and_password("limited".into(), "pw".into()).event_callback(
            move |ev| {
                let e2 = e2.clone();
                async move {
                    if let Event::ServerError(ServerError::Other(s)) = ev {
                        e2.lock().unwrap().push(s);
                    }
                }
            },
        ),
    )
    .await;
    let mut ok = c.subscribe("ok.>").await.unwrap();
    c.publish("denied.subject", "x".into()).await.unwrap();
    let _sub = c.subscribe("forbidden").await.unwrap();
    c.publish("ok.secret", "hidden".into()).await.unwrap();
    c.publish("ok.fine", "visible".into()).await.unwrap();
    c.flush().await.unwrap();
    // The allowed message arrives; the one on the denied subject does not
    // (the wildcard subscription is filtered by the deny list).
    assert_eq!(next(&mut ok).await.payload, "visible");
    let want = [
        "Permissions Violation for Publish to \"denied.subject\"",
        "Permissions Violation for Subscription to \"forbidden\"",
    ];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = errors.lock().unwrap().clone();
        if want.iter().all(|w| got.iter().any(|g| g == w)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "violations not reported; got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connection stays usable after violations.
    c.publish("ok.after", "still".into()).await.unwrap();
    assert_eq!(next(&mut ok).await.payload, "still");
    srv.shutdown().await;
}

#[tokio::test]
async fn max_payload_is_enforced_by_the_client() {
    let mut o = local_opts();
    o.max_payload = 1024;
    let srv = start_broker(o).await;
    let c = connect(&srv).await;
    assert_eq!(c.server_info().max_payload, 1024);
    let mut sub = c.subscribe("big").await.unwrap();
    c.flush().await.unwrap();
    let err = c
        .publish("big", vec![0u8; 1025].into())
        .await
        .expect_err("over max_payload");
    assert_eq!(
        err.kind(),
        async_nats::client::PublishErrorKind::MaxPayloadExceeded
    );
    c.publish("big", vec![7u8; 1024].into()).await.unwrap();
    assert_eq!(next(&mut sub).await.payload.len(), 1024);
    srv.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_after_n() {
    let srv = start_broker(local_opts()).await;
    let c = connect(&srv).await;
    let mut sub = c.subscribe("n").await.unwrap();
    sub.unsubscribe_after(3).await.unwrap();
    c.flush().await.unwrap();
    for i in 0..6 {
        c.publish("n", i.to_string().into()).await.unwrap();
    }
    c.flush().await.unwrap();
    for i in 0..3 {
        assert_eq!(next(&mut sub).await.payload, i.to_string());
    }
    let end = tokio::time::timeout(WAIT, sub.next()).await.unwrap();
    assert!(end.is_none(), "got a 4th message: {end:?}");
    // The server dropped the subscription too.
    assert_eq!(srv.state.sublist.read().unwrap().count(), 0);
    srv.shutdown().await;
}

#[tokio::test]
async fn echo_off_and_drain() {
    let srv = start_broker(local_opts()).await;
    let quiet = connect_with(&srv, ConnectOptions::new().no_echo()).await;
    let other = connect(&srv).await;
    let mut mine = quiet.subscribe("e").await.unwrap();
    let mut theirs = other.subscribe("e").await.unwrap();
    quiet.flush().await.unwrap();
    other.flush().await.unwrap();
    // Flush in between: there is no order across two connections otherwise.
    quiet.publish("e", "from-quiet".into()).await.unwrap();
    quiet.flush().await.unwrap();
    other.publish("e", "from-other".into()).await.unwrap();
    other.flush().await.unwrap();
    assert_eq!(next(&mut theirs).await.payload, "from-quiet");
    assert_eq!(next(&mut theirs).await.payload, "from-other");
    // echo:false: our own message is not delivered back.
    assert_eq!(next(&mut mine).await.payload, "from-other");

    // Drain: messages already sent are still delivered, then the stream ends.
    for i in 0..20 {
        other.publish("e", i.to_string().into()).await.unwrap();
    }
    other.flush().await.unwrap();
    quiet.flush().await.unwrap();
    mine.drain().await.unwrap();
    let mut got = 0;
    while let Some(_m) = tokio::time::timeout(WAIT, mine.next()).await.unwrap() {
        got += 1;
    }
    assert_eq!(got, 20);
    tokio::time::timeout(WAIT, other.drain())
        .await
        .unwrap()
        .unwrap();
    srv.shutdown().await;
}

#[tokio::test]
async fn connection_and_subscription_limits() {
    let mut o = local_opts();
    o.max_connections = 1;
    o.max_subscriptions = 2;
    let srv = start_broker(o).await;
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let e2 = errors.clone();
    let c = connect_with(
        &srv,
        ConnectOptions::new().event_callback(move |ev| {
            let e2 = e2.clone();
            async move {
                if let Event::ServerError(ServerError::Other(s)) = ev {
                    e2.lock().unwrap().push(s);
                }
            }
        }),
    )
    .await;
    // A second connection is refused while the first is up.
    let second = tokio::time::timeout(WAIT, ConnectOptions::new().connect(url(&srv)))
        .await
        .expect("refusal should be prompt");
    assert!(
        second.is_err(),
        "max_connections 1 admitted a second client"
    );
    let _a = c.subscribe("a").await.unwrap();
    let _b = c.subscribe("b").await.unwrap();
    let _x = c.subscribe("c").await.unwrap();
    c.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !errors
        .lock()
        .unwrap()
        .iter()
        .any(|e| e == "maximum subscriptions exceeded")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no max subscriptions error: {:?}",
            errors.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The connection survives the refused subscription.
    assert_eq!(srv.state.sublist.read().unwrap().count(), 2);
    c.flush().await.unwrap();
    srv.shutdown().await;
}

/// A subscriber that never reads must be cut once its pending bytes pass
/// max_pending, without stalling the publisher or a healthy subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_cut_as_slow_consumer() {
    let mut o = local_opts();
    o.max_pending = 1024 * 1024;
    let srv = start_broker(o).await;

    // The stalled subscriber: a raw socket with a small receive buffer that
    // stops reading after its SUB is confirmed.
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
        .send(b"CONNECT {\"verbose\":false}\r\nSUB big 1\r\nPING\r\n")
        .await;
    assert_eq!(stalled.read_pongs(1).await, b"PONG\r\n");

    let healthy = connect(&srv).await;
    let mut hsub = healthy.subscribe("big").await.unwrap();
    healthy.flush().await.unwrap();
    // Keep the healthy subscriber reading in the background.
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = received.clone();
    let reader = tokio::spawn(async move {
        while let Some(_m) = hsub.next().await {
            r2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });

    let publisher = connect(&srv).await;
    let msg = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut sent = 0usize;
    // Bounded: 64 MiB at most, far above max_pending plus socket buffers.
    while srv
        .state
        .stats
        .slow_consumers
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
        && sent < 1024
    {
        for _ in 0..8 {
            publisher.publish("big", msg.clone()).await.unwrap();
            sent += 1;
        }
        tokio::time::timeout(WAIT, publisher.flush())
            .await
            .expect("publisher stalled")
            .unwrap();
        // Pace on the healthy subscriber (its pending stays under
        // max_pending); the stalled one falls behind regardless.
        wait_count(&received, sent).await;
    }
    assert_eq!(
        srv.state
            .stats
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "no slow consumer after {sent} messages"
    );
    eprintln!(
        "stalled subscriber cut after {sent} messages of 64 KiB ({} KiB published)",
        sent * 64
    );
    // The publisher keeps working after the cut.
    for _ in 0..8 {
        publisher.publish("big", msg.clone()).await.unwrap();
        sent += 1;
    }
    tokio::time::timeout(WAIT, publisher.flush())
        .await
        .unwrap()
        .unwrap();
    // The stalled socket was closed by the server: reading it now drains
    // what the kernel buffered and then hits EOF.
    let _ = stalled.read_to_close(Duration::from_secs(10)).await;
    assert!(stalled.eof, "stalled subscriber was not disconnected");
    // The cut is recorded with nats-server's close reason (what /connz
    // ?state=closed shows).
    let reasons: Vec<_> = srv
        .state
        .closed
        .lock()
        .unwrap()
        .iter()
        .filter_map(|c| c.snapshot.reason)
        .collect();
    assert!(
        reasons.contains(&broker::server::ClosedState::SlowConsumerPendingBytes),
        "{reasons:?}"
    );
    // Its closed entry shows what was left unflushed when it was cut (nats-server saves the
    // closed connection before the teardown): just under max_pending, not 0.
    let left: Vec<usize> = srv
        .state
        .closed
        .lock()
        .unwrap()
        .iter()
        .filter(|c| {
            c.snapshot.reason == Some(broker::server::ClosedState::SlowConsumerPendingBytes)
        })
        .map(|c| c.snapshot.pending_bytes)
        .collect();
    assert!(
        left.iter()
            .all(|&p| p > 1024 * 1024 / 2 && p <= 1024 * 1024),
        "pending at the cut: {left:?}"
    );
    // The healthy subscriber got every message (bounded wait).
    wait_count(&received, sent).await;
    let closed: Vec<String> = srv
        .state
        .closed
        .lock()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "cid {} {:?} out_msgs {}",
                c.snapshot.cid, c.snapshot.reason, c.snapshot.out_msgs
            )
        })
        .collect();
    assert_eq!(
        received.load(std::sync::atomic::Ordering::Relaxed),
        sent,
        "healthy subscriber lost messages; closed: {closed:?}"
    );
    reader.abort();
    srv.shutdown().await;
}

/// Waits (bounded) until `counter` reaches `want`.
async fn wait_count(counter: &std::sync::atomic::AtomicUsize, want: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while counter.load(std::sync::atomic::Ordering::Relaxed) < want
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
