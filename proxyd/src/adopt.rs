//! Descriptors on the Unix socket: the first line is read with `recvmsg(2)`, so a descriptor
//! sent with it (`SCM_RIGHTS`) is received and never silently dropped, and a `GW1 ADOPT`
//! connection's descriptor is checked before proxyd serves it.
//!
//! With `GW1 ADOPT <token> <service>` the launcher's bridge hands proxyd the TCP connection it
//! accepted inside the sandbox's network namespace, and proxyd serves the sandbox's client on
//! it directly: the bridge copies no bytes. Exactly one descriptor comes with an `ADOPT` line
//! and none with any other; anything else is a protocol error (logged by
//! [`crate::server`]), and every descriptor received is closed unless it is served. The
//! descriptor must be a connected TCP socket (IPv4 or IPv6), whichever network namespace it
//! lives in: proxyd only reads, writes and closes it.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SocketType,
    ipproto, recvmsg, sockopt,
};
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use crate::line::MAX_LINE;

/// Descriptors taken from one message at most: one more than a line may carry, so that an
/// extra one is seen (the kernel closes any beyond and says so with `MSG_CTRUNC`).
const MAX_FDS: usize = 2;

/// The first line of a connection, the bytes read past it, and the descriptors that came with
/// it (closed when dropped).
#[derive(Debug)]
pub struct FirstLine {
    /// Without its `\n`.
    pub line: Vec<u8>,
    pub rest: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Reads the first line with `recvmsg`, keeping the descriptors that come with its bytes.
/// On an error, the descriptors received so far are closed.
pub async fn read_first_line(s: &UnixStream) -> Result<FirstLine, &'static str> {
    let mut buf = Vec::with_capacity(256);
    let mut fds = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let rest = buf.split_off(i + 1);
            buf.pop();
            return Ok(FirstLine {
                line: buf,
                rest,
                fds,
            });
        }
        if buf.len() >= MAX_LINE {
            return Err("first line is longer than 4096 bytes");
        }
        let (n, got, truncated) = s
            .async_io(Interest::READABLE, || receive(s, &mut chunk))
            .await
            .map_err(|_| "read error before the first line ended")?;
        fds.extend(got);
        if truncated || fds.len() >= MAX_FDS {
            return Err("more descriptors came with the first line than it may carry; closed");
        }
        if n == 0 {
            return Err("connection closed before the first line ended");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One `recvmsg`: the byte count, the descriptors, and whether the kernel dropped some
/// (`MSG_CTRUNC`).
fn receive(s: &UnixStream, chunk: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = recvmsg(
        s,
        &mut [IoSliceMut::new(chunk)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(got) = m {
            fds.extend(got);
        }
    }
    Ok((msg.bytes, fds, msg.flags.contains(ReturnFlags::CTRUNC)))
}

/// The adopted descriptor as the client's stream, if it is a connected TCP socket; else what
/// it is instead (for the log line).
pub fn tcp_client(fd: OwnedFd) -> Result<TcpStream, String> {
    let kind = sockopt::socket_type(&fd).map_err(|e| format!("not a socket ({e})"))?;
    if kind != SocketType::STREAM {
        return Err(format!("not a stream socket (type {})", kind.as_raw()));
    }
    let family = sockopt::socket_domain(&fd).map_err(|e| format!("a socket of no family ({e})"))?;
    if family != AddressFamily::INET && family != AddressFamily::INET6 {
        return Err(format!(
            "not an IPv4 or IPv6 socket (family {})",
            family.as_raw()
        ));
    }
    let protocol = sockopt::socket_protocol(&fd).map_err(|e| format!("unknown protocol ({e})"))?;
    if protocol != Some(ipproto::TCP) {
        return Err("not a TCP socket".into());
    }
    if sockopt::socket_acceptconn(&fd).unwrap_or(true) {
        return Err("a listening socket, not a connection".into());
    }
    let s = std::net::TcpStream::from(fd);
    s.peer_addr()
        .map_err(|e| format!("not a connected socket ({e})"))?;
    s.set_nonblocking(true)
        .map_err(|e| format!("a socket that cannot be made non-blocking ({e})"))?;
    let _ = s.set_nodelay(true);
    TcpStream::from_std(s).map_err(|e| format!("a socket the runtime cannot take ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_connected_tcp_sockets_are_taken() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert!(tcp_client(OwnedFd::from(accepted)).is_ok());
        let why = |fd: OwnedFd| tcp_client(fd).unwrap_err();
        assert!(why(OwnedFd::from(l)).contains("listening"));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(why(OwnedFd::from(udp)).contains("not a stream socket"));
        let (u, _) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(why(OwnedFd::from(u)).contains("not an IPv4 or IPv6"));
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(why(OwnedFd::from(file)).contains("not a socket"));
        // A TCP socket never connected: no peer.
        let fresh = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        assert!(why(fresh).contains("not a connected socket"));
    }
}
