//! Copies bytes both ways between two connections (an upgraded HTTP connection and its
//! target, or an NLB client and its target) until both directions ended, like
//! `tokio::io::copy_bidirectional`, but holding no buffer while neither side has bytes:
//! each direction borrows a pooled buffer ([`crate::read_buffers`]) for a read and gives
//! it back once what it read is written and the next read would wait.
//!
//! The end of one side's stream shuts the other side's write half down (half-close);
//! the first error in either direction ends the copy. It applies no timeout: callers
//! that need one wrap it ([`crate::stream`]), or poll a [`Splice`] themselves and ask it
//! whether bytes moved ([`Splice::take_moved`], as the fast path's upgraded connections
//! do).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::read_buffers::{self, poll_read_pooled};

/// Copies both ways between `a` and `b` until both directions ended; returns the bytes
/// copied from `a` to `b` and from `b` to `a`.
pub(crate) async fn splice<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    Splice::new(a, b).await
}

/// The two-way copy as a future: resolves to the bytes copied from `a` to `b` and from
/// `b` to `a` once both directions ended.
pub(crate) struct Splice<'a, A: ?Sized, B: ?Sized> {
    a: &'a mut A,
    b: &'a mut B,
    a_to_b: Direction,
    b_to_a: Direction,
}

impl<'a, A: ?Sized, B: ?Sized> Splice<'a, A, B> {
    pub(crate) fn new(a: &'a mut A, b: &'a mut B) -> Self {
        Splice {
            a,
            b,
            a_to_b: Direction::default(),
            b_to_a: Direction::default(),
        }
    }

    /// The bytes copied so far from `a` to `b` and from `b` to `a`.
    pub(crate) fn copied(&self) -> (u64, u64) {
        (self.a_to_b.copied, self.b_to_a.copied)
    }

    /// Whether any byte was read or written since the last call.
    pub(crate) fn take_moved(&mut self) -> bool {
        std::mem::take(&mut self.a_to_b.moved) | std::mem::take(&mut self.b_to_a.moved)
    }
}

/// One direction of the copy.
#[derive(Default)]
struct Direction {
    /// Bytes read and not yet written; no capacity while the source is quiet.
    buf: BytesMut,
    /// Bytes written since the last flush.
    unflushed: bool,
    /// The source ended.
    read_done: bool,
    /// The destination's write half is shut down: this direction is over.
    done: bool,
    copied: u64,
    /// Bytes were read or written since [`Splice::take_moved`] last looked.
    moved: bool,
}

impl Direction {
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut R,
        dst: &mut W,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        if self.done {
            return Poll::Ready(Ok(self.copied));
        }
        loop {
            while !self.buf.is_empty() {
                let n = ready!(Pin::new(&mut *dst).poll_write(cx, &self.buf))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.buf.advance(n);
                self.copied += n as u64;
                self.unflushed = true;
                self.moved = true;
            }
            // Everything read is written: the buffer goes back until bytes come again.
            read_buffers::give(&mut self.buf);
            if self.read_done {
                ready!(Pin::new(&mut *dst).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(self.copied));
            }
            match poll_read_pooled(src, cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => self.read_done = true,
                Poll::Ready(Ok(_)) => self.moved = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if self.unflushed {
                        ready!(Pin::new(&mut *dst).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<A, B> Future for Splice<'_, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    type Output = io::Result<(u64, u64)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        let a_to_b = me.a_to_b.poll_copy(cx, &mut *me.a, &mut *me.b)?;
        let b_to_a = me.b_to_a.poll_copy(cx, &mut *me.b, &mut *me.a)?;
        match (a_to_b, b_to_a) {
            (Poll::Ready(up), Poll::Ready(down)) => Poll::Ready(Ok((up, down))),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn relays_both_ways_in_order_after_a_long_quiet_spell_holding_no_buffer() {
        let (mut client, mut near) = tokio::io::duplex(1024);
        let (mut far, mut target) = tokio::io::duplex(1024);
        let copy = tokio::spawn(async move {
            let r = splice(&mut near, &mut far).await;
            (r, near, far)
        });
        // Bytes in order, larger than a pooled buffer, through a small pipe.
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client
        });
        let mut got = vec![0; data.len()];
        target.read_exact(&mut got).await.unwrap();
        assert!(got == data, "bytes arrive in order");
        let mut client = writer.await.unwrap();

        // An hour of silence, then both directions still relay.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        target.write_all(b"pong").await.unwrap();
        let mut b = [0; 4];
        client.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"pong");
        client.write_all(b"ping").await.unwrap();
        target.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");

        // Half-close: the client's end reaches the target, which can still answer.
        client.shutdown().await.unwrap();
        assert_eq!(target.read(&mut b).await.unwrap(), 0, "the end is relayed");
        target.write_all(b"last").await.unwrap();
        client.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"last");
        target.shutdown().await.unwrap();
        let (r, _near, _far) = copy.await.unwrap();
        let (up, down) = r.unwrap();
        assert_eq!(up, data.len() as u64 + 4);
        assert_eq!(down, 8);
    }

    #[tokio::test]
    async fn a_quiet_splice_holds_no_buffer() {
        let (_client, mut near) = tokio::io::duplex(64);
        let (mut far, _target) = tokio::io::duplex(64);
        let mut s = Splice {
            a: &mut near,
            b: &mut far,
            a_to_b: Direction::default(),
            b_to_a: Direction::default(),
        };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut s).poll(&mut cx).is_pending());
        assert_eq!(s.a_to_b.buf.capacity(), 0);
        assert_eq!(s.b_to_a.buf.capacity(), 0);
    }
}
