//! The `broker` binary as an operator runs it: startup log lines, `-t`,
//! SIGHUP reload, SIGINT/SIGTERM, lame duck on SIGUSR2, pid file.

mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_broker");

struct Broker {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn spawn(args: &[&str]) -> Broker {
        Broker::spawn_bin(std::path::Path::new(BIN), args)
    }

    fn spawn_bin(bin: &std::path::Path, args: &[&str]) -> Broker {
        let mut child = Command::new(bin)
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn broker");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Broker {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(l.clone());
                if l.contains(needle) {
                    return l;
                }
            }
        }
        panic!(
            "no log line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "broker did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn info_line(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n") {
        let n = s.read(&mut b).expect("read INFO");
        assert!(n > 0);
        buf.push(b[0]);
    }
    String::from_utf8(buf).unwrap()
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("broker-life-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn startup_lines_like_nats_server_and_sigint_exits_zero() {
    let port = free_port();
    let mut b = Broker::spawn(&["-a", "127.0.0.1", "-p", &port.to_string()]);
    let l = b.wait_for("Starting nats-server");
    // [pid] yyyy/mm/dd hh:mm:ss.uuuuuu [INF] text
    let re_ok = l.starts_with('[') && l.contains("] ") && l.contains(" [INF] Starting nats-server");
    assert!(re_ok, "{l}");
    b.wait_for(&format!(
        "Listening for client connections on 127.0.0.1:{port}"
    ));
    b.wait_for("Server is ready");
    b.signal(libc::SIGINT);
    assert_eq!(b.wait_exit(), 0);
}

#[test]
fn sigterm_exits_one_like_nats_server() {
    let port = free_port();
    let mut b = Broker::spawn(&["-a", "127.0.0.1", "-p", &port.to_string()]);
    b.wait_for("Server is ready");
    b.signal(libc::SIGTERM);
    assert_eq!(b.wait_exit(), 1);
}

#[test]
fn sighup_reloads_limits_and_pid_file_is_written() {
    let dir = tmpdir("hup");
    let conf = dir.join("s.conf");
    let pid = dir.join("s.pid");
    let port = free_port();
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nmax_payload: 1000\npid_file: \"{}\"\n",
            pid.display()
        ),
    )
    .unwrap();
    let mut b = Broker::spawn(&["-c", conf.to_str().unwrap()]);
    b.wait_for("Server is ready");
    assert!(info_line(port).contains("\"max_payload\":1000"));
    let written: u32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(written, b.child.id());
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nmax_payload: 2000\npid_file: \"{}\"\n",
            pid.display()
        ),
    )
    .unwrap();
    b.signal(libc::SIGHUP);
    b.wait_for("Reloaded server configuration");
    assert!(info_line(port).contains("\"max_payload\":2000"));
    // A change that needs a restart is refused and the old config stays.
    let other = free_port();
    std::fs::write(
        &conf,
        format!("listen: 127.0.0.1:{other}\nmax_payload: 3000\n"),
    )
    .unwrap();
    b.signal(libc::SIGHUP);
    b.wait_for("Failed to reload server configuration");
    assert!(info_line(port).contains("\"max_payload\":2000"));
    b.signal(libc::SIGINT);
    assert_eq!(b.wait_exit(), 0);
    // Left in place, as nats-server's (server.go never removes it), written 0660 before the
    // umask: never world-readable.
    assert!(pid.exists(), "pid file kept at exit, as nats-server does");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pid).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "pid file mode {mode:o}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Reads until the server's PONG: the client is registered (lame duck mode with no
/// client shuts down at once, so a test must not race the registration).
fn wait_pong(c: &mut TcpStream) {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("PONG") {
        let n = c.read(&mut buf).expect("read INFO and PONG");
        assert!(n > 0, "closed before PONG");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A broker on a free port with `lame_duck_grace_period: grace` and
/// `lame_duck_duration: duration`, a registered client, and lame duck mode entered (SIGUSR2).
fn in_lame_duck(
    tag: &str,
    grace: &str,
    duration: &str,
    extra: &[&str],
) -> (Broker, TcpStream, u16, std::path::PathBuf) {
    let dir = tmpdir(tag);
    let conf = dir.join("s.conf");
    let port = free_port();
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nlame_duck_grace_period: {grace}\nlame_duck_duration: {duration}\n"
        ),
    )
    .unwrap();
    let mut args = vec!["-c", conf.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut b = Broker::spawn(&args);
    b.wait_for("Server is ready");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"CONNECT {\"protocol\":1}\r\nPING\r\n")
        .unwrap();
    wait_pong(&mut c);
    b.signal(libc::SIGUSR2);
    b.wait_for("Entering lame duck mode");
    (b, c, port, dir)
}

#[test]
fn lame_duck_on_sigusr2_stops_accepting_and_closes_clients() {
    let (mut b, mut c, port, dir) = in_lame_duck("ldm", "1s", "30s", &[]);
    // The client listener is closed (server.go lameDuckMode): new clients are
    // refused, not accepted and dropped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "new clients still accepted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(b.wait_exit(), 0);
    // The existing client was closed (EOF, not the read timeout).
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .expect("the lame duck closed the existing client");
    let _ = std::fs::remove_dir_all(dir);
}

/// Signals keep working in lame duck mode, as nats-server runs it beside its signal loop:
/// SIGINT shuts down at once (exit 0) instead of after the grace period and the client
/// closes, and SIGTERM is ignored meanwhile.
#[test]
fn sigint_during_lame_duck_shuts_down_at_once() {
    let (mut b, c, _, dir) = in_lame_duck("ldm-int", "30s", "60s", &["-D"]);
    b.signal(libc::SIGTERM);
    b.wait_for("Trapped \"terminated\" signal");
    b.signal(libc::SIGINT);
    // Within wait_exit's 10 s, well before the 30 s grace period ends; 0, not the 1 of a
    // SIGTERM that was honoured.
    assert_eq!(b.wait_exit(), 0);
    b.wait_for("Initiating Shutdown...");
    assert!(
        !b.seen
            .iter()
            .any(|l| l.contains("Closing existing clients")),
        "lame duck ran to its end:\n{}",
        b.seen.join("\n")
    );
    drop(c);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_config_flag() {
    let dir = tmpdir("t");
    let good = dir.join("good.conf");
    std::fs::write(&good, "port: 4333\n").unwrap();
    let out = Command::new(BIN)
        .args(["-t", "-c", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is valid"));
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, "port: 4333\nfoo_bar: 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["-t", "-c", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.conf:2:1: unknown field \"foo_bar\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// nats-server's startup warnings (auth.go checkAuthforWarnings, server.go Start):
/// plaintext passwords, and a max_payload over 8 MB.
#[test]
fn startup_warnings_like_nats_server() {
    let dir = tmpdir("warn");
    let conf = dir.join("w.conf");
    std::fs::write(&conf, "max_payload: 16MB\n").unwrap();
    let port = free_port();
    let mut b = Broker::spawn(&[
        "-c",
        conf.to_str().unwrap(),
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--user",
        "a",
        "--pass",
        "b",
    ]);
    let l = b.wait_for("Plaintext passwords detected, use nkeys or bcrypt");
    assert!(l.contains(" [WRN] "), "{l}");
    b.wait_for("[WRN] Maximum payloads over 8.00 MB are generally discouraged and could lead to poor performance");
    b.wait_for("Server is ready");
    b.signal(libc::SIGINT);
    assert_eq!(b.wait_exit(), 0);
    // A bcrypt password: no warning.
    let port = free_port();
    let mut b = Broker::spawn(&[
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--user",
        "a",
        "--pass",
        "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
    ]);
    b.wait_for("Server is ready");
    assert!(
        !b.seen
            .iter()
            .any(|l| l.contains("Plaintext") || l.contains("Maximum payloads")),
        "{:?}",
        b.seen
    );
    b.signal(libc::SIGINT);
    assert_eq!(b.wait_exit(), 0);
    let _ = std::fs::remove_dir_all(dir);
}

fn nats_server_bin() -> Option<std::path::PathBuf> {
    harness::reference_nats_server()
}

/// Runs `bin args` to its exit (bounded) and returns (status, the text after
/// ` [FTL] ` of its fatal line, if any).
fn run_to_fatal(bin: &std::path::Path, args: &[&str]) -> (i32, Option<String>) {
    let mut child = Command::new(bin)
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} did not exit", bin.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let fatal = err
        .lines()
        .find_map(|l| l.split_once(" [FTL] ").map(|(_, t)| t.to_string()));
    (status, fatal)
}

/// A listener that cannot be opened or a pid file that cannot be written stops the
/// server with one `[FTL]` line in nats-server's words and exit status 1 (server.go
/// Fatalf), compared with Debian's nats-server where it is installed.
#[test]
fn start_failures_are_fatal_like_nats_server() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = taken.local_addr().unwrap().port().to_string();
    let free = free_port().to_string();
    let cluster = format!("nats://127.0.0.1:{p}");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["-a", "127.0.0.1", "-p", &p],
            format!(
                "Error listening on port: 127.0.0.1:{p}, \"listen tcp 127.0.0.1:{p}: bind: address already in use\""
            ),
        ),
        (
            vec!["-a", "127.0.0.1", "-p", &free, "--cluster", &cluster],
            format!(
                "Error listening on router port: {p} - listen tcp 127.0.0.1:{p}: bind: address already in use"
            ),
        ),
        (
            vec!["-a", "127.0.0.1", "-p", &free, "-m", &p],
            format!(
                "Can't start monitoring: can't listen to the monitor port: listen tcp 127.0.0.1:{p}: bind: address already in use"
            ),
        ),
        (
            vec!["-a", "127.0.0.1", "-p", &free, "-P", "/nonexistent-dir/x.pid"],
            "Could not write pidfile: open /nonexistent-dir/x.pid: no such file or directory"
                .to_string(),
        ),
    ];
    let reference = nats_server_bin();
    for (args, want) in &cases {
        let (code, fatal) = run_to_fatal(std::path::Path::new(BIN), args);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(fatal.as_deref(), Some(want.as_str()), "{args:?}");
        if let Some(bin) = &reference {
            let (code, fatal) = run_to_fatal(bin, args);
            assert_eq!(code, 1, "nats-server {args:?}");
            assert_eq!(
                fatal.as_deref(),
                Some(want.as_str()),
                "nats-server {args:?}"
            );
        }
    }
    drop(taken);
}

/// One client session: connect, read INFO, send `script`, return what came back
/// until PONG, an -ERR or the close (bounded).
fn exchange(port: u16, script: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.ends_with(b"\r\n") {
        let n = s.read(&mut b).expect("read INFO");
        assert!(n > 0, "closed before INFO");
        got.extend_from_slice(&b[..n]);
    }
    s.write_all(script.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let text = String::from_utf8_lossy(&reply);
        if text.contains("PONG\r\n") || text.contains("-ERR") {
            break;
        }
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// `--auth TOKEN` on the command line beside a config `users` list: nats-server takes
/// the token from a CONNECT without a user name and the users' passwords; a refused
/// CONNECT is logged naming the user given (even none), as client.go authViolation
/// does when there is a users list.
#[test]
fn cli_token_beside_config_users() {
    let dir = tmpdir("tokusers");
    let conf = dir.join("u.conf");
    std::fs::write(
        &conf,
        "authorization { users = [ { user: a, password: pa } ] }\n",
    )
    .unwrap();
    let mut bins = vec![std::path::PathBuf::from(BIN)];
    bins.extend(nats_server_bin());
    for bin in bins {
        let port = free_port();
        let p = port.to_string();
        let mut b = Broker::spawn_bin(
            &bin,
            &[
                "-c",
                conf.to_str().unwrap(),
                "-a",
                "127.0.0.1",
                "-p",
                &p,
                "--auth",
                "tok",
            ],
        );
        b.wait_for("Server is ready");
        let who = bin.display().to_string();
        let ok = "CONNECT {\"verbose\":false,\"auth_token\":\"tok\"}\r\nPING\r\n";
        assert_eq!(exchange(port, ok), "PONG\r\n", "{who}");
        let user = "CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"pa\"}\r\nPING\r\n";
        assert_eq!(exchange(port, user), "PONG\r\n", "{who}");
        let bad = "CONNECT {\"verbose\":false,\"auth_token\":\"nope\"}\r\nPING\r\n";
        assert_eq!(
            exchange(port, bad),
            "-ERR 'Authorization Violation'\r\n",
            "{who}"
        );
        b.wait_for("authentication error - User \"\"");
        let bad_user = "CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"x\"}\r\nPING\r\n";
        assert_eq!(
            exchange(port, bad_user),
            "-ERR 'Authorization Violation'\r\n",
            "{who}"
        );
        b.wait_for("authentication error - User \"a\"");
        b.signal(libc::SIGINT);
        b.wait_exit();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends each input on its own connection to our broker and (where installed)
/// nats-server, both started with `conf`, and returns per server the text of the
/// `[ERR]` line each connection drew (after its `cid:N - ` prefix).
fn err_lines_side_by_side(conf: &str, inputs: &[&[u8]]) -> Vec<Vec<String>> {
    let dir = tmpdir(&format!("errlines-{}", inputs.len()));
    let conf_path = dir.join("e.conf");
    let mut bins = vec![std::path::PathBuf::from(BIN)];
    bins.extend(nats_server_bin());
    let mut results = Vec::new();
    for bin in &bins {
        let port = free_port();
        // `{ROUTE_PORT}` in the config: the inputs go to that (cluster) port.
        let route_port = free_port();
        std::fs::write(
            &conf_path,
            conf.replace("{ROUTE_PORT}", &route_port.to_string()),
        )
        .unwrap();
        let target = if conf.contains("{ROUTE_PORT}") {
            route_port
        } else {
            port
        };
        let mut b = Broker::spawn_bin(
            bin,
            &[
                "-c",
                conf_path.to_str().unwrap(),
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ],
        );
        b.wait_for(if target == port {
            "Server is ready"
        } else {
            "Listening for route connections"
        });
        let mut lines = Vec::new();
        for input in inputs {
            let mut s = TcpStream::connect(("127.0.0.1", target)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            s.write_all(input).unwrap();
            // This connection's line (an earlier one may still be in `seen`).
            let l = loop {
                let l = b.wait_for(" [ERR] ");
                let mine = l.contains(&s.local_addr().unwrap().to_string());
                b.seen.retain(|x| x != &l);
                if mine {
                    break l;
                }
            };
            let l = l.replacen(" - rid:", " - cid:", 1);
            lines.push(l.split_once(" - cid:").map_or(l.clone(), |(_, r)| {
                r.split_once(" - ")
                    .map_or(r.to_string(), |(_, t)| t.to_string())
            }));
        }
        b.signal(libc::SIGINT);
        b.wait_exit();
        results.push(lines);
    }
    let _ = std::fs::remove_dir_all(dir);
    results
}

/// An unknown operation is logged as nats-server's parser logs it (parser.go
/// parseErr): the state its byte-at-a-time parser was in, the byte's index in the
/// read, and a Go-quoted snippet; bad arguments as its process functions do
/// (`processPub Parse Error: "foo"`); compared line for line with nats-server.
#[test]
fn parser_errors_logged_like_nats_server() {
    let inputs: [&[u8]; 9] = [
        b"PUBX foo 1\r\n",
        b"PUB foo\r\n",
        b"PUB  \tfoo  bar\r\n",
        b"SUB a\r\n",
        b"PUB f\xc3\xa9 x\r\n",
        b"CONNECT {\"verbose\":false}\r\nSUBB\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"msg a 1 1\r\n",
        b"CONNECT {\"verbose\":false}\r\nPING\r\nHPUX\r\n",
    ];
    let results = err_lines_side_by_side("", &inputs);
    assert_eq!(
        results[0][0],
        "Client parser ERROR, state=31, i=3: proto='\"X foo 1\\r\"...'"
    );
    if results.len() == 2 {
        assert_eq!(results[0], results[1], "ours (left) vs nats-server (right)");
    }
}

/// CONNECT and limit errors at the default log level, as nats-server words them:
/// `maximum payload exceeded: 2000 vs 1024`, Go's json errors without a prefix, and the
/// errors its read loop logs after closing (`invalid client protocol`, `no responders
/// requires headers support`).
#[test]
fn connect_and_limit_errors_logged_like_nats_server() {
    let inputs: [&[u8]; 28] = [
        b"CONNECT {\"verbose\":false}\r\nPUB foo 2000\r\n",
        b"CONNECT {\"protocol\":2}\r\n",
        b"CONNECT {\"no_responders\":true}\r\n",
        b"CONNECT {\"verbose\":\"yes\"}\r\n",
        b"CONNECT {\"protocol\":1.5}\r\n",
        b"CONNECT\r\n",
        // Go's scanner words every syntax error (encoding/json checkValid).
        b"CONNECT {bad\r\n",
        b"CONNECT {\"verbose\":tru}\r\n",
        b"CONNECT {\"verbose\":false}}\r\n",
        b"CONNECT {\"name\" \"x\"}\r\n",
        b"CONNECT {\"name\":\"a\x01\"}\r\n",
        b"CONNECT {\"protocol\":1.}\r\n",
        b"CONNECT {\"name\":\"\\q\"}\r\n",
        b"CONNECT {\"x\":[1 2]}\r\n",
        b"CONNECT {\"verbose\":false,}\r\n",
        b"CONNECT \xc3\xa9\x85\r\n",
        // Type errors: a number is worded by its literal only for a numeric field.
        b"CONNECT {\"verbose\":5}\r\n",
        b"CONNECT {\"name\":5}\r\n",
        b"CONNECT {\"protocol\":\"1\"}\r\n",
        b"CONNECT {\"protocol\":1e3}\r\n",
        b"CONNECT {\"import\":5}\r\n",
        b"CONNECT {\"name\":[1]}\r\n",
        b"CONNECT [1]\r\n",
        b"CONNECT \"x\"\r\n",
        b"CONNECT 5\r\n",
        b"CONNECT {\"protocol\":99999999999999999999}\r\n",
        // A client's INFO is unmarshalled into server.Info (client.go processInfo).
        b"CONNECT {}\r\nINFO {bad}\r\n",
        b"CONNECT {}\r\nINFO {\"port\":\"x\"}\r\n",
    ];
    let results = err_lines_side_by_side("max_payload: 1024\n", &inputs);
    assert_eq!(results[0][0], "maximum payload exceeded: 2000 vs 1024");
    assert_eq!(results[0][1], "invalid client protocol");
    assert_eq!(
        results[0][6],
        "invalid character 'b' looking for beginning of object key string"
    );
    assert_eq!(
        results[0][19],
        "json: cannot unmarshal number 1e3 into Go struct field ClientOpts.protocol of type int"
    );
    if results.len() == 2 {
        assert_eq!(results[0], results[1], "ours (left) vs nats-server (right)");
    }
}

/// A control line over `max_control_line`, whole in one read, held over at the end of
/// a read, and a CONNECT: nats-server's state, held-over length and 128-byte snippet.
#[test]
fn max_control_line_logged_like_nats_server() {
    let long_pub = format!("CONNECT {{}}\r\nPUB {} 5\r\n", "a".repeat(200));
    let held_sub = format!("CONNECT {{}}\r\nSUB {}", "b".repeat(300));
    let connect = format!("CONNECT {{\"name\":\"{}\"}}\r\n", "c".repeat(120));
    let inputs: [&[u8]; 3] = [long_pub.as_bytes(), held_sub.as_bytes(), connect.as_bytes()];
    let results = err_lines_side_by_side("max_control_line: 100\n", &inputs);
    assert!(
        results[0][1].starts_with(
            "maximum control line exceeded: State 47, max_control_line 100, Buffer len 300 (snip: \"bbb"
        ),
        "{:?}",
        results[0]
    );
    if results.len() == 2 {
        assert_eq!(results[0], results[1], "ours (left) vs nats-server (right)");
    }
}

/// A bad CONNECT on the route port: nats-server unmarshals it into ClientOpts and then
/// into the route's connectInfo and logs Go's error as it is.
#[test]
fn route_connect_errors_logged_like_nats_server() {
    let inputs: [&[u8]; 5] = [
        b"CONNECT {bad\r\n",
        b"CONNECT {\"verbose\":\"x\"}\r\n",
        b"CONNECT {\"cluster\":5}\r\n",
        b"CONNECT {\"cluster_dynamic\":\"y\"}\r\n",
        b"CONNECT\r\n",
    ];
    let results = err_lines_side_by_side("cluster { listen: 127.0.0.1:{ROUTE_PORT} }\n", &inputs);
    assert_eq!(
        results[0][2],
        "json: cannot unmarshal number into Go struct field connectInfo.cluster of type string"
    );
    if results.len() == 2 {
        assert_eq!(results[0], results[1], "ours (left) vs nats-server (right)");
    }
}

/// Bad flags: Go's flag package message alone on stderr and the usage on stdout, as
/// nats-server prints them (it then exits 0; we exit 1); IPv6 listen addresses are
/// logged in brackets (net.JoinHostPort).
#[test]
fn bad_flags_and_ipv6_listen_lines_like_nats_server() {
    let mut bins = vec![std::path::PathBuf::from(BIN)];
    bins.extend(nats_server_bin());
    let mut seen = Vec::new();
    for bin in &bins {
        let mut lines = Vec::new();
        for args in [&["-x"][..], &["-p"], &["-p", "abc"], &["-D=maybe"]] {
            let out = Command::new(bin)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("Usage:"),
                "{bin:?} {args:?}: usage on stdout"
            );
            lines.push(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        seen.push(lines);
    }
    assert_eq!(seen[0][0], "flag provided but not defined: -x");
    if seen.len() == 2 {
        assert_eq!(seen[0], seen[1], "ours (left) vs nats-server (right)");
    }
    // -a ::1: the client listener's line has the host in brackets.
    let port = free_port();
    let mut b = Broker::spawn_bin(
        std::path::Path::new(BIN),
        &["-a", "::1", "-p", &port.to_string()],
    );
    let l = b.wait_for("Listening for client connections on");
    assert!(l.ends_with(&format!("on [::1]:{port}")), "{l}");
    b.signal(libc::SIGINT);
    b.wait_exit();
}
