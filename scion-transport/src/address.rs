//! SCION addresses: `IsdAsn` and `ScionAddr`, with parsers for every form users write.
//!
//! Pure: no scion_proto names here (those live in `wire.rs` only).

use std::net::IpAddr;

/// An ISD-AS number: 16-bit ISD, 48-bit AS, packed as in the SCION header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsdAsn(pub u64);

impl IsdAsn {
    pub const fn new(isd: u16, asn: u64) -> Self {
        IsdAsn(((isd as u64) << 48) | (asn & 0xffff_ffff_ffff))
    }
    pub const fn isd(self) -> u16 {
        (self.0 >> 48) as u16
    }
    pub const fn asn(self) -> u64 {
        self.0 & 0xffff_ffff_ffff
    }
}

/// A SCION socket address: ISD-AS, host IP, UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScionAddr {
    pub ia: IsdAsn,
    pub ip: IpAddr,
    pub port: u16,
}
