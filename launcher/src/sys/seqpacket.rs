//! Unix `SOCK_SEQPACKET` sockets bound to a path: the namespace pool's listener and its
//! clients ([`crate::nspool`]). Message boundaries are kept, so the descriptors passed with
//! `SCM_RIGHTS` arrive with the message they were sent with ([`send_with_fds`]): a set of
//! namespaces, or a launch handed to a waiting supervisor, is one message and one wake-up of
//! the process receiving it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes only integers and returns a new descriptor or -1.
    let fd = super::check(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: `fd` was just returned by socket and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn address(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero bytes are a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // One byte stays NUL.
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = size_of::<libc::sa_family_t>() + bytes.len() + 1;
    let len =
        libc::socklen_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok((addr, len))
}

/// A listening socket bound to `path` (which must not exist).
pub fn listen(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket()?;
    let (addr, len) = address(path)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes; bind only reads it.
    super::check(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    // SAFETY: listen takes a descriptor and a backlog.
    super::check(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(fd)
}

/// A socket connected to the listener at `path`.
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket()?;
    let (addr, len) = address(path)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes; connect only reads it.
    super::check(unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    Ok(fd)
}

/// The next connection on `listener` (close-on-exec).
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed; accept4 returns a new descriptor or -1.
    let fd = super::check(unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: `fd` was just returned by accept4 and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The user id of the process at the other end (`SO_PEERCRED`).
pub fn peer_uid(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: ucred is plain old data; all-zero bytes are a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(size_of::<libc::ucred>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `cred` is writable for `len` bytes; getsockopt writes at most that many.
    super::check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    })?;
    Ok(cred.uid)
}

/// `setsid(2)`: this process leaves the caller's session and process group (a daemon).
pub fn new_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments and changes only this process's attributes.
    super::check(unsafe { libc::setsid() }).map(drop)
}

/// Sends `bytes` as one message (`MSG_NOSIGNAL`: a closed peer is an error, not a signal).
pub fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: `bytes` is readable for its length; send only reads it.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return if usize::try_from(n).ok() == Some(bytes.len()) {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::EMSGSIZE))
            };
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Receives one message of at most `max` bytes. `Ok(None)`: the peer closed the socket.
pub fn recv(fd: BorrowedFd<'_>, max: usize) -> io::Result<Option<Vec<u8>>> {
    // Room for `max` bytes, not zeroed: only the pages the message lands on are touched (a
    // waiting supervisor's room for a whole plan would otherwise cost it a megabyte of page
    // faults and zeroing, on a CPU the launches it serves need).
    let mut buf: Vec<u8> = Vec::with_capacity(max);
    loop {
        // SAFETY: `buf` has room for `max` bytes; recv writes at most that many.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), max, 0) };
        if n >= 0 {
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 {
                return Ok(None);
            }
            // SAFETY: recv initialised the first `n` bytes, and `n <= max`, the capacity.
            unsafe { buf.set_len(n.min(max)) };
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Closes every descriptor of this process except 0, 1, 2 and `keep` (`close_range(2)`).
pub fn close_all_but(keep: BorrowedFd<'_>) -> io::Result<()> {
    let keep = libc::c_uint::try_from(keep.as_raw_fd())
        .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    for (first, last) in [(3, keep.saturating_sub(1)), (keep + 1, libc::c_uint::MAX)] {
        if first > last {
            continue;
        }
        // SAFETY: close_range takes integers; the descriptors it closes are owned by nothing
        // this process still uses (the caller says so).
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        if ret == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Points standard error at the file `fd` names.
pub fn set_stderr(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: dup2 takes two descriptors; `fd` stays open across the call.
    super::check(unsafe { libc::dup2(fd.as_raw_fd(), libc::STDERR_FILENO) }).map(drop)
}

/// `SO_RCVTIMEO`: a receive on `fd` gives up after `timeout` (`EAGAIN`).
pub fn set_receive_timeout(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<()> {
    // SAFETY: timeval is plain old data; all-zero bytes are a valid value.
    let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
    tv.tv_sec = timeout
        .as_secs()
        .try_into()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    tv.tv_usec = timeout.subsec_micros().into();
    let len = libc::socklen_t::try_from(size_of::<libc::timeval>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `tv` is a valid timeval of `len` bytes; setsockopt only reads it.
    super::check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            len,
        )
    })
    .map(drop)
}

/// The most descriptors one message carries here (the kernel's limit is 253).
pub const MAX_FDS: usize = 16;

/// Room for the `SCM_RIGHTS` header and [`MAX_FDS`] descriptors, aligned for `cmsghdr`.
#[repr(C)]
struct Control {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; 128],
}

// SAFETY: CMSG_SPACE only computes a size from its argument.
const CONTROL_SPACE: usize =
    unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<libc::c_int>()) as u32) } as usize;
const _: () = assert!(CONTROL_SPACE <= 128);

/// Sends `bytes` (not empty) and `fds` (at most [`MAX_FDS`]) as one message.
pub fn send_with_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if bytes.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut iov = libc::iovec {
        // sendmsg only reads through this pointer.
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let mut control = Control {
        _align: [],
        bytes: [0; 128],
    };
    // SAFETY: msghdr is plain old data; all-zero bytes are a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = u32::try_from(fds.len() * size_of::<libc::c_int>())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        msg.msg_control = (&raw mut control.bytes).cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(data_len) } as _;
        // SAFETY: `msg` describes a control buffer of CMSG_SPACE(data_len) <= 128 bytes,
        // aligned for cmsghdr, so CMSG_FIRSTHDR points to its start, valid for a header and
        // `fds.len()` ints of data, written unaligned one by one.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: `msg` points to the live `iov`, `bytes` and `control` above; sendmsg only
        // reads them.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return if usize::try_from(n).ok() == Some(bytes.len()) {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::EMSGSIZE))
            };
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Receives one message of at most `max` bytes and the descriptors that came with it (at
/// most [`MAX_FDS`]; they are close-on-exec). `Ok(None)`: the peer closed the socket. A
/// message or a descriptor list cut short is an error (`EPROTO`), and whatever descriptors
/// did arrive are closed.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    max: usize,
) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    // Not zeroed, as in `recv`.
    let mut buf: Vec<u8> = Vec::with_capacity(max);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: max,
    };
    let mut control = Control {
        _align: [],
        bytes: [0; 128],
    };
    // SAFETY: msghdr is plain old data; all-zero bytes are a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&raw mut control.bytes).cast();
    msg.msg_controllen = CONTROL_SPACE as _;
    let n = loop {
        // SAFETY: `msg` points to the live, writable `iov`, `buf` and `control` above;
        // recvmsg writes at most their sizes.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break usize::try_from(n).unwrap_or(0);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: recvmsg set `msg_controllen` to what it wrote into `control`; CMSG_FIRSTHDR and
    // CMSG_NXTHDR only return headers that fit in it, and each header's data length bounds
    // the ints read from it. Each descriptor read was just installed in this process by the
    // kernel and is owned by nothing else.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let header = libc::CMSG_LEN(0) as usize;
                let len = ((*cmsg).cmsg_len as usize).saturating_sub(header);
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                for i in 0..len / size_of::<libc::c_int>() {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & (libc::MSG_CTRUNC | libc::MSG_TRUNC) != 0 {
        return Err(io::Error::from_raw_os_error(libc::EPROTO));
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    // SAFETY: recvmsg initialised the first `n` bytes, and `n <= max`, the capacity.
    unsafe { buf.set_len(n.min(max)) };
    Ok(Some((buf, fds)))
}
