//! The `broker` binary: parse the command line, load config, run.
fn main() -> std::process::ExitCode {
    broker::run_main(std::env::args().collect())
}
