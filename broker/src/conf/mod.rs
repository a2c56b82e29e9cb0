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

/// Parse a configuration held in memory, with no includes and no environment.
pub fn parse_str(src: &str) -> Result<Map, ParseError> {
    parse(src.as_bytes(), None, &NoSource)
}
