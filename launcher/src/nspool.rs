//! Namespaces prepared ahead: the most expensive set-up step, off the launch path.
//!
//! Creating a network namespace is the largest single thing a sandbox asks of the kernel
//! (the loopback device, and every per-namespace sysctl table of IPv4 and IPv6: 0.7–0.8 ms on
//! the reference VM). None of it depends on the
//! policy, so a small per-user daemon, `greywall __ns-pool`, keeps a few sets ready: a new
//! user namespace directly below the user's own, with the identity map written, and a new
//! network namespace it owns, with `lo` up. A launcher takes one set (each is handed out once,
//! then the daemon's descriptors are closed), checks it, joins both (`setns`), and makes its
//! private mount namespace as before, attaching the set's empty tmpfs mounts where its plan
//! mounts a new tmpfs ([`Tmpfs`]). The daemon makes the next set while the command runs.
//! Each set also comes with a create-deny supervisor already waiting in its user namespace
//! ([`crate::supervise::Waiting`]): the launch hands it the plan instead of forking one.
//!
//! The daemon listens on `ns-<hash>.sock` in greywall's runtime directory (0700, the directory
//! proxyd uses, which no sandbox can see), answers only its own user (`SO_PEERCRED`), and
//! exits after [`IDLE`] without a request. When it is not running the launcher creates the
//! namespaces itself, as it always did, and starts the daemon in the background for the next
//! launch (never waiting for it). Inside a greywall sandbox (`GREYWALL_SANDBOX` set) the pool
//! is off. `GREYWALL_NS_POOL=0` turns the pool off; `=require` makes
//! a launch that gets no set fail (exit 125) instead.
//!
//! What the launcher checks before joining (a set that fails any check is not used, and the
//! launcher creates its own): the user namespace was created by this user and its parent is
//! the launcher's own user namespace; the network namespace is owned by that user namespace.
//! After joining, the ids must map to themselves, or the launch fails closed (exit 125).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use greywall_compiler::backend::linux::{PRIVATE_TMPFS, PRIVATE_TMPFS_MODE};

use crate::sys::notify::{self, Fork};
use crate::sys::{ns, scm, seqpacket};

/// The daemon's socket and lock in greywall's runtime directory, named for this executable
/// (`ns-<hash>.sock`, `.lock`): a launch only ever uses a pool running the same greywall,
/// whose waiting supervisors read its plans; a pool of an older one idles out.
fn file(ext: &str) -> String {
    let sig = crate::exec::exe_signature();
    let hash = greywall_compiler::cache::content_key(sig.as_bytes());
    format!("ns-{hash}.{ext}")
}
/// Sets kept ready.
const READY: usize = 3;
/// The daemon exits after this long without a request.
const IDLE: Duration = Duration::from_secs(120);
/// A pool that cannot make sets answers "none" this long after the last request, so that
/// launches close together do not each start another one.
const IDLE_BROKEN: Duration = Duration::from_secs(30);
/// How long a launch waits for the pool's answer.
const ANSWER_WAIT: Duration = Duration::from_millis(200);
/// How often an idle daemon looks whether it is still reachable.
const CHECK_EVERY_MS: libc::c_int = 1000;
/// How long after handing out a set the daemon asks the refiller for the next one (unless
/// none is left). Asking at once woke the refiller on the CPU of the launch just served
/// (a Unix socket wakes its reader on the writer's CPU), where it ran before that launch
/// could go on; the sets kept ready cover the launches in between.
const REFILL_AFTER: Duration = Duration::from_millis(2);
/// `0` turns the pool off; `require` makes a launch without a set from the pool fail
/// (tests, and checking a deployment).
pub const ENV: &str = "GREYWALL_NS_POOL";

/// A user namespace and a network namespace it owns, with `lo` up, from the pool; a
/// supervisor waiting in that user namespace ([`crate::supervise::Waiting`]); and empty tmpfs
/// mounts of that user namespace for the sandbox's view.
pub struct Prepared {
    user: OwnedFd,
    net: OwnedFd,
    supervisor: Option<OwnedFd>,
    tmpfs: Tmpfs,
}

/// Empty tmpfs mounts made with a set and attached nowhere yet
/// ([`crate::sys::mount::detached_tmpfs`]): a launch attaches them where its plan mounts a
/// new tmpfs instead of making one there (each new tmpfs was about a quarter of the time a
/// launch spent building its view). Each is used once, by the launch that takes the set.
#[derive(Default)]
pub struct Tmpfs {
    /// Writable, mode [`PRIVATE_TMPFS_MODE`]: the private `/tmp` and `/dev/shm`.
    pub writable: Vec<OwnedFd>,
    /// Read-only and empty, mode 0: what hides folders.
    pub hiding: Option<OwnedFd>,
}

/// Writable tmpfs mounts made with each set: one for each of [`PRIVATE_TMPFS`].
const WRITABLE_TMPFS: usize = PRIVATE_TMPFS.len();

impl Tmpfs {
    /// How many writable and hiding mounts this holds, as a message carries them.
    fn counts(&self) -> [u8; 2] {
        // At most WRITABLE_TMPFS and one: both fit a byte.
        [self.writable.len() as u8, u8::from(self.hiding.is_some())]
    }

    /// The descriptors, writable ones first, as a message carries them.
    fn descriptors(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.writable.iter().chain(&self.hiding).map(AsFd::as_fd)
    }

    /// Takes what [`Tmpfs::counts`] says from the rest of a message's descriptors; `None`
    /// for counts no set carries or too few descriptors.
    fn take([writable, hiding]: [u8; 2], fds: &mut impl Iterator<Item = OwnedFd>) -> Option<Tmpfs> {
        if usize::from(writable) > WRITABLE_TMPFS || hiding > 1 {
            return None;
        }
        let want = usize::from(writable);
        let writable: Vec<OwnedFd> = fds.take(want).collect();
        let hiding = if hiding == 1 { Some(fds.next()?) } else { None };
        (writable.len() == want).then_some(Tmpfs { writable, hiding })
    }
}

/// How launches use the pool ([`ENV`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Off,
    /// Use a set when one is ready, else create the namespaces (the default).
    Prefer,
    Require,
}

pub fn mode() -> Use {
    // Inside a sandbox no namespace can be made or joined (the seccomp filter refuses
    // `unshare` and `setns`), and a pool started there would only outlive the command.
    if std::env::var_os("GREYWALL_SANDBOX").is_some() {
        return Use::Off;
    }
    match std::env::var_os(ENV) {
        Some(v) if v == "0" => Use::Off,
        Some(v) if v == "require" => Use::Require,
        _ => Use::Prefer,
    }
}

/// What asking the pool gave.
pub enum Taken {
    Set(Prepared),
    /// A pool answered without a set (none ready, or it cannot make them here).
    Empty,
    /// No pool listens.
    NoPool,
}

/// A request sent to the pool, whose answer has not been read yet.
pub struct Request(OwnedFd);

/// Asks the pool in `dir` for a set; `None` when no pool listens. The pool answers while the
/// launcher goes on (checking its cache, say), so reading the answer later rarely waits.
pub fn request(dir: &Path) -> Option<Request> {
    let sock = seqpacket::connect(&dir.join(file("sock"))).ok()?;
    // A pool that does not answer (stopped, wedged) costs a launch this much, once: the
    // launch then makes its own namespaces.
    seqpacket::set_receive_timeout(sock.as_fd(), ANSWER_WAIT).ok()?;
    Some(Request(sock))
}

impl Request {
    /// The pool's answer.
    pub fn answer(self) -> Taken {
        match receive_set(self.0.as_fd()) {
            Some(set) => Taken::Set(set),
            None => Taken::Empty,
        }
    }
}

impl Prepared {
    /// Checks that this set is what the pool must hand out (see the module's comment).
    pub fn check(&self, uid: u32) -> Result<(), String> {
        let owner = ns::owner_uid(self.user.as_fd()).map_err(|e| format!("owner: {e}"))?;
        if owner != uid {
            return Err(format!("its user namespace belongs to uid {owner}"));
        }
        let parent = ns::parent_user_namespace(self.user.as_fd())
            .map_err(|e| format!("its user namespace has no parent here: {e}"))?;
        let own = ns::own_identity("user").map_err(|e| e.to_string())?;
        let id = |fd: &OwnedFd| ns::identity(fd.as_fd()).map_err(|e| format!("fstat: {e}"));
        if id(&parent)? != own {
            return Err("its user namespace is not a child of this process's".into());
        }
        let net_owner = ns::owning_user_namespace(self.net.as_fd())
            .map_err(|e| format!("its network namespace: {e}"))?;
        if id(&net_owner)? != id(&self.user)? {
            return Err("its network namespace belongs to another user namespace".into());
        }
        Ok(())
    }

    /// Joins the user namespace (`Err` before anything changed), then the network namespace.
    pub fn join_user(&self) -> io::Result<()> {
        ns::enter(self.user.as_fd(), libc::CLONE_NEWUSER)
    }

    /// Joins the network namespace (after [`Prepared::join_user`]).
    pub fn join_network(&self) -> io::Result<()> {
        ns::enter(self.net.as_fd(), libc::CLONE_NEWNET)
    }

    /// The supervisor waiting in this set's user namespace, if the pool started one.
    pub fn take_supervisor(&mut self) -> Option<crate::supervise::Waiting> {
        self.supervisor.take().map(crate::supervise::Waiting::new)
    }

    /// The empty tmpfs mounts made with this set (none where the pool could not make them).
    pub fn take_tmpfs(&mut self) -> Tmpfs {
        std::mem::take(&mut self.tmpfs)
    }
}

/// What `greywall check` says about the pool (without asking it for a set, which would use
/// one up): whether one holds the lock of this user's runtime directory.
pub fn status() -> String {
    if mode() == Use::Off {
        return format!("off ({ENV}=0, or inside a sandbox)");
    }
    let dir = crate::proxyd_client::socket_dir();
    let held = std::fs::OpenOptions::new()
        .read(true)
        .open(dir.join(file("lock")))
        .ok()
        .map(|f| f.try_lock_shared().is_err());
    match held {
        Some(true) => format!("running ({})", dir.join(file("sock")).display()),
        _ => format!(
            "not running (the next launch starts it, in {})",
            dir.display()
        ),
    }
}

/// Starts the pool daemon for `dir` in the background, unless one holds its lock. The
/// launcher waits only for the first of the daemon's two forks.
pub fn start(dir: &Path) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let child = std::process::Command::new(exe)
        .arg("__ns-pool")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Nothing of the launch's: not its environment, not its working directory (which
        // the daemon would otherwise keep in use for its whole life).
        .env_clear()
        .current_dir("/")
        .spawn();
    if let Ok(mut child) = child {
        let _ = child.wait();
    }
}

/// `greywall __ns-pool DIR`: detaches, then serves until idle.
pub fn daemon(dir: &Path) -> ExitCode {
    // Detach: the launcher that started us waits only for this first process.
    match notify::fork() {
        Ok(Fork::Parent(_)) => return ExitCode::SUCCESS,
        Ok(Fork::Child) => {}
        Err(_) => return ExitCode::FAILURE,
    }
    if seqpacket::new_session().is_err() {
        return ExitCode::FAILURE;
    }
    match serve(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn serve(dir: &Path) -> io::Result<()> {
    crate::proxyd_client::checked_dir(dir).map_err(io::Error::other)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(file("lock")))?;
    if lock.try_lock().is_err() {
        // Another pool serves this directory.
        return Ok(());
    }
    // Children reap themselves: nothing here ever waits for one.
    notify::ignore(&[libc::SIGCHLD])?;
    // The refiller makes the sets (forking is slow, and a launch must never wait for it);
    // this process only hands them out. Forked before the listener exists, so that it never
    // holds it: a launch never connects to a pool whose server is gone.
    let refiller = start_refiller()?;
    let socket: PathBuf = dir.join(file("sock"));
    // A socket file left by a pool that died: nobody holds the lock, so nobody serves it.
    let _ = std::fs::remove_file(&socket);
    let listener = seqpacket::listen(&socket)?;
    let bound = std::fs::symlink_metadata(&socket).map(|m| m.ino())?;
    let uid = crate::sys::real_uid();
    let mut ready: Vec<Prepared> = Vec::with_capacity(READY);
    // Set when the refiller stops (this machine cannot make sets: no usable user
    // namespaces): the pool then answers every launch without a set, so that none starts
    // another pool, until idle.
    let mut broken = false;
    // Sets asked of the refiller and not received yet.
    let mut asked = 0;
    // When to ask for the sets handed out since the last request.
    let mut refill_at: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        let missing = !broken && ready.len() + asked < READY;
        let wait = match refill_at {
            Some(at) if missing && !ready.is_empty() => {
                at.saturating_duration_since(Instant::now())
            }
            _ => Duration::ZERO,
        };
        if missing && wait.is_zero() {
            refill_at = None;
            while !broken && ready.len() + asked < READY {
                // One byte asks for one set.
                if scm::send(refiller.as_fd(), b"+", &[]).is_err() {
                    broken = true;
                }
                asked += 1;
            }
        }
        let timeout = if wait.is_zero() {
            CHECK_EVERY_MS
        } else {
            // Rounded up: waking early would only come back here.
            libc::c_int::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(CHECK_EVERY_MS)
        };
        let mut fds = [
            listener.as_raw_fd(),
            if broken { -1 } else { refiller.as_raw_fd() },
        ]
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        if notify::poll(&mut fds, timeout)? == 0 {
            if !wait.is_zero() {
                continue;
            }
            // Idle, or the directory is gone (a scratch runtime directory removed, another
            // pool started after ours was unlinked): nobody can reach this pool any more.
            let here = std::fs::symlink_metadata(&socket).map(|m| m.ino()).ok();
            let idle = if broken { IDLE_BROKEN } else { IDLE };
            if last.elapsed() >= idle || here != Some(bound) {
                break;
            }
            continue;
        }
        if fds[0].revents != 0 {
            last = Instant::now();
            if let Ok(conn) = seqpacket::accept(listener.as_fd())
                && seqpacket::peer_uid(conn.as_fd()).ok() == Some(uid)
                && let Some(set) = ready.pop()
            {
                // An empty pool closes the connection: the launcher makes its own.
                let _ = send_set(conn.as_fd(), &set);
                refill_at.get_or_insert(last + REFILL_AFTER);
            }
        }
        if fds[1].revents != 0 {
            match receive_set(refiller.as_fd()) {
                Some(set) => {
                    ready.push(set);
                    asked = asked.saturating_sub(1);
                }
                None => broken = true,
            }
        }
    }
    let here = std::fs::symlink_metadata(&socket).map(|m| m.ino()).ok();
    if here == Some(bound) {
        let _ = std::fs::remove_file(&socket);
    }
    Ok(())
}

/// A set, as one message carrying its descriptors: user namespace, network namespace, the
/// waiting supervisor's socket when there is one, then the writable tmpfs mounts and the
/// hiding one. The message says how many of each: `s`, then one byte each.
fn send_set(to: BorrowedFd<'_>, set: &Prepared) -> io::Result<()> {
    let mut fds = vec![set.user.as_fd(), set.net.as_fd()];
    fds.extend(set.supervisor.as_ref().map(AsFd::as_fd));
    fds.extend(set.tmpfs.descriptors());
    let [writable, hiding] = set.tmpfs.counts();
    let message = [SET, u8::from(set.supervisor.is_some()), writable, hiding];
    scm::send(to, &message, &fds)
}

/// The first byte of a set's message.
const SET: u8 = b's';

fn receive_set(from: BorrowedFd<'_>) -> Option<Prepared> {
    let (bytes, fds) = scm::recv(from, 4).ok()??;
    let [SET, supervisor, writable, hiding] = bytes[..] else {
        return None;
    };
    let mut fds = fds.into_iter();
    let (user, net) = (fds.next()?, fds.next()?);
    let supervisor = match supervisor {
        0 => None,
        1 => Some(fds.next()?),
        _ => return None,
    };
    let tmpfs = Tmpfs::take([writable, hiding], &mut fds)?;
    fds.next().is_none().then_some(Prepared {
        user,
        net,
        supervisor,
        tmpfs,
    })
}

/// Forks the refiller: it makes one set for each byte the server sends it, and sends the set
/// back. It ends when it cannot make one (the server sees the socket close) or the server is
/// gone.
fn start_refiller() -> io::Result<OwnedFd> {
    let (ours, theirs) = notify::socketpair()?;
    match notify::fork()? {
        Fork::Parent(_) => Ok(ours),
        Fork::Child => {
            drop(ours);
            // Making sets is background work: it must not preempt a launch when it wakes
            // (the sets' supervisors inherit this and leave it once a launch is theirs).
            let _ = notify::set_batch_scheduling(true);
            loop {
                if !matches!(scm::recv(theirs.as_fd(), 1), Ok(Some(_))) {
                    notify::exit_now(0);
                }
                let Ok(set) = prepare() else {
                    notify::exit_now(0);
                };
                if send_set(theirs.as_fd(), &set).is_err() {
                    notify::exit_now(0);
                }
            }
        }
    }
}

/// One set: the namespaces from a short-lived child, then a supervisor waiting in them.
fn prepare() -> io::Result<Prepared> {
    let (ours, theirs) = notify::socketpair()?;
    match notify::fork()? {
        Fork::Child => {
            drop(ours);
            let code = match make(&theirs) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            notify::exit_now(code)
        }
        Fork::Parent(_) => {
            drop(theirs);
            // The namespaces, then the tmpfs mounts the child could make (maybe none).
            let (bytes, fds) = scm::recv(ours.as_fd(), 2)?
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EPERM))?;
            let mut fds = fds.into_iter();
            let (Some(user), Some(net)) = (fds.next(), fds.next()) else {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            };
            let counts = <[u8; 2]>::try_from(bytes.as_slice());
            let Some(tmpfs) = counts.ok().and_then(|c| Tmpfs::take(c, &mut fds)) else {
                return Err(io::Error::from_raw_os_error(libc::EPROTO));
            };
            let supervisor = Some(start_supervisor(&user)?);
            Ok(Prepared {
                user,
                net,
                supervisor,
                tmpfs,
            })
        }
    }
}

/// Forks a process into the set's user namespace that waits for a launch to hand it a plan
/// and then supervises it; returns the launch's end of its socket.
fn start_supervisor(user: &OwnedFd) -> io::Result<OwnedFd> {
    let (ours, theirs) = notify::socketpair()?;
    match notify::fork()? {
        Fork::Child => {
            // Nothing of the pool's: a waiting supervisor that held another set's socket
            // would keep that set's supervisor waiting after the pool is gone.
            if ns::enter(user.as_fd(), libc::CLONE_NEWUSER).is_err()
                || seqpacket::close_all_but(theirs.as_fd()).is_err()
            {
                notify::exit_now(1);
            }
            let code = match crate::supervise::wait_for_hand_over(theirs) {
                Some(c) if c == ExitCode::SUCCESS => 0,
                Some(_) => 1,
                None => 0,
            };
            notify::exit_now(code)
        }
        Fork::Parent(_) => Ok(ours),
    }
}

/// In the child: the namespaces, the identity map, `lo` up, and the tmpfs mounts when this
/// kernel makes them; then all their descriptors in one message.
fn make(channel: &OwnedFd) -> io::Result<()> {
    let (uid, gid) = ns::effective_ids();
    ns::unshare_user_and_network()?;
    ns::write_proc_self("setgroups", "deny")?;
    ns::write_proc_self("uid_map", &format!("{uid} {uid} 1"))?;
    ns::write_proc_self("gid_map", &format!("{gid} {gid} 1"))?;
    crate::sys::net::loopback_up()?;
    let user = ns::open_own("user")?;
    let net = ns::open_own("net")?;
    let tmpfs = make_tmpfs();
    let mut fds = vec![user.as_fd(), net.as_fd()];
    fds.extend(tmpfs.descriptors());
    scm::send(channel.as_fd(), &tmpfs.counts(), &fds)
}

/// The set's tmpfs mounts, or none: making a tmpfs needs a mount namespace of the set's user
/// namespace (this short-lived child's own), and `fsopen` (Linux 5.2). A launch without them
/// mounts its own, as it does without the pool.
fn make_tmpfs() -> Tmpfs {
    use crate::sys::mount::detached_tmpfs;
    if ns::unshare_mounts().is_err() {
        return Tmpfs::default();
    }
    let writable: io::Result<Vec<OwnedFd>> = (0..WRITABLE_TMPFS)
        .map(|_| detached_tmpfs(PRIVATE_TMPFS_MODE, false))
        .collect();
    match (writable, detached_tmpfs(0, true)) {
        (Ok(writable), Ok(hiding)) => Tmpfs {
            writable,
            hiding: Some(hiding),
        },
        _ => Tmpfs::default(),
    }
}
