//! Shared helpers for the broker's integration tests: starting our broker and
//! the reference nats-server, raw protocol connections with bounded reads,
//! and INFO normalisation.
//!
//! Every wait here is bounded by a timeout; every listener is on 127.0.0.1.
#![allow(dead_code)]

pub mod go_client;
pub mod pki;
pub mod ports;
pub mod procs;
pub mod proto_fuzz;

#[allow(unused_imports)]
pub use ports::free_port;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use broker::options::Options;
use broker::server::ServerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound of any single wait for bytes from a server.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(3);

/// Options for our broker on a random loopback port.
pub fn local_opts() -> Options {
    Options {
        host: "127.0.0.1".to_string(),
        port: -1,
        ..Options::default()
    }
}

/// Starts our broker in-process.
pub async fn start_broker(opts: Options) -> ServerHandle {
    match tokio::time::timeout(STEP_TIMEOUT, broker::server::start(opts)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => panic!("broker failed to start: {e}"),
        Err(_) => panic!("broker did not start within {STEP_TIMEOUT:?}"),
    }
}

/// Where Debian's nats-server lives (`NATS_SERVER_BIN` overrides).
pub fn nats_server_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = vec![
        "/usr/sbin/nats-server".into(),
        "/usr/bin/nats-server".into(),
    ];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// [`nats_server_bin`] for tests that compare with it: absent, the test compares
/// nothing, except where the test command requires the peers
/// (`NATS_SCION_REQUIRE_PEERS`, set by scripts/test.sh), where that is a failure.
pub fn reference_nats_server() -> Option<PathBuf> {
    let found = nats_server_bin();
    assert!(
        found.is_some() || std::env::var_os("NATS_SCION_REQUIRE_PEERS").is_none(),
        "nats-server is required (apt-get install nats-server)"
    );
    found
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "broker-test-{tag}-{}-{n}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A nats-server child process, killed on drop.
pub struct RefServer {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl RefServer {
    /// Starts nats-server with `conf` (nats-server conf syntax; host and a
    /// random port are added here) and waits, bounded, until it listens.
    pub fn start(conf: &str) -> Result<RefServer, String> {
        let bin = nats_server_bin().ok_or_else(|| {
            "nats-server not found (looked at $NATS_SERVER_BIN, /usr/sbin, /usr/bin, $PATH); \
             install Debian's 2.9.10 with `apt-get install -y nats-server`"
                .to_string()
        })?;
        let dir = scratch_dir("ref");
        let conf_path = dir.join("ref.conf");
        let full = format!("host: 127.0.0.1\nport: -1\n{conf}\n");
        std::fs::write(&conf_path, full).map_err(|e| format!("write conf: {e}"))?;
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, rx) = mpsc::channel::<String>();
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut addr = None;
        let mut log = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "nats-server did not become ready; log:\n{}",
                        log.join("\n")
                    ));
                }
            };
            const KEY: &str = "Listening for client connections on ";
            if let Some(i) = line.find(KEY) {
                addr = line[i + KEY.len()..].trim().parse::<SocketAddr>().ok();
            }
            let ready = line.contains("Server is ready");
            log.push(line);
            if ready {
                break;
            }
        }
        let addr = addr.ok_or_else(|| format!("no listen line in log:\n{}", log.join("\n")))?;
        Ok(RefServer { child, addr, dir })
    }
}

impl Drop for RefServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET from a monitoring port over HTTP/1.0 (no chunking), body parsed as JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut s = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("monitor response in time")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    serde_json::from_slice(&raw[split + 4..]).expect("json body")
}

/// A raw protocol connection with a carry-over buffer.
pub struct Raw {
    pub stream: TcpStream,
    pub pending: Vec<u8>,
    pub eof: bool,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            pending: Vec::new(),
            eof: false,
        }
    }

    /// Reads once (bounded by `until`); false on EOF/error/timeout.
    async fn fill(&mut self, until: tokio::time::Instant) -> bool {
        if self.eof {
            return false;
        }
        let mut buf = [0u8; 16 * 1024];
        match tokio::time::timeout_at(until, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                false
            }
            Ok(Ok(n)) => {
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
            Err(_) => false,
        }
    }

    /// Reads the first line (the INFO).
    pub async fn read_line(&mut self) -> Vec<u8> {
        let until = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(p) = self.pending.windows(2).position(|w| w == b"\r\n") {
                return self.pending.drain(..p + 2).collect();
            }
            if !self.fill(until).await {
                return std::mem::take(&mut self.pending);
            }
        }
    }

    pub async fn send(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // The server may already have closed; the read side reports that.
        let _ = tokio::time::timeout(STEP_TIMEOUT, self.stream.write_all(data)).await;
    }

    /// Reads until `n` PONG lines arrived (and returns through the last of
    /// them), or EOF, or the bound.
    pub async fn read_pongs(&mut self, n: usize) -> Vec<u8> {
        let until = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(end) = nth_pong_end(&self.pending, n) {
                return self.pending.drain(..end).collect();
            }
            if !self.fill(until).await {
                return std::mem::take(&mut self.pending);
            }
        }
    }

    /// Reads until the server closes or the bound passes.
    pub async fn read_to_close(&mut self, bound: Duration) -> Vec<u8> {
        let until = tokio::time::Instant::now() + bound;
        while self.fill(until).await {}
        std::mem::take(&mut self.pending)
    }

    /// Reads until `pat` appears (returns through it) or EOF/bound.
    pub async fn read_until(&mut self, pat: &[u8]) -> Vec<u8> {
        let until = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(p) = self.pending.windows(pat.len()).position(|w| w == pat) {
                return self.pending.drain(..p + pat.len()).collect();
            }
            if !self.fill(until).await {
                return std::mem::take(&mut self.pending);
            }
        }
    }
}

/// End offset of the `n`-th `PONG\r\n` that starts a line.
pub fn nth_pong_end(buf: &[u8], n: usize) -> Option<usize> {
    if n == 0 {
        return Some(0);
    }
    let mut seen = 0;
    let mut line_start = 0;
    while line_start < buf.len() {
        let rest = &buf[line_start..];
        let nl = rest.iter().position(|&b| b == b'\n')?;
        if &rest[..nl + 1] == b"PONG\r\n" {
            seen += 1;
            if seen == n {
                return Some(line_start + nl + 1);
            }
        }
        line_start += nl + 1;
    }
    None
}

/// Number of lines in `script` that are PING operations.
pub fn count_pings(script: &[u8]) -> usize {
    script
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case(b"PING"))
        .count()
}

/// Whether the last line of `script` is a PING.
pub fn ends_with_ping(script: &[u8]) -> bool {
    let trimmed = script.strip_suffix(b"\n").unwrap_or(script);
    let last = match trimmed.iter().rposition(|&b| b == b'\n') {
        Some(p) => &trimmed[p + 1..],
        None => trimmed,
    };
    last.len() >= 4 && last[..4].eq_ignore_ascii_case(b"PING")
}

/// Fields of INFO that legitimately differ between two servers or runs.
pub const VOLATILE_INFO_FIELDS: &[&str] = &[
    "server_id",
    "server_name",
    "client_id",
    "port",
    "go",
    "version",
    "nonce",
];

/// Replaces the values of the volatile INFO fields with `*`, keeping the key
/// order and everything else byte for byte. Lines that are not INFO are
/// returned unchanged.
pub fn normalize_info(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"INFO ") {
            out.extend_from_slice(normalize_info_line(line).as_bytes());
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

fn normalize_info_line(line: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(line).into_owned();
    for field in VOLATILE_INFO_FIELDS {
        let key = format!("\"{field}\":");
        let Some(k) = s.find(&key) else { continue };
        let vstart = k + key.len();
        let bytes = s.as_bytes();
        let mut i = vstart;
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < bytes.len() && bytes[i] != b',' && bytes[i] != b'}' {
                i += 1;
            }
        }
        let i = i.min(s.len());
        s.replace_range(vstart..i, "\"*\"");
    }
    s
}

/// Printable form of protocol bytes for failure messages.
pub fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_normalisation_keeps_order() {
        let line = b"INFO {\"server_id\":\"NABC\",\"server_name\":\"x\",\"version\":\"2.9.10\",\"proto\":1,\"go\":\"go1.19\",\"host\":\"127.0.0.1\",\"port\":4222,\"client_id\":5} \r\n";
        assert_eq!(
            String::from_utf8(normalize_info(line)).unwrap(),
            "INFO {\"server_id\":\"*\",\"server_name\":\"*\",\"version\":\"*\",\"proto\":1,\"go\":\"*\",\"host\":\"127.0.0.1\",\"port\":\"*\",\"client_id\":\"*\"} \r\n"
        );
    }

    #[test]
    fn pong_counting() {
        assert_eq!(nth_pong_end(b"+OK\r\nPONG\r\nPONG\r\n", 2), Some(17));
        assert_eq!(nth_pong_end(b"+OK\r\nPON", 1), None);
        assert_eq!(count_pings(b"PING\r\nSUB a 1\r\nping x\r\n"), 2);
        assert!(ends_with_ping(b"SUB a 1\r\nPING\r\n"));
        assert!(!ends_with_ping(b"PING\r\nFOO\r\n"));
    }
}
