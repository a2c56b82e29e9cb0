//! A TLS peer's certificates as `/connz?auth=true` shows them (monitor.go makePeerCerts):
//! the subject in Go's `pkix.Name.String()` form, and SHA-256 of the subject public key info
//! and of the whole certificate, in hex. Pure: a small DER reader over the certificate.

use serde::Serialize;

/// One certificate of a TLS client (nats-server `TLSPeerCert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerCert {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub spki_sha256: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_sha256: String,
}

/// The peer's chain, leaf first, as the TLS handshake gave it.
pub fn peer_certs<'a>(chain: impl IntoIterator<Item = &'a [u8]>) -> Vec<PeerCert> {
    chain.into_iter().map(peer_cert).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

/// One certificate. A certificate that does not parse (rustls took it, so this is not
/// expected) still gets its hash.
pub fn peer_cert(der: &[u8]) -> PeerCert {
    let (subject, spki) = subject_and_spki(der).unwrap_or_default();
    PeerCert {
        subject: subject.map(|s| go_name_string(&s)).unwrap_or_default(),
        spki_sha256: spki.map(sha256_hex).unwrap_or_default(),
        cert_sha256: sha256_hex(der),
    }
}

/// One DER element: its tag, its contents, and the whole encoding.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Reads DER elements one after the other (definite lengths only, as DER has).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn next(&mut self) -> Option<Element<'a>> {
        let b = self.0;
        let tag = *b.first()?;
        let first = *b.get(1)? as usize;
        let (len, head) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *b.get(2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let end = head.checked_add(len)?;
        let whole = b.get(..end)?;
        self.0 = &b[end..];
        Some(Element {
            tag,
            content: &whole[head..],
            whole,
        })
    }

    /// The next element, if it has `tag`.
    fn expect(&mut self, tag: u8) -> Option<Element<'a>> {
        let e = self.next()?;
        (e.tag == tag).then_some(e)
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// An attribute of a distinguished name: its OID in dotted form and its value element.
struct Attribute<'a> {
    oid: String,
    tag: u8,
    /// The value's contents.
    value: &'a [u8],
    /// The value's whole encoding.
    whole: &'a [u8],
}

/// The subject's attributes in certificate order, and the subject public key info
/// (RFC 5280 4.1: Certificate → TBSCertificate → version?, serial, signature, issuer,
/// validity, subject, subjectPublicKeyInfo).
#[allow(clippy::type_complexity)]
fn subject_and_spki(der: &[u8]) -> Option<(Option<Vec<Attribute<'_>>>, Option<&[u8]>)> {
    let cert = Reader(der).expect(SEQUENCE)?;
    let tbs = Reader(cert.content).expect(SEQUENCE)?;
    let mut r = Reader(tbs.content);
    let mut e = r.next()?;
    if e.tag == 0xa0 {
        e = r.next()?; // the serial number after the explicit version
    }
    let _serial = e;
    let _signature = r.expect(SEQUENCE)?;
    let _issuer = r.expect(SEQUENCE)?;
    let _validity = r.expect(SEQUENCE)?;
    let subject = r.expect(SEQUENCE)?;
    let spki = r.expect(SEQUENCE).map(|e| e.whole);
    let mut attrs = Vec::new();
    let mut rdns = Reader(subject.content);
    while !rdns.0.is_empty() {
        let Some(set) = rdns.expect(SET) else {
            return Some((None, spki));
        };
        let mut atvs = Reader(set.content);
        while !atvs.0.is_empty() {
            let Some(atv) = atvs.expect(SEQUENCE) else {
                return Some((None, spki));
            };
            let mut f = Reader(atv.content);
            let (Some(oid), Some(value)) = (f.expect(OID), f.next()) else {
                return Some((None, spki));
            };
            attrs.push(Attribute {
                oid: dotted(oid.content),
                tag: value.tag,
                value: value.content,
                whole: value.whole,
            });
        }
    }
    Some((Some(attrs), spki))
}

/// An OID's dotted form (Go `asn1.ObjectIdentifier.String`).
fn dotted(b: &[u8]) -> String {
    let mut arcs: Vec<u128> = Vec::new();
    let mut v: u128 = 0;
    for &x in b {
        v = (v << 7) | u128::from(x & 0x7f);
        if x & 0x80 == 0 {
            if arcs.is_empty() {
                let (a, b) = match v {
                    0..=39 => (0, v),
                    40..=79 => (1, v - 40),
                    _ => (2, v - 80),
                };
                arcs.push(a);
                arcs.push(b);
            } else {
                arcs.push(v);
            }
            v = 0;
        }
    }
    arcs.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// The value as Go 1.19's x509 parser reads it (parser.go parseASN1String): PrintableString,
/// NumericString, IA5String, T61String, UTF8String, BMPString (without a trailing NUL). Go
/// refuses a certificate with any other value type, or a malformed string, so its TLS
/// handshake fails there; rustls takes it, and such a value shows as `OID=#<DER>`.
fn string_value(tag: u8, v: &[u8]) -> Option<String> {
    match tag {
        0x13 | 0x12 | 0x16 | 0x0c => Some(String::from_utf8_lossy(v).into_owned()),
        // T61String: Go takes the bytes as they are, and its JSON encoder writes each byte
        // that is not UTF-8 as U+FFFD.
        0x14 => {
            let mut s = String::with_capacity(v.len());
            for chunk in v.utf8_chunks() {
                s.push_str(chunk.valid());
                s.extend(chunk.invalid().iter().map(|_| '\u{fffd}'));
            }
            Some(s)
        }
        0x1e => {
            if !v.len().is_multiple_of(2) {
                return None;
            }
            let v = v.strip_suffix(&[0, 0]).unwrap_or(v);
            let units: Vec<u16> = v
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// The attributes `pkix.Name` keeps in named fields (2.5.4.x: CN, SERIALNUMBER, C, L, ST,
/// STREET, O, OU, POSTALCODE).
fn named_field(oid: &str) -> Option<u8> {
    let last = oid.strip_prefix("2.5.4.")?.parse::<u8>().ok()?;
    matches!(last, 3 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 17).then_some(last)
}

/// Go asn1's PrintableString alphabet, without `*` and `&` (what `asn1.Marshal` of a Go
/// string checks before it falls back to UTF8String).
fn printable(s: &str) -> bool {
    s.bytes().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b' ' | b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?'
            )
    })
}

/// DER of a Go string as `asn1.Marshal` writes it: PrintableString when it can be, else
/// UTF8String.
fn marshal_string(s: &str) -> Vec<u8> {
    let tag = if printable(s) { 0x13 } else { 0x0c };
    let b = s.as_bytes();
    let mut out = vec![tag];
    match b.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend_from_slice(&[0x81, n as u8]),
        n => {
            let n = n.min(0xffff) as u16;
            out.push(0x82);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(b);
    out
}

/// One printed attribute: `TYPE=value`, escaped as Go's `RDNSequence.String` escapes it.
fn escaped(type_name: &str, value: &str) -> String {
    let mut s = String::with_capacity(type_name.len() + 1 + value.len());
    s.push_str(type_name);
    s.push('=');
    let last = value.len().saturating_sub(1);
    for (k, c) in value.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == last,
            '#' => k == 0,
            _ => false,
        };
        if escape {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

/// Go's `pkix.Name.String()` of a parsed subject (crypto/x509/pkix): the attributes outside
/// the named fields first (so they print last), then C, ST, L, STREET, POSTALCODE, O, OU, CN,
/// SERIALNUMBER, each field one RDN with all its values; printed from the last RDN to the
/// first, RDNs joined by `,` and the values of one by `+`. An attribute outside the named
/// fields prints as `OID=#hex` of its value marshalled again.
fn go_name_string(attrs: &[Attribute<'_>]) -> String {
    let mut fields: [Vec<String>; 7] = Default::default();
    let (mut cn, mut serial) = (String::new(), String::new());
    // Each RDN: its printed attributes.
    let mut rdns: Vec<Vec<String>> = Vec::new();
    for a in attrs {
        let value = string_value(a.tag, a.value);
        match named_field(&a.oid) {
            Some(n) => {
                // pkix FillFromRDNSequence: only string values fill the fields.
                let Some(v) = value else { continue };
                match n {
                    3 => cn = v,
                    5 => serial = v,
                    6 => fields[0].push(v),
                    8 => fields[1].push(v),
                    7 => fields[2].push(v),
                    9 => fields[3].push(v),
                    17 => fields[4].push(v),
                    10 => fields[5].push(v),
                    _ => fields[6].push(v),
                }
            }
            None => {
                let der = match &value {
                    // A T61String that is not UTF-8 does not marshal in Go: the text prints.
                    Some(v) if a.tag == 0x14 && std::str::from_utf8(a.value).is_err() => {
                        rdns.push(vec![escaped(&a.oid, v)]);
                        continue;
                    }
                    Some(v) => marshal_string(v),
                    None => a.whole.to_vec(),
                };
                rdns.push(vec![format!(
                    "{}=#{}",
                    a.oid,
                    data_encoding::HEXLOWER.encode(&der)
                )]);
            }
        }
    }
    const NAMES: [&str; 7] = ["C", "ST", "L", "STREET", "POSTALCODE", "O", "OU"];
    for (values, name) in fields.iter().zip(NAMES) {
        if !values.is_empty() {
            rdns.push(values.iter().map(|v| escaped(name, v)).collect());
        }
    }
    if !cn.is_empty() {
        rdns.push(vec![escaped("CN", &cn)]);
    }
    if !serial.is_empty() {
        rdns.push(vec![escaped("SERIALNUMBER", &serial)]);
    }
    rdns.iter()
        .rev()
        .map(|r| r.join("+"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        params.distinguished_name = dn;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_prints_as_go_pkix_name_string() {
        use rcgen::{DistinguishedName, DnType, DnValue};
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "CH");
        dn.push(
            DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            DnValue::Ia5String("ops@example.com".try_into().unwrap()),
        );
        dn.push(DnType::OrganizationName, "Acme, Inc.");
        dn.push(DnType::CommonName, " #lead+trail ");
        dn.push(DnType::LocalityName, "Zürich");
        dn.push(DnType::OrganizationalUnitName, "#time;sync");
        dn.push(DnType::StateOrProvinceName, "ZH");
        let der = cert_with(dn);
        let p = peer_cert(&der);
        // Named fields in Go's fixed order, reversed; the e-mail attribute last, as
        // UTF8String (`@` is not printable) in hex.
        assert_eq!(
            p.subject,
            "CN=\\ #lead\\+trail\\ ,OU=\\#time\\;sync,O=Acme\\, Inc.,L=Zürich,ST=ZH,C=CH,\
             1.2.840.113549.1.9.1=#0c0f6f7073406578616d706c652e636f6d"
        );
        assert_eq!(p.cert_sha256, sha256_hex(&der));
        assert_eq!(p.spki_sha256.len(), 64);
        assert_ne!(p.spki_sha256, p.cert_sha256);
    }

    fn attr<'a>(oid: &str, tag: u8, value: &'a [u8]) -> Attribute<'a> {
        Attribute {
            oid: oid.to_string(),
            tag,
            value,
            whole: value,
        }
    }

    /// Repeated and multi-valued attributes, DC and UID, SERIALNUMBER, STREET, POSTALCODE,
    /// two CNs, empty values. The expected strings are what Go 1.19's
    /// `pkix.Name.FillFromRDNSequence` + `String()` print for the same attributes.
    #[test]
    fn names_print_as_go_1_19_does() {
        let (utf8, ia5, printable) = (0x0c, 0x16, 0x13);
        let attrs = [
            attr("2.5.4.6", printable, b"CH"),
            attr("2.5.4.10", utf8, b"Acme"),
            attr("2.5.4.11", utf8, b"a"),
            attr("2.5.4.11", utf8, b"b"),
            attr("2.5.4.11", utf8, b"c"),
            attr("2.5.4.3", utf8, b"x"),
            attr("2.5.4.3", utf8, b"y"),
            attr("0.9.2342.19200300.100.1.25", ia5, b"example"),
            attr("0.9.2342.19200300.100.1.1", utf8, b"u1"),
            attr("2.5.4.5", printable, b"42"),
            attr("2.5.4.9", utf8, b"Main St 1"),
            attr("2.5.4.17", utf8, b"8000"),
        ];
        assert_eq!(
            go_name_string(&attrs),
            "SERIALNUMBER=42,CN=y,OU=a+OU=b+OU=c,O=Acme,POSTALCODE=8000,STREET=Main St 1,C=CH,\
             0.9.2342.19200300.100.1.1=#13027531,0.9.2342.19200300.100.1.25=#13076578616d706c65"
        );
        let attrs = [
            attr("2.5.4.3", utf8, b""),
            attr("2.5.4.10", utf8, b""),
            attr("0.9.2342.19200300.100.1.1", utf8, "é".as_bytes()),
        ];
        assert_eq!(
            go_name_string(&attrs),
            "O=,0.9.2342.19200300.100.1.1=#0c02c3a9"
        );
        // BMPString: UTF-16BE, a trailing NUL dropped (parser.go parseASN1String).
        assert_eq!(
            string_value(0x1e, &[0, 0x5a, 0, 0xfc, 0, 0]).as_deref(),
            Some("Zü")
        );
        assert_eq!(string_value(0x1e, &[0, 0x5a, 0]), None);
        assert_eq!(
            string_value(0x14, b"a\xe9\xf0\x9fb").as_deref(),
            Some("a\u{fffd}\u{fffd}\u{fffd}b")
        );
    }

    #[test]
    fn spki_hash_is_of_the_public_key_info() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(
            peer_cert(&der).spki_sha256,
            sha256_hex(&rcgen::PublicKeyData::subject_public_key_info(&key))
        );
    }

    #[test]
    fn oids_and_garbage() {
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(dotted(&[0x55, 0x04, 0x03]), "2.5.4.3");
        for junk in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x02, 0x30, 0x10],
        ] {
            let p = peer_cert(junk);
            assert!(p.subject.is_empty() && p.spki_sha256.is_empty());
            assert_eq!(p.cert_sha256.len(), 64);
        }
    }
}
