//! Facts about the running kernel that compiled plans depend on.

/// `sysname release version machine` from uname(2): changes whenever the kernel does, so a
/// plan compiled for one kernel is never used on another.
pub fn identity() -> String {
    // SAFETY: utsname is plain old data; all-zero bytes are a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname; uname only writes into it.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let field = |f: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.version),
        field(&u.machine)
    )
}

/// The Landlock ABI version the kernel offers (0: none). One syscall; used when compiling,
/// never on the cached exec path.
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, the syscall reads no
    // memory and returns the ABI version or a negative error.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).unwrap_or(0)
}

/// Tries what the launcher does first, in this process (a throw-away child of `greywall
/// check`, never the launcher itself): user, mount and network namespaces, the identity maps,
/// and one mount. Under Ubuntu's AppArmor restriction `unshare` succeeds and a later step
/// fails, so all of them are tried. Returns the errno of the first failure.
pub fn try_unshare_user_net() -> Result<(), i32> {
    let last = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: getuid and getgid take no arguments and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare takes flags only; the calling process is a disposable child.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET) } != 0 {
        return Err(last());
    }
    for (file, text) in [
        ("/proc/self/setgroups", "deny".to_string()),
        ("/proc/self/uid_map", format!("{uid} {uid} 1")),
        ("/proc/self/gid_map", format!("{gid} {gid} 1")),
    ] {
        std::fs::write(file, text).map_err(|e| e.raw_os_error().unwrap_or(0))?;
    }
    // SAFETY: all pointers are null or NUL-terminated literals; this changes only the mount
    // propagation of the child's own, new mount namespace.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(last());
    }
    Ok(())
}

/// Whether seccomp filters can be installed (`PR_GET_SECCOMP` answers rather than failing
/// with `EINVAL`).
pub fn seccomp_available() -> bool {
    // SAFETY: PR_GET_SECCOMP reads no memory and returns the current mode.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 }
}
