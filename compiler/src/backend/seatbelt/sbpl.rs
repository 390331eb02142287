//! The SBPL text layer: typed rules in, profile text out.
//!
//! This is the only code that writes profile text. Every string goes through [`quote`], every
//! path that depends on the run goes through `(param "…")`, and comments carry no policy text,
//! so nothing a policy or a run supplies can change the structure of a profile.

use std::fmt::Write as _;

/// A string-valued expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Str {
    /// A string known when the profile is compiled.
    Lit(String),
    /// `(param "NAME")`: a value given with `sandbox-exec -D NAME=VALUE`.
    Param(String),
    /// `(string-append …)`.
    Concat(Vec<Str>),
}

impl Str {
    pub fn lit(s: impl Into<String>) -> Str {
        Str::Lit(s.into())
    }

    /// `a` followed by `b`, merging adjacent literals and dropping empty ones.
    pub fn join(parts: Vec<Str>) -> Str {
        let mut out: Vec<Str> = Vec::new();
        for p in parts {
            let items = match p {
                Str::Concat(v) => v,
                other => vec![other],
            };
            for item in items {
                match (out.last_mut(), item) {
                    (_, Str::Lit(s)) if s.is_empty() => {}
                    (Some(Str::Lit(prev)), Str::Lit(s)) => prev.push_str(&s),
                    (_, item) => out.push(item),
                }
            }
        }
        match out.len() {
            0 => Str::Lit(String::new()),
            1 => out.remove(0),
            _ => Str::Concat(out),
        }
    }

    fn render(&self, out: &mut String) {
        match self {
            Str::Lit(s) => out.push_str(&quote(s)),
            Str::Param(name) => {
                out.push_str("(param ");
                out.push_str(&quote(name));
                out.push(')');
            }
            Str::Concat(parts) => {
                out.push_str("(string-append");
                for p in parts {
                    out.push(' ');
                    p.render(out);
                }
                out.push(')');
            }
        }
    }
}

/// An argument of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Str(Str),
    /// A bare symbol from the fixed vocabulary (`same-sandbox`, `AF_SYSTEM`, `CHARACTER-DEVICE`).
    Sym(&'static str),
    /// A number (socket protocol).
    Num(u32),
    Filter(Filter),
}

/// A filter: `(literal "/dev/null")`, `(require-all …)`, `(remote tcp "localhost:3128")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: &'static str,
    pub args: Vec<Arg>,
}

impl Filter {
    pub fn new(name: &'static str, args: Vec<Arg>) -> Filter {
        Filter { name, args }
    }
    pub fn literal(s: Str) -> Filter {
        Filter::new("literal", vec![Arg::Str(s)])
    }
    pub fn subpath(s: Str) -> Filter {
        Filter::new("subpath", vec![Arg::Str(s)])
    }
    pub fn regex(s: Str) -> Filter {
        Filter::new("regex", vec![Arg::Str(s)])
    }
    pub fn text(name: &'static str, s: &str) -> Filter {
        Filter::new(name, vec![Arg::Str(Str::lit(s))])
    }

    fn render(&self, out: &mut String) {
        out.push('(');
        out.push_str(self.name);
        for a in &self.args {
            out.push(' ');
            match a {
                Arg::Str(s) => s.render(out),
                Arg::Sym(s) => out.push_str(s),
                Arg::Num(n) => {
                    let _ = write!(out, "{n}");
                }
                Arg::Filter(f) => f.render(out),
            }
        }
        out.push(')');
    }
}

/// One rule: `(allow|deny OP… FILTER…)`. No filters: the operations in general.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub ops: Vec<&'static str>,
    pub filters: Vec<Filter>,
}

/// A profile under construction: rules in order, with section comments.
#[derive(Debug, Clone, Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// A comment line. Only compile-time constants and numbers go here, never policy text.
    pub fn comment(&mut self, c: &str) {
        debug_assert!(!c.contains('\n'));
        for line in c.lines() {
            self.out.push_str(";; ");
            self.out.push_str(line);
            self.out.push('\n');
        }
    }

    pub fn blank(&mut self) {
        self.out.push('\n');
    }

    pub fn raw_form(&mut self, form: &str) {
        self.out.push_str(form);
        self.out.push('\n');
    }

    pub fn rule(&mut self, r: &Rule) {
        if r.ops.is_empty() {
            return;
        }
        let head = if r.allow { "(allow" } else { "(deny" };
        self.out.push_str(head);
        for op in &r.ops {
            self.out.push(' ');
            self.out.push_str(op);
        }
        if r.filters.len() <= 1 {
            for f in &r.filters {
                self.out.push(' ');
                f.render(&mut self.out);
            }
        } else {
            for f in &r.filters {
                self.out.push_str("\n  ");
                f.render(&mut self.out);
            }
        }
        self.out.push_str(")\n");
    }

    pub fn allow(&mut self, ops: &[&'static str], filters: Vec<Filter>) {
        self.rule(&Rule {
            allow: true,
            ops: ops.to_vec(),
            filters,
        });
    }

    /// A deny with no filter would deny the operations everywhere: callers pass at least one.
    pub fn deny(&mut self, ops: &[&'static str], filters: Vec<Filter>) {
        if filters.is_empty() {
            return;
        }
        self.rule(&Rule {
            allow: false,
            ops: ops.to_vec(),
            filters,
        });
    }

    /// An allow that is skipped when there is nothing to allow (an empty filter list would
    /// allow the operations everywhere).
    pub fn allow_some(&mut self, ops: &[&'static str], filters: Vec<Filter>) {
        if !filters.is_empty() {
            self.allow(ops, filters);
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// An SBPL string literal. Only `"` and `\` are escaped; every other character, including
/// non-ASCII, stands for itself. Control characters cannot reach here (path patterns refuse
/// them); should one, it becomes `?`, so a literal is always one line.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Escapes the characters Seatbelt's regular expressions treat specially, so that `s` matches
/// itself only.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(
            c,
            '.' | '^' | '$' | '|' | '(' | ')' | '[' | ']' | '{' | '}' | '*' | '+' | '?' | '\\'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("é\n"), "\"é?\"");
    }

    #[test]
    fn regex_escaping() {
        assert_eq!(
            regex_escape("/a.b/(x)[y]*+?^$|{}\\"),
            r"/a\.b/\(x\)\[y\]\*\+\?\^\$\|\{\}\\"
        );
    }

    #[test]
    fn joins_merge_literals() {
        let j = Str::join(vec![
            Str::lit("^"),
            Str::Param("CWD_RE".into()),
            Str::lit("/a"),
            Str::lit("b"),
        ]);
        assert_eq!(
            j,
            Str::Concat(vec![
                Str::lit("^"),
                Str::Param("CWD_RE".into()),
                Str::lit("/ab")
            ])
        );
        let mut t = String::new();
        j.render(&mut t);
        assert_eq!(t, r#"(string-append "^" (param "CWD_RE") "/ab")"#);
    }
}
