//! Where another process's syscall would create its new entry.
//!
//! The path argument is read from the process's memory (`/proc/PID/mem`), then resolved the
//! way the kernel resolves it for that process: from its working directory or directory
//! descriptor (`/proc/PID/cwd`, `/proc/PID/fd/N`), through every symlink of the parent
//! directories, and through a symlink at the end when the syscall follows one (`open` with
//! `O_CREAT` creates the target of a dangling symlink). `/proc/self` and `/proc/thread-self`
//! name the process, not the supervisor. The lexical form (`.` and `..` removed without
//! looking at the filesystem) is checked too.
//!
//! A magic link of `/proc` at the end (`/proc/PID/fd/N`, `/proc/PID/cwd`, `/dev/stdout`) makes
//! the kernel jump to the object itself: the supervisor then names that object by the link's
//! text, when that text still leads to the same file ([`Object`]).

use std::collections::VecDeque;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::rules::{Components, display};
use crate::sys::notify;

/// `PATH_MAX`, the NUL included: the kernel refuses longer paths with `ENAMETOOLONG`.
const PATH_MAX: usize = 4096;
/// The smallest page size: a path is read at most up to the end of a page at a time, so a
/// string that ends just before an unmapped page is still read whole.
const PAGE: u64 = 4096;
/// The kernel's limit on symlinks followed in one resolution (`MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// An errno, for the answer to the syscall.
pub type Errno = i32;

fn errno(e: &io::Error) -> Errno {
    e.raw_os_error().unwrap_or(libc::EACCES)
}

/// One thread of a sandboxed process, through its `/proc/TID` directory (opened once, so that
/// a recycled process id cannot redirect the later reads).
pub struct Task {
    dir: File,
    tid: u32,
    tgid: std::cell::OnceCell<u32>,
}

impl Task {
    pub fn open(tid: u32) -> io::Result<Task> {
        let path = CString::new(format!("/proc/{tid}"))
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let dir = notify::open_at(None, &path, libc::O_PATH | libc::O_DIRECTORY)?;
        Ok(Task {
            dir,
            tid,
            tgid: std::cell::OnceCell::new(),
        })
    }

    /// Its memory, for [`Task::read_path`] and [`Task::read`].
    pub fn mem(&self) -> Result<File, Errno> {
        notify::open_at(Some(self.dir.as_fd()), c"mem", libc::O_RDONLY).map_err(|e| errno(&e))
    }

    /// The NUL-terminated string at `addr`, as the kernel's `getname` reads it: `EFAULT` when
    /// it cannot be read, `ENAMETOOLONG` without a NUL in the first `PATH_MAX` bytes.
    pub fn read_path(&self, mem: &File, addr: u64) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < PATH_MAX {
            let want = usize::try_from(PAGE - at % PAGE)
                .unwrap_or(PATH_MAX)
                .min(PATH_MAX - out.len());
            let mut buf = vec![0u8; want];
            let n = match mem.read_at(&mut buf, at) {
                Ok(0) | Err(_) => return Err(libc::EFAULT),
                Ok(n) => n,
            };
            buf.truncate(n);
            if let Some(end) = buf.iter().position(|b| *b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            at = at.checked_add(n as u64).ok_or(libc::EFAULT)?;
        }
        Err(libc::ENAMETOOLONG)
    }

    /// `N` bytes at `addr` (`EFAULT` when they cannot be read).
    pub fn read<const N: usize>(&self, mem: &File, addr: u64) -> Result<[u8; N], Errno> {
        let mut buf = [0u8; N];
        mem.read_exact_at(&mut buf, addr)
            .map_err(|_| libc::EFAULT)?;
        Ok(buf)
    }

    /// The directory a relative path starts from: the working directory (`dirfd` is
    /// `AT_FDCWD`) or the directory `dirfd` refers to.
    pub fn dir(&self, dirfd: i32) -> Result<Components, Errno> {
        let link = if dirfd == libc::AT_FDCWD {
            c"cwd".to_owned()
        } else if dirfd < 0 {
            return Err(libc::EBADF);
        } else {
            CString::new(format!("fd/{dirfd}")).map_err(|_| libc::EBADF)?
        };
        let text =
            notify::read_link_at(self.dir.as_fd(), &link).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) if dirfd != libc::AT_FDCWD => libc::EBADF,
                _ => errno(&e),
            })?;
        if text.first() != Some(&b'/') {
            // A pipe, a socket or another object without a path: not a directory.
            return Err(libc::ENOTDIR);
        }
        // The text must still lead to the same directory: it does not for a deleted directory
        // or one whose path has since been covered or moved.
        let target = notify::identity_at(self.dir.as_fd(), &link).map_err(|e| errno(&e))?;
        let meta = std::fs::metadata(Path::new(OsStr::from_bytes(&text)));
        match meta {
            Ok(m) if (m.dev(), m.ino()) == target => {
                if !m.is_dir() {
                    return Err(libc::ENOTDIR);
                }
            }
            _ if text.ends_with(b" (deleted)") => return Err(libc::ENOENT),
            _ => return Err(libc::EACCES),
        }
        let mut out = Components::new();
        push_lexical(&mut out, 0, &text);
        Ok(out)
    }

    /// The process id of the thread's process (what `/proc/self` names for it).
    fn tgid(&self) -> Result<u32, Errno> {
        if let Some(t) = self.tgid.get() {
            return Ok(*t);
        }
        let mut status = notify::open_at(Some(self.dir.as_fd()), c"status", libc::O_RDONLY)
            .map_err(|e| errno(&e))?;
        let mut text = String::new();
        io::Read::read_to_string(&mut status, &mut text).map_err(|e| errno(&e))?;
        let tgid = text
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(libc::EACCES)?;
        Ok(*self.tgid.get_or_init(|| tgid))
    }

    /// What `/proc/self` (`thread-self` with `thread`) holds for this task rather than for
    /// the supervisor.
    fn proc_self(&self, thread: bool) -> Result<Vec<u8>, Errno> {
        let tgid = self.tgid()?;
        Ok(if thread {
            format!("{tgid}/task/{}", self.tid).into_bytes()
        } else {
            tgid.to_string().into_bytes()
        })
    }
}

pub fn host_path(path: &[Vec<u8>]) -> std::path::PathBuf {
    Path::new(OsStr::from_bytes(&display(path))).to_path_buf()
}

/// Appends the components of `path` to `out`, lexically: `.` is dropped and `..` removes the
/// last component (never one of the first `floor`, the root's).
fn push_lexical(out: &mut Components, floor: usize, path: &[u8]) {
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.len() > floor {
                    out.pop();
                }
            }
            c => out.push(c.to_vec()),
        }
    }
}

/// `path` from `start` (absolute paths from `root`), without looking at the filesystem.
pub fn lexical(root: &[Vec<u8>], start: &[Vec<u8>], path: &[u8]) -> Components {
    let mut out = if path.first() == Some(&b'/') {
        root.to_vec()
    } else {
        start.to_vec()
    };
    push_lexical(&mut out, root.len(), path);
    out
}

/// Where the kernel would put the entry `path` names for `task`: from `start` (absolute paths
/// and absolute symlinks from `root`), through every symlink on the way and, with
/// `follow_last`, at the end. An intermediate component that is missing or not a directory
/// gives the errno the kernel would give.
///
/// A path that ends on a magic link of `/proc` that is followed leads to an object that
/// exists (an open file, a directory, a pipe): [`Located::Object`].
pub fn resolve(
    task: &Task,
    root: &[Vec<u8>],
    start: &[Vec<u8>],
    path: &[u8],
    follow_last: bool,
) -> Result<Located, Errno> {
    let mut todo: VecDeque<Vec<u8>> = VecDeque::new();
    splice(&mut todo, path);
    let mut cur = if path.first() == Some(&b'/') {
        root.to_vec()
    } else {
        start.to_vec()
    };
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == b".." {
            if cur.len() > root.len() {
                cur.pop();
            }
            continue;
        }
        let last = todo.is_empty();
        cur.push(c);
        let host = host_path(&cur);
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            // The new entry itself.
            Err(e) if last && e.raw_os_error() == Some(libc::ENOENT) => {
                return Ok(Located::Path(Resolved {
                    path: cur,
                    exists: false,
                }));
            }
            Err(e) => return Err(errno(&e)),
        };
        if last && !follow_last {
            return Ok(Located::Path(Resolved {
                path: cur,
                exists: true,
            }));
        }
        if !meta.file_type().is_symlink() {
            if !last && !meta.is_dir() {
                return Err(libc::ENOTDIR);
            }
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(libc::ELOOP);
        }
        let name = cur.pop().unwrap_or_default();
        let in_proc = notify::is_procfs(&CString::new(display(&cur)).map_err(|_| libc::EINVAL)?)
            .map_err(|e| errno(&e))?;
        if in_proc && (name == b"self" || name == b"thread-self") {
            // The task's own /proc directory, not the supervisor's.
            splice(&mut todo, &task.proc_self(name == b"thread-self")?);
            continue;
        }
        let text = std::fs::read_link(&host)
            .map(|t| t.into_os_string().into_vec())
            .map_err(|e| errno(&e))?;
        if in_proc && text.first() != Some(&b'/') && text.contains(&b':') {
            // A magic link to an object without a path (`pipe:[N]`, `socket:[N]`,
            // `anon_inode:[eventfd]`, `net:[N]`); the plain links of /proc (`self`, `mounts`)
            // hold relative paths without a colon.
            return if last {
                Ok(Located::Object(Object::Nameless))
            } else {
                Err(libc::ENOTDIR)
            };
        }
        if in_proc && text.first() == Some(&b'/') {
            // A magic link (`/proc/PID/cwd`, `/proc/PID/fd/N`): the kernel jumps to the object
            // itself, which exists. Its text is a path the supervisor can follow only if it
            // leads to the same object (not for a deleted one, or one out of this view).
            let object = std::fs::metadata(&host).map_err(|e| errno(&e))?;
            let same = std::fs::metadata(Path::new(OsStr::from_bytes(&text)))
                .is_ok_and(|m| (m.dev(), m.ino()) == (object.dev(), object.ino()));
            if last {
                let deleted = !same && text.ends_with(b" (deleted)");
                let mut path = Components::new();
                push_lexical(&mut path, 0, &text);
                return Ok(Located::Object(if !deleted {
                    // The text is where the object is, through the mounts it was opened by,
                    // even when something now covers that path in this view (a file the
                    // command inherited, such as a redirected standard output).
                    Object::At { path, link: host }
                } else if object.nlink() == 0 && !object.is_dir() {
                    // Its last name is gone (a deleted file, `O_TMPFILE`, a memfd).
                    Object::Nameless
                } else {
                    Object::Unknown
                }));
            }
            if !same {
                return Err(if text.ends_with(b" (deleted)") {
                    libc::ENOENT
                } else {
                    libc::EACCES
                });
            }
            cur.clear();
            push_lexical(&mut cur, 0, &text);
            continue;
        }
        if text.first() == Some(&b'/') {
            cur.truncate(root.len());
        }
        splice(&mut todo, &text);
    }
    // The path ended with `..` or `.`, or was the root: a directory that exists.
    Ok(Located::Path(Resolved {
        path: cur,
        exists: true,
    }))
}

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A place in the view.
    Path(Resolved),
    /// What a followed magic link at the end leads to: an object that exists.
    Object(Object),
}

/// Where a path leads, and whether something is there already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: Components,
    pub exists: bool,
}

/// The object a magic link of `/proc` leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A file or folder at this path, as the link's text says (`link` is the magic link
    /// itself, which also tells the mount the object was opened through).
    At {
        path: Components,
        link: std::path::PathBuf,
    },
    /// Something no path leads to: a pipe, a socket, an anonymous inode, a file whose last
    /// name was removed.
    Nameless,
    /// A file whose path cannot be told: it was deleted, but another hard link remains.
    Unknown,
}

/// Puts the components of `path` in front of `todo` (without `.` and empty ones).
fn splice(todo: &mut VecDeque<Vec<u8>>, path: &[u8]) {
    for part in path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .rev()
    {
        todo.push_front(part.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::rules::components;
    use std::os::fd::AsRawFd;

    #[test]
    fn lexical_paths() {
        let root = components(b"/");
        let cwd = components(b"/w/sub");
        assert_eq!(lexical(&root, &cwd, b"x"), components(b"/w/sub/x"));
        assert_eq!(
            lexical(&root, &cwd, b"../.bashrc"),
            components(b"/w/.bashrc")
        );
        assert_eq!(lexical(&root, &cwd, b"/a//./b/../c/"), components(b"/a/c"));
        assert_eq!(lexical(&root, &cwd, b"../../../../x"), components(b"/x"));
        // Under another root (`RESOLVE_IN_ROOT`), `..` stops there and `/` starts there.
        let jail = components(b"/w");
        assert_eq!(lexical(&jail, &jail, b"/../x"), components(b"/w/x"));
    }

    /// Resolution against the real filesystem, as this process (its own `/proc/self`).
    #[test]
    fn resolution_follows_symlinks_like_the_kernel() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let base = std::fs::canonicalize(dir.path()).unwrap_or_default();
        let b = base.as_os_str().as_bytes();
        std::fs::create_dir(base.join("real")).ok();
        std::os::unix::fs::symlink(base.join("real"), base.join("abs")).ok();
        std::os::unix::fs::symlink("real", base.join("rel")).ok();
        std::os::unix::fs::symlink(".bashrc", base.join("dangling")).ok();
        std::os::unix::fs::symlink("loop", base.join("loop")).ok();
        std::fs::write(base.join("file"), "").ok();
        let Ok(task) = Task::open(std::process::id()) else {
            return;
        };
        let root = Components::new();
        let start = components(b);
        let at = |p: &str| {
            let mut v = b.to_vec();
            v.extend_from_slice(p.as_bytes());
            components(&v)
        };
        let r = |p: &str, follow: bool| {
            resolve(&task, &root, &start, p.as_bytes(), follow).map(|r| match r {
                Located::Path(r) => r.path,
                Located::Object(_) => Components::new(),
            })
        };
        assert_eq!(r("abs/x", false), Ok(at("/real/x")));
        assert_eq!(r("rel/../x", false), Ok(at("/x")));
        assert_eq!(r("dangling", true), Ok(at("/.bashrc")));
        assert_eq!(r("dangling", false), Ok(at("/dangling")));
        let exists = |p: &str, follow: bool| {
            resolve(&task, &root, &start, p.as_bytes(), follow).map(|r| match r {
                Located::Path(r) => Some(r.exists),
                Located::Object(_) => None,
            })
        };
        assert_eq!(exists("file", false), Ok(Some(true)));
        assert_eq!(exists("dangling", false), Ok(Some(true)));
        assert_eq!(exists("dangling", true), Ok(Some(false)));
        assert_eq!(exists("abs", true), Ok(Some(true)));
        assert_eq!(exists("abs/new", true), Ok(Some(false)));
        assert_eq!(exists("real/..", false), Ok(Some(true)));
        // A magic link at the end leads to the object itself, named by the link's text when
        // that still leads to it.
        let object = |p: &str| match resolve(&task, &root, &start, p.as_bytes(), true) {
            Ok(Located::Object(Object::At { path, .. })) => Ok(Some(path)),
            Ok(Located::Object(Object::Nameless)) => Ok(None),
            other => Err(format!("{other:?}")),
        };
        std::fs::write(base.join("opened"), "").ok();
        let file = File::options()
            .append(true)
            .open(base.join("opened"))
            .unwrap();
        let fd_path = |fd: i32| format!("/proc/self/fd/{fd}");
        assert_eq!(object(&fd_path(file.as_raw_fd())), Ok(Some(at("/opened"))));
        assert_eq!(
            object(&format!("/dev/fd/{}", file.as_raw_fd())),
            Ok(Some(at("/opened")))
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            object("/proc/self/cwd"),
            Ok(Some(components(cwd.as_os_str().as_bytes())))
        );
        let (pipe, _w) = io::pipe().unwrap();
        assert_eq!(object(&fd_path(pipe.as_raw_fd())), Ok(None));
        assert_eq!(
            r(&format!("{}/x", fd_path(pipe.as_raw_fd())), false),
            Err(libc::ENOTDIR)
        );
        // A file renamed away after it was opened is found where it is now; one deleted
        // has no name left.
        std::fs::rename(base.join("opened"), base.join("moved")).ok();
        assert_eq!(object(&fd_path(file.as_raw_fd())), Ok(Some(at("/moved"))));
        std::fs::remove_file(base.join("moved")).ok();
        assert_eq!(object(&fd_path(file.as_raw_fd())), Ok(None));
        // Deleted, but another hard link remains: its path cannot be told.
        std::fs::write(base.join("linked"), "").ok();
        std::fs::hard_link(base.join("linked"), base.join("other-name")).ok();
        let linked = File::open(base.join("linked")).unwrap();
        std::fs::remove_file(base.join("linked")).ok();
        assert_eq!(
            resolve(
                &task,
                &root,
                &start,
                fd_path(linked.as_raw_fd()).as_bytes(),
                true
            ),
            Ok(Located::Object(Object::Unknown))
        );
        assert_eq!(r("missing/x", false), Err(libc::ENOENT));
        assert_eq!(r("file/x", false), Err(libc::ENOTDIR));
        assert_eq!(r("loop/x", false), Err(libc::ELOOP));
        // /proc/self/cwd is this process's working directory, read as the task's.
        let cwd = std::env::current_dir().unwrap_or_default();
        let mut want = components(cwd.as_os_str().as_bytes());
        want.push(b"x".to_vec());
        assert_eq!(r("/proc/self/cwd/x", false), Ok(want.clone()));
        assert_eq!(r("/proc/thread-self/cwd/x", false), Ok(want));
    }

    #[test]
    fn task_reads_its_memory_and_directories() {
        let Ok(task) = Task::open(std::process::id()) else {
            return;
        };
        let Ok(mem) = task.mem() else { return };
        let text = b"/some/path\0tail";
        let addr = text.as_ptr() as u64;
        assert_eq!(task.read_path(&mem, addr), Ok(b"/some/path".to_vec()));
        assert_eq!(task.read_path(&mem, 0), Err(libc::EFAULT));
        let long = vec![b'a'; 5000];
        assert_eq!(
            task.read_path(&mem, long.as_ptr() as u64),
            Err(libc::ENAMETOOLONG)
        );
        let cwd = std::env::current_dir().unwrap_or_default();
        assert_eq!(
            task.dir(libc::AT_FDCWD),
            Ok(components(cwd.as_os_str().as_bytes()))
        );
        assert_eq!(task.dir(-5), Err(libc::EBADF));
        assert_eq!(task.dir(1_000_000), Err(libc::EBADF));
    }
}
