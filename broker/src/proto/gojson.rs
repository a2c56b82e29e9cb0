//! The syntax errors of Go's `encoding/json`, which nats-server logs as they are when a
//! CONNECT carries bad JSON (`invalid character 'b' looking for beginning of object key
//! string`). `json.Unmarshal` checks the whole document with its scanner before it
//! decodes anything, so a syntax error wins over a type error; this is that check, a
//! byte-at-a-time state machine with the scanner's states and error contexts. Our
//! decoding stays with serde; this only words the error.

/// What the scanner expects next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// `\u` read, then this many hex digits.
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside a literal: the rest of the word still expected, and the word.
    Literal(&'static [u8], &'static str),
}

/// What an open object or array waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Go's quoteChar: the byte as the rune of the same value, in single quotes, escaped as
/// strconv.Quote escapes it.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        0x07 => "'\\a'".to_string(),
        0x08 => "'\\b'".to_string(),
        0x0c => "'\\f'".to_string(),
        b'\n' => "'\\n'".to_string(),
        b'\r' => "'\\r'".to_string(),
        b'\t' => "'\\t'".to_string(),
        0x0b => "'\\v'".to_string(),
        b'\\' => "'\\\\'".to_string(),
        0x00..=0x1f | 0x7f => format!("'\\x{c:02x}'"),
        // Latin-1 controls, the no-break space and the soft hyphen are not printable.
        0x80..=0xa0 | 0xad => format!("'\\u{c:04x}'"),
        _ => format!("'{}'", char::from(c)),
    }
}

struct Scanner {
    step: Step,
    open: Vec<Open>,
    end_top: bool,
}

impl Scanner {
    /// One byte; `Err` is the error text.
    fn feed(&mut self, c: u8) -> Result<(), String> {
        let err = |ctx: &str| Err(format!("invalid character {} {ctx}", quote_char(c)));
        match self.step {
            Step::BeginValueOrEmpty => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b']' {
                    return self.end_value(c);
                }
                self.begin_value(c)
            }
            Step::BeginValue => self.begin_value(c),
            Step::BeginStringOrEmpty => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b'}' {
                    if let Some(top) = self.open.last_mut() {
                        *top = Open::ObjectValue;
                    }
                    return self.end_value(c);
                }
                self.begin_string(c)
            }
            Step::BeginString => self.begin_string(c),
            Step::EndValue => self.end_value(c),
            Step::EndTop => {
                if is_space(c) {
                    Ok(())
                } else {
                    err("after top-level value")
                }
            }
            Step::InString => {
                match c {
                    b'"' => self.step = Step::EndValue,
                    b'\\' => self.step = Step::InStringEsc,
                    0x00..=0x1f => return err("in string literal"),
                    _ => {}
                }
                Ok(())
            }
            Step::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                    self.step = Step::InString;
                    Ok(())
                }
                b'u' => {
                    self.step = Step::InStringEscU(0);
                    Ok(())
                }
                _ => err("in string escape code"),
            },
            Step::InStringEscU(n) => {
                if !c.is_ascii_hexdigit() {
                    return err("in \\u hexadecimal character escape");
                }
                self.step = if n == 3 {
                    Step::InString
                } else {
                    Step::InStringEscU(n + 1)
                };
                Ok(())
            }
            Step::Neg => match c {
                b'0' => {
                    self.step = Step::Zero;
                    Ok(())
                }
                b'1'..=b'9' => {
                    self.step = Step::One;
                    Ok(())
                }
                _ => err("in numeric literal"),
            },
            Step::One if c.is_ascii_digit() => Ok(()),
            Step::One | Step::Zero => match c {
                b'.' => {
                    self.step = Step::Dot;
                    Ok(())
                }
                b'e' | b'E' => {
                    self.step = Step::E;
                    Ok(())
                }
                _ => self.end_value(c),
            },
            Step::Dot => {
                if !c.is_ascii_digit() {
                    return err("after decimal point in numeric literal");
                }
                self.step = Step::Dot0;
                Ok(())
            }
            Step::Dot0 => match c {
                b'0'..=b'9' => Ok(()),
                b'e' | b'E' => {
                    self.step = Step::E;
                    Ok(())
                }
                _ => self.end_value(c),
            },
            Step::E if c == b'+' || c == b'-' => {
                self.step = Step::ESign;
                Ok(())
            }
            Step::E | Step::ESign => {
                if !c.is_ascii_digit() {
                    return err("in exponent of numeric literal");
                }
                self.step = Step::E0;
                Ok(())
            }
            Step::E0 => {
                if c.is_ascii_digit() {
                    Ok(())
                } else {
                    self.end_value(c)
                }
            }
            Step::Literal(rest, word) => {
                if c != rest[0] {
                    return err(&format!(
                        "in literal {word} (expecting {})",
                        quote_char(rest[0])
                    ));
                }
                self.step = if rest.len() == 1 {
                    Step::EndValue
                } else {
                    Step::Literal(&rest[1..], word)
                };
                Ok(())
            }
        }
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        self.step = match c {
            _ if is_space(c) => return Ok(()),
            b'{' => {
                self.open.push(Open::ObjectKey);
                Step::BeginStringOrEmpty
            }
            b'[' => {
                self.open.push(Open::ArrayValue);
                Step::BeginValueOrEmpty
            }
            b'"' => Step::InString,
            b'-' => Step::Neg,
            b'0' => Step::Zero,
            b'1'..=b'9' => Step::One,
            b't' => Step::Literal(b"rue", "true"),
            b'f' => Step::Literal(b"alse", "false"),
            b'n' => Step::Literal(b"ull", "null"),
            _ => {
                return Err(format!(
                    "invalid character {} looking for beginning of value",
                    quote_char(c)
                ))
            }
        };
        Ok(())
    }

    fn begin_string(&mut self, c: u8) -> Result<(), String> {
        match c {
            _ if is_space(c) => Ok(()),
            b'"' => {
                self.step = Step::InString;
                Ok(())
            }
            _ => Err(format!(
                "invalid character {} looking for beginning of object key string",
                quote_char(c)
            )),
        }
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(top) = self.open.last().copied() else {
            self.step = Step::EndTop;
            self.end_top = true;
            return self.feed(c);
        };
        if is_space(c) {
            self.step = Step::EndValue;
            return Ok(());
        }
        let ctx = match (top, c) {
            (Open::ObjectKey, b':') => {
                *self.open.last_mut().expect("checked") = Open::ObjectValue;
                self.step = Step::BeginValue;
                return Ok(());
            }
            (Open::ObjectKey, _) => "after object key",
            (Open::ObjectValue, b',') => {
                *self.open.last_mut().expect("checked") = Open::ObjectKey;
                self.step = Step::BeginString;
                return Ok(());
            }
            (Open::ObjectValue, b'}') | (Open::ArrayValue, b']') => {
                self.open.pop();
                if self.open.is_empty() {
                    self.step = Step::EndTop;
                    self.end_top = true;
                } else {
                    self.step = Step::EndValue;
                }
                return Ok(());
            }
            (Open::ObjectValue, _) => "after object key:value pair",
            (Open::ArrayValue, b',') => {
                self.step = Step::BeginValue;
                return Ok(());
            }
            (Open::ArrayValue, _) => "after array element",
        };
        Err(format!("invalid character {} {ctx}", quote_char(c)))
    }
}

/// The error `json.Unmarshal` gives for `data` before decoding (encoding/json
/// checkValid), or `None` if Go's scanner takes it as one valid JSON document.
pub fn syntax_error(data: &[u8]) -> Option<String> {
    let mut s = Scanner {
        step: Step::BeginValue,
        open: Vec::new(),
        end_top: false,
    };
    for &c in data {
        if let Err(e) = s.feed(c) {
            return Some(e);
        }
    }
    // scanner.eof: a number at the end is complete once a space follows it.
    if s.end_top {
        return None;
    }
    // scanner.eof steps once more with a space, which may itself be the error
    // (`1.` gives "invalid character ' ' after decimal point in numeric literal").
    match s.feed(b' ') {
        Err(e) => Some(e),
        Ok(()) if s.end_top => None,
        Ok(()) => Some("unexpected end of JSON input".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::syntax_error;

    #[test]
    fn valid_documents_pass() {
        for ok in [
            &b"{}"[..],
            b" { \"a\" : [1, -2.5e+3, 0, true, false, null, \"x\\u00e9\\n\"] , \"b\":{}} ",
            b"[]",
            b"12",
            b"\"\xff\"",
        ] {
            assert_eq!(syntax_error(ok), None, "{:?}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn errors_word_like_go() {
        let cases: [(&[u8], &str); 18] = [
            (
                b"{bad",
                "invalid character 'b' looking for beginning of object key string",
            ),
            (b"", "unexpected end of JSON input"),
            (b"{\"a\":1", "unexpected end of JSON input"),
            (b"{\"a\" 1}", "invalid character '1' after object key"),
            (
                b"{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            (b"{\"a\":1}}", "invalid character '}' after top-level value"),
            (
                b"{\"a\":tru}",
                "invalid character '}' in literal true (expecting 'e')",
            ),
            (
                b"{\"a\":nil}",
                "invalid character 'i' in literal null (expecting 'u')",
            ),
            (b"{\"a\":-x}", "invalid character 'x' in numeric literal"),
            (
                b"{\"a\":1.}",
                "invalid character '}' after decimal point in numeric literal",
            ),
            (
                b"{\"a\":1e+}",
                "invalid character '}' in exponent of numeric literal",
            ),
            (
                b"{\"a\":\"\\q\"}",
                "invalid character 'q' in string escape code",
            ),
            (
                b"{\"a\":\"\\u12G4\"}",
                "invalid character 'G' in \\u hexadecimal character escape",
            ),
            (
                b"{\"a\":\"\x01\"}",
                "invalid character '\\x01' in string literal",
            ),
            (
                b"{\"a\":[1 2]}",
                "invalid character '2' after array element",
            ),
            (
                b"{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            (
                b"{\"a\":'x'}",
                "invalid character '\\'' looking for beginning of value",
            ),
            (
                b"\xc3\xa9",
                "invalid character '\u{c3}' looking for beginning of value",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                syntax_error(input).as_deref(),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            syntax_error(b"\x85").as_deref(),
            Some("invalid character '\\u0085' looking for beginning of value")
        );
        assert_eq!(
            syntax_error(b"{\"a\":1.").as_deref(),
            Some("invalid character ' ' after decimal point in numeric literal")
        );
        assert_eq!(
            syntax_error(b"\t}").as_deref(),
            Some("invalid character '}' looking for beginning of value")
        );
    }
}
