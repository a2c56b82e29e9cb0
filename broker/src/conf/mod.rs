//! nats-server's configuration file format: lexer, parser and the value tree.
//!
//! Pure: file contents and environment variables come in through the
//! [`Source`] trait, so the parser itself touches neither the file system nor
//! the process environment (tests and the fuzzer use in-memory sources).
//!
//! The grammar follows nats-server 2.9.10 `conf/lex.go` and `conf/parse.go`;
//! every value keeps the position (file, line, column) it came from so that
//! the typed mapping in `config.rs` can report `file:line:col: message` like
//! nats-server's `configErr`.

mod lex;
mod parse;
mod value;

pub use parse::{parse, parse_file, ParseError, MAX_INCLUDE_DEPTH};
pub use value::{Datetime, Entry, Map, Node, Pos, Value};

use std::io;
use std::path::Path;

/// Where included files and `$VARIABLE`s that are not defined in the file come from.
pub trait Source {
    /// Read an included file.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Look up an environment variable.
    fn env_var(&self, name: &str) -> Option<String>;
}

/// A source without files or environment: `include` and unknown variables fail.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSource;

impl Source for NoSource {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: includes are not available here", path.display()),
        ))
    }

    fn env_var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// An I/O error worded like Go's `*os.PathError` (`open x.conf: no such file
/// or directory`), as nats-server prints them: the errno text in lower case,
/// without Rust's ` (os error N)` suffix.
pub fn go_io_error(op: &str, path: &str, err: &io::Error) -> String {
    let text = err.to_string();
    let text = match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => &text[..i],
        _ => text.as_str(),
    };
    let mut chars = text.chars();
    let lowered: String = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{op} {path}: {lowered}")
}

/// Parse a configuration held in memory, with no includes and no environment.
pub fn parse_str(src: &str) -> Result<Map, ParseError> {
    parse(src.as_bytes(), None, &NoSource)
}
