//! `timesync` binary: parse the command line, start logging, hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,timesync=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = timesync::cli::Cli::parse();
    match timesync::cli::main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("timesync: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
