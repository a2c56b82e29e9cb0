//! Value syntaxes used by the typed mapping: listen addresses (TCP and
//! SCION), route URLs, SCION ISD-AS numbers and Go duration strings.
//!
//! SCION addresses are parsed here on purpose (minimal, no dependency on the
//! scion-transport crate): `ISD-AS,IP:port` as the Go prototype wrote them,
//! and the bracketed `[ISD-AS,IP]:port` form of scion-proto, each optionally
//! behind a `nats://` (listen) or `nats-route://` (route) scheme.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::options::{ListenAddr, RouteTarget, RouteUrl};

/// A SCION ISD-AS number (`18-ffaa:1:10bf`, or `1-64512` for BGP-style AS numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IsdAs {
    pub isd: u16,
    /// 48-bit AS number.
    pub asn: u64,
}

const MAX_BGP_ASN: u64 = u32::MAX as u64;
const MAX_ASN: u64 = (1 << 48) - 1;

impl FromStr for IsdAs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid ISD-AS {s:?}");
        let (isd, asn) = s.split_once('-').ok_or_else(bad)?;
        if isd.is_empty() || !isd.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let isd: u16 = isd.parse().map_err(|_| bad())?;
        let asn = if asn.contains(':') {
            // Three groups of up to four hex digits (SCION's AS notation).
            let groups: Vec<&str> = asn.split(':').collect();
            if groups.len() != 3 {
                return Err(bad());
            }
            let mut v: u64 = 0;
            for g in groups {
                if g.is_empty() || g.len() > 4 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                v = (v << 16) | u64::from_str_radix(g, 16).map_err(|_| bad())?;
            }
            v
        } else {
            // The decimal form is only for numbers up to 2^32-1 (BGP AS range).
            if asn.is_empty() || !asn.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let v: u64 = asn.parse().map_err(|_| bad())?;
            if v > MAX_BGP_ASN {
                return Err(bad());
            }
            v
        };
        debug_assert!(asn <= MAX_ASN);
        Ok(IsdAs { isd, asn })
    }
}

impl fmt::Display for IsdAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.asn <= MAX_BGP_ASN {
            write!(f, "{}-{}", self.isd, self.asn)
        } else {
            write!(
                f,
                "{}-{:x}:{:x}:{:x}",
                self.isd,
                (self.asn >> 32) & 0xffff,
                (self.asn >> 16) & 0xffff,
                self.asn & 0xffff
            )
        }
    }
}

/// A SCION socket address as written in a config: ISD-AS (validated, kept
/// as written), IP and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScionSocket {
    pub isd_as: String,
    pub ip: IpAddr,
    pub port: u16,
}

/// A listen error with its key in front when it is about a SCION address (our addition to
/// the grammar; nats-server's own "could not parse address string" stays as it words it).
pub fn keyed(key: &str, msg: String) -> String {
    if msg.starts_with("invalid SCION address") {
        format!("{key}: {msg}")
    } else {
        msg
    }
}

/// `ISD-AS,IP:port`, `ISD-AS,[IPv6]:port` or `[ISD-AS,IP]:port`.
pub fn parse_scion_socket(s: &str) -> Result<ScionSocket, String> {
    let bad = |why: &str| format!("invalid SCION address {s:?}: {why}");
    let (ia, ip, port) = if let Some(inner) = s.strip_prefix('[') {
        let (inside, port) = inner
            .rsplit_once("]:")
            .ok_or_else(|| bad("expected [ISD-AS,IP]:port"))?;
        let (ia, ip) = inside
            .split_once(',')
            .ok_or_else(|| bad("expected a comma between ISD-AS and IP"))?;
        let ip = ip
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(ip);
        (ia, ip, port)
    } else {
        let (ia, hostport) = s
            .split_once(',')
            .ok_or_else(|| bad("expected a comma between ISD-AS and IP"))?;
        let (ip, port) = if let Some(v6) = hostport.strip_prefix('[') {
            v6.rsplit_once("]:")
                .ok_or_else(|| bad("expected [IPv6]:port"))?
        } else {
            hostport
                .rsplit_once(':')
                .ok_or_else(|| bad("missing port"))?
        };
        (ia, ip, port)
    };
    ia.parse::<IsdAs>().map_err(|e| bad(&e))?;
    let ip: IpAddr = ip.parse().map_err(|_| bad(&format!("invalid IP {ip:?}")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(&format!("invalid port {port:?}")))?;
    Ok(ScionSocket {
        isd_as: ia.to_string(),
        ip,
        port,
    })
}

/// A `listen`-style string: `host:port`, `:port`, `[v6]:port`, or a SCION
/// address with an optional `nats://` scheme.
///
/// nats-server (`parseListen` in server/opts.go) takes `net.SplitHostPort`
/// of the string, so a URL scheme is an error for TCP forms; we keep that and
/// only allow the scheme on SCION forms, as the Go prototype configs use it.
pub fn parse_listen_str(s: &str) -> Result<ListenAddr, String> {
    let (rest, had_scheme) = match s.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("nats") => (rest, true),
        // A SCION address with another scheme (the `nats-route://` of `cluster.routes`,
        // copied into `cluster.listen`): say which forms a listen address takes.
        Some((_, rest)) if rest.contains(',') => {
            return Err(format!(
                "could not parse address string {s:?}: a SCION listen address is written \"nats://ISD-AS,IP:port\" or \"[ISD-AS,IP]:port\""
            ))
        }
        Some(_) => return Err(format!("could not parse address string {s:?}")),
        None => (s, false),
    };
    if rest.contains(',') {
        let a = parse_scion_socket(rest)?;
        return Ok(ListenAddr::Scion {
            isd_as: a.isd_as,
            ip: a.ip,
            port: a.port,
        });
    }
    if had_scheme {
        return Err(format!("could not parse address string {s:?}"));
    }
    let (host, port) =
        split_host_port(rest).ok_or_else(|| format!("could not parse address string {s:?}"))?;
    let port: i64 = port
        .parse()
        .map_err(|_| format!("could not parse port {port:?}"))?;
    Ok(ListenAddr::Tcp {
        host: host.to_string(),
        port: check_port(port)?,
    })
}

/// Ports as nats-server takes them: -1 = random, 0 = default, else 1..=65535.
pub fn check_port(port: i64) -> Result<i32, String> {
    if (-1..=65535).contains(&port) {
        Ok(port as i32)
    } else {
        Err(format!("port {port} is out of range (-1..65535)"))
    }
}

/// Go `net.SplitHostPort`: `host:port` or `[host]:port`; host may be empty.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        if port.contains(':') {
            return None;
        }
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') || host.contains('[') || host.contains(']') {
        return None;
    }
    Some((host, port))
}

/// A route URL: `nats-route://[user:pass@]host:port`, or with a SCION
/// address `nats-route://[ISD-AS,IP]:port` / `nats-route://ISD-AS,IP:port`.
/// The `nats://` scheme is accepted too (nats-server does not check it).
pub fn parse_route_url(raw: &str) -> Result<RouteUrl, String> {
    let s = raw.trim();
    let bad = |why: &str| format!("error parsing route url [{s:?}]: {why}");
    let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("missing scheme"))?;
    if !(scheme.eq_ignore_ascii_case("nats-route") || scheme.eq_ignore_ascii_case("nats")) {
        return Err(bad(&format!("unsupported scheme {scheme:?}")));
    }
    let authority = match rest.find(['/', '?', '#']) {
        Some(i) if rest[i..] != *"/" => return Err(bad("unexpected path or query")),
        Some(i) => &rest[..i],
        None => rest,
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (name, pass) = match u.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (u, None),
            };
            (
                Some(percent_decode(name).ok_or_else(|| bad("bad escape in user"))?),
                match pass {
                    Some(p) => {
                        Some(percent_decode(p).ok_or_else(|| bad("bad escape in password"))?)
                    }
                    None => None,
                },
            )
        }
    };
    // Go's url.Parse refuses these ("invalid character \" \" in host name"), so
    // nats-server fails at start; a space would otherwise only fail each dial.
    if let Some(c) = hostport
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(&format!("invalid character {c:?} in host name")));
    }
    let target = if hostport.contains(',') {
        let a = parse_scion_socket(hostport).map_err(|e| bad(&e))?;
        RouteTarget::Scion {
            isd_as: a.isd_as,
            ip: a.ip,
            port: a.port,
        }
    } else {
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("expected host:port"))?;
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad(&format!("invalid port {port:?}")))?;
        RouteTarget::Tcp {
            host: host.to_string(),
            port,
        }
    };
    Ok(RouteUrl {
        url: s.to_string(),
        user,
        password,
        target,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Go's `time.ParseDuration`, in nanoseconds (may be negative). Error texts
/// follow Go's (`time: invalid duration "x"`, `time: unknown unit ...`).
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {s:?}"));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut v = whole.checked_mul(scale).ok_or_else(invalid)?;
        // Fractional digits beyond nanosecond precision are dropped, as in Go.
        let mut place = scale;
        for d in frac_part.bytes().take(30) {
            place /= 10;
            if place == 0 {
                break;
            }
            v += i128::from(d - b'0') * place;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        // Go limits durations to int64 nanoseconds.
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
        rest = next;
    }
    Ok(if neg { -total } else { total })
}

/// Go's `net.SplitHostPort`, with its error texts (`address X: missing port in
/// address`, `too many colons in address`, …).
fn go_split_host_port(hp: &str) -> Result<(&str, &str), String> {
    let err = |why: &str| Err(format!("address {hp}: {why}"));
    let Some(i) = hp.rfind(':') else {
        return err("missing port in address");
    };
    let (host, j, k) = if let Some(rest) = hp.strip_prefix('[') {
        let Some(end) = rest.find(']').map(|e| e + 1) else {
            return err("missing ']' in address");
        };
        if end + 1 == hp.len() {
            return err("missing port in address");
        }
        if end + 1 != i {
            return if hp.as_bytes()[end + 1] == b':' {
                err("too many colons in address")
            } else {
                err("missing port in address")
            };
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return err("too many colons in address");
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') {
        return err("unexpected '[' in address");
    }
    if hp[k..].contains(']') {
        return err("unexpected ']' in address");
    }
    Ok((host, &hp[i + 1..]))
}

/// nats-server's `parseHostPort` (server/util.go) for `client_advertise` and
/// `cluster.advertise`: `host:port`, or a bare host taking `default_port`; port 0
/// or -1 also means `default_port`. Errors carry Go's texts.
pub fn parse_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    if s.is_empty() {
        return Err("no hostport specified".into());
    }
    let with_default;
    let (host, port) = match go_split_host_port(s) {
        Ok(hp) => hp,
        Err(e) if e.ends_with("missing port in address") => {
            with_default = format!("{s}:{default_port}");
            go_split_host_port(&with_default)?
        }
        Err(e) => return Err(e),
    };
    let p = port.trim();
    let n: i64 = p
        .strip_prefix('+')
        .unwrap_or(p)
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing {p:?}: invalid syntax"))?;
    let port = match n {
        0 | -1 => default_port,
        n => u16::try_from(n).map_err(|_| format!("invalid port {n}"))?,
    };
    Ok((host.trim().to_string(), port))
}

/// nats-server's start-time check of `client_advertise` (server.go setInfoHostPort),
/// with its fatal error's wording.
pub fn check_client_advertise(a: &str) -> Result<(), String> {
    parse_host_port(a, 4222).map(|_| ()).map_err(|e| {
        format!("Error setting server INFO with ClientAdvertise value of {a}, err={e}")
    })
}

/// nats-server's start-time check of `cluster.advertise` (route.go
/// setRouteInfoHostPortAndIP), with its fatal error's wording.
pub fn check_cluster_advertise(a: &str) -> Result<(), String> {
    parse_host_port(a, 6222).map(|_| ()).map_err(|e| {
        format!("Error setting route INFO with Cluster.Advertise value of {a}, err={e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn isd_as_forms() {
        let ia: IsdAs = "18-ffaa:1:10bf".parse().unwrap();
        assert_eq!(
            ia,
            IsdAs {
                isd: 18,
                asn: 0xffaa_0001_10bf
            }
        );
        assert_eq!(ia.to_string(), "18-ffaa:1:10bf");
        assert_eq!("1-64512".parse::<IsdAs>().unwrap().asn, 64512);
        for bad in [
            "18",
            "-1",
            "18-",
            "18-ffaa:1",
            "18-fffff:1:1",
            "18-4294967296",
            "x-1",
            "70000-1",
        ] {
            assert!(bad.parse::<IsdAs>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scion_sockets() {
        let want = ScionSocket {
            isd_as: "18-ffaa:1:10bf".into(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 4248,
        };
        assert_eq!(
            parse_scion_socket("18-ffaa:1:10bf,127.0.0.1:4248").unwrap(),
            want
        );
        assert_eq!(
            parse_scion_socket("[18-ffaa:1:10bf,127.0.0.1]:4248").unwrap(),
            want
        );
        let v6 = parse_scion_socket("[1-ff00:0:110,::1]:5").unwrap();
        assert_eq!(v6.ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(parse_scion_socket("1-ff00:0:110,[::1]:5").unwrap(), v6);
        for bad in [
            "18-ffaa:1:10bf,127.0.0.1",
            "18-ffaa:1,127.0.0.1:1",
            "18-ffaa:1:10bf,300.0.0.1:1",
            "[18-ffaa:1:10bf,127.0.0.1]:99999",
        ] {
            assert!(parse_scion_socket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_strings() {
        assert_eq!(
            parse_listen_str("127.0.0.1:4222").unwrap(),
            ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 4222
            }
        );
        assert_eq!(
            parse_listen_str(":4222").unwrap(),
            ListenAddr::Tcp {
                host: "".into(),
                port: 4222
            }
        );
        assert_eq!(
            parse_listen_str("[::1]:-1").unwrap(),
            ListenAddr::Tcp {
                host: "::1".into(),
                port: -1
            }
        );
        assert!(matches!(
            parse_listen_str("nats://18-ffaa:1:10a0,127.0.0.1:5222").unwrap(),
            ListenAddr::Scion { port: 5222, .. }
        ));
        assert_eq!(
            parse_listen_str("nats://127.0.0.1:4222").unwrap_err(),
            "could not parse address string \"nats://127.0.0.1:4222\""
        );
        assert!(parse_listen_str("4222").is_err());
        assert!(parse_listen_str("h:70000").is_err());
        // The route URL form copied into a listen: the error names the forms that work.
        let e = parse_listen_str("nats-route://[18-ffaa:1:10bf,127.0.0.1]:4248").unwrap_err();
        assert!(
            e.ends_with("a SCION listen address is written \"nats://ISD-AS,IP:port\" or \"[ISD-AS,IP]:port\""),
            "{e}"
        );
        assert_eq!(
            parse_listen_str("nats-route://127.0.0.1:4248").unwrap_err(),
            "could not parse address string \"nats-route://127.0.0.1:4248\""
        );
    }

    #[test]
    fn route_urls() {
        let r = parse_route_url("nats-route://foo:b%40r@apcera.me:4245").unwrap();
        assert_eq!(r.user.as_deref(), Some("foo"));
        assert_eq!(r.password.as_deref(), Some("b@r"));
        assert_eq!(
            r.target,
            RouteTarget::Tcp {
                host: "apcera.me".into(),
                port: 4245
            }
        );
        let r = parse_route_url("nats-route://[18-ffaa:1:10bf,127.0.0.1]:4248").unwrap();
        assert!(matches!(r.target, RouteTarget::Scion { port: 4248, .. }));
        let r = parse_route_url("nats://[::1]:4248/").unwrap();
        assert_eq!(
            r.target,
            RouteTarget::Tcp {
                host: "::1".into(),
                port: 4248
            }
        );
        for bad in [
            "apcera.me:4245",
            "http://a:1",
            "nats-route://a",
            "nats-route://:1",
            "nats-route://a:1/x",
        ] {
            assert!(parse_route_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2m"), Ok(120_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_go_duration("-3s"), Ok(-3_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(
            parse_go_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go_duration("1d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            parse_go_duration("x").unwrap_err(),
            "time: invalid duration \"x\""
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("9999999999h").is_err());
    }

    #[test]
    fn parse_host_port_follows_go() {
        assert_eq!(parse_host_port("1.2.3.4:5", 9), Ok(("1.2.3.4".into(), 5)));
        assert_eq!(parse_host_port("1.2.3.4", 9), Ok(("1.2.3.4".into(), 9)));
        assert_eq!(parse_host_port("[::1]:5", 9), Ok(("::1".into(), 5)));
        assert_eq!(parse_host_port("host:0", 9), Ok(("host".into(), 9)));
        assert_eq!(
            parse_host_port("bad:abc", 9).unwrap_err(),
            "strconv.Atoi: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            parse_host_port("nats://1.2.3.4:4222", 9).unwrap_err(),
            "address nats://1.2.3.4:4222: too many colons in address"
        );
        assert_eq!(
            parse_host_port("[::1", 9).unwrap_err(),
            "address [::1: missing ']' in address"
        );
        assert!(parse_host_port("", 9).is_err());
        assert!(parse_host_port("h:70000", 9).is_err());
    }
}
