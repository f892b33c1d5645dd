//! A listening socket that accepts connections without registering them with the
//! runtime's reactor: each comes out as a non-blocking `std` socket, registered by the
//! thread that serves it (with no readiness assumed, so its first read waits for its
//! bytes) or handed to another data plane thread without a registration to undo.
//!
//! Only the listening socket itself is registered (readable interest), as tokio's own
//! listener does it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A listening socket registered with the runtime it was made on.
pub(crate) struct Acceptor(AsyncFd<mio::net::TcpListener>);

impl Acceptor {
    /// Registers `listener` (non-blocking) with the current runtime's reactor.
    ///
    /// The registration that takes any descriptor-holding value is deprecated for values
    /// whose descriptor could change or close under it; a `mio::net::TcpListener` the
    /// `AsyncFd` owns cannot (as for the idle set's `mio::Poll`), and the workspace forbids
    /// the `unsafe` the new call needs.
    #[allow(deprecated)]
    pub(crate) fn new(listener: std::net::TcpListener) -> io::Result<Acceptor> {
        let listener = mio::net::TcpListener::from_std(listener);
        AsyncFd::with_interest(listener, Interest::READABLE).map(Acceptor)
    }

    /// The next connection, non-blocking and not registered anywhere.
    pub(crate) async fn accept(&self) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        loop {
            let mut ready = self.0.readable().await?;
            // mio accepts with SOCK_NONBLOCK | SOCK_CLOEXEC: no further system call.
            if let Ok(r) = ready.try_io(|l| l.get_ref().accept()) {
                return r.map(|(stream, peer)| (OwnedFd::from(stream).into(), peer));
            }
        }
    }

    /// Delays the acknowledgement of a connection's first bytes (`TCP_QUICKACK` off on
    /// the listening socket; Linux copies the mode to every connection it accepts), as
    /// HAProxy does on its HTTP listeners: an HTTP client speaks first, and the answer
    /// that follows its request carries the acknowledgement, one segment fewer per
    /// connection. Where the server waits for more of a request, it asks for quick
    /// acknowledgements again ([`crate::fast_h1::ClientIo::ack_quickly`]), so a client
    /// holding back its next bytes for an acknowledgement (Nagle) is not kept waiting.
    pub(crate) fn delay_first_ack(&self) -> io::Result<()> {
        socket2::SockRef::from(self.0.get_ref()).set_tcp_quickack(false)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// Registers an accepted connection with the current runtime's reactor, with no
/// readiness assumed: its first read waits for the reactor's event rather than trying
/// the socket before the client's bytes are there (tokio's own `accept` assumes a new
/// connection readable, and under load most first reads then fail with `EAGAIN`).
pub(crate) fn register(stream: std::net::TcpStream) -> io::Result<tokio::net::TcpStream> {
    tokio::net::TcpStream::from_std(stream)
}

impl AsFd for Acceptor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast_h1::ClientIo;
    use std::io::{Read, Write};

    #[tokio::test]
    async fn accepted_connections_are_non_blocking_and_carry_their_bytes() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let acceptor = Acceptor::new(l).unwrap();
        let addr = acceptor.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (mut accepted, peer) = acceptor.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // Non-blocking: nothing to read yet is an error, not a wait.
        let mut b = [0u8; 8];
        let e = accepted.read(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"hi").unwrap();
        assert_eq!(accepted.read(&mut b).unwrap(), 2);
        assert_eq!(&b[..2], b"hi");
    }

    #[tokio::test]
    async fn a_registered_connection_reads_once_the_reactor_says_its_bytes_are_there() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let acceptor = Acceptor::new(l).unwrap();
        let mut client = std::net::TcpStream::connect(acceptor.local_addr().unwrap()).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (accepted, _) = acceptor.accept().await.unwrap();
        let stream = register(accepted).unwrap();
        // The bytes are in the socket (loopback delivers them within the client's
        // write), but nothing is assumed: no read is tried before the reactor's event.
        let mut b = [0u8; 64];
        let e = stream.try_read(&mut b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        stream.readable().await.unwrap();
        let n = stream.try_read(&mut b).unwrap();
        assert_eq!(&b[..n], b"GET / HTTP/1.1\r\n\r\n");
    }

    /// A connection to `acceptor`, with its client (kept open: a client's close puts
    /// the connection in delayed-acknowledgement mode by itself).
    async fn accepted(acceptor: &Acceptor) -> (tokio::net::TcpStream, std::net::TcpStream) {
        let addr = acceptor.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (stream, _) = acceptor.accept().await.unwrap();
        (register(stream).unwrap(), client)
    }

    fn listening() -> Acceptor {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Acceptor::new(l).unwrap()
    }

    #[tokio::test]
    async fn connections_of_an_http_listener_start_with_delayed_acks_until_asked() {
        let plain = listening();
        let (stream, _client) = accepted(&plain).await;
        assert!(
            stream.quickack().unwrap(),
            "a connection starts acknowledging at once by default"
        );

        let http = listening();
        http.delay_first_ack().unwrap();
        let (stream, _client) = accepted(&http).await;
        assert!(
            !stream.quickack().unwrap(),
            "the listening socket's delayed acknowledgements carry over"
        );
        stream.ack_quickly();
        assert!(stream.quickack().unwrap(), "asked to acknowledge at once");
    }
}
