//! The value states of the lexer (strings, blocks, numbers, datetimes),
//! split from `lex.rs` to keep files small. Same origin: nats-server 2.9.10
//! `conf/lex.go` (`lexValue`, `lexString`, `lexBlock`, `lexNumber...`).

use super::{is_nl, is_ws, show, ItemKind, Lexer, State, EOF};

impl Lexer<'_> {
    /// States entered once a value starts.
    pub(super) fn step_value(&mut self, st: State) -> Option<State> {
        use State as S;
        match st {
            S::Value => self.lex_value(),
            S::QuotedString => {
                let r = self.next();
                if r == '\'' {
                    self.backup();
                    self.emit(ItemKind::String);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                if r == EOF {
                    return self.eof_or_error();
                }
                Some(S::QuotedString)
            }
            S::DubQuotedString => {
                let r = self.next();
                match r {
                    '\\' => {
                        self.add_current_part(1);
                        Some(S::StringEscape)
                    }
                    '"' => {
                        self.backup();
                        self.emit(ItemKind::String);
                        self.next();
                        self.ignore();
                        self.pop()
                    }
                    EOF => self.eof_or_error(),
                    _ => Some(S::DubQuotedString),
                }
            }
            S::String => {
                let r = self.next();
                if r == '\\' {
                    self.add_current_part(1);
                    return Some(S::StringEscape);
                }
                if is_nl(r) || r == EOF || r == ';' || r == ',' || r == ']' || r == '}' || is_ws(r)
                {
                    self.backup();
                    if self.has_parts {
                        self.emit(ItemKind::String);
                    } else if self.is_bool() {
                        self.emit(ItemKind::Bool);
                    } else if self.is_variable() {
                        self.emit(ItemKind::Variable);
                    } else {
                        self.emit(ItemKind::String);
                    }
                    return self.pop();
                }
                if r == '\'' {
                    self.backup();
                    self.emit(ItemKind::String);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                Some(S::String)
            }
            S::Block => self.lex_block(),
            S::StringEscape => {
                let r = self.next();
                match r {
                    'x' => Some(S::StringBinary),
                    't' => self.add_part(b"\t"),
                    'n' => self.add_part(b"\n"),
                    'r' => self.add_part(b"\r"),
                    '"' => self.add_part(b"\""),
                    '\\' => self.add_part(b"\\"),
                    _ => self.errorf(format!(
                        "Invalid escape character '{}'. Only the following escape characters are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.",
                        show(r)
                    )),
                }
            }
            S::StringBinary => {
                let eol = "Expected two hexadecimal digits after '\\x', but hit end of line";
                if is_nl(self.next()) || is_nl(self.next()) {
                    return self.errorf(eol.to_string());
                }
                let from = self.pos.saturating_sub(2);
                let hex = &self.input[from..self.pos];
                match (hex.first().and_then(hex_val), hex.get(1).and_then(hex_val)) {
                    (Some(hi), Some(lo)) if hex.len() == 2 => {
                        self.add_part(&[hi << 4 | lo]);
                        Some(self.string_state)
                    }
                    _ => {
                        let got = String::from_utf8_lossy(hex).into_owned();
                        self.errorf(format!(
                            "Expected two hexadecimal digits after '\\x', but got '{got}'"
                        ))
                    }
                }
            }
            S::NumberOrDateOrStringOrIpStart | S::NegNumberStart => {
                let r = self.next();
                if !r.is_ascii_digit() {
                    if r == '.' {
                        return self.errorf("Floats must start with a digit, not '.'.".to_string());
                    }
                    return self.errorf(format!("Expected a digit but got '{}'.", show(r)));
                }
                if st == S::NegNumberStart {
                    Some(S::NegNumber)
                } else {
                    Some(S::NumberOrDateOrStringOrIp)
                }
            }
            S::NumberOrDateOrStringOrIp => {
                let r = self.next();
                if r == '-' {
                    if self.pos - self.start != 5 {
                        return self
                            .errorf("All ISO8601 dates must be in full Zulu form.".to_string());
                    }
                    return Some(S::DateAfterYear);
                }
                if r.is_ascii_digit() {
                    return Some(S::NumberOrDateOrStringOrIp);
                }
                if r == '.' {
                    return Some(S::FloatStart);
                }
                if is_number_suffix(r) {
                    return Some(S::ConvenientNumber);
                }
                if !ends_number(r) {
                    // Not a number after all: a bare string starting with digits.
                    self.string_state = S::String;
                    return Some(S::String);
                }
                self.backup();
                self.emit(ItemKind::Integer);
                self.pop()
            }
            S::ConvenientNumber => {
                let r = self.next();
                if matches!(r, 'b' | 'B' | 'i' | 'I') {
                    return Some(S::ConvenientNumber);
                }
                self.backup();
                if ends_number(r) || r.is_ascii_digit() {
                    self.emit(ItemKind::Integer);
                    return self.pop();
                }
                self.string_state = S::String;
                Some(S::String)
            }
            S::DateAfterYear => {
                // "YYYY-" has been read; the rest must be "MM-DDTHH:MM:SSZ".
                for f in "00-00T00:00:00Z".chars() {
                    let r = self.next();
                    if f == '0' {
                        if !r.is_ascii_digit() {
                            return self.errorf(format!(
                                "Expected digit in ISO8601 datetime, but found '{}' instead.",
                                show(r)
                            ));
                        }
                    } else if f != r {
                        return self.errorf(format!(
                            "Expected '{f}' in ISO8601 datetime, but found '{}' instead.",
                            show(r)
                        ));
                    }
                }
                self.emit(ItemKind::Datetime);
                self.pop()
            }
            S::NegNumber => {
                let r = self.next();
                if r.is_ascii_digit() {
                    return Some(S::NegNumber);
                }
                if r == '.' {
                    return Some(S::FloatStart);
                }
                if is_number_suffix(r) {
                    return Some(S::ConvenientNumber);
                }
                self.backup();
                self.emit(ItemKind::Integer);
                self.pop()
            }
            S::FloatStart => {
                let r = self.next();
                if !r.is_ascii_digit() {
                    return self.errorf(format!(
                        "Floats must have a digit after the '.', but got '{}' instead.",
                        show(r)
                    ));
                }
                Some(S::Float)
            }
            S::Float => {
                let r = self.next();
                if r.is_ascii_digit() {
                    return Some(S::Float);
                }
                if r == '.' {
                    // A second dot: this is an IP address, not a float.
                    return Some(S::IpAddr);
                }
                self.backup();
                self.emit(ItemKind::Float);
                self.pop()
            }
            S::IpAddr => {
                let r = self.next();
                if r.is_ascii_digit() || matches!(r, '.' | ':' | '-') {
                    return Some(S::IpAddr);
                }
                self.backup();
                self.emit(ItemKind::String);
                self.pop()
            }
            S::CommentStart => {
                self.ignore();
                self.emit(ItemKind::CommentStart);
                Some(S::Comment)
            }
            S::Comment => {
                let r = self.peek();
                if is_nl(r) || r == EOF {
                    self.emit(ItemKind::Text);
                    return self.pop();
                }
                self.next();
                Some(S::Comment)
            }
            _ => self.errorf(format!("BUG in lexer: unhandled state {st:?}")),
        }
    }

    fn lex_value(&mut self) -> Option<State> {
        use State as S;
        // White space may precede a value, new lines may not (Go `lexValue`).
        let r = self.next();
        if is_ws(r) {
            self.ignore();
            return Some(S::Value);
        }
        match r {
            '[' => {
                self.ignore();
                self.emit(ItemKind::ArrayStart);
                Some(S::ArrayValue)
            }
            '{' => {
                self.ignore();
                self.emit(ItemKind::MapStart);
                Some(S::MapKeyStart)
            }
            '\'' => {
                self.ignore();
                Some(S::QuotedString)
            }
            '"' => {
                self.ignore();
                self.string_state = S::DubQuotedString;
                Some(S::DubQuotedString)
            }
            '-' => Some(S::NegNumberStart),
            '(' => {
                self.ignore();
                Some(S::Block)
            }
            c if c.is_ascii_digit() => {
                self.backup();
                Some(S::NumberOrDateOrStringOrIpStart)
            }
            '.' => self.errorf("Floats must start with a digit".to_string()),
            c if is_nl(c) => self.errorf("Expected value but found new line".to_string()),
            _ => {
                self.backup();
                self.string_state = S::String;
                Some(S::String)
            }
        }
    }

    /// A block `( ... )` runs until a `)` alone on its line (Go `lexBlock`).
    fn lex_block(&mut self) -> Option<State> {
        use State as S;
        let r = self.next();
        if r == EOF {
            return self.errorf("Unexpected EOF processing block.".to_string());
        }
        if r != ')' {
            return Some(S::Block);
        }
        // Look at the rune before ')': it must be a new line.
        self.backup();
        self.backup();
        if self.next() != '\n' {
            self.next();
            return Some(S::Block);
        }
        self.next();
        // And the rune after it must be a new line or the end of input.
        let after = self.next();
        if after == '\n' || after == EOF {
            self.backup();
            self.backup();
            self.emit(ItemKind::String);
            self.next();
            self.ignore();
            return self.pop();
        }
        self.backup();
        Some(S::Block)
    }
}

fn is_number_suffix(r: char) -> bool {
    matches!(
        r,
        'k' | 'K' | 'm' | 'M' | 'g' | 'G' | 't' | 'T' | 'p' | 'P' | 'e' | 'E'
    )
}

/// Runes that end an integer (Go's list; note `]` is not in it).
fn ends_number(r: char) -> bool {
    is_nl(r) || r == EOF || r == '}' || r == ';' || r == ',' || is_ws(r)
}

fn hex_val(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
