//! What the create-deny supervisor needs from the kernel: `fork`, passing the seccomp
//! listener over a socket, the listener's ioctls, signals and child processes, and reading
//! another process's `/proc` entries.
//!
//! The policy (what to refuse, how to resolve paths) lives in [`crate::supervise`].

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// ---- Processes -----------------------------------------------------------------------------

/// Which side of a `fork` this is.
pub enum Fork {
    Child,
    Parent(libc::pid_t),
}

/// `fork(2)`. The launcher is single-threaded when it calls this, so the child may go on
/// running ordinary Rust code: no other thread can hold a lock the child would inherit.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: fork takes no arguments; the caller is single-threaded (see above), so the child
    // starts with a consistent copy of every lock and allocator state.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// The parent process's id.
pub fn parent_pid() -> libc::pid_t {
    // SAFETY: getppid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::getppid() }
}

/// This process's id.
pub fn pid() -> libc::pid_t {
    // SAFETY: getpid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::getpid() }
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: the kernel sends `sig` to this process when the thread
/// that forked it exits.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    let sig =
        libc::c_ulong::try_from(sig).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the call takes only integers and changes only this process's attributes.
    super::check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_CHILD_SUBREAPER)`: orphaned descendants are re-parented to this process
/// rather than to init, so they stay its descendants (which Yama's ptrace scope requires for
/// reading their memory).
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: the call takes only integers and changes only this process's attributes.
    super::check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_DUMPABLE, 0)`: processes of the same user (the sandbox, even as root of its
/// user namespace) can no longer read or write this process's memory or descriptors.
pub fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: the call takes only integers and changes only this process's attributes.
    super::check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// `pidfd_open(2)`: a descriptor for process `pid` that polls readable once it has ended.
/// The descriptor names that process only, so a recycled id cannot be mistaken for it.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: the syscall takes two integers and touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by pidfd_open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`: sends `sig` to the process `pidfd` names, never to a successor
/// that reused its id.
pub fn pidfd_kill(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a null siginfo asks for the kill(2) defaults; the other arguments are integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ignores `signals` in this process (`SIG_IGN`).
pub fn ignore(signals: &[libc::c_int]) -> io::Result<()> {
    for &sig in signals {
        // SAFETY: SIG_IGN installs no handler code; the previous disposition is not needed.
        if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Points each of `fds` at `/dev/null`: this process stops holding what they were (a pipe a
/// reader waits to see closed, a terminal).
pub fn to_dev_null(fds: &[libc::c_int]) -> io::Result<()> {
    let null = open_at(None, c"/dev/null", libc::O_RDWR)?;
    for &fd in fds {
        // SAFETY: dup2 takes two descriptors; `null` stays open across the call.
        super::check(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// `_exit(2)`: ends this process at once, running no destructors or exit handlers (the
/// intermediate process of a double fork owns nothing worth cleaning up).
pub fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// `prctl(PR_SET_NAME)`: the name `ps` shows for this process (at most 15 bytes).
pub fn set_name(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; the kernel copies at most 16 bytes of it.
    super::check(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) }).map(drop)
}

/// `sched_setscheduler(2)` to `SCHED_BATCH` (`true`) or back to `SCHED_OTHER`: a batch
/// process does not preempt others when it wakes up. Neither needs a privilege.
pub fn set_batch_scheduling(batch: bool) -> io::Result<()> {
    // SAFETY: sched_param is plain old data; all zero (priority 0, as both policies need) is a
    // valid value whatever other fields the C library adds.
    let param: libc::sched_param = unsafe { std::mem::zeroed() };
    let policy = if batch {
        libc::SCHED_BATCH
    } else {
        libc::SCHED_OTHER
    };
    // The system call itself: musl's `sched_setscheduler` is a stub that fails with ENOSYS
    // (the static build would silently stay a normal process).
    // SAFETY: `param` is a valid sched_param the kernel only reads; 0 names this process.
    super::check_long(unsafe {
        libc::syscall(libc::SYS_sched_setscheduler, 0, policy, &raw const param)
    })
    .map(drop)
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

fn status_of(raw: libc::c_int) -> Option<Status> {
    if libc::WIFEXITED(raw) {
        Some(Status::Exited(libc::WEXITSTATUS(raw)))
    } else if libc::WIFSIGNALED(raw) {
        Some(Status::Signaled(libc::WTERMSIG(raw)))
    } else {
        None
    }
}

/// Reaps one child that has ended, if any (`waitpid(-1, WNOHANG)`). `Ok(None)`: none has.
pub fn reap_any() -> io::Result<Option<(libc::pid_t, Status)>> {
    loop {
        let mut raw: libc::c_int = 0;
        // SAFETY: `raw` is a valid, writable int; waitpid writes only into it.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        match pid {
            -1 => {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::ECHILD) => Ok(None),
                    Some(libc::EINTR) => continue,
                    _ => Err(e),
                };
            }
            0 => return Ok(None),
            pid => {
                if let Some(s) = status_of(raw) {
                    return Ok(Some((pid, s)));
                }
            }
        }
    }
}

/// Waits for the child `pid` to end and reaps it.
pub fn wait(pid: libc::pid_t) -> io::Result<Status> {
    loop {
        let mut raw: libc::c_int = 0;
        // SAFETY: `raw` is a valid, writable int; waitpid writes only into it.
        let ret = unsafe { libc::waitpid(pid, &mut raw, 0) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if let Some(s) = status_of(raw) {
            return Ok(s);
        }
    }
}

/// Sends `sig` to process `pid`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes only integers and touches no memory of ours.
    super::check(unsafe { libc::kill(pid, sig) }).map(drop)
}

// ---- Signals -------------------------------------------------------------------------------

/// A set of signals (a saved signal mask).
pub struct SigSet(libc::sigset_t);

fn sigset(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain old data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    super::check(unsafe { libc::sigemptyset(&mut set) })?;
    for &s in signals {
        // SAFETY: `set` is an initialised sigset_t; sigaddset validates `s`.
        super::check(unsafe { libc::sigaddset(&mut set, s) })?;
    }
    Ok(set)
}

/// Blocks `signals` for this (single-threaded) process; returns the previous mask.
pub fn block(signals: &[libc::c_int]) -> io::Result<SigSet> {
    let set = sigset(signals)?;
    // SAFETY: sigset_t is plain old data; sigprocmask overwrites `old` entirely.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid sigset_t values; sigprocmask reads `set` and writes `old`.
    super::check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) })?;
    Ok(SigSet(old))
}

/// Restores a mask [`block`] returned.
pub fn set_mask(mask: &SigSet) -> io::Result<()> {
    // SAFETY: `mask.0` is a mask sigprocmask filled in; a null old-mask pointer is allowed.
    super::check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut()) })
        .map(drop)
}

/// A non-blocking, close-on-exec `signalfd` for `signals` (which must be blocked).
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    let set = sigset(signals)?;
    // SAFETY: `set` is an initialised sigset_t the kernel only reads; -1 asks for a new fd.
    let fd =
        super::check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: `fd` was just returned by signalfd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One pending signal from a [`signalfd`]: `(signal, si_code)`. `Ok(None)`: none pending.
pub fn read_signal(fd: BorrowedFd<'_>) -> io::Result<Option<(libc::c_int, libc::c_int)>> {
    // SAFETY: signalfd_siginfo is plain old data; all-zero bytes are a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = size_of::<libc::signalfd_siginfo>();
    loop {
        // SAFETY: `info` is writable for `size` bytes; read writes at most that many.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size) };
        if n == -1 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(None),
                Some(libc::EINTR) => continue,
                _ => Err(e),
            };
        }
        if usize::try_from(n).ok() != Some(size) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let signo = libc::c_int::try_from(info.ssi_signo).unwrap_or(0);
        return Ok(Some((signo, info.ssi_code)));
    }
}

/// `poll(2)` with a timeout in milliseconds (-1: none); `EINTR` is retried. Returns how many
/// descriptors are ready (0 on timeout).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    let n = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    loop {
        // SAFETY: `fds` is a valid, writable array of `n` pollfd structures.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
        if ret >= 0 {
            return Ok(usize::try_from(ret).unwrap_or(0));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

// ---- Passing the listener ------------------------------------------------------------------

/// A connected pair of close-on-exec Unix sockets.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is writable for two ints; socketpair writes two new descriptors into it.
    super::check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both descriptors were just created by socketpair and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// ---- The seccomp listener ------------------------------------------------------------------

/// One notification: a syscall of process (thread) `pid` waiting for an answer.
#[derive(Debug, Clone, Copy)]
pub struct Notif {
    pub id: u64,
    pub pid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// The answer to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Let the kernel run the syscall (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
    /// Fail it with this errno.
    Errno(i32),
}

/// The supervisor's end of a notify filter.
pub struct Listener {
    fd: OwnedFd,
    /// Size of `struct seccomp_notif` in the running kernel (at least the one we know).
    notif_size: usize,
}

impl Listener {
    pub fn new(fd: OwnedFd) -> io::Result<Listener> {
        // SAFETY: seccomp_notif_sizes is plain old data; all-zero bytes are a valid value.
        let mut sizes: libc::seccomp_notif_sizes = unsafe { std::mem::zeroed() };
        // SAFETY: SECCOMP_GET_NOTIF_SIZES writes one seccomp_notif_sizes into `sizes`.
        super::check_long(unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_NOTIF_SIZES,
                0,
                &raw mut sizes,
            )
        })?;
        let notif_size = usize::from(sizes.seccomp_notif).max(size_of::<libc::seccomp_notif>());
        Ok(Listener { fd, notif_size })
    }

    /// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the kernel switches straight to the
    /// supervisor on a notification and straight back on the answer, instead of waking each
    /// side on whatever CPU is free. Only a speed-up: older kernels refuse it (`EINVAL`).
    pub fn prefer_sync_wake_up(&self) -> io::Result<()> {
        const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
        // SAFETY: the ioctl takes the flags by value and touches no memory of ours.
        super::check(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        })
        .map(drop)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// `SECCOMP_IOCTL_NOTIF_RECV`. Fails with `ENOENT` when the waiting syscall went away
    /// (its process was killed, or a signal interrupted it) before it could be received.
    pub fn recv(&self) -> io::Result<Notif> {
        // A zeroed buffer, as the kernel requires, with room for a larger kernel structure.
        let mut buf = vec![0u64; self.notif_size.div_ceil(8)];
        // SAFETY: `buf` is zeroed, 8-byte aligned and at least `size_of::<seccomp_notif>()`
        // bytes long; the ioctl writes one seccomp_notif into it.
        super::check(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                buf.as_mut_ptr(),
            )
        })?;
        // SAFETY: the buffer is aligned and large enough for a seccomp_notif, which the kernel
        // has just written (plain old data: every bit pattern is valid).
        let n: libc::seccomp_notif = unsafe { std::ptr::read(buf.as_ptr().cast()) };
        Ok(Notif {
            id: n.id,
            pid: n.pid,
            nr: n.data.nr,
            arch: n.data.arch,
            args: n.data.args,
        })
    }

    /// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether the notification's syscall is still waiting
    /// (so that its process is the one `/proc/PID` names).
    pub fn id_valid(&self, id: u64) -> io::Result<bool> {
        // SAFETY: the ioctl reads one u64 from `id` and writes nothing.
        let ret = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &raw const id,
            )
        };
        match super::check(ret) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `SECCOMP_IOCTL_NOTIF_SEND`. Fails with `ENOENT` when the syscall no longer waits.
    pub fn respond(&self, id: u64, response: Response) -> io::Result<()> {
        let (error, flags) = match response {
            Response::Continue => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
            Response::Errno(e) => (-e, 0),
        };
        let mut resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error,
            flags,
        };
        // SAFETY: `resp` is a valid seccomp_notif_resp; the kernel reads it (and writes it
        // back unchanged as the ioctl is declared read-write).
        super::check(unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &raw mut resp,
            )
        })
        .map(drop)
    }
}

// ---- Another process's /proc entries -------------------------------------------------------

/// `openat(dir, path, flags | O_CLOEXEC)`.
pub fn open_at(dir: Option<BorrowedFd<'_>>, path: &CStr, flags: libc::c_int) -> io::Result<File> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is NUL-terminated; openat returns a new descriptor or -1.
    let fd = super::check(unsafe { libc::openat(dirfd, path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `readlinkat(dir, path)`: the link's text, whatever its length.
pub fn read_link_at(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `path` is NUL-terminated and `buf` is writable for `buf.len()` bytes;
        // readlinkat writes at most that many.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                path.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        if buf.len() >= 1 << 16 {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        buf.resize(buf.len() * 4, 0);
    }
}

/// Device and inode of what `path` (relative to `dir`) leads to, following links (magic
/// links of `/proc/PID` included).
pub fn identity_at(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<(u64, u64)> {
    // SAFETY: stat is plain old data; all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid, writable stat buffer.
    super::check(unsafe { libc::fstatat(dir.as_raw_fd(), path.as_ptr(), &mut st, 0) })?;
    Ok((st.st_dev, st.st_ino))
}

/// Whether `path` is on a procfs (where `self` and `thread-self` name the reader).
pub fn is_procfs(path: &CStr) -> io::Result<bool> {
    // SAFETY: statfs is plain old data; all-zero bytes are a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid, writable statfs buffer.
    super::check(unsafe { libc::statfs(path.as_ptr(), &mut st) })?;
    // The field's and the constant's types differ between C libraries (glibc: signed, musl:
    // unsigned); compared as the unsigned values they are.
    fn unsigned<T: TryInto<u64>>(v: T) -> Option<u64> {
        v.try_into().ok()
    }
    Ok(unsigned(st.f_type).is_some() && unsigned(st.f_type) == unsigned(libc::PROC_SUPER_MAGIC))
}

/// Whether `path` is on a read-only mount (where the kernel refuses new entries with `EROFS`).
pub fn is_read_only(path: &CStr) -> io::Result<bool> {
    // SAFETY: statvfs is plain old data; all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid, writable statvfs buffer.
    super::check(unsafe { libc::statvfs(path.as_ptr(), &mut st) })?;
    Ok(st.f_flag & libc::ST_RDONLY != 0)
}
