//! The bubblewrap backend: the same filesystem view and namespaces as the native launcher,
//! expressed as a bwrap argument vector (NUL-separated for `bwrap --args FD`).
//!
//! bwrap builds the namespaces and mounts; it then runs `greywall __exec-plan` on a copy of
//! the plan with `namespaces: false`, which adds Landlock, seccomp, the environment and the
//! command check, exactly as the native backend does. Mount order matches
//! [`super::linux::plan`]: the whole host is bound first, then the private `/tmp` and
//! `/dev/shm`, then read-only protections, then hidden paths.

use crate::plan::{LinuxPlan, MountOp, Network};

/// The bwrap arguments (without the program name and without the trailing command).
pub fn argv(plan: &LinuxPlan) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_string()));
    push(&[
        "--die-with-parent",
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]);
    if plan.network == Network::Isolated {
        push(&["--unshare-net"]);
    }
    push(&["--dev-bind", "/", "/"]);
    for m in &plan.mounts {
        match m {
            MountOp::Tmpfs { path, mode } => {
                let mode = format!("{mode:o}");
                push(&["--perms", &mode, "--tmpfs", path]);
            }
            MountOp::ReadOnly { path } => push(&["--ro-bind-try", path, path]),
            MountOp::HideDir { path } => {
                push(&["--perms", "0", "--tmpfs", path, "--remount-ro", path])
            }
            MountOp::HideFile { path } => push(&["--ro-bind-try", "/dev/null", path]),
            // bwrap resolves bind sources in the host's view, under the new tmpfs.
            MountOp::Keep { path } | MountOp::Pin { path } => push(&["--bind-try", path, path]),
        }
    }
    a
}

/// The argument vector encoded for `bwrap --args FD`: each argument followed by a NUL.
pub fn args_blob(argv: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in argv {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    out
}

/// The plan the launcher applies inside bwrap: no namespaces or mounts of its own.
pub fn inner_plan(plan: &LinuxPlan) -> LinuxPlan {
    LinuxPlan {
        namespaces: false,
        mounts: Vec::new(),
        ..plan.clone()
    }
}
