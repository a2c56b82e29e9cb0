//! The per-packet fast paths of `wire` against the full encoder/decoder (scion-proto inside)
//! and against `sciparse`: the header template must produce byte-identical datagrams, and the
//! in-place decoder must give the full decoder's answer or fall back to it, on golden packets
//! and on thousands of mutated and truncated ones, without panicking.

use std::net::IpAddr;

use bytes::Bytes;
use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::wire::{
    self, DataPath, FastDecoded, HopSpec, Received, SegmentSpec, UdpTemplate,
};
use sciparse::packet::model::ScionUdpPacket;

const TS: u32 = 1_750_000_000;
const SIZES: [usize; 9] = [0, 1, 2, 3, 17, 1199, 1200, 1201, 1452];

fn hop(i: u16, e: u16) -> HopSpec {
    HopSpec {
        cons_ingress: i,
        cons_egress: e,
        exp_time: 63,
        key: [0x42; 16],
    }
}

fn paths() -> Vec<DataPath> {
    let seg = |cons_dir, seg_id, hops| SegmentSpec {
        cons_dir,
        seg_id,
        timestamp: TS,
        hops,
    };
    let mut out = vec![DataPath::empty()];
    for segs in [
        vec![seg(true, 0xbeef, vec![hop(0, 3), hop(7, 0)])],
        vec![
            seg(false, 1, vec![hop(0, 5), hop(6, 0)]),
            seg(true, 2, vec![hop(0, 8), hop(2, 9), hop(4, 0)]),
        ],
        vec![
            seg(false, 1, vec![hop(0, 1), hop(2, 0)]),
            seg(true, 2, vec![hop(0, 11), hop(12, 0)]),
            seg(true, 65535, vec![hop(0, 21), hop(22, 0)]),
        ],
    ] {
        out.push(wire::build_standard_path(&segs).expect("path"));
    }
    out
}

fn addrs() -> Vec<(ScionAddr, ScionAddr)> {
    let a = |ia: &str, ip: &str, port| ScionAddr {
        ia: ia.parse::<IsdAsn>().expect("ia"),
        ip: ip.parse::<IpAddr>().expect("ip"),
        port,
    };
    vec![
        (
            a("1-ff00:0:110", "127.0.0.1", 31000),
            a("2-ff00:0:220", "10.1.2.3", 32767),
        ),
        (
            a("18-ffaa:1:10bf", "::1", 4248),
            a("18-ffaa:1:10a0", "fd00::5", 5248),
        ),
        (
            a("65535-64512", "192.0.2.1", 1),
            a("1-ff00:0:1", "2001:db8::1", 65535),
        ),
    ]
}

fn payload(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + seed * 7 + 1) as u8).collect()
}

/// Asserts the fast decoder's answer is the full decoder's (or a fallback to it).
/// Returns true when the fast path decided (datagram or checksum error).
fn agree(pkt: &[u8]) -> bool {
    let fast = wire::decode_udp_fast(pkt);
    let full = wire::decode(Bytes::copy_from_slice(pkt));
    match fast {
        Ok(FastDecoded::Fallback) => false,
        Ok(FastDecoded::Udp(f)) => {
            let Ok(Received::Udp(u)) = full else {
                panic!("fast path accepted what the full decoder refused: {full:?}");
            };
            assert_eq!(f.src, u.src);
            assert_eq!(f.dst, u.dst);
            assert_eq!(&pkt[f.path.clone()], u.path.raw());
            assert_eq!(&pkt[f.payload.clone()], &u.payload[..]);
            true
        }
        Err(e) => {
            assert!(
                full.is_err(),
                "fast path error {e} but the full decoder accepted it"
            );
            true
        }
    }
}

#[test]
fn template_output_is_byte_identical_to_the_full_encoder() {
    let mut checked = 0;
    for (src, dst) in addrs() {
        for path in paths() {
            let template = UdpTemplate::new(&src, &dst, &path).expect("template");
            assert_eq!(
                template.header_len(),
                wire::header_overhead(&path, src.ip, dst.ip)
            );
            // One buffer holding several datagrams, as a GSO send builds it.
            let mut batch = Vec::new();
            for (i, len) in SIZES.into_iter().enumerate() {
                let body = payload(len, i);
                let full = wire::encode_udp(&src, &dst, &path, Bytes::from(body.clone()))
                    .expect("full encode");
                let fast = template.encode(&body).expect("template encode");
                assert_eq!(fast, full, "len {len} path {:?}", path.shape());
                let start = batch.len();
                template.encode_into(&mut batch, &body).expect("into");
                assert_eq!(&batch[start..], &full[..]);
                // sciparse reads it: addresses, ports, payload.
                let (pkt, rest) = ScionUdpPacket::from_slice(&fast).expect("sciparse parses");
                assert!(rest.is_empty());
                assert_eq!(pkt.header.address.src_ia.0, src.ia.0);
                assert_eq!(pkt.header.address.dst_ia.0, dst.ia.0);
                assert_eq!(pkt.payload.src_port, src.port);
                assert_eq!(pkt.payload.dst_port, dst.port);
                assert_eq!(pkt.payload.payload, body);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 4 * SIZES.len());
}

#[test]
fn template_refuses_oversized_payloads() {
    let (src, dst) = addrs()[0];
    let t = UdpTemplate::new(&src, &dst, &DataPath::empty()).expect("template");
    assert!(matches!(
        t.encode(&vec![0u8; 70_000]),
        Err(wire::EncodeError::PayloadTooLarge(70_000))
    ));
}

fn golden() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (src, dst) in addrs() {
        for path in paths() {
            for (i, len) in [0usize, 1, 18, 1200].into_iter().enumerate() {
                out.push(
                    wire::encode_udp(&src, &dst, &path, Bytes::from(payload(len, i)))
                        .expect("encode"),
                );
            }
        }
    }
    out
}

#[test]
fn fast_decoder_agrees_on_golden_packets() {
    for pkt in golden() {
        let FastDecoded::Udp(_) = wire::decode_udp_fast(&pkt).expect("valid") else {
            panic!("golden SCION/UDP packet fell back");
        };
        assert!(agree(&pkt));
    }
}

#[test]
fn fast_decoder_falls_back_for_scmp() {
    let (src, dst) = addrs()[0];
    let path = paths().remove(1);
    let quote = wire::encode_udp(&src, &dst, &path, Bytes::from(vec![0x40; 100])).expect("q");
    let scmp = wire::encode_scmp_error(
        (dst.ia, dst.ip),
        (src.ia, src.ip),
        &path.reversed().expect("rev"),
        &wire::ScmpKind::ExternalInterfaceDown {
            ia: dst.ia,
            ifid: 3,
        },
        Bytes::from(quote),
    )
    .expect("scmp");
    assert_eq!(
        wire::decode_udp_fast(&scmp).expect("no error"),
        FastDecoded::Fallback
    );
}

/// xorshift64*: deterministic, no dependency on a rand version.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fast_decoder_agrees_on_mutations_and_truncations() {
    let mut rng = Rng(0x5c10_4e57_0000_0001);
    let golden = golden();
    let (mut decided, mut total) = (0, 0);
    for pkt in &golden {
        for cut in 0..pkt.len().min(200) {
            agree(&pkt[..cut]);
            total += 1;
        }
        for _ in 0..400 {
            let mut m = pkt.clone();
            let flips = 1 + rng.below(3);
            for _ in 0..flips {
                // Mostly the headers, where the decisions are made.
                let hdr = pkt.len().min(160);
                let at = if rng.below(4) == 0 {
                    rng.below(m.len())
                } else {
                    rng.below(hdr)
                };
                match rng.below(3) {
                    0 => m[at] ^= 1 << rng.below(8),
                    1 => m[at] = rng.next() as u8,
                    _ => m[at] = m[at].wrapping_add(1),
                }
            }
            if rng.below(5) == 0 {
                let keep = rng.below(m.len() + 1);
                m.truncate(keep);
            } else if rng.below(8) == 0 {
                m.extend_from_slice(&[0u8; 7]);
            }
            if agree(&m) {
                decided += 1;
            }
            total += 1;
        }
    }
    // Mutations of payload bytes keep the headers valid: the fast path must decide those
    // (as checksum errors), not hand everything to the slow decoder.
    assert!(total > 10_000, "{total}");
    assert!(
        decided > total / 10,
        "fast path decided only {decided} of {total}"
    );
}

#[test]
fn udp_length_below_header_is_an_error_in_both_decoders() {
    let (src, dst) = addrs()[0];
    for path in paths() {
        let pkt = wire::encode_udp(&src, &dst, &path, Bytes::from(payload(40, 1))).expect("enc");
        let udp = wire::header_overhead(&path, src.ip, dst.ip) - 8;
        for bad in 0..8u16 {
            let mut m = pkt.clone();
            m[udp + 4..udp + 6].copy_from_slice(&bad.to_be_bytes());
            assert!(wire::decode(Bytes::from(m.clone())).is_err());
            agree(&m);
        }
    }
}
