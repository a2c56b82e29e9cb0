//! nats-scion broker: a NATS server compatible with nats-server 2.9.
pub mod monitor;
pub mod options;
pub mod proto;
pub mod server;
pub mod sublist;

/// Entry point of the `broker` binary.
pub fn run_main(args: Vec<String>) -> std::process::ExitCode {
    let _ = args;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("broker: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _ = tracing_subscriber::fmt().try_init();
    rt.block_on(async {
        match server::start(options::Options::default()).await {
            Ok(h) => {
                let _ = tokio::signal::ctrl_c().await;
                h.shutdown().await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
pub mod conf;
