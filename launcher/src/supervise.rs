//! The create-deny supervisor: protected paths stay uncreatable where they do not exist yet,
//! and unwritable where no mount protects them.
//!
//! Protected paths directly in the working and home directories are read-only mounts, but
//! nothing can be mounted over a path that does not exist, a protected name holds at any depth
//! below the working directory (walking the tree at launch to mount over each one is what this
//! design avoids), and Landlock cannot deny inside a directory it allows. So when the plan has
//! create-deny rules, the launcher forks once the namespaces and mounts are in place (both
//! processes share the sandbox's view):
//!
//! - the command's side sandboxes itself as usual (Landlock, `no_new_privs`), then loads the
//!   notify filter with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, sends the listener to the
//!   supervisor over a socket pair (`SCM_RIGHTS`) and execs the command;
//! - the supervisor is neither Landlocked nor filtered. It receives every syscall
//!   that creates a directory entry (`open`/`openat` with `O_CREAT`, `creat`, `openat2`,
//!   `mkdir*`, `mknod*`, `symlink*`, `link*`, `rename*`) or writes a file by its path (`open`/
//!   `openat`/`openat2` with `O_WRONLY`, `O_RDWR` or `O_TRUNC`, `truncate`), reads the path
//!   from the process's memory, resolves it as the kernel would ([`path`]), and answers
//!   `EACCES` when a rule refuses it ([`rules`]; `EROFS` when its folder is a read-only mount,
//!   as the kernel would) or lets the kernel go on (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
//!
//! What it refuses:
//!
//! - a new entry a rule covers; what exists already is otherwise left to the kernel (`mkdir -p`
//!   on a protected folder still sees `EEXIST`), except that a rename replaces it; and a rename
//!   may not move away a folder above a protected path, which would leave that path free to
//!   create;
//! - opening for writing, or truncating, an existing file the same rules cover (the lexical
//!   path and the resolved one, as for creation), and giving one a new name with a hard link,
//!   through which it could be written. Where the file is a read-only mount the kernel gives
//!   its own answer (`EROFS`, `EXDEV`). A path ending on a magic link (`/proc/self/fd/N`,
//!   `/dev/stdout`) is judged by the object it leads to, named by the link's text; a pipe or
//!   socket has no name and is never refused, and a deleted file that still has another name
//!   is refused because that name cannot be known.
//!
//! A read-only `open` never reaches the supervisor. Anything it cannot read or decide is
//! refused: `EACCES`, or the errno the kernel itself would return (`EFAULT` for an unreadable
//! path, `ENOENT` for a missing parent directory).
//!
//! Where it runs ([`Side`]): with user namespaces, beside the command. The launcher forks it
//! off (twice, so that it is nobody's child in the sandbox) and becomes the command itself,
//! which keeps the caller's process id, signals and exit status, and pays no wait for a
//! parent to notice its end. The supervisor ignores the signals a terminal or caller sends a
//! process group, lets go of the caller's standard descriptors (stderr once the command has
//! ended, so that a caller reading the output to its end never waits for it), watches the
//! command through a pidfd opened before the fork, and serves its descendants until the last
//! process under the filter has ended. Without user namespaces it has no capabilities, and
//! Yama lets it read only its descendants' memory: then it stays above the command as its
//! parent, forwards `SIGINT`, `SIGTERM`, `SIGHUP`, `SIGQUIT` and `SIGWINCH` sent to it (not
//! those the terminal sends the whole process group, which the command receives anyway),
//! exits with the command's status (128 + the signal number when a signal ended it, as shells
//! report), and the command is killed when it dies (`PR_SET_PDEATHSIG`); descendants that
//! outlive the command find nobody listening. Either way the supervisor never runs the command
//! itself, and a syscall nobody answers fails with `ENOSYS`.
//!
//! Known limits:
//!
//! - The kernel reads the path again after `CONTINUE`: a deliberately racing multi-threaded
//!   program can change the path (or a symlink on it) between the check and the syscall.
//!   Protected paths directly in the working and home directories stay protected by their
//!   read-only mounts regardless; those deeper down (and new ones) rely on the check alone.
//! - A symlink inside a writable folder may point at a directory elsewhere that is writable;
//!   what is created through the link's real location is judged by that location, which the
//!   name rules (scoped to the working directory) do not cover.
//! - A hard link made before launch is another name for the same file: writing through a name
//!   no rule covers is allowed. Metadata changes (`chmod`, `utimensat`, extended attributes)
//!   and `unlink` of a protected file deeper down are not checked.
//! - Unix sockets bound with `bind(2)` create directory entries without these syscalls; they
//!   cannot be read or executed, so they are not checked.
//! - The names protected everywhere below the working directory hold for everything there:
//!   unpacking a package that ships, say, a `.vscode` folder fails, and so does writing an
//!   existing `sub/.vscode/settings.json`. `git init` and `git clone` work: creating (and
//!   writing) the `.git/hooks` folder and the `*.sample` hooks git copies into it is allowed
//!   (git never runs them), and a real hook still cannot be written, renamed or linked into
//!   place.
//! - The kernel allows one listener per seccomp filter chain: greywall with create-deny rules
//!   cannot run inside another one (it fails closed, `EBUSY`).
//! - Each created entry and each open for writing costs a round trip to the supervisor (the
//!   filter lets every other syscall, read-only opens included, through without one).

mod path;
mod rules;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;

pub use rules::Rules;

use crate::bridge::Bridge;

use self::path::{Errno, Located, Object, Task};
use self::rules::Components;
use crate::sys::notify::{self, Fork, Listener, Notif, Response, Status};
use crate::sys::{ns, scm, seqpacket};
use greywall_compiler::plan::LinuxPlan;

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

/// Where the supervisor runs, relative to the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Beside the command: the launcher forks the supervisor off (twice, so that it is
    /// nobody's child in the sandbox) and goes on to become the command itself. Nothing
    /// stands between the caller and the command: it keeps the launcher's process id, gets
    /// signals first-hand, and its exit status is the caller's to see. Reading the command's
    /// memory then rests on the supervisor's capabilities in the sandbox's user namespace,
    /// so this needs user namespaces.
    Beside,
    /// Above the command: the launcher stays as the supervisor and the command is its child
    /// (forwarded signals, its exit status passed on). Without user namespaces the
    /// supervisor has no capabilities, and Yama's ptrace scope lets it read the memory of its
    /// descendants only.
    Above,
}

/// The side of the fork this process is on.
pub enum Forked {
    /// The command's side: send the listener on this channel, then exec.
    Child(Channel),
    /// The supervisor's side, done: exit with this status.
    Done(ExitCode),
}

/// Where the command's side sends its listener.
pub struct Channel {
    fd: OwnedFd,
    /// [`Side::Beside`]: the process between the command and the supervisor, which exits
    /// at once and is reaped late, so that the command's set-up does not wait for it.
    middle: Option<libc::pid_t>,
}

impl Channel {
    /// Sends the listener to the supervisor and closes both (the command never holds it).
    pub fn send(self, listener: OwnedFd) -> io::Result<()> {
        let sent = scm::send_fd(self.fd.as_fd(), listener.as_fd());
        self.close();
        sent
    }

    /// Closes the channel unused (the supervisor runs only the bridge).
    pub fn close(self) {
        if let Some(middle) = self.middle {
            // Its status says nothing: the supervisor reports its own failures.
            let _ = notify::wait(middle);
        }
    }
}

/// Forks the supervisor on `side`. The supervisor answers the create-deny notifications (when
/// `rules` has any) and runs the network `bridge` (when there is one), in one poll loop.
pub fn fork(rules: Rules, bridge: Option<Bridge>, side: Side) -> io::Result<Forked> {
    match side {
        Side::Beside => fork_beside(rules, bridge),
        Side::Above => fork_above(rules, bridge),
    }
}

/// Signals the supervisor beside the command ignores: those a terminal or a caller sends a
/// whole process group or job are meant for the command, and the supervisor must outlive
/// the command's last use of it.
const IGNORED_BESIDE: [libc::c_int; 8] = [
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGPIPE,
];

fn fork_beside(rules: Rules, bridge: Option<Bridge>) -> io::Result<Forked> {
    let (ours, theirs) = notify::socketpair()?;
    // Opened before the fork, so that it names this process even if it ends (and its id is
    // reused) before the supervisor runs. Close-on-exec: the command never holds it.
    let pidfd = notify::pidfd_open(notify::pid())?;
    match notify::fork()? {
        Fork::Parent(middle) => {
            drop((ours, pidfd));
            Ok(Forked::Child(Channel {
                fd: theirs,
                middle: Some(middle),
            }))
        }
        Fork::Child => {
            drop(theirs);
            match notify::fork() {
                Ok(Fork::Parent(_)) => notify::exit_now(0),
                // Without a supervisor the command side finds the channel closed and stops.
                Err(_) => notify::exit_now(EXIT_SETUP.into()),
                Ok(Fork::Child) => {}
            }
            // Re-parented away from the command (to init or the caller's subreaper).
            let code = Supervisor::beside(pidfd, rules, bridge).run(ours);
            Ok(Forked::Done(code))
        }
    }
}

/// How long a supervisor whose command has ended keeps pumping the bridge's spliced
/// connections, so that their last bytes reach the client ([`crate::bridge::Bridge::drain`]).
const DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The process name of a supervisor beside its command.
pub const SUPERVISOR_NAME: &std::ffi::CStr = c"gw-supervisor";

/// Largest plan a waiting supervisor accepts (one message on its socket).
const MAX_HANDED_PLAN: usize = 1 << 20;

/// A supervisor the namespace pool started ahead ([`crate::nspool`]): a process already in
/// the prepared user namespace (so it may read the memory of what runs there), waiting on
/// this socket for a launch to hand it a plan. Using it saves the launch its fork.
pub struct Waiting(OwnedFd);

impl Waiting {
    pub fn new(fd: OwnedFd) -> Waiting {
        Waiting(fd)
    }

    /// Hands the plan to the waiting supervisor: it takes the create-deny rules from it,
    /// joins this process's mount namespace (the sandbox's view), writes to this process's
    /// standard error, and watches this process through a pidfd. The returned channel takes
    /// the seccomp listener, as a forked supervisor's does.
    pub fn hand_over(
        self,
        plan: &LinuxPlan,
        encoded: Option<&[u8]>,
        bridge: Option<Bridge>,
    ) -> io::Result<Channel> {
        let fresh;
        let bytes = match encoded {
            Some(b) => b,
            None => {
                fresh = plan.encode();
                &fresh
            }
        };
        if bytes.len() > MAX_HANDED_PLAN {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        let pidfd = notify::pidfd_open(notify::pid())?;
        let mounts = ns::own_mount_namespace(pidfd.as_fd())?;
        let parts = match bridge {
            Some(b) => b
                .into_parts()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?,
            None => crate::bridge::Parts {
                text: String::new(),
                fds: Vec::new(),
            },
        };
        // One message, one wake-up of the supervisor: the plan's length and bytes, then the
        // network bridge's description (`bridge N`, N its descriptors, and its text); the
        // pidfd, the mount namespace, standard error and the bridge's descriptors ride with
        // it (past the most one message carries, the rest follow in messages of their own).
        let mut message = Vec::with_capacity(bytes.len() + parts.text.len() + 32);
        message.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        message.extend_from_slice(bytes);
        message.extend_from_slice(format!("bridge {}\n{}", parts.fds.len(), parts.text).as_bytes());
        let stderr = io::stderr();
        let mut fds = vec![pidfd.as_fd(), mounts.as_fd(), stderr.as_fd()];
        fds.extend(parts.fds.iter().map(AsFd::as_fd));
        let mut chunks = fds.chunks(scm::MAX_FDS);
        scm::send(self.0.as_fd(), &message, chunks.next().unwrap_or_default())?;
        for more in chunks {
            scm::send(self.0.as_fd(), MORE_FDS, more)?;
        }
        Ok(Channel {
            fd: self.0,
            middle: None,
        })
    }
}

/// The message that carries descriptors past the first message's [`scm::MAX_FDS`].
const MORE_FDS: &[u8] = b"+";

/// Largest description of a network bridge handed with a plan.
const MAX_HANDED_BRIDGE: usize = 64 << 10;

/// In a process the pool forked into a prepared user namespace: waits for a launch's plan
/// ([`Waiting::hand_over`]), then supervises that launch. `None` when no launch came (the
/// pool ended, or the launch used its own supervisor).
pub fn wait_for_hand_over(channel: OwnedFd) -> Option<ExitCode> {
    let (bytes, mut fds) =
        scm::recv(channel.as_fd(), 4 + MAX_HANDED_PLAN + MAX_HANDED_BRIDGE).ok()??;
    // A launch is ours: its syscalls wait for our answers (the pool made us a batch process).
    let _ = notify::set_batch_scheduling(false);
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let (plan, head) = rest.split_at_checked(usize::try_from(u32::from_le_bytes(*len)).ok()?)?;
    let plan = LinuxPlan::decode(plan).ok()?;
    let head = std::str::from_utf8(head).ok()?;
    let (first, text) = head.split_once('\n')?;
    let count: usize = first.strip_prefix("bridge ")?.parse().ok()?;
    let want = count.checked_add(3).filter(|&n| n <= 1024)?;
    while fds.len() < want {
        let (marker, more) = scm::recv(channel.as_fd(), MORE_FDS.len()).ok()??;
        if marker != MORE_FDS || more.is_empty() {
            return None;
        }
        fds.extend(more);
    }
    if fds.len() != want {
        return None;
    }
    let mut fds = fds.into_iter();
    let (pidfd, mounts, stderr) = (fds.next()?, fds.next()?, fds.next()?);
    let fds: Vec<OwnedFd> = fds.collect();
    let bridge = if text.is_empty() && fds.is_empty() {
        None
    } else {
        Some(Bridge::from_parts(crate::bridge::Parts {
            text: text.to_string(),
            fds,
        })?)
    };
    let _ = seqpacket::set_stderr(stderr.as_fd());
    let s = Supervisor::beside(pidfd, Rules::new(&plan.create_deny).ok()?, bridge);
    if let Err(e) = ns::enter(mounts.as_fd(), libc::CLONE_NEWNS) {
        return Some(s.abort("join the sandbox's mount namespace", &e));
    }
    drop((stderr, mounts));
    Some(s.run(channel))
}

fn fork_above(rules: Rules, bridge: Option<Bridge>) -> io::Result<Forked> {
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
            Ok(Forked::Child(Channel {
                fd: theirs,
                middle: None,
            }))
        }
        Ok(Fork::Parent(child)) => {
            drop(theirs);
            let s = Supervisor {
                rules,
                command: Command::Child {
                    pid: child,
                    signals,
                },
                arch: host_arch(),
                bridge,
                reported: Default::default(),
            };
            Ok(Forked::Done(s.run(ours)))
        }
    }
}

fn host_arch() -> Option<u32> {
    greywall_compiler::backend::seccomp::Arch::host().map(|a| a.audit_arch())
}

/// The command, as the supervisor knows it.
enum Command {
    /// Our child ([`Side::Above`]): reaped on `SIGCHLD`, read from a signalfd that also
    /// carries the signals to forward.
    Child { pid: libc::pid_t, signals: OwnedFd },
    /// Not our child ([`Side::Beside`]): its pidfd polls readable when it ends. `None`
    /// once it has.
    Apart { pidfd: Option<OwnedFd> },
}

struct Supervisor {
    rules: Rules,
    command: Command,
    /// The `AUDIT_ARCH_*` the filters let through.
    arch: Option<u32>,
    /// The network bridge ([`crate::bridge`]), when the plan has egress or ports to expose.
    bridge: Option<Bridge>,
    /// The refusals said on the command's standard error so far ([`Supervisor::report`]).
    reported: std::cell::RefCell<Vec<Vec<u8>>>,
}

/// How many refused paths the supervisor names on the command's standard error; one more
/// line then says that further refusals are not shown.
const REPORTS: usize = 3;

/// Reaps every child that ended; `child`'s status once it has.
fn reap(child: libc::pid_t) -> io::Result<Option<Status>> {
    while let Some((pid, status)) = notify::reap_any()? {
        if pid == child {
            return Ok(Some(status));
        }
    }
    Ok(None)
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
    /// The supervisor beside the command `pidfd` names ([`Side::Beside`]), in the process
    /// forked for it.
    fn beside(pidfd: OwnedFd, rules: Rules, bridge: Option<Bridge>) -> Supervisor {
        // Ending early would leave the command unsupervised; what it shares with the caller
        // (a pipe the caller reads to its end, a terminal) is not the supervisor's to hold.
        let _ = notify::ignore(&IGNORED_BESIDE);
        let _ = notify::to_dev_null(&[libc::STDIN_FILENO, libc::STDOUT_FILENO]);
        // What `ps` shows: this process supervises a sandbox (it is not the command).
        let _ = notify::set_name(SUPERVISOR_NAME);
        Supervisor {
            rules,
            command: Command::Apart { pidfd: Some(pidfd) },
            arch: host_arch(),
            bridge,
            reported: Default::default(),
        }
    }

    fn run(mut self, channel: OwnedFd) -> ExitCode {
        // The sandbox runs as the same user: keep it out of the supervisor's memory (where the
        // rules are) in case Landlock, which otherwise keeps it out, is missing.
        if let Err(e) = notify::set_not_dumpable() {
            return self.abort("prctl(PR_SET_DUMPABLE)", &e);
        }
        if matches!(self.command, Command::Child { .. }) {
            // Orphaned descendants stay ours, so their memory stays readable under Yama.
            let _ = notify::set_child_subreaper();
        }
        // Without create-deny rules the command sends no listener (only the bridge runs).
        let received = if self.rules.is_empty() {
            Ok(None)
        } else {
            scm::recv_fd(channel.as_fd()).map(|fd| fd.map(Some))
        };
        let listener = match received {
            Ok(None) => None,
            Ok(Some(Some(fd))) => match Listener::new(fd) {
                Ok(l) => Some(l),
                Err(e) => return self.abort("query the seccomp notification sizes", &e),
            },
            // The command's side failed before it could send the listener, and said why.
            Ok(Some(None)) => return self.command_failed(),
            Err(e) => return self.abort("receive the seccomp listener", &e),
        };
        drop(channel);
        if let Some(l) = &listener {
            let _ = l.prefer_sync_wake_up();
        }
        let mut notify_fd = listener.as_ref().map_or(-1, |l| l.fd().as_raw_fd());
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(8);
        loop {
            let command_fd = match &self.command {
                Command::Child { signals, .. } => signals.as_raw_fd(),
                Command::Apart { pidfd, .. } => pidfd.as_ref().map_or(-1, |p| p.as_raw_fd()),
            };
            if notify_fd < 0 && command_fd < 0 {
                // Beside: the command has ended and nothing uses the filter any more.
                if let Some(b) = &mut self.bridge {
                    b.drain(DRAIN);
                }
                return ExitCode::SUCCESS;
            }
            fds.clear();
            for fd in [notify_fd, command_fd] {
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if let Some(b) = &self.bridge {
                b.pollfds(&mut fds);
            }
            if let Err(e) = notify::poll(&mut fds, -1) {
                return self.abort("poll", &e);
            }
            if fds[1].revents != 0
                && let Some(code) = self.command_event()
            {
                // Above: the command has ended; what it sent last still goes out.
                if let Some(b) = &mut self.bridge {
                    b.ready(&fds[2..]);
                    b.drain(DRAIN);
                }
                return code;
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

    /// Handles what the command's descriptor reported; `Some` when the supervisor is done.
    fn command_event(&mut self) -> Option<ExitCode> {
        if let Command::Apart { pidfd, .. } = &mut self.command {
            // The command has ended. Its descendants may still use the filter (they stay
            // supervised until the last one ends), but the caller, who may be reading the
            // command's output to its end, must not wait for the supervisor.
            *pidfd = None;
            let _ = notify::to_dev_null(&[libc::STDERR_FILENO]);
            return None;
        }
        let Command::Child { pid, signals } = &self.command else {
            return None;
        };
        let (child, signals) = (*pid, signals.as_fd());
        loop {
            match notify::read_signal(signals) {
                Ok(None) => return None,
                Ok(Some((libc::SIGCHLD, _))) => match reap(child) {
                    Ok(Some(status)) => return Some(exit_code(status)),
                    Ok(None) => {}
                    Err(e) => return Some(self.abort("wait for the command", &e)),
                },
                // The terminal signals the whole process group (SI_KERNEL): the command has
                // its own copy.
                Ok(Some((_, libc::SI_KERNEL))) => {}
                Ok(Some((sig, _))) => {
                    let _ = notify::kill(child, sig);
                }
                Err(e) => return Some(self.abort("read signals", &e)),
            }
        }
    }

    /// The command's side failed before the sandbox was complete (it said why).
    fn command_failed(&self) -> ExitCode {
        match &self.command {
            Command::Child { pid, .. } => match notify::wait(*pid) {
                Ok(s) => exit_code(s),
                Err(_) => ExitCode::from(EXIT_SETUP),
            },
            Command::Apart { .. } => ExitCode::from(EXIT_SETUP),
        }
    }

    /// The supervisor cannot go on: the command must not run unsupervised.
    fn abort(&self, what: &str, e: &io::Error) -> ExitCode {
        eprintln!(
            "greywall: create-deny supervisor: {what}: {}",
            crate::sys::describe(e)
        );
        match &self.command {
            Command::Child { pid, .. } => {
                let _ = notify::kill(*pid, libc::SIGKILL);
                let _ = notify::wait(*pid);
            }
            Command::Apart { pidfd: Some(fd) } => {
                let _ = notify::pidfd_kill(fd.as_fd(), libc::SIGKILL);
            }
            // Ended: its descendants find nobody listening (their calls fail with ENOSYS).
            Command::Apart { pidfd: None } => {}
        }
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
        if matches!(&call, Call::Entries { at, .. } if at.is_empty()) {
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
            Call::Entries { at, moved } => (at, moved),
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
                let Some(mut entry) = open_entry(dirfd, path, flags) else {
                    return Ok(None);
                };
                entry.in_root = resolve & libc::RESOLVE_IN_ROOT != 0;
                (vec![entry], Vec::new())
            }
        };
        for e in &entries {
            let (lexical, real) = match self.locate(task, &mem, e)? {
                // A magic link: the object exists, nothing is created.
                (_, Located::Object(object)) => {
                    if let Some(touch) = e.touches
                        && let Some(errno) = self.touching_object(touch, &object)
                    {
                        return Ok(Some(errno));
                    }
                    continue;
                }
                (lexical, Located::Path(real)) => (lexical, real),
            };
            if real.exists {
                // Writing (or linking) what is there: refused where creating it would be.
                if let Some(touch) = e.touches
                    && (self.rules.refuses_creating(&lexical)
                        || self.rules.refuses_creating(&real.path))
                    && let Some(errno) = touching(touch, &path::host_path(&real.path))
                {
                    self.report(touch.verb(), &rules::display(&real.path));
                    return Ok(Some(errno));
                }
                // Nothing new where something is already (open, mkdir, link on an existing
                // entry); a rename replaces it.
                if e.creates != Some(Kind::Rename) {
                    continue;
                }
            }
            let Some(kind) = e.creates else {
                continue;
            };
            let refused = |p: &[Vec<u8>]| match kind {
                Kind::Create => self.rules.refuses_creating(p),
                Kind::Symlink | Kind::Rename => self.rules.refuses_tree(p),
            };
            if refused(&lexical) || refused(&real.path) {
                self.report(kind.verb(), &rules::display(&real.path));
                return Ok(Some(refusal(&real.path)));
            }
        }
        for e in &moved {
            let (lexical, Located::Path(real)) = self.locate(task, &mem, e)? else {
                continue;
            };
            if self.rules.refuses_moving(&lexical) || self.rules.refuses_moving(&real.path) {
                self.report("moving", &rules::display(&real.path));
                return Ok(Some(refusal(&real.path)));
            }
        }
        Ok(None)
    }

    /// Says on the command's standard error (which the supervisor shares) that a rule refused
    /// `verb` `path`, so that a failing `git init` (its `.git/config`) does not look like a
    /// broken filesystem: each path once, the first [`REPORTS`] of them, then one line saying
    /// that further refusals are not shown (a program that keeps probing cannot flood it).
    fn report(&self, verb: &str, path: &[u8]) {
        use std::io::Write as _;
        let Ok(mut reported) = self.reported.try_borrow_mut() else {
            return;
        };
        if reported.iter().any(|p| p == path) || reported.len() > REPORTS {
            return;
        }
        reported.push(path.to_vec());
        let line = if reported.len() > REPORTS {
            "greywall: further refusals by the sandbox's policy are not shown\n".to_string()
        } else {
            let shown = String::from_utf8_lossy(path);
            let hint = if path.ends_with(b"/.git/config") {
                "; `filesystem.allowGitConfig` lifts greywall's own `.git/config` protection"
            } else {
                ""
            };
            format!(
                "greywall: refused {verb} {shown}: protected by the sandbox's policy \
                 (`greywall explain write {shown}` names the rule{hint})\n"
            )
        };
        // Standard error may be closed or a full pipe: the refusal stands either way.
        let _ = io::stderr().write_all(line.as_bytes());
    }

    /// The errno for writing or linking the object a magic link leads to; `None` when no
    /// rule covers it (or the kernel refuses it by itself).
    fn touching_object(&self, touch: Touch, object: &Object) -> Option<Errno> {
        match object {
            Object::At { path, link } => {
                if !self.rules.refuses_creating(path) {
                    return None;
                }
                let errno = touching(touch, link)?;
                self.report(touch.verb(), link.as_os_str().as_encoded_bytes());
                Some(errno)
            }
            Object::Nameless => None,
            // Whether a rule covers it cannot be told: refused.
            Object::Unknown => Some(libc::EACCES),
        }
    }

    /// The entry's path, lexically and resolved.
    fn locate(
        &self,
        task: &Task,
        mem: &std::fs::File,
        e: &Entry,
    ) -> Result<(Components, Located), Errno> {
        let mut raw = task.read_path(mem, e.path)?;
        let (mut dirfd, mut follow) = (e.dirfd, e.follow);
        if raw.is_empty() {
            if !e.empty_path {
                return Err(libc::ENOENT);
            }
            // `AT_EMPTY_PATH`: the descriptor itself, as its magic link names it.
            raw = if dirfd == libc::AT_FDCWD {
                b"/proc/self/cwd".to_vec()
            } else {
                format!("/proc/self/fd/{dirfd}").into_bytes()
            };
            (dirfd, follow) = (libc::AT_FDCWD, true);
        }
        let root: Components = if e.in_root {
            task.dir(dirfd)?
        } else {
            Components::new()
        };
        let start = if e.in_root || raw.first() == Some(&b'/') {
            root.clone()
        } else {
            task.dir(dirfd)?
        };
        let lexical = path::lexical(&root, &start, &raw);
        Ok((lexical, path::resolve(task, &root, &start, &raw, follow)?))
    }
}

/// The errno for writing or linking an existing file a rule covers: `None` when the kernel
/// refuses it by itself because the file is on a read-only mount (it answers `EROFS` to a
/// write, and `EXDEV` or `EROFS` to a link), so that its own answer is the one seen; `EACCES`
/// otherwise, and for a device or FIFO, which a read-only mount does not keep from being
/// written.
fn touching(touch: Touch, path: &std::path::Path) -> Option<Errno> {
    use std::os::unix::fs::FileTypeExt;
    let read_only = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .ok()
        .and_then(|p| notify::is_read_only(&p).ok())
        .unwrap_or(false);
    let special = std::fs::metadata(path).map_or(true, |m| {
        let t = m.file_type();
        t.is_char_device() || t.is_block_device() || t.is_fifo() || t.is_socket()
    });
    match touch {
        Touch::Link if read_only => None,
        Touch::Write if read_only && !special => None,
        _ => Some(libc::EACCES),
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

impl Kind {
    /// How [`Supervisor::report`] names it.
    fn verb(self) -> &'static str {
        match self {
            Kind::Create => "creating",
            Kind::Symlink => "creating a symlink at",
            Kind::Rename => "renaming onto",
        }
    }
}

/// What a syscall does to a file that is there already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touch {
    /// Opens it for writing, or truncates it.
    Write,
    /// Gives it a new name (a hard link's source), through which it could then be written.
    Link,
}

impl Touch {
    /// How [`Supervisor::report`] names it.
    fn verb(self) -> &'static str {
        match self {
            Touch::Write => "writing",
            Touch::Link => "linking",
        }
    }
}

/// A path a syscall creates, writes, links or (for a rename's source) moves away.
struct Entry {
    /// `AT_FDCWD` or the directory descriptor a relative `path` starts from.
    dirfd: i32,
    /// Address of the path in the process's memory.
    path: u64,
    /// The syscall follows a symlink at the end of the path (and creates its target).
    follow: bool,
    /// What it creates when nothing is there yet (`None`: nothing).
    creates: Option<Kind>,
    /// What it does to what is there already, when a rule may care.
    touches: Option<Touch>,
    /// `openat2` with `RESOLVE_IN_ROOT`: `dirfd` is the root.
    in_root: bool,
    /// `AT_EMPTY_PATH`: an empty path names `dirfd` itself.
    empty_path: bool,
}

enum Call {
    /// The entries the syscall creates or writes (none: it does neither, as a read-only
    /// `open`), and those a rename moves away.
    Entries { at: Vec<Entry>, moved: Vec<Entry> },
    /// `openat2`: the flags are in memory, at `how`.
    OpenHow {
        dirfd: i32,
        path: u64,
        how: u64,
        size: u64,
    },
}

/// The entry of an `open` with `flags` (`open`, `openat`, `openat2`); `None` when it neither
/// creates nor writes anything.
///
/// `O_CREAT` creates; `O_WRONLY`, `O_RDWR` and `O_TRUNC` write what is there (`O_TRUNC`
/// truncates even a read-only open), except with `O_PATH`, which drops every other flag, and
/// with `O_CREAT | O_EXCL`, which fails on anything that exists. A symlink at the end is
/// followed unless `O_NOFOLLOW` or `O_CREAT | O_EXCL`.
fn open_entry(dirfd: i32, path: u64, flags: u64) -> Option<Entry> {
    let has = |f: libc::c_int| flags & f as u64 != 0;
    let exclusive = has(libc::O_CREAT) && has(libc::O_EXCL);
    let creates = has(libc::O_CREAT).then_some(Kind::Create);
    let writes = has(libc::O_WRONLY) || has(libc::O_RDWR) || has(libc::O_TRUNC);
    let touches = (writes && !has(libc::O_PATH) && !exclusive).then_some(Touch::Write);
    if creates.is_none() && touches.is_none() {
        return None;
    }
    Some(Entry {
        dirfd,
        path,
        follow: !has(libc::O_NOFOLLOW) && !exclusive,
        creates,
        touches,
        in_root: false,
        empty_path: false,
    })
}

/// The entries of syscall `nr` (the filter only asks about those that create an entry or
/// write a file).
fn decode(nr: i32, a: &[u64; 6]) -> Option<Call> {
    // Descriptors and flags are C ints: the low 32 bits.
    let int = |i: usize| a[i] as u32 as i32;
    let entry = |dirfd: i32, path: u64, follow: bool, kind: Kind| Entry {
        dirfd,
        path,
        follow,
        creates: Some(kind),
        touches: None,
        in_root: false,
        empty_path: false,
    };
    let at = |e: Vec<Entry>| Call::Entries {
        at: e,
        moved: Vec::new(),
    };
    let open = |dirfd: i32, path: u64, flags: i32| {
        at(open_entry(dirfd, path, u64::from(flags as u32))
            .into_iter()
            .collect())
    };
    let one = |dirfd: i32, path: u64, kind: Kind| at(vec![entry(dirfd, path, false, kind)]);
    // The destination, then the source, which must not be a protected file.
    let link = |from: (i32, u64), to: (i32, u64), flags: i32| {
        let source = Entry {
            dirfd: from.0,
            path: from.1,
            follow: flags & libc::AT_SYMLINK_FOLLOW != 0,
            creates: None,
            touches: Some(Touch::Link),
            in_root: false,
            empty_path: flags & libc::AT_EMPTY_PATH != 0,
        };
        at(vec![entry(to.0, to.1, false, Kind::Create), source])
    };
    let rename = |from: (i32, u64), to: (i32, u64), exchange: bool| {
        let mut new = vec![entry(to.0, to.1, false, Kind::Rename)];
        let mut moved = vec![entry(from.0, from.1, false, Kind::Rename)];
        if exchange {
            new.push(entry(from.0, from.1, false, Kind::Rename));
            moved.push(entry(to.0, to.1, false, Kind::Rename));
        }
        Call::Entries { at: new, moved }
    };
    let truncate = |path: u64| {
        at(vec![Entry {
            dirfd: libc::AT_FDCWD,
            path,
            follow: true,
            creates: None,
            touches: Some(Touch::Write),
            in_root: false,
            empty_path: false,
        }])
    };
    Some(match libc::c_long::from(nr) {
        libc::SYS_openat => open(int(0), a[1], int(2)),
        libc::SYS_openat2 => Call::OpenHow {
            dirfd: int(0),
            path: a[1],
            how: a[2],
            size: a[3],
        },
        libc::SYS_truncate => truncate(a[0]),
        libc::SYS_mkdirat | libc::SYS_mknodat => one(int(0), a[1], Kind::Create),
        libc::SYS_symlinkat => one(int(1), a[2], Kind::Symlink),
        libc::SYS_linkat => link((int(0), a[1]), (int(2), a[3]), int(4)),
        libc::SYS_renameat => rename((int(0), a[1]), (int(2), a[3]), false),
        libc::SYS_renameat2 => rename((int(0), a[1]), (int(2), a[3]), a[4] & RENAME_EXCHANGE != 0),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => open(libc::AT_FDCWD, a[0], int(1)),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_creat => open(
            libc::AT_FDCWD,
            a[0],
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
        ),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mkdir | libc::SYS_mknod => one(libc::AT_FDCWD, a[0], Kind::Create),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_symlink => one(libc::AT_FDCWD, a[1], Kind::Symlink),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_link => link((libc::AT_FDCWD, a[0]), (libc::AT_FDCWD, a[1]), 0),
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
            let args = if name == "open" || name == "truncate" {
                [0x1000, creat, 0, 0, 0, 0]
            } else {
                args
            };
            match decode(nr, &args) {
                Some(Call::Entries { at, .. }) => assert!(!at.is_empty(), "{name}"),
                Some(Call::OpenHow { .. }) => assert_eq!(name, "openat2"),
                None => panic!("{name} not decoded"),
            }
        }
        assert!(decode(0, &[0; 6]).is_none());
    }

    /// The filter's idea of a write-intent open is the kernel's (as the `libc` crate has it).
    #[test]
    fn filter_flags_are_the_kernels() {
        use greywall_compiler::backend::seccomp::{O_CREAT, O_RDWR, O_TRUNC, O_WRONLY};
        assert_eq!(O_CREAT, libc::O_CREAT as u32);
        assert_eq!(O_WRONLY, libc::O_WRONLY as u32);
        assert_eq!(O_RDWR, libc::O_RDWR as u32);
        assert_eq!(O_TRUNC, libc::O_TRUNC as u32);
    }

    fn effects(e: &[Entry]) -> Vec<(i32, u64, Option<Kind>, Option<Touch>)> {
        e.iter()
            .map(|e| (e.dirfd, e.path, e.creates, e.touches))
            .collect()
    }

    #[test]
    fn new_entry_arguments() {
        let paths = |e: &[Entry]| -> Vec<(i32, u64, Option<Kind>)> {
            e.iter().map(|e| (e.dirfd, e.path, e.creates)).collect()
        };
        let rename = Some(Kind::Rename);
        let a = [7, 0x10, 8, 0x20, RENAME_EXCHANGE, 0];
        let Some(Call::Entries { at, moved }) = decode(libc::SYS_renameat2 as i32, &a) else {
            panic!("renameat2");
        };
        assert_eq!(paths(&at), [(8, 0x20, rename), (7, 0x10, rename)]);
        assert_eq!(paths(&moved), [(7, 0x10, rename), (8, 0x20, rename)]);
        let Some(Call::Entries { at, moved }) = decode(libc::SYS_renameat as i32, &a) else {
            panic!("renameat");
        };
        assert_eq!(paths(&at), [(8, 0x20, rename)]);
        assert_eq!(paths(&moved), [(7, 0x10, rename)]);
        let symlinkat = decode(libc::SYS_symlinkat as i32, &[0x10, 9, 0x30, 0, 0, 0]);
        let Some(Call::Entries { at, .. }) = symlinkat else {
            panic!("symlinkat");
        };
        assert_eq!(paths(&at), [(9, 0x30, Some(Kind::Symlink))]);
        // AT_FDCWD arrives with its upper 32 bits set, or not.
        for cwd in [libc::AT_FDCWD as u64, libc::AT_FDCWD as u32 as u64] {
            let Some(Call::Entries { at, .. }) =
                decode(libc::SYS_mkdirat as i32, &[cwd, 1, 0, 0, 0, 0])
            else {
                panic!("mkdirat");
            };
            assert_eq!(at[0].dirfd, libc::AT_FDCWD);
        }
    }

    /// A hard link creates its destination and must not give a protected file a new name.
    #[test]
    fn link_sources_are_checked() {
        let flags = (libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) as u64;
        let Some(Call::Entries { at, moved }) =
            decode(libc::SYS_linkat as i32, &[7, 0x10, 8, 0x20, flags, 0])
        else {
            panic!("linkat");
        };
        assert_eq!(
            effects(&at),
            [
                (8, 0x20, Some(Kind::Create), None),
                (7, 0x10, None, Some(Touch::Link))
            ]
        );
        assert!(moved.is_empty());
        assert!(at[1].follow && at[1].empty_path && !at[0].follow);
        let Some(Call::Entries { at, .. }) =
            decode(libc::SYS_linkat as i32, &[7, 0x10, 8, 0x20, 0, 0])
        else {
            panic!("linkat");
        };
        assert!(!at[1].follow && !at[1].empty_path);
    }

    /// `O_CREAT` creates; a write bit or `O_TRUNC` writes what exists, unless `O_PATH` drops
    /// them or `O_CREAT | O_EXCL` fails on it; `truncate` writes.
    #[test]
    fn opens_create_and_write() {
        let openat =
            |flags: i32| match decode(libc::SYS_openat as i32, &[3, 0x40, flags as u64, 0, 0, 0]) {
                Some(Call::Entries { at, .. }) => at
                    .first()
                    .map(|e| (e.dirfd, e.follow, e.creates, e.touches)),
                _ => panic!("openat"),
            };
        let (create, write) = (Some(Kind::Create), Some(Touch::Write));
        assert_eq!(openat(libc::O_RDONLY), None);
        assert_eq!(openat(libc::O_RDONLY | libc::O_APPEND), None);
        assert_eq!(openat(libc::O_PATH | libc::O_WRONLY), None);
        assert_eq!(openat(libc::O_RDWR), Some((3, true, None, write)));
        assert_eq!(openat(libc::O_WRONLY), Some((3, true, None, write)));
        assert_eq!(openat(libc::O_TRUNC), Some((3, true, None, write)));
        assert_eq!(
            openat(libc::O_WRONLY | libc::O_NOFOLLOW),
            Some((3, false, None, write))
        );
        assert_eq!(
            openat(libc::O_TMPFILE | libc::O_WRONLY),
            Some((3, true, None, write))
        );
        assert_eq!(
            openat(libc::O_CREAT | libc::O_WRONLY),
            Some((3, true, create, write))
        );
        assert_eq!(openat(libc::O_CREAT), Some((3, true, create, None)));
        assert_eq!(
            openat(libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY),
            Some((3, false, create, None))
        );
        assert_eq!(
            openat(libc::O_CREAT | libc::O_NOFOLLOW | libc::O_RDWR),
            Some((3, false, create, write))
        );
        // The upper 32 bits of the argument are not flags.
        assert_eq!(openat(0), None);
        let Some(Call::Entries { at, .. }) =
            decode(libc::SYS_openat as i32, &[3, 0x40, 1 << 32, 0, 0, 0])
        else {
            panic!("openat");
        };
        assert!(at.is_empty());
        let Some(Call::Entries { at, .. }) =
            decode(libc::SYS_truncate as i32, &[0x40, 0, 0, 0, 0, 0])
        else {
            panic!("truncate");
        };
        assert_eq!(effects(&at), [(libc::AT_FDCWD, 0x40, None, write)]);
        assert!(at[0].follow);
    }

    #[test]
    fn exit_codes_follow_shells() {
        assert_eq!(exit_code(Status::Exited(3)), ExitCode::from(3));
        assert_eq!(exit_code(Status::Signaled(15)), ExitCode::from(143));
    }
}
