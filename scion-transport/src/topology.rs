//! The local AS's `topology.json` (scionproto format): ISD-AS, MTU, dispatched ports, routers.
//!
//! Read because scion-protobuf 0.5.2's daemon proto lacks the `PortRange` call: the
//! dispatcherless port range (`dispatched_ports`, e.g. "31000-32767") is only known from here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::address::IsdAsn;

/// Errors of reading topology.json.
#[derive(Debug, thiserror::Error)]
pub enum TopologyFileError {
    #[error("cannot read topology file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("topology file is not valid JSON for a SCION topology: {0}")]
    Json(#[from] serde_json::Error),
    #[error("topology file: bad isd_as {0:?}")]
    IsdAs(String),
    #[error("topology file: bad dispatched_ports {0:?} (expected \"LOW-HIGH\", \"all\" or \"-\")")]
    Ports(String),
    #[error("topology file: border router {router}: bad address {addr:?}")]
    Address { router: String, addr: String },
}

#[derive(Debug, Deserialize)]
struct RawTopology {
    isd_as: String,
    #[serde(default)]
    mtu: Option<u16>,
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(default)]
    dispatched_ports: Option<String>,
    #[serde(default)]
    border_routers: BTreeMap<String, RawRouter>,
}

#[derive(Debug, Deserialize)]
struct RawRouter {
    internal_addr: String,
    #[serde(default)]
    interfaces: BTreeMap<String, RawInterface>,
}

#[derive(Debug, Deserialize)]
struct RawInterface {
    #[serde(default)]
    isd_as: Option<String>,
    #[serde(default)]
    mtu: Option<u16>,
}

/// One border router of the local AS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BorderRouter {
    pub name: String,
    /// Where hosts send packets for this router's interfaces.
    pub internal_addr: SocketAddr,
    /// Interface id, neighbour AS (if given), MTU (if given).
    pub interfaces: Vec<(u16, Option<IsdAsn>, Option<u16>)>,
}

/// The ports border routers deliver to directly (topology.json `dispatched_ports`, or the
/// daemon's `PortRange`); packets for any other port go to the shim dispatcher on 30041.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchedPorts {
    /// `LOW-HIGH`, inclusive (`all` is 1-65535).
    Range(u16, u16),
    /// No port: the key is absent, empty or `-` (the daemon answers 0-0).
    Nothing,
}

impl DispatchedPorts {
    /// Reads the topology.json value as scionproto's `validatePortRange` does.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "" | "-" => Some(DispatchedPorts::Nothing),
            "all" | "ALL" => Some(DispatchedPorts::Range(1, u16::MAX)),
            t => {
                crate::emu::topo::parse_port_range(t).map(|(lo, hi)| DispatchedPorts::Range(lo, hi))
            }
        }
    }

    /// Whether routers deliver to `port` directly.
    pub fn contains(&self, port: u16) -> bool {
        match *self {
            DispatchedPorts::Range(lo, hi) => (lo..=hi).contains(&port),
            DispatchedPorts::Nothing => false,
        }
    }
}

impl std::fmt::Display for DispatchedPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DispatchedPorts::Range(lo, hi) => write!(f, "{lo}-{hi}"),
            DispatchedPorts::Nothing => f.write_str("(none)"),
        }
    }
}

/// What the transport needs from topology.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTopology {
    pub ia: IsdAsn,
    pub mtu: Option<u16>,
    pub core: bool,
    /// Ports routers deliver to directly. Absent means none, as for scionproto: every port
    /// then goes to 30041 (a shim dispatcher, or the dispatcher of a pre-v0.12 AS).
    pub dispatched_ports: DispatchedPorts,
    pub border_routers: Vec<BorderRouter>,
}

impl LocalTopology {
    pub fn load(path: &Path) -> Result<Self, TopologyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TopologyFileError> {
        let raw: RawTopology = serde_json::from_str(text)?;
        let ia: IsdAsn = raw
            .isd_as
            .parse()
            .map_err(|_| TopologyFileError::IsdAs(raw.isd_as.clone()))?;
        let text = raw.dispatched_ports.as_deref().unwrap_or("");
        let dispatched_ports = DispatchedPorts::parse(text)
            .ok_or_else(|| TopologyFileError::Ports(text.to_string()))?;
        let mut border_routers = Vec::new();
        for (name, r) in raw.border_routers {
            let internal_addr =
                r.internal_addr
                    .parse()
                    .map_err(|_| TopologyFileError::Address {
                        router: name.clone(),
                        addr: r.internal_addr.clone(),
                    })?;
            let interfaces = r
                .interfaces
                .into_iter()
                .filter_map(|(id, i)| {
                    let id: u16 = id.parse().ok()?;
                    Some((id, i.isd_as.and_then(|s| s.parse().ok()), i.mtu))
                })
                .collect();
            border_routers.push(BorderRouter {
                name,
                internal_addr,
                interfaces,
            });
        }
        Ok(LocalTopology {
            ia,
            mtu: raw.mtu,
            core: raw
                .attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("core")),
            dispatched_ports,
            border_routers,
        })
    }

    /// The internal (host-facing) address of the border router behind each interface.
    pub fn interface_addrs(&self) -> std::collections::HashMap<u16, std::net::SocketAddr> {
        self.border_routers
            .iter()
            .flat_map(|r| r.interfaces.iter().map(|i| (i.0, r.internal_addr)))
            .collect()
    }

    /// Whether routers deliver to `port` directly.
    pub fn port_is_dispatched(&self, port: u16) -> bool {
        self.dispatched_ports.contains(port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shape of a scionproto v0.12 topology.json (as SCIONLab ships it), trimmed.
    const SAMPLE: &str = r#"{
      "attributes": [],
      "isd_as": "18-ffaa:1:10bf",
      "mtu": 1472,
      "dispatched_ports": "31000-32767",
      "control_service": {"cs18-ffaa_1_10bf-1": {"addr": "127.0.0.1:31000"}},
      "border_routers": {
        "br18-ffaa_1_10bf-1": {
          "internal_addr": "127.0.0.1:31002",
          "interfaces": {
            "1": {
              "underlay": {"local": "10.0.8.2:50000", "remote": "10.0.8.1:50000"},
              "isd_as": "18-ffaa:0:1201",
              "link_to": "parent",
              "mtu": 1472
            }
          }
        }
      }
    }"#;

    #[test]
    fn parses_scionlab_shape() {
        let t = LocalTopology::parse(SAMPLE).expect("parse");
        assert_eq!(t.ia.to_string(), "18-ffaa:1:10bf");
        assert_eq!(t.mtu, Some(1472));
        assert_eq!(t.dispatched_ports, DispatchedPorts::Range(31000, 32767));
        assert!(!t.core);
        assert_eq!(t.border_routers.len(), 1);
        assert_eq!(t.border_routers[0].internal_addr.port(), 31002);
        assert_eq!(t.border_routers[0].interfaces[0].0, 1);
        assert!(t.port_is_dispatched(31000) && !t.port_is_dispatched(4248));
        let addrs = t.interface_addrs();
        assert_eq!(addrs.len(), t.border_routers[0].interfaces.len());
        assert_eq!(addrs.get(&1), Some(&t.border_routers[0].internal_addr));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        assert!(matches!(
            LocalTopology::parse("{"),
            Err(TopologyFileError::Json(_))
        ));
        assert!(matches!(
            LocalTopology::parse(r#"{"isd_as": "nope"}"#),
            Err(TopologyFileError::IsdAs(_))
        ));
        assert!(matches!(
            LocalTopology::parse(r#"{"isd_as": "1-ff00:0:1", "dispatched_ports": "9-1"}"#),
            Err(TopologyFileError::Ports(_))
        ));
        // scionproto's readings (private/topology validatePortRange): absent, "" and "-"
        // dispatch nothing, "all" everything.
        let t = LocalTopology::parse(r#"{"isd_as": "1-ff00:0:1"}"#).expect("minimal");
        assert_eq!(t.dispatched_ports, DispatchedPorts::Nothing);
        assert!(!t.port_is_dispatched(31000));
        for (text, want) in [
            ("", DispatchedPorts::Nothing),
            ("-", DispatchedPorts::Nothing),
            ("all", DispatchedPorts::Range(1, 65535)),
            ("ALL", DispatchedPorts::Range(1, 65535)),
            ("1024-65535", DispatchedPorts::Range(1024, 65535)),
        ] {
            let json = format!(r#"{{"isd_as": "1-ff00:0:1", "dispatched_ports": "{text}"}}"#);
            let t = LocalTopology::parse(&json).expect(text);
            assert_eq!(t.dispatched_ports, want, "{text:?}");
        }
        assert!(
            LocalTopology::parse(r#"{"isd_as": "1-ff00:0:1", "dispatched_ports": "0-10"}"#)
                .is_err()
        );
        assert!(
            LocalTopology::parse(r#"{"isd_as": "1-ff00:0:1", "dispatched_ports": "All"}"#).is_err()
        );
    }
}
