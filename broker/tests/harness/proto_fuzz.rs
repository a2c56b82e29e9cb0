//! The body of the protocol-parser fuzz target, shared by the `cargo fuzz`
//! target (`fuzz/fuzz_targets/proto_parse.rs` includes this file) and the
//! stable smoke test (`tests/proto_fuzz_smoke.rs`).
//!
//! Input layout: the first byte picks the connection kind, the limits and a
//! chunk size; the rest is protocol bytes. Properties checked:
//! - `parse_op` never panics;
//! - a complete operation consumes at least one and at most `len` bytes;
//! - an `Incomplete` length hint is larger than what is buffered;
//! - feeding the same bytes in chunks yields a prefix of the operations
//!   parsed from the whole buffer, and the same operations when neither run
//!   hit an error.

use broker::proto::{parse_op, ConnKind, ParseError, ParseLimits, Step};

/// Upper bound on operations per run, so a fuzz case stays fast.
const MAX_OPS: usize = 10_000;

/// Outcome of parsing one input.
#[derive(Debug, PartialEq, Eq)]
pub struct Run {
    /// Debug form of each operation, in order.
    pub ops: Vec<String>,
    pub error: Option<ParseError>,
    /// Bytes left unparsed at the end (waiting for more input).
    pub leftover: usize,
}

/// Decodes the selector byte.
pub fn config(sel: u8) -> (ConnKind, ParseLimits, usize) {
    let kind = if sel & 1 == 0 {
        ConnKind::Client
    } else {
        ConnKind::Route
    };
    let limits = match (sel >> 1) & 3 {
        0 => ParseLimits {
            max_control_line: 4096,
            max_payload: Some(1024 * 1024),
            headers: true,
        },
        1 => ParseLimits {
            max_control_line: 8,
            max_payload: Some(8),
            headers: true,
        },
        2 => ParseLimits {
            max_control_line: 64,
            max_payload: None,
            headers: false,
        },
        _ => ParseLimits {
            max_control_line: 0,
            max_payload: Some(0),
            headers: true,
        },
    };
    let chunk = (sel >> 3) as usize % 7 + 1;
    (kind, limits, chunk)
}

/// Parses `input` delivered in pieces of `chunk` bytes (`usize::MAX` = all
/// at once), the way a connection's read loop does.
pub fn run(input: &[u8], chunk: usize, kind: ConnKind, limits: &ParseLimits) -> Run {
    let mut buf: Vec<u8> = Vec::new();
    let mut ops = Vec::new();
    let mut fed = 0;
    while fed < input.len() {
        let end = fed.saturating_add(chunk).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            if ops.len() >= MAX_OPS {
                return Run {
                    ops,
                    error: None,
                    leftover: buf.len(),
                };
            }
            match parse_op(&buf, kind, limits) {
                Ok(Step::Op { op, consumed }) => {
                    assert!(consumed >= 1, "empty op {op:?}");
                    assert!(consumed <= buf.len(), "consumed {consumed} > {}", buf.len());
                    ops.push(format!("{op:?}"));
                    buf.drain(..consumed);
                }
                Ok(Step::Incomplete { total_hint }) => {
                    if let Some(t) = total_hint {
                        assert!(t > buf.len(), "hint {t} <= buffered {}", buf.len());
                    }
                    break;
                }
                Err(e) => {
                    return Run {
                        ops,
                        error: Some(e),
                        leftover: buf.len(),
                    }
                }
            }
        }
    }
    Run {
        ops,
        error: None,
        leftover: buf.len(),
    }
}

/// The fuzz body.
pub fn check(data: &[u8]) {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let (kind, limits, chunk) = config(sel);
    let whole = run(input, usize::MAX, kind, &limits);
    let split = run(input, chunk, kind, &limits);
    assert!(
        whole.ops.starts_with(&split.ops),
        "chunked ops are not a prefix of whole ops\nwhole: {whole:?}\nsplit: {split:?}"
    );
    if whole.error.is_none() && split.error.is_none() {
        assert_eq!(whole, split, "chunked parse differs");
    }
    if whole.error.is_none() {
        if let Some(e) = &split.error {
            panic!("chunked feed failed with {e:?} where the whole buffer parsed: {whole:?}");
        }
    }
}
