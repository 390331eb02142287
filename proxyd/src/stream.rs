//! Stream adapters: bytes already read put back in front ([`Prefixed`]), byte counters
//! ([`Counted`]) for the audit log, and a stream that holds a guard ([`Held`]).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream with bytes that were read ahead (past the `GW1` line) served first.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }

    /// The bytes not read yet, taken out: reads go to the inner stream from now on.
    pub fn take_prefix(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.prefix);
        rest.drain(..self.pos.min(rest.len()));
        self.pos = 0;
        rest
    }

    /// Whether every prefix byte has been read (or taken).
    pub fn is_drained(&self) -> bool {
        self.pos >= self.prefix.len()
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Writes go straight to the wrapped stream (`inner`).
macro_rules! writes_pass_through {
    ($wrapper:ident) => {
        impl<S: AsyncWrite + Unpin> AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }
            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

writes_pass_through!(Prefixed);

/// A stream that keeps something alive (a guard) exactly as long as itself: an adopted client's
/// registration entry ([`crate::server`]) lives while hyper or a tunnel holds the stream.
pub struct Held<S> {
    inner: S,
    _hold: Box<dyn Send + Sync>,
}

impl<S: fmt::Debug> fmt::Debug for Held<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held").field("inner", &self.inner).finish()
    }
}

impl<S> Held<S> {
    pub fn new(inner: S, hold: Box<dyn Send + Sync>) -> Self {
        Held { inner, _hold: hold }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

writes_pass_through!(Held);

/// Bytes sent to (`up`) and received from (`down`) an upstream.
#[derive(Debug, Default)]
pub struct Counters {
    pub up: AtomicU64,
    pub down: AtomicU64,
}

impl Counters {
    pub fn get(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
        )
    }
}

/// An upstream stream that counts what passes, even when a copy ends in an error.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, counters: Arc<Counters>) -> Self {
        Counted { inner, counters }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.counters.down.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.counters.up.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Per-direction buffer of a tunnel. tokio's default (8 KiB) costs a third of the throughput
/// of a bulk download on loopback; 64 KiB gets most of it back (see docs/proxyd.md).
pub const RELAY_BUFFER: usize = 64 * 1024;

/// Copies both ways until both directions are done (a half-close is passed on) or one fails:
/// the fallback of [`crate::relay::tunnel`] for streams that are not sockets.
pub async fn relay<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, RELAY_BUFFER, RELAY_BUFFER).await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn prefix_then_inner_and_counts() {
        let (a, mut b) = tokio::io::duplex(64);
        let c = Arc::new(Counters::default());
        let mut s = Counted::new(Prefixed::new(b"abc".to_vec(), a), c.clone());
        b.write_all(b"def").await.unwrap();
        drop(b);
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "abcdef");
        assert_eq!(c.get(), (0, 6));
    }

    #[tokio::test]
    async fn prefix_taken_after_a_partial_read() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut s = Prefixed::new(b"abcdef".to_vec(), a);
        let mut two = [0u8; 2];
        s.read_exact(&mut two).await.unwrap();
        assert!(!s.is_drained());
        assert_eq!(s.take_prefix(), b"cdef");
        assert!(s.is_drained());
        b.write_all(b"g").await.unwrap();
        drop(b);
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"g");
    }
}
