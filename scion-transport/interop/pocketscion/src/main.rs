//! Runs Anapaya's PocketSCION (crate `pocketscion` 0.8.6) with a fixed topology so that
//! nats-scion's transport can be tested against a SCION implementation we did not write.
//!
//! PocketSCION 0.8.6 has no CLI or management API, so this wrapper builds the network in Rust,
//! prints one JSON line describing it (daemon and router addresses per AS, links), and then
//! takes line commands on stdin:
//!
//! ```text
//! link <ISD-AS> <ifid> up|down   ->  ok <previous state> | err <reason>
//! paths <src ISD-AS> <dst ISD-AS> ->  ok <count> | err <reason>
//! quit                           ->  ok (then exit)
//! ```
//!
//! End of stdin also ends the program, so a test that dies never leaves it behind.
//!
//! Topology (one ISD; every AS has one router holding all its interfaces and a daemon):
//!
//! ```text
//!            1-ff00:0:110 (core)
//!           #1 #2        #3 #4
//!           |  |          |  |
//!           #1 #2        #1 #2
//!   1-ff00:0:111        1-ff00:0:112
//! ```
//!
//! Each child hangs off the core by two parallel parent-child links, so core <-> child has two
//! interface-disjoint one-segment paths, and child <-> child has four two-segment paths.

use std::collections::BTreeMap;
use std::num::NonZeroU16;
use std::process::ExitCode;

use chrono::Utc;
use pocketscion::comp::daemon::DaemonServiceState;
use pocketscion::network::scion::topology::{
    ScionAs, ScionLink, ScionLinkType, ScionTopologyBuilder,
};
use pocketscion::runtime::PocketScionRuntime;
use pocketscion::runtime::builder::PocketScionRuntimeBuilder;
use pocketscion::state::PocketScionState;
use sciparse::identifier::isd_asn::IsdAsn;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One AS of the fixed topology.
struct AsSpec {
    ia: &'static str,
    core: bool,
    interfaces: &'static [u16],
}

/// One link: `(a, a_if)` is the parent (or core) side, `(b, b_if)` the child side.
struct LinkSpec {
    a: &'static str,
    a_if: u16,
    b: &'static str,
    b_if: u16,
}

const ASES: &[AsSpec] = &[
    AsSpec {
        ia: "1-ff00:0:110",
        core: true,
        interfaces: &[1, 2, 3, 4],
    },
    AsSpec {
        ia: "1-ff00:0:111",
        core: false,
        interfaces: &[1, 2],
    },
    AsSpec {
        ia: "1-ff00:0:112",
        core: false,
        interfaces: &[1, 2],
    },
];

const LINKS: &[LinkSpec] = &[
    LinkSpec {
        a: "1-ff00:0:110",
        a_if: 1,
        b: "1-ff00:0:111",
        b_if: 1,
    },
    LinkSpec {
        a: "1-ff00:0:110",
        a_if: 2,
        b: "1-ff00:0:111",
        b_if: 2,
    },
    LinkSpec {
        a: "1-ff00:0:110",
        a_if: 3,
        b: "1-ff00:0:112",
        b_if: 1,
    },
    LinkSpec {
        a: "1-ff00:0:110",
        a_if: 4,
        b: "1-ff00:0:112",
        b_if: 2,
    },
];

/// The machine-readable line printed once the network runs.
#[derive(Serialize)]
struct Ready {
    event: &'static str,
    pocketscion: &'static str,
    ases: Vec<AsOut>,
    links: Vec<LinkOut>,
}

#[derive(Serialize)]
struct AsOut {
    ia: String,
    core: bool,
    daemon: String,
    router: String,
    interfaces: Vec<u16>,
}

#[derive(Serialize)]
struct LinkOut {
    parent: String,
    parent_if: u16,
    child: String,
    child_if: u16,
    #[serde(rename = "type")]
    kind: &'static str,
}

fn parse_ia(s: &str) -> anyhow::Result<IsdAsn> {
    s.parse::<IsdAsn>()
        .map_err(|e| anyhow::anyhow!("bad ISD-AS {s:?}: {e}"))
}

/// Builds the state (topology, daemons, routers) and starts PocketSCION on 127.0.0.1.
async fn start() -> anyhow::Result<(PocketScionRuntime, Ready)> {
    let mut topo = ScionTopologyBuilder::new();
    for a in ASES {
        let ia = parse_ia(a.ia)?;
        topo.add_as(if a.core {
            ScionAs::new_core(ia)
        } else {
            ScionAs::new(ia)
        })?;
    }
    for l in LINKS {
        topo.add_link(ScionLink::new(
            parse_ia(l.a)?,
            l.a_if,
            ScionLinkType::Parent,
            parse_ia(l.b)?,
            l.b_if,
        )?)?;
    }

    let mut pstate = PocketScionState::new(Utc::now());
    pstate.set_topology(topo.build()?);
    let mut routers = Vec::new();
    for a in ASES {
        let ia = parse_ia(a.ia)?;
        pstate.add_daemon_service(ia, DaemonServiceState::new())?;
        let if_ids = a
            .interfaces
            .iter()
            .map(|i| NonZeroU16::new(*i).ok_or_else(|| anyhow::anyhow!("interface id 0")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        routers.push(pstate.add_router(ia, if_ids, vec![], BTreeMap::new()));
    }

    // The default IoConfig binds every component to 127.0.0.1 with OS-chosen ports.
    let rt = PocketScionRuntimeBuilder::new()
        .with_system_state(pstate)
        .start()
        .await?;
    let io = rt.io_config();

    let mut ases = Vec::new();
    for (a, router_id) in ASES.iter().zip(routers) {
        let ia = parse_ia(a.ia)?;
        let daemon = io
            .daemon_service_addr(ia)
            .ok_or_else(|| anyhow::anyhow!("no daemon address for {ia}"))?;
        let router = rt
            .router_socket_addr(router_id)
            .ok_or_else(|| anyhow::anyhow!("no router address for {ia}"))?;
        for addr in [daemon, router] {
            if !addr.ip().is_loopback() {
                anyhow::bail!("{ia}: component bound to non-loopback address {addr}");
            }
        }
        ases.push(AsOut {
            ia: ia.to_string(),
            core: a.core,
            daemon: daemon.to_string(),
            router: router.to_string(),
            interfaces: a.interfaces.to_vec(),
        });
    }
    let links = LINKS
        .iter()
        .map(|l| LinkOut {
            parent: l.a.to_string(),
            parent_if: l.a_if,
            child: l.b.to_string(),
            child_if: l.b_if,
            kind: "parent-child",
        })
        .collect();
    Ok((
        rt,
        Ready {
            event: "ready",
            pocketscion: "0.8.6",
            ases,
            links,
        },
    ))
}

/// What one command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Link { ia: IsdAsn, ifid: u16, up: bool },
    Paths { src: IsdAsn, dst: IsdAsn },
    Quit,
}

fn parse_command(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["link", ia, ifid, state] => {
            let ia = parse_ia(ia).map_err(|e| e.to_string())?;
            let ifid = ifid
                .parse::<u16>()
                .ok()
                .filter(|i| *i != 0)
                .ok_or_else(|| format!("bad interface id {ifid:?} (1-65535)"))?;
            let up = match *state {
                "up" => true,
                "down" => false,
                other => return Err(format!("bad link state {other:?} (up|down)")),
            };
            Ok(Command::Link { ia, ifid, up })
        }
        ["paths", src, dst] => Ok(Command::Paths {
            src: parse_ia(src).map_err(|e| e.to_string())?,
            dst: parse_ia(dst).map_err(|e| e.to_string())?,
        }),
        ["quit"] => Ok(Command::Quit),
        [] => Err("empty command".into()),
        _ => Err(format!(
            "unknown command {line:?} (link <ia> <ifid> up|down, paths <src> <dst>, quit)"
        )),
    }
}

/// Carries out one command; the answer line has no trailing newline.
fn execute(rt: &PocketScionRuntime, cmd: &Command) -> String {
    match cmd {
        Command::Link { ia, ifid, up } => match rt.set_link_state(*ia, *ifid, *up) {
            Some(prev) => format!("ok {}", if prev { "up" } else { "down" }),
            None => format!("err no link at {ia}#{ifid}"),
        },
        Command::Paths { src, dst } => match rt.paths(*src, *dst, Utc::now()) {
            Ok(p) => format!("ok {}", p.len()),
            Err(e) => format!("err {e:#}"),
        },
        Command::Quit => "ok".into(),
    }
}

async fn run() -> anyhow::Result<()> {
    scion_sdk_utils::rustls::select_ring_crypto_provider();
    let (rt, ready) = start().await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("{}\n", serde_json::to_string(&ready)?).as_bytes())
        .await?;
    out.flush().await?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (answer, quit) = match parse_command(line) {
            Ok(cmd) => (execute(&rt, &cmd), cmd == Command::Quit),
            Err(e) => (format!("err {e}"), false),
        };
        tracing::info!(command = line, %answer, "control");
        out.write_all(format!("{answer}\n").as_bytes()).await?;
        out.flush().await?;
        if quit {
            break;
        }
    }
    // Not `stop_and_join`: in 0.8.6 it aborts its tasks and then `join_all` panics on the
    // cancelled ones. Dropping the runtime aborts them too.
    drop(rt);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pocketscion-wrapper: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        let ia = parse_ia("1-ff00:0:111").unwrap();
        assert_eq!(
            parse_command("link 1-ff00:0:111 2 down"),
            Ok(Command::Link {
                ia,
                ifid: 2,
                up: false
            })
        );
        assert_eq!(
            parse_command("  link 1-ff00:0:111   1 up "),
            Ok(Command::Link {
                ia,
                ifid: 1,
                up: true
            })
        );
        assert_eq!(parse_command("quit"), Ok(Command::Quit));
        assert!(parse_command("link 1-ff00:0:111 0 down").is_err());
        assert!(parse_command("link 1-ff00:0:111 x down").is_err());
        assert!(parse_command("link 1-ff00:0:111 1 sideways").is_err());
        assert!(parse_command("link nonsense 1 up").is_err());
        assert!(parse_command("link 1-ff00:0:111 1").is_err());
        assert!(parse_command("reboot").is_err());
    }

    #[test]
    fn topology_is_consistent() {
        for l in LINKS {
            for (ia, ifid) in [(l.a, l.a_if), (l.b, l.b_if)] {
                let owner = ASES
                    .iter()
                    .find(|a| a.ia == ia)
                    .expect("link end AS exists");
                assert!(
                    owner.interfaces.contains(&ifid),
                    "{ia}#{ifid} not on router"
                );
            }
        }
    }
}
