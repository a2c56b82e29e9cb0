//! Source failover and falseticker rejection with real source processes.

mod common;
use common::*;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test]
async fn failover_to_backup_within_3s_when_primary_dies() {
    let natsd = Natsd::start().await.expect("nats-server");
    let url = natsd.url();
    let mut primary = source(&url, "primary", &[]).await;
    let _backup = source(&url, "backup", &[]).await;
    let _f = follower(
        &url,
        "ff",
        &["--source", "primary:0", "--source", "backup:1"],
    );
    let mut w = StatusWatch::new(&url, "ff").await;
    w.until(Duration::from_secs(60), 20, |s| {
        s.tracking.selected.as_deref() == Some("primary")
            && s.tracking.state == timesync::core::SyncState::Sync
            && s.tracking.sources.iter().all(|x| x.reachable)
    })
    .await
    .expect("follows the primary");
    let steps = w.next().await.unwrap().tracking.steps;
    primary.kill().await;
    let killed = Instant::now();
    let s = w
        .until(Duration::from_secs(10), 1, |s| {
            s.tracking.selected.as_deref() == Some("backup")
        })
        .await
        .expect("switches to backup");
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(3), "failover took {took:?}");
    assert_eq!(s.tracking.steps, steps, "failover never steps");
    assert!(error_ns(&s, 0).abs() < 2_000_000);
}

#[tokio::test]
async fn blackholed_source_is_detected_within_3s() {
    let natsd = Natsd::start().await.expect("nats-server");
    let url = natsd.url();
    let cut = DelayProxy::start(natsd.addr(), Profile::default())
        .await
        .unwrap();
    let _primary = source(&cut.url(), "primary", &[]).await;
    let _backup = source(&url, "backup", &[]).await;
    let _f = follower(
        &url,
        "fb",
        &["--source", "primary:0", "--source", "backup:1"],
    );
    let mut w = StatusWatch::new(&url, "fb").await;
    w.until(Duration::from_secs(60), 20, |s| {
        s.tracking.selected.as_deref() == Some("primary")
            && s.tracking.state == timesync::core::SyncState::Sync
    })
    .await
    .expect("follows the primary");
    // Silent loss: requests still reach nats-server (the primary's subscription is alive
    // there) but nothing comes back, so only timeouts can tell.
    cut.set(Profile {
        cut: true,
        ..Profile::default()
    });
    let t0 = Instant::now();
    w.until(Duration::from_secs(10), 1, |s| {
        s.tracking.selected.as_deref() == Some("backup")
    })
    .await
    .expect("switches to backup");
    let took = t0.elapsed();
    assert!(
        took <= Duration::from_secs(3),
        "blackhole failover took {took:?}"
    );
}

#[tokio::test]
async fn falseticker_is_rejected_among_three_sources() {
    let natsd = Natsd::start().await.expect("nats-server");
    let url = natsd.url();
    // The liar is preferred by priority and 100 ms off.
    let _liar = source(&url, "liar", &["--fake-offset-ms", "100"]).await;
    let _a = source(&url, "a", &[]).await;
    let _b = source(&url, "b", &[]).await;
    let _f = follower(
        &url,
        "ft",
        &["--source", "liar:0", "--source", "a:1", "--source", "b:1"],
    );
    let mut w = StatusWatch::new(&url, "ft").await;
    let s = w
        .until(Duration::from_secs(60), 30, |s| {
            s.tracking.state == timesync::core::SyncState::Sync
                && s.tracking
                    .sources
                    .iter()
                    .any(|x| x.id == "liar" && x.falseticker)
                && error_ns(s, 0).abs() < 2_000_000
        })
        .await
        .expect("liar flagged, clock follows the honest majority");
    assert_ne!(s.tracking.selected.as_deref(), Some("liar"));
    // And it stays that way.
    for _ in 0..30 {
        let s = w.next().await.expect("status");
        assert_ne!(s.tracking.selected.as_deref(), Some("liar"));
    }
}
