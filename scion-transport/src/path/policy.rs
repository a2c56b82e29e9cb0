//! Path policy filters in scionproto's path-policy language (scionproto/scion
//! `private/path/pathpol`: `hop_pred.go`, `acl.go`, `sequence.go`; doc `PathPolicy.md`).
//!
//! - **Hop predicate** `ISD[-AS[#IF[,IF]]]`; 0 is a wildcard for ISD, AS and interface; an
//!   interface needs an AS, and a wildcard AS allows only interface 0.
//! - **ACL**: ordered entries `+ PRED` / `- PRED`; the first entry matching an interface decides
//!   it; a path is denied if any of its interfaces is denied. The last entry must match
//!   everything (`+`, `-`, `+ 0`, `- 0-0#0`, ...), as `pathpol.NewACL` requires.
//! - **Sequence**: space-separated hop predicates matched against the AS hops of the path
//!   (`ISD-AS#in,out`, see [`PathInfo::as_hops`]), with `?`, `*`, `+` (postfix), `|`
//!   (alternative; binds tighter than concatenation) and parentheses, as in scionproto's ANTLR
//!   grammar. A predicate with one interface matches either side of the hop; with two, ingress
//!   and egress in that order.
//!
//! Anything else (other policy kinds such as `remote_isd_as`, unknown characters) is an error.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::model::{AsHop, PathInfo, PathInterface};
use crate::address::{parse_asn, parse_isd};

/// Errors from parsing policies; each names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("hop predicate {input:?}: {reason}")]
    HopPredicate { input: String, reason: String },
    #[error("ACL entry {entry:?}: action must be '+' or '-', got {action:?}")]
    AclAction { entry: String, action: String },
    #[error("ACL entry {entry:?}: expected '<+|-> [hop predicate]'")]
    AclShape { entry: String },
    #[error("ACL has no entries")]
    AclEmpty,
    #[error(
        "ACL must end with a default entry matching every hop (e.g. '+' or '- 0'), got {last:?}"
    )]
    AclNoDefault { last: String },
    #[error("sequence {input:?}: {reason} at byte {pos}")]
    Sequence {
        input: String,
        pos: usize,
        reason: String,
    },
}

/// `ISD[-AS[#IF[,IF]]]` with 0 as wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopPredicate {
    pub isd: u16,
    pub asn: u64,
    /// Interfaces: `[]` = any; `[x]` = ingress or egress is x (0 = any); `[in, out]`.
    ifids: [u16; 2],
    n_ifids: u8,
}

impl HopPredicate {
    pub fn ifids(&self) -> &[u16] {
        &self.ifids[..self.n_ifids as usize]
    }

    /// True for a predicate matching every hop (`0`, `0-0`, `0-0#0`).
    pub fn matches_all(&self) -> bool {
        self.isd == 0 && self.asn == 0
    }

    fn ia_matches(&self, ia: crate::address::IsdAsn) -> bool {
        (self.isd == 0 || self.isd == ia.isd()) && (self.asn == 0 || self.asn == ia.asn())
    }

    /// pathpol `pathIFMatch`: with two interfaces the first applies to ingress interfaces and
    /// the second to egress ones; with one it applies to either.
    fn interface_matches(&self, pi: &PathInterface, ingress: bool) -> bool {
        if !self.ia_matches(pi.ia) {
            return false;
        }
        let want = match self.ifids() {
            [] => 0,
            [x] => *x,
            [i, e] => {
                if ingress {
                    *i
                } else {
                    *e
                }
            }
            _ => 0,
        };
        want == 0 || want == pi.ifid
    }

    /// Sequence semantics (scionproto `sequence.go` regexes): a hop is `ia#in,out`.
    fn hop_matches(&self, hop: &AsHop) -> bool {
        if !self.ia_matches(hop.ia) {
            return false;
        }
        match self.ifids() {
            [] => true,
            [x] => *x == 0 || hop.ingress == *x || hop.egress == *x,
            [i, e] => (*i == 0 || hop.ingress == *i) && (*e == 0 || hop.egress == *e),
            _ => true,
        }
    }
}

impl FromStr for HopPredicate {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| PolicyError::HopPredicate {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let dashes = s.matches('-').count();
        let hashes = s.matches('#').count();
        let commas = s.matches(',').count();
        if dashes > 1 || hashes > 1 || commas > 1 {
            return Err(err("a delimiter ('-', '#' or ',') appears more than once"));
        }
        if dashes == 0 && (hashes > 0 || commas > 0) {
            return Err(err("interfaces need an AS (ISD-AS#IF)"));
        }
        if hashes == 0 && commas > 0 {
            return Err(err("',' only separates two interfaces after '#'"));
        }
        let (isd_s, rest) = match s.split_once('-') {
            Some((i, r)) => (i, Some(r)),
            None => (s, None),
        };
        let isd =
            parse_isd(isd_s).ok_or_else(|| err("ISD is not a decimal number in 0..=65535"))?;
        let mut p = HopPredicate {
            isd,
            asn: 0,
            ifids: [0, 0],
            n_ifids: 0,
        };
        let Some(rest) = rest else {
            return Ok(p);
        };
        let (as_s, ifs) = match rest.split_once('#') {
            Some((a, i)) => (a, Some(i)),
            None => (rest, None),
        };
        p.asn = parse_asn(as_s).map_err(|r| err(&format!("AS {as_s:?} {r}")))?;
        let Some(ifs) = ifs else {
            return Ok(p);
        };
        for part in ifs.split(',') {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(&format!("interface {part:?} is not a decimal number")));
            }
            let v: u16 = part
                .parse()
                .map_err(|_| err(&format!("interface {part:?} is larger than 65535")))?;
            p.ifids[p.n_ifids as usize] = v;
            p.n_ifids += 1;
        }
        if p.asn == 0 && p.ifids().iter().any(|&i| i != 0) {
            return Err(err("interfaces must be 0 when the AS is a wildcard"));
        }
        // `#0` and `#0,0` match any interface, exactly like no interface at all.
        if p.ifids().iter().all(|&i| i == 0) {
            p.n_ifids = 0;
        }
        Ok(p)
    }
}

impl fmt::Display for HopPredicate {
    /// Canonical form like pathpol's `HopPredicate.String`: `1-ff00:0:110#1,2`, `1-0#0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ia = crate::address::IsdAsn::new(self.isd, self.asn);
        write!(f, "{ia}#")?;
        match self.ifids() {
            [] => write!(f, "0"),
            [x] => write!(f, "{x}"),
            [i, e] => write!(f, "{i},{e}"),
            _ => Ok(()),
        }
    }
}

/// One ACL entry: allow (`+`) or deny (`-`) what the predicate matches (no predicate = all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclEntry {
    pub allow: bool,
    pub rule: Option<HopPredicate>,
}

impl FromStr for AclEntry {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let (action, rule) = match parts.as_slice() {
            [a] => (*a, None),
            [a, r] => (*a, Some(r.parse::<HopPredicate>()?)),
            _ => {
                return Err(PolicyError::AclShape {
                    entry: s.to_string(),
                })
            }
        };
        let allow = match action {
            "+" => true,
            "-" => false,
            other => {
                return Err(PolicyError::AclAction {
                    entry: s.to_string(),
                    action: other.to_string(),
                })
            }
        };
        Ok(AclEntry { allow, rule })
    }
}

impl fmt::Display for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.allow { "+" } else { "-" })?;
        if let Some(r) = &self.rule {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

/// An ordered allow/deny list over interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    entries: Vec<AclEntry>,
}

impl Acl {
    /// Parses entries like `["+ 1-ff00:0:110#1", "- 1", "+"]`.
    pub fn from_entries<S: AsRef<str>>(entries: &[S]) -> Result<Self, PolicyError> {
        let entries = entries
            .iter()
            .map(|e| e.as_ref().parse::<AclEntry>())
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = entries.last() else {
            return Err(PolicyError::AclEmpty);
        };
        if !last.rule.is_none_or(|r| r.matches_all()) {
            return Err(PolicyError::AclNoDefault {
                last: last.to_string(),
            });
        }
        Ok(Acl { entries })
    }

    pub fn entries(&self) -> &[AclEntry] {
        &self.entries
    }

    /// The first denied interface, if any (pathpol `ACL.evalPath`: odd positions are ingress).
    pub fn denied_interface(&self, path: &PathInfo) -> Option<PathInterface> {
        path.interfaces.iter().enumerate().find_map(|(i, pi)| {
            let ingress = i % 2 == 1;
            let entry = self
                .entries
                .iter()
                .find(|e| e.rule.is_none_or(|r| r.interface_matches(pi, ingress)));
            // from_entries guarantees a match-all last entry, so `find` always hits.
            match entry {
                Some(e) if e.allow => None,
                _ => Some(*pi),
            }
        })
    }

    pub fn allows(&self, path: &PathInfo) -> bool {
        self.denied_interface(path).is_none()
    }

    /// Whether no path leaving the local AS can pass: the first entry matching every hop is a
    /// deny, and the allow entries before it name at most one AS (no ISD or AS wildcard). A
    /// path to another AS has interfaces in at least two ASes, so one of them meets only deny
    /// entries. (A path inside the AS has no interfaces and always passes.)
    pub fn denies_everything(&self) -> bool {
        let mut allowed: Option<(u16, u64)> = None;
        for e in &self.entries {
            let Some(r) = e.rule.filter(|r| !r.matches_all()) else {
                return !e.allow;
            };
            if !e.allow {
                continue;
            }
            if r.asn == 0 || r.isd == 0 {
                return false;
            }
            match allowed {
                Some(a) if a != (r.isd, r.asn) => return false,
                _ => allowed = Some((r.isd, r.asn)),
            }
        }
        true
    }
}

/// A parsed hop sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    source: String,
    root: Option<SeqNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SeqNode {
    Hop(HopPredicate),
    Concat(Vec<SeqNode>),
    Or(Vec<SeqNode>),
    Optional(Box<SeqNode>),
    Star(Box<SeqNode>),
    Plus(Box<SeqNode>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Hop(HopPredicate),
    Op(char),
}

fn tokenize(s: &str) -> Result<Vec<(usize, Token)>, PolicyError> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b"?*+|()".contains(&c) {
            out.push((i, Token::Op(c as char)));
            i += 1;
        } else if c.is_ascii_hexdigit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_hexdigit() || b"-:#,".contains(&bytes[i])) {
                i += 1;
            }
            let text = &s[start..i];
            let pred = text
                .parse::<HopPredicate>()
                .map_err(|e| PolicyError::Sequence {
                    input: s.to_string(),
                    pos: start,
                    reason: e.to_string(),
                })?;
            out.push((start, Token::Hop(pred)));
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            return Err(PolicyError::Sequence {
                input: s.to_string(),
                pos: i,
                reason: format!("unexpected character {ch:?}"),
            });
        }
    }
    Ok(out)
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &str) -> PolicyError {
        let pos = self
            .tokens
            .get(self.pos)
            .map(|t| t.0)
            .unwrap_or(self.input.len());
        PolicyError::Sequence {
            input: self.input.to_string(),
            pos,
            reason: reason.to_string(),
        }
    }
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|t| &t.1)
    }
    /// concat := or+
    fn concat(&mut self) -> Result<SeqNode, PolicyError> {
        let mut items = Vec::new();
        while matches!(self.peek(), Some(Token::Hop(_)) | Some(Token::Op('('))) {
            items.push(self.or()?);
        }
        match items.len() {
            0 => Err(self.err("expected a hop predicate or '('")),
            1 => Ok(items.remove(0)),
            _ => Ok(SeqNode::Concat(items)),
        }
    }
    /// or := postfix ('|' postfix)*
    fn or(&mut self) -> Result<SeqNode, PolicyError> {
        let mut alts = vec![self.postfix()?];
        while self.peek() == Some(&Token::Op('|')) {
            self.pos += 1;
            alts.push(self.postfix()?);
        }
        Ok(if alts.len() == 1 {
            alts.remove(0)
        } else {
            SeqNode::Or(alts)
        })
    }
    /// postfix := atom ('?' | '*' | '+')*
    fn postfix(&mut self) -> Result<SeqNode, PolicyError> {
        let mut node = self.atom()?;
        loop {
            node = match self.peek() {
                Some(Token::Op('?')) => SeqNode::Optional(Box::new(node)),
                Some(Token::Op('*')) => SeqNode::Star(Box::new(node)),
                Some(Token::Op('+')) => SeqNode::Plus(Box::new(node)),
                _ => return Ok(node),
            };
            self.pos += 1;
        }
    }
    /// atom := HOP | '(' concat ')'
    fn atom(&mut self) -> Result<SeqNode, PolicyError> {
        match self.peek().cloned() {
            Some(Token::Hop(p)) => {
                self.pos += 1;
                Ok(SeqNode::Hop(p))
            }
            Some(Token::Op('(')) => {
                self.pos += 1;
                let inner = self.concat()?;
                if self.peek() != Some(&Token::Op(')')) {
                    return Err(self.err("expected ')'"));
                }
                self.pos += 1;
                Ok(inner)
            }
            _ => Err(self.err("expected a hop predicate or '('")),
        }
    }
}

impl FromStr for Sequence {
    type Err = PolicyError;
    /// An empty or all-blank sequence matches every path (pathpol `NewSequence("")`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let tokens = tokenize(s)?;
        if tokens.is_empty() {
            return Ok(Sequence {
                source: s.to_string(),
                root: None,
            });
        }
        let mut p = Parser {
            input: s,
            tokens,
            pos: 0,
        };
        let root = p.concat()?;
        if p.pos != p.tokens.len() {
            return Err(p.err("unexpected token"));
        }
        Ok(Sequence {
            source: s.to_string(),
            root: Some(root),
        })
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Positions reachable after matching `node` from any of `starts`.
fn ends(node: &SeqNode, hops: &[AsHop], starts: &BTreeSet<usize>) -> BTreeSet<usize> {
    match node {
        SeqNode::Hop(p) => starts
            .iter()
            .filter(|&&i| i < hops.len() && p.hop_matches(&hops[i]))
            .map(|&i| i + 1)
            .collect(),
        SeqNode::Concat(items) => items
            .iter()
            .fold(starts.clone(), |acc, n| ends(n, hops, &acc)),
        SeqNode::Or(alts) => alts.iter().flat_map(|n| ends(n, hops, starts)).collect(),
        SeqNode::Optional(n) => {
            let mut r = starts.clone();
            r.extend(ends(n, hops, starts));
            r
        }
        SeqNode::Star(n) => closure(n, hops, starts.clone()),
        SeqNode::Plus(n) => {
            let once = ends(n, hops, starts);
            closure(n, hops, once)
        }
    }
}

/// Zero or more repetitions of `n` from `set`; terminates because positions are bounded.
fn closure(n: &SeqNode, hops: &[AsHop], mut set: BTreeSet<usize>) -> BTreeSet<usize> {
    let mut frontier = set.clone();
    while !frontier.is_empty() {
        let next: BTreeSet<usize> = ends(n, hops, &frontier)
            .into_iter()
            .filter(|p| !set.contains(p))
            .collect();
        set.extend(next.iter().copied());
        frontier = next;
    }
    set
}

impl Sequence {
    /// True when the path's whole AS-hop sequence matches.
    pub fn matches(&self, path: &PathInfo) -> bool {
        let Some(root) = &self.root else {
            return true;
        };
        if !path.interfaces.len().is_multiple_of(2) {
            // pathpol.GetSequence rejects such paths; so do we.
            return false;
        }
        let hops = path.as_hops();
        ends(root, &hops, &BTreeSet::from([0])).contains(&hops.len())
    }
}

/// ACL and sequence together; either may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathPolicy {
    pub acl: Option<Acl>,
    pub sequence: Option<Sequence>,
}

/// Why a policy rejected a path (shown on /pathz).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyReject {
    AclDenied(PathInterface),
    SequenceMismatch,
}

impl fmt::Display for PolicyReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyReject::AclDenied(pi) => write!(f, "ACL denies interface {pi}"),
            PolicyReject::SequenceMismatch => write!(f, "hop sequence does not match policy"),
        }
    }
}

impl PathPolicy {
    pub fn new(acl: Option<Acl>, sequence: Option<Sequence>) -> Self {
        PathPolicy { acl, sequence }
    }

    pub fn check(&self, path: &PathInfo) -> Result<(), PolicyReject> {
        if let Some(acl) = &self.acl {
            if let Some(pi) = acl.denied_interface(path) {
                return Err(PolicyReject::AclDenied(pi));
            }
        }
        if let Some(seq) = &self.sequence {
            if !seq.matches(path) {
                return Err(PolicyReject::SequenceMismatch);
            }
        }
        Ok(())
    }

    /// Keeps the allowed paths, in order.
    pub fn filter(&self, paths: Vec<PathInfo>) -> Vec<PathInfo> {
        paths
            .into_iter()
            .filter(|p| self.check(p).is_ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_predicates() {
        let ok = [
            ("0", "0-0#0"),
            ("1", "1-0#0"),
            ("1-0", "1-0#0"),
            ("1-ff00:0:110", "1-ff00:0:110#0"),
            ("1-ff00:0:110#1", "1-ff00:0:110#1"),
            ("1-ff00:0:110#1,2", "1-ff00:0:110#1,2"),
            ("1-ff00:0:110#0,2", "1-ff00:0:110#0,2"),
            ("0-0#0", "0-0#0"),
            ("0-0#0,0", "0-0#0"),
            ("1-ff00:0:110#0,0", "1-ff00:0:110#0"),
            ("64-12345", "64-12345#0"),
        ];
        for (s, canon) in ok {
            let p: HopPredicate = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(p.to_string(), canon, "{s}");
            assert_eq!(canon.parse::<HopPredicate>().unwrap().to_string(), canon);
        }
        // pathpol hop_pred_test / sequence_test error cases.
        for s in [
            "0-0-0#0",
            "0#0#0",
            "1#0",
            "1,2",
            "1-0#1",
            "1-0#0,2",
            "x",
            "1-ff00:0:110#a",
            "1-ff00:0:110#70000",
            "1-ff00:0:110#1,",
            "1-ff00:0:110#1,2,3",
            "",
        ] {
            assert!(s.parse::<HopPredicate>().is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn acl_parse_errors() {
        assert_eq!(
            Acl::from_entries::<&str>(&[]).unwrap_err(),
            PolicyError::AclEmpty
        );
        assert!(matches!(
            Acl::from_entries(&["+ 1-ff00:0:110"]).unwrap_err(),
            PolicyError::AclNoDefault { .. }
        ));
        assert!(matches!(
            Acl::from_entries(&["* 1", "+"]).unwrap_err(),
            PolicyError::AclAction { .. }
        ));
        assert!(matches!(
            Acl::from_entries(&["+ 1 2", "+"]).unwrap_err(),
            PolicyError::AclShape { .. }
        ));
        for def in ["+", "-", "+ 0", "- 0-0#0", "+ 0-0"] {
            Acl::from_entries(&["- 1-ff00:0:110", def]).unwrap_or_else(|e| panic!("{def}: {e}"));
        }
    }

    #[test]
    fn acl_denying_everything_is_recognised() {
        let acl = |e: &[&str]| Acl::from_entries(e).expect("valid");
        assert!(acl(&["- 0"]).denies_everything());
        assert!(acl(&["-"]).denies_everything());
        assert!(acl(&["- 1-ff00:0:110", "- 2", "-"]).denies_everything());
        // The first catch-all decides; what follows it is never reached.
        assert!(acl(&["- 0", "+"]).denies_everything());
        assert!(!acl(&["- 1", "+"]).denies_everything());
        assert!(!acl(&["+"]).denies_everything());
        // Allowing one AS only: every path to another AS also crosses a second AS.
        assert!(acl(&["+ 1-ff00:0:110#1", "-"]).denies_everything());
        assert!(acl(&[
            "+ 1-ff00:0:110",
            "- 1-ff00:0:111",
            "+ 1-ff00:0:110#2",
            "- 0"
        ])
        .denies_everything());
        // Two ASes, or an ISD wildcard, can let a path through.
        assert!(!acl(&["+ 1-ff00:0:110", "+ 1-ff00:0:111", "-"]).denies_everything());
        assert!(!acl(&["+ 1", "-"]).denies_everything());
    }

    #[test]
    fn sequence_parse_errors() {
        for s in [
            "(", ")", "0 (0", "0 )", "|", "0 |", "?", "0 $", "1#0", "0-0-0#0", "0 ()",
        ] {
            assert!(s.parse::<Sequence>().is_err(), "{s:?} should fail");
        }
        let e = "0 1-ff00:0:110 $".parse::<Sequence>().unwrap_err();
        assert!(e.to_string().contains("byte 15"), "{e}");
    }
}
