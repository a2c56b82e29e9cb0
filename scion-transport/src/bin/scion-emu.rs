//! `scion-emu`: run an emulated SCION network, or send it a control command.
//!
//! ```text
//! scion-emu run <topology.toml> [--control 127.0.0.1:30999] [--ip 127.0.0.1] [--topology-dir DIR]
//! scion-emu ctl <control-addr> link 1-ff00:0:110#1 down|up|blackhole|latency <ms>|...
//! scion-emu ctl <control-addr> show
//! ```

use anyhow::{bail, Context};
use scion_transport::emu::{self, EmuOptions, Topology};

const USAGE: &str = "usage: scion-emu run <topology.toml> [--control ADDR] [--ip IP] [--topology-dir DIR]\n       scion-emu ctl <control-addr> <command...>";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let file = args.get(1).context(USAGE)?;
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            let topology = Topology::from_toml(&text)?;
            let mut options = EmuOptions::default();
            let mut dir = None;
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let value = rest
                    .next()
                    .with_context(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--control" => options.control = Some(value.parse().context("--control")?),
                    "--ip" => options.ip = value.parse().context("--ip")?,
                    "--topology-dir" => dir = Some(std::path::PathBuf::from(value)),
                    other => bail!("unknown flag {other}\n{USAGE}"),
                }
            }
            emu::serve(topology, options, dir.as_deref()).await?;
        }
        Some("ctl") => {
            let addr = args
                .get(1)
                .context(USAGE)?
                .parse()
                .context("control address")?;
            let line = args[2..].join(" ");
            let answer = emu::send_control(addr, &line).await?;
            println!("{answer}");
            if answer.starts_with("error:") {
                std::process::exit(1);
            }
        }
        _ => bail!("{USAGE}"),
    }
    Ok(())
}
