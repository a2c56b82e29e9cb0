//! nkey users (`authorization { users [ {nkey: U...} ] }`): the INFO nonce, the signed
//! CONNECT, refusals and their log lines, /connz, reload. The wire scenario runs against
//! our `broker` binary and Debian's nats-server 2.9.10 and both must answer alike; the
//! Rust (async-nats) and Go (nats.go) clients sign with a seed against our broker.

mod harness;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use data_encoding::{BASE64, BASE64URL_NOPAD};
use harness::free_port;
use harness::procs::{nats_available, read_until, start_on_conf, wait_file, BIN, NATS};
use nkeys::KeyPair;

/// What one raw client saw from INFO to the PONG (or the close) after its CONNECT.
struct Session {
    stream: TcpStream,
    nonce: String,
    reply: String,
}

/// Connects, reads INFO and its nonce, and sends the CONNECT `make_connect` writes
/// from that nonce, then PING; reads until PONG or an -ERR.
fn session(port: u16, make_connect: impl Fn(&str) -> String) -> Session {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let info = read_until(&mut stream, "\r\n");
    let json = info
        .strip_prefix("INFO ")
        .and_then(|l| l.split("\r\n").next())
        .unwrap_or_else(|| panic!("no INFO: {info:?}"));
    let info: serde_json::Value = serde_json::from_str(json.trim()).expect("INFO json");
    let nonce = info["nonce"].as_str().unwrap_or("").to_string();
    stream
        .write_all(format!("CONNECT {}\r\nPING\r\n", make_connect(&nonce)).as_bytes())
        .expect("write");
    let mut reply = read_until(&mut stream, "PONG");
    if reply.is_empty() {
        reply = "(closed)".into();
    }
    Session {
        stream,
        nonce,
        reply,
    }
}

fn nkey_connect(key: &str, sig: &str) -> String {
    format!(r#"{{"verbose":false,"pedantic":false,"nkey":"{key}","sig":"{sig}","name":"nk"}}"#)
}

fn sign(kp: &KeyPair, data: &[u8]) -> Vec<u8> {
    kp.sign(data).expect("sign")
}

/// Everything a scenario observed, to compare between the two servers.
#[derive(Debug, PartialEq)]
struct Seen {
    replies: Vec<(&'static str, String)>,
    /// /connz?auth=true `authorized_user` of the open connections, in cid order.
    authorized: Vec<String>,
    /// The same for the closed ones.
    closed_authorized: Vec<String>,
    /// What the nkey client saw after a reload that removed its key.
    after_reload: String,
}

/// The config after `listen` and `log_file`: monitoring and the users.
fn conf_rest(http: u16, users: &str) -> String {
    format!("http: 127.0.0.1:{http}\nauthorization {{ users = [\n{users}\n] }}\n")
}

fn connz(http: u16, state: &str) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", http)).expect("monitor");
    write!(
        s,
        "GET /connz?auth=true&state={state} HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let text = read_until(&mut s, "\u{0}");
    let body = &text[text.find("\r\n\r\n").expect("http body") + 4..];
    let v: serde_json::Value = serde_json::from_str(body).expect("connz json");
    v["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| c["authorized_user"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The scenario on `bin`; the checks common to both servers are made here, the
/// comparison by the caller.
fn scenario(bin: &str, good: &KeyPair, stranger: &KeyPair) -> (Seen, String) {
    let http = free_port();
    let pk = good.public_key();
    let users =
        format!("{{nkey: \"{pk}\", permissions: {{publish: \"ok.>\"}}}}\n{{user: a, password: b}}");
    let srv = start_on_conf(bin, "nkeys", &conf_rest(http, &users));
    let (port, log) = (srv.port, srv.log.clone());
    let mut replies = Vec::new();

    // The nonce signed with the configured key, in base64 URL without padding.
    let mut ok = session(port, |n| {
        nkey_connect(&pk, &BASE64URL_NOPAD.encode(&sign(good, n.as_bytes())))
    });
    assert_eq!(ok.nonce.len(), 15, "{bin}: nonce {:?}", ok.nonce);
    assert!(
        BASE64URL_NOPAD.decode(ok.nonce.as_bytes()).is_ok(),
        "{bin}: nonce {:?}",
        ok.nonce
    );
    replies.push(("signed", ok.reply.clone()));
    // The user's permissions hold.
    ok.stream
        .write_all(b"PUB no 1\r\nx\r\nPUB ok.1 1\r\ny\r\nPING\r\n")
        .unwrap();
    replies.push(("publish", read_until(&mut ok.stream, "PONG")));
    // Standard base64 (padded) is taken too.
    let std_b64 = session(port, |n| {
        nkey_connect(&pk, &BASE64.encode(&sign(good, n.as_bytes())))
    });
    assert_ne!(std_b64.nonce, ok.nonce, "{bin}: a fresh nonce per client");
    replies.push(("standard base64", std_b64.reply.clone()));
    // A signature over something else, no signature, a key not configured.
    let other = session(port, |_| {
        nkey_connect(&pk, &BASE64URL_NOPAD.encode(&sign(good, b"not the nonce")))
    });
    replies.push(("wrong nonce", other.reply));
    let unsigned = session(port, |_| {
        format!(r#"{{"verbose":false,"pedantic":false,"nkey":"{pk}"}}"#)
    });
    replies.push(("no sig", unsigned.reply));
    let spk = stranger.public_key();
    let strange = session(port, |n| {
        nkey_connect(&spk, &BASE64URL_NOPAD.encode(&sign(stranger, n.as_bytes())))
    });
    replies.push(("unknown nkey", strange.reply));
    // A password user beside the nkey users.
    let user = session(port, |_| {
        r#"{"verbose":false,"pedantic":false,"user":"a","pass":"b"}"#.to_string()
    });
    replies.push(("user", user.reply.clone()));

    let text = wait_file(&log, &format!("authentication error - Nkey \"{spk}\""), 0);
    // client.go getAuthUser names an nkey user by its key.
    assert!(
        text.contains(&format!(
            "Publish Violation - Nkey \"{pk}\", Subject \"no\""
        )),
        "{bin}: {text}"
    );
    assert!(
        text.contains(&format!("authentication error - Nkey \"{pk}\"")),
        "{bin}: {text}"
    );
    let authorized = connz(http, "open");
    let closed_authorized = connz(http, "closed");

    // A reload without the nkey user closes its clients; the password user stays.
    let rest = conf_rest(http, "{user: a, password: b}");
    std::fs::write(&srv.conf, format!("{}{rest}", srv.head)).unwrap();
    let mark = std::fs::metadata(&log).unwrap().len() as usize;
    srv.p.signal(libc::SIGHUP);
    let text = wait_file(&log, "Reloaded server configuration", mark);
    assert!(
        text[mark..].contains("Reloaded: authorization nkey users"),
        "{bin}: {}",
        &text[mark..]
    );
    // The server closes it without a word: EOF, not silence.
    ok.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 256];
    let after_reload = match std::io::Read::read(&mut ok.stream, &mut b) {
        Ok(0) => "(closed)".to_string(),
        Ok(n) => String::from_utf8_lossy(&b[..n]).into_owned(),
        Err(e) => format!("(no close: {e})"),
    };
    let mut user = user.stream;
    user.write_all(b"PING\r\n").unwrap();
    assert!(read_until(&mut user, "PONG").contains("PONG"), "{bin}");
    let log_text = srv.stop();
    (
        Seen {
            replies,
            authorized,
            closed_authorized,
            after_reload,
        },
        log_text,
    )
}

#[test]
fn nkey_users_answer_like_nats_server() {
    let good = KeyPair::new_user();
    let stranger = KeyPair::new_user();
    let (ours, log) = scenario(BIN, &good, &stranger);
    let pk = good.public_key();
    let violation = "-ERR 'Authorization Violation'\r\n";
    let expect: Vec<(&str, String)> = vec![
        ("signed", "PONG\r\n".into()),
        (
            "publish",
            "-ERR 'Permissions Violation for Publish to \"no\"'\r\nPONG\r\n".into(),
        ),
        ("standard base64", "PONG\r\n".into()),
        ("wrong nonce", violation.into()),
        ("no sig", violation.into()),
        ("unknown nkey", violation.into()),
        ("user", "PONG\r\n".into()),
    ];
    assert_eq!(ours.replies, expect, "{log}");
    // /connz names the nkey of an nkey user, the user name of a password user; a closed
    // connection keeps only a user name (none here).
    assert_eq!(ours.authorized, vec![pk.clone(), pk, "a".to_string()]);
    assert!(
        ours.closed_authorized.iter().all(String::is_empty),
        "{:?}",
        ours.closed_authorized
    );
    assert_eq!(ours.after_reload, "(closed)");
    if nats_available() {
        let (theirs, their_log) = scenario(NATS, &good, &stranger);
        assert_eq!(ours, theirs, "nats-server log:\n{their_log}");
    }
}

/// Configured nkey users, permissions from `default_permissions`.
fn nkey_conf(pk: &str) -> String {
    format!(
        "authorization {{ default_permissions: {{ subscribe: \"in.>\", publish: \"in.>\" }}\n\
         users = [ {{nkey: \"{pk}\"}} ] }}\n"
    )
}

#[tokio::test]
async fn async_nats_and_nats_go_sign_with_a_seed() {
    let good = KeyPair::new_user();
    let text = nkey_conf(&good.public_key());
    let loaded = broker::config::load_str(&text).expect("config");
    let mut opts = loaded.options;
    opts.host = "127.0.0.1".into();
    opts.port = -1;
    let h = harness::start_broker(opts).await;
    let url = format!("nats://{}", h.client_addr);
    let seed = good.seed().expect("seed");

    let nc = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::with_nkey(seed.clone()).connect(&url),
    )
    .await
    .expect("in time")
    .expect("async-nats connects with the nkey");
    let mut sub = nc.subscribe("in.x").await.expect("subscribe");
    nc.publish("in.x", "hello".into()).await.expect("publish");
    let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub))
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(&msg.payload[..], b"hello");

    // Another user's seed is refused.
    let other = KeyPair::new_user().seed().expect("seed");
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::with_nkey(other).connect(&url),
    )
    .await
    .expect("in time");
    assert!(refused.is_err(), "a stranger's seed got in");

    if let Some(go) = harness::go_client::go_client() {
        let dir = harness::scratch_dir("nkeys-go");
        let seed_file = dir.join("user.nk");
        std::fs::write(&seed_file, format!("{seed}\n")).unwrap();
        let seed_arg = seed_file.display().to_string();
        let args = [
            "-s", &url, "-n", "200", "-ms", "64", "-subj", "in.go", "-nkey", &seed_arg,
        ]
        .map(String::from);
        harness::go_client::expect_go_client(&go, &args, &[], 200, "Go client with an nkey").await;
        let _ = std::fs::remove_dir_all(dir);
    }
    h.shutdown().await;
}
