//! Start Debian's `nats-server` on a random loopback port for tests and benchmarks.

use std::process::Stdio;
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, Error)]
pub enum NatsdError {
    #[error("cannot start {bin}: {err} (install Debian's nats-server package)")]
    Spawn { bin: String, err: std::io::Error },
    #[error("nats-server did not report its client port within 10 s")]
    NoPort,
}

/// A nats-server child process, killed on drop.
pub struct Natsd {
    child: Child,
    port: u16,
}

/// The server binary: `$NATS_SERVER_BIN` or `nats-server` on PATH.
pub fn server_bin() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into())
}

impl Natsd {
    /// `-p -1` asks nats-server for a random port (server/const.go `RANDOM_PORT`); we read
    /// the port back from its "Listening for client connections on" log line.
    pub async fn start() -> Result<Self, NatsdError> {
        let bin = server_bin();
        let mut child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", "-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| NatsdError::Spawn { bin, err })?;
        let Some(stderr) = child.stderr.take() else {
            return Err(NatsdError::NoPort);
        };
        let mut lines = BufReader::new(stderr).lines();
        let port = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                    return rest.rsplit(':').next().and_then(|p| p.trim().parse().ok());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or(NatsdError::NoPort)?;
        // Keep draining the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stop the server now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
