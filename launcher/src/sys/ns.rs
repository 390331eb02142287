//! Namespaces: `unshare(2)` and the identity map of a new user namespace.

use std::fs::OpenOptions;
use std::io::{self, Write};

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
