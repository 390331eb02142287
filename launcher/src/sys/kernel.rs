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

/// Tries to create a user and a network namespace in this process (used by a throw-away child
/// process of `greywall check`, never by the launcher itself). Returns the errno on failure.
pub fn try_unshare_user_net() -> Result<(), i32> {
    // SAFETY: unshare takes flags only; the calling process is a disposable child.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Whether seccomp filters can be installed (`PR_GET_SECCOMP` answers rather than failing
/// with `EINVAL`).
pub fn seccomp_available() -> bool {
    // SAFETY: PR_GET_SECCOMP reads no memory and returns the current mode.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 }
}
