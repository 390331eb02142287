//! The tunnel relay: once a `CONNECT` (HTTP or SOCKS5) is accepted, bytes move both ways
//! between the client and its upstream until both directions are done.
//!
//! Between two sockets (the Unix socket of the client's bridge and the TCP upstream) each
//! direction moves bytes with `splice(2)` through a pipe, so they never enter user space;
//! tokio's readiness drives the non-blocking calls. A direction holds a pipe only while it
//! moves bytes: a pipe drained empty goes back to a small pool when its source has nothing to
//! read, so idle tunnels hold no pipes. When the kernel refuses `splice` for a pair of
//! descriptors (`EINVAL`, `ENOSYS`) the direction copies through a buffer instead, and streams
//! that are not sockets (tests, hyper's upgrade when it cannot be taken apart) use
//! [`crate::stream::relay`].
//!
//! In both cases: bytes the proxy read ahead go upstream first, an EOF on one side shuts down
//! writing on the other (half-close), an error on either side ends the tunnel at once (both
//! descriptors are dropped), and there is no timeout on a tunnel's bytes.

use std::any::Any;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};

use crate::stream::{Counted, Counters, Held, Prefixed, RELAY_BUFFER};

/// Relays between `client` and `upstream` until both directions are done or one fails.
/// `early` holds client bytes the proxy already read (past the request); they go upstream
/// first. `counters` count bytes written to (`up`) and read from (`down`) the upstream.
pub async fn tunnel<C, U>(
    client: &mut C,
    mut early: Vec<u8>,
    upstream: &mut U,
    counters: &Arc<Counters>,
) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
    U: AsyncRead + AsyncWrite + Unpin + 'static,
{
    early.extend_from_slice(&take_prefix(client));
    if !early.is_empty() {
        upstream.write_all(&early).await?;
        counters.up.fetch_add(early.len() as u64, Ordering::Relaxed);
    }
    match (socket_of(&*client), socket_of(&*upstream)) {
        (Some(c), Some(u)) => {
            c.enlarge_send_buffer();
            u.enlarge_send_buffer();
            let up = pump(c, u, None, Some(&counters.up));
            let down = pump(u, c, Some(&counters.down), None);
            tokio::try_join!(up, down).map(drop)
        }
        _ => {
            let mut counted = Counted::new(upstream, counters.clone());
            crate::stream::relay(client, &mut counted).await.map(drop)
        }
    }
}

/// The unread bytes of a [`Prefixed`] stream (taken out of it); nothing for other streams.
fn take_prefix<S: 'static>(s: &mut S) -> Vec<u8> {
    let any: &mut dyn Any = s;
    if let Some(p) = any.downcast_mut::<Prefixed<UnixStream>>() {
        return p.take_prefix();
    }
    if let Some(p) = any.downcast_mut::<Prefixed<TcpStream>>() {
        return p.take_prefix();
    }
    Vec::new()
}

/// The socket under a stream, when it is one (a [`Prefixed`] one must be empty: see
/// [`take_prefix`]).
fn socket_of<S: 'static>(s: &S) -> Option<Sock<'_>> {
    let any: &dyn Any = s;
    if let Some(t) = any.downcast_ref::<TcpStream>() {
        return Some(Sock::Tcp(t));
    }
    if let Some(u) = any.downcast_ref::<UnixStream>() {
        return Some(Sock::Unix(u));
    }
    if let Some(p) = any.downcast_ref::<Prefixed<UnixStream>>() {
        return p.is_drained().then(|| Sock::Unix(p.inner()));
    }
    if let Some(p) = any.downcast_ref::<Prefixed<TcpStream>>() {
        return p.is_drained().then(|| Sock::Tcp(p.inner()));
    }
    if let Some(h) = any.downcast_ref::<Held<TcpStream>>() {
        return Some(Sock::Tcp(h.inner()));
    }
    None
}

/// A borrowed tokio socket: its descriptor and its readiness.
#[derive(Debug, Clone, Copy)]
enum Sock<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

impl<'a> Sock<'a> {
    fn fd(self) -> BorrowedFd<'a> {
        match self {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Unix(s) => s.as_fd(),
        }
    }

    async fn ready(self, interest: Interest) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.ready(interest).await.map(drop),
            Sock::Unix(s) => s.ready(interest).await.map(drop),
        }
    }

    /// Runs a non-blocking operation; a `WouldBlock` clears the socket's readiness.
    fn try_io<R>(self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Sock::Tcp(s) => s.try_io(interest, f),
            Sock::Unix(s) => s.try_io(interest, f),
        }
    }

    fn try_read(self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.try_read(buf),
            Sock::Unix(s) => s.try_read(buf),
        }
    }

    fn try_write(self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.try_write(buf),
            Sock::Unix(s) => s.try_write(buf),
        }
    }

    /// Raises a Unix socket's send buffer to [`UNIX_SEND_BUFFER`] (TCP sockets size theirs
    /// themselves). A Unix stream socket's send buffer bounds the bytes queued for its peer, so
    /// the default (`net.core.wmem_default`, usually 208 KiB) makes a bulk direction splice a
    /// fifth of a pipe at a time, each part a wait and a wake-up; see docs/proxyd.md. The
    /// kernel caps the value at `net.core.wmem_max`; a refusal only costs speed.
    fn enlarge_send_buffer(self) {
        use nix::sys::socket::{setsockopt, sockopt::SndBuf};
        if let Sock::Unix(s) = self {
            let _ = setsockopt(s, SndBuf, &UNIX_SEND_BUFFER);
        }
    }

    /// Passes an EOF on: no more bytes will be written to this socket.
    fn shutdown_write(self) -> io::Result<()> {
        use nix::sys::socket::{Shutdown, shutdown};
        match shutdown(self.fd().as_raw_fd(), Shutdown::Write) {
            // The peer is gone already: nothing left to tell it.
            Ok(()) | Err(Errno::ENOTCONN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn add(counter: Option<&AtomicU64>, n: usize) {
    if let Some(c) = counter {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
}

const SPLICE_FLAGS: SpliceFFlags =
    SpliceFFlags::SPLICE_F_MOVE.union(SpliceFFlags::SPLICE_F_NONBLOCK);

/// Moves bytes from `src` to `dst` until `src` ends (then shuts down writing on `dst`).
/// `read` counts bytes taken from `src`, `written` bytes given to `dst`.
async fn pump(
    src: Sock<'_>,
    dst: Sock<'_>,
    read: Option<&AtomicU64>,
    written: Option<&AtomicU64>,
) -> io::Result<()> {
    let mut pipe: Option<Pipe> = None;
    loop {
        // The pipe is empty here, so a `WouldBlock` can only mean `src` has nothing to read.
        let p = match pipe.take() {
            Some(p) => p,
            None => Pipe::get()?,
        };
        let n = src.try_io(Interest::READABLE, || {
            splice(src.fd(), None, &p.w, None, p.size, SPLICE_FLAGS).map_err(io::Error::from)
        });
        let mut left = match n {
            Ok(0) => {
                p.put_back();
                return dst.shutdown_write();
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Idle: hold no pipe while waiting.
                p.put_back();
                src.ready(Interest::READABLE).await?;
                continue;
            }
            Err(e) if unsupported(&e) => {
                p.put_back();
                return copy(src, dst, read, written).await;
            }
            Err(e) => return Err(e),
        };
        add(read, left);
        while left > 0 {
            let m = dst.try_io(Interest::WRITABLE, || {
                splice(&p.r, None, dst.fd(), None, left, SPLICE_FLAGS).map_err(io::Error::from)
            });
            match m {
                Ok(m) => {
                    left -= m;
                    add(written, m);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    dst.ready(Interest::WRITABLE).await?;
                }
                // A pipe with bytes in it is closed, never reused.
                Err(e) => return Err(e),
            }
        }
        pipe = Some(p);
    }
}

/// `splice` cannot serve this pair of descriptors.
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS)
    )
}

/// The buffered fallback of [`pump`].
async fn copy(
    src: Sock<'_>,
    dst: Sock<'_>,
    read: Option<&AtomicU64>,
    written: Option<&AtomicU64>,
) -> io::Result<()> {
    let mut buf = vec![0u8; RELAY_BUFFER];
    loop {
        let n = match src.try_read(&mut buf) {
            Ok(0) => return dst.shutdown_write(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                src.ready(Interest::READABLE).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        add(read, n);
        let mut off = 0;
        while off < n {
            match dst.try_write(&buf[off..n]) {
                Ok(m) => {
                    off += m;
                    add(written, m);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    dst.ready(Interest::WRITABLE).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The send buffer asked for on a tunnel's Unix socket (`SO_SNDBUF`: the kernel doubles it for
/// its bookkeeping, so up to 1 MiB of bytes in flight, as much as one pipe holds).
pub const UNIX_SEND_BUFFER: usize = 512 * 1024;

/// The pipe size asked for (`F_SETPIPE_SZ`); the kernel's default is 64 KiB.
pub const PIPE_SIZE: usize = 1 << 20;
/// At most this many pipes are enlarged at once: pipe buffers count against the user's
/// `fs.pipe-user-pages-soft` (64 MiB by default), past which every new pipe of the user,
/// proxyd's or not, gets a small one.
const MAX_LARGE_PIPES: usize = 16;
/// Empty pipes kept for reuse.
const POOL: usize = 8;

static LARGE_PIPES: AtomicUsize = AtomicUsize::new(0);
static IDLE: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());

/// A pipe's two ends; its capacity in bytes.
#[derive(Debug)]
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    size: usize,
    large: bool,
}

impl Pipe {
    /// An empty pipe: a pooled one, else a new one.
    fn get() -> io::Result<Pipe> {
        if let Some(p) = IDLE.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(p);
        }
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let mut p = Pipe {
            r,
            w,
            size: 64 * 1024,
            large: false,
        };
        if LARGE_PIPES.fetch_add(1, Ordering::Relaxed) < MAX_LARGE_PIPES
            && fcntl(&p.w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32)).is_ok()
        {
            p.large = true;
        } else {
            LARGE_PIPES.fetch_sub(1, Ordering::Relaxed);
        }
        if let Ok(n) = fcntl(&p.w, FcntlArg::F_GETPIPE_SZ)
            && let Ok(n) = usize::try_from(n)
            && n > 0
        {
            p.size = n;
        }
        Ok(p)
    }

    /// Returns an empty pipe to the pool (or closes it when the pool is full).
    fn put_back(self) {
        if let Ok(mut v) = IDLE.lock()
            && v.len() < POOL
        {
            v.push(self);
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.large {
            LARGE_PIPES.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connected TCP pair on loopback.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
            .collect()
    }

    /// Both directions at once, with bytes read ahead, a prefix and half-closes, between a
    /// Unix socket and a TCP socket (the production pair).
    #[tokio::test]
    async fn splices_both_ways_with_early_bytes_and_half_close() {
        let (client_far, client_near) = UnixStream::pair().unwrap();
        let (mut up_far, up_near) = tcp_pair().await;
        let mut client = Prefixed::new(b"prefix-".to_vec(), client_near);
        let mut upstream = up_near;
        let counters = Arc::new(Counters::default());
        let to_up = pattern(3 << 20, 1);
        let to_client = pattern(5 << 20, 2);
        let (tu, tc) = (to_up.clone(), to_client.clone());
        let far_client = tokio::spawn(async move {
            let (mut r, mut w) = client_far.into_split();
            let writer = tokio::spawn(async move {
                w.write_all(&tu).await.unwrap();
                w.shutdown().await.unwrap();
            });
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            got
        });
        let far_up = tokio::spawn(async move {
            let (mut r, mut w) = up_far.split();
            let send = async {
                w.write_all(&tc).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let recv = r.read_to_end(&mut got);
            let (_, n) = tokio::join!(send, recv);
            n.unwrap();
            got
        });
        tunnel(&mut client, b"early-".to_vec(), &mut upstream, &counters)
            .await
            .unwrap();
        let at_client = far_client.await.unwrap();
        let at_up = far_up.await.unwrap();
        let mut want_up = b"early-prefix-".to_vec();
        want_up.extend_from_slice(&to_up);
        assert!(at_up == want_up, "upstream got {} bytes", at_up.len());
        assert!(
            at_client == to_client,
            "client got {} bytes",
            at_client.len()
        );
        assert_eq!(
            counters.get(),
            (want_up.len() as u64, to_client.len() as u64)
        );
    }

    /// The Unix side of a spliced tunnel gets the larger send buffer; the TCP side keeps the
    /// kernel's automatic sizing.
    #[tokio::test]
    async fn unix_side_gets_the_larger_send_buffer() {
        use nix::sys::socket::{getsockopt, sockopt::SndBuf};
        let (client_far, mut client) = UnixStream::pair().unwrap();
        let (up_far, mut upstream) = tcp_pair().await;
        let before = (
            getsockopt(&client, SndBuf).unwrap(),
            getsockopt(&upstream, SndBuf).unwrap(),
        );
        // Both far ends end at once, so the tunnel does too.
        drop((client_far, up_far));
        let counters = Arc::new(Counters::default());
        let _ = tunnel(&mut client, Vec::new(), &mut upstream, &counters).await;
        let after = (
            getsockopt(&client, SndBuf).unwrap(),
            getsockopt(&upstream, SndBuf).unwrap(),
        );
        assert!(after.0 > before.0, "{before:?} -> {after:?}");
        assert_eq!(after.1, before.1);
    }

    /// Streams that are not sockets take the buffered path, with the same results.
    #[tokio::test]
    async fn other_streams_are_copied() {
        let (mut a, mut a_far) = tokio::io::duplex(1024);
        let (mut b, mut b_far) = tokio::io::duplex(1024);
        let counters = Arc::new(Counters::default());
        let far = tokio::spawn(async move {
            a_far.write_all(b"ping").await.unwrap();
            a_far.shutdown().await.unwrap();
            let mut got = Vec::new();
            b_far.read_to_end(&mut got).await.unwrap();
            b_far.write_all(b"pong!").await.unwrap();
            drop(b_far);
            let mut back = Vec::new();
            a_far.read_to_end(&mut back).await.unwrap();
            (got, back)
        });
        tunnel(&mut a, b"x".to_vec(), &mut b, &counters)
            .await
            .unwrap();
        drop((a, b));
        let (got, back) = far.await.unwrap();
        assert_eq!(got, b"xping");
        assert_eq!(back, b"pong!");
        assert_eq!(counters.get(), (5, 5));
    }

    /// The buffered fallback of a direction moves the same bytes as the spliced one.
    #[tokio::test]
    async fn buffered_fallback_direction() {
        let (mut src_far, src) = tcp_pair().await;
        let (dst, mut dst_far) = tcp_pair().await;
        let data = pattern(2 << 20, 3);
        let d = data.clone();
        let w = tokio::spawn(async move {
            src_far.write_all(&d).await.unwrap();
            src_far.shutdown().await.unwrap();
        });
        let r = tokio::spawn(async move {
            let mut got = Vec::new();
            dst_far.read_to_end(&mut got).await.unwrap();
            got
        });
        let (n_in, n_out) = (AtomicU64::new(0), AtomicU64::new(0));
        copy(Sock::Tcp(&src), Sock::Tcp(&dst), Some(&n_in), Some(&n_out))
            .await
            .unwrap();
        w.await.unwrap();
        assert!(r.await.unwrap() == data);
        assert_eq!(n_in.load(Ordering::Relaxed), data.len() as u64);
        assert_eq!(n_out.load(Ordering::Relaxed), data.len() as u64);
    }
}
