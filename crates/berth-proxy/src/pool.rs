//! Upstream connections: a per-target pool of idle HTTP/1.1 keep-alive connections, or
//! one shared HTTP/2 connection for target groups whose `protocolVersion` is HTTP2 or
//! GRPC.
//!
//! An HTTP/1.1 connection is taken out for one request and put back once the response
//! body has been read to its end, so a pooled connection is always idle. The idle set is a
//! queue that grows with what it holds ([`idle`]); a connection the target closed is
//! noticed and dropped at checkout.
//! The HTTP/2 connection is multiplexed and published with arc-swap.
//!
//! A mesh target reached through a mutual TLS hop ([`crate::mesh::hop`]) keeps the same
//! kinds of connections per caller identity, in the hop's lanes, instead.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::mesh::hop::{HopDialer, HopError, Lane, MeshOutbound, UpConn};
use crate::workers;

pub(crate) mod idle;
use idle::IdleQueue;

pub(crate) use crate::up_body::UpBody;

/// A connection to a target, ready for one request.
pub(crate) enum UpSender {
    H1(http1::SendRequest<UpBody>),
    H2(http2::SendRequest<UpBody>),
    /// HTTP/1.1 over a mesh hop, with the caller's lane it goes back to.
    MeshH1(http1::SendRequest<UpBody>, Arc<Lane>),
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
            UpSender::MeshH1(s, _) => s.try_send_request(req).await,
        }
    }
}

/// How long a connection to a target may take (ALB: 10 s).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections kept per target; more are closed when returned.
const MAX_IDLE_PER_TARGET: usize = 256;
/// Idle fast-path connections kept per target. An HTTP/2 client's concurrent streams
/// each hold one while they wait for the target (100 streams on each of 10 connections
/// is 1000), so fewer would close and reopen connections under steady load.
const MAX_RAW_IDLE_PER_TARGET: usize = 1024;

/// Why no connection to the target could be had.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Io(std::io::Error),
    Timeout,
    Handshake(hyper::Error),
    Tls(std::io::Error),
    Hop(HopError),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "connect: {e}"),
            ConnectError::Timeout => write!(f, "connect timed out"),
            ConnectError::Handshake(e) => write!(f, "handshake: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS: {e}"),
            ConnectError::Hop(e) => write!(f, "{e}"),
        }
    }
}

/// An idle connection of the fast path to a target reached directly.
enum RawIdle {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// `repr(C)`: the fields a fast-path request reads come first, beside the target's own
/// (see [`crate::target::TargetState`]).
#[repr(C)]
pub(crate) struct Pool {
    /// Speak HTTP/2 to the target.
    h2: AtomicBool,
    /// Speak TLS to the target (HTTPS target groups).
    tls: AtomicBool,
    /// Set for a mesh target reached over mutual TLS: every connection goes through it.
    hop: ArcSwapOption<HopDialer>,
    /// Idle HTTP/1.1 connections of the fast path ([`crate::fast_h1`]), which speaks
    /// HTTP/1.1 on the socket itself (plain, or over TLS for an HTTPS target group): one
    /// queue per data plane worker ([`workers::current_slot`]), since a connection is
    /// registered with the runtime that opened it and is served best there.
    raw: Box<[IdleQueue<RawIdle>]>,
    addr: SocketAddr,
    idle: IdleQueue<http1::SendRequest<UpBody>>,
    h2_conn: ArcSwapOption<http2::SendRequest<UpBody>>,
}

impl Pool {
    /// How far into a pool the fields a fast-path request reads reach (`h2`, `tls`,
    /// `hop`, `raw`).
    #[cfg(test)]
    pub(crate) const REQUEST_PATH_BYTES: usize =
        std::mem::offset_of!(Pool, raw) + std::mem::size_of::<Box<[IdleQueue<RawIdle>]>>();

    pub(crate) fn new(addr: SocketAddr) -> Pool {
        Pool {
            addr,
            idle: IdleQueue::new(MAX_IDLE_PER_TARGET),
            raw: (0..workers::slots())
                .map(|_| IdleQueue::new(MAX_RAW_IDLE_PER_TARGET))
                .collect(),
            h2: AtomicBool::new(false),
            tls: AtomicBool::new(false),
            h2_conn: ArcSwapOption::empty(),
            hop: ArcSwapOption::empty(),
        }
    }

    /// Reaches the target through `hop` (or directly, `None`). Idle connections are
    /// dropped when the hop changes.
    pub(crate) fn set_hop(
        &self,
        hop: Option<(&berth_model::dataplane::MeshHop, &Arc<MeshOutbound>)>,
    ) {
        let h2 = self.h2.load(Ordering::Acquire);
        let current = self.hop.load();
        match (current.as_ref(), hop) {
            (None, None) => {}
            (Some(d), Some((hop, outbound))) if d.is_for(hop, h2, outbound) => {}
            (_, hop) => {
                let dialer =
                    hop.and_then(|(hop, outbound)| HopDialer::new(hop, h2, outbound.clone()));
                if hop.is_some() && dialer.is_none() {
                    tracing::warn!(target = %self.addr, "mesh hop server name is not a DNS name");
                }
                self.hop.store(dialer.map(Arc::new));
                self.clear();
            }
        }
    }

    /// Whether connections go through a mesh hop.
    pub(crate) fn has_hop(&self) -> bool {
        self.hop.load().is_some()
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
    /// `peer` is the client's address: over a mesh hop it picks the caller identity.
    pub(crate) async fn checkout(
        &self,
        connect_timeout: Duration,
        peer: IpAddr,
    ) -> Result<(UpSender, bool), ConnectError> {
        if self.hop.load().is_none() {
            if let Some(sender) = self.reuse().await {
                return Ok((sender, true));
            }
        }
        // Boxed apart: a new connection's state (the connect, TLS, the HTTP/2 handshake)
        // is kilobytes, and would otherwise be part of every request's future, copied
        // whole into the request's box even when a pooled connection serves it.
        Box::pin(self.checkout_new(connect_timeout, peer)).await
    }

    /// A pooled connection ready for a request: the target's HTTP/2 connection, or an
    /// idle HTTP/1.1 one (closed ones are dropped on the way).
    async fn reuse(&self) -> Option<UpSender> {
        if self.h2.load(Ordering::Acquire) {
            let s = self.h2_conn.load_full()?;
            if s.is_closed() {
                return None;
            }
            let mut s = (*s).clone();
            return s.ready().await.is_ok().then_some(UpSender::H2(s));
        }
        while let Some(mut s) = self.idle.pop() {
            if s.is_closed() {
                continue;
            }
            if s.ready().await.is_ok() {
                return Some(UpSender::H1(s));
            }
        }
        None
    }

    /// [`Self::checkout`] when no pooled connection serves: a new one (through the mesh
    /// hop, which keeps its own pools per lane, when the target is behind one).
    async fn checkout_new(
        &self,
        connect_timeout: Duration,
        peer: IpAddr,
    ) -> Result<(UpSender, bool), ConnectError> {
        if let Some(hop) = self.hop.load_full() {
            return self.checkout_hop(&hop, connect_timeout, peer).await;
        }
        if self.h2.load(Ordering::Acquire) {
            let stream = self.tcp(connect_timeout).await?;
            let sender = if self.tls.load(Ordering::Acquire) {
                h2_over(self.tls_over(stream, true).await?).await?
            } else {
                h2_over(stream).await?
            };
            self.h2_conn.store(Some(Arc::new(sender.clone())));
            return Ok((UpSender::H2(sender), false));
        }
        Ok((UpSender::H1(self.connect(connect_timeout).await?), false))
    }

    async fn checkout_hop(
        &self,
        hop: &HopDialer,
        connect_timeout: Duration,
        peer: IpAddr,
    ) -> Result<(UpSender, bool), ConnectError> {
        let lane = hop.lane(peer).map_err(ConnectError::Hop)?;
        if self.h2.load(Ordering::Acquire) {
            if let Some(s) = lane.h2_conn.load_full() {
                if !s.is_closed() {
                    let mut s = (*s).clone();
                    if s.ready().await.is_ok() {
                        return Ok((UpSender::H2(s), true));
                    }
                }
            }
            let io = hop
                .connect(&lane, connect_timeout)
                .await
                .map_err(ConnectError::Hop)?;
            let sender = h2_over(io).await?;
            lane.h2_conn.store(Some(Arc::new(sender.clone())));
            return Ok((UpSender::H2(sender), false));
        }
        while let Some(mut s) = lane.idle.pop() {
            if s.is_closed() {
                continue;
            }
            if s.ready().await.is_ok() {
                return Ok((UpSender::MeshH1(s, lane), true));
            }
        }
        let io = hop
            .connect(&lane, connect_timeout)
            .await
            .map_err(ConnectError::Hop)?;
        Ok((UpSender::MeshH1(h1_over(io).await?, lane), false))
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
        match s {
            UpSender::H1(s) if !s.is_closed() => {
                let _ = self.idle.push(s);
            }
            UpSender::MeshH1(s, lane) if !s.is_closed() => {
                let _ = lane.idle.push(s);
            }
            _ => {}
        }
    }

    /// Whether the target speaks HTTP/1.1 (plain or over TLS), which the fast path serves.
    pub(crate) fn is_h1(&self) -> bool {
        !self.h2.load(Ordering::Acquire)
    }

    /// Whether the target speaks plain HTTP/1.1.
    pub(crate) fn is_plain_h1(&self) -> bool {
        !self.h2.load(Ordering::Acquire) && !self.tls.load(Ordering::Acquire)
    }

    /// An idle fast-path connection that is still open, if any. A connection the target
    /// closed (or wrote to unasked) is dropped; the check reads the socket only when the
    /// runtime has seen it become readable, so an open idle connection costs no syscall.
    /// Over a mesh hop, only a connection opened for the caller of `peer` is reused.
    pub(crate) fn checkout_raw(&self, peer: IpAddr) -> Option<UpConn> {
        if let Some(hop) = self.hop.load_full() {
            let lane = hop.lane(peer).ok()?;
            while let Some(s) = lane.raw.pop() {
                let c = UpConn::Mesh(Box::new(s), lane.clone());
                if !c.is_stale() {
                    return Some(c);
                }
            }
            return None;
        }
        while let Some(s) = self.raw_here().pop() {
            let c = match s {
                RawIdle::Plain(s) => UpConn::Plain(s),
                RawIdle::Tls(s) => UpConn::Tls(s),
            };
            if !c.is_stale() {
                return Some(c);
            }
        }
        None
    }

    /// A new raw connection for the fast path and stream listeners: plain TCP to the
    /// target, TLS to the target of an HTTPS target group, or mutual TLS through its
    /// mesh hop for the caller of `peer`.
    pub(crate) async fn connect_raw(
        &self,
        connect_timeout: Duration,
        peer: IpAddr,
    ) -> Result<UpConn, ConnectError> {
        if let Some(hop) = self.hop.load_full() {
            let lane = hop.lane(peer).map_err(ConnectError::Hop)?;
            let s = hop
                .connect(&lane, connect_timeout)
                .await
                .map_err(ConnectError::Hop)?;
            return Ok(UpConn::Mesh(Box::new(s), lane));
        }
        let stream = self.tcp(connect_timeout).await?;
        if self.tls.load(Ordering::Acquire) {
            // The handshake is part of connecting: a target that accepts and never
            // answers it times out as one that never accepts.
            let tls = tokio::time::timeout(connect_timeout, self.tls_over(stream, false))
                .await
                .map_err(|_| ConnectError::Timeout)??;
            return Ok(UpConn::Tls(Box::new(tls)));
        }
        Ok(UpConn::Plain(stream))
    }

    /// The idle fast-path connections of this thread's worker.
    #[inline]
    fn raw_here(&self) -> &IdleQueue<RawIdle> {
        let slot = workers::current_slot().min(self.raw.len() - 1);
        &self.raw[slot]
    }

    /// Returns an idle fast-path connection.
    pub(crate) fn checkin_raw(&self, s: UpConn) {
        match s {
            UpConn::Plain(s) if self.is_plain_h1() && !self.has_hop() => {
                let _ = self.raw_here().push(RawIdle::Plain(s));
            }
            UpConn::Tls(s)
                if self.is_h1() && self.tls.load(Ordering::Acquire) && !self.has_hop() =>
            {
                let _ = self.raw_here().push(RawIdle::Tls(s));
            }
            UpConn::Mesh(s, lane) => {
                let _ = lane.raw.push(*s);
            }
            _ => {}
        }
    }

    /// Closes every idle connection (and forgets the HTTP/2 one).
    pub(crate) fn clear(&self) {
        while self.idle.pop().is_some() {}
        for raw in self.raw.iter() {
            while raw.pop().is_some() {}
        }
        self.h2_conn.store(None);
        if let Some(hop) = self.hop.load().as_ref() {
            hop.clear();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_is_small_when_a_pooled_connection_serves_it() {
        // The hyper path's request future holds a checkout inline and is boxed per
        // request: a new connection's state (connect, TLS, the HTTP/2 handshake) is
        // boxed apart so that it is not copied into every request's box. (Debug build: 7,712
        // bytes with it inline, 184 without.)
        let pool = Pool::new("127.0.0.1:1".parse().unwrap());
        let checkout = pool.checkout(Duration::from_secs(1), "127.0.0.1".parse().unwrap());
        let size = std::mem::size_of_val(&checkout);
        assert!(size <= 512, "a checkout takes {size} bytes");
    }
}
