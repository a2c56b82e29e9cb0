//! `broker proxy` authentication of the broker (issue 5, item 2): with
//! `--ca` the broker's certificate chain and name are verified; a wrong CA or
//! name is refused with an error naming `--ca`; without `--ca` the link is
//! encrypted and the proxy warns that the server is not authenticated.
//!
//! The first test uses a stand-in SCION/QUIC client listener (it opens the
//! stream and speaks INFO first, as `server::scion::accept_clients` does) to
//! check names and CAs byte for byte; a real broker given `scion { tls }`
//! is verified the same way, and the CLI tests run the real `broker proxy`
//! binary against a real broker. Emulator on loopback only; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use broker::options::{ListenAddr, Options, ScionOpts, TlsOpts};
use broker::proxy::{LinkError, ProxyConfig, ProxyTls};
use futures::StreamExt;
use scion_transport::address::ScionAddr;
use scion_transport::emu::EmuHandle;
use scion_transport::quic::{ScionEndpoint, TlsConfig, TransportConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

mod scion_common;
use scion_common::*;

/// An INFO in nats-server 2.9.10's key order (server.go Info); the proxy
/// must deliver it unchanged.
const INFO: &str = "INFO {\"server_id\":\"NSTANDIN\",\"server_name\":\"standin\",\"version\":\"2.9.10\",\"proto\":1,\"go\":\"go1.19\",\"host\":\"0.0.0.0\",\"port\":4222,\"headers\":true,\"max_payload\":1048576,\"client_id\":1,\"client_ip\":\"127.0.0.1\"} \r\n";

/// A CA, and a server certificate for `names` signed by it, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, tag: &str, names: &[&str]) -> Pki {
    let ca = TestCa::new(tag);
    let (cert, key) = ca.issue(dir, tag, names);
    Pki {
        ca: ca.write(dir, &format!("{tag}-ca.pem")),
        cert,
        key,
    }
}

/// Stand-in SCION client listener in AS A presenting `pki`'s certificate:
/// per connection it opens the stream, writes INFO and holds the link until
/// the client closes it.
async fn standin_server(emu: &EmuHandle, dir: &TempDir, pki: &Pki) -> ScionEndpoint {
    let (daemon, topo) = as_files(emu, dir, AS_A);
    let tls = TlsConfig::from_pem_files(&pki.cert, &pki.key, &pki.ca).expect("tls");
    let mut cfg = TransportConfig::new(
        ScionAddr {
            ia: ia(AS_A),
            ip: localhost(),
            port: 0,
        },
        tls,
    );
    cfg.daemon = Some(daemon);
    cfg.topology = Some(topo);
    ScionEndpoint::bind(cfg).await.expect("bind stand-in")
}

fn serve(ep: std::sync::Arc<ScionEndpoint>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Ok((mut send, mut recv)) = conn.open_bi().await else {
                    return;
                };
                if send.write_all(INFO.as_bytes()).await.is_err() {
                    return;
                }
                let _ = timeout(WAIT, recv.read_to_end(usize::MAX)).await;
                conn.close(0u32.into(), b"done");
            });
        }
    })
}

async fn proxy_to(
    emu: &EmuHandle,
    dir: &TempDir,
    upstream: ScionAddr,
    tls: ProxyTls,
) -> broker::proxy::Proxy {
    let (daemon, topo) = as_files(emu, dir, AS_B);
    broker::proxy::start_with_tls(
        ProxyConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            upstream,
            more_upstreams: Vec::new(),
            local: ScionAddr {
                ia: ia(AS_B),
                ip: localhost(),
                port: 0,
            },
            daemon: Some(daemon),
            topology: Some(topo),
            path_preference: None,
        },
        &tls,
    )
    .await
    .expect("proxy start")
}

/// What a TCP client of the proxy receives before the proxy closes the
/// connection or WAIT passes.
async fn first_line(proxy: &broker::proxy::Proxy) -> String {
    let tcp = timeout(WAIT, TcpStream::connect(proxy.listen))
        .await
        .expect("in time")
        .expect("connect");
    let mut r = BufReader::new(tcp);
    let mut line = String::new();
    let _ = timeout(WAIT, r.read_line(&mut line))
        .await
        .expect("proxy answered or closed in time");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_verifies_broker_certificate_with_ca() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-tls");
    let good = make_pki(&dir.0, "good", &["nats-scion", "broker.test"]);
    let other = make_pki(&dir.0, "other", &["nats-scion"]);
    let ep = std::sync::Arc::new(standin_server(&emu, &dir, &good).await);
    let upstream = ep.local_addr();
    let server = serve(ep.clone());

    // Right CA, default name (nats-scion, which the certificate carries).
    let tls = ProxyTls {
        ca: Some(good.ca.clone()),
        server_name: None,
        ..Default::default()
    };
    let proxy = proxy_to(&emu, &dir, upstream, tls).await;
    assert!(proxy.authenticated);
    proxy.prime().await.expect("verified link");
    assert_eq!(first_line(&proxy).await, INFO, "INFO passed byte for byte");
    // And a second client dials its own verified link.
    assert_eq!(first_line(&proxy).await, INFO);
    drop(proxy);

    // Right CA, the other name in the certificate.
    let tls = ProxyTls {
        ca: Some(good.ca.clone()),
        server_name: Some("broker.test".into()),
        ..Default::default()
    };
    let proxy = proxy_to(&emu, &dir, upstream, tls).await;
    assert_eq!(first_line(&proxy).await, INFO);
    drop(proxy);

    // Wrong CA: refused, with an error that says what to check.
    let tls = ProxyTls {
        ca: Some(other.ca.clone()),
        server_name: None,
        ..Default::default()
    };
    let proxy = proxy_to(&emu, &dir, upstream, tls).await;
    let e = proxy.prime().await.expect_err("wrong CA must be refused");
    assert!(matches!(e, LinkError::Untrusted { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("--ca") && msg.contains("certificate"), "{msg}");
    // A TCP client gets nothing from the untrusted server: the proxy closes.
    assert_eq!(first_line(&proxy).await, "");
    drop(proxy);

    // Right CA, name the certificate does not carry.
    let tls = ProxyTls {
        ca: Some(good.ca.clone()),
        server_name: Some("elsewhere.test".into()),
        ..Default::default()
    };
    let proxy = proxy_to(&emu, &dir, upstream, tls).await;
    let e = proxy.prime().await.expect_err("wrong name must be refused");
    assert!(matches!(e, LinkError::Untrusted { .. }), "{e:?}");
    assert!(e.to_string().contains("elsewhere.test"), "{e}");
    drop(proxy);

    // Without a CA: encrypted, not authenticated, but it connects.
    let proxy = proxy_to(&emu, &dir, upstream, ProxyTls::default()).await;
    assert!(!proxy.authenticated);
    assert_eq!(first_line(&proxy).await, INFO);
    server.abort();
}

/// A broker with a SCION client listener in AS A; returns it and the
/// listener's address.
async fn broker_in_a(emu: &EmuHandle, dir: &TempDir) -> (broker::server::ServerHandle, ScionAddr) {
    broker_in_a_with(emu, dir, None).await
}

/// [`broker_in_a`] with `scion { tls }` for the SCION client listener.
async fn broker_in_a_with(
    emu: &EmuHandle,
    dir: &TempDir,
    tls: Option<TlsOpts>,
) -> (broker::server::ServerHandle, ScionAddr) {
    broker_in_a_tweaked(emu, dir, tls, |_| {}).await
}

/// [`broker_in_a_with`] with `tweak` applied to the options.
async fn broker_in_a_tweaked(
    emu: &EmuHandle,
    dir: &TempDir,
    tls: Option<TlsOpts>,
    tweak: impl FnOnce(&mut Options),
) -> (broker::server::ServerHandle, ScionAddr) {
    let (daemon, topo) = as_files(emu, dir, AS_A);
    let mut o = Options {
        host: "127.0.0.1".into(),
        port: -1,
        scion_listen: Some(ListenAddr::Scion {
            isd_as: AS_A.into(),
            ip: localhost(),
            port: 0,
        }),
        scion: Some(ScionOpts {
            daemon: Some(daemon),
            topology: Some(topo),
            tls,
            ..Default::default()
        }),
        ..Default::default()
    };
    tweak(&mut o);
    let srv = broker::server::start(o).await.expect("broker");
    let up = srv
        .state
        .scion
        .lock()
        .map(|g| g.client_endpoint.as_ref().map(|e| e.local_addr()))
        .ok()
        .flatten()
        .expect("SCION client endpoint");
    (srv, up)
}

/// async-nats through the proxy at `url`: a message published on `subject` comes back to
/// its own subscription.
async fn pub_sub_through(url: &str, subject: &'static str) {
    let nc = timeout(WAIT, async_nats::connect(url))
        .await
        .expect("in time")
        .expect("async-nats through the proxy");
    let mut sub = nc.subscribe(subject).await.expect("sub");
    nc.publish(subject, "hello".into()).await.expect("pub");
    let m = timeout(WAIT, futures::StreamExt::next(&mut sub))
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(m.payload, "hello".as_bytes());
}

/// A broker given `scion { tls { cert_file, key_file } }` presents that certificate on its
/// SCION client listener: a proxy with the issuing CA verifies it and carries a NATS client,
/// a proxy with another CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_scion_tls_certificate_is_verified_by_the_proxy() {
    let emu = emulator().await;
    let dir = temp_dir("broker-scion-tls");
    let pki = make_pki(&dir.0, "broker", &["nats-scion"]);
    let other = make_pki(&dir.0, "other", &["nats-scion"]);
    let tls = TlsOpts {
        cert_file: Some(pki.cert.clone()),
        key_file: Some(pki.key.clone()),
        ..Default::default()
    };
    let (srv, up) = broker_in_a_with(&emu, &dir, Some(tls)).await;

    let proxy = proxy_to(
        &emu,
        &dir,
        up,
        ProxyTls {
            ca: Some(pki.ca.clone()),
            server_name: None,
            ..Default::default()
        },
    )
    .await;
    assert!(proxy.authenticated);
    proxy
        .prime()
        .await
        .expect("the broker's certificate verifies");
    pub_sub_through(&proxy.listen.to_string(), "tls.t").await;
    drop(proxy);

    let proxy = proxy_to(
        &emu,
        &dir,
        up,
        ProxyTls {
            ca: Some(other.ca.clone()),
            server_name: None,
            ..Default::default()
        },
    )
    .await;
    let e = proxy.prime().await.expect_err("another CA must be refused");
    assert!(matches!(e, LinkError::Untrusted { .. }), "{e:?}");
    drop(proxy);
    srv.shutdown().await;
}

/// `scion { tls { verify: true, ca_file } }` (nats-server's `tls { verify: true }`): the SCION
/// client listener takes only clients whose certificate chains to `ca_file`; the proxy presents
/// one with `--cert`/`--key`, and a refusal names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_verifies_client_certificates_when_asked() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-mtls");
    let ca = TestCa::new("clients");
    let ca_pem = ca.write(&dir.0, "ca.pem");
    let server = ca.issue(&dir.0, "server", &["nats-scion"]);
    let client = ca.issue(&dir.0, "client", &["client.test"]);
    let other = TestCa::new("stranger").issue(&dir.0, "other", &["client.test"]);
    let tls = TlsOpts {
        cert_file: Some(server.0.clone()),
        key_file: Some(server.1.clone()),
        ca_file: Some(ca_pem.clone()),
        verify: true,
        ..Default::default()
    };
    let (srv, up) = broker_in_a_with(&emu, &dir, Some(tls)).await;

    let proxy = proxy_to(
        &emu,
        &dir,
        up,
        ProxyTls {
            ca: Some(ca_pem.clone()),
            cert: Some(client.0.clone()),
            key: Some(client.1.clone()),
            ..Default::default()
        },
    )
    .await;
    proxy.prime().await.expect("client certificate accepted");
    pub_sub_through(&proxy.listen.to_string(), "mtls.t").await;
    drop(proxy);

    for (what, cert) in [("no certificate", None), ("another CA's", Some(&other))] {
        let t = ProxyTls {
            ca: Some(ca_pem.clone()),
            cert: cert.map(|c| c.0.clone()),
            key: cert.map(|c| c.1.clone()),
            ..Default::default()
        };
        let proxy = proxy_to(&emu, &dir, up, t).await;
        let e = proxy.prime().await.expect_err(what);
        if cert.is_some() {
            assert!(
                matches!(e, LinkError::ClientRefused { .. }),
                "{what}: {e:?}"
            );
        } else {
            assert!(
                matches!(e, LinkError::ClientCertRequired { .. }),
                "{what}: {e:?}"
            );
        }
        assert!(e.to_string().contains("--cert"), "{e}");
        assert_eq!(
            first_line(&proxy).await,
            "",
            "{what}: a refused client gets nothing"
        );
        drop(proxy);
    }
    srv.shutdown().await;
}

/// SCION clients learn the server's SCION listener from INFO `connect_urls`, unless
/// `cluster.no_advertise` is set: then, as nats-server sends clients no cluster URLs, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_advertise_hides_scion_connect_urls() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-noadv");
    for no_advertise in [false, true] {
        let (srv, up) = broker_in_a_tweaked(&emu, &dir, None, |o| {
            o.cluster.no_advertise = no_advertise;
        })
        .await;
        // The INFO as the listener sends it (the proxy rewrites connect_urls).
        let mut tls = TlsConfig::self_signed(&["client"]).expect("cert");
        tls.skip_server_verification = true;
        let (daemon, topo) = as_files(&emu, &dir, AS_B);
        let mut cfg = TransportConfig::new(
            ScionAddr {
                ia: ia(AS_B),
                ip: localhost(),
                port: 0,
            },
            tls,
        );
        cfg.daemon = Some(daemon);
        cfg.topology = Some(topo);
        cfg.accept = false;
        let ep = ScionEndpoint::bind(cfg).await.expect("bind");
        let conn = timeout(WAIT, ep.connect(up, "nats-scion"))
            .await
            .expect("in time")
            .expect("connect");
        let (_send, recv) = timeout(WAIT, conn.accept_bi())
            .await
            .expect("in time")
            .expect("stream");
        let mut info = String::new();
        timeout(WAIT, BufReader::new(recv).read_line(&mut info))
            .await
            .expect("in time")
            .expect("INFO");
        assert!(info.starts_with("INFO "), "{info}");
        assert_eq!(
            info.contains(&format!("\"connect_urls\":[\"{up}\"]")),
            !no_advertise,
            "no_advertise={no_advertise}: {info}"
        );
        assert_eq!(info.contains("connect_urls"), !no_advertise, "{info}");
        srv.shutdown().await;
    }
}

/// A client that writes its last messages and closes at once (as nats.go's Close does, no
/// PING) loses none of them through the proxy: the link is closed only once the broker has
/// read them (quinn drops unacknowledged data on close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_delivers_what_a_client_sent_just_before_closing() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-close");
    let (srv, up) = broker_in_a(&emu, &dir).await;
    let sub_client = timeout(WAIT, async_nats::connect(srv.client_addr.to_string()))
        .await
        .expect("in time")
        .expect("connect");
    let mut sub = sub_client.subscribe("last.words").await.expect("subscribe");
    sub_client.flush().await.expect("flush");
    let proxy = proxy_to(&emu, &dir, up, ProxyTls::default()).await;
    const N: usize = 2000;
    for round in 0..3 {
        let tcp = timeout(WAIT, TcpStream::connect(proxy.listen))
            .await
            .expect("in time")
            .expect("connect");
        // Read the INFO first, as NATS clients do: a socket closed with unread data sends a
        // TCP reset, and the peer (proxy or nats-server alike) may lose what it had not read.
        let mut tcp = BufReader::new(tcp);
        let mut info = String::new();
        timeout(WAIT, tcp.read_line(&mut info))
            .await
            .expect("in time")
            .expect("INFO");
        let mut tcp = tcp.into_inner();
        let mut batch = b"CONNECT {\"verbose\":false}\r\n".to_vec();
        for i in 0..N {
            let body = format!("{round}:{i:0>96}");
            batch.extend_from_slice(
                format!("PUB last.words {}\r\n{body}\r\n", body.len()).as_bytes(),
            );
        }
        tcp.write_all(&batch).await.expect("write");
        drop(tcp);
        for i in 0..N {
            let m = timeout(WAIT, sub.next())
                .await
                .unwrap_or_else(|_| panic!("round {round}: got {i} of {N}"))
                .expect("message");
            assert_eq!(
                std::str::from_utf8(&m.payload).expect("utf8"),
                format!("{round}:{i:0>96}")
            );
        }
    }
    drop(proxy);
    srv.shutdown().await;
}

/// A broker's last words reach the client too: `-ERR 'Authorization Violation'` before the
/// link closes, as over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_delivers_the_brokers_last_error() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-lasterr");
    let (srv, up) = broker_in_a_tweaked(&emu, &dir, None, |o| {
        o.authorization.user = Some("u".into());
        o.authorization.password = Some("p".into());
    })
    .await;
    let proxy = proxy_to(&emu, &dir, up, ProxyTls::default()).await;
    for _ in 0..3 {
        let tcp = timeout(WAIT, TcpStream::connect(proxy.listen))
            .await
            .expect("in time")
            .expect("connect");
        let mut r = BufReader::new(tcp);
        let mut info = String::new();
        timeout(WAIT, r.read_line(&mut info))
            .await
            .expect("in time")
            .expect("INFO");
        assert!(info.starts_with("INFO "), "{info}");
        r.get_mut()
            .write_all(b"CONNECT {\"user\":\"u\",\"pass\":\"wrong\"}\r\nPING\r\n")
            .await
            .expect("write");
        let mut rest = String::new();
        timeout(WAIT, r.read_to_string(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        assert_eq!(rest, "-ERR 'Authorization Violation'\r\n");
    }
    drop(proxy);
    srv.shutdown().await;
}

/// Runs `broker proxy ARGS`; returns the child and its listen address, read
/// from its log, plus the log lines seen so far.
async fn run_proxy_cli(args: &[String]) -> (tokio::process::Child, String, Vec<String>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("proxy")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn broker proxy");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let listen = timeout(WAIT, async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push(l.clone());
            if let Some(rest) = l.split("Proxying NATS clients on ").nth(1) {
                return rest.split(' ').next().map(str::to_string);
            }
        }
        None
    })
    .await
    .unwrap_or(None);
    let Some(listen) = listen else {
        panic!("proxy did not start: {seen:#?}");
    };
    // Keep draining so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, listen, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_without_ca_warns_and_carries_nats() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-cli");
    let (srv, up) = broker_in_a(&emu, &dir).await;
    let (daemon, topo) = as_files(&emu, &dir, AS_B);
    // No --local: the ISD-AS comes from B's daemon, the IP from topology.json.
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &format!("nats://{up}"),
        "--daemon",
        &daemon,
        "--topology",
        &topo.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut child, listen, seen) = run_proxy_cli(&args).await;
    let warn = seen
        .iter()
        .find(|l| l.contains("[WRN]") && l.contains("not authenticated"))
        .unwrap_or_else(|| panic!("no unauthenticated warning: {seen:#?}"));
    assert!(warn.contains("--ca"), "{warn}");
    assert!(
        seen.iter()
            .any(|l| l.contains(&format!("(local [{AS_B},127.0.0.1]"))),
        "local address from the daemon: {seen:#?}"
    );
    pub_sub_through(&listen, "cli.t").await;
    // And a Go client (nats.go, the library of nats-bench and the nats CLI): 1,000 sequenced
    // 1 KiB messages out and back through the proxy.
    if let Some(go) = go_client() {
        let url = format!("nats://{listen}");
        let args = ["-s", &url, "-n", "1000", "-ms", "1024"].map(String::from);
        expect_go_client(&go, &args, &[], 1000, "Go client through the proxy").await;
    }
    child.kill().await.expect("kill proxy");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_with_wrong_ca_refuses_broker() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-cli-ca");
    let (srv, up) = broker_in_a(&emu, &dir).await;
    let (daemon, topo) = as_files(&emu, &dir, AS_B);
    let pki = make_pki(&dir.0, "unrelated", &["nats-scion"]);
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.to_string(),
        "--daemon",
        &daemon,
        "--topology",
        &topo.display().to_string(),
        "--ca",
        &pki.ca.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut child, listen, seen) = run_proxy_cli(&args).await;
    assert!(
        !seen.iter().any(|l| l.contains("not authenticated")),
        "{seen:#?}"
    );
    // The broker's certificate does not chain to this CA: the TCP client is
    // closed without a byte of the broker's protocol.
    let mut tcp = timeout(WAIT, TcpStream::connect(listen.as_str()))
        .await
        .expect("in time")
        .expect("connect");
    let mut got = Vec::new();
    timeout(WAIT, tcp.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .expect("read");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    let _ = tcp.shutdown().await;
    child.kill().await.expect("kill proxy");
    srv.shutdown().await;
}

#[tokio::test]
async fn cli_help_exits_zero_and_bad_ca_fails_at_start() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["proxy", "--help"])
        .output()
        .await
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Usage: broker proxy"), "{text}");
    assert!(text.contains("--ca"), "{text}");

    let dir = temp_dir("proxy-cli-badca");
    let bad = dir.0.join("bad.pem");
    std::fs::write(&bad, "no pem here\n").expect("write");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "[1-ff00:0:111,127.0.0.1]:31000",
            "--local",
            "1-ff00:0:112,127.0.0.1",
            "--ca",
        ])
        .arg(&bad)
        .output();
    let out = timeout(WAIT, out).await.expect("in time").expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca") && err.contains("bad.pem"), "{err}");

    // A client certificate without its key is a usage error, before anything starts.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "[1-ff00:0:111,127.0.0.1]:31000",
            "--cert",
        ])
        .arg(&bad)
        .output();
    let out = timeout(WAIT, out).await.expect("in time").expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cert and --key go together"), "{err}");
}

/// `broker proxy` reports at start how many paths lead to each upstream, or why none does,
/// without contacting the broker (path problems show before the first client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_paths_to_its_upstreams_at_start() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-cli-paths");
    let (daemon, topo) = as_files(&emu, &dir, AS_B);
    // Nobody listens at either address: the check asks the daemon only.
    let reachable = format!("[{AS_A},127.0.0.1]:{}", free_dispatched_port());
    let nowhere = "[1-ff00:0:999,127.0.0.1]:31000".to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(format!("nats://{reachable},nats://{nowhere}"))
        .args(["--daemon", &daemon, "--topology"])
        .arg(&topo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn broker proxy");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let both = timeout(WAIT, async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push(l);
            let ok = seen
                .iter()
                .any(|l| l.contains(&format!("usable SCION path(s) to {reachable}")));
            let bad = seen
                .iter()
                .any(|l| l.contains("[WRN]") && l.contains(&format!("proxy: {nowhere}: ")));
            if ok && bad {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(both, "{seen:#?}");
    let count = seen.iter().find_map(|l| {
        l.split("proxy: ")
            .nth(1)?
            .split(' ')
            .next()?
            .parse::<u32>()
            .ok()
    });
    assert_eq!(
        count,
        Some(2),
        "two paths from B to A in the topology: {seen:#?}"
    );
    let _ = child.kill().await;
    drop(dir);
}

/// When a client behind the proxy disconnects, both ends stop probing each other's paths,
/// although both are still up (late probe answers must not restart probing either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_stop_probing_when_the_last_client_link_closes() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-release");
    let (srv, up) = broker_in_a(&emu, &dir).await;
    let proxy = proxy_to(&emu, &dir, up, ProxyTls::default()).await;
    let nc = async_nats::connect(proxy.listen.to_string())
        .await
        .expect("client through the proxy");
    nc.flush().await.expect("flush");
    let broker_ep = srv
        .state
        .scion
        .lock()
        .ok()
        .and_then(|g| g.client_endpoint.clone())
        .expect("client endpoint");
    let proxy_addr = proxy.endpoint.local_addr();
    let sent = || -> (u64, u64) {
        let b = broker_ep
            .path_stats(proxy_addr)
            .iter()
            .map(|c| c.probes_sent)
            .sum();
        let p = proxy
            .endpoint
            .path_stats(up)
            .iter()
            .map(|c| c.probes_sent)
            .sum();
        (b, p)
    };
    let before = sent();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let during = sent();
    assert!(
        during.1 > before.1,
        "proxy probes while linked: {before:?} {during:?}"
    );
    drop(nc);
    // The links close (the broker waits up to 2 s for the client's close), then the
    // closing handshake's settle time passes.
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    let settled = sent();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(sent(), settled, "probes after the last link closed");
    assert!(
        proxy.endpoint.path_stats(up).iter().all(|c| !c.probed),
        "a released peer's paths are not shown as probed"
    );
    drop(proxy);
    srv.shutdown().await;
}
