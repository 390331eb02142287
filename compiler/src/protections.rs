//! What greywall protects whatever a policy says.
//!
//! These lists are shared by every pass that reasons about access: the lint pass (to flag
//! grants aimed at them), the decision function and the backends (to enforce them). Paths are
//! relative names; [`Scope`] says where they apply.

/// Where a protected name applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In the working directory and every directory below it (`**/NAME`), and in the home
    /// directory.
    Everywhere,
    /// Only directly in the home directory (`~/NAME`).
    Home,
}

/// Why a path is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Runs code later: shell startup files, git hooks, editor and agent command folders.
    Startup,
    /// Decides greywall's next run: policies, configuration, the artifact cache.
    Greywall,
}

/// A path the sandbox can never write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protected {
    pub name: &'static str,
    pub scope: Scope,
    pub reason: Reason,
}

const fn p(name: &'static str, scope: Scope, reason: Reason) -> Protected {
    Protected {
        name,
        scope,
        reason,
    }
}

use Reason::{Greywall, Startup};
use Scope::{Everywhere, Home};

/// Never writable. `.git/config` is separate: see [`GIT_CONFIG`].
pub const WRITE_PROTECTED: &[Protected] = &[
    // Shell and tool startup files (Greywall's list plus the other shells' login files).
    p(".bashrc", Everywhere, Startup),
    p(".bash_profile", Everywhere, Startup),
    p(".bash_login", Everywhere, Startup),
    p(".bash_logout", Everywhere, Startup),
    p(".profile", Everywhere, Startup),
    p(".zshrc", Everywhere, Startup),
    p(".zprofile", Everywhere, Startup),
    p(".zshenv", Everywhere, Startup),
    p(".zlogin", Everywhere, Startup),
    p(".zlogout", Everywhere, Startup),
    p(".inputrc", Everywhere, Startup),
    p(".gitconfig", Everywhere, Startup),
    p(".gitmodules", Everywhere, Startup),
    p(".ripgreprc", Everywhere, Startup),
    p(".mcp.json", Everywhere, Startup),
    p(".envrc", Everywhere, Startup),
    // Folders whose contents run later.
    p(".git/hooks", Everywhere, Startup),
    p(".husky", Everywhere, Startup),
    p(".vscode", Everywhere, Startup),
    p(".idea", Everywhere, Startup),
    p(".claude/commands", Everywhere, Startup),
    p(".claude/agents", Everywhere, Startup),
    // Per-user startup and persistence locations.
    p(".ssh", Home, Startup),
    p(".config/fish", Home, Startup),
    p(".config/git", Home, Startup),
    p(".config/systemd", Home, Startup),
    p(".config/autostart", Home, Startup),
    p(".config/environment.d", Home, Startup),
    p(".pam_environment", Home, Startup),
    // greywall's own state.
    p("greywall.json", Everywhere, Greywall),
    p(".greywall.json", Home, Greywall),
    p(".config/greywall", Home, Greywall),
    p(".cache/greywall", Home, Greywall),
];

/// greywall-proxyd's socket directory below `$XDG_RUNTIME_DIR`. It decides what the sandbox
/// can reach, so no sandbox may see it, let alone write it: it is hidden from every plan where
/// it exists (an empty read-only tmpfs; without it the sandbox could register its own rule
/// set). Without `$XDG_RUNTIME_DIR` proxyd uses [`PROXYD_TMP_PREFIX`]`<uid>`, which the
/// sandbox's private `/tmp` hides, and which a policy can never carry into it.
pub const PROXYD_RUNTIME_DIR: &str = "greywall";

/// proxyd's socket directory without `$XDG_RUNTIME_DIR`: `/tmp/greywall-<uid>`.
pub const PROXYD_TMP_PREFIX: &str = "/tmp/greywall-";

/// `.git/config`, writable only with `allowGitConfig` (it can run commands through
/// `core.fsmonitor`, `core.sshCommand` and similar settings).
pub const GIT_CONFIG: &str = ".git/config";

/// Environment files in the working directory, which usually hold secrets: neither readable nor
/// writable (as Greywall does).
pub const SECRET_FILES: &[&str] = &[
    ".env",
    ".env.local",
    ".env.development",
    ".env.production",
    ".env.staging",
    ".env.test",
];

/// A credential a policy should never let the sandbox read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    /// A representative file, relative to the home directory.
    pub sample: &'static str,
    /// What to add to `denyRead` (relative to the home directory) to hide it.
    pub deny: &'static str,
    pub what: &'static str,
}

const fn c(sample: &'static str, deny: &'static str, what: &'static str) -> Credential {
    Credential { sample, deny, what }
}

pub const CREDENTIALS: &[Credential] = &[
    c(".ssh/id_rsa", ".ssh/id_*", "SSH private keys"),
    c(".ssh/id_ed25519", ".ssh/id_*", "SSH private keys"),
    c(".ssh/id_ecdsa", ".ssh/id_*", "SSH private keys"),
    c(".gnupg/private-keys-v1.d", ".gnupg", "GnuPG private keys"),
    c(".aws/credentials", ".aws", "AWS credentials"),
    c(
        ".azure/msal_token_cache.json",
        ".azure",
        "Azure credentials",
    ),
    c(
        ".config/gcloud/credentials.db",
        ".config/gcloud",
        "Google Cloud credentials",
    ),
    c(".config/gh/hosts.yml", ".config/gh", "the GitHub CLI token"),
    c(".kube/config", ".kube", "Kubernetes credentials"),
    c(
        ".docker/config.json",
        ".docker",
        "Docker registry credentials",
    ),
    c(".netrc", ".netrc", ".netrc passwords"),
    c(".git-credentials", ".git-credentials", "git credentials"),
    c(".pypirc", ".pypirc", "the PyPI token"),
    c(".npmrc", ".npmrc", "the npm token"),
    c(
        ".cargo/credentials.toml",
        ".cargo/credentials.toml",
        "the crates.io token",
    ),
    c(
        ".cargo/credentials",
        ".cargo/credentials",
        "the crates.io token",
    ),
    c(".vault-token", ".vault-token", "the Vault token"),
    c(
        ".terraform.d/credentials.tfrc.json",
        ".terraform.d",
        "Terraform Cloud credentials",
    ),
];

/// Container engine sockets: connecting to one is root on the host.
pub const CONTAINER_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/var/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
];

/// System services' sockets an unprivileged user may talk to: the system D-Bus (through which,
/// as far as the machine's polkit rules let an active session's user, the machine can be
/// suspended or rebooted, disks mounted, networks changed) and snapd. Hidden unless the policy
/// allows Unix sockets there.
pub const HOST_SERVICE_SOCKETS: &[&str] = &[
    "/run/dbus/system_bus_socket",
    "/var/run/dbus/system_bus_socket",
    "/run/snapd.socket",
    "/run/snapd-snap.socket",
];

/// Per-user container sockets, below `$XDG_RUNTIME_DIR` (`/run/user/UID`).
pub const USER_CONTAINER_SOCKETS: &[&str] = &["docker.sock", "podman/podman.sock"];

/// Directories that are commonly on `$PATH` below the home directory, checked in addition to
/// the `$PATH` of whoever runs the check.
pub const HOME_BIN_DIRS: &[&str] = &[
    ".local/bin",
    "bin",
    ".cargo/bin",
    "go/bin",
    ".bun/bin",
    ".deno/bin",
    ".npm-global/bin",
    ".volta/bin",
    ".yarn/bin",
    ".pyenv/shims",
    ".rbenv/shims",
    ".nix-profile/bin",
];

/// Commands refused when `command.useDefaults` is on (Greywall's list, plus removing the
/// root or home directory, which Greywall's README claimed to block but did not, and
/// `dd of=`, since dd's operands come in any order and `dd if=` alone misses
/// `dd of=/dev/sda if=…`).
pub const DEFAULT_DENIED_COMMANDS: &[&str] = &[
    "shutdown",
    "reboot",
    "halt",
    "poweroff",
    "init 0",
    "init 6",
    "systemctl poweroff",
    "systemctl reboot",
    "systemctl halt",
    "insmod",
    "rmmod",
    "modprobe",
    "kexec",
    "mkfs",
    "mkfs.ext2",
    "mkfs.ext3",
    "mkfs.ext4",
    "mkfs.xfs",
    "mkfs.btrfs",
    "mkfs.vfat",
    "mkfs.ntfs",
    "fdisk",
    "parted",
    "dd if=",
    "dd of=",
    "docker run -v /:/",
    "docker run --privileged",
    "chroot",
    "unshare",
    "nsenter",
    "rm -rf /",
    "rm -rf /*",
    "rm -rf ~",
    "rm -fr /",
];

/// Readable in `defaultDenyRead` mode: the system, without anything that holds secrets of the
/// user (those live in the home directory, which is not on this list).
pub const SYSTEM_READABLE: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/nix",
    "/snap",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/lib",
    "/var/cache",
    "/tmp",
];

/// Readable in `defaultDenyRead` mode below the home directory: toolchains and their shims,
/// and tool configuration that holds no credentials. Never `~/.config`, `~/.cargo` or `~/.npm`
/// as a whole: those hold tokens (`~/.config/gh`, `~/.cargo/credentials.toml`, `~/.npmrc`).
pub const HOME_READABLE: &[&str] = &[
    ".nvm",
    ".fnm",
    ".volta",
    ".n",
    ".pyenv",
    ".local/pipx",
    ".rbenv",
    ".rvm",
    ".asdf",
    ".cargo/bin",
    ".rustup",
    "go/bin",
    ".go",
    ".local/bin",
    "bin",
    ".bun/bin",
    ".deno/bin",
    ".sdkman",
    ".gitconfig",
    ".config/git",
    ".gitignore_global",
    ".inputrc",
];

/// Whether the policy keeps the user's runtime directory `dir` (`$XDG_RUNTIME_DIR`) visible:
/// it allows every Unix socket, or names something inside that folder (or the folder itself)
/// in `allowUnixSockets`, `allowRead` or `allowWrite`. Otherwise the folder is hidden whole
/// (the session bus, the user's systemd manager and key agents live there). `abs` makes a
/// pattern absolute the way the caller does.
pub fn runtime_dir_exposed(
    policy: &crate::model::Policy,
    dir: &str,
    abs: impl Fn(&crate::pattern::path::PathPattern) -> Option<crate::pattern::path::AbsPattern>,
) -> bool {
    let inside = |e: &crate::model::Entry<crate::pattern::path::PathPattern>| {
        abs(&e.value).is_some_and(|a| {
            let prefix = format!("/{}", a.literal_prefix().join("/"));
            crate::pattern::path::under(&prefix, dir) || a.covers(dir)
        })
    };
    let net = &policy.network;
    let fs = &policy.filesystem;
    net.allow_all_unix_sockets.value
        || net.allow_unix_sockets.iter().any(inside)
        || fs.allow_read.iter().any(inside)
        || fs.allow_write.iter().any(inside)
}
