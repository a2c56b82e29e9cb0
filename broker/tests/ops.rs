//! Operator-facing behaviour of the `broker` binary beyond start/stop:
//! log reopen (SIGUSR1), what SIGHUP reload applies, syslog, `--signal`,
//! `--ports_file_dir`. Where the scenario is the same, it also runs against
//! Debian's nats-server 2.9.10 (skipped when not installed).

mod harness;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::free_port;

use harness::procs::{
    nats_available, read_until, start_on_conf, start_on_conf_with, tmpdir, wait_file, Proc,
    Started, BIN, NATS,
};

/// SIGUSR1 after log rotation: the server keeps running and writes to a
/// new file at the configured path (server/signal.go -> log.go ReOpenLogFile).
fn reopen_scenario(bin: &str) -> String {
    let dir = tmpdir(&format!("usr1-{}", bin.len()));
    let log = dir.join("s.log");
    let port = free_port();
    let mut p = Proc::spawn(
        bin,
        &[
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-l",
            log.to_str().unwrap(),
        ],
    );
    wait_file(&log, "Server is ready", 0);
    std::fs::rename(&log, dir.join("s.log.1")).unwrap();
    p.signal(libc::SIGUSR1);
    let text = wait_file(&log, "File log re-opened", 0);
    assert!(p.alive(), "{bin} died on SIGUSR1");
    // Still serving.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(read_until(&mut c, "\r\n").starts_with("INFO "));
    p.signal(libc::SIGINT);
    p.wait_exit();
    let _ = std::fs::remove_dir_all(dir);
    text
}

#[test]
fn sigusr1_reopens_log_file_like_nats_server() {
    let ours = reopen_scenario(BIN);
    assert!(ours.contains("[INF] File log re-opened"), "{ours}");
    if nats_available() {
        let theirs = reopen_scenario(NATS);
        assert!(theirs.contains("[INF] File log re-opened"), "{theirs}");
    }
}

#[test]
fn sigusr1_without_log_file_is_not_fatal() {
    let port = free_port();
    let mut p = Proc::spawn(BIN, &["-a", "127.0.0.1", "-p", &port.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    p.signal(libc::SIGUSR1);
    // A PING round trip after the signal proves the process handled it and
    // lives on (SIGUSR1's default action would have ended it).
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    read_until(&mut c, "\r\n");
    c.write_all(b"CONNECT {}\r\nPING\r\n").unwrap();
    assert!(read_until(&mut c, "PONG").contains("PONG"));
    assert!(p.alive());
}

/// Connects, reads INFO, sends CONNECT with these credentials and waits
/// for the PONG.
fn client(port: u16, user: &str, pass: &str) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    read_until(&mut c, "\r\n");
    c.write_all(
        format!(
            "CONNECT {{\"user\":\"{user}\",\"pass\":\"{pass}\",\"verbose\":false}}\r\nPING\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(read_until(&mut c, "PONG").contains("PONG"));
    c
}

/// A reload that removes user `b`, changes `c`'s password and narrows
/// user `a`'s permissions: `b` is closed without a word (reload.go
/// clientHasMovedToDifferentAccount), `c` gets Authorization Violation,
/// `a` loses the `foo`
/// subscription (with an -ERR naming subject and sid) and the publish
/// permission for `baz`, keeps `bar` (reload.go reloadAuthorization,
/// client.go processSubsOnConfigReload). Returns what `a` and `b` saw.
/// `b` holds "what b saw|what c saw" (both read until EOF or timeout).
fn auth_reload_scenario(bin: &str) -> (String, String, String) {
    // -DV: the -ERRs a reload sends are traced (client.go sendErr).
    let s = start_on_conf_with(
        bin,
        "auth",
        "authorization { users [\n\
         {user: a, password: a, permissions: {subscribe: [foo, bar]}}\n\
         {user: b, password: b}\n\
         {user: c, password: c}\n] }\n",
        &["-DV"],
    );
    let port = s.port;
    let mut a = client(port, "a", "a");
    a.write_all(b"SUB foo 1\r\nSUB bar 2\r\nPING\r\n").unwrap();
    assert!(read_until(&mut a, "PONG").contains("PONG"));
    let mut b = client(port, "b", "b");
    let mut c = client(port, "c", "c");
    std::fs::write(
        &s.conf,
        format!(
            "{}authorization {{ users [\n\
             {{user: a, password: a, permissions: {{subscribe: [bar], publish: [bar]}}}}\n\
             {{user: c, password: c2}}\n] }}\n",
            s.head
        ),
    )
    .unwrap();
    let mark = std::fs::metadata(&s.log).unwrap().len() as usize;
    s.p.signal(libc::SIGHUP);
    let text = wait_file(&s.log, "Reloaded server configuration", mark);
    let b_saw = read_until(&mut b, "Authorization Violation");
    let c_saw = read_until(&mut c, "Authorization Violation");
    let mut a_saw = read_until(&mut a, "(sid \"1\")");
    a.write_all(b"PUB baz 1\r\nx\r\nPUB bar 1\r\ny\r\nPING\r\n")
        .unwrap();
    a_saw.push_str(&read_until(&mut a, "PONG"));
    s.stop();
    (a_saw, b_saw + "|" + &c_saw, text[mark..].to_string())
}

fn check_auth_reload(bin: &str) {
    let (a, b, log) = auth_reload_scenario(bin);
    assert!(
        b.contains("-ERR 'Authorization Violation'"),
        "{bin}: b saw {b:?}"
    );
    assert!(
        a.contains("-ERR 'Permissions Violation for Subscription to \"foo\" (sid \"1\")'"),
        "{bin}: a saw {a:?}"
    );
    assert!(
        a.contains("-ERR 'Permissions Violation for Publish to \"baz\"'"),
        "{bin}: a saw {a:?}"
    );
    // The kept subscription still delivers.
    assert!(a.contains("MSG bar 2 1\r\ny\r\n"), "{bin}: a saw {a:?}");
    assert!(
        log.contains("Removed sub \"foo\" (sid \"1\") for User \"a\" - not authorized"),
        "{bin}: {log}"
    );
    assert!(
        log.contains("- ->> [-ERR Authorization Violation]"),
        "{bin}: {log}"
    );
    assert!(
        log.contains("- ->> [-ERR Permissions Violation for Subscription to \"foo\" (sid \"1\")]"),
        "{bin}: {log}"
    );
}

#[test]
fn sighup_authorization_change_rechecks_existing_clients_like_nats_server() {
    check_auth_reload(BIN);
    if nats_available() {
        check_auth_reload(NATS);
    }
}

/// A reload that adds a TCP route dials it; one that removes it closes the route we dialled
/// ("Route Removed") and does not dial it again (reload.go routesOption, route.go
/// routeStillValid). Returns the server's log after the first reload.
fn route_reload_scenario(bin: &str) -> String {
    let dir = tmpdir(&format!("route-reload-{}", bin.len()));
    let (conf, log) = (dir.join("s.conf"), dir.join("s.log"));
    let (peer_conf, peer_log) = (dir.join("p.conf"), dir.join("p.log"));
    let (port, cport) = (free_port(), free_port());
    let (peer_port, peer_cport) = (free_port(), free_port());
    std::fs::write(
        &peer_conf,
        format!(
            "listen: 127.0.0.1:{peer_port}\nlog_file: \"{}\"\ncluster {{ name: c, listen: 127.0.0.1:{peer_cport} }}\n",
            peer_log.display()
        ),
    )
    .unwrap();
    let _peer = Proc::spawn(BIN, &["-c", peer_conf.to_str().unwrap()]);
    wait_file(&peer_log, "Server is ready", 0);
    let head = format!(
        "listen: 127.0.0.1:{port}\nlog_file: \"{}\"\ncluster {{ name: c, listen: 127.0.0.1:{cport}\n",
        log.display()
    );
    std::fs::write(&conf, format!("{head}}}\n")).unwrap();
    let mut p = Proc::spawn(bin, &["-c", conf.to_str().unwrap()]);
    wait_file(&log, "Server is ready", 0);
    let route = format!("nats-route://127.0.0.1:{peer_cport}");
    std::fs::write(&conf, format!("{head}routes: [\"{route}\"]\n}}\n")).unwrap();
    let added = std::fs::metadata(&log).unwrap().len() as usize;
    p.signal(libc::SIGHUP);
    wait_file(&log, "Reloaded server configuration", added);
    wait_file(&log, "Route connection created", added);
    std::fs::write(&conf, format!("{head}}}\n")).unwrap();
    let removed = std::fs::metadata(&log).unwrap().len() as usize;
    p.signal(libc::SIGHUP);
    wait_file(&log, "Reloaded server configuration", removed);
    wait_file(&log, "Route Removed", removed);
    // nats-server re-dials a dropped configured route after about a second; a removed one
    // must stay gone.
    std::thread::sleep(Duration::from_millis(2500));
    let text = std::fs::read_to_string(&log).unwrap();
    let after = &text[removed..];
    assert!(
        !after.contains("Route connection created"),
        "{bin}: removed route dialled again:\n{after}"
    );
    assert!(
        after.contains(&format!("Removed route {route}")),
        "{bin}:\n{after}"
    );
    assert!(
        after.contains("Router connection closed: Route Removed"),
        "{bin}:\n{after}"
    );
    p.signal(libc::SIGINT);
    p.wait_exit();
    let _ = std::fs::remove_dir_all(dir);
    text[added..].to_string()
}

#[test]
fn sighup_adds_and_removes_tcp_routes_like_nats_server() {
    let ours = route_reload_scenario(BIN);
    assert!(ours.contains("Reloaded: cluster routes"), "{ours}");
    if nats_available() {
        let theirs = route_reload_scenario(NATS);
        assert!(theirs.contains("Reloaded: cluster routes"), "{theirs}");
    }
}

#[test]
fn sighup_refuses_a_scion_route_without_scion_listener_and_applies_log_levels() {
    let dir = tmpdir("routes");
    let conf = dir.join("s.conf");
    let log = dir.join("s.log");
    let port = free_port();
    let cport = free_port();
    let head = format!(
        "listen: 127.0.0.1:{port}\nlog_file: \"{}\"\ncluster {{ listen: 127.0.0.1:{cport}\n",
        log.display()
    );
    std::fs::write(&conf, format!("{head}}}\n")).unwrap();
    let mut p = Proc::spawn(BIN, &["-c", conf.to_str().unwrap()]);
    wait_file(&log, "Server is ready", 0);
    std::fs::write(
        &conf,
        format!("{head}routes: [\"nats-route://[1-ff00:0:111,127.0.0.1]:31000\"]\n}}\n"),
    )
    .unwrap();
    let mark = std::fs::metadata(&log).unwrap().len() as usize;
    p.signal(libc::SIGHUP);
    let text = wait_file(&log, "Failed to reload server configuration", mark);
    let tail = &text[mark..];
    // No SCION cluster.listen to dial it from: refused, naming the route.
    assert!(
        tail.contains("config reload not supported for cluster routes: ")
            && tail.contains(
                "nats-route://[1-ff00:0:111,127.0.0.1]:31000 needs a SCION cluster.listen address"
            ),
        "{tail}"
    );
    assert!(
        !tail.contains("ScionOpts") && !tail.contains("Some("),
        "{tail}"
    );
    assert!(!tail.contains("Reloaded server configuration"), "{tail}");
    // debug: true is applied: a new connection is logged at [DBG].
    std::fs::write(&conf, format!("debug: true\n{head}}}\n")).unwrap();
    let mark = std::fs::metadata(&log).unwrap().len() as usize;
    p.signal(libc::SIGHUP);
    wait_file(&log, "Reloaded server configuration", mark);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    read_until(&mut c, "\r\n");
    wait_file(&log, "[DBG]", mark);
    p.signal(libc::SIGINT);
    p.wait_exit();
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `bin` to completion (bounded) and returns exit code and stderr.
fn run_bounded(bin: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = child.stderr.take().expect("stderr");
    let mut p = Proc { child };
    let code = p.wait_exit();
    let mut text = String::new();
    let _ = err.read_to_string(&mut text);
    (code, text)
}

/// One polled accept on a non-blocking listener: the connection, made blocking with a short
/// read timeout, goes into `$stream`; without one, a short sleep. Evaluates to 0 (bytes read).
macro_rules! accept_polled {
    ($listener:expr, $stream:expr) => {{
        if let Ok((c, _)) = $listener.accept() {
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            $stream = Some(Box::new(c));
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
        0
    }};
}

/// Where a `remote_syslog` scenario listens: a UDP socket, a TCP listener or a unix stream
/// listener, as `-r` names them (logger/syslog.go getNetworkAndAddr).
enum SyslogServer {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// `remote_syslog` (`-r <url>`): the broker's `Server is ready` line as the syslog server
/// received it (logger/syslog.go NewRemoteSysLogger, Go log/syslog format), bounded.
fn remote_syslog_scenario(bin: &str, scheme: &str) -> String {
    let dir = harness::scratch_dir("syslog");
    let (server, url) = match scheme {
        "udp" => {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let url = format!("udp://{}", s.local_addr().unwrap());
            (SyslogServer::Udp(s), url)
        }
        "tcp" => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            let url = format!("tcp://{}", l.local_addr().unwrap());
            (SyslogServer::Tcp(l), url)
        }
        _ => {
            let path = dir.join("syslog.sock");
            let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
            l.set_nonblocking(true).unwrap();
            (SyslogServer::Unix(l), format!("unix://{}", path.display()))
        }
    };
    let port = free_port();
    // A zone away from UTC (when tzdata has it), so that the stamps' zone is compared too.
    let env: &[(&str, &str)] = if Path::new("/usr/share/zoneinfo/Asia/Kolkata").exists() {
        &[("TZ", "Asia/Kolkata")]
    } else {
        &[]
    };
    let mut p = Proc::spawn_env(
        bin,
        &["-a", "127.0.0.1", "-p", &port.to_string(), "-r", &url],
        env,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    let mut buf = [0u8; 2048];
    let mut stream: Option<Box<dyn Read>> = None;
    let ready = loop {
        assert!(
            Instant::now() < deadline,
            "{bin} {scheme}: no syslog line; saw {text:?}"
        );
        if let Some(i) = text.find("Server is ready") {
            let start = text[..i].rfind('<').unwrap_or(0);
            let end = text[i..].find('\n').map_or(text.len(), |n| i + n + 1);
            break text[start..end].to_string();
        }
        let n = match (&server, stream.as_mut()) {
            (SyslogServer::Udp(s), _) => s.recv(&mut buf).unwrap_or(0),
            (_, Some(r)) => r.read(&mut buf).unwrap_or(0),
            // Polled, so that a server that never dials fails the deadline above.
            (SyslogServer::Tcp(l), None) => accept_polled!(l, stream),
            (SyslogServer::Unix(l), None) => accept_polled!(l, stream),
        };
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    };
    p.signal(libc::SIGINT);
    p.wait_exit();
    // What the server logged on its way out must have reached the syslog server too (Go's
    // writer sends each line before it returns; ours drains its queue before exiting).
    let deadline = Instant::now() + Duration::from_secs(3);
    while !text.contains("Server Exiting") && Instant::now() < deadline {
        let n = match (&server, stream.as_mut()) {
            (SyslogServer::Udp(s), _) => s.recv(&mut buf).unwrap_or(0),
            (_, Some(r)) => match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => 0,
            },
            _ => break,
        };
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        text.contains("Server Exiting"),
        "{bin} {scheme}: no exit line; saw {text:?}"
    );
    ready
}

/// A syslog line with what differs by process and moment taken out: the time stamp, and
/// the tag and pid (`broker[12]` / `nats-server[34]`).
fn syslog_shape(line: &str) -> String {
    let Some((head, msg)) = line.split_once("]: ") else {
        return format!("unparsed: {line:?}");
    };
    let head = head.rsplit_once(' ').map_or("", |(h, _tag)| h);
    // `<PRI>` then the time stamp: RFC 3339 and the host name over the network, Go's
    // time.Stamp (`Nov 25 06:30:00`) on a unix socket.
    let Some((pri, rest)) = head.split_once('>') else {
        return format!("unparsed: {line:?}");
    };
    // The stamp with its digits masked: its layout (and an RFC 3339 zone) stays.
    let mask = |t: &str| -> String {
        t.chars()
            .map(|c| if c.is_ascii_digit() { 'D' } else { c })
            .collect()
    };
    let stamp_and_host = match rest.split_once(' ') {
        Some((ts, host)) if ts.contains('T') => format!("{} {host}", mask(ts)),
        // `Jan _2 15:04:05`: 15 characters, the day padded with a space.
        _ => mask(rest.get(..15).unwrap_or(rest)),
    };
    format!("{pri}>{stamp_and_host} TAG[PID]: {msg}")
}

#[test]
fn remote_syslog_over_udp_tcp_and_unix_like_nats_server() {
    for scheme in ["udp", "tcp", "unix"] {
        let ours = remote_syslog_scenario(BIN, scheme);
        assert!(ours.starts_with("<5>"), "{scheme}: {ours:?}");
        assert!(ours.ends_with("]: Server is ready\n"), "{scheme}: {ours:?}");
        let shape = syslog_shape(&ours);
        let want = if scheme == "unix" {
            "<5>"
        } else {
            "<5>DDDD-DD-DDTDD:DD:DD"
        };
        assert!(shape.starts_with(want), "{scheme}: {shape}");
        if nats_available() {
            let theirs = remote_syslog_scenario(NATS, scheme);
            assert_eq!(
                shape,
                syslog_shape(&theirs),
                "{scheme}: {ours:?} vs {theirs:?}"
            );
        }
    }
}

/// A `remote_syslog` server that cannot be reached stops the start, as in nats-server
/// (log.Fatalf "error connecting to syslog: %q" with Go's dial error); an unknown scheme too.
#[test]
fn unreachable_remote_syslog_stops_the_start() {
    let dir = harness::scratch_dir("syslog-gone");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let tcp = format!("tcp://127.0.0.1:{port}");
    let sock = dir.join("none.sock");
    let unix = format!("unix://{}", sock.display());
    let cases = [
        (
            tcp.as_str(),
            format!(
                "error connecting to syslog: \"dial tcp 127.0.0.1:{port}: connect: connection refused\""
            ),
        ),
        (
            unix.as_str(),
            format!(
                "error connecting to syslog: \"dial unix {}: connect: no such file or directory\"",
                sock.display()
            ),
        ),
        (
            "smtp://127.0.0.1:25",
            "error invalid network type: \"smtp\"".to_string(),
        ),
        // Bare forms: url.Parse refuses the first, reads `localhost` as the scheme of the
        // second and no scheme at all in the third.
        (
            "127.0.0.1:5514",
            "parse \"127.0.0.1:5514\": first path segment in URL cannot contain colon"
                .to_string(),
        ),
        (
            "localhost:5514",
            "error invalid network type: \"localhost\"".to_string(),
        ),
        ("loghost", "error invalid network type: \"\"".to_string()),
    ];
    // The message, without what comes before it: Go's log date (`2006/01/02 15:04:05 `) or
    // our program name (`nats-server: `).
    let message = |err: &str| {
        let line = err.lines().next().unwrap_or_default();
        let dated = line.len() > 20
            && line.as_bytes()[4] == b'/'
            && line.as_bytes()[7] == b'/'
            && line.as_bytes()[19] == b' ';
        if dated {
            line[20..].to_string()
        } else {
            match line.split_once(": ") {
                Some((name, rest)) if !name.contains(' ') => rest.to_string(),
                _ => line.to_string(),
            }
        }
    };
    for (url, want) in cases {
        let (code, err) = run_bounded(BIN, &["-a", "127.0.0.1", "-p", "-1", "-r", url]);
        assert_ne!(code, Some(0), "{url}: {err}");
        assert_eq!(message(&err), want, "{url}: {err}");
        if nats_available() {
            let (code, err) = run_bounded(NATS, &["-a", "127.0.0.1", "-p", "-1", "-r", url]);
            assert_ne!(code, Some(0), "nats-server {url}: {err}");
            assert_eq!(message(&err), want, "nats-server {url}: {err}");
        }
    }
}

/// The log's time stamps are in the local zone, as Go's log package writes them: with
/// `TZ=Asia/Kolkata` (UTC+05:30, no summer time) the `Server is ready` line's stamp is the
/// UTC time plus 5:30, for nats-server and for ours.
#[test]
fn log_time_stamps_are_local_time() {
    if !Path::new("/usr/share/zoneinfo/Asia/Kolkata").exists() {
        eprintln!("no tzdata (Asia/Kolkata): nothing to check");
        return;
    }
    let stamp = |bin: &str| {
        let dir = tmpdir(&format!("tz-{}", bin.rsplit('/').next().unwrap_or("x")));
        let log = dir.join("server.log");
        let port = free_port();
        let log_arg = log.to_string_lossy().into_owned();
        let mut p = Proc::spawn_env(
            bin,
            &["-a", "127.0.0.1", "-p", &port.to_string(), "-l", &log_arg],
            &[("TZ", "Asia/Kolkata")],
        );
        let text = wait_file(&log, "Server is ready", 0);
        let utc_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        p.signal(libc::SIGINT);
        p.wait_exit();
        // `[pid] 2006/01/02 15:04:05.000000 [INF] ...`: the clock time of the ready line.
        let line = text
            .lines()
            .find(|l| l.contains("Server is ready"))
            .unwrap_or_default()
            .to_string();
        let time = line
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string();
        let secs_of_day = |t: &str| -> Option<i64> {
            let mut it = t.split(['.', ':']).map(|x| x.parse::<i64>().ok());
            Some(it.next()?? * 3600 + it.next()?? * 60 + it.next()??)
        };
        let logged = secs_of_day(&time).unwrap_or_else(|| panic!("{bin}: {line:?}"));
        let want = (utc_now + 5 * 3600 + 30 * 60).rem_euclid(86_400);
        let diff = (logged - want).rem_euclid(86_400);
        assert!(
            diff <= 10 || diff >= 86_400 - 10,
            "{bin}: logged {time}, local now {:02}:{:02}:{:02}: {line:?}",
            want / 3600,
            want / 60 % 60,
            want % 60
        );
    };
    stamp(BIN);
    if nats_available() {
        stamp(NATS);
    }
}

#[test]
fn syslog_flag_is_used_not_ignored() {
    if Path::new("/dev/log").exists() {
        // A syslog daemon is listening: the broker must start and log there
        // (not to stderr).
        let port = free_port();
        let (_, err) = {
            let mut p = Proc::spawn(BIN, &["-a", "127.0.0.1", "-p", &port.to_string(), "-s"]);
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_millis(20));
            }
            p.signal(libc::SIGINT);
            (p.wait_exit(), String::new())
        };
        assert!(err.is_empty());
        return;
    }
    // No syslog socket: nats-server fails at start (log.Fatalf "error connecting to
    // syslog: %q" with Go log/syslog's "Unix syslog delivery error"); so must we, instead of
    // ignoring -s.
    let want = "error connecting to syslog: \"Unix syslog delivery error\"";
    let (code, err) = run_bounded(BIN, &["-a", "127.0.0.1", "-p", "-1", "-s"]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains(want), "{err}");
    if nats_available() {
        let (code, err) = run_bounded(NATS, &["-a", "127.0.0.1", "-p", "-1", "-s"]);
        assert_ne!(code, Some(0));
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn signal_flag_errors_match_nats_server() {
    let cases: [(&[&str], &str); 4] = [
        (&["--signal", "bogus=1"], "unknown signal \"bogus\""),
        (&["--signal", "quit=a=b"], "invalid signal parameters: [b]"),
        (&["-sl", "quit=xyz"], "invalid pid: xyz"),
        (&["--signal", "quit=999999999"], "no such process"),
    ];
    for (args, want) in cases {
        let (code, err) = run_bounded(BIN, args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end(), format!("nats-server: {want}"), "{args:?}");
        if nats_available() {
            let (code, err) = run_bounded(NATS, args);
            assert_eq!(code, Some(1));
            assert_eq!(
                err.trim_end(),
                format!("nats-server: {want}"),
                "nats {args:?}"
            );
        }
    }
}

#[test]
fn signal_flag_reaches_the_server_through_its_pid_file() {
    let dir = tmpdir("sl");
    let log = dir.join("s.log");
    let pid = dir.join("s.pid");
    let port = free_port();
    let mut p = Proc::spawn(
        BIN,
        &[
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-l",
            log.to_str().unwrap(),
            "-P",
            pid.to_str().unwrap(),
        ],
    );
    wait_file(&log, "Server is ready", 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid.exists() {
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    }
    // `reopen=<pid file>` (opts.go maybeReadPidFile).
    let (code, err) = run_bounded(BIN, &["--signal", &format!("reopen={}", pid.display())]);
    assert_eq!(code, Some(0), "{err}");
    wait_file(&log, "File log re-opened", 0);
    // Without `=pid`: the -P pid file.
    let (code, err) = run_bounded(BIN, &["-P", pid.to_str().unwrap(), "--signal", "quit"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(p.wait_exit(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

/// `--ports_file_dir`: `<dir>/<exe>_<pid>.ports` with the bound client and
/// monitoring URLs, removed at shutdown (server.go logPorts,
/// deletePortsFile).
/// `monitor`: the monitoring flags (`-m -1`, or `-ms -1` with the `--tls*` flags).
fn ports_file_scenario(bin: &str, exe: &str, monitor: &[&str]) -> serde_json::Value {
    let dir = tmpdir(&format!("ports-{exe}"));
    let mut args = vec!["-a", "127.0.0.1", "-p", "-1"];
    args.extend_from_slice(monitor);
    args.extend_from_slice(&["--ports_file_dir", dir.to_str().unwrap()]);
    let mut p = Proc::spawn(bin, &args);
    let file = dir.join(format!("{exe}_{}.ports", p.child.id()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let v: serde_json::Value = loop {
        assert!(Instant::now() < deadline, "{bin}: no {}", file.display());
        if let Ok(t) = std::fs::read_to_string(&file) {
            if let Ok(v) = serde_json::from_str(&t) {
                break v;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let nats = v["nats"][0].as_str().unwrap().to_string();
    let port: u16 = nats.rsplit(':').next().unwrap().parse().unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(read_until(&mut c, "\r\n").starts_with("INFO "));
    p.signal(libc::SIGINT);
    p.wait_exit();
    assert!(!file.exists(), "{bin}: ports file left behind");
    let _ = std::fs::remove_dir_all(dir);
    v
}

#[test]
fn ports_file_dir_writes_ports_json_like_nats_server() {
    let check = |v: &serde_json::Value, nats: &str, monitoring: &str| {
        let obj = v.as_object().unwrap();
        let keys: Vec<&String> = obj.keys().collect();
        assert_eq!(keys, ["monitoring", "nats"], "{v}");
        assert!(v["nats"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{nats}://127.0.0.1:")));
        assert!(v["monitoring"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{monitoring}://127.0.0.1:")));
    };
    // With client TLS and https monitoring the schemes are `tls` and `https` (server.go
    // PortsInfo).
    let d = tmpdir("ports-tls");
    let a = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key, a.signing_key.serialize_pem()).unwrap();
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let tls = ["-ms", "-1", "--tls", "--tlscert", c, "--tlskey", k];
    check(
        &ports_file_scenario(BIN, "broker", &["-m", "-1"]),
        "nats",
        "http",
    );
    check(&ports_file_scenario(BIN, "broker", &tls), "tls", "https");
    if nats_available() {
        check(
            &ports_file_scenario(NATS, "nats-server", &["-m", "-1"]),
            "nats",
            "http",
        );
        check(
            &ports_file_scenario(NATS, "nats-server", &tls),
            "tls",
            "https",
        );
    }
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn help_text_does_not_claim_scion_links_are_missing() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(!text.contains("not yet available"), "{text}");
    assert!(
        text.contains("--signal") && text.contains("--ports_file_dir"),
        "{text}"
    );
}

#[test]
fn info_go_field_names_the_compiler_that_built_the_broker() {
    // The toolchain running the tests is the one that built the binary.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let port = free_port();
    let mut p = Proc::spawn(BIN, &["-a", "127.0.0.1", "-p", &port.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
            break c;
        }
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let info = read_until(&mut c, "\r\n");
    assert!(
        info.contains(&format!("\"go\":\"rust{version}\"")),
        "{info}"
    );
    p.signal(libc::SIGINT);
    p.wait_exit();
}

/// A reload that lowers `max_payload` reaches clients already connected
/// (reload.go maxPayloadOption.Apply stores it in every client's `mpay`):
/// a PUB that was fine before is a Maximum Payload Violation after, and the
/// log says `Reloaded: max_payload = 100`. Returns what the client saw and
/// the log after the reload.
/// A server from `bin` on a fresh folder's `s.conf`: `head` (its client listen and log
/// file lines) then `rest`; returned once its log says it is ready.
fn max_payload_reload_scenario(bin: &str) -> (String, String) {
    let Started {
        dir,
        conf,
        log,
        port,
        head,
        mut p,
    } = start_on_conf(bin, "mpay", "max_payload: 1000\n");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    read_until(&mut c, "\r\n");
    let body = "x".repeat(200);
    c.write_all(
        format!("CONNECT {{\"verbose\":false}}\r\nPUB a 200\r\n{body}\r\nPING\r\n").as_bytes(),
    )
    .unwrap();
    let mut saw = read_until(&mut c, "PONG");
    std::fs::write(&conf, format!("{head}max_payload: 100\n")).unwrap();
    let mark = std::fs::metadata(&log).unwrap().len() as usize;
    p.signal(libc::SIGHUP);
    let text = wait_file(&log, "Reloaded server configuration", mark);
    c.write_all(format!("PUB a 200\r\n{body}\r\n").as_bytes())
        .unwrap();
    saw.push('|');
    saw.push_str(&read_until(&mut c, "Violation'"));
    p.signal(libc::SIGINT);
    p.wait_exit();
    let _ = std::fs::remove_dir_all(dir);
    (saw, text[mark..].to_string())
}

fn check_max_payload_reload(bin: &str) {
    let (saw, log) = max_payload_reload_scenario(bin);
    let (before, after) = saw.split_once('|').unwrap();
    assert!(
        before.contains("PONG") && !before.contains("-ERR"),
        "{bin}: {saw:?}"
    );
    assert!(
        after.contains("-ERR 'Maximum Payload Violation'"),
        "{bin}: {saw:?}"
    );
    assert!(log.contains("Reloaded: max_payload = 100"), "{bin}: {log}");
}

#[test]
fn sighup_max_payload_reaches_connected_clients_like_nats_server() {
    check_max_payload_reload(BIN);
    if nats_available() {
        check_max_payload_reload(NATS);
    }
}

/// The log lines of four reloads: one that changes what nats-server reloads (its
/// `Reloaded: ...` lines, in its order and words), then three it refuses
/// (`max_subscriptions`, `lame_duck_duration`: no reload case in reload.go; adding a
/// `no_auth_user`). The
/// folder is written as `DIR`; the new pid file must exist.
fn reload_lines_scenario(bin: &str) -> Vec<String> {
    let dir = tmpdir(&format!("rlines-{}", bin.len()));
    let conf = dir.join("s.conf");
    let log = dir.join("s.log");
    let pid = dir.join("s.pid");
    let port = free_port();
    let head = format!(
        "listen: 127.0.0.1:{port}\nlog_file: \"{}\"\n",
        log.display()
    );
    std::fs::write(
        &conf,
        format!("{head}authorization {{ user: a, password: pa }}\nping_interval: \"2m\"\nmax_connections: 10\n"),
    )
    .unwrap();
    let mut p = Proc::spawn(bin, &["-c", conf.to_str().unwrap()]);
    wait_file(&log, "Server is ready", 0);
    let changed = format!(
        "{head}debug: true\nauthorization {{ user: a, password: pb, timeout: 3 }}\n\
         ping_interval: \"3m\"\nmax_connections: 20\nwrite_deadline: \"5s\"\npid_file: \"{}\"\n",
        pid.display()
    );
    let mut lines = Vec::new();
    let steps = [
        (changed.clone(), "Reloaded server configuration"),
        (
            format!("{changed}max_subscriptions: 5\n"),
            "Failed to reload",
        ),
        (
            format!("{changed}lame_duck_duration: \"30s\"\n"),
            "Failed to reload",
        ),
        (
            format!("{head}authorization {{ users = [ {{user: a, password: pa}} ] }}\nno_auth_user: a\n"),
            "Failed to reload",
        ),
    ];
    for (text, until) in steps {
        std::fs::write(&conf, text).unwrap();
        let mark = std::fs::metadata(&log).unwrap().len() as usize;
        p.signal(libc::SIGHUP);
        let all = wait_file(&log, until, mark);
        for l in all[mark..]
            .lines()
            .filter(|l| l.contains("Reloaded") || l.contains("Failed to reload"))
        {
            let at = l.find(" [INF] ").or(l.find(" [ERR] ")).map_or(0, |i| i + 1);
            let l = l[at..].replace(&dir.display().to_string(), "DIR");
            lines.push(l);
        }
    }
    assert!(pid.exists(), "{bin}: the reloaded pid_file was written");
    p.signal(libc::SIGINT);
    p.wait_exit();
    let _ = std::fs::remove_dir_all(dir);
    lines
}

#[test]
fn sighup_reload_lines_like_nats_server() {
    let ours = reload_lines_scenario(BIN);
    let want = [
        "[INF] Reloaded: debug = true",
        "[INF] Reloaded: max_connections = 20",
        "[INF] Reloaded: authorization users",
        "[INF] Reloaded: accounts",
        "[INF] Reloaded: authorization password",
        "[INF] Reloaded: ping_interval = 3m0s",
        "[INF] Reloaded: authorization timeout = 3",
        "[INF] Reloaded: pid_file = DIR/s.pid",
        "[INF] Reloaded: write_deadline = 5s",
        "[INF] Reloaded server configuration",
        "[ERR] Failed to reload server configuration: config reload not supported for MaxSubs: old=0, new=5",
        "[ERR] Failed to reload server configuration: config reload not supported for LameDuckDuration: old=2m0s, new=30s",
        "[ERR] Failed to reload server configuration: config reload not supported for NoAuthUser: old=, new=a",
    ];
    assert_eq!(ours, want);
    if nats_available() {
        assert_eq!(reload_lines_scenario(NATS), want);
    }
}

/// Reloading the cluster block: nats-server applies a new name ("Cluster name updated to
/// D" before "Reloaded: cluster"), no_advertise, connect_retries and the route
/// authorization (validateClusterOpts refuses only a new host or port, in those words).
fn cluster_reload_scenario(bin: &str) -> Vec<String> {
    let dir = tmpdir(&format!("creload-{}", bin.len()));
    let conf = dir.join("s.conf");
    let log = dir.join("s.log");
    let (port, rport, rport2) = (free_port(), free_port(), free_port());
    let head = format!(
        "listen: 127.0.0.1:{port}\nlog_file: \"{}\"\n",
        log.display()
    );
    std::fs::write(
        &conf,
        format!("{head}cluster {{ name: C, listen: \"127.0.0.1:{rport}\" }}\n"),
    )
    .unwrap();
    let mut p = Proc::spawn(bin, &["-c", conf.to_str().unwrap()]);
    wait_file(&log, "Listening for route connections", 0);
    let steps = [
        (
            format!(
                "{head}cluster {{ name: D, listen: \"127.0.0.1:{rport}\", no_advertise: true, \
                 connect_retries: 5, authorization {{ user: r, password: p, timeout: 5 }} }}\n"
            ),
            "Reloaded server configuration",
        ),
        (
            format!("{head}cluster {{ name: D, listen: \"127.0.0.1:{rport2}\" }}\n"),
            "Failed to reload",
        ),
        (
            format!("{head}cluster {{ name: D, listen: \"127.0.0.2:{rport}\" }}\n"),
            "Failed to reload",
        ),
    ];
    let mut lines = Vec::new();
    for (text, until) in steps {
        std::fs::write(&conf, text).unwrap();
        let mark = std::fs::metadata(&log).unwrap().len() as usize;
        p.signal(libc::SIGHUP);
        let all = wait_file(&log, until, mark);
        for l in all[mark..].lines().filter(|l| {
            l.contains("Reloaded") || l.contains("Failed to reload") || l.contains("Cluster name")
        }) {
            let at = l.find(" [INF] ").or(l.find(" [ERR] ")).map_or(0, |i| i + 1);
            lines.push(
                l[at..]
                    .replace(&rport.to_string(), "RPORT")
                    .replace(&rport2.to_string(), "RPORT2"),
            );
        }
    }
    p.signal(libc::SIGINT);
    p.wait_exit();
    let _ = std::fs::remove_dir_all(dir);
    lines
}

#[test]
fn cluster_reload_like_nats_server() {
    let ours = cluster_reload_scenario(BIN);
    let want = [
        "[INF] Reloaded: authorization users",
        "[INF] Reloaded: accounts",
        "[INF] Cluster name updated to D",
        "[INF] Reloaded: cluster",
        "[INF] Reloaded server configuration",
        "[ERR] Failed to reload server configuration: config reload not supported for cluster port: old=RPORT, new=RPORT2",
        "[ERR] Failed to reload server configuration: config reload not supported for cluster host: old=127.0.0.1, new=127.0.0.2",
    ];
    assert_eq!(ours, want);
    if nats_available() {
        assert_eq!(cluster_reload_scenario(NATS), want);
    }
}

/// Four clients, then a reload lowering `max_connections` to 2: which clients were told
/// 'maximum connections exceeded' and closed (a count: nats-server picks them in random
/// map order), whether the others still answer PING, and the reload's log lines.
fn max_connections_reload_scenario(bin: &str) -> (usize, usize, Vec<String>) {
    let Started {
        dir,
        conf,
        log,
        port,
        head,
        mut p,
    } = start_on_conf(bin, "mconn", "max_connections: 10\n");
    let mut clients: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            read_until(&mut c, "\r\n");
            c.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
                .unwrap();
            assert!(read_until(&mut c, "PONG").contains("PONG"), "{bin}");
            c
        })
        .collect();
    std::fs::write(&conf, format!("{head}max_connections: 2\n")).unwrap();
    let mark = std::fs::metadata(&log).unwrap().len() as usize;
    p.signal(libc::SIGHUP);
    let text = wait_file(&log, "Reloaded server configuration", mark);
    let (mut told, mut alive) = (0, 0);
    for c in &mut clients {
        // A PING answers on a kept client; a closed one has its -ERR waiting.
        let _ = c.write_all(b"PING\r\n");
        let saw = read_until(c, "\r\n");
        if saw.contains("-ERR 'maximum connections exceeded'") {
            told += 1;
        } else if saw.contains("PONG") {
            alive += 1;
        }
    }
    let lines = text[mark..]
        .lines()
        .filter(|l| l.contains("max_connections") || l.contains("maximum connections"))
        .map(|l| {
            let at = l.find(" [").map_or(0, |i| i + 1);
            // The client's address and id vary: keep the level and the words.
            let l = &l[at..];
            match l.rfind(" - ") {
                Some(i) => format!("{} - {}", &l[..5], &l[i + 3..]),
                None => l.to_string(),
            }
        })
        .collect();
    p.signal(libc::SIGINT);
    p.wait_exit();
    let _ = std::fs::remove_dir_all(dir);
    (told, alive, lines)
}

#[test]
fn sighup_lower_max_connections_closes_the_excess_like_nats_server() {
    let want = (
        2,
        2,
        vec![
            "[ERR] - maximum connections exceeded".to_string(),
            "[ERR] - maximum connections exceeded".to_string(),
            "[INF] Closed 2 connections to fall within max_connections".to_string(),
            "[INF] Reloaded: max_connections = 2".to_string(),
        ],
    );
    assert_eq!(max_connections_reload_scenario(BIN), want, "ours");
    if nats_available() {
        assert_eq!(max_connections_reload_scenario(NATS), want, "nats-server");
    }
}
