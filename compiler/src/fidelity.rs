//! The fidelity report: for each rule of a policy, how faithfully this platform enforces it.
//!
//! `exact` means the kernel enforces the rule as written; `approximated` says how it falls
//! short; `unenforceable` says why it cannot hold here. `greywall check` prints it.

use std::fmt;

use crate::backend::linux::KernelFacts;
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
    for e in &fs.deny_write {
        let level = if e.value.is_glob() {
            Level::Approximated(
                "paths matching when the policy is compiled are read-only; files created later that match are not protected".into(),
            )
        } else {
            Level::Approximated("read-only if it exists when the policy is compiled; creating it later is not prevented".into())
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
    if !resolved.unprotected_new.is_empty() {
        row(
            format!("mandatory protections ({} paths that do not exist yet)", resolved.unprotected_new.len()),
            None,
            Level::Approximated("existing protected paths are read-only; creating a missing one is not prevented yet".into()),
        );
    }
    let net = &policy.network;
    match net.mode() {
        NetworkMode::Isolated => row("network: no egress".into(), None, Level::Exact),
        NetworkMode::Filtered => {
            for e in &net.allowed_domains {
                row(
                    format!("network.allowedDomains {}", e.value),
                    Some(e.origin),
                    Level::Unenforceable("greywall-proxyd is not available yet: the sandbox has no network (stricter)".into()),
                );
            }
        }
        NetworkMode::Relaxed => {
            for e in &net.denied_domains {
                row(
                    format!("network.deniedDomains {}", e.value),
                    Some(e.origin),
                    Level::Unenforceable(
                        "relaxed mode shares the host network and proxyd is not available yet"
                            .into(),
                    ),
                );
            }
        }
    }
    if let Some(o) = net
        .allow_local_outbound
        .origin
        .filter(|_| net.local_outbound())
    {
        row(
            "network.allowLocalOutbound".into(),
            Some(o),
            Level::Unenforceable(
                "host loopback services are not bridged into the sandbox yet (stricter)".into(),
            ),
        );
    }
    if !net.allow_all_unix_sockets.value {
        row(
            "Unix sockets".into(),
            None,
            Level::Approximated(if kernel.landlock_abi >= 9 {
                "container engine sockets are hidden".into()
            } else {
                "container engine sockets are hidden; other Unix sockets the sandbox can see stay connectable (Landlock before ABI 9 cannot restrict them)".into()
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
