//! Descriptors passed over Unix sockets (`SCM_RIGHTS`), and the messages they ride with: the
//! namespace pool's sets, a launch handed to a waiting supervisor, the seccomp listener handed
//! to the supervisor, a sandbox's connection handed to proxyd. Received descriptors are
//! close-on-exec and owned at once, so none leaks on any path.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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

/// A message header for the one buffer `iov` describes, without control data yet.
fn header(iov: &mut libc::iovec) -> libc::msghdr {
    // SAFETY: msghdr is plain old data; all-zero bytes are a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg
}

/// Sends `bytes` (not empty) and `fds` (at most [`MAX_FDS`], maybe none) in one `sendmsg`
/// (`MSG_NOSIGNAL`: a closed peer is an error, not a signal). On a stream socket the
/// descriptors arrive with the first of those bytes. All of `bytes` must go in that one call
/// (else `EMSGSIZE`): meant for messages, not streams.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
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
    let mut msg = header(&mut iov);
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
/// did arrive are closed. On a stream socket, reads at most `max` bytes of the stream.
pub fn recv(sock: BorrowedFd<'_>, max: usize) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    // Room for `max` bytes, not zeroed: only the pages the message lands on are touched (a
    // waiting supervisor's room for a whole plan would otherwise cost it a megabyte of page
    // faults and zeroing, on a CPU the launches it serves need).
    let mut buf: Vec<u8> = Vec::with_capacity(max);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: max,
    };
    let mut control = Control {
        _align: [],
        bytes: [0; 128],
    };
    let mut msg = header(&mut iov);
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

/// Sends `fd` with one byte of data.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    send(sock, &[0], &[fd])
}

/// Receives a descriptor [`send_fd`] sent. `Ok(None)`: the other end closed the socket
/// without sending one; anything but one byte and one descriptor is an error (`EPROTO`).
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    match recv(sock, 1)? {
        None => Ok(None),
        Some((bytes, mut fds)) if bytes.len() == 1 && fds.len() == 1 => Ok(fds.pop()),
        Some(_) => Err(io::Error::from_raw_os_error(libc::EPROTO)),
    }
}
