//! No NATS server at the given address: the source keeps trying and says so, yet ends on
//! SIGTERM (it used to wait in its first subscribe and ignore the signal); a follower with
//! nothing to discover says that it is not connected instead of "no sources".

use std::process::Stdio;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_timesync");

/// A loopback port nothing listens on (bound, then released).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("nats://127.0.0.1:{port}")
}

#[test]
fn source_without_a_broker_warns_and_ends_on_sigterm() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(BIN)
        .args(["-s", &dead_url(), "source", "--id", "s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // Bounded wait for the warning (it comes 3 s after start).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("not connected to NATS yet: still trying"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("no 'not connected' warning in 20 s: {seen:#?}");
            }
        }
    }
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let sent = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the source ignored SIGTERM for 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn follower_without_a_broker_says_it_is_not_connected() {
    let url = dead_url();
    let out = std::process::Command::new(BIN)
        .args(["-s", &url, "follow", "--id", "f", "--discover-ms", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("not connected to NATS at {url}")),
        "stderr: {err}"
    );
}
