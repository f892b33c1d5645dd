//! Read buffers that a connection holds only while bytes are moving: a small per-thread
//! pool of [`CHUNK`]-sized buffers, and a read ([`poll_read_pooled`]) that takes a
//! buffer from the pool for the read and gives it back when nothing arrived, so a
//! connection waiting for its peer holds no buffer at all.
//!
//! The pool is bounded ([`POOL_MAX`] buffers per thread), so its memory depends on the
//! number of threads, not of connections; a buffer that grew past twice [`CHUNK`] is
//! freed rather than kept. It knows nothing of protocols: the HTTP/1.1 fast path
//! ([`crate::fast_h1`]), HTTP/2 streams waiting for their HTTP/1.1 targets
//! (`hyper_path/raw_h1.rs`) and the splice of upgraded and TCP connections
//! ([`crate::splice`]) use it.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The capacity of a pooled buffer.
pub(crate) const CHUNK: usize = 16 * 1024;
/// Buffers kept per thread, of each kind.
const POOL_MAX: usize = 64;

thread_local! {
    static BYTES: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static VECS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with at least [`CHUNK`] bytes of capacity, from this thread's pool
/// when it has one.
pub(crate) fn take() -> BytesMut {
    BYTES
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(CHUNK))
}

/// Gives `buf`'s memory back to this thread's pool (its bytes are discarded) and leaves
/// `buf` empty with no capacity.
pub(crate) fn give(buf: &mut BytesMut) {
    let mut b = std::mem::take(buf);
    if b.capacity() == 0 {
        return;
    }
    b.clear();
    // Space given up by `advance` comes back without allocating: the buffer is empty and
    // its storage not shared, so `reserve` moves its start back.
    b.reserve(CHUNK);
    if b.capacity() < CHUNK || b.capacity() > 2 * CHUNK {
        return;
    }
    BYTES.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(b);
        }
    });
}

/// An empty vector for a message being written, from this thread's pool when it has one.
pub(crate) fn take_vec() -> Vec<u8> {
    VECS.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(1024))
}

/// Gives `v`'s memory back to this thread's pool and leaves `v` empty with no capacity.
pub(crate) fn give_vec(v: &mut Vec<u8>) {
    let mut v = std::mem::take(v);
    if v.capacity() == 0 || v.capacity() > 2 * CHUNK {
        return;
    }
    v.clear();
    VECS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(v);
        }
    });
}

/// Reads from `io` into `buf`, appending. When `buf` holds nothing and no capacity, it
/// borrows a pooled buffer for the read and gives it back if no byte arrived, so that a
/// quiet connection holds no buffer while it waits. Returns the bytes read (0 at the
/// end of the stream).
pub(crate) fn poll_read_pooled<T: AsyncRead + Unpin + ?Sized>(
    io: &mut T,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let borrowed = buf.is_empty() && buf.capacity() == 0;
    if borrowed {
        *buf = take();
    } else if buf.capacity() - buf.len() < CHUNK / 4 {
        buf.reserve(CHUNK);
    }
    let r = poll_read_into(io, cx, buf);
    if borrowed && !matches!(r, Poll::Ready(Ok(n)) if n > 0) {
        give(buf);
    }
    r
}

/// One read into `buf`'s spare capacity.
fn poll_read_into<T: AsyncRead + Unpin + ?Sized>(
    io: &mut T,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    // `read_buf`'s future holds nothing but its two borrows: polled once, then dropped.
    let read = std::pin::pin!(io.read_buf(buf));
    read.poll(cx)
}

/// Buffers in this thread's pool, for tests.
#[cfg(test)]
pub(crate) fn pooled() -> usize {
    BYTES.with(|p| p.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn a_given_buffer_comes_back_whole_even_after_advance() {
        use bytes::Buf;
        let mut b = take();
        b.extend_from_slice(&[7; 1000]);
        b.advance(1000);
        give(&mut b);
        assert_eq!(b.capacity(), 0, "the giver keeps nothing");
        let again = take();
        assert!(again.is_empty());
        assert!(again.capacity() >= CHUNK, "capacity {}", again.capacity());
    }

    #[test]
    fn a_grown_buffer_is_freed_not_pooled() {
        let before = pooled();
        let mut big = BytesMut::with_capacity(8 * CHUNK);
        give(&mut big);
        assert_eq!(pooled(), before);
    }

    #[tokio::test]
    async fn a_read_that_waits_holds_no_buffer_and_one_that_gets_bytes_keeps_them() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut buf = BytesMut::new();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(poll_read_pooled(&mut b, &mut cx, &mut buf).is_pending());
        assert_eq!(buf.capacity(), 0, "nothing arrived: the buffer went back");
        a.write_all(b"hello").await.unwrap();
        match poll_read_pooled(&mut b, &mut cx, &mut buf) {
            Poll::Ready(Ok(5)) => {}
            other => panic!("expected 5 bytes, got {other:?}"),
        }
        assert_eq!(&buf[..], b"hello");
        drop(a);
        match poll_read_pooled(&mut b, &mut cx, &mut buf) {
            Poll::Ready(Ok(0)) => {}
            other => panic!("expected the end, got {other:?}"),
        }
        assert_eq!(&buf[..], b"hello", "bytes read earlier stay");
    }
}
