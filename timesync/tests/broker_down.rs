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
    let child = std::process::Command::new(BIN)
        .args(["-s", &dead_url(), "source", "--id", "s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(3500));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let sent = Instant::now();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(o) => o.expect("wait"),
        Err(_) => {
            // SAFETY: as above; the child ignored SIGTERM.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("the source ignored SIGTERM for 5 s");
        }
    };
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert!(out.status.success(), "exit status {:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not connected to NATS yet: still trying"),
        "stderr: {err}"
    );
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
