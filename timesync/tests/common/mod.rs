//! Helpers for the real-process tests: nats-server, `timesync` child processes, status
//! watching. Every wait is bounded.

#![allow(dead_code, unused_imports)] // each test file uses a different subset

use futures::StreamExt;
use std::process::Stdio;
use std::time::Duration;
use timesync::core::wire::{self, FollowerStatus};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

pub use timesync::bench::natsd::Natsd;
pub use timesync::bench::proxy::{DelayProxy, Profile};

pub const BIN: &str = env!("CARGO_BIN_EXE_timesync");

/// A `timesync` child process, killed on drop.
pub struct Proc {
    pub child: Child,
    pub stderr: Option<tokio::process::ChildStderr>,
}

pub fn spawn(url: &str, args: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .arg("-s")
        .arg(url)
        .args(args)
        .env("RUST_LOG", "warn,timesync=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn timesync");
    let stderr = child.stderr.take();
    Proc { child, stderr }
}

impl Proc {
    /// Read stderr until a line contains `needle`; return that line (bounded by `wait`).
    /// The rest of stderr keeps being drained so the child never blocks.
    pub async fn wait_log(&mut self, needle: &str, wait: Duration) -> Option<String> {
        let stderr = self.stderr.take()?;
        let mut lines = BufReader::new(stderr).lines();
        let found = tokio::time::timeout(wait, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        found
    }

    pub fn drain(&mut self) {
        if let Some(stderr) = self.stderr.take() {
            let mut lines = BufReader::new(stderr).lines();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Start a source process and wait until it serves.
pub async fn source(url: &str, id: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["source", "--id", id];
    args.extend_from_slice(extra);
    let mut p = spawn(url, &args);
    p.wait_log("time source started", Duration::from_secs(15))
        .await
        .expect("source did not start");
    p
}

/// Start a follower process (status every 100 ms).
pub fn follower(url: &str, id: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["follow", "--id", id, "--status-ms", "100"];
    args.extend_from_slice(extra);
    let mut p = spawn(url, &args);
    p.drain();
    p
}

/// Subscription to one follower's status.
pub struct StatusWatch {
    sub: async_nats::Subscriber,
    _client: async_nats::Client,
}

impl StatusWatch {
    pub async fn new(url: &str, follower: &str) -> Self {
        let client = async_nats::connect(url).await.expect("connect");
        let sub = client
            .subscribe(wire::status_subject(follower))
            .await
            .expect("subscribe");
        Self {
            sub,
            _client: client,
        }
    }

    /// Next status, or None after 5 s of silence.
    pub async fn next(&mut self) -> Option<FollowerStatus> {
        let msg = tokio::time::timeout(Duration::from_secs(5), self.sub.next())
            .await
            .ok()??;
        serde_json::from_slice(&msg.payload).ok()
    }

    /// Wait until `pred` holds for `n` consecutive statuses; returns the last one.
    pub async fn until(
        &mut self,
        wait: Duration,
        n: usize,
        mut pred: impl FnMut(&FollowerStatus) -> bool,
    ) -> Result<FollowerStatus, String> {
        let end = Instant::now() + wait;
        let mut good = 0;
        let mut last = None;
        while Instant::now() < end {
            let Some(st) = self.next().await else {
                return Err("follower status went silent".into());
            };
            if pred(&st) {
                good += 1;
                if good >= n {
                    return Ok(st);
                }
            } else {
                good = 0;
            }
            last = Some(st);
        }
        Err(format!(
            "condition not reached within {wait:?}; last status: {last:?}"
        ))
    }
}

/// True error of a follower whose source serves this host's CLOCK_REALTIME shifted by
/// `source_offset_ns`.
pub fn error_ns(st: &FollowerStatus, source_offset_ns: i64) -> i64 {
    st.host_offset_ns - source_offset_ns
}

/// Run a CLI command to completion (bounded) and return stdout.
pub async fn cli(url: &str, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(BIN)
            .arg("-s")
            .arg(url)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("cli timed out")
    .expect("cli spawn");
    assert!(
        out.status.success(),
        "timesync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
