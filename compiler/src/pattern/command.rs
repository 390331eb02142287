//! Command prefixes (`command.deny`, `command.allow`, `ssh.allowedCommands`, …) and the one
//! matcher that both the launcher and the decision function use.
//!
//! A prefix is tokenized the way Greywall does it: split on blanks outside quotes, quotes
//! removed, and the first word reduced to its basename (`/usr/bin/git push` is `git push`).
//! A command matches a prefix when its words start with the prefix's words, so `git push`
//! matches `git push origin` but not `git pushall`. A prefix word ending in `=` matches an
//! argument that starts with it: `dd if=` matches `dd if=/dev/zero`.
//!
//! [`check`] decides a whole command line. Besides the command itself it looks at the
//! commands it plainly starts ([`commands`]):
//!
//! - the command under a wrapper: `env [-i] [-u NAME] [VAR=val…]`, `command`, `exec`,
//!   `nice [-n N]`, `nohup`, `setsid`, `stdbuf`, `timeout [opts] DURATION`, `time`,
//!   `xargs [opts]`, `sudo`, `doas`, `busybox NAME`;
//! - the command after variable assignments, redirections and reserved words
//!   (`X=1 git push`, `>log git push`, `! git push`, `{ git push; }`, `then git push`);
//! - `git` and `docker` with their global options left out (`git -C dir push` is also
//!   checked as `git push`);
//! - the script of a shell (`sh -c STRING`, bash, zsh, dash, ksh, fish) and of `eval`, split
//!   into simple commands on `&&`, `||`, `;`, `|`, `&`, newlines and parentheses outside
//!   quotes, with the text of `$(…)` and backticks split too (best effort).
//!
//! This reads a command line; it does not run a shell. Aliases, functions, variables whose
//! value is a command, scripts and programs that start other programs are out of its sight:
//! command rules are defence in depth, not a boundary.

use std::fmt;

use super::PatternError;
use crate::diagnostic::Code;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommandPrefix {
    words: Vec<String>,
}

impl fmt::Display for CommandPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words.join(" "))
    }
}

impl AsRef<[String]> for CommandPrefix {
    fn as_ref(&self) -> &[String] {
        &self.words
    }
}

impl CommandPrefix {
    pub fn parse(raw: &str) -> Result<CommandPrefix, PatternError> {
        if raw.trim().is_empty() {
            return Err(PatternError::new(Code::EmptyString, "empty command prefix"));
        }
        let words = tokenize(raw).map_err(|m| PatternError::new(Code::InvalidCommand, m))?;
        if words.is_empty() {
            return Err(PatternError::new(
                Code::InvalidCommand,
                "command prefix has no words",
            ));
        }
        Ok(CommandPrefix {
            words: normalize(words),
        })
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Whether a command line (already tokenized) starts with this prefix.
    pub fn matches_words(&self, cmd: &[String]) -> bool {
        prefix_matches(&self.words, cmd)
    }

    /// Whether a raw command string starts with this prefix (no unwrapping: see [`check`]).
    pub fn matches(&self, cmd: &str) -> bool {
        tokenize(cmd).is_ok_and(|w| self.matches_words(&w))
    }

    /// True if every command this prefix matches is also matched by `other`.
    pub fn is_covered_by(&self, other: &CommandPrefix) -> bool {
        other.matches_words(&self.words)
    }
}

/// Splits on spaces and tabs outside quotes, removing the quote characters.
pub fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, ' ' | '\t') => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) if c.is_control() => {
                return Err(format!("control character {c:?} in a command prefix"));
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unclosed {q} quote in a command prefix"));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn normalize(mut words: Vec<String>) -> Vec<String> {
    if let Some(first) = words.first_mut()
        && let Some(base) = first.rsplit('/').next()
        && !base.is_empty()
    {
        *first = base.to_string();
    }
    words
}

fn basename(program: &str) -> &str {
    match program.rsplit('/').next() {
        Some(b) if !b.is_empty() => b,
        _ => program,
    }
}

// ---- Matching ------------------------------------------------------------------------------

/// One prefix word against one argument: equal, or the word ends in `=` and the argument
/// starts with it (`if=` matches `if=/dev/zero`).
fn word_matches(word: &str, arg: &str) -> bool {
    word == arg || (word.ends_with('=') && arg.starts_with(word))
}

/// Whole-word prefix match; the first word is compared with the program's basename.
pub fn prefix_matches<S: AsRef<str>>(prefix: &[String], cmd: &[S]) -> bool {
    let (Some((first, rest)), Some((program, args))) = (prefix.split_first(), cmd.split_first())
    else {
        return false;
    };
    word_matches(first, basename(program.as_ref()))
        && args.len() >= rest.len()
        && rest
            .iter()
            .zip(args)
            .all(|(w, a)| word_matches(w, a.as_ref()))
}

/// How a checked command was found in the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The command line itself.
    Argv,
    /// The command line starts it: under a wrapper, after assignments, without global options.
    Unwrapped,
    /// A simple command of a shell script (`sh -c`, `eval`, `$(…)`).
    Script,
}

/// What the command policy says about a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No deny prefix matches any command the line runs.
    Allowed,
    /// `deny[deny]` matches `command` (found as `via`) and no allow prefix matches it.
    Blocked {
        deny: usize,
        command: Vec<String>,
        via: Via,
    },
    /// Deny prefixes match, but an allow prefix matches each such command; the first pair.
    Overridden { deny: usize, allow: usize },
}

/// Checks a command line against deny and allow prefixes: each command it runs
/// ([`commands`]) is blocked when a deny prefix matches it and no allow prefix matches that
/// same command. The first blocked command (in [`commands`] order) and its first deny prefix
/// are reported. Returns at once when `deny` is empty.
pub fn check<D, A, S>(deny: &[D], allow: &[A], argv: &[S]) -> Verdict
where
    D: AsRef<[String]>,
    A: AsRef<[String]>,
    S: AsRef<str>,
{
    if deny.is_empty() || argv.is_empty() {
        return Verdict::Allowed;
    }
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    let mut overridden = None;
    let mut blocked = None;
    visit(&argv, Via::Argv, 0, &mut |cmd, via| {
        let Some(d) = deny.iter().position(|p| prefix_matches(p.as_ref(), cmd)) else {
            return Flow::Continue;
        };
        match allow.iter().position(|p| prefix_matches(p.as_ref(), cmd)) {
            Some(a) => {
                overridden.get_or_insert((d, a));
                Flow::Continue
            }
            None => {
                blocked = Some(Verdict::Blocked {
                    deny: d,
                    command: cmd.iter().map(|w| w.to_string()).collect(),
                    via,
                });
                Flow::Stop
            }
        }
    });
    match (blocked, overridden) {
        (Some(b), _) => b,
        (None, Some((deny, allow))) => Verdict::Overridden { deny, allow },
        (None, None) => Verdict::Allowed,
    }
}

/// Every command [`check`] looks at for `argv`, in order, as word lists.
pub fn commands<S: AsRef<str>>(argv: &[S]) -> Vec<(Vec<String>, Via)> {
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    let mut out = Vec::new();
    visit(&argv, Via::Argv, 0, &mut |cmd, via| {
        out.push((cmd.iter().map(|w| w.to_string()).collect(), via));
        Flow::Continue
    });
    out
}

/// The simple commands of a shell script, as word lists (quotes removed), before any
/// unwrapping: split on `&&`, `||`, `;`, `|`, `&`, newlines and parentheses outside quotes;
/// the text of `$(…)` and backticks yields its own commands, before the enclosing one.
pub fn simple_commands(script: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    split_script(script, 0, &mut out);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// How deep scripts within scripts are read (`sh -c "sh -c '…'"`, `$(…)` in `$(…)`).
const MAX_DEPTH: usize = 8;

type Visitor<'f> = dyn FnMut(&[&str], Via) -> Flow + 'f;

/// Calls `f` on `cmd` (without leading assignments, redirections and reserved words) and on
/// every command it starts that this module knows how to find.
fn visit(cmd: &[&str], mut via: Via, depth: usize, f: &mut Visitor<'_>) -> Flow {
    let mut cmd = cmd;
    loop {
        let start = leading_noise(cmd);
        if start > 0 && via == Via::Argv {
            via = Via::Unwrapped;
        }
        cmd = cmd.get(start..).unwrap_or_default();
        let Some(program) = cmd.first() else {
            return Flow::Continue;
        };
        if f(cmd, via) == Flow::Stop {
            return Flow::Stop;
        }
        let name = basename(program);
        let inner_via = if via == Via::Script {
            Via::Script
        } else {
            Via::Unwrapped
        };
        if let Some(form) = subcommand_form(name, cmd)
            && f(&form, inner_via) == Flow::Stop
        {
            return Flow::Stop;
        }
        if depth < MAX_DEPTH
            && let Some(script) = script_of(name, cmd)
        {
            let mut inner = Vec::new();
            split_script(&script, depth + 1, &mut inner);
            for words in &inner {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                if visit(&words, Via::Script, depth + 1, f) == Flow::Stop {
                    return Flow::Stop;
                }
            }
        }
        match wrapped(name, cmd) {
            Some(Wrapped::At(i)) => {
                cmd = cmd.get(i..).unwrap_or_default();
                via = inner_via;
            }
            Some(Wrapped::Split(words)) if depth < MAX_DEPTH => {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                return visit(&words, inner_via, depth + 1, f);
            }
            _ => return Flow::Continue,
        }
    }
}

// ---- What a command line starts ------------------------------------------------------------

/// Shell reserved words that may stand before a command.
const RESERVED: &[&str] = &[
    "!", "{", "}", "if", "then", "else", "elif", "do", "while", "until",
];

/// How many leading words are not the command: reserved words, variable assignments
/// (`X=1`, `A[0]=x`, `P+=:x`) and redirections (`>log`, `2>&1`, `< in`).
fn leading_noise(cmd: &[&str]) -> usize {
    let mut i = 0;
    while let Some(w) = cmd.get(i) {
        if RESERVED.contains(w) || is_assignment(w) {
            i += 1;
        } else if let Some(rest) = redirection(w) {
            i += if rest.is_empty() { 2 } else { 1 };
        } else {
            break;
        }
    }
    i
}

fn is_assignment(w: &str) -> bool {
    let Some(eq) = w.find('=') else {
        return false;
    };
    let name = w[..eq].strip_suffix('+').unwrap_or(&w[..eq]);
    let name = match name.find('[') {
        Some(b) if name.ends_with(']') => &name[..b],
        _ => name,
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `Some(target)` when `w` is a redirection: an optional fd number or `&`, an operator of
/// `<` and `>` (with `&` or `|`), then the target, empty when it is the next word.
fn redirection(w: &str) -> Option<&str> {
    let rest = w.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix('&').unwrap_or(rest);
    if !rest.starts_with(['<', '>']) {
        return None;
    }
    let target = rest.trim_start_matches(['<', '>']);
    let target = target
        .strip_prefix('&')
        .or_else(|| target.strip_prefix('|'))
        .unwrap_or(target);
    Some(target)
}

/// Options of a program: which short letters and long names take the next word as their
/// argument (unless it is attached: `-n5`, `--adjustment=5`). Other options are flags; a long
/// name may be abbreviated, as getopt allows.
struct Opts {
    short_arg: &'static str,
    long_arg: &'static [&'static str],
}

/// Skips the options of `cmd` from `start`: returns the index of the first operand and the
/// value of `-S`/`--split-string` if `split` (env's).
fn skip_options(cmd: &[&str], start: usize, opts: &Opts, split: bool) -> (usize, Option<String>) {
    let mut i = start;
    let mut value = None;
    while let Some(w) = cmd.get(i) {
        i += 1;
        if *w == "--" {
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let takes = !name.is_empty() && opts.long_arg.iter().any(|l| l.starts_with(name));
            let v = match attached {
                None if takes => {
                    i += 1;
                    cmd.get(i - 1).copied()
                }
                _ => attached,
            };
            if split && !name.is_empty() && "split-string".starts_with(name) {
                value = v.map(str::to_string);
            }
            continue;
        }
        if (w.len() > 1 && w.starts_with('-')) || *w == "-" {
            for (k, c) in w.char_indices().skip(1) {
                if opts.short_arg.contains(c) {
                    let rest = &w[k + c.len_utf8()..];
                    let v = if rest.is_empty() {
                        i += 1;
                        cmd.get(i - 1).copied()
                    } else {
                        Some(rest)
                    };
                    if split && c == 'S' {
                        value = v.map(str::to_string);
                    }
                    break;
                }
            }
            continue;
        }
        i -= 1;
        break;
    }
    (i.min(cmd.len()), value)
}

const GIT: Opts = Opts {
    short_arg: "Cc",
    long_arg: &[
        "git-dir",
        "work-tree",
        "namespace",
        "config-env",
        "attr-source",
    ],
};

const DOCKER: Opts = Opts {
    short_arg: "cHl",
    long_arg: &[
        "config",
        "context",
        "host",
        "log-level",
        "tlscacert",
        "tlscert",
        "tlskey",
    ],
};

/// `git push` for `git -C dir -c k=v push`: programs whose global options come before a
/// subcommand, with those options left out. Only programs whose options taking an argument
/// are known: elsewhere an option's argument cannot be told from a subcommand.
fn subcommand_form<'a>(name: &str, cmd: &[&'a str]) -> Option<Vec<&'a str>> {
    let opts = match name {
        "git" => &GIT,
        "docker" => &DOCKER,
        _ => return None,
    };
    let (i, _) = skip_options(cmd, 1, opts, false);
    if i <= 1 || i >= cmd.len() {
        return None;
    }
    let mut form = Vec::with_capacity(cmd.len() - i + 1);
    form.push(*cmd.first()?);
    form.extend_from_slice(cmd.get(i..)?);
    Some(form)
}

/// Shells whose `-c STRING` script is read.
const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "mksh", "fish", "ash"];

/// The script a command runs: a shell's `-c STRING` (or fish's `--command`), `eval`'s
/// arguments.
fn script_of(name: &str, cmd: &[&str]) -> Option<String> {
    if name == "eval" {
        let args = cmd.get(1..)?;
        return (!args.is_empty()).then(|| args.join(" "));
    }
    if !SHELLS.contains(&name) {
        return None;
    }
    // `-c` makes the first operand the script; `-o`/`-O` (and bash's `--rcfile`) take an
    // argument; options end at the first operand or `--`.
    let mut c = false;
    let mut i = 1;
    while let Some(w) = cmd.get(i) {
        i += 1;
        if *w == "--" || *w == "-" {
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            match long.split_once('=') {
                Some(("command", s)) => return Some(s.to_string()),
                Some(_) => {}
                None if long == "command" => return cmd.get(i).map(|s| s.to_string()),
                None if matches!(long, "rcfile" | "init-file") => i += 1,
                None => {}
            }
            continue;
        }
        if let Some(cluster) = w.strip_prefix('-').or_else(|| w.strip_prefix('+')) {
            if w.starts_with('-') && cluster.contains('c') {
                c = true;
            }
            if cluster.contains(['o', 'O']) {
                i += 1;
            }
            continue;
        }
        i -= 1;
        break;
    }
    if !c {
        return None;
    }
    cmd.get(i).map(|s| s.to_string())
}

enum Wrapped {
    /// The wrapped command starts at this word.
    At(usize),
    /// The wrapped command is these words (`env -S STRING`).
    Split(Vec<String>),
}

/// The command a wrapper runs.
fn wrapped(name: &str, cmd: &[&str]) -> Option<Wrapped> {
    const NONE: Opts = Opts {
        short_arg: "",
        long_arg: &[],
    };
    let at = |opts: &Opts| skip_options(cmd, 1, opts, false).0;
    let i = match name {
        "env" => {
            let opts = Opts {
                short_arg: "uCSa",
                long_arg: &["unset", "chdir", "split-string", "argv0"],
            };
            let (i, split) = skip_options(cmd, 1, &opts, true);
            let i = i + cmd.get(i..)?.iter().take_while(|w| w.contains('=')).count();
            if let Some(s) = split {
                let mut words = tokenize(&s)
                    .unwrap_or_else(|_| s.split_whitespace().map(String::from).collect());
                words.extend(cmd.get(i..)?.iter().map(|w| w.to_string()));
                return Some(Wrapped::Split(words));
            }
            i
        }
        "command" => {
            let i = at(&NONE);
            let opts = cmd.get(1..i)?;
            if opts
                .iter()
                .any(|w| !w.starts_with("--") && w.contains(['v', 'V']))
            {
                return None; // `command -v NAME` only looks NAME up
            }
            i
        }
        "exec" => at(&Opts {
            short_arg: "a",
            long_arg: &[],
        }),
        "nice" => at(&Opts {
            short_arg: "n",
            long_arg: &["adjustment"],
        }),
        "nohup" | "setsid" | "busybox" => at(&NONE),
        "stdbuf" => at(&Opts {
            short_arg: "ioe",
            long_arg: &["input", "output", "error"],
        }),
        "timeout" => {
            at(&Opts {
                short_arg: "sk",
                long_arg: &["signal", "kill-after"],
            }) + 1
        }
        "time" => at(&Opts {
            short_arg: "fo",
            long_arg: &["format", "output"],
        }),
        "xargs" => at(&Opts {
            short_arg: "adEILnPs",
            long_arg: &[
                "arg-file",
                "delimiter",
                "max-lines",
                "max-args",
                "max-procs",
                "max-chars",
                "process-slot-var",
            ],
        }),
        "sudo" => {
            let i = at(&Opts {
                short_arg: "ugCDprtTUR",
                long_arg: &[
                    "user",
                    "group",
                    "close-from",
                    "chdir",
                    "prompt",
                    "role",
                    "type",
                    "command-timeout",
                    "other-user",
                    "chroot",
                    "host",
                ],
            });
            i + cmd
                .get(i..)?
                .iter()
                .take_while(|w| is_assignment(w))
                .count()
        }
        "doas" => at(&Opts {
            short_arg: "uC",
            long_arg: &[],
        }),
        _ => return None,
    };
    (i < cmd.len()).then_some(Wrapped::At(i))
}

// ---- Shell scripts -------------------------------------------------------------------------

/// Splits a script into simple commands (see [`simple_commands`]). Never fails: an unclosed
/// quote or substitution runs to the end of the script.
fn split_script(script: &str, depth: usize, out: &mut Vec<Vec<String>>) {
    let chars: Vec<char> = script.chars().collect();
    let mut cmd: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let end_word = |cmd: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            cmd.push(std::mem::take(word));
            *in_word = false;
        }
    };
    let end_cmd = |cmd: &mut Vec<String>, out: &mut Vec<Vec<String>>| {
        if !cmd.is_empty() {
            out.push(std::mem::take(cmd));
        }
    };
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            ' ' | '\t' | '\r' => end_word(&mut cmd, &mut word, &mut in_word),
            '\n' | ';' | '&' | '|' | '(' | ')' => {
                end_word(&mut cmd, &mut word, &mut in_word);
                end_cmd(&mut cmd, out);
            }
            '#' if !in_word => {
                while chars.get(i).is_some_and(|c| *c != '\n') {
                    i += 1;
                }
            }
            '\\' => {
                match chars.get(i) {
                    Some('\n') => {}
                    Some(&n) => {
                        word.push(n);
                        in_word = true;
                    }
                    None => {}
                }
                i += 1;
            }
            '\'' => {
                in_word = true;
                while let Some(&n) = chars.get(i) {
                    i += 1;
                    if n == '\'' {
                        break;
                    }
                    word.push(n);
                }
            }
            '"' => {
                in_word = true;
                while let Some(&n) = chars.get(i) {
                    i += 1;
                    match n {
                        '"' => break,
                        '\\' => {
                            match chars.get(i) {
                                Some(&e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                                Some('\n') => {}
                                Some(&e) => {
                                    word.push('\\');
                                    word.push(e);
                                }
                                None => {}
                            }
                            i += 1;
                        }
                        '$' if chars.get(i) == Some(&'(') => {
                            i = substitution(&chars, i + 1, ')', depth, out, &mut word);
                        }
                        '`' => i = substitution(&chars, i, '`', depth, out, &mut word),
                        n => word.push(n),
                    }
                }
            }
            '$' if chars.get(i) == Some(&'(') => {
                in_word = true;
                i = substitution(&chars, i + 1, ')', depth, out, &mut word);
            }
            '`' => {
                in_word = true;
                i = substitution(&chars, i, '`', depth, out, &mut word);
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    end_word(&mut cmd, &mut word, &mut in_word);
    end_cmd(&mut cmd, out);
}

/// Reads a command substitution from `chars[start..]` up to its closing `close` (parentheses
/// nest; quotes inside are skipped), splits its text into `out` and appends it to `word` as
/// written. Returns the index after the closing character.
fn substitution(
    chars: &[char],
    start: usize,
    close: char,
    depth: usize,
    out: &mut Vec<Vec<String>>,
    word: &mut String,
) -> usize {
    let mut i = start;
    let mut level = 0usize;
    let mut quote: Option<char> = None;
    while let Some(&c) = chars.get(i) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => i += 1,
            (Some(_), _) => {}
            (None, '\'' | '"') if close == ')' => quote = Some(c),
            (None, '(') if close == ')' => level += 1,
            (None, c) if c == close && level == 0 => break,
            (None, ')') if close == ')' => level = level.saturating_sub(1),
            (None, _) => {}
        }
        i += 1;
    }
    let inner: String = chars
        .get(start..i.min(chars.len()))
        .unwrap_or_default()
        .iter()
        .collect();
    if depth < MAX_DEPTH {
        split_script(&inner, depth + 1, out);
    }
    word.push_str(if close == ')' { "$(" } else { "`" });
    word.push_str(&inner);
    word.push(close);
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CommandPrefix {
        CommandPrefix::parse(s).unwrap()
    }

    fn argv(s: &str) -> Vec<String> {
        tokenize(s).unwrap()
    }

    /// Whether `deny` blocks the command line `line` (words split on blanks, quotes removed).
    fn blocks(deny: &str, line: &str) -> bool {
        blocks_argv(deny, &argv(line))
    }

    fn blocks_argv(deny: &str, argv: &[String]) -> bool {
        let none: &[CommandPrefix] = &[];
        matches!(check(&[p(deny)], none, argv), Verdict::Blocked { .. })
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["bash".into(), "-c".into(), script.into()]
    }

    #[test]
    fn whole_word_prefixes() {
        assert!(p("git push").matches("git push origin main"));
        assert!(p("git push").matches("/usr/local/bin/git push"));
        assert!(p("git push").matches("../bin/git   push --force"));
        assert!(!p("git push").matches("git pushall"));
        assert!(!p("rm -rf").matches("rm -r x"));
        assert!(!p("rm").matches("rmdir x"));
        assert!(p("git").matches("g\"it\" push"));
        assert!(!p("git push").matches("git"));
        assert!(!p("git push").matches("xgit push"));
        assert!(!prefix_matches::<&str>(&[], &["git"]));
    }

    #[test]
    fn a_word_ending_in_equals_matches_an_argument_starting_with_it() {
        assert!(p("dd if=").matches("dd if=/dev/zero of=/dev/sda"));
        assert!(p("dd if=").matches("dd if= of=/dev/sda"));
        assert!(!p("dd if=").matches("dd of=/dev/sda if=/dev/zero"));
        assert!(!p("dd if=").matches("dd xif=/dev/zero"));
        assert!(!p("dd if=").matches("dd if"));
        // Only a trailing `=` makes a word a prefix of the argument.
        assert!(!p("dd if=/dev/zero").matches("dd if=/dev/zero2"));
        assert!(p("dd if=/dev/zero").is_covered_by(&p("dd if=")));
        assert!(!p("dd if=").is_covered_by(&p("dd if=/dev/zero")));
    }

    #[test]
    fn the_default_list_matches_real_invocations() {
        let defaults: Vec<CommandPrefix> = crate::protections::DEFAULT_DENIED_COMMANDS
            .iter()
            .map(|c| p(c))
            .collect();
        let none: &[CommandPrefix] = &[];
        let blocked =
            |line: &str| matches!(check(&defaults, none, &argv(line)), Verdict::Blocked { .. });
        for line in [
            "dd if=/dev/zero of=/dev/sda bs=1M",
            "dd of=/dev/sda if=/dev/zero",
            "/sbin/shutdown -h now",
            "mkfs.ext4 /dev/sdb1",
            "systemctl reboot",
            "rm -rf /",
            "env dd if=/dev/zero of=x",
        ] {
            assert!(blocked(line), "{line}");
        }
        for line in [
            "ls -la",
            "git push",
            "rm -rf ./build",
            "ddx if=y",
            "cargo test",
        ] {
            assert!(!blocked(line), "{line}");
        }
    }

    #[test]
    fn validation() {
        assert_eq!(
            CommandPrefix::parse("").unwrap_err().code,
            Code::EmptyString
        );
        assert_eq!(
            CommandPrefix::parse("  ").unwrap_err().code,
            Code::EmptyString
        );
        assert_eq!(
            CommandPrefix::parse("echo 'x").unwrap_err().code,
            Code::InvalidCommand
        );
        assert_eq!(p("/usr/bin/git   push").to_string(), "git push");
    }

    #[test]
    fn shell_strings_are_split_like_greywall() {
        let cmds = simple_commands("ls && git push origin main; echo 'a;b' | bash -c \"rm -rf /\"");
        let words: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
        assert!(
            words.contains(&"git push origin main".to_string()),
            "{words:?}"
        );
        assert!(words.contains(&"echo a;b".to_string()), "{words:?}");
        assert!(
            !words.iter().any(|w| w == "b"),
            "quoted separators do not split: {words:?}"
        );
        assert_eq!(simple_commands("a & b\nc || d").len(), 4);
        assert!(blocks("rm -rf /", "bash -c \"ls; rm -rf /\""));
        assert!(blocks("git push", "sh -ec 'ls; bash -c \"git push\"'"));
        assert!(!blocks("git push", "sh -c \"echo 'git push'\""));
        assert!(!blocks("git push", "python3 -c 'git push'"));
    }

    #[test]
    fn separators_greywall_missed() {
        for script in [
            "true\ngit push",
            "sleep 1 & git push",
            "(git push)",
            "(cd x && git push)",
            "{ git push; }",
            "if true; then git push; fi",
            "for b in a; do git push; done",
            "! git push",
            "echo $(git push)",
            "echo \"$(git push origin)\"",
            "echo `git push`",
            "echo \"`git push`\"",
            "x=$(echo a; git push)",
            "echo $(echo $(git push))",
            "cat <(git push)",
            "git push 2>&1 | tee log",
            "ls # comment\ngit push",
            "\\git push",
            "g\\it push",
            "'git' \"push\"",
            "git \\\npush",
            "eval 'git push'",
            "eval git push",
        ] {
            assert!(blocks_argv("git push", &shell_words(script)), "{script:?}");
            assert!(blocks_argv("git push", &sh(script)), "{script:?}");
        }
        for script in [
            "echo 'git push'",
            "echo \"git push\"",
            "echo git push",
            "echo '$(git push)'",
            "ls # ; git push",
            "git pushall",
            "git status && git log",
        ] {
            assert!(!blocks_argv("git push", &sh(script)), "{script:?}");
        }
    }

    /// A script as `eval` would run it: the words of `eval SCRIPT`.
    fn shell_words(script: &str) -> Vec<String> {
        vec!["eval".into(), script.into()]
    }

    #[test]
    fn assignments_redirections_and_wrappers_are_looked_through() {
        for line in [
            "X=1 git push",
            "X=1 Y='a b' git push",
            "PATH+=:/x git push",
            ">log git push",
            "2> /dev/null git push",
            "env git push",
            "/usr/bin/env -i git push",
            "env -i HOME=/x A=b git push",
            "env -u HOME -C /tmp git push",
            "env --unset=HOME --chdir /tmp git push",
            "env - git push",
            "env -S 'git push origin'",
            "env --split-string='git push'",
            "env -S'git push'",
            "command git push",
            "command -p git push",
            "exec git push",
            "exec -a name git push",
            "exec -cl git push",
            "nice git push",
            "nice -n 10 git push",
            "nice -10 git push",
            "nice --adjustment=5 git push",
            "nohup git push",
            "setsid -f git push",
            "stdbuf -o L git push",
            "timeout 10 git push",
            "timeout -s KILL -k 5 10s git push",
            "timeout --signal=TERM 1m git push",
            "time git push",
            "time -p git push",
            "/usr/bin/time -f %e -o out git push",
            "xargs git push",
            "xargs -0 -n 1 -I {} git push {}",
            "xargs -r -P4 git push",
            "sudo git push",
            "sudo -u bob -E HOME=/x git push",
            "doas -u bob git push",
            "busybox git push",
            "nice nohup env X=1 timeout 5 git push",
            "env bash -c 'git push'",
            "busybox sh -c 'git push'",
            "bash --norc -c 'git push'",
            "bash -o pipefail -c 'git push'",
            "bash -e -c 'git push'",
            "fish --command 'git push'",
            "fish --command='git push'",
        ] {
            assert!(blocks("git push", line), "{line}");
        }
        for line in [
            "env X=git push",
            "command -v git push",
            "timeout git push",
            "nice -n git push",
            "env -u git push",
            "echo env git push",
            "bash script.sh git push",
            "bash -c 'echo hi' git push",
        ] {
            assert!(!blocks("git push", line), "{line}");
        }
    }

    #[test]
    fn global_options_before_a_subcommand() {
        for line in [
            "git -C /repo push",
            "git -C /repo -c user.name=x push origin",
            "git --git-dir=/x/.git --work-tree /x push",
            "git --namespace ns --no-pager -p push",
            "git --bare --config-env core.x=Y push",
        ] {
            assert!(blocks("git push", line), "{line}");
            assert!(blocks("git push", &format!("env X=1 {line}")), "{line}");
        }
        assert!(!blocks("git push", "git -C push status"));
        assert!(!blocks("git push", "git -c push=1 status"));
        assert!(!blocks("git push", "git --no-pager pushall"));
        assert!(blocks(
            "docker run --privileged",
            "docker --context prod -H tcp://x run --privileged img"
        ));
        // Elsewhere options are not skipped: `-n` might take `push` as its argument.
        assert!(!blocks("npm publish", "npm --tag x publish"));
        // A prefix that names the option still sees it.
        assert!(blocks("git -C", "git -C /repo push"));
    }

    #[test]
    fn allow_overrides_a_deny_on_the_same_command_only() {
        let deny = [p("git push")];
        let allow = [p("git push origin dev")];
        let v = |line: &str| check(&deny, &allow, &argv(line));
        assert_eq!(
            v("env git push origin dev"),
            Verdict::Overridden { deny: 0, allow: 0 }
        );
        assert_eq!(
            v("git -C x push origin dev"),
            Verdict::Overridden { deny: 0, allow: 0 }
        );
        match v("env X=1 git push origin main") {
            Verdict::Blocked { deny, command, via } => {
                assert_eq!(deny, 0);
                assert_eq!(command.join(" "), "git push origin main");
                assert_eq!(via, Via::Unwrapped);
            }
            other => panic!("{other:?}"),
        }
        match check(&deny, &allow, &sh("git push origin dev; git push")) {
            Verdict::Blocked { command, via, .. } => {
                assert_eq!(command, ["git", "push"]);
                assert_eq!(via, Via::Script);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(v("git status"), Verdict::Allowed);
        let no_deny: &[CommandPrefix] = &[];
        assert_eq!(check(no_deny, &allow, &argv("git push")), Verdict::Allowed);
        assert!(matches!(
            check(&deny, &allow, &argv("git push")),
            Verdict::Blocked { via: Via::Argv, .. }
        ));
    }

    #[test]
    fn commands_lists_what_is_checked() {
        let got: Vec<String> = commands(&argv("env X=1 nice git -C d push"))
            .into_iter()
            .map(|(c, _)| c.join(" "))
            .collect();
        assert_eq!(
            got,
            [
                "env X=1 nice git -C d push",
                "nice git -C d push",
                "git -C d push",
                "git push"
            ]
        );
    }

    #[test]
    fn odd_input_never_panics_and_stays_bounded() {
        let nasty = [
            "'",
            "\"",
            "$(",
            "`",
            "\\",
            "$((",
            "((((",
            "))))",
            "\"$(\"",
            "env -S",
            "env -S '",
            "timeout",
            "git -C",
            "xargs -I",
            "bash -c",
            "sh -c \"$(sh -c \\\"$(x)\\\")\"",
            "é$(ü",
            "#",
            "a\\",
            "-",
            "--",
            "{",
            "!",
        ];
        for s in nasty {
            for end in 0..=s.len() {
                if let Some(prefix) = s.get(..end) {
                    let _ = commands(&sh(prefix));
                    let _ = commands(&argv_lossy(prefix));
                    let _ = commands(&shell_words(prefix));
                }
            }
        }
        // Nesting deeper than the limit is read no further, and does not recurse forever.
        let mut deep = "git push".to_string();
        for _ in 0..40 {
            deep = format!("echo $({deep})");
        }
        let _ = commands(&sh(&deep));
        let mut wrapped = "git push".to_string();
        for _ in 0..200 {
            wrapped = format!("env {wrapped}");
        }
        assert!(
            blocks("git push", &wrapped),
            "wrappers are unwrapped in a loop"
        );
    }

    fn argv_lossy(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }
}
