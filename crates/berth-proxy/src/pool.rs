//! Upstream connections: a per-target pool of idle HTTP/1.1 keep-alive connections, or
//! one shared HTTP/2 connection for target groups whose `protocolVersion` is HTTP2 or
//! GRPC.
//!
//! An HTTP/1.1 connection is taken out for one request and put back once the response
//! body has been read to its end, so a pooled connection is always idle. The idle set is a
//! lock-free queue; a connection the target closed is noticed and dropped at checkout.
//! The HTTP/2 connection is multiplexed and published with arc-swap.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// The body of a request sent to a target: the client's, or one the proxy made.
pub(crate) type UpBody = Either<Incoming, Full<Bytes>>;

/// A connection to a target, ready for one request.
pub(crate) enum UpSender {
    H1(http1::SendRequest<UpBody>),
    H2(http2::SendRequest<UpBody>),
}

impl UpSender {
    pub(crate) fn is_h2(&self) -> bool {
        matches!(self, UpSender::H2(_))
    }

    /// Sends the request; gives it back in the error if it was not sent.
    pub(crate) async fn try_send_request(
        &mut self,
        req: http::Request<UpBody>,
    ) -> Result<http::Response<Incoming>, TrySendError<http::Request<UpBody>>> {
        match self {
            UpSender::H1(s) => s.try_send_request(req).await,
            UpSender::H2(s) => s.try_send_request(req).await,
        }
    }
}

/// How long a connection to a target may take (ALB: 10 s).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections kept per target; more are closed when returned.
const MAX_IDLE_PER_TARGET: usize = 256;

/// Why no connection to the target could be had.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Io(std::io::Error),
    Timeout,
    Handshake(hyper::Error),
    Tls(std::io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "connect: {e}"),
            ConnectError::Timeout => write!(f, "connect timed out"),
            ConnectError::Handshake(e) => write!(f, "handshake: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

pub(crate) struct Pool {
    addr: SocketAddr,
    idle: ArrayQueue<http1::SendRequest<UpBody>>,
    /// Idle plain HTTP/1.1 connections of the fast path ([`crate::fast_h1`]), which speaks
    /// HTTP/1.1 on the socket itself.
    raw: ArrayQueue<TcpStream>,
    /// Speak HTTP/2 to the target.
    h2: AtomicBool,
    /// Speak TLS to the target (HTTPS target groups).
    tls: AtomicBool,
    h2_conn: ArcSwapOption<http2::SendRequest<UpBody>>,
}

impl Pool {
    pub(crate) fn new(addr: SocketAddr) -> Pool {
        Pool {
            addr,
            idle: ArrayQueue::new(MAX_IDLE_PER_TARGET),
            raw: ArrayQueue::new(MAX_IDLE_PER_TARGET),
            h2: AtomicBool::new(false),
            tls: AtomicBool::new(false),
            h2_conn: ArcSwapOption::empty(),
        }
    }

    /// Switches between HTTP/1.1 and HTTP/2, plain or TLS, dropping idle connections.
    pub(crate) fn set_mode(&self, h2: bool, tls: bool) {
        let a = self.h2.swap(h2, Ordering::AcqRel) != h2;
        let b = self.tls.swap(tls, Ordering::AcqRel) != tls;
        if a || b {
            self.clear();
        }
    }

    /// An idle pooled connection if one is still open, else a new one. The flag says
    /// whether the connection was reused.
    pub(crate) async fn checkout(
        &self,
        connect_timeout: Duration,
    ) -> Result<(UpSender, bool), ConnectError> {
        if self.h2.load(Ordering::Acquire) {
            if let Some(s) = self.h2_conn.load_full() {
                if !s.is_closed() {
                    let mut s = (*s).clone();
                    if s.ready().await.is_ok() {
                        return Ok((UpSender::H2(s), true));
                    }
                }
            }
            let stream = self.tcp(connect_timeout).await?;
            let sender = if self.tls.load(Ordering::Acquire) {
                h2_over(self.tls_over(stream, true).await?).await?
            } else {
                h2_over(stream).await?
            };
            self.h2_conn.store(Some(Arc::new(sender.clone())));
            return Ok((UpSender::H2(sender), false));
        }
        while let Some(mut s) = self.idle.pop() {
            if s.is_closed() {
                continue;
            }
            if s.ready().await.is_ok() {
                return Ok((UpSender::H1(s), true));
            }
        }
        Ok((UpSender::H1(self.connect(connect_timeout).await?), false))
    }

    async fn tcp(&self, connect_timeout: Duration) -> Result<TcpStream, ConnectError> {
        let stream =
            match tokio::time::timeout(connect_timeout, TcpStream::connect(self.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(ConnectError::Io(e)),
                Err(_) => return Err(ConnectError::Timeout),
            };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Opens a new connection.
    pub(crate) async fn connect(
        &self,
        connect_timeout: Duration,
    ) -> Result<http1::SendRequest<UpBody>, ConnectError> {
        let stream = self.tcp(connect_timeout).await?;
        if self.tls.load(Ordering::Acquire) {
            h1_over(self.tls_over(stream, false).await?).await
        } else {
            h1_over(stream).await
        }
    }

    async fn tls_over(
        &self,
        stream: TcpStream,
        h2: bool,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        crate::tls::target_connector(h2)
            .connect(name, stream)
            .await
            .map_err(ConnectError::Tls)
    }

    /// Returns an idle connection to the pool.
    pub(crate) fn checkin(&self, s: UpSender) {
        if let UpSender::H1(s) = s {
            if !s.is_closed() {
                let _ = self.idle.push(s);
            }
        }
    }

    /// Whether the target speaks plain HTTP/1.1, which the fast path serves.
    pub(crate) fn is_plain_h1(&self) -> bool {
        !self.h2.load(Ordering::Acquire) && !self.tls.load(Ordering::Acquire)
    }

    /// An idle fast-path connection that is still open, if any. A connection the target
    /// closed (or wrote to unasked) is dropped; the check reads the socket only when the
    /// runtime has seen it become readable, so an open idle connection costs no syscall.
    pub(crate) fn checkout_raw(&self) -> Option<TcpStream> {
        while let Some(s) = self.raw.pop() {
            let mut b = [0u8; 1];
            match s.try_read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(s),
                _ => continue,
            }
        }
        None
    }

    /// A new plain connection for the fast path.
    pub(crate) async fn connect_raw(
        &self,
        connect_timeout: Duration,
    ) -> Result<TcpStream, ConnectError> {
        self.tcp(connect_timeout).await
    }

    /// Returns an idle fast-path connection.
    pub(crate) fn checkin_raw(&self, s: TcpStream) {
        if self.is_plain_h1() {
            let _ = self.raw.push(s);
        }
    }

    /// Closes every idle connection (and forgets the HTTP/2 one).
    pub(crate) fn clear(&self) {
        while self.idle.pop().is_some() {}
        while self.raw.pop().is_some() {}
        self.h2_conn.store(None);
    }
}

async fn h1_over<T>(io: T) -> Result<http1::SendRequest<UpBody>, ConnectError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
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

async fn h2_over<T>(io: T) -> Result<http2::SendRequest<UpBody>, ConnectError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream h2 connection ended with an error");
        }
    });
    sender.ready().await.map_err(ConnectError::Handshake)?;
    Ok(sender)
}
