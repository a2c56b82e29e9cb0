//! `allow_responses`: a user whose publish permissions deny a reply subject
//! may still answer requests it received, at most `max` times within
//! `expires` (nats-server client.go `pubAllowedFullCheck`, deliverMsg reply
//! tracking; defaults from auth.go `validateResponsePermissions`).
//! The byte-exact comparison with nats-server is in differential.rs
//! (`responses_*` cases).

mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerError};
use broker::options::{Options, Permissions, ResponsePermission, SubjectPermission, User};
use broker::server::ServerHandle;
use futures::StreamExt;
use harness::{local_opts, start_broker, Raw};

const WAIT: Duration = Duration::from_secs(5);

fn opts(max: usize, expires: Duration) -> Options {
    let mut o = local_opts();
    o.authorization.users = vec![
        User {
            username: "svc".into(),
            password: "ps".into(),
            allowed_connection_types: Vec::new(),
            permissions: Some(Permissions {
                publish: Some(SubjectPermission {
                    allow: vec![],
                    deny: vec![">".into()],
                }),
                subscribe: None,
                allow_responses: Some(ResponsePermission { max, expires }),
            }),
        },
        User {
            username: "cli".into(),
            password: "pc".into(),
            allowed_connection_types: Vec::new(),
            permissions: None,
        },
    ];
    o
}

async fn connect(h: &ServerHandle, o: ConnectOptions) -> async_nats::Client {
    tokio::time::timeout(WAIT, o.connect(format!("nats://{}", h.client_addr)))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// The service answers a request although `publish: { deny: ">" }`; a
/// second answer to the same request is refused with nats-server's -ERR
/// and never reaches the requester.
#[tokio::test]
async fn service_answers_once_and_second_answer_is_refused() {
    let srv = start_broker(opts(1, Duration::from_secs(60))).await;
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let e2 = errors.clone();
    let svc = connect(
        &srv,
        ConnectOptions::with_user_and_password("svc".into(), "ps".into()).event_callback(
            move |ev| {
                let e2 = e2.clone();
                async move {
                    if let Event::ServerError(ServerError::Other(s)) = ev {
                        e2.lock().unwrap().push(s);
                    }
                }
            },
        ),
    )
    .await;
    let mut requests = svc.subscribe("svc.echo").await.unwrap();
    svc.flush().await.unwrap();
    let svc2 = svc.clone();
    let service = tokio::spawn(async move {
        while let Some(m) = requests.next().await {
            let Some(reply) = m.reply else { continue };
            // Answer twice: only the first is a permitted response (max 1).
            svc2.publish(reply.clone(), m.payload.clone())
                .await
                .unwrap();
            svc2.publish(reply, "second".into()).await.unwrap();
            svc2.flush().await.unwrap();
        }
    });

    let cli = connect(
        &srv,
        ConnectOptions::with_user_and_password("cli".into(), "pc".into()),
    )
    .await;
    // A request through the client's own inbox machinery.
    let resp = tokio::time::timeout(WAIT, cli.request("svc.echo", "ping".into()))
        .await
        .expect("request timed out")
        .expect("request failed");
    assert_eq!(resp.payload, "ping");

    // A request on a reply subject we watch: exactly one answer arrives.
    let mut inbox = cli.subscribe("_INBOX.watch").await.unwrap();
    cli.flush().await.unwrap();
    cli.publish_with_reply("svc.echo", "_INBOX.watch", "hello".into())
        .await
        .unwrap();
    cli.flush().await.unwrap();
    let first = tokio::time::timeout(WAIT, inbox.next())
        .await
        .expect("no answer")
        .unwrap();
    assert_eq!(first.payload, "hello");
    let want = "Permissions Violation for Publish to \"_INBOX.watch\"";
    let deadline = tokio::time::Instant::now() + WAIT;
    while !errors.lock().unwrap().iter().any(|e| e == want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "second answer not refused; errors: {:?}",
            errors.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The refused answer was handled before this round trip completes, so
    // it would be queued ahead of our PONG had it been delivered.
    cli.flush().await.unwrap();
    let extra = tokio::time::timeout(Duration::from_millis(200), inbox.next()).await;
    assert!(extra.is_err(), "second answer delivered: {extra:?}");
    // Without a request the service may not publish to the inbox at all.
    svc.publish("_INBOX.watch", "unsolicited".into())
        .await
        .unwrap();
    svc.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while errors.lock().unwrap().iter().filter(|e| *e == want).count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no -ERR");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.abort();
    srv.shutdown().await;
}

async fn raw_connect(h: &ServerHandle, user: &str, pass: &str) -> Raw {
    let mut r = Raw::connect(h.client_addr).await;
    r.read_line().await;
    r.send(
        format!(
            "CONNECT {{\"user\":\"{user}\",\"pass\":\"{pass}\",\"verbose\":false}}\r\nPING\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.read_pongs(1).await, b"PONG\r\n");
    r
}

/// `expires` bounds how long after the request a reply is allowed; a
/// negative-in-config (here `usize::MAX`) max allows any number before it.
#[tokio::test]
async fn replies_expire() {
    let srv = start_broker(opts(usize::MAX, Duration::from_millis(300))).await;
    let mut svc = raw_connect(&srv, "svc", "ps").await;
    let mut cli = raw_connect(&srv, "cli", "pc").await;
    svc.send(b"SUB req 1\r\nPING\r\n").await;
    assert_eq!(svc.read_pongs(1).await, b"PONG\r\n");
    cli.send(b"SUB _INBOX.e 1\r\nPUB req _INBOX.e 1\r\nq\r\nPING\r\n")
        .await;
    assert_eq!(cli.read_pongs(1).await, b"PONG\r\n");
    assert_eq!(
        svc.read_until(b"q\r\n").await,
        b"MSG req 1 _INBOX.e 1\r\nq\r\n"
    );
    // Three answers within the window pass (no max).
    svc.send(b"PUB _INBOX.e 1\r\n1\r\nPUB _INBOX.e 1\r\n2\r\nPUB _INBOX.e 1\r\n3\r\nPING\r\n")
        .await;
    assert_eq!(svc.read_pongs(1).await, b"PONG\r\n");
    cli.send(b"PING\r\n").await;
    assert_eq!(
        cli.read_pongs(1).await,
        b"MSG _INBOX.e 1 1\r\n1\r\nMSG _INBOX.e 1 1\r\n2\r\nMSG _INBOX.e 1 1\r\n3\r\nPONG\r\n"
    );
    // Past the expiry the reply subject is denied again (waiting out the
    // configured expiry is the behaviour under test).
    tokio::time::sleep(Duration::from_millis(400)).await;
    svc.send(b"PUB _INBOX.e 1\r\n4\r\nPING\r\n").await;
    assert_eq!(
        svc.read_pongs(1).await,
        b"-ERR 'Permissions Violation for Publish to \"_INBOX.e\"'\r\nPONG\r\n"
    );
    cli.send(b"PING\r\n").await;
    assert_eq!(cli.read_pongs(1).await, b"PONG\r\n");
    srv.shutdown().await;
}

/// Empty allow lists: nats-server 2.9.10 reads `allow: []` as no list at all
/// (opts.go parsePermSubjects leaves its slice nil for an empty array, and
/// client.go setPermissions builds an allow sublist only for a non-nil
/// publish list or a non-empty subscribe list), so everything is allowed
/// except what a deny list names. Only `allow_responses` turns the blanket
/// publish allow off (opts.go parseUserPermissions); see `opts` above.
const EMPTY_ALLOW_CONF: &str = r#"authorization {
  users = [
    { user: e, password: e, permissions: { publish: { allow: [] }, subscribe: { allow: [] } } }
    { user: d, password: d, permissions: { publish: { allow: [], deny: ["no.>"] } } }
  ]
}"#;

/// Runs one script as `user` and returns everything the server sent after
/// its INFO, up to the PONG that ends the script.
async fn empty_allow_transcript(addr: std::net::SocketAddr, user: &str, script: &str) -> String {
    let mut c = Raw::connect(addr).await;
    let info = c.read_line().await;
    assert!(info.starts_with(b"INFO "), "{info:?}");
    c.send(
        format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"user\":\"{user}\",\"pass\":\"{user}\"}}\r\n{script}PING\r\n"
        )
        .as_bytes(),
    )
    .await;
    String::from_utf8_lossy(&c.read_until(b"PONG\r\n").await).into_owned()
}

#[tokio::test]
async fn empty_allow_list_allows_everything() {
    let mut o = broker::config::load_str(EMPTY_ALLOW_CONF)
        .unwrap_or_else(|e| panic!("conf: {e}"))
        .options;
    let base = local_opts();
    o.host = base.host;
    o.port = base.port;
    let ours = start_broker(o).await;
    let all = "SUB foo 1\r\nPUB foo 2\r\nhi\r\n";
    let deny = "SUB no.x 1\r\nSUB ok 2\r\nPUB no.x 1\r\nx\r\nPUB ok 1\r\ny\r\n";
    let a_all = empty_allow_transcript(ours.client_addr, "e", all).await;
    let a_deny = empty_allow_transcript(ours.client_addr, "d", deny).await;
    assert_eq!(a_all, "MSG foo 1 2\r\nhi\r\nPONG\r\n");
    assert_eq!(
        a_deny,
        "-ERR 'Permissions Violation for Publish to \"no.x\"'\r\nMSG ok 2 1\r\ny\r\nPONG\r\n"
    );
    ours.shutdown().await;

    let theirs = harness::RefServer::start(EMPTY_ALLOW_CONF)
        .unwrap_or_else(|e| panic!("needs the reference nats-server 2.9.10: {e}"));
    assert_eq!(
        empty_allow_transcript(theirs.addr, "e", all).await,
        a_all,
        "nats-server vs ours"
    );
    assert_eq!(
        empty_allow_transcript(theirs.addr, "d", deny).await,
        a_deny,
        "nats-server vs ours"
    );
}
