//! `scion-emu`: run an emulated SCION network, or send it a control command.
//!
//! ```text
//! scion-emu run <topology.toml> [--control 127.0.0.1:30999] [--ip 127.0.0.1] [--topology-dir DIR] [--shim IP]
//! scion-emu ctl <control-addr> link 1-ff00:0:110#1 down|up|blackhole|latency <ms>|...
//! scion-emu ctl <control-addr> show
//! ```
//!
//! Exit codes: 0 success (and `--help`), 1 runtime failure, 2 bad arguments (like most Unix
//! tools: the usage follows a one-line error).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use scion_transport::emu::{self, EmuOptions, Topology};

const USAGE: &str =
    "usage: scion-emu run <topology.toml> [--control ADDR] [--ip IP] [--topology-dir DIR] [--shim IP]
       scion-emu ctl <control-addr> <command...>
       scion-emu --help

--shim IP runs a shim dispatcher on IP:30041, as scionproto's dispatcher in shim mode: it hands
hosts on IP the packets border routers deliver for ports outside the dispatched range.

ctl commands (one link end, ISD-AS#ifid, names the link):
  show                                   links and their state
  link 18-ffaa:1:10a0#1 down             cut it, routers send SCMP interface-down
  link 18-ffaa:1:10a0#1 blackhole        drop silently, no SCMP
  link 18-ffaa:1:10a0#1 up               restore
  link 18-ffaa:1:10a0#1 latency <ms>     one-way latency; also: jitter <ms>,
                                         loss <0..1>, bandwidth <kbit/s>";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Cmd {
    Help,
    Run {
        file: PathBuf,
        control: Option<SocketAddr>,
        ip: Option<IpAddr>,
        dir: Option<PathBuf>,
        shim: Option<IpAddr>,
    },
    Ctl {
        addr: SocketAddr,
        line: String,
    },
}

/// A command line we cannot run.
#[derive(Debug, PartialEq, thiserror::Error)]
enum UsageError {
    #[error("no command given")]
    NoCommand,
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("{0} needs an argument")]
    Missing(&'static str),
    #[error("{0} needs a value")]
    NoValue(String),
    #[error("unknown flag {0:?}")]
    UnknownFlag(String),
    #[error("{flag}: invalid value {value:?}")]
    BadValue { flag: String, value: String },
}

fn is_help(a: &str) -> bool {
    matches!(a, "-h" | "--help" | "help")
}

fn parse_args(args: &[String]) -> Result<Cmd, UsageError> {
    if args.iter().any(|a| is_help(a)) {
        return Ok(Cmd::Help);
    }
    let bad = |flag: &str, value: &str| UsageError::BadValue {
        flag: flag.to_string(),
        value: value.to_string(),
    };
    match args.first().map(String::as_str) {
        None => Err(UsageError::NoCommand),
        Some("run") => {
            let file = args.get(1).ok_or(UsageError::Missing("run"))?;
            let (mut control, mut ip, mut dir, mut shim) = (None, None, None, None);
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let known = matches!(
                    flag.as_str(),
                    "--control" | "--ip" | "--topology-dir" | "--shim"
                );
                if !known {
                    return Err(UsageError::UnknownFlag(flag.clone()));
                }
                let value = rest.next().ok_or(UsageError::NoValue(flag.clone()))?;
                match flag.as_str() {
                    "--control" => control = Some(value.parse().map_err(|_| bad(flag, value))?),
                    "--ip" => ip = Some(value.parse().map_err(|_| bad(flag, value))?),
                    "--shim" => shim = Some(value.parse().map_err(|_| bad(flag, value))?),
                    _ => dir = Some(PathBuf::from(value)),
                }
            }
            Ok(Cmd::Run {
                file: PathBuf::from(file),
                control,
                ip,
                dir,
                shim,
            })
        }
        Some("ctl") => {
            let addr = args.get(1).ok_or(UsageError::Missing("ctl"))?;
            let addr = addr.parse().map_err(|_| bad("control address", addr))?;
            if args.len() < 3 {
                return Err(UsageError::Missing("ctl <control-addr>"));
            }
            Ok(Cmd::Ctl {
                addr,
                line: args[2..].join(" "),
            })
        }
        Some(other) => Err(UsageError::UnknownCommand(other.to_string())),
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Help => {
            println!("{USAGE}");
        }
        Cmd::Run {
            file,
            control,
            ip,
            dir,
            shim,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let topology = Topology::from_toml(&text)?;
            let mut options = EmuOptions {
                control,
                shim,
                ..EmuOptions::default()
            };
            if let Some(ip) = ip {
                options.ip = ip;
            }
            emu::serve(topology, options, dir.as_deref()).await?;
        }
        Cmd::Ctl { addr, line } => {
            let answer = emu::send_control(addr, &line).await?;
            println!("{answer}");
            if answer.starts_with("error:") {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse_args(&args) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("scion-emu: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(cmd).await {
        Ok(code) => code,
        Err(e) => {
            // One line with the cause chain, no backtrace: this is an operator's tool.
            eprintln!("scion-emu: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_commands_and_rejects_bad_ones() {
        assert_eq!(parse_args(&args("--help")), Ok(Cmd::Help));
        assert_eq!(parse_args(&args("run x.toml -h")), Ok(Cmd::Help));
        assert_eq!(parse_args(&[]), Err(UsageError::NoCommand));
        assert_eq!(
            parse_args(&args("run t.toml --ip 127.0.0.2 --shim 127.0.0.3")),
            Ok(Cmd::Run {
                file: "t.toml".into(),
                control: None,
                ip: Some("127.0.0.2".parse().unwrap()),
                dir: None,
                shim: Some("127.0.0.3".parse().unwrap()),
            })
        );
        assert!(matches!(
            parse_args(&args("run t.toml --shim nope")),
            Err(UsageError::BadValue { .. })
        ));
        assert_eq!(
            parse_args(&args("run t.toml --bogus 1")),
            Err(UsageError::UnknownFlag("--bogus".into()))
        );
        assert_eq!(
            parse_args(&args("run t.toml --ip")),
            Err(UsageError::NoValue("--ip".into()))
        );
        assert!(matches!(
            parse_args(&args("run t.toml --control nope")),
            Err(UsageError::BadValue { .. })
        ));
        assert_eq!(parse_args(&args("run")), Err(UsageError::Missing("run")));
        assert_eq!(
            parse_args(&args("ctl 127.0.0.1:1 show")),
            Ok(Cmd::Ctl {
                addr: "127.0.0.1:1".parse().unwrap(),
                line: "show".into()
            })
        );
        assert_eq!(
            parse_args(&args("frob")),
            Err(UsageError::UnknownCommand("frob".into()))
        );
    }
}
