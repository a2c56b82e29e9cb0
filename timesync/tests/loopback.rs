//! Real processes on loopback: nats-server, a `timesync source`, two skewed followers and
//! the CLI commands.

mod common;
use common::*;
use std::time::Duration;

#[tokio::test]
async fn skewed_followers_converge_and_cli_shows_them() {
    let natsd = Natsd::start().await.expect("nats-server");
    let url = natsd.url();
    let _src = source(&url, "src1", &[]).await;
    let mut f1 = spawn(
        &url,
        &[
            "follow",
            "--id",
            "f1",
            "--source",
            "src1",
            "--status-ms",
            "100",
            "--fake-offset-ms",
            "250",
            "--fake-ppm",
            "100",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let metrics_line = f1
        .wait_log("metrics listening", Duration::from_secs(15))
        .await
        .expect("metrics address logged");
    let _f2 = follower(
        &url,
        "f2",
        &[
            "--source",
            "src1",
            "--fake-offset-ms",
            "-40",
            "--fake-ppm",
            "-50",
        ],
    );

    for (id, want) in [("f1", -100.0), ("f2", 50.0)] {
        let mut w = StatusWatch::new(&url, id).await;
        // Converged: in sync, within 1 ms of the truth, max-error honest, the fake frequency
        // error learned (raw clock +100 ppm fast => -100 ppm correction), for 2 s.
        let st = w
            .until(Duration::from_secs(120), 20, |s| {
                let e = error_ns(s, 0);
                s.tracking.state == timesync::core::SyncState::Sync
                    && e.abs() < 1_000_000
                    && e.abs() <= s.tracking.max_error_ns
                    && (s.tracking.est_freq_ppm - want).abs() < 5.0
            })
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        // Both started more than the 10 ms step threshold off: exactly one startup step.
        assert_eq!(st.tracking.steps, 1, "{id}");
        assert_eq!(st.tracking.selected.as_deref(), Some("src1"));
        assert!(st.tracking.delay_ns > 0 && st.tracking.delay_ns < 50_000_000);
    }

    let out = cli(&url, &["followers", "-v"]).await;
    assert!(out.contains("f1") && out.contains("f2"), "{out}");
    assert!(out.contains("127.0.0.1"), "address column: {out}");
    assert!(out.contains("* src1"), "selected marker: {out}");
    let out = cli(&url, &["sources"]).await;
    assert!(out.lines().any(|l| l.starts_with("src1")), "{out}");
    let out = cli(&url, &["tracking", "--id", "f1"]).await;
    assert!(out.contains("State           : sync"), "{out}");
    assert!(out.contains("Reference       : src1"), "{out}");
    let out = cli(&url, &["tail", "src1", "-n", "2"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in lines {
        assert!(
            l.contains("source=src1") && l.contains("stratum=1") && l.contains("leap=0"),
            "{l}"
        );
        assert!(l.contains("seq=") && !l.contains("seq=-"), "{l}");
        let micros: i64 = l.split_whitespace().next().unwrap().parse().unwrap();
        let now_us = timesync::clock::realtime_ns() / 1000;
        assert!(
            (now_us - micros).abs() < 5_000_000,
            "beacon payload is the current µs time"
        );
    }

    // Metrics endpoint.
    let addr = metrics_line
        .split("addr=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("addr in log line")
        .to_string();
    let body = http_get(&addr).await;
    for series in [
        "timesync_offset_seconds{follower=\"f1\"}",
        "timesync_max_error_seconds{follower=\"f1\"}",
        "timesync_state{follower=\"f1\",state=\"sync\"} 1",
        "timesync_selected_source{follower=\"f1\",source=\"src1\"} 1",
        "timesync_path_switches_total{follower=\"f1\"} 0",
    ] {
        assert!(body.contains(series), "missing {series} in\n{body}");
    }
}

async fn http_get(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("metrics response in time")
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    out
}
