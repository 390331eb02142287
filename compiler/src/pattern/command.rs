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
    fn coverage() {
        assert!(p("git push origin").is_covered_by(&p("git push")));
        assert!(!p("git").is_covered_by(&p("git push")));
    }
}
