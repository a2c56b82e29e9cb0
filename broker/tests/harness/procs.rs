//! Child processes of the operator-level tests: our `broker` binary and Debian's
//! nats-server run side by side on the same scenario, with bounded waits on their log
//! files and sockets.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::free_port;

pub const BIN: &str = env!("CARGO_BIN_EXE_broker");
pub const NATS: &str = "/usr/sbin/nats-server";

pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn spawn(bin: &str, args: &[&str]) -> Proc {
        Self::spawn_env(bin, args, &[])
    }

    /// [`spawn`](Self::spawn) with environment variables `env` (name, value) added.
    pub fn spawn_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        Proc { child }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st.code();
            }
            assert!(Instant::now() < deadline, "process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn nats_available() -> bool {
    Path::new(NATS).exists()
}

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("broker-ops-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits (bounded) until the file at `path` has `needle` after byte
/// `from`; returns the whole text.
pub fn wait_file(path: &Path, needle: &str, from: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.get(from..).is_some_and(|t| t.contains(needle)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {} after byte {from}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads from `s` (bounded) until the received text contains `needle`.
pub fn read_until(s: &mut TcpStream, needle: &str) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&got).contains(needle) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A server started by [`start_on_conf`]: its folder, config and log files, client port,
/// the config's first lines (listen and log_file, to write a changed config after) and
/// the process.
pub struct Started {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    pub head: String,
    pub p: Proc,
}

impl Started {
    /// SIGINT, a bounded wait for the exit, the folder removed; returns the log.
    pub fn stop(mut self) -> String {
        self.p.signal(libc::SIGINT);
        self.p.wait_exit();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&self.dir);
        log
    }
}

/// Starts `bin` on a config of `listen` (a free loopback port), `log_file` and `rest`, and
/// waits (bounded) until it is ready.
pub fn start_on_conf(bin: &str, tag: &str, rest: &str) -> Started {
    start_on_conf_with(bin, tag, rest, &[])
}

/// [`start_on_conf`] with more command-line flags (e.g. `-DV`).
pub fn start_on_conf_with(bin: &str, tag: &str, rest: &str, flags: &[&str]) -> Started {
    let dir = tmpdir(&format!("{tag}-{}", bin.len()));
    let conf = dir.join("s.conf");
    let log = dir.join("s.log");
    let port = free_port();
    let head = format!(
        "listen: 127.0.0.1:{port}\nlog_file: \"{}\"\n",
        log.display()
    );
    std::fs::write(&conf, format!("{head}{rest}")).unwrap();
    let mut args = vec!["-c", conf.to_str().unwrap()];
    args.extend_from_slice(flags);
    let p = Proc::spawn(bin, &args);
    wait_file(&log, "Server is ready", 0);
    Started {
        dir,
        conf,
        log,
        port,
        head,
        p,
    }
}
