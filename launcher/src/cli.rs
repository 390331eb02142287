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
    Compile {
        source: CompileSource,
        target: Target,
        json: bool,
        color: Color,
        /// `--profile NAME`.
        profile: Option<String>,
    },
    /// `greywall test`: check the policies' expectations.
    Test {
        files: Vec<PathBuf>,
        settings: Option<PathBuf>,
        profile: Option<String>,
        color: Color,
    },
    /// `greywall fmt`: format `.gw` files in place (or check them).
    Fmt {
        files: Vec<PathBuf>,
        check: bool,
    },
    /// `greywall convert`: greywall.json to `.gw` and back.
    Convert {
        file: PathBuf,
        /// The output language; by default the other one.
        to: Option<Lang>,
        output: Option<PathBuf>,
    },
    Exec {
        cached: bool,
        settings: Option<PathBuf>,
        backend: Backend,
        /// `--require userns`: refuse to run without user namespaces.
        require_userns: bool,
        /// `-p PORT` and `-m`.
        network: crate::bridge::Options,
        /// `--profile NAME`: a named profile of a `.gw` policy.
        profile: Option<String>,
        argv: Vec<OsString>,
    },
    /// `greywall explain [-s POLICY] [--profile NAME] [--json] read|write|exec|connect TARGET...`.
    Explain(crate::cmd::explain::Args),
    /// `greywall logs [-n N] [--denied] [--json]`.
    Logs {
        count: usize,
        denied: bool,
        json: bool,
    },
    /// Internal: `ssh -o ProxyCommand` through the sandbox's SOCKS port.
    SocksConnect {
        socks_port: u16,
        host: String,
        port: u16,
    },
    Check {
        settings: Option<PathBuf>,
        /// `--target macos`: the fidelity of the Seatbelt profile, on any host.
        target: Target,
    },
    /// Internal: can this process create namespaces? (a child of `check`)
    ProbeUserns,
    /// Internal: the namespace pool daemon for a runtime directory ([`crate::nspool`]).
    NsPool {
        dir: PathBuf,
    },
    /// Internal: apply an already compiled plan file and exec (tests, the bwrap backend).
    ExecPlan {
        plan: PathBuf,
        /// `--bridge SPEC`: the network bridge the launcher outside bwrap prepared.
        bridge: Option<String>,
        argv: Vec<OsString>,
    },
}

/// What `greywall compile` compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileSource {
    /// Discovery, optionally with `--settings FILE`.
    Discover(Option<PathBuf>),
    /// A policy file path or a built-in template name.
    Named(String),
}

/// A policy language, for `convert --to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Gw,
    Json,
}

/// Which platform's artifacts to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Linux,
    Macos,
    All,
}

/// Who applies the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    Bwrap,
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

pub(crate) fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

pub const HELP: &str = "\
greywall: run commands in a sandbox that restricts what they may read, write, execute and reach.

Usage:
  greywall exec [--cached] [-s FILE] [--profile NAME] [--backend native|bwrap]
               [--require userns] [-p PORT]... [-m] -- COMMAND [ARGS...]
                                         run a command in the sandbox
  greywall [-s FILE] -- COMMAND [ARGS...]
  greywall [-s FILE] -c STRING           Greywall's forms (cached; -c runs STRING with bash)
  greywall compile [-s FILE | POLICY] [--target linux|macos|all] [--profile NAME] [--json]
                                         compile a policy into the artifact cache
  greywall test [-s FILE | POLICY...] [--profile NAME]
                                         check the `expect` statements of policies
  greywall fmt [--check] FILE.gw...      format .gw policies in place (--check: only report)
  greywall convert FILE [--to gw|json] [-o OUT]
                                         greywall.json to .gw, or .gw to greywall.json
  greywall check [-s FILE] [--target linux|macos]
                                         what this machine (or macOS) enforces, rule by rule
  greywall lint [OPTIONS] [FILE...]      check policies (all problems, with positions)
  greywall config show [-s FILE] [--json]
                                         the effective policy and where each entry came from
  greywall explain [-s POLICY] [--profile NAME] [--json] read|write|exec|connect TARGET...
                                         what the policy decides for an operation, and why
  greywall logs [-n N] [--denied] [--json]
                                         recent network decisions (greywall-proxyd's log)
  greywall templates list                the built-in policies
  greywall templates show NAME           print a built-in policy
  greywall schema                        print the JSON Schema of greywall.json

Options:
  -s, --settings FILE    use this policy instead of the discovered one
      --profile NAME     apply the policy's profile NAME (compile, test)
  -p, --port PORT        exec: expose a server the command runs on PORT at the host's
                         127.0.0.1:PORT (repeatable)
  -m, --monitor          exec: print the network requests the policy denies, as they happen
      --format FORMAT    lint output: human (default), json, sarif, github
      --deny-warnings    lint exits 1 on warnings too
      --color WHEN       auto (default), always, never
      --json             machine-readable output (config show)
  -h, --help             this help
  -V, --version          version

Policy discovery: --settings FILE; else greywall.json or greywall.gw in the working
directory or the nearest parent (both in one directory is an error); else
$XDG_CONFIG_HOME/greywall/greywall.json or greywall.gw (~/.config/greywall/...); else
~/.greywall.json; else the built-in `default` template. Policies are greywall.json (JSONC)
or the .gw language (docs/policy-language.md).

Exit status of lint and compile: 0 clean, 1 the policy has errors (or warnings with
--deny-warnings), 2 usage or I/O failure. exec returns the command's status, or 125 when the
sandbox cannot be set up, 126 when the command cannot be executed, 127 when it is not found.
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
    let args: Vec<OsString> = args.into_iter().collect();
    // Greywall's forms, `greywall -- CMD…` and `greywall -s FILE -- CMD…`: lexopt treats `--`
    // as the end of options, so these are recognised before it runs.
    let (settings, rest) = match args.first().and_then(|a| a.to_str()) {
        Some("-s" | "--settings") if args.get(2).is_some_and(|a| a == "--") => {
            (Some(PathBuf::from(&args[1])), &args[3..])
        }
        Some("--") => (None, &args[1..]),
        _ => (None, &[][..]),
    };
    if settings.is_some() || args.first().is_some_and(|a| a == "--") {
        if rest.is_empty() {
            return Err(usage("no command given after --"));
        }
        return Ok(Command::Exec {
            cached: true,
            settings,
            backend: Backend::Native,
            require_userns: false,
            network: Default::default(),
            profile: None,
            argv: rest.to_vec(),
        });
    }
    let mut p = lexopt::Parser::from_args(args);
    let Some(first) = p.next()? else {
        return Ok(Command::Help);
    };
    match first {
        Short('h') | Long("help") => Ok(Command::Help),
        Short('V') | Long("version") => Ok(Command::Version),
        // Greywall's form `greywall [-s FILE] -c STRING`.
        Short('c') => shell_string(&mut p, None),
        Short('s') | Long("settings") => {
            let settings = Some(PathBuf::from(p.value()?));
            match p.next()? {
                Some(Short('c')) => shell_string(&mut p, settings),
                _ => Err(usage(
                    "after --settings FILE, give `-- COMMAND…` or `-c STRING`",
                )),
            }
        }
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
            Some("compile") => parse_compile(&mut p),
            Some("test") => parse_test(&mut p),
            Some("fmt") => parse_fmt(&mut p),
            Some("convert") => parse_convert(&mut p),
            Some("check") => {
                let mut settings = None;
                let mut target = Target::Linux;
                while let Some(arg) = p.next()? {
                    match arg {
                        Short('s') | Long("settings") => settings = Some(PathBuf::from(p.value()?)),
                        Long("target") => {
                            target = match p.value()?.to_str() {
                                Some("linux") => Target::Linux,
                                Some("macos") => Target::Macos,
                                _ => return Err(usage("check --target takes linux or macos")),
                            }
                        }
                        other => return Err(other.unexpected().into()),
                    }
                }
                Ok(Command::Check { settings, target })
            }
            Some("__probe-userns") => Ok(Command::ProbeUserns),
            Some("__ns-pool") => {
                let dir = PathBuf::from(p.value()?);
                no_more(&mut p)?;
                Ok(Command::NsPool { dir })
            }
            Some("explain") => crate::cmd::explain::parse(&mut p),
            Some("logs") => parse_logs(&mut p),
            Some("__socks-connect") => {
                let mut words = Vec::new();
                for _ in 0..3 {
                    words.push(p.value()?.to_string_lossy().into_owned());
                }
                no_more(&mut p)?;
                let port = |w: &str| w.parse::<u16>().ok().filter(|p| *p != 0);
                match (port(&words[0]), port(&words[2])) {
                    (Some(socks_port), Some(port)) => Ok(Command::SocksConnect {
                        socks_port,
                        host: words[1].clone(),
                        port,
                    }),
                    _ => Err(usage("__socks-connect SOCKS_PORT HOST PORT")),
                }
            }
            Some("exec") => parse_exec(&mut p),
            Some("__exec-plan") => {
                let mut first = p.value()?;
                let mut bridge = None;
                if first == "--bridge" {
                    bridge = Some(
                        p.value()?
                            .into_string()
                            .map_err(|_| usage("__exec-plan --bridge takes ASCII"))?,
                    );
                    first = p.value()?;
                }
                let plan = PathBuf::from(first);
                let mut argv: Vec<OsString> = p.raw_args()?.collect();
                if argv.first().is_some_and(|a| a == "--") {
                    argv.remove(0);
                }
                if argv.is_empty() {
                    return Err(usage("__exec-plan needs a command after --"));
                }
                Ok(Command::ExecPlan { plan, bridge, argv })
            }
            _ => Err(usage(format!("unknown command '{}'", v.to_string_lossy()))),
        },
        other => Err(other.unexpected().into()),
    }
}

/// The shell used for `-c STRING` (bash, as Greywall does, when it exists).
pub fn shell() -> &'static str {
    if std::path::Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

fn shell_string(p: &mut lexopt::Parser, settings: Option<PathBuf>) -> Result<Command, UsageError> {
    let script = p.value()?;
    no_more(p)?;
    Ok(Command::Exec {
        cached: true,
        settings,
        backend: Backend::Native,
        require_userns: false,
        network: Default::default(),
        profile: None,
        argv: vec![OsString::from(shell()), OsString::from("-c"), script],
    })
}

fn parse_exec(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut cached = false;
    let mut settings = None;
    let mut backend = Backend::Native;
    let mut require_userns = false;
    let mut network = crate::bridge::Options::default();
    let mut profile = None;
    while let Some(arg) = p.next()? {
        match arg {
            Long("cached") => cached = true,
            Long("profile") => profile = Some(p.value()?.string()?),
            Short('p') | Long("port") => {
                let v = p.value()?;
                match v.to_str().and_then(|v| v.parse::<u16>().ok()) {
                    Some(port) if port != 0 => network.expose.push(port),
                    _ => return Err(usage("-p takes a TCP port (1-65535)")),
                }
            }
            Short('m') | Long("monitor") => network.monitor = true,
            Long("require") => {
                let list = p.value()?;
                for what in list.to_string_lossy().split(',').map(str::trim) {
                    match what {
                        "userns" => require_userns = true,
                        // Always required: greywall never runs without them.
                        "landlock" | "seccomp" => {}
                        other => {
                            return Err(usage(format!(
                                "--require takes userns, landlock, seccomp (comma-separated), not '{other}'"
                            )));
                        }
                    }
                }
            }
            Short('s') | Long("settings") => settings = Some(PathBuf::from(p.value()?)),
            Long("backend") => {
                backend = match p.value()?.to_str() {
                    Some("native") => Backend::Native,
                    Some("bwrap") => Backend::Bwrap,
                    _ => return Err(usage("--backend takes native or bwrap")),
                }
            }
            Short('c') => {
                let script = p.value()?;
                no_more(p)?;
                return Ok(Command::Exec {
                    cached,
                    settings,
                    backend,
                    require_userns,
                    network,
                    profile,
                    argv: vec![OsString::from(shell()), OsString::from("-c"), script],
                });
            }
            Value(v) => {
                // `greywall exec CMD ARGS…` without `--`.
                let mut argv = vec![v];
                argv.extend(p.raw_args()?);
                return Ok(Command::Exec {
                    cached,
                    settings,
                    backend,
                    require_userns,
                    network,
                    profile,
                    argv,
                });
            }
            other => return Err(other.unexpected().into()),
        }
    }
    Err(usage(
        "exec needs a command: greywall exec [--cached] [-s FILE] -- COMMAND…",
    ))
}

fn parse_logs(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut count = 20;
    let mut denied = false;
    let mut json = false;
    while let Some(arg) = p.next()? {
        match arg {
            Short('n') | Long("lines") => {
                count = p
                    .value()?
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| usage("-n takes a number of entries"))?;
            }
            Long("denied") => denied = true,
            Long("json") => json = true,
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(Command::Logs {
        count,
        denied,
        json,
    })
}

fn parse_test(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut files = Vec::new();
    let mut settings = None;
    let mut profile = None;
    let mut color = Color::Auto;
    while let Some(arg) = p.next()? {
        match arg {
            Short('s') | Long("settings") => settings = Some(PathBuf::from(p.value()?)),
            Long("profile") => profile = Some(p.value()?.to_string_lossy().into_owned()),
            Long("color") => color = parse_color(p.value()?)?,
            Value(v) => files.push(PathBuf::from(v)),
            other => return Err(other.unexpected().into()),
        }
    }
    if settings.is_some() && !files.is_empty() {
        return Err(usage(
            "give either --settings or policies to test, not both",
        ));
    }
    Ok(Command::Test {
        files,
        settings,
        profile,
        color,
    })
}

fn parse_fmt(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut files = Vec::new();
    let mut check = false;
    while let Some(arg) = p.next()? {
        match arg {
            Long("check") => check = true,
            Value(v) => files.push(PathBuf::from(v)),
            other => return Err(other.unexpected().into()),
        }
    }
    if files.is_empty() {
        return Err(usage("fmt needs the .gw files to format"));
    }
    Ok(Command::Fmt { files, check })
}

fn parse_convert(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut file = None;
    let mut to = None;
    let mut output = None;
    while let Some(arg) = p.next()? {
        match arg {
            Long("to") => {
                to = Some(match p.value()?.to_str() {
                    Some("gw") => Lang::Gw,
                    Some("json") => Lang::Json,
                    _ => return Err(usage("--to takes gw or json")),
                })
            }
            Short('o') | Long("output") => output = Some(PathBuf::from(p.value()?)),
            Value(v) if file.is_none() => file = Some(PathBuf::from(v)),
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(file) = file else {
        return Err(usage("convert needs a policy file"));
    };
    Ok(Command::Convert { file, to, output })
}

fn parse_compile(p: &mut lexopt::Parser) -> Result<Command, UsageError> {
    let mut settings = None;
    let mut profile = None;
    let mut named = None;
    let mut target = Target::Linux;
    let mut json = false;
    let mut color = Color::Auto;
    while let Some(arg) = p.next()? {
        match arg {
            Short('s') | Long("settings") => settings = Some(PathBuf::from(p.value()?)),
            Long("target") => {
                target = match p.value()?.to_str() {
                    Some("linux") => Target::Linux,
                    Some("macos") => Target::Macos,
                    Some("all") => Target::All,
                    _ => return Err(usage("--target takes linux, macos or all")),
                }
            }
            Long("json") => json = true,
            Long("color") => color = parse_color(p.value()?)?,
            Long("profile") => profile = Some(p.value()?.to_string_lossy().into_owned()),
            Value(v) if named.is_none() => named = Some(v.to_string_lossy().into_owned()),
            other => return Err(other.unexpected().into()),
        }
    }
    let source = match (settings, named) {
        (Some(_), Some(_)) => {
            return Err(usage("give either --settings FILE or a policy, not both"));
        }
        (s, None) => CompileSource::Discover(s),
        (None, Some(n)) => CompileSource::Named(n),
    };
    Ok(Command::Compile {
        source,
        target,
        json,
        color,
        profile,
    })
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
        assert_eq!(
            parse_str(&["--", "ls", "-l"]).unwrap(),
            Command::Exec {
                cached: true,
                settings: None,
                backend: Backend::Native,
                require_userns: false,
                network: Default::default(),
                profile: None,
                argv: vec!["ls".into(), "-l".into()]
            }
        );
        assert_eq!(
            parse_str(&["exec", "--backend", "bwrap", "-s", "p.json", "--", "true"]).unwrap(),
            Command::Exec {
                cached: false,
                settings: Some("p.json".into()),
                backend: Backend::Bwrap,
                require_userns: false,
                network: Default::default(),
                profile: None,
                argv: vec!["true".into()]
            }
        );
        assert!(
            matches!(parse_str(&["-c", "echo hi"]).unwrap(), Command::Exec { argv, .. } if argv[1] == "-c" && argv[2] == "echo hi")
        );
        assert!(matches!(
            parse_str(&["-s", "x.json", "--", "id"]).unwrap(),
            Command::Exec {
                settings: Some(_),
                ..
            }
        ));
        assert!(parse_str(&["--"]).is_err());
        assert!(matches!(
            parse_str(&["exec", "--require", "userns,landlock", "--", "id"]).unwrap(),
            Command::Exec {
                require_userns: true,
                ..
            }
        ));
        assert!(parse_str(&["exec", "--require", "magic", "--", "id"]).is_err());
        assert!(matches!(
            parse_str(&["exec", "-p", "8080", "-p", "9", "-m", "--", "id"]).unwrap(),
            Command::Exec { network, .. } if network.expose == [8080, 9] && network.monitor
        ));
        assert!(parse_str(&["exec", "-p", "0", "--", "id"]).is_err());
        assert!(parse_str(&["exec", "-p", "http", "--", "id"]).is_err());
        assert_eq!(
            parse_str(&["logs", "-n", "5", "--denied"]).unwrap(),
            Command::Logs {
                count: 5,
                denied: true,
                json: false
            }
        );
        assert_eq!(
            parse_str(&["compile", "code", "--json"]).unwrap(),
            Command::Compile {
                source: CompileSource::Named("code".into()),
                target: Target::Linux,
                json: true,
                color: Color::Auto,
                profile: None,
            }
        );
        assert!(matches!(
            parse_str(&["compile", "p.gw", "--profile", "ci"]).unwrap(),
            Command::Compile { profile: Some(p), .. } if p == "ci"
        ));
        assert_eq!(
            parse_str(&["fmt", "--check", "a.gw"]).unwrap(),
            Command::Fmt {
                files: vec!["a.gw".into()],
                check: true
            }
        );
        assert!(parse_str(&["fmt"]).is_err());
        assert_eq!(
            parse_str(&["convert", "greywall.json", "--to", "gw", "-o", "p.gw"]).unwrap(),
            Command::Convert {
                file: "greywall.json".into(),
                to: Some(Lang::Gw),
                output: Some("p.gw".into())
            }
        );
        assert!(parse_str(&["convert", "a", "--to", "yaml"]).is_err());
        assert!(matches!(
            parse_str(&["test", "p.gw", "--profile", "ci"]).unwrap(),
            Command::Test { files, profile: Some(_), .. } if files.len() == 1
        ));
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
