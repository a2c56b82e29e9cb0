//! SCION addresses: `IsdAsn` and `ScionAddr`, with parsers for every form users write.
//!
//! Pure: no scion-proto names here (those live in `wire.rs` only).
//!
//! Text forms follow scionproto `pkg/addr` (`ParseISD`, `ParseAS`, `IA.String`):
//! ISD is decimal; AS is decimal when it fits a BGP AS number (< 2^32), otherwise three
//! colon-separated 16-bit hex groups (`ffaa:1:10bf`). Socket addresses accept
//! `ISD-AS,IP:port`, `ISD-AS,[IPv6]:port` and `[ISD-AS,IP]:port` (the form scion-proto and
//! scionproto's `snet.UDPAddr` print); we always print the last one.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Largest AS number written in decimal (scionproto `addr.MaxBGPAS`).
const MAX_BGP_ASN: u64 = (1 << 32) - 1;
/// Largest AS number at all: 48 bits.
const MAX_ASN: u64 = (1 << 48) - 1;

/// An ISD-AS number: 16-bit ISD, 48-bit AS, packed as in the SCION header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsdAsn(pub u64);

impl IsdAsn {
    /// The wildcard `0-0` (any ISD, any AS); the daemon's "local AS" query uses it.
    pub const WILDCARD: IsdAsn = IsdAsn(0);

    pub const fn new(isd: u16, asn: u64) -> Self {
        IsdAsn(((isd as u64) << 48) | (asn & 0xffff_ffff_ffff))
    }
    pub const fn isd(self) -> u16 {
        (self.0 >> 48) as u16
    }
    pub const fn asn(self) -> u64 {
        self.0 & 0xffff_ffff_ffff
    }
    /// True when ISD or AS is 0 (a wildcard, not a routable AS).
    pub const fn is_wildcard(self) -> bool {
        self.isd() == 0 || self.asn() == 0
    }
}

/// Errors from parsing addresses; each names the offending part and the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("empty address")]
    Empty,
    #[error("ISD-AS {input:?}: missing '-' between ISD and AS")]
    MissingDash { input: String },
    #[error("ISD-AS {input:?}: ISD {isd:?} is not a decimal number in 0..=65535")]
    BadIsd { input: String, isd: String },
    #[error("ISD-AS {input:?}: AS {asn:?} {reason}")]
    BadAs {
        input: String,
        asn: String,
        reason: &'static str,
    },
    #[error("address {input:?}: missing ',' between ISD-AS and host")]
    MissingComma { input: String },
    #[error("address {input:?}: host {host:?} is not an IPv4 or IPv6 address")]
    BadIp { input: String, host: String },
    #[error("address {input:?}: missing ':port'")]
    MissingPort { input: String },
    #[error("address {input:?}: port {port:?} is not a number in 0..=65535")]
    BadPort { input: String, port: String },
    #[error("address {input:?}: '[' without matching ']'")]
    UnclosedBracket { input: String },
    #[error("address {input:?}: IPv6 host must be in brackets, as in ISD-AS,[IPv6]:port")]
    Ipv6NeedsBrackets { input: String },
    #[error("address {input:?}: unexpected text {rest:?} after the address")]
    Trailing { input: String, rest: String },
    #[error("URL {input:?}: missing '://' after the scheme")]
    MissingScheme { input: String },
    #[error("URL {input:?}: scheme {scheme:?} is not a valid URL scheme")]
    BadScheme { input: String, scheme: String },
    #[error("URL {input:?}: bad percent-encoding in user info")]
    BadUserInfo { input: String },
}

impl fmt::Display for IsdAsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let asn = self.asn();
        if asn <= MAX_BGP_ASN {
            write!(f, "{}-{}", self.isd(), asn)
        } else {
            write!(
                f,
                "{}-{:x}:{:x}:{:x}",
                self.isd(),
                (asn >> 32) & 0xffff,
                (asn >> 16) & 0xffff,
                asn & 0xffff
            )
        }
    }
}

impl FromStr for IsdAsn {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AddrError::Empty);
        }
        let (isd_s, as_s) = s.split_once('-').ok_or_else(|| AddrError::MissingDash {
            input: s.to_string(),
        })?;
        let isd = parse_isd(isd_s).ok_or_else(|| AddrError::BadIsd {
            input: s.to_string(),
            isd: isd_s.to_string(),
        })?;
        let asn = parse_asn(as_s).map_err(|reason| AddrError::BadAs {
            input: s.to_string(),
            asn: as_s.to_string(),
            reason,
        })?;
        Ok(IsdAsn::new(isd, asn))
    }
}

/// Decimal ISD (scionproto `addr.ParseISD`): digits only, fits 16 bits.
pub(crate) fn parse_isd(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok()
}

/// AS number (scionproto `addr.ParseAS`): decimal up to 2^32-1, or `h:h:h` with 1-4 hex digits
/// per group.
pub(crate) fn parse_asn(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() {
        return Err("is empty");
    }
    if !s.contains(':') {
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("is neither decimal nor three ':'-separated hex groups");
        }
        return match s.parse::<u64>() {
            Ok(v) if v <= MAX_BGP_ASN => Ok(v),
            _ => Err("in decimal must be below 2^32 (write larger ones as hex groups)"),
        };
    }
    let mut value: u64 = 0;
    let mut groups = 0;
    for group in s.split(':') {
        groups += 1;
        if groups > 3 {
            return Err("has more than three ':'-separated groups");
        }
        if group.is_empty() || group.len() > 4 || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("has a group that is not 1-4 hex digits");
        }
        let g = u64::from_str_radix(group, 16).map_err(|_| "has a bad hex group")?;
        value = (value << 16) | g;
    }
    if groups != 3 {
        return Err("needs exactly three ':'-separated hex groups");
    }
    debug_assert!(value <= MAX_ASN);
    Ok(value)
}

/// A SCION socket address: ISD-AS, host IP, UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScionAddr {
    pub ia: IsdAsn,
    pub ip: IpAddr,
    pub port: u16,
}

impl ScionAddr {
    pub const fn new(ia: IsdAsn, ip: IpAddr, port: u16) -> Self {
        ScionAddr { ia, ip, port }
    }
    /// The host part as a std socket address (what the underlay sees in the last AS).
    pub fn host_socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// Canonical form `[ISD-AS,IP]:port`.
impl fmt::Display for ScionAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{},{}]:{}", self.ia, self.ip, self.port)
    }
}

impl FromStr for ScionAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_scion_addr(s)
    }
}

fn parse_port(input: &str, port: &str) -> Result<u16, AddrError> {
    if port.is_empty() {
        return Err(AddrError::MissingPort {
            input: input.to_string(),
        });
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::BadPort {
            input: input.to_string(),
            port: port.to_string(),
        });
    }
    port.parse::<u16>().map_err(|_| AddrError::BadPort {
        input: input.to_string(),
        port: port.to_string(),
    })
}

fn parse_ip(input: &str, host: &str) -> Result<IpAddr, AddrError> {
    host.parse::<IpAddr>().map_err(|_| AddrError::BadIp {
        input: input.to_string(),
        host: host.to_string(),
    })
}

/// Parses `[ISD-AS,IP]:port`, `ISD-AS,IP:port` or `ISD-AS,[IPv6]:port`.
fn parse_scion_addr(s: &str) -> Result<ScionAddr, AddrError> {
    let input = s;
    if s.is_empty() {
        return Err(AddrError::Empty);
    }
    if let Some(inner_and_rest) = s.strip_prefix('[') {
        // `[ISD-AS,IP]:port`: the host inside may be IPv6 (colons), so find the last ']'.
        let close = inner_and_rest
            .rfind(']')
            .ok_or_else(|| AddrError::UnclosedBracket {
                input: input.to_string(),
            })?;
        let inner = &inner_and_rest[..close];
        let after = &inner_and_rest[close + 1..];
        let (ia_s, host) = inner
            .split_once(',')
            .ok_or_else(|| AddrError::MissingComma {
                input: input.to_string(),
            })?;
        let ia = IsdAsn::from_str(ia_s)?;
        // Tolerate `[ISD-AS,[IPv6]]:port` too: users copy the bracketed IPv6 habit.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip = parse_ip(input, host)?;
        let port_s = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => {
                return Err(AddrError::MissingPort {
                    input: input.to_string(),
                })
            }
            None => {
                return Err(AddrError::Trailing {
                    input: input.to_string(),
                    rest: after.to_string(),
                })
            }
        };
        let port = parse_port(input, port_s)?;
        return Ok(ScionAddr { ia, ip, port });
    }
    let (ia_s, hostport) = s.split_once(',').ok_or_else(|| AddrError::MissingComma {
        input: input.to_string(),
    })?;
    let ia = IsdAsn::from_str(ia_s)?;
    if let Some(rest) = hostport.strip_prefix('[') {
        // `ISD-AS,[IPv6]:port`
        let close = rest.find(']').ok_or_else(|| AddrError::UnclosedBracket {
            input: input.to_string(),
        })?;
        let ip = parse_ip(input, &rest[..close])?;
        let after = &rest[close + 1..];
        let port_s = after.strip_prefix(':').ok_or_else(|| {
            if after.is_empty() {
                AddrError::MissingPort {
                    input: input.to_string(),
                }
            } else {
                AddrError::Trailing {
                    input: input.to_string(),
                    rest: after.to_string(),
                }
            }
        })?;
        let port = parse_port(input, port_s)?;
        return Ok(ScionAddr { ia, ip, port });
    }
    // `ISD-AS,IPv4:port`: exactly one ':' is allowed here; more means an unbracketed IPv6.
    let colons = hostport.matches(':').count();
    if colons > 1 {
        return Err(AddrError::Ipv6NeedsBrackets {
            input: input.to_string(),
        });
    }
    let (host, port_s) = hostport
        .split_once(':')
        .ok_or_else(|| AddrError::MissingPort {
            input: input.to_string(),
        })?;
    let ip = parse_ip(input, host)?;
    let port = parse_port(input, port_s)?;
    Ok(ScionAddr { ia, ip, port })
}

/// A NATS URL whose host is a SCION address, e.g. `nats-route://user:pw@[1-ff00:0:110,10.0.0.1]:4248`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsScionUrl {
    /// Lower-cased scheme (`nats`, `nats-route`, `tls`, ...); the caller decides which it accepts.
    pub scheme: String,
    /// Percent-decoded user name, if the URL had user info.
    pub user: Option<String>,
    /// Percent-decoded password, if the user info had a ':'.
    pub password: Option<String>,
    pub addr: ScionAddr,
}

/// Shown without the password, so logging a URL never leaks credentials.
impl fmt::Display for NatsScionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(user) = &self.user {
            write!(f, "{user}")?;
            if self.password.is_some() {
                write!(f, ":[REDACTED]")?;
            }
            write!(f, "@")?;
        }
        write!(f, "{}", self.addr)
    }
}

impl FromStr for NatsScionUrl {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_nats_url(s)
    }
}

/// Parses `scheme://[user[:password]@]ADDR[/]` where ADDR is any form `ScionAddr` accepts.
///
/// nats-server parses route and client URLs with Go's `net/url` (server/opts.go
/// `parseURL`), which percent-decodes user info; we do the same.
pub fn parse_nats_url(s: &str) -> Result<NatsScionUrl, AddrError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(AddrError::Empty);
    }
    let (scheme, rest) = input
        .split_once("://")
        .ok_or_else(|| AddrError::MissingScheme {
            input: input.to_string(),
        })?;
    // RFC 3986 section 3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    if !scheme_ok {
        return Err(AddrError::BadScheme {
            input: input.to_string(),
            scheme: scheme.to_string(),
        });
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    // The address never contains '@'; the user info ends at the last one (RFC 3986 3.2.1 says
    // '@' inside user info must be percent-encoded, but be lenient like Go's url.Parse).
    let (userinfo, addr_s) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            let bad = || AddrError::BadUserInfo {
                input: input.to_string(),
            };
            let u = percent_decode(u).ok_or_else(bad)?;
            let p = match p {
                Some(p) => Some(percent_decode(p).ok_or_else(bad)?),
                None => None,
            };
            (Some(u), p)
        }
    };
    let addr = parse_scion_addr(addr_s)?;
    Ok(NatsScionUrl {
        scheme: scheme.to_ascii_lowercase(),
        user,
        password,
        addr,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn isd_asn_table() {
        let ok: &[(&str, u16, u64, &str)] = &[
            ("18-ffaa:1:10bf", 18, 0xffaa_0001_10bf, "18-ffaa:1:10bf"),
            ("1-64512", 1, 64512, "1-64512"),
            ("1-ff00:0:110", 1, 0xff00_0000_0110, "1-ff00:0:110"),
            ("0-0", 0, 0, "0-0"),
            ("65535-4294967295", 65535, MAX_BGP_ASN, "65535-4294967295"),
            // hex form of a small AS is accepted but printed in decimal, like scionproto.
            ("1-0:0:10", 1, 16, "1-16"),
            ("1-0:1:0", 1, 1 << 16, "1-65536"),
            ("1-FFFF:ffff:FFFF", 1, MAX_ASN, "1-ffff:ffff:ffff"),
            ("1-1:0:0", 1, 1 << 32, "1-1:0:0"),
        ];
        for (s, isd, asn, canon) in ok {
            let ia: IsdAsn = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((ia.isd(), ia.asn()), (*isd, *asn), "{s}");
            assert_eq!(ia.to_string(), *canon, "{s}");
            assert_eq!(canon.parse::<IsdAsn>().unwrap(), ia, "{s} round trip");
        }
        let bad = [
            "",
            "18",
            "-1",
            "18-",
            "x-1",
            "65536-1",
            "1-4294967296",
            "1-ff00:0",
            "1-ff00:0:110:1",
            "1-fffff:0:1",
            "1-ff00::1",
            "1-g:0:1",
            "1-+5",
            " 1-1",
            "1-1 ",
        ];
        for s in bad {
            assert!(s.parse::<IsdAsn>().is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn isd_asn_errors_name_the_part() {
        let e = "70000-1".parse::<IsdAsn>().unwrap_err();
        assert!(e.to_string().contains("ISD \"70000\""), "{e}");
        let e = "1-ff00:0".parse::<IsdAsn>().unwrap_err();
        assert!(e.to_string().contains("AS \"ff00:0\""), "{e}");
    }

    #[test]
    fn scion_addr_table() {
        let ia = IsdAsn::new(18, 0xffaa_0001_10bf);
        let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let ok: &[(&str, IpAddr, u16)] = &[
            ("18-ffaa:1:10bf,127.0.0.1:4248", v4, 4248),
            ("[18-ffaa:1:10bf,127.0.0.1]:4248", v4, 4248),
            ("18-ffaa:1:10bf,[::1]:4248", v6, 4248),
            ("[18-ffaa:1:10bf,::1]:4248", v6, 4248),
            ("[18-ffaa:1:10bf,[::1]]:4248", v6, 4248),
            ("[18-ffaa:1:10bf,127.0.0.1]:0", v4, 0),
            ("18-ffaa:1:10bf,127.0.0.1:65535", v4, 65535),
        ];
        for (s, ip, port) in ok {
            let a: ScionAddr = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(a, ScionAddr::new(ia, *ip, *port), "{s}");
            let canon = a.to_string();
            assert!(canon.starts_with("[18-ffaa:1:10bf,"), "{canon}");
            assert_eq!(canon.parse::<ScionAddr>().unwrap(), a, "round trip {canon}");
        }
        assert_eq!(
            ScionAddr::new(ia, v6, 1).to_string(),
            "[18-ffaa:1:10bf,::1]:1"
        );
    }

    type ErrCheck = fn(&AddrError) -> bool;

    #[test]
    fn scion_addr_errors() {
        let cases: &[(&str, ErrCheck)] = &[
            ("", |e| matches!(e, AddrError::Empty)),
            ("127.0.0.1:80", |e| {
                matches!(e, AddrError::MissingComma { .. })
            }),
            ("1-1,127.0.0.1", |e| {
                matches!(e, AddrError::MissingPort { .. })
            }),
            ("1-1,127.0.0.1:", |e| {
                matches!(e, AddrError::MissingPort { .. })
            }),
            ("1-1,127.0.0.1:65536", |e| {
                matches!(e, AddrError::BadPort { .. })
            }),
            ("1-1,127.0.0.1:8x", |e| {
                matches!(e, AddrError::BadPort { .. })
            }),
            ("1-1,127.0.0.300:80", |e| {
                matches!(e, AddrError::BadIp { .. })
            }),
            ("1-1,::1:80", |e| {
                matches!(e, AddrError::Ipv6NeedsBrackets { .. })
            }),
            ("1-1,[::1:80", |e| {
                matches!(e, AddrError::UnclosedBracket { .. })
            }),
            ("[1-1,127.0.0.1:80", |e| {
                matches!(e, AddrError::UnclosedBracket { .. })
            }),
            ("[1-1,127.0.0.1]", |e| {
                matches!(e, AddrError::MissingPort { .. })
            }),
            ("[1-1,127.0.0.1]x80", |e| {
                matches!(e, AddrError::Trailing { .. })
            }),
            ("[1-1 127.0.0.1]:80", |e| {
                matches!(e, AddrError::MissingComma { .. })
            }),
            ("1-1,[::1]80", |e| matches!(e, AddrError::Trailing { .. })),
            ("x-1,127.0.0.1:80", |e| {
                matches!(e, AddrError::BadIsd { .. })
            }),
            ("1-zz,127.0.0.1:80", |e| {
                matches!(e, AddrError::BadAs { .. })
            }),
        ];
        for (s, check) in cases {
            match s.parse::<ScionAddr>() {
                Ok(a) => panic!("{s:?} parsed as {a}"),
                Err(e) => assert!(check(&e), "{s:?}: unexpected error {e:?}"),
            }
        }
    }

    #[test]
    fn nats_urls() {
        let u = parse_nats_url("nats://18-ffaa:1:10a0,127.0.0.1:5248").unwrap();
        assert_eq!(u.scheme, "nats");
        assert_eq!((u.user.as_deref(), u.password.as_deref()), (None, None));
        assert_eq!(u.addr.to_string(), "[18-ffaa:1:10a0,127.0.0.1]:5248");

        let u = parse_nats_url("nats-route://[18-ffaa:1:10bf,127.0.0.1]:4248").unwrap();
        assert_eq!(u.scheme, "nats-route");
        assert_eq!(u.addr.port, 4248);

        let u = parse_nats_url("nats-route://ruser:T0p%40s3cr3t@[18-ffaa:1:10bf,127.0.0.1]:4248/")
            .unwrap();
        assert_eq!(u.user.as_deref(), Some("ruser"));
        assert_eq!(u.password.as_deref(), Some("T0p@s3cr3t"));
        assert_eq!(
            u.to_string(),
            "nats-route://ruser:[REDACTED]@[18-ffaa:1:10bf,127.0.0.1]:4248"
        );

        let u = parse_nats_url("NATS://alice@1-ff00:0:110,[::1]:4222").unwrap();
        assert_eq!(u.scheme, "nats");
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password, None);

        for bad in [
            "",
            "18-ffaa:1:10a0,127.0.0.1:5248",
            "://1-1,127.0.0.1:1",
            "1nats://1-1,127.0.0.1:1",
            "nats://u:%zz@1-1,127.0.0.1:1",
            "nats://1-1,127.0.0.1",
            "nats://127.0.0.1:4222",
        ] {
            assert!(parse_nats_url(bad).is_err(), "{bad:?} should fail");
        }
    }
}
