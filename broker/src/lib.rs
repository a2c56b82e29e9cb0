//! nats-scion broker: a NATS server compatible with nats-server 2.9.
pub mod app;
pub mod logging;
pub mod monitor;
pub mod options;
pub mod proto;
pub mod proxy;
pub mod scion_client;
pub mod server;
pub mod sublist;

/// Entry point of the `broker` binary.
pub fn run_main(args: Vec<String>) -> std::process::ExitCode {
    app::run_main(args)
}
pub mod cli;
pub mod conf;
pub mod config;
