//! `greywall fmt`: the canonical layout of a `.gw` file.
//!
//! Four spaces per block level; one space between atoms, none before a comma; `name = value`;
//! a `{` on the statement's line and its `}` on a line of its own; at most one blank line
//! between statements and none at the start or end of a block. Words and strings are kept
//! exactly as written, and so are comments (a comment after a statement stays on its line).
//! A statement continued after a comma keeps its line breaks, indented one level more.
//! Formatting is idempotent: formatting the output again changes nothing.

use super::ast::{Atom, AtomKind, Body, Item, Node};
use super::parse;
use crate::diagnostic::{self, Diagnostic};
use crate::source::SourceId;

const INDENT: &str = "    ";

/// Formats `.gw` text. Refuses text with syntax errors (the diagnostics say why).
pub fn format(text: &str, source: SourceId) -> Result<String, Vec<Diagnostic>> {
    let (body, diags) = parse::parse(text, source);
    if diagnostic::has_errors(&diags) {
        return Err(diags);
    }
    let Some(body) = body else {
        return Err(diags);
    };
    let mut f = Fmt {
        text,
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        out: String::with_capacity(text.len()),
    };
    f.body(&body, 0, None);
    while f.out.ends_with("\n\n") {
        f.out.pop();
    }
    // No trailing spaces (strings never end a line with one: they close on their line).
    if f.out.contains(" \n") {
        f.out = f
            .out
            .split('\n')
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n");
    }
    if !f.out.is_empty() && !f.out.ends_with('\n') {
        f.out.push('\n');
    }
    Ok(f.out)
}

struct Fmt<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
    out: String,
}

impl Fmt<'_> {
    fn line(&self, offset: u32) -> usize {
        match self.line_starts.binary_search(&(offset as usize)) {
            Ok(i) => i,
            Err(i) => i - 1,
        }
    }

    fn slice(&self, a: &Atom) -> &str {
        self.text
            .get(a.span.start as usize..a.span.end as usize)
            .unwrap_or("")
    }

    /// `after`: where the block's `{` is, so a comment on its line stays there.
    fn body(&mut self, body: &Body, depth: usize, after: Option<u32>) {
        let indent = INDENT.repeat(depth);
        let mut prev_end: Option<u32> = after;
        let mut first = true;
        for node in &body.nodes {
            let span = node.span();
            if let Some(end) = prev_end {
                let same_line = self.line(end) == self.line(span.start);
                if same_line && let Node::Comment(c, _) = node {
                    // A comment after a statement (or after the `{`) stays on its line.
                    while self.out.ends_with('\n') {
                        self.out.pop();
                    }
                    self.out.push_str("  ");
                    self.out.push_str(c.trim_end());
                    self.out.push('\n');
                    prev_end = Some(span.end);
                    continue;
                }
                let gap = self
                    .text
                    .get(end as usize..span.start as usize)
                    .map_or(0, |g| g.matches('\n').count());
                if gap >= 2 && !first {
                    self.out.push('\n');
                }
            }
            first = false;
            match node {
                Node::Comment(c, _) => {
                    self.out.push_str(&indent);
                    self.out.push_str(c.trim_end());
                    self.out.push('\n');
                }
                Node::Item(item) => self.item(item, depth),
            }
            prev_end = Some(node_end(node));
        }
    }

    fn item(&mut self, item: &Item, depth: usize) {
        let indent = INDENT.repeat(depth);
        self.out.push_str(&indent);
        self.atoms(&item.atoms, depth);
        if let Some(b) = &item.block {
            if !item.atoms.is_empty() {
                self.out.push(' ');
            }
            if b.body.nodes.is_empty() {
                self.out.push_str("{}\n");
                return;
            }
            self.out.push_str("{\n");
            self.body(&b.body, depth + 1, Some(b.span.start));
            self.out.push_str(&indent);
            self.out.push_str("}\n");
        } else {
            self.out.push('\n');
        }
    }

    fn atoms(&mut self, atoms: &[Atom], depth: usize) {
        let cont = INDENT.repeat(depth + 1);
        // Line breaks after the last value end nothing: the statement ends there.
        let end = atoms
            .iter()
            .rposition(|a| a.kind != AtomKind::Newline)
            .map_or(0, |i| i + 1);
        let mut at_line_start = true;
        for a in &atoms[..end] {
            match &a.kind {
                AtomKind::Comma => {
                    self.out.push(',');
                    at_line_start = false;
                    continue;
                }
                AtomKind::Newline => {
                    if at_line_start {
                        // No empty continuation lines.
                        continue;
                    }
                    trim_spaces(&mut self.out);
                    self.out.push('\n');
                    self.out.push_str(&cont);
                    at_line_start = true;
                    continue;
                }
                AtomKind::Comment(c) => {
                    if !at_line_start {
                        trim_spaces(&mut self.out);
                        self.out.push_str("  ");
                    }
                    self.out.push_str(c.trim_end());
                    at_line_start = false;
                    continue;
                }
                _ => {}
            }
            if !at_line_start && !self.out.ends_with(' ') {
                self.out.push(' ');
            }
            at_line_start = false;
            match &a.kind {
                AtomKind::List(items) => self.list(items, depth),
                AtomKind::Assign => self.out.push('='),
                _ => {
                    let s = self.slice(a).to_string();
                    self.out.push_str(&s);
                }
            }
        }
    }

    fn list(&mut self, items: &[Atom], depth: usize) {
        let multiline = items
            .iter()
            .any(|a| matches!(a.kind, AtomKind::Newline | AtomKind::Comment(_)));
        if !multiline {
            self.out.push('[');
            let mut first = true;
            for a in items {
                if a.kind == AtomKind::Comma {
                    continue;
                }
                if !first {
                    self.out.push_str(", ");
                }
                first = false;
                self.value(a, depth);
            }
            self.out.push(']');
            return;
        }
        // One element per line, each followed by a comma.
        let pad = INDENT.repeat(depth + 1);
        self.out.push('[');
        let mut line_open = false;
        for a in items {
            match &a.kind {
                AtomKind::Comma | AtomKind::Newline => {}
                AtomKind::Comment(c) => {
                    if line_open {
                        self.out.push_str("  ");
                    } else {
                        self.out.push('\n');
                        self.out.push_str(&pad);
                    }
                    self.out.push_str(c.trim_end());
                    line_open = false;
                }
                _ => {
                    self.out.push('\n');
                    self.out.push_str(&pad);
                    self.value(a, depth + 1);
                    self.out.push(',');
                    line_open = true;
                }
            }
        }
        self.out.push('\n');
        self.out.push_str(&INDENT.repeat(depth));
        self.out.push(']');
    }

    fn value(&mut self, a: &Atom, depth: usize) {
        match &a.kind {
            AtomKind::List(items) => self.list(items, depth),
            AtomKind::Assign => self.out.push('='),
            _ => {
                let s = self.slice(a).to_string();
                self.out.push_str(&s);
            }
        }
    }
}

fn trim_spaces(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
}

/// Where a node ends: for a statement with a block, its `}`.
fn node_end(node: &Node) -> u32 {
    match node {
        Node::Item(i) => i.block.as_ref().map_or(i.span.end, |b| b.span.end),
        Node::Comment(_, s) => s.end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        let out = format(s, SourceId(0)).unwrap();
        assert_eq!(format(&out, SourceId(0)).unwrap(), out, "not idempotent");
        out
    }

    #[test]
    fn canonical_layout() {
        let src = "# policy\n\n\n  extends   \"code\"  # base\nfilesystem{\n\n read ~/.a ,~/.b\n  write . except .git/hooks\n\n\n\n deny read [ ~/.ssh,~/.aws ]\n}\nallow-pty=true\n";
        let want = "# policy\n\nextends \"code\"  # base\nfilesystem {\n    read ~/.a, ~/.b\n    write . except .git/hooks\n\n    deny read [~/.ssh, ~/.aws]\n}\nallow-pty = true\n";
        assert_eq!(fmt(src), want);
    }

    #[test]
    fn continuation_and_comments_kept() {
        let src = "network {  # egress\n  allow a.com, # first\n b.com,\n# own line\n   c.com\n  # end\n}\n";
        let want = "network {  # egress\n    allow a.com,  # first\n        b.com,\n        # own line\n        c.com\n    # end\n}\n";
        assert_eq!(fmt(src), want);
    }

    #[test]
    fn multiline_lists() {
        let src = "let x = [\n a, # one\n b\n]\n";
        let want = "let x = [\n    a,  # one\n    b,\n]\n";
        assert_eq!(fmt(src), want);
    }

    #[test]
    fn trailing_commas_and_breaks_are_stable() {
        // Found by the fuzzer: a statement ending in a comma, a comment and empty lines.
        let src = "network {\n    allow a,\n        # c\n\n        \n}\n";
        let want = "network {\n    allow a,\n        # c\n}\n";
        assert_eq!(fmt(src), want);
        fmt("a [\n\n b,\n\n]  \n");
    }

    #[test]
    fn refuses_broken_text() {
        assert!(format("read \"x\n", SourceId(0)).is_err());
    }
}
