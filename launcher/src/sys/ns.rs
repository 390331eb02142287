//! Namespaces: `unshare(2)` and the identity map of a new user namespace.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// Namespaces the launcher creates (`CLONE_NEW*` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    pub network: bool,
}

impl Namespaces {
    fn flags(self) -> libc::c_int {
        let mut flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS;
        if self.network {
            flags |= libc::CLONE_NEWNET;
        }
        flags
    }

    /// `CLONE_NEWUSER|CLONE_NEWNS[|CLONE_NEWNET]`, for messages.
    pub fn describe(self) -> &'static str {
        if self.network {
            "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET)"
        } else {
            "unshare(CLONE_NEWUSER|CLONE_NEWNS)"
        }
    }
}

/// The effective user and group ids, read before `unshare` (afterwards they read as the
/// overflow id until the maps are written).
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid take no arguments, cannot fail and touch no memory of ours.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Moves this (single-threaded) process into new namespaces.
pub fn unshare(ns: Namespaces) -> io::Result<()> {
    // SAFETY: unshare takes only flags and changes only this process's namespaces.
    super::check(unsafe { libc::unshare(ns.flags()) }).map(drop)
}

/// Writes one of `/proc/self/{setgroups,uid_map,gid_map}` in a single `write(2)`, as the
/// kernel requires.
pub fn write_proc_self(name: &'static str, content: &str) -> io::Result<()> {
    let mut path = String::with_capacity(16 + name.len());
    path.push_str("/proc/self/");
    path.push_str(name);
    let mut file = OpenOptions::new().write(true).open(path)?;
    let n = file.write(content.as_bytes())?;
    if n != content.len() {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

// ---- Namespaces prepared ahead (see `crate::nspool`) ---------------------------------------

/// `ioctl_ns(2)` requests.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
const NS_GET_PARENT: libc::c_ulong = 0xb702;
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// This process's namespace of `kind` (`"user"`, `"net"`), as a descriptor.
pub fn open_own(kind: &str) -> io::Result<OwnedFd> {
    Ok(File::open(format!("/proc/self/ns/{kind}"))?.into())
}

/// `(device, inode)`: what identifies a namespace (`fstat`).
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: stat is plain old data; all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer for the whole call.
    super::check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // widths differ by target
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// The identity ([`identity`]) of this process's namespace of `kind`, without opening it:
/// one `stat` of `/proc/self/ns/KIND`.
pub fn own_identity(kind: &str) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/self/ns/{kind}"))?;
    Ok((meta.dev(), meta.ino()))
}

fn ns_ioctl_fd(fd: BorrowedFd<'_>, request: libc::c_ulong) -> io::Result<OwnedFd> {
    // SAFETY: these ioctl_ns and pidfd requests take no argument and return a new descriptor
    // or -1.
    let new = super::check(unsafe { libc::ioctl(fd.as_raw_fd(), request as _) })?;
    // SAFETY: `new` was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `PIDFD_GET_MNT_NAMESPACE`: `_IO(PIDFS_IOCTL_MAGIC = 0xFF, 3)` (Linux 6.11).
const PIDFD_GET_MNT_NAMESPACE: libc::c_ulong = 0xff03;

/// This process's mount namespace, as a descriptor, from `own_pidfd` (a pidfd for this
/// process): one `ioctl` (Linux 6.11), or on older kernels by opening `/proc/self/ns/mnt`.
pub fn own_mount_namespace(own_pidfd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ns_ioctl_fd(own_pidfd, PIDFD_GET_MNT_NAMESPACE).or_else(|_| open_own("mnt"))
}

/// The user namespace that owns the namespace `fd` names (`NS_GET_USERNS`).
pub fn owning_user_namespace(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ns_ioctl_fd(fd, NS_GET_USERNS)
}

/// The parent of the user namespace `fd` names (`NS_GET_PARENT`; `EPERM` for the initial
/// one or one outside this process's view).
pub fn parent_user_namespace(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ns_ioctl_fd(fd, NS_GET_PARENT)
}

/// The user id that created the user namespace `fd` names (`NS_GET_OWNER_UID`).
pub fn owner_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer, which is valid.
    super::check(unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_OWNER_UID as _, &raw mut uid) })?;
    Ok(uid)
}

/// `setns(2)`: joins the namespace `fd` names (`nstype` is its `CLONE_NEW*` bit).
pub fn enter(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: setns takes a descriptor and a flag and changes only this process's namespaces.
    super::check(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// `unshare(CLONE_NEWNS)`: a private copy of the current mount namespace.
pub fn unshare_mounts() -> io::Result<()> {
    // SAFETY: unshare takes only flags and changes only this process's namespaces.
    super::check(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map(drop)
}

/// `unshare(CLONE_NEWUSER|CLONE_NEWNET)`: what the namespace pool prepares ahead.
pub fn unshare_user_and_network() -> io::Result<()> {
    // SAFETY: unshare takes only flags and changes only this process's namespaces.
    super::check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) }).map(drop)
}
