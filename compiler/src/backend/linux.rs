//! The Linux launch plan, from a resolved policy.
//!
//! Order of the mount steps matters and is fixed here: the private `/tmp` and `/dev/shm`
//! first, then read-only protections, then hidden paths (a hidden path inside a read-only one
//! still hides). Landlock grants: readable roots get read and execute; writable roots also get
//! every write right; terminal and null devices get read, write and device ioctls.
//!
//! Protected paths that do not exist yet cannot be mounted over: the plan carries them as
//! create-deny rules with the notify filter ([`seccomp::build_notify`]) that lets the
//! launcher's supervisor refuse their creation.

use std::path::Path;

use crate::backend::seccomp::{self, Arch};
use crate::model::NetworkMode;
use crate::pattern::domain::DomainPattern;
use crate::plan::{
    CreateDeny, Egress, EnvOp, Landlock, LinuxPlan, MountOp, Network, PathRule, fs_access, hash64,
    net_access, scope,
};
use crate::resolve::Resolved;

/// Facts about the kernel the plan is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelFacts {
    /// The running Landlock ABI (0: Landlock unavailable).
    pub landlock_abi: u32,
    /// `AUDIT_ARCH_*` of the machine.
    pub audit_arch: u32,
}

/// Devices every sandbox may open for reading and writing (and their ioctls).
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

/// The folders every plan mounts a private tmpfs on (hiding the host's contents there).
pub const PRIVATE_TMPFS: [&str; 2] = ["/tmp", "/dev/shm"];
/// The mode of those private tmpfs mounts (`/tmp`'s: everyone may create, only owners remove).
pub const PRIVATE_TMPFS_MODE: u32 = 0o1777;

/// Builds the plan. `seccomp` is the compiled filter for `kernel.audit_arch`; the notify filter
/// depends on nothing but the architecture and is built here, when there are create-deny rules
/// (without a filter for the architecture they cannot be enforced and are left out; the
/// fidelity report says so).
pub fn plan(r: &Resolved, kernel: &KernelFacts, seccomp: Vec<u8>) -> LinuxPlan {
    let [tmp, shm] = PRIVATE_TMPFS;
    let mut mounts = vec![MountOp::Tmpfs {
        path: tmp.into(),
        mode: PRIVATE_TMPFS_MODE,
    }];
    mounts.extend(r.tmp_keep.iter().map(|p| MountOp::Keep { path: p.clone() }));
    mounts.push(MountOp::Tmpfs {
        path: shm.into(),
        mode: PRIVATE_TMPFS_MODE,
    });
    mounts.extend(r.pins.iter().map(|p| MountOp::Pin { path: p.clone() }));
    mounts.extend(
        r.read_only
            .iter()
            .map(|p| MountOp::ReadOnly { path: p.clone() }),
    );
    for (p, dir) in &r.hide {
        mounts.push(if *dir {
            MountOp::HideDir { path: p.clone() }
        } else {
            MountOp::HideFile { path: p.clone() }
        });
    }

    let abi = kernel.landlock_abi;
    let handled_fs = fs_access::all_for_abi(abi);
    let mut paths: Vec<PathRule> = Vec::new();
    let mut grant = |path: &str, access: u64| {
        let access = access & handled_fs;
        match paths.iter_mut().find(|p| p.path == path) {
            Some(p) => p.access |= access,
            None => paths.push(PathRule {
                path: path.to_string(),
                access,
            }),
        }
    };
    for p in &r.read {
        grant(p, fs_access::READ);
    }
    for p in &r.write {
        grant(p, fs_access::READ | fs_access::WRITE);
    }
    grant(shm, fs_access::READ | fs_access::WRITE);
    for d in DEVICES {
        // `/dev/pts` is a directory; the others are device files, and a directory right on a
        // file would cost the launcher a refused `landlock_add_rule` and a retry.
        let listing = if *d == "/dev/pts" {
            fs_access::READ_DIR
        } else {
            0
        };
        grant(
            d,
            fs_access::READ_FILE | fs_access::WRITE_FILE | fs_access::IOCTL_DEV | listing,
        );
    }
    let paths = without_covered(paths);

    let (network, handled_net, handled_net_no_userns) = match r.network {
        // The host network: binding a server there needs allowLocalBinding too.
        NetworkMode::Relaxed => {
            let bind = if r.local_binding {
                0
            } else {
                net_access::BIND_TCP
            };
            (Network::Host, bind, bind)
        }
        NetworkMode::Isolated | NetworkMode::Filtered => {
            let bind = if r.local_binding {
                0
            } else {
                net_access::BIND_TCP
            };
            (Network::Isolated, bind, bind | net_access::CONNECT_TCP)
        }
    };
    let (handled_net, handled_net_no_userns) = if abi >= 4 {
        (handled_net, handled_net_no_userns)
    } else {
        (0, 0)
    };
    let scoped = if abi >= 6 {
        scope::SIGNAL | scope::ABSTRACT_UNIX_SOCKET
    } else {
        0
    };

    // The policy's environment rules first, so greywall's own edits always hold.
    let mut env = r.env.clone();
    env.extend([
        EnvOp::UnsetPrefix("LD_".into()),
        EnvOp::UnsetPrefix("DYLD_".into()),
        EnvOp::Set("GREYWALL_SANDBOX".into(), "1".into()),
        EnvOp::Set("TMPDIR".into(), "/tmp".into()),
    ]);

    let mut without_userns =
        vec!["the private /tmp (the host's /tmp is used, under Landlock)".to_string()];
    if !r.read_only.is_empty() {
        without_userns.push(format!(
            "read-only protection of {} existing paths inside writable folders",
            r.read_only.len()
        ));
    }
    if !r.hide.is_empty() {
        without_userns.push(format!(
            "hiding of {} paths (denyRead and secrets)",
            r.hide.len()
        ));
    }
    if network == Network::Isolated {
        without_userns.push(
            "network isolation (Landlock still refuses TCP; UDP and Unix sockets are not blocked)"
                .into(),
        );
    }

    let (create_deny, seccomp_notify) = match Arch::from_audit_arch(kernel.audit_arch) {
        Some(arch) if !r.create_deny.is_empty() => (
            r.create_deny.clone(),
            seccomp::to_bytes(&seccomp::build_notify(
                arch,
                &seccomp::SeccompOptions::default(),
            )),
        ),
        _ => (CreateDeny::default(), Vec::new()),
    };

    let mut plan = LinuxPlan {
        policy_hash: 0,
        namespaces: true,
        network,
        pid_namespace: false,
        mounts,
        create_deny,
        landlock: Landlock {
            abi,
            handled_fs,
            handled_net,
            handled_net_no_userns,
            scoped,
            paths,
            ports: Vec::new(),
        },
        seccomp_arch: kernel.audit_arch,
        seccomp,
        seccomp_notify,
        env,
        deny_commands: r.deny_commands.clone(),
        allow_commands: r.allow_commands.clone(),
        without_userns,
        egress: None,
    };
    plan.policy_hash = hash64(&plan.encode());
    plan
}

/// Leaves out the rules an ancestor's rule already grants: Landlock allows an access when a
/// rule on the path or on any folder above it (through mount points) allows it, so a rule
/// whose rights are all granted above adds nothing but a launch-time `open` and
/// `landlock_add_rule` (`/usr/bin` under `/usr` in the default policy). The paths are the
/// resolver's, free of symlinks; should one become a symlink before the launch, the rule left
/// out would have followed it elsewhere, so leaving it out can only grant less, never more.
fn without_covered(paths: Vec<PathRule>) -> Vec<PathRule> {
    let covered = |r: &PathRule| {
        paths.iter().any(|a| {
            a.path != r.path && Path::new(&r.path).starts_with(&a.path) && r.access & !a.access == 0
        })
    };
    let keep: Vec<bool> = paths.iter().map(|r| !covered(r)).collect();
    paths
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect()
}

/// Where the egress rule set is and what it hashes to (the compile step stores it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesetRef {
    pub path: String,
    pub sha256: String,
}

/// The egress section for a policy in filtered network mode: the in-sandbox proxy ports, the
/// proxy environment (both spellings, as clients disagree), whether SSH goes through SOCKS
/// (an allowed entry names port 22), and the host loopback ports named `localhost:PORT`,
/// `127.0.0.1:PORT` or `[::1]:PORT` when `allowLocalOutbound` is on.
pub fn egress(network: &crate::model::Network, ruleset: RulesetRef) -> Egress {
    let http_port = network.http_proxy_port.value;
    let socks_port = network.socks_proxy_port.value;
    let http = format!("http://127.0.0.1:{http_port}");
    let socks = format!("socks5h://127.0.0.1:{socks_port}");
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    let mut env = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.push((name.to_string(), http.clone()));
    }
    for name in ["ALL_PROXY", "all_proxy"] {
        env.push((name.to_string(), socks.clone()));
    }
    for name in ["NO_PROXY", "no_proxy"] {
        env.push((name.to_string(), no_proxy.clone()));
    }
    env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    let ssh_via_socks = network
        .allowed_domains
        .iter()
        .any(|e| matches!(e.value, DomainPattern::OnPort(_, 22)));
    let mut local_outbound: Vec<u16> = Vec::new();
    if network.local_outbound() {
        for e in &network.allowed_domains {
            if let DomainPattern::OnPort(host, port) = &e.value
                && is_loopback(host)
                && ![http_port, socks_port].contains(port)
                && !local_outbound.contains(port)
            {
                local_outbound.push(*port);
            }
        }
    }
    local_outbound.sort_unstable();
    Egress {
        ruleset_path: ruleset.path,
        ruleset_sha256: ruleset.sha256,
        http_port,
        socks_port,
        ssh_via_socks,
        local_outbound,
        env,
    }
}

fn is_loopback(host: &DomainPattern) -> bool {
    match host {
        DomainPattern::Exact(h) => h == "localhost",
        DomainPattern::Ip(ip) => ip.is_loopback(),
        _ => false,
    }
}

/// Adds the egress section to a plan (and hashes the result again).
pub fn with_egress(mut plan: LinuxPlan, egress: Egress) -> LinuxPlan {
    plan.egress = Some(egress);
    plan.policy_hash = 0;
    plan.policy_hash = hash64(&plan.encode());
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, access: u64) -> PathRule {
        PathRule {
            path: path.into(),
            access,
        }
    }

    #[test]
    fn rules_granted_above_are_left_out() {
        let rw = fs_access::READ | fs_access::WRITE;
        let kept = without_covered(vec![
            rule("/usr/bin", fs_access::READ),
            rule("/usr", fs_access::READ),
            rule("/usr/lib", fs_access::READ),
            // More rights than its ancestor grants: kept.
            rule("/usr/local/cache", rw),
            // A sibling with a common prefix is not below `/usr`.
            rule("/usrlocal", fs_access::READ),
            rule("/home/u/ws", rw),
            rule("/home/u/ws/.cache", fs_access::READ),
            rule("/dev", fs_access::READ),
            rule("/dev/null", fs_access::READ_FILE | fs_access::WRITE_FILE),
        ]);
        let paths: Vec<&str> = kept.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/usr",
                "/usr/local/cache",
                "/usrlocal",
                "/home/u/ws",
                "/dev",
                "/dev/null"
            ]
        );
    }
}
