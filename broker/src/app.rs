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
use crate::options::Options;
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
            Ok(warnings) if !warnings.is_empty() => {
                for w in warnings {
                    eprintln!("{EXE}: {w}");
                }
                ExitCode::FAILURE
            }
            Ok(_) => {
                eprintln!("{EXE}: configuration file {} is valid", path.display());
                ExitCode::SUCCESS
            }
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
    let pid_file = opts.pid_file.clone();
    let pid_for_run = pid_file.clone();
    let code = rt.block_on(async move {
        let sigs = Signals::install();
        let handle = match server::start(opts).await {
            Ok(h) => h,
            Err(e) => {
                error!("{}", e);
                eprintln!("{EXE}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(p) = &pid_for_run {
            if let Err(e) = std::fs::write(p, std::process::id().to_string()) {
                error!("Could not write pidfile: {}", e);
            }
        }
        wait_for_signals(handle, flags, sigs).await
    });
    if let Some(p) = pid_file {
        let _ = std::fs::remove_file(p);
    }
    code
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
    loop {
        tokio::select! {
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
                lame_duck(&handle.state).await;
                handle.shutdown().await;
                return ExitCode::SUCCESS;
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
/// `Reload`): limits, auth, logging levels, timeouts. Listen addresses,
/// names and cluster membership need a restart; a change to them fails the
/// reload and keeps the running configuration.
pub fn reload(state: &Arc<ServerState>, flags: &[String]) -> Result<(), String> {
    let cur = state.opts();
    if cur.config_file.is_none() {
        return Err("config reload not supported: no configuration file".into());
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
    let changes = describe_changes(&cur, &new);
    state.set_opts(new);
    for c in changes {
        info!("Reloaded: {}", c);
    }
    info!("Reloaded server configuration");
    Ok(())
}

fn check_reloadable(cur: &Options, new: &Options) -> Result<(), String> {
    let fixed: [(&str, String, String); 6] = [
        ("host", cur.host.clone(), new.host.clone()),
        ("port", cur.port.to_string(), new.port.to_string()),
        (
            "http_port",
            cur.http_port.to_string(),
            new.http_port.to_string(),
        ),
        (
            "server_name",
            format!("{:?}", cur.server_name),
            format!("{:?}", new.server_name),
        ),
        (
            "cluster",
            format!("{:?}", (&cur.cluster.listen, &cur.cluster.name)),
            format!("{:?}", (&new.cluster.listen, &new.cluster.name)),
        ),
        (
            "scion",
            format!("{:?}", cur.scion),
            format!("{:?}", new.scion),
        ),
    ];
    for (name, a, b) in fixed {
        if a != b {
            return Err(format!(
                "config reload not supported for {name}: old={a}, new={b}"
            ));
        }
    }
    Ok(())
}

fn describe_changes(cur: &Options, new: &Options) -> Vec<String> {
    let mut v = Vec::new();
    macro_rules! cmp {
        ($f:ident) => {
            if format!("{:?}", cur.$f) != format!("{:?}", new.$f) {
                v.push(format!("{} = {:?}", stringify!($f), new.$f));
            }
        };
    }
    cmp!(debug);
    cmp!(trace);
    cmp!(max_payload);
    cmp!(max_control_line);
    cmp!(max_pending);
    cmp!(max_connections);
    cmp!(max_subscriptions);
    cmp!(ping_interval);
    cmp!(ping_max);
    cmp!(write_deadline);
    if cur.authorization != new.authorization {
        v.push("authorization".into());
    }
    cmp!(no_auth_user);
    v
}

/// Lame duck mode (SIGUSR2): stop accepting, tell clients, then close them
/// spread over `lame_duck_duration` after `lame_duck_grace_period`.
pub async fn lame_duck(state: &Arc<ServerState>) {
    let opts = state.opts();
    state.lame_duck.store(true, Ordering::Release);
    info!("Entering lame duck mode, stop accepting new clients");
    server::cluster::send_async_info_to_clients(state);
    let grace = opts.lame_duck_grace_period;
    let total = opts.lame_duck_duration.saturating_sub(grace);
    info!(
        "Initiating Lame Duck Mode, waiting {:?} before closing clients",
        grace
    );
    tokio::time::sleep(grace).await;
    let clients: Vec<_> = server::lock(&state.clients)
        .values()
        .filter(|c| c.kind == crate::proto::ConnKind::Client)
        .cloned()
        .collect();
    if clients.is_empty() {
        return;
    }
    let step = total / clients.len() as u32;
    let step = step.min(Duration::from_secs(1));
    info!("Closing {} existing clients", clients.len());
    for c in clients {
        c.out.close(server::ClosedState::ServerShutdown);
        if !step.is_zero() {
            tokio::time::sleep(step).await;
        }
    }
}
