//! The NATS wire protocol: parser, encoders and the CONNECT/INFO documents.
//!
//! Pure: bytes in, operations or bytes out. No sockets, no clocks.

pub mod encode;
pub mod goerr;
pub mod gojson;
pub mod json;
pub mod parser;

pub use parser::{parse_op, parse_size, split_args, Op, ParseLimits, PubArgs, Step};

/// Which protocol dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    Client,
    Route,
}

/// A protocol error. How the server answers each one follows nats-server
/// 2.9.10 (`server/parser.go`, `server/client.go`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `-ERR 'Unknown Protocol Operation'`, then close.
    #[error("Unknown Protocol Operation")]
    UnknownOp,
    /// `-ERR 'maximum control line exceeded'`, then close.
    #[error("maximum control line exceeded")]
    MaxControlLine,
    /// `-ERR 'Maximum Payload Violation'`, then close.
    #[error("Maximum Payload Violation")]
    MaxPayload,
    /// Malformed arguments: nats-server closes without an `-ERR`
    /// (the text is for the log only).
    #[error("{0}")]
    BadArgs(&'static str),
    /// HPUB from a client that did not announce headers: closed without an `-ERR`.
    #[error("message headers not supported")]
    HeadersNotSupported,
}

impl ParseError {
    /// The `-ERR` line to send before closing, if any.
    pub fn err_line(&self) -> Option<&'static [u8]> {
        match self {
            ParseError::UnknownOp => Some(encode::ERR_UNKNOWN_OP),
            ParseError::MaxControlLine => Some(encode::ERR_MAX_CONTROL_LINE),
            ParseError::MaxPayload => Some(encode::ERR_MAX_PAYLOAD),
            ParseError::BadArgs(_) | ParseError::HeadersNotSupported => None,
        }
    }
}
