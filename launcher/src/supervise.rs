//! The create-deny supervisor: protected paths that do not exist yet stay uncreatable.
//!
//! Existing protected paths are read-only mounts, but nothing can be mounted over a path that
//! does not exist, and Landlock cannot deny inside a directory it allows. So when the plan has
//! create-deny rules, the launcher forks once the namespaces and mounts are in place (both
//! processes share the sandbox's view):
//!
//! - the child sandboxes itself as usual (Landlock, `no_new_privs`, the main seccomp filter),
//!   then loads the notify filter with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, sends the listener
//!   to the parent over a socket pair (`SCM_RIGHTS`) and execs the command;
//! - the parent, the supervisor, is neither Landlocked nor filtered. It receives every syscall
//!   that creates a directory entry (`open`/`openat` with `O_CREAT`, `creat`, `openat2`,
//!   `mkdir*`, `mknod*`, `symlink*`, `link*`, `rename*`), reads the new entry's path from the
//!   process's memory, resolves it as the kernel would ([`path`]), and answers `EACCES` when a
//!   rule refuses it ([`rules`]; `EROFS` when its folder is a read-only mount, as the kernel
//!   would) or lets the kernel go on (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`). What exists already
//!   is left to the kernel (`mkdir -p` on a protected folder still sees `EEXIST`), except that a
//!   rename replaces it; and a rename may not move away a folder above a protected path, which
//!   would leave that path free to create. Anything it cannot read or decide is refused:
//!   `EACCES`, or the errno the kernel itself would return (`EFAULT` for an unreadable path,
//!   `ENOENT` for a missing parent directory).
//!
//! The supervisor forwards `SIGINT`, `SIGTERM`, `SIGHUP`, `SIGQUIT` and `SIGWINCH` sent to it
//! (not those the terminal sends the whole process group, which the command receives anyway),
//! exits with the command's status (128 + the signal number when a signal ended it, as shells
//! report), and the command is killed when the supervisor dies (`PR_SET_PDEATHSIG`). It never
//! runs the command itself. Descendants that outlive the command find nobody listening: their
//! creating syscalls then fail with `ENOSYS`.
//!
//! Known limits:
//!
//! - The kernel reads the path again after `CONTINUE`: a deliberately racing multi-threaded
//!   program can change the path (or a symlink on it) between the check and the syscall.
//!   Existing protected paths stay protected by their read-only mounts regardless.
//! - A symlink inside a writable folder may point at a directory elsewhere that is writable;
//!   what is created through the link's real location is judged by that location, which the
//!   name rules (scoped to the working directory) do not cover.
//! - Unix sockets bound with `bind(2)` create directory entries without these syscalls; they
//!   cannot be read or executed, so they are not checked.
//! - The names protected everywhere below the working directory hold for everything there:
//!   unpacking a package that ships, say, a `.vscode` folder fails. `git init` and `git clone`
//!   work: creating the `.git/hooks` folder and the `*.sample` hooks git copies into it is
//!   allowed (git never runs them), and a real hook still cannot be written, renamed or linked
//!   into place.
//! - The kernel allows one listener per seccomp filter chain: greywall with create-deny rules
//!   cannot run inside another one (it fails closed, `EBUSY`).
//! - Each created entry costs a round trip to the supervisor (the filter lets every other
//!   syscall through without one).

mod path;
mod rules;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;

pub use rules::Rules;

use crate::bridge::Bridge;

use self::path::{Errno, Task};
use self::rules::Components;
use crate::sys::notify::{self, Fork, Listener, Notif, Response, Status};

/// Signals the supervisor passes on to the command.
const FORWARDED: [libc::c_int; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGWINCH,
];

/// Exit status when the supervisor itself fails (the command is killed first).
const EXIT_SETUP: u8 = crate::apply::EXIT_SETUP;

/// `renameat2`'s flag that swaps the two paths (each becomes a new entry).
const RENAME_EXCHANGE: u64 = 2;

/// The side of the fork this process is on.
pub enum Forked {
    /// The command's side: send the listener on this channel, then exec.
    Child(Channel),
    /// The supervisor's side, done: exit with this status.
    Done(ExitCode),
}

/// Where the child sends its listener.
pub struct Channel(OwnedFd);

impl Channel {
    /// Sends the listener to the supervisor and closes both (the command never holds it).
    pub fn send(self, listener: OwnedFd) -> io::Result<()> {
        notify::send_fd(self.0.as_fd(), listener.as_fd())
    }
}

/// Forks the supervisor. In the parent, supervises until the command ends: answers the
/// create-deny notifications (when `rules` has any) and runs the network `bridge` (when there
/// is one), in one poll loop.
pub fn fork(rules: Rules, bridge: Option<Bridge>) -> io::Result<Forked> {
    let (ours, theirs) = notify::socketpair()?;
    let mut blocked = FORWARDED.to_vec();
    blocked.push(libc::SIGCHLD);
    // Blocked before the fork, so that none is lost before the supervisor listens.
    let mask = notify::block(&blocked)?;
    let signals = match notify::signalfd(&blocked) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = notify::set_mask(&mask);
            return Err(e);
        }
    };
    let supervisor = notify::pid();
    match notify::fork() {
        Err(e) => {
            let _ = notify::set_mask(&mask);
            Err(e)
        }
        Ok(Fork::Child) => {
            drop((ours, signals));
            notify::set_parent_death_signal(libc::SIGKILL)?;
            // The supervisor may have died before the death signal was armed.
            if notify::parent_pid() != supervisor {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            notify::set_mask(&mask)?;
            Ok(Forked::Child(Channel(theirs)))
        }
        Ok(Fork::Parent(child)) => {
            drop(theirs);
            let arch = greywall_compiler::backend::seccomp::Arch::host().map(|a| a.audit_arch());
            let s = Supervisor {
                rules,
                child,
                arch,
                bridge,
            };
            Ok(Forked::Done(s.run(ours, signals)))
        }
    }
}

struct Supervisor {
    rules: Rules,
    child: libc::pid_t,
    /// The `AUDIT_ARCH_*` the filters let through.
    arch: Option<u32>,
    /// The network bridge ([`crate::bridge`]), when the plan has egress or ports to expose.
    bridge: Option<Bridge>,
}

fn exit_code(status: Status) -> ExitCode {
    match status {
        Status::Exited(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(EXIT_SETUP)),
        Status::Signaled(sig) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(EXIT_SETUP)),
    }
}

fn is(e: &io::Error, errnos: &[i32]) -> bool {
    e.raw_os_error().is_some_and(|c| errnos.contains(&c))
}

impl Supervisor {
    fn run(mut self, channel: OwnedFd, signals: OwnedFd) -> ExitCode {
        // The sandbox runs as the same user: keep it out of the supervisor's memory (where the
        // rules are) in case Landlock, which otherwise keeps it out, is missing.
        if let Err(e) = notify::set_not_dumpable() {
            return self.abort("prctl(PR_SET_DUMPABLE)", &e);
        }
        // Orphaned descendants stay ours, so their memory stays readable under Yama.
        let _ = notify::set_child_subreaper();
        // Without create-deny rules the command sends no listener (only the bridge runs).
        let received = if self.rules.is_empty() {
            Ok(None)
        } else {
            notify::recv_fd(channel.as_fd()).map(|fd| fd.map(Some))
        };
        let listener = match received {
            Ok(None) => None,
            Ok(Some(Some(fd))) => match Listener::new(fd) {
                Ok(l) => Some(l),
                Err(e) => return self.abort("query the seccomp notification sizes", &e),
            },
            // The child failed before it could send the listener, and said why.
            Ok(Some(None)) => {
                return match notify::wait(self.child) {
                    Ok(s) => exit_code(s),
                    Err(_) => ExitCode::from(EXIT_SETUP),
                };
            }
            Err(e) => return self.abort("receive the seccomp listener", &e),
        };
        drop(channel);
        if let Some(l) = &listener {
            let _ = l.prefer_sync_wake_up();
        }
        let mut notify_fd = listener.as_ref().map_or(-1, |l| l.fd().as_raw_fd());
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(8);
        loop {
            fds.clear();
            for fd in [notify_fd, signals.as_raw_fd()] {
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if let Some(b) = &self.bridge {
                b.pollfds(&mut fds);
            }
            if let Err(e) = notify::poll(&mut fds) {
                return self.abort("poll", &e);
            }
            if fds[1].revents != 0 {
                loop {
                    match notify::read_signal(signals.as_fd()) {
                        Ok(None) => break,
                        Ok(Some((libc::SIGCHLD, _))) => match self.reap() {
                            Ok(Some(status)) => return exit_code(status),
                            Ok(None) => {}
                            Err(e) => return self.abort("wait for the command", &e),
                        },
                        // The terminal signals the whole process group (SI_KERNEL): the
                        // command has its own copy.
                        Ok(Some((_, libc::SI_KERNEL))) => {}
                        Ok(Some((sig, _))) => {
                            let _ = notify::kill(self.child, sig);
                        }
                        Err(e) => return self.abort("read signals", &e),
                    }
                }
            }
            let ready = fds[0].revents;
            if let Some(listener) = listener.as_ref().filter(|_| ready & libc::POLLIN != 0) {
                if let Err((what, e)) = self.handle(listener) {
                    return self.abort(what, &e);
                }
            } else if ready & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                // Nothing uses the filter any more: only the command's end is awaited.
                notify_fd = -1;
            }
            if let Some(b) = &mut self.bridge {
                b.ready(&fds[2..]);
            }
        }
    }

    /// Reaps every child that ended; the command's status once it has.
    fn reap(&self) -> io::Result<Option<Status>> {
        while let Some((pid, status)) = notify::reap_any()? {
            if pid == self.child {
                return Ok(Some(status));
            }
        }
        Ok(None)
    }

    /// The supervisor cannot go on: the command must not run unsupervised.
    fn abort(&self, what: &str, e: &io::Error) -> ExitCode {
        eprintln!(
            "greywall: create-deny supervisor: {what}: {}",
            crate::sys::describe(e)
        );
        let _ = notify::kill(self.child, libc::SIGKILL);
        let _ = notify::wait(self.child);
        ExitCode::from(EXIT_SETUP)
    }

    /// Receives and answers one notification.
    fn handle(&self, listener: &Listener) -> Result<(), (&'static str, io::Error)> {
        let n = match listener.recv() {
            Ok(n) => n,
            // The syscall went away (its process was killed, or a signal interrupted it).
            Err(e) if is(&e, &[libc::ENOENT, libc::EINTR]) => return Ok(()),
            Err(e) => return Err(("receive a notification", e)),
        };
        let Some(response) = self.decide(listener, &n) else {
            return Ok(());
        };
        match listener.respond(n.id, response) {
            Err(e) if !is(&e, &[libc::ENOENT]) => Err(("answer a notification", e)),
            _ => Ok(()),
        }
    }

    /// The answer to `n`; `None` when its syscall no longer waits.
    fn decide(&self, listener: &Listener, n: &Notif) -> Option<Response> {
        // An error here answers the syscall anyway: with a refusal.
        let waiting = |id| listener.id_valid(id).unwrap_or(true);
        let Some(call) = decode(n.nr, &n.args).filter(|_| self.arch == Some(n.arch)) else {
            return Some(Response::Errno(libc::EACCES));
        };
        if matches!(&call, Call::Entries { new, .. } if new.is_empty()) {
            return Some(Response::Continue);
        }
        let Ok(task) = Task::open(n.pid) else {
            return waiting(n.id).then_some(Response::Errno(libc::EACCES));
        };
        // From here on, `task` is the process that made the syscall (not a recycled id).
        if !waiting(n.id) {
            return None;
        }
        let verdict = self.check(&task, call);
        if !waiting(n.id) {
            return None;
        }
        Some(match verdict {
            Ok(None) => Response::Continue,
            Ok(Some(errno)) | Err(errno) => Response::Errno(errno),
        })
    }

    /// `Ok(None)` when no rule refuses the call, else the errno to refuse it with.
    fn check(&self, task: &Task, call: Call) -> Result<Option<Errno>, Errno> {
        let mem = task.mem()?;
        let (entries, moved) = match call {
            Call::Entries { new, moved } => (new, moved),
            Call::OpenHow {
                dirfd,
                path,
                how,
                size,
            } => {
                // struct open_how { u64 flags; u64 mode; u64 resolve; }
                if size < 24 {
                    return Err(libc::EINVAL);
                }
                let raw: [u8; 24] = task.read(&mem, how)?;
                let word = |i: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&raw[i * 8..i * 8 + 8]);
                    u64::from_ne_bytes(w)
                };
                let (flags, resolve) = (word(0), word(2));
                if flags & libc::O_CREAT as u64 == 0 {
                    return Ok(None);
                }
                let entry = Entry {
                    dirfd,
                    path,
                    follow: flags & (libc::O_EXCL | libc::O_NOFOLLOW) as u64 == 0,
                    kind: Kind::Create,
                    in_root: resolve & libc::RESOLVE_IN_ROOT != 0,
                };
                (vec![entry], Vec::new())
            }
        };
        for e in &entries {
            let Some((lexical, real)) = self.locate(task, &mem, e)? else {
                continue;
            };
            // Nothing new where something is already (open, mkdir, link on an existing
            // entry); a rename replaces it.
            if real.exists && e.kind != Kind::Rename {
                continue;
            }
            let refused = |p: &[Vec<u8>]| match e.kind {
                Kind::Create => self.rules.refuses_creating(p),
                Kind::Symlink | Kind::Rename => self.rules.refuses_tree(p),
            };
            if refused(&lexical) || refused(&real.path) {
                return Ok(Some(refusal(&real.path)));
            }
        }
        for e in &moved {
            let Some((lexical, real)) = self.locate(task, &mem, e)? else {
                continue;
            };
            if self.rules.refuses_moving(&lexical) || self.rules.refuses_moving(&real.path) {
                return Ok(Some(refusal(&real.path)));
            }
        }
        Ok(None)
    }

    /// The entry's path, lexically and resolved; `None` when it leads through a magic link to
    /// something that exists.
    fn locate(
        &self,
        task: &Task,
        mem: &std::fs::File,
        e: &Entry,
    ) -> Result<Option<(Components, path::Resolved)>, Errno> {
        let raw = task.read_path(mem, e.path)?;
        if raw.is_empty() {
            return Err(libc::ENOENT);
        }
        let root: Components = if e.in_root {
            task.dir(e.dirfd)?
        } else {
            Components::new()
        };
        let start = if e.in_root || raw.first() == Some(&b'/') {
            root.clone()
        } else {
            task.dir(e.dirfd)?
        };
        let lexical = path::lexical(&root, &start, &raw);
        Ok(path::resolve(task, &root, &start, &raw, e.follow)?.map(|real| (lexical, real)))
    }
}

/// The errno for a refused entry: `EROFS` where the kernel would refuse it anyway because its
/// folder is a read-only mount (a protected folder that exists), `EACCES` elsewhere.
fn refusal(path: &[Vec<u8>]) -> Errno {
    let parent = &path[..path.len().saturating_sub(1)];
    let read_only = std::ffi::CString::new(rules::display(parent))
        .ok()
        .and_then(|p| notify::is_read_only(&p).ok())
        .unwrap_or(false);
    if read_only { libc::EROFS } else { libc::EACCES }
}

/// What a new entry can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A file, folder, device node or hard link: nothing comes along.
    Create,
    /// A symlink: it can lead to a populated folder.
    Symlink,
    /// A rename's destination: it replaces what is there and can bring a populated folder.
    Rename,
}

/// A path a syscall creates (or, for a rename's source, moves away).
struct Entry {
    /// `AT_FDCWD` or the directory descriptor a relative `path` starts from.
    dirfd: i32,
    /// Address of the path in the process's memory.
    path: u64,
    /// The syscall follows a symlink at the end of the path (and creates its target).
    follow: bool,
    kind: Kind,
    /// `openat2` with `RESOLVE_IN_ROOT`: `dirfd` is the root.
    in_root: bool,
}

enum Call {
    /// The entries the syscall creates (none: it creates nothing, as `open` without
    /// `O_CREAT`), and those a rename moves away.
    Entries { new: Vec<Entry>, moved: Vec<Entry> },
    /// `openat2`: the flags are in memory, at `how`.
    OpenHow {
        dirfd: i32,
        path: u64,
        how: u64,
        size: u64,
    },
}

/// The new entries of syscall `nr` (the filter only asks about those that create one).
fn decode(nr: i32, a: &[u64; 6]) -> Option<Call> {
    // Descriptors and flags are C ints: the low 32 bits.
    let int = |i: usize| a[i] as u32 as i32;
    let entry = |dirfd: i32, path: u64, follow: bool, kind: Kind| Entry {
        dirfd,
        path,
        follow,
        kind,
        in_root: false,
    };
    let new = |e: Vec<Entry>| Call::Entries {
        new: e,
        moved: Vec::new(),
    };
    let open = |dirfd: i32, path: u64, flags: i32| {
        new(if flags & libc::O_CREAT == 0 {
            Vec::new()
        } else {
            let follow = flags & (libc::O_EXCL | libc::O_NOFOLLOW) == 0;
            vec![entry(dirfd, path, follow, Kind::Create)]
        })
    };
    let one = |dirfd: i32, path: u64, kind: Kind| new(vec![entry(dirfd, path, false, kind)]);
    let rename = |from: (i32, u64), to: (i32, u64), exchange: bool| {
        let mut new = vec![entry(to.0, to.1, false, Kind::Rename)];
        let mut moved = vec![entry(from.0, from.1, false, Kind::Rename)];
        if exchange {
            new.push(entry(from.0, from.1, false, Kind::Rename));
            moved.push(entry(to.0, to.1, false, Kind::Rename));
        }
        Call::Entries { new, moved }
    };
    Some(match libc::c_long::from(nr) {
        libc::SYS_openat => open(int(0), a[1], int(2)),
        libc::SYS_openat2 => Call::OpenHow {
            dirfd: int(0),
            path: a[1],
            how: a[2],
            size: a[3],
        },
        libc::SYS_mkdirat | libc::SYS_mknodat => one(int(0), a[1], Kind::Create),
        libc::SYS_symlinkat => one(int(1), a[2], Kind::Symlink),
        libc::SYS_linkat => one(int(2), a[3], Kind::Create),
        libc::SYS_renameat => rename((int(0), a[1]), (int(2), a[3]), false),
        libc::SYS_renameat2 => rename((int(0), a[1]), (int(2), a[3]), a[4] & RENAME_EXCHANGE != 0),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => open(libc::AT_FDCWD, a[0], int(1)),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_creat => new(vec![entry(libc::AT_FDCWD, a[0], true, Kind::Create)]),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mkdir | libc::SYS_mknod => one(libc::AT_FDCWD, a[0], Kind::Create),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_symlink => one(libc::AT_FDCWD, a[1], Kind::Symlink),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_link => one(libc::AT_FDCWD, a[1], Kind::Create),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_rename => rename((libc::AT_FDCWD, a[0]), (libc::AT_FDCWD, a[1]), false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use greywall_compiler::backend::seccomp::{Arch, notify_syscalls};

    /// Every syscall the notify filter asks about is decoded, and nothing else is.
    #[test]
    fn decodes_what_the_filter_asks_about() {
        let Some(arch) = Arch::host() else { return };
        let creat = libc::O_CREAT as u64;
        for (name, nr) in notify_syscalls(arch) {
            let args = [libc::AT_FDCWD as u64, 0x1000, creat, 0x2000, 0, 0];
            let args = if name == "open" {
                [0x1000, creat, 0, 0, 0, 0]
            } else {
                args
            };
            match decode(nr, &args) {
                Some(Call::Entries { new, .. }) => assert!(!new.is_empty(), "{name}"),
                Some(Call::OpenHow { .. }) => assert_eq!(name, "openat2"),
                None => panic!("{name} not decoded"),
            }
        }
        assert!(decode(0, &[0; 6]).is_none());
    }

    #[test]
    fn new_entry_arguments() {
        let paths = |e: &[Entry]| -> Vec<(i32, u64, Kind)> {
            e.iter().map(|e| (e.dirfd, e.path, e.kind)).collect()
        };
        let a = [7, 0x10, 8, 0x20, RENAME_EXCHANGE, 0];
        let Some(Call::Entries { new, moved }) = decode(libc::SYS_renameat2 as i32, &a) else {
            panic!("renameat2");
        };
        assert_eq!(
            paths(&new),
            [(8, 0x20, Kind::Rename), (7, 0x10, Kind::Rename)]
        );
        assert_eq!(
            paths(&moved),
            [(7, 0x10, Kind::Rename), (8, 0x20, Kind::Rename)]
        );
        let Some(Call::Entries { new, moved }) = decode(libc::SYS_renameat as i32, &a) else {
            panic!("renameat");
        };
        assert_eq!(paths(&new), [(8, 0x20, Kind::Rename)]);
        assert_eq!(paths(&moved), [(7, 0x10, Kind::Rename)]);
        let Some(Call::Entries { new, moved }) = decode(libc::SYS_linkat as i32, &a) else {
            panic!("linkat");
        };
        assert_eq!(paths(&new), [(8, 0x20, Kind::Create)]);
        assert!(moved.is_empty());
        let symlinkat = decode(libc::SYS_symlinkat as i32, &[0x10, 9, 0x30, 0, 0, 0]);
        let Some(Call::Entries { new, .. }) = symlinkat else {
            panic!("symlinkat");
        };
        assert_eq!(paths(&new), [(9, 0x30, Kind::Symlink)]);
        // openat: O_CREAT decides, O_EXCL and O_NOFOLLOW stop following a final symlink.
        let openat =
            |flags: i32| match decode(libc::SYS_openat as i32, &[3, 0x40, flags as u64, 0, 0, 0]) {
                Some(Call::Entries { new, .. }) => new.first().map(|e| (e.dirfd, e.follow)),
                _ => panic!("openat"),
            };
        assert_eq!(openat(libc::O_RDWR), None);
        assert_eq!(openat(libc::O_CREAT | libc::O_WRONLY), Some((3, true)));
        assert_eq!(openat(libc::O_CREAT | libc::O_EXCL), Some((3, false)));
        assert_eq!(openat(libc::O_CREAT | libc::O_NOFOLLOW), Some((3, false)));
        // AT_FDCWD arrives with its upper 32 bits set, or not.
        for cwd in [libc::AT_FDCWD as u64, libc::AT_FDCWD as u32 as u64] {
            let Some(Call::Entries { new, .. }) =
                decode(libc::SYS_mkdirat as i32, &[cwd, 1, 0, 0, 0, 0])
            else {
                panic!("mkdirat");
            };
            assert_eq!(new[0].dirfd, libc::AT_FDCWD);
        }
    }

    #[test]
    fn exit_codes_follow_shells() {
        assert_eq!(exit_code(Status::Exited(3)), ExitCode::from(3));
        assert_eq!(exit_code(Status::Signaled(15)), ExitCode::from(143));
    }
}
