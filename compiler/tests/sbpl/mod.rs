//! A small SBPL reader and evaluator for the tests of the macOS backend.
//!
//! [`read`] parses a profile and refuses anything outside the vocabulary greywall means to
//! emit: unbalanced forms, unknown operations or filters, filters with the wrong arguments,
//! strings with escapes other than `\"` and `\\`, parameters the header does not declare.
//! [`Profile::decide`] evaluates the parsed rules the way Seatbelt does: the last matching rule
//! wins. Paths are compared as given (Seatbelt sees resolved paths; tests pass resolved ones).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use greywall_compiler::backend::seatbelt::params::{HEADER, Param};

/// Operations greywall emits, and what each stands for.
pub const OPERATIONS: &[&str] = &[
    "default",
    "process-exec",
    "process-fork",
    "process-info*",
    "signal",
    "mach-priv-task-port",
    "user-preference-read",
    "mach-host*",
    "mach-lookup",
    "ipc-posix-sem",
    "ipc-posix-shm*",
    "iokit-open",
    "system-socket",
    "sysctl-read",
    "sysctl-write",
    "file-read-metadata",
    "file-read*",
    "file-write*",
    "file-write-unlink",
    "file-ioctl",
    "network*",
    "network-outbound",
    "network-bind",
    "network-inbound",
    "pseudo-tty",
];

/// Filters greywall emits, with the shape of their arguments.
pub const FILTERS: &[(&str, Shape)] = &[
    ("literal", Shape::PathExpr),
    ("subpath", Shape::PathExpr),
    ("regex", Shape::PathExpr),
    ("global-name", Shape::Text),
    ("sysctl-name", Shape::Text),
    ("sysctl-name-prefix", Shape::Text),
    ("iokit-registry-entry-class", Shape::Text),
    ("target", Shape::Symbol(&["same-sandbox"])),
    ("socket-domain", Shape::Symbol(&["AF_SYSTEM"])),
    ("socket-protocol", Shape::Number),
    ("require-all", Shape::Filters),
    ("remote", Shape::Address),
    ("local", Shape::Address),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One string expression: a literal, `(param "X")` or `(string-append …)` of those.
    PathExpr,
    /// One literal string.
    Text,
    Symbol(&'static [&'static str]),
    Number,
    Filters,
    /// `tcp|ip` and a literal `localhost:PORT|*`.
    Address,
}

/// A parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    List(Vec<Expr>),
    Str(String),
    Sym(String),
    Num(u64),
}

/// A string expression, resolved lazily against parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrExpr {
    Lit(String),
    Param(String),
    Concat(Vec<StrExpr>),
}

impl StrExpr {
    pub fn eval(&self, params: &BTreeMap<String, String>) -> String {
        match self {
            StrExpr::Lit(s) => s.clone(),
            StrExpr::Param(p) => params
                .get(p)
                .unwrap_or_else(|| panic!("parameter {p} has no value"))
                .clone(),
            StrExpr::Concat(v) => v.iter().map(|e| e.eval(params)).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Literal(StrExpr),
    Subpath(StrExpr),
    Regex(StrExpr),
    /// `(remote|local tcp|ip "localhost:PORT|*")`.
    Address {
        proto: String,
        port: Option<u16>,
    },
    /// Filters on things the tests do not model (mach names, sysctls, targets…).
    Other(String),
    All(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub ops: Vec<String>,
    pub filters: Vec<Filter>,
    /// 1-based line where the rule starts.
    pub line: usize,
    /// The comment line nearest above the rule (its section), without `;; `.
    pub section: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub params: Vec<String>,
    pub rules: Vec<Rule>,
}

/// What an operation acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Path(String),
    /// A TCP connection to (or bind on) loopback at this port.
    Loopback(u16),
    /// Anything else (a remote host, a mach service).
    Other,
}

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            ' ' | '\t' => i += 1,
            ';' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '(' => {
                out.push((Tok::Open, line));
                i += 1;
            }
            ')' => {
                out.push((Tok::Close, line));
                i += 1;
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("line {start}: unterminated string")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => match chars.get(i + 1) {
                            Some(e @ ('"' | '\\')) => {
                                s.push(*e);
                                i += 2;
                            }
                            other => {
                                return Err(format!("line {line}: escape \\{other:?} in a string"));
                            }
                        },
                        Some(c) if c.is_control() => {
                            return Err(format!(
                                "line {line}: control character {c:?} in a string"
                            ));
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Str(s), start));
            }
            c if c.is_ascii_alphanumeric() || "*-_.:+/".contains(c) => {
                let mut s = String::new();
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "*-_.:+/".contains(chars[i]))
                {
                    s.push(chars[i]);
                    i += 1;
                }
                out.push((Tok::Atom(s), line));
            }
            other => return Err(format!("line {line}: unexpected character {other:?}")),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    Str(String),
    Atom(String),
}

fn parse_forms(toks: &[(Tok, usize)]) -> Result<Vec<(Expr, usize)>, String> {
    let mut stack: Vec<(Vec<Expr>, usize)> = Vec::new();
    let mut top = Vec::new();
    for (t, line) in toks {
        let e = match t {
            Tok::Open => {
                stack.push((Vec::new(), *line));
                continue;
            }
            Tok::Close => {
                let (items, start) = stack
                    .pop()
                    .ok_or_else(|| format!("line {line}: `)` without `(`"))?;
                if stack.is_empty() {
                    top.push((Expr::List(items), start));
                    continue;
                }
                Expr::List(items)
            }
            Tok::Str(s) => Expr::Str(s.clone()),
            Tok::Atom(a) => match a.parse::<u64>() {
                Ok(n) => Expr::Num(n),
                Err(_) => Expr::Sym(a.clone()),
            },
        };
        match stack.last_mut() {
            Some((items, _)) => items.push(e),
            None => return Err(format!("line {line}: an atom outside any form")),
        }
    }
    if let Some((_, start)) = stack.last() {
        return Err(format!("line {start}: unclosed `(`"));
    }
    Ok(top)
}

fn str_expr(e: &Expr, declared: &[String], used: &mut Vec<String>) -> Result<StrExpr, String> {
    match e {
        Expr::Str(s) => Ok(StrExpr::Lit(s.clone())),
        Expr::List(items) => match items.as_slice() {
            [Expr::Sym(h), Expr::Str(name)] if h == "param" => {
                if Param::from_name(name).is_none() {
                    return Err(format!("unknown parameter {name:?}"));
                }
                if !declared.contains(name) {
                    return Err(format!("parameter {name:?} is not declared in the header"));
                }
                if !used.contains(name) {
                    used.push(name.clone());
                }
                Ok(StrExpr::Param(name.clone()))
            }
            [Expr::Sym(h), rest @ ..] if h == "string-append" && rest.len() >= 2 => {
                Ok(StrExpr::Concat(
                    rest.iter()
                        .map(|r| str_expr(r, declared, used))
                        .collect::<Result<_, _>>()?,
                ))
            }
            _ => Err(format!("not a string expression: {e:?}")),
        },
        _ => Err(format!("not a string expression: {e:?}")),
    }
}

fn filter(e: &Expr, declared: &[String], used: &mut Vec<String>) -> Result<Filter, String> {
    let Expr::List(items) = e else {
        return Err(format!("not a filter: {e:?}"));
    };
    let Some(Expr::Sym(head)) = items.first() else {
        return Err(format!("a filter without a name: {e:?}"));
    };
    let Some((_, shape)) = FILTERS.iter().find(|(n, _)| n == head) else {
        return Err(format!("unknown filter `{head}`"));
    };
    let args = &items[1..];
    let bad = || format!("filter `{head}` with arguments {args:?}");
    Ok(match shape {
        Shape::PathExpr => {
            let [a] = args else { return Err(bad()) };
            let s = str_expr(a, declared, used)?;
            match head.as_str() {
                "literal" => Filter::Literal(s),
                "subpath" => Filter::Subpath(s),
                _ => {
                    // Regexes must compile once parameters are bound; literal ones now.
                    if let StrExpr::Lit(r) = &s {
                        regex::Regex::new(r).map_err(|e| format!("regex {r:?}: {e}"))?;
                    }
                    Filter::Regex(s)
                }
            }
        }
        Shape::Text => match args {
            [Expr::Str(s)] if !s.is_empty() => Filter::Other(format!("{head} {s}")),
            _ => return Err(bad()),
        },
        Shape::Symbol(allowed) => match args {
            [Expr::Sym(s)] if allowed.contains(&s.as_str()) => Filter::Other(format!("{head} {s}")),
            _ => return Err(bad()),
        },
        Shape::Number => match args {
            [Expr::Num(n)] => Filter::Other(format!("{head} {n}")),
            _ => return Err(bad()),
        },
        Shape::Filters => {
            if args.len() < 2 {
                return Err(bad());
            }
            Filter::All(
                args.iter()
                    .map(|a| filter(a, declared, used))
                    .collect::<Result<_, _>>()?,
            )
        }
        Shape::Address => match args {
            [Expr::Sym(proto), Expr::Str(addr)] if proto == "tcp" || proto == "ip" => {
                let port = addr.strip_prefix("localhost:").ok_or_else(bad)?;
                let port = if port == "*" {
                    None
                } else {
                    Some(port.parse::<u16>().map_err(|_| bad())?)
                };
                Filter::Address {
                    proto: proto.clone(),
                    port,
                }
            }
            _ => return Err(bad()),
        },
    })
}

/// Parses and checks a profile.
pub fn read(text: &str) -> Result<Profile, String> {
    let header = text.lines().next().unwrap_or_default();
    let declared: Vec<String> = header
        .strip_prefix(HEADER)
        .ok_or("the first line does not declare the parameters")?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let forms = parse_forms(&tokenize(text)?)?;
    let mut used = Vec::new();
    let mut rules = Vec::new();
    let mut it = forms.iter();
    match it.next() {
        Some((Expr::List(v), _)) if v == &[Expr::Sym("version".into()), Expr::Num(1)] => {}
        other => {
            return Err(format!(
                "the profile does not start with (version 1): {other:?}"
            ));
        }
    }
    match it.next() {
        Some((Expr::List(v), line))
            if v == &[Expr::Sym("deny".into()), Expr::Sym("default".into())] =>
        {
            rules.push(Rule {
                allow: false,
                ops: vec!["default".into()],
                filters: vec![],
                line: *line,
                section: "(deny default)".into(),
            });
        }
        other => return Err(format!("the second form is not (deny default): {other:?}")),
    }
    for (form, line) in it {
        let Expr::List(items) = form else {
            return Err(format!("line {line}: not a form"));
        };
        let allow = match items.first() {
            Some(Expr::Sym(s)) if s == "allow" => true,
            Some(Expr::Sym(s)) if s == "deny" => false,
            other => return Err(format!("line {line}: not a rule: {other:?}")),
        };
        let mut ops = Vec::new();
        let mut filters = Vec::new();
        for item in &items[1..] {
            match item {
                Expr::Sym(op) if filters.is_empty() => {
                    if !OPERATIONS.contains(&op.as_str()) || op == "default" {
                        return Err(format!("line {line}: unknown operation `{op}`"));
                    }
                    ops.push(op.clone());
                }
                e => filters.push(
                    filter(e, &declared, &mut used).map_err(|m| format!("line {line}: {m}"))?,
                ),
            }
        }
        if ops.is_empty() {
            return Err(format!("line {line}: a rule without operations"));
        }
        if !allow && filters.is_empty() {
            return Err(format!(
                "line {line}: a deny without filters denies everything"
            ));
        }
        let lines: Vec<&str> = text.lines().collect();
        let section = lines[..line.saturating_sub(1)]
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(";; "))
            .unwrap_or_default()
            .to_string();
        rules.push(Rule {
            allow,
            ops,
            filters,
            line: *line,
            section,
        });
    }
    let mut d = declared.clone();
    d.sort();
    used.sort();
    if d != used {
        return Err(format!("declared parameters {d:?}, used {used:?}"));
    }
    Ok(Profile {
        params: declared,
        rules,
    })
}

fn op_covers(rule_op: &str, op: &str) -> bool {
    rule_op == "default"
        || rule_op == op
        || rule_op
            .strip_suffix('*')
            .is_some_and(|prefix| op.starts_with(prefix))
}

fn subpath(path: &str, root: &str) -> bool {
    root == "/" || path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

fn matches(f: &Filter, obj: &Object, params: &BTreeMap<String, String>) -> bool {
    match (f, obj) {
        (Filter::Literal(s), Object::Path(p)) => s.eval(params) == *p,
        (Filter::Subpath(s), Object::Path(p)) => subpath(p, &s.eval(params)),
        (Filter::Regex(s), Object::Path(p)) => {
            let re = s.eval(params);
            regex::Regex::new(&re)
                .unwrap_or_else(|e| panic!("regex {re:?} with parameters bound: {e}"))
                .is_match(p)
        }
        (Filter::Address { port, .. }, Object::Loopback(n)) => port.is_none_or(|p| p == *n),
        (Filter::All(v), o) => v.iter().all(|f| matches(f, o, params)),
        _ => false,
    }
}

impl Profile {
    /// The rule that decides `op` on `obj`: the last one that matches.
    pub fn decide(&self, op: &str, obj: &Object, params: &BTreeMap<String, String>) -> &Rule {
        self.rules
            .iter()
            .rev()
            .find(|r| {
                r.ops.iter().any(|o| op_covers(o, op))
                    && (r.filters.is_empty() || r.filters.iter().any(|f| matches(f, obj, params)))
            })
            .unwrap_or(&self.rules[0])
    }

    pub fn allows(&self, op: &str, obj: &Object, params: &BTreeMap<String, String>) -> bool {
        self.decide(op, obj, params).allow
    }

    /// The structure of the profile with every literal string replaced by a placeholder.
    pub fn shape(&self) -> Vec<String> {
        fn f(x: &Filter) -> String {
            match x {
                Filter::Literal(s) => format!("literal({})", s_(s)),
                Filter::Subpath(s) => format!("subpath({})", s_(s)),
                Filter::Regex(s) => format!("regex({})", s_(s)),
                Filter::Address { proto, port } => format!("addr({proto},{port:?})"),
                Filter::Other(o) => o.clone(),
                Filter::All(v) => format!("all({})", v.iter().map(f).collect::<Vec<_>>().join(",")),
            }
        }
        fn s_(s: &StrExpr) -> String {
            match s {
                StrExpr::Lit(_) => "S".into(),
                StrExpr::Param(p) => format!("${p}"),
                StrExpr::Concat(v) => v.iter().map(s_).collect::<Vec<_>>().join("+"),
            }
        }
        self.rules
            .iter()
            .map(|r| {
                format!(
                    "{} {} [{}]",
                    if r.allow { "allow" } else { "deny" },
                    r.ops.join(" "),
                    r.filters.iter().map(f).collect::<Vec<_>>().join(" ")
                )
            })
            .collect()
    }
}
