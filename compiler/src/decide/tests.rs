//! Unit tests of the decision function, one group per rule kind.

use std::path::PathBuf;

use super::*;
use crate::load::{self, Input, Loaded};

const CWD: &str = "/w/proj";
const HOME: &str = "/home/u";

fn load_text(json: &str) -> Loaded {
    let l = load::load(&Input::Text {
        name: "greywall.json".into(),
        text: json.into(),
        dir: PathBuf::from("/nonexistent"),
    });
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    l
}

fn policy(json: &str) -> Policy {
    load_text(json).policy.unwrap()
}

fn facts() -> Facts {
    Facts::new(CWD, HOME)
}

fn read(p: &Policy, path: &str) -> Decision {
    decide(p, &facts(), &Op::Read(path.into()))
}

fn write(p: &Policy, path: &str) -> Decision {
    decide(p, &facts(), &Op::Write(path.into()))
}

fn exec(p: &Policy, argv: &[&str]) -> Decision {
    decide(
        p,
        &facts(),
        &Op::Exec(argv.iter().map(|s| s.to_string()).collect()),
    )
}

fn kind(d: &Decision) -> Option<RuleKind> {
    d.rule.as_ref().map(|r| r.kind)
}

/// Asserts the decision and the kind of rule behind it.
#[track_caller]
fn expect(d: Decision, allowed: bool, k: RuleKind) -> Decision {
    assert_eq!(d.allowed, allowed, "{d:?}");
    assert_eq!(kind(&d), Some(k), "{d:?}");
    d
}

const DEFAULT: &str = r#"{"filesystem":{"allowWrite":["."]}}"#;

#[test]
fn normalisation_is_lexical() {
    let f = facts();
    assert_eq!(normalize("~", &f), HOME);
    assert_eq!(normalize("~/.ssh/id_rsa", &f), "/home/u/.ssh/id_rsa");
    assert_eq!(normalize("src/main.rs", &f), "/w/proj/src/main.rs");
    assert_eq!(normalize("./a/./b/../c", &f), "/w/proj/a/c");
    assert_eq!(normalize("../../../../etc", &f), "/etc");
    assert_eq!(normalize("/a//b/", &f), "/a/b");
    assert_eq!(normalize("/..", &f), "/");
    // `..` climbs out of an allowed folder on the text, not through symlinks.
    let p = policy(DEFAULT);
    expect(
        write(&p, "./src/../../elsewhere/x"),
        false,
        RuleKind::DefaultDenyWrite,
    );
    expect(write(&p, "../proj/src/x"), true, RuleKind::AllowWrite);
}

#[test]
fn writes_are_denied_by_default() {
    let p = policy("{}");
    for path in ["/etc/passwd", "./src/main.rs", "~/notes.txt", "/"] {
        let d = expect(write(&p, path), false, RuleKind::DefaultDenyWrite);
        assert!(d.rule.unwrap().origin.is_none());
    }
}

#[test]
fn allow_write_names_its_entry() {
    let l = load_text("{\n  \"filesystem\": {\"allowWrite\": [\"~/.cache\", \".\"]}\n}");
    let p = l.policy.as_ref().unwrap();
    let d = expect(write(p, "src/main.rs"), true, RuleKind::AllowWrite);
    let rule = d.rule.unwrap();
    assert_eq!(rule.text, "filesystem.allowWrite \".\"");
    assert_eq!(l.sources.locate(rule.origin.unwrap()), "greywall.json:2:45");
    assert!(rule.extends_chain(&l.sources).is_empty());
    let d = expect(write(p, "~/.cache/pip/x"), true, RuleKind::AllowWrite);
    assert_eq!(d.rule.unwrap().text, "filesystem.allowWrite \"~/.cache\"");
    // A sibling with a common prefix is not below.
    expect(
        write(p, "~/.cache-other"),
        false,
        RuleKind::DefaultDenyWrite,
    );
    expect(write(p, "/w/project2/x"), false, RuleKind::DefaultDenyWrite);
}

#[test]
fn deny_write_wins_over_allow_write() {
    let p = policy(r#"{"filesystem":{"allowWrite":["."],"denyWrite":["**/*.key","build"]}}"#);
    let d = expect(write(&p, "deploy.key"), false, RuleKind::DenyWrite);
    assert_eq!(d.rule.unwrap().text, "filesystem.denyWrite \"./**/*.key\"");
    expect(write(&p, "a/b/c/server.key"), false, RuleKind::DenyWrite);
    expect(write(&p, "build/out/x.o"), false, RuleKind::DenyWrite);
    expect(write(&p, "buildx/y"), true, RuleKind::AllowWrite);
    expect(write(&p, "key.txt"), true, RuleKind::AllowWrite);
    // Reading is not affected.
    let p = policy(
        r#"{"filesystem":{"defaultDenyRead":false,"allowWrite":["."],"denyWrite":["*.key"]}}"#,
    );
    expect(read(&p, "deploy.key"), true, RuleKind::DefaultDenyRead);
}

#[test]
fn globs_match_like_the_pattern_module() {
    let p = policy(r#"{"filesystem":{"allowWrite":["out-?/**/*.log", "/var/tmp/[ab]*"]}}"#);
    expect(write(&p, "out-1/a/b/x.log"), true, RuleKind::AllowWrite);
    expect(write(&p, "out-1/x.log"), true, RuleKind::AllowWrite);
    expect(write(&p, "out-12/x.log"), false, RuleKind::DefaultDenyWrite);
    expect(write(&p, "/var/tmp/alpha"), true, RuleKind::AllowWrite);
    expect(
        write(&p, "/var/tmp/gamma"),
        false,
        RuleKind::DefaultDenyWrite,
    );
}

#[test]
fn protections_hold_inside_writable_folders() {
    let p = policy(r#"{"filesystem":{"allowWrite":[".", "~"]}}"#);
    for path in [
        ".bashrc",
        "sub/dir/.bashrc",
        "~/.bashrc",
        "~/.zshrc",
        "~/projects/x/.profile",
        ".git/hooks/pre-commit",
        "vendor/lib/.git/hooks/post-checkout",
        ".git/hooks",
        ".gitmodules",
        ".mcp.json",
        ".vscode/settings.json",
        ".idea/workspace.xml",
        ".claude/commands/deploy.md",
        ".claude/agents/x.md",
        ".envrc",
        "~/.ssh/authorized_keys",
        "~/.config/autostart/x.desktop",
        "greywall.json",
        "~/.config/greywall/greywall.json",
        "~/.cache/greywall/plans/x",
    ] {
        let d = expect(write(&p, path), false, RuleKind::Protection);
        assert!(d.rule.as_ref().unwrap().is_builtin(), "{path}");
        assert!(d.rule.unwrap().origin.is_none(), "{path}");
    }
    // Near misses stay writable.
    for path in [
        ".claude/settings.json",
        ".git/HEAD",
        ".git/objects/ab/cdef",
        "hooks/x",
        "bashrc",
        ".bashrc.d/x",
        ".ssh/config",
        "my-greywall.json",
    ] {
        expect(write(&p, path), true, RuleKind::AllowWrite);
    }
}

#[test]
fn home_only_protections_do_not_apply_below_the_working_directory() {
    let p = policy(DEFAULT);
    expect(write(&p, ".ssh/known_hosts"), true, RuleKind::AllowWrite);
    expect(write(&p, ".config/systemd/x"), true, RuleKind::AllowWrite);
    // Everywhere-names below the home directory count only when the home is writable.
    let p = policy(r#"{"filesystem":{"allowWrite":[".", "~/src"]}}"#);
    expect(write(&p, "~/src/.vscode/x"), true, RuleKind::AllowWrite);
    expect(write(&p, "~/.vscode/x"), false, RuleKind::Protection);
}

#[test]
fn git_config_is_writable_only_with_allow_git_config() {
    let p = policy(DEFAULT);
    let d = expect(write(&p, ".git/config"), false, RuleKind::Protection);
    assert!(d.because.contains("allowGitConfig"), "{}", d.because);
    let p = policy(r#"{"filesystem":{"allowWrite":["."],"allowGitConfig":true}}"#);
    expect(write(&p, ".git/config"), true, RuleKind::AllowWrite);
    expect(
        write(&p, ".git/hooks/pre-push"),
        false,
        RuleKind::Protection,
    );
}

#[test]
fn greywall_state_from_facts_is_protected() {
    let p = policy(r#"{"filesystem":{"allowWrite":["/", "/x"]}}"#);
    let mut f = Facts {
        policy_files: vec!["/etc/team/policy.json".into()],
        ..facts()
    };
    f.anchors.xdg_config = "/xdg/config".into();
    f.anchors.xdg_cache = "/xdg/cache".into();
    let w = |path: &str| decide(&p, &f, &Op::Write(path.into()));
    for path in [
        "/xdg/config/greywall/greywall.json",
        "/xdg/cache/greywall/index/x",
        "/etc/team/policy.json",
        // Every ancestor of the working directory.
        "/w/greywall.json",
        "/greywall.json",
    ] {
        expect(w(path), false, RuleKind::Protection);
    }
    expect(w("/xdg/config/other"), true, RuleKind::AllowWrite);
    expect(w("/etc/team/policy.json.bak"), true, RuleKind::AllowWrite);
    // Not an ancestor: only the everywhere-below rule, which does not reach /x.
    expect(w("/x/greywall.json"), true, RuleKind::AllowWrite);
}

#[test]
fn linked_worktree_common_dir() {
    let p = policy(r#"{"filesystem":{"allowWrite":[".", "/repo/.git/worktrees/wt"]}}"#);
    let mut f = Facts {
        git_dir: Some("/repo/.git/worktrees/wt".into()),
        ..facts()
    };
    f.anchors.git_root = Some(CWD.into());
    f.anchors.git_common = Some("/repo/.git".into());
    let w = |path: &str| decide(&p, &f, &Op::Write(path.into()));
    expect(w("/repo/.git/objects/ab/cd"), true, RuleKind::GitWorktree);
    expect(w("/repo/.git/refs/heads/x"), true, RuleKind::GitWorktree);
    expect(
        w("/repo/.git/hooks/pre-commit"),
        false,
        RuleKind::Protection,
    );
    expect(w("/repo/.git/config"), false, RuleKind::Protection);
    expect(w("/repo/src/x"), false, RuleKind::DefaultDenyWrite);
    // Without the worktree's git directory writable, the common one is not either.
    let p = policy(DEFAULT);
    let w = |path: &str| decide(&p, &f, &Op::Write(path.into()));
    expect(
        w("/repo/.git/objects/ab/cd"),
        false,
        RuleKind::DefaultDenyWrite,
    );
}

#[test]
fn private_tmp_and_devices() {
    let p = policy("{}");
    expect(write(&p, "/tmp/x/y"), true, RuleKind::SandboxPrivate);
    expect(write(&p, "/dev/shm/seg"), true, RuleKind::SandboxPrivate);
    expect(write(&p, "/dev/null"), true, RuleKind::SandboxPrivate);
    expect(write(&p, "/dev/pts/3"), true, RuleKind::SandboxPrivate);
    expect(write(&p, "/dev/sda"), false, RuleKind::DefaultDenyWrite);
    expect(write(&p, "/tmpfoo"), false, RuleKind::DefaultDenyWrite);
    expect(read(&p, "/tmp/x"), true, RuleKind::SandboxPrivate);
}

#[test]
fn secret_files_are_neither_readable_nor_writable() {
    let p = policy(r#"{"filesystem":{"defaultDenyRead":false,"allowWrite":["."]}}"#);
    for name in [".env", ".env.local", ".env.production"] {
        expect(read(&p, name), false, RuleKind::SecretFile);
        expect(write(&p, name), false, RuleKind::SecretFile);
    }
    // Hidden only in the working directory itself; refused for writing below it too.
    expect(read(&p, "sub/.env"), true, RuleKind::DefaultDenyRead);
    expect(write(&p, "sub/.env"), false, RuleKind::SecretFile);
    expect(write(&p, "a/b/.env.test"), false, RuleKind::SecretFile);
    expect(read(&p, ".env.example"), true, RuleKind::DefaultDenyRead);
    expect(write(&p, ".env.example"), true, RuleKind::AllowWrite);
}

#[test]
fn reads_with_default_deny_read() {
    // The built-in default is defaultDenyRead.
    let p = policy(DEFAULT);
    for path in [
        "/etc/passwd",
        "/usr/bin/env",
        "/proc/self/status",
        "/dev/urandom",
    ] {
        assert!(read(&p, path).allowed, "{path}");
    }
    expect(read(&p, "/usr/lib/x"), true, RuleKind::SystemReadable);
    expect(
        read(&p, "~/.cargo/bin/cargo"),
        true,
        RuleKind::SystemReadable,
    );
    expect(
        read(&p, "~/.rustup/toolchains"),
        true,
        RuleKind::SystemReadable,
    );
    expect(read(&p, "src/main.rs"), true, RuleKind::AllowWrite);
    let d = expect(read(&p, "~/.ssh/id_rsa"), false, RuleKind::DefaultDenyRead);
    assert_eq!(
        d.rule.unwrap().text,
        "filesystem.defaultDenyRead true (the default)"
    );
    for path in [
        "~/.cargo/credentials.toml",
        "~/.config/gh/hosts.yml",
        "~/.npmrc",
        "~",
        "/",
        "/home",
        "/srv/data",
        "/var/log/syslog",
    ] {
        expect(read(&p, path), false, RuleKind::DefaultDenyRead);
    }
}

#[test]
fn allow_read_and_deny_read() {
    let l = load_text(
        r#"{"filesystem":{"defaultDenyRead":true,"allowRead":["~/notes","/srv"],"denyRead":["/srv/secret"]}}"#,
    );
    let p = l.policy.as_ref().unwrap();
    let d = expect(read(p, "~/notes/todo.txt"), true, RuleKind::AllowRead);
    assert_eq!(d.rule.unwrap().text, "filesystem.allowRead \"~/notes\"");
    expect(read(p, "/srv/www/index.html"), true, RuleKind::AllowRead);
    // A deny wins.
    let d = expect(read(p, "/srv/secret/key"), false, RuleKind::DenyRead);
    assert!(d.rule.unwrap().origin.is_some());
    // Readable is not writable.
    expect(
        write(p, "~/notes/todo.txt"),
        false,
        RuleKind::DefaultDenyWrite,
    );
    // What is hidden cannot be written either.
    let p = policy(r#"{"filesystem":{"allowWrite":["."],"denyRead":["secrets"]}}"#);
    expect(write(&p, "secrets/a"), false, RuleKind::DenyRead);
}

#[test]
fn reads_allowed_by_default_when_default_deny_read_is_off() {
    let l = load_text(
        "{\"filesystem\": {\n  \"defaultDenyRead\": false,\n  \"denyRead\": [\"~/.ssh\"]\n}}",
    );
    let p = l.policy.as_ref().unwrap();
    let d = expect(
        read(p, "~/.aws/credentials"),
        true,
        RuleKind::DefaultDenyRead,
    );
    let rule = d.rule.unwrap();
    assert_eq!(rule.text, "filesystem.defaultDenyRead false");
    assert_eq!(l.sources.locate(rule.origin.unwrap()), "greywall.json:2:22");
    expect(read(p, "~/.ssh/id_ed25519"), false, RuleKind::DenyRead);
    expect(read(p, "~/.ssh"), false, RuleKind::DenyRead);
    expect(read(p, "~/.sshd"), true, RuleKind::DefaultDenyRead);
}

#[test]
fn home_below_a_system_folder_stays_unreadable() {
    let p = policy(DEFAULT);
    let f = Facts::new("/w/proj", "/var/lib/jenkins");
    let r = |path: &str| decide(&p, &f, &Op::Read(path.into()));
    expect(
        r("/var/lib/jenkins/secrets/x"),
        false,
        RuleKind::DefaultDenyRead,
    );
    expect(r("/var/lib/jenkins"), false, RuleKind::DefaultDenyRead);
    expect(r("/var/lib"), false, RuleKind::DefaultDenyRead);
    expect(r("/var/lib/dpkg/status"), true, RuleKind::SystemReadable);
    expect(
        r("/var/lib/jenkins/.cargo/bin/x"),
        true,
        RuleKind::SystemReadable,
    );
}

#[test]
fn container_sockets_are_hidden_unless_allowed() {
    let p = policy(r#"{"filesystem":{"defaultDenyRead":false}}"#);
    let f = Facts {
        runtime_dir: Some("/run/user/1000".into()),
        ..facts()
    };
    let d = decide(&p, &f, &Op::Read("/var/run/docker.sock".into()));
    expect(d, false, RuleKind::ContainerSocket);
    // Below the runtime directory, which is hidden whole.
    let d = decide(
        &p,
        &f,
        &Op::Read("/run/user/1000/podman/podman.sock".into()),
    );
    expect(d, false, RuleKind::HostSocket);
    let p = policy(
        r#"{"filesystem":{"defaultDenyRead":false},"network":{"allowUnixSockets":["/var/run/docker.sock"]}}"#,
    );
    expect(
        decide(&p, &f, &Op::Read("/var/run/docker.sock".into())),
        true,
        RuleKind::DefaultDenyRead,
    );
    expect(
        decide(&p, &f, &Op::Read("/run/docker.sock".into())),
        false,
        RuleKind::ContainerSocket,
    );
    let p = policy(
        r#"{"filesystem":{"defaultDenyRead":false},"network":{"allowAllUnixSockets":true}}"#,
    );
    assert!(decide(&p, &f, &Op::Read("/run/docker.sock".into())).allowed);
}

/// The user's runtime directory (session bus, agents) and the system services' sockets are
/// hidden unless the policy names them.
#[test]
fn host_sockets_are_hidden_unless_allowed() {
    let f = Facts {
        runtime_dir: Some("/run/user/1000".into()),
        ..facts()
    };
    let hidden = policy(r#"{"filesystem":{"defaultDenyRead":false}}"#);
    for path in [
        "/run/user/1000/bus",
        "/run/user/1000/gnupg/S.gpg-agent",
        "/run/user/1000",
        "/run/dbus/system_bus_socket",
    ] {
        expect(
            decide(&hidden, &f, &Op::Read(path.into())),
            false,
            RuleKind::HostSocket,
        );
    }
    expect(
        decide(&hidden, &f, &Op::Read("/run/user/1001/bus".into())),
        true,
        RuleKind::DefaultDenyRead,
    );
    for exposing in [
        r#"{"filesystem":{"defaultDenyRead":false},"network":{"allowUnixSockets":["/run/user/1000/bus"]}}"#,
        r#"{"filesystem":{"defaultDenyRead":false},"network":{"allowAllUnixSockets":true}}"#,
        r#"{"filesystem":{"defaultDenyRead":false,"allowRead":["/run/user/1000/pulse"]}}"#,
    ] {
        let p = policy(exposing);
        assert!(
            decide(&p, &f, &Op::Read("/run/user/1000/bus".into())).allowed,
            "{exposing}"
        );
    }
    let p = policy(
        r#"{"filesystem":{"defaultDenyRead":false},"network":{"allowUnixSockets":["/run/dbus/system_bus_socket"]}}"#,
    );
    assert!(decide(&p, &f, &Op::Read("/run/dbus/system_bus_socket".into())).allowed);
}

#[test]
fn default_denied_commands() {
    let p = policy("{}");
    let d = expect(
        exec(&p, &["shutdown", "-h", "now"]),
        false,
        RuleKind::DefaultCommand,
    );
    assert!(d.rule.unwrap().text.contains("\"shutdown\""));
    expect(exec(&p, &["/sbin/reboot"]), false, RuleKind::DefaultCommand);
    expect(
        exec(&p, &["rm", "-rf", "/"]),
        false,
        RuleKind::DefaultCommand,
    );
    expect(exec(&p, &["init", "0"]), false, RuleKind::DefaultCommand);
    let ok = exec(&p, &["ls", "-l"]);
    assert!(ok.allowed && ok.rule.is_none(), "{ok:?}");
    let ok = exec(&p, &["rm", "-rf", "/tmp/x"]);
    assert!(ok.allowed, "{ok:?}");
    let ok = exec(&p, &["init", "5"]);
    assert!(ok.allowed, "{ok:?}");
    // Without the defaults, nothing is denied.
    let p = policy(r#"{"command":{"useDefaults":false}}"#);
    let ok = exec(&p, &["shutdown"]);
    assert!(ok.allowed && ok.rule.is_none(), "{ok:?}");
    assert_eq!(ok.because, "the policy denies no commands");
}

#[test]
fn command_deny_and_allow() {
    let l = load_text(
        r#"{"command":{"deny":["git push","npm publish"],"allow":["git push origin dev"]}}"#,
    );
    let p = l.policy.as_ref().unwrap();
    let d = expect(
        exec(p, &["git", "push", "origin", "main"]),
        false,
        RuleKind::CommandDeny,
    );
    let rule = d.rule.unwrap();
    assert_eq!(rule.text, "command.deny \"git push\"");
    assert_eq!(l.sources.locate(rule.origin.unwrap()), "greywall.json:1:21");
    expect(
        exec(p, &["/usr/bin/git", "push"]),
        false,
        RuleKind::CommandDeny,
    );
    let d = expect(
        exec(p, &["git", "push", "origin", "dev", "--force"]),
        true,
        RuleKind::CommandAllow,
    );
    assert!(d.because.contains("git push"), "{}", d.because);
    // Whole words only.
    assert!(exec(p, &["git", "pushall"]).allowed);
    assert!(exec(p, &["git", "status"]).allowed);
    assert!(exec(p, &["npm", "install"]).allowed);
}

#[test]
fn shell_scripts_are_checked_command_by_command() {
    let p = policy(r#"{"command":{"deny":["git push"],"allow":["git push origin dev"]}}"#);
    let d = expect(
        exec(&p, &["bash", "-c", "cargo build && git push origin main"]),
        false,
        RuleKind::CommandDeny,
    );
    assert!(
        d.because.contains("`git push origin main`"),
        "{}",
        d.because
    );
    expect(
        exec(&p, &["/bin/sh", "-ec", "ls; bash -c 'git push'"]),
        false,
        RuleKind::CommandDeny,
    );
    assert!(exec(&p, &["sh", "-c", "git push origin dev | cat"]).allowed);
    assert!(exec(&p, &["sh", "-c", "echo 'git push'"]).allowed);
    // Not a shell: the string is one argument.
    assert!(exec(&p, &["python3", "-c", "git push"]).allowed);
}

#[test]
fn wrappers_assignments_and_defaults_are_looked_through() {
    let p = policy(r#"{"command":{"deny":["git push"],"allow":["git push origin dev"]}}"#);
    for argv in [
        &["env", "git", "push"][..],
        &["env", "-i", "X=1", "nice", "-n", "5", "git", "push"],
        &["git", "-C", "/w/proj", "push"],
        &["timeout", "10", "git", "push", "origin", "main"],
    ] {
        let d = expect(exec(&p, argv), false, RuleKind::CommandDeny);
        assert!(d.because.contains("the command runs `git"), "{}", d.because);
    }
    let d = expect(
        exec(&p, &["bash", "-c", "X=1 git push"]),
        false,
        RuleKind::CommandDeny,
    );
    assert!(
        d.because.contains("the shell script runs `git push`"),
        "{}",
        d.because
    );
    expect(
        exec(&p, &["env", "git", "push", "origin", "dev"]),
        true,
        RuleKind::CommandAllow,
    );
    assert!(exec(&p, &["env", "git", "pushall"]).allowed);
    // `dd if=` (a built-in entry) matches a real invocation.
    let d = expect(
        exec(&policy("{}"), &["dd", "if=/dev/zero", "of=/dev/sda"]),
        false,
        RuleKind::DefaultCommand,
    );
    assert!(
        d.because.contains("starts with a denied prefix"),
        "{}",
        d.because
    );
}

#[test]
fn a_program_path_must_be_readable() {
    let p = policy(DEFAULT);
    assert!(exec(&p, &["/usr/bin/true"]).allowed);
    assert!(exec(&p, &["./tool"]).allowed);
    let d = expect(
        exec(&p, &["/home/u/bin-elsewhere/tool"]),
        false,
        RuleKind::DefaultDenyRead,
    );
    assert!(d.because.contains("cannot be executed"), "{}", d.because);
    let d = expect(exec(&p, &["./.env"]), false, RuleKind::SecretFile);
    assert!(d.because.contains("/w/proj/.env"), "{}", d.because);
    // A bare name is looked up on $PATH at run time: not a file decision.
    assert!(exec(&p, &["tool"]).allowed);
    let none = exec(&p, &[]);
    assert!(!none.allowed && none.rule.is_none());
}

#[test]
fn no_network_rules_means_no_network() {
    let p = policy(DEFAULT);
    for (host, port) in [("github.com", 443), ("127.0.0.1", 8080), ("::1", 22)] {
        let d = expect(
            decide(&p, &facts(), &Op::Connect(host.into(), port)),
            false,
            RuleKind::NoNetwork,
        );
        assert!(d.rule.unwrap().is_builtin());
    }
}

#[test]
fn filtered_network_follows_the_proxy_rules() {
    let l = load_text(
        r#"{"network":{"allowedDomains":["github.com","*.npmjs.org","10.0.0.0/8:5432"],
            "deniedDomains":["evil.npmjs.org"]}}"#,
    );
    let p = l.policy.as_ref().unwrap();
    let c = |host: &str, port: u16| decide(p, &facts(), &Op::Connect(host.into(), port));
    let d = expect(c("github.com", 443), true, RuleKind::AllowedDomain);
    let rule = d.rule.unwrap();
    assert_eq!(rule.text, "network.allowedDomains \"github.com\"");
    assert_eq!(l.sources.locate(rule.origin.unwrap()), "greywall.json:1:31");
    assert!(d.because.contains("resolves to"), "{}", d.because);
    expect(c("GitHub.com.", 22), true, RuleKind::AllowedDomain);
    expect(c("registry.npmjs.org", 443), true, RuleKind::AllowedDomain);
    let d = expect(c("evil.npmjs.org", 443), false, RuleKind::DeniedDomain);
    assert!(d.rule.unwrap().origin.is_some());
    // Strict subdomains only, as Greywall means `*.`.
    let d = c("npmjs.org", 443);
    assert!(!d.allowed && d.rule.is_none(), "{d:?}");
    assert!(
        d.because.contains("no network.allowedDomains rule"),
        "{}",
        d.because
    );
    expect(c("10.1.2.3", 5432), true, RuleKind::AllowedDomain);
    assert!(!c("10.1.2.3", 22).allowed);
    // An address literal matches address rules only.
    for host in ["169.254.169.254", "127.0.0.1", "140.82.112.3", "::1"] {
        let d = c(host, 443);
        assert!(!d.allowed && d.rule.is_none(), "{host}: {d:?}");
    }
    assert!(!c("github.com", 0).allowed);
    assert!(!c("not a host", 443).allowed);
}

#[test]
fn relaxed_network_allows_everything_and_says_denies_are_not_enforced() {
    let p = policy(r#"{"network":{"allowedDomains":["*"],"deniedDomains":["*.sentry.io"]}}"#);
    let c = |host: &str| decide(&p, &facts(), &Op::Connect(host.into(), 443));
    let d = expect(c("example.org"), true, RuleKind::AllowedDomain);
    assert!(d.because.contains("relaxed"), "{}", d.because);
    // No proxy runs in relaxed mode: the deny entry is named, and the connection is made.
    let d = expect(c("o1.sentry.io"), true, RuleKind::DeniedDomain);
    assert!(
        d.because.contains("nothing enforces the rule"),
        "{}",
        d.because
    );
    // The host network is shared: addresses are not filtered by class.
    expect(c("169.254.169.254"), true, RuleKind::AllowedDomain);
}

#[test]
fn rules_inherited_through_extends_carry_the_chain() {
    let l = load_text("{\n  \"extends\": \"code\"\n}");
    let p = l.policy.as_ref().unwrap();
    let d = expect(write(p, "~/.cache/pip/x"), true, RuleKind::AllowWrite);
    let rule = d.rule.unwrap();
    assert!(
        l.sources
            .locate(rule.origin.unwrap())
            .starts_with("template:code:"),
        "{}",
        l.sources.locate(rule.origin.unwrap())
    );
    let chain: Vec<String> = rule
        .extends_chain(&l.sources)
        .into_iter()
        .map(|s| l.sources.locate(s))
        .collect();
    assert_eq!(chain, ["greywall.json:2:14"]);
    // The code template's denyRead holds through the chain too.
    let d = expect(read(p, "~/.aws/credentials"), false, RuleKind::DenyRead);
    assert_eq!(d.rule.unwrap().extends_chain(&l.sources).len(), 1);
}

#[test]
fn the_most_specific_rule_decides() {
    let l = load_text(
        r#"{"extends":"code","filesystem":{"allowWrite":["out","~/.cach?"],"denyWrite":["out/keep"]}}"#,
    );
    let p = l.policy.as_ref().unwrap();
    // `out` of this file, not `.` of the template.
    let d = expect(write(p, "out/x"), true, RuleKind::AllowWrite);
    let rule = d.rule.unwrap();
    assert_eq!(rule.text, "filesystem.allowWrite \"./out\"");
    assert!(rule.extends_chain(&l.sources).is_empty());
    // Of equally specific rules (`~/.cache` of the template), this file's own.
    let d = expect(write(p, "~/.cache/x"), true, RuleKind::AllowWrite);
    assert_eq!(d.rule.unwrap().text, "filesystem.allowWrite \"~/.cach?\"");
    expect(write(p, "out/keep/x"), false, RuleKind::DenyWrite);
}

#[test]
fn proxyd_sockets_are_hidden() {
    let p = policy(r#"{"filesystem":{"defaultDenyRead":false,"allowWrite":["/run/user/1000"]}}"#);
    let f = Facts {
        runtime_dir: Some("/run/user/1000".into()),
        ..facts()
    };
    for op in [
        Op::Read("/run/user/1000/greywall/proxyd.sock".into()),
        Op::Write("/run/user/1000/greywall/x".into()),
    ] {
        expect(decide(&p, &f, &op), false, RuleKind::Protection);
    }
    expect(
        decide(&p, &f, &Op::Write("/run/user/1000/other".into())),
        true,
        RuleKind::AllowWrite,
    );
}

#[test]
fn ops_display() {
    assert_eq!(Op::Read("/a".into()).to_string(), "read /a");
    assert_eq!(
        Op::Exec(vec!["git".into(), "push".into()]).to_string(),
        "exec git push"
    );
    assert_eq!(
        Op::Connect("::1".into(), 22).to_string(),
        "connect [::1]:22"
    );
    assert_eq!(
        Op::Connect("github.com".into(), 443).to_string(),
        "connect github.com:443"
    );
}
