//! Landlock: a ruleset, its rules, and restricting this process with it.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `struct landlock_ruleset_attr`. The size passed to the kernel says how many of the fields
/// it reads (8: fs only, ABI 1–3; 16: and net, ABI 4–5; 24: and scopes, ABI 6+).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr`, packed as in the kernel's UAPI (12 bytes).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

const RULE_PATH_BENEATH: libc::c_int = 1;
const RULE_NET_PORT: libc::c_int = 2;

/// What a ruleset handles (denies unless a rule allows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    pub fs: u64,
    pub net: u64,
    pub scoped: u64,
}

impl Handled {
    /// Size of the attribute struct the kernel must read: what `abi` defines, and at least
    /// what the non-zero fields need (so the kernel refuses rights it does not know instead of
    /// never seeing them).
    fn attr_size(self, abi: u32) -> usize {
        if abi >= 6 || self.scoped != 0 {
            24
        } else if abi >= 4 || self.net != 0 {
            16
        } else {
            8
        }
    }
}

/// An open ruleset; closed on drop.
pub struct Ruleset(OwnedFd);

impl Ruleset {
    /// `landlock_create_ruleset(2)` for a plan compiled against Landlock ABI `abi`.
    pub fn create(handled: Handled, abi: u32) -> io::Result<Ruleset> {
        let attr = RulesetAttr {
            handled_access_fs: handled.fs,
            handled_access_net: handled.net,
            scoped: handled.scoped,
        };
        // SAFETY: `attr` is valid for reads of `attr_size` bytes (at most its full size); the
        // kernel only reads it and returns a new descriptor or -1.
        let fd = super::check_long(unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &raw const attr,
                handled.attr_size(abi),
                0u32,
            )
        })?;
        let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: `fd` is a descriptor the kernel just created for us; nothing else owns it.
        Ok(Ruleset(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Allows `access` beneath the file or directory `parent` refers to.
    pub fn allow_beneath(&self, parent: BorrowedFd<'_>, access: u64) -> io::Result<()> {
        let attr = PathBeneathAttr {
            allowed_access: access,
            parent_fd: parent.as_raw_fd(),
        };
        // SAFETY: `attr` is a valid packed `landlock_path_beneath_attr` the kernel only reads;
        // both descriptors are open for the duration of the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.0.as_raw_fd(),
                RULE_PATH_BENEATH,
                &raw const attr,
                0u32,
            )
        };
        super::check_long(ret).map(drop)
    }

    /// Allows `access` (bind, connect) on TCP port `port`.
    pub fn allow_port(&self, port: u16, access: u64) -> io::Result<()> {
        let attr = NetPortAttr {
            allowed_access: access,
            port: u64::from(port),
        };
        // SAFETY: `attr` is a valid `landlock_net_port_attr` the kernel only reads; the ruleset
        // descriptor is open.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.0.as_raw_fd(),
                RULE_NET_PORT,
                &raw const attr,
                0u32,
            )
        };
        super::check_long(ret).map(drop)
    }

    /// `landlock_restrict_self(2)`: from now on this thread (the only one) and everything it
    /// execs is confined. Needs `no_new_privs` first. Closes the ruleset.
    pub fn restrict_self(self) -> io::Result<()> {
        // SAFETY: the ruleset descriptor is open; the call reads no memory of ours.
        let ret =
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, self.0.as_raw_fd(), 0u32) };
        super::check_long(ret).map(drop)
    }
}

/// Opens `path` for a `path_beneath` rule, with `O_PATH` (no access check, no side effect).
/// `Ok(None)`: it does not exist.
pub fn open_rule_path(path: &CStr) -> io::Result<Option<OwnedFd>> {
    // The raw syscall: musl's open() follows an O_CLOEXEC open with an fcntl(F_SETFD) for
    // kernels older than 2.6.23, one wasted syscall per rule.
    // SAFETY: `path` is NUL-terminated; openat returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    let fd = libc::c_int::try_from(fd).unwrap_or(-1);
    match super::check(fd) {
        // SAFETY: `fd` was just returned by open and nothing else owns it.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(e),
    }
}
