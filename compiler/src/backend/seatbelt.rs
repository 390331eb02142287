//! The macOS backend: the resolved model as a Seatbelt profile (`sandbox-exec -f`).
//!
//! A pure function of the policy model. Nothing here looks at the machine it runs on, so
//! `greywall compile --target macos` works on Linux too. Facts that change from run to run
//! (working and home directory, `$TMPDIR`, the git directory, greywall's own directories) are
//! profile parameters ([`params`]); one cached profile serves every working directory.
//!
//! # Order
//!
//! Seatbelt applies the **last** rule that matches. The profile is written in this order, and
//! each later section only narrows or widens what the one before it said:
//!
//! 1. `(deny default)`, then process, IPC, sysctl and device allowances;
//! 2. reads: everything, or (`defaultDenyRead`) the system, toolchains, every writable root
//!    and `allowRead`;
//! 3. writes: `$TMPDIR`, devices, `allowWrite`;
//! 4. denies, after the allows they carve from, and among themselves in the reverse of the
//!    precedence of [`crate::decide`] so that the rule that decides is the one it names:
//!    `denyWrite`, the `.env` files, `denyRead` (neither read nor written), then the mandatory
//!    protections and greywall's own state;
//! 5. rename guards: `file-write-unlink` denied on protected paths, on every literal component
//!    leading to them and on the ancestors of the working and home directory, so moving a
//!    parent away cannot take a protected path out of its rule's reach;
//! 6. network: only the proxy ports on loopback, local binding and loopback services when
//!    allowed, Unix sockets by path (Seatbelt treats `connect` to one as network-outbound);
//! 7. pseudo-terminals.

pub mod glob;
pub mod params;
pub mod sbpl;

use std::collections::BTreeSet;

use crate::model::{NetworkMode, Policy};
use crate::pattern::path::{PathBase, PathPattern};
use crate::protections::{self, Scope};
use crate::source::Span;
use glob::{Anchor, CWD, HOME, Place};
use params::Param;
use sbpl::{Arg, Filter, Str, Text};

/// A compiled profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile text; its first line declares the parameters it uses.
    pub text: String,
    /// The parameters the text uses, in a fixed order.
    pub params: Vec<Param>,
    /// Environment for the command (the proxy variables in filtered network mode); also in
    /// the profile's second line, so the launcher needs nothing but the profile.
    pub env: Vec<(String, String)>,
}

/// Marks the line that lists the environment the launcher sets.
pub const ENV_HEADER: &str = ";; greywall-env:";

/// The environment a profile's header line carries (`NAME=VALUE`, space-separated; values
/// never contain spaces: they are built from port numbers).
pub fn declared_env(profile: &str) -> Vec<(String, String)> {
    profile
        .lines()
        .take(3)
        .find_map(|l| l.strip_prefix(ENV_HEADER))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Compile-time facts beyond the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The policy files this policy was loaded from (absolute); the sandbox may not write them.
    pub policy_files: Vec<String>,
}

/// A rule the profile cannot express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexpressible {
    pub rule: String,
    pub origin: Option<Span>,
    pub why: String,
}

/// Global mach services the sandbox may look up, and who needs each.
pub const MACH_SERVICES: &[(&str, &str)] = &[
    (
        "com.apple.system.opendirectoryd.libinfo",
        "getpwuid, getgrgid (Python's pwd, ssh, git)",
    ),
    (
        "com.apple.system.opendirectoryd.membership",
        "group membership checks",
    ),
    ("com.apple.system.logger", "syslog from command-line tools"),
    ("com.apple.logd", "os_log"),
    (
        "com.apple.system.notification_center",
        "notify_register (timezone, locale changes)",
    ),
    (
        "com.apple.trustd.agent",
        "certificate evaluation: Go's crypto/x509, curl, Security.framework",
    ),
    (
        "com.apple.SecurityServer",
        "keychain and trust settings for TLS clients",
    ),
    ("com.apple.securityd.xpc", "Security.framework"),
    (
        "com.apple.SystemConfiguration.configd",
        "proxy and network configuration lookups",
    ),
    (
        "com.apple.SystemConfiguration.DNSConfiguration",
        "resolver configuration (Node 26 reads it at start)",
    ),
    (
        "com.apple.bsd.dirhelper",
        "confstr(_CS_DARWIN_USER_TEMP_DIR): the per-user $TMPDIR",
    ),
    (
        "com.apple.coreservices.launchservicesd",
        "LaunchServices, used by `open` and some toolchains",
    ),
    ("com.apple.lsd.mapdb", "LaunchServices database"),
    (
        "com.apple.FSEvents",
        "file watchers (watchman, node's fs.watch on directories)",
    ),
    ("com.apple.fseventsd", "file watchers"),
    (
        "com.apple.PowerManagement.control",
        "power assertions of long builds",
    ),
    (
        "com.apple.fonts",
        "font lookup (headless browsers, matplotlib)",
    ),
    ("com.apple.FontObjectsServer", "font lookup"),
    (
        "com.apple.audio.systemsoundserver",
        "terminal bell of some tools",
    ),
    (
        "com.apple.distributed_notifications@Uv3",
        "CFNotificationCenter users",
    ),
];

/// sysctls the sandbox may read by exact name: hardware and OS identification that runtimes
/// (Go, Node, Python, the JVM, Rust's std) query at start.
pub const SYSCTL_NAMES: &[&str] = &[
    "hw.activecpu",
    "hw.byteorder",
    "hw.cachelinesize",
    "hw.cputype",
    "hw.cpufamily",
    "hw.cpusubtype",
    "hw.l1dcachesize",
    "hw.l1icachesize",
    "hw.l2cachesize",
    "hw.l3cachesize",
    "hw.logicalcpu",
    "hw.logicalcpu_max",
    "hw.machine",
    "hw.memsize",
    "hw.model",
    "hw.ncpu",
    "hw.nperflevels",
    "hw.pagesize",
    "hw.physicalcpu",
    "hw.physicalcpu_max",
    "hw.tbfrequency",
    "hw.vectorunit",
    "kern.argmax",
    "kern.boottime",
    "kern.hostname",
    "kern.maxfiles",
    "kern.maxfilesperproc",
    "kern.maxproc",
    "kern.ngroups",
    "kern.osproductversion",
    "kern.osrelease",
    "kern.ostype",
    "kern.osvariant_status",
    "kern.osversion",
    "kern.safeboot",
    "kern.secure_kernel",
    "kern.usrstack64",
    "kern.version",
    "machdep.cpu.brand_string",
    "security.mac.lockdown_mode_state",
    "sysctl.proc_cputype",
    "sysctl.proc_translated",
    "vm.loadavg",
];

/// sysctl name prefixes the sandbox may read.
pub const SYSCTL_PREFIXES: &[&str] = &[
    "hw.optional.",
    "hw.perflevel",
    "kern.proc.pid.",
    "kern.proc.pgrp.",
    "machdep.cpu.",
    "net.routetable.",
];

/// Readable in `defaultDenyRead` mode on macOS: the system and package managers' trees (the
/// macOS counterpart of [`protections::SYSTEM_READABLE`]).
pub const SYSTEM_READABLE: &[&str] = &[
    "/System",
    "/Library",
    "/Applications/Xcode.app",
    "/usr",
    "/bin",
    "/sbin",
    "/opt",
    "/nix",
    "/dev",
    "/private/etc",
    "/private/var/db/timezone",
    "/private/var/db/dyld",
    "/private/var/select",
    "/private/var/run/resolv.conf",
];

/// Devices the sandbox may open for writing (and ioctl).
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/dtracehelper",
];

/// greywall-proxyd's socket directory on macOS (`/tmp/greywall-<uid>`, resolved).
pub const PROXYD_DIR_RE: &str = "^/private/tmp/greywall-[0-9]+(/.*)?$";

/// The inherited terminal (`/dev/ttysNNN`): always usable, as on Linux.
const TTYS: &str = "^/dev/ttys[0-9]+$";

struct Builder<'a> {
    t: Text,
    errors: Vec<Unexpressible>,
    policy: &'a Policy,
}

impl Builder<'_> {
    fn fail(&mut self, e: Unexpressible) {
        if !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }

    fn cover(&mut self, rule: String, origin: Option<Span>, p: &PathPattern) -> Option<Filter> {
        match Place::of(p).and_then(|pl| pl.cover()) {
            Ok(f) => Some(f),
            Err(why) => {
                self.fail(Unexpressible { rule, origin, why });
                None
            }
        }
    }

    fn guard(&mut self, rule: String, origin: Option<Span>, p: &PathPattern) -> Vec<Filter> {
        match Place::of(p).and_then(|pl| pl.unlink_guard()) {
            Ok(f) => f,
            Err(why) => {
                self.fail(Unexpressible { rule, origin, why });
                Vec::new()
            }
        }
    }

    fn list(&mut self, field: &str, list: &[crate::model::Entry<PathPattern>]) -> Vec<Filter> {
        let mut out = Vec::new();
        for e in list {
            if let Some(f) = self.cover(format!("{field} {}", e.value), Some(e.origin), &e.value)
                && !out.contains(&f)
            {
                out.push(f);
            }
        }
        out
    }
}

fn lit_filter(path: &str) -> Filter {
    Filter::literal(Str::lit(path))
}

fn sub_filter(path: &str) -> Filter {
    Filter::subpath(Str::lit(path))
}

/// Filters that can never fail to build (fixed names below a parameter).
fn place_cover(p: &Place) -> Filter {
    p.cover()
        .unwrap_or_else(|_| Filter::literal(Str::lit("/nonexistent")))
}

fn place_guard(p: &Place) -> Vec<Filter> {
    p.unlink_guard().unwrap_or_default()
}

fn any_depth(anchor: Anchor, name: &str) -> Place {
    let mut segs = vec![crate::pattern::path::Segment::AnyDepth];
    segs.extend(
        name.split('/')
            .map(|s| crate::pattern::path::Segment::Literal(s.to_string())),
    );
    Place::new(anchor, segs)
}

/// Whether some `allowWrite` entry covers the whole home directory.
fn home_writable(policy: &Policy) -> bool {
    const H: &str = "/\u{0}home";
    const C: &str = "/\u{0}cwd/\u{0}x";
    policy
        .filesystem
        .allow_write
        .iter()
        .any(|e| e.value.absolute(H, C).covers(H))
}

/// Compiles a policy into a Seatbelt profile.
pub fn profile(policy: &Policy, opts: &Options) -> Result<Profile, Vec<Unexpressible>> {
    let mut b = Builder {
        t: Text::default(),
        errors: Vec::new(),
        policy,
    };
    let fs = &policy.filesystem;

    b.t.raw_form("(version 1)");
    b.t.raw_form("(deny default)");
    b.t.blank();

    b.t.comment(
        "Processes: children inherit this profile; they may see and signal only each other.",
    );
    b.t.allow(&["process-exec", "process-fork"], vec![]);
    let same = || vec![Filter::new("target", vec![Arg::Sym("same-sandbox")])];
    b.t.allow(&["process-info*"], same());
    b.t.allow(&["signal"], same());
    b.t.allow(&["mach-priv-task-port"], same());
    b.t.comment("CFPreferences reads; host_processor_info for os.cpus() in Node and libuv.");
    b.t.allow(&["user-preference-read", "mach-host*"], vec![]);
    b.t.blank();

    b.t.comment("Mach services (see MACH_SERVICES in backend/seatbelt.rs for who needs each).");
    let mach: Vec<Filter> = MACH_SERVICES
        .iter()
        .map(|(n, _)| Filter::text("global-name", n))
        .collect();
    b.t.allow(&["mach-lookup"], mach);
    b.t.comment("POSIX semaphores and shared memory (Python multiprocessing, JVM).");
    b.t.allow(&["ipc-posix-sem", "ipc-posix-shm*"], vec![]);
    b.t.comment(
        "Power management queries of build tools; AF_SYSTEM control sockets (interface lists).",
    );
    b.t.allow(
        &["iokit-open"],
        vec![Filter::text(
            "iokit-registry-entry-class",
            "RootDomainUserClient",
        )],
    );
    b.t.allow(
        &["system-socket"],
        vec![Filter::new(
            "require-all",
            vec![
                Arg::Filter(Filter::new("socket-domain", vec![Arg::Sym("AF_SYSTEM")])),
                Arg::Filter(Filter::new("socket-protocol", vec![Arg::Num(2)])),
            ],
        )],
    );
    b.t.comment("sysctl reads runtimes make at start.");
    let mut sysctls: Vec<Filter> = SYSCTL_NAMES
        .iter()
        .map(|n| Filter::text("sysctl-name", n))
        .collect();
    sysctls.extend(
        SYSCTL_PREFIXES
            .iter()
            .map(|n| Filter::text("sysctl-name-prefix", n)),
    );
    b.t.allow(&["sysctl-read"], sysctls);
    b.t.comment("The JVM reads its CPU type through a sysctl write.");
    b.t.allow(
        &["sysctl-write"],
        vec![Filter::text("sysctl-name", "kern.grade_cputype")],
    );
    b.t.blank();

    // Reads.
    let allow_write = b.list("filesystem.allowWrite", &fs.allow_write);
    let tmpdir = Filter::subpath(Str::Param(Param::path(PathBase::Tmp).name()));
    let mut devices: Vec<Filter> = DEVICES.iter().map(|d| lit_filter(d)).collect();
    devices.push(sub_filter("/dev/fd"));
    devices.push(Filter::regex(Str::lit(TTYS)));
    if fs.default_deny_read.value {
        b.t.comment(
            "Reads (defaultDenyRead): metadata everywhere, contents only below these roots.",
        );
        b.t.allow(&["file-read-metadata"], vec![]);
        let mut reads: Vec<Filter> = vec![lit_filter("/")];
        reads.extend(SYSTEM_READABLE.iter().map(|p| sub_filter(p)));
        for rel in protections::HOME_READABLE {
            reads.push(place_cover(&Place::named(HOME, rel)));
        }
        b.t.allow(&["file-read*"], reads);
        let mut writable = vec![tmpdir.clone()];
        writable.extend(allow_write.iter().cloned());
        b.t.comment("Writable roots are readable.");
        b.t.allow(&["file-read*"], writable);
        let allow_read = b.list("filesystem.allowRead", &fs.allow_read);
        if !allow_read.is_empty() {
            b.t.comment("allowRead.");
        }
        b.t.allow_some(&["file-read*"], allow_read);
    } else {
        b.t.comment("Reads: everything not denied below.");
        b.t.allow(&["file-read*"], vec![]);
    }
    b.t.blank();

    b.t.comment("Writes: the per-user temporary directory, terminals and harmless devices.");
    b.t.allow(&["file-write*"], vec![tmpdir]);
    b.t.allow(&["file-read*", "file-write*", "file-ioctl"], devices);
    if !allow_write.is_empty() {
        b.t.comment("allowWrite.");
    }
    b.t.allow_some(&["file-write*"], allow_write);
    b.t.blank();

    // Denies, in the reverse of greywall's precedence (the last match decides): denyWrite,
    // then the hidden paths (`.env` files, then denyRead), then the mandatory protections.
    let deny_write = b.list("filesystem.denyWrite", &fs.deny_write);
    if !deny_write.is_empty() {
        b.t.comment("denyWrite.");
    }
    b.t.deny(&["file-write*"], deny_write);
    b.t.comment(
        "Environment files in the working directory hold secrets: not readable, not writable.",
    );
    let secrets: Vec<Filter> = protections::SECRET_FILES
        .iter()
        .map(|n| place_cover(&Place::named(CWD, n)))
        .collect();
    b.t.deny(&["file-read*", "file-write*"], secrets);
    b.t.comment(
        "Environment files deeper down: not writable (as the Linux supervisor refuses them).",
    );
    let deep_secrets: Vec<Filter> = protections::SECRET_FILES
        .iter()
        .map(|n| place_cover(&any_depth(CWD, n)))
        .collect();
    b.t.deny(&["file-write*"], deep_secrets);
    let deny_read = b.list("filesystem.denyRead", &fs.deny_read);
    if !deny_read.is_empty() {
        b.t.comment("denyRead: neither readable nor writable (as hidden paths on Linux).");
    }
    b.t.deny(&["file-read*", "file-write*"], deny_read);

    b.t.comment(
        "Mandatory protections: startup files, hooks, editor and agent folders, greywall's state.",
    );
    let mut protected: Vec<Place> = Vec::new();
    let everywhere_home = home_writable(policy);
    for prot in protections::WRITE_PROTECTED {
        protected.push(Place::named(HOME, prot.name));
        if prot.scope == Scope::Everywhere {
            if prot.name == "greywall.json" {
                // Policy files anywhere (the working directory's ancestors included).
                protected.push(any_depth(Anchor::Root, prot.name));
                continue;
            }
            protected.push(any_depth(CWD, prot.name));
            if everywhere_home {
                protected.push(any_depth(HOME, prot.name));
            }
        }
    }
    let git = Anchor::Base(PathBase::GitCommon, 0);
    protected.push(Place::named(git.clone(), "hooks"));
    if !fs.allow_git_config.value {
        protected.push(any_depth(CWD, protections::GIT_CONFIG));
        protected.push(Place::named(git, "config"));
    }
    protected.push(Place::new(Anchor::Dir(Param::GreywallConfig), vec![]));
    protected.push(Place::new(Anchor::Dir(Param::GreywallCache), vec![]));
    for f in &opts.policy_files {
        protected.push(Place::new(
            Anchor::Root,
            f.split('/')
                .filter(|s| !s.is_empty())
                .map(|s| crate::pattern::path::Segment::Literal(s.to_string()))
                .collect(),
        ));
    }
    let mut prot_filters: Vec<Filter> = Vec::new();
    for p in &protected {
        let f = place_cover(p);
        if !prot_filters.contains(&f) {
            prot_filters.push(f);
        }
    }
    b.t.deny(&["file-write*"], prot_filters);
    b.t.blank();

    b.t.comment("Rename guards: a protected path cannot be moved out of its rule's reach.");
    let mut guards: Vec<Filter> = Vec::new();
    let push_all = |guards: &mut Vec<Filter>, fs: Vec<Filter>| {
        for f in fs {
            if !guards.contains(&f) {
                guards.push(f);
            }
        }
    };
    for p in &protected {
        push_all(&mut guards, place_guard(p));
    }
    let patterns: Vec<(String, Option<Span>, PathPattern)> = fs
        .deny_read
        .iter()
        .map(|e| {
            (
                format!("filesystem.denyRead {}", e.value),
                Some(e.origin),
                e.value.clone(),
            )
        })
        .chain(fs.deny_write.iter().map(|e| {
            (
                format!("filesystem.denyWrite {}", e.value),
                Some(e.origin),
                e.value.clone(),
            )
        }))
        .collect();
    for (rule, origin, p) in &patterns {
        let g = b.guard(rule.clone(), *origin, p);
        push_all(&mut guards, g);
    }
    for n in protections::SECRET_FILES {
        push_all(&mut guards, place_guard(&Place::named(CWD, n)));
    }
    // Anything at or above `/` itself needs no guard: it cannot be renamed.
    guards.retain(|f| *f != lit_filter("/"));
    b.t.deny(&["file-write-unlink"], guards);
    b.t.blank();

    network(&mut b);

    if policy.allow_pty.value {
        b.t.comment("allowPty: new pseudo-terminals.");
        b.t.allow(&["pseudo-tty"], vec![]);
        b.t.allow(
            &["file-read*", "file-write*", "file-ioctl"],
            vec![lit_filter("/dev/ptmx")],
        );
    }

    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    let body = b.t.finish();
    let mut used: Vec<Param> = Vec::new();
    for piece in body.split("(param \"").skip(1) {
        let name = piece.split('"').next().unwrap_or_default();
        if let Some(p) = Param::from_name(name)
            && !used.contains(&p)
        {
            used.push(p);
        }
    }
    used.sort();
    let names: Vec<String> = used.iter().map(Param::name).collect();
    // The proxy environment, as on Linux: the proxy ports are on loopback on both.
    let env: Vec<(String, String)> = if policy.network.mode() == NetworkMode::Filtered {
        let none = crate::backend::linux::RulesetRef {
            path: String::new(),
            sha256: String::new(),
        };
        crate::backend::linux::egress(&policy.network, none)
            .env
            .into_iter()
            .filter(|(k, v)| !k.contains(char::is_whitespace) && !v.contains(char::is_whitespace))
            .collect()
    } else {
        Vec::new()
    };
    let env_line: String = env.iter().map(|(k, v)| format!(" {k}={v}")).collect();
    let names: String = names.iter().map(|n| format!(" {n}")).collect();
    let text = format!(
        "{}{}\n{}{}\n;; Generated by greywall {}; apply with sandbox-exec -f FILE -D NAME=VALUE... (see docs/platforms.md).\n{body}",
        params::HEADER,
        names,
        ENV_HEADER,
        env_line,
        env!("CARGO_PKG_VERSION"),
    );
    Ok(Profile {
        text,
        params: used,
        env,
    })
}

fn network(b: &mut Builder<'_>) {
    let net = &b.policy.network;
    match net.mode() {
        NetworkMode::Relaxed => {
            b.t.comment("Relaxed network mode: the host network, unfiltered.");
            b.t.allow(&["network*"], vec![]);
        }
        NetworkMode::Filtered => {
            b.t.comment("Egress only through greywall's proxy ports on loopback (HTTP, SOCKS5).");
            let mut ports: BTreeSet<u16> = BTreeSet::new();
            ports.insert(net.http_proxy_port.value);
            ports.insert(net.socks_proxy_port.value);
            let f: Vec<Filter> = ports
                .iter()
                .map(|p| {
                    Filter::new(
                        "remote",
                        vec![
                            Arg::Sym("tcp"),
                            Arg::Str(Str::lit(format!("localhost:{p}"))),
                        ],
                    )
                })
                .collect();
            b.t.allow(&["network-outbound"], f);
        }
        NetworkMode::Isolated => {
            b.t.comment("No network: no allowed domains.");
        }
    }
    let local_ip = |which: &'static str| {
        Filter::new(
            which,
            vec![Arg::Sym("ip"), Arg::Str(Str::lit("localhost:*"))],
        )
    };
    if net.allow_local_binding.value {
        b.t.comment("allowLocalBinding: listen on loopback.");
        b.t.allow(
            &["network-bind", "network-inbound"],
            vec![local_ip("local")],
        );
    }
    if net.local_outbound() {
        b.t.comment("allowLocalOutbound: connect to loopback services.");
        b.t.allow(&["network-outbound"], vec![local_ip("remote")]);
    }
    if net.allow_all_unix_sockets.value {
        b.t.comment("allowAllUnixSockets.");
        b.t.allow(&["network*"], vec![sub_filter("/")]);
    } else {
        let entries = net.allow_unix_sockets.clone();
        let socks = b.list("network.allowUnixSockets", &entries);
        if !socks.is_empty() {
            b.t.comment("allowUnixSockets: connect to and bind these socket paths.");
        }
        b.t.allow_some(&["network*"], socks);
    }
    b.t.comment(
        "greywall-proxyd's socket directory: never reachable, readable or writable inside.",
    );
    b.t.deny(
        &["network*", "file-read*", "file-write*"],
        vec![Filter::regex(Str::lit(PROXYD_DIR_RE))],
    );
    b.t.blank();
}
