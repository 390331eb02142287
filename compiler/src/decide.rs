//! The decision function: would the sandbox let a command read, write or execute something, or
//! connect somewhere, and which rule says so?
//!
//! [`decide`] is a pure function of the policy model, a few [`Facts`] about the invocation
//! (working directory, home, git directories, greywall's own directories) and one [`Op`]. It
//! never touches the filesystem or the environment, so `greywall explain`, the `expect`
//! statements of `.gw` policies and tests all get the same answer on any machine.
//!
//! It states what the Linux enforcement does, rule for rule:
//!
//! - **writes** are denied by default; `allowWrite` grants, and everything that denies wins
//!   over it: the built-in protections ([`crate::protections`]: shell startup files,
//!   `.git/hooks`, `.git/config` unless `allowGitConfig`, `.mcp.json`, `.vscode`, `.idea`,
//!   `.claude/commands|agents`, greywall's own configuration, cache and policy files, …),
//!   paths hidden from reading, and `denyWrite`. The sandbox's private `/tmp` and `/dev/shm`
//!   are always writable, and so are the terminal and null devices;
//! - **reads** are allowed except `denyRead` (and the secret `.env` files of the working
//!   directory, and container-engine sockets), or, with `defaultDenyRead`, limited to the
//!   curated system and toolchain list, the writable paths and `allowRead`;
//! - **exec** of a command is refused when a `command.deny` prefix (or, with
//!   `command.useDefaults`, a built-in one) matches it, or a command it plainly starts (under
//!   `env`, `nice`, `timeout`, …, after `X=1`, each simple command of an `sh -c` script), and
//!   no `command.allow` prefix matches that same command: [`crate::pattern::command::check`],
//!   the matcher the launcher runs too.
//!   A program named by a path must also be readable (Landlock grants execute with read);
//! - **connect** is denied when the policy has no network rules (the sandbox then has no
//!   network at all); otherwise greywall-proxyd's own name decision
//!   ([`crate::egress::EgressRules::decide`]) answers: a `deniedDomains` rule wins, an
//!   `allowedDomains` rule must match. In relaxed mode (`"*"`) the sandbox shares the host
//!   network and no proxy runs: every connection is allowed, also to a `deniedDomains` entry
//!   (the answer names the entry and says nothing enforces it).
//!
//! # What it cannot see
//!
//! Paths are normalised lexically: `.` and `..` are resolved on the text, `~` is the home
//! directory and a relative path starts at the working directory. Symlinks are not followed
//! (the compiled plan resolves them when it is built), and whether a path exists is unknown:
//! a glob in `allowWrite` or `allowRead` is answered for every path it matches, while the
//! launcher grants only what matched when the plan was compiled. Where the enforcement is
//! knowingly weaker than the policy (an existing protected file deeper than the working
//! directory is protected against creation only), the decision states the policy.
//!
//! When several rules of one kind match, the most specific (most path segments) is named, and
//! of equally specific ones the last written: a policy's own rule before an inherited one.

use std::fmt;

use crate::backend::linux::DEVICES;
use crate::egress::{self, Host, Reason as EgressReason};
use crate::model::{Entry, NetworkMode, Policy, Setting};
use crate::pattern::command::{self, CommandPrefix, Via};
use crate::pattern::path::{Anchors, PathPattern, under};
use crate::protections::{self, Reason, Scope};
use crate::source::{Sources, Span};

/// What the decision needs to know about the invocation. Every path is absolute and
/// `/`-separated; build it once per invocation (the launcher reads it from the environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Where the built-in locations are: the working directory (`.` in rules, and the root of
    /// the protections that hold everywhere below it), the home directory (`~`), the XDG
    /// directories (greywall's configuration and cache are `greywall` below the config and
    /// cache ones), the git work tree and common directory, environment variables.
    pub anchors: Anchors,
    /// A linked worktree's own git directory (`.git/worktrees/NAME` of the repository);
    /// `None` in a plain checkout, where it is the common directory.
    pub git_dir: Option<String>,
    /// `$XDG_RUNTIME_DIR`, where per-user container sockets live.
    pub runtime_dir: Option<String>,
    /// Every policy file the policy was loaded from.
    pub policy_files: Vec<String>,
}

impl Facts {
    /// Facts from a working and a home directory alone: the XDG directories at their standard
    /// places, the working directory as the git work tree (see [`Anchors::defaults`]).
    pub fn new(cwd: &str, home: &str) -> Facts {
        Facts {
            anchors: Anchors::defaults(home, cwd),
            ..Facts::default()
        }
    }

    pub fn cwd(&self) -> &str {
        &self.anchors.cwd
    }

    pub fn home(&self) -> &str {
        &self.anchors.home
    }

    /// greywall's configuration directory.
    pub fn config_dir(&self) -> String {
        join(&self.anchors.xdg_config, "greywall")
    }

    /// greywall's artifact cache.
    pub fn cache_dir(&self) -> String {
        join(&self.anchors.xdg_cache, "greywall")
    }

    /// The repository's git directories, `(worktree's, common)`, when there is a repository.
    fn git(&self) -> Option<(&str, &str)> {
        let common = self.anchors.git_common.as_deref()?;
        Some((self.git_dir.as_deref().unwrap_or(common), common))
    }
}

/// `dir/name`.
fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// What the sandboxed command tries to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read a file or list a directory (and execute it: Landlock grants both together).
    Read(String),
    /// Write, create, rename or remove a path.
    Write(String),
    /// Run a command: its argument vector, program first.
    Exec(Vec<String>),
    /// Open a connection to a host (a name or an address) and port.
    Connect(String, u16),
}

impl Op {
    /// `read`, `write`, `exec` or `connect`.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Read(_) => "read",
            Op::Write(_) => "write",
            Op::Exec(_) => "exec",
            Op::Connect(..) => "connect",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read(p) | Op::Write(p) => write!(f, "{} {p}", self.verb()),
            Op::Exec(argv) => write!(f, "exec {}", argv.join(" ")),
            Op::Connect(h, port) if h.contains(':') => write!(f, "connect [{h}]:{port}"),
            Op::Connect(h, port) => write!(f, "connect {h}:{port}"),
        }
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided; `None` when nothing in the policy or greywall's built-in rules
    /// speaks to the operation (a command no command rule matches).
    pub rule: Option<DecidingRule>,
    /// One sentence for people.
    pub because: String,
}

/// The rule behind a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidingRule {
    pub kind: RuleKind,
    /// The rule as a person would name it: `filesystem.allowWrite "."`, `built-in protection
    /// ".git/hooks"`.
    pub text: String,
    /// Where the rule was written; `None` for greywall's built-in rules and defaults.
    pub origin: Option<Span>,
}

impl DecidingRule {
    /// The `extends` values that brought the rule's file into the policy, innermost first
    /// (empty for a rule of the policy file itself or a built-in rule).
    pub fn extends_chain(&self, sources: &Sources) -> Vec<Span> {
        self.origin
            .map(|o| sources.extends_chain(o.source))
            .unwrap_or_default()
    }

    /// Whether the rule is greywall's own rather than the policy's.
    pub fn is_builtin(&self) -> bool {
        self.kind.is_builtin()
    }
}

/// Which kind of rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `filesystem.allowRead`.
    AllowRead,
    /// `filesystem.denyRead`.
    DenyRead,
    /// `filesystem.allowWrite`.
    AllowWrite,
    /// `filesystem.denyWrite`.
    DenyWrite,
    /// `filesystem.defaultDenyRead` (set, or its default).
    DefaultDenyRead,
    /// Writes are denied unless a rule grants them.
    DefaultDenyWrite,
    /// A mandatory protection: never writable whatever the policy says.
    Protection,
    /// A secret file of the working directory (`.env`, …): neither readable nor writable.
    SecretFile,
    /// A container-engine socket (`network.allowUnixSockets` can expose it).
    ContainerSocket,
    /// A system service's socket (the system D-Bus, snapd) or the user's runtime directory
    /// (`$XDG_RUNTIME_DIR`: the session bus, agents), hidden unless `network.allowUnixSockets`
    /// names it.
    HostSocket,
    /// The curated list of system and toolchain paths readable under `defaultDenyRead`.
    SystemReadable,
    /// The sandbox's private `/tmp` and `/dev/shm`, and the terminal and null devices.
    SandboxPrivate,
    /// The common directory of a linked git worktree, writable with the worktree.
    GitWorktree,
    /// `command.deny`.
    CommandDeny,
    /// `command.allow`.
    CommandAllow,
    /// A built-in denied command (`command.useDefaults`).
    DefaultCommand,
    /// No network rules: the sandbox has no network.
    NoNetwork,
    /// `network.allowedDomains`.
    AllowedDomain,
    /// `network.deniedDomains`.
    DeniedDomain,
}

impl RuleKind {
    pub fn is_builtin(self) -> bool {
        matches!(
            self,
            RuleKind::DefaultDenyWrite
                | RuleKind::Protection
                | RuleKind::SecretFile
                | RuleKind::ContainerSocket
                | RuleKind::HostSocket
                | RuleKind::SystemReadable
                | RuleKind::SandboxPrivate
                | RuleKind::GitWorktree
                | RuleKind::DefaultCommand
                | RuleKind::NoNetwork
        )
    }

    /// A stable kebab-case name (the `--json` output uses it).
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::AllowRead => "allow-read",
            RuleKind::DenyRead => "deny-read",
            RuleKind::AllowWrite => "allow-write",
            RuleKind::DenyWrite => "deny-write",
            RuleKind::DefaultDenyRead => "default-deny-read",
            RuleKind::DefaultDenyWrite => "default-deny-write",
            RuleKind::Protection => "built-in-protection",
            RuleKind::SecretFile => "secret-file",
            RuleKind::ContainerSocket => "container-socket",
            RuleKind::HostSocket => "host-socket",
            RuleKind::SystemReadable => "system-readable",
            RuleKind::SandboxPrivate => "sandbox-private",
            RuleKind::GitWorktree => "git-worktree",
            RuleKind::CommandDeny => "command-deny",
            RuleKind::CommandAllow => "command-allow",
            RuleKind::DefaultCommand => "default-denied-command",
            RuleKind::NoNetwork => "no-network",
            RuleKind::AllowedDomain => "allowed-domain",
            RuleKind::DeniedDomain => "denied-domain",
        }
    }
}

/// Directories private to each sandbox: fresh, empty and writable, gone when it exits.
const PRIVATE_DIRS: &[&str] = &["/tmp", "/dev/shm"];

/// Decides one operation. Pure: no filesystem, no environment.
pub fn decide(policy: &Policy, facts: &Facts, op: &Op) -> Decision {
    let d = Decider { policy, facts };
    match op {
        Op::Read(p) => d.read(&normalize(p, facts)),
        Op::Write(p) => d.write(&normalize(p, facts)),
        Op::Exec(argv) => d.exec(argv),
        Op::Connect(host, port) => d.connect(host, *port),
    }
}

/// An operation's path as the decision sees it: `~` expanded, relative paths joined to the
/// working directory, `.` and `..` resolved on the text (never above `/`).
pub fn normalize(path: &str, facts: &Facts) -> String {
    let joined = if path == "~" {
        facts.home().to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        join(facts.home(), rest)
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        join(facts.cwd(), path)
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether, below `root`, the components of `path` contain `name`'s components contiguously
/// (`.git/hooks` below `/w` holds for `/w/a/.git/hooks/pre-commit`).
fn has_name_below(path: &str, root: &str, name: &str) -> bool {
    if !under(path, root) {
        return false;
    }
    let rest = if root == "/" {
        path
    } else {
        &path[root.len()..]
    };
    let comps: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    let seq: Vec<&str> = name.split('/').collect();
    comps.windows(seq.len()).any(|w| w == seq.as_slice())
}

fn quoted<T: fmt::Display>(section: &str, key: &str, value: &T) -> String {
    format!("{section}.{key} \"{value}\"")
}

fn setting_text<T: fmt::Display>(section: &str, key: &str, s: &Setting<T>) -> String {
    if s.is_set() {
        format!("{section}.{key} {}", s.value)
    } else {
        format!("{section}.{key} {} (the default)", s.value)
    }
}

fn allow(rule: DecidingRule, because: String) -> Decision {
    Decision {
        allowed: true,
        rule: Some(rule),
        because,
    }
}

fn deny(rule: DecidingRule, because: String) -> Decision {
    Decision {
        allowed: false,
        rule: Some(rule),
        because,
    }
}

fn builtin(kind: RuleKind, text: String) -> DecidingRule {
    DecidingRule {
        kind,
        text,
        origin: None,
    }
}

fn entry_rule<T: fmt::Display>(
    kind: RuleKind,
    section: &str,
    key: &str,
    e: &Entry<T>,
) -> DecidingRule {
    DecidingRule {
        kind,
        text: quoted(section, key, &e.value),
        origin: Some(e.origin),
    }
}

fn reason_text(r: Reason) -> &'static str {
    match r {
        Reason::Startup => "it runs code later",
        Reason::Greywall => "it decides greywall's next run",
    }
}

struct Decider<'a> {
    policy: &'a Policy,
    facts: &'a Facts,
}

impl Decider<'_> {
    /// Whether a rule's pattern covers `path`; a pattern whose anchor does not exist here
    /// (`$git_root` outside a repository, an unset `$env.NAME`) covers nothing.
    fn covers(&self, pattern: &PathPattern, path: &str) -> bool {
        pattern
            .absolute_in(&self.facts.anchors)
            .is_some_and(|a| a.covers(path))
    }

    /// The most specific entry of `list` whose pattern covers `path`: the one with the most
    /// segments, and of equals the last written (a policy's own rule over an inherited one).
    fn most_specific<'l>(
        &self,
        list: &'l [Entry<PathPattern>],
        path: &str,
    ) -> Option<&'l Entry<PathPattern>> {
        list.iter()
            .filter_map(|e| {
                let abs = e.value.absolute_in(&self.facts.anchors)?;
                abs.covers(path).then_some((abs.segments.len(), e))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, e)| e)
    }

    // ---- Hidden paths: neither readable nor writable -------------------------------------

    fn hidden(&self, path: &str, verb: &str) -> Option<Decision> {
        let fs = &self.policy.filesystem;
        if let Some(e) = self.most_specific(&fs.deny_read, path) {
            return Some(deny(
                entry_rule(RuleKind::DenyRead, "filesystem", "denyRead", e),
                format!("{path} is hidden from the sandbox by denyRead, so it cannot {verb} it"),
            ));
        }
        for name in protections::SECRET_FILES {
            let secret = join(self.facts.cwd(), name);
            if under(path, &secret) {
                return Some(deny(
                    builtin(
                        RuleKind::SecretFile,
                        format!("built-in protection \"{name}\" in the working directory"),
                    ),
                    format!(
                        "environment files in the working directory usually hold secrets: greywall hides {name}, so the sandbox cannot {verb} it"
                    ),
                ));
            }
        }
        if let Some(rt) = &self.facts.runtime_dir {
            let dir = join(rt, protections::PROXYD_RUNTIME_DIR);
            if under(path, &dir) {
                return Some(deny(
                    builtin(
                        RuleKind::Protection,
                        format!("built-in protection of greywall-proxyd's socket directory {dir}"),
                    ),
                    format!(
                        "greywall-proxyd's sockets decide what the sandbox can reach: greywall hides {dir}, so the sandbox cannot {verb} it"
                    ),
                ));
            }
        }
        let net = &self.policy.network;
        let allowed = |path: &str| {
            net.allow_all_unix_sockets.value
                || net
                    .allow_unix_sockets
                    .iter()
                    .any(|a| self.covers(&a.value, path))
        };
        for sock in protections::HOST_SERVICE_SOCKETS {
            if path == *sock && !allowed(path) {
                return Some(deny(
                    builtin(
                        RuleKind::HostSocket,
                        format!("built-in protection \"{sock}\" (a system service's socket)"),
                    ),
                    format!(
                        "{sock} lets a process ask a system service to act for the user (depending on its polkit rules: reboot, mount, install): greywall hides it unless network.allowUnixSockets names it"
                    ),
                ));
            }
        }
        if let Some(rt) = self.facts.runtime_dir.as_deref()
            && under(path, rt)
            && !under(self.facts.cwd(), rt)
            && !under(self.facts.home(), rt)
            && !protections::runtime_dir_exposed(self.policy, rt, |p| {
                p.absolute_in(&self.facts.anchors)
            })
        {
            return Some(deny(
                builtin(
                    RuleKind::HostSocket,
                    format!("built-in protection of the user's runtime directory {rt}"),
                ),
                format!(
                    "{rt} holds the session bus, the user's systemd manager and key agents, through which a process can run commands outside the sandbox: greywall hides it unless network.allowUnixSockets, allowRead or allowWrite names something there"
                ),
            ));
        }
        let runtime = self.facts.runtime_dir.as_deref().map(|rt| {
            protections::USER_CONTAINER_SOCKETS
                .iter()
                .map(move |n| join(rt, n))
        });
        let sockets = protections::CONTAINER_SOCKETS
            .iter()
            .map(|s| s.to_string())
            .chain(runtime.into_iter().flatten());
        for sock in sockets {
            if path != sock {
                continue;
            }
            if allowed(path) {
                return None;
            }
            return Some(deny(
                builtin(
                    RuleKind::ContainerSocket,
                    format!("built-in protection \"{sock}\" (a container-engine socket)"),
                ),
                format!(
                    "{sock} is a container-engine socket, which is root on the host: greywall hides it unless network.allowUnixSockets names it"
                ),
            ));
        }
        None
    }

    // ---- Writes ------------------------------------------------------------------------------

    /// The user's writable roots (`allowWrite`) that cover `path`.
    fn allow_write(&self, path: &str) -> Option<&Entry<PathPattern>> {
        self.most_specific(&self.policy.filesystem.allow_write, path)
    }

    fn protection(&self, path: &str) -> Option<Decision> {
        let f = self.facts;
        let home = f.home();
        let cwd = f.cwd();
        let home_writable = self.allow_write(home).is_some();
        let protected = |name: &str, why: &str| {
            Some(deny(
                builtin(
                    RuleKind::Protection,
                    format!("built-in protection \"{name}\""),
                ),
                format!("{path} is never writable: {why}"),
            ))
        };
        for prot in protections::WRITE_PROTECTED {
            let hit = under(path, &join(home, prot.name))
                || (prot.scope == Scope::Everywhere
                    && (has_name_below(path, cwd, prot.name)
                        || (home_writable && has_name_below(path, home, prot.name))));
            if hit {
                return protected(prot.name, reason_text(prot.reason));
            }
        }
        if !self.policy.filesystem.allow_git_config.value {
            let in_cwd = under(path, &join(cwd, protections::GIT_CONFIG));
            let in_common = f
                .git()
                .is_some_and(|(_, common)| under(path, &join(common, "config")));
            if in_cwd || in_common {
                return protected(
                    protections::GIT_CONFIG,
                    "git configuration can run commands (core.fsmonitor, core.sshCommand); filesystem.allowGitConfig makes it writable",
                );
            }
        }
        if let Some((_, common)) = f.git()
            && under(path, &join(common, "hooks"))
        {
            return protected(".git/hooks", reason_text(Reason::Startup));
        }
        let mut dir = Some(cwd);
        while let Some(d) = dir {
            if path == join(d, "greywall.json") {
                return protected("greywall.json", reason_text(Reason::Greywall));
            }
            dir = parent(d);
        }
        let own = [
            (f.config_dir(), "greywall's configuration directory"),
            (f.cache_dir(), "greywall's artifact cache"),
        ];
        for (dir, what) in own {
            if under(path, &dir) {
                return Some(deny(
                    builtin(RuleKind::Protection, format!("built-in protection {what}")),
                    format!(
                        "{path} is in {what} ({dir}), which the sandbox can never write: {}",
                        reason_text(Reason::Greywall)
                    ),
                ));
            }
        }
        if f.policy_files.iter().any(|p| under(path, p)) {
            return Some(deny(
                builtin(
                    RuleKind::Protection,
                    "built-in protection of the policy files".into(),
                ),
                format!(
                    "{path} is a file this policy was loaded from: {}",
                    reason_text(Reason::Greywall)
                ),
            ));
        }
        None
    }

    /// Whether the linked worktree's common git directory is writable for `path`.
    fn git_common(&self, path: &str) -> Option<Decision> {
        let (git_dir, common) = self.facts.git()?;
        if !under(path, common) {
            return None;
        }
        let via = self.allow_write(git_dir)?;
        Some(allow(
            builtin(
                RuleKind::GitWorktree,
                format!("built-in: the linked worktree's common git directory {common}"),
            ),
            format!(
                "{path} is in the repository's common git directory, writable because the worktree's git directory is ({})",
                quoted("filesystem", "allowWrite", &via.value)
            ),
        ))
    }

    fn private(&self, path: &str, write: bool) -> Option<Decision> {
        if let Some(dir) = PRIVATE_DIRS.iter().find(|d| under(path, d)) {
            return Some(allow(
                builtin(
                    RuleKind::SandboxPrivate,
                    format!("built-in: the sandbox's private {dir}"),
                ),
                format!(
                    "{dir} is private to the sandbox: empty at start, {} by it alone, gone when it exits",
                    if write { "written" } else { "read" }
                ),
            ));
        }
        if DEVICES.iter().any(|d| under(path, d)) {
            return Some(allow(
                builtin(
                    RuleKind::SandboxPrivate,
                    format!("built-in: the device {path}"),
                ),
                "terminal and null devices are always readable and writable".into(),
            ));
        }
        None
    }

    fn write(&self, path: &str) -> Decision {
        if let Some(d) = self.protection(path) {
            return d;
        }
        if let Some(d) = self.hidden(path, "write") {
            return d;
        }
        // No folder below the working directory may get a new secret file either.
        if let Some(name) = protections::SECRET_FILES
            .iter()
            .find(|n| has_name_below(path, self.facts.cwd(), n))
        {
            return deny(
                builtin(
                    RuleKind::SecretFile,
                    format!("built-in protection \"{name}\" below the working directory"),
                ),
                format!(
                    "environment files usually hold secrets: greywall refuses {name} files anywhere below the working directory"
                ),
            );
        }
        let fs = &self.policy.filesystem;
        if let Some(e) = self.most_specific(&fs.deny_write, path) {
            return deny(
                entry_rule(RuleKind::DenyWrite, "filesystem", "denyWrite", e),
                format!("denyWrite covers {path}, and a deny wins over allowWrite"),
            );
        }
        if let Some(e) = self.allow_write(path) {
            return allow(
                entry_rule(RuleKind::AllowWrite, "filesystem", "allowWrite", e),
                format!("allowWrite covers {path}"),
            );
        }
        if let Some(d) = self.git_common(path) {
            return d;
        }
        if let Some(d) = self.private(path, true) {
            return d;
        }
        deny(
            builtin(
                RuleKind::DefaultDenyWrite,
                "built-in default: writes are denied".into(),
            ),
            format!("no allowWrite rule covers {path}, and writes are denied by default"),
        )
    }

    // ---- Reads -------------------------------------------------------------------------------

    fn read(&self, path: &str) -> Decision {
        if let Some(d) = self.hidden(path, "read") {
            return d;
        }
        let fs = &self.policy.filesystem;
        let ddr = &fs.default_deny_read;
        let ddr_rule = || DecidingRule {
            kind: RuleKind::DefaultDenyRead,
            text: setting_text("filesystem", "defaultDenyRead", ddr),
            origin: ddr.origin,
        };
        if !ddr.value {
            return allow(
                ddr_rule(),
                "defaultDenyRead is off: everything not in denyRead is readable".into(),
            );
        }
        if let Some(e) = self.most_specific(&fs.allow_read, path) {
            return allow(
                entry_rule(RuleKind::AllowRead, "filesystem", "allowRead", e),
                format!("allowRead covers {path}"),
            );
        }
        if let Some(e) = self.allow_write(path) {
            return allow(
                entry_rule(RuleKind::AllowWrite, "filesystem", "allowWrite", e),
                format!("allowWrite covers {path}, and what the sandbox may write it may read"),
            );
        }
        if let Some(d) = self.git_common(path) {
            return d;
        }
        if let Some(d) = self.private(path, false) {
            return d;
        }
        if let Some(d) = self.system_readable(path) {
            return d;
        }
        deny(
            ddr_rule(),
            format!(
                "reads are denied by default (defaultDenyRead) and neither allowRead, allowWrite nor greywall's list of system and toolchain paths covers {path}"
            ),
        )
    }

    fn system_readable(&self, path: &str) -> Option<Decision> {
        let home = self.facts.home();
        for sys in protections::SYSTEM_READABLE {
            // The home directory is never readable as a whole: below a system folder (service
            // accounts: /var/lib/jenkins), only the rest of that folder is.
            if under(path, sys) && !under(path, home) && !under(home, path) {
                return Some(allow(
                    builtin(
                        RuleKind::SystemReadable,
                        format!("built-in readable system path {sys}"),
                    ),
                    format!(
                        "{sys} is on greywall's list of system paths readable under defaultDenyRead"
                    ),
                ));
            }
        }
        for rel in protections::HOME_READABLE {
            if under(path, &join(home, rel)) {
                return Some(allow(
                    builtin(
                        RuleKind::SystemReadable,
                        format!("built-in readable toolchain path ~/{rel}"),
                    ),
                    format!(
                        "~/{rel} is on greywall's list of toolchain paths readable under defaultDenyRead (it holds no credentials)"
                    ),
                ));
            }
        }
        None
    }

    // ---- Commands ----------------------------------------------------------------------------

    /// The deny rules in the order the launcher checks them: the policy's, then the built-in
    /// ones.
    fn deny_rules(&self) -> Vec<(Vec<String>, DecidingRule)> {
        let c = &self.policy.command;
        let mut out: Vec<(Vec<String>, DecidingRule)> = c
            .deny
            .iter()
            .map(|e| {
                (
                    e.value.words().to_vec(),
                    entry_rule(RuleKind::CommandDeny, "command", "deny", e),
                )
            })
            .collect();
        if c.use_defaults.value {
            for raw in protections::DEFAULT_DENIED_COMMANDS {
                if let Ok(p) = CommandPrefix::parse(raw) {
                    out.push((
                        p.words().to_vec(),
                        DecidingRule {
                            kind: RuleKind::DefaultCommand,
                            text: format!("built-in denied command \"{p}\" (command.useDefaults)"),
                            origin: c.use_defaults.origin,
                        },
                    ));
                }
            }
        }
        out
    }

    fn exec(&self, argv: &[String]) -> Decision {
        let Some(program) = argv.first() else {
            return Decision {
                allowed: false,
                rule: None,
                because: "there is no command to run".into(),
            };
        };
        let denies = self.deny_rules();
        let mut overridden: Option<(DecidingRule, DecidingRule)> = None;
        // The launcher's own matcher, on the same lists in the same order.
        let deny_words: Vec<&[String]> = denies.iter().map(|(w, _)| w.as_slice()).collect();
        let allows = &self.policy.command.allow;
        let allow_words: Vec<&CommandPrefix> = allows.iter().map(|e| &e.value).collect();
        match command::check(&deny_words, &allow_words, argv) {
            command::Verdict::Allowed => {}
            command::Verdict::Blocked {
                deny: d,
                command,
                via,
            } => {
                if let Some((_, rule)) = denies.get(d) {
                    let because = match via {
                        Via::Argv => format!(
                            "the command `{}` starts with a denied prefix",
                            argv.join(" ")
                        ),
                        Via::Unwrapped => format!(
                            "the command runs `{}`, which starts with a denied prefix",
                            command.join(" ")
                        ),
                        Via::Script => format!(
                            "the shell script runs `{}`, which starts with a denied prefix",
                            command.join(" ")
                        ),
                    };
                    return deny(rule.clone(), because);
                }
            }
            command::Verdict::Overridden { deny: d, allow: a } => {
                if let (Some((_, d)), Some(a)) = (denies.get(d), allows.get(a)) {
                    let a = entry_rule(RuleKind::CommandAllow, "command", "allow", a);
                    overridden = Some((a, d.clone()));
                }
            }
        }
        if program.contains('/') {
            let path = normalize(program, self.facts);
            let r = self.read(&path);
            if !r.allowed {
                return Decision {
                    allowed: false,
                    rule: r.rule,
                    because: format!(
                        "the program {path} cannot be executed: the sandbox may execute only what it may read, and {}",
                        r.because
                    ),
                };
            }
        }
        match overridden {
            Some((a, d)) => allow(
                a,
                format!("an allow prefix overrides the deny prefix {}", d.text),
            ),
            None => Decision {
                allowed: true,
                rule: None,
                because: if denies.is_empty() {
                    "the policy denies no commands".into()
                } else {
                    "no command.deny prefix (nor a built-in one) matches the command".into()
                },
            },
        }
    }

    // ---- Network -----------------------------------------------------------------------------

    fn connect(&self, host: &str, port: u16) -> Decision {
        let net = &self.policy.network;
        let mode = net.mode();
        let target = Op::Connect(host.to_string(), port).to_string();
        let target = target.trim_start_matches("connect ");
        if mode == NetworkMode::Isolated {
            return deny(
                builtin(
                    RuleKind::NoNetwork,
                    "built-in: no network rules (network.allowedDomains is empty)".into(),
                ),
                format!(
                    "the policy allows no network: the sandbox has only its own loopback, so {target} is unreachable"
                ),
            );
        }
        // The proxy's own decision, in two steps: the name (or address literal) against the
        // rules, then an address literal against the classes refused unless named. In relaxed
        // mode the host network is shared and no proxy runs: nothing refuses anything, and a
        // matching deny entry is only named.
        let relaxed = mode == NetworkMode::Relaxed;
        let rules = egress::rules(self.policy, &Sources::new());
        let mut v = rules.decide(host, port);
        let unenforced_deny = relaxed && v.reason == EgressReason::DeniedByRule;
        let literal = matches!(Host::parse(host), Some(Host::Addr(_)));
        if !relaxed && let Some(Host::Addr(addr)) = Host::parse(host) {
            v = rules.check_address(&v, addr, port, false);
        }
        let rule = v.rule.as_ref().and_then(|r| {
            let (list, kind, key) = if v.allowed {
                (
                    &net.allowed_domains,
                    RuleKind::AllowedDomain,
                    "allowedDomains",
                )
            } else {
                (&net.denied_domains, RuleKind::DeniedDomain, "deniedDomains")
            };
            list.iter()
                .find(|e| e.value.to_string() == r.text)
                .map(|e| entry_rule(kind, "network", key, e))
        });
        let because = match v.reason {
            EgressReason::AllowedByRule | EgressReason::Mapped if relaxed => format!(
                "relaxed network mode (\"*\" in allowedDomains): the sandbox shares the host network, and {target} is not denied"
            ),
            EgressReason::AllowedByRule | EgressReason::Mapped if literal => {
                format!(
                    "an allowedDomains rule matches {target}; the connection goes through greywall's proxy"
                )
            }
            EgressReason::AllowedByRule | EgressReason::Mapped => format!(
                "an allowedDomains rule matches {target}; the connection goes through greywall's proxy, which still refuses it if the name resolves to a loopback, private or metadata address no rule names"
            ),
            EgressReason::DeniedByRule if relaxed => format!(
                "a deniedDomains rule matches {target}, but relaxed mode (\"*\" in allowedDomains) shares the host network and runs no proxy: nothing enforces the rule, and the connection is made"
            ),
            EgressReason::DeniedByRule => {
                format!("a deniedDomains rule matches {target}, and a deny wins")
            }
            EgressReason::NotAllowed => {
                format!("no network.allowedDomains rule matches {target}")
            }
            EgressReason::BadHost => format!("`{host}` is not a host name or an address"),
            EgressReason::BadPort => "port 0 is never allowed".to_string(),
            EgressReason::Address(class) => format!(
                "{host} is a {class} address, which greywall's proxy refuses unless an allowedDomains rule names it"
            ),
        };
        Decision {
            allowed: v.allowed || unenforced_deny,
            rule,
            because,
        }
    }
}

/// The parent of an absolute path; `None` for `/`.
fn parent(path: &str) -> Option<&str> {
    if path == "/" || path.is_empty() {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

#[cfg(test)]
mod tests;
