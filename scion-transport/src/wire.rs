//! The SCION wire format: the only module that names `scion_proto::*`.
//!
//! scion-proto `=0.5.2` is the last release of its line (its maintainers moved on to `sciparse`),
//! so every use of it is fenced in here: encoding and decoding SCION/UDP and SCMP packets,
//! reversing paths, converting daemon answers into [`ScionPath`], and building MAC-valid standard
//! paths (for the emulator and for tests). The rest of the crate sees only the types below.

use std::net::{IpAddr, SocketAddr as StdSocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use scion_proto::address as sp_addr;
use scion_proto::packet::{self as sp_packet, MessageChecksum as _};
use scion_proto::path as sp_path;
use scion_proto::scmp as sp_scmp;
use scion_proto::wire_encoding::{WireDecode, WireDecodeWithContext, WireEncodeVec};

use crate::address::{IsdAsn, ScionAddr};

mod fast;
pub use fast::{decode_udp_fast, FastDecoded, FastUdp, UdpTemplate};

/// SCMP protocol number in the SCION common header's NextHdr field.
pub const SCMP_PROTOCOL: u8 = 202;
/// UDP protocol number in the SCION common header's NextHdr field.
pub const UDP_PROTOCOL: u8 = 17;
/// Size of the UDP header that follows the SCION headers.
pub const UDP_HEADER_LEN: usize = 8;
/// Largest payload a UDP length field can describe.
const MAX_UDP_PAYLOAD: usize = u16::MAX as usize - UDP_HEADER_LEN;

/// Errors of encoding a SCION packet.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("payload of {0} bytes is too large for one SCION/UDP datagram")]
    PayloadTooLarge(usize),
    #[error("SCION header encoding failed: {0}")]
    Header(String),
}

/// Errors of decoding a SCION packet or path.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed SCION packet: {0}")]
    Packet(String),
    #[error("malformed SCION path: {0}")]
    Path(String),
    #[error("path type is not the SCION standard path")]
    UnsupportedPath,
    #[error("service (SVC) host addresses are not supported here")]
    ServiceAddress,
    #[error("UDP checksum mismatch")]
    Checksum,
}

/// Errors of turning a daemon answer into a [`ScionPath`].
#[derive(Debug, thiserror::Error)]
pub enum PathConvertError {
    #[error("daemon path rejected: {0}")]
    Invalid(String),
    #[error("daemon path between different ASes has no interface metadata")]
    NoInterfaces,
}

/// Errors of building a standard path from segment descriptions.
#[derive(Debug, thiserror::Error)]
pub enum BuildPathError {
    #[error("a SCION path has 1 to 3 segments, got {0}")]
    SegmentCount(usize),
    #[error("a segment has 1 to 63 hop fields, got {0}")]
    SegmentLength(usize),
}

/// Bytes of a standard path's meta header, of one info field and of one hop field.
const PATH_META_LEN: usize = 4;
const INFO_FIELD_LEN: usize = 8;
const HOP_FIELD_LEN: usize = 12;

/// An encoded SCION data-plane path (empty for AS-local traffic), opaque to the rest of the crate.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPath(sp_path::DataPlanePath);

impl DataPath {
    /// The empty path, used between hosts of the same AS.
    pub fn empty() -> Self {
        DataPath(sp_path::DataPlanePath::EmptyPath)
    }

    /// Parses the raw bytes of a standard path (as carried in the daemon's `Path.raw`).
    pub fn from_raw(raw: Bytes) -> Result<Self, DecodeError> {
        if raw.is_empty() {
            return Ok(Self::empty());
        }
        let mut raw = raw;
        let encoded = sp_path::EncodedStandardPath::decode(&mut raw)
            .map_err(|e| DecodeError::Path(e.to_string()))?;
        Ok(DataPath(encoded.into()))
    }

    /// The raw bytes as they go on the wire.
    pub fn raw(&self) -> &[u8] {
        self.0.raw()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The path for answering a packet that arrived over this path.
    pub fn reversed(&self) -> Result<Self, DecodeError> {
        self.0
            .to_reversed()
            .map(DataPath)
            .map_err(|_| DecodeError::UnsupportedPath)
    }

    /// Number of (info fields, hop fields) in the encoded path.
    pub fn shape(&self) -> (u8, u8) {
        match &self.0 {
            sp_path::DataPlanePath::Standard(path) => {
                let meta = path.meta_header();
                (
                    meta.info_fields_count() as u8,
                    meta.hop_fields_count() as u8,
                )
            }
            _ => (0, 0),
        }
    }

    /// The hop fields of a standard path as encoded, 12 bytes each, MACs included (None for
    /// the empty path). Routers never rewrite hop fields in transit (only the path meta
    /// header and the info fields' SegIDs change), so these bytes tell which of our paths a
    /// packet quoted in an SCMP error took.
    pub fn hop_field_bytes(&self) -> Option<&[u8]> {
        let (infos, hops) = self.shape();
        if hops == 0 {
            return None;
        }
        let start = PATH_META_LEN + INFO_FIELD_LEN * usize::from(infos);
        self.raw()
            .get(start..start + HOP_FIELD_LEN * usize::from(hops))
    }

    /// The interface through which a packet that arrived over this path entered our AS: the
    /// current hop field's ingress in travel direction (the path as received, its pointers
    /// on the last hop). scionproto's snet reads it the same way to find the border router
    /// to answer through when a shim dispatcher handed the packet over.
    pub fn arrival_interface(&self) -> Option<u16> {
        match &self.0 {
            sp_path::DataPlanePath::Standard(path) => {
                let meta = path.meta_header();
                let info = path.info_field(meta.info_field_index())?;
                let hop = path.hop_fields().nth(meta.hop_field_index())?;
                hop.ingress_interface(info).map(|i| i.get())
            }
            _ => None,
        }
    }

    /// Interface ids in travel order as (ingress, egress) pairs per hop field.
    ///
    /// Used to recognise which of our candidate paths a quoted or reflected packet used.
    pub fn hop_interfaces(&self) -> Vec<(u16, u16)> {
        match &self.0 {
            sp_path::DataPlanePath::Standard(path) => {
                let infos: Vec<bool> = path
                    .info_fields()
                    .map(|info| info.is_constructed_dir())
                    .collect();
                let mut out = Vec::new();
                let mut hop_iter = path.hop_fields();
                let lengths = &path.meta_header().segment_lengths;
                for (seg, cons_dir) in infos.iter().enumerate() {
                    let len = lengths.get(seg).map(|l| l.get() as usize).unwrap_or(0);
                    for _ in 0..len {
                        let Some(hop) = hop_iter.next() else {
                            return out;
                        };
                        let ing = hop.cons_ingress_interface().map(|v| v.get()).unwrap_or(0);
                        let eg = hop.cons_egress_interface().map(|v| v.get()).unwrap_or(0);
                        out.push(if *cons_dir { (ing, eg) } else { (eg, ing) });
                    }
                }
                out
            }
            _ => Vec::new(),
        }
    }
}

/// One interface on a path: the AS and its interface id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathHop {
    pub ia: IsdAsn,
    pub ifid: u16,
}

/// A path to a destination AS with the metadata a daemon published for it.
#[derive(Clone, Debug)]
pub struct ScionPath {
    pub src: IsdAsn,
    pub dst: IsdAsn,
    pub data: DataPath,
    /// Underlay address of the first-hop border router (None for AS-local paths).
    pub next_hop: Option<StdSocketAddr>,
    /// SHA-256 over the interface sequence, as scion-proto and the Go tools compute it.
    pub fingerprint: [u8; 32],
    /// Interfaces in travel order: egress of the source, then (ingress, egress) pairs, then the
    /// ingress of the destination.
    pub interfaces: Vec<PathHop>,
    pub mtu: u16,
    pub expiry: SystemTime,
    /// Per-link latency (N-1 entries for N interfaces); empty when the daemon sent none.
    pub latency: Vec<Option<Duration>>,
    /// Per-link bandwidth in kbit/s (N-1 entries for N interfaces); empty when unknown.
    pub bandwidth_kbps: Vec<Option<u64>>,
}

impl ScionPath {
    /// Fingerprint as lower-case hex (the form users see in /pathz and logs).
    pub fn fingerprint_hex(&self) -> String {
        self.fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The pure core's view of this path (selector, preference, policy).
    pub fn to_path_info(&self) -> crate::path::PathInfo {
        use crate::path::{DataplaneShape, PathFingerprint, PathInfo, PathInterface};
        let (info_fields, hop_fields) = self.data.shape();
        PathInfo {
            fingerprint: PathFingerprint(self.fingerprint),
            src: self.src,
            dst: self.dst,
            interfaces: self
                .interfaces
                .iter()
                .map(|h| PathInterface::new(h.ia, h.ifid))
                .collect(),
            mtu: self.mtu,
            expiry_unix_secs: self
                .expiry
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            latency: self.latency.clone(),
            bandwidth_kbps: self.bandwidth_kbps.clone(),
            dataplane: Some(DataplaneShape {
                info_fields,
                hop_fields,
            }),
        }
    }

    /// Bytes of SCION + UDP header this path costs for the given host addresses.
    pub fn header_overhead(&self, src: IpAddr, dst: IpAddr) -> usize {
        header_overhead(&self.data, src, dst)
    }
}

/// Bytes a host address takes in the SCION address header: 4 for IPv4, 16 for IPv6.
pub fn host_addr_len(ip: IpAddr) -> usize {
    if ip.is_ipv4() {
        4
    } else {
        16
    }
}

/// Bytes of SCION common + address + path + UDP header for a packet over `path`.
pub fn header_overhead(path: &DataPath, src: IpAddr, dst: IpAddr) -> usize {
    12 + 16 + host_addr_len(src) + host_addr_len(dst) + path.raw().len() + UDP_HEADER_LEN
}

fn proto_ia(ia: IsdAsn) -> sp_addr::IsdAsn {
    sp_addr::IsdAsn(ia.0)
}

fn our_ia(ia: sp_addr::IsdAsn) -> IsdAsn {
    IsdAsn(ia.to_u64())
}

fn proto_socket(addr: &ScionAddr) -> sp_addr::SocketAddr {
    sp_addr::SocketAddr::from_std(proto_ia(addr.ia), StdSocketAddr::new(addr.ip, addr.port))
}

fn proto_host(ia: IsdAsn, ip: IpAddr) -> sp_addr::ScionAddr {
    let host = match ip {
        IpAddr::V4(v4) => sp_addr::HostAddr::from(v4),
        IpAddr::V6(v6) => sp_addr::HostAddr::from(v6),
    };
    sp_addr::ScionAddr::new(proto_ia(ia), host)
}

fn our_host(addr: sp_addr::ScionAddr) -> Result<(IsdAsn, IpAddr), DecodeError> {
    let ip = addr.local_address().ok_or(DecodeError::ServiceAddress)?;
    Ok((our_ia(addr.isd_asn()), ip))
}

fn chrono_to_system(t: chrono::DateTime<chrono::Utc>) -> SystemTime {
    match u64::try_from(t.timestamp()) {
        Ok(secs) => UNIX_EPOCH + Duration::new(secs, t.timestamp_subsec_nanos().min(999_999_999)),
        Err(_) => UNIX_EPOCH,
    }
}

/// Encodes one SCION/UDP datagram from `src` to `dst` over `path`.
pub fn encode_udp(
    src: &ScionAddr,
    dst: &ScionAddr,
    path: &DataPath,
    payload: Bytes,
) -> Result<Vec<u8>, EncodeError> {
    // scion-proto 0.5.2 panics (`todo!()`) when the UDP length overflows, so check first.
    if payload.len() > MAX_UDP_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge(payload.len()));
    }
    let endpoints = sp_packet::ByEndpoint {
        source: proto_socket(src),
        destination: proto_socket(dst),
    };
    let packet = sp_packet::ScionPacketUdp::new(endpoints, path.0.clone(), payload)
        .map_err(|e| EncodeError::Header(e.to_string()))?;
    let parts = packet.encode_to_bytes_vec();
    let mut out = Vec::with_capacity(packet.total_length());
    for part in parts.iter() {
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// A decoded SCION/UDP datagram.
#[derive(Clone, Debug)]
pub struct UdpDatagram {
    pub src: ScionAddr,
    pub dst: ScionAddr,
    /// The path as it arrived (reverse it to answer).
    pub path: DataPath,
    pub payload: Bytes,
}

/// The kinds of SCMP message the transport reacts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScmpKind {
    ExternalInterfaceDown {
        ia: IsdAsn,
        ifid: u64,
    },
    InternalConnectivityDown {
        ia: IsdAsn,
        ingress: u64,
        egress: u64,
    },
    PacketTooBig {
        mtu: u16,
    },
    DestinationUnreachable {
        code: u8,
    },
    ParameterProblem {
        code: u8,
        pointer: u16,
    },
    EchoRequest {
        id: u16,
        seq: u16,
    },
    EchoReply {
        id: u16,
        seq: u16,
    },
    Other {
        kind: u8,
    },
}

/// The head of the packet an SCMP error quotes (routers may truncate the rest).
#[derive(Clone, Debug, PartialEq)]
pub struct QuotedUdp {
    pub src: ScionAddr,
    pub dst: ScionAddr,
    pub path: DataPath,
}

/// A decoded SCMP message.
#[derive(Clone, Debug)]
pub struct ScmpReport {
    /// Who sent it (ISD-AS and host of the router or end host).
    pub from: (IsdAsn, IpAddr),
    pub kind: ScmpKind,
    /// The offending packet's addresses and path, when it was SCION/UDP.
    pub quoted: Option<QuotedUdp>,
}

/// What arrived on a SCION socket.
#[derive(Clone, Debug)]
pub enum Received {
    Udp(UdpDatagram),
    Scmp(ScmpReport),
    /// Another upper-layer protocol (not for us).
    Other {
        next_header: u8,
    },
}

/// Decodes one datagram received from the underlay.
pub fn decode(datagram: Bytes) -> Result<Received, DecodeError> {
    let mut data = datagram;
    let raw = sp_packet::ScionPacketRaw::decode(&mut data)
        .map_err(|e| DecodeError::Packet(e.to_string()))?;
    match raw.headers.common.next_header {
        UDP_PROTOCOL => {
            // scion-proto 0.5.2 subtracts the header size from the UDP length unchecked (a
            // panic in debug builds), so refuse lengths below the header first.
            if raw.payload.len() >= UDP_HEADER_LEN
                && u16::from_be_bytes([raw.payload[4], raw.payload[5]]) < UDP_HEADER_LEN as u16
            {
                return Err(DecodeError::Packet(
                    "UDP length below its header size".into(),
                ));
            }
            let udp = sp_packet::ScionPacketUdp::try_from(raw)
                .map_err(|e| DecodeError::Packet(e.to_string()))?;
            // Routers do not check it; end hosts must (SCION UDP checksum is mandatory).
            if !udp.datagram.verify_checksum(&udp.headers.address) {
                return Err(DecodeError::Checksum);
            }
            let src = udp.source().ok_or(DecodeError::ServiceAddress)?;
            let dst = udp.destination().ok_or(DecodeError::ServiceAddress)?;
            Ok(Received::Udp(UdpDatagram {
                src: our_socket(src)?,
                dst: our_socket(dst)?,
                path: DataPath(udp.headers.path.clone()),
                payload: udp.datagram.payload.clone(),
            }))
        }
        SCMP_PROTOCOL => {
            let scmp = sp_packet::ScionPacketScmp::try_from(raw)
                .map_err(|e| DecodeError::Packet(e.to_string()))?;
            let from = scmp
                .headers
                .address
                .source()
                .ok_or(DecodeError::ServiceAddress)
                .and_then(our_host)?;
            let (kind, quote) = scmp_kind(&scmp.message);
            let quoted = quote.and_then(|q| decode_quote(q).ok());
            Ok(Received::Scmp(ScmpReport { from, kind, quoted }))
        }
        other => Ok(Received::Other { next_header: other }),
    }
}

fn our_socket(addr: sp_addr::SocketAddr) -> Result<ScionAddr, DecodeError> {
    let std = addr.local_address().ok_or(DecodeError::ServiceAddress)?;
    Ok(ScionAddr {
        ia: our_ia(addr.isd_asn()),
        ip: std.ip(),
        port: std.port(),
    })
}

fn scmp_kind(message: &sp_scmp::ScmpMessage) -> (ScmpKind, Option<Bytes>) {
    use sp_scmp::ScmpMessage as M;
    match message {
        M::ExternalInterfaceDown(m) => (
            ScmpKind::ExternalInterfaceDown {
                ia: our_ia(m.isd_asn),
                ifid: m.interface_id,
            },
            Some(m.get_offending_packet()),
        ),
        M::InternalConnectivityDown(m) => (
            ScmpKind::InternalConnectivityDown {
                ia: our_ia(m.isd_asn),
                ingress: m.ingress_interface_id,
                egress: m.egress_interface_id,
            },
            Some(m.get_offending_packet()),
        ),
        M::PacketTooBig(m) => (
            ScmpKind::PacketTooBig { mtu: m.mtu },
            Some(m.get_offending_packet()),
        ),
        M::DestinationUnreachable(m) => (
            ScmpKind::DestinationUnreachable {
                code: m.code.into(),
            },
            Some(m.get_offending_packet()),
        ),
        M::ParameterProblem(m) => (
            ScmpKind::ParameterProblem {
                code: m.code.into(),
                pointer: m.pointer,
            },
            Some(m.get_offending_packet()),
        ),
        M::EchoRequest(m) => (
            ScmpKind::EchoRequest {
                id: m.identifier,
                seq: m.sequence_number,
            },
            None,
        ),
        M::EchoReply(m) => (
            ScmpKind::EchoReply {
                id: m.identifier,
                seq: m.sequence_number,
            },
            None,
        ),
        M::TracerouteRequest(_) => (ScmpKind::Other { kind: 130 }, None),
        M::TracerouteReply(_) => (ScmpKind::Other { kind: 131 }, None),
        M::UnknownError(_) => (ScmpKind::Other { kind: 0 }, None),
    }
}

/// Parses the headers of a quoted packet, tolerating a truncated payload (routers cut quotes so
/// that the SCMP message fits 1232 bytes, which always truncates a full QUIC packet).
pub fn decode_quote(quote: Bytes) -> Result<QuotedUdp, DecodeError> {
    let mut data = quote;
    let common = sp_packet::CommonHeader::decode(&mut data)
        .map_err(|e| DecodeError::Packet(e.to_string()))?;
    let remaining = common.remaining_header_length();
    if data.remaining() < remaining + UDP_HEADER_LEN {
        return Err(DecodeError::Packet("quote shorter than its headers".into()));
    }
    let mut header = data.split_to(remaining);
    let address = sp_packet::AddressHeader::decode_with_context(&mut header, common.address_info)
        .map_err(|e| DecodeError::Packet(e.to_string()))?;
    let path_len = header.remaining();
    let path =
        sp_path::DataPlanePath::decode_with_context(&mut header, (common.path_type, path_len))
            .map_err(|e| DecodeError::Path(e.to_string()))?;
    if common.next_header != UDP_PROTOCOL {
        return Err(DecodeError::Packet("quoted packet is not UDP".into()));
    }
    let src_port = data.get_u16();
    let dst_port = data.get_u16();
    let (src_ia, src_ip) = address
        .source()
        .ok_or(DecodeError::ServiceAddress)
        .and_then(our_host)?;
    let (dst_ia, dst_ip) = address
        .destination()
        .ok_or(DecodeError::ServiceAddress)
        .and_then(our_host)?;
    Ok(QuotedUdp {
        src: ScionAddr {
            ia: src_ia,
            ip: src_ip,
            port: src_port,
        },
        dst: ScionAddr {
            ia: dst_ia,
            ip: dst_ip,
            port: dst_port,
        },
        path: DataPath(path),
    })
}

/// Encodes an SCMP error from a router at (`from_ia`, `from_ip`) back to `to`, quoting `quote`.
pub fn encode_scmp_error(
    from: (IsdAsn, IpAddr),
    to: (IsdAsn, IpAddr),
    path: &DataPath,
    kind: &ScmpKind,
    quote: Bytes,
) -> Result<Vec<u8>, EncodeError> {
    use sp_scmp::ScmpMessage as M;
    let message = match kind {
        ScmpKind::ExternalInterfaceDown { ia, ifid } => M::ExternalInterfaceDown(
            sp_scmp::ScmpExternalInterfaceDown::new(proto_ia(*ia), *ifid, quote),
        ),
        ScmpKind::InternalConnectivityDown {
            ia,
            ingress,
            egress,
        } => M::InternalConnectivityDown(sp_scmp::ScmpInternalConnectivityDown::new(
            proto_ia(*ia),
            *ingress,
            *egress,
            quote,
        )),
        ScmpKind::ParameterProblem { code, pointer } => M::ParameterProblem(
            sp_scmp::ScmpParameterProblem::new((*code).into(), *pointer, quote),
        ),
        other => {
            return Err(EncodeError::Header(format!(
                "cannot encode SCMP kind {other:?} as an error"
            )));
        }
    };
    let endhosts = sp_packet::ByEndpoint {
        source: proto_host(from.0, from.1),
        destination: proto_host(to.0, to.1),
    };
    let packet = sp_packet::ScionPacketScmp::new(endhosts, path.0.clone(), message)
        .map_err(|e| EncodeError::Header(e.to_string()))?;
    Ok(packet.encode_to_bytes_vec().concat())
}

/// Converts a daemon (gRPC) path answer into a [`ScionPath`].
pub fn path_from_daemon(
    grpc: scion_protobuf::daemon::v1::Path,
    src: IsdAsn,
    dst: IsdAsn,
) -> Result<ScionPath, PathConvertError> {
    let path = sp_path::Path::try_from_grpc(
        grpc,
        sp_packet::ByEndpoint {
            source: proto_ia(src),
            destination: proto_ia(dst),
        },
    )
    .map_err(|e| PathConvertError::Invalid(e.to_string()))?;
    let fingerprint: [u8; 32] = match path.fingerprint() {
        Ok(fp) => fp
            .as_ref()
            .try_into()
            .map_err(|_| PathConvertError::NoInterfaces)?,
        Err(_) => return Err(PathConvertError::NoInterfaces),
    };
    let metadata = path.metadata.clone().unwrap_or_default();
    let interfaces = metadata
        .interfaces
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|i| PathHop {
            ia: our_ia(i.isd_asn),
            ifid: i.id,
        })
        .collect();
    let latency = metadata
        .latency
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|l| l.and_then(|d| d.to_std().ok()))
        .collect();
    let bandwidth_kbps = metadata
        .bandwidth_kbps
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|b| b.map(|v| v.get()))
        .collect();
    let expiry = path
        .expiry_time()
        .map(chrono_to_system)
        .unwrap_or(UNIX_EPOCH);
    Ok(ScionPath {
        src,
        dst,
        data: DataPath(path.data_plane_path),
        next_hop: path.underlay_next_hop,
        fingerprint,
        interfaces,
        mtu: metadata.mtu,
        expiry,
        latency,
        bandwidth_kbps,
    })
}

/// One hop field of a segment, in construction order.
#[derive(Clone, Debug)]
pub struct HopSpec {
    pub cons_ingress: u16,
    pub cons_egress: u16,
    /// Hop expiry in units of 24h/256 past the info-field timestamp, plus one.
    pub exp_time: u8,
    /// The AS's forwarding key (AES-128), used for the hop-field MAC.
    pub key: [u8; 16],
}

/// One path segment as it is laid into a standard path.
#[derive(Clone, Debug)]
pub struct SegmentSpec {
    /// True if traversed in construction direction (down/core segments), false for up segments.
    pub cons_dir: bool,
    pub seg_id: u16,
    /// Seconds since the Unix epoch (the beacon's timestamp).
    pub timestamp: u32,
    /// Hop fields in construction order.
    pub hops: Vec<HopSpec>,
}

/// The hop-field MAC (AES-CMAC, truncated to 6 bytes) as border routers compute it.
pub fn hop_mac(key: &[u8; 16], seg_id: u16, timestamp: u32, hop: (u8, u16, u16)) -> [u8; 6] {
    sp_path::crypto::calculate_hop_mac(seg_id, timestamp, hop.0, hop.1, hop.2, key)
}

/// Builds a standard path with valid MACs from segments.
///
/// The SegID stored in each info field is what the first router on the segment (in travel
/// order) needs: the initial SegID for a construction-direction segment, and the accumulator
/// before the last hop for a segment traversed against construction direction.
pub fn build_standard_path(segments: &[SegmentSpec]) -> Result<DataPath, BuildPathError> {
    if segments.is_empty() || segments.len() > 3 {
        return Err(BuildPathError::SegmentCount(segments.len()));
    }
    let mut path = sp_path::StandardPath::new();
    for segment in segments {
        if segment.hops.is_empty() || segment.hops.len() > 63 {
            return Err(BuildPathError::SegmentLength(segment.hops.len()));
        }
        let mut beta = segment.seg_id;
        let mut before_last = beta;
        let mut hops = Vec::with_capacity(segment.hops.len());
        for hop in &segment.hops {
            let mac = hop_mac(
                &hop.key,
                beta,
                segment.timestamp,
                (hop.exp_time, hop.cons_ingress, hop.cons_egress),
            );
            hops.push(sp_path::HopField {
                ingress_router_alert: false,
                egress_router_alert: false,
                exp_time: hop.exp_time,
                cons_ingress: hop.cons_ingress,
                cons_egress: hop.cons_egress,
                mac,
            });
            before_last = beta;
            beta = sp_path::crypto::mac_chaining_step(beta, mac);
        }
        let seg_id = if segment.cons_dir {
            segment.seg_id
        } else {
            hops.reverse();
            before_last
        };
        let info = sp_path::InfoField {
            peer: false,
            cons_dir: segment.cons_dir,
            seg_id,
            timestamp_epoch: segment.timestamp,
        };
        path.add_segment(info, hops)
            .map_err(|_| BuildPathError::SegmentCount(segments.len()))?;
    }
    Ok(DataPath(
        sp_path::encoded::EncodedStandardPath::from(path).into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(ia: IsdAsn, last: u8, port: u16) -> ScionAddr {
        ScionAddr {
            ia,
            ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            port,
        }
    }

    fn two_segment_path() -> DataPath {
        let key = [7u8; 16];
        let hop = |i, e| HopSpec {
            cons_ingress: i,
            cons_egress: e,
            exp_time: 63,
            key,
        };
        build_standard_path(&[
            SegmentSpec {
                cons_dir: false,
                seg_id: 0x1234,
                timestamp: 1_700_000_000,
                hops: vec![hop(0, 1), hop(2, 0)],
            },
            SegmentSpec {
                cons_dir: true,
                seg_id: 0x4321,
                timestamp: 1_700_000_000,
                hops: vec![hop(0, 3), hop(4, 0)],
            },
        ])
        .expect("valid segments")
    }

    #[test]
    fn udp_round_trip() {
        let a = addr(IsdAsn::new(1, 0xff00_0000_0110), 1, 31000);
        let b = addr(IsdAsn::new(1, 0xff00_0000_0111), 2, 31001);
        let path = two_segment_path();
        let bytes = encode_udp(&a, &b, &path, Bytes::from_static(b"hello")).expect("encode");
        assert_eq!(bytes.len(), header_overhead(&path, a.ip, b.ip) + 5);
        let Received::Udp(udp) = decode(Bytes::from(bytes)).expect("decode") else {
            panic!("not udp");
        };
        assert_eq!(udp.src, a);
        assert_eq!(udp.dst, b);
        assert_eq!(&udp.payload[..], b"hello");
        assert_eq!(udp.path, path);
    }

    #[test]
    fn hop_interfaces_in_travel_order() {
        // Up segment traversed against construction: travel ingress = cons egress.
        assert_eq!(
            two_segment_path().hop_interfaces(),
            vec![(0, 2), (1, 0), (0, 3), (4, 0)]
        );
    }

    #[test]
    fn hop_field_bytes_are_the_encoded_hop_fields() {
        let path = two_segment_path();
        let hops = path.hop_field_bytes().expect("hop fields");
        assert_eq!(hops.len(), 4 * HOP_FIELD_LEN);
        // Meta header and two info fields come first; the hop fields end the path.
        assert!(path.raw().ends_with(hops));
        assert_eq!(
            path.raw().len(),
            PATH_META_LEN + 2 * INFO_FIELD_LEN + hops.len()
        );
        // The second hop field is cons ingress 0, cons egress 1 (after its flags and expiry;
        // see `hop_interfaces_in_travel_order`).
        assert_eq!(&hops[HOP_FIELD_LEN + 2..HOP_FIELD_LEN + 6], &[0, 0, 0, 1]);
        // A packet carries them unchanged, and a different MAC gives different bytes.
        let a = addr(IsdAsn::new(1, 0xff00_0000_0110), 1, 31000);
        let b = addr(IsdAsn::new(1, 0xff00_0000_0111), 2, 31001);
        let bytes = encode_udp(&a, &b, &path, Bytes::from_static(b"x")).expect("encode");
        let Ok(Received::Udp(d)) = decode(Bytes::from(bytes)) else {
            panic!("a UDP datagram")
        };
        assert_eq!(d.path.hop_field_bytes(), Some(hops));
        let mut raw = path.raw().to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let other = DataPath::from_raw(Bytes::from(raw)).expect("path");
        assert_ne!(other.hop_field_bytes(), Some(hops));
        assert_eq!(DataPath::empty().hop_field_bytes(), None);
    }

    #[test]
    fn arrival_interface_is_the_last_hop_fields_travel_ingress() {
        // The path as it arrives: its pointers on the last info and hop field.
        let arrived = |path: &DataPath| {
            let (infos, hops) = path.shape();
            let mut raw = path.raw().to_vec();
            raw[0] = ((infos - 1) << 6) | (hops - 1);
            DataPath::from_raw(Bytes::from(raw)).expect("path")
        };
        // Up segment against construction, then a down segment: the last hop field is in
        // construction direction, so its cons ingress (4) is where the packet came in.
        let two = arrived(&two_segment_path());
        assert_eq!(two.hop_interfaces().last(), Some(&(4, 0)));
        assert_eq!(two.arrival_interface(), Some(4));
        // One up segment (to the core AS that beaconed it), traversed against construction:
        // the last hop field's cons egress (1) is the way in.
        let key = [7u8; 16];
        let up = build_standard_path(&[SegmentSpec {
            cons_dir: false,
            seg_id: 7,
            timestamp: 1_700_000_000,
            hops: vec![
                HopSpec {
                    cons_ingress: 0,
                    cons_egress: 1,
                    exp_time: 63,
                    key,
                },
                HopSpec {
                    cons_ingress: 5,
                    cons_egress: 0,
                    exp_time: 63,
                    key,
                },
            ],
        }])
        .expect("up segment");
        let up = arrived(&up);
        assert_eq!(up.hop_interfaces().last(), Some(&(1, 0)));
        assert_eq!(up.arrival_interface(), Some(1));
        // A path not yet on its way starts in the source AS: no way in.
        assert_eq!(two_segment_path().arrival_interface(), None);
        assert_eq!(DataPath::empty().arrival_interface(), None);
    }

    #[test]
    fn oversized_payload_is_an_error_not_a_panic() {
        let a = addr(IsdAsn::new(1, 1), 1, 1);
        let big = Bytes::from(vec![0u8; 70_000]);
        assert!(matches!(
            encode_udp(&a, &a, &DataPath::empty(), big),
            Err(EncodeError::PayloadTooLarge(70_000))
        ));
    }

    #[test]
    fn scmp_quote_survives_truncation() {
        let a = addr(IsdAsn::new(1, 0x110), 1, 31000);
        let b = addr(IsdAsn::new(1, 0x111), 2, 31001);
        let path = two_segment_path();
        let offending = encode_udp(&a, &b, &path, Bytes::from(vec![0x40; 1200])).expect("enc");
        let quote = Bytes::copy_from_slice(&offending[..200]);
        let kind = ScmpKind::ExternalInterfaceDown {
            ia: IsdAsn::new(1, 0x120),
            ifid: 3,
        };
        let scmp = encode_scmp_error(
            (IsdAsn::new(1, 0x120), IpAddr::V4(Ipv4Addr::LOCALHOST)),
            (a.ia, a.ip),
            &path.reversed().expect("reverse"),
            &kind,
            quote,
        )
        .expect("encode scmp");
        let Received::Scmp(report) = decode(Bytes::from(scmp)).expect("decode") else {
            panic!("not scmp");
        };
        assert_eq!(report.kind, kind);
        let quoted = report.quoted.expect("quote parsed");
        assert_eq!(quoted.src, a);
        assert_eq!(quoted.dst, b);
        assert_eq!(quoted.path, path);
    }

    #[test]
    fn garbage_is_an_error() {
        for len in 0..64 {
            let junk = Bytes::from(vec![0xffu8; len]);
            assert!(decode(junk).is_err());
        }
    }
}
