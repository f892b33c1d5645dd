//! Upstream connections: a per-target pool of idle HTTP/1.1 keep-alive connections.
//!
//! A connection is taken out for one request and put back once the response body has been
//! read to its end, so a pooled connection is always idle. The idle set is a lock-free
//! queue; a connection the target closed is noticed and dropped at checkout.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The body of a request sent to a target: the client's, or one the proxy made.
pub(crate) type UpBody = Either<Incoming, Full<Bytes>>;
pub(crate) type UpSender = http1::SendRequest<UpBody>;

/// Idle connections kept per target; more are closed when returned.
const MAX_IDLE_PER_TARGET: usize = 256;

/// Why no connection to the target could be had.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Io(std::io::Error),
    Timeout,
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "connect: {e}"),
            ConnectError::Timeout => write!(f, "connect timed out"),
            ConnectError::Handshake(e) => write!(f, "handshake: {e}"),
        }
    }
}

pub(crate) struct Pool {
    addr: SocketAddr,
    idle: ArrayQueue<UpSender>,
}

impl Pool {
    pub(crate) fn new(addr: SocketAddr) -> Pool {
        Pool {
            addr,
            idle: ArrayQueue::new(MAX_IDLE_PER_TARGET),
        }
    }

    /// An idle pooled connection if one is still open, else a new one. The flag says
    /// whether the connection was reused.
    pub(crate) async fn checkout(
        &self,
        connect_timeout: Duration,
    ) -> Result<(UpSender, bool), ConnectError> {
        while let Some(mut s) = self.idle.pop() {
            if s.is_closed() {
                continue;
            }
            if s.ready().await.is_ok() {
                return Ok((s, true));
            }
        }
        Ok((self.connect(connect_timeout).await?, false))
    }

    /// Opens a new connection.
    pub(crate) async fn connect(
        &self,
        connect_timeout: Duration,
    ) -> Result<UpSender, ConnectError> {
        let stream =
            match tokio::time::timeout(connect_timeout, TcpStream::connect(self.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(ConnectError::Io(e)),
                Err(_) => return Err(ConnectError::Timeout),
            };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        sender.ready().await.map_err(ConnectError::Handshake)?;
        Ok(sender)
    }

    /// Returns an idle connection to the pool.
    pub(crate) fn checkin(&self, s: UpSender) {
        if !s.is_closed() {
            let _ = self.idle.push(s);
        }
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        while self.idle.pop().is_some() {}
    }
}
