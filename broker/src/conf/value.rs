//! The value tree produced by the parser.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a value or key was written: file (if any), 1-based line and column
/// (column counted in bytes, as nats-server does).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pos {
    pub file: Option<Arc<PathBuf>>,
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref().map(|p| p.as_path())
    }

    /// The column as nats-server prints it. Its lexer (conf/lex.go) measures
    /// a column from the position of the previous line's `\n`, and from 0 on
    /// the first line, so columns are 1-based except on line 1, where they
    /// are one less (`server.conf:1:0: unknown field "foo"`).
    pub fn go_col(&self) -> usize {
        if self.line == 1 {
            self.col.saturating_sub(1)
        } else {
            self.col
        }
    }
}

impl fmt::Display for Pos {
    /// `file:line:col`, or `line:col` for configurations parsed from memory,
    /// with nats-server's column numbering ([`Pos::go_col`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}:{}:{}", p.display(), self.line, self.go_col()),
            None => write!(f, "{}:{}", self.line, self.go_col()),
        }
    }
}

/// A Zulu timestamp `YYYY-MM-DDTHH:MM:SSZ` (the only datetime form nats-server lexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datetime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl fmt::Display for Datetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// A configuration value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Datetime(Datetime),
    Array(Vec<Node>),
    Map(Map),
}

impl Value {
    /// The type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }
}

/// A value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// One `key = value` of a map.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
    /// The key was referenced as `$key` later in the file. nats-server does
    /// not report such keys as unknown fields (they are variable definitions).
    pub used_as_variable: bool,
}

/// A map in the order keys were (last) defined; a key defined twice keeps
/// only its last value, as in nats-server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<Entry>,
}

impl Map {
    pub fn new() -> Self {
        Map::default()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Exact-case lookup (variables are case-sensitive in nats-server).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.key == key)
    }

    /// Insert, replacing an earlier definition of the same key.
    pub fn insert(&mut self, entry: Entry) {
        self.entries.retain(|e| e.key != entry.key);
        self.entries.push(entry);
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}
