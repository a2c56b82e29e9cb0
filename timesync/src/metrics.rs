//! Prometheus text exposition of a follower's status (`--metrics 127.0.0.1:PORT`).

use crate::core::wire::FollowerStatus;
use crate::core::SyncState;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::debug;

/// Concurrent scrape connections served.
const MAX_CONNECTIONS: usize = 16;
/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Prometheus spells infinities `+Inf`/`-Inf`.
fn num(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Render the exposition text for one status.
pub fn render(st: Option<&FollowerStatus>) -> String {
    let mut o = String::new();
    let Some(st) = st else {
        o.push_str("# no status yet\n");
        return o;
    };
    let t = &st.tracking;
    let f = esc(&st.id);
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(
            o,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{follower=\"{f}\"}} {}",
            num(v)
        );
    };
    gauge(
        "timesync_offset_seconds",
        "Estimated offset of the selected source minus the local clock.",
        t.offset_ns as f64 / 1e9,
    );
    gauge(
        "timesync_delay_seconds",
        "Round-trip delay of the last sample used.",
        t.delay_ns as f64 / 1e9,
    );
    gauge(
        "timesync_jitter_seconds",
        "Offset jitter of the selected source.",
        t.jitter_ns as f64 / 1e9,
    );
    gauge(
        "timesync_frequency_ppm",
        "Frequency correction applied to the clock.",
        t.freq_ppm,
    );
    gauge(
        "timesync_max_error_seconds",
        "Upper bound on |local - source|.",
        if t.max_error_ns == i64::MAX {
            f64::INFINITY
        } else {
            t.max_error_ns as f64 / 1e9
        },
    );
    let _ = writeln!(o, "# HELP timesync_state Synchronisation state (1 for the current one).\n# TYPE timesync_state gauge");
    for s in [SyncState::Startup, SyncState::Sync, SyncState::Holdover] {
        let _ = writeln!(
            o,
            "timesync_state{{follower=\"{f}\",state=\"{}\"}} {}",
            s.as_str(),
            u8::from(t.state == s)
        );
    }
    let _ = writeln!(o, "# HELP timesync_selected_source The source the clock follows (1).\n# TYPE timesync_selected_source gauge");
    for s in &t.sources {
        let _ = writeln!(
            o,
            "timesync_selected_source{{follower=\"{f}\",source=\"{}\"}} {}",
            esc(&s.id),
            u8::from(s.selected)
        );
    }
    let _ = writeln!(o, "# HELP timesync_source_reachable Whether the source answered recently.\n# TYPE timesync_source_reachable gauge");
    for s in &t.sources {
        let _ = writeln!(
            o,
            "timesync_source_reachable{{follower=\"{f}\",source=\"{}\"}} {}",
            esc(&s.id),
            u8::from(s.reachable)
        );
    }
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            o,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{follower=\"{f}\"}} {v}"
        );
    };
    counter(
        "timesync_path_switches_total",
        "Path changes seen on replies (filter resets).",
        t.path_switches,
    );
    counter(
        "timesync_source_switches_total",
        "Changes of the selected source.",
        t.source_switches,
    );
    counter(
        "timesync_steps_total",
        "Clock steps (startup only).",
        t.steps,
    );
    o
}

/// Serve `/metrics` on an already bound listener until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    status: watch::Receiver<Option<FollowerStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (mut sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(err) => {
                    debug!(%err, "metrics accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue; // over the limit: drop the connection
        };
        let status = status.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let read = tokio::time::timeout(READ_TIMEOUT, async {
                while buf.len() < MAX_REQUEST && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
            let ok = line.starts_with(b"GET /metrics ") || line.starts_with(b"GET / ");
            let body = if ok {
                render(status.borrow().as_ref())
            } else {
                "not found\n".into()
            };
            let head = format!(
                "HTTP/1.1 {}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                if ok { "200 OK" } else { "404 Not Found" },
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Engine, EngineConfig, SourceConfig};

    #[test]
    fn renders_all_required_series() {
        let e = Engine::new(
            EngineConfig::default(),
            vec![SourceConfig {
                id: "s\"1".into(),
                priority: 0,
            }],
            0,
            0.0,
            1,
        );
        let st = FollowerStatus {
            id: "f1".into(),
            address: "127.0.0.1".into(),
            mode: "observe".into(),
            tracking: e.tracking(0),
            host_offset_ns: 0,
            at_unix_ns: 0,
        };
        let text = render(Some(&st));
        for name in [
            "timesync_offset_seconds{",
            "timesync_delay_seconds{",
            "timesync_jitter_seconds{",
            "timesync_frequency_ppm{",
            "timesync_max_error_seconds{follower=\"f1\"} +Inf",
            "timesync_state{follower=\"f1\",state=\"startup\"} 1",
            "timesync_state{follower=\"f1\",state=\"holdover\"} 0",
            "timesync_selected_source{follower=\"f1\",source=\"s\\\"1\"} 0",
            "timesync_path_switches_total{",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
