//! The syntax tree of a `.gw` file: statements of atoms, with their spans.
//!
//! Only [`super::parse`] builds it (from pest's pairs); everything else reads this.

use crate::source::Span;

/// A file or a `{ block }`: statements and comments, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Item(Item),
    /// `# text`, with the `#`.
    Comment(String, Span),
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Item(i) => i.span,
            Node::Comment(_, s) => *s,
        }
    }
}

/// One statement: atoms, then an optional block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub atoms: Vec<Atom>,
    pub block: Option<Block>,
    pub span: Span,
}

impl Item {
    /// The atoms that carry meaning (no comments or line breaks).
    pub fn significant(&self) -> Vec<&Atom> {
        self.atoms
            .iter()
            .filter(|a| !matches!(a.kind, AtomKind::Comment(_) | AtomKind::Newline))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub body: Body,
    /// From `{` to `}`.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    pub kind: AtomKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtomKind {
    /// A bare word.
    Word(Vec<Part>),
    /// A `"string"`.
    Str(Vec<Part>),
    /// `[a, b]`.
    List(Vec<Atom>),
    /// `=`.
    Assign,
    /// `,`.
    Comma,
    /// A line break after a comma (the statement continues).
    Newline,
    /// A comment inside a statement (after a comma, in a list).
    Comment(String),
    /// A character the language does not use (reported by the parser).
    Stray(char),
    /// A string without its closing quote (reported by the parser).
    Unterminated,
}

impl AtomKind {
    /// The bare word, when the atom is one without variables.
    pub fn plain_word(&self) -> Option<String> {
        match self {
            AtomKind::Word(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        Part::Text(t) => s.push_str(t),
                        Part::Var(..) => return None,
                    }
                }
                Some(s)
            }
            _ => None,
        }
    }
}

/// A piece of a word or string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text, escapes decoded.
    Text(String),
    /// `$name` (`None`: a `$` without a name, reported by the lowering).
    Var(Option<String>, Span),
}
