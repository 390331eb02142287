//! Source text and positions.
//!
//! Every policy file the compiler reads (user files, `extends`ed files, built-in templates) is
//! registered in a [`Sources`] table. Everything downstream refers to text by [`Span`]: a source
//! id plus a byte range. Line and column numbers are computed only when a diagnostic is rendered.

use std::fmt;
use std::path::PathBuf;

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u32);

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub source: SourceId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(source: SourceId, start: usize, end: usize) -> Self {
        Span {
            source,
            start: clamp_u32(start),
            end: clamp_u32(end.max(start)),
        }
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Where a source file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A file on disk.
    File(PathBuf),
    /// A built-in template, embedded in the binary.
    Template(String),
    /// Text given directly (tests, stdin).
    Inline,
}

/// One loaded source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Name used in diagnostics: a path as the user would type it, or `template:NAME`.
    pub name: String,
    pub kind: SourceKind,
    /// The text. Invalid UTF-8 has been replaced (the loader reports it separately).
    pub text: String,
    /// The `extends` value (in another file) that pulled this file in, if any.
    pub extended_by: Option<Span>,
    line_starts: Vec<u32>,
}

/// A 1-based line and column (column counted in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl SourceFile {
    pub fn new(name: impl Into<String>, kind: SourceKind, text: String) -> Self {
        let mut line_starts = vec![0u32];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(clamp_u32(i + 1));
            }
        }
        SourceFile {
            name: name.into(),
            kind,
            text,
            extended_by: None,
            line_starts,
        }
    }

    /// Line and column of a byte offset.
    pub fn line_col(&self, offset: u32) -> LineCol {
        let offset = offset.min(clamp_u32(self.text.len()));
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line] as usize;
        let end = (offset as usize).min(self.text.len());
        let mut col = self
            .text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count());
        // A byte order mark is not a column.
        if line == 0 && end >= 3 && self.text.starts_with('\u{feff}') {
            col -= 1;
        }
        LineCol {
            line: line + 1,
            col: col + 1,
        }
    }

    /// The text of a 1-based line, without its line terminator.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&e| e as usize);
        let s = self.text.get(start as usize..end).unwrap_or("");
        s.trim_end_matches(['\n', '\r'])
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    pub fn is_template(&self) -> bool {
        matches!(self.kind, SourceKind::Template(_))
    }
}

/// The table of every source file read while loading a policy.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, file: SourceFile) -> SourceId {
        self.files.push(file);
        SourceId(clamp_u32(self.files.len() - 1))
    }

    pub fn get(&self, id: SourceId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn get_mut(&mut self, id: SourceId) -> Option<&mut SourceFile> {
        self.files.get_mut(id.0 as usize)
    }

    pub fn iter(&self) -> impl Iterator<Item = (SourceId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (SourceId(clamp_u32(i)), f))
    }

    /// `name:line:col` for a span.
    pub fn locate(&self, span: Span) -> String {
        match self.get(span.source) {
            Some(f) => format!("{}:{}", f.name, f.line_col(span.start)),
            None => "<unknown>".to_string(),
        }
    }

    /// The chain of `extends` spans that brought `id` into the policy, innermost first.
    pub fn extends_chain(&self, id: SourceId) -> Vec<Span> {
        let mut chain = Vec::new();
        let mut cur = id;
        while let Some(span) = self.get(cur).and_then(|f| f.extended_by) {
            if chain.len() > 64 {
                break;
            }
            chain.push(span);
            cur = span.source;
        }
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let f = SourceFile::new("t", SourceKind::Inline, "ab\nçd\n\nx".to_string());
        assert_eq!(f.line_col(0), LineCol { line: 1, col: 1 });
        assert_eq!(f.line_col(3), LineCol { line: 2, col: 1 });
        // 'ç' is two bytes; 'd' is the second character.
        assert_eq!(f.line_col(5), LineCol { line: 2, col: 2 });
        assert_eq!(f.line_col(8), LineCol { line: 4, col: 1 });
        assert_eq!(f.line_text(2), "çd");
        assert_eq!(f.line_text(3), "");
        assert_eq!(f.line_text(9), "");
    }
}
