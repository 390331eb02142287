//! `greywall explain [-s POLICY] [--json] read|write|exec|connect TARGET...`: what the policy
//! decides for an operation, and the rule that decided it.
//!
//! The answer comes from the compiler's pure decision function
//! ([`greywall_compiler::decide`]) over the loaded policy and the facts of this invocation (the
//! working and home directories, the XDG directories, the policy files), so it names the rule
//! as written, with its `file:line:col` and the `extends` chain that brought it in. Nothing is
//! compiled, cached or run.
//!
//! Exit status: 0 when every operation is allowed, 1 when one is denied, 2 for usage errors
//! and policies that do not load.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use greywall_compiler::decide::{self, Decision, Facts, Op};
use greywall_compiler::diagnostic::{self, Code, Diagnostic, RenderOptions};
use greywall_compiler::discover;
use greywall_compiler::load::{self, Input, LoadOptions, Loaded};
use greywall_compiler::model::Platform;
use greywall_compiler::pattern::command::tokenize;
use greywall_compiler::source::Sources;
use greywall_compiler::templates;
use lexopt::prelude::*;
use serde_json::json;

use super::{discover_env, env_path, print, use_color};
use crate::cli::{Color, Command, EXIT_USAGE, UsageError, shell, usage};
use crate::exec::cache_root;

/// What `greywall explain` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `-s POLICY`: a policy file or a built-in template name.
    pub settings: Option<String>,
    /// `--profile NAME`: a named profile of a `.gw` policy.
    pub profile: Option<String>,
    pub json: bool,
    pub color: Color,
    pub verb: Verb,
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Read,
    Write,
    Exec,
    Connect,
}

/// Characters that make a command line more than one simple command with literal words.
const SHELL_SYNTAX: &[char] = &[';', '|', '&', '\n', '`', '$', '(', ')', '<', '>', '\\'];

const USAGE: &str =
    "explain [-s POLICY] [--profile NAME] [--json] read|write|exec|connect TARGET...";

/// Parses the arguments after `explain`.
pub fn parse(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut settings = None;
    let mut profile = None;
    let mut json = false;
    let mut color = Color::Auto;
    let mut verb = None;
    let mut targets = Vec::new();
    while let Some(arg) = p.next()? {
        match arg {
            Short('s') | Long("settings") if verb.is_none() => {
                settings = Some(p.value()?.to_string_lossy().into_owned());
            }
            Long("profile") if verb.is_none() => {
                profile = Some(p.value()?.to_string_lossy().into_owned());
            }
            Long("json") if verb.is_none() => json = true,
            Long("color") if verb.is_none() => {
                color = match p.value()?.to_str() {
                    Some("auto") => Color::Auto,
                    Some("always") => Color::Always,
                    Some("never") => Color::Never,
                    _ => return Err(usage("--color takes auto, always or never")),
                }
            }
            Value(v) if verb.is_none() => {
                verb = Some(match v.to_str() {
                    Some("read") => Verb::Read,
                    Some("write") => Verb::Write,
                    Some("exec") => Verb::Exec,
                    Some("connect") => Verb::Connect,
                    _ => {
                        return Err(usage(format!(
                            "explain: unknown operation '{}' (read, write, exec, connect)",
                            v.to_string_lossy()
                        )));
                    }
                });
                // Everything after the operation is a target, dashes included (`exec ls -l`).
                let mut rest: Vec<OsString> = p.raw_args()?.collect();
                if rest.first().is_some_and(|a| a == "--") {
                    rest.remove(0);
                }
                targets.extend(rest.iter().map(|a| a.to_string_lossy().into_owned()));
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(verb) = verb else {
        return Err(usage(format!("usage: greywall {USAGE}")));
    };
    if targets.is_empty() {
        return Err(usage(format!("explain needs a target: greywall {USAGE}")));
    }
    Ok(Command::Explain(Args {
        settings,
        profile,
        json,
        color,
        verb,
        targets,
    }))
}

/// The operations the targets stand for, with the text each was given as.
fn ops(verb: Verb, targets: &[String]) -> Result<Vec<(String, Op)>, String> {
    match verb {
        Verb::Read => Ok(targets
            .iter()
            .map(|t| (t.clone(), Op::Read(real_target(t))))
            .collect()),
        Verb::Write => Ok(targets
            .iter()
            .map(|t| (t.clone(), Op::Write(real_target(t))))
            .collect()),
        // One command. A single argument with blanks is a command line: split into words
        // (quotes removed) when it is one simple command, else run as `greywall -c` runs it,
        // by the shell, each of its simple commands checked.
        Verb::Exec => {
            let argv = match targets {
                [line] if line.contains(char::is_whitespace) => match tokenize(line) {
                    Ok(words) if !line.contains(SHELL_SYNTAX) && !words.is_empty() => words,
                    _ => vec![shell().to_string(), "-c".to_string(), line.clone()],
                },
                _ => targets.to_vec(),
            };
            Ok(vec![(targets.join(" "), Op::Exec(argv))])
        }
        Verb::Connect => targets
            .iter()
            .map(|t| {
                let (host, port) = host_port(t).ok_or_else(|| {
                    format!("connect takes HOST:PORT (or [IPv6]:PORT), not '{t}'")
                })?;
                Ok((t.clone(), Op::Connect(host, port)))
            })
            .collect(),
    }
}

/// `host:port` or `[v6]:port`.
fn host_port(t: &str) -> Option<(String, u16)> {
    let (host, port) = t.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Which policy to load, and how to name it.
fn input(settings: Option<&str>, diags: &mut Vec<Diagnostic>) -> Result<(Input, String), ()> {
    if let Some(s) = settings {
        // A built-in template by name, unless a file of that name exists here.
        if !Path::new(s).exists()
            && !load::is_path(s)
            && let Some(t) = templates::find(s)
        {
            return Ok((
                Input::Template(t.name.to_string()),
                format!("built-in template `{}`", t.name),
            ));
        }
    }
    let env = discover_env().map_err(|e| eprintln!("greywall: {e}"))?;
    let found = discover::discover(settings.map(Path::new), &env, diags).map_err(|d| {
        diags.push(d);
    })?;
    Ok((found.input(), found.to_string()))
}

/// The facts of this invocation: the working, home, XDG and git directories as the launcher
/// finds them (symlinks resolved, the git work tree and common directory looked up), the
/// runtime directory and the files the policy was loaded from.
pub(crate) fn facts(loaded: &Loaded) -> Result<Facts, String> {
    let env = discover_env()?;
    let s = |p: &Path| p.to_string_lossy().into_owned();
    // The same facts the macOS launch path gives its profile; nothing in them is macOS's own.
    let cache = cache_root().ok_or("HOME is not set; greywall needs it to resolve `~`")?;
    let run = crate::macos::run_facts(&cache, &[])?;
    Ok(Facts {
        anchors: run.anchors,
        git_dir: None,
        runtime_dir: crate::exec::runtime_dir().map(|p| s(&p)),
        policy_files: loaded.files.iter().map(|f| s(&env.cwd.join(f))).collect(),
    })
}

/// A path target made absolute as typed: `~` is `$HOME`, relative paths start at the working
/// directory, `.` and `..` resolved on the text.
fn typed_target(raw: &str) -> String {
    match (std::env::current_dir(), env_path("HOME")) {
        (Ok(cwd), Some(home)) => decide::normalize(
            raw,
            &Facts::new(&cwd.to_string_lossy(), &home.to_string_lossy()),
        ),
        _ => raw.to_string(),
    }
}

/// A path target as the kernel will meet it: [`typed_target`] with the symlinks of its
/// deepest existing ancestor resolved, as the compiled plan resolves the paths of its rules.
fn real_target(raw: &str) -> String {
    let lexical = typed_target(raw);
    let mut at = PathBuf::from(&lexical);
    let mut rest: Vec<OsString> = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&at) {
            let full = rest.iter().rev().fold(real, |p, n| p.join(n));
            return full.to_string_lossy().into_owned();
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent.to_path_buf();
            }
            _ => return lexical,
        }
    }
}

pub fn run(args: &Args) -> ExitCode {
    let color = use_color(args.color, false);
    let ops = match ops(args.verb, &args.targets) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("greywall: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut diags = Vec::new();
    let Ok((input, origin)) = input(args.settings.as_deref(), &mut diags) else {
        render_diags(&diags, &Sources::new());
        return ExitCode::from(EXIT_USAGE);
    };
    let loaded = load::load_with(
        &input,
        &LoadOptions {
            profile: args.profile.clone(),
        },
    );
    diags.extend(loaded.diagnostics.iter().cloned());
    let Some(policy) = &loaded.policy else {
        render_diags(&diags, &loaded.sources);
        return ExitCode::from(EXIT_USAGE);
    };
    // The rules of this platform's `on linux` / `on macos` blocks apply; the others do not.
    let policy = &policy.for_platform(Platform::host(), &mut diags);
    if !diags.is_empty() {
        render_diags(&diags, &loaded.sources);
    }
    let facts = match facts(&loaded) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("greywall: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let decisions: Vec<(String, Op, Decision)> = ops
        .into_iter()
        .map(|(target, op)| {
            let d = decide::decide(policy, &facts, &op);
            (target, op, d)
        })
        .collect();
    let text = if args.json {
        to_json(&decisions, &facts, &loaded.sources, &origin)
    } else {
        human(&decisions, &facts, &loaded.sources, &origin, color)
    };
    let printed = print(&text);
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    if decisions.iter().all(|(_, _, d)| d.allowed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn render_diags(diags: &[Diagnostic], sources: &Sources) {
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr());
    eprint!(
        "{}",
        diagnostic::render_all(diags, sources, RenderOptions { color }, 50)
    );
}

/// What the operation was, with its path made absolute (as the decision saw it).
fn subject(op: &Op, facts: &Facts) -> String {
    match op {
        Op::Read(p) | Op::Write(p) => format!("{} {}", op.verb(), decide::normalize(p, facts)),
        other => other.to_string(),
    }
}

/// The rustc-style listing: a header per operation, the deciding rule's source line under a
/// caret, the `extends` that brought it in, and why.
fn human(
    decisions: &[(String, Op, Decision)],
    facts: &Facts,
    sources: &Sources,
    origin: &str,
    color: bool,
) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    for (i, (target, op, d)) in decisions.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (word, style) = if d.allowed {
            ("allowed", "1;32")
        } else {
            ("denied", "1;31")
        };
        let subject = match op {
            Op::Exec(_) => format!("exec {target}"),
            _ => subject(op, facts),
        };
        let _ = writeln!(
            out,
            "{}{}",
            paint(style, word),
            paint("1", &format!(": {subject}"))
        );
        // The renderer draws the frames; its own header line (severity and code) is replaced
        // by the one above.
        let mut frame = Diagnostic::new(Code::NotEnforceable, "");
        if let Op::Read(p) | Op::Write(p) = op {
            let typed = typed_target(target);
            if typed != *p && !target.is_empty() {
                frame = frame.note(format!("{typed} is {p}, with symlinks resolved"));
            }
        }
        frame = frame.note(d.because.clone());
        match &d.rule {
            Some(rule) => match rule.origin {
                Some(span) => {
                    frame = frame.at(span).label(rule.text.clone());
                    for via in rule.extends_chain(sources) {
                        frame = frame.with_secondary(via, "brought in by this `extends`");
                    }
                }
                None => frame = frame.path(rule.text.clone()),
            },
            None => frame = frame.path(format!("policy: {origin}")),
        }
        let rendered = diagnostic::render(&frame, sources, RenderOptions { color });
        let body = rendered.split_once('\n').map_or("", |(_, rest)| rest);
        out.push_str(body);
    }
    out
}

fn to_json(
    decisions: &[(String, Op, Decision)],
    facts: &Facts,
    sources: &Sources,
    origin: &str,
) -> String {
    let items: Vec<serde_json::Value> = decisions
        .iter()
        .map(|(target, op, d)| {
            let rule = d.rule.as_ref().map(|r| {
                json!({
                    "kind": r.kind.name(),
                    "text": r.text,
                    "builtin": r.is_builtin(),
                    "origin": r.origin.map(|s| sources.locate(s)),
                    "extends": r.extends_chain(sources).into_iter().map(|s| sources.locate(s)).collect::<Vec<_>>(),
                })
            });
            let mut v = json!({
                "operation": op.verb(),
                "target": target,
                "allowed": d.allowed,
                "because": d.because,
                "rule": rule,
            });
            match op {
                Op::Read(p) | Op::Write(p) => v["path"] = json!(decide::normalize(p, facts)),
                Op::Exec(argv) => v["argv"] = json!(argv),
                Op::Connect(host, port) => {
                    v["host"] = json!(host);
                    v["port"] = json!(port);
                }
            }
            v
        })
        .collect();
    let doc = json!({ "policy": origin, "decisions": items });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        crate::cli::parse(
            std::iter::once("explain")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn args(c: Command) -> Args {
        match c {
            Command::Explain(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses() {
        let a = args(
            parse_str(&["-s", "code", "--profile", "ci", "--json", "write", "a", "b"]).unwrap(),
        );
        assert_eq!(a.settings.as_deref(), Some("code"));
        assert_eq!(a.profile.as_deref(), Some("ci"));
        assert!(a.json);
        assert_eq!(a.verb, Verb::Write);
        assert_eq!(a.targets, ["a", "b"]);
        // Options after the operation belong to the command.
        let a = args(parse_str(&["exec", "ls", "-l", "--json"]).unwrap());
        assert!(!a.json);
        assert_eq!(a.targets, ["ls", "-l", "--json"]);
        let a = args(parse_str(&["exec", "--", "rm", "-rf", "/"]).unwrap());
        assert_eq!(a.targets, ["rm", "-rf", "/"]);
        assert!(parse_str(&[]).is_err());
        assert!(parse_str(&["read"]).is_err());
        assert!(parse_str(&["open", "x"]).is_err());
        assert!(parse_str(&["--color", "pink", "read", "x"]).is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(
            host_port("github.com:443"),
            Some(("github.com".into(), 443))
        );
        assert_eq!(host_port("[::1]:22"), Some(("::1".into(), 22)));
        assert_eq!(host_port("::1:22"), None);
        assert_eq!(host_port("github.com"), None);
        assert_eq!(host_port(":80"), None);
        assert_eq!(host_port("h:99999"), None);
        let o = ops(Verb::Exec, &["git push 'origin x'".into()]).unwrap();
        assert_eq!(
            o[0].1,
            Op::Exec(vec!["git".into(), "push".into(), "origin x".into()])
        );
        let o = ops(Verb::Exec, &["make && git push".into()]).unwrap();
        assert_eq!(
            o[0].1,
            Op::Exec(vec![shell().into(), "-c".into(), "make && git push".into()])
        );
        let o = ops(Verb::Exec, &["git".into(), "push".into()]).unwrap();
        assert_eq!(o[0].1, Op::Exec(vec!["git".into(), "push".into()]));
        assert!(ops(Verb::Connect, &["nope".into()]).is_err());
        assert_eq!(ops(Verb::Read, &["a".into(), "b".into()]).unwrap().len(), 2);
    }

    #[test]
    fn human_rendering_points_at_the_rule_and_the_extends() {
        let l = load::load(&Input::Text {
            name: "greywall.json".into(),
            text: "{\n  \"extends\": \"code\",\n  \"filesystem\": {\"allowWrite\": [\"out\"]}\n}\n"
                .into(),
            dir: PathBuf::from("/nonexistent"),
        });
        let p = l.policy.clone().unwrap();
        let f = Facts::new("/w/p", "/home/u");
        let run = |op: Op| {
            let d = decide::decide(&p, &f, &op);
            (String::new(), op, d)
        };
        let text = human(
            &[
                run(Op::Write("out/x".into())),
                run(Op::Read("~/.ssh/id_rsa".into())),
                run(Op::Write(".git/hooks/pre-commit".into())),
            ],
            &f,
            &l.sources,
            "greywall.json",
            false,
        );
        let expected_start = "\
allowed: write /w/p/out/x
 --> greywall.json:3:33
  |
3 |   \"filesystem\": {\"allowWrite\": [\"out\"]}
  |                                 ^^^^^ filesystem.allowWrite \"./out\"
  |
  = note: allowWrite covers /w/p/out/x

denied: read /home/u/.ssh/id_rsa
";
        assert!(text.starts_with(expected_start), "{text}");
        assert!(text.contains(" ::: greywall.json:2:14"), "{text}");
        assert!(
            text.contains("------ brought in by this `extends`"),
            "{text}"
        );
        assert!(text.contains("--> template:code:"), "{text}");
        assert!(
            text.contains("denied: write /w/p/.git/hooks/pre-commit\n --> built-in protection \".git/hooks\"\n"),
            "{text}"
        );
    }
}
