//! The `.gw` front-end: it says what greywall.json says (same model), says more (variables,
//! except, profiles, platforms, environment, expectations), and reports malformed policies
//! precisely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use greywall_compiler::diagnostic::Code;
use greywall_compiler::gw;
use greywall_compiler::load::{self, Input, LoadOptions, Loaded};
use greywall_compiler::model::{Platform, Policy, Section};
use greywall_compiler::templates::TEMPLATES;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(name: &str, text: &str) -> Loaded {
    load::load(&Input::Text {
        name: name.into(),
        text: text.into(),
        dir: PathBuf::from("."),
    })
}

fn gw_ok(src: &str) -> Policy {
    let l = text("t.gw", src);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    l.policy.unwrap()
}

fn json_ok(src: &str) -> Policy {
    let l = text("t.json", src);
    assert!(!l.has_errors(), "{:#?}", l.diagnostics);
    l.policy.unwrap()
}

fn same(gw_src: &str, json_src: &str) {
    assert_eq!(
        gw_ok(gw_src).without_origins(),
        json_ok(json_src).without_origins()
    );
}

#[test]
fn sections_rules_and_settings_match_json() {
    same(
        r#"
        extends "code"
        allow-pty = true
        filesystem {
            default-deny-read = true
            read ~/.gitconfig, "/opt/my tools"
            write .
            deny read ~/.ssh ~/.aws
            deny write .env
            allow-git-config = true
        }
        network {
            allow github.com:22, 10.0.0.0/8:5432, subdomains of example.com, npmjs.org and subdomains
            deny 169.254.169.254
            allow unix-socket /run/user/1000/ssh-agent.socket
            allow-local-binding = true
            allow-local-outbound = false
            http-proxy-port = 8080
            proxy-url = "socks5h://localhost:1080"
            dns-addr = "127.0.0.1:53"
        }
        commands {
            deny git push, npm publish
            allow "git push origin docs"
            use-defaults = false
        }
        environment {
            drop AWS_*, GITHUB_TOKEN
            pass AWS_REGION
            set GIT_TERMINAL_PROMPT = "0"
        }
        "#,
        r#"{
          "extends": "code",
          "allowPty": true,
          "filesystem": {
            "defaultDenyRead": true,
            "allowRead": ["~/.gitconfig", "/opt/my tools"],
            "allowWrite": ["."],
            "denyRead": ["~/.ssh", "~/.aws"],
            "denyWrite": [".env"],
            "allowGitConfig": true
          },
          "network": {
            "allowedDomains": ["github.com:22", "10.0.0.0/8:5432", "*.example.com", "**.npmjs.org"],
            "deniedDomains": ["169.254.169.254"],
            "allowUnixSockets": ["/run/user/1000/ssh-agent.socket"],
            "allowLocalBinding": true,
            "allowLocalOutbound": false,
            "httpProxyPort": 8080,
            "proxyUrl": "socks5h://localhost:1080",
            "dnsAddr": "127.0.0.1:53"
          },
          "command": {
            "deny": ["git push", "npm publish"],
            "allow": ["git push origin docs"],
            "useDefaults": false
          },
          "environment": {
            "drop": ["AWS_*", "GITHUB_TOKEN"],
            "pass": ["AWS_REGION"],
            "set": ["GIT_TERMINAL_PROMPT=0"]
          }
        }"#,
    );
}

#[test]
fn except_variables_anchors_and_removal() {
    same(
        r#"
        extends "code"
        let secrets = [~/.ssh, ~/.aws, "~/.config/gh"]
        let hooks = .git/hooks
        filesystem {
            write $cwd except $hooks, "*.pem"
            write $git_root/target, $xdg_cache/my-agent, $env.CARGO_HOME
            deny read $secrets
            remove write ~/.cache
            remove deny read ~/.npmrc
        }
        network {
            remove allow api.openai.com
        }
        "#,
        r#"{
          "extends": "code",
          "filesystem": {
            "allowWrite": [".", "$git_root/target", "$xdg_cache/my-agent", "$env.CARGO_HOME", "!~/.cache"],
            "denyWrite": ["./.git/hooks", "./*.pem"],
            "denyRead": ["~/.ssh", "~/.aws", "~/.config/gh", "!~/.npmrc"]
          },
          "network": { "allowedDomains": ["!api.openai.com"] }
        }"#,
    );
}

#[test]
fn platforms_profiles_best_effort_and_expectations_match_json() {
    let gw_src = r#"
        best-effort ssh {
            allow host github.com
        }
        on linux {
            filesystem {
                write /dev/shm
            }
        }
        filesystem {
            on macos {
                read /Library/Developer
            }
        }
        profile ci {
            network {
                allow ghcr.io
            }
        }
        expect deny read ~/.ssh/id_rsa
        expect allow write ./src/main.rs
        expect deny connect evil.example:443
        expect deny run git push origin main
    "#;
    let json_src = r#"{
        "bestEffort": ["ssh"],
        "ssh": { "allowedHosts": ["github.com"] },
        "linux": { "filesystem": { "allowWrite": ["/dev/shm"] } },
        "macos": { "filesystem": { "allowRead": ["/Library/Developer"] } },
        "profiles": { "ci": { "network": { "allowedDomains": ["ghcr.io"] } } },
        "expect": [
            "deny read ~/.ssh/id_rsa",
            "allow write ./src/main.rs",
            "deny connect evil.example:443",
            "deny run git push origin main"
        ]
    }"#;
    same(gw_src, json_src);
    let p = gw_ok(gw_src);
    assert_eq!(p.best_effort[0].value, Section::Ssh);
    assert_eq!(p.expects.len(), 4);
    let mut d = Vec::new();
    let linux = p.for_platform(Platform::Linux, &mut d);
    assert_eq!(linux.filesystem.allow_write.len(), 1);
    assert!(linux.filesystem.allow_read.is_empty());
    let mac = p.for_platform(Platform::Macos, &mut d);
    assert_eq!(mac.filesystem.allow_read.len(), 1);
    assert!(mac.filesystem.allow_write.is_empty());

    // Profiles: chosen by name, from either front-end.
    for name in ["t.gw", "t.json"] {
        let src = if name.ends_with(".gw") {
            gw_src
        } else {
            json_src
        };
        let l = load::load_with(
            &Input::Text {
                name: name.into(),
                text: src.into(),
                dir: ".".into(),
            },
            &LoadOptions {
                profile: Some("ci".into()),
            },
        );
        assert!(!l.has_errors(), "{:?}", l.diagnostics);
        assert_eq!(l.policy.unwrap().network.allowed_domains.len(), 1);
        let l = load::load_with(
            &Input::Text {
                name: name.into(),
                text: src.into(),
                dir: ".".into(),
            },
            &LoadOptions {
                profile: Some("cj".into()),
            },
        );
        let d = &l.diagnostics[0];
        assert_eq!(d.code, Code::GwUnknownProfile);
        assert_eq!(d.help.as_deref(), Some("did you mean `ci`?"));
    }
}

#[test]
fn expectations_of_extended_files_are_not_inherited() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.gw"),
        "expect deny read ~/.ssh/id_rsa\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("child.gw"),
        "extends \"./base.gw\"\nexpect allow write ./x\n",
    )
    .unwrap();
    let l = load::load(&Input::File(dir.path().join("child.gw")));
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    let p = l.policy.unwrap();
    assert_eq!(p.expects.len(), 1);
    assert!(p.expects[0].value.allow);
}

#[test]
fn extends_gw_and_json_files_and_includes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("base.json"),
        r#"{"filesystem": {"allowWrite": ["."]}}"#,
    )
    .unwrap();
    std::fs::create_dir(d.join("frag")).unwrap();
    std::fs::write(
        d.join("frag/secrets.gw"),
        "deny read ~/.ssh\ninclude \"more.gw\"\n",
    )
    .unwrap();
    std::fs::write(d.join("frag/more.gw"), "deny read ~/.aws\n").unwrap();
    std::fs::write(
        d.join("mid.gw"),
        "extends \"./base.json\"\nfilesystem {\n  include \"frag/secrets.gw\"\n}\n",
    )
    .unwrap();
    std::fs::write(d.join("top.gw"), "extends \"./mid.gw\"\n").unwrap();
    let l = load::load(&Input::File(d.join("top.gw")));
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    let p = l.policy.unwrap();
    assert_eq!(p.filesystem.allow_write.len(), 1);
    assert_eq!(p.filesystem.deny_read.len(), 2);
    // Every file read is a dependency of the compiled artifact.
    assert_eq!(l.files.len(), 5, "{:?}", l.files);

    // Cycles.
    std::fs::write(d.join("a.gw"), "include \"b.gw\"\n").unwrap();
    std::fs::write(d.join("b.gw"), "include \"a.gw\"\n").unwrap();
    let l = load::load(&Input::File(d.join("a.gw")));
    assert!(
        l.diagnostics.iter().any(|x| x.code == Code::GwIncludeCycle),
        "{:?}",
        l.diagnostics
    );
    assert!(l.policy.is_none());
    std::fs::write(d.join("x.gw"), "extends \"./y.gw\"\n").unwrap();
    std::fs::write(d.join("y.gw"), "extends \"./x.gw\"\n").unwrap();
    let l = load::load(&Input::File(d.join("x.gw")));
    assert!(l.diagnostics.iter().any(|x| x.code == Code::ExtendsCycle));
    std::fs::write(d.join("z.gw"), "include \"nope.gw\"\n").unwrap();
    let l = load::load(&Input::File(d.join("z.gw")));
    assert_eq!(l.diagnostics[0].code, Code::GwIncludeNotFound);
}

#[test]
fn malformed_policies_get_precise_diagnostics() {
    let cases: &[(&str, Code, &str)] = &[
        (
            "filesystem {\n  read \"~/.ssh\n}\n",
            Code::GwUnterminatedString,
            "2:8",
        ),
        (
            "filesytem {\n  read .\n}\n",
            Code::GwUnknownStatement,
            "1:1",
        ),
        (
            "filesystem {\n  raed .\n}\n",
            Code::GwUnknownStatement,
            "2:3",
        ),
        (
            "filesystem {\n  read $hmoe/x\n}\n",
            Code::GwUndefinedVariable,
            "2:8",
        ),
        (
            "filesystem {\n  default-deny-read = yes\n}\n",
            Code::GwTypeError,
            "2:23",
        ),
        (
            "network {\n  http-proxy-port = 99999\n}\n",
            Code::GwTypeError,
            "2:21",
        ),
        ("network {\n  allow $home\n}\n", Code::GwTypeError, "2:9"),
        (
            "let l = [a, b]\nfilesystem {\n  read x/$l\n}\n",
            Code::GwTypeError,
            "3:10",
        ),
        (
            "filesystem {\n  read x/$git_root\n}\n",
            Code::GwAnchorPlacement,
            "2:10",
        ),
        (
            "filesystem {\n  read \u{201c}x\u{201d}\n}\n",
            Code::GwStrayCharacter,
            "2:8",
        ),
        ("filesystem {\n  read .\n", Code::GwSyntax, "1:12"),
        ("filesystem {\n  read .\n}\n}\n", Code::GwSyntax, "4:1"),
        (
            "filesystem {\n  read \"a\\qb\"\n}\n",
            Code::GwBadEscape,
            "2:10",
        ),
        (
            "network {\n  alow-local-binding = true\n}\n",
            Code::GwUnknownSetting,
            "2:3",
        ),
        (
            "filesystem {\n  deny read\n}\n",
            Code::GwMissingValue,
            "2:3",
        ),
        (
            "filesystem {\n  write . except /etc\n}\n",
            Code::GwExceptOutside,
            "2:18",
        ),
        ("expect deny raed ~/.ssh\n", Code::GwBadExpect, "1:13"),
        (
            "environment {\n  drop AWS-*\n}\n",
            Code::GwEnvPattern,
            "2:8",
        ),
        ("on lnux {\n}\n", Code::GwUnknownStatement, "1:4"),
        (
            "extends \"code\"\nextends \"code\"\n",
            Code::GwDuplicate,
            "2:9",
        ),
        (
            "network {\n  allow example.com:99999\n}\n",
            Code::InvalidDomain,
            "2:9",
        ),
    ];
    for (src, code, at) in cases {
        let l = text("t.gw", src);
        assert!(l.policy.is_none(), "{src:?} was accepted");
        let d = l
            .diagnostics
            .iter()
            .find(|d| d.code == *code)
            .unwrap_or_else(|| panic!("{src:?}: no {code:?} in {:#?}", l.diagnostics));
        let loc = l.sources.locate(d.primary.unwrap());
        assert_eq!(loc, format!("t.gw:{at}"), "{src:?}: {d:#?}");
    }
}

#[test]
fn did_you_mean() {
    let help = |src: &str| {
        text("t.gw", src)
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .find_map(|d| d.help.clone())
            .unwrap()
    };
    assert_eq!(help("netwrok {\n}\n"), "did you mean `network`?");
    assert_eq!(
        help("filesystem {\n  wirte .\n}\n"),
        "did you mean `write`?"
    );
    assert_eq!(
        help("let secrets = ~/.ssh\nfilesystem {\n  deny read $secret\n}\n"),
        "did you mean `$secrets`?"
    );
    assert_eq!(
        help("filesystem {\n  read $xdg_cahce\n}\n"),
        "did you mean `$xdg_cache`?"
    );
    assert_eq!(
        help("network {\n  allowLocalBinding = true\n}\n"),
        "the .gw spelling is `allow-local-binding`"
    );
    assert_eq!(
        help("filesystem {\n  allow-local-binding = true\n}\n"),
        "`allow-local-binding` belongs in the `network` section"
    );
}

#[test]
fn warnings_do_not_stop_loading() {
    let l = text("t.gw", "let unused = x\nfilesystem {\n  write .\n}\n");
    assert_eq!(l.diagnostics[0].code, Code::GwUnusedVariable);
    assert!(l.policy.is_some());
}

/// Every shipped policy has a `.gw` twin that lowers to the same model.
#[test]
fn shipped_policies_have_identical_gw_twins() {
    for t in TEMPLATES {
        let path = root().join("policies").join(format!("{}.gw", t.name));
        if std::env::var_os("GREYWALL_BLESS").is_some() && !path.exists() {
            // A first version: the JSON's leading comment, then the converted rules.
            let json = root().join("policies").join(format!("{}.json", t.name));
            let text = std::fs::read_to_string(&json).unwrap();
            let mut out = String::new();
            for line in text.lines().take_while(|l| l.starts_with("//")) {
                out.push_str(&format!("#{}\n", &line[2..]));
            }
            out.push('\n');
            out.push_str(&gw::convert::to_gw(&layer(Input::File(json))));
            std::fs::write(&path, out).unwrap();
        }
        let gw = load::load(&Input::File(path.clone()));
        assert!(
            !gw.has_errors(),
            "{}: {:#?}",
            path.display(),
            gw.diagnostics
        );
        let json = load::template(t.name);
        assert_eq!(
            gw.policy.unwrap().without_origins(),
            json.policy.unwrap().without_origins(),
            "{} and its template differ",
            path.display()
        );
    }
}

fn layer(input: Input) -> greywall_compiler::lower::Layer {
    let (_, l, d) = load::read_layer(&input);
    l.unwrap_or_else(|| panic!("{d:#?}"))
}

fn strip(l: greywall_compiler::lower::Layer) -> greywall_compiler::lower::Layer {
    l.without_origins()
}

fn as_text(name: &str, text: String) -> Input {
    Input::Text {
        name: name.into(),
        text,
        dir: root().join("policies"),
    }
}

/// `convert` both ways gives back the identical layer, for every shipped policy.
#[test]
fn convert_round_trips_every_shipped_policy() {
    for t in TEMPLATES {
        let json = root().join("policies").join(format!("{}.json", t.name));
        let gw_path = root().join("policies").join(format!("{}.gw", t.name));
        let from_json = strip(layer(Input::File(json)));
        let as_gw = gw::convert::to_gw(&from_json);
        assert_eq!(
            strip(layer(as_text("x.gw", as_gw.clone()))),
            from_json,
            "{}:\n{as_gw}",
            t.name
        );
        let from_gw = strip(layer(Input::File(gw_path)));
        let as_json = gw::convert::to_json(&from_gw);
        assert_eq!(
            strip(layer(as_text("x.json", as_json.clone()))),
            from_gw,
            "{}:\n{as_json}",
            t.name
        );
        // Converted output is already formatted.
        assert_eq!(
            gw::fmt::format(&as_gw, greywall_compiler::source::SourceId(0)).unwrap(),
            as_gw
        );
    }
}

/// Everything a layer can hold survives both conversions.
#[test]
fn convert_round_trips_every_construct() {
    let src = r#"
extends "./base.gw"
allow-pty = true
best-effort ssh, environment
filesystem {
    default-deny-read = false
    read "/opt/a b", "/dev/tty[0-9]", $git_common/info
    write . except .git/hooks
    remove read ~/.cache
}
network {
    allow *, github.com:22, subdomains of example.com:443, "[::1]:8080"
    allow unix-socket $env.SSH_AUTH_DIR/agent.sock
    proxy-url = "socks5h://user:pw@localhost:1080"
    http-proxy-url = "http://localhost:3128"
    socks-proxy-port = 1081
    remove deny *.sentry.io
}
commands {
    deny "a, b", "x \"y\" \$z"
    remove allow "git push"
}
ssh {
    allow host github.com
    deny command "rm -rf"
    inherit-deny = true
}
environment {
    drop *
    pass PATH, LC_*
    set A = "b c=d"
}
on macos {
    allow-pty = false
}
profile ci {
    on linux {
        network {
            allow ghcr.io
        }
    }
}
expect deny run "git push --force"
expect allow connect github.com:22
"#;
    let a = strip(layer(as_text("x.gw", src.into())));
    let j = gw::convert::to_json(&a);
    assert_eq!(strip(layer(as_text("x.json", j.clone()))), a, "{j}");
    let g = gw::convert::to_gw(&a);
    assert_eq!(strip(layer(as_text("x.gw", g.clone()))), a, "{g}");
}

/// `fmt` is idempotent and keeps every shipped policy as it is.
#[test]
fn shipped_gw_policies_are_formatted() {
    for t in TEMPLATES {
        let path = root().join("policies").join(format!("{}.gw", t.name));
        let text = std::fs::read_to_string(&path).unwrap();
        let out = gw::fmt::format(&text, greywall_compiler::source::SourceId(0)).unwrap();
        assert_eq!(out, text, "{} is not formatted", path.display());
    }
}

/// The fenced block of `lang` after `heading` in a document.
fn block_after(doc: &str, heading: &str, lang: &str) -> String {
    let at = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let open = format!("```{lang}\n");
    let start = doc[at..].find(&open).unwrap() + at + open.len();
    let end = doc[start..].find("\n```").unwrap() + start;
    format!("{}\n", &doc[start..end])
}

/// The side-by-side example of docs/policy-language.md: both forms compile to the same model,
/// the `.gw` is markedly shorter, and its expectations hold.
#[test]
fn docs_side_by_side_is_the_same_policy() {
    let doc = std::fs::read_to_string(root().join("docs/policy-language.md")).unwrap();
    let heading = "## Side by side: an agent policy in both languages";
    let json = block_after(&doc, heading, "json");
    let gw_src = block_after(&doc, heading, "gw");
    let j = json_ok(&json);
    let g = gw_ok(&gw_src);
    assert_eq!(g.without_origins(), j.without_origins());
    {
        let profile = "ci";
        let load_as = |name: &str, text: &str| {
            load::load_with(
                &Input::Text {
                    name: name.into(),
                    text: text.into(),
                    dir: ".".into(),
                },
                &LoadOptions {
                    profile: Some(profile.into()),
                },
            )
            .policy
            .unwrap()
            .without_origins()
        };
        assert_eq!(load_as("t.gw", &gw_src), load_as("t.json", &json));
    }
    let (gl, jl) = (gw_src.lines().count(), json.lines().count());
    assert!(gl * 10 <= jl * 6, ".gw has {gl} lines, greywall.json {jl}");
    let chars = |t: &str| t.chars().filter(|c| !c.is_whitespace()).count();
    let (gc, jc) = (chars(&gw_src), chars(&json));
    assert!(
        gc * 100 <= jc * 85,
        ".gw has {gc} characters, greywall.json {jc}"
    );
    let facts = greywall_compiler::decide::Facts::new("/w/project", "/home/u");
    let (outcomes, problems) = greywall_compiler::expect::run(&g, Platform::Linux, &facts);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(outcomes.len(), 5);
    for o in &outcomes {
        assert!(
            o.passed(),
            "{} fails: {}",
            o.expectation.value,
            o.decision.because
        );
    }
}

/// A failing expectation is reported at its line, with the rule that decided.
#[test]
fn failing_expectations_point_at_their_line() {
    let src = "extends \"code\"\nexpect deny read ./README.md\nexpect deny read ~/.ssh/id_rsa\n";
    let l = text("t.gw", src);
    let p = l.policy.clone().unwrap();
    let facts = greywall_compiler::decide::Facts::new("/w/project", "/home/u");
    let diags = greywall_compiler::expect::check(&p, Platform::Linux, &facts, &l.sources);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].code, Code::GwExpectFailed);
    assert_eq!(l.sources.locate(diags[0].primary.unwrap()), "t.gw:2:1");
    // The deciding rule (the default: reads are allowed) is named.
    assert!(!diags[0].notes.is_empty());
}
