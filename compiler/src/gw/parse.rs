//! Parsing `.gw` text into the syntax tree ([`super::ast`]). The only module that sees pest.
//!
//! Lexical problems are reported here, each at its span: unterminated strings (E601), stray
//! characters (E602), unknown escapes (E603), unbalanced braces and brackets (E600). The tree is
//! returned whenever pest could parse the file, so the lowering reports the rest.

use pest::Parser as _;
use pest::iterators::Pair;

use super::ast::{Atom, AtomKind, Block, Body, Item, Node, Part};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{SourceId, Span};

#[derive(pest_derive::Parser)]
#[grammar = "gw/grammar.pest"]
struct GwParser;

/// Deepest nesting of blocks and lists accepted (policies need three or four).
pub const MAX_DEPTH: usize = 64;

/// Parses a file. `None` when the text is not well formed; the diagnostics say why.
pub fn parse(text: &str, source: SourceId) -> (Option<Body>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    if let Some(d) = too_deep(text, source) {
        return (None, vec![d]);
    }
    let file = match GwParser::parse(Rule::file, text) {
        Ok(mut pairs) => pairs.next(),
        Err(e) => {
            diags.push(syntax_error(text, source, &e));
            return (None, diags);
        }
    };
    let Some(file) = file else {
        return (None, diags);
    };
    let mut cx = Cx {
        source,
        diags: &mut diags,
    };
    let body = cx.body(file);
    (Some(body), diags)
}

struct Cx<'d> {
    source: SourceId,
    diags: &'d mut Vec<Diagnostic>,
}

impl Cx<'_> {
    fn span(&self, p: &Pair<'_, Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.source, s.start(), s.end())
    }

    fn body(&mut self, pair: Pair<'_, Rule>) -> Body {
        let mut nodes = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::item => nodes.push(Node::Item(self.item(p))),
                Rule::comment => nodes.push(Node::Comment(p.as_str().to_string(), self.span(&p))),
                Rule::stray_close | Rule::stray_bracket => {
                    let what = p.as_str();
                    let (msg, help) = if what == "}" {
                        ("unmatched `}`", "remove it, or add the `{` it should close")
                    } else {
                        ("unmatched `]`", "remove it, or add the `[` it should close")
                    };
                    self.diags.push(
                        Diagnostic::new(Code::GwSyntax, msg)
                            .at(self.span(&p))
                            .label("nothing to close here")
                            .help(help),
                    );
                }
                _ => {}
            }
        }
        Body { nodes }
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> Item {
        let span = self.span(&pair);
        let mut atoms = Vec::new();
        let mut block = None;
        for p in pair.into_inner() {
            if p.as_rule() == Rule::block {
                let bspan = self.span(&p);
                block = Some(Block {
                    body: self.body(p),
                    span: bspan,
                });
            } else if let Some(a) = self.atom(p) {
                atoms.push(a);
            }
        }
        Item { atoms, block, span }
    }

    fn atom(&mut self, p: Pair<'_, Rule>) -> Option<Atom> {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::word => AtomKind::Word(self.parts(p)),
            Rule::string => AtomKind::Str(self.parts(p)),
            Rule::list => AtomKind::List(p.into_inner().filter_map(|q| self.atom(q)).collect()),
            Rule::assign => AtomKind::Assign,
            Rule::comma => AtomKind::Comma,
            Rule::newline => AtomKind::Newline,
            Rule::comment => AtomKind::Comment(p.as_str().to_string()),
            Rule::unterminated => {
                self.diags.push(
                    Diagnostic::new(Code::GwUnterminatedString, "unterminated string")
                        .at(span)
                        .label("this string has no closing `\"` on its line")
                        .help("close the string with `\"`; strings do not span lines"),
                );
                AtomKind::Unterminated
            }
            Rule::stray => {
                let c = p.as_str().chars().next().unwrap_or('\u{fffd}');
                self.diags.push(stray(c, span));
                AtomKind::Stray(c)
            }
            _ => return None,
        };
        Some(Atom { kind, span })
    }

    fn parts(&mut self, p: Pair<'_, Rule>) -> Vec<Part> {
        let mut parts: Vec<Part> = Vec::new();
        let push_text = |parts: &mut Vec<Part>, t: &str| match parts.last_mut() {
            Some(Part::Text(prev)) => prev.push_str(t),
            _ => parts.push(Part::Text(t.to_string())),
        };
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::text | Rule::word_text => {
                    // Control characters are written as escapes, never raw (tab excepted).
                    let start = q.as_span().start();
                    for (i, c) in q.as_str().char_indices() {
                        if c.is_control() && c != '\t' {
                            let at = start + i;
                            self.diags.push(
                                stray(c, Span::new(self.source, at, at + c.len_utf8()))
                                    .help("write control characters as escapes: \\u{HEX}"),
                            );
                        }
                    }
                    push_text(&mut parts, q.as_str());
                }
                Rule::escape => {
                    let span = self.span(&q);
                    match unescape(q.as_str()) {
                        Ok(c) => push_text(&mut parts, c.encode_utf8(&mut [0; 4])),
                        Err(why) => self.diags.push(
                            Diagnostic::new(Code::GwBadEscape, why)
                                .at(span)
                                .help("escapes: \\\" \\\\ \\$ \\n \\t \\r \\u{HEX}"),
                        ),
                    }
                }
                Rule::interp => {
                    let span = self.span(&q);
                    let name = q
                        .into_inner()
                        .find(|n| n.as_rule() == Rule::var_name)
                        .map(|n| n.as_str().to_string());
                    parts.push(Part::Var(name, span));
                }
                _ => {}
            }
        }
        parts
    }
}

fn unescape(esc: &str) -> Result<char, String> {
    let body = esc.strip_prefix('\\').unwrap_or(esc);
    match body {
        "\"" => Ok('"'),
        "\\" => Ok('\\'),
        "$" => Ok('$'),
        "n" => Ok('\n'),
        "t" => Ok('\t'),
        "r" => Ok('\r'),
        "" => Err("a backslash at the end of a string".to_string()),
        b if b.starts_with("u{") => {
            let hex = b.trim_start_matches("u{").trim_end_matches('}');
            u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .filter(|c| *c != '\0')
                .ok_or_else(|| format!("`{esc}` is not a Unicode scalar value"))
        }
        _ => Err(format!("unknown escape `{esc}`")),
    }
}

fn stray(c: char, span: Span) -> Diagnostic {
    let code = c as u32;
    let d = Diagnostic::new(
        Code::GwStrayCharacter,
        format!(
            "unexpected character `{}` (U+{code:04X})",
            c.escape_default()
        ),
    )
    .at(span);
    match c {
        '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{ab}' | '\u{bb}' => d
            .label("a typographic quote")
            .help("use a plain `\"` (editors and chat tools often replace it)"),
        '\u{2018}' | '\u{2019}' | '\'' => d
            .label("not a string quote")
            .help("strings are written with `\"`"),
        '\u{a0}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{3000}' => d
            .label("an invisible character")
            .help("replace it with a plain space, or delete it"),
        '\u{2013}' | '\u{2014}' | '\u{2212}' => {
            d.label("a typographic dash").help("use a plain `-`")
        }
        c if c.is_control() => d.label("a control character").help("delete it"),
        c if !c.is_ascii() => d
            .label("not part of the language")
            .help("non-ASCII text is allowed only inside \"strings\" and comments"),
        _ => d
            .label("not part of the language")
            .help("quote the value: \"...\""),
    }
}

/// The brackets (`{`, `}`, `[`, `]`) of `text` outside strings and comments, with their byte
/// offsets: what the nesting checks below look at, before or instead of pest.
fn brackets(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let (mut in_str, mut in_comment, mut escaped) = (false, false, false);
    text.char_indices().filter(move |&(_, c)| {
        if in_comment {
            in_comment = c != '\n';
            return false;
        }
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' | '\n' => in_str = false,
                _ => {}
            }
            return false;
        }
        match c {
            '#' => in_comment = true,
            '"' => in_str = true,
            '{' | '[' | '}' | ']' => return true,
            _ => {}
        }
        false
    })
}

/// Finds nesting deeper than [`MAX_DEPTH`] before pest recurses into it.
fn too_deep(text: &str, source: SourceId) -> Option<Diagnostic> {
    let mut depth = 0usize;
    for (i, c) in brackets(text) {
        if c == '{' || c == '[' {
            depth += 1;
            if depth > MAX_DEPTH {
                return Some(
                    Diagnostic::new(
                        Code::GwSyntax,
                        format!("blocks and lists nested deeper than {MAX_DEPTH} levels"),
                    )
                    .at(Span::new(source, i, i + 1))
                    .help("no policy needs this; check for a missing `}` or `]`"),
                );
            }
        } else {
            depth = depth.saturating_sub(1);
        }
    }
    None
}

/// The innermost `{` or `[` left open at the end of the text, if any.
fn unclosed(text: &str) -> Option<(usize, char)> {
    let mut stack: Vec<(usize, char)> = Vec::new();
    for (i, c) in brackets(text) {
        if c == '{' || c == '[' {
            stack.push((i, c));
        } else {
            stack.pop();
        }
    }
    stack.pop()
}

fn syntax_error(text: &str, source: SourceId, e: &pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    if let Some((open, c)) = unclosed(text).filter(|(open, _)| *open <= pos) {
        let close = if c == '{' { '}' } else { ']' };
        return Diagnostic::new(Code::GwSyntax, format!("unclosed `{c}`"))
            .at(Span::new(source, open, open + 1))
            .label(format!("this `{c}` is never closed"))
            .help(format!("add a `{close}` where the block or list ends"));
    }
    let found = text[pos.min(text.len())..].chars().next();
    let mut d = Diagnostic::new(
        Code::GwSyntax,
        match found {
            Some('\n') | None => "unexpected end of line".to_string(),
            Some(c) => format!("unexpected `{}`", c.escape_default()),
        },
    );
    let end = pos + found.map_or(0, char::len_utf8);
    d = d.at(Span::new(source, pos, end));
    if found == Some(']') || found == Some('}') {
        d = d.help("a `]` closes a list and a `}` a block; check which one is open here");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Body {
        let (b, d) = parse(text, SourceId(0));
        assert!(d.is_empty(), "{d:?}");
        b.unwrap()
    }

    fn codes(text: &str) -> Vec<Code> {
        parse(text, SourceId(0)).1.iter().map(|d| d.code).collect()
    }

    #[test]
    fn statements_blocks_and_values() {
        let b = ok("extends \"code\"\n\nfilesystem {\n  write . except .git/hooks, \"a b\"\n}\n");
        assert_eq!(b.nodes.len(), 2);
        let Node::Item(fs) = &b.nodes[1] else {
            panic!()
        };
        let inner = &fs.block.as_ref().unwrap().body.nodes;
        let Node::Item(w) = &inner[0] else { panic!() };
        let words: Vec<_> = w.atoms.iter().map(|a| a.kind.clone()).collect();
        assert_eq!(words[0], AtomKind::Word(vec![Part::Text("write".into())]));
        assert_eq!(
            words[3],
            AtomKind::Word(vec![Part::Text(".git/hooks".into())])
        );
        assert_eq!(words[4], AtomKind::Comma);
        assert_eq!(words[5], AtomKind::Str(vec![Part::Text("a b".into())]));
    }

    #[test]
    fn variables_and_escapes() {
        let b = ok("let x = $home/.ssh, \"${xdg_cache}/a\\tb\\u{41}\"\n");
        let Node::Item(i) = &b.nodes[0] else { panic!() };
        assert!(
            matches!(&i.atoms[3].kind, AtomKind::Word(p) if matches!(&p[0], Part::Var(Some(n), _) if n == "home"))
        );
        assert!(
            matches!(&i.atoms[5].kind, AtomKind::Str(p) if p.len() == 2 && p[1] == Part::Text("/a\tbA".into()))
        );
    }

    #[test]
    fn continuation_after_comma_and_comments() {
        let b = ok("deny read ~/.ssh, # keys\n  ~/.aws\n# done\n");
        assert_eq!(b.nodes.len(), 2);
        let Node::Item(i) = &b.nodes[0] else { panic!() };
        assert!(i.atoms.iter().any(|a| a.kind == AtomKind::Newline));
    }

    #[test]
    fn lexical_errors() {
        assert_eq!(
            codes("read \"abc\nwrite x\n"),
            vec![Code::GwUnterminatedString]
        );
        assert_eq!(
            codes("read \u{201c}x\u{201d}\n"),
            vec![Code::GwStrayCharacter; 2]
        );
        assert_eq!(codes("read \"a\\qb\"\n"), vec![Code::GwBadEscape]);
        assert_eq!(codes("a {\n b\n"), vec![Code::GwSyntax]);
        assert_eq!(codes("a\n}\n"), vec![Code::GwSyntax]);
        assert_eq!(codes("a [b\n"), vec![Code::GwSyntax]);
        assert_eq!(codes(&"[".repeat(1000)), vec![Code::GwSyntax]);
        // Found by the fuzzer: a raw NUL in a string could not be written back.
        assert_eq!(codes("extends \"d\0\"\n"), vec![Code::GwStrayCharacter]);
        assert_eq!(codes("extends \"d\\u{0}\"\n"), vec![Code::GwBadEscape]);
    }
}
