//! Mounts inside the private mount namespace: tmpfs, bind mounts and read-only flags.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// An optional C string as the kernel takes it: null when absent.
fn ptr_of(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call;
    // mount reads them and writes no memory of ours.
    let ret = unsafe {
        libc::mount(
            ptr_of(source),
            target.as_ptr(),
            ptr_of(fstype),
            flags,
            ptr_of(data).cast(),
        )
    };
    super::check(ret).map(drop)
}

/// Stops mount events from propagating between this namespace and the host, in both
/// directions (`mount --make-rprivate /`).
pub fn make_private() -> io::Result<()> {
    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
}

/// Mounts a fresh tmpfs on `target`. `options` is the tmpfs option string (`mode=1777`).
pub fn tmpfs(target: &CStr, options: &CStr, read_only: bool) -> io::Result<()> {
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if read_only {
        flags |= libc::MS_RDONLY | libc::MS_NOEXEC;
    }
    mount(Some(c"tmpfs"), target, Some(c"tmpfs"), flags, Some(options))
}

/// A new, empty tmpfs that is not attached anywhere yet (`fsopen`/`fsmount`, Linux 5.2): the
/// same file system and mount flags [`tmpfs`] mounts, made ahead by the namespace pool and
/// attached by a launch with [`attach`]. Needs a mount namespace of this process's user
/// namespace; the tmpfs belongs to that user namespace.
pub fn detached_tmpfs(mode: u32, read_only: bool) -> io::Result<OwnedFd> {
    // SAFETY: fsopen reads the NUL-terminated name and returns a new descriptor or -1.
    let raw = super::check_long(unsafe {
        libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC)
    })?;
    // SAFETY: `raw` was just returned by the kernel and nothing else owns it.
    let context = unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) };
    let mode = std::ffi::CString::new(format!("{mode:o}"))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // Named as `mount -t tmpfs tmpfs` names it (in /proc/self/mountinfo, for df and the like).
    fsconfig(
        context.as_fd(),
        FSCONFIG_SET_STRING,
        Some(c"source"),
        Some(c"tmpfs"),
    )?;
    fsconfig(
        context.as_fd(),
        FSCONFIG_SET_STRING,
        Some(c"mode"),
        Some(&mode),
    )?;
    let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if read_only {
        // The superblock read-only too, as `MS_RDONLY` on a new mount makes it.
        fsconfig(context.as_fd(), FSCONFIG_SET_FLAG, Some(c"ro"), None)?;
        attrs |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC;
    }
    fsconfig(context.as_fd(), FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: fsmount takes a descriptor and flags and returns a new descriptor or -1.
    let raw = super::check_long(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs,
        )
    })?;
    // SAFETY: `raw` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) })
}

fn fsconfig(
    context: BorrowedFd<'_>,
    command: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
) -> io::Result<()> {
    // SAFETY: `key` and `value` are null or NUL-terminated strings that outlive the call;
    // fsconfig only reads them.
    super::check_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            command,
            ptr_of(key),
            ptr_of(value),
            0,
        )
    })
    .map(drop)
}

/// Whether `fd` is on a tmpfs (`fstatfs`).
pub fn is_tmpfs(fd: BorrowedFd<'_>) -> io::Result<bool> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    // SAFETY: statfs is plain old data; all-zero bytes are a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable statfs buffer for the whole call.
    super::check(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    // `f_type`'s width and signedness differ between architectures and libcs.
    #[allow(clippy::unnecessary_cast, clippy::cast_lossless)]
    Ok(st.f_type as i64 == TMPFS_MAGIC)
}

/// Attaches a detached mount ([`detached_tmpfs`]) on `target` (`move_mount`).
pub fn attach(mount: BorrowedFd<'_>, target: &CStr) -> io::Result<()> {
    // SAFETY: the empty path and `target` are NUL-terminated and outlive the call; move_mount
    // writes no memory of ours.
    super::check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// Bind-mounts `source` onto `target`, with every mount below `source`.
pub fn bind(source: &CStr, target: &CStr) -> io::Result<()> {
    mount(
        Some(source),
        target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
}

/// Makes the mount at `target` read-only, nosuid and nodev (so a hidden file's `/dev/null`
/// cannot be opened at all), and with `recursive` every mount below it too.
/// `target` must be the root of a mount (bind it onto itself first).
///
/// Uses `mount_setattr(2)` (Linux 5.12, older than any kernel with Landlock), which changes
/// only the read-only flag, so the flags a user namespace may not change (nosuid, nodev,
/// noexec, atime) stay as they are. On a kernel without it, falls back to a bind remount of
/// `target` alone that repeats the flags it already has.
pub fn set_read_only(target: &CStr, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `target` is NUL-terminated and `attr` is a valid `struct mount_attr` whose size
    // we pass; the kernel only reads both.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            target.as_ptr(),
            flags,
            &raw const attr,
            size_of::<MountAttr>(),
        )
    };
    match super::check_long(ret) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => remount_read_only(target),
        r => r.map(drop),
    }
}

/// `mount -o remount,bind,ro` keeping the flags the mount already has: in a user namespace
/// the kernel refuses (EPERM) a remount that would clear a locked flag.
/// `ST_RELATIME` (Linux's value; musl's libc bindings lack the name).
const ST_RELATIME: libc::c_ulong = 0x1000;

fn remount_read_only(target: &CStr) -> io::Result<()> {
    // SAFETY: statvfs is plain old data; all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `target` is NUL-terminated and `st` is a valid, writable statvfs.
    super::check(unsafe { libc::statvfs(target.as_ptr(), &mut st) })?;
    const KEEP: [(libc::c_ulong, libc::c_ulong); 6] = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (ST_RELATIME, libc::MS_RELATIME),
    ];
    let mut flags =
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    for (st_flag, ms_flag) in KEEP {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    mount(None, target, None, flags, None)
}

/// Whether `path` exists (following symlinks, as mount does), to tell a missing mount point
/// from a missing mount source after `ENOENT`.
pub fn exists(path: &CStr) -> bool {
    // SAFETY: stat is plain old data; all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid, writable stat buffer.
    unsafe { libc::stat(path.as_ptr(), &mut st) == 0 }
}
