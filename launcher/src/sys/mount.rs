//! Mounts inside the private mount namespace: tmpfs, bind mounts and read-only flags.

use std::ffi::CStr;
use std::io;
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
const AT_RECURSIVE: libc::c_uint = 0x8000;

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let ptr_of = |s: Option<&CStr>| s.map_or(ptr::null(), CStr::as_ptr);
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
