//! `timesync` binary: parse the command line, start logging, hand over to the library.
//!
//! A current-thread runtime on purpose: timestamps are taken in tasks that hand messages to
//! the NATS connection task and back; on one thread those hand-overs are plain task
//! switches, while across worker threads each is a futex wake-up whose cost differs per
//! direction (measured on loopback: ~100 µs offset bias multi-threaded, ~40 µs here).

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,timesync=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = timesync::cli::Cli::parse();
    match timesync::cli::main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("timesync: {}", error_text(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-joined, leaving out a cause whose text is already
/// there (async-nats' connect error repeats its I/O source in its own message).
fn error_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let t = cause.to_string();
        if out.contains(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    out
}
