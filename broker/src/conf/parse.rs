//! Items -> value tree, following nats-server 2.9.10 `conf/parse.go`.
//!
//! Semantics kept from nats-server: a later definition of a key replaces an
//! earlier one; `$NAME` is looked up in the enclosing maps (innermost first,
//! arrays skipped, only keys defined before the reference), then in the
//! environment, whose value is parsed as a conf value (`pk=<value>`);
//! `$2a$...` is a bcrypt hash, not a variable; `include` merges the keys of
//! another file, resolved against the including file's directory, into the
//! current map, and the included file does not see the includer's variables.
//!
//! Stricter than nats-server (it silently drops these): a key with no value
//! at end of input (except the `}` that ends a JSON-style file), an unknown size suffix such as `1kbb`, and size
//! multiplications that overflow are errors; include and environment
//! variable nesting is bounded (nats-server recurses without limit).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lex::{ItemKind, Lexer};
use super::value::{Datetime, Entry, Map, Node, Pos, Value};
use super::Source;

/// Maximum nesting of includes (and of environment variables whose values
/// reference further variables). Bounds a file that includes itself.
pub const MAX_INCLUDE_DEPTH: usize = 10;

/// A syntax error, undefined variable or failed include, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
}

/// Parse `data`; `file` names it in positions and anchors relative includes.
pub fn parse(data: &[u8], file: Option<&Path>, source: &dyn Source) -> Result<Map, ParseError> {
    parse_at_depth(data, file.map(Path::to_path_buf), source, 0)
}

/// Read `path` through `source` and parse it.
pub fn parse_file(path: &Path, source: &dyn Source) -> Result<Map, ParseError> {
    let data = source.read_file(path).map_err(|e| ParseError {
        pos: Pos {
            file: Some(Arc::new(path.to_path_buf())),
            line: 0,
            col: 0,
        },
        message: format!("error opening config file: {e}"),
    })?;
    parse(&data, Some(path), source)
}

fn parse_at_depth(
    data: &[u8],
    file: Option<PathBuf>,
    source: &dyn Source,
    depth: usize,
) -> Result<Map, ParseError> {
    let dir = match file.as_deref().and_then(Path::parent) {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut p = Parser {
        lines: LineIndex::new(data),
        file: file.map(Arc::new),
        dir,
        source,
        depth,
        stack: vec![Frame::Map {
            map: Map::new(),
            key: None,
        }],
    };
    p.run(data)
}

enum Frame {
    Map {
        map: Map,
        key: Option<(String, Pos)>,
    },
    Array {
        items: Vec<Node>,
    },
}

struct Parser<'s> {
    lines: LineIndex,
    file: Option<Arc<PathBuf>>,
    dir: PathBuf,
    source: &'s dyn Source,
    depth: usize,
    stack: Vec<Frame>,
}

/// Deepest nesting of maps and arrays in a configuration file.
pub const MAX_NESTING: usize = 1000;

impl Parser<'_> {
    fn pos(&self, offset: usize) -> Pos {
        let (line, col) = self.lines.line_col(offset);
        Pos {
            file: self.file.clone(),
            line,
            col,
        }
    }

    fn err(&self, pos: Pos, message: impl Into<String>) -> ParseError {
        ParseError {
            pos,
            message: message.into(),
        }
    }

    fn run(&mut self, data: &[u8]) -> Result<Map, ParseError> {
        let mut lx = Lexer::new(data);
        // Start positions of the open containers, parallel to `stack[1..]`.
        let mut open: Vec<Pos> = Vec::new();
        loop {
            let it = lx.next_item();
            let pos = self.pos(it.offset);
            match it.kind {
                ItemKind::Error => return Err(self.err(pos, it.val)),
                ItemKind::Eof => break,
                ItemKind::CommentStart | ItemKind::Text => {}
                ItemKind::Key => match self.stack.last_mut() {
                    Some(Frame::Map { key, .. }) if key.is_none() => {
                        *key = Some((it.val, pos));
                    }
                    Some(Frame::Map {
                        key: Some((k, kpos)),
                        ..
                    }) => {
                        let (k, kpos) = (k.clone(), kpos.clone());
                        return Err(self.err(kpos, format!("expected a value for key \"{k}\"")));
                    }
                    _ => return Err(self.err(pos, format!("unexpected key \"{}\"", it.val))),
                },
                ItemKind::MapStart | ItemKind::ArrayStart if open.len() >= MAX_NESTING => {
                    // No real configuration comes near this; the tree and the walks over it
                    // are recursive, and a hostile file must not overflow the stack.
                    return Err(self.err(
                        pos,
                        format!("maps and arrays nested deeper than {MAX_NESTING}"),
                    ));
                }
                ItemKind::MapStart => {
                    self.stack.push(Frame::Map {
                        map: Map::new(),
                        key: None,
                    });
                    open.push(pos);
                }
                ItemKind::ArrayStart => {
                    self.stack.push(Frame::Array { items: Vec::new() });
                    open.push(pos);
                }
                ItemKind::MapEnd | ItemKind::ArrayEnd => {
                    let want_map = it.kind == ItemKind::MapEnd;
                    let frame = if self.stack.len() > 1 {
                        self.stack.pop()
                    } else {
                        None
                    };
                    let start = open.pop().unwrap_or_else(|| pos.clone());
                    let value = match frame {
                        Some(Frame::Map { map, key: None }) if want_map => Value::Map(map),
                        Some(Frame::Map {
                            key: Some((k, kpos)),
                            ..
                        }) if want_map => {
                            return Err(self.err(kpos, format!("expected a value for key \"{k}\"")))
                        }
                        Some(Frame::Array { items }) if !want_map => Value::Array(items),
                        _ => return Err(self.err(pos, "unbalanced map or array end")),
                    };
                    self.set_value(Node { value, pos: start })?;
                }
                ItemKind::String => self.set_value(Node {
                    value: Value::String(it.val),
                    pos,
                })?,
                ItemKind::Integer => {
                    let n = parse_integer(&it.val).map_err(|m| self.err(pos.clone(), m))?;
                    self.set_value(Node {
                        value: Value::Integer(n),
                        pos,
                    })?
                }
                ItemKind::Float => {
                    let f = parse_float(&it.val).map_err(|m| self.err(pos.clone(), m))?;
                    self.set_value(Node {
                        value: Value::Float(f),
                        pos,
                    })?
                }
                ItemKind::Bool => {
                    let b = match it.val.to_ascii_lowercase().as_str() {
                        "true" | "yes" | "on" => true,
                        "false" | "no" | "off" => false,
                        _ => {
                            return Err(self
                                .err(pos, format!("expected boolean value, but got '{}'", it.val)))
                        }
                    };
                    self.set_value(Node {
                        value: Value::Bool(b),
                        pos,
                    })?
                }
                ItemKind::Datetime => {
                    let dt = parse_datetime(&it.val).ok_or_else(|| {
                        self.err(
                            pos.clone(),
                            format!("expected Zulu formatted DateTime, but got '{}'", it.val),
                        )
                    })?;
                    self.set_value(Node {
                        value: Value::Datetime(dt),
                        pos,
                    })?
                }
                ItemKind::Variable => {
                    let node = self.lookup_variable(&it.val, pos)?;
                    self.set_value(node)?
                }
                ItemKind::Include => self.include(&it.val, pos)?,
            }
        }
        if self.stack.len() != 1 {
            let at = self.pos(data.len());
            return Err(self.err(at, "Unexpected EOF."));
        }
        match self.stack.pop() {
            Some(Frame::Map { map, key: None }) => Ok(map),
            // A JSON-style file `{ "port": 4222 }` ends with `}` lexed as a
            // key without a value; nats-server drops it, and so do we.
            Some(Frame::Map {
                map,
                key: Some((k, _)),
            }) if k == "}" => Ok(map),
            Some(Frame::Map {
                key: Some((k, kpos)),
                ..
            }) => Err(self.err(kpos, format!("expected a value for key \"{k}\""))),
            _ => Err(self.err(self.pos(data.len()), "Unexpected EOF.")),
        }
    }

    fn set_value(&mut self, node: Node) -> Result<(), ParseError> {
        match self.stack.last_mut() {
            Some(Frame::Array { items }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map { map, key }) => match key.take() {
                Some((key, key_pos)) => {
                    map.insert(Entry {
                        key,
                        key_pos,
                        value: node,
                        used_as_variable: false,
                    });
                    Ok(())
                }
                None => Err(self.err(node.pos, "value without a key")),
            },
            None => Err(self.err(node.pos, "value outside of any map")),
        }
    }

    fn lookup_variable(&mut self, name: &str, pos: Pos) -> Result<Node, ParseError> {
        // A bare bcrypt hash such as `$2a$11$...` is a password, not a variable.
        if name.starts_with("2a$") {
            return Ok(Node {
                value: Value::String(format!("${name}")),
                pos,
            });
        }
        for frame in self.stack.iter_mut().rev() {
            if let Frame::Map { map, .. } = frame {
                if let Some(e) = map.get_mut(name) {
                    e.used_as_variable = true;
                    let mut node = e.value.clone();
                    relocate(&mut node, &pos);
                    return Ok(node);
                }
            }
        }
        let Some(raw) = self.source.env_var(name) else {
            return Err(self.err(
                pos,
                format!("variable reference for '{name}' can not be found"),
            ));
        };
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(self.err(
                pos,
                format!("variable reference for '{name}' could not be parsed: nested too deep"),
            ));
        }
        // nats-server parses the environment value as the value of a key
        // `pk`, so `4222` becomes an integer and `'x'` a string.
        let src = format!("pk={raw}");
        let parsed = parse_at_depth(src.as_bytes(), None, self.source, self.depth + 1);
        match parsed {
            Ok(m) => match m.get("pk") {
                Some(e) => {
                    let mut node = e.value.clone();
                    relocate(&mut node, &pos);
                    Ok(node)
                }
                None => Err(self.err(
                    pos,
                    format!("variable reference for '{name}' can not be found"),
                )),
            },
            Err(e) => Err(self.err(
                pos,
                format!(
                    "variable reference for '{name}' could not be parsed: {}",
                    e.message
                ),
            )),
        }
    }

    fn include(&mut self, name: &str, pos: Pos) -> Result<(), ParseError> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(self.err(
                pos,
                format!(
                    "error parsing include file '{name}', includes nested deeper than {MAX_INCLUDE_DEPTH}"
                ),
            ));
        }
        // parse.go: ParseFile(filepath.Join(p.fp, it.val)); Join cleans the path, which is
        // then the name in the read error and in the included file's positions.
        let path = clean_path(&self.dir.join(name));
        let data = self.source.read_file(&path).map_err(|e| {
            let shown = path.display().to_string();
            let why = if e.kind() == std::io::ErrorKind::IsADirectory {
                // os.ReadFile opens a directory fine and fails reading it.
                super::go_io_error("read", &shown, &e)
            } else {
                super::go_io_error("open", &shown, &e)
            };
            self.err(
                pos.clone(),
                format!("error parsing include file '{name}', {why}"),
            )
        })?;
        let included = parse_at_depth(&data, Some(path), self.source, self.depth + 1)?;
        match self.stack.last_mut() {
            Some(Frame::Map { map, key: None }) => {
                for entry in included.entries() {
                    map.insert(entry.clone());
                }
                Ok(())
            }
            _ => Err(self.err(pos, "include is only allowed where a key may appear")),
        }
    }
}

/// Go's `filepath.Clean` on Unix, lexically: drops `.` components and empty ones, folds
/// `x/..`, keeps leading `..` of a relative path, and `/..` stays `/`.
fn clean_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// Give a value copied from a variable the position of the reference.
fn relocate(node: &mut Node, pos: &Pos) {
    node.pos = pos.clone();
    match &mut node.value {
        Value::Array(items) => items.iter_mut().for_each(|n| relocate(n, pos)),
        Value::Map(_) => {}
        _ => {}
    }
}

fn parse_integer(s: &str) -> Result<i64, String> {
    let digits_end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '-'))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let num: i64 = s[..digits_end]
        .parse()
        .map_err(|e: std::num::ParseIntError| {
            use std::num::IntErrorKind::{NegOverflow, PosOverflow};
            if matches!(e.kind(), PosOverflow | NegOverflow) {
                format!("integer '{s}' is out of the range")
            } else {
                format!("expected integer, but got '{s}'")
            }
        })?;
    // Size suffixes as in nats-server parse.go: k/m/g/t/p/e are powers of
    // 1000, with a trailing b, i or ib they are powers of 1024.
    let suffix = s[digits_end..].trim().to_ascii_lowercase();
    let (base, rest): (i64, &str) = match suffix.as_str() {
        "" => return Ok(num),
        s if s.len() == 1 => (1000, s),
        s if matches!(&s[1..], "b" | "i" | "ib") => (1024, &s[..1]),
        _ => return Err(format!("invalid size suffix in '{s}'")),
    };
    let exp = match rest {
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        "e" => 6,
        _ => return Err(format!("invalid size suffix in '{s}'")),
    };
    base.checked_pow(exp)
        .and_then(|mult| num.checked_mul(mult))
        .ok_or_else(|| format!("integer '{s}' is out of the range"))
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        Ok(_) => Err(format!("float '{s}' is out of the range")),
        Err(_) => Err(format!("expected float, but got '{s}'")),
    }
}

fn parse_datetime(s: &str) -> Option<Datetime> {
    let b = s.as_bytes();
    if b.len() != 20 {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u16> { s.get(from..to)?.parse().ok() };
    let dt = Datetime {
        year: num(0, 4)?,
        month: num(5, 7)? as u8,
        day: num(8, 10)? as u8,
        hour: num(11, 13)? as u8,
        minute: num(14, 16)? as u8,
        second: num(17, 19)? as u8,
    };
    let leap =
        (dt.year.is_multiple_of(4) && !dt.year.is_multiple_of(100)) || dt.year.is_multiple_of(400);
    let days = match dt.month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    let ok = (1..=days).contains(&dt.day) && dt.hour < 24 && dt.minute < 60 && dt.second < 60;
    ok.then_some(dt)
}

/// Byte offset -> 1-based (line, column in bytes).
struct LineIndex {
    starts: Vec<usize>,
    data_len: usize,
}

impl LineIndex {
    fn new(data: &[u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(
            data.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex {
            starts,
            data_len: data.len(),
        }
    }

    /// 1-based line and column of `offset`. Columns count bytes, as nats-server's lexer
    /// does (conf/lex.go positions are byte offsets), and cost O(log lines): counting
    /// characters from the line start made a config with one long line (minified JSON)
    /// quadratic in its length.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.data_len);
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line.saturating_sub(1)];
        (line, offset - start + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_str, NoSource};
    use super::*;
    use std::collections::HashMap;
    use std::io;

    fn get<'m>(m: &'m Map, k: &str) -> &'m Value {
        &m.get(k)
            .unwrap_or_else(|| panic!("no key {k} in {m:?}"))
            .value
            .value
    }

    fn err(src: &str) -> ParseError {
        parse_str(src).expect_err(src)
    }

    #[test]
    fn nesting_is_bounded_instead_of_overflowing_the_stack() {
        let ok = format!("x {}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert!(parse_str(&ok).is_ok());
        let deep = format!("x {}{}", "[".repeat(50_000), "]".repeat(50_000));
        let e = err(&deep);
        assert!(e.message.contains("nested deeper than 1000"), "{e:?}");
        let deep = format!("{}{}", "a { ".repeat(50_000), "}".repeat(50_000));
        assert!(err(&deep).message.contains("nested deeper"));
    }

    #[test]
    fn scalars() {
        let m = parse_str("foo='1'; bar=2.2; baz=true; boo=22").unwrap();
        assert_eq!(get(&m, "foo"), &Value::String("1".into()));
        assert_eq!(get(&m, "bar"), &Value::Float(2.2));
        assert_eq!(get(&m, "baz"), &Value::Bool(true));
        assert_eq!(get(&m, "boo"), &Value::Integer(22));
    }

    #[test]
    fn size_suffixes() {
        let cases = [
            ("1k", 1000),
            ("1K", 1000),
            ("1kb", 1024),
            ("1KB", 1024),
            ("3ki", 3 * 1024),
            ("4KiB", 4 * 1024),
            ("1m", 1_000_000),
            ("2MB", 2 << 20),
            ("64MiB", 64 << 20),
            ("2g", 2_000_000_000),
            ("22GB", 22 << 30),
            ("1t", 1_000_000_000_000),
            ("1TB", 1 << 40),
            ("1p", 1_000_000_000_000_000),
            ("1PiB", 1 << 50),
            ("1e", 1_000_000_000_000_000_000),
            ("1EB", 1 << 60),
            ("-2k", -2000),
        ];
        for (src, want) in cases {
            let m = parse_str(&format!("v = {src}")).unwrap();
            assert_eq!(get(&m, "v"), &Value::Integer(want), "{src}");
        }
        assert!(err("v = 9223372036854775808")
            .message
            .contains("out of the range"));
        assert!(err("v = 9EB").message.contains("out of the range"));
        assert!(err("v = 1kbb").message.contains("invalid size suffix"));
    }

    #[test]
    fn booleans_any_case() {
        for (s, b) in [
            ("true", true),
            ("TRUE", true),
            ("Yes", true),
            ("on", true),
            ("false", false),
            ("NO", false),
            ("Off", false),
        ] {
            let m = parse_str(&format!("v: {s}")).unwrap();
            assert_eq!(get(&m, "v"), &Value::Bool(b));
        }
    }

    #[test]
    fn nested_maps_arrays_comments() {
        let src = "
# comment
foo  {
  // another
  host {
    ip   = '127.0.0.1'
    port = 4242
  }
  servers = [ \"a.com\", \"b.com\", \"c.com\"] # trailing
}
array [
  { abc: 123 }
  { xyz: \"word\" }
]
";
        let m = parse_str(src).unwrap();
        let Value::Map(foo) = get(&m, "foo") else {
            panic!()
        };
        let Value::Map(host) = get(foo, "host") else {
            panic!()
        };
        assert_eq!(get(host, "port"), &Value::Integer(4242));
        let Value::Array(servers) = get(foo, "servers") else {
            panic!()
        };
        assert_eq!(servers.len(), 3);
        let Value::Array(arr) = get(&m, "array") else {
            panic!()
        };
        let Value::Map(first) = &arr[0].value else {
            panic!()
        };
        assert_eq!(get(first, "abc"), &Value::Integer(123));
        assert_eq!(
            m.get("foo").unwrap().key_pos,
            Pos {
                file: None,
                line: 3,
                col: 1
            }
        );
        assert_eq!(
            host.get("port").unwrap().key_pos,
            Pos {
                file: None,
                line: 7,
                col: 5
            }
        );
        assert_eq!(
            servers[1].pos,
            Pos {
                file: None,
                line: 9,
                col: 25
            }
        );
    }

    #[test]
    fn block_and_raw_strings() {
        let m = parse_str("text = 'multi\nline'\nblock = (\n  a\n  b\n)\n").unwrap();
        assert_eq!(get(&m, "text"), &Value::String("multi\nline".into()));
        assert_eq!(get(&m, "block"), &Value::String("\n  a\n  b\n".into()));
    }

    #[test]
    fn datetime() {
        let m = parse_str("now = 2016-05-04T18:53:41Z").unwrap();
        assert_eq!(
            get(&m, "now").clone(),
            Value::Datetime(Datetime {
                year: 2016,
                month: 5,
                day: 4,
                hour: 18,
                minute: 53,
                second: 41
            })
        );
        assert!(err("now = 2016-02-30T18:53:41Z").message.contains("Zulu"));
    }

    #[test]
    fn variables_scope_then_env() {
        let src = "index = 22\nnest {\n  index = 11\n  foo = $index\n}\nbar = $index\n";
        let m = parse_str(src).unwrap();
        let Value::Map(nest) = get(&m, "nest") else {
            panic!()
        };
        assert_eq!(get(nest, "foo"), &Value::Integer(11));
        assert_eq!(get(&m, "bar"), &Value::Integer(22));
        assert!(m.get("index").unwrap().used_as_variable);

        let e = err("a = 1\nfoo = $nope");
        assert_eq!(
            e.to_string(),
            "2:7: variable reference for 'nope' can not be found"
        );

        let m = parse_str("password: $2a$11$ooo").unwrap();
        assert_eq!(get(&m, "password"), &Value::String("$2a$11$ooo".into()));
    }

    struct Mem {
        files: HashMap<PathBuf, String>,
        env: HashMap<String, String>,
    }

    impl Source for Mem {
        fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
            self.files
                .get(path)
                .map(|s| s.clone().into_bytes())
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
        }
        fn env_var(&self, name: &str) -> Option<String> {
            self.env.get(name).cloned()
        }
    }

    #[test]
    fn env_values_are_parsed() {
        let src = Mem {
            files: HashMap::new(),
            env: HashMap::from([
                ("NUM".to_string(), "4222".to_string()),
                ("STR".to_string(), "'3xyz'".to_string()),
                ("LOOP".to_string(), "$LOOP".to_string()),
            ]),
        };
        let m = parse(b"a = $NUM\nb = $STR", None, &src).unwrap();
        assert_eq!(get(&m, "a"), &Value::Integer(4222));
        assert_eq!(get(&m, "b"), &Value::String("3xyz".into()));
        let e = parse(b"a = $LOOP", None, &src).unwrap_err();
        assert!(e.message.contains("nested too deep"), "{e}");
    }

    #[test]
    fn includes_relative_and_bounded() {
        let src = Mem {
            files: HashMap::from([
                (
                    PathBuf::from("/etc/b/inc/users.conf"),
                    "U = alice\nnested { include 'deeper.conf' }\n".to_string(),
                ),
                (
                    PathBuf::from("/etc/b/inc/deeper.conf"),
                    "x = 1\n".to_string(),
                ),
                (
                    PathBuf::from("/etc/b/self.conf"),
                    "include self.conf\n".to_string(),
                ),
                (PathBuf::from("/etc/b/bad.conf"), "x = [\n".to_string()),
            ]),
            env: HashMap::new(),
        };
        let main = b"auth {\n  include 'inc/users.conf'\n  user = $U\n}\n";
        let m = parse(main, Some(Path::new("/etc/b/main.conf")), &src).unwrap();
        let Value::Map(auth) = get(&m, "auth") else {
            panic!()
        };
        assert_eq!(get(auth, "user"), &Value::String("alice".into()));
        let Value::Map(nested) = get(auth, "nested") else {
            panic!()
        };
        assert_eq!(get(nested, "x"), &Value::Integer(1));
        assert_eq!(
            nested.get("x").unwrap().key_pos.to_string(),
            "/etc/b/inc/deeper.conf:1:0"
        );

        assert_eq!(
            clean_path(Path::new("/etc/b/./inc/../x.conf")),
            PathBuf::from("/etc/b/x.conf")
        );
        assert_eq!(clean_path(Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(
            clean_path(Path::new("../a/../../b")),
            PathBuf::from("../../b")
        );
        assert_eq!(clean_path(Path::new("a/..")), PathBuf::from("."));
        let e = parse(
            b"include self.conf",
            Some(Path::new("/etc/b/main.conf")),
            &src,
        )
        .unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        let e = parse(
            b"\n include missing.conf",
            Some(Path::new("/etc/b/main.conf")),
            &src,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/b/main.conf:2:10: error parsing include file 'missing.conf'"),
            "{e}"
        );
        let e = parse(
            b"include bad.conf",
            Some(Path::new("/etc/b/main.conf")),
            &src,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("/etc/b/bad.conf:2:1:"), "{e}");
        assert!(parse(b"include x.conf", None, &NoSource).is_err());
    }

    #[test]
    fn error_positions() {
        let e = err("port = 4222\nx = \"abc\n");
        assert_eq!(e.message, "Unexpected EOF.");
        let e = err("a = 1\nb = 2 c");
        assert_eq!(e.pos.line, 2);
        assert_eq!(e.pos.col, 7);
        assert!(e.message.starts_with("Expected a top-level value to end"));
        let e = err("a {\n  b = [1, 2\n");
        assert_eq!(e.pos.line, 3);
        // As in nats-server, a key followed by nothing on its line is an empty string.
        assert_eq!(
            get(&parse_str("a = ").unwrap(), "a"),
            &Value::String(String::new())
        );
        assert_eq!(err("lonely").message, "expected a value for key \"lonely\"");
        let m = parse_str("{\n  \"port\": 4222,\n  \"debug\": true\n}\n").unwrap();
        assert_eq!(get(&m, "port"), &Value::Integer(4222));
    }

    #[test]
    fn later_definition_wins() {
        let m = parse_str("a = 1\nb = 2\na = 3").unwrap();
        assert_eq!(get(&m, "a"), &Value::Integer(3));
        assert_eq!(m.len(), 2);
    }
}
