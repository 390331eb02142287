//! A JSONC reader that keeps positions.
//!
//! Accepts JSON plus `//` and `/* */` comments and trailing commas, like the JSONC Greywall
//! reads. Every value and every object key carries its [`Span`], so later passes can point at
//! the exact text. The reader never panics and never recurses deeper than [`MAX_DEPTH`]: hostile
//! input (deep nesting, huge files, invalid escapes) yields a diagnostic.
#![expect(
    clippy::result_large_err,
    reason = "a syntax error ends parsing, so the error is built once and returned once"
)]

use crate::diagnostic::{Code, Diagnostic};
use crate::source::{SourceId, Span};

/// Deepest nesting of arrays and objects accepted. Real policies nest three levels.
pub const MAX_DEPTH: usize = 64;

/// A JSON value with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// An object member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's text, exactly as written.
    Number(String),
    String(String),
    Array(Vec<Node>),
    Object(Vec<Member>),
}

impl Value {
    /// The JSON type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

impl Node {
    /// The value as plain JSON (comments and positions dropped). Numbers that do not fit a JSON
    /// number become strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => serde_json::from_str::<serde_json::Number>(n)
                .map_or_else(|_| J::String(n.clone()), J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Array(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Object(members) => J::Object(
                members
                    .iter()
                    .map(|m| (m.key.clone(), m.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses JSONC text. Returns the root value, or `None` with at least one error diagnostic.
/// Duplicate keys are reported but do not stop parsing.
pub fn parse(text: &str, source: SourceId) -> (Option<Node>, Vec<Diagnostic>) {
    let mut p = Parser {
        src: text.as_bytes(),
        text,
        pos: 0,
        source,
        diags: Vec::new(),
    };
    // A UTF-8 byte order mark is tolerated.
    if text.starts_with('\u{feff}') {
        p.pos = 3;
    }
    let result = (|| {
        p.skip_trivia()?;
        if p.pos >= p.src.len() {
            return Err(
                Diagnostic::new(Code::EmptyFile, "the file holds no JSON value")
                    .at(p.span(p.pos, p.pos))
                    .help("write `{}` for an empty policy"),
            );
        }
        let root = p.value(0)?;
        p.skip_trivia()?;
        if p.pos < p.src.len() {
            return Err(p.unexpected("end of file"));
        }
        Ok(root)
    })();
    match result {
        Ok(root) => (Some(root), p.diags),
        Err(d) => {
            p.diags.push(d);
            (None, p.diags)
        }
    }
}

struct Parser<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    source: SourceId,
    diags: Vec<Diagnostic>,
}

type PResult<T> = Result<T, Diagnostic>;

impl Parser<'_> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.source, start, end)
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// The character at the current position, for messages.
    fn current_char(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn unexpected(&self, expected: &str) -> Diagnostic {
        match self.current_char() {
            None => Diagnostic::new(
                Code::Syntax,
                format!("unexpected end of file, expected {expected}"),
            )
            .at(self.span(self.pos, self.pos))
            .label("the file ends here"),
            Some(c) => {
                let shown = if c.is_control() || c.is_whitespace() {
                    format!("{:?}", c)
                } else {
                    format!("`{c}`")
                };
                let mut d = Diagnostic::new(
                    Code::Syntax,
                    format!("unexpected {shown}, expected {expected}"),
                )
                .at(self.span(self.pos, self.pos + c.len_utf8()));
                if c == '\'' {
                    d = d.help("JSON strings use double quotes");
                } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
                    d = d.help("object keys and strings must be in double quotes");
                } else if !c.is_ascii() {
                    d = d.help(format!(
                        "U+{:04X} is not allowed outside a string",
                        u32::from(c)
                    ));
                }
                d
            }
        }
    }

    fn skip_trivia(&mut self) -> PResult<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                Some(b'/') => match self.src.get(self.pos + 1) {
                    Some(b'/') => {
                        while let Some(b) = self.peek() {
                            if b == b'\n' {
                                break;
                            }
                            self.pos += 1;
                        }
                    }
                    Some(b'*') => {
                        let start = self.pos;
                        self.pos += 2;
                        loop {
                            match self.peek() {
                                None => {
                                    return Err(Diagnostic::new(
                                        Code::Syntax,
                                        "unterminated block comment",
                                    )
                                    .at(self.span(start, start + 2))
                                    .label("comment starts here")
                                    .help("close it with `*/`"));
                                }
                                Some(b'*') if self.src.get(self.pos + 1) == Some(&b'/') => {
                                    self.pos += 2;
                                    break;
                                }
                                Some(_) => self.pos += 1,
                            }
                        }
                    }
                    _ => return Err(self.unexpected("a value")),
                },
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> PResult<Node> {
        let start = self.pos;
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let s = self.string()?;
                Ok(Node {
                    value: Value::String(s),
                    span: self.span(start, self.pos),
                })
            }
            Some(b't') => self.keyword("true", Value::Bool(true)),
            Some(b'f') => self.keyword("false", Value::Bool(false)),
            Some(b'n') => self.keyword("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected("a value")),
        }
    }

    fn keyword(&mut self, word: &str, value: Value) -> PResult<Node> {
        let start = self.pos;
        if self.src[self.pos..].starts_with(word.as_bytes()) {
            let after = self.src.get(self.pos + word.len()).copied();
            if !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                self.pos += word.len();
                return Ok(Node {
                    value,
                    span: self.span(start, self.pos),
                });
            }
        }
        let mut end = self.pos;
        while self
            .src
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            end += 1;
        }
        Err(Diagnostic::new(
            Code::Syntax,
            format!(
                "unexpected `{}`, expected a value",
                String::from_utf8_lossy(&self.src[start..end.max(start + 1)])
            ),
        )
        .at(self.span(start, end.max(start + 1)))
        .help("strings must be in double quotes; the literals are `true`, `false` and `null`"))
    }

    fn number(&mut self) -> PResult<Node> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos - s
        };
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 {
            return Err(self.unexpected("a digit"));
        }
        if n > 1 && self.src[int_start] == b'0' {
            return Err(
                Diagnostic::new(Code::Syntax, "numbers cannot have leading zeros")
                    .at(self.span(int_start, self.pos)),
            );
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.unexpected("a digit after the decimal point"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.unexpected("a digit in the exponent"));
            }
        }
        let text = self.text.get(start..self.pos).unwrap_or("").to_string();
        Ok(Node {
            value: Value::Number(text),
            span: self.span(start, self.pos),
        })
    }

    fn hex4(&mut self) -> PResult<u32> {
        let start = self.pos;
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(d) = self.peek().and_then(|b| (b as char).to_digit(16)) else {
                return Err(Diagnostic::new(
                    Code::Syntax,
                    "invalid unicode escape: expected four hex digits",
                )
                .at(self.span(start.saturating_sub(2), (self.pos + 1).min(self.src.len()))));
            };
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> PResult<String> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let run = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(self.text.get(run..self.pos).unwrap_or(""));
            match self.peek() {
                None => {
                    return Err(Diagnostic::new(Code::Syntax, "unterminated string")
                        .at(self.span(start, start + 1))
                        .label("string starts here")
                        .help("close it with `\"`"));
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\n' | b'\r') => {
                    return Err(Diagnostic::new(
                        Code::Syntax,
                        "unterminated string: a line break inside a string",
                    )
                    .at(self.span(start, self.pos))
                    .help(
                        "close the string with `\"` before the end of the line, or write `\\n`",
                    ));
                }
                Some(b) if b < 0x20 => {
                    return Err(Diagnostic::new(
                        Code::Syntax,
                        format!("control character U+{b:04X} inside a string"),
                    )
                    .at(self.span(self.pos, self.pos + 1))
                    .help("write it as an escape such as `\\t` or `\\u0009`"));
                }
                Some(_) => {
                    // backslash
                    let esc_start = self.pos;
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        continue;
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                if self.src.get(self.pos) == Some(&b'\\')
                                    && self.src.get(self.pos + 1) == Some(&b'u')
                                {
                                    self.pos += 2;
                                    let lo = self.hex4()?;
                                    if (0xDC00..0xE000).contains(&lo) {
                                        char::from_u32(
                                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00),
                                        )
                                    } else {
                                        None
                                    }
                                } else {
                                    None
                                }
                            } else {
                                char::from_u32(hi)
                            };
                            match c {
                                Some(c) => out.push(c),
                                None => {
                                    return Err(Diagnostic::new(
                                        Code::Syntax,
                                        "invalid unicode escape: unpaired surrogate",
                                    )
                                    .at(self.span(esc_start, self.pos)));
                                }
                            }
                        }
                        _ => {
                            let len = self.current_char_at(esc_start + 1);
                            return Err(Diagnostic::new(Code::Syntax, "invalid escape in string")
                                .at(self.span(esc_start, esc_start + 1 + len))
                                .help("valid escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX"));
                        }
                    }
                }
            }
        }
    }

    fn current_char_at(&self, pos: usize) -> usize {
        self.text
            .get(pos..)
            .and_then(|s| s.chars().next())
            .map_or(1, char::len_utf8)
    }

    fn enter(&self, depth: usize) -> PResult<usize> {
        if depth + 1 > MAX_DEPTH {
            return Err(Diagnostic::new(
                Code::TooDeep,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            )
            .at(self.span(self.pos, self.pos + 1))
            .note("a greywall policy nests at most three levels"));
        }
        Ok(depth + 1)
    }

    fn array(&mut self, depth: usize) -> PResult<Node> {
        let depth = self.enter(depth)?;
        let start = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                None => return Err(self.unclosed(start, "array", ']')),
                _ => {}
            }
            items.push(self.value(depth)?);
            self.skip_trivia()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                None => return Err(self.unclosed(start, "array", ']')),
                _ => return Err(self.unexpected("`,` or `]`")),
            }
        }
        Ok(Node {
            value: Value::Array(items),
            span: self.span(start, self.pos),
        })
    }

    fn unclosed(&self, start: usize, what: &str, close: char) -> Diagnostic {
        Diagnostic::new(
            Code::Syntax,
            format!("unexpected end of file: unclosed {what}"),
        )
        .at(self.span(start, start + 1))
        .label(format!("this {what} is never closed"))
        .help(format!("add the missing `{close}`"))
    }

    fn object(&mut self, depth: usize) -> PResult<Node> {
        let depth = self.enter(depth)?;
        let start = self.pos;
        self.pos += 1;
        let mut members: Vec<Member> = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                Some(b'"') => {}
                None => return Err(self.unclosed(start, "object", '}')),
                _ => return Err(self.unexpected("a key in double quotes or `}`")),
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_span = self.span(key_start, self.pos);
            self.skip_trivia()?;
            if self.peek() != Some(b':') {
                return Err(self.unexpected("`:` after the key"));
            }
            self.pos += 1;
            self.skip_trivia()?;
            let value = self.value(depth)?;
            if let Some(first) = members.iter().find(|m| m.key == key) {
                self.diags.push(
                    Diagnostic::new(Code::DuplicateKey, format!("duplicate key `{key}`"))
                        .at(key_span)
                        .label("second definition")
                        .with_secondary(first.key_span, "first defined here")
                        .help("remove one of them; greywall does not guess which one you meant"),
                );
            }
            members.push(Member {
                key,
                key_span,
                value,
            });
            self.skip_trivia()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                None => return Err(self.unclosed(start, "object", '}')),
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
        Ok(Node {
            value: Value::Object(members),
            span: self.span(start, self.pos),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Node {
        let (node, diags) = parse(text, SourceId(0));
        assert!(diags.is_empty(), "{diags:?}");
        node.unwrap()
    }

    fn err(text: &str) -> Diagnostic {
        let (node, mut diags) = parse(text, SourceId(0));
        assert!(node.is_none() || !diags.is_empty());
        diags.remove(0)
    }

    #[test]
    fn comments_and_trailing_commas() {
        let n = ok("// top\n{ /* a */ \"a\": [1, 2,], \"b\": {\"c\": null,}, }\n");
        let Value::Object(m) = n.value else { panic!() };
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].key, "a");
        assert_eq!(
            m[0].value.value,
            Value::Array(vec![
                Node {
                    value: Value::Number("1".into()),
                    span: Span::new(SourceId(0), 23, 24)
                },
                Node {
                    value: Value::Number("2".into()),
                    span: Span::new(SourceId(0), 26, 27)
                },
            ])
        );
    }

    #[test]
    fn escapes() {
        let n = ok(r#""a\"\\\/\n\u00e9\ud83d\ude00""#);
        assert_eq!(n.value, Value::String("a\"\\/\né😀".into()));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let d = err("{\n  \"a\": tru\n}");
        assert_eq!(d.code, Code::Syntax);
        assert_eq!(d.primary.unwrap().start, 9);
        let d = err("{\"a\": \"abc");
        assert!(d.message.contains("unterminated string"));
        assert_eq!(d.primary.unwrap().start, 6);
        let d = err("[1, 2");
        assert!(d.message.contains("unclosed array"));
        let d = err("{\"a\" 1}");
        assert!(d.message.contains("`:`"));
        let d = err("");
        assert_eq!(d.code, Code::EmptyFile);
        let d = err("{} x");
        assert!(d.message.contains("end of file"));
        let d = err("/* never closed");
        assert!(d.message.contains("block comment"));
        let d = err(r#""\ud800""#);
        assert!(d.message.contains("surrogate"));
        let d = err("{'a': 1}");
        assert_eq!(d.help.as_deref(), Some("JSON strings use double quotes"));
        let d = err("01");
        assert!(d.message.contains("leading zeros"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        let d = err(&text);
        assert_eq!(d.code, Code::TooDeep);
        assert_eq!(d.primary.unwrap().start as usize, MAX_DEPTH);
    }

    #[test]
    fn duplicate_keys_are_all_reported() {
        let (node, diags) = parse(r#"{"a":1,"a":2,"b":1,"b":2}"#, SourceId(0));
        assert!(node.is_some());
        assert_eq!(diags.len(), 2);
        assert!(diags.iter().all(|d| d.code == Code::DuplicateKey));
    }
}
