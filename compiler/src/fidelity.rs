//! The fidelity report: for each rule of a policy, how faithfully this platform enforces it.
//!
//! `exact` means the kernel enforces the rule as written; `approximated` says how it falls
//! short; `unenforceable` says why it cannot hold here. `greywall check` prints it.

use std::fmt;

use crate::backend::linux::KernelFacts;
use crate::backend::seccomp::Arch;
use crate::model::{NetworkMode, Policy};
use crate::resolve::Resolved;
use crate::source::Span;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    Exact,
    Approximated(String),
    Unenforceable(String),
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Exact => f.write_str("exact"),
            Level::Approximated(how) => write!(f, "approximated: {how}"),
            Level::Unenforceable(why) => write!(f, "unenforceable: {why}"),
        }
    }
}

/// How the create-deny supervisor falls short.
const RACE: &str = "but the kernel reads the path again after the check, so a deliberately racing \
                    multi-threaded program can swap it in between";

/// One rule and how it is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `filesystem.allowWrite ~/.cache`, `network.allowedDomains`, …
    pub rule: String,
    pub origin: Option<Span>,
    pub level: Level,
}

/// The report for a policy on a kernel.
pub fn report(policy: &Policy, resolved: &Resolved, kernel: &KernelFacts) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |rule: String, origin: Option<Span>, level: Level| {
        rows.push(Row {
            rule,
            origin,
            level,
        })
    };
    let landlock = kernel.landlock_abi >= 1;
    let fs = &policy.filesystem;
    let write_level = if landlock {
        Level::Exact
    } else {
        Level::Unenforceable("the kernel has no Landlock".into())
    };
    for e in &fs.allow_write {
        row(
            format!("filesystem.allowWrite {}", e.value),
            Some(e.origin),
            write_level.clone(),
        );
    }
    for e in &fs.allow_read {
        row(
            format!("filesystem.allowRead {}", e.value),
            Some(e.origin),
            write_level.clone(),
        );
    }
    // New paths are refused by the launcher's supervisor, through a seccomp notify filter.
    let supervised = Arch::from_audit_arch(kernel.audit_arch).is_some();
    for e in &fs.deny_write {
        let level = match (e.value.is_glob(), supervised) {
            (true, true) => Level::Approximated(format!(
                "paths matching when the policy is compiled are read-only mounts; creating or writing any other match is refused by a supervisor, {RACE}"
            )),
            (false, true) => Level::Approximated(format!(
                "read-only if it exists when the policy is compiled; creating it later is refused by a supervisor, {RACE}"
            )),
            (true, false) => Level::Approximated(
                "paths matching when the policy is compiled are read-only; files created later that match are not protected (no seccomp filter for this architecture)".into(),
            ),
            (false, false) => Level::Approximated(
                "read-only if it exists when the policy is compiled; creating it later is not prevented (no seccomp filter for this architecture)".into(),
            ),
        };
        row(
            format!("filesystem.denyWrite {}", e.value),
            Some(e.origin),
            level,
        );
    }
    for e in &fs.deny_read {
        row(
            format!("filesystem.denyRead {}", e.value),
            Some(e.origin),
            Level::Approximated(
                "hidden if it exists when the policy is compiled (recompiled when it appears)"
                    .into(),
            ),
        );
    }
    row(
        "filesystem.defaultDenyRead".into(),
        fs.default_deny_read.origin,
        if fs.default_deny_read.value {
            write_level.clone()
        } else {
            Level::Exact
        },
    );
    if !resolved.unprotected_new.is_empty() || !resolved.create_deny.names.is_empty() {
        let rule = if resolved.unprotected_new.is_empty() {
            "mandatory protections (names that do not exist yet)".to_string()
        } else {
            format!(
                "mandatory protections ({} paths that do not exist yet)",
                resolved.unprotected_new.len()
            )
        };
        let level = if supervised {
            Level::Approximated(format!(
                "existing protected paths in the working and home directories are read-only mounts; creating a missing one, or writing one deeper down, is refused by a supervisor, {RACE} (the read-only mounts hold regardless)"
            ))
        } else {
            Level::Approximated(
                "existing protected paths are read-only; creating a missing one is not prevented (no seccomp filter for this architecture)".into(),
            )
        };
        row(rule, None, level);
    }
    let net = &policy.network;
    match net.mode() {
        NetworkMode::Isolated => row("network: no egress".into(), None, Level::Exact),
        NetworkMode::Filtered => {
            for e in &net.allowed_domains {
                row(
                    format!("network.allowedDomains {}", e.value),
                    Some(e.origin),
                    Level::Exact,
                );
            }
        }
        NetworkMode::Relaxed => {
            for e in &net.denied_domains {
                row(
                    format!("network.deniedDomains {}", e.value),
                    Some(e.origin),
                    Level::Unenforceable(
                        "relaxed mode shares the host network and starts no proxy: nothing \
                         filters the denied domains (filtering them would need the sandbox's own \
                         network namespace, where clients that ignore HTTP_PROXY have no route)"
                            .into(),
                    ),
                );
            }
        }
    }
    if let Some(o) = net
        .allow_local_outbound
        .origin
        .filter(|_| net.local_outbound() && net.mode() != NetworkMode::Relaxed)
    {
        let named = net.allowed_domains.iter().any(|e| {
            use crate::pattern::domain::DomainPattern;
            match &e.value {
                DomainPattern::OnPort(h, _) => match h.as_ref() {
                    DomainPattern::Exact(n) => n == "localhost",
                    DomainPattern::Ip(ip) => ip.is_loopback(),
                    _ => false,
                },
                _ => false,
            }
        });
        row(
            "network.allowLocalOutbound".into(),
            Some(o),
            if named {
                Level::Exact
            } else {
                Level::Approximated(
                    "only host services named with their port (`localhost:5432`) are bridged \
                     into the sandbox; none is named, so none is reachable (stricter)"
                        .into(),
                )
            },
        );
    }
    if let Some(o) = net
        .http_proxy_url
        .origin
        .filter(|_| net.http_proxy_url.value.is_some())
    {
        let level = match (net.mode(), &net.proxy_url.value) {
            (NetworkMode::Isolated, _) => {
                Level::Approximated("not used: the policy allows no network".into())
            }
            (NetworkMode::Filtered, Some(_)) => Level::Approximated(
                "not used: HTTP_PROXY inside is greywall's own proxy, and greywall-proxyd sends \
                 every allowed connection through proxyUrl"
                    .into(),
            ),
            (NetworkMode::Filtered, None) => Level::Unenforceable(
                "greywall-proxyd chains only to a SOCKS5 proxyUrl: it refuses this rule set, \
                 and the command does not run"
                    .into(),
            ),
            (NetworkMode::Relaxed, _) => Level::Unenforceable(
                "relaxed mode shares the host network and sets no proxy".into(),
            ),
        };
        row("network.httpProxyUrl".into(), Some(o), level);
    }
    if let Some(o) = net.dns_addr.origin.filter(|_| net.dns_addr.value.is_some()) {
        let level = match net.mode() {
            NetworkMode::Filtered => Level::Exact,
            NetworkMode::Isolated => {
                Level::Approximated("not used: the policy allows no network".into())
            }
            NetworkMode::Relaxed => {
                Level::Unenforceable("relaxed mode shares the host network and its resolver".into())
            }
        };
        row("network.dnsAddr".into(), Some(o), level);
    }
    if !net.allow_all_unix_sockets.value {
        row(
            "Unix sockets".into(),
            None,
            Level::Approximated(if kernel.landlock_abi >= 9 {
                "container engine sockets, the system bus and the user's runtime directory ($XDG_RUNTIME_DIR: session bus, agents) are hidden".into()
            } else {
                "container engine sockets, the system bus and the user's runtime directory ($XDG_RUNTIME_DIR: session bus, agents) are hidden; other Unix sockets the sandbox can see stay connectable (Landlock before ABI 9 cannot restrict them)".into()
            }),
        );
    }
    for e in &policy.command.deny {
        row(
            format!("command.deny {}", e.value),
            Some(e.origin),
            Level::Approximated(
                "checked on the command greywall starts, not on commands it runs later".into(),
            ),
        );
    }
    if policy.allow_pty.origin.is_some() && !policy.allow_pty.value {
        row(
            "allowPty: false".into(),
            policy.allow_pty.origin,
            Level::Approximated("pseudo-terminals are always available on Linux".into()),
        );
    }
    rows
}

/// The report for a policy compiled to a Seatbelt profile (macOS). It depends on the policy
/// alone, so `greywall check --target macos` prints it on any host.
pub fn report_macos(policy: &Policy) -> Vec<Row> {
    use crate::backend::seatbelt::glob::{Place, glob_regex};
    use crate::pattern::path::Segment;
    let mut rows = Vec::new();
    let mut row = |rule: String, origin: Option<Span>, level: Level| {
        rows.push(Row {
            rule,
            origin,
            level,
        })
    };
    // A path rule: exact unless it cannot be expressed, or a glob matches by character.
    let path_level = |p: &crate::pattern::path::PathPattern| -> Level {
        match Place::of(p).and_then(|pl| pl.cover().map(|_| pl)) {
            Err(why) => Level::Unenforceable(why),
            Ok(_) => {
                let by_char = p.segments.iter().any(|s| match s {
                    Segment::Glob(g) => {
                        glob_regex(g).is_ok() && (g.contains('?') || g.contains('['))
                    }
                    _ => false,
                });
                let shared_tmp = p.base == crate::pattern::path::PathBase::Root
                    && matches!(p.segments.first(), Some(Segment::Literal(l)) if l == "tmp");
                if shared_tmp {
                    Level::Approximated(
                        "macOS has no private /tmp: this is the host's shared /private/tmp (the per-user $TMPDIR is always writable)".into(),
                    )
                } else if by_char {
                    Level::Approximated(
                        "`?` and `[...]` stand for one character; should Seatbelt's regex engine count bytes, a name with a multi-byte character in that place is not matched".into(),
                    )
                } else {
                    Level::Exact
                }
            }
        }
    };
    let fs = &policy.filesystem;
    for (field, list) in [
        ("filesystem.allowWrite", &fs.allow_write),
        ("filesystem.allowRead", &fs.allow_read),
        ("filesystem.denyWrite", &fs.deny_write),
        ("filesystem.denyRead", &fs.deny_read),
        (
            "network.allowUnixSockets",
            &policy.network.allow_unix_sockets,
        ),
    ] {
        for e in list {
            let mut level = path_level(&e.value);
            if field == "filesystem.allowRead"
                && !fs.default_deny_read.value
                && level == Level::Exact
            {
                level = Level::Approximated("has no effect: defaultDenyRead is off".into());
            }
            row(format!("{field} {}", e.value), Some(e.origin), level);
        }
    }
    row(
        "filesystem.defaultDenyRead".into(),
        fs.default_deny_read.origin,
        if fs.default_deny_read.value {
            Level::Approximated(
                "file metadata (existence, size, times) stays visible everywhere; contents and directory listings do not".into(),
            )
        } else {
            Level::Exact
        },
    );
    row(
        "mandatory protections".into(),
        None,
        Level::Approximated(
            "enforced on every access, including paths created later; `greywall.json` is protected anywhere, not only around the working directory (stricter than Linux)".into(),
        ),
    );
    let net = &policy.network;
    match net.mode() {
        NetworkMode::Isolated => row("network: no egress".into(), None, Level::Exact),
        NetworkMode::Filtered => {
            for e in &net.allowed_domains {
                row(
                    format!("network.allowedDomains {}", e.value),
                    Some(e.origin),
                    Level::Approximated(format!(
                        "direct connections are refused; the sandbox may connect to loopback ports {} and {}, where greywall's proxy must listen (macOS has no network namespace: any host service on those ports is reachable too)",
                        net.http_proxy_port.value, net.socks_proxy_port.value
                    )),
                );
            }
        }
        NetworkMode::Relaxed => {
            for e in &net.denied_domains {
                row(
                    format!("network.deniedDomains {}", e.value),
                    Some(e.origin),
                    Level::Unenforceable(
                        "relaxed mode allows every connection and starts no proxy: nothing filters the denied domains".into(),
                    ),
                );
            }
        }
    }
    if let Some(o) = net
        .allow_local_binding
        .origin
        .filter(|_| net.allow_local_binding.value)
    {
        row(
            "network.allowLocalBinding".into(),
            Some(o),
            Level::Approximated(
                "listening sockets are on the host's loopback, visible to every local process (Linux keeps them in the sandbox's own namespace)".into(),
            ),
        );
    }
    if let Some(o) = net
        .allow_local_outbound
        .origin
        .filter(|_| net.local_outbound())
    {
        row("network.allowLocalOutbound".into(), Some(o), Level::Exact);
    }
    for e in &policy.command.deny {
        row(
            format!("command.deny {}", e.value),
            Some(e.origin),
            Level::Approximated(
                "checked on the command greywall starts, not on commands it runs later".into(),
            ),
        );
    }
    if policy.ssh.is_active() {
        row(
            "ssh".into(),
            None,
            Level::Unenforceable("the SSH policy is not enforced on macOS yet".into()),
        );
    }
    row("allowPty".into(), policy.allow_pty.origin, Level::Exact);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Input, load};

    fn rows(audit_arch: u32) -> Vec<Row> {
        let text = r#"{"filesystem": {"allowWrite": ["."], "denyWrite": ["**/*.key", "x.pem"]}}"#;
        let policy = load(&Input::Text {
            name: "t.json".into(),
            text: text.into(),
            dir: "/".into(),
        })
        .policy
        .unwrap_or_default();
        let resolved = Resolved {
            unprotected_new: vec!["/w/.bashrc".into()],
            ..Resolved::default()
        };
        let kernel = KernelFacts {
            landlock_abi: 7,
            audit_arch,
        };
        report(&policy, &resolved, &kernel)
    }

    fn level(rows: &[Row], rule: &str) -> String {
        rows.iter()
            .find(|r| r.rule.starts_with(rule))
            .map(|r| r.level.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn creation_is_refused_with_a_documented_race() {
        let r = rows(crate::backend::seccomp::AUDIT_ARCH_X86_64);
        for rule in [
            "mandatory protections (1 paths",
            "filesystem.denyWrite ./**/*.key",
            "filesystem.denyWrite ./x.pem",
        ] {
            let l = level(&r, rule);
            assert!(
                l.starts_with("approximated: ") && l.contains("refused by a supervisor"),
                "{rule}: {l}"
            );
            assert!(l.contains("racing multi-threaded program"), "{rule}: {l}");
        }
    }

    #[test]
    fn macos_report_covers_paths_and_network() {
        let text = r#"{"network": {"allowedDomains": ["github.com"]},
            "filesystem": {"allowWrite": ["."], "denyWrite": ["**/*.key", "id_?", "x/[é]"]}}"#;
        let policy = load(&Input::Text {
            name: "t.json".into(),
            text: text.into(),
            dir: "/".into(),
        })
        .policy
        .unwrap_or_default();
        let r = report_macos(&policy);
        assert_eq!(level(&r, "filesystem.allowWrite ."), "exact");
        assert_eq!(level(&r, "filesystem.denyWrite ./**/*.key"), "exact");
        assert!(level(&r, "filesystem.denyWrite ./id_?").starts_with("approximated"));
        assert!(level(&r, "filesystem.denyWrite ./x/[é]").starts_with("unenforceable"));
        assert!(level(&r, "network.allowedDomains github.com").contains("3128"));
        assert!(level(&r, "filesystem.defaultDenyRead").contains("metadata"));
    }

    #[test]
    fn without_a_filter_for_the_architecture_creation_is_not_prevented() {
        let r = rows(0x1234);
        assert!(
            level(&r, "mandatory protections").contains("not prevented"),
            "{r:?}"
        );
        assert!(level(&r, "filesystem.denyWrite ./**/*.key").contains("not protected"));
    }
}
