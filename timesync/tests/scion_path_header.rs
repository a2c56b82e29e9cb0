//! The follower keys filter state by the `Nats-Scion-Path` header of replies: a responder in
//! this test plays a source whose replies arrive over "path p1", then "path p2".

mod common;
use common::*;
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use timesync::clock::realtime_ns;
use timesync::core::wire::{self, SyncReply, SyncRequest, HDR_SCION_PATH, VERSION};

#[tokio::test]
async fn path_header_change_resets_filter_and_counts_a_switch() {
    let natsd = Natsd::start().await.expect("nats-server");
    let url = natsd.url();
    let client = async_nats::connect(url.as_str()).await.unwrap();
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
            h.insert(HDR_SCION_PATH, path);
            let _ = responder
                .publish_with_headers(reply, h, rep.encode().into())
                .await;
        }
    });
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
