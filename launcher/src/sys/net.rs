//! The loopback interface of a new network namespace.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The part of `struct ifreq` that `SIOC[GS]IFFLAGS` use: the name, then `ifr_flags` at the
/// start of the 24-byte union.
#[repr(C)]
struct IfreqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// Brings `lo` up, so that loopback addresses work inside the namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket takes only integers; we own the descriptor it returns.
    let fd = super::check(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: `fd` was just returned by socket and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _rest: [0; 22],
    };
    for (dst, src) in req.name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a writable buffer the size of `struct ifreq` with a NUL-terminated
    // name; SIOCGIFFLAGS writes only `ifr_flags` into it.
    super::check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &raw mut req) })?;
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    super::check(unsafe {
        libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &raw const req)
    })?;
    second_loopback_address(&sock)
}

/// `struct ifreq` as `SIOCSIFADDR` uses it: the name, then an IPv4 `ifr_addr` at the start of
/// the 24-byte union.
#[repr(C)]
struct IfreqAddr {
    name: [libc::c_char; libc::IFNAMSIZ],
    addr: libc::sockaddr_in,
    _rest: [u8; 8],
}

/// Adds `127.0.0.2` to `lo` (as `lo:gw`). glibc's `getaddrinfo` with `AI_ADDRCONFIG` returns
/// IPv4 answers only where some IPv4 address other than `127.0.0.1` exists; with only that
/// one, a lookup through the sandbox's DNS bridge for IPv4 alone (`getent ahostsv4`, many
/// clients' default flags) would find nothing. The address is loopback like the first.
fn second_loopback_address(sock: &OwnedFd) -> io::Result<()> {
    let mut req = IfreqAddr {
        name: [0; libc::IFNAMSIZ],
        addr: libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 2]).to_be(),
            },
            sin_zero: [0; 8],
        },
        _rest: [0; 8],
    };
    for (dst, src) in req.name.iter_mut().zip(b"lo:gw") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a buffer the size of `struct ifreq` with a NUL-terminated name and an
    // IPv4 address; SIOCSIFADDR only reads it.
    super::check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR as _, &raw const req) })
        .map(drop)
}
