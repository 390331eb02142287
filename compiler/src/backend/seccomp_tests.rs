//! Tests of the seccomp backend, through the interpreter and the golden disassemblies
//! (`compiler/tests/golden/seccomp/*.txt`; regenerate with [`BLESS_HINT`]).

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

const BLESS_HINT: &str = "GREYWALL_BLESS=1 cargo test -p greywall-compiler --lib seccomp";

const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const SIGCHLD: u64 = 17;
/// glibc's `pthread_create` flags: VM, FS, FILES, SIGHAND, THREAD, SYSVSEM, SETTLS,
/// PARENT_SETTID, CHILD_CLEARTID.
const THREAD_FLAGS: u64 = 0x3d_0f00;
/// `vfork()` and glibc's `posix_spawn` fallback: VM, VFORK, SIGCHLD.
const VFORK_FLAGS: u64 = 0x4111;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SYSVSEM: u64 = 0x4_0000;
const TCGETS: u64 = 0x5401;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541B;

const NAMESPACE_FLAGS: [u32; 7] = [
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
];

/// Greywall's blocked list (`linux_seccomp.go`): 27 on x86_64, 25 on aarch64.
const GREYWALL: [&str; 27] = [
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "keyctl",
    "add_key",
    "request_key",
    "personality",
    "userfaultfd",
    "perf_event_open",
    "bpf",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "syslog",
    "acct",
    "mount",
    "umount2",
    "pivot_root",
    "swapon",
    "swapoff",
    "sethostname",
    "setdomainname",
    "init_module",
    "finit_module",
    "delete_module",
    "ioperm",
    "iopl",
];

fn prog(arch: Arch) -> Vec<SockFilter> {
    build(arch, &SeccompOptions::default())
}

/// The verdict of the default filter for a syscall of `arch`.
fn run(arch: Arch, nr: i32, args: [u64; 6]) -> Verdict {
    evaluate(&prog(arch), arch.audit_arch(), nr, args)
}

fn nr_of(arch: Arch, name: &str) -> i32 {
    [IOCTL, CLONE, UNSHARE, CLONE3]
        .iter()
        .chain(BLOCKED)
        .find(|s| s.name == name)
        .and_then(|s| s.nr(arch))
        .unwrap_or_else(|| panic!("{name} has no number on {}", arch.name()))
}

fn call(arch: Arch, name: &str, args: [u64; 6]) -> Verdict {
    run(arch, nr_of(arch, name), args)
}

fn arg0(v: u64) -> [u64; 6] {
    [v, 0, 0, 0, 0, 0]
}

fn arg1(v: u64) -> [u64; 6] {
    [3, v, 0, 0, 0, 0]
}

const EPERM_V: Verdict = Verdict::Errno(EPERM);

#[test]
fn arch_values() {
    assert_eq!(Arch::X86_64.audit_arch(), 0xC000_003E);
    assert_eq!(Arch::Aarch64.audit_arch(), 0xC000_00B7);
    assert_eq!(Arch::X86_64.name(), "x86_64");
    assert_eq!(Arch::Aarch64.name(), "aarch64");
    for arch in Arch::ALL {
        assert_eq!(Arch::from_audit_arch(arch.audit_arch()), Some(arch));
    }
    assert_eq!(Arch::from_audit_arch(AUDIT_ARCH_I386), None);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(Arch::host(), Some(Arch::X86_64));
    } else if cfg!(target_arch = "aarch64") {
        assert_eq!(Arch::host(), Some(Arch::Aarch64));
    }
}

#[test]
fn greywall_list_is_covered() {
    for arch in Arch::ALL {
        let blocked: Vec<&str> = blocked_syscalls(arch).iter().map(|(n, _)| *n).collect();
        let missing: Vec<&str> = GREYWALL
            .iter()
            .copied()
            .filter(|n| !blocked.contains(n))
            .collect();
        match arch {
            Arch::X86_64 => assert!(missing.is_empty(), "missing {missing:?}"),
            Arch::Aarch64 => assert_eq!(missing, ["ioperm", "iopl"]),
        }
    }
}

#[test]
fn blocked_numbers_are_pinned() {
    // Spot checks against the kernel's tables, for calls whose numbers differ most.
    let x86 = [
        ("ptrace", 101),
        ("personality", 135),
        ("mount", 165),
        ("umount2", 166),
        ("iopl", 172),
        ("ioperm", 173),
        ("bpf", 321),
        ("setns", 308),
        ("chroot", 161),
        ("open_by_handle_at", 304),
        ("lookup_dcookie", 212),
        ("modify_ldt", 154),
        ("_sysctl", 156),
        ("uselib", 134),
        ("query_module", 178),
        ("io_uring_setup", 425),
        ("open_tree_attr", 467),
    ];
    let arm = [
        ("ptrace", 117),
        ("personality", 92),
        ("mount", 40),
        ("umount2", 39),
        ("bpf", 280),
        ("setns", 268),
        ("chroot", 51),
        ("open_by_handle_at", 265),
        ("lookup_dcookie", 18),
        ("nfsservctl", 42),
        ("vhangup", 58),
        ("io_uring_setup", 425),
        ("open_tree_attr", 467),
    ];
    for (arch, expected) in [(Arch::X86_64, &x86[..]), (Arch::Aarch64, &arm[..])] {
        let blocked = blocked_syscalls(arch);
        for (name, nr) in expected {
            assert!(
                blocked.contains(&(name, *nr)),
                "{name} = {nr} not blocked on {}",
                arch.name()
            );
        }
    }
    assert_eq!(nr_of(Arch::X86_64, "clone"), 56);
    assert_eq!(nr_of(Arch::Aarch64, "clone"), 220);
    assert_eq!(nr_of(Arch::X86_64, "unshare"), 272);
    assert_eq!(nr_of(Arch::Aarch64, "unshare"), 97);
    assert_eq!(nr_of(Arch::X86_64, "ioctl"), 16);
    assert_eq!(nr_of(Arch::Aarch64, "ioctl"), 29);
}

#[test]
fn aarch64_has_no_x86_legacy_calls() {
    let names: Vec<&str> = blocked_syscalls(Arch::Aarch64)
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for legacy in [
        "ioperm",
        "iopl",
        "modify_ldt",
        "uselib",
        "_sysctl",
        "create_module",
        "get_kernel_syms",
        "query_module",
    ] {
        assert!(!names.contains(&legacy), "{legacy} on aarch64");
    }
    assert_eq!(blocked_syscalls(Arch::X86_64).len(), 63);
    assert_eq!(blocked_syscalls(Arch::Aarch64).len(), 55);
}

#[test]
fn blocked_lists_have_no_duplicates() {
    for arch in Arch::ALL {
        let blocked = blocked_syscalls(arch);
        let conditional = conditional_syscalls(arch);
        let mut names: Vec<&str> = blocked.iter().map(|(n, _)| *n).collect();
        let mut nrs: Vec<i32> = blocked.iter().map(|(_, nr)| *nr).collect();
        names.extend(conditional.iter().map(|(n, _, _)| *n));
        nrs.extend(conditional.iter().map(|(_, nr, _)| *nr));
        let (n, r) = (names.len(), nrs.len());
        names.sort_unstable();
        names.dedup();
        nrs.sort_unstable();
        nrs.dedup();
        assert_eq!((names.len(), nrs.len()), (n, r), "{}", arch.name());
    }
}

#[test]
fn every_blocked_syscall_is_eperm() {
    for arch in Arch::ALL {
        for (name, nr) in blocked_syscalls(arch) {
            for args in [[0; 6], [u64::MAX; 6], arg0(CLONE_NEWUSER.into())] {
                assert_eq!(run(arch, nr, args), EPERM_V, "{name} on {}", arch.name());
            }
        }
    }
}

#[test]
fn wrong_arch_is_killed() {
    for arch in Arch::ALL {
        let p = prog(arch);
        let other = Arch::ALL.into_iter().find(|a| *a != arch).unwrap();
        for value in [AUDIT_ARCH_I386, other.audit_arch(), 0, u32::MAX] {
            for nr in [0, 1, 59, 221, nr_of(arch, "ptrace")] {
                assert_eq!(
                    evaluate(&p, value, nr, [0; 6]),
                    Verdict::KillProcess,
                    "{} filter, arch {value:#x}, nr {nr}",
                    arch.name()
                );
            }
        }
    }
}

#[test]
fn x32_is_killed_on_x86_64() {
    let x32 = X32_SYSCALL_BIT as i32;
    for nr in [0, 1, 56, 101, 165, 272, 512, 545] {
        assert_eq!(run(Arch::X86_64, x32 | nr, [0; 6]), Verdict::KillProcess);
    }
    // Negative numbers have the bit set too.
    assert_eq!(run(Arch::X86_64, -1, [0; 6]), Verdict::KillProcess);
    // aarch64 has no x32: the kernel fails such numbers with ENOSYS by itself.
    assert_eq!(run(Arch::Aarch64, x32, [0; 6]), Verdict::Allow);
}

#[test]
fn ordinary_syscalls_are_allowed() {
    let x86 = [
        0, 1, 2, 3, 9, 39, 57, 58, 59, 60, 257, 231, 322, 439, 444, 445, 446,
    ];
    let arm = [56, 57, 63, 64, 93, 94, 221, 222, 281, 439, 444, 445, 446];
    for (arch, nrs) in [(Arch::X86_64, &x86[..]), (Arch::Aarch64, &arm[..])] {
        for &nr in nrs {
            for args in [[0; 6], [u64::MAX; 6]] {
                assert_eq!(
                    run(arch, nr, args),
                    Verdict::Allow,
                    "{nr} on {}",
                    arch.name()
                );
            }
        }
        for nr in [1000, 4095, 0x3FFF_FFFF] {
            assert_eq!(run(arch, nr, [0; 6]), Verdict::Allow);
        }
    }
}

#[test]
fn landlock_and_seccomp_stay_allowed() {
    // landlock_create_ruleset, landlock_add_rule, landlock_restrict_self; seccomp.
    for arch in Arch::ALL {
        for nr in [444, 445, 446] {
            assert_eq!(run(arch, nr, [0; 6]), Verdict::Allow);
        }
    }
    assert_eq!(run(Arch::X86_64, 317, [0; 6]), Verdict::Allow);
    assert_eq!(run(Arch::Aarch64, 277, [0; 6]), Verdict::Allow);
}

#[test]
fn clone_without_namespaces_is_allowed() {
    for arch in Arch::ALL {
        for flags in [0, SIGCHLD, THREAD_FLAGS, VFORK_FLAGS, CLONE_FS | SIGCHLD] {
            assert_eq!(
                call(arch, "clone", arg0(flags)),
                Verdict::Allow,
                "{flags:#x}"
            );
        }
        // The kernel reads only the low 32 bits of clone's flags.
        assert_eq!(
            call(arch, "clone", arg0(0xFFFF_FFFF_0000_0000 | SIGCHLD)),
            Verdict::Allow
        );
        // In clone, 0x80 (CLONE_NEWTIME elsewhere) is part of the exit signal.
        assert_eq!(call(arch, "clone", arg0(0x80)), Verdict::Allow);
        // Other arguments do not matter.
        assert_eq!(
            call(
                arch,
                "clone",
                [SIGCHLD, u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX]
            ),
            Verdict::Allow
        );
    }
}

#[test]
fn clone_with_namespaces_is_eperm() {
    for arch in Arch::ALL {
        for flag in NAMESPACE_FLAGS {
            let flag = u64::from(flag);
            for flags in [
                flag,
                flag | SIGCHLD,
                flag | THREAD_FLAGS,
                flag | 0xFFFF_FFFF_0000_0000,
            ] {
                assert_eq!(call(arch, "clone", arg0(flags)), EPERM_V, "{flags:#x}");
            }
        }
        assert_eq!(
            call(arch, "clone", arg0(u64::from(CLONE_NEWUSER) | SIGCHLD)),
            EPERM_V
        );
    }
}

#[test]
fn unshare_decisions() {
    for arch in Arch::ALL {
        // Nothing, or only un-sharing process attributes: allowed.
        for flags in [
            0,
            CLONE_FS,
            CLONE_FILES,
            CLONE_SYSVSEM,
            CLONE_FS | CLONE_FILES,
        ] {
            assert_eq!(
                call(arch, "unshare", arg0(flags)),
                Verdict::Allow,
                "{flags:#x}"
            );
        }
        // Any new namespace, CLONE_NEWTIME included: denied.
        for flag in NAMESPACE_FLAGS.into_iter().chain([CLONE_NEWTIME]) {
            let flag = u64::from(flag);
            assert_eq!(call(arch, "unshare", arg0(flag)), EPERM_V, "{flag:#x}");
            assert_eq!(call(arch, "unshare", arg0(flag | CLONE_FS)), EPERM_V);
        }
        assert_eq!(call(arch, "unshare", arg0(CLONE_NEWUSER.into())), EPERM_V);
        assert_eq!(call(arch, "unshare", arg0(CLONE_NEWNET.into())), EPERM_V);
    }
}

#[test]
fn clone3_is_enosys() {
    for arch in Arch::ALL {
        for args in [[0; 6], [u64::MAX; 6]] {
            assert_eq!(call(arch, "clone3", args), Verdict::Errno(38));
        }
    }
}

#[test]
fn terminal_injection_ioctls_are_eperm() {
    for arch in Arch::ALL {
        for cmd in [TIOCSTI, TIOCLINUX] {
            let cmd = u64::from(cmd);
            assert_eq!(call(arch, "ioctl", arg1(cmd)), EPERM_V);
            // The kernel takes the command as an unsigned int.
            assert_eq!(
                call(arch, "ioctl", arg1(cmd | 0xFFFF_FFFF_0000_0000)),
                EPERM_V
            );
        }
        for cmd in [0, TCGETS, TIOCSWINSZ, FIONREAD, 0x5412_0000, 0x1_0000_5400] {
            assert_eq!(call(arch, "ioctl", arg1(cmd)), Verdict::Allow, "{cmd:#x}");
        }
        // The fd and the argument do not matter.
        assert_eq!(
            call(arch, "ioctl", [u64::MAX, TCGETS, u64::MAX, 0, 0, 0]),
            Verdict::Allow
        );
        // TIOCSTI as the fd or the argument is not the command.
        assert_eq!(
            call(
                arch,
                "ioctl",
                [u64::from(TIOCSTI), TCGETS, u64::from(TIOCSTI), 0, 0, 0]
            ),
            Verdict::Allow
        );
    }
}

#[test]
fn conditional_syscalls_agree_with_the_filter() {
    for arch in Arch::ALL {
        let rules = conditional_syscalls(arch);
        let names: Vec<&str> = rules.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, ["ioctl", "clone", "unshare", "clone3"]);
        for (name, nr, rule) in rules {
            assert!(!rule.is_empty());
            assert_eq!(nr, nr_of(arch, name));
        }
    }
}

/// Every syscall number, against the tables.
#[test]
fn exhaustive_over_numbers() {
    for arch in Arch::ALL {
        let blocked = blocked_syscalls(arch);
        let p = prog(arch);
        for nr in 0..1100 {
            let expected = if blocked.iter().any(|(_, n)| *n == nr) {
                EPERM_V
            } else if nr == nr_of(arch, "clone3") {
                Verdict::Errno(ENOSYS)
            } else {
                Verdict::Allow
            };
            assert_eq!(
                evaluate(&p, arch.audit_arch(), nr, [0; 6]),
                expected,
                "nr {nr} on {}",
                arch.name()
            );
        }
    }
}

/// The loads on the path `prog` takes for one syscall.
fn loads_on_path(prog: &[SockFilter], arch_value: u32, nr: i32, args: [u64; 6]) -> Vec<u32> {
    let mut loads = Vec::new();
    let mut a = 0u32;
    let mut pc = 0;
    loop {
        let ins = prog[pc];
        pc += 1;
        match ins.code {
            LD_W_ABS => {
                loads.push(ins.k);
                a = data_word(ins.k, arch_value, nr, &args).unwrap();
            }
            JEQ_K => pc += usize::from(if a == ins.k { ins.jt } else { ins.jf }),
            JGE_K => pc += usize::from(if a >= ins.k { ins.jt } else { ins.jf }),
            JSET_K => pc += usize::from(if a & ins.k != 0 { ins.jt } else { ins.jf }),
            JA => pc += ins.k as usize,
            RET_K => return loads,
            code => panic!("unexpected opcode {code:#x}"),
        }
    }
}

/// The kernel's constant-action cache (`seccomp_cache_prepare_bitmap`) skips the filter for a
/// syscall whose path reads nothing but `nr` and `arch` and allows it. Only the three
/// argument-filtered syscalls may read more.
#[test]
fn only_argument_filters_read_arguments() {
    for arch in Arch::ALL {
        let p = prog(arch);
        let filtered = [
            nr_of(arch, "ioctl"),
            nr_of(arch, "clone"),
            nr_of(arch, "unshare"),
        ];
        for nr in 0..600 {
            let loads = loads_on_path(&p, arch.audit_arch(), nr, [0; 6]);
            let reads_args = loads.iter().any(|&o| o >= OFF_ARGS);
            assert_eq!(
                reads_args,
                filtered.contains(&nr),
                "nr {nr} on {}",
                arch.name()
            );
            assert_eq!(&loads[..2], &[OFF_ARCH, OFF_NR]);
        }
    }
}

/// Checks what the kernel's `bpf_check_classic` and `seccomp_check_filter` check.
fn check_program(prog: &[SockFilter]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > BPF_MAXINSNS {
        return Err(format!("length {}", prog.len()));
    }
    for (pc, ins) in prog.iter().enumerate() {
        match ins.code {
            LD_W_ABS => {
                if !ins.k.is_multiple_of(4) || ins.k >= SECCOMP_DATA_LEN {
                    return Err(format!("{pc}: load of {}", ins.k));
                }
            }
            JEQ_K | JSET_K | JGE_K => {
                let last = pc + 1 + usize::from(ins.jt.max(ins.jf));
                if last >= prog.len() {
                    return Err(format!("{pc}: jump to {last}"));
                }
            }
            JA => {
                let to = pc + 1 + ins.k as usize;
                if to >= prog.len() {
                    return Err(format!("{pc}: jump to {to}"));
                }
            }
            RET_K => {}
            code => return Err(format!("{pc}: opcode {code:#x}")),
        }
    }
    match prog.last().map(|i| i.code) {
        Some(RET_K) => Ok(()),
        _ => Err("does not end in a return".into()),
    }
}

#[test]
fn programs_are_well_formed() {
    for arch in Arch::ALL {
        for opts in [
            SeccompOptions::default(),
            SeccompOptions { allow_ptrace: true },
        ] {
            let p = build(arch, &opts);
            check_program(&p).unwrap();
            assert!(p.len() < 256, "{} instructions", p.len());
            // Every instruction is reachable.
            assert!(analyze(&p).iter().all(Option::is_some));
            // The arch check comes first.
            assert_eq!(p[0], ld(OFF_ARCH));
            assert_eq!(p[1], jump(JEQ_K, arch.audit_arch(), 1, 0));
            assert_eq!(p[2], ret(SECCOMP_RET_KILL_PROCESS));
            assert_eq!(p[3], ld(OFF_NR));
            assert_eq!(p.last(), Some(&ret(SECCOMP_RET_ALLOW)));
        }
    }
}

#[test]
fn output_is_deterministic() {
    for arch in Arch::ALL {
        let a = to_bytes(&prog(arch));
        let b = to_bytes(&prog(arch));
        assert_eq!(a, b);
        assert_eq!(disassemble(&prog(arch)), disassemble(&prog(arch)));
    }
    assert_ne!(
        to_bytes(&prog(Arch::X86_64)),
        to_bytes(&prog(Arch::Aarch64))
    );
}

#[test]
fn bytes_layout_and_round_trip() {
    let bytes = to_bytes(&prog(Arch::X86_64));
    // ld [4]; jeq #0xc000003e jt 1 jf 0
    assert_eq!(&bytes[..8], &[0x20, 0, 0, 0, 4, 0, 0, 0]);
    assert_eq!(&bytes[8..16], &[0x15, 0, 1, 0, 0x3e, 0, 0, 0xc0]);
    for arch in Arch::ALL {
        let p = prog(arch);
        let bytes = to_bytes(&p);
        assert_eq!(bytes.len(), p.len() * 8);
        assert_eq!(from_bytes(&bytes), Some(p));
    }
    assert_eq!(from_bytes(&[]), Some(vec![]));
    assert_eq!(from_bytes(&[0; 7]), None);
    assert_eq!(from_bytes(&[0; 9]), None);
    assert_eq!(
        from_bytes(&vec![0; 8 * BPF_MAXINSNS]).map(|p| p.len()),
        Some(4096)
    );
    assert_eq!(from_bytes(&vec![0; 8 * (BPF_MAXINSNS + 1)]), None);
}

#[test]
fn allow_ptrace_unblocks_the_ptrace_family_only() {
    let opts = SeccompOptions { allow_ptrace: true };
    assert!(!SeccompOptions::default().allow_ptrace);
    for arch in Arch::ALL {
        let p = build(arch, &opts);
        let strict = blocked_syscalls(arch);
        let relaxed = blocked_syscalls_with(arch, &opts);
        assert_eq!(strict.len(), relaxed.len() + 3);
        for (name, nr) in &strict {
            let expected = if PTRACE_FAMILY.contains(name) {
                Verdict::Allow
            } else {
                EPERM_V
            };
            assert_eq!(
                evaluate(&p, arch.audit_arch(), *nr, [0; 6]),
                expected,
                "{name}"
            );
        }
        assert_eq!(
            evaluate(&p, arch.audit_arch(), nr_of(arch, "clone3"), [0; 6]),
            Verdict::Errno(ENOSYS)
        );
    }
}

#[test]
fn interpreter_rejects_what_it_does_not_know() {
    let arch = AUDIT_ARCH_X86_64;
    let kill = Verdict::KillProcess;
    assert_eq!(evaluate(&[], arch, 0, [0; 6]), kill);
    // Unknown instruction (BPF_ALU | BPF_ADD | BPF_K), then a return that is never reached.
    assert_eq!(
        evaluate(&[stmt(0x04, 1), ret(SECCOMP_RET_ALLOW)], arch, 0, [0; 6]),
        kill
    );
    // Falling off the end, jumping past it.
    assert_eq!(evaluate(&[ld(OFF_NR)], arch, 0, [0; 6]), kill);
    assert_eq!(
        evaluate(
            &[jump(JEQ_K, 0, 5, 5), ret(SECCOMP_RET_ALLOW)],
            arch,
            0,
            [0; 6]
        ),
        kill
    );
    // Loads the kernel rejects.
    for offset in [2, 64, 1000] {
        assert_eq!(
            evaluate(&[ld(offset), ret(SECCOMP_RET_ALLOW)], arch, 0, [0; 6]),
            kill
        );
    }
    // Actions the type has no verdict for (KILL_THREAD, TRAP, TRACE, LOG).
    for action in [0, 0x0003_0000, 0x7FF0_0000, 0x7FFC_0000] {
        assert_eq!(evaluate(&[ret(action)], arch, 0, [0; 6]), kill);
    }
    // Errno data is capped as the kernel does.
    assert_eq!(
        evaluate(&[ret(SECCOMP_RET_ERRNO | 0xFFFF)], arch, 0, [0; 6]),
        Verdict::Errno(4095)
    );
    assert_eq!(
        evaluate(&[ret(SECCOMP_RET_ALLOW | 0x1234)], arch, 0, [0; 6]),
        Verdict::Allow
    );
}

#[test]
fn interpreter_reads_seccomp_data_little_endian() {
    let args = [
        0x1111_1111_0000_0001,
        0x2222_2222_0000_0002,
        0x3333_3333_0000_0003,
        0x4444_4444_0000_0004,
        0x5555_5555_0000_0005,
        0x6666_6666_0000_0006,
    ];
    for i in 0..6u32 {
        let lo = i + 1;
        let hi = 0x1111_1111 * (i + 1);
        assert_eq!(data_word(arg_lo(i), 7, 9, &args), Some(lo));
        assert_eq!(data_word(arg_lo(i) + 4, 7, 9, &args), Some(hi));
    }
    assert_eq!(data_word(OFF_NR, 7, -2, &args), Some(0xFFFF_FFFE));
    assert_eq!(data_word(OFF_ARCH, 7, 9, &args), Some(7));
    assert_eq!(data_word(OFF_IP, 7, 9, &args), Some(0));
    assert_eq!(data_word(OFF_IP + 4, 7, 9, &args), Some(0));
    assert_eq!(data_word(60, 7, 9, &args), Some(0x6666_6666));
    assert_eq!(data_word(64, 7, 9, &args), None);
    assert_eq!(data_word(6, 7, 9, &args), None);
}

#[test]
fn disassembly_names_things() {
    let text = disassemble(&prog(Arch::X86_64));
    for line in [
        "0000: ld [4]  ; arch",
        "0001: jeq #0xc000003e jt 1 jf 0  ; AUDIT_ARCH_X86_64",
        "0002: ret #0x80000000  ; KILL_PROCESS",
        "0003: ld [0]  ; nr",
        "0004: jset #0x40000000 jt 0 jf 1  ; __X32_SYSCALL_BIT",
        "; 16 ioctl: by its arguments",
        "ld [24]  ; args[1] (low)",
        "jeq #0x5412 jt 2 jf 0  ; TIOCSTI",
        "jeq #0x541c jt 1 jf 0  ; TIOCLINUX",
        "jset #0x7e020000 jt 0 jf 1  ; CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|\
         CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET",
        "jset #0x7e020080 jt 0 jf 1  ; CLONE_NEWTIME|CLONE_NEWNS|",
        "; 56 clone: by its arguments",
        "; 272 unshare: by its arguments",
        "; 435 clone3: ERRNO(ENOSYS)",
        "jge #101 jt 0 jf 1  ; nr >= 101 (ptrace)",
        "; 101 ptrace: ERRNO(EPERM)",
        "ret #0x00050001  ; ERRNO(EPERM)",
        "ret #0x7fff0000  ; ALLOW",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    assert_eq!(text.lines().count(), prog(Arch::X86_64).len());
    let arm = disassemble(&prog(Arch::Aarch64));
    assert!(
        arm.contains("116-117 syslog..ptrace: ERRNO(EPERM)"),
        "{arm}"
    );
    assert!(arm.contains("; AUDIT_ARCH_AARCH64"));
    assert!(!arm.contains("X32"));
}

#[test]
fn disassembly_of_foreign_programs() {
    let p = [
        jump(JEQ_K, 0, 1, 1),
        stmt(0x04, 1),
        ld(20),
        ret(0x7FFC_0000),
    ];
    assert_eq!(
        disassemble(&p),
        "0000: jeq #0x0 jt 1 jf 1\n\
         0001: .insn code 0x0004 jt 0 jf 0 k 0x00000001  ; not emitted by greywall (unreachable)\n\
         0002: ld [20]  ; args[0] (high)\n\
         0003: ret #0x7ffc0000  ; unsupported action\n"
    );
    assert_eq!(disassemble(&[]), "");
}

// ---- The notify filter ---------------------------------------------------------------------

fn notify_prog(arch: Arch) -> Vec<SockFilter> {
    build_notify(arch, &SeccompOptions::default())
}

fn notify(arch: Arch, nr: i32, args: [u64; 6]) -> Verdict {
    evaluate(&notify_prog(arch), arch.audit_arch(), nr, args)
}

fn notify_nr(arch: Arch, name: &str) -> i32 {
    notify_syscalls(arch)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| nr)
        .unwrap_or_else(|| panic!("{name} has no number on {}", arch.name()))
}

const O_RDONLY: u64 = 0;
const O_WRONLY_TRUNC: u64 = 0x201;
const O_EXCL: u64 = 0x80;
const O_TMPFILE: u64 = 0x41_0000;
const O_DIRECTORY: u64 = 0x1_0000;
const O_APPEND: u64 = 0x400;
const O_NOFOLLOW: u64 = 0x2_0000;
const O_PATH: u64 = 0x20_0000;
const AT_FDCWD: u64 = (-100i64) as u64;

#[test]
fn notify_numbers_are_pinned() {
    let x86 = [
        ("openat", 257),
        ("open", 2),
        ("creat", 85),
        ("openat2", 437),
        ("mkdir", 83),
        ("mkdirat", 258),
        ("mknod", 133),
        ("mknodat", 259),
        ("symlink", 88),
        ("symlinkat", 266),
        ("link", 86),
        ("linkat", 265),
        ("rename", 82),
        ("renameat", 264),
        ("renameat2", 316),
        ("truncate", 76),
    ];
    let arm = [
        ("openat", 56),
        ("openat2", 437),
        ("mkdirat", 34),
        ("mknodat", 33),
        ("symlinkat", 36),
        ("linkat", 37),
        ("renameat", 38),
        ("renameat2", 276),
        ("truncate", 45),
    ];
    assert_eq!(notify_syscalls(Arch::X86_64), x86);
    assert_eq!(notify_syscalls(Arch::Aarch64), arm);
}

#[test]
fn notify_filter_asks_for_every_creating_syscall() {
    for arch in Arch::ALL {
        for (name, nr) in notify_syscalls(arch) {
            if name == "openat" || name == "open" {
                continue;
            }
            for args in [[0; 6], [u64::MAX; 6], [AT_FDCWD, 0, O_RDONLY, 0, 0, 0]] {
                assert_eq!(notify(arch, nr, args), Verdict::Notify, "{name}");
            }
        }
    }
}

/// The flag values of `asm-generic/fcntl.h`, which x86_64 and aarch64 share for these (the
/// launcher's supervisor checks them against the `libc` crate too).
#[test]
fn open_flag_values_match_the_kernel() {
    assert_eq!(O_CREAT, 0o100);
    assert_eq!(O_WRONLY, 0o1);
    assert_eq!(O_RDWR, 0o2);
    assert_eq!(O_TRUNC, 0o1000);
    assert_eq!(O_WRITE_INTENT, 0x243);
}

#[test]
fn notify_filter_asks_for_open_only_with_write_intent() {
    let creat = u64::from(O_CREAT);
    let (wronly, rdwr, trunc) = (u64::from(O_WRONLY), u64::from(O_RDWR), u64::from(O_TRUNC));
    for arch in Arch::ALL {
        let mut opens = vec![(notify_nr(arch, "openat"), 2usize)];
        if arch == Arch::X86_64 {
            opens.push((notify_nr(arch, "open"), 1));
        }
        for (nr, flags_at) in opens {
            let with = |flags: u64| {
                let mut args = [AT_FDCWD, 0x1000, 0, 0o644, 0, 0];
                args[flags_at] = flags;
                notify(arch, nr, args)
            };
            // Creating, writing (an existing file may be protected), truncating; O_TMPFILE
            // always comes with a write bit.
            for flags in [
                creat,
                creat | O_WRONLY_TRUNC,
                creat | O_EXCL,
                wronly,
                rdwr,
                wronly | rdwr,
                trunc,
                O_WRONLY_TRUNC,
                wronly | O_APPEND,
                O_TMPFILE | wronly,
                O_TMPFILE | rdwr,
                O_PATH | wronly,
                u64::MAX,
                u64::from(u32::MAX),
            ] {
                assert_eq!(with(flags), Verdict::Notify, "{nr} {flags:#x}");
            }
            // A read-only open never reaches the supervisor, whatever else it asks for.
            for flags in [
                O_RDONLY,
                O_DIRECTORY,
                O_APPEND,
                O_EXCL,
                O_PATH,
                O_NOFOLLOW | O_DIRECTORY,
                O_TMPFILE,
                creat << 32,
                wronly << 32,
                !u64::from(O_WRITE_INTENT),
            ] {
                assert_eq!(with(flags), Verdict::Allow, "{nr} {flags:#x}");
            }
            // The other arguments do not matter.
            let mut args = [u64::from(O_WRITE_INTENT); 6];
            args[flags_at] = O_RDONLY;
            assert_eq!(notify(arch, nr, args), Verdict::Allow);
        }
    }
    // aarch64 has no open(2): its number there is another syscall.
    assert!(
        !notify_syscalls(Arch::Aarch64)
            .iter()
            .any(|(n, _)| *n == "open")
    );
}

#[test]
fn notify_filter_decides_everything_else_as_the_main_filter() {
    for arch in Arch::ALL {
        let asked: Vec<i32> = notify_syscalls(arch).iter().map(|(_, nr)| *nr).collect();
        let p = notify_prog(arch);
        for nr in 0..1100 {
            let creat = u64::from(O_CREAT);
            let args = [AT_FDCWD, creat, creat, creat, 0, 0];
            // Everything else is decided exactly as the main filter decides it.
            let expected = if asked.contains(&nr) {
                Verdict::Notify
            } else {
                run(arch, nr, args)
            };
            assert_eq!(
                evaluate(&p, arch.audit_arch(), nr, args),
                expected,
                "nr {nr} on {}",
                arch.name()
            );
        }
    }
}

#[test]
fn notify_filter_checks_the_architecture() {
    for arch in Arch::ALL {
        let p = notify_prog(arch);
        let other = Arch::ALL.into_iter().find(|a| *a != arch).unwrap();
        for value in [AUDIT_ARCH_I386, other.audit_arch(), 0] {
            assert_eq!(evaluate(&p, value, 83, [0; 6]), Verdict::KillProcess);
        }
    }
    let x32 = X32_SYSCALL_BIT as i32;
    assert_eq!(notify(Arch::X86_64, x32 | 83, [0; 6]), Verdict::KillProcess);
    assert_eq!(notify(Arch::X86_64, -1, [0; 6]), Verdict::KillProcess);
}

/// The main filter must let every creating syscall through, or the supervisor would never
/// see it (and the strictest action of the two filters wins).
#[test]
fn main_filter_allows_what_the_notify_filter_asks_about() {
    for arch in Arch::ALL {
        for (name, nr) in notify_syscalls(arch) {
            assert_eq!(
                run(arch, nr, [AT_FDCWD, 0, u64::from(O_CREAT), 0, 0, 0]),
                Verdict::Allow,
                "{name} on {}",
                arch.name()
            );
        }
    }
}

#[test]
fn notify_filter_reads_arguments_only_for_open_and_the_argument_filters() {
    for arch in Arch::ALL {
        let p = notify_prog(arch);
        let open = [
            notify_nr(arch, "openat"),
            if arch == Arch::X86_64 { 2 } else { -1 },
            nr_of(arch, "ioctl"),
            nr_of(arch, "clone"),
            nr_of(arch, "unshare"),
        ];
        for nr in 0..600 {
            let loads = loads_on_path(&p, arch.audit_arch(), nr, [0; 6]);
            assert_eq!(&loads[..2], &[OFF_ARCH, OFF_NR]);
            assert_eq!(
                loads.iter().any(|&o| o >= OFF_ARGS),
                open.contains(&nr),
                "nr {nr} on {}",
                arch.name()
            );
        }
    }
}

#[test]
fn notify_programs_are_well_formed() {
    for arch in Arch::ALL {
        let p = notify_prog(arch);
        check_program(&p).unwrap();
        assert!(analyze(&p).iter().all(Option::is_some));
        assert_eq!(&p[..4], &prog(arch)[..4]);
        assert_eq!(p.last(), Some(&ret(SECCOMP_RET_ALLOW)));
        assert_eq!(from_bytes(&to_bytes(&p)), Some(p.clone()));
        assert_eq!(to_bytes(&p), to_bytes(&notify_prog(arch)));
    }
}

#[test]
fn notify_disassembly_names_things() {
    let text = disassemble(&notify_prog(Arch::X86_64));
    for line in [
        "; 257 openat: by its arguments",
        "ld [32]  ; args[2] (low)",
        "jset #0x243 jt 0 jf 1  ; O_WRONLY|O_RDWR|O_CREAT|O_TRUNC",
        "ret #0x7fc00000  ; USER_NOTIF",
        "; 2 open: by its arguments",
        "ld [24]  ; args[1] (low)",
        "; 82-83 rename..mkdir: USER_NOTIF",
        "; 316 renameat2: USER_NOTIF",
        "; 76 truncate: USER_NOTIF",
        "ret #0x7fff0000  ; ALLOW",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    let arm = disassemble(&notify_prog(Arch::Aarch64));
    assert!(arm.contains("; 56 openat: by its arguments"), "{arm}");
    assert!(arm.contains("; 276 renameat2: USER_NOTIF"), "{arm}");
    assert!(arm.contains("; 45 truncate: USER_NOTIF"), "{arm}");
    assert!(!arm.contains("; open\n"), "{arm}");
}

#[test]
fn interpreter_knows_user_notif() {
    let arch = AUDIT_ARCH_X86_64;
    assert_eq!(
        evaluate(&[ret(SECCOMP_RET_USER_NOTIF)], arch, 0, [0; 6]),
        Verdict::Notify
    );
    assert_eq!(
        evaluate(&[ret(SECCOMP_RET_USER_NOTIF | 0x1234)], arch, 0, [0; 6]),
        Verdict::Notify
    );
}

/// Instructions executed for one syscall.
fn path_length(prog: &[SockFilter], arch_value: u32, nr: i32) -> usize {
    let mut a = 0u32;
    let mut pc = 0;
    let mut steps = 0;
    loop {
        let ins = prog[pc];
        steps += 1;
        pc += 1;
        match ins.code {
            LD_W_ABS => a = data_word(ins.k, arch_value, nr, &[0; 6]).unwrap(),
            JEQ_K => pc += usize::from(if a == ins.k { ins.jt } else { ins.jf }),
            JGE_K => pc += usize::from(if a >= ins.k { ins.jt } else { ins.jf }),
            JSET_K => pc += usize::from(if a & ins.k != 0 { ins.jt } else { ins.jf }),
            JA => pc += ins.k as usize,
            RET_K => return steps,
            code => panic!("unexpected opcode {code:#x}"),
        }
    }
}

/// The kernel emulates the program for every syscall number when it is loaded (the
/// constant-action cache), and runs it for every syscall it cannot cache: every path stays
/// short, whatever the number.
#[test]
fn every_path_is_short() {
    for arch in Arch::ALL {
        for program in [prog(arch), notify_prog(arch)] {
            let longest = (0..1100)
                .map(|nr| path_length(&program, arch.audit_arch(), nr))
                .max()
                .unwrap();
            assert!(longest <= 24, "{} on {}", longest, arch.name());
        }
    }
}

/// The search tree has no duplicate case and no case the tree cannot reach.
#[test]
fn every_case_is_reached() {
    for arch in Arch::ALL {
        for (name, nr) in blocked_syscalls(arch) {
            assert_eq!(run(arch, nr, [0; 6]), EPERM_V, "{name}");
            assert_eq!(notify(arch, nr, [0; 6]), EPERM_V, "{name}");
        }
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/seccomp")
}

fn blessing() -> bool {
    std::env::var_os("GREYWALL_BLESS").is_some_and(|v| !v.is_empty())
}

#[test]
fn golden_disassembly() {
    let dir = golden_dir();
    let mut stale = Vec::new();
    for arch in Arch::ALL {
        for (name, program) in [
            (arch.name().to_string(), prog(arch)),
            (format!("notify-{}", arch.name()), notify_prog(arch)),
        ] {
            let path = dir.join(format!("{name}.txt"));
            let expected = disassemble(&program);
            if blessing() {
                fs::create_dir_all(&dir).unwrap();
                let tmp = path.with_extension("txt.tmp");
                fs::write(&tmp, &expected).unwrap();
                fs::rename(&tmp, &path).unwrap();
                continue;
            }
            let actual = fs::read_to_string(&path).unwrap_or_default();
            if actual != expected {
                let first = expected
                    .lines()
                    .zip(actual.lines().chain(std::iter::repeat("<end of file>")))
                    .find(|(e, a)| e != a)
                    .map_or_else(
                        || "the file has extra lines".to_string(),
                        |(e, a)| format!("first difference:\n  generated: {e}\n  committed: {a}"),
                    );
                stale.push(format!("{}: {first}", path.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "golden seccomp disassembly out of date:\n{}\nregenerate with\n\n    {BLESS_HINT}\n",
        stale.join("\n")
    );
}

/// The intended decision for the argument-filtered syscalls.
fn reference(arch: Arch, name: &str, args: [u64; 6]) -> Verdict {
    let lo = |v: u64| v as u32;
    let denied = match name {
        "ioctl" => [TIOCSTI, TIOCLINUX].contains(&lo(args[1])),
        "clone" => lo(args[0]) & CLONE_NAMESPACES != 0,
        "unshare" => lo(args[0]) & UNSHARE_NAMESPACES != 0,
        _ => unreachable!("{name} on {}", arch.name()),
    };
    if denied { EPERM_V } else { Verdict::Allow }
}

fn interesting_word() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        prop::sample::select(vec![
            0,
            SIGCHLD,
            THREAD_FLAGS,
            VFORK_FLAGS,
            u64::from(TIOCSTI),
            u64::from(TIOCLINUX),
            TCGETS,
            u64::from(CLONE_NEWUSER),
            u64::from(CLONE_NEWTIME),
            u64::from(CLONE_NEWNET) | 0xFFFF_FFFF_0000_0000,
            O_RDONLY,
            O_APPEND | O_DIRECTORY,
            u64::from(O_WRONLY),
            u64::from(O_TRUNC),
            u64::from(O_CREAT) << 32,
        ]),
        any::<u32>().prop_map(u64::from),
    ]
}

proptest! {
    #[test]
    fn argument_filters_match_reference(
        arm in any::<bool>(),
        which in 0usize..3,
        args in prop::array::uniform6(interesting_word()),
    ) {
        let arch = if arm { Arch::Aarch64 } else { Arch::X86_64 };
        let name = ["ioctl", "clone", "unshare"][which];
        prop_assert_eq!(call(arch, name, args), reference(arch, name, args));
    }

    #[test]
    fn other_syscalls_ignore_arguments(
        arm in any::<bool>(),
        nr in 0i32..1100,
        args in prop::array::uniform6(any::<u64>()),
    ) {
        let arch = if arm { Arch::Aarch64 } else { Arch::X86_64 };
        let filtered = ["ioctl", "clone", "unshare"].map(|n| nr_of(arch, n));
        prop_assume!(!filtered.contains(&nr));
        prop_assert_eq!(run(arch, nr, args), run(arch, nr, [0; 6]));
    }

    #[test]
    fn notify_filter_matches_reference(
        arm in any::<bool>(),
        nr in 0i32..600,
        args in prop::array::uniform6(interesting_word()),
    ) {
        let arch = if arm { Arch::Aarch64 } else { Arch::X86_64 };
        let asked = notify_syscalls(arch);
        // Read-only: no access-mode bit (O_ACCMODE), no O_CREAT, no O_TRUNC in the int.
        let read_only = |flags: u64| flags as u32 & 3 == 0 && flags as u32 & (O_CREAT | O_TRUNC) == 0;
        let expected = match asked.iter().find(|(_, n)| *n == nr) {
            None => run(arch, nr, args),
            Some(("openat", _)) if read_only(args[2]) => Verdict::Allow,
            Some(("open", _)) if read_only(args[1]) => Verdict::Allow,
            Some(_) => Verdict::Notify,
        };
        prop_assert_eq!(notify(arch, nr, args), expected);
    }

    #[test]
    fn interpreter_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), nr in any::<i32>()) {
        if let Some(p) = from_bytes(&bytes) {
            let _ = evaluate(&p, AUDIT_ARCH_X86_64, nr, [0; 6]);
            let _ = disassemble(&p);
            prop_assert_eq!(to_bytes(&p), bytes);
        }
    }
}

/// A body for the search tests: `EPERM` when bit 0 of the first argument is set.
fn flag_body() -> Vec<SockFilter> {
    if_flags(0, 1, ret_errno(EPERM), ret(SECCOMP_RET_ALLOW))
}

proptest! {
    /// The search decides every number as its case says (a number no case names is
    /// allowed), however many cases there are: more than one block of shared returns, and
    /// more than a conditional jump can skip, included.
    #[test]
    fn search_decides_every_number_as_its_case(
        picks in proptest::collection::btree_map(0u32..3000, 0u8..4, 0..700)
    ) {
        let cases: Vec<Case> = picks
            .iter()
            .map(|(nr, kind)| Case {
                nr: *nr,
                body: match kind {
                    0 => vec![ret_errno(EPERM)],
                    1 => vec![ret(SECCOMP_RET_USER_NOTIF)],
                    2 => vec![ret_errno(ENOSYS)],
                    _ => flag_body(),
                },
            })
            .collect();
        let mut prog = vec![ld(OFF_NR)];
        prog.extend(search(&cases));
        prop_assert!(check_program(&prog).is_ok(), "{:?}", check_program(&prog));
        for nr in 0..3100u32 {
            for flags in [0u64, 1] {
                let expected = match picks.get(&nr) {
                    None => Verdict::Allow,
                    Some(0) => EPERM_V,
                    Some(1) => Verdict::Notify,
                    Some(2) => Verdict::Errno(ENOSYS),
                    Some(_) if flags == 1 => EPERM_V,
                    Some(_) => Verdict::Allow,
                };
                let got = evaluate(&prog, AUDIT_ARCH_X86_64, nr as i32, [flags, 0, 0, 0, 0, 0]);
                prop_assert_eq!(got, expected, "nr {} flags {}", nr, flags);
            }
        }
    }
}

/// Neighbouring numbers that decide alike share one segment, and only those.
#[test]
fn segments_merge_runs_that_decide_alike() {
    let case = |nr, body| Case { nr, body };
    let cases = [
        case(3, vec![ret_errno(EPERM)]),
        case(4, vec![ret_errno(EPERM)]),
        case(5, vec![ret(SECCOMP_RET_USER_NOTIF)]),
        case(6, flag_body()),
        case(7, flag_body()),
        case(9, vec![ret_errno(EPERM)]),
    ];
    let got: Vec<(u32, Outcome)> = segments(&cases).iter().map(|s| (s.lo, s.outcome)).collect();
    let allow = Outcome::Return(SECCOMP_RET_ALLOW);
    let eperm = Outcome::Return(SECCOMP_RET_ERRNO | u32::from(EPERM));
    assert_eq!(
        got,
        [
            (0, allow),
            (3, eperm),
            (5, Outcome::Return(SECCOMP_RET_USER_NOTIF)),
            (6, Outcome::Body(3)),
            (7, Outcome::Body(4)),
            (8, allow),
            (9, eperm),
            (10, allow),
        ]
    );
}
