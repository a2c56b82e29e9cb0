//! Client TLS on the TCP port (top-level `tls`), against nats-server 2.9.10's behaviour:
//! the clear-text INFO with `tls_required` (byte-compared with nats-server's), the Rust
//! client over TLS, a clear-text or silent client refused as `TLS Handshake Failure` with
//! nats-server's log lines, client certificates with `verify`, `allow_non_tls`, and the
//! monitoring fields.
//!
//! Every listener is on 127.0.0.1; every wait is bounded.

mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use broker::options::TlsOpts;
use futures::StreamExt;
use harness::pki::{capture_logs, logs, TestCa};
use harness::{
    get_json, local_opts, normalize_info, reference_nats_server, show, start_broker, Raw, RefServer,
};
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// A CA, a server certificate for 127.0.0.1, and a client certificate, in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path, tag: &str) -> Pki {
    let ca = TestCa::new(tag);
    let (cert, key) = ca.issue(dir, "server", &["127.0.0.1", "localhost"]);
    let (client_cert, client_key) = ca.issue(dir, "client", &["client"]);
    Pki {
        ca: ca.write(dir, "ca.pem"),
        cert,
        key,
        client_cert,
        client_key,
    }
}

fn tls_opts(p: &Pki, verify: bool, timeout: Option<Duration>) -> TlsOpts {
    TlsOpts {
        cert_file: Some(p.cert.clone()),
        key_file: Some(p.key.clone()),
        ca_file: verify.then(|| p.ca.clone()),
        verify,
        timeout,
    }
}

/// Our broker with client TLS and a monitoring port.
async fn tls_broker(t: TlsOpts, allow_non_tls: bool) -> broker::server::ServerHandle {
    let mut o = local_opts();
    o.tls = Some(t);
    o.allow_non_tls = allow_non_tls;
    o.http_host = "127.0.0.1".into();
    o.http_port = -1;
    start_broker(o).await
}

/// The Rust client over TLS, trusting `p.ca`, with the client certificate if asked.
async fn tls_client(
    addr: std::net::SocketAddr,
    p: &Pki,
    with_cert: bool,
) -> Result<async_nats::Client, String> {
    let o = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(p.ca.clone());
    let o = if with_cert {
        o.add_client_certificate(p.client_cert.clone(), p.client_key.clone())
    } else {
        o
    };
    match timeout(WAIT, o.connect(format!("tls://{addr}"))).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

/// Publishes on a fresh subject and receives it back on the same client.
async fn round_trip(c: &async_nats::Client) {
    let mut sub = c.subscribe("tls.check").await.expect("subscribe");
    c.flush().await.expect("flush");
    c.publish("tls.check", "over tls".into())
        .await
        .expect("publish");
    let m = timeout(WAIT, sub.next())
        .await
        .expect("message in time")
        .expect("message");
    assert_eq!(&m.payload[..], b"over tls");
}

/// Waits (bounded) until the log holds `needle`.
async fn wait_log(needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let l = logs();
        if l.contains(needle) {
            return l;
        }
        assert!(Instant::now() < deadline, "log never had {needle:?}:\n{l}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The closed-connection reasons /connz lists.
async fn closed_reasons(http: std::net::SocketAddr) -> Vec<String> {
    let v = get_json(http, "/connz?state=closed").await;
    v["connections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["reason"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_over_tls_and_monitoring_fields() {
    capture_logs("info,broker=debug");
    let dir = harness::scratch_dir("client-tls");
    let p = pki(&dir, "round-trip");
    let h = tls_broker(tls_opts(&p, false, None), false).await;
    let http = h.http_addr.expect("monitoring port");

    let c = tls_client(h.client_addr, &p, false)
        .await
        .expect("TLS client connects");
    round_trip(&c).await;

    let v = get_json(http, "/varz").await;
    assert_eq!(v["tls_required"], true, "{v}");
    assert!(v.get("tls_verify").is_none(), "{v}");
    assert_eq!(v["tls_timeout"], 2, "{v}");
    // opts.go getDefaultAuthTimeout: the TLS timeout plus one second.
    assert_eq!(v["auth_timeout"], 3, "{v}");
    let z = get_json(http, "/connz").await;
    let conn = &z["connections"][0];
    assert_eq!(conn["tls_version"], "1.3", "{z}");
    // The server's order wins, as Go's does: AES-128-GCM first.
    assert_eq!(conn["tls_cipher_suite"], "TLS_AES_128_GCM_SHA256", "{z}");
    // This connection's own lines (the log is shared by the tests of this binary).
    let p = format!("127.0.0.1:{} - cid:{} - ", conn["port"], conn["cid"]);
    let l = wait_log(&format!(
        "{p}TLS version 1.3, cipher suite TLS_AES_128_GCM_SHA256"
    ))
    .await;
    assert!(
        l.contains(&format!("{p}Starting TLS client connection handshake")),
        "{l}"
    );
    assert!(l.contains(&format!("{p}TLS handshake complete")), "{l}");
    assert!(l.contains("TLS required for client connections"), "{l}");
    drop(c);
    h.shutdown().await;
}

/// A Go client (nats.go, the library of nats-bench and the nats CLI) over TLS, trusting the
/// test CA through SSL_CERT_FILE (Go's trust store on Linux): 1,000 sequenced messages out
/// and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_client_over_tls() {
    let Some(go) = harness::go_client::go_client() else {
        return;
    };
    let dir = harness::scratch_dir("client-tls-go");
    let p = pki(&dir, "go");
    let h = tls_broker(tls_opts(&p, false, None), false).await;
    let url = format!("tls://{}", h.client_addr);
    let args = ["-s", &url, "-n", "1000", "-ms", "512"].map(String::from);
    let env = [("SSL_CERT_FILE", p.ca.as_path())];
    harness::go_client::expect_go_client(&go, &args, &env, 1000, "Go client over TLS").await;
    h.shutdown().await;
}

/// A clear-text client gets the INFO, then nothing: its CONNECT is not a TLS record. The
/// close is `TLS Handshake Failure` with nats-server's error line; a client that sends
/// nothing is cut at `tls.timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_text_and_silent_clients_are_refused() {
    capture_logs("info,broker=debug");
    let dir = harness::scratch_dir("client-tls-refuse");
    let p = pki(&dir, "refuse");
    let h = tls_broker(tls_opts(&p, false, Some(Duration::from_millis(500))), false).await;
    let http = h.http_addr.expect("monitoring port");

    let mut raw = Raw::connect(h.client_addr).await;
    let info = raw.read_line().await;
    assert!(
        info.starts_with(b"INFO ") && show(&info).contains("\"tls_required\":true"),
        "{}",
        show(&info)
    );
    raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    let rest = raw.read_to_close(WAIT).await;
    assert!(
        !rest.windows(4).any(|w| w == b"PONG"),
        "a clear-text client was served: {}",
        show(&rest)
    );
    wait_log("TLS handshake error: tls: first record does not look like a TLS handshake").await;

    let started = Instant::now();
    let mut silent = Raw::connect(h.client_addr).await;
    let _ = silent.read_line().await;
    let _ = silent.read_to_close(WAIT).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "a silent client was closed after {took:?}, expected about the 500 ms tls timeout"
    );
    wait_log("TLS handshake timeout").await;
    wait_log("TLS handshake error: read tcp 127.0.0.1:").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let reasons = closed_reasons(http).await;
        let failed = reasons
            .iter()
            .filter(|r| r.as_str() == "TLS Handshake Failure")
            .count();
        if failed == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{reasons:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown().await;
}

/// A shutdown does not wait for a client in the middle of its handshake (nats-server closes
/// its socket): with a 10 s TLS timeout and a silent client, the server stops at once and
/// records the client as closed by the shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_handshake() {
    let dir = harness::scratch_dir("client-tls-shutdown");
    let p = pki(&dir, "shutdown");
    let h = tls_broker(tls_opts(&p, false, Some(Duration::from_secs(10))), false).await;
    let state = h.state.clone();
    let mut silent = Raw::connect(h.client_addr).await;
    let _ = silent.read_line().await;
    let started = Instant::now();
    timeout(Duration::from_secs(3), h.shutdown())
        .await
        .expect("shutdown within 3 s with a client mid-handshake");
    assert!(started.elapsed() < Duration::from_secs(3));
    let closed: Vec<_> = state
        .closed
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.snapshot.reason)
        .collect();
    assert_eq!(
        closed,
        vec![Some(broker::server::ClosedState::ServerShutdown)]
    );
}

/// Over `max_connections`, a client of the TLS port is refused in clear text, before any
/// handshake, as nats-server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refusal_is_in_clear_text() {
    let dir = harness::scratch_dir("client-tls-max");
    let p = pki(&dir, "max");
    let mut o = local_opts();
    o.tls = Some(tls_opts(&p, false, None));
    o.max_connections = 1;
    let h = start_broker(o).await;
    let c = tls_client(h.client_addr, &p, false)
        .await
        .expect("first client");
    round_trip(&c).await;
    let mut second = Raw::connect(h.client_addr).await;
    let info = second.read_line().await;
    assert!(show(&info).contains("\"tls_required\":true"));
    let rest = second.read_to_close(WAIT).await;
    assert_eq!(
        rest,
        b"-ERR 'maximum connections exceeded'\r\n",
        "{}",
        show(&rest)
    );
    drop(c);
    h.shutdown().await;
}

/// `verify: true`: INFO says `tls_verify`; a client without a certificate is refused with
/// nats-server's words, one with a certificate from the CA is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_takes_only_clients_with_a_certificate_from_the_ca() {
    capture_logs("info,broker=debug");
    let dir = harness::scratch_dir("client-tls-verify");
    let p = pki(&dir, "verify");
    let h = tls_broker(tls_opts(&p, true, None), false).await;
    let http = h.http_addr.expect("monitoring port");

    let mut raw = Raw::connect(h.client_addr).await;
    let info = show(&raw.read_line().await);
    assert!(
        info.contains("\"tls_required\":true,\"tls_verify\":true,"),
        "{info}"
    );
    drop(raw);

    let refused = tls_client(h.client_addr, &p, false).await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    wait_log("TLS handshake error: tls: client didn't provide a certificate").await;

    let c = tls_client(h.client_addr, &p, true)
        .await
        .expect("a client with a certificate from the CA connects");
    round_trip(&c).await;
    assert_eq!(get_json(http, "/varz").await["tls_verify"], true);
    drop(c);
    h.shutdown().await;
}

/// `/connz?auth=true` lists a TLS client's certificates (monitor.go makePeerCerts) as
/// nats-server 2.9.10 does: the subject in Go's `pkix.Name` form, SHA-256 of the public key
/// info and of the certificate. Without `auth` they are left out; so are they for closed
/// connections (saveClosedClient fills those with auth off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connz_auth_shows_peer_certs_like_nats_server() {
    use rcgen::{DistinguishedName, DnType, DnValue};
    use rustls::pki_types::pem::PemObject;
    let dir = harness::scratch_dir("client-tls-peer-certs");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CH");
    dn.push(DnType::OrganizationName, "Acme, Inc.");
    dn.push(DnType::OrganizationalUnitName, "time");
    dn.push(DnType::CommonName, "follower+f1");
    dn.push(
        DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
        DnValue::Ia5String("ops@example.com".try_into().expect("ia5")),
    );
    let ca = TestCa::new("peer-certs");
    let (cert, key) = ca.issue(&dir, "server", &["127.0.0.1", "localhost"]);
    let (client_cert, client_key) = ca.issue_as(&dir, "client", &["client"], Some(dn));
    let p = Pki {
        ca: ca.write(&dir, "ca.pem"),
        cert,
        key,
        client_cert,
        client_key,
    };
    let der = rustls::pki_types::CertificateDer::from_pem_file(&p.client_cert).expect("pem");
    let sha = |b: &[u8]| {
        data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
    };

    let h = tls_broker(tls_opts(&p, true, None), false).await;
    let http = h.http_addr.expect("monitoring port");
    let c = tls_client(h.client_addr, &p, true).await.expect("client");
    round_trip(&c).await;
    let z = get_json(http, "/connz?auth=true").await;
    let ours = z["connections"][0]["tls_peer_certs"].clone();
    assert_eq!(ours.as_array().map(Vec::len), Some(1), "{z}");
    assert_eq!(
        ours[0]["subject"],
        "CN=follower\\+f1,OU=time,O=Acme\\, Inc.,C=CH,\
         1.2.840.113549.1.9.1=#0c0f6f7073406578616d706c652e636f6d",
        "{z}"
    );
    assert_eq!(ours[0]["cert_sha256"], sha(der.as_ref()), "{z}");
    assert_eq!(
        ours[0]["spki_sha256"].as_str().map(str::len),
        Some(64),
        "{z}"
    );
    let z = get_json(http, "/connz").await;
    assert!(z["connections"][0].get("tls_peer_certs").is_none(), "{z}");
    drop(c);
    let deadline = Instant::now() + WAIT;
    let closed = loop {
        let z = get_json(http, "/connz?state=closed&auth=true").await;
        if z["connections"][0].is_object() || Instant::now() > deadline {
            break z;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let row = &closed["connections"][0];
    assert_eq!(row["tls_version"], "1.3", "{closed}");
    assert!(row.get("tls_peer_certs").is_none(), "{closed}");
    h.shutdown().await;

    if reference_nats_server().is_none() {
        return;
    }
    let http_port = harness::free_port();
    let conf = format!(
        "http: \"127.0.0.1:{http_port}\"\ntls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}\n",
        p.cert.display(),
        p.key.display(),
        p.ca.display()
    );
    let reference = RefServer::start(&conf).expect("nats-server starts");
    let c = tls_client(reference.addr, &p, true)
        .await
        .expect("client of nats-server");
    round_trip(&c).await;
    let href: std::net::SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let z = get_json(href, "/connz?auth=true").await;
    assert_eq!(
        ours, z["connections"][0]["tls_peer_certs"],
        "nats-server: {z}"
    );
}

/// `allow_non_tls`: INFO offers `tls_available`; a clear-text client and a TLS client are
/// both served (the first byte decides, as server.go createClient does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_non_tls_serves_both() {
    let dir = harness::scratch_dir("client-tls-mixed");
    let p = pki(&dir, "mixed");
    let h = tls_broker(tls_opts(&p, false, None), true).await;

    let mut raw = Raw::connect(h.client_addr).await;
    let info = show(&raw.read_line().await);
    assert!(
        info.contains("\"tls_available\":true") && !info.contains("tls_required"),
        "{info}"
    );
    raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    let pong = raw.read_pongs(1).await;
    assert!(pong.ends_with(b"PONG\r\n"), "{}", show(&pong));

    let c = tls_client(h.client_addr, &p, false)
        .await
        .expect("a TLS client is served too");
    round_trip(&c).await;
    drop(c);
    h.shutdown().await;
}

/// The clear-text INFO with `tls` (plain, `verify`, `allow_non_tls`) is nats-server
/// 2.9.10's, byte for byte outside the per-server fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_info_matches_nats_server() {
    if reference_nats_server().is_none() {
        eprintln!("nats-server not installed; nothing to compare");
        return;
    }
    let dir = harness::scratch_dir("client-tls-ref");
    let p = pki(&dir, "ref");
    let cases = [(false, false), (true, false), (false, true)];
    for (verify, allow) in cases {
        let mut conf = format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\"",
            p.cert.display(),
            p.key.display()
        );
        if verify {
            conf += &format!(", ca_file: \"{}\", verify: true", p.ca.display());
        }
        conf += " }\n";
        if allow {
            conf += "allow_non_tls: true\n";
        }
        let reference = RefServer::start(&conf).expect("nats-server starts");
        let mut r = Raw::connect(reference.addr).await;
        let theirs = normalize_info(&r.read_line().await);

        let h = tls_broker(tls_opts(&p, verify, None), allow).await;
        let mut o = Raw::connect(h.client_addr).await;
        let ours = normalize_info(&o.read_line().await);
        assert_eq!(
            show(&ours),
            show(&theirs),
            "INFO differs (verify {verify}, allow_non_tls {allow})"
        );
        h.shutdown().await;
    }
}

/// Client TLS follows a reload (reload.go tlsOption): dropping the block serves clear-text
/// clients from then on, bringing it back requires TLS again; each logs nats-server's line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_switches_client_tls() {
    capture_logs("info,broker=debug");
    let dir = harness::scratch_dir("client-tls-reload");
    let p = pki(&dir, "reload");
    let conf = dir.join("server.conf");
    let with_tls = format!(
        "host: 127.0.0.1\nport: -1\ntls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
        p.cert.display(),
        p.key.display()
    );
    std::fs::write(&conf, &with_tls).expect("write conf");
    let flags = vec!["-c".to_string(), conf.display().to_string()];
    let broker::cli::Command::Run(loaded) =
        broker::cli::parse_args(flags.clone()).expect("config loads")
    else {
        panic!("not a run command");
    };
    let h = start_broker(loaded.options).await;

    std::fs::write(&conf, "host: 127.0.0.1\nport: -1\n").expect("write conf");
    broker::app::reload(&h.state, &flags).expect("reload without tls");
    wait_log("Reloaded: tls = disabled").await;
    let mut raw = Raw::connect(h.client_addr).await;
    let info = show(&raw.read_line().await);
    assert!(!info.contains("tls_"), "{info}");
    raw.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    assert!(raw.read_pongs(1).await.ends_with(b"PONG\r\n"));

    std::fs::write(&conf, &with_tls).expect("write conf");
    broker::app::reload(&h.state, &flags).expect("reload with tls");
    wait_log("Reloaded: tls = enabled").await;
    let c = tls_client(h.client_addr, &p, false)
        .await
        .expect("TLS client after reload");
    round_trip(&c).await;
    let mut plain = Raw::connect(h.client_addr).await;
    assert!(show(&plain.read_line().await).contains("\"tls_required\":true"));

    // A certificate replaced in place is a change (reload.go compares the loaded
    // configurations), and so is the handshake timeout.
    let count = |l: &str| l.matches("Reloaded: tls = enabled").count();
    let before = count(&logs());
    let other = TestCa::new("reload-rotated");
    let (cert, key) = other.issue(&dir, "rotated", &["127.0.0.1"]);
    std::fs::copy(&cert, &p.cert).expect("replace certificate");
    std::fs::copy(&key, &p.key).expect("replace key");
    std::fs::write(&conf, with_tls.replace(" }\n", ", timeout: 0.5 }\n")).expect("write conf");
    broker::app::reload(&h.state, &flags).expect("reload with a new certificate");
    let l = wait_log("Reloaded: tls timeout = 0.5").await;
    assert_eq!(count(&l), before + 1, "{l}");
    drop(c);
    h.shutdown().await;
}

/// GET over HTTPS (HTTP/1.0), trusting `ca`; the body as JSON.
async fn https_get_json(addr: std::net::SocketAddr, ca: &Path, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = harness::pki::tls_client_config(ca, None);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut raw = Vec::new();
    // The server may close without close_notify after the response.
    let _ = timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("in time");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    serde_json::from_slice(&raw[split + 4..]).expect("json")
}

/// `https` monitoring (server.go startMonitoring): the client TLS certificate, no client
/// certificate asked for even with `verify`; /varz shows the https port, not an http one.
/// Both ports, or https without `tls`, fail the start with nats-server's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_monitoring() {
    capture_logs("info,broker=debug");
    let dir = harness::scratch_dir("client-tls-https");
    let p = pki(&dir, "https");
    let mut o = local_opts();
    o.tls = Some(tls_opts(&p, true, None));
    o.http_host = "127.0.0.1".into();
    o.https_port = -1;
    let h = start_broker(o).await;
    let addr = h.http_addr.expect("monitoring port");
    let v = https_get_json(addr, &p.ca, "/varz").await;
    assert_eq!(v["https_port"], addr.port(), "{v}");
    assert_eq!(v["http_port"], 0, "{v}");
    wait_log(&format!(
        "Starting https monitor on 127.0.0.1:{}",
        addr.port()
    ))
    .await;
    // A clear-text request gets no answer from the TLS port.
    let mut plain = Raw::connect(addr).await;
    plain.send(b"GET /varz HTTP/1.0\r\n\r\n").await;
    let got = plain.read_to_close(WAIT).await;
    assert!(!got.starts_with(b"HTTP/"), "{}", show(&got));
    h.shutdown().await;

    let mut both = local_opts();
    both.tls = Some(tls_opts(&p, false, None));
    both.http_port = -1;
    both.https_port = -1;
    let e = broker::server::start(both).await.err().expect("refused");
    assert_eq!(
        e.to_string(),
        "can't specify both HTTP (-1) and HTTPs (-1) ports"
    );
    let mut bare = local_opts();
    bare.https_port = -1;
    let e = broker::server::start(bare).await.err().expect("refused");
    assert_eq!(e.to_string(), "TLS cert and key required for HTTPS");
}

/// A reload cannot move the https monitoring port (reload.go: HTTPSPort is not
/// reloadable); the running port stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_a_new_https_port() {
    let dir = harness::scratch_dir("client-tls-https-reload");
    let p = pki(&dir, "https-reload");
    let conf = dir.join("server.conf");
    let base = format!(
        "host: 127.0.0.1\nport: -1\ntls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
        p.cert.display(),
        p.key.display()
    );
    std::fs::write(&conf, format!("{base}https: \"127.0.0.1:-1\"\n")).expect("write conf");
    let flags = vec!["-c".to_string(), conf.display().to_string()];
    let broker::cli::Command::Run(loaded) =
        broker::cli::parse_args(flags.clone()).expect("config loads")
    else {
        panic!("not a run command");
    };
    let h = start_broker(loaded.options).await;
    let addr = h.http_addr.expect("monitoring port");
    std::fs::write(&conf, format!("{base}https: \"127.0.0.1:0\"\n")).expect("write conf");
    let e = broker::app::reload(&h.state, &flags).expect_err("refused");
    assert_eq!(
        e,
        "config reload not supported for HTTPSPort: old=-1, new=0"
    );
    let v = https_get_json(addr, &p.ca, "/varz").await;
    assert_eq!(v["https_port"], addr.port(), "{v}");
    h.shutdown().await;
}
