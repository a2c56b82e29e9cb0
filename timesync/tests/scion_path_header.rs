//! The follower keys filter state by the `Nats-Scion-Path` header of replies and by the
//! request path the source echoes (`Timesync-Request-Path`): a responder in these tests plays
//! a source whose replies (or requests) arrive over "path p1", then "path p2"; and our own
//! source is checked to echo the request's path.

mod common;
use common::*;
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use timesync::clock::realtime_ns;
use timesync::core::wire::{
    self, SyncReply, SyncRequest, HDR_REQUEST_PATH, HDR_SCION_PATH, VERSION,
};

/// Starts a responder for source "scion" that tags its replies with `header`: "p1" until
/// the returned flag is set, "p2" after.
async fn responder(url: &str, header: &'static str) -> Arc<AtomicBool> {
    let client = async_nats::connect(url).await.unwrap();
    let mut sub = client.subscribe(wire::sync_subject("scion")).await.unwrap();
    client.flush().await.unwrap();
    let second_path = Arc::new(AtomicBool::new(false));
    let flag = second_path.clone();
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let t2 = realtime_ns();
            let (Some(reply), Ok(req)) = (msg.reply, SyncRequest::decode(&msg.payload)) else {
                continue;
            };
            let rep = SyncReply {
                v: VERSION,
                nonce: req.nonce,
                t1: req.t1,
                t2,
                t3: realtime_ns(),
                source: "scion".into(),
                stratum: 1,
                leap: 0,
                root_delay_ns: 0,
                root_dispersion_ns: 0,
                epoch: 1,
            };
            let mut h = async_nats::HeaderMap::new();
            let path = if flag.load(Ordering::Relaxed) {
                "p2"
            } else {
                "p1"
            };
            h.insert(header, path);
            let _ = responder
                .publish_with_headers(reply, h, rep.encode().into())
                .await;
        }
    });
    second_path
}

#[tokio::test]
async fn path_header_change_resets_filter_and_counts_a_switch() {
    let natsd = Natsd::start().await.expect("nats-server");
    let url = natsd.url();
    let second_path = responder(&url, HDR_SCION_PATH).await;
    let _f = follower(&url, "fp", &["--source", "scion"]);
    let mut w = StatusWatch::new(&url, "fp").await;
    let s = w
        .until(Duration::from_secs(30), 5, |s| {
            s.tracking.state == timesync::core::SyncState::Sync
                && s.tracking.sources[0].path.as_deref() == Some("p1")
        })
        .await
        .expect("synchronised over p1");
    assert_eq!(s.tracking.path_switches, 0);
    second_path.store(true, Ordering::Relaxed);
    let s = w
        .until(Duration::from_secs(10), 1, |s| {
            s.tracking.sources[0].path.as_deref() == Some("p2")
        })
        .await
        .expect("path p2 seen");
    assert_eq!(s.tracking.path_switches, 1);
    assert_eq!(s.tracking.steps, 0, "no step on a path change");
    w.until(Duration::from_secs(10), 5, |s| {
        s.tracking.state == timesync::core::SyncState::Sync && error_ns(s, 0).abs() < 2_000_000
    })
    .await
    .expect("still in sync on p2");
}

/// Each end of a SCION route picks its own path: a change of the request leg alone must
/// restart the filter too (the source echoes it as `Timesync-Request-Path`).
#[tokio::test]
async fn request_path_change_alone_counts_a_switch() {
    let natsd = Natsd::start().await.expect("nats-server");
    let url = natsd.url();
    let second_path = responder(&url, HDR_REQUEST_PATH).await;
    let _f = follower(&url, "fq", &["--source", "scion"]);
    let mut w = StatusWatch::new(&url, "fq").await;
    let s = w
        .until(Duration::from_secs(30), 5, |s| {
            s.tracking.state == timesync::core::SyncState::Sync
                && s.tracking.sources[0].request_path.as_deref() == Some("p1")
        })
        .await
        .expect("synchronised with requests over p1");
    assert_eq!(s.tracking.path_switches, 0);
    assert_eq!(s.tracking.sources[0].path, None);
    second_path.store(true, Ordering::Relaxed);
    let s = w
        .until(Duration::from_secs(10), 1, |s| {
            s.tracking.sources[0].request_path.as_deref() == Some("p2")
        })
        .await
        .expect("request path p2 seen");
    assert_eq!(s.tracking.path_switches, 1);
    assert_eq!(s.tracking.steps, 0, "no step on a path change");
}

/// Our source echoes the `Nats-Scion-Path` of a request (the broker sets it on the SCION
/// hop into the source's server) and sends no echo for an untagged request.
#[tokio::test]
async fn source_echoes_the_request_path() {
    let natsd = Natsd::start().await.expect("nats-server");
    let url = natsd.url();
    let _s = source(&url, "echo", &[]).await;
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let req = |nonce| SyncRequest {
        v: VERSION,
        nonce,
        t1: realtime_ns(),
    };
    let mut h = async_nats::HeaderMap::new();
    h.insert(HDR_SCION_PATH, "1-ff00:0:110#1 abc123");
    let msg = tokio::time::timeout(
        Duration::from_secs(10),
        client.request_with_headers(wire::sync_subject("echo"), h, req(1).encode().into()),
    )
    .await
    .expect("reply in time")
    .expect("reply");
    let echoed = msg.headers.as_ref().and_then(|h| h.get(HDR_REQUEST_PATH));
    assert_eq!(echoed.map(|v| v.as_str()), Some("1-ff00:0:110#1 abc123"));
    assert_eq!(SyncReply::decode(&msg.payload).unwrap().nonce, 1);
    let msg = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(wire::sync_subject("echo"), req(2).encode().into()),
    )
    .await
    .expect("reply in time")
    .expect("reply");
    assert!(msg
        .headers
        .as_ref()
        .and_then(|h| h.get(HDR_REQUEST_PATH))
        .is_none());
}
