//! The lint pass: what is legal but probably wrong or dangerous in a policy.
//!
//! Runs on a loaded [`Policy`] and reports, with the position of the rule at fault:
//! - dangerous grants: write access to `/` or the home directory (E500), to files that run
//!   code later (E501), to `$PATH` directories (E502), to greywall's own state (E503); read
//!   access to credentials (E504); the Docker or Podman socket (E505);
//! - network: wildcards over shared-hosting domains (W506), relaxed mode (W507), an
//!   `httpProxyUrl` greywall does not use (W520) or cannot honour (E521);
//! - rules shadowed by broader ones (W508) and rules that never change a decision (W510).
//!
//! Duplicates (W509) are found while merging, in [`crate::merge`].
//!
//! A finding about an entry inherited from another file is reported at the `extends` that
//! brought it in, with a note naming the entry, so every finding points into the file linted.

use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Entry, List, Policy};
use crate::pattern::command::CommandPrefix;
use crate::pattern::domain::DomainPattern;
use crate::pattern::path::{AbsPattern, PathPattern};
use crate::protections::{self, Reason, Scope};
use crate::source::{SourceId, Sources, Span};

/// Facts about the environment the checks need.
#[derive(Debug, Clone, Default)]
pub struct LintEnv {
    /// The home directory (absolute).
    pub home: String,
    /// The working directory (absolute); relative rules are resolved against it.
    pub cwd: String,
    /// The directories on `$PATH`.
    pub path_dirs: Vec<String>,
    /// greywall's configuration directory.
    pub config_dir: Option<String>,
    /// greywall's artifact cache directory.
    pub cache_dir: Option<String>,
}

/// Domains under which anyone can get a name (so a wildcard lets a sandbox reach a server
/// an attacker controls), and two-label public suffixes.
const SHARED_SUFFIXES: &[&str] = &[
    "amazonaws.com",
    "s3.amazonaws.com",
    "cloudfront.net",
    "azurewebsites.net",
    "blob.core.windows.net",
    "azureedge.net",
    "appspot.com",
    "googleusercontent.com",
    "googleapis.com",
    "storage.googleapis.com",
    "firebaseapp.com",
    "web.app",
    "herokuapp.com",
    "vercel.app",
    "netlify.app",
    "github.io",
    "gitlab.io",
    "pages.dev",
    "workers.dev",
    "r2.dev",
    "fly.dev",
    "onrender.com",
    "deno.dev",
    "glitch.me",
    "repl.co",
    "surge.sh",
    "ngrok.io",
    "ngrok-free.app",
    "trycloudflare.com",
    "loca.lt",
    "supabase.co",
    "co.uk",
    "org.uk",
    "com.au",
    "net.au",
    "co.jp",
    "com.br",
    "com.cn",
    "co.in",
    "co.nz",
    "co.za",
    "com.mx",
];

/// Lists longer than this are not checked for shadowed entries (the check is quadratic).
const SHADOW_CHECK_LIMIT: usize = 2_000;

/// Checks a policy. `root` is the file being linted.
pub fn lint(policy: &Policy, sources: &Sources, root: SourceId, env: &LintEnv) -> Vec<Diagnostic> {
    let mut l = Linter {
        env,
        diags: Vec::new(),
    };
    l.write_grants(policy);
    l.credentials(policy);
    l.sockets(policy);
    l.domains(policy);
    l.http_proxy_url(policy);
    l.shadowing(policy);
    l.no_effect(policy);
    let mut diags = l.diags;
    for d in &mut diags {
        anchor(d, sources, root);
    }
    diags
}

/// Moves a finding located in an extended file to the `extends` in `root` that brought it in.
fn anchor(d: &mut Diagnostic, sources: &Sources, root: SourceId) {
    let Some(span) = d.primary else { return };
    if span.source == root {
        return;
    }
    let chain = sources.extends_chain(span.source);
    let Some(ext) = chain.iter().rev().find(|s| s.source == root) else {
        return;
    };
    let entry = sources
        .get(span.source)
        .map(|f| f.slice(span).to_string())
        .unwrap_or_default();
    d.notes.insert(
        0,
        format!("the rule is {entry} at {}", sources.locate(span)),
    );
    d.primary = Some(*ext);
    d.label = Some("inherited through this `extends`".to_string());
    d.secondary.retain(|(s, _)| s.source == root);
}

struct Linter<'a> {
    env: &'a LintEnv,
    diags: Vec<Diagnostic>,
}

impl Linter<'_> {
    fn abs(&self, p: &PathPattern) -> AbsPattern {
        p.absolute(&self.env.home, &self.env.cwd)
    }

    fn home_path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.env.home.trim_end_matches('/'))
    }

    fn cwd_tree(&self, name: &str) -> AbsPattern {
        PathPattern::parse(&format!("./**/{name}"))
            .map(|p| self.abs(&p))
            .unwrap_or(AbsPattern {
                segments: Vec::new(),
            })
    }

    /// The places a protected name stands for.
    fn protected_patterns(&self, prot: &protections::Protected) -> Vec<AbsPattern> {
        let mut out = Vec::new();
        if let Ok(p) = PathPattern::parse(&format!("~/{}", prot.name)) {
            out.push(self.abs(&p));
        }
        if prot.scope == Scope::Everywhere {
            out.push(self.cwd_tree(prot.name));
        }
        out
    }

    fn literal(path: &str) -> Option<AbsPattern> {
        PathPattern::parse(path).ok().map(|p| p.absolute("/", "/"))
    }

    fn write_grants(&mut self, policy: &Policy) {
        let home = self.env.home.clone();
        for e in &policy.filesystem.allow_write {
            let abs = self.abs(&e.value);
            // E500: the whole filesystem or home directory.
            if abs.segments.is_empty() {
                self.push(
                    Diagnostic::new(
                        Code::WriteEverything,
                        "grants write access to the entire filesystem",
                    )
                    .at(e.origin)
                    .label("every path is writable")
                    .help("grant the directories the command needs, such as \".\" and \"/tmp\""),
                );
                continue;
            }
            if abs.covers(&home) {
                self.push(
                    Diagnostic::new(Code::WriteEverything, "grants write access to your whole home directory")
                        .at(e.origin)
                        .label(format!("covers {home}"))
                        .note("the sandbox could plant programs and configuration that run outside it later")
                        .help("grant the specific folders the command needs, such as \"~/.cache\""),
                );
                continue;
            }
            // E501 / E503: protected locations.
            let mut reported = false;
            for prot in protections::WRITE_PROTECTED {
                if self
                    .protected_patterns(prot)
                    .iter()
                    .any(|p| abs.is_covered_by(p))
                {
                    let (code, why) = match prot.reason {
                        Reason::Startup => (Code::WriteStartup, "which runs code later"),
                        Reason::Greywall => {
                            (Code::WriteGreywall, "which decides greywall's next run")
                        }
                    };
                    self.push(
                        Diagnostic::new(code, format!("grants write access to `{}`, {why}", prot.name))
                            .at(e.origin)
                            .note("greywall keeps this path read-only whatever the policy says, so the rule cannot take effect")
                            .help("remove the rule"),
                    );
                    reported = true;
                    break;
                }
            }
            if reported {
                continue;
            }
            for (dir, what) in [
                (self.env.config_dir.clone(), "configuration directory"),
                (self.env.cache_dir.clone(), "artifact cache"),
            ] {
                let Some(dir) = dir else { continue };
                if Self::literal(&dir).is_some_and(|d| abs.is_covered_by(&d)) {
                    self.push(
                        Diagnostic::new(
                            Code::WriteGreywall,
                            format!("grants write access to greywall's {what} ({dir})"),
                        )
                        .at(e.origin)
                        .note("greywall keeps it read-only whatever the policy says")
                        .help("remove the rule"),
                    );
                    reported = true;
                    break;
                }
            }
            if reported {
                continue;
            }
            // E502: directories on $PATH.
            let mut bins: Vec<String> = protections::HOME_BIN_DIRS
                .iter()
                .map(|d| self.home_path(d))
                .collect();
            bins.extend(self.env.path_dirs.iter().cloned());
            for dir in bins {
                if dir == "/" || dir == self.env.cwd {
                    continue;
                }
                let inside = Self::literal(&dir).is_some_and(|d| abs.is_covered_by(&d));
                if inside || abs.covers(&dir) {
                    self.push(
                        Diagnostic::new(
                            Code::WritePath,
                            if inside {
                                format!("grants write access to {dir}, a directory on $PATH")
                            } else {
                                format!("grants write access to {dir}, a directory on $PATH, and what is around it")
                            },
                        )
                        .at(e.origin)
                        .note("a program planted there runs the next time you type its name, outside the sandbox")
                        .help("install tools outside the sandbox, or grant a cache folder instead"),
                    );
                    break;
                }
            }
            // E505: container sockets under a writable directory.
            if let Some(sock) = protections::CONTAINER_SOCKETS
                .iter()
                .find(|s| abs.covers(s))
            {
                self.push(container_socket(
                    e.origin,
                    &format!("makes {sock} writable"),
                ));
            }
        }
    }

    fn credentials(&mut self, policy: &Policy) {
        let fs = &policy.filesystem;
        // Exposed credentials, grouped by the rule that exposes them (None: open reads).
        let mut groups: Vec<(Option<Span>, Vec<&protections::Credential>)> = Vec::new();
        for cred in protections::CREDENTIALS {
            let path = self.home_path(cred.sample);
            if fs
                .deny_read
                .iter()
                .any(|d| self.abs(&d.value).covers(&path))
            {
                continue;
            }
            let grant = fs
                .allow_read
                .iter()
                .chain(fs.allow_write.iter())
                .find(|g| self.abs(&g.value).covers(&path));
            let span = match (grant, fs.default_deny_read.value) {
                (Some(g), _) => Some(g.origin),
                (None, false) => fs.default_deny_read.origin,
                (None, true) => continue,
            };
            match groups.iter_mut().find(|(s, _)| *s == span) {
                Some((_, creds)) => creds.push(cred),
                None => groups.push((span, vec![cred])),
            }
        }
        for (span, creds) in groups {
            let mut kinds: Vec<&protections::Credential> = Vec::new();
            for c in &creds {
                if !kinds.iter().any(|k| k.what == c.what) {
                    kinds.push(c);
                }
            }
            let message = match kinds.as_slice() {
                [one] => format!("lets the sandbox read {} (~/{})", one.what, one.sample),
                many => format!(
                    "lets the sandbox read credentials: {}",
                    many.iter().map(|c| c.what).collect::<Vec<_>>().join(", ")
                ),
            };
            let label = if grant_is_open_reads(span, fs) {
                "reads are allowed everywhere except denyRead"
            } else {
                if creds.len() == 1 {
                    "this rule makes it readable"
                } else {
                    "this rule makes them readable"
                }
            };
            let mut denies: Vec<String> =
                creds.iter().map(|c| format!("\"~/{}\"", c.deny)).collect();
            denies.dedup();
            let mut d = Diagnostic::new(Code::ReadCredentials, message)
                .label(label)
                .help(format!("add to filesystem.denyRead: {}", denies.join(", ")));
            if let Some(s) = span {
                d = d.at(s);
            }
            self.push(d);
        }
    }

    fn sockets(&mut self, policy: &Policy) {
        let net = &policy.network;
        if net.allow_all_unix_sockets.value
            && let Some(s) = net.allow_all_unix_sockets.origin
        {
            self.push(container_socket(
                s,
                "allows connecting to every Unix socket",
            ));
        }
        for e in &net.allow_unix_sockets {
            let abs = self.abs(&e.value);
            let system = protections::CONTAINER_SOCKETS
                .iter()
                .find(|s| abs.covers(s));
            let user = protections::USER_CONTAINER_SOCKETS
                .iter()
                .find(|s| abs.covers(&format!("/run/user/0/{s}")) || abs.to_string().ends_with(*s));
            if let Some(sock) = system.or(user) {
                self.push(container_socket(
                    e.origin,
                    &format!("allows connecting to {sock}"),
                ));
            }
        }
    }

    fn domains(&mut self, policy: &Policy) {
        for e in &policy.network.allowed_domains {
            if e.value == DomainPattern::Any {
                self.push(
                    Diagnostic::new(Code::RelaxedNetwork, "`*` turns on relaxed network mode")
                        .at(e.origin)
                        .label("the sandbox shares the host network")
                        .note("no proxy runs in relaxed mode: deniedDomains are not enforced, and every client connects anywhere, including the local network and cloud metadata")
                        .help("list the domains the command needs instead"),
                );
                continue;
            }
            if let Some(base) = e.value.wildcard_base()
                && SHARED_SUFFIXES.contains(&base)
            {
                self.push(
                    Diagnostic::new(
                        Code::BroadDomain,
                        format!(
                            "`{}` covers `{base}`, where anyone can get a subdomain",
                            e.value
                        ),
                    )
                    .at(e.origin)
                    .note("a sandboxed command could send data to a server an attacker runs there")
                    .help("name the exact hosts the command needs"),
                );
            }
        }
    }

    fn shadowing(&mut self, policy: &Policy) {
        let net = &policy.network;
        let fs = &policy.filesystem;
        // Under `*` every other allowed domain is moot; W507 already says so.
        if net.mode() != crate::model::NetworkMode::Relaxed {
            self.shadowed(&net.allowed_domains, "network.allowedDomains", |a, b| {
                a.is_covered_by(b)
            });
        }
        self.shadowed(&net.denied_domains, "network.deniedDomains", |a, b| {
            a.is_covered_by(b)
        });
        for (list, name) in [
            (&fs.allow_read, "filesystem.allowRead"),
            (&fs.deny_read, "filesystem.denyRead"),
            (&fs.allow_write, "filesystem.allowWrite"),
            (&fs.deny_write, "filesystem.denyWrite"),
        ] {
            let (home, cwd) = (self.env.home.clone(), self.env.cwd.clone());
            self.shadowed(list, name, |a, b| {
                a.absolute(&home, &cwd)
                    .is_covered_by(&b.absolute(&home, &cwd))
            });
        }
        let cov = |a: &CommandPrefix, b: &CommandPrefix| a.is_covered_by(b);
        self.shadowed(&policy.command.deny, "command.deny", cov);
        self.shadowed(&policy.command.allow, "command.allow", cov);
        self.shadowed(&policy.ssh.allowed_commands, "ssh.allowedCommands", cov);
        self.shadowed(&policy.ssh.denied_commands, "ssh.deniedCommands", cov);
    }

    fn shadowed<T: std::fmt::Display>(
        &mut self,
        list: &List<T>,
        name: &str,
        covered: impl Fn(&T, &T) -> bool,
    ) {
        // Pairwise: skip lists no person wrote by hand, so lint stays fast on generated ones.
        if list.len() > SHADOW_CHECK_LIMIT {
            return;
        }
        for (j, b) in list.iter().enumerate() {
            let by = list.iter().enumerate().find(|(i, a)| {
                *i != j && covered(&b.value, &a.value) && (!covered(&a.value, &b.value) || *i < j)
            });
            if let Some((_, a)) = by {
                self.push(
                    Diagnostic::new(
                        Code::Shadowed,
                        format!(
                            "`{}` in `{name}` is already covered by `{}`",
                            b.value, a.value
                        ),
                    )
                    .at(b.origin)
                    .with_secondary(a.origin, "the broader rule")
                    .help("remove the narrower rule"),
                );
            }
        }
    }

    fn no_effect(&mut self, policy: &Policy) {
        let fs = &policy.filesystem;
        let abs_list = |l: &List<PathPattern>| -> Vec<AbsPattern> {
            l.iter().map(|e| self.abs(&e.value)).collect()
        };
        let writes = abs_list(&fs.allow_write);
        let deny_writes = abs_list(&fs.deny_write);
        let mut found = Vec::new();
        for e in &fs.allow_read {
            let abs = self.abs(&e.value);
            if !fs.default_deny_read.value {
                found.push(no_effect(e, "`allowRead` only matters when `defaultDenyRead` is true; reads are already allowed"));
            } else if writes.iter().any(|w| abs.is_covered_by(w)) {
                found.push(no_effect(
                    e,
                    "this path is already readable because `allowWrite` covers it",
                ));
            }
        }
        for e in &fs.deny_write {
            let abs = self.abs(&e.value);
            let inside = writes.iter().any(|w| {
                abs.is_covered_by(w) || w.is_covered_by(&abs) || w.covers(&prefix_path(&abs))
            });
            if !inside {
                found.push(no_effect(
                    e,
                    "no `allowWrite` rule reaches this path, so it is read-only already",
                ));
            }
        }
        for (e, w) in fs.allow_write.iter().zip(&writes) {
            if deny_writes.iter().any(|d| w.is_covered_by(d)) {
                found.push(no_effect(
                    e,
                    "a `denyWrite` rule covers all of this path, so it never becomes writable",
                ));
            }
        }
        let net = &policy.network;
        for e in &net.allowed_domains {
            if net
                .denied_domains
                .iter()
                .any(|d| e.value.is_covered_by(&d.value))
            {
                found.push(no_effect(
                    e,
                    "a `deniedDomains` rule covers every host this matches",
                ));
            }
        }
        if net.allowed_domains.is_empty() {
            for e in &net.denied_domains {
                found.push(no_effect(
                    e,
                    "no domain is allowed, so there is nothing to deny",
                ));
            }
        }
        let cmd = &policy.command;
        let defaults: Vec<CommandPrefix> = if cmd.use_defaults.value {
            protections::DEFAULT_DENIED_COMMANDS
                .iter()
                .filter_map(|c| CommandPrefix::parse(c).ok())
                .collect()
        } else {
            Vec::new()
        };
        for e in &cmd.allow {
            let overlaps =
                |d: &CommandPrefix| e.value.is_covered_by(d) || d.is_covered_by(&e.value);
            let denied =
                cmd.deny.iter().any(|d| overlaps(&d.value)) || defaults.iter().any(overlaps);
            if !denied {
                found.push(no_effect(
                    e,
                    "no deny rule matches this command, so allowing it changes nothing",
                ));
            }
        }
        let ssh = &policy.ssh;
        if !ssh.is_active() {
            for e in ssh.allowed_commands.iter().chain(&ssh.denied_commands) {
                found.push(no_effect(e, "the SSH policy is off: it applies only when `ssh.allowedHosts` or `ssh.deniedHosts` is set"));
            }
        }
        self.diags.extend(found);
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// `httpProxyUrl`: Greywall used it on macOS only, as `HTTP(S)_PROXY`. greywall's sandbox
    /// always gets greywall's own HTTP proxy, which greywall-proxyd chains to `proxyUrl` (SOCKS5)
    /// and nothing else, so the setting is never used. Harmless when no traffic could miss the
    /// proxy it names (no network, or a `proxyUrl`); an error otherwise, since the traffic would
    /// go around it.
    fn http_proxy_url(&mut self, policy: &Policy) {
        use crate::model::NetworkMode;
        let net = &policy.network;
        let (Some(url), Some(origin)) = (&net.http_proxy_url.value, net.http_proxy_url.origin)
        else {
            return;
        };
        let d = match (net.mode(), &net.proxy_url.value) {
            (NetworkMode::Isolated, _) => Diagnostic::new(
                Code::HttpProxyUrlUnused,
                "`httpProxyUrl` is not used",
            )
            .at(origin)
            .label("the policy allows no network")
            .help("remove `httpProxyUrl`"),
            (NetworkMode::Filtered, Some(upstream)) => Diagnostic::new(
                Code::HttpProxyUrlUnused,
                "`httpProxyUrl` is not used",
            )
            .at(origin)
            .label("HTTP_PROXY inside the sandbox is greywall's own proxy")
            .note(format!(
                "greywall-proxyd sends every allowed connection, HTTP included, through `proxyUrl` ({upstream})"
            ))
            .help("remove `httpProxyUrl`"),
            (mode, _) => Diagnostic::new(
                Code::HttpProxyUrlUnsupported,
                format!("the sandbox's traffic would not go through `httpProxyUrl` ({url})"),
            )
            .at(origin)
            .label("greywall cannot use an HTTP upstream proxy")
            .note(if mode == NetworkMode::Relaxed {
                "relaxed mode shares the host network and sets no proxy"
            } else {
                "HTTP_PROXY inside the sandbox is greywall's own proxy, and greywall-proxyd chains only to a SOCKS5 `proxyUrl`: it refuses this rule set, so the command does not run"
            })
            .help("set `proxyUrl` to the same proxy's SOCKS5 address (greyproxy: `socks5://localhost:43052`) and remove `httpProxyUrl`"),
        };
        self.push(d);
    }
}

fn grant_is_open_reads(span: Option<Span>, fs: &crate::model::Filesystem) -> bool {
    !fs.default_deny_read.value && span == fs.default_deny_read.origin
}

/// The literal directory part of a pattern, as a path.
fn prefix_path(p: &AbsPattern) -> String {
    format!("/{}", p.literal_prefix().join("/"))
}

fn no_effect<T: std::fmt::Display>(e: &Entry<T>, why: &str) -> Diagnostic {
    Diagnostic::new(Code::NoEffect, format!("`{}` has no effect", e.value))
        .at(e.origin)
        .note(why.to_string())
        .help("remove the rule")
}

fn container_socket(span: Span, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::ContainerSocket,
        format!("{what}, which includes the Docker or Podman socket"),
    )
    .at(span)
    .note("whoever can talk to the container engine is root on the host")
    .help("allow only the sockets the command needs, and never a container engine's")
}

#[cfg(test)]
mod http_proxy_url_tests {
    use super::*;
    use crate::load::{Input, load};

    fn codes(network: &str) -> Vec<&'static str> {
        let l = load(&Input::Text {
            name: "greywall.json".into(),
            text: format!("{{\"network\": {network}}}"),
            dir: ".".into(),
        });
        let Some(p) = l.policy.as_ref() else {
            return vec!["no policy"];
        };
        lint(p, &l.sources, SourceId(0), &LintEnv::default())
            .iter()
            .map(|d| d.code.id())
            .filter(|c| matches!(*c, "W520" | "E521"))
            .collect()
    }

    #[test]
    fn http_proxy_url_is_an_error_where_traffic_would_miss_it() {
        let http = r#""httpProxyUrl": "http://localhost:43051""#;
        assert_eq!(codes(&format!("{{{http}}}")), ["W520"], "no network");
        assert_eq!(
            codes(&format!(
                r#"{{{http}, "allowedDomains": ["a.test"], "proxyUrl": "socks5://localhost:43052"}}"#
            )),
            ["W520"],
            "chained to proxyUrl"
        );
        assert_eq!(
            codes(&format!(r#"{{{http}, "allowedDomains": ["a.test"]}}"#)),
            ["E521"]
        );
        assert_eq!(
            codes(&format!(r#"{{{http}, "allowedDomains": ["*"]}}"#)),
            ["E521"]
        );
        assert!(codes(r#"{"allowedDomains": ["a.test"]}"#).is_empty());
    }
}
