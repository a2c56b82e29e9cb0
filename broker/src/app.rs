//! What the `broker` binary does: command line, logging, signals, reload,
//! lame duck (nats-server `main.go`, `server/signal.go`, `server/reload.go`).

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::cli::{self, Command};
use crate::config;
use crate::logging::{self, LogConfig};
use crate::options::{Options, RouteUrl};
use crate::server::{self, ServerHandle, ServerState};

const EXE: &str = "nats-server";

/// Runs the binary with `args` (including argv[0]).
pub fn run_main(args: Vec<String>) -> ExitCode {
    if args.get(1).map(String::as_str) == Some("proxy") {
        return crate::proxy::run_cli(&args[2..]);
    }
    let flags: Vec<String> = args.iter().skip(1).cloned().collect();
    let cmd = match cli::parse_args(flags.clone()) {
        Ok(c) => c,
        // Go's flag package: its message alone on stderr, then the usage on stdout.
        // (nats-server then exits 0; we exit 1, so scripts and service managers see the
        // mistake.)
        Err(
            e @ (cli::CliError::UnknownFlag(_)
            | cli::CliError::BadSyntax(_)
            | cli::CliError::MissingValue(_)
            | cli::CliError::InvalidValue { .. }
            | cli::CliError::InvalidBool { .. }),
        ) => {
            eprintln!("{e}");
            print!("{}", cli::usage());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{EXE}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cmd {
        Command::Help(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!(
                "{EXE}: v{} (nats-scion broker {})",
                server::VERSION,
                server::BROKER_VERSION
            );
            ExitCode::SUCCESS
        }
        Command::CheckConfig(path) => match config::check_config(&path) {
            // nats-server 2.9.10's -t fails on warnings too (it checks in
            // pedantic mode).
            Ok(c) if !c.warnings.is_empty() => {
                for w in c.warnings.iter().chain(&c.notices) {
                    eprintln!("{EXE}: {w}");
                }
                ExitCode::FAILURE
            }
            Ok(c) => {
                for n in &c.notices {
                    eprintln!("{EXE}: {n}");
                }
                eprintln!("{EXE}: configuration file {} is valid", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{EXE}: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Signal { value, pid_file } => match process_signal(&value, pid_file.as_deref()) {
            // opts.go processSignal: os.Exit(0) once the signal is sent.
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{EXE}: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(loaded) => {
            let loaded = *loaded;
            run_server(loaded.options, loaded.warnings, flags)
        }
    }
}

fn run_server(opts: Options, warnings: Vec<String>, flags: Vec<String>) -> ExitCode {
    let log_cfg = LogConfig::from_options(&opts);
    if let Err(e) = logging::init(&log_cfg) {
        eprintln!("{EXE}: {e}");
        return ExitCode::FAILURE;
    }
    for w in &warnings {
        warn!("{}", w);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{EXE}: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The ports file at exit is the one of the options in force then (a reload may have
    // moved it), as server.go Shutdown reads them. The pid file stays, as nats-server's.
    let start_opts = opts.ports_file_dir.clone();
    let final_opts = Arc::new(std::sync::Mutex::new(start_opts));
    let final_for_run = final_opts.clone();
    let code = rt.block_on(async move {
        let sigs = Signals::install();
        let handle = match server::start(opts).await {
            Ok(h) => h,
            Err(e) => {
                // nats-server's Fatalf: one [FTL] line, exit status 1.
                error!(target: crate::logging::FATAL, "{}", e);
                return ExitCode::FAILURE;
            }
        };
        if let Some(dir) = handle.state.opts().ports_file_dir.as_deref() {
            write_ports_file(&handle.state, &ports_file_path(dir));
        }
        let state = handle.state.clone();
        let code = wait_for_signals(handle, flags, sigs).await;
        *server::lock(&final_for_run) = state.opts().ports_file_dir.clone();
        code
    });
    let ports_dir = server::lock(&final_opts).clone();
    if let Some(dir) = ports_dir {
        delete_ports_file(&dir);
    }
    logging::flush(Duration::from_secs(2));
    code
}

/// server.go deletePortsFile.
fn delete_ports_file(dir: &std::path::Path) {
    let p = ports_file_path(dir);
    if let Err(e) = std::fs::remove_file(&p) {
        error!("Error cleaning up ports file {}: {}", p.display(), e);
    }
}

/// Signal streams, installed before the server starts so that a signal
/// sent right after "Server is ready" is never missed.
#[cfg(unix)]
struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
    usr1: Option<tokio::signal::unix::Signal>,
    usr2: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let mk = |k| signal(k).ok();
        Signals {
            int: mk(SignalKind::interrupt()),
            term: mk(SignalKind::terminate()),
            hup: mk(SignalKind::hangup()),
            usr1: mk(SignalKind::user_defined1()),
            usr2: mk(SignalKind::user_defined2()),
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Signals
    }
}

#[cfg(unix)]
async fn wait_for_signals(handle: ServerHandle, flags: Vec<String>, sigs: Signals) -> ExitCode {
    let Signals {
        mut int,
        mut term,
        mut hup,
        mut usr1,
        mut usr2,
    } = sigs;
    async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    // Lame duck mode runs beside the signal loop, as nats-server's `go s.lameDuckMode()`:
    // SIGINT still shuts down at once, SIGHUP still reloads, SIGTERM and another SIGUSR2 are
    // ignored while it runs (server/signal.go handleSignals, server.go lameDuckMode).
    let mut ldm: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = None;
    loop {
        tokio::select! {
            _ = async { ldm.as_mut().expect("guarded").await }, if ldm.is_some() => {
                handle.shutdown().await;
                return ExitCode::SUCCESS;
            }
            _ = recv(&mut int) => {
                tracing::debug!("Trapped \"interrupt\" signal");
                handle.shutdown().await;
                return ExitCode::SUCCESS;
            }
            _ = recv(&mut term) => {
                tracing::debug!("Trapped \"terminated\" signal");
                if !handle.state.lame_duck.load(Ordering::Acquire) {
                    handle.shutdown().await;
                    // nats-server exits 1 on SIGTERM.
                    return ExitCode::FAILURE;
                }
            }
            _ = recv(&mut hup) => {
                tracing::debug!("Trapped \"hangup\" signal");
                if let Err(e) = reload(&handle.state, &flags) {
                    error!("Failed to reload server configuration: {}", e);
                }
            }
            _ = recv(&mut usr1) => {
                // server/signal.go handleSignals: SIGUSR1 -> ReOpenLogFile
                // (log rotation), the server keeps running.
                tracing::debug!("Trapped \"user defined signal 1\" signal");
                logging::reopen();
            }
            _ = recv(&mut usr2) => {
                tracing::debug!("Trapped \"user defined signal 2\" signal");
                if ldm.is_none() {
                    let state = handle.state.clone();
                    ldm = Some(Box::pin(async move { lame_duck(&state).await }));
                }
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(handle: ServerHandle, _flags: Vec<String>, _sigs: Signals) -> ExitCode {
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}

/// Re-reads the configuration file, re-applies the command-line flags over
/// it as at start, and applies what can change at run time (nats-server
/// server/reload.go `Reload` / `diffOptions` / `applyOptions`): limits,
/// authorization (existing clients re-checked), logging destination and
/// levels, added and removed routes (TCP and SCION). Anything else that
/// changed fails the whole reload with
/// "config reload not supported for <option>" and the running
/// configuration stays, so "Reloaded server configuration" is only logged
/// when every change took effect.
pub fn reload(state: &Arc<ServerState>, flags: &[String]) -> Result<(), String> {
    let cur = state.opts();
    if cur.config_file.is_none() {
        // server.go Reload: errors.New(...) with these words.
        return Err("can only reload config when a file is provided using -c or --config".into());
    }
    let new = match cli::parse_args(flags.to_vec()).map_err(|e| e.to_string())? {
        Command::Run(loaded) => {
            for w in &loaded.warnings {
                warn!("{}", w);
            }
            loaded.options
        }
        _ => return Err("config reload: the command line no longer starts a server".into()),
    };
    let mut new = new;
    if new.http_host.is_empty() {
        // start() resolved the default (the client host) into the options.
        new.http_host = cur.http_host.clone();
    }
    check_reloadable(&cur, &new)?;
    // Client TLS is built anew on every reload, so certificate files replaced in place
    // are taken (reload.go tlsOption); files that no longer load fail the reload.
    let client_tls = server::tls::client_tls(&new)?;
    let (removed, added) = route_diff(&cur.cluster.routes, &new.cluster.routes);
    for r in &added {
        server::scion::check_added_route(state, r)
            .map_err(|e| format!("config reload not supported for cluster routes: {e}"))?;
    }
    let old_log = LogConfig::from_options(&cur);
    let new_log = LogConfig::from_options(&new);
    if old_log != new_log {
        // reload.go logfileOption etc.: s.ConfigureLogger(); a destination
        // that cannot be opened fails the reload before anything changed.
        logging::reconfigure(&new_log).map_err(|e| e.to_string())?;
    }
    // reload.go: any IsAuthChange option triggers reloadAuthorization.
    let auth_changed =
        cur.authorization != new.authorization || cur.no_auth_user != new.no_auth_user;
    // reload.go compares the loaded TLS configurations: certificate files replaced in
    // place are a change too.
    let tls_changed = state.client_tls().map(|t| t.material.clone())
        != client_tls.as_ref().map(|t| t.material.clone());
    let changes = describe_changes(&cur, &new, tls_changed);
    let new_max_payload = (cur.max_payload != new.max_payload).then_some(new.max_payload);
    let cluster_perms_changed = cur.cluster.permissions != new.cluster.permissions;
    let new_pid_file = (cur.pid_file != new.pid_file)
        .then(|| new.pid_file.clone())
        .flatten();
    let ports_dirs = (cur.ports_file_dir != new.ports_file_dir)
        .then(|| (cur.ports_file_dir.clone(), new.ports_file_dir.clone()));
    state.set_opts(new);
    state.set_client_tls(client_tls);
    // reload.go applyOptions: each option's Apply logs its line, before the
    // authorization re-check.
    for c in changes {
        if c == "cluster" {
            // reload.go clusterOption.Apply: a new (non-empty) name is taken (server.go
            // setClusterName, logged before "Reloaded: cluster"); routes made under the
            // old name stay.
            if let Some(name) = state.opts().cluster.name.clone().filter(|n| !n.is_empty()) {
                if name != state.cluster.name() {
                    state.cluster.set_name(&name);
                    state
                        .cluster
                        .dynamic_name
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    info!("Cluster name updated to {}", name);
                }
            }
        }
        if c.starts_with("max_connections = ") {
            let closed =
                server::client::enforce_max_connections(state, state.opts().max_connections);
            if closed > 0 {
                info!(
                    "Closed {} connections to fall within max_connections",
                    closed
                );
            }
        }
        info!("Reloaded: {}", c);
    }
    // reload.go pidFileOption / portsFileDirOption.
    if let Some(p) = &new_pid_file {
        if let Err(e) = server::write_pid_file(p) {
            let e = crate::conf::go_io_error("open", &p.to_string_lossy(), &e);
            error!("Failed to write pidfile: {}", e);
        }
    }
    if let Some((old_dir, new_dir)) = &ports_dirs {
        if let Some(d) = old_dir {
            delete_ports_file(d);
        }
        if let Some(d) = new_dir {
            write_ports_file(state, &ports_file_path(d));
        }
    }
    if cluster_perms_changed {
        server::route::reload_cluster_permissions(state, cur.cluster.permissions.as_ref());
    }

    if !removed.is_empty() || !added.is_empty() {
        server::route::apply_route_changes(state, &removed, &added);
    }
    if let Some(v) = new_max_payload {
        server::client::apply_max_payload(state, v);
    }
    if auth_changed {
        server::auth::recheck_clients_after_reload(state);
    }
    info!("Reloaded server configuration");
    Ok(())
}

/// The options a reload cannot apply, named as nats-server's
/// `diffOptions` names them (its `Options` field names; cluster host and
/// port as in `validateClusterOpts`).
fn check_reloadable(cur: &Options, new: &Options) -> Result<(), String> {
    fn unsupported(name: &str) -> Result<(), String> {
        Err(format!("config reload not supported for {name}"))
    }
    fn scalar(
        name: &str,
        a: impl std::fmt::Display + PartialEq,
        b: impl std::fmt::Display,
    ) -> Result<(), String> {
        let b = b.to_string();
        if a.to_string() != b {
            return Err(format!(
                "config reload not supported for {name}: old={a}, new={b}"
            ));
        }
        Ok(())
    }
    scalar("Host", &cur.host, &new.host)?;
    // reload.go: a new port of 0 (random) is ignored.
    if new.port != 0 {
        scalar("Port", cur.port, new.port)?;
    }
    scalar("HTTPHost", &cur.http_host, &new.http_host)?;
    scalar("HTTPPort", cur.http_port, new.http_port)?;
    scalar("HTTPSPort", cur.https_port, new.https_port)?;
    // reload.go "websocket": any change is refused (nats-server also takes new TLS files,
    // this broker does not).
    if cur.websocket != new.websocket {
        return unsupported("Websocket");
    }
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    scalar("ServerName", opt(&cur.server_name), opt(&new.server_name))?;
    scalar(
        "ClientAdvertise",
        opt(&cur.client_advertise),
        opt(&new.client_advertise),
    )?;
    if cur.scion_listen != new.scion_listen {
        return unsupported("listen (SCION address)");
    }
    let (cc, nc) = (&cur.cluster, &new.cluster);
    if cc.listen != nc.listen {
        // reload.go validateClusterOpts: the host first, then the port.
        use crate::options::ListenAddr;
        match (&cc.listen, &nc.listen) {
            (
                Some(ListenAddr::Tcp { host: h1, port: p1 }),
                Some(ListenAddr::Tcp { host: h2, port: p2 }),
            ) => {
                scalar("cluster host", h1, h2)?;
                scalar("cluster port", p1, p2)?;
            }
            _ => return unsupported("cluster listen"),
        }
    }
    if cc.routes != nc.routes {
        // reload.go routesOption dials added and closes removed routes
        // (`server::route::apply_route_changes`; SCION ones are checked in `reload`).
        if cc.listen.is_none() && cc.routes.is_empty() {
            return unsupported("cluster routes (clustering was not enabled at start)");
        }
    }
    // reload.go clusterOption: validateClusterOpts refuses only a new host or port; the
    // rest is applied (permissions by reloadClusterPermissions, the name by
    // setClusterName, and the others are read when a route next connects). Ours: the
    // route TLS configuration is built at start.
    if cc.tls != nc.tls {
        return unsupported("cluster tls (needs a restart)");
    }
    if cur.scion != new.scion {
        return unsupported("scion");
    }
    // reload.go diffOptions has no case for AllowNonTLS.
    scalar("AllowNonTLS", cur.allow_non_tls, new.allow_non_tls)?;
    // reload.go diffOptions has no case for these: they fail the reload.
    scalar("MaxSubs", cur.max_subscriptions, new.max_subscriptions)?;
    scalar("MaxSubTokens", cur.max_sub_tokens, new.max_sub_tokens)?;
    scalar("MaxPending", cur.max_pending, new.max_pending)?;
    let dur = crate::monitor::gofmt::go_duration;
    scalar(
        "LameDuckDuration",
        dur(cur.lame_duck_duration),
        dur(new.lame_duck_duration),
    )?;
    scalar(
        "LameDuckGracePeriod",
        dur(cur.lame_duck_grace_period),
        dur(new.lame_duck_grace_period),
    )?;
    // reload.go "noauthuser": only dropping it together with that user is taken.
    if cur.no_auth_user != new.no_auth_user {
        let (old, now) = (opt(&cur.no_auth_user), opt(&new.no_auth_user));
        let user_kept = new.authorization.users.iter().any(|u| u.username == old);
        if old.is_empty() || !now.is_empty() || user_kept {
            return Err(format!(
                "config reload not supported for NoAuthUser: old={old}, new={now}"
            ));
        }
    }
    Ok(())
}

/// Routes in `old` and not in `new` (removed), and the other way round (added); equal when the
/// URL and credentials are (reload.go diffRoutes compares parsed URLs).
fn route_diff(old: &[RouteUrl], new: &[RouteUrl]) -> (Vec<RouteUrl>, Vec<RouteUrl>) {
    let missing = |a: &[RouteUrl], b: &[RouteUrl]| -> Vec<RouteUrl> {
        a.iter().filter(|r| !b.contains(r)).cloned().collect()
    };
    (missing(old, new), missing(new, old))
}

/// The `Reloaded: ...` lines nats-server 2.9.10 prints for what changed, in its order
/// (reload.go applies options in the order of the Options struct) and wording. It prints
/// `authorization users` and `accounts` on every reload (its diff always sees those
/// fields as changed), so those two lines are always there.
/// `tls_changed`: the client TLS configuration differs from the one in use (files, their
/// contents, `verify`).
fn describe_changes(cur: &Options, new: &Options, tls_changed: bool) -> Vec<String> {
    let dur = crate::monitor::gofmt::go_duration;
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut v = Vec::new();
    let mut line = |changed: bool, text: String| {
        if changed {
            v.push(text);
        }
    };
    line(cur.trace != new.trace, format!("trace = {}", new.trace));
    line(cur.debug != new.debug, format!("debug = {}", new.debug));
    line(
        cur.logtime != new.logtime,
        format!("logtime = {}", new.logtime),
    );
    line(
        cur.max_connections != new.max_connections,
        format!("max_connections = {}", new.max_connections),
    );
    line(
        cur.authorization.nkeys != new.authorization.nkeys,
        "authorization nkey users".into(),
    );
    line(true, "authorization users".into());
    line(true, "accounts".into());
    let (ca, na) = (&cur.authorization, &new.authorization);
    line(ca.user != na.user, "authorization username".into());
    line(ca.password != na.password, "authorization password".into());
    line(ca.token != na.token, "authorization token".into());
    line(
        cur.ping_interval != new.ping_interval,
        format!("ping_interval = {}", dur(new.ping_interval)),
    );
    line(
        cur.ping_max != new.ping_max,
        format!("ping_max = {}", new.ping_max),
    );
    // Compared and shown after setBaselineOptions: 0 is the default.
    line(
        cur.client_auth_timeout() != new.client_auth_timeout(),
        format!(
            "authorization timeout = {}",
            new.client_auth_timeout().as_secs_f64()
        ),
    );
    line(
        cur.max_control_line != new.max_control_line,
        format!("max_control_line = {}", new.max_control_line),
    );
    line(
        cur.max_payload != new.max_payload,
        format!("max_payload = {}", new.max_payload),
    );
    let mut cluster_rest = new.cluster.clone();
    cluster_rest.routes = cur.cluster.routes.clone();
    line(cur.cluster != cluster_rest, "cluster".into());
    line(
        cur.pid_file != new.pid_file && new.pid_file.is_some(),
        format!("pid_file = {}", path(&new.pid_file)),
    );
    line(
        cur.ports_file_dir != new.ports_file_dir,
        format!("ports_file_dir = {}", path(&new.ports_file_dir)),
    );
    line(
        cur.log_file != new.log_file,
        format!("log_file = {}", path(&new.log_file)),
    );
    line(cur.syslog != new.syslog, format!("syslog = {}", new.syslog));
    line(
        cur.remote_syslog != new.remote_syslog,
        format!(
            "remote_syslog = {}",
            new.remote_syslog.clone().unwrap_or_default()
        ),
    );
    line(
        cur.client_tls_timeout() != new.client_tls_timeout(),
        format!("tls timeout = {}", new.client_tls_timeout().as_secs_f64()),
    );
    line(
        tls_changed,
        format!(
            "tls = {}",
            if new.tls.is_some() {
                "enabled"
            } else {
                "disabled"
            }
        ),
    );
    // `cluster routes` is logged by route::apply_route_changes once it has applied them.
    line(
        cur.write_deadline != new.write_deadline,
        format!("write_deadline = {}", dur(new.write_deadline)),
    );
    line(
        cur.max_traced_msg_len != new.max_traced_msg_len,
        format!("max_traced_msg_len = {}", new.max_traced_msg_len),
    );
    // After MaxTracedMsgLen, as in nats-server's Options (the diff follows its fields).
    line(
        cur.connect_error_reports != new.connect_error_reports,
        format!("connect_error_reports = {}", new.connect_error_reports),
    );
    line(
        cur.reconnect_error_reports != new.reconnect_error_reports,
        format!("reconnect_error_reports = {}", new.reconnect_error_reports),
    );
    v
}

/// The process name `--signal` looks for when no pid is given (nats-server
/// signal.go resolvePids runs `pgrep nats-server`; here the process's
/// command name must equal it exactly, so test harness binaries whose
/// names start with "broker" are not taken for a server).
const PROCESS_NAME: &str = "broker";

/// `--signal <cmd>[=<pid|pid file>]` (server/opts.go processSignal,
/// signal.go ProcessSignal): resolve the pid, then send the signal the
/// command names. Without `=pid`, the `-P` pid file is used if given,
/// else the single running `broker` process.
fn process_signal(value: &str, pid_file: Option<&std::path::Path>) -> Result<(), String> {
    let parts: Vec<&str> = value.split('=').collect();
    if parts.len() > 2 {
        return Err(format!(
            "invalid signal parameters: [{}]",
            parts[2..].join(" ")
        ));
    }
    let pid_str = match (parts.get(1), pid_file) {
        // opts.go maybeReadPidFile: a readable file's contents, else the text.
        (Some(p), _) => std::fs::read_to_string(p).unwrap_or_else(|_| p.to_string()),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read pid file {}: {e}", f.display()))?,
        (None, None) => String::new(),
    };
    let pid: i32 = if pid_str.is_empty() {
        let pids = resolve_pids();
        match pids.as_slice() {
            [] => return Err(format!("no {PROCESS_NAME} processes running")),
            [one] => *one,
            many => {
                let list: Vec<String> = many.iter().map(i32::to_string).collect();
                return Err(format!(
                    "multiple {PROCESS_NAME} processes running:\n{}",
                    list.join("\n")
                ));
            }
        }
    } else {
        match pid_str.trim().parse() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("invalid pid: {pid_str}")),
        }
    };
    let sig = match parts[0] {
        "stop" => libc::SIGKILL,
        "quit" => libc::SIGINT,
        "reopen" => libc::SIGUSR1,
        "reload" => libc::SIGHUP,
        "ldm" => libc::SIGUSR2,
        "term" => libc::SIGTERM,
        other => return Err(format!("unknown signal {other:?}")),
    };
    // SAFETY: kill(2) takes plain integers; a bad pid is an error return.
    if unsafe { libc::kill(pid, sig) } != 0 {
        // Go's syscall.Errno texts for what kill(2) returns.
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ESRCH) => "no such process".into(),
            Some(libc::EPERM) => "operation not permitted".into(),
            _ => e.to_string(),
        });
    }
    Ok(())
}

/// Pids of running processes named [`PROCESS_NAME`], without this one
/// (signal.go resolvePids, with /proc in place of pgrep).
fn resolve_pids() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == PROCESS_NAME)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// server.go portFile: `<dir>/<executable name>_<pid>.ports`.
fn ports_file_path(dir: &std::path::Path) -> std::path::PathBuf {
    let exe = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| PROCESS_NAME.to_string());
    dir.join(format!("{exe}_{}.ports", std::process::id()))
}

/// server.go logPorts / PortsInfo: `{"nats":[...],"monitoring":[...],
/// "cluster":[...],"websocket":[...]}` with the bound addresses; a wildcard listener is
/// listed once per interface address (resolveHostPorts).
fn write_ports_file(state: &ServerState, path: &std::path::Path) {
    let mut m = serde_json::Map::new();
    let mut put = |key: &str, scheme: &str, addr: Option<std::net::SocketAddr>| {
        if let Some(a) = addr {
            let urls: Vec<serde_json::Value> = host_ports(a)
                .into_iter()
                .map(|hp| format!("{scheme}://{hp}").into())
                .collect();
            m.insert(key.to_string(), urls.into());
        }
    };
    // server.go PortsInfo: `tls` for a client port that requires TLS and for a cluster
    // with `cluster.tls`, `https` for an https monitoring port.
    let opts = state.opts();
    let scheme = |secure: bool, yes: &'static str, no: &'static str| if secure { yes } else { no };
    put(
        "nats",
        scheme(opts.tls.is_some() && !opts.allow_non_tls, "tls", "nats"),
        *server::lock(&state.client_addr),
    );
    put(
        "monitoring",
        scheme(opts.https_port != 0, "https", "http"),
        *server::lock(&state.http_addr),
    );
    let cluster = *server::lock(&state.cluster.listen_addr);
    put(
        "cluster",
        scheme(opts.cluster.tls.is_some(), "tls", "nats"),
        cluster,
    );
    let wss = opts.websocket.as_ref().is_some_and(|w| w.tls.is_some());
    put(
        "websocket",
        scheme(wss, "wss", "ws"),
        *server::lock(&state.ws_addr),
    );
    let data = serde_json::Value::Object(m).to_string();
    if let Err(e) = std::fs::write(path, data) {
        error!("Error writing ports file ({}): {}", path.display(), e);
    }
}

fn host_ports(a: std::net::SocketAddr) -> Vec<String> {
    let port = a.port();
    if !a.ip().is_unspecified() {
        return vec![std::net::SocketAddr::new(a.ip(), port).to_string()];
    }
    interface_addrs()
        .into_iter()
        .map(|ip| std::net::SocketAddr::new(ip, port).to_string())
        .collect()
}

/// Every address of every interface (Go net.Interfaces + Addrs).
fn interface_addrs() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below; each node
    // and its sockaddr are valid until freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let sa = (*p).ifa_addr;
            if !sa.is_null() {
                match (*sa).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(sa as *const libc::sockaddr_in);
                        out.push(
                            std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into(),
                        );
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(sa as *const libc::sockaddr_in6);
                        out.push(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into());
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// Lame duck mode (SIGUSR2): stop accepting, tell clients, then close them
/// spread over `lame_duck_duration` after `lame_duck_grace_period`.
pub async fn lame_duck(state: &Arc<ServerState>) {
    let opts = state.opts();
    state.lame_duck.store(true, Ordering::Release);
    state.lame_duck_notify.notify_waiters();
    info!("Entering lame duck mode, stop accepting new clients");
    let clients: Vec<_> = server::lock(&state.clients)
        .values()
        .filter(|c| c.kind == crate::proto::ConnKind::Client)
        .cloned()
        .collect();
    // server.go lameDuckMode: with no client there is nothing to wait for.
    if clients.is_empty() {
        return;
    }
    let grace = opts.lame_duck_grace_period;
    let mut dur = opts.lame_duck_duration.saturating_sub(grace);
    if dur.is_zero() {
        dur = Duration::from_secs(1);
    }
    // Spread the closes over the duration, at most 1 s apart.
    let si = (dur / clients.len() as u32)
        .min(Duration::from_secs(1))
        .max(Duration::from_nanos(1));
    // No new client can come in now: tell routes and clients.
    server::route::send_ldm_to_routes(state);
    server::cluster::send_ldm_to_clients(state);
    tokio::time::sleep(grace).await;
    info!("Closing existing clients");
    let last = clients.len() - 1;
    for (i, c) in clients.into_iter().enumerate() {
        c.out.close(server::ClosedState::ServerShutdown);
        if i == last {
            break;
        }
        // A random interval of at least half of `si`, as nats-server picks it.
        let ns = si.as_nanos().min(u64::MAX as u128) as u64;
        let v = rand::random_range(0..ns.max(1)).max(ns / 2);
        tokio::time::sleep(Duration::from_nanos(v)).await;
    }
}
