//! Commands split across reads: a script of many operations is fed to a live
//! connection in every possible 2-way split and in random 3-way splits (fixed
//! seed); each run must produce exactly the replies of the unsplit run.
//!
//! The client sets TCP_NODELAY and pauses briefly between parts so that the
//! broker sees each part in its own read.

mod harness;

use std::time::Duration;

use harness::{count_pings, local_opts, show, start_broker, Raw};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Pause between parts: long enough for the broker to read the first part
/// on its own on loopback, short enough for hundreds of runs.
const GAP: Duration = Duration::from_millis(2);

fn script() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"CONNECT {\"verbose\":true,\"pedantic\":true,\"headers\":true,\"no_responders\":true,\"name\":\"split\"}\r\n");
    s.extend_from_slice(b"SUB foo 1\r\nsub\tbar.*\tq\t2\r\nSUB _INBOX.me 3\r\n");
    s.extend_from_slice(b"PUB foo 5\r\nhello\r\n");
    s.extend_from_slice(b"pub bar.x _INBOX.me 4\r\na\r\nb\r\n");
    s.extend_from_slice(b"HPUB foo r 22 27\r\nNATS/1.0\r\nA: bcdef\r\n\r\nhello\r\n");
    s.extend_from_slice(b"PUB nobody _INBOX.me 0\r\n\r\n");
    s.extend_from_slice(b"UNSUB 1 1\r\nPUB foo 1\r\nx\r\nPUB foo 1\r\ny\r\n");
    s.extend_from_slice(b"PING junk\r\n+OK\r\nPONG\r\n");
    s.extend_from_slice(b"PUB foo.* 1\r\nz\r\nSUB bad..subject 9\r\n");
    s.extend_from_slice(b"UNSUB 2\r\nPUB bar.y 1\r\nw\r\nPING\r\n");
    s
}

async fn run_parts(addr: std::net::SocketAddr, parts: &[&[u8]], pings: usize) -> Vec<u8> {
    let mut raw = Raw::connect(addr).await;
    let info = raw.read_line().await;
    assert!(info.starts_with(b"INFO "), "no INFO: {}", show(&info));
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(GAP).await;
        }
        raw.send(p).await;
    }
    let reply = raw.read_pongs(pings).await;
    assert!(!raw.eof, "connection closed; got {}", show(&reply));
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_split_gives_the_same_replies() {
    let srv = start_broker(local_opts()).await;
    let addr = srv.client_addr;
    let script = script();
    let pings = count_pings(&script);
    let whole = run_parts(addr, &[&script], pings).await;
    // Sanity: the script exercises deliveries, +OK, errors and the 503.
    let text = String::from_utf8_lossy(&whole);
    for needle in [
        "+OK\r\n",
        "MSG foo 1 5\r\nhello\r\n",
        "HMSG foo 1 r 22 27\r\n",
        "NATS/1.0 503",
        "-ERR 'Invalid Subject'",
        "-ERR 'Invalid Publish Subject'",
        "MSG bar.x 2 _INBOX.me 4\r\na\r\nb\r\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }

    // Runs go one after another: concurrent runs on the same subjects
    // would see each other's messages.
    let mut failures = Vec::new();
    for cut in 1..script.len() {
        let got = run_parts(addr, &[&script[..cut], &script[cut..]], pings).await;
        if got != whole {
            failures.push(format!("cut {cut}:\n{}", show(&got)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} splits differ from the unsplit run\nunsplit:\n{}\n{}",
        failures.len(),
        show(&whole),
        failures.join("\n")
    );

    // Random 3-way splits with a fixed seed.
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let cuts: Vec<(usize, usize)> = (0..300)
        .map(|_| {
            let a = rng.random_range(1..script.len() - 1);
            let b = rng.random_range(a + 1..script.len());
            (a, b)
        })
        .collect();
    let mut failures = Vec::new();
    for (a, b) in cuts {
        let parts = [&script[..a], &script[a..b], &script[b..]];
        let got = run_parts(addr, &parts, pings).await;
        if got != whole {
            failures.push(format!("cuts {a},{b}:\n{}", show(&got)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} 3-way splits differ\n{}",
        failures.len(),
        failures.join("\n")
    );
    srv.shutdown().await;
}

/// Byte-at-a-time feed of a shorter script: the worst case for a parser
/// that must resume mid-token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_at_a_time() {
    let srv = start_broker(local_opts()).await;
    let script: &[u8] = b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB a.> 1\r\nHPUB a.b rr 12 15\r\nNATS/1.0\r\n\r\nabc\r\nPUB a.c 2\r\nhi\r\nPING\r\n";
    let whole = run_parts(srv.client_addr, &[script], 1).await;
    let bytes: Vec<&[u8]> = script.chunks(1).collect();
    let got = run_parts(srv.client_addr, &bytes, 1).await;
    assert_eq!(show(&got), show(&whole));
    assert_eq!(
        show(&whole),
        show(b"HMSG a.b 1 rr 12 15\r\nNATS/1.0\r\n\r\nabc\r\nMSG a.c 1 2\r\nhi\r\nPONG\r\n")
    );
    srv.shutdown().await;
}
