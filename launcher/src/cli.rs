//! Command-line parsing.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use lexopt::prelude::*;

/// Exit code for usage and I/O failures of the policy tools.
pub const EXIT_USAGE: u8 = 2;

/// Output format of `greywall lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

/// When to color output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Lint {
        files: Vec<PathBuf>,
        settings: Option<PathBuf>,
        format: Format,
        deny_warnings: bool,
        color: Color,
    },
    Schema,
    TemplatesList,
    TemplatesShow {
        name: String,
    },
    ConfigShow {
        settings: Option<PathBuf>,
        json: bool,
        color: Color,
    },
    /// Internal: apply an already compiled plan file and exec (tests, the bwrap backend).
    ExecPlan {
        plan: PathBuf,
        argv: Vec<OsString>,
    },
}

#[derive(Debug)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

pub const HELP: &str = "\
greywall: run commands in a sandbox that restricts what they may read, write, execute and reach.

Usage:
  greywall lint [OPTIONS] [FILE...]      check policies (all problems, with positions)
  greywall config show [-s FILE] [--json]
                                         the effective policy and where each entry came from
  greywall templates list                the built-in policies
  greywall templates show NAME           print a built-in policy
  greywall schema                        print the JSON Schema of greywall.json

Options:
  -s, --settings FILE    use this policy instead of the discovered one
      --format FORMAT    lint output: human (default), json, sarif, github
      --deny-warnings    lint exits 1 on warnings too
      --color WHEN       auto (default), always, never
      --json             machine-readable output (config show)
  -h, --help             this help
  -V, --version          version

Policy discovery: --settings FILE; else greywall.json in the working directory or the
nearest parent; else $XDG_CONFIG_HOME/greywall/greywall.json (~/.config/greywall/...);
else ~/.greywall.json; else the built-in `default` template.

Exit status: 0 clean, 1 the policy has errors (or warnings with --deny-warnings),
2 usage or I/O failure.
";

fn parse_color(v: OsString) -> Result<Color, UsageError> {
    match v.to_str() {
        Some("auto") => Ok(Color::Auto),
        Some("always") => Ok(Color::Always),
        Some("never") => Ok(Color::Never),
        _ => Err(usage("--color takes auto, always or never")),
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut p = lexopt::Parser::from_args(args);
    let Some(first) = p.next()? else {
        return Ok(Command::Help);
    };
    match first {
        Short('h') | Long("help") => Ok(Command::Help),
        Short('V') | Long("version") => Ok(Command::Version),
        Value(v) => match v.to_str() {
            Some("help") => Ok(Command::Help),
            Some("version") => Ok(Command::Version),
            Some("lint") => parse_lint(&mut p),
            Some("schema") => {
                no_more(&mut p)?;
                Ok(Command::Schema)
            }
            Some("templates") => parse_templates(&mut p),
            Some("config") => parse_config(&mut p),
            Some("__exec-plan") => {
                let plan = PathBuf::from(p.value()?);
                match p.next()? {
                    Some(Long("")) | None => {}
                    Some(other) => return Err(other.unexpected().into()),
                }
                let argv: Vec<OsString> = p.raw_args()?.collect();
                if argv.is_empty() {
                    return Err(usage("__exec-plan needs a command after --"));
                }
                Ok(Command::ExecPlan { plan, argv })
            }
            _ => Err(usage(format!("unknown command '{}'", v.to_string_lossy()))),
        },
        other => Err(other.unexpected().into()),
    }
}

fn no_more(p: &mut lexopt::Parser) -> Result<(), UsageError> {
    match p.next()? {
        None => Ok(()),
        Some(Short('h') | Long("help")) => Err(usage("see 'greywall --help'")),
        Some(arg) => Err(arg.unexpected().into()),
    }
}

fn parse_lint(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut files = Vec::new();
    let mut settings = None;
    let mut format = Format::Human;
    let mut deny_warnings = false;
    let mut color = Color::Auto;
    while let Some(arg) = p.next()? {
        match arg {
            Long("format") => {
                format = match p.value()?.to_str() {
                    Some("human") => Format::Human,
                    Some("json") => Format::Json,
                    Some("sarif") => Format::Sarif,
                    Some("github") => Format::Github,
                    _ => return Err(usage("--format takes human, json, sarif or github")),
                }
            }
            Long("deny-warnings") => deny_warnings = true,
            Long("color") => color = parse_color(p.value()?)?,
            Short('s') | Long("settings") => settings = Some(PathBuf::from(p.value()?)),
            Value(v) => files.push(PathBuf::from(v)),
            other => return Err(other.unexpected().into()),
        }
    }
    if settings.is_some() && !files.is_empty() {
        return Err(usage("give either --settings or files to lint, not both"));
    }
    Ok(Command::Lint {
        files,
        settings,
        format,
        deny_warnings,
        color,
    })
}

fn parse_templates(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    match p.next()? {
        Some(Value(v)) if v == "list" => {
            no_more(p)?;
            Ok(Command::TemplatesList)
        }
        Some(Value(v)) if v == "show" => {
            let name = p
                .value()
                .map_err(|_| usage("templates show needs a template name"))?
                .to_string_lossy()
                .into_owned();
            no_more(p)?;
            Ok(Command::TemplatesShow { name })
        }
        Some(Value(v)) => Err(usage(format!(
            "unknown templates command '{}' (list, show)",
            v.to_string_lossy()
        ))),
        None => Err(usage("templates needs a command: list, show")),
        Some(other) => Err(other.unexpected().into()),
    }
}

fn parse_config(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    match p.next()? {
        Some(Value(v)) if v == "show" => {}
        Some(Value(v)) => {
            return Err(usage(format!(
                "unknown config command '{}' (show)",
                v.to_string_lossy()
            )));
        }
        None => return Err(usage("config needs a command: show")),
        Some(other) => return Err(other.unexpected().into()),
    }
    let mut settings = None;
    let mut json = false;
    let mut color = Color::Auto;
    while let Some(arg) = p.next()? {
        match arg {
            Short('s') | Long("settings") => settings = Some(PathBuf::from(p.value()?)),
            Long("json") => json = true,
            Long("color") => color = parse_color(p.value()?)?,
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::ConfigShow {
        settings,
        json,
        color,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_lint() {
        let c = parse_str(&[
            "lint",
            "--format",
            "sarif",
            "a.json",
            "b.json",
            "--deny-warnings",
        ])
        .unwrap();
        assert_eq!(
            c,
            Command::Lint {
                files: vec!["a.json".into(), "b.json".into()],
                settings: None,
                format: Format::Sarif,
                deny_warnings: true,
                color: Color::Auto
            }
        );
        assert!(parse_str(&["lint", "--format", "xml"]).is_err());
        assert!(parse_str(&["lint", "-s", "x", "y"]).is_err());
    }

    #[test]
    fn parses_others() {
        assert_eq!(parse_str(&[]).unwrap(), Command::Help);
        assert_eq!(parse_str(&["-V"]).unwrap(), Command::Version);
        assert_eq!(parse_str(&["schema"]).unwrap(), Command::Schema);
        assert_eq!(
            parse_str(&["templates", "list"]).unwrap(),
            Command::TemplatesList
        );
        assert_eq!(
            parse_str(&["templates", "show", "code"]).unwrap(),
            Command::TemplatesShow {
                name: "code".into()
            }
        );
        assert!(parse_str(&["templates"]).is_err());
        assert!(parse_str(&["frobnicate"]).is_err());
        assert_eq!(
            parse_str(&["config", "show", "--json", "-s", "p.json"]).unwrap(),
            Command::ConfigShow {
                settings: Some("p.json".into()),
                json: true,
                color: Color::Auto
            }
        );
    }
}
