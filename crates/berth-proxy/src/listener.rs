//! Listeners: the accept loop of one bound socket, the per-listener connection limit
//! (`berth.max_connections`) and the per-client-address one
//! (`berth.max_connections_per_client`), the TLS handshake timeout, the count of open HTTP connections that closing a listener
//! waits for, and the dispatch of each accepted connection: TLS handshake, then by ALPN
//! and listener mode to the HTTP/1.1 fast path (falling back to hyper), hyper (HTTP/2),
//! or the NLB stream path.
//!
//! A plain HTTP/1.1 connection quiet between requests for
//! [`idle_set::PARK_AFTER`] leaves its task and waits in the listener's idle set
//! ([`crate::idle_set`]), still counted (open, per client, for closing); it is served
//! by a new task when its client sends again, closed when its idle timeout runs out,
//! and served again like any quiet connection when the listener stops.
//!
//! Connections are accepted without registering them with the runtime's reactor
//! ([`acceptor`]) and registered by the thread that serves them, with no readiness
//! assumed: the first read waits for the reactor to report the request's bytes instead
//! of trying the socket before they arrived (tokio's own listener assumes a new
//! connection readable, which costs a failed read whenever the client's first bytes
//! come after its handshake). A connection handed to another data plane thread has no
//! registration to undo.
//!
//! It does not parse or route requests; the paths it dispatches to do.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::context::{ConnCtx, ListenerShared, Mode};
use crate::error::ProxyError;
use crate::idle_set::{self, IdleSet, Parked};
use crate::workers::{LoadGuard, Loads, Workers};
use crate::{fast_h1, hyper_path, stream};

mod acceptor;
pub(crate) use acceptor::Acceptor;

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing listener waits for its in-flight requests.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

/// A listener being served.
pub(crate) struct RunningListener {
    pub(crate) shared: Arc<ListenerShared>,
    pub(crate) addr: SocketAddr,
    /// The bound socket, so a copy of it can be handed to another process
    /// ([`RunningListener::socket_copy`]).
    socket: Socket,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How a running listener keeps its socket.
enum Socket {
    /// Shared with the one accept loop, on the runtime that started the listener.
    Accepting(Arc<Acceptor>),
    /// A descriptor of its own, not registered with any runtime: the workers accept on
    /// descriptors of theirs.
    Kept(OwnedFd),
}

/// Turns a listening socket bound by another process (handed over) into a listener
/// served here.
pub(crate) fn adopt(
    listener_arn: &str,
    socket: std::net::TcpListener,
) -> Result<Acceptor, ProxyError> {
    let addr = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let adopted = socket
        .set_nonblocking(true)
        .and_then(|()| Acceptor::new(nodelay_inherited(socket)));
    adopted.map_err(|source| ProxyError::Bind {
        listener_arn: listener_arn.to_string(),
        addr,
        source,
    })
}

/// Binds a listener's socket, before anything about the listener is committed (a
/// failure leaves the proxy as it was).
pub(crate) async fn bind(listener_arn: &str, addr: SocketAddr) -> Result<Acceptor, ProxyError> {
    bind_socket(addr).await.map_err(|source| ProxyError::Bind {
        listener_arn: listener_arn.to_string(),
        addr,
        source,
    })
}

/// Binds a listening socket on `addr`, its connections inheriting `TCP_NODELAY`.
pub(crate) async fn bind_socket(addr: SocketAddr) -> std::io::Result<Acceptor> {
    let listener = TcpListener::bind(addr).await?.into_std()?;
    Acceptor::new(nodelay_inherited(listener))
}

/// Sets `TCP_NODELAY` on a listening socket: Linux copies it to every connection the
/// socket accepts, which saves a system call per connection. Where it could not be set,
/// each accepted connection sets it ([`serve_connection`] checks).
fn nodelay_inherited(listener: std::net::TcpListener) -> std::net::TcpListener {
    // The option is a socket option like any other: std sets it through a stream's
    // handle to the same descriptor.
    let socket = std::net::TcpStream::from(OwnedFd::from(listener));
    if let Err(e) = socket.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY on the listening socket");
    }
    std::net::TcpListener::from(OwnedFd::from(socket))
}

impl RunningListener {
    /// Serves a bound socket until [`RunningListener::close`]: on each worker's runtime,
    /// each accepting on its own descriptor of the socket (see [`crate::workers`]), or on
    /// the calling runtime without `workers` (or when the process is out of
    /// descriptors). Open connections, the per-client counts and the connection limit
    /// are the listener's, across workers.
    pub(crate) fn start(
        listener: Acceptor,
        shared: Arc<ListenerShared>,
        workers: &Workers,
    ) -> RunningListener {
        let handles = workers.handles();
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let (stop, rx) = watch::channel(false);
        let counts = Counts::default();
        // A socket option: the workers' descriptors below share it.
        if shared.mode == Mode::Http {
            if let Err(e) = listener.delay_first_ack() {
                tracing::debug!(error = %e, "TCP_QUICKACK on the listening socket");
            }
        }
        let copies = (!handles.is_empty())
            .then(|| copies(&listener, handles.len()))
            .and_then(|r| {
                r.map_err(|e| tracing::warn!(error = %e, "listener served without workers"))
                    .ok()
            });
        let Some((socket, copies)) = copies else {
            let listener = Arc::new(listener);
            let task = tokio::spawn(accept_loop(
                listener.clone(),
                shared.clone(),
                rx,
                counts,
                None,
            ));
            return RunningListener {
                shared,
                addr,
                socket: Socket::Accepting(listener),
                stop,
                task,
            };
        };
        // Dropping it takes it out of this runtime's epoll: this runtime does not wake
        // for the workers' connections.
        drop(listener);
        let (to, from): (Vec<_>, Vec<_>) =
            handles.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let to: Arc<[mpsc::UnboundedSender<Handed>]> = to.into();
        let loops: Vec<_> = handles
            .iter()
            .zip(copies)
            .zip(from)
            .enumerate()
            .map(|(index, ((worker, own), from))| {
                let (shared, rx, counts) = (shared.clone(), rx.clone(), counts.clone());
                let route = Route {
                    index,
                    loads: workers.loads().clone(),
                    to: to.clone(),
                };
                worker.spawn(async move {
                    match Acceptor::new(own) {
                        Ok(own) => {
                            accept_loop(Arc::new(own), shared, rx, counts, Some((route, from)))
                                .await
                        }
                        Err(e) => tracing::warn!(error = %e, "a worker cannot accept"),
                    }
                })
            })
            .collect();
        let task = tokio::spawn(async move {
            for l in loops {
                let _ = l.await;
            }
        });
        RunningListener {
            shared,
            addr,
            socket: Socket::Kept(socket),
            stop,
            task,
        }
    }

    /// A new descriptor of the listening socket (for another process to accept on).
    pub(crate) fn socket_copy(&self) -> std::io::Result<OwnedFd> {
        match &self.socket {
            Socket::Accepting(listener) => listener.as_fd().try_clone_to_owned(),
            Socket::Kept(fd) => fd.try_clone(),
        }
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

/// A descriptor of `listener` kept for handover, and one for each of `n` workers.
fn copies(listener: &Acceptor, n: usize) -> std::io::Result<(OwnedFd, Vec<std::net::TcpListener>)> {
    let socket = listener.as_fd().try_clone_to_owned()?;
    let own = (0..n)
        .map(|_| socket.try_clone().map(std::net::TcpListener::from))
        .collect::<std::io::Result<_>>()?;
    Ok((socket, own))
}

/// What a listener counts across its accept loops: its open HTTP connections (for
/// closing) and its connections per client address.
#[derive(Clone, Default)]
struct Counts {
    tracker: Arc<ConnTracker>,
    clients: Arc<PerClient>,
}

/// A connection one worker accepted for another to serve.
struct Handed {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: ClientSlot,
    /// Counted for the worker it is handed to from the moment it is handed.
    load: LoadGuard,
}

/// Where a worker's accept loop sends the connections it hands over
/// ([`Loads::pick`]).
struct Route {
    /// This worker's index in `loads` and `to`.
    index: usize,
    loads: Arc<Loads>,
    /// Every worker's accept loop of this listener.
    to: Arc<[mpsc::UnboundedSender<Handed>]>,
}

/// A worker's side of a listener's handovers: where it sends connections, and the
/// connections other workers hand to it.
type Handoff = (Route, mpsc::UnboundedReceiver<Handed>);

/// A connection this worker accepted, to be served here (counted for this worker);
/// or `None` when a less loaded worker was handed it ([`Loads::pick`]).
fn keep_or_hand_over(
    route: &Option<Route>,
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: ClientSlot,
) -> Option<Kept> {
    let Some(route) = route else {
        return Some((stream, peer, slot, None));
    };
    let pick = route.loads.pick(route.index);
    let load = route.loads.enter(pick);
    if pick == route.index {
        return Some((stream, peer, slot, Some(load)));
    }
    // Not registered with any runtime yet: the other worker's serves it.
    let handed = Handed {
        stream,
        peer,
        slot,
        load,
    };
    match route.to[pick].send(handed) {
        Ok(()) => None,
        // That worker's accept loop has stopped taking connections (its listener is
        // closing): served here instead of dropped.
        Err(mpsc::error::SendError(h)) => {
            drop(h.load);
            Some((
                h.stream,
                h.peer,
                h.slot,
                Some(route.loads.enter(route.index)),
            ))
        }
    }
}

/// A connection to serve here: its stream, client, slot and worker's count.
type Kept = (
    std::net::TcpStream,
    SocketAddr,
    ClientSlot,
    Option<LoadGuard>,
);

/// The next connection handed to this worker; never, without workers.
async fn next_handed(from: &mut Option<mpsc::UnboundedReceiver<Handed>>) -> Handed {
    match from {
        Some(from) => match from.recv().await {
            Some(h) => h,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn accept_loop(
    listener: Arc<Acceptor>,
    shared: Arc<ListenerShared>,
    mut stop: watch::Receiver<bool>,
    counts: Counts,
    handoff: Option<Handoff>,
) {
    let Counts { tracker, clients } = counts;
    let (route, mut from) = handoff.unzip();
    let builder = Arc::new(hyper_path::builder());
    // Quiet plain HTTP connections wait here; without it (no epoll instance could be
    // made) they wait in their tasks.
    let idle = match shared.mode {
        Mode::Http => IdleSet::start(shared.metrics.idle_parked_connections.clone(), stop.clone())
            .map_err(|e| tracing::warn!(error = %e, "idle connections will keep their tasks"))
            .ok(),
        Mode::Stream => None,
    };
    // Whether accepted connections need TCP_NODELAY set (see `nodelay_inherited`):
    // learnt from the first one.
    let mut set_nodelay: Option<bool> = None;
    // What each connection's task watches: a copy of `stop`, taken before the loop waits
    // on it (it only ever changes once, to stopping, which ends the loop).
    let conn_stop = stop.clone();
    let dispatch = Dispatch {
        shared: &shared,
        builder: &builder,
        stop: &conn_stop,
        tracker: &tracker,
        idle: &idle,
    };
    loop {
        let (stream, peer, slot, load) = tokio::select! {
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
                    let nodelay = *set_nodelay
                        .get_or_insert_with(|| !stream.nodelay().unwrap_or(false));
                    if nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    match keep_or_hand_over(&route, stream, peer, slot) {
                        Some(kept) => kept,
                        None => continue,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            h = next_handed(&mut from) => (h.stream, h.peer, h.slot, Some(h.load)),
            _ = stop.changed() => break,
        };
        serve_connection(stream, peer, &dispatch, (slot, load));
    }
    // Connections other workers accepted and handed here before it stopped are served
    // (closing waits for them) rather than dropped; from now on they keep their own.
    if let Some(from) = from.as_mut() {
        from.close();
        while let Ok(h) = from.try_recv() {
            serve_connection(h.stream, h.peer, &dispatch, (h.slot, Some(h.load)));
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

/// What the accept loop hands every connection it accepts.
struct Dispatch<'a> {
    shared: &'a Arc<ListenerShared>,
    builder: &'a Arc<auto::Builder<TokioExecutor>>,
    stop: &'a watch::Receiver<bool>,
    tracker: &'a Arc<ConnTracker>,
    idle: &'a Option<Arc<IdleSet<Accepted>>>,
}

/// Serves an accepted connection, counted for its client address and (with workers) its
/// worker until it closes.
fn serve_connection(
    stream: std::net::TcpStream,
    peer: SocketAddr,
    d: &Dispatch<'_>,
    (slot, load): (ClientSlot, Option<LoadGuard>),
) {
    let Dispatch {
        shared,
        builder,
        stop,
        tracker,
        idle,
    } = *d;
    let stream = match acceptor::register(stream) {
        Ok(stream) => stream,
        Err(e) => {
            return tracing::debug!(error = %e, "an accepted connection could not be registered")
        }
    };
    shared.metrics.new_connections.inc();
    shared.metrics.active_connections.inc();
    let guard = (shared.mode == Mode::Http).then(|| tracker.enter());
    let tls = shared.tls.load_full();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let a = Accepted {
        cx: ConnCtx::new(shared, peer, scheme),
        builder: builder.clone(),
        stop: stop.clone(),
        idle: idle.clone(),
        _counted: (guard, slot, load),
    };
    // Two kinds of task: a plain HTTP connection's state stays small (it lives as long
    // as the connection, idle or not); TLS and streams take what they need.
    match (tls, shared.mode) {
        (None, Mode::Http) => {
            tokio::spawn(plain_http(stream, a));
        }
        (tls, _) => {
            tokio::spawn(other(stream, tls, a));
        }
    }
}

/// Keeps a connection counted (for closing and per client) while it is served.
type Counted = (Option<ConnGuard>, ClientSlot, Option<LoadGuard>);

/// What the task of an accepted connection holds besides its stream, for the
/// connection's life.
struct Accepted {
    /// The connection's context (its listener and client address among it).
    cx: Arc<ConnCtx>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
    /// The listener's idle set, for a plain HTTP connection quiet between requests.
    idle: Option<Arc<IdleSet<Accepted>>>,
    _counted: Counted,
}

/// A parked plain HTTP connection: everything of its task but the task, the stream's
/// registration and the fast path's state (its timer and buffers).
impl Parked for Accepted {
    fn resume(self, stream: std::net::TcpStream) {
        match acceptor::register(stream) {
            Ok(stream) => {
                tokio::spawn(plain_http(stream, self));
            }
            Err(e) => {
                tracing::debug!(error = %e, "a parked connection could not be resumed");
                self.cx.listener.metrics.active_connections.dec();
            }
        }
    }

    fn expire(self, stream: std::net::TcpStream) {
        // As the fast path ends a connection idle for its timeout: closed, nothing sent.
        drop(stream);
        self.cx.listener.metrics.active_connections.dec();
    }
}

/// The task of a plain HTTP connection: the fast path, hyper's connection state boxed
/// only when a connection falls back to it.
async fn plain_http(stream: TcpStream, mut a: Accepted) {
    // `serve_http1`'s body, written out: a nested call would hold the stream twice.
    let idle = a.cx.listener.routes.load().idle_timeout;
    let park_after = a.idle.is_some().then_some(idle_set::PARK_AFTER);
    match fast_h1::serve(stream, &a.cx, &mut a.stop, idle, park_after).await {
        fast_h1::Exit::Closed => {}
        fast_h1::Exit::Park { io, idle_left } => return park(io, a, idle_left),
        fast_h1::Exit::Fallback(rest) => {
            Box::pin(hyper_path::serve(
                rest,
                a.cx.clone(),
                &a.builder,
                a.stop.clone(),
            ))
            .await
        }
    }
    a.cx.listener.metrics.active_connections.dec();
}

/// Moves a quiet plain HTTP connection into its listener's idle set; where it cannot
/// park (the listener stopped meanwhile), a new task serves it on.
fn park(stream: TcpStream, a: Accepted, idle_left: std::time::Duration) {
    let Some(set) = a.idle.clone() else {
        return a.cx.listener.metrics.active_connections.dec();
    };
    match stream.into_std() {
        Ok(stream) => {
            if let Err((stream, a)) = set.park(stream, a, idle_left) {
                a.resume(stream);
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "a quiet connection could not be parked");
            a.cx.listener.metrics.active_connections.dec();
        }
    }
}

/// The task of a TLS or stream connection.
async fn other(stream: TcpStream, tls: Option<Arc<TlsAcceptor>>, mut a: Accepted) {
    let (shared, peer) = (a.cx.listener.clone(), a.cx.peer);
    let local = stream.local_addr().unwrap_or(peer);
    match tls {
        None => stream::forward(stream, peer, local, shared.clone()).await,
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => match shared.mode {
                    Mode::Http if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                        hyper_path::serve(tls, a.cx.clone(), &a.builder, a.stop.clone()).await
                    }
                    Mode::Http => serve_http1(tls, &mut a).await,
                    Mode::Stream => stream::forward(tls, peer, local, shared.clone()).await,
                },
                _ => tracing::debug!(%peer, "TLS handshake failed"),
            }
        }
    }
    shared.metrics.active_connections.dec();
}

/// Serves an HTTP/1 connection: the fast path first, hyper for whatever it declines.
async fn serve_http1<T>(io: T, a: &mut Accepted)
where
    T: fast_h1::ClientIo + Send + 'static,
{
    let idle = a.cx.listener.routes.load().idle_timeout;
    // A TLS connection keeps its task (its session state is in it).
    match fast_h1::serve(io, &a.cx, &mut a.stop, idle, None).await {
        fast_h1::Exit::Closed | fast_h1::Exit::Park { .. } => {}
        // Boxed: hyper's connection state is large and most connections never need it.
        fast_h1::Exit::Fallback(rest) => {
            Box::pin(hyper_path::serve(
                rest,
                a.cx.clone(),
                &a.builder,
                a.stop.clone(),
            ))
            .await
        }
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
        F: FnOnce(TcpStream, Accepted) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_plain_connection_task_is_small_while_it_waits() {
        // Every open connection holds its task's state, idle or not: hyper's and TLS
        // state, and a request's forwarding, are boxed or in another kind of task.
        // (Debug build: 3,032 bytes with forwarding inline, then about 1,000 with one task
        // type for every connection and the stream held at three levels; 824, then 864
        // with the idle set's handle and the parking exit: a connection quiet for
        // `idle_set::PARK_AFTER` holds no task at all.)
        let size = future_size(plain_http);
        assert!(size <= 880, "a plain connection's task takes {size} bytes");
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

    #[test]
    fn a_connection_for_a_worker_that_stopped_taking_them_is_served_where_it_was_accepted() {
        let gauges: Vec<prometheus::IntGauge> = (0..2)
            .map(|i| prometheus::IntGauge::new(format!("w{i}"), "w").unwrap())
            .collect();
        let loads = Arc::new(Loads::new(gauges.clone()));
        // Worker 0 serves two more than worker 1: what it accepts goes to worker 1.
        let _held = [loads.enter(0), loads.enter(0)];
        let (to0, _from0) = mpsc::unbounded_channel();
        let (to1, mut from1) = mpsc::unbounded_channel();
        let route = Some(Route {
            index: 0,
            loads: loads.clone(),
            to: Arc::from(vec![to0, to1]),
        });
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let clients = Arc::new(PerClient::default());
        let accept = || {
            let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (stream, peer) = l.accept().unwrap();
            let slot = clients.enter(peer.ip(), 10).unwrap();
            (stream, peer, slot, client)
        };

        let (stream, peer, slot, _c1) = accept();
        assert!(keep_or_hand_over(&route, stream, peer, slot).is_none());
        let handed = from1.try_recv().expect("handed to worker 1");
        assert_eq!(gauges[1].get(), 1, "counted for worker 1 while handed");
        drop(handed);

        // Worker 1's accept loop stopped taking connections (its listener closing).
        from1.close();
        let (stream, peer, slot, _c2) = accept();
        let kept = keep_or_hand_over(&route, stream, peer, slot).expect("served here");
        assert!(kept.3.is_some());
        assert_eq!(
            gauges[0].get(),
            3,
            "counted for the worker that accepted it"
        );
        assert_eq!(gauges[1].get(), 0);
    }

    /// Accepts one connection on `listener` and says whether it has TCP_NODELAY.
    async fn accepted_nodelay(listener: Acceptor) -> bool {
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        accepted.nodelay().unwrap()
    }

    #[tokio::test]
    async fn accepted_connections_inherit_nodelay_from_the_listening_socket() {
        let bound = bind("arn:a", "127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert!(accepted_nodelay(bound).await, "bound listener");
        let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let adopted = adopt("arn:b", std).unwrap();
        assert!(accepted_nodelay(adopted).await, "adopted listener");
        // Without it (the accept loop then sets it per connection).
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        plain.set_nonblocking(true).unwrap();
        let plain = Acceptor::new(plain).unwrap();
        assert!(!accepted_nodelay(plain).await, "a listener left as it was");
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
