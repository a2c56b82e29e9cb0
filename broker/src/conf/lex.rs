//! Lexer for nats-server's configuration format.
//!
//! This is a re-implementation of the state machine in nats-server 2.9.10
//! `conf/lex.go` (itself derived from BurntSushi's TOML lexer). The states,
//! the characters that end a value and the error texts follow the Go code on
//! purpose: a file that nats-server accepts must lex to the same items here,
//! including its odd corners (e.g. a lone `/` between values is skipped, `1k`
//! is an integer with a suffix but `1kx` is a string).
//!
//! Differences from Go, all deliberate:
//! - Positions are byte offsets of the item start; the parser turns them into
//!   1-based line/column (Go reports column 0 on the first line).
//! - Digits are ASCII digits only (Go's `unicode.IsDigit` also takes other
//!   scripts' digits and then fails to parse them as integers).
//! - Invalid UTF-8 is decoded as U+FFFD one byte at a time, like Go's
//!   `utf8.DecodeRune`; item values are converted lossily to `String`.
//! - A step budget guarantees termination even if a state failed to make
//!   progress (the Go lexer relies on every state consuming input).

use std::collections::VecDeque;

mod value_states;

/// Go's lexer uses rune 0 for end of input; a literal NUL byte in the input
/// therefore behaves like end of input in most states, and we keep that.
const EOF: char = '\0';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemKind {
    Error,
    Eof,
    Key,
    Text,
    String,
    Bool,
    Integer,
    Float,
    Datetime,
    ArrayStart,
    ArrayEnd,
    MapStart,
    MapEnd,
    CommentStart,
    Variable,
    Include,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub kind: ItemKind,
    pub val: String,
    /// Byte offset where the item starts (for errors: the offending character).
    pub offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Top,
    TopValueEnd,
    KeyStart,
    DubQuotedKey,
    QuotedKey,
    IncludeStart,
    IncludeQuotedString,
    IncludeDubQuotedString,
    IncludeString,
    Include,
    Key,
    KeyEnd,
    Value,
    ArrayValue,
    ArrayValueEnd,
    ArrayEnd,
    MapKeyStart,
    MapQuotedKey,
    MapDubQuotedKey,
    MapKey,
    MapKeyEnd,
    MapValue,
    MapValueEnd,
    MapEnd,
    QuotedString,
    DubQuotedString,
    String,
    Block,
    StringEscape,
    StringBinary,
    NumberOrDateOrStringOrIpStart,
    NumberOrDateOrStringOrIp,
    ConvenientNumber,
    DateAfterYear,
    NegNumberStart,
    NegNumber,
    FloatStart,
    Float,
    IpAddr,
    CommentStart,
    Comment,
}

pub(crate) struct Lexer<'a> {
    input: &'a [u8],
    start: usize,
    pos: usize,
    width: usize,
    /// Start of the item being lexed, for its reported position. Unlike
    /// `start` it does not move when escaped string parts are collected.
    item_start: usize,
    /// Offset of the rune most recently returned by `next`.
    last_rune: usize,
    state: Option<State>,
    stack: Vec<State>,
    /// Escaped parts of the string being lexed (Go `stringParts`).
    parts: Vec<u8>,
    has_parts: bool,
    /// State to return to after an escape sequence (Go `stringStateFn`).
    string_state: State,
    items: VecDeque<Item>,
    steps_left: usize,
    done: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Lexer {
            input,
            start: 0,
            pos: 0,
            width: 0,
            item_start: 0,
            last_rune: 0,
            state: Some(State::Top),
            stack: Vec::with_capacity(8),
            parts: Vec::new(),
            has_parts: false,
            string_state: State::String,
            items: VecDeque::with_capacity(4),
            // Every state either consumes a rune or moves to a state that
            // does; a few states are entered twice per rune. The budget is
            // far above any real need and only stops a runaway loop.
            steps_left: input.len().saturating_mul(16).saturating_add(1024),
            done: false,
        }
    }

    /// The next item; after an `Error` or `Eof` item it keeps returning `Eof`.
    pub(crate) fn next_item(&mut self) -> Item {
        loop {
            if let Some(item) = self.items.pop_front() {
                if matches!(item.kind, ItemKind::Error | ItemKind::Eof) {
                    self.done = true;
                    self.items.clear();
                }
                return item;
            }
            if self.done {
                return Item {
                    kind: ItemKind::Eof,
                    val: String::new(),
                    offset: self.pos,
                };
            }
            match self.state {
                Some(st) => {
                    if self.steps_left == 0 {
                        self.state = self.errorf("lexer made no progress".to_string());
                        continue;
                    }
                    self.steps_left -= 1;
                    self.state = self.step(st);
                }
                None => {
                    // A state stopped without emitting: treat as end of input.
                    self.done = true;
                }
            }
        }
    }

    fn decode(&self, at: usize) -> (char, usize) {
        let b0 = self.input[at];
        if b0 < 0x80 {
            return (b0 as char, 1);
        }
        let len = match b0 {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return (char::REPLACEMENT_CHARACTER, 1),
        };
        let end = at + len;
        if end <= self.input.len() {
            if let Ok(s) = std::str::from_utf8(&self.input[at..end]) {
                if let Some(c) = s.chars().next() {
                    return (c, len);
                }
            }
        }
        (char::REPLACEMENT_CHARACTER, 1)
    }

    fn next(&mut self) -> char {
        self.last_rune = self.pos;
        if self.pos >= self.input.len() {
            self.width = 0;
            return EOF;
        }
        let (c, w) = self.decode(self.pos);
        self.width = w;
        self.pos += w;
        c
    }

    /// Step back one rune; like Go it reuses the width of the last `next`.
    fn backup(&mut self) {
        self.pos = self.pos.saturating_sub(self.width);
    }

    fn peek(&mut self) -> char {
        let r = self.next();
        self.backup();
        r
    }

    fn ignore(&mut self) {
        self.start = self.pos;
        self.item_start = self.pos;
    }

    fn push(&mut self, st: State) {
        self.stack.push(st);
    }

    fn pop(&mut self) -> Option<State> {
        match self.stack.pop() {
            Some(st) => Some(st),
            None => self.errorf("BUG in lexer: no states to pop.".to_string()),
        }
    }

    fn current(&self) -> &'a [u8] {
        let end = self.pos.max(self.start).min(self.input.len());
        let start = self.start.min(end);
        &self.input[start..end]
    }

    fn emit(&mut self, kind: ItemKind) {
        let mut bytes = std::mem::take(&mut self.parts);
        self.has_parts = false;
        bytes.extend_from_slice(self.current());
        self.items.push_back(Item {
            kind,
            val: String::from_utf8_lossy(&bytes).into_owned(),
            offset: self.item_start,
        });
        self.start = self.pos;
        self.item_start = self.pos;
    }

    fn add_current_part(&mut self, offset: usize) {
        let end = self.pos.saturating_sub(offset).max(self.start);
        let chunk = &self.input[self.start.min(end)..end];
        self.parts.extend_from_slice(chunk);
        self.has_parts = true;
        self.start = self.pos;
    }

    fn add_part(&mut self, s: &[u8]) -> Option<State> {
        self.parts.extend_from_slice(s);
        self.has_parts = true;
        self.start = self.pos;
        Some(self.string_state)
    }

    fn errorf(&mut self, msg: String) -> Option<State> {
        self.items.push_back(Item {
            kind: ItemKind::Error,
            val: msg,
            offset: self.last_rune.min(self.input.len()),
        });
        None
    }

    fn eof_or_error(&mut self) -> Option<State> {
        if self.pos > self.start {
            return self.errorf("Unexpected EOF.".to_string());
        }
        self.emit(ItemKind::Eof);
        None
    }

    /// Go `keyCheckKeyword`: a key followed by white space may be `include`.
    fn key_check_keyword(&mut self, fall_through: State, push: Option<State>) -> Option<State> {
        if self.current().eq_ignore_ascii_case(b"include") {
            self.ignore();
            if let Some(p) = push {
                self.push(p);
            }
            return Some(State::IncludeStart);
        }
        self.emit(ItemKind::Key);
        Some(fall_through)
    }

    fn is_bool(&self) -> bool {
        let s = self.current().to_ascii_lowercase();
        matches!(
            s.as_slice(),
            b"true" | b"false" | b"on" | b"off" | b"yes" | b"no"
        )
    }

    fn is_variable(&mut self) -> bool {
        if self.start < self.input.len() && self.input[self.start] == b'$' {
            self.start += 1;
            return true;
        }
        false
    }

    fn step(&mut self, st: State) -> Option<State> {
        use State as S;
        match st {
            S::Top => {
                let r = self.next();
                if r.is_whitespace() {
                    self.ignore();
                    return Some(S::Top);
                }
                match r {
                    '{' => {
                        self.ignore();
                        Some(S::Top)
                    }
                    '#' => {
                        self.push(S::Top);
                        Some(S::CommentStart)
                    }
                    '/' => {
                        if self.next() == '/' {
                            self.push(S::Top);
                            return Some(S::CommentStart);
                        }
                        self.backup();
                        self.eof_or_error()
                    }
                    EOF => self.eof_or_error(),
                    _ => {
                        self.backup();
                        self.push(S::TopValueEnd);
                        Some(S::KeyStart)
                    }
                }
            }
            S::TopValueEnd => {
                let r = self.next();
                match r {
                    '#' => {
                        self.push(S::Top);
                        Some(S::CommentStart)
                    }
                    '/' => {
                        if self.next() == '/' {
                            self.push(S::Top);
                            return Some(S::CommentStart);
                        }
                        // Go falls through into the white space case here.
                        self.backup();
                        Some(S::TopValueEnd)
                    }
                    ' ' | '\t' => Some(S::TopValueEnd),
                    '\n' | '\r' | EOF | ';' | ',' | '}' => {
                        self.ignore();
                        Some(S::Top)
                    }
                    _ => self.errorf(format!(
                        "Expected a top-level value to end with a new line, comment or EOF, but got '{}' instead.",
                        show(r)
                    )),
                }
            }
            S::KeyStart => {
                let r = self.peek();
                if is_key_separator(r) {
                    return self.errorf(format!("Unexpected key separator '{}'", show(r)));
                }
                if r.is_whitespace() {
                    self.next();
                    self.ignore();
                    return Some(S::KeyStart);
                }
                match r {
                    '"' => {
                        self.next();
                        self.ignore();
                        Some(S::DubQuotedKey)
                    }
                    '\'' => {
                        self.next();
                        self.ignore();
                        Some(S::QuotedKey)
                    }
                    _ => {
                        self.ignore();
                        self.next();
                        Some(S::Key)
                    }
                }
            }
            S::DubQuotedKey | S::QuotedKey => {
                let close = if st == S::DubQuotedKey { '"' } else { '\'' };
                let r = self.peek();
                if r == close {
                    self.emit(ItemKind::Key);
                    self.next();
                    self.ignore();
                    return Some(S::KeyEnd);
                }
                if r == EOF {
                    return self.eof_or_error();
                }
                self.next();
                Some(st)
            }
            S::IncludeStart => {
                let r = self.next();
                if is_ws(r) {
                    self.ignore();
                    return Some(S::IncludeStart);
                }
                self.backup();
                Some(S::Include)
            }
            S::IncludeQuotedString | S::IncludeDubQuotedString => {
                let (close, what) = if st == S::IncludeQuotedString {
                    ('\'', "Unexpected EOF in quoted include")
                } else {
                    ('"', "Unexpected EOF in double quoted include")
                };
                let r = self.next();
                if r == close {
                    self.backup();
                    self.emit(ItemKind::Include);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                if r == EOF {
                    return self.errorf(what.to_string());
                }
                Some(st)
            }
            S::IncludeString => {
                let r = self.next();
                if is_nl(r) || r == EOF || r == ';' || r == '}' || is_ws(r) {
                    self.backup();
                    self.emit(ItemKind::Include);
                    return self.pop();
                }
                if r == '\'' {
                    self.backup();
                    self.emit(ItemKind::Include);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                Some(S::IncludeString)
            }
            S::Include => {
                let r = self.next();
                let what = match r {
                    '\'' => {
                        self.ignore();
                        return Some(S::IncludeQuotedString);
                    }
                    '"' => {
                        self.ignore();
                        return Some(S::IncludeDubQuotedString);
                    }
                    '[' => "start of an array",
                    '{' => "start of a map",
                    '(' => "start of a block",
                    '-' => "start of a number",
                    c if c.is_ascii_digit() => "start of a number",
                    '\\' => "escape sequence",
                    c if is_nl(c) => "new line",
                    _ => {
                        self.backup();
                        return Some(S::IncludeString);
                    }
                };
                self.errorf(format!("Expected include value but found {what}"))
            }
            S::Key => {
                let r = self.peek();
                if r.is_whitespace() {
                    return self.key_check_keyword(S::KeyEnd, None);
                }
                if is_key_separator(r) || r == EOF {
                    self.emit(ItemKind::Key);
                    return Some(S::KeyEnd);
                }
                self.next();
                Some(S::Key)
            }
            S::KeyEnd => {
                let r = self.next();
                if r.is_whitespace() {
                    self.ignore();
                    return Some(S::KeyEnd);
                }
                if is_key_separator(r) {
                    self.ignore();
                    return Some(S::Value);
                }
                if r == EOF {
                    self.emit(ItemKind::Eof);
                    return None;
                }
                self.backup();
                Some(S::Value)
            }
            S::ArrayValue => {
                let r = self.next();
                if r.is_whitespace() {
                    self.ignore();
                    return Some(S::ArrayValue);
                }
                match r {
                    '#' => {
                        self.push(S::ArrayValue);
                        Some(S::CommentStart)
                    }
                    '/' | ',' => {
                        if r == '/' {
                            if self.next() == '/' {
                                self.push(S::ArrayValue);
                                return Some(S::CommentStart);
                            }
                            self.backup();
                        }
                        self.errorf("Unexpected array value terminator ','.".to_string())
                    }
                    ']' => Some(S::ArrayEnd),
                    _ => {
                        self.backup();
                        self.push(S::ArrayValueEnd);
                        Some(S::Value)
                    }
                }
            }
            S::ArrayValueEnd => {
                let r = self.next();
                match r {
                    ' ' | '\t' => {
                        self.ignore();
                        Some(S::ArrayValueEnd)
                    }
                    '#' => {
                        self.push(S::ArrayValueEnd);
                        Some(S::CommentStart)
                    }
                    '/' => {
                        if self.next() == '/' {
                            self.push(S::ArrayValueEnd);
                            return Some(S::CommentStart);
                        }
                        self.backup();
                        self.ignore();
                        Some(S::ArrayValue)
                    }
                    ',' | '\n' | '\r' => {
                        self.ignore();
                        Some(S::ArrayValue)
                    }
                    ']' => Some(S::ArrayEnd),
                    _ => self.errorf(format!(
                        "Expected an array value terminator \",\" or an array terminator \"]\", but got '{}' instead.",
                        show(r)
                    )),
                }
            }
            S::ArrayEnd => {
                self.ignore();
                self.emit(ItemKind::ArrayEnd);
                self.pop()
            }
            S::MapKeyStart => self.lex_map_key_start(),
            S::MapQuotedKey | S::MapDubQuotedKey => {
                let (close, what) = if st == S::MapQuotedKey {
                    ('\'', "Unexpected EOF processing quoted map key.")
                } else {
                    ('"', "Unexpected EOF processing double quoted map key.")
                };
                let r = self.peek();
                if r == EOF {
                    return self.errorf(what.to_string());
                }
                if r == close {
                    self.emit(ItemKind::Key);
                    self.next();
                    self.ignore();
                    return Some(S::MapKeyEnd);
                }
                self.next();
                Some(st)
            }
            S::MapKey => {
                let r = self.peek();
                if r == EOF {
                    return self.errorf("Unexpected EOF processing map key.".to_string());
                }
                if r.is_whitespace() {
                    return self.key_check_keyword(S::MapKeyEnd, Some(S::MapValueEnd));
                }
                if is_key_separator(r) {
                    self.emit(ItemKind::Key);
                    return Some(S::MapKeyEnd);
                }
                self.next();
                Some(S::MapKey)
            }
            S::MapKeyEnd => {
                let r = self.next();
                if r.is_whitespace() {
                    self.ignore();
                    return Some(S::MapKeyEnd);
                }
                if is_key_separator(r) {
                    self.ignore();
                    return Some(S::MapValue);
                }
                self.backup();
                Some(S::MapValue)
            }
            S::MapValue => {
                let r = self.next();
                if r.is_whitespace() {
                    self.ignore();
                    return Some(S::MapValue);
                }
                match r {
                    ',' => self.errorf("Unexpected map value terminator \",\".".to_string()),
                    '}' => {
                        self.ignore();
                        Some(S::MapEnd)
                    }
                    _ => {
                        self.backup();
                        self.push(S::MapValueEnd);
                        Some(S::Value)
                    }
                }
            }
            S::MapValueEnd => {
                let r = self.next();
                match r {
                    ' ' | '\t' => {
                        self.ignore();
                        Some(S::MapValueEnd)
                    }
                    '#' => {
                        self.push(S::MapValueEnd);
                        Some(S::CommentStart)
                    }
                    '/' => {
                        if self.next() == '/' {
                            self.push(S::MapValueEnd);
                            return Some(S::CommentStart);
                        }
                        self.backup();
                        self.ignore();
                        Some(S::MapKeyStart)
                    }
                    ';' | ',' | '\n' | '\r' => {
                        self.ignore();
                        Some(S::MapKeyStart)
                    }
                    '}' => {
                        self.ignore();
                        Some(S::MapEnd)
                    }
                    _ => self.errorf(format!(
                        "Expected a map value terminator \",\" or a map terminator \"}}\", but got '{}' instead.",
                        show(r)
                    )),
                }
            }
            S::MapEnd => {
                self.ignore();
                self.emit(ItemKind::MapEnd);
                self.pop()
            }
            _ => self.step_value(st),
        }
    }
    fn lex_map_key_start(&mut self) -> Option<State> {
        use State as S;
        let r = self.peek();
        if is_key_separator(r) {
            return self.errorf(format!("Unexpected key separator '{}'.", show(r)));
        }
        if r == ']' {
            return self.errorf(format!(
                "Unexpected array end '{}' processing map.",
                show(r)
            ));
        }
        if r.is_whitespace() {
            self.next();
            self.ignore();
            return Some(S::MapKeyStart);
        }
        match r {
            '}' => {
                self.next();
                self.ignore();
                return Some(S::MapEnd);
            }
            '#' => {
                self.next();
                self.push(S::MapKeyStart);
                return Some(S::CommentStart);
            }
            '/' => {
                self.next();
                if self.next() == '/' {
                    self.push(S::MapKeyStart);
                    return Some(S::CommentStart);
                }
                // Go backs up one rune and then starts a key at the rune after
                // the '/', which it consumes right away.
                self.backup();
            }
            '\'' => {
                self.next();
                self.ignore();
                return Some(S::MapQuotedKey);
            }
            '"' => {
                self.next();
                self.ignore();
                return Some(S::MapDubQuotedKey);
            }
            EOF => return self.errorf("Unexpected EOF processing map.".to_string()),
            _ => {}
        }
        self.ignore();
        self.next();
        Some(S::MapKey)
    }
}

fn is_key_separator(r: char) -> bool {
    r == '=' || r == ':'
}

fn is_ws(r: char) -> bool {
    r == ' ' || r == '\t'
}

fn is_nl(r: char) -> bool {
    r == '\n' || r == '\r'
}

/// Go's `escapeSpecial`, plus a visible form for the end-of-input rune.
fn show(r: char) -> String {
    match r {
        '\n' => "\\n".to_string(),
        EOF => "EOF".to_string(),
        c => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(src: &str) -> Vec<(ItemKind, String)> {
        let mut lx = Lexer::new(src.as_bytes());
        let mut out = Vec::new();
        loop {
            let it = lx.next_item();
            let end = matches!(it.kind, ItemKind::Eof | ItemKind::Error);
            if !matches!(it.kind, ItemKind::CommentStart | ItemKind::Text) {
                out.push((it.kind, it.val));
            }
            if end {
                return out;
            }
        }
    }

    fn kv(k: &str, kind: ItemKind, v: &str) -> Vec<(ItemKind, String)> {
        vec![(ItemKind::Key, k.to_string()), (kind, v.to_string())]
    }

    #[test]
    fn separators() {
        for src in [
            "foo = bar",
            "foo: bar",
            "foo bar",
            "foo=bar;",
            "  foo\t=\tbar  ",
        ] {
            let mut want = kv("foo", ItemKind::String, "bar");
            want.push((ItemKind::Eof, String::new()));
            assert_eq!(items(src), want, "{src:?}");
        }
    }

    #[test]
    fn number_kinds() {
        use ItemKind as K;
        assert_eq!(items("a=10")[1], (K::Integer, "10".into()));
        assert_eq!(items("a=-10")[1], (K::Integer, "-10".into()));
        assert_eq!(items("a=8k")[1], (K::Integer, "8k".into()));
        assert_eq!(items("a=64MB")[1], (K::Integer, "64MB".into()));
        assert_eq!(items("a=1KiB")[1], (K::Integer, "1KiB".into()));
        assert_eq!(items("a=1kx")[1], (K::String, "1kx".into()));
        assert_eq!(items("a=3xyz")[1], (K::String, "3xyz".into()));
        assert_eq!(items("a=2.5")[1], (K::Float, "2.5".into()));
        assert_eq!(
            items("a=127.0.0.1:4222")[1],
            (K::String, "127.0.0.1:4222".into())
        );
        assert_eq!(
            items("a=2016-05-04T18:53:41Z")[1],
            (K::Datetime, "2016-05-04T18:53:41Z".into())
        );
        assert_eq!(items("a=2016-05-04").last().map(|i| i.0), Some(K::Error));
        assert_eq!(
            items("a=18-ffaa:1:10bf").last().map(|i| i.0),
            Some(K::Error)
        );
    }

    #[test]
    fn bools_and_variables() {
        use ItemKind as K;
        for b in ["true", "FALSE", "Yes", "no", "on", "OFF"] {
            assert_eq!(items(&format!("a={b}"))[1], (K::Bool, b.to_string()));
        }
        assert_eq!(items("a=$FOO")[1], (K::Variable, "FOO".into()));
        assert_eq!(items("a=\"$FOO\"")[1], (K::String, "$FOO".into()));
        assert_eq!(items("a=truth")[1], (K::String, "truth".into()));
    }

    #[test]
    fn strings_and_escapes() {
        use ItemKind as K;
        assert_eq!(
            items(r#"a="x\ty\n\"\\\x41""#)[1],
            (K::String, "x\ty\n\"\\A".into())
        );
        assert_eq!(items(r"a='raw\t'")[1], (K::String, "raw\\t".into()));
        assert_eq!(
            items("a=(\nline 1\nline 2\n)\n")[1],
            (K::String, "\nline 1\nline 2\n".into())
        );
        let e = items(r#"a="\q""#);
        assert_eq!(e[1].0, K::Error);
        assert!(e[1].1.starts_with("Invalid escape character 'q'"), "{e:?}");
    }

    #[test]
    fn include_keyword() {
        use ItemKind as K;
        assert_eq!(items("include 'x.conf'")[0], (K::Include, "x.conf".into()));
        assert_eq!(
            items("INCLUDE \"x.conf\"")[0],
            (K::Include, "x.conf".into())
        );
        assert_eq!(
            items("a { include x.conf }")[2],
            (K::Include, "x.conf".into())
        );
        // Only white space after the word makes it the keyword (as in Go,
        // `include = x` includes a file named "=").
        assert_eq!(items("include= 1")[0], (K::Key, "include".into()));
        assert_eq!(items("include = 1")[0], (K::Include, "=".into()));
    }

    #[test]
    fn error_offsets_point_at_offending_rune() {
        let mut lx = Lexer::new(b"a = 1 b");
        let _ = lx.next_item();
        let _ = lx.next_item();
        let e = lx.next_item();
        assert_eq!(e.kind, ItemKind::Error);
        assert_eq!(e.offset, 6);
    }

    #[test]
    fn terminates_on_garbage() {
        for src in [
            "A@@Føøøø?˛ø:{øøøø˙˙",
            "include \"9/\u{fffd}",
            "a=(\n)",
            "{{{{",
            "]]]",
            "a=\"\\x",
        ] {
            let v = items(src);
            assert!(matches!(
                v.last().map(|i| i.0),
                Some(ItemKind::Eof | ItemKind::Error)
            ));
        }
    }
}
