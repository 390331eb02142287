//! Greywall's seccomp filter, compiled ahead of time to a classic-BPF program.
//!
//! The filter is the same for every policy (only [`SeccompOptions`] change it) and depends on
//! the architecture alone, so it is built here, golden-tested, stored in the launch plan as
//! bytes ([`to_bytes`]) and loaded by the launcher without any work at launch.
//!
//! Shape of the program, in order:
//!
//! 1. `seccomp_data.arch` must be the expected `AUDIT_ARCH_*`, otherwise the process is killed.
//!    This shuts out the i386 ABI (`int 0x80`) of an x86_64 process, which has its own numbers.
//! 2. On x86_64, a syscall number with the x32 bit (`0x40000000`) set kills the process: the x32
//!    ABI reuses the 64-bit arch value with different numbers.
//! 3. A binary search (`jge`) on the syscall number over runs of numbers that decide alike
//!    (every number no rule names is allowed; `io_uring_setup` up to `fspick` is one run),
//!    each side of the search jumping straight to the one shared copy of its decision:
//!    - argument filters: `ioctl(TIOCSTI | TIOCLINUX)`, `clone` and `unshare` creating a
//!      namespace fail with `EPERM`; `clone3` fails with `ENOSYS` so that libc falls back to
//!      `clone`, whose flags a filter can read;
//!    - syscalls blocked outright ([`blocked_syscalls`]) fail with `EPERM`;
//!    - everything else is allowed.
//!
//! Every path except those of `ioctl`, `clone` and `unshare` reads only `nr` and `arch`, so the
//! kernel's constant-action cache (Linux 5.11+) marks all other allowed syscalls as always
//! allowed and never runs the filter for them. Loading costs the kernel once per instruction
//! (it verifies the program, translates it and compiles it to machine code) and once per
//! syscall number (it emulates the program for each to build that cache), so the program is
//! kept short both ways: every path is about ten instructions, the whole create-deny program
//! 107 on x86_64. Loading it in a forked child, median of 400 interleaved loads on the 2-vCPU
//! reference VM (2026-11-24): about 100 µs for the previous shape (251 instructions: groups
//! of `jeq` at the leaves, each followed by its own return), about 65 µs for this one; a chain
//! of `jeq` had taken about 220 µs.
//!
//! Plans with create-deny rules load [`build_notify`] instead: the same decisions, plus
//! `SECCOMP_RET_USER_NOTIF` for every syscall that creates a directory entry or writes a file
//! by its path (an `open` with write intent, `truncate`), which the launcher's supervisor then
//! checks against the rules. A read-only `open` never leaves the kernel.
//!
//! [`evaluate`] interprets a program for one syscall (tests, docs, `greywall check`);
//! [`disassemble`] renders one for humans and golden files.

use std::fmt::Write as _;

/// `AUDIT_ARCH_X86_64`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_AARCH64`: `EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

/// Kill the whole process (Linux 4.14+).
pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
/// Fail the syscall with the errno in the low 16 bits.
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// Hand the syscall to the supervisor listening on the filter's notification descriptor
/// (Linux 5.0+).
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7FC0_0000;
/// Run the syscall.
pub const SECCOMP_RET_ALLOW: u32 = 0x7FFF_0000;
const SECCOMP_RET_ACTION_FULL: u32 = 0xFFFF_0000;
const SECCOMP_RET_DATA: u32 = 0x0000_FFFF;
/// The kernel caps the errno of `SECCOMP_RET_ERRNO` at `MAX_ERRNO`.
const MAX_ERRNO: u32 = 4095;

/// Errno of every denial.
pub const EPERM: u16 = 1;
/// Errno of `clone3`, so that callers fall back to `clone`.
pub const ENOSYS: u16 = 38;

/// The kernel's limit on the length of a classic-BPF program.
pub const BPF_MAXINSNS: usize = 4096;

/// Set in every x32 syscall number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// The classic-BPF instructions this module emits.
/// `BPF_LD | BPF_W | BPF_ABS`: `A = seccomp_data[k..k + 4]`.
const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`: `pc += (A == k) ? jt : jf`.
const JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JSET | BPF_K`: `pc += (A & k) != 0 ? jt : jf`.
const JSET_K: u16 = 0x45;
/// `BPF_JMP | BPF_JGE | BPF_K`: `pc += (A >= k) ? jt : jf`.
const JGE_K: u16 = 0x35;
/// `BPF_JMP | BPF_JA`: `pc += k`.
const JA: u16 = 0x05;
/// `BPF_RET | BPF_K`: return `k`.
const RET_K: u16 = 0x06;

// Offsets in `struct seccomp_data` (both architectures are little-endian).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_IP: u32 = 8;
const OFF_ARGS: u32 = 16;
const SECCOMP_DATA_LEN: u32 = 64;

/// Offset of the low 32 bits of argument `i`.
const fn arg_lo(i: u32) -> u32 {
    OFF_ARGS + 8 * i
}

// ioctl commands refused: both inject input into a terminal.
/// Push a byte into a terminal's input queue.
const TIOCSTI: u32 = 0x5412;
/// Linux console multiplexer (selection paste among others).
const TIOCLINUX: u32 = 0x541C;

// Namespace flags of `clone` and `unshare`.
const CLONE_NEWTIME: u32 = 0x0000_0080;
const CLONE_NEWNS: u32 = 0x0002_0000;
const CLONE_NEWCGROUP: u32 = 0x0200_0000;
const CLONE_NEWUTS: u32 = 0x0400_0000;
const CLONE_NEWIPC: u32 = 0x0800_0000;
const CLONE_NEWUSER: u32 = 0x1000_0000;
const CLONE_NEWPID: u32 = 0x2000_0000;
const CLONE_NEWNET: u32 = 0x4000_0000;

/// Namespaces `clone` must not create. `CLONE_NEWTIME` is left out: in `clone` that bit is part
/// of the exit signal (`CSIGNAL`) and the kernel accepts the flag only from `unshare` and
/// `clone3`.
const CLONE_NAMESPACES: u32 = CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET;
/// Namespaces `unshare` must not create.
const UNSHARE_NAMESPACES: u32 = CLONE_NAMESPACES | CLONE_NEWTIME;

const CLONE_FLAG_NAMES: &[(u32, &str)] = &[
    (CLONE_NEWTIME, "CLONE_NEWTIME"),
    (CLONE_NEWNS, "CLONE_NEWNS"),
    (CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    (CLONE_NEWUTS, "CLONE_NEWUTS"),
    (CLONE_NEWIPC, "CLONE_NEWIPC"),
    (CLONE_NEWUSER, "CLONE_NEWUSER"),
    (CLONE_NEWPID, "CLONE_NEWPID"),
    (CLONE_NEWNET, "CLONE_NEWNET"),
];

/// A CPU architecture the filter can be compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// Every supported architecture.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture this binary was compiled for, if it is supported.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch`.
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => AUDIT_ARCH_X86_64,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }

    /// The architecture of an `AUDIT_ARCH_*` value.
    pub fn from_audit_arch(value: u32) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.audit_arch() == value)
    }

    /// The name used by Rust's `target_arch` and by golden files.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    fn audit_arch_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "AUDIT_ARCH_X86_64",
            Arch::Aarch64 => "AUDIT_ARCH_AARCH64",
        }
    }
}

/// One instruction of a classic-BPF program, laid out as the kernel's `struct sock_filter`
/// (the launcher hands a slice of these to the kernel as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Policy-dependent switches of the filter. The default is the strictest filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeccompOptions {
    /// Allow `ptrace`, `process_vm_readv` and `process_vm_writev` (debuggers, `strace`). Tracing
    /// stays limited to processes inside the sandbox by Landlock's ptrace scoping.
    pub allow_ptrace: bool,
}

/// What the filter does to one syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Errno(u16),
    /// Ask the supervisor (`SECCOMP_RET_USER_NOTIF`).
    Notify,
    KillProcess,
}

/// A syscall and its number on each architecture (`None`: the architecture has no such call).
#[derive(Debug, Clone, Copy)]
struct Sys {
    name: &'static str,
    x86_64: Option<i32>,
    aarch64: Option<i32>,
}

impl Sys {
    fn nr(&self, arch: Arch) -> Option<i32> {
        match arch {
            Arch::X86_64 => self.x86_64,
            Arch::Aarch64 => self.aarch64,
        }
    }
}

/// A syscall both architectures have.
const fn both(name: &'static str, x86_64: i32, aarch64: i32) -> Sys {
    Sys {
        name,
        x86_64: Some(x86_64),
        aarch64: Some(aarch64),
    }
}

/// A syscall with the same number everywhere (numbers from 424 on are shared by all
/// architectures).
const fn common(name: &'static str, nr: i32) -> Sys {
    both(name, nr, nr)
}

/// A syscall only x86_64 has (aarch64 uses the generic table, without legacy calls).
const fn x86_64_only(name: &'static str, nr: i32) -> Sys {
    Sys {
        name,
        x86_64: Some(nr),
        aarch64: None,
    }
}

// Syscalls with argument filters.
const IOCTL: Sys = both("ioctl", 16, 29);
const CLONE: Sys = both("clone", 56, 220);
const UNSHARE: Sys = both("unshare", 272, 97);
const CLONE3: Sys = common("clone3", 435);

// Syscalls that create a directory entry or write a file by its path, for the notify filter
// ([`build_notify`]).
const OPENAT: Sys = both("openat", 257, 56);
const OPEN: Sys = x86_64_only("open", 2);
/// `O_CREAT` on both architectures (`asm-generic/fcntl.h`, which x86_64 uses too).
pub const O_CREAT: u32 = 0x40;
/// `O_WRONLY` and `O_RDWR`, the write bits of `O_ACCMODE` (both architectures).
pub const O_WRONLY: u32 = 0x1;
pub const O_RDWR: u32 = 0x2;
/// `O_TRUNC` on both architectures: truncates an existing file even when opened read-only.
pub const O_TRUNC: u32 = 0x200;
/// The flags of an `open` the supervisor is asked about: it creates an entry or writes
/// (`O_TMPFILE` always comes with `O_WRONLY` or `O_RDWR`).
pub const O_WRITE_INTENT: u32 = O_CREAT | O_WRONLY | O_RDWR | O_TRUNC;

/// Syscalls the notify filter hands to the supervisor whatever their arguments: each creates
/// a directory entry (or, for `openat2`, may, or may open for writing: its flags are in
/// memory, out of the filter's reach), or writes a file by its path (`truncate`).
const SUPERVISED: &[Sys] = &[
    x86_64_only("creat", 85),
    common("openat2", 437),
    x86_64_only("mkdir", 83),
    both("mkdirat", 258, 34),
    x86_64_only("mknod", 133),
    both("mknodat", 259, 33),
    x86_64_only("symlink", 88),
    both("symlinkat", 266, 36),
    x86_64_only("link", 86),
    both("linkat", 265, 37),
    x86_64_only("rename", 82),
    both("renameat", 264, 38),
    both("renameat2", 316, 276),
    both("truncate", 76, 45),
];

/// What `allow_ptrace` unblocks.
const PTRACE_FAMILY: &[&str] = &["ptrace", "process_vm_readv", "process_vm_writev"];

/// Syscalls that fail with `EPERM` whatever their arguments, in program order. Numbers are from
/// the kernel's `arch/x86/entry/syscalls/syscall_64.tbl` and `include/uapi/asm-generic/unistd.h`
/// (as mirrored by the `libc` crate).
const BLOCKED: &[Sys] = &[
    // Greywall's list (`linux_seccomp.go`), in its order.
    both("ptrace", 101, 117),
    both("process_vm_readv", 310, 270),
    both("process_vm_writev", 311, 271),
    both("keyctl", 250, 219),
    both("add_key", 248, 217),
    both("request_key", 249, 218),
    both("personality", 135, 92),
    both("userfaultfd", 323, 282),
    both("perf_event_open", 298, 241),
    both("bpf", 321, 280),
    both("kexec_load", 246, 104),
    both("kexec_file_load", 320, 294),
    both("reboot", 169, 142),
    both("syslog", 103, 116),
    both("acct", 163, 89),
    both("mount", 165, 40),
    both("umount2", 166, 39),
    both("pivot_root", 155, 41),
    both("swapon", 167, 224),
    both("swapoff", 168, 225),
    both("sethostname", 170, 161),
    both("setdomainname", 171, 162),
    both("init_module", 175, 105),
    both("finit_module", 313, 273),
    both("delete_module", 176, 106),
    x86_64_only("ioperm", 173),
    x86_64_only("iopl", 172),
    // Namespaces and mounts: joining namespaces, changing root, the new mount API.
    both("setns", 308, 268),
    both("chroot", 161, 51),
    common("open_tree", 428),
    common("move_mount", 429),
    common("fsopen", 430),
    common("fsconfig", 431),
    common("fsmount", 432),
    common("fspick", 433),
    common("mount_setattr", 442),
    common("open_tree_attr", 467),
    // io_uring performs its operations without passing through this filter.
    common("io_uring_setup", 425),
    common("io_uring_enter", 426),
    common("io_uring_register", 427),
    // File handles open files by inode, around every path-based check.
    both("name_to_handle_at", 303, 264),
    both("open_by_handle_at", 304, 265),
    // Reaching into other processes.
    common("pidfd_getfd", 438),
    both("kcmp", 312, 272),
    common("process_madvise", 440),
    both("migrate_pages", 256, 238),
    both("move_pages", 279, 239),
    // System-wide state: clocks, quotas, terminals, filesystem-wide monitoring.
    both("clock_settime", 227, 112),
    both("settimeofday", 164, 170),
    both("adjtimex", 159, 171),
    both("clock_adjtime", 305, 266),
    both("quotactl", 179, 60),
    common("quotactl_fd", 443),
    both("vhangup", 153, 58),
    both("fanotify_init", 300, 262),
    both("lookup_dcookie", 212, 18),
    both("nfsservctl", 180, 42),
    // x86_64 legacy calls (absent from aarch64's generic table).
    x86_64_only("modify_ldt", 154),
    x86_64_only("uselib", 134),
    x86_64_only("_sysctl", 156),
    x86_64_only("create_module", 174),
    x86_64_only("get_kernel_syms", 177),
    x86_64_only("query_module", 178),
];

/// Name and number of each syscall blocked outright (`EPERM` whatever the arguments) by the
/// default filter, in program order.
pub fn blocked_syscalls(arch: Arch) -> Vec<(&'static str, i32)> {
    blocked_syscalls_with(arch, &SeccompOptions::default())
}

/// [`blocked_syscalls`] for a filter built with `opts`.
pub fn blocked_syscalls_with(arch: Arch, opts: &SeccompOptions) -> Vec<(&'static str, i32)> {
    blocked(opts)
        .filter_map(|s| Some((s.name, s.nr(arch)?)))
        .collect()
}

/// The syscalls a filter built with `opts` refuses outright.
fn blocked(opts: &SeccompOptions) -> impl Iterator<Item = &'static Sys> + '_ {
    BLOCKED
        .iter()
        .filter(|s| !(opts.allow_ptrace && PTRACE_FAMILY.contains(&s.name)))
}

/// Name, number and rule of each syscall the filter decides on by its arguments (or, for
/// `clone3`, denies with an errno other than `EPERM`), in program order.
pub fn conditional_syscalls(arch: Arch) -> Vec<(&'static str, i32, &'static str)> {
    [
        (IOCTL, "EPERM when the command is TIOCSTI or TIOCLINUX"),
        (
            CLONE,
            "EPERM when the flags create a namespace (CLONE_NEW*); threads and fork are allowed",
        ),
        (
            UNSHARE,
            "EPERM when the flags create a namespace (CLONE_NEW*, CLONE_NEWTIME)",
        ),
        (CLONE3, "ENOSYS always, so that libc falls back to clone"),
    ]
    .into_iter()
    .filter_map(|(s, rule)| Some((s.name, s.nr(arch)?, rule)))
    .collect()
}

/// Name and number of each syscall the notify filter hands to the supervisor, in program
/// order; `openat` and `open` only when their flags have one of [`O_WRITE_INTENT`].
pub fn notify_syscalls(arch: Arch) -> Vec<(&'static str, i32)> {
    [OPENAT, OPEN]
        .iter()
        .chain(SUPERVISED)
        .filter_map(|s| Some((s.name, s.nr(arch)?)))
        .collect()
}

/// The name of a syscall number the filters mention.
fn syscall_name(arch: Arch, nr: u32) -> Option<&'static str> {
    [IOCTL, CLONE, UNSHARE, CLONE3, OPENAT, OPEN]
        .iter()
        .chain(BLOCKED)
        .chain(SUPERVISED)
        .find(|s| s.nr(arch).is_some_and(|n| n as u32 == nr))
        .map(|s| s.name)
}

const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

const fn ld(offset: u32) -> SockFilter {
    stmt(LD_W_ABS, offset)
}

const fn ret(k: u32) -> SockFilter {
    stmt(RET_K, k)
}

const fn ret_errno(errno: u16) -> SockFilter {
    ret(SECCOMP_RET_ERRNO | errno as u32)
}

/// The instructions that decide one syscall: they run when `nr` matches, and every path
/// through them ends in a return.
struct Case {
    nr: u32,
    body: Vec<SockFilter>,
}

/// What a run of syscall numbers gets: one return, or the body of the one case it holds
/// (an argument filter), by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Return(u32),
    Body(usize),
}

/// The numbers from `lo` up to the next segment's `lo` (the last one: every number above).
#[derive(Debug, Clone, Copy)]
struct Segment {
    lo: u32,
    outcome: Outcome,
}

/// Cuts the number line at the cases (sorted by number, no duplicates): a number no case
/// names is allowed, and neighbouring numbers with the same single return share one segment
/// (`io_uring_setup` up to `fspick`: one segment that returns `EPERM`).
fn segments(cases: &[Case]) -> Vec<Segment> {
    let mut out = vec![Segment {
        lo: 0,
        outcome: Outcome::Return(SECCOMP_RET_ALLOW),
    }];
    let mut push = |lo: u32, outcome: Outcome| {
        if out.last().is_some_and(|s| s.lo == lo) {
            out.pop();
        }
        if out.last().is_some_and(|s| s.outcome == outcome) {
            return;
        }
        out.push(Segment { lo, outcome });
    };
    for (i, c) in cases.iter().enumerate() {
        let outcome = match c.body.as_slice() {
            [only] if only.code == RET_K => Outcome::Return(only.k),
            _ => Outcome::Body(i),
        };
        push(c.nr, outcome);
        if let Some(next) = c.nr.checked_add(1) {
            push(next, Outcome::Return(SECCOMP_RET_ALLOW));
        }
    }
    out
}

/// Where a conditional jump goes before the block is laid out.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Skip this many instructions of the tree.
    Skip(usize),
    /// The code deciding this outcome, after the tree.
    To(Outcome),
}

/// A `jge` of the search tree.
struct Node {
    pivot: u32,
    above: Target,
    below: Target,
}

/// The search tree over `segs` (at least two): each node tests `nr >= pivot`, its two sides
/// either the subtree that follows or, for a single segment, that segment's outcome directly.
fn tree(segs: &[Segment]) -> Vec<Node> {
    let (low, high) = segs.split_at(segs.len() / 2);
    let side = |half: &[Segment]| match half {
        [one] => (Target::To(one.outcome), Vec::new()),
        _ => (Target::Skip(0), tree(half)),
    };
    let (above, high_nodes) = side(high);
    let (below, low_nodes) = side(low);
    let below = match below {
        Target::Skip(_) => Target::Skip(high_nodes.len()),
        to => to,
    };
    let mut out = vec![Node {
        pivot: high[0].lo,
        above,
        below,
    }];
    out.extend(high_nodes);
    out.extend(low_nodes);
    out
}

/// One block: the tree over `segs`, then the code of every outcome it reaches, each once;
/// `None` when a jump would have to skip more than the 255 instructions it can.
fn block(segs: &[Segment], cases: &[Case]) -> Option<Vec<SockFilter>> {
    let nodes = if segs.len() > 1 {
        tree(segs)
    } else {
        Vec::new()
    };
    // Argument filters first, then the returns, `ALLOW` last (the most common outcome falls
    // through to the end of the program).
    let mut outcomes: Vec<Outcome> = Vec::new();
    for s in segs {
        if !outcomes.contains(&s.outcome) {
            outcomes.push(s.outcome);
        }
    }
    outcomes.sort_by_key(|o| match o {
        Outcome::Body(i) => (0, *i as u64),
        Outcome::Return(SECCOMP_RET_ALLOW) => (2, 0),
        Outcome::Return(k) => (1, u64::from(*k)),
    });
    let mut code: Vec<SockFilter> = Vec::new();
    let mut at: Vec<(Outcome, usize)> = Vec::new();
    for o in outcomes {
        at.push((o, nodes.len() + code.len()));
        match o {
            Outcome::Return(k) => code.push(ret(k)),
            Outcome::Body(i) => code.extend_from_slice(&cases[i].body),
        }
    }
    let offset = |pc: usize, t: Target| -> Option<u8> {
        let to = match t {
            Target::Skip(n) => pc + 1 + n,
            Target::To(o) => at.iter().find(|(x, _)| *x == o)?.1,
        };
        u8::try_from(to - pc - 1).ok()
    };
    let mut out: Vec<SockFilter> = nodes
        .iter()
        .enumerate()
        .map(|(pc, n)| {
            Some(jump(
                JGE_K,
                n.pivot,
                offset(pc, n.above)?,
                offset(pc, n.below)?,
            ))
        })
        .collect::<Option<_>>()?;
    out.extend(code);
    Some(out)
}

/// Emits the decision for the syscall number in the accumulator: `cases` sorted by number,
/// no duplicates; a number no case names is allowed. Why this shape: the module's
/// documentation.
fn search(cases: &[Case]) -> Vec<SockFilter> {
    split(&segments(cases), cases)
}

/// One block for `segs` if its jumps fit, else a `jge` between blocks for the two halves.
fn split(segs: &[Segment], cases: &[Case]) -> Vec<SockFilter> {
    if let Some(one) = block(segs, cases) {
        return one;
    }
    let (low, high) = segs.split_at(segs.len() / 2);
    let (low, high) = (split(low, cases), split(high, cases));
    let mut out = Vec::with_capacity(low.len() + high.len() + 2);
    let pivot = segs[segs.len() / 2].lo;
    match u8::try_from(high.len()) {
        // nr >= pivot: fall into the high half; below: jump over it.
        Ok(skip) => out.push(jump(JGE_K, pivot, 0, skip)),
        Err(_) => {
            out.push(jump(JGE_K, pivot, 1, 0));
            out.push(stmt(JA, high.len() as u32));
        }
    }
    out.extend(high);
    out.extend(low);
    out
}

/// The architecture checks every program starts with; they leave `nr` in the accumulator.
fn prologue(arch: Arch) -> Vec<SockFilter> {
    let mut prog = vec![
        ld(OFF_ARCH),
        jump(JEQ_K, arch.audit_arch(), 1, 0),
        ret(SECCOMP_RET_KILL_PROCESS),
        ld(OFF_NR),
    ];
    if arch == Arch::X86_64 {
        prog.push(jump(JSET_K, X32_SYSCALL_BIT, 0, 1));
        prog.push(ret(SECCOMP_RET_KILL_PROCESS));
    }
    prog
}

/// The cases of the main filter: argument filters, then syscalls blocked outright.
fn main_cases(opts: &SeccompOptions) -> Vec<(Sys, Vec<SockFilter>)> {
    let mut cases = vec![
        // ioctl(fd, cmd, ...): the kernel takes `cmd` as an unsigned int.
        (
            IOCTL,
            vec![
                ld(arg_lo(1)),
                jump(JEQ_K, TIOCSTI, 2, 0),
                jump(JEQ_K, TIOCLINUX, 1, 0),
                ret(SECCOMP_RET_ALLOW),
                ret_errno(EPERM),
            ],
        ),
        // clone(flags, ...): flags come first on both architectures and the kernel reads only
        // their low 32 bits.
        (
            CLONE,
            if_flags(
                0,
                CLONE_NAMESPACES,
                ret_errno(EPERM),
                ret(SECCOMP_RET_ALLOW),
            ),
        ),
        // unshare(flags): a bit in the high 32 bits makes the kernel fail with EINVAL.
        (
            UNSHARE,
            if_flags(
                0,
                UNSHARE_NAMESPACES,
                ret_errno(EPERM),
                ret(SECCOMP_RET_ALLOW),
            ),
        ),
        // clone3 passes its flags in memory, out of the filter's reach.
        (CLONE3, vec![ret_errno(ENOSYS)]),
    ];
    cases.extend(blocked(opts).map(|s| (*s, vec![ret_errno(EPERM)])));
    cases
}

/// `ld args[arg]` (low 32 bits), then `then` when any bit of `mask` is set, else `otherwise`.
fn if_flags(arg: u32, mask: u32, then: SockFilter, otherwise: SockFilter) -> Vec<SockFilter> {
    vec![ld(arg_lo(arg)), jump(JSET_K, mask, 0, 1), then, otherwise]
}

/// The cases that hand creating and writing syscalls to the supervisor.
fn notify_cases() -> Vec<(Sys, Vec<SockFilter>)> {
    // openat(dirfd, path, flags, mode), open(path, flags, mode): the kernel takes the flags as
    // an int, so their low 32 bits. A read-only open (no create, write or truncate bit) is
    // allowed here, without a round trip.
    let mut cases: Vec<(Sys, Vec<SockFilter>)> = [(OPENAT, 2), (OPEN, 1)]
        .into_iter()
        .map(|(sys, flags_arg)| {
            (
                sys,
                if_flags(
                    flags_arg,
                    O_WRITE_INTENT,
                    ret(SECCOMP_RET_USER_NOTIF),
                    ret(SECCOMP_RET_ALLOW),
                ),
            )
        })
        .collect();
    cases.extend(
        SUPERVISED
            .iter()
            .map(|s| (*s, vec![ret(SECCOMP_RET_USER_NOTIF)])),
    );
    cases
}

/// A whole program: the prologue, then a search over `cases` for `arch` (the first case for a
/// number wins).
fn assemble(arch: Arch, cases: Vec<(Sys, Vec<SockFilter>)>) -> Vec<SockFilter> {
    let mut numbered: Vec<Case> = Vec::with_capacity(cases.len());
    for (sys, body) in cases {
        if let Some(nr) = sys.nr(arch)
            && !numbered.iter().any(|c| c.nr == nr as u32)
        {
            numbered.push(Case {
                nr: nr as u32,
                body,
            });
        }
    }
    numbered.sort_by_key(|c| c.nr);
    let mut prog = prologue(arch);
    prog.extend(search(&numbered));
    prog
}

/// Compiles the filter for `arch`. The output depends on nothing else than the arguments.
pub fn build(arch: Arch, opts: &SeccompOptions) -> Vec<SockFilter> {
    assemble(arch, main_cases(opts))
}

/// Compiles the filter a plan with create-deny rules loads instead of [`build`]'s: the same
/// decisions, plus `SECCOMP_RET_USER_NOTIF` for every syscall that creates a directory entry
/// or writes a file by its path (`openat` and `open` only with one of [`O_WRITE_INTENT`] in
/// their flags: `O_CREAT`, `O_WRONLY`, `O_RDWR`, `O_TRUNC`). One program rather than two
/// stacked filters: the kernel's load cost (verification, JIT and the constant-action cache,
/// which emulates the program for every syscall number) is paid once.
///
/// No syscall is both blocked and supervised; were one ever both, the main filter's decision
/// comes first and wins, as the strictest action of two stacked filters would.
pub fn build_notify(arch: Arch, opts: &SeccompOptions) -> Vec<SockFilter> {
    let mut cases = main_cases(opts);
    cases.extend(notify_cases());
    assemble(arch, cases)
}

/// The program as the kernel's `struct sock_filter` array (8 bytes each, little-endian).
pub fn to_bytes(prog: &[SockFilter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for f in prog {
        out.extend_from_slice(&f.code.to_le_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_le_bytes());
    }
    out
}

/// The inverse of [`to_bytes`]; `None` if the length is not a multiple of 8 or the program is
/// longer than [`BPF_MAXINSNS`].
pub fn from_bytes(bytes: &[u8]) -> Option<Vec<SockFilter>> {
    if !bytes.len().is_multiple_of(8) || bytes.len() / 8 > BPF_MAXINSNS {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| SockFilter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// The 32-bit word at `offset` of `struct seccomp_data` (little-endian, `ip` = 0), or `None`
/// where the kernel would reject the load.
fn data_word(offset: u32, arch_value: u32, nr: i32, args: &[u64; 6]) -> Option<u32> {
    if !offset.is_multiple_of(4) || offset >= SECCOMP_DATA_LEN {
        return None;
    }
    Some(match offset {
        OFF_NR => nr as u32,
        OFF_ARCH => arch_value,
        o if o < OFF_ARGS => 0,
        o => {
            let arg = args[((o - OFF_ARGS) / 8) as usize];
            if o.is_multiple_of(8) {
                arg as u32
            } else {
                (arg >> 32) as u32
            }
        }
    })
}

fn verdict(k: u32) -> Verdict {
    match k & SECCOMP_RET_ACTION_FULL {
        SECCOMP_RET_ALLOW => Verdict::Allow,
        SECCOMP_RET_ERRNO => Verdict::Errno((k & SECCOMP_RET_DATA).min(MAX_ERRNO) as u16),
        SECCOMP_RET_USER_NOTIF => Verdict::Notify,
        _ => Verdict::KillProcess,
    }
}

/// What `prog` does to syscall `nr` with `args` when `seccomp_data.arch` is `arch_value`.
///
/// Interprets the instructions [`build`] and [`build_notify`] emit (`ld [k]`, `jeq #k`,
/// `jge #k`, `jset #k`, `ja`, `ret #k`). Any other instruction, a load the kernel would reject, a jump or a
/// fall past the end, and any return action other than allow, errno or user notification give
/// [`Verdict::KillProcess`].
pub fn evaluate(prog: &[SockFilter], arch_value: u32, nr: i32, args: [u64; 6]) -> Verdict {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    // Every jump goes forward, so the loop ends; the bound is a second guarantee.
    for _ in 0..=prog.len() {
        let Some(ins) = prog.get(pc) else {
            return Verdict::KillProcess;
        };
        pc += 1;
        match ins.code {
            LD_W_ABS => match data_word(ins.k, arch_value, nr, &args) {
                Some(word) => a = word,
                None => return Verdict::KillProcess,
            },
            JEQ_K | JSET_K | JGE_K => {
                let taken = match ins.code {
                    JEQ_K => a == ins.k,
                    JGE_K => a >= ins.k,
                    _ => a & ins.k != 0,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            JA => pc = pc.saturating_add(ins.k as usize),
            RET_K => return verdict(ins.k),
            _ => return Verdict::KillProcess,
        }
    }
    Verdict::KillProcess
}

/// What the accumulator holds at an instruction, as far as the disassembler can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acc {
    Unknown,
    Word(u32),
}

/// Facts true on every path reaching an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Facts {
    acc: Acc,
    arch: Option<Arch>,
    /// The syscall numbers that can reach it: `lo <= nr < hi`.
    nr: (u32, u64),
}

/// Every number a syscall can have.
const ANY_NR: (u32, u64) = (0, 1 << 32);

impl Facts {
    fn merge(self, other: Facts) -> Facts {
        Facts {
            acc: if self.acc == other.acc {
                self.acc
            } else {
                Acc::Unknown
            },
            arch: self.arch.filter(|a| other.arch == Some(*a)),
            nr: (self.nr.0.min(other.nr.0), self.nr.1.max(other.nr.1)),
        }
    }

    /// The syscall number, when only one can reach the instruction.
    fn single_nr(self) -> Option<u32> {
        (u64::from(self.nr.0) + 1 == self.nr.1).then_some(self.nr.0)
    }
}

/// What a side of the search tree decides when it leads straight to a return other than
/// `ALLOW` or to an argument filter: `101 ptrace: ERRNO(EPERM)`,
/// `425-434 io_uring_setup..fspick: ERRNO(EPERM)`, `16 ioctl: by its arguments`.
fn decided(prog: &[SockFilter], to: usize, side: Facts) -> Option<String> {
    let target = prog.get(to)?;
    let verdict = match target.code {
        RET_K if target.k != SECCOMP_RET_ALLOW => return_name(target.k),
        LD_W_ABS if target.k >= OFF_ARGS => "by its arguments".to_string(),
        _ => return None,
    };
    let (lo, hi) = side.nr;
    let last = u32::try_from(hi.checked_sub(1)?).ok()?;
    let name = |nr: u32| {
        side.arch
            .and_then(|a| syscall_name(a, nr))
            .map_or_else(|| format!("#{nr}"), str::to_string)
    };
    Some(if lo == last {
        format!("{lo} {}: {verdict}", name(lo))
    } else {
        format!("{lo}-{last} {}..{}: {verdict}", name(lo), name(last))
    })
}

/// The facts after a conditional jump: taken, not taken.
fn branch(ins: SockFilter, f: Facts) -> (Facts, Facts) {
    let (mut taken, mut not_taken) = (f, f);
    match (ins.code, f.acc) {
        (JEQ_K, Acc::Word(OFF_ARCH)) => taken.arch = Arch::from_audit_arch(ins.k),
        (JEQ_K, Acc::Word(OFF_NR)) => taken.nr = (ins.k, u64::from(ins.k) + 1),
        (JGE_K, Acc::Word(OFF_NR)) => {
            taken.nr.0 = f.nr.0.max(ins.k);
            not_taken.nr.1 = f.nr.1.min(u64::from(ins.k));
        }
        _ => {}
    }
    (taken, not_taken)
}

/// Forward data flow over `prog` (jumps only go forward, so one pass is enough).
fn analyze(prog: &[SockFilter]) -> Vec<Option<Facts>> {
    let mut facts: Vec<Option<Facts>> = vec![None; prog.len()];
    if let Some(first) = facts.first_mut() {
        *first = Some(Facts {
            acc: Acc::Unknown,
            arch: None,
            nr: ANY_NR,
        });
    }
    let flow = |facts: &mut Vec<Option<Facts>>, to: usize, f: Facts| {
        if let Some(slot) = facts.get_mut(to) {
            *slot = Some(slot.map_or(f, |old| old.merge(f)));
        }
    };
    for pc in 0..prog.len() {
        let (Some(f), ins) = (facts[pc], prog[pc]) else {
            continue;
        };
        match ins.code {
            LD_W_ABS => flow(
                &mut facts,
                pc + 1,
                Facts {
                    acc: Acc::Word(ins.k),
                    ..f
                },
            ),
            JA => flow(&mut facts, pc + 1 + ins.k as usize, f),
            JEQ_K | JSET_K | JGE_K => {
                let (taken, not_taken) = branch(ins, f);
                flow(&mut facts, pc + 1 + usize::from(ins.jt), taken);
                flow(&mut facts, pc + 1 + usize::from(ins.jf), not_taken);
            }
            _ => {}
        }
    }
    facts
}

fn field_name(offset: u32) -> Option<String> {
    if !offset.is_multiple_of(4) || offset >= SECCOMP_DATA_LEN {
        return None;
    }
    let half = |o: u32| if o.is_multiple_of(8) { "low" } else { "high" };
    Some(match offset {
        OFF_NR => "nr".to_string(),
        OFF_ARCH => "arch".to_string(),
        o if o < OFF_ARGS => format!("instruction_pointer ({})", half(o - OFF_IP)),
        o => format!("args[{}] ({})", (o - OFF_ARGS) / 8, half(o - OFF_ARGS)),
    })
}

fn clone_flags_name(mask: u32) -> String {
    let mut names: Vec<String> = CLONE_FLAG_NAMES
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, name)| (*name).to_string())
        .collect();
    let rest = CLONE_FLAG_NAMES.iter().fold(mask, |m, (bit, _)| m & !bit);
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names.join("|")
}

/// The meaning of the constant of a `jeq`/`jset`, given what the accumulator holds.
fn constant_name(ins: &SockFilter, f: Facts) -> Option<String> {
    let syscall = || Some((f.arch?, f.single_nr()?));
    let named = |s: Sys| syscall().is_some_and(|(arch, nr)| s.nr(arch) == Some(nr as i32));
    match f.acc {
        Acc::Word(OFF_ARCH) => Arch::from_audit_arch(ins.k).map(|a| a.audit_arch_name().into()),
        Acc::Word(OFF_NR) if ins.code == JSET_K && ins.k == X32_SYSCALL_BIT => {
            Some("__X32_SYSCALL_BIT".into())
        }
        Acc::Word(OFF_NR) if ins.code == JEQ_K => syscall_name(f.arch?, ins.k).map(str::to_string),
        Acc::Word(OFF_NR) if ins.code == JGE_K => Some(match syscall_name(f.arch?, ins.k) {
            Some(name) => format!("nr >= {} ({name})", ins.k),
            None => format!("nr >= {}", ins.k),
        }),
        Acc::Word(o) if o == arg_lo(0) && (named(CLONE) || named(UNSHARE)) => {
            Some(clone_flags_name(ins.k))
        }
        Acc::Word(o)
            if ins.code == JSET_K
                && ins.k == O_WRITE_INTENT
                && ((o == arg_lo(2) && named(OPENAT)) || (o == arg_lo(1) && named(OPEN))) =>
        {
            Some("O_WRONLY|O_RDWR|O_CREAT|O_TRUNC".into())
        }
        Acc::Word(o) if o == arg_lo(1) && named(IOCTL) => match ins.k {
            TIOCSTI => Some("TIOCSTI".into()),
            TIOCLINUX => Some("TIOCLINUX".into()),
            _ => None,
        },
        _ => None,
    }
}

fn errno_name(errno: u32) -> String {
    match errno {
        1 => "EPERM".into(),
        38 => "ENOSYS".into(),
        n => n.to_string(),
    }
}

fn return_name(k: u32) -> String {
    match k & SECCOMP_RET_ACTION_FULL {
        SECCOMP_RET_ALLOW => "ALLOW".into(),
        SECCOMP_RET_ERRNO => format!("ERRNO({})", errno_name(k & SECCOMP_RET_DATA)),
        SECCOMP_RET_KILL_PROCESS => "KILL_PROCESS".into(),
        SECCOMP_RET_USER_NOTIF => "USER_NOTIF".into(),
        _ => "unsupported action".into(),
    }
}

/// A human-readable listing, one instruction a line:
/// `0003: jeq #101 jt 0 jf 1  ; ptrace`. Syscall numbers are decimal, other constants
/// hexadecimal; comments name fields, syscalls, flags and actions where the program makes them
/// known (the architecture comes from the program's own `arch` check).
pub fn disassemble(prog: &[SockFilter]) -> String {
    let facts = analyze(prog);
    let mut out = String::new();
    for (pc, (ins, f)) in prog.iter().zip(facts).enumerate() {
        let (text, comment) = match ins.code {
            LD_W_ABS => (format!("ld [{}]", ins.k), field_name(ins.k)),
            JA => (format!("ja +{}", ins.k), None),
            JEQ_K | JSET_K | JGE_K => {
                let op = match ins.code {
                    JEQ_K => "jeq",
                    JGE_K => "jge",
                    _ => "jset",
                };
                let numeric = ins.code == JEQ_K || ins.code == JGE_K;
                let k = if f.is_some_and(|f| f.acc == Acc::Word(OFF_NR)) && numeric {
                    ins.k.to_string()
                } else {
                    format!("{:#x}", ins.k)
                };
                let text = format!("{op} #{k} jt {} jf {}", ins.jt, ins.jf);
                let mut comment = f.and_then(|f| constant_name(ins, f));
                if let (Some(f), Some(c)) = (f, comment.as_mut())
                    && ins.code == JGE_K
                    && f.acc == Acc::Word(OFF_NR)
                {
                    let (taken, not_taken) = branch(*ins, f);
                    for (side, jump) in [(taken, ins.jt), (not_taken, ins.jf)] {
                        if let Some(what) = decided(prog, pc + 1 + usize::from(jump), side) {
                            let _ = write!(c, "; {what}");
                        }
                    }
                }
                (text, comment)
            }
            RET_K => (format!("ret #{:#010x}", ins.k), Some(return_name(ins.k))),
            _ => (
                format!(
                    ".insn code {:#06x} jt {} jf {} k {:#010x}",
                    ins.code, ins.jt, ins.jf, ins.k
                ),
                Some("not emitted by greywall".into()),
            ),
        };
        let comment = match (f, comment) {
            (None, Some(c)) => Some(format!("{c} (unreachable)")),
            (None, None) => Some("unreachable".into()),
            (Some(_), c) => c,
        };
        let _ = match comment {
            Some(c) => writeln!(out, "{pc:04}: {text}  ; {c}"),
            None => writeln!(out, "{pc:04}: {text}"),
        };
    }
    out
}

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
