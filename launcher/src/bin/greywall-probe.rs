//! `greywall-probe`: tries a list of operations and prints one line per operation,
//! `<op> <args…> <result>`, where the result is `ok`, the errno name (`EACCES`, `EROFS`, …),
//! `empty` (a read that opened the file and got no byte: a path hidden by a bind of
//! `/dev/null`), a value (`nnp`), or `killed` (the operation's process died of a signal, such
//! as a seccomp kill). An operation without an argument prints `-` in the argument column.
//!
//! The enforcement tests (`launcher/tests/conformance.rs`) run it inside and outside the
//! sandbox and compare whole tables. It is deliberately plain: no options, no environment, the
//! same output for the same arguments on the same machine.
//!
//! Every operation runs in a forked child, so that a process-wide change (`unshare`, a mount,
//! a ptrace attachment) cannot leak into the next one, and a kill shows up as `killed`
//! instead of ending the table. Operations that change the file system undo what they did
//! when they succeed (`create` removes the file again, `rename` renames it back, …); only
//! `unlink` and `umount` are not undone.
//!
//! Operations (paths may be relative to the working directory):
//!
//! | op | what it does |
//! |---|---|
//! | `read PATH` | open read-only, read one byte |
//! | `write PATH` | open `O_WRONLY|O_APPEND`, write nothing |
//! | `create PATH` | `O_CREAT|O_EXCL`, then unlink it |
//! | `unlink PATH` | unlink (not undone) |
//! | `mkdir PATH` | mkdir, then rmdir |
//! | `rename FROM TO` | rename, then rename back |
//! | `link FROM TO` | hard link, then unlink `TO` |
//! | `symlink TARGET LINK` | symlink, then unlink `LINK` |
//! | `exec PATH` | fork and `execve(PATH, [PATH], [])`; the child's exec errno, or `ok` |
//! | `tcp HOST:PORT` | TCP connect, 1 s timeout (`ETIMEDOUT`) |
//! | `udp HOST:PORT` | UDP connect and send one byte |
//! | `unix PATH` | connect a Unix stream socket |
//! | `abstract NAME` | connect to the abstract Unix socket `@NAME` |
//! | `bind-tcp PORT` | bind `127.0.0.1:PORT` and listen |
//! | `ptrace PID` | `PTRACE_ATTACH`, wait for the stop, `PTRACE_DETACH` |
//! | `kill PID` | `kill(PID, 0)` |
//! | `mount` | a tmpfs on a fresh directory under `/tmp`, then unmount and remove it |
//! | `umount PATH` | `umount2(PATH, MNT_DETACH)` (not undone) |
//! | `unshare-user` | `unshare(CLONE_NEWUSER)` |
//! | `io-uring` | the raw `io_uring_setup` syscall |
//! | `tiocsti` | `ioctl(TIOCSTI)` on fd 0 if it is a terminal, else on `/dev/tty` |
//! | `tiocsti-pty` | a new pseudo-terminal made the controlling terminal, then `TIOCSTI` on it |
//! | `environ PID` | read `/proc/PID/environ` |
//! | `nnp` | the `NoNewPrivs` value of `/proc/self/status` |
//!
//! Exit status: 0 when every line was printed (whatever the results), 2 on a usage error.

// A test tool that must make raw syscalls (fork, ptrace, mount, io_uring_setup, ioctl); the
// workspace forbids `unsafe` outside `launcher/src/sys`, which this binary does not link.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::process::ExitCode;
use std::time::Duration;

/// What one operation produced: `Ok(text)` (`ok`, `empty`, a value) or an errno.
type Outcome = Result<String, i32>;

fn ok() -> Outcome {
    Ok("ok".into())
}

fn errno_of(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(n) => n,
        None if e.kind() == io::ErrorKind::TimedOut => libc::ETIMEDOUT,
        None => libc::EIO,
    }
}

fn io<T>(r: io::Result<T>) -> Result<T, i32> {
    r.map_err(|e| errno_of(&e))
}

/// The errno of the last failed libc call.
fn last() -> i32 {
    errno_of(&io::Error::last_os_error())
}

fn cstr(path: &OsStr) -> Result<CString, i32> {
    CString::new(path.as_bytes()).map_err(|_| libc::EINVAL)
}

fn errno_name(code: i32) -> String {
    let name = match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EUSERS => "EUSERS",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ESTALE => "ESTALE",
        _ => return format!("E{code}"),
    };
    name.to_string()
}

/// One operation of the command line.
struct Op {
    name: String,
    args: Vec<OsString>,
}

/// How many arguments each operation takes; `None`: unknown operation.
fn arity(op: &str) -> Option<usize> {
    Some(match op {
        "mount" | "unshare-user" | "io-uring" | "tiocsti" | "tiocsti-pty" | "nnp" => 0,
        "read" | "write" | "create" | "unlink" | "mkdir" | "exec" | "tcp" | "udp" | "unix"
        | "abstract" | "bind-tcp" | "ptrace" | "kill" | "environ" | "umount" => 1,
        "rename" | "link" | "symlink" => 2,
        _ => return None,
    })
}

fn parse(args: Vec<OsString>) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    let mut it = args.into_iter();
    while let Some(name) = it.next() {
        let name = name.to_string_lossy().into_owned();
        let n = arity(&name).ok_or_else(|| format!("unknown operation {name:?}"))?;
        let args: Vec<OsString> = it.by_ref().take(n).collect();
        if args.len() != n {
            return Err(format!("{name} takes {n} argument(s)"));
        }
        ops.push(Op { name, args });
    }
    Ok(ops)
}

fn main() -> ExitCode {
    let ops = match parse(std::env::args_os().skip(1).collect()) {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("greywall-probe: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = io::stdout().lock();
    for op in &ops {
        let result = match in_child(|| run(op)) {
            Ok(text) => text,
            Err(code) => errno_name(code),
        };
        let mut line = op.name.clone();
        if op.args.is_empty() {
            line.push_str(" -");
        }
        for a in &op.args {
            line.push(' ');
            line.push_str(&a.to_string_lossy());
        }
        line.push(' ');
        line.push_str(&result);
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn arg(op: &Op, i: usize) -> &OsStr {
    op.args.get(i).map_or(OsStr::new(""), OsString::as_os_str)
}

fn run(op: &Op) -> Outcome {
    let a = arg(op, 0);
    let b = arg(op, 1);
    match op.name.as_str() {
        "read" => read(a),
        "write" => {
            io(std::fs::OpenOptions::new().append(true).open(a))?;
            ok()
        }
        "create" => {
            io(std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(a))?;
            cleanup(std::fs::remove_file(a))
        }
        "unlink" => {
            io(std::fs::remove_file(a))?;
            ok()
        }
        "mkdir" => {
            io(std::fs::create_dir(a))?;
            cleanup(std::fs::remove_dir(a))
        }
        "rename" => {
            io(std::fs::rename(a, b))?;
            cleanup(std::fs::rename(b, a))
        }
        "link" => {
            io(std::fs::hard_link(a, b))?;
            cleanup(std::fs::remove_file(b))
        }
        "symlink" => {
            io(symlink(a, b))?;
            cleanup(std::fs::remove_file(b))
        }
        "exec" => exec(a),
        "tcp" => {
            let addr = socket_addr(a)?;
            io(TcpStream::connect_timeout(&addr, Duration::from_secs(1)))?;
            ok()
        }
        "udp" => {
            let addr = socket_addr(a)?;
            let local: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let sock = io(UdpSocket::bind(local))?;
            io(sock.connect(addr))?;
            io(sock.send(b"x"))?;
            ok()
        }
        "unix" => {
            io(UnixStream::connect(a))?;
            ok()
        }
        "abstract" => {
            let addr = io(UnixAddr::from_abstract_name(a.as_bytes()))?;
            io(UnixStream::connect_addr(&addr))?;
            ok()
        }
        "bind-tcp" => {
            let port: u16 = a
                .to_str()
                .and_then(|s| s.parse().ok())
                .ok_or(libc::EINVAL)?;
            io(TcpListener::bind(("127.0.0.1", port)))?;
            ok()
        }
        "ptrace" => ptrace(pid(a)?),
        "kill" => {
            let target = pid(a)?;
            // SAFETY: kill with signal 0 only checks that the process exists and may be
            // signalled; it touches no memory.
            check(unsafe { libc::kill(target, 0) })?;
            ok()
        }
        "environ" => {
            let path = format!("/proc/{}/environ", pid(a)?);
            io(std::fs::read(path))?;
            ok()
        }
        "mount" => mount(),
        "umount" => {
            let target = cstr(a)?;
            // SAFETY: `target` is a NUL-terminated path that outlives the call.
            check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })?;
            ok()
        }
        "unshare-user" => {
            // SAFETY: unshare takes flags only. This process is a single-threaded child made
            // for this one operation, which is what CLONE_NEWUSER requires.
            check(unsafe { libc::unshare(libc::CLONE_NEWUSER) })?;
            ok()
        }
        "io-uring" => io_uring(),
        "tiocsti" => tiocsti(),
        "tiocsti-pty" => tiocsti_pty(),
        "nnp" => nnp(),
        _ => Err(libc::EINVAL),
    }
}

/// The result of an operation that worked, noting a failed undo step.
fn cleanup(r: io::Result<()>) -> Outcome {
    match r {
        Ok(()) => ok(),
        Err(e) => Ok(format!("ok(cleanup:{})", errno_name(errno_of(&e)))),
    }
}

fn check(ret: libc::c_int) -> Result<libc::c_int, i32> {
    if ret == -1 { Err(last()) } else { Ok(ret) }
}

fn pid(s: &OsStr) -> Result<libc::pid_t, i32> {
    s.to_str().and_then(|s| s.parse().ok()).ok_or(libc::EINVAL)
}

fn socket_addr(s: &OsStr) -> Result<SocketAddr, i32> {
    let s = s.to_str().ok_or(libc::EINVAL)?;
    io(s.to_socket_addrs())?.next().ok_or(libc::EINVAL)
}

fn read(path: &OsStr) -> Outcome {
    let mut f = io(std::fs::File::open(path))?;
    let mut byte = [0u8; 1];
    let n = io(f.read(&mut byte))?;
    Ok(if n == 0 { "empty" } else { "ok" }.into())
}

/// A pipe whose ends are closed on exec: `(read, write)`.
fn pipe() -> Result<(OwnedFd, OwnedFd), i32> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Waits for `child` and returns its wait status.
fn wait(child: libc::pid_t) -> Result<libc::c_int, i32> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int for waitpid to write.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child {
            return Ok(status);
        }
        let e = last();
        if e != libc::EINTR {
            return Err(e);
        }
    }
}

/// Ends a forked child at once, without running destructors or flushing stdio buffers that
/// belong to the parent.
fn exit_child(code: i32) -> ! {
    // SAFETY: _exit ends the process; it has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Runs `f` in a forked child and returns what it reported through a pipe; `killed` when the
/// child died of a signal before reporting.
fn in_child(f: impl FnOnce() -> Outcome) -> Outcome {
    let (rx, tx) = pipe()?;
    // SAFETY: this program is single-threaded, so the child may run any code after fork.
    let child = check(unsafe { libc::fork() })?;
    if child == 0 {
        drop(rx);
        let text = match f() {
            Ok(t) => t,
            Err(code) => errno_name(code),
        };
        let mut tx = std::fs::File::from(tx);
        let code = if tx.write_all(text.as_bytes()).is_ok() {
            0
        } else {
            1
        };
        exit_child(code);
    }
    drop(tx);
    let mut text = String::new();
    let read = std::fs::File::from(rx).read_to_string(&mut text);
    let status = wait(child)?;
    if libc::WIFSIGNALED(status) {
        return Ok("killed".into());
    }
    io(read)?;
    if text.is_empty() {
        return Ok(format!("no-report(status {status})"));
    }
    Ok(text)
}

fn exec(path: &OsStr) -> Outcome {
    let prog = cstr(path)?;
    let (rx, tx) = pipe()?;
    // SAFETY: this process is a single-threaded child of the probe; the grandchild only calls
    // async-signal-safe functions (execve, write, _exit) before it execs or exits.
    let child = check(unsafe { libc::fork() })?;
    if child == 0 {
        let argv = [prog.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: `prog`, `argv` and `envp` are NUL-terminated and outlive the call.
        unsafe { libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let errno = last().to_ne_bytes();
        // SAFETY: `errno` is readable for its length; `tx` is open in this process.
        unsafe { libc::write(tx.as_raw_fd(), errno.as_ptr().cast(), errno.len()) };
        exit_child(127);
    }
    drop(tx);
    let mut buf = Vec::new();
    let read = std::fs::File::from(rx).read_to_end(&mut buf);
    wait(child)?;
    io(read)?;
    match <[u8; 4]>::try_from(buf.as_slice()) {
        Ok(bytes) => Err(i32::from_ne_bytes(bytes)),
        Err(_) => ok(),
    }
}

fn ptrace(target: libc::pid_t) -> Outcome {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_ATTACH takes no memory arguments.
    check(unsafe { libc::ptrace(libc::PTRACE_ATTACH, target, null, null) } as libc::c_int)?;
    let mut status = 0;
    // SAFETY: `status` is a valid int; __WALL also waits for a tracee that is not our child.
    unsafe { libc::waitpid(target, &mut status, libc::__WALL) };
    // SAFETY: PTRACE_DETACH with signal 0 takes no memory arguments.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, target, null, null) };
    ok()
}

fn mount() -> Outcome {
    let mut template = *b"/tmp/greywall-probe-XXXXXX\0";
    // SAFETY: `template` is a writable, NUL-terminated buffer ending in six X's.
    let dir = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if dir.is_null() {
        return Err(last());
    }
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; no data.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            dir,
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let result = if r == -1 {
        Err(last())
    } else {
        // SAFETY: `dir` is the NUL-terminated path just mounted on.
        unsafe { libc::umount2(dir, 0) };
        ok()
    };
    // SAFETY: `dir` is NUL-terminated.
    unsafe { libc::rmdir(dir) };
    result
}

fn io_uring() -> Outcome {
    // struct io_uring_params is 120 bytes; zero asks for the defaults.
    let mut params = [0u64; 15];
    // SAFETY: io_uring_setup reads and writes `params`, which is large enough and aligned.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(last());
    }
    let fd = RawFd::try_from(fd).map_err(|_| libc::EBADF)?;
    // SAFETY: io_uring_setup returned a new descriptor that nothing else owns.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    ok()
}

/// `ioctl(fd, TIOCSTI, "x")`.
fn sti(fd: RawFd) -> Outcome {
    let byte: libc::c_char = b'\n' as libc::c_char;
    // SAFETY: TIOCSTI reads one char through the pointer, which is valid.
    check(unsafe { libc::ioctl(fd, libc::TIOCSTI, &byte) })?;
    ok()
}

fn tiocsti() -> Outcome {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(0) } == 1 {
        return sti(0);
    }
    let tty = io(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty"))?;
    sti(tty.as_raw_fd())
}

/// A pseudo-terminal of our own, made this process's controlling terminal (so that `TIOCSTI`
/// needs no privilege where the kernel still allows it), then `TIOCSTI` on it.
fn tiocsti_pty() -> Outcome {
    // Closing the master at the end hangs up the session this child leads.
    // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    // SAFETY: posix_openpt returns a new descriptor or -1.
    let master = check(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) })?;
    // SAFETY: posix_openpt returned a new descriptor that nothing else owns.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: grantpt and unlockpt only act on the descriptor.
    check(unsafe { libc::grantpt(master.as_raw_fd()) })?;
    // SAFETY: as above.
    check(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is writable for its length, which is passed.
    let r = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    if r != 0 {
        return Err(r);
    }
    // SAFETY: a new session makes the next terminal opened the controlling one; this is the
    // operation's own child process.
    check(unsafe { libc::setsid() })?;
    // SAFETY: ptsname_r wrote a NUL-terminated path into `name`.
    let slave = check(unsafe { libc::open(name.as_ptr(), libc::O_RDWR) })?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    sti(slave.as_raw_fd())
}

fn nnp() -> Outcome {
    let status = io(std::fs::read_to_string("/proc/self/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NoNewPrivs:"))
        .map(|v| v.trim().to_string())
        .ok_or(libc::ENOENT)
}
