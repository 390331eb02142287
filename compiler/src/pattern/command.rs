//! Command prefixes (`command.deny`, `command.allow`, `ssh.allowedCommands`, …).
//!
//! A prefix is tokenized the way Greywall does it: split on blanks outside quotes, quotes
//! removed, and the first word reduced to its basename (`/usr/bin/git push` is `git push`).
//! A command matches a prefix when its words start with the prefix's words, so `git push`
//! matches `git push origin` but not `git pushall`.

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

    /// Whether a command line (already tokenized and normalized) starts with this prefix.
    pub fn matches_words(&self, cmd: &[String]) -> bool {
        cmd.len() >= self.words.len() && cmd[..self.words.len()] == self.words[..]
    }

    /// Whether a raw command string starts with this prefix.
    pub fn matches(&self, cmd: &str) -> bool {
        tokenize(cmd).is_ok_and(|w| self.matches_words(&normalize(w)))
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

/// The simple commands of a shell string, as word lists (first word a basename): split on
/// `&&`, `||`, `;`, `|`, `&` and newlines outside quotes, with the string of a nested
/// `sh -c STRING` (bash, zsh, dash, ksh, fish) split too, as Greywall did. Anything the
/// tokenizer cannot read is returned whole, so a deny rule still sees its words.
pub fn simple_commands(script: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    collect_commands(script, 0, &mut out);
    out
}

const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "fish"];

fn collect_commands(script: &str, depth: usize, out: &mut Vec<Vec<String>>) {
    for segment in split_chain(script) {
        let Ok(words) = tokenize(&segment) else {
            out.push(segment.split_whitespace().map(str::to_string).collect());
            continue;
        };
        let words = normalize(words);
        if words.is_empty() {
            continue;
        }
        if depth < 4
            && SHELLS.contains(&words[0].as_str())
            && let Some(i) = words
                .iter()
                .position(|w| w.starts_with('-') && w.contains('c'))
            && let Some(inner) = words.get(i + 1)
        {
            collect_commands(inner, depth + 1, out);
        }
        out.push(words);
    }
}

/// Splits on command separators outside quotes.
fn split_chain(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, ';' | '\n' | '|' | '&') => {
                if matches!((c, chars.peek()), ('|', Some('|')) | ('&', Some('&'))) {
                    chars.next();
                }
                parts.push(std::mem::take(&mut cur));
            }
            (None, c) => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CommandPrefix {
        CommandPrefix::parse(s).unwrap()
    }

    #[test]
    fn whole_word_prefixes() {
        assert!(p("git push").matches("git push origin main"));
        assert!(p("git push").matches("/usr/local/bin/git push"));
        assert!(p("git push").matches("../bin/git   push --force"));
        assert!(!p("git push").matches("git pushall"));
        assert!(!p("rm -rf").matches("rm -r x"));
        assert!(!p("rm").matches("rmdir x"));
        assert!(p("dd if=").matches("dd if= of=/dev/sda"));
        assert!(p("git").matches("g\"it\" push"));
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
        assert!(words.contains(&"rm -rf /".to_string()), "{words:?}");
        assert!(words.contains(&"echo a;b".to_string()), "{words:?}");
        assert!(
            !words.iter().any(|w| w == "b"),
            "quoted separators do not split: {words:?}"
        );
        assert_eq!(simple_commands("a & b\nc || d").len(), 4);
    }

    #[test]
    fn coverage() {
        assert!(p("git push origin").is_covered_by(&p("git push")));
        assert!(!p("git").is_covered_by(&p("git push")));
    }
}
