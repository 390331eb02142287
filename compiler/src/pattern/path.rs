//! Filesystem path patterns (`allowRead`, `denyRead`, `allowWrite`, `denyWrite`,
//! `allowUnixSockets`).
//!
//! A pattern is anchored at the filesystem root (`/x`), the home directory (`~`, `~/x`) or the
//! working directory (`.`, `./x`, `../x`, and any other relative path or glob, as Greywall
//! does on Linux). Globs: `*` and `?` within one path segment, `[abc]`/`[!a-z]` classes, and
//! `**` as a whole segment for any number of segments (`a/**/b` included).
//!
//! A pattern covers the paths it matches **and everything below them**: `~/.cache` and
//! `~/.cache/**` mean the same, and `~/.claude*` covers `~/.claude.json` and all of
//! `~/.claude/`. Paths are normalised lexically (`.` and `..` segments, repeated slashes);
//! symlinks are resolved later, by the resolve pass.

use std::fmt;

use super::PatternError;
use crate::diagnostic::Code;

/// What a pattern is relative to.
///
/// Besides `/`, `~` and the working directory, a pattern may start at a built-in location
/// that is only known when the policy is resolved on a machine (`$tmp`, `$xdg_cache`,
/// `$git_root`, `$env.NAME`, …); see [`Anchors`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathBase {
    Root,
    Home,
    Cwd,
    /// `$tmp`: the temporary directory.
    Tmp,
    /// `$xdg_config`: `$XDG_CONFIG_HOME`, or `~/.config`.
    XdgConfig,
    /// `$xdg_cache`: `$XDG_CACHE_HOME`, or `~/.cache`.
    XdgCache,
    /// `$xdg_data`: `$XDG_DATA_HOME`, or `~/.local/share`.
    XdgData,
    /// `$xdg_state`: `$XDG_STATE_HOME`, or `~/.local/state`.
    XdgState,
    /// `$git_root`: the top of the git work tree around the working directory.
    GitRoot,
    /// `$git_common`: a linked worktree's common git directory (the repository's `.git`).
    GitCommon,
    /// `$env.NAME`: the value of an environment variable (an absolute path).
    Env(String),
}

impl PathBase {
    /// The built-in anchors written `$name`, with their names.
    pub const NAMED: &'static [(&'static str, PathBase)] = &[
        ("tmp", PathBase::Tmp),
        ("xdg_config", PathBase::XdgConfig),
        ("xdg_cache", PathBase::XdgCache),
        ("xdg_data", PathBase::XdgData),
        ("xdg_state", PathBase::XdgState),
        ("git_root", PathBase::GitRoot),
        ("git_common", PathBase::GitCommon),
    ];

    /// The `$name` spelling of an anchor (`None` for `/`, `~` and the working directory).
    pub fn anchor_name(&self) -> Option<String> {
        match self {
            PathBase::Env(n) => Some(format!("env.{n}")),
            b => Self::NAMED
                .iter()
                .find(|(_, v)| v == b)
                .map(|(n, _)| (*n).to_string()),
        }
    }
}

/// Where the built-in anchors are on one machine. `None`: the anchor does not exist here (no
/// git repository, an unset variable), and rules starting at it match nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anchors {
    pub home: String,
    pub cwd: String,
    pub tmp: String,
    pub xdg_config: String,
    pub xdg_cache: String,
    pub xdg_data: String,
    pub xdg_state: String,
    pub git_root: Option<String>,
    pub git_common: Option<String>,
    /// Values of the environment variables the policy names.
    pub env: Vec<(String, String)>,
}

impl Anchors {
    /// The defaults derived from the home and working directories alone: XDG directories at
    /// their standard places, `/tmp`, the working directory as the git root.
    pub fn defaults(home: &str, cwd: &str) -> Anchors {
        let home_t = home.trim_end_matches('/');
        Anchors {
            home: home.to_string(),
            cwd: cwd.to_string(),
            tmp: "/tmp".to_string(),
            xdg_config: format!("{home_t}/.config"),
            xdg_cache: format!("{home_t}/.cache"),
            xdg_data: format!("{home_t}/.local/share"),
            xdg_state: format!("{home_t}/.local/state"),
            git_root: Some(cwd.to_string()),
            git_common: Some(format!("{}/.git", cwd.trim_end_matches('/'))),
            env: Vec::new(),
        }
    }

    fn base(&self, base: &PathBase) -> Option<&str> {
        Some(match base {
            PathBase::Root => "/",
            PathBase::Home => &self.home,
            PathBase::Cwd => &self.cwd,
            PathBase::Tmp => &self.tmp,
            PathBase::XdgConfig => &self.xdg_config,
            PathBase::XdgCache => &self.xdg_cache,
            PathBase::XdgData => &self.xdg_data,
            PathBase::XdgState => &self.xdg_state,
            PathBase::GitRoot => self.git_root.as_deref()?,
            PathBase::GitCommon => self.git_common.as_deref()?,
            PathBase::Env(n) => self
                .env
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .filter(|v| v.starts_with('/'))?,
        })
    }
}

/// One segment of a normalised pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// A segment with `*`, `?` or `[...]`.
    Glob(String),
    /// `**`: zero or more segments.
    AnyDepth,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    pub base: PathBase,
    /// Number of leading `..` that climb above the base.
    pub up: u32,
    pub segments: Vec<Segment>,
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        match &self.base {
            PathBase::Root => {}
            PathBase::Home => parts.push("~".into()),
            PathBase::Cwd => {
                if self.up == 0 {
                    parts.push(".".into());
                }
            }
            other => parts.push(format!("${}", other.anchor_name().unwrap_or_default())),
        }
        for _ in 0..self.up {
            parts.push("..".into());
        }
        for s in &self.segments {
            parts.push(match s {
                Segment::Literal(l) => escape_literal(l),
                Segment::Glob(g) => g.clone(),
                Segment::AnyDepth => "**".into(),
            });
        }
        if self.base == PathBase::Root {
            write!(f, "/{}", parts.join("/"))
        } else {
            f.write_str(&parts.join("/"))
        }
    }
}

impl PathPattern {
    pub fn parse(raw: &str) -> Result<PathPattern, PatternError> {
        if raw.is_empty() {
            return Err(PatternError::new(Code::EmptyString, "empty path"));
        }
        if raw.contains('\0') {
            return Err(PatternError::new(
                Code::InvalidPath,
                "path contains a NUL byte",
            ));
        }
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(PatternError::new(
                Code::InvalidPath,
                format!("path contains the control character {c:?}"),
            ));
        }
        if raw.trim() != raw {
            return Err(PatternError::new(
                Code::InvalidPath,
                "path has leading or trailing whitespace",
            )
            .help(format!("write \"{}\"", raw.trim())));
        }
        let (base, rest) = if let Some(r) = raw.strip_prefix('/') {
            (PathBase::Root, r)
        } else if raw == "~" {
            (PathBase::Home, "")
        } else if let Some(r) = raw.strip_prefix("~/") {
            (PathBase::Home, r)
        } else if raw.starts_with('~') {
            return Err(
                PatternError::new(Code::InvalidPath, "`~user` paths are not supported")
                    .help("write the absolute path, or `~/` for your own home directory"),
            );
        } else if let Some(var) = raw.strip_prefix('$') {
            let (name, rest) = var.split_once('/').unwrap_or((var, ""));
            let name = name
                .strip_prefix('{')
                .and_then(|n| n.strip_suffix('}'))
                .unwrap_or(name);
            let base = match name {
                "home" => PathBase::Home,
                "cwd" => PathBase::Cwd,
                n => match n.strip_prefix("env.") {
                    Some(v) if is_env_name(v) => PathBase::Env(v.to_string()),
                    _ => match PathBase::NAMED.iter().find(|(k, _)| *k == n) {
                        Some((_, b)) => b.clone(),
                        None => {
                            return Err(PatternError::new(
                                Code::InvalidPath,
                                format!("`${name}` is not a built-in path"),
                            )
                            .help(
                                "paths may start with $home, $cwd, $tmp, $xdg_config, $xdg_cache, \
                                 $xdg_data, $xdg_state, $git_root, $git_common or $env.NAME",
                            ));
                        }
                    },
                },
            };
            (base, rest)
        } else {
            (PathBase::Cwd, raw)
        };

        let mut up = 0u32;
        let mut segments: Vec<Segment> = Vec::new();
        for part in rest.split('/') {
            match part {
                "" | "." => {}
                ".." => match segments.last() {
                    Some(Segment::Literal(_)) => {
                        segments.pop();
                    }
                    Some(_) => {
                        return Err(PatternError::new(
                            Code::InvalidPath,
                            "`..` after a glob segment is ambiguous",
                        ));
                    }
                    None => {
                        if base != PathBase::Root {
                            up += 1;
                        }
                    }
                },
                "**" => {
                    if segments.last() != Some(&Segment::AnyDepth) {
                        segments.push(Segment::AnyDepth);
                    }
                }
                p if p.contains("**") => {
                    return Err(PatternError::new(
                        Code::InvalidGlob,
                        format!("`**` must be a whole path segment, not part of `{p}`"),
                    )
                    .help("use `*` within a segment, or `**/` for any number of directories"));
                }
                p if is_glob(p) => {
                    validate_glob(p)?;
                    segments.push(Segment::Glob(p.to_string()));
                }
                p => segments.push(Segment::Literal(unescape(p))),
            }
        }
        // `dir/**` covers the same paths as `dir`.
        if segments.last() == Some(&Segment::AnyDepth) && segments.len() > 1 {
            segments.pop();
        }
        Ok(PathPattern { base, up, segments })
    }

    pub fn is_glob(&self) -> bool {
        self.segments
            .iter()
            .any(|s| !matches!(s, Segment::Literal(_)))
    }

    /// The pattern with its base replaced by concrete absolute paths (`home`, `cwd` are
    /// absolute, `/`-separated, without a trailing slash). Other anchors take their
    /// [`Anchors::defaults`]; an `$env.NAME` anchor becomes a path that never exists
    /// (`/$env.NAME/…`). [`PathPattern::absolute_in`] uses a machine's real anchors.
    pub fn absolute(&self, home: &str, cwd: &str) -> AbsPattern {
        match self.absolute_in(&Anchors::defaults(home, cwd)) {
            Some(a) => a,
            None => {
                let mut segments = vec![Segment::Literal(format!(
                    "${}",
                    self.base.anchor_name().unwrap_or_default()
                ))];
                segments.extend(self.segments.iter().cloned());
                AbsPattern { segments }
            }
        }
    }

    /// The pattern with its base replaced by its place on a machine; `None` when the anchor
    /// does not exist there.
    pub fn absolute_in(&self, anchors: &Anchors) -> Option<AbsPattern> {
        let mut segs: Vec<Segment> = literal_segments(anchors.base(&self.base)?);
        for _ in 0..self.up {
            segs.pop();
        }
        segs.extend(self.segments.iter().cloned());
        Some(AbsPattern { segments: segs })
    }
}

fn is_env_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Escapes glob characters so a literal segment re-parses as the same literal.
fn escape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn literal_segments(path: &str) -> Vec<Segment> {
    path.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(|s| Segment::Literal(s.to_string()))
        .collect()
}

fn is_glob(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn validate_glob(seg: &str) -> Result<(), PatternError> {
    let chars: Vec<char> = seg.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '[' => {
                let mut j = i + 1;
                if matches!(chars.get(j), Some('!' | '^')) {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(PatternError::new(
                        Code::InvalidGlob,
                        format!("unclosed `[` in `{seg}`"),
                    )
                    .help("close the character class with `]`, or escape the bracket as `\\[`"));
                }
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// A pattern with a concrete absolute base.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AbsPattern {
    pub segments: Vec<Segment>,
}

impl fmt::Display for AbsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) | Segment::Glob(l) => l.as_str(),
                Segment::AnyDepth => "**",
            })
            .collect();
        write!(f, "/{}", parts.join("/"))
    }
}

impl AbsPattern {
    /// The literal directory the pattern starts with (before any glob).
    pub fn literal_prefix(&self) -> Vec<&str> {
        self.segments
            .iter()
            .map_while(|s| match s {
                Segment::Literal(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether the pattern matches `path` itself (an absolute `/`-separated path).
    pub fn matches_exact(&self, path: &str) -> bool {
        let names: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match_segments(&self.segments, &names)
    }

    /// Whether the pattern covers `path`: matches it or one of its ancestors.
    pub fn covers(&self, path: &str) -> bool {
        let names: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        (0..=names.len()).any(|n| match_segments(&self.segments, &names[..n]))
    }

    /// True if everything `self` covers is also covered by `other` (a sound, incomplete check:
    /// it answers `true` only when sure).
    pub fn is_covered_by(&self, other: &AbsPattern) -> bool {
        if self == other {
            return true;
        }
        let prefix = self.literal_prefix();
        other.covers(&format!("/{}", prefix.join("/")))
    }
}

fn match_segments(pat: &[Segment], names: &[&str]) -> bool {
    match pat.split_first() {
        None => names.is_empty(),
        Some((Segment::AnyDepth, rest)) => {
            (0..=names.len()).any(|skip| match_segments(rest, &names[skip..]))
        }
        Some((seg, rest)) => match names.split_first() {
            None => false,
            Some((name, more)) => {
                let ok = match seg {
                    Segment::Literal(l) => l == name,
                    Segment::Glob(g) => glob_segment(g, name),
                    Segment::AnyDepth => false,
                };
                ok && match_segments(rest, more)
            }
        },
    }
}

/// Whether the absolute path `path` is `root` or lies below it, component-wise (`/ab` is not
/// below `/a`; everything is below `/`).
pub fn under(path: &str, root: &str) -> bool {
    path == root
        || root == "/"
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Matches one path segment against a glob with `*`, `?`, `[...]` and `\` escapes. A leading
/// `.` in the name is matched by wildcards, as on Greywall's Linux side.
pub fn glob_segment(glob: &str, name: &str) -> bool {
    let p: Vec<char> = glob.chars().collect();
    let s: Vec<char> = name.chars().collect();
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => class_match(&p, pi, s[si]),
            Some('\\') => p.get(pi + 1).filter(|c| **c == s[si]).map(|_| pi + 2),
            Some(c) if *c == s[si] => Some(pi + 1),
            _ => None,
        };
        match step {
            Some(next) => {
                pi = next;
                si += 1;
            }
            None => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; returns the index after `]`.
fn class_match(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        let lo = p[i];
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|h| *h != ']') {
            let hi = p[i + 2];
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    (matched != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_is_component_wise() {
        assert!(under("/a/b", "/a"));
        assert!(under("/a", "/a"));
        assert!(!under("/ab", "/a"));
        assert!(under("/x", "/"));
    }

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }
    fn abs(s: &str) -> AbsPattern {
        p(s).absolute("/home/u", "/work/proj")
    }

    #[test]
    fn normalisation_and_display() {
        assert_eq!(p("~").to_string(), "~");
        assert_eq!(p("~/.cache/**").to_string(), "~/.cache");
        assert_eq!(p("~/.cache/").to_string(), "~/.cache");
        assert_eq!(p(".").to_string(), ".");
        assert_eq!(p("./src/../lib//x").to_string(), "./lib/x");
        assert_eq!(p("*.key").to_string(), "./*.key");
        assert_eq!(p("../sibling").to_string(), "../sibling");
        assert_eq!(p("/a/../../b").to_string(), "/b");
        assert_eq!(p("**/.env").to_string(), "./**/.env");
        assert_eq!(p("src"), p("./src"));
        assert_eq!(
            p("$git_root/.git/hooks").to_string(),
            "$git_root/.git/hooks"
        );
        assert_eq!(p("${xdg_cache}/npm").to_string(), "$xdg_cache/npm");
        assert_eq!(
            p("$env.CARGO_HOME/registry").to_string(),
            "$env.CARGO_HOME/registry"
        );
        assert_eq!(p("$home/.ssh"), p("~/.ssh"));
        assert_eq!(p("$cwd/src"), p("./src"));
        assert_eq!(p("$tmp").base, PathBase::Tmp);
    }

    #[test]
    fn anchors_resolve() {
        let mut a = Anchors::defaults("/home/u", "/w/p/sub");
        a.git_root = Some("/w/p".into());
        assert_eq!(
            p("$git_root/.git/hooks")
                .absolute_in(&a)
                .unwrap()
                .to_string(),
            "/w/p/.git/hooks"
        );
        assert_eq!(
            p("$xdg_cache/x").absolute_in(&a).unwrap().to_string(),
            "/home/u/.cache/x"
        );
        assert!(p("$env.NOPE/x").absolute_in(&a).is_none());
        a.env.push(("NOPE".into(), "/opt/n".into()));
        assert_eq!(
            p("$env.NOPE/x").absolute_in(&a).unwrap().to_string(),
            "/opt/n/x"
        );
        a.git_root = None;
        assert!(p("$git_root").absolute_in(&a).is_none());
    }

    #[test]
    fn rejects() {
        assert_eq!(PathPattern::parse("").unwrap_err().code, Code::EmptyString);
        assert_eq!(
            PathPattern::parse("~bob/x").unwrap_err().code,
            Code::InvalidPath
        );
        assert_eq!(
            PathPattern::parse("$HOME/x").unwrap_err().code,
            Code::InvalidPath
        );
        assert_eq!(
            PathPattern::parse("$git_rot/x").unwrap_err().code,
            Code::InvalidPath
        );
        assert_eq!(
            PathPattern::parse("a\0b").unwrap_err().code,
            Code::InvalidPath
        );
        assert_eq!(
            PathPattern::parse("a/[bc").unwrap_err().code,
            Code::InvalidGlob
        );
        assert_eq!(
            PathPattern::parse("a/b**").unwrap_err().code,
            Code::InvalidGlob
        );
        assert_eq!(
            PathPattern::parse(" a").unwrap_err().code,
            Code::InvalidPath
        );
    }

    #[test]
    fn matching_covers_descendants() {
        let a = abs("~/.claude*");
        assert!(a.covers("/home/u/.claude.json"));
        assert!(a.covers("/home/u/.claude/settings.json"));
        assert!(!a.covers("/home/u/.config"));
        let e = abs("**/.env");
        assert!(e.covers("/work/proj/.env"));
        assert!(e.covers("/work/proj/a/b/.env"));
        assert!(!e.covers("/work/other/.env"));
        let m = abs("a/**/b");
        assert!(m.covers("/work/proj/a/b"));
        assert!(m.covers("/work/proj/a/x/y/b/z"));
        assert!(!m.covers("/work/proj/a/x/c"));
        let k = abs("*.key");
        assert!(k.covers("/work/proj/server.key"));
        assert!(!k.covers("/work/proj/sub/server.key"));
        let c = abs("/dev/tty[0-9]");
        assert!(c.matches_exact("/dev/tty3") && !c.matches_exact("/dev/ttyS"));
        let n = abs("/x/[!a]*");
        assert!(n.matches_exact("/x/bcd") && !n.matches_exact("/x/abc"));
        assert!(abs("~").covers("/home/u/anything"));
        assert!(abs("/").covers("/etc/passwd"));
    }

    #[test]
    fn coverage() {
        assert!(abs("~/.cache/x").is_covered_by(&abs("~/.cache")));
        assert!(abs("~/.cache/**/*.tmp").is_covered_by(&abs("~/.cache")));
        assert!(!abs("~/.cache").is_covered_by(&abs("~/.cache/x")));
        assert!(abs("~/.claude/**").is_covered_by(&abs("~/.claude*")));
        assert!(!abs("**/.env").is_covered_by(&abs("*.key")));
    }

    #[test]
    fn escaped_glob_chars_are_literal() {
        let q = p("/a/\\[x\\]");
        assert!(!q.is_glob());
        assert_eq!(p(&q.to_string()), q);
        assert!(q.absolute("/h", "/c").matches_exact("/a/[x]"));
    }
}
