//! Diagnostics: what the compiler says about a policy.
//!
//! Policy problems are never `Err`s: passes return their result together with a list of
//! [`Diagnostic`]s and keep going, so a user sees every problem at once. Each diagnostic has a
//! stable [`Code`] (documented in `docs/diagnostics.md`), a severity, a message, a primary span
//! and optional help. [`render`] prints them the way rustc does.

use std::fmt::{self, Write as _};

use crate::source::{Sources, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! codes {
    ($( $variant:ident = $id:literal, $name:literal, $sev:ident, $summary:literal; )*) => {
        /// Stable diagnostic codes. `E1xx` syntax, `E2xx` structure, `E3xx` values,
        /// `E4xx` loading and `extends`, `W5xx`/`E5xx` lint findings.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $variant, )* }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The stable identifier, e.g. `E201`.
            pub fn id(self) -> &'static str { match self { $( Code::$variant => $id, )* } }

            /// A short kebab-case name, e.g. `unknown-key`.
            pub fn name(self) -> &'static str { match self { $( Code::$variant => $name, )* } }

            /// The severity a diagnostic with this code has.
            pub fn severity(self) -> Severity { match self { $( Code::$variant => Severity::$sev, )* } }

            /// One sentence describing the problem class.
            pub fn summary(self) -> &'static str { match self { $( Code::$variant => $summary, )* } }
        }
    };
}

codes! {
    InvalidUtf8 = "E100", "invalid-utf8", Error, "The policy file is not valid UTF-8.";
    Syntax = "E101", "syntax-error", Error, "The file is not valid JSON (comments and trailing commas are allowed).";
    TooDeep = "E102", "nesting-too-deep", Error, "Arrays and objects are nested deeper than any policy needs.";
    DuplicateKey = "E103", "duplicate-key", Error, "An object has the same key twice.";
    EmptyFile = "E104", "empty-file", Error, "The policy file holds no JSON value.";
    UnknownKey = "E200", "unknown-key", Error, "A key that greywall does not know; greywall never ignores a key.";
    WrongType = "E201", "wrong-type", Error, "A value has the wrong JSON type.";
    EmptyString = "E202", "empty-string", Error, "An entry is an empty string, which would mean nothing or everything.";
    InvalidNumber = "E203", "invalid-number", Error, "A number is out of range or not an integer.";
    InvalidDomain = "E300", "invalid-domain", Error, "A domain pattern is malformed.";
    DomainTooBroad = "E301", "domain-too-broad", Error, "A wildcard domain pattern covers a whole top-level domain.";
    DomainHasPort = "E302", "domain-has-port", Error, "A domain pattern carries a URL scheme or path.";
    InvalidHost = "E303", "invalid-ssh-host", Error, "An SSH host pattern is malformed.";
    InvalidPath = "E304", "invalid-path", Error, "A filesystem path pattern is malformed.";
    InvalidGlob = "E305", "invalid-glob", Error, "A glob in a path pattern is malformed.";
    InvalidCommand = "E306", "invalid-command", Error, "A command prefix is malformed.";
    InvalidUrl = "E307", "invalid-proxy-url", Error, "A proxy URL has the wrong scheme or lacks a host or port.";
    InvalidAddr = "E308", "invalid-address", Error, "An address is not of the form host:port.";
    NotEnforceable = "E310", "not-enforceable", Error, "A rule this platform cannot enforce; greywall refuses the policy rather than run without it.";
    RemoveNothing = "W309", "remove-matches-nothing", Warning, "A `!entry` removes nothing: no inherited entry matches it.";
    Io = "E400", "io-error", Error, "A policy file could not be read.";
    SettingsNotFound = "E401", "settings-not-found", Error, "The file given with --settings does not exist.";
    ExtendsNotFound = "E402", "extends-not-found", Error, "An `extends` names a file that does not exist.";
    UnknownTemplate = "E403", "unknown-template", Error, "An `extends` names a built-in template that does not exist.";
    ExtendsCycle = "E404", "extends-cycle", Error, "`extends` leads back to a file already in the chain.";
    ExtendsTooDeep = "E405", "extends-too-deep", Error, "The `extends` chain is longer than 10 levels.";
    FileTooLarge = "E406", "file-too-large", Error, "The policy file is larger than greywall will read.";
    UntrustedPolicy = "W407", "untrusted-policy-file", Warning, "A discovered policy file is writable by other users and was skipped.";
    WriteEverything = "E500", "write-root-or-home", Error, "Grants write access to `/` or to the whole home directory.";
    WriteStartup = "E501", "write-startup-file", Error, "Grants write access to a file that runs code later: shell startup files, git hooks, editor and agent command folders.";
    WritePath = "E502", "write-path-dir", Error, "Grants write access to a directory on $PATH, so the sandbox can plant commands you run later.";
    WriteGreywall = "E503", "write-greywall-state", Error, "Grants write access to greywall's own configuration, policies or cache.";
    ReadCredentials = "E504", "read-credentials", Error, "Lets the sandbox read credentials (SSH keys, cloud and registry tokens).";
    ContainerSocket = "E505", "container-socket", Error, "Exposes the Docker or Podman socket, which is root on the host.";
    BroadDomain = "W506", "broad-domain", Warning, "A wildcard covers a shared-hosting domain where anyone can get a subdomain.";
    RelaxedNetwork = "W507", "relaxed-network", Warning, "`\"*\"` in allowedDomains turns on relaxed network mode: direct connections are no longer filtered.";
    Shadowed = "W508", "shadowed-rule", Warning, "A rule is already covered by a broader rule of the same kind.";
    Duplicate = "W509", "duplicate-rule", Warning, "The same rule appears twice.";
    NoEffect = "W510", "rule-has-no-effect", Warning, "A rule can never match or never changes a decision.";
    OrBoolean = "W511", "boolean-cannot-be-unset", Warning, "A `false` that an inherited `true` overrides: greywall.json booleans are OR-merged.";
    HttpProxyUrlUnused = "W520", "http-proxy-url-unused", Warning, "`httpProxyUrl` is set but changes nothing: the sandbox's HTTP proxy is greywall's own.";
    HttpProxyUrlUnsupported = "E521", "http-proxy-url-unsupported", Error, "`httpProxyUrl` names an HTTP proxy the sandbox's traffic would not go through: greywall chains only to a SOCKS5 `proxyUrl`.";
    SeatbeltUnexpressible = "E850", "not-expressible-on-macos", Error, "A rule the Seatbelt profile cannot express exactly; greywall refuses to compile the macOS profile rather than enforce something else.";
    GwSyntax = "E600", "gw-syntax-error", Error, "A `.gw` policy is not well formed: an unclosed `{` or `[`, or a stray `}`.";
    GwUnterminatedString = "E601", "gw-unterminated-string", Error, "A string in a `.gw` policy has no closing quote on its line.";
    GwStrayCharacter = "E602", "gw-stray-character", Error, "A character outside strings and comments that the `.gw` language does not use (typographic quotes, non-breaking spaces, …).";
    GwBadEscape = "E603", "gw-invalid-escape", Error, "A backslash escape in a `.gw` string is not one the language knows.";
    GwUnknownStatement = "E604", "gw-unknown-statement", Error, "A statement or section that the `.gw` language does not know.";
    GwUnknownSetting = "E605", "gw-unknown-setting", Error, "A `name = value` setting that does not exist in this section.";
    GwUndefinedVariable = "E606", "gw-undefined-variable", Error, "A `$name` that is neither a `let` variable defined before it nor a built-in.";
    GwTypeError = "E607", "gw-type-error", Error, "A value of the wrong kind: a list where one value is needed, a word where a boolean or port is, a path variable in a network rule.";
    GwIncludeCycle = "E608", "gw-include-cycle", Error, "An `include` leads back to a file already being included.";
    GwIncludeNotFound = "E609", "gw-include-not-found", Error, "An `include` names a file that cannot be read.";
    GwMisplaced = "E610", "gw-misplaced-statement", Error, "A statement where it is not allowed: `extends` after rules or twice, `profile` inside a profile, rules outside a section.";
    GwDuplicate = "E611", "gw-duplicate-definition", Error, "A variable, profile or setting defined twice in one file.";
    GwUnknownProfile = "E612", "gw-unknown-profile", Error, "`--profile NAME` names a profile no file in the chain defines.";
    GwEnvPattern = "E613", "gw-invalid-env-pattern", Error, "An environment rule names no valid variable (`NAME`, `PREFIX*`, `NAME=value`).";
    GwBadExpect = "E614", "gw-invalid-expectation", Error, "An `expect` statement is malformed.";
    GwExpectFailed = "E615", "expectation-failed", Error, "A policy test (`expect`) does not hold: the policy decides otherwise.";
    GwExceptOutside = "E616", "gw-except-outside", Error, "An `except` path is not inside the path it is an exception to.";
    GwMissingValue = "E617", "gw-missing-value", Error, "A statement lacks its values (`deny read` with nothing after it).";
    GwAnchorPlacement = "E618", "gw-anchor-placement", Error, "A built-in path variable (`$home`, `$git_root`, …) that does not start its path.";
    GwAmbiguousProject = "E619", "ambiguous-project-policy", Error, "Both `greywall.gw` and `greywall.json` are in one directory; greywall will not guess which one you meant.";
    GwBestEffort = "W690", "best-effort-downgrade", Warning, "A best-effort section has rules this platform cannot enforce; they are left out.";
    GwUnusedVariable = "W691", "gw-unused-variable", Warning, "A `let` variable is never used.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One problem found in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Where the problem is. `None` for problems with no text to point at (a missing file).
    pub primary: Option<Span>,
    /// Text under the caret.
    pub label: Option<String>,
    /// Other places worth showing, each with a label.
    pub secondary: Vec<(Span, String)>,
    /// Extra facts (`= note: …`).
    pub notes: Vec<String>,
    /// What to do about it (`= help: …`).
    pub help: Option<String>,
    /// A path to name when there is no span (I/O problems).
    pub path: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            primary: None,
            label: None,
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
            path: None,
        }
    }

    pub fn at(mut self, span: Span) -> Self {
        self.primary = Some(span);
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }

    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// True if any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// Orders diagnostics by file and position, errors first at equal positions.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        let ka = a.primary.map(|s| (s.source, s.start));
        let kb = b.primary.map(|s| (s.source, s.start));
        ka.cmp(&kb)
            .then(b.severity.cmp(&a.severity))
            .then(a.code.cmp(&b.code))
    });
}

/// Options for the human renderer.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    pub color: bool,
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Renders one diagnostic in the rustc style:
///
/// ```text
/// error[E200]: unknown key `allowedDomain` in `network`
///   --> greywall.json:3:5
///    |
///  3 |     "allowedDomain": ["github.com"]
///    |     ^^^^^^^^^^^^^^^ not a greywall setting
///    |
///    = help: did you mean `allowedDomains`?
/// ```
pub fn render(d: &Diagnostic, sources: &Sources, opts: RenderOptions) -> String {
    let st = Style { on: opts.color };
    let sev_color = match d.severity {
        Severity::Error => "1;31",
        Severity::Warning => "1;33",
        Severity::Note => "1;36",
    };
    let mut out = String::new();
    let head = format!("{}[{}]", d.severity.as_str(), d.code.id());
    let _ = writeln!(
        out,
        "{}{}",
        st.paint(sev_color, &head),
        st.paint("1", &format!(": {}", d.message))
    );

    let mut frames: Vec<(Span, Option<&str>, bool)> = Vec::new();
    if let Some(p) = d.primary {
        frames.push((p, d.label.as_deref(), true));
    }
    for (s, l) in &d.secondary {
        frames.push((*s, Some(l.as_str()), false));
    }

    // Width of the line-number gutter across all frames.
    let gutter = frames
        .iter()
        .filter_map(|(s, _, _)| {
            sources
                .get(s.source)
                .map(|f| f.line_col(s.start).line.to_string().len())
        })
        .max()
        .unwrap_or(1);
    let pad = " ".repeat(gutter);
    let bar = st.paint("1;34", "|");

    if frames.is_empty()
        && let Some(p) = &d.path
    {
        let _ = writeln!(out, "{pad}{} {p}", st.paint("1;34", "-->"));
    }
    let mut last_source = None;
    let mut last_line = None;
    for (span, label, primary) in &frames {
        let Some(file) = sources.get(span.source) else {
            continue;
        };
        let lc = file.line_col(span.start);
        let same_line = last_line == Some((span.source, lc.line));
        if !same_line && (last_source != Some(span.source) || *primary) {
            let _ = writeln!(
                out,
                "{pad}{} {}:{}",
                st.paint("1;34", if *primary { "-->" } else { ":::" }),
                file.name,
                lc
            );
            last_source = Some(span.source);
        }
        let line = file.line_text(lc.line);
        if !same_line {
            let _ = writeln!(out, "{pad} {bar}");
            let num = format!("{:>gutter$}", lc.line);
            let _ = writeln!(
                out,
                "{} {bar} {}",
                st.paint("1;34", &num),
                printable_line(line)
            );
            last_line = Some((span.source, lc.line));
        }
        // Caret underline: from the span start to its end or the end of the line.
        let prefix: String = line
            .chars()
            .take(lc.col - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let end_lc = file.line_col(span.end);
        let width = if end_lc.line == lc.line {
            end_lc.col.saturating_sub(lc.col).max(1)
        } else {
            line.chars().count().saturating_sub(lc.col - 1).max(1)
        };
        let marks = if *primary { "^" } else { "-" }.repeat(width.min(200));
        let color = if *primary { sev_color } else { "1;34" };
        let label_text = label.map(|l| format!(" {l}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{pad} {bar} {prefix}{}",
            st.paint(color, &format!("{marks}{label_text}"))
        );
    }
    if !d.notes.is_empty() || d.help.is_some() {
        if !frames.is_empty() {
            let _ = writeln!(out, "{pad} {bar}");
        }
        for n in &d.notes {
            let _ = writeln!(out, "{pad} {} note: {n}", st.paint("1;34", "="));
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "{pad} {} help: {h}", st.paint("1;34", "="));
        }
    }
    out
}

/// Replaces control characters (other than tab) so a hostile file cannot drive the terminal.
fn printable_line(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Renders every diagnostic followed by a summary line; at most `limit` are shown in full.
pub fn render_all(
    diags: &[Diagnostic],
    sources: &Sources,
    opts: RenderOptions,
    limit: usize,
) -> String {
    let mut out = String::new();
    for d in diags.iter().take(limit) {
        out.push_str(&render(d, sources, opts));
        out.push('\n');
    }
    if diags.len() > limit {
        let _ = writeln!(
            out,
            "… and {} more diagnostics not shown",
            diags.len() - limit
        );
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    if errors + warnings > 0 {
        let _ = writeln!(
            out,
            "{} error{}, {} warning{}",
            errors,
            if errors == 1 { "" } else { "s" },
            warnings,
            if warnings == 1 { "" } else { "s" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{SourceFile, SourceKind};

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut ids: Vec<_> = Code::ALL.iter().map(|c| c.id()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate code id");
        for c in Code::ALL {
            let id = c.id();
            assert!(id.len() == 4 && (id.starts_with('E') || id.starts_with('W')));
            assert_eq!(
                id.starts_with('W'),
                c.severity() == Severity::Warning,
                "{id}: W codes are warnings, E codes errors"
            );
        }
    }

    #[test]
    fn renders_rustc_style() {
        let mut sources = Sources::new();
        let id = sources.add(SourceFile::new(
            "greywall.json",
            SourceKind::Inline,
            "{\n  \"network\": {\n    \"allowedDomain\": []\n  }\n}\n".to_string(),
        ));
        let d = Diagnostic::new(Code::UnknownKey, "unknown key `allowedDomain` in `network`")
            .at(Span::new(id, 21, 36))
            .label("not a greywall setting")
            .help("did you mean `allowedDomains`?");
        let text = render(&d, &sources, RenderOptions::default());
        let expected = "\
error[E200]: unknown key `allowedDomain` in `network`
 --> greywall.json:3:5
  |
3 |     \"allowedDomain\": []
  |     ^^^^^^^^^^^^^^^ not a greywall setting
  |
  = help: did you mean `allowedDomains`?
";
        assert_eq!(text, expected);
    }
}
