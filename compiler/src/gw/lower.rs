//! Lowering a `.gw` syntax tree to a [`Layer`], the same form the greywall.json front-end
//! produces.
//!
//! This is where words get their meaning: sections, rules, settings, variables, `include`,
//! profiles, platform blocks, best-effort markers and expectations. Every problem is reported
//! at its span and lowering goes on, so one run shows them all.

use std::collections::HashMap;
use std::path::PathBuf;

use super::ast::{Atom, AtomKind, Body, Item, Node, Part};
use crate::config::Spanned;
use crate::diagnostic::{Code, Diagnostic};
use crate::lower::{Layer, parse_host_port, parse_proxy_url};
use crate::model::{
    Entry, EnvPattern, EnvSet, ExpectOp, Expectation, List, Overlay, Platform, Policy, Section,
    Setting,
};
use crate::pattern::PatternError;
use crate::pattern::command::CommandPrefix;
use crate::pattern::domain::DomainPattern;
use crate::pattern::host::HostPattern;
use crate::pattern::path::{PathBase, PathPattern};
use crate::source::{SourceId, Span};
use crate::suggest::did_you_mean;

/// Reads the files `include` names.
pub trait Includes {
    /// Reads and parses the file `path` names, relative to the file `from`. Returns its source
    /// id, its tree and a key naming the file for cycle detection; `None` after reporting why
    /// it cannot be read.
    fn include(
        &mut self,
        from: SourceId,
        path: &str,
        via: Span,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<(SourceId, Body, PathBuf)>;
}

/// For text that is not a file: `include` is refused.
pub struct NoIncludes;

impl Includes for NoIncludes {
    fn include(
        &mut self,
        _: SourceId,
        path: &str,
        via: Span,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<(SourceId, Body, PathBuf)> {
        diags.push(
            Diagnostic::new(
                Code::GwIncludeNotFound,
                format!("cannot include `{path}` from text that is not a file"),
            )
            .at(via),
        );
        None
    }
}

/// The built-in variables. Path anchors must start a path; `$env.NAME` is one too.
pub const BUILTINS: &[&str] = &[
    "cwd",
    "home",
    "tmp",
    "xdg_config",
    "xdg_cache",
    "xdg_data",
    "xdg_state",
    "git_root",
    "git_common",
];

const TOP_KEYWORDS: &[&str] = &[
    "extends",
    "include",
    "let",
    "filesystem",
    "network",
    "commands",
    "ssh",
    "environment",
    "allow-pty",
    "on",
    "profile",
    "best-effort",
    "expect",
];
const FS_KEYWORDS: &[&str] = &["read", "write", "deny", "remove", "on", "include", "let"];
const FS_SETTINGS: &[&str] = &["default-deny-read", "allow-git-config"];
const NET_KEYWORDS: &[&str] = &["allow", "deny", "remove", "on", "include", "let"];
const NET_SETTINGS: &[&str] = &[
    "allow-all-unix-sockets",
    "allow-local-binding",
    "allow-local-outbound",
    "http-proxy-port",
    "socks-proxy-port",
    "proxy-url",
    "http-proxy-url",
    "dns-addr",
];
const CMD_KEYWORDS: &[&str] = &["allow", "deny", "remove", "on", "include", "let"];
const CMD_SETTINGS: &[&str] = &["use-defaults"];
const SSH_KEYWORDS: &[&str] = &["allow", "deny", "remove", "on", "include", "let"];
const SSH_SETTINGS: &[&str] = &["allow-all-commands", "inherit-deny"];
const ENV_KEYWORDS: &[&str] = &["pass", "drop", "set", "remove", "on", "include", "let"];
const TOP_SETTINGS: &[&str] = &["allow-pty"];

/// Lowers a parsed file. `key` names the file for include-cycle detection.
pub fn lower(
    body: &Body,
    source: SourceId,
    key: Option<PathBuf>,
    inc: &mut dyn Includes,
    diags: &mut Vec<Diagnostic>,
) -> Layer {
    let mut lx = Lx {
        diags,
        inc,
        vars: Vec::new(),
        var_index: HashMap::new(),
        stack: key.into_iter().map(|k| (k, None)).collect(),
        extends: None,
        profiles: Vec::new(),
        settings: HashMap::new(),
        source,
    };
    let mut adds = Policy::default();
    let mut removes = Policy::default();
    lx.top(
        body,
        &mut Target {
            adds: &mut adds,
            removes: &mut removes,
        },
        Where::File,
    );
    for v in &lx.vars {
        if !v.used {
            lx.diags.push(
                Diagnostic::new(
                    Code::GwUnusedVariable,
                    format!("variable `{}` is never used", v.name),
                )
                .at(v.span)
                .help("remove it, or use it as `$name`"),
            );
        }
    }
    Layer {
        extends: lx.extends,
        adds,
        removes,
        profiles: lx.profiles,
    }
}

/// Where a block of top-level statements is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    File,
    Include,
    Profile,
    Platform,
}

/// A section of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Sec {
    Top,
    Filesystem,
    Network,
    Commands,
    Ssh,
    Environment,
}

impl Sec {
    fn of(word: &str) -> Option<Sec> {
        Some(match word {
            "filesystem" => Sec::Filesystem,
            "network" => Sec::Network,
            "commands" | "command" => Sec::Commands,
            "ssh" => Sec::Ssh,
            "environment" | "env" => Sec::Environment,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Sec::Top => "the top level",
            Sec::Filesystem => "filesystem",
            Sec::Network => "network",
            Sec::Commands => "commands",
            Sec::Ssh => "ssh",
            Sec::Environment => "environment",
        }
    }

    fn keywords(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Sec::Top => (TOP_KEYWORDS, TOP_SETTINGS),
            Sec::Filesystem => (FS_KEYWORDS, FS_SETTINGS),
            Sec::Network => (NET_KEYWORDS, NET_SETTINGS),
            Sec::Commands => (CMD_KEYWORDS, CMD_SETTINGS),
            Sec::Ssh => (SSH_KEYWORDS, SSH_SETTINGS),
            Sec::Environment => (ENV_KEYWORDS, &[]),
        }
    }
}

struct Target<'t> {
    adds: &'t mut Policy,
    removes: &'t mut Policy,
}

/// A value after variables are expanded.
#[derive(Debug, Clone)]
struct Val {
    text: String,
    span: Span,
    /// The built-in path variable the value starts with, if any (`home`, `git_root`, …).
    anchor: Option<String>,
    /// Whether it was written as a bare word (keywords are recognised only then).
    bare: bool,
}

struct Var {
    name: String,
    vals: Vec<Val>,
    list: bool,
    span: Span,
    used: bool,
}

struct Lx<'a> {
    diags: &'a mut Vec<Diagnostic>,
    inc: &'a mut dyn Includes,
    vars: Vec<Var>,
    /// Position of each variable in `vars`, by name.
    var_index: HashMap<String, usize>,
    /// Files being included, with the `include` that brought each in.
    stack: Vec<(PathBuf, Option<Span>)>,
    extends: Option<Spanned<String>>,
    profiles: Vec<(Spanned<String>, Layer)>,
    /// Settings already set, per section and platform block, for duplicate detection.
    settings: HashMap<(Sec, Option<Platform>, String, usize), Span>,
    source: SourceId,
}

/// How a rule's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Path,
    Domain,
    Host,
    Command,
    EnvPattern,
    Text,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Path => "a path",
            Kind::Domain => "a network destination",
            Kind::Host => "an SSH host",
            Kind::Command => "a command",
            Kind::EnvPattern => "a variable pattern",
            Kind::Text => "a value",
        }
    }
}

fn word_of(a: &Atom) -> Option<String> {
    a.kind.plain_word()
}

impl Lx<'_> {
    fn err(&mut self, code: Code, msg: impl Into<String>, at: Span) -> &mut Diagnostic {
        self.diags.push(Diagnostic::new(code, msg).at(at));
        let n = self.diags.len() - 1;
        &mut self.diags[n]
    }

    fn report(&mut self, e: PatternError, span: Span) {
        let mut d = Diagnostic::new(e.code, e.message).at(span);
        if let Some(h) = e.help {
            d = d.help(h);
        }
        self.diags.push(d);
    }

    /// The profile number of the current context, so settings in different profiles do not
    /// collide in duplicate detection.
    fn scope(&self) -> usize {
        self.profiles.len()
    }

    // ----- top level -------------------------------------------------------------------------

    fn top(&mut self, body: &Body, t: &mut Target<'_>, w: Where) {
        for node in &body.nodes {
            let Node::Item(item) = node else { continue };
            self.top_item(item, t, w);
        }
    }

    fn top_item(&mut self, item: &Item, t: &mut Target<'_>, w: Where) {
        let atoms = item.significant();
        let Some(first) = atoms.first() else {
            if let Some(b) = &item.block {
                self.err(Code::GwMisplaced, "a block without a statement", b.span)
                    .help = Some("name the section: `filesystem { … }`".into());
            }
            return;
        };
        let Some(kw) = word_of(first) else {
            self.not_a_keyword(first, Sec::Top);
            return;
        };
        let rest = &atoms[1..];
        if let Some(sec) = Sec::of(&kw) {
            match &item.block {
                Some(b) if rest.is_empty() => self.section(sec, &b.body, t, w == Where::Platform),
                Some(_) => {
                    self.err(
                        Code::GwUnknownStatement,
                        format!("unexpected words after `{kw}`"),
                        rest[0].span,
                    )
                    .help = Some(format!("write `{kw} {{ … }}`"));
                }
                None => {
                    self.err(
                        Code::GwMisplaced,
                        format!("`{kw}` needs a block of rules"),
                        first.span,
                    )
                    .help = Some(format!("write `{kw} {{ … }}`, with the `{{` on this line"));
                }
            }
            return;
        }
        if rest.first().is_some_and(|a| a.kind == AtomKind::Assign) {
            self.setting(
                Sec::Top,
                &kw,
                first.span,
                &rest[1..],
                t,
                w == Where::Platform,
            );
            self.no_block(item);
            return;
        }
        match kw.as_str() {
            "extends" => {
                self.no_block(item);
                if w != Where::File {
                    self.err(
                        Code::GwMisplaced,
                        "`extends` belongs at the top of a policy file",
                        first.span,
                    )
                    .help = Some("profiles, platform blocks and included fragments cannot extend; move it to the file".into());
                    return;
                }
                let Some(v) = self.single(rest, first.span, "extends", Kind::Text) else {
                    return;
                };
                if let Some(prev) = &self.extends {
                    let prev = prev.span;
                    self.err(Code::GwDuplicate, "a file extends one policy", v.span)
                        .secondary
                        .push((prev, "already extends here".into()));
                    return;
                }
                self.extends = Some(Spanned {
                    value: v.text,
                    span: v.span,
                });
            }
            "include" => {
                self.no_block(item);
                self.include(rest, first.span, Sec::Top, t, w);
            }
            "let" => {
                self.no_block(item);
                self.let_(rest, first.span);
            }
            "on" => self.platform(item, rest, first.span, Sec::Top, t, w),
            "profile" => {
                if w != Where::File && w != Where::Include {
                    self.err(
                        Code::GwMisplaced,
                        "a profile cannot be declared here",
                        first.span,
                    )
                    .help = Some("declare profiles at the top level of the file".into());
                    return;
                }
                self.profile(item, rest, first.span);
            }
            "best-effort" => self.best_effort(item, rest, first.span, t, w),
            "expect" => {
                self.no_block(item);
                if w == Where::Profile || w == Where::Platform {
                    self.err(
                        Code::GwMisplaced,
                        "expectations belong at the top level of the file",
                        first.span,
                    );
                    return;
                }
                self.expect(rest, first.span, t);
            }
            _ => self.unknown_statement(&kw, first.span, Sec::Top),
        }
    }

    fn no_block(&mut self, item: &Item) {
        if let Some(b) = &item.block {
            self.err(Code::GwMisplaced, "this statement takes no block", b.span);
        }
    }

    fn not_a_keyword(&mut self, a: &Atom, sec: Sec) {
        if matches!(a.kind, AtomKind::Stray(_) | AtomKind::Unterminated) {
            return;
        }
        let (kws, _) = sec.keywords();
        self.err(
            Code::GwUnknownStatement,
            "a statement starts with a keyword",
            a.span,
        )
        .help = Some(format!("statements in {}: {}", sec.name(), kws.join(", ")));
    }

    fn unknown_statement(&mut self, kw: &str, span: Span, sec: Sec) {
        let (kws, settings) = sec.keywords();
        let mut all: Vec<&str> = kws.to_vec();
        all.extend_from_slice(settings);
        if sec == Sec::Top {
            all.extend(["command", "env"]);
        }
        let what = if sec == Sec::Top && Sec::of(kw).is_none() {
            format!("unknown statement or section `{kw}`")
        } else {
            format!("unknown statement `{kw}` in {}", sec.name())
        };
        let d = self.err(Code::GwUnknownStatement, what, span);
        d.label = Some("greywall does not know this word here".into());
        d.help = Some(match did_you_mean(kw, all.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => match elsewhere(kw) {
                Some(other) => format!("`{kw}` belongs in the `{other}` section"),
                None => format!("known here: {}", kws.join(", ")),
            },
        });
    }

    fn section(&mut self, sec: Sec, body: &Body, t: &mut Target<'_>, in_platform: bool) {
        for node in &body.nodes {
            let Node::Item(item) = node else { continue };
            self.section_item(sec, item, t, in_platform);
        }
    }

    fn section_item(&mut self, sec: Sec, item: &Item, t: &mut Target<'_>, in_platform: bool) {
        let atoms = item.significant();
        let Some(first) = atoms.first() else {
            if let Some(b) = &item.block {
                self.err(Code::GwMisplaced, "a block without a statement", b.span);
            }
            return;
        };
        let Some(kw) = word_of(first) else {
            self.not_a_keyword(first, sec);
            return;
        };
        let rest = &atoms[1..];
        if rest.first().is_some_and(|a| a.kind == AtomKind::Assign) {
            self.setting(sec, &kw, first.span, &rest[1..], t, in_platform);
            self.no_block(item);
            return;
        }
        match kw.as_str() {
            "on" => {
                let w = if in_platform {
                    Where::Platform
                } else {
                    Where::File
                };
                self.platform(item, rest, first.span, sec, t, w);
                return;
            }
            "include" => {
                self.no_block(item);
                let w = if in_platform {
                    Where::Platform
                } else {
                    Where::Include
                };
                self.include(rest, first.span, sec, t, w);
                return;
            }
            "let" => {
                self.no_block(item);
                self.let_(rest, first.span);
                return;
            }
            "remove" => {
                self.no_block(item);
                let Some(second) = rest.first() else {
                    self.err(
                        Code::GwMissingValue,
                        "`remove` needs the rule to remove",
                        first.span,
                    )
                    .help = Some("write e.g. `remove read ~/.cache`".into());
                    return;
                };
                let Some(kw2) = word_of(second) else {
                    self.not_a_keyword(second, sec);
                    return;
                };
                let mut swapped = Target {
                    adds: &mut *t.removes,
                    removes: &mut *t.adds,
                };
                self.rule(sec, &kw2, second.span, &rest[1..], &mut swapped, true);
                return;
            }
            _ => {}
        }
        self.no_block(item);
        self.rule(sec, &kw, first.span, rest, t, false);
    }

    /// A list rule (`read …`, `deny write …`, `allow host …`); `removing`: inside `remove`.
    fn rule(
        &mut self,
        sec: Sec,
        kw: &str,
        kw_span: Span,
        rest: &[&Atom],
        t: &mut Target<'_>,
        removing: bool,
    ) {
        // The second word of two-word rules (`deny read`, `allow host`).
        let second = rest.first().and_then(|a| word_of(a).map(|w| (w, a.span)));
        let a = &mut *t.adds;
        match (sec, kw) {
            (Sec::Filesystem, "read" | "write") => {
                let read = kw == "read";
                let (vals, except) = self.split_except(rest, removing);
                let vals = self.values(vals, Kind::Path, kw_span, kw);
                let allow = if read {
                    &mut t.adds.filesystem.allow_read
                } else {
                    &mut t.adds.filesystem.allow_write
                };
                let roots = self.push_paths(&vals, allow);
                if let Some((ex_span, ex)) = except {
                    let ex_vals = self.values(ex, Kind::Path, ex_span, "except");
                    let deny = if read {
                        &mut t.adds.filesystem.deny_read
                    } else {
                        &mut t.adds.filesystem.deny_write
                    };
                    self.excepts(&roots, &ex_vals, deny);
                }
            }
            (Sec::Filesystem, "deny") => match second.as_ref().map(|(w, _)| w.as_str()) {
                Some("read" | "write") => {
                    let vals = self.values(&rest[1..], Kind::Path, kw_span, "deny");
                    let list = if second.as_ref().is_some_and(|(w, _)| w == "read") {
                        &mut a.filesystem.deny_read
                    } else {
                        &mut a.filesystem.deny_write
                    };
                    self.push_paths(&vals, list);
                }
                _ => self.expected_word(kw_span, second, "deny", &["read", "write"]),
            },
            (Sec::Network, "allow" | "deny") => {
                if second
                    .as_ref()
                    .is_some_and(|(w, _)| w == "unix-socket" || w == "unix-sockets")
                {
                    if kw == "deny" {
                        self.err(
                            Code::GwUnknownStatement,
                            "Unix sockets are denied unless allowed; there is no `deny unix-socket`",
                            kw_span,
                        );
                        return;
                    }
                    let vals = self.values(&rest[1..], Kind::Path, kw_span, "unix-socket");
                    self.push_paths(&vals, &mut a.network.allow_unix_sockets);
                    return;
                }
                let vals = self.domains(rest, kw_span, kw);
                let list = if kw == "allow" {
                    &mut a.network.allowed_domains
                } else {
                    &mut a.network.denied_domains
                };
                for v in vals {
                    match DomainPattern::parse(&v.text) {
                        Ok(value) => list.push(Entry {
                            value,
                            origin: v.span,
                        }),
                        Err(e) => self.report(e, v.span),
                    }
                }
            }
            (Sec::Commands, "allow" | "deny") => {
                let vals = self.commands(rest, kw_span, kw);
                let list = if kw == "allow" {
                    &mut a.command.allow
                } else {
                    &mut a.command.deny
                };
                self.push_parsed(&vals, list, CommandPrefix::parse);
            }
            (Sec::Ssh, "allow" | "deny") => match second.as_ref().map(|(w, _)| w.as_str()) {
                Some("host" | "hosts") => {
                    let vals = self.values(&rest[1..], Kind::Host, kw_span, "host");
                    let list = if kw == "allow" {
                        &mut a.ssh.allowed_hosts
                    } else {
                        &mut a.ssh.denied_hosts
                    };
                    self.push_parsed(&vals, list, HostPattern::parse);
                }
                Some("command" | "commands") => {
                    let vals = self.commands(&rest[1..], kw_span, "command");
                    let list = if kw == "allow" {
                        &mut a.ssh.allowed_commands
                    } else {
                        &mut a.ssh.denied_commands
                    };
                    self.push_parsed(&vals, list, CommandPrefix::parse);
                }
                _ => self.expected_word(kw_span, second, kw, &["host", "command"]),
            },
            (Sec::Environment, "pass" | "drop") => {
                let vals = self.values(rest, Kind::EnvPattern, kw_span, kw);
                let list = if kw == "pass" {
                    &mut a.environment.pass
                } else {
                    &mut a.environment.drop
                };
                self.push_parsed(&vals, list, EnvPattern::parse);
            }
            (Sec::Environment, "set") => {
                // `set NAME = value`.
                match rest {
                    [name, eq, value @ ..] if eq.kind == AtomKind::Assign => {
                        let Some(n) = word_of(name) else {
                            self.err(Code::GwTypeError, "expected a variable name", name.span);
                            return;
                        };
                        let Some(v) = self.single(value, eq.span, "set", Kind::Text) else {
                            return;
                        };
                        let span =
                            Span::new(self.source, name.span.start as usize, v.span.end as usize);
                        match EnvSet::parse(&format!("{n}={}", v.text)) {
                            Ok(value) => a.environment.set.push(Entry {
                                value,
                                origin: span,
                            }),
                            Err(e) => self.report(e, span),
                        }
                    }
                    _ => {
                        self.err(Code::GwMissingValue, "`set` needs `NAME = value`", kw_span)
                            .help = Some("write e.g. `set GIT_TERMINAL_PROMPT = \"0\"`".into());
                    }
                }
            }
            (Sec::Top, _) => self.unknown_statement(kw, kw_span, sec),
            _ => self.unknown_statement(kw, kw_span, sec),
        }
    }

    fn expected_word(
        &mut self,
        at: Span,
        found: Option<(String, Span)>,
        after: &str,
        options: &[&str],
    ) {
        let list = options
            .iter()
            .map(|o| format!("`{after} {o}`"))
            .collect::<Vec<_>>()
            .join(" or ");
        match found {
            Some((w, span)) => {
                let d = self.err(
                    Code::GwUnknownStatement,
                    format!("expected {list}, found `{after} {w}`"),
                    span,
                );
                if let Some(s) = did_you_mean(&w, options.iter().copied()) {
                    d.help = Some(format!("did you mean `{after} {s}`?"));
                }
            }
            None => {
                self.err(Code::GwMissingValue, format!("expected {list}"), at);
            }
        }
    }

    /// Splits `a, b except c, d` at `except`.
    fn split_except<'x>(
        &mut self,
        rest: &'x [&'x Atom],
        removing: bool,
    ) -> (&'x [&'x Atom], Option<(Span, &'x [&'x Atom])>) {
        match rest
            .iter()
            .position(|a| word_of(a).as_deref() == Some("except"))
        {
            Some(i) => {
                if removing {
                    self.err(
                        Code::GwMisplaced,
                        "`remove` takes the rule without its `except`",
                        rest[i].span,
                    )
                    .help = Some("remove the exception with `remove deny read|write …`".into());
                    return (&rest[..i], None);
                }
                (&rest[..i], Some((rest[i].span, &rest[i + 1..])))
            }
            None => (rest, None),
        }
    }

    fn push_paths(
        &mut self,
        vals: &[Val],
        list: &mut List<PathPattern>,
    ) -> Vec<(PathPattern, Span)> {
        let mut out = Vec::new();
        for v in vals {
            match PathPattern::parse(&v.text) {
                Ok(p) => {
                    out.push((p.clone(), v.span));
                    list.push(Entry {
                        value: p,
                        origin: v.span,
                    });
                }
                Err(e) => self.report(e, v.span),
            }
        }
        out
    }

    fn push_parsed<T>(
        &mut self,
        vals: &[Val],
        list: &mut List<T>,
        parse: impl Fn(&str) -> Result<T, PatternError>,
    ) {
        for v in vals {
            match parse(&v.text) {
                Ok(value) => list.push(Entry {
                    value,
                    origin: v.span,
                }),
                Err(e) => self.report(e, v.span),
            }
        }
    }

    /// `write ROOTS except EXCEPTIONS`: each relative exception below each root; anchored or
    /// absolute ones must lie inside one of the roots.
    fn excepts(&mut self, roots: &[(PathPattern, Span)], ex: &[Val], deny: &mut List<PathPattern>) {
        for e in ex {
            let absolute = e.text.starts_with('/') || e.text.starts_with('~') || e.anchor.is_some();
            if absolute {
                let p = match PathPattern::parse(&e.text) {
                    Ok(p) => p,
                    Err(err) => {
                        self.report(err, e.span);
                        continue;
                    }
                };
                let inside = roots.iter().any(|(r, _)| {
                    r.base == p.base && r.up == p.up && p.segments.starts_with(&r.segments)
                });
                if !inside {
                    let d = self.err(
                        Code::GwExceptOutside,
                        format!("`{}` is not inside what this rule grants", e.text),
                        e.span,
                    );
                    d.help = Some(
                        "write the exception relative to the granted path, or as a separate `deny` rule"
                            .into(),
                    );
                    continue;
                }
                deny.push(Entry {
                    value: p,
                    origin: e.span,
                });
                continue;
            }
            for (r, _) in roots {
                let root = r.to_string();
                let text = format!("{}/{}", root.trim_end_matches('/'), e.text);
                match PathPattern::parse(&text) {
                    Ok(value) => deny.push(Entry {
                        value,
                        origin: e.span,
                    }),
                    Err(err) => self.report(err, e.span),
                }
            }
        }
    }

    /// Network values: `host[:port]`, `subdomains of host`, `host and subdomains`.
    fn domains(&mut self, rest: &[&Atom], kw_span: Span, kw: &str) -> Vec<Val> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let a = rest[i];
            if a.kind == AtomKind::Comma {
                i += 1;
                continue;
            }
            let w = word_of(a);
            let mut prefix = "";
            let mut start = a.span;
            if w.as_deref() == Some("subdomains")
                && rest.get(i + 1).and_then(|b| word_of(b)).as_deref() == Some("of")
            {
                prefix = "*.";
                i += 2;
            }
            let Some(v) = rest.get(i) else {
                self.err(
                    Code::GwMissingValue,
                    "`subdomains of` needs a domain",
                    start,
                );
                break;
            };
            if prefix.is_empty() {
                start = v.span;
            }
            let mut vals = self.values(std::slice::from_ref(v), Kind::Domain, kw_span, kw);
            i += 1;
            if rest.get(i).and_then(|b| word_of(b)).as_deref() == Some("and")
                && rest.get(i + 1).and_then(|b| word_of(b)).as_deref() == Some("subdomains")
            {
                if !prefix.is_empty() {
                    self.err(
                        Code::GwTypeError,
                        "`subdomains of X and subdomains` says two things",
                        rest[i].span,
                    )
                    .help = Some(
                        "`X and subdomains` is the domain and its subdomains; `subdomains of X` only the subdomains"
                            .into(),
                    );
                }
                prefix = "**.";
                i += 2;
            }
            let end = rest.get(i.saturating_sub(1)).map_or(start, |b| b.span);
            for v in &mut vals {
                if !prefix.is_empty() {
                    if v.text.starts_with('*') {
                        self.err(
                            Code::GwTypeError,
                            "a wildcard and `subdomains` together",
                            v.span,
                        )
                        .help = Some("write the plain domain name".into());
                        continue;
                    }
                    v.text = format!("{prefix}{}", v.text);
                    v.span = Span::new(self.source, start.start as usize, end.end as usize);
                }
            }
            out.extend(vals);
        }
        if out.is_empty() && rest.iter().all(|a| a.kind == AtomKind::Comma) {
            self.err(
                Code::GwMissingValue,
                format!("`{kw}` needs at least one destination"),
                kw_span,
            );
        }
        out
    }

    /// Command values: words up to a comma form one command line (`deny git push, npm publish`).
    fn commands(&mut self, rest: &[&Atom], kw_span: Span, kw: &str) -> Vec<Val> {
        let mut out: Vec<Val> = Vec::new();
        let mut cur: Option<Val> = None;
        let mut failed = false;
        for a in rest {
            if a.kind == AtomKind::Comma {
                out.extend(cur.take());
                continue;
            }
            let before = self.diags.len();
            let vals = self.values(std::slice::from_ref(a), Kind::Command, kw_span, kw);
            failed |= self.diags.len() > before;
            for v in vals {
                cur = Some(match cur.take() {
                    None => v,
                    Some(mut c) => {
                        c.text.push(' ');
                        c.text.push_str(&v.text);
                        c.span = Span::new(self.source, c.span.start as usize, v.span.end as usize);
                        c
                    }
                });
            }
        }
        out.extend(cur);
        if out.is_empty() && !failed {
            self.err(
                Code::GwMissingValue,
                format!("`{kw}` needs at least one command"),
                kw_span,
            );
        }
        out
    }

    // ----- values ----------------------------------------------------------------------------

    /// The values of a rule; reports a rule without any.
    fn values(&mut self, atoms: &[&Atom], kind: Kind, kw_span: Span, kw: &str) -> Vec<Val> {
        let mut out = Vec::new();
        let before = self.diags.len();
        for a in atoms {
            self.atom_values(a, kind, &mut out);
        }
        let reported = self.diags.len() > before
            || atoms
                .iter()
                .any(|a| matches!(a.kind, AtomKind::Stray(_) | AtomKind::Unterminated));
        if out.is_empty() && !reported {
            self.err(
                Code::GwMissingValue,
                format!("`{kw}` needs {}", kind.what()),
                kw_span,
            )
            .label = Some("nothing follows".into());
        }
        out
    }

    fn atom_values(&mut self, a: &Atom, kind: Kind, out: &mut Vec<Val>) {
        match &a.kind {
            AtomKind::Comma | AtomKind::Newline | AtomKind::Comment(_) => {}
            AtomKind::Stray(_) | AtomKind::Unterminated => {}
            AtomKind::Assign => {
                self.err(Code::GwTypeError, "unexpected `=`", a.span).help =
                    Some("`=` sets a setting: `name = value`".into());
            }
            AtomKind::List(items) => {
                for i in items {
                    self.atom_values(i, kind, out);
                }
            }
            AtomKind::Word(parts) | AtomKind::Str(parts) => {
                let bare = matches!(a.kind, AtomKind::Word(_));
                // A word that is exactly a list variable splices its values.
                if let [Part::Var(Some(name), vspan)] = parts.as_slice()
                    && let Some(&i) = self.var_index.get(name.as_str())
                {
                    self.vars[i].used = true;
                    let vals: Vec<Val> = self.vars[i]
                        .vals
                        .iter()
                        .map(|v| Val {
                            span: *vspan,
                            ..v.clone()
                        })
                        .collect();
                    for v in vals {
                        self.check_kind(&v, kind);
                        out.push(v);
                    }
                    return;
                }
                if let Some(v) = self.expand(parts, a.span, bare) {
                    self.check_kind(&v, kind);
                    out.push(v);
                }
            }
        }
    }

    fn check_kind(&mut self, v: &Val, kind: Kind) {
        if kind != Kind::Path
            && let Some(anchor) = &v.anchor
        {
            self.err(
                Code::GwTypeError,
                format!(
                    "`${anchor}` is a path, but {} is expected here",
                    kind.what()
                ),
                v.span,
            )
            .help = Some("built-in path variables belong in filesystem rules".into());
        }
    }

    /// Expands the variables of one word or string.
    fn expand(&mut self, parts: &[Part], span: Span, bare: bool) -> Option<Val> {
        let mut text = String::new();
        let mut anchor = None;
        let mut ok = true;
        for (i, p) in parts.iter().enumerate() {
            match p {
                Part::Text(t) => text.push_str(t),
                Part::Var(None, vspan) => {
                    self.err(
                        Code::GwUndefinedVariable,
                        "`$` without a variable name",
                        *vspan,
                    )
                    .help = Some("write `\\$` for a literal dollar sign, inside a string".into());
                    ok = false;
                }
                Part::Var(Some(name), vspan) => {
                    let at_start = i == 0;
                    if let Some(&idx) = self.var_index.get(name.as_str()) {
                        self.vars[idx].used = true;
                        let var = &self.vars[idx];
                        if var.list || var.vals.len() != 1 {
                            let def = var.span;
                            self.err(
                                Code::GwTypeError,
                                format!("`${name}` is a list; it cannot be part of a word"),
                                *vspan,
                            )
                            .secondary
                            .push((def, "defined here".into()));
                            ok = false;
                            continue;
                        }
                        let v = var.vals[0].clone();
                        if let Some(a) = &v.anchor {
                            if !at_start {
                                self.anchor_not_first(a, *vspan);
                                ok = false;
                            }
                            anchor = Some(a.clone());
                        }
                        text.push_str(&v.text);
                        continue;
                    }
                    let builtin = BUILTINS.contains(&name.as_str())
                        || name.strip_prefix("env.").is_some_and(|n| {
                            !n.is_empty()
                                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        });
                    if !builtin {
                        let mut candidates: Vec<&str> =
                            self.vars.iter().map(|v| v.name.as_str()).collect();
                        candidates.extend(BUILTINS);
                        let suggestion = did_you_mean(name, candidates).map(str::to_string);
                        let d = self.err(
                            Code::GwUndefinedVariable,
                            format!("undefined variable `${name}`"),
                            *vspan,
                        );
                        d.label = Some("not defined before this point".into());
                        d.help = Some(match suggestion {
                            Some(s) => format!("did you mean `${s}`?"),
                            None => "define it first with `let NAME = …`; built-ins: $cwd, $home, $tmp, $xdg_config, $xdg_cache, $xdg_data, $xdg_state, $git_root, $git_common, $env.NAME".into(),
                        });
                        ok = false;
                        continue;
                    }
                    if !at_start {
                        self.anchor_not_first(name, *vspan);
                        ok = false;
                        continue;
                    }
                    anchor = Some(name.clone());
                    text.push_str(match name.as_str() {
                        "home" => "~",
                        "cwd" => ".",
                        _ => "",
                    });
                    if name != "home" && name != "cwd" {
                        text.push('$');
                        text.push_str(name);
                    }
                }
            }
        }
        ok.then_some(Val {
            text,
            span,
            anchor,
            bare,
        })
    }

    fn anchor_not_first(&mut self, name: &str, span: Span) {
        self.err(
            Code::GwAnchorPlacement,
            format!("`${name}` must start the path"),
            span,
        )
        .help = Some(format!(
            "a built-in location is where a path begins: `${name}/sub/dir`"
        ));
    }

    /// Exactly one value.
    fn single(&mut self, atoms: &[&Atom], kw_span: Span, kw: &str, kind: Kind) -> Option<Val> {
        let vals = self.values(atoms, kind, kw_span, kw);
        match vals.len() {
            0 => None,
            1 => vals.into_iter().next(),
            _ => {
                self.err(
                    Code::GwTypeError,
                    format!("`{kw}` takes one value, found {}", vals.len()),
                    vals[1].span,
                );
                None
            }
        }
    }

    fn let_(&mut self, rest: &[&Atom], kw_span: Span) {
        let [name, eq, value @ ..] = rest else {
            self.err(Code::GwMissingValue, "`let` needs `NAME = value`", kw_span)
                .help = Some("write e.g. `let secrets = [~/.ssh, ~/.aws]`".into());
            return;
        };
        if eq.kind != AtomKind::Assign {
            self.err(
                Code::GwMissingValue,
                "expected `=` after the variable name",
                eq.span,
            );
            return;
        }
        let Some(n) = word_of(name) else {
            self.err(Code::GwTypeError, "expected a variable name", name.span);
            return;
        };
        let valid = n
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.err(
                Code::GwTypeError,
                format!("`{n}` is not a variable name"),
                name.span,
            )
            .help = Some("names are letters, digits and `_`".into());
            return;
        }
        if BUILTINS.contains(&n.as_str()) || n == "env" {
            self.err(
                Code::GwDuplicate,
                format!("`{n}` is a built-in variable"),
                name.span,
            )
            .help = Some("choose another name".into());
            return;
        }
        if let Some(prev) = self.var_index.get(n.as_str()).map(|&i| self.vars[i].span) {
            self.err(
                Code::GwDuplicate,
                format!("variable `{n}` is already defined"),
                name.span,
            )
            .secondary
            .push((prev, "first defined here".into()));
            return;
        }
        let list =
            value.len() != 1 || matches!(value.first().map(|a| &a.kind), Some(AtomKind::List(_)));
        let mut vals = Vec::new();
        for a in value {
            self.atom_values(a, Kind::Path, &mut vals);
        }
        if vals.is_empty() && !list {
            self.err(Code::GwMissingValue, format!("`{n}` has no value"), eq.span);
            return;
        }
        self.var_index.insert(n.clone(), self.vars.len());
        self.vars.push(Var {
            name: n,
            vals,
            list,
            span: name.span,
            used: false,
        });
    }

    // ----- settings --------------------------------------------------------------------------

    fn setting(
        &mut self,
        sec: Sec,
        name: &str,
        name_span: Span,
        value: &[&Atom],
        t: &mut Target<'_>,
        in_platform: bool,
    ) {
        let (kws, settings) = sec.keywords();
        if !settings.contains(&name) {
            let d = self.err(
                Code::GwUnknownSetting,
                format!("unknown setting `{name}` in {}", sec.name()),
                name_span,
            );
            d.label = Some("greywall does not know this setting".into());
            let kebab = kebab(name);
            d.help = Some(if settings.contains(&kebab.as_str()) {
                format!("the .gw spelling is `{kebab}`")
            } else if let Some(s) = did_you_mean(name, settings.iter().copied()) {
                format!("did you mean `{s}`?")
            } else if let Some(other) = elsewhere(&kebab) {
                format!("`{kebab}` belongs in the `{other}` section")
            } else if settings.is_empty() {
                format!(
                    "{} has no settings; its statements: {}",
                    sec.name(),
                    kws.join(", ")
                )
            } else {
                format!("settings here: {}", settings.join(", "))
            });
            return;
        }
        let key = (
            sec,
            in_platform.then_some(Platform::Linux),
            name.to_string(),
            self.scope(),
        );
        if let Some(prev) = self.settings.get(&key).copied() {
            self.err(
                Code::GwDuplicate,
                format!("`{name}` is set twice"),
                name_span,
            )
            .secondary
            .push((prev, "first set here".into()));
            return;
        }
        self.settings.insert(key, name_span);
        let Some(v) = self.single(value, name_span, name, Kind::Text) else {
            return;
        };
        let span = v.span;
        let a = &mut *t.adds;
        let b = |lx: &mut Self| lx.boolean(&v);
        match name {
            "allow-pty" => {
                if let Some(x) = b(self) {
                    a.allow_pty = Setting::set(x, span);
                }
            }
            "default-deny-read" => {
                if let Some(x) = b(self) {
                    a.filesystem.default_deny_read = Setting::set(x, span);
                }
            }
            "allow-git-config" => {
                if let Some(x) = b(self) {
                    a.filesystem.allow_git_config = Setting::set(x, span);
                }
            }
            "allow-all-unix-sockets" => {
                if let Some(x) = b(self) {
                    a.network.allow_all_unix_sockets = Setting::set(x, span);
                }
            }
            "allow-local-binding" => {
                if let Some(x) = b(self) {
                    a.network.allow_local_binding = Setting::set(x, span);
                }
            }
            "allow-local-outbound" => {
                if let Some(x) = b(self) {
                    a.network.allow_local_outbound = Setting::set(Some(x), span);
                }
            }
            "use-defaults" => {
                if let Some(x) = b(self) {
                    a.command.use_defaults = Setting::set(x, span);
                }
            }
            "allow-all-commands" => {
                if let Some(x) = b(self) {
                    a.ssh.allow_all_commands = Setting::set(x, span);
                }
            }
            "inherit-deny" => {
                if let Some(x) = b(self) {
                    a.ssh.inherit_deny = Setting::set(x, span);
                }
            }
            "http-proxy-port" | "socks-proxy-port" => {
                let Some(p) = self.port(&v) else { return };
                // 0 means "the default port", as in greywall.json.
                if p != 0 {
                    if name == "http-proxy-port" {
                        a.network.http_proxy_port = Setting::set(p, span);
                    } else {
                        a.network.socks_proxy_port = Setting::set(p, span);
                    }
                }
            }
            "proxy-url" => match parse_proxy_url(&v.text, &["socks5", "socks5h"]) {
                Ok(u) => a.network.proxy_url = Setting::set(Some(u), span),
                Err(e) => self.report(e, span),
            },
            "http-proxy-url" => match parse_proxy_url(&v.text, &["http", "https"]) {
                Ok(u) => a.network.http_proxy_url = Setting::set(Some(u), span),
                Err(e) => self.report(e, span),
            },
            "dns-addr" => match parse_host_port(&v.text) {
                Ok(h) => a.network.dns_addr = Setting::set(Some(h), span),
                Err(e) => self.report(e, span),
            },
            _ => {}
        }
    }

    fn boolean(&mut self, v: &Val) -> Option<bool> {
        match (v.bare, v.text.as_str()) {
            (true, "true") => Some(true),
            (true, "false") => Some(false),
            _ => {
                let d = self.err(
                    Code::GwTypeError,
                    format!("expected `true` or `false`, found `{}`", v.text),
                    v.span,
                );
                if !v.bare && (v.text == "true" || v.text == "false") {
                    d.help = Some(format!("write {} without quotes", v.text));
                } else if matches!(v.text.as_str(), "yes" | "on" | "no" | "off") {
                    d.help = Some("write true or false".into());
                }
                None
            }
        }
    }

    fn port(&mut self, v: &Val) -> Option<u16> {
        match v.text.parse::<u16>() {
            Ok(p) if v.bare => Some(p),
            _ => {
                self.err(
                    Code::GwTypeError,
                    format!("expected a port number from 0 to 65535, found `{}`", v.text),
                    v.span,
                );
                None
            }
        }
    }

    // ----- blocks ------------------------------------------------------------------------------

    fn platform(
        &mut self,
        item: &Item,
        rest: &[&Atom],
        kw_span: Span,
        sec: Sec,
        t: &mut Target<'_>,
        w: Where,
    ) {
        let Some(b) = &item.block else {
            self.err(Code::GwMisplaced, "`on PLATFORM` needs a block", kw_span)
                .help = Some("write `on linux { … }`".into());
            return;
        };
        if w == Where::Platform {
            self.err(
                Code::GwMisplaced,
                "platform blocks cannot be nested",
                kw_span,
            );
            return;
        }
        let Some(name_atom) = rest.first() else {
            self.err(
                Code::GwMissingValue,
                "`on` needs a platform: linux or macos",
                kw_span,
            );
            return;
        };
        let name = word_of(name_atom).unwrap_or_default();
        let Some((_, platform)) = Platform::ALL.iter().find(|(n, _)| *n == name) else {
            let d = self.err(
                Code::GwUnknownStatement,
                format!("unknown platform `{name}`"),
                name_atom.span,
            );
            d.help = Some(
                match did_you_mean(&name, Platform::ALL.iter().map(|(n, _)| *n)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "platforms: linux, macos".into(),
                },
            );
            return;
        };
        if rest.len() > 1 {
            self.err(
                Code::GwUnknownStatement,
                "unexpected words after the platform",
                rest[1].span,
            );
        }
        // One overlay per platform and body, as greywall.json has one `linux` object.
        let mut o = match t
            .adds
            .platforms
            .iter()
            .position(|o| o.platform == *platform)
        {
            Some(i) => t.adds.platforms.remove(i),
            None => Overlay {
                platform: *platform,
                adds: Policy::default(),
                removes: Policy::default(),
            },
        };
        {
            let mut inner = Target {
                adds: &mut o.adds,
                removes: &mut o.removes,
            };
            if sec == Sec::Top {
                self.top(&b.body, &mut inner, Where::Platform);
            } else {
                self.section(sec, &b.body, &mut inner, true);
            }
        }
        t.adds.platforms.push(o);
        t.adds.platforms.sort_by_key(|o| o.platform);
    }

    fn profile(&mut self, item: &Item, rest: &[&Atom], kw_span: Span) {
        let Some(b) = &item.block else {
            self.err(Code::GwMisplaced, "`profile NAME` needs a block", kw_span)
                .help = Some("write `profile ci { … }`".into());
            return;
        };
        let Some(name_atom) = rest.first() else {
            self.err(Code::GwMissingValue, "`profile` needs a name", kw_span);
            return;
        };
        let name = word_of(name_atom).unwrap_or_default();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            self.err(
                Code::GwTypeError,
                "a profile name is letters, digits, `-` and `_`",
                name_atom.span,
            );
            return;
        }
        if let Some((prev, _)) = self.profiles.iter().find(|(n, _)| n.value == name) {
            let prev = prev.span;
            self.err(
                Code::GwDuplicate,
                format!("profile `{name}` is defined twice"),
                name_atom.span,
            )
            .secondary
            .push((prev, "first defined here".into()));
            return;
        }
        // Reserve the name first so settings in this profile get their own duplicate scope.
        self.profiles.push((
            Spanned {
                value: name.clone(),
                span: name_atom.span,
            },
            Layer::default(),
        ));
        let mut layer = Layer::default();
        self.top(
            &b.body,
            &mut Target {
                adds: &mut layer.adds,
                removes: &mut layer.removes,
            },
            Where::Profile,
        );
        if let Some(last) = self.profiles.iter_mut().find(|(n, _)| n.value == name) {
            last.1 = layer;
        }
    }

    fn best_effort(
        &mut self,
        item: &Item,
        rest: &[&Atom],
        kw_span: Span,
        t: &mut Target<'_>,
        w: Where,
    ) {
        let mut sections = Vec::new();
        for a in rest {
            if a.kind == AtomKind::Comma {
                continue;
            }
            let name = word_of(a).unwrap_or_default();
            match Section::parse(&name) {
                Some(s) => sections.push((s, a.span, name)),
                None => {
                    let d = self.err(
                        Code::GwUnknownStatement,
                        format!("`{name}` is not a section"),
                        a.span,
                    );
                    let names = ["filesystem", "network", "commands", "ssh", "environment"];
                    d.help = Some(match did_you_mean(&name, names) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("sections: {}", names.join(", ")),
                    });
                }
            }
        }
        if sections.is_empty() {
            if rest.is_empty() {
                self.err(
                    Code::GwMissingValue,
                    "`best-effort` needs a section",
                    kw_span,
                )
                .help = Some("write `best-effort ssh` or `best-effort ssh { … }`".into());
            }
            return;
        }
        for (s, span, _) in &sections {
            t.adds.best_effort.push(Entry {
                value: *s,
                origin: *span,
            });
        }
        if let Some(b) = &item.block {
            if sections.len() != 1 {
                self.err(
                    Code::GwMisplaced,
                    "a best-effort block names one section",
                    kw_span,
                );
                return;
            }
            let sec = match sections[0].0 {
                Section::Filesystem => Sec::Filesystem,
                Section::Network => Sec::Network,
                Section::Command => Sec::Commands,
                Section::Ssh => Sec::Ssh,
                Section::Environment => Sec::Environment,
            };
            self.section(sec, &b.body, t, w == Where::Platform);
        }
    }

    fn expect(&mut self, rest: &[&Atom], kw_span: Span, t: &mut Target<'_>) {
        let verdict = rest.first().and_then(|a| word_of(a));
        let allow = match verdict.as_deref() {
            Some("allow") => true,
            Some("deny") => false,
            _ => {
                let at = rest.first().map_or(kw_span, |a| a.span);
                let d = self.err(
                    Code::GwBadExpect,
                    "an expectation says `allow` or `deny`",
                    at,
                );
                d.help = Some(
                    match verdict
                        .as_deref()
                        .and_then(|v| did_you_mean(v, ["allow", "deny"]))
                    {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "write e.g. `expect deny read ~/.ssh/id_rsa`".into(),
                    },
                );
                return;
            }
        };
        let op_word = rest.get(1).and_then(|a| word_of(a));
        let Some((_, op)) = op_word
            .as_deref()
            .and_then(|w| ExpectOp::ALL.iter().find(|(n, _)| *n == w))
        else {
            let at = rest.get(1).map_or(rest[0].span, |a| a.span);
            let d = self.err(
                Code::GwBadExpect,
                "an expectation names an operation: read, write, run or connect",
                at,
            );
            if let Some(s) = op_word
                .as_deref()
                .and_then(|w| did_you_mean(w, ExpectOp::ALL.iter().map(|(n, _)| *n)))
            {
                d.help = Some(format!("did you mean `{s}`?"));
            }
            return;
        };
        let kind = match op {
            ExpectOp::Read | ExpectOp::Write => Kind::Path,
            ExpectOp::Run => Kind::Command,
            ExpectOp::Connect => Kind::Domain,
        };
        let vals = if *op == ExpectOp::Run {
            self.commands(&rest[2..], rest[1].span, "run")
        } else {
            self.values(&rest[2..], kind, rest[1].span, op.name())
        };
        if vals.len() > 1 {
            self.err(
                Code::GwBadExpect,
                "an expectation checks one target",
                vals[1].span,
            )
            .help = Some("write one `expect` per target".into());
            return;
        }
        let Some(v) = vals.into_iter().next() else {
            return;
        };
        let span = Span::new(self.source, kw_span.start as usize, v.span.end as usize);
        match Expectation::new(allow, *op, &v.text) {
            Ok(value) => t.adds.expects.push(Entry {
                value,
                origin: span,
            }),
            Err(e) => self.report(e, v.span),
        }
    }

    fn include(&mut self, rest: &[&Atom], kw_span: Span, sec: Sec, t: &mut Target<'_>, w: Where) {
        let Some(v) = self.single(rest, kw_span, "include", Kind::Text) else {
            return;
        };
        if let Some(a) = &v.anchor {
            self.err(
                Code::GwTypeError,
                format!(
                    "`include` cannot use `${a}`: files are read before the policy is resolved"
                ),
                v.span,
            )
            .help = Some("write the path relative to this file".into());
            return;
        }
        let from = v.span.source;
        let Some((id, body, key)) = self.inc.include(from, &v.text, v.span, self.diags) else {
            return;
        };
        if let Some(pos) = self.stack.iter().position(|(k, _)| *k == key) {
            let chain: Vec<Span> = self.stack[pos + 1..]
                .iter()
                .filter_map(|(_, v)| *v)
                .collect();
            let d = self.err(
                Code::GwIncludeCycle,
                format!("circular `include`: `{}` is already being included", v.text),
                v.span,
            );
            d.label = Some("this leads back into the chain".into());
            for s in chain {
                d.secondary.push((s, "which includes".into()));
            }
            return;
        }
        self.stack.push((key, Some(v.span)));
        let saved = self.source;
        self.source = id;
        if sec == Sec::Top {
            let inner = if w == Where::File { Where::Include } else { w };
            self.top(&body, t, inner);
        } else {
            self.section(sec, &body, t, w == Where::Platform);
        }
        self.source = saved;
        self.stack.pop();
    }
}

/// `allowLocalBinding` → `allow-local-binding`.
fn kebab(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

/// The section a keyword or setting belongs to, for "belongs in" hints.
fn elsewhere(word: &str) -> Option<&'static str> {
    let all: [(Sec, &[&str]); 5] = [
        (Sec::Filesystem, FS_SETTINGS),
        (Sec::Network, NET_SETTINGS),
        (Sec::Commands, CMD_SETTINGS),
        (Sec::Ssh, SSH_SETTINGS),
        (Sec::Top, TOP_SETTINGS),
    ];
    for (sec, names) in all {
        if names.contains(&word) {
            return Some(sec.name());
        }
    }
    match word {
        "read" | "write" => Some("filesystem"),
        "pass" | "drop" | "set" => Some("environment"),
        _ => None,
    }
}

/// The path anchors the `.gw` lowering produces (for documentation and tests).
pub fn anchor_names() -> Vec<&'static str> {
    PathBase::NAMED.iter().map(|(n, _)| *n).collect()
}
