//! Client of the SCION daemon (sciond) over gRPC, with scion-protobuf's generated client.
//!
//! The same code talks to a real daemon (scionproto ≥ v0.12, SCIONLab), to PocketSCION and
//! to the emulator's daemons. The vendored proto of scion-protobuf 0.5.2 has no `PortRange`
//! call (scionproto/scion `proto/daemon/v1/daemon.proto`, added after that vendoring), so it is
//! made here by hand on the same channel: [`PortRangeResponse`] and [`PORT_RANGE_PATH`].

use std::time::Duration;

use scion_protobuf::daemon::v1 as grpc;
use scion_protobuf::daemon::DaemonServiceClient;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, warn};

use crate::address::IsdAsn;
use crate::topology::DispatchedPorts;
use crate::wire::{self, ScionPath};

/// Default daemon address of scionproto end hosts.
pub const DEFAULT_DAEMON_ADDRESS: &str = "127.0.0.1:30255";
/// Environment variable the SCION tools read for the daemon address.
pub const DAEMON_ADDRESS_ENV: &str = "SCION_DAEMON_ADDRESS";
/// Bound on connecting to and on each call to the daemon.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(5);
/// gRPC method of sciond's `rpc PortRange(google.protobuf.Empty) returns (PortRangeResponse)`.
pub const PORT_RANGE_PATH: &str = "/proto.daemon.v1.DaemonService/PortRange";

/// `proto.daemon.v1.PortRangeResponse`: the AS's SCION/UDP dispatched port range (inclusive).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct PortRangeResponse {
    /// The lowest port in the SCION/UDP dispatched port range.
    #[prost(uint32, tag = "1")]
    pub dispatched_port_start: u32,
    /// The highest port in the SCION/UDP dispatched port range.
    #[prost(uint32, tag = "2")]
    pub dispatched_port_end: u32,
}

/// Errors of talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("SCION daemon address {0:?} is not a valid host:port or URL")]
    BadAddress(String),
    /// With the underlying cause (tonic's own text is only "transport error") and where
    /// the address can be set.
    #[error(
        "cannot reach the SCION daemon at {addr}: {} (is sciond running? the address comes from scion.daemon, else SCION_DAEMON_ADDRESS, else 127.0.0.1:30255)",
        error_chain(source)
    )]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("SCION daemon call {call} failed: {status}")]
    Call {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("SCION daemon answered an invalid dispatched port range {start}-{end}")]
    BadPortRange { start: u32, end: u32 },
}

/// `err` and its sources, `: `-joined, without repeating a text already shown.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let t = e.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = e.source();
    }
    out
}

/// The daemon address to use: the configured one, else `SCION_DAEMON_ADDRESS`, else
/// `127.0.0.1:30255`.
pub fn resolve_daemon_address(configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .or_else(|| {
            std::env::var(DAEMON_ADDRESS_ENV)
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_DAEMON_ADDRESS.to_string())
}

/// What the daemon says about an AS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsInfo {
    pub ia: IsdAsn,
    pub core: bool,
    pub mtu: u16,
}

/// A connected daemon client (cheap to clone).
#[derive(Debug, Clone)]
pub struct DaemonClient {
    client: DaemonServiceClient<Channel>,
    /// The same connection, for calls the generated client lacks (`PortRange`).
    channel: Channel,
    addr: String,
}

impl DaemonClient {
    /// Connects to `addr` (`host:port` or `http://host:port`).
    pub async fn connect(addr: &str) -> Result<Self, DaemonError> {
        let url = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(url)
            .map_err(|_| DaemonError::BadAddress(addr.to_string()))?
            .connect_timeout(DAEMON_TIMEOUT)
            .timeout(DAEMON_TIMEOUT);
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| DaemonError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        Ok(DaemonClient {
            client: DaemonServiceClient::new(channel.clone()),
            channel,
            addr: addr.to_string(),
        })
    }

    pub fn address(&self) -> &str {
        &self.addr
    }

    /// The local AS (`AS` call with ISD-AS 0).
    pub async fn local_as(&self) -> Result<AsInfo, DaemonError> {
        let answer = self
            .client
            .clone()
            .r#as(grpc::AsRequest { isd_as: 0 })
            .await
            .map_err(|status| DaemonError::Call {
                call: "AS",
                status: Box::new(status),
            })?
            .into_inner();
        Ok(AsInfo {
            ia: IsdAsn(answer.isd_as),
            core: answer.core,
            mtu: u16::try_from(answer.mtu).unwrap_or(u16::MAX),
        })
    }

    /// The underlay address of the border router behind each interface of the local AS
    /// (`Interfaces` call). Entries whose address does not parse are left out.
    pub async fn interfaces(
        &self,
    ) -> Result<std::collections::HashMap<u16, std::net::SocketAddr>, DaemonError> {
        let answer = self
            .client
            .clone()
            .interfaces(grpc::InterfacesRequest {})
            .await
            .map_err(|status| DaemonError::Call {
                call: "Interfaces",
                status: Box::new(status),
            })?
            .into_inner();
        Ok(answer
            .interfaces
            .into_iter()
            .filter_map(|(id, i)| {
                let id = u16::try_from(id).ok()?;
                let addr = i.address?.address.parse().ok()?;
                Some((id, addr))
            })
            .collect())
    }

    /// The local AS's dispatched port range (`PortRange` call), inclusive; 0-0 is an AS that
    /// dispatches no port (no `dispatched_ports` in its topology).
    ///
    /// `Ok(None)` when the daemon predates the call (it answers Unimplemented): the range is
    /// then unknown, which is not an error (topology.json may still name it).
    pub async fn port_range(&self) -> Result<Option<DispatchedPorts>, DaemonError> {
        let call_error = |status| DaemonError::Call {
            call: "PortRange",
            status: Box::new(status),
        };
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| call_error(tonic::Status::unavailable(e.to_string())))?;
        let codec = tonic_prost::ProstCodec::<(), PortRangeResponse>::default();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(PORT_RANGE_PATH);
        let answer = match grpc.unary(tonic::Request::new(()), path, codec).await {
            Ok(answer) => answer.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                debug!(addr = %self.addr, "SCION daemon has no PortRange call; range unknown");
                return Ok(None);
            }
            Err(status) => return Err(call_error(status)),
        };
        let (start, end) = (answer.dispatched_port_start, answer.dispatched_port_end);
        match (u16::try_from(start), u16::try_from(end)) {
            (Ok(0), Ok(0)) => Ok(Some(DispatchedPorts::Nothing)),
            (Ok(lo), Ok(hi)) if lo > 0 && lo <= hi => Ok(Some(DispatchedPorts::Range(lo, hi))),
            _ => Err(DaemonError::BadPortRange { start, end }),
        }
    }

    /// Paths from `src` to `dst`. Answers the transport cannot use are skipped with a log
    /// line naming the reason, so one odd path never hides the others.
    pub async fn paths(
        &self,
        src: IsdAsn,
        dst: IsdAsn,
        refresh: bool,
    ) -> Result<Vec<ScionPath>, DaemonError> {
        let answer = self
            .client
            .clone()
            .paths(grpc::PathsRequest {
                source_isd_as: src.0,
                destination_isd_as: dst.0,
                refresh,
                hidden: false,
            })
            .await
            .map_err(|status| DaemonError::Call {
                call: "Paths",
                status: Box::new(status),
            })?
            .into_inner();
        let mut out = Vec::with_capacity(answer.paths.len());
        for (i, p) in answer.paths.into_iter().enumerate() {
            match wire::path_from_daemon(p, src, dst) {
                Ok(path) => out.push(path),
                Err(e) => warn!(%src, %dst, index = i, error = %e, "ignoring daemon path"),
            }
        }
        Ok(out)
    }
}
