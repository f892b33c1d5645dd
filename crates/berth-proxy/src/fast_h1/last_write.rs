//! A response's last bytes on a connection that closes after it: on a TCP socket they
//! are sent with `MSG_MORE`, so the kernel holds them until the `shutdown` that follows
//! and the FIN leaves in the same segment (Linux `tcp_send_fin` sets FIN on the unsent
//! tail). The client then gets one segment instead of two, and sends one ACK for both.
//! Other streams (TLS, in-memory) write as usual. It decides nothing about when a
//! connection closes; the caller writes last only when its `shutdown` comes next.
//!
//! [`ClientIo::ack_quickly`] is the other socket-level hint the fast path gives: the
//! client's bytes are acknowledged at once while a request is still arriving.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::TcpStream;

/// A client connection the fast path serves.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin {
    /// The server waits for more of a request: the client's bytes are acknowledged at
    /// once again (`TCP_QUICKACK`), undoing an HTTP listener's delayed first
    /// acknowledgement (`Acceptor::delay_first_ack` in the listener).
    fn ack_quickly(&self) {}

    /// Writes part of `buf`, the connection's last bytes before its shutdown.
    fn poll_write_last(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write(cx, buf)
    }
}

impl ClientIo for TcpStream {
    fn ack_quickly(&self) {
        let _ = self.set_quickack(true);
    }

    fn poll_write_last(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = self.get_mut();
        loop {
            ready!(stream.poll_write_ready(cx))?;
            let sent = stream.try_io(Interest::WRITABLE, || {
                socket2::SockRef::from(&*stream).send_with_flags(buf, libc::MSG_MORE)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }
}

impl ClientIo for tokio_rustls::server::TlsStream<TcpStream> {
    fn ack_quickly(&self) {
        self.get_ref().0.ack_quickly();
    }
}

impl ClientIo for tokio::io::DuplexStream {}

/// `io` writing the connection's last bytes: each write goes through
/// [`ClientIo::poll_write_last`], so `write_idle(&mut Last(io), ..)` writes them whole
/// under the idle timeout as any other write.
pub(super) struct Last<'a, T>(pub(super) &'a mut T);

impl<T: ClientIo> AsyncWrite for Last<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write_last(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io::{ErrorKind, Read};

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn a_last_write_is_held_until_the_shutdown_and_arrives_with_the_end_of_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

        let n = poll_fn(|cx| Pin::new(&mut server).poll_write_last(cx, response))
            .await
            .unwrap();
        assert_eq!(n, response.len());
        // Held in the sender's queue: the client has nothing to read yet.
        client.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let early = client.read(&mut buf).map_err(|e| e.kind());
        assert_eq!(early, Err(ErrorKind::WouldBlock), "read {early:?}");

        server.shutdown().await.unwrap();
        client.set_nonblocking(false).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, response);
    }

    #[tokio::test]
    async fn other_streams_write_their_last_bytes_as_usual() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let n = poll_fn(|cx| Pin::new(&mut a).poll_write_last(cx, b"bytes"))
            .await
            .unwrap();
        assert_eq!(n, 5);
        let mut buf = [0u8; 8];
        let read = tokio::io::AsyncReadExt::read(&mut b, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..read], b"bytes");
    }
}
