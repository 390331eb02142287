//! Path patterns as Seatbelt filters.
//!
//! A pattern covers the paths it matches and everything below them (see
//! [`crate::pattern::path`]). Literal patterns become `(subpath …)`; globs become an anchored
//! `(regex …)` whose literal parts are escaped and whose base (the working or home directory)
//! is a parameter in regex form, so `*.key` means `CWD/*.key` exactly as on Linux.

use super::params::{MAX_UP, Param};
use super::sbpl::{Filter, Str, regex_escape};
use crate::pattern::path::{PathBase, PathPattern, Segment};

/// Where a pattern starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    Root,
    /// A path anchor (`up` levels above it): a parameter with a regex-escaped twin.
    Base(PathBase, u8),
    /// A directory parameter with no regex twin (greywall's own directories).
    Dir(Param),
}

pub const CWD: Anchor = Anchor::Base(PathBase::Cwd, 0);
pub const HOME: Anchor = Anchor::Base(PathBase::Home, 0);

impl Anchor {
    fn path_param(&self) -> Option<Param> {
        match self {
            Anchor::Root => None,
            Anchor::Base(b, up) => Some(Param::Anchor {
                base: b.clone(),
                up: *up,
                regex: false,
            }),
            Anchor::Dir(p) => Some(p.clone()),
        }
    }
}

/// A pattern with a concrete anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub anchor: Anchor,
    pub segments: Vec<Segment>,
}

/// macOS keeps these top-level folders in `/private`; Seatbelt sees the resolved path.
const PRIVATE: &[&str] = &["tmp", "var", "etc"];

impl Place {
    pub fn new(anchor: Anchor, segments: Vec<Segment>) -> Place {
        let mut segments = segments;
        if anchor == Anchor::Root
            && matches!(segments.first(), Some(Segment::Literal(l)) if PRIVATE.contains(&l.as_str()))
        {
            segments.insert(0, Segment::Literal("private".into()));
        }
        Place { anchor, segments }
    }

    /// `name` (`a/b` allowed) relative to an anchor.
    pub fn named(anchor: Anchor, name: &str) -> Place {
        Place::new(
            anchor,
            name.split('/')
                .map(|s| Segment::Literal(s.to_string()))
                .collect(),
        )
    }

    /// A policy pattern; `Err` when it climbs further above the working directory than
    /// profiles can follow.
    pub fn of(p: &PathPattern) -> Result<Place, String> {
        let anchor = match (&p.base, p.up) {
            (PathBase::Root, _) => Anchor::Root,
            (b, n) => match u8::try_from(n) {
                Ok(n) if n <= MAX_UP => Anchor::Base(b.clone(), n),
                _ => {
                    return Err(format!(
                        "more than {MAX_UP} `..` above a directory cannot be expressed"
                    ));
                }
            },
        };
        Ok(Place::new(anchor, p.segments.clone()))
    }

    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    fn literal_path(&self, n: usize) -> Str {
        let mut rest = String::new();
        for s in &self.segments[..n] {
            if let Segment::Literal(l) = s {
                rest.push('/');
                rest.push_str(l);
            }
        }
        match self.anchor.path_param() {
            None if rest.is_empty() => Str::lit("/"),
            None => Str::lit(rest),
            Some(p) => Str::join(vec![Str::Param(p.name()), Str::lit(rest)]),
        }
    }

    fn regex(&self, n: usize, tail: &str) -> Result<Str, String> {
        let mut re = String::new();
        for s in &self.segments[..n] {
            match s {
                Segment::Literal(l) => {
                    re.push('/');
                    re.push_str(&regex_escape(l));
                }
                Segment::Glob(g) => {
                    re.push('/');
                    re.push_str(&glob_regex(g)?);
                }
                Segment::AnyDepth => re.push_str("(/[^/]+)*"),
            }
        }
        re.push_str(tail);
        Ok(match &self.anchor {
            Anchor::Root => Str::lit(format!("^{re}")),
            Anchor::Base(b, up) => {
                let r = Param::Anchor {
                    base: b.clone(),
                    up: *up,
                    regex: true,
                };
                Str::join(vec![Str::lit("^"), Str::Param(r.name()), Str::lit(re)])
            }
            Anchor::Dir(p) => return Err(format!("no glob can start at {p}")),
        })
    }

    /// The filter for everything the pattern covers.
    pub fn cover(&self) -> Result<Filter, String> {
        if self.is_literal() {
            return Ok(Filter::subpath(self.literal_path(self.segments.len())));
        }
        Ok(Filter::regex(self.regex(self.segments.len(), "(/.*)?$")?))
    }

    /// The filter for exactly what the first `n` segments match (no descendants).
    pub fn exact(&self, n: usize) -> Result<Filter, String> {
        let n = n.min(self.segments.len());
        if self.segments[..n]
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
        {
            return Ok(Filter::literal(self.literal_path(n)));
        }
        Ok(Filter::regex(self.regex(n, "$")?))
    }

    /// Filters that stop a rename from moving what the pattern covers out of its reach: the
    /// pattern's own matches, each literal component on the way down to them, and (for
    /// parameter anchors) the anchor and all its ancestors.
    pub fn unlink_guard(&self) -> Result<Vec<Filter>, String> {
        let mut out = Vec::new();
        match &self.anchor {
            Anchor::Root => {}
            Anchor::Base(PathBase::Cwd, 0) => {
                out.push(Filter::regex(Str::Param(Param::CwdAncestorsRe.name())));
            }
            Anchor::Base(PathBase::Home, 0) => {
                out.push(Filter::regex(Str::Param(Param::HomeAncestorsRe.name())));
            }
            other => {
                if let Some(p) = other.path_param() {
                    out.push(Filter::literal(Str::Param(p.name())));
                }
            }
        }
        for n in 1..=self.segments.len() {
            if matches!(self.segments[n - 1], Segment::Literal(_)) || n == self.segments.len() {
                out.push(self.exact(n)?);
            }
        }
        if self.anchor == Anchor::Root {
            // Ancestors of a literal root path are the literal prefixes themselves, above.
            out.insert(0, Filter::literal(Str::lit("/")));
        }
        let mut seen = Vec::new();
        out.retain(|f| {
            let keep = !seen.contains(f);
            seen.push(f.clone());
            keep
        });
        Ok(out)
    }
}

/// One glob segment as a regex over one path component.
pub fn glob_regex(g: &str) -> Result<String, String> {
    let chars: Vec<char> = g.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '\\' => {
                if let Some(c) = chars.get(i + 1) {
                    out.push_str(&regex_escape(&c.to_string()));
                    i += 1;
                } else {
                    out.push_str(r"\\");
                }
            }
            '[' => {
                let (re, next) = class(&chars, i)?;
                out.push_str(&re);
                i = next;
                continue;
            }
            c => out.push_str(&regex_escape(&c.to_string())),
        }
        i += 1;
    }
    Ok(out)
}

/// A `[...]` class starting at `p[start]`: its regex and the index after `]`.
fn class(p: &[char], start: usize) -> Result<(String, usize), String> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut singles: Vec<char> = Vec::new();
    let mut ranges: Vec<(char, char)> = Vec::new();
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        let lo = p[i];
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|h| *h != ']') {
            ranges.push((lo, p[i + 2]));
            i += 3;
        } else {
            singles.push(lo);
            i += 1;
        }
    }
    if i >= p.len() {
        return Err("unclosed `[` in a glob".into());
    }
    let plain = |c: char| c.is_ascii_graphic() || c == ' ';
    for c in singles
        .iter()
        .chain(ranges.iter().flat_map(|(a, b)| [a, b]))
    {
        if !plain(*c) || matches!(c, '\\' | '[') {
            return Err(format!(
                "the character class `{}` holds {c:?}, which a Seatbelt regex class cannot be trusted to read the same way",
                p[start..=i].iter().collect::<String>()
            ));
        }
    }
    for (a, b) in &ranges {
        if a > b || matches!(a, ']' | '^' | '-') || matches!(b, ']' | '^' | '-') {
            return Err(format!(
                "the range `{a}-{b}` in a glob class cannot be expressed in a Seatbelt regex"
            ));
        }
    }
    let mut body = String::new();
    if singles.contains(&']') {
        body.push(']');
    }
    for c in &singles {
        if !matches!(c, ']' | '^' | '-') {
            body.push(*c);
        }
    }
    for (a, b) in &ranges {
        body.push(*a);
        body.push('-');
        body.push(*b);
    }
    if singles.contains(&'^') {
        body.push('^');
    }
    if singles.contains(&'-') {
        body.push('-');
    }
    let re = if negate {
        format!("[^{body}/]")
    } else if body == "^" {
        r"\^".to_string()
    } else if body == "^-" {
        "[-^]".to_string()
    } else {
        format!("[{body}]")
    };
    Ok((re, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert_eq!(glob_regex("*.key").unwrap(), r"[^/]*\.key");
        assert_eq!(glob_regex("id_?").unwrap(), r"id_[^/]");
        assert_eq!(glob_regex("[!a-c]x").unwrap(), r"[^a-c/]x");
        assert_eq!(glob_regex("[]^-]").unwrap(), r"[]^-]");
        assert_eq!(glob_regex("[^]").unwrap_or_default(), "");
        assert_eq!(glob_regex("a\\*b(c)").unwrap(), r"a\*b\(c\)");
        assert!(glob_regex("[é]").is_err());
        assert!(glob_regex("[z-a]").is_err());
        assert_eq!(glob_regex("[^^]").unwrap(), "[^^/]");
        assert_eq!(glob_regex("[-^]").unwrap(), "[-^]");
    }
}
