//! Border-router packet processing on raw SCION bytes (pure: `now` is a parameter).
//!
//! Written from the SCION header specification and scionproto's router
//! (`router/dataplane.go`: parsePath, validateIngressID, updateNonConsDirIngressSegID,
//! verifyCurrentMAC, doXover, processEgress, prepareSCMP), independently of scion-proto's
//! encoder, so that the emulator also checks the packets our `wire` module produces.

use crate::address::IsdAsn;
use crate::wire;

const COMMON_LEN: usize = 12;
const INFO_LEN: usize = 8;
const HOP_LEN: usize = 12;
const PATH_TYPE_EMPTY: u8 = 0;
const PATH_TYPE_SCION: u8 = 1;
/// Seconds per hop-field expiry unit (24 h / 256).
const EXP_UNIT_SECS: f64 = 337.5;
/// Flag of the info field: segment traversed in construction direction.
const FLAG_CONS_DIR: u8 = 0x01;
/// Flag of the info field: peering segment (not emulated).
const FLAG_PEER: u8 = 0x02;

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Malformed,
    UnsupportedPathType,
    Peering,
    IngressMismatch,
    BadMac,
    Expired,
    NotLastHop,
    NoEgress,
}

/// What the router does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Deliver to a host of this AS: destination IP, UDP/SCMP port from the packet (0 = unknown).
    Deliver,
    /// Leave through this interface (call [`finish_egress`] before sending).
    Forward { egress: u16 },
    /// Answer with SCMP ParameterProblem (code, pointer) to the source.
    ParameterProblem { code: u8 },
}

/// Offsets into a parsed packet.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub next_header: u8,
    pub header_len: usize,
    pub dst_ia: IsdAsn,
    pub src_ia: IsdAsn,
    pub dst_host: (usize, usize),
    pub src_host: (usize, usize),
    pub path_start: usize,
    pub path_type: u8,
}

/// Parses the common and address headers.
pub fn layout(pkt: &[u8]) -> Result<Layout, DropReason> {
    if pkt.len() < COMMON_LEN + 16 || pkt[0] >> 4 != 0 {
        return Err(DropReason::Malformed);
    }
    let header_len = pkt[5] as usize * 4;
    let payload_len = u16::from_be_bytes([pkt[6], pkt[7]]) as usize;
    if pkt.len() < header_len + payload_len || header_len < COMMON_LEN + 16 {
        return Err(DropReason::Malformed);
    }
    let dl = 4 * (((pkt[9] >> 4) & 0x3) as usize + 1);
    let sl = 4 * ((pkt[9] & 0x3) as usize + 1);
    let ia = |o: usize| {
        IsdAsn(u64::from_be_bytes(
            pkt[o..o + 8].try_into().unwrap_or([0; 8]),
        ))
    };
    let dst_host = (COMMON_LEN + 16, dl);
    let src_host = (COMMON_LEN + 16 + dl, sl);
    let path_start = COMMON_LEN + 16 + dl + sl;
    if path_start > header_len {
        return Err(DropReason::Malformed);
    }
    Ok(Layout {
        next_header: pkt[4],
        header_len,
        dst_ia: ia(COMMON_LEN),
        src_ia: ia(COMMON_LEN + 8),
        dst_host,
        src_host,
        path_start,
        path_type: pkt[8],
    })
}

/// The standard path's meta header and field offsets.
#[derive(Debug, Clone, Copy)]
struct Meta {
    curr_inf: usize,
    curr_hf: usize,
    seg_len: [usize; 3],
    num_inf: usize,
    num_hf: usize,
}

impl Meta {
    fn parse(path: &[u8]) -> Result<Meta, DropReason> {
        if path.len() < 4 {
            return Err(DropReason::Malformed);
        }
        let word = u32::from_be_bytes([path[0], path[1], path[2], path[3]]);
        let seg_len = [
            ((word >> 12) & 0x3f) as usize,
            ((word >> 6) & 0x3f) as usize,
            (word & 0x3f) as usize,
        ];
        let num_inf = seg_len.iter().take_while(|l| **l > 0).count();
        if num_inf == 0 || seg_len[num_inf..].iter().any(|l| *l > 0) {
            return Err(DropReason::Malformed);
        }
        let num_hf: usize = seg_len.iter().sum();
        let meta = Meta {
            curr_inf: (word >> 30) as usize,
            curr_hf: ((word >> 24) & 0x3f) as usize,
            seg_len,
            num_inf,
            num_hf,
        };
        if path.len() != 4 + INFO_LEN * num_inf + HOP_LEN * num_hf
            || meta.curr_hf >= num_hf
            || meta.inf_for_hf(meta.curr_hf) != meta.curr_inf
        {
            return Err(DropReason::Malformed);
        }
        Ok(meta)
    }

    fn write(&self, path: &mut [u8]) {
        let word = ((self.curr_inf as u32) << 30)
            | ((self.curr_hf as u32) << 24)
            | ((self.seg_len[0] as u32) << 12)
            | ((self.seg_len[1] as u32) << 6)
            | (self.seg_len[2] as u32);
        path[..4].copy_from_slice(&word.to_be_bytes());
    }

    fn inf_for_hf(&self, hf: usize) -> usize {
        if hf < self.seg_len[0] {
            0
        } else if hf < self.seg_len[0] + self.seg_len[1] {
            1
        } else {
            2
        }
    }

    fn info_off(&self, i: usize) -> usize {
        4 + INFO_LEN * i
    }

    fn hop_off(&self, h: usize) -> usize {
        4 + INFO_LEN * self.num_inf + HOP_LEN * h
    }

    fn is_xover(&self) -> bool {
        self.curr_hf + 1 < self.num_hf && self.inf_for_hf(self.curr_hf + 1) != self.curr_inf
    }
}

struct Hop {
    exp: u8,
    cons_ingress: u16,
    cons_egress: u16,
    mac: [u8; 6],
}

fn read_hop(path: &[u8], off: usize) -> Hop {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&path[off + 6..off + 12]);
    Hop {
        exp: path[off + 1],
        cons_ingress: u16::from_be_bytes([path[off + 2], path[off + 3]]),
        cons_egress: u16::from_be_bytes([path[off + 4], path[off + 5]]),
        mac,
    }
}

fn seg_id(path: &[u8], info: usize) -> u16 {
    u16::from_be_bytes([path[info + 2], path[info + 3]])
}

fn set_seg_id(path: &mut [u8], info: usize, v: u16) {
    path[info + 2..info + 4].copy_from_slice(&v.to_be_bytes());
}

fn timestamp(path: &[u8], info: usize) -> u32 {
    u32::from_be_bytes([
        path[info + 4],
        path[info + 5],
        path[info + 6],
        path[info + 7],
    ])
}

/// A router's hop-field MAC key with the AES key schedule and CMAC subkey computed once.
///
/// The hop-field MAC is AES-CMAC over one full 16-byte block (scionproto `pkg/slayers/path/mac.go`),
/// which RFC 4493 §2.4 reduces to `AES(K, M xor K1)` with `K1 = dbl(AES(K, 0))`. Expanding the
/// key and deriving K1 per packet was most of the router's per-packet cost.
#[derive(Clone)]
pub struct HopKey {
    cipher: aes::Aes128,
    k1: [u8; 16],
}

impl std::fmt::Debug for HopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HopKey(..)")
    }
}

impl HopKey {
    pub fn new(key: &[u8; 16]) -> HopKey {
        use aes::cipher::{BlockEncrypt, KeyInit};
        let cipher = aes::Aes128::new(key.into());
        let mut l = aes::Block::default();
        cipher.encrypt_block(&mut l);
        // dbl(): shift the 128-bit string left by one, xor Rb = 0x87 into the last byte if the
        // top bit fell off (RFC 4493 §2.3).
        let l = u128::from_be_bytes(l.into());
        let k1 = (l << 1) ^ if l >> 127 == 1 { 0x87 } else { 0 };
        HopKey {
            cipher,
            k1: k1.to_be_bytes(),
        }
    }
}

/// Something that computes hop-field MACs: a raw key (expanded per call) or a [`HopKey`].
pub trait MacKey {
    /// The 6-byte hop-field MAC over (SegID accumulator, timestamp, exp time, ingress, egress).
    fn hop_mac(&self, seg_id: u16, timestamp: u32, hop: (u8, u16, u16)) -> [u8; 6];
}

impl MacKey for [u8; 16] {
    fn hop_mac(&self, seg_id: u16, timestamp: u32, hop: (u8, u16, u16)) -> [u8; 6] {
        wire::hop_mac(self, seg_id, timestamp, hop)
    }
}

impl MacKey for HopKey {
    fn hop_mac(&self, seg_id: u16, timestamp: u32, hop: (u8, u16, u16)) -> [u8; 6] {
        use aes::cipher::BlockEncrypt;
        // MAC input layout: scionproto pkg/slayers/path/mac.go MACInput.
        let mut block = [0u8; 16];
        block[2..4].copy_from_slice(&seg_id.to_be_bytes());
        block[4..8].copy_from_slice(&timestamp.to_be_bytes());
        block[9] = hop.0;
        block[10..12].copy_from_slice(&hop.1.to_be_bytes());
        block[12..14].copy_from_slice(&hop.2.to_be_bytes());
        for (b, k) in block.iter_mut().zip(self.k1) {
            *b ^= k;
        }
        let mut block = aes::Block::from(block);
        self.cipher.encrypt_block(&mut block);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&block[..6]);
        mac
    }
}

fn check_hop<K: MacKey + ?Sized>(
    path: &[u8],
    meta: &Meta,
    key: &K,
    now_secs: u64,
) -> Result<(), DropReason> {
    let info = meta.info_off(meta.curr_inf);
    let hop = read_hop(path, meta.hop_off(meta.curr_hf));
    let ts = timestamp(path, info);
    let expiry = ts as f64 + (hop.exp as f64 + 1.0) * EXP_UNIT_SECS;
    if (now_secs as f64) > expiry {
        return Err(DropReason::Expired);
    }
    let want = key.hop_mac(
        seg_id(path, info),
        ts,
        (hop.exp, hop.cons_ingress, hop.cons_egress),
    );
    if want != hop.mac {
        return Err(DropReason::BadMac);
    }
    Ok(())
}

/// Processes a packet arriving at AS `local` on interface `ingress` (0 = from a local host).
///
/// Leaves the path as the ingress side of a router leaves it (SegID updated against
/// construction direction, segment crossover done); the egress update happens in
/// [`finish_egress`], after the caller has checked the egress link.
///
/// `key` is the AS's hop-field key: a [`HopKey`] in the routers, a plain `[u8; 16]` works too.
pub fn process<K: MacKey + ?Sized>(
    pkt: &mut [u8],
    local: IsdAsn,
    key: &K,
    ingress: u16,
    now_secs: u64,
) -> Result<Step, DropReason> {
    let lay = layout(pkt)?;
    if lay.path_type == PATH_TYPE_EMPTY {
        // Only hosts of the same AS use the empty path; it never crosses a link.
        return if ingress == 0 && lay.dst_ia == local {
            Ok(Step::Deliver)
        } else {
            Err(DropReason::Malformed)
        };
    }
    if lay.path_type != PATH_TYPE_SCION {
        return Err(DropReason::UnsupportedPathType);
    }
    let path = &mut pkt[lay.path_start..lay.header_len];
    let mut meta = Meta::parse(path)?;
    let info = meta.info_off(meta.curr_inf);
    if path[info] & FLAG_PEER != 0 {
        return Err(DropReason::Peering);
    }
    let cons_dir = path[info] & FLAG_CONS_DIR != 0;
    let hop = read_hop(path, meta.hop_off(meta.curr_hf));
    let travel_ingress = if cons_dir {
        hop.cons_ingress
    } else {
        hop.cons_egress
    };
    if ingress != 0 && ingress != travel_ingress {
        return Err(DropReason::IngressMismatch);
    }
    if !cons_dir && ingress != 0 {
        let v = seg_id(path, info) ^ u16::from_be_bytes([hop.mac[0], hop.mac[1]]);
        set_seg_id(path, info, v);
    }
    if let Err(reason) = check_hop(path, &meta, key, now_secs) {
        return match reason {
            DropReason::BadMac => Ok(Step::ParameterProblem { code: 51 }),
            DropReason::Expired => Ok(Step::ParameterProblem { code: 52 }),
            other => Err(other),
        };
    }
    if lay.dst_ia == local {
        return if meta.curr_hf + 1 == meta.num_hf {
            Ok(Step::Deliver)
        } else {
            Err(DropReason::NotLastHop)
        };
    }
    if meta.is_xover() {
        meta.curr_hf += 1;
        meta.curr_inf += 1;
        meta.write(path);
        if let Err(reason) = check_hop(path, &meta, key, now_secs) {
            return match reason {
                DropReason::BadMac => Ok(Step::ParameterProblem { code: 51 }),
                other => Err(other),
            };
        }
    }
    let info = meta.info_off(meta.curr_inf);
    let hop = read_hop(path, meta.hop_off(meta.curr_hf));
    let egress = if path[info] & FLAG_CONS_DIR != 0 {
        hop.cons_egress
    } else {
        hop.cons_ingress
    };
    if egress == 0 || meta.curr_hf + 1 >= meta.num_hf {
        return Err(DropReason::NoEgress);
    }
    Ok(Step::Forward { egress })
}

/// Egress processing: SegID update in construction direction, then advance to the next hop.
pub fn finish_egress(pkt: &mut [u8]) -> Result<(), DropReason> {
    let lay = layout(pkt)?;
    let path = &mut pkt[lay.path_start..lay.header_len];
    let mut meta = Meta::parse(path)?;
    let info = meta.info_off(meta.curr_inf);
    if path[info] & FLAG_CONS_DIR != 0 {
        let hop = read_hop(path, meta.hop_off(meta.curr_hf));
        let v = seg_id(path, info) ^ u16::from_be_bytes([hop.mac[0], hop.mac[1]]);
        set_seg_id(path, info, v);
    }
    meta.curr_hf += 1;
    meta.curr_inf = meta.inf_for_hf(meta.curr_hf);
    meta.write(path);
    Ok(())
}

/// The path for an SCMP answer from this router back to the packet's source.
///
/// The path is reversed at its current position; a router reached via crossover steps over
/// the duplicated hop of its own AS, as scionproto's `prepareSCMP` does.
pub fn reverse_path_here(pkt: &[u8]) -> Result<Vec<u8>, DropReason> {
    let lay = layout(pkt)?;
    if lay.path_type == PATH_TYPE_EMPTY {
        return Ok(Vec::new());
    }
    let path = &pkt[lay.path_start..lay.header_len];
    let meta = Meta::parse(path)?;
    let mut out = vec![0u8; path.len()];
    let mut seg_len = [0usize; 3];
    for (i, len) in seg_len.iter_mut().enumerate().take(meta.num_inf) {
        let src = meta.info_off(meta.num_inf - 1 - i);
        let dst = meta.info_off(i);
        out[dst..dst + INFO_LEN].copy_from_slice(&path[src..src + INFO_LEN]);
        out[dst] ^= FLAG_CONS_DIR;
        *len = meta.seg_len[meta.num_inf - 1 - i];
    }
    for h in 0..meta.num_hf {
        let src = meta.hop_off(meta.num_hf - 1 - h);
        let dst = meta.hop_off(h);
        out[dst..dst + HOP_LEN].copy_from_slice(&path[src..src + HOP_LEN]);
    }
    let mut rev = Meta {
        curr_inf: meta.num_inf - 1 - meta.curr_inf,
        curr_hf: meta.num_hf - 1 - meta.curr_hf,
        seg_len,
        num_inf: meta.num_inf,
        num_hf: meta.num_hf,
    };
    if rev.is_xover() {
        rev.curr_hf += 1;
        rev.curr_inf += 1;
    }
    rev.write(&mut out);
    Ok(out)
}

/// Destination host IP of a packet.
pub fn dst_ip(pkt: &[u8], lay: &Layout) -> Option<std::net::IpAddr> {
    host_ip(pkt, lay.dst_host, (pkt[9] >> 6) & 0x3)
}

/// Source host IP of a packet.
pub fn src_ip(pkt: &[u8], lay: &Layout) -> Option<std::net::IpAddr> {
    host_ip(pkt, lay.src_host, (pkt[9] >> 2) & 0x3)
}

fn host_ip(pkt: &[u8], (off, len): (usize, usize), kind: u8) -> Option<std::net::IpAddr> {
    // Host type 0 with length 4 is IPv4, with length 16 IPv6; type 1 is a service address.
    if kind != 0 {
        return None;
    }
    match len {
        4 => {
            let b: [u8; 4] = pkt.get(off..off + 4)?.try_into().ok()?;
            Some(std::net::IpAddr::from(b))
        }
        16 => {
            let b: [u8; 16] = pkt.get(off..off + 16)?.try_into().ok()?;
            Some(std::net::IpAddr::from(b))
        }
        _ => None,
    }
}

/// Destination UDP port of a SCION/UDP packet.
pub fn udp_dst_port(pkt: &[u8], lay: &Layout) -> Option<u16> {
    (lay.next_header == wire::UDP_PROTOCOL)
        .then(|| pkt.get(lay.header_len + 2..lay.header_len + 4))
        .flatten()
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::ScionAddr;
    use crate::wire::{HopSpec, SegmentSpec};
    use bytes::Bytes;
    use std::net::{IpAddr, Ipv4Addr};

    const NOW: u64 = 1_700_000_100;

    fn ia(n: u64) -> IsdAsn {
        IsdAsn::new(1, n)
    }

    fn key(n: u64) -> [u8; 16] {
        [n as u8; 16]
    }

    /// A(1) -up-> B(2, core) -core-> C(3, core) -down-> D(4), ifids: A#1-B#1, B#2-C#1, C#2-D#1.
    fn three_segment_packet() -> Vec<u8> {
        let hop = |i, e, k| HopSpec {
            cons_ingress: i,
            cons_egress: e,
            exp_time: 63,
            key: key(k),
        };
        let ts = 1_700_000_000;
        let path = wire::build_standard_path(&[
            SegmentSpec {
                cons_dir: false,
                seg_id: 11,
                timestamp: ts,
                hops: vec![hop(0, 1, 2), hop(1, 0, 1)],
            },
            SegmentSpec {
                cons_dir: true,
                seg_id: 22,
                timestamp: ts,
                hops: vec![hop(0, 2, 2), hop(1, 0, 3)],
            },
            SegmentSpec {
                cons_dir: true,
                seg_id: 33,
                timestamp: ts,
                hops: vec![hop(0, 2, 3), hop(1, 0, 4)],
            },
        ])
        .expect("path");
        let host = |n, port| ScionAddr {
            ia: ia(n),
            ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, n as u8)),
            port,
        };
        wire::encode_udp(
            &host(1, 31000),
            &host(4, 31001),
            &path,
            Bytes::from_static(b"x"),
        )
        .expect("encode")
    }

    fn walk(pkt: &mut [u8]) -> Vec<(u64, Step)> {
        let mut ingress = 0;
        let mut at = 1u64;
        let mut trace = Vec::new();
        let next = |as_: u64, egress: u16| match (as_, egress) {
            (1, 1) => (2, 1),
            (2, 1) => (1, 1),
            (2, 2) => (3, 1),
            (3, 1) => (2, 2),
            (3, 2) => (4, 1),
            (4, 1) => (3, 2),
            _ => panic!("no link {as_}#{egress}"),
        };
        for _ in 0..10 {
            let step = process(pkt, ia(at), &key(at), ingress, NOW).expect("forwarded");
            trace.push((at, step));
            match step {
                Step::Forward { egress } => {
                    finish_egress(pkt).expect("egress");
                    (at, ingress) = next(at, egress);
                }
                _ => break,
            }
        }
        trace
    }

    #[test]
    fn forwards_over_three_segments_and_back() {
        let mut pkt = three_segment_packet();
        let trace = walk(&mut pkt);
        assert_eq!(
            trace,
            vec![
                (1, Step::Forward { egress: 1 }),
                (2, Step::Forward { egress: 2 }),
                (3, Step::Forward { egress: 2 }),
                (4, Step::Deliver),
            ]
        );
        // The end host's reply path (scion-proto reversal) goes all the way back.
        let Ok(wire::Received::Udp(udp)) = wire::decode(Bytes::from(pkt.clone())) else {
            panic!("decode");
        };
        let reply = wire::encode_udp(
            &udp.dst,
            &udp.src,
            &udp.path.reversed().expect("rev"),
            Bytes::new(),
        )
        .expect("encode reply");
        let mut reply = reply;
        let mut ingress = 0;
        let mut at = 4u64;
        let hops = [(4, 1, 3, 2), (3, 1, 2, 2), (2, 1, 1, 1)];
        for (as_, egress, next_as, next_in) in hops {
            assert_eq!(at, as_);
            let step = process(&mut reply, ia(at), &key(at), ingress, NOW).expect("reply hop");
            assert_eq!(step, Step::Forward { egress });
            finish_egress(&mut reply).expect("egress");
            (at, ingress) = (next_as, next_in);
        }
        assert_eq!(
            process(&mut reply, ia(1), &key(1), 1, NOW),
            Ok(Step::Deliver)
        );
    }

    #[test]
    fn bad_mac_wrong_ingress_and_expiry_are_caught() {
        let mut pkt = three_segment_packet();
        assert_eq!(
            process(&mut pkt.clone(), ia(1), &key(9), 0, NOW),
            Ok(Step::ParameterProblem { code: 51 })
        );
        assert_eq!(
            process(&mut pkt.clone(), ia(1), &key(1), 0, NOW + 7 * 3600),
            Ok(Step::ParameterProblem { code: 52 })
        );
        process(&mut pkt, ia(1), &key(1), 0, NOW).expect("first hop");
        finish_egress(&mut pkt).expect("egress");
        assert_eq!(
            process(&mut pkt, ia(2), &key(2), 7, NOW),
            Err(DropReason::IngressMismatch)
        );
    }

    #[test]
    fn scmp_path_from_every_hop_reaches_the_source() {
        // Stop the packet at each AS in turn, reverse there, and walk the SCMP back home.
        for stop in 2..=3u64 {
            let mut pkt = three_segment_packet();
            let mut ingress = 0;
            let mut at = 1u64;
            let link = |as_: u64, egress: u16| match (as_, egress) {
                (1, 1) => (2, 1),
                (2, 2) => (3, 1),
                (3, 2) => (4, 1),
                (2, 1) => (1, 1),
                (3, 1) => (2, 2),
                _ => panic!("no link"),
            };
            loop {
                let step = process(&mut pkt, ia(at), &key(at), ingress, NOW).expect("fwd");
                if at == stop {
                    break;
                }
                let Step::Forward { egress } = step else {
                    panic!("{step:?}")
                };
                finish_egress(&mut pkt).expect("egress");
                (at, ingress) = link(at, egress);
            }
            let rev = reverse_path_here(&pkt).expect("reverse");
            let rev_path = wire::DataPath::from_raw(Bytes::from(rev)).expect("parse rev");
            let mut scmp = wire::encode_scmp_error(
                (ia(stop), IpAddr::V4(Ipv4Addr::LOCALHOST)),
                (ia(1), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
                &rev_path,
                &wire::ScmpKind::ExternalInterfaceDown {
                    ia: ia(stop),
                    ifid: 2,
                },
                Bytes::copy_from_slice(&pkt[..60]),
            )
            .expect("scmp");
            let mut ingress = 0;
            let mut at = stop;
            let mut delivered = false;
            for _ in 0..6 {
                match process(&mut scmp, ia(at), &key(at), ingress, NOW).expect("scmp hop") {
                    Step::Deliver => {
                        delivered = true;
                        break;
                    }
                    Step::Forward { egress } => {
                        finish_egress(&mut scmp).expect("egress");
                        (at, ingress) = link(at, egress);
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert!(delivered && at == 1, "stop at {stop}");
        }
    }

    #[test]
    fn cached_key_gives_the_reference_mac() {
        // The reference is scion-proto's AES-CMAC (through `wire::hop_mac`).
        for n in 0..2000u32 {
            let raw: [u8; 16] = std::array::from_fn(|i| (n as u8).wrapping_mul(31) ^ i as u8);
            let hop = (
                (n % 256) as u8,
                (n.wrapping_mul(7919) % 65536) as u16,
                (n % 17) as u16,
            );
            let (seg, ts) = (
                (n.wrapping_mul(40503) % 65536) as u16,
                n.wrapping_mul(2654435761),
            );
            assert_eq!(
                HopKey::new(&raw).hop_mac(seg, ts, hop),
                raw.hop_mac(seg, ts, hop),
                "input {n}"
            );
        }
        // And the router path agrees: a packet forwards with the cached key, a wrong one fails.
        let mut pkt = three_segment_packet();
        assert_eq!(
            process(&mut pkt.clone(), ia(1), &HopKey::new(&key(9)), 0, NOW),
            Ok(Step::ParameterProblem { code: 51 })
        );
        assert_eq!(
            process(&mut pkt, ia(1), &HopKey::new(&key(1)), 0, NOW),
            Ok(Step::Forward { egress: 1 })
        );
    }

    #[test]
    fn truncated_and_junk_packets_never_panic() {
        let pkt = three_segment_packet();
        for cut in 0..pkt.len() {
            let mut p = pkt[..cut].to_vec();
            let _ = process(&mut p, ia(1), &key(1), 0, NOW);
            let _ = reverse_path_here(&p);
        }
        for b in 0..=255u8 {
            let mut p = pkt.clone();
            p[32] = b;
            p[9] = b;
            let _ = process(&mut p, ia(1), &key(1), 0, NOW);
        }
    }
}
