//! Per-packet fast paths of the SCION/UDP wire format, for bulk QUIC traffic.
//!
//! Send side: [`UdpTemplate`] encodes the SCION common + address header, the path and the UDP
//! header once per (local, remote, path) with the full encoder, then each datagram is a copy of
//! that template plus the payload, with three fields patched: the common header's PayloadLen,
//! the UDP length and the UDP checksum (pseudo-header partial sum precomputed).
//!
//! Receive side: [`decode_udp_fast`] reads a SCION/UDP datagram with IPv4/IPv6 hosts and an
//! empty or standard path straight from the bytes. Everything else (SCMP, other path types,
//! service addresses, anything it is unsure about) answers [`FastDecoded::Fallback`] and goes to
//! the full decoder. The UDP checksum is still verified: the SCION spec makes it mandatory for
//! end hosts (routers do not check it), and with 32-bit word accumulation it costs about as much
//! as one copy of the payload.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use bytes::Bytes;

use super::{encode_udp, DataPath, DecodeError, EncodeError, MAX_UDP_PAYLOAD, UDP_HEADER_LEN};
use crate::address::{IsdAsn, ScionAddr};

/// Length of the SCION common header.
const COMMON_LEN: usize = 12;
/// Destination and source ISD-AS at the start of the address header.
const IA_PAIR_LEN: usize = 16;
/// Smallest HdrLen (in 4-byte units) the full decoder accepts.
const MIN_HDR_UNITS: u8 = 9;
const PATH_TYPE_EMPTY: u8 = 0;
const PATH_TYPE_SCION: u8 = 1;
const UDP_PROTOCOL: u8 = super::UDP_PROTOCOL;

/// Unfolded one's-complement sum of `data` read as big-endian 16-bit words, the odd last byte
/// padded with zero (RFC 1071). Sums native-endian 32-bit words into a u64 (a 32-bit word is
/// congruent to the sum of its two halves modulo 0xffff, and byte order only swaps the folded
/// result, RFC 1071 §2(B)), which compiles to wide vector adds.
pub(crate) fn ones_sum(data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    let native: u64 = (&mut words)
        .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as u64)
        .sum();
    let mut sum = u16::from_be(fold(native)) as u64;
    let tail = words.remainder();
    let mut pairs = tail.chunks_exact(2);
    for p in &mut pairs {
        sum += u16::from_be_bytes([p[0], p[1]]) as u64;
    }
    if let [last] = pairs.remainder() {
        sum += (*last as u64) << 8;
    }
    sum
}

/// Folds an unfolded one's-complement sum into 16 bits (end-around carry).
pub(crate) fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Host address length for an address-info nibble, for the two kinds the fast path handles.
fn host_len(info: u8) -> Option<usize> {
    match info {
        0 => Some(4),  // IPv4
        3 => Some(16), // IPv6
        _ => None,
    }
}

/// Encoded SCION + UDP header for one (source, destination, path), reused for every datagram.
#[derive(Clone, Debug)]
pub struct UdpTemplate {
    /// Headers with PayloadLen, UDP length and UDP checksum zeroed.
    header: Vec<u8>,
    /// Offset of the UDP header.
    udp: usize,
    /// One's-complement sum of the pseudo-header (addresses, next header) and the UDP ports.
    base_sum: u64,
}

impl UdpTemplate {
    /// Encodes the headers once with the full encoder.
    pub fn new(src: &ScionAddr, dst: &ScionAddr, path: &DataPath) -> Result<Self, EncodeError> {
        let mut header = encode_udp(src, dst, path, Bytes::new())?;
        let bad = |what: &str| EncodeError::Header(format!("template: {what}"));
        let udp = header
            .len()
            .checked_sub(UDP_HEADER_LEN)
            .ok_or_else(|| bad("too short"))?;
        let info = *header.get(9).ok_or_else(|| bad("too short"))?;
        let (dl, sl) = (
            host_len(info >> 4).ok_or_else(|| bad("host type"))?,
            host_len(info & 0x0f).ok_or_else(|| bad("host type"))?,
        );
        let addr_end = COMMON_LEN + IA_PAIR_LEN + dl + sl;
        if addr_end > udp {
            return Err(bad("address header"));
        }
        // Pseudo-header: DstIA, SrcIA, DstHost, SrcHost (the address header, in that order),
        // the 32-bit length (added per datagram), 24 zero bits and the next header.
        let base_sum = ones_sum(&header[COMMON_LEN..addr_end])
            + UDP_PROTOCOL as u64
            + ones_sum(&header[udp..udp + 4]);
        header[6..8].fill(0);
        header[udp + 4..udp + 8].fill(0);
        Ok(UdpTemplate {
            header,
            udp,
            base_sum,
        })
    }

    /// Bytes of SCION + UDP header in front of every payload.
    pub fn header_len(&self) -> usize {
        self.header.len()
    }

    /// Appends one complete SCION/UDP datagram carrying `payload` to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>, payload: &[u8]) -> Result<(), EncodeError> {
        if payload.len() > MAX_UDP_PAYLOAD {
            return Err(EncodeError::PayloadTooLarge(payload.len()));
        }
        let len = (payload.len() + UDP_HEADER_LEN) as u16;
        // Length appears twice: in the pseudo-header and in the UDP header.
        let sum = self.base_sum + 2 * len as u64 + ones_sum(payload);
        let checksum = !fold(sum);
        let start = out.len();
        out.extend_from_slice(&self.header);
        out.extend_from_slice(payload);
        let h = &mut out[start..start + self.header.len()];
        h[6..8].copy_from_slice(&len.to_be_bytes());
        h[self.udp + 4..self.udp + 6].copy_from_slice(&len.to_be_bytes());
        h[self.udp + 6..self.udp + 8].copy_from_slice(&checksum.to_be_bytes());
        Ok(())
    }

    /// One datagram as a fresh vector (tests, rare paths).
    pub fn encode(&self, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.header.len() + payload.len());
        self.encode_into(&mut out, payload)?;
        Ok(out)
    }
}

/// A SCION/UDP datagram read in place: addresses decoded, path and payload as byte ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastUdp {
    pub src: ScionAddr,
    pub dst: ScionAddr,
    /// The raw path bytes (empty for AS-local traffic); `DataPath::from_raw` parses them.
    pub path: Range<usize>,
    pub payload: Range<usize>,
}

/// Outcome of [`decode_udp_fast`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FastDecoded {
    Udp(FastUdp),
    /// Not a case the fast path handles (or malformed): use [`super::decode`].
    Fallback,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

fn host_ip(b: &[u8]) -> IpAddr {
    match b.len() {
        4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        _ => {
            let mut w = [0u8; 16];
            w.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(w))
        }
    }
}

/// Whether `path` is a standard path the full decoder accepts (same checks as scion-proto's
/// `MetaHeader::decode` and `EncodedStandardPath::decode`, plus exact length).
fn standard_path_ok(path: &[u8]) -> bool {
    if path.len() < 4 {
        return false;
    }
    let meta = u32::from_be_bytes([path[0], path[1], path[2], path[3]]);
    let curr_inf = (meta >> 30) as usize;
    let curr_hf = ((meta >> 24) & 0x3f) as usize;
    let seg = [
        ((meta >> 12) & 0x3f) as usize,
        ((meta >> 6) & 0x3f) as usize,
        (meta & 0x3f) as usize,
    ];
    if seg[0] == 0 || (seg[1] == 0 && seg[2] > 0) {
        return false;
    }
    let infos = seg.iter().filter(|s| **s > 0).count();
    let hops: usize = seg.iter().sum();
    if curr_inf >= infos || curr_hf >= hops {
        return false;
    }
    let seg_index = if curr_hf < seg[0] {
        0
    } else if curr_hf < seg[0] + seg[1] {
        1
    } else {
        2
    };
    seg_index == curr_inf && path.len() == 4 + 8 * infos + 12 * hops
}

/// Reads a SCION/UDP datagram in place (see the module docs for what falls back).
///
/// Agrees with [`super::decode`]: when this returns a datagram, the full decoder returns the
/// same addresses, path bytes and payload; when it returns [`DecodeError::Checksum`], so does
/// the full decoder.
pub fn decode_udp_fast(pkt: &[u8]) -> Result<FastDecoded, DecodeError> {
    use FastDecoded::Fallback;
    if pkt.len() < COMMON_LEN || pkt[0] >> 4 != 0 || pkt[4] != UDP_PROTOCOL {
        return Ok(Fallback);
    }
    if pkt[5] < MIN_HDR_UNITS {
        return Ok(Fallback);
    }
    let hdr_len = pkt[5] as usize * 4;
    let payload_len = be16(pkt, 6) as usize;
    let (Some(dl), Some(sl)) = (host_len(pkt[9] >> 4), host_len(pkt[9] & 0x0f)) else {
        return Ok(Fallback);
    };
    let addr_end = COMMON_LEN + IA_PAIR_LEN + dl + sl;
    if addr_end > hdr_len || hdr_len + payload_len > pkt.len() || payload_len < UDP_HEADER_LEN {
        return Ok(Fallback);
    }
    let path = addr_end..hdr_len;
    let path_ok = match pkt[8] {
        PATH_TYPE_EMPTY => path.is_empty(),
        PATH_TYPE_SCION => standard_path_ok(&pkt[path.clone()]),
        _ => false,
    };
    if !path_ok {
        return Ok(Fallback);
    }
    let udp = hdr_len;
    let udp_len = be16(pkt, udp + 4) as usize;
    if !(UDP_HEADER_LEN..=payload_len).contains(&udp_len) {
        return Ok(Fallback);
    }
    let sum = ones_sum(&pkt[COMMON_LEN..addr_end])
        + udp_len as u64
        + UDP_PROTOCOL as u64
        + ones_sum(&pkt[udp..udp + udp_len]);
    if fold(sum) != 0xffff {
        return Err(DecodeError::Checksum);
    }
    let dst_host = COMMON_LEN + IA_PAIR_LEN;
    Ok(FastDecoded::Udp(FastUdp {
        src: ScionAddr {
            ia: IsdAsn(be64(pkt, COMMON_LEN + 8)),
            ip: host_ip(&pkt[dst_host + dl..addr_end]),
            port: be16(pkt, udp),
        },
        dst: ScionAddr {
            ia: IsdAsn(be64(pkt, COMMON_LEN)),
            ip: host_ip(&pkt[dst_host..dst_host + dl]),
            port: be16(pkt, udp + 2),
        },
        path,
        payload: udp + UDP_HEADER_LEN..udp + udp_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 sum over 16-bit words, for comparison.
    fn slow_sum(data: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for c in data.chunks(2) {
            let hi = c[0] as u64;
            let lo = c.get(1).copied().unwrap_or(0) as u64;
            sum += (hi << 8) | lo;
        }
        fold(sum)
    }

    #[test]
    fn ones_sum_matches_word_by_word_sum() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 131 + 7) as u8).collect();
        for len in [
            0, 1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 1199, 1200, 1452, 3000,
        ] {
            for start in [0, 1, 3] {
                let end = (start + len).min(data.len());
                let d = &data[start..end];
                assert_eq!(fold(ones_sum(d)), slow_sum(d), "len {len} start {start}");
            }
        }
        assert_eq!(fold(ones_sum(&[0xff; 4096])), 0xffff);
    }
}
