//! Listeners: the accept loop of one bound socket, the per-listener connection limit
//! (`berth.max_connections`) and the per-client-address one
//! (`berth.max_connections_per_client`), the TLS handshake timeout, the count of open HTTP connections that closing a listener
//! waits for, and the dispatch of each accepted connection: TLS handshake, then by ALPN
//! and listener mode to the HTTP/1.1 fast path (falling back to hyper), hyper (HTTP/2),
//! or the NLB stream path.
//!
//! It does not parse or route requests; the paths it dispatches to do.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::context::{ConnCtx, ListenerShared, Mode};
use crate::error::ProxyError;
use crate::{fast_h1, hyper_path, stream};

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing listener waits for its in-flight requests.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

/// A listener being served.
pub(crate) struct RunningListener {
    pub(crate) shared: Arc<ListenerShared>,
    pub(crate) addr: SocketAddr,
    /// The bound socket, shared with the accept loop, so a copy of it can be handed to
    /// another process ([`RunningListener::socket_copy`]).
    socket: Arc<TcpListener>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Turns a listening socket bound by another process (handed over) into a listener
/// served here.
pub(crate) fn adopt(
    listener_arn: &str,
    socket: std::net::TcpListener,
) -> Result<TcpListener, ProxyError> {
    let addr = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let adopted = socket
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(socket));
    adopted.map_err(|source| ProxyError::Bind {
        listener_arn: listener_arn.to_string(),
        addr,
        source,
    })
}

/// Binds a listener's socket, before anything about the listener is committed (a
/// failure leaves the proxy as it was).
pub(crate) async fn bind(listener_arn: &str, addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind {
            listener_arn: listener_arn.to_string(),
            addr,
            source,
        })
}

impl RunningListener {
    /// Serves a bound socket until [`RunningListener::close`].
    pub(crate) fn start(listener: TcpListener, shared: Arc<ListenerShared>) -> RunningListener {
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let (stop, rx) = watch::channel(false);
        let socket = Arc::new(listener);
        let task = tokio::spawn(accept_loop(socket.clone(), shared.clone(), rx));
        RunningListener {
            shared,
            addr,
            socket,
            stop,
            task,
        }
    }

    /// A new descriptor of the listening socket (for another process to accept on).
    pub(crate) fn socket_copy(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.socket.as_fd().try_clone_to_owned()
    }

    /// Stops accepting at once (this process's descriptors of the socket close; a copy
    /// handed to another process keeps it open there); connections finish their
    /// requests in the background. The returned handle ends when they have (or the grace
    /// period ran out).
    pub(crate) fn close(self) -> JoinHandle<()> {
        let _ = self.stop.send(true);
        self.task
    }
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    shared: Arc<ListenerShared>,
    mut stop: watch::Receiver<bool>,
) {
    let tracker = Arc::new(ConnTracker::default());
    let clients = Arc::new(PerClient::default());
    let builder = Arc::new(hyper_path::builder());
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let (max, per_client) = {
                        let routes = shared.routes.load();
                        (routes.max_connections, routes.max_connections_per_client)
                    };
                    let slot = (shared.metrics.active_connections.get() < max)
                        .then(|| clients.enter(peer.ip(), per_client))
                        .flatten();
                    let Some(slot) = slot else {
                        shared.metrics.rejected_connections.inc();
                        drop(stream);
                        continue;
                    };
                    serve_connection(stream, peer, &shared, &builder, &stop, &tracker, slot);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(CLOSE_GRACE, tracker.wait_closed()).await;
}

/// A listener's open connections per client address.
#[derive(Default)]
struct PerClient(std::sync::Mutex<HashMap<IpAddr, u32>>);

/// One open connection counted for its client address until it drops.
struct ClientSlot(Arc<PerClient>, IpAddr);

impl PerClient {
    /// Counts a connection from `ip`, unless `ip` has `max` open already.
    fn enter(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<ClientSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot(self.clone(), ip))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// A listener's open HTTP connections, so that closing it can wait for them.
#[derive(Default)]
struct ConnTracker {
    open: std::sync::atomic::AtomicUsize,
    closed: tokio::sync::Notify,
}

struct ConnGuard(Arc<ConnTracker>);

impl ConnTracker {
    fn enter(self: &Arc<Self>) -> ConnGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ConnGuard(self.clone())
    }

    async fn wait_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<ListenerShared>,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    stop: &watch::Receiver<bool>,
    tracker: &Arc<ConnTracker>,
    slot: ClientSlot,
) {
    let _ = stream.set_nodelay(true);
    shared.metrics.new_connections.inc();
    shared.metrics.active_connections.inc();
    let guard = (shared.mode == Mode::Http).then(|| tracker.enter());
    let tls = shared.tls.load_full();
    tokio::spawn(connection(
        stream,
        peer,
        tls,
        shared.clone(),
        builder.clone(),
        stop.clone(),
        (guard, slot),
    ));
}

/// Keeps a connection counted (for closing and per client) while it is served.
type Counted = (Option<ConnGuard>, ClientSlot);

/// The task of one accepted connection. Its state lives as long as the connection, idle
/// or not, so only plain HTTP/1.1 on the fast path (the common case) is inline; TLS,
/// streams and hyper's connection state are boxed when a connection needs them.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsAcceptor>>,
    shared: Arc<ListenerShared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
    counted: Counted,
) {
    let _counted = counted;
    match (tls, shared.mode) {
        (None, Mode::Http) => serve_http1(stream, peer, "http", &shared, &builder, stop).await,
        (tls, mode) => {
            Box::pin(serve_other(
                stream, peer, tls, mode, &shared, &builder, stop,
            ))
            .await
        }
    }
    shared.metrics.active_connections.dec();
}

/// Serves a TLS or stream connection.
async fn serve_other(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsAcceptor>>,
    mode: Mode,
    shared: &Arc<ListenerShared>,
    builder: &auto::Builder<TokioExecutor>,
    stop: watch::Receiver<bool>,
) {
    let local = stream.local_addr().unwrap_or(peer);
    let Some(acceptor) = tls else {
        return stream::forward(stream, peer, local, shared.clone()).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => match mode {
            Mode::Http if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                let cx = ConnCtx::new(shared, peer, "https");
                hyper_path::serve(tls, cx, builder, stop).await
            }
            Mode::Http => serve_http1(tls, peer, "https", shared, builder, stop).await,
            Mode::Stream => stream::forward(tls, peer, local, shared.clone()).await,
        },
        _ => tracing::debug!(%peer, "TLS handshake failed"),
    }
}

/// Serves an HTTP/1 connection: the fast path first, hyper for whatever it declines.
async fn serve_http1<T>(
    io: T,
    peer: SocketAddr,
    scheme: &'static str,
    shared: &Arc<ListenerShared>,
    builder: &auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cx = ConnCtx::new(shared, peer, scheme);
    let idle = shared.routes.load().idle_timeout;
    match fast_h1::serve(io, &cx, &mut stop, idle).await {
        fast_h1::Exit::Closed => {}
        // Boxed: hyper's connection state is large and most connections never need it.
        fast_h1::Exit::Fallback(rest) => Box::pin(hyper_path::serve(rest, cx, builder, stop)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn closing_waits_for_every_open_connection() {
        let tracker = Arc::new(ConnTracker::default());
        // Nothing open: closing does not wait.
        tokio::time::timeout(Duration::from_secs(1), tracker.wait_closed())
            .await
            .expect("no connection to wait for");
        let a = tracker.enter();
        let b = tracker.enter();
        let waiting = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.wait_closed().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one connection is still open");
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the last connection closing wakes the waiter")
            .unwrap();
    }

    /// The size of the future `f` returns, without calling it.
    fn future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(
            TcpStream,
            SocketAddr,
            Option<Arc<TlsAcceptor>>,
            Arc<ListenerShared>,
            Arc<auto::Builder<TokioExecutor>>,
            watch::Receiver<bool>,
            Counted,
        ) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_connection_task_is_small_while_it_waits() {
        // Every open connection holds its task's state, idle or not: hyper's and TLS
        // state, and a request's forwarding, are boxed only while needed. (About 1 KiB
        // in a debug build, less in release; it was 3 KiB with forwarding inline.)
        let size = future_size(connection);
        assert!(size <= 1024, "a connection's task takes {size} bytes");
    }

    #[test]
    fn each_client_address_gets_at_most_its_share_of_connections() {
        let clients = Arc::new(PerClient::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = clients.enter(a, 2).expect("first");
        let second = clients.enter(a, 2).expect("second");
        assert!(
            clients.enter(a, 2).is_none(),
            "a third from the same address"
        );
        let other = clients
            .enter(b, 2)
            .expect("another address is not affected");
        drop(first);
        let again = clients
            .enter(a, 2)
            .expect("a slot freed by a closed connection");
        drop((second, other, again));
        assert!(
            clients.0.lock().unwrap().is_empty(),
            "no entry left for closed clients"
        );
    }

    #[tokio::test]
    async fn a_taken_port_is_a_bind_error_naming_the_listener() {
        let taken = bind("arn:a", "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        match bind("arn:b", addr).await {
            Err(ProxyError::Bind {
                listener_arn,
                addr: a,
                ..
            }) => {
                assert_eq!(listener_arn, "arn:b");
                assert_eq!(a, addr);
            }
            other => panic!("expected a bind error, got {:?}", other.map(|_| ())),
        }
    }
}
