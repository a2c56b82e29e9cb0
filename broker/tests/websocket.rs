//! The websocket client port (`websocket { ... }`, nats-server websocket.go): the HTTP
//! upgrade, NATS in frames, control frames, close statuses and refusals, side by side with
//! Debian's nats-server 2.9.10 on the same raw exchange; then the Rust (async-nats) and Go
//! (nats.go) clients over `ws://`, and the Go client over `wss://`.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::free_port;
use harness::procs::{nats_available, start_on_conf, tmpdir, wait_file, Proc, BIN, NATS};

/// The RFC 6455 example key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_request(port: u16, extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// GET `path` from the monitoring port over HTTP/1.0; the body as JSON.
fn http_json(port: u16, path: &str) -> serde_json::Value {
    let mut h = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(h, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    h.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = h.read_to_string(&mut body);
    let at = body.find("\r\n\r\n").expect("an HTTP reply") + 4;
    serde_json::from_str(&body[at..]).expect("JSON")
}

/// Reads until the end of an HTTP response head; returns the head.
fn read_head(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => got.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A client frame: masked with a fixed key unless `masked` is false.
fn frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let key = [0x11u8, 0x22, 0x33, 0x44];
    let mut f = vec![b0];
    let m = if masked { 0x80 } else { 0 };
    if payload.len() <= 125 {
        f.push(m | payload.len() as u8);
    } else {
        f.push(m | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if masked {
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// Reads one server frame: (first byte, payload); None on EOF or timeout.
fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7F {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).ok()?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).ok()?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).ok()?;
    Some((h[0], p))
}

/// What comes next on `s`: "EOF" when the server closed, "silent" when nothing came in 5 s,
/// else the bytes.
fn read_eof(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => "EOF".into(),
        Ok(n) => format!("{:?}", &b[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "EOF".into(),
        Err(_) => "silent".into(),
    }
}

/// Every byte until the server closes (bounded: 5 s, 4 KB), then how it ended: `EOF` alone,
/// or the bytes followed by ` EOF` (or ` silent` if it never closed).
fn read_to_eof(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    let end = loop {
        match s.read(&mut b) {
            Ok(0) => break "EOF",
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "EOF",
            Err(_) => break "silent",
        }
        if got.len() > 4096 {
            break "more";
        }
    };
    if got.is_empty() {
        end.into()
    } else {
        format!("{got:?} {end}")
    }
}

/// Binary frames' payloads until the text holds `needle` (bounded).
fn read_text_until(s: &mut TcpStream, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = String::new();
    while !text.contains(needle) && Instant::now() < deadline {
        match read_frame(s) {
            Some((0x82, p)) => text.push_str(&String::from_utf8_lossy(&p)),
            Some((b0, p)) => text.push_str(&format!("<frame {b0:#x} {p:?}>")),
            None => break,
        }
    }
    text
}

/// An upgraded connection, its INFO read.
fn ws_client(port: u16) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(upgrade_request(port, "").as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let info = read_text_until(&mut s, "\r\n");
    (s, info)
}

#[derive(Debug, PartialEq)]
struct Seen {
    upgrade: String,
    info: String,
    exchange: Vec<String>,
    refusals: Vec<String>,
    connz_type: String,
    varz_websocket: String,
}

fn scenario(bin: &str) -> (Seen, String) {
    let (ws, http) = (free_port(), free_port());
    let srv = start_on_conf(
        bin,
        "ws",
        &format!(
            "http: 127.0.0.1:{http}\n\
             authorization {{ users = [ {{user: a, password: b}}\n\
             {{user: s, password: s, allowed_connection_types: [\"STANDARD\"]}} ] }}\n\
             websocket {{ listen: \"127.0.0.1:{ws}\", no_tls: true }}\n"
        ),
    );
    let log = srv.log.clone();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!(
            "Listening for websocket clients on ws://127.0.0.1:{ws}"
        )),
        "{bin}: {text}"
    );
    assert!(
        text.contains("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!"),
        "{bin}: {text}"
    );

    let mut s = TcpStream::connect(("127.0.0.1", ws)).expect("connect");
    s.write_all(upgrade_request(ws, "").as_bytes()).unwrap();
    let upgrade = read_head(&mut s);
    let info = read_text_until(&mut s, "\r\n");
    let info = String::from_utf8(harness::normalize_info(info.as_bytes())).unwrap();
    let mut exchange = Vec::new();
    // CONNECT and PING in one masked binary frame.
    s.write_all(&frame(
        0x82,
        b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"b\"}\r\nPING\r\n",
        true,
    ))
    .unwrap();
    exchange.push(read_text_until(&mut s, "PONG\r\n"));
    // A message in two fragments (text, then continuation), cut inside a protocol line.
    s.write_all(&frame(0x01, b"SUB a 1\r\nPUB a 2\r", true))
        .unwrap();
    s.write_all(&frame(0x80, b"\nhi\r\nPING\r\n", true))
        .unwrap();
    exchange.push(read_text_until(&mut s, "PONG\r\n"));
    // A PING frame gets a PONG frame with the same payload.
    s.write_all(&frame(0x89, b"hey", true)).unwrap();
    exchange.push(format!("{:?}", read_frame(&mut s)));
    // A CLOSE frame is answered with the same status, then the connection ends. A message
    // and PONG owed from the same write go out before it.
    let mut both = frame(0x82, b"PUB a 2\r\nyo\r\nPING\r\n", true);
    both.extend(frame(0x88, &1000u16.to_be_bytes(), true));
    s.write_all(&both).unwrap();
    exchange.push(read_text_until(&mut s, "PONG\r\n"));
    exchange.push(format!("{:?}", read_frame(&mut s)));
    exchange.push(read_eof(&mut s));

    // A refused CONNECT: -ERR, then CLOSE 1008 with nats-server's reason text.
    let (mut bad, _) = ws_client(ws);
    bad.write_all(&frame(
        0x82,
        b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"x\"}\r\nPING\r\n",
        true,
    ))
    .unwrap();
    exchange.push(read_text_until(&mut bad, "<frame"));
    // A user whose connection types leave out WEBSOCKET is refused on this port.
    let (mut std_only, _) = ws_client(ws);
    std_only
        .write_all(&frame(
            0x82,
            b"CONNECT {\"verbose\":false,\"user\":\"s\",\"pass\":\"s\"}\r\nPING\r\n",
            true,
        ))
        .unwrap();
    exchange.push(read_text_until(&mut std_only, "<frame"));

    // Upgrade refusals: the status line (the rest carries a date).
    let mut refusals = Vec::new();
    for req in [
        upgrade_request(ws, "").replace("Sec-WebSocket-Key", "X-No-Key"),
        upgrade_request(ws, "").replace("Version: 13", "Version: 8"),
        upgrade_request(ws, "").replace("GET /", "POST /"),
        upgrade_request(ws, "").replace("Upgrade: websocket", "Upgrade: h2c"),
    ] {
        let mut r = TcpStream::connect(("127.0.0.1", ws)).expect("connect");
        r.write_all(req.as_bytes()).unwrap();
        let head = read_head(&mut r);
        refusals.push(head.lines().next().unwrap_or("").to_string());
    }
    let text = wait_file(&log, "invalid value for header 'Upgrade'", 0);
    for reason in [
        "key missing",
        "invalid version",
        "request method must be GET",
    ] {
        assert!(
            text.contains(&format!("websocket handshake error: {reason}")),
            "{bin}: {text}"
        );
    }
    // An unmasked client frame is a protocol error, logged as a read error.
    let (mut raw, _) = ws_client(ws);
    raw.write_all(&frame(0x82, b"PING\r\n", false)).unwrap();
    exchange.push(read_to_eof(&mut raw));
    let text = wait_file(&log, "read error: mask bit missing", 0);
    assert!(text.contains(" - wid:"), "{bin}: {text}");

    // /connz: an open websocket client has type "websocket".
    let (_open, _) = ws_client(ws);
    let json = http_json(http, "/connz");
    let connz_type = json["connections"][0]["type"]
        .as_str()
        .unwrap_or("")
        .to_string();
    // /varz: the websocket section.
    let json = http_json(http, "/varz");
    // The port is this run's; it must be the one listening.
    let mut varz = json["websocket"].clone();
    assert_eq!(varz["port"], ws, "{bin}: {varz}");
    varz["port"] = "*".into();
    let varz_websocket = varz.to_string();
    let log_text = srv.stop();
    (
        Seen {
            upgrade,
            info,
            exchange,
            refusals,
            connz_type,
            varz_websocket,
        },
        log_text,
    )
}

#[test]
fn websocket_port_answers_like_nats_server() {
    let (ours, log) = scenario(BIN);
    assert_eq!(
        ours.upgrade,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "{log}"
    );
    assert!(ours.info.starts_with("INFO {"), "{}", ours.info);
    assert_eq!(ours.exchange[0], "PONG\r\n", "{log}");
    assert_eq!(ours.exchange[1], "MSG a 1 2\r\nhi\r\nPONG\r\n", "{log}");
    assert_eq!(ours.exchange[2], "Some((138, [104, 101, 121]))");
    assert_eq!(ours.exchange[3], "MSG a 1 2\r\nyo\r\nPONG\r\n");
    assert_eq!(ours.exchange[4], "Some((136, [3, 232]))");
    assert_eq!(ours.exchange[5], "EOF");
    assert_eq!(
        ours.exchange[6],
        "-ERR 'Authorization Violation'\r\n<frame 0x88 [3, 240, 65, 117, 116, 104, 101, 110, 116, 105, 99, 97, 116, 105, 111, 110, 32, 70, 97, 105, 108, 117, 114, 101]>"
    );
    assert_eq!(ours.exchange[7], ours.exchange[6]);
    // A framing error: a CLOSE 1002 with the reason (websocket.go wsHandleProtocolError),
    // then the connection ends.
    let mut close = vec![0x88u8, 18, 0x03, 0xea];
    close.extend_from_slice(b"mask bit missing");
    let close_then_eof = format!("{close:?} EOF");
    assert_eq!(ours.exchange[8], close_then_eof);
    assert_eq!(
        ours.refusals,
        vec![
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 405 Method Not Allowed",
            "HTTP/1.1 400 Bad Request",
        ]
    );
    assert_eq!(ours.connz_type, "websocket");
    assert!(
        ours.varz_websocket.contains("\"no_tls\":true"),
        "{}",
        ours.varz_websocket
    );
    if nats_available() {
        let (mut theirs, their_log) = scenario(NATS);
        // nats-server queues the same CLOSE 1002 but closes the connection at once:
        // whether the frame is flushed first is a race there (mostly it is not). Either
        // outcome of that race counts as ours.
        if theirs.exchange.get(8).map(String::as_str) == Some("EOF") {
            theirs.exchange[8] = close_then_eof;
        }
        assert_eq!(ours, theirs, "nats-server log:\n{their_log}");
    }
}

#[tokio::test]
async fn async_nats_and_nats_go_over_ws_and_wss() {
    let dir = harness::scratch_dir("ws-clients");
    let ca = harness::pki::TestCa::new("ws");
    let ca_file = ca.write(&dir, "ca.pem");
    let (cert, key) = ca.issue(&dir, "ws", &["127.0.0.1", "localhost"]);
    let conf = "websocket { listen: \"127.0.0.1:-1\", no_tls: true }\n";
    let mut opts = broker::config::load_str(conf).expect("config").options;
    opts.host = "127.0.0.1".into();
    opts.port = -1;
    let h = harness::start_broker(opts).await;
    let ws = h.state.ws_addr.lock().unwrap().expect("websocket port");
    let url = format!("ws://{ws}");
    let nc = tokio::time::timeout(Duration::from_secs(5), async_nats::connect(&url))
        .await
        .expect("in time")
        .expect("async-nats over ws://");
    let mut sub = nc.subscribe("ws.x").await.expect("subscribe");
    let big = vec![7u8; 100_000];
    nc.publish("ws.x", big.clone().into())
        .await
        .expect("publish");
    let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub))
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(&msg.payload[..], &big[..]);

    if let Some(go) = harness::go_client::go_client() {
        let args = ["-s", &url, "-n", "500", "-ms", "2000", "-subj", "ws.go"].map(String::from);
        harness::go_client::expect_go_client(&go, &args, &[], 500, "Go client over ws://").await;
    }
    h.shutdown().await;

    // wss: the websocket port's own certificate.
    let conf = format!(
        "websocket {{ listen: \"127.0.0.1:-1\", tls {{ cert_file: \"{}\", key_file: \"{}\" }} }}\n",
        cert.display(),
        key.display()
    );
    let mut opts = broker::config::load_str(&conf).expect("config").options;
    opts.host = "127.0.0.1".into();
    opts.port = -1;
    let h = harness::start_broker(opts).await;
    let ws = h.state.ws_addr.lock().unwrap().expect("websocket port");
    if let Some(go) = harness::go_client::go_client() {
        let url = format!("wss://localhost:{}", ws.port());
        let args = ["-s", &url, "-n", "300", "-ms", "512"].map(String::from);
        let env = [("SSL_CERT_FILE", ca_file.as_path())];
        harness::go_client::expect_go_client(&go, &args, &env, 300, "Go client over wss://").await;
    }
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Two servers in a cluster, each with a websocket port: a websocket client of either is
/// told both websocket URLs (route INFO `ws_connect_urls`, client.go
/// generateClientInfoJSON), with nats-server as the other member, both ways.
#[test]
fn websocket_urls_cross_a_mixed_cluster() {
    if !nats_available() {
        return;
    }
    let dir = tmpdir("ws-cluster");
    let (ours_ws, theirs_ws) = (free_port(), free_port());
    let (ours_route, theirs_route) = (free_port(), free_port());
    let conf = |name: &str, ws: u16, route: u16, peer: u16| {
        let log = dir.join(format!("{name}.log"));
        let text = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{}\nlog_file: \"{}\"\n\
             websocket {{ listen: \"127.0.0.1:{ws}\", no_tls: true }}\n\
             cluster {{ name: c, listen: 127.0.0.1:{route}, routes: [\"nats-route://127.0.0.1:{peer}\"] }}\n",
            free_port(),
            log.display()
        );
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, text).unwrap();
        (path, log)
    };
    let (ours_conf, ours_log) = conf("ours", ours_ws, ours_route, theirs_route);
    let (theirs_conf, theirs_log) = conf("theirs", theirs_ws, theirs_route, ours_route);
    let _a = Proc::spawn(BIN, &["-c", ours_conf.to_str().unwrap()]);
    let _b = Proc::spawn(NATS, &["-c", theirs_conf.to_str().unwrap()]);
    wait_file(&ours_log, "Route connection created", 0);
    wait_file(&theirs_log, "Route connection created", 0);
    let want = [
        format!("127.0.0.1:{ours_ws}"),
        format!("127.0.0.1:{theirs_ws}"),
    ];
    for (ws, own, other) in [
        (ours_ws, &want[0], &want[1]),
        (theirs_ws, &want[1], &want[0]),
    ] {
        // The route may still be settling: a few fresh clients, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        let urls = loop {
            let (_s, info) = ws_client(ws);
            let json: serde_json::Value =
                serde_json::from_str(info.trim_start_matches("INFO ").trim()).expect("INFO");
            let urls: Vec<String> = json["connect_urls"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if urls.len() == 2 || Instant::now() > deadline {
                break urls;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(urls, vec![own.clone(), other.clone()], "port {ws}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Test side of per-message deflate (RFC 7692): raw deflate, sync flush, no trailer.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.flush().unwrap();
    let mut out = std::mem::take(e.get_mut());
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff]);
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(&input[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Frames until the text holds `needle`, compressed ones inflated; each frame's text is
/// prefixed with `z:` when it came compressed.
fn read_inflating_until(s: &mut TcpStream, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = String::new();
    while !text.contains(needle) && Instant::now() < deadline {
        match read_frame(s) {
            Some((0xC2, p)) => {
                text.push_str("z:");
                text.push_str(&String::from_utf8_lossy(&inflate(&p)));
            }
            Some((0x82, p)) => text.push_str(&String::from_utf8_lossy(&p)),
            Some((b0, p)) => text.push_str(&format!("<frame {b0:#x} {p:?}>")),
            None => break,
        }
    }
    text
}

fn compression_scenario(bin: &str) -> (String, String, String) {
    let ws = free_port();
    let srv = start_on_conf(
        bin,
        "ws-deflate",
        &format!("websocket {{ listen: \"127.0.0.1:{ws}\", no_tls: true, compression: true }}\n"),
    );
    let mut s = TcpStream::connect(("127.0.0.1", ws)).expect("connect");
    s.write_all(
        upgrade_request(
            ws,
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        )
        .as_bytes(),
    )
    .unwrap();
    let head = read_head(&mut s);
    let info = read_inflating_until(&mut s, "\r\n");
    let (z, raw) = match info.strip_prefix("z:") {
        Some(rest) => ("z:", rest),
        None => ("", info.as_str()),
    };
    let info = z.to_string() + &String::from_utf8(harness::normalize_info(raw.as_bytes())).unwrap();
    // A compressed message, then one compressed message in two frames, then a small
    // uncompressed one; the big MSG comes back compressed, PONG (small) not.
    let big = "x".repeat(1000);
    let first = format!("CONNECT {{\"verbose\":false}}\r\nSUB big 1\r\nPUB big 1000\r\n{big}\r\n");
    s.write_all(&frame(0xC2, &deflate(first.as_bytes()), true))
        .unwrap();
    let second = deflate(format!("PUB big 1000\r\n{big}\r\n").as_bytes());
    let (a, b) = second.split_at(second.len() / 2);
    s.write_all(&frame(0x42, a, true)).unwrap();
    s.write_all(&frame(0x80, b, true)).unwrap();
    s.write_all(&frame(0x82, b"PING\r\n", true)).unwrap();
    let exchange = read_inflating_until(&mut s, "PONG\r\n");
    srv.stop();
    (head, info, exchange)
}

#[test]
fn websocket_compression_like_nats_server() {
    let (head, info, exchange) = compression_scenario(BIN);
    assert!(
        head.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ),
        "{head}"
    );
    assert!(info.starts_with("z:INFO {"), "{info}");
    let big = "x".repeat(1000);
    let msg = format!("MSG big 1 1000\r\n{big}\r\n");
    assert_eq!(exchange.matches(&msg).count(), 2, "{exchange}");
    assert!(exchange.starts_with("z:MSG big"), "{exchange}");
    assert!(exchange.ends_with("PONG\r\n"), "{exchange}");
    if nats_available() {
        let theirs = compression_scenario(NATS);
        assert_eq!(theirs.0, head);
        assert_eq!(theirs.1, info);
        // Both deliver both messages and the PONG; how pending bytes are cut into
        // frames depends on timing.
        assert_eq!(theirs.2.matches(&msg).count(), 2, "{}", theirs.2);
        assert!(theirs.2.ends_with("PONG\r\n"), "{}", theirs.2);
    }
}

/// `websocket { authorization { token } }` on a server without auth: websocket clients
/// must give the token, TCP clients nothing (auth.go processClientOrLeafAuthentication,
/// the websocket override).
fn ws_auth_scenario(bin: &str) -> Vec<String> {
    let (ws, http) = (free_port(), free_port());
    let srv = start_on_conf(
        bin,
        "ws-auth",
        &format!(
            "http: 127.0.0.1:{http}\n\
             websocket {{ listen: \"127.0.0.1:{ws}\", no_tls: true,\n\
             authorization {{ token: \"s3cr3t\", timeout: 3 }} }}\n"
        ),
    );
    let port = srv.port;
    let mut seen = Vec::new();
    // TCP: no credentials needed.
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let info = harness::procs::read_until(&mut tcp, "\r\n");
    seen.push(String::from_utf8(harness::normalize_info(info.as_bytes())).unwrap());
    tcp.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .unwrap();
    seen.push(harness::procs::read_until(&mut tcp, "PONG"));
    // Websocket: the token.
    for token in ["s3cr3t", "wrong"] {
        let (mut s, info) = ws_client(ws);
        seen.push(String::from_utf8(harness::normalize_info(info.as_bytes())).unwrap());
        let connect =
            format!("CONNECT {{\"verbose\":false,\"auth_token\":\"{token}\"}}\r\nPING\r\n");
        s.write_all(&frame(0x82, connect.as_bytes(), true)).unwrap();
        seen.push(read_text_until(
            &mut s,
            if token == "wrong" { "<frame" } else { "PONG" },
        ));
    }
    let json = http_json(http, "/varz");
    let mut varz = json["websocket"].clone();
    varz["port"] = "*".into();
    seen.push(varz.to_string());
    srv.stop();
    seen
}

#[test]
fn websocket_authorization_overrides_like_nats_server() {
    let ours = ws_auth_scenario(BIN);
    assert!(!ours[0].contains("auth_required"), "{}", ours[0]);
    assert_eq!(ours[1], "PONG\r\n");
    assert!(ours[2].contains("\"auth_required\":true"), "{}", ours[2]);
    assert_eq!(ours[3], "PONG\r\n");
    assert!(
        ours[5].starts_with("-ERR 'Authorization Violation'\r\n<frame 0x88"),
        "{}",
        ours[5]
    );
    assert!(ours[6].contains("\"auth_timeout\":3"), "{}", ours[6]);
    if nats_available() {
        assert_eq!(ws_auth_scenario(NATS), ours);
    }
}

/// `n` letters from a fixed pseudo-random sequence (deflate cannot shrink them much).
fn noise(n: usize) -> String {
    let mut x: u32 = 0x2545_f491;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            char::from(b'A' + (x % 58) as u8).to_ascii_lowercase()
        })
        .collect()
}

/// Frames (first byte, length) and the text they carry (compressed ones inflated) until
/// the text holds `needle`.
fn read_frames_until(s: &mut TcpStream, needle: &str) -> (Vec<(u8, usize)>, String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut frames, mut text, mut deflated) = (Vec::new(), String::new(), Vec::new());
    while !text.contains(needle) && Instant::now() < deadline {
        let Some((b0, p)) = read_frame(s) else { break };
        frames.push((b0, p.len()));
        match b0 {
            0x82 => text.push_str(&String::from_utf8_lossy(&p)),
            0xC2 => text.push_str(&String::from_utf8_lossy(&inflate(&p))),
            0x42 | 0x00 => deflated.extend_from_slice(&p),
            0x80 => {
                deflated.extend_from_slice(&p);
                text.push_str(&String::from_utf8_lossy(&inflate(&deflated)));
                deflated.clear();
            }
            _ => text.push_str(&format!("<frame {b0:#x}>")),
        }
    }
    (frames, text)
}

/// The corners: which user a websocket client is without CONNECT when both the server
/// and the websocket port name a `no_auth_user`, the INFO `auth_required` of each port,
/// a compressed frame without negotiation, and 4 KB frames for browsers (plain and
/// compressed, from websocket.go wsCollapsePtoNB).
fn ws_corner_scenario(bin: &str) -> (Vec<String>, Vec<Vec<(u8, usize)>>) {
    let ws = free_port();
    let srv = start_on_conf(
        bin,
        "ws-corner",
        &format!(
            "authorization {{ users = [\n\
             {{user: a, password: a, permissions: {{publish: {{deny: x}}}}}}\n\
             {{user: b, password: b, permissions: {{publish: {{deny: y}}}}}} ] }}\n\
             no_auth_user: a\n\
             websocket {{ listen: \"127.0.0.1:{ws}\", no_tls: true, compression: true, no_auth_user: b }}\n"
        ),
    );
    let port = srv.port;
    let mut seen = Vec::new();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let info = harness::procs::read_until(&mut tcp, "\r\n");
    seen.push(String::from_utf8(harness::normalize_info(info.as_bytes())).unwrap());
    let (mut s, info) = ws_client(ws);
    seen.push(String::from_utf8(harness::normalize_info(info.as_bytes())).unwrap());
    // No CONNECT: the server's no_auth_user (a, who may not publish to x).
    s.write_all(&frame(
        0x82,
        b"PUB x 0\r\n\r\nPUB y 0\r\n\r\nPING\r\n",
        true,
    ))
    .unwrap();
    seen.push(read_text_until(&mut s, "PONG"));
    // RSV1 without negotiation: inflated anyway.
    s.write_all(&frame(0xC2, &deflate(b"PING\r\n"), true))
        .unwrap();
    seen.push(read_text_until(&mut s, "PONG"));
    // Browsers: 4 KB frames, plain and compressed (a payload that deflates to more than
    // 4 KB).
    let big = noise(10_000);
    let mut shapes = Vec::new();
    for extra in [
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
    ] {
        let mut b = TcpStream::connect(("127.0.0.1", ws)).unwrap();
        b.write_all(upgrade_request(ws, extra).as_bytes()).unwrap();
        let head = read_head(&mut b);
        assert!(head.starts_with("HTTP/1.1 101"), "{bin}: {head}");
        let _ = read_frames_until(&mut b, "\r\n");
        let cmd = format!(
            "CONNECT {{\"verbose\":false,\"user\":\"b\",\"pass\":\"b\"}}\r\nSUB big 1\r\nPUB big 10000\r\n{big}\r\nPING\r\n"
        );
        b.write_all(&frame(0x82, cmd.as_bytes(), true)).unwrap();
        let (frames, text) = read_frames_until(&mut b, "PONG\r\n");
        seen.push(text);
        shapes.push(frames);
    }
    srv.stop();
    (seen, shapes)
}

#[test]
fn websocket_corners_like_nats_server() {
    let (ours, shapes) = ws_corner_scenario(BIN);
    assert!(!ours[0].contains("auth_required"), "{}", ours[0]);
    assert!(ours[1].contains("\"auth_required\":true"), "{}", ours[1]);
    assert_eq!(
        ours[2],
        // No CONNECT: Go's default options, verbose on.
        "-ERR 'Permissions Violation for Publish to \"x\"'\r\n+OK\r\nPONG\r\n"
    );
    assert_eq!(ours[3], "PONG\r\n");
    let big = noise(10_000);
    for (text, frames) in ours[4..].iter().zip(&shapes) {
        assert_eq!(*text, format!("MSG big 1 10000\r\n{big}\r\nPONG\r\n"));
        assert!(frames.iter().all(|&(_, n)| n <= 4096), "{frames:?}");
    }
    // The compressed one is one message in fragments: RSV1 first, FIN last.
    assert_eq!(
        shapes[1].first().map(|f| f.0),
        Some(0x42),
        "{:?}",
        shapes[1]
    );
    if nats_available() {
        let (theirs, their_shapes) = ws_corner_scenario(NATS);
        assert_eq!(theirs, ours);
        for frames in &their_shapes {
            assert!(frames.iter().all(|&(_, n)| n <= 4096), "{frames:?}");
        }
        assert_eq!(their_shapes[1].first().map(|f| f.0), Some(0x42));
    }
}
