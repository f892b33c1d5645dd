//! HTTP listeners: accepting connections (HTTP/1.1 keep-alive and h2c via hyper-util's
//! auto server), matching rules, and forwarding to targets with retries on connection
//! failure.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::body::{ProxyBody, ResponseGuard};
use crate::clock::Clock;
use crate::framing::{Conflict, Guarded};
use crate::group::{GroupRuntime, Stickiness};
use crate::h1;
use crate::metrics::ListenerMetrics;
use crate::pool::UpBody;
use crate::rules::{source_ip, CompiledAction, Forward, RequestView, RuleSet, ViewHeaders};

/// How long a connection to a target may take (ALB: 10 s).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a request's line and headers may take together (ALB: 64 KiB).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How many targets one request tries before the client gets a 502.
pub(crate) const MAX_ATTEMPTS: usize = 3;
/// Replays after a pooled connection turned out closed before the request went out.
pub(crate) const MAX_STALE_REPLAYS: usize = 4;
/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing listener waits for its in-flight requests.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(30);

/// `routing.http.xff_header_processing.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XffMode {
    Append,
    Preserve,
    Remove,
}

/// What a listener routes by: swapped whole when the configuration changes.
pub(crate) struct Routes {
    pub(crate) rules: RuleSet,
    pub(crate) xff: XffMode,
    /// `routing.http.drop_invalid_header_fields.enabled`: header names other than
    /// letters, digits and hyphens are removed before a request goes to a target.
    pub(crate) drop_invalid_headers: bool,
    pub(crate) idle_timeout: Duration,
    /// Open client connections beyond which new ones are refused.
    pub(crate) max_connections: i64,
}

/// Whether a listener speaks HTTP (ALB) or forwards byte streams (NLB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Http,
    Stream,
}

pub(crate) struct ListenerShared {
    pub(crate) routes: ArcSwap<Routes>,
    /// Set for HTTPS and TLS listeners; swapped when certificates change.
    pub(crate) tls: ArcSwapOption<TlsAcceptor>,
    pub(crate) mode: Mode,
    pub(crate) metrics: ListenerMetrics,
    /// The bound port, for X-Forwarded-Port and redirects.
    pub(crate) port: u16,
    pub(crate) clock: Clock,
}

/// A listener being served.
pub(crate) struct RunningListener {
    pub(crate) shared: Arc<ListenerShared>,
    pub(crate) addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningListener {
    pub(crate) fn start(listener: TcpListener, shared: Arc<ListenerShared>) -> RunningListener {
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), rx));
        RunningListener {
            shared,
            addr,
            stop,
            task,
        }
    }

    /// Stops accepting at once; connections finish their requests in the background.
    /// The returned handle ends when they have (or the grace period ran out).
    pub(crate) fn close(self) -> JoinHandle<()> {
        let _ = self.stop.send(true);
        self.task
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<ListenerShared>,
    mut stop: watch::Receiver<bool>,
) {
    let tracker = Arc::new(ConnTracker::default());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if shared.metrics.active_connections.get() >= shared.routes.load().max_connections {
                        shared.metrics.rejected_connections.inc();
                        drop(stream);
                        continue;
                    }
                    serve_connection(stream, peer, &shared, &builder, &stop, &tracker);
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
) {
    let _ = stream.set_nodelay(true);
    shared.metrics.new_connections.inc();
    shared.metrics.active_connections.inc();
    let shared = shared.clone();
    let builder = builder.clone();
    let tls = shared.tls.load_full();
    let stop = stop.clone();
    let guard = (shared.mode == Mode::Http).then(|| tracker.enter());
    tokio::spawn(async move {
        let _guard = guard;
        match (tls, shared.mode) {
            (None, Mode::Http) => serve_http1(stream, peer, "http", &shared, &builder, stop).await,
            (None, Mode::Stream) => {
                let local = stream.local_addr().unwrap_or(peer);
                crate::stream::forward(stream, peer, local, shared.clone()).await
            }
            (Some(acceptor), mode) => {
                let local = stream.local_addr().unwrap_or(peer);
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => match mode {
                        Mode::Http if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                            let cx = ConnCtx::new(&shared, peer, "https");
                            serve_http(tls, cx, &builder, stop).await
                        }
                        Mode::Http => {
                            serve_http1(tls, peer, "https", &shared, &builder, stop).await
                        }
                        Mode::Stream => {
                            crate::stream::forward(tls, peer, local, shared.clone()).await
                        }
                    },
                    _ => tracing::debug!(%peer, "TLS handshake failed"),
                }
            }
        }
        shared.metrics.active_connections.dec();
    });
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
    match h1::serve(io, &cx, &mut stop, idle).await {
        h1::Exit::Closed => {}
        h1::Exit::Fallback(io, read) => {
            serve_http(h1::Prefixed::new(read, io), cx, builder, stop).await
        }
    }
}

/// Serves a connection with hyper: HTTP/1.1, h2c and HTTP/2 over TLS.
async fn serve_http<T>(
    io: T,
    cx: Arc<ConnCtx>,
    builder: &auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = &cx.listener;
    let peer = cx.peer;
    let idle = shared.routes.load().idle_timeout;
    let last = Arc::new(AtomicU64::new(shared.clock.now_ms()));
    let io = IdleIo {
        inner: Guarded::new(io, cx.conflict.clone()),
        last: last.clone(),
        clock: shared.clock.clone(),
    };
    let svc_cx = cx.clone();
    let svc = service_fn(move |req| {
        let cx = svc_cx.clone();
        async move {
            let _active = Active::new(&cx.active);
            Ok::<_, Infallible>(handle(req, cx.clone()).await)
        }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    let idle_ms = idle.as_millis() as u64;
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            _ = &mut conn => break,
            _ = stop.changed(), if !stopping => {
                // The listener is closing: finish the requests in flight, then close.
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(deadline) => {
                let quiet = shared.clock.now_ms().saturating_sub(last.load(Ordering::Relaxed));
                if quiet < idle_ms {
                    deadline = Instant::now() + Duration::from_millis(idle_ms - quiet);
                } else if cx.active.load(Ordering::Relaxed) == 0 {
                    tracing::debug!(%peer, "closing idle connection");
                    break;
                } else {
                    // Requests are waiting on a target and nothing moved on the
                    // connection for the idle timeout: they get a 504.
                    cx.expired.notify_waiters();
                    deadline = Instant::now() + idle;
                }
            }
        }
    }
}

/// A client connection that records when it last moved bytes, for the idle timeout.
struct IdleIo<T> {
    inner: T,
    last: Arc<AtomicU64>,
    clock: Clock,
}

impl<T> IdleIo<T> {
    #[inline]
    fn touch(&self) {
        self.last.store(self.clock.now_ms(), Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) {
            me.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(_))) {
            me.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(_))) {
            me.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

pub(crate) struct ConnCtx {
    pub(crate) listener: Arc<ListenerShared>,
    pub(crate) peer: SocketAddr,
    /// The client's address as an X-Forwarded-For value, formatted once per connection.
    pub(crate) client_ip: HeaderValue,
    /// The listener's port as an X-Forwarded-Port value.
    pub(crate) port_value: HeaderValue,
    /// `http` or `https`, for X-Forwarded-Proto and redirects.
    pub(crate) scheme: &'static str,
    /// Requests on this connection not yet answered: the idle timeout waits for them.
    active: AtomicU64,
    /// Woken when the connection was idle for the idle timeout while requests waited on a
    /// target: those requests end with a 504. One connection-wide deadline instead of a
    /// timer per request.
    expired: tokio::sync::Notify,
    /// Raised when a request head on this connection carried both Content-Length and
    /// Transfer-Encoding (see [`crate::framing`]).
    conflict: Conflict,
}

impl ConnCtx {
    fn new(shared: &Arc<ListenerShared>, peer: SocketAddr, scheme: &'static str) -> Arc<ConnCtx> {
        Arc::new(ConnCtx {
            listener: shared.clone(),
            peer,
            client_ip: HeaderValue::from_str(&source_ip(peer).to_string())
                .expect("an IP address is a valid header value"),
            port_value: HeaderValue::from(shared.port),
            scheme,
            active: AtomicU64::new(0),
            expired: tokio::sync::Notify::new(),
            conflict: Conflict::default(),
        })
    }
}

/// Counts a request on its connection while it is being handled.
struct Active<'a>(&'a AtomicU64);

impl<'a> Active<'a> {
    fn new(c: &'a AtomicU64) -> Active<'a> {
        c.fetch_add(1, Ordering::Relaxed);
        Active(c)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An error response generated by the load balancer, in ALB's format.
pub(crate) fn elb_error(status: StatusCode, m: &ListenerMetrics) -> Response<ProxyBody> {
    m.elb_response(status.as_u16());
    let mut r = Response::new(ProxyBody::full(elb_error_body(status)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("berth"));
    r
}

/// The HTML body of a response the load balancer generates.
pub(crate) fn elb_error_body(status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    )
}

fn request_host(req: &Request<Incoming>) -> &str {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

async fn handle(req: Request<Incoming>, cx: Arc<ConnCtx>) -> Response<ProxyBody> {
    let l = &cx.listener;
    l.metrics.requests.inc();
    if cx.conflict.load(Ordering::Acquire) {
        // Ambiguous framing (a request-smuggling attempt): refused, and the connection
        // closes after the answer.
        let mut r = elb_error(StatusCode::BAD_REQUEST, &l.metrics);
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    if let Some(n) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        l.metrics.processed_bytes.inc_by(n);
    }
    let routes = l.routes.load();
    let host_full = request_host(&req);
    let host = strip_port(host_full);
    let view = RequestView {
        host,
        path: req.uri().path(),
        query: req.uri().query(),
        method: req.method(),
        headers: ViewHeaders::Map(req.headers()),
        source: source_ip(cx.peer),
    };
    let (action, evaluated) = routes.rules.select(&view);
    if evaluated > 0 {
        l.metrics.rule_evaluations.inc_by(evaluated as u64);
    }
    match action {
        CompiledAction::Fixed {
            status,
            content_type,
            body,
        } => {
            l.metrics.fixed_responses.inc();
            let mut r = Response::new(ProxyBody::full(body.clone()));
            *r.status_mut() = *status;
            if let Some(ct) = content_type {
                r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            r
        }
        CompiledAction::Redirect(rd) => {
            l.metrics.redirects.inc();
            let loc = rd.location(cx.scheme, host, l.port, req.uri().path(), req.uri().query());
            let mut r = Response::new(ProxyBody::empty());
            *r.status_mut() = rd.status;
            match HeaderValue::from_str(&loc) {
                Ok(v) => {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                Err(_) => return elb_error(StatusCode::BAD_REQUEST, &l.metrics),
            }
            r
        }
        CompiledAction::Forward(f) => {
            let Some((group, set_tg_cookie)) = choose_group(f, || cookie(req.headers(), TG_COOKIE))
            else {
                return elb_error(StatusCode::SERVICE_UNAVAILABLE, &l.metrics);
            };
            let set_tg_cookie = set_tg_cookie.and_then(|c| HeaderValue::from_str(&c).ok());
            let xff = routes.xff;
            let drop_invalid = routes.drop_invalid_headers;
            drop(routes);
            let mut resp = forward(req, group, &cx, xff, drop_invalid).await;
            if let Some(c) = set_tg_cookie {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
    }
}

/// The target group a forward action sends a request to: the one its `AWSALBTG` cookie
/// names under target-group stickiness, else one chosen by weight. With it, the cookie to
/// set when stickiness is on and the choice was by weight. `None` when every weight is 0.
pub(crate) fn choose_group<'a>(
    f: &Forward,
    tg_cookie: impl FnOnce() -> Option<&'a str>,
) -> Option<(Arc<GroupRuntime>, Option<String>)> {
    if f.group_stickiness.is_some() {
        if let Some(v) = tg_cookie() {
            if let Some(g) = f
                .groups
                .iter()
                .find(|g| g.weight > 0 && group_cookie(&g.group.arn) == v)
            {
                return Some((g.group.clone(), None));
            }
        }
    }
    if f.groups.len() == 1 {
        return Some((f.groups[0].group.clone(), None));
    }
    if f.total_weight == 0 {
        return None;
    }
    let mut x = rand::rng().random_range(0..f.total_weight);
    let mut chosen = &f.groups[0];
    for g in &f.groups {
        if x < g.weight {
            chosen = g;
            break;
        }
        x -= g.weight;
    }
    let cookie = f.group_stickiness.map(|d| {
        format!(
            "{TG_COOKIE}={}; Max-Age={}; Path=/",
            group_cookie(&chosen.group.arn),
            d.as_secs()
        )
    });
    Some((chosen.group.clone(), cookie))
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those the Connection header names. Keeps
/// `Upgrade` (and sets `Connection: upgrade`) when the request is an upgrade.
fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup per name.
    if !h.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    if let Some(c) = h.get(header::CONNECTION) {
        let named: Vec<HeaderName> = c
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && n == header::UPGRADE))
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    let upgrade = if keep_upgrade {
        h.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
    if let Some(u) = upgrade {
        h.insert(header::UPGRADE, u);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

fn cookie<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(crate) const LB_COOKIE: &str = "AWSALB";
/// Target-group stickiness across a weighted forward.
pub(crate) const TG_COOKIE: &str = "AWSALBTG";

/// A short stable token naming a target group in the `AWSALBTG` cookie (FNV-1a of the ARN).
fn group_cookie(arn: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in arn.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}
pub(crate) const APP_STICKY_COOKIE: &str = "AWSALBAPP-0";

pub(crate) fn encode_target(addr: SocketAddr) -> String {
    addr.to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn decode_target(v: &str) -> Option<SocketAddr> {
    if v.len() % 2 != 0 || v.len() > 128 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()?.parse().ok()
}

/// Adapts a request prepared for HTTP/1.1 to an HTTP/2 target: absolute URI from the
/// Host header, `te: trailers` kept for gRPC.
fn to_h2(r: &mut Request<UpBody>, wants_trailers: bool) {
    if r.version() == Version::HTTP_2 {
        return;
    }
    *r.version_mut() = Version::HTTP_2;
    let host = r
        .headers_mut()
        .remove(header::HOST)
        .and_then(|h| h.to_str().ok().map(str::to_string))
        .or_else(|| r.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let pq = r.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Ok(u) = format!("http://{host}{pq}").parse::<Uri>() {
        *r.uri_mut() = u;
    }
    if wants_trailers {
        r.headers_mut()
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// What it takes to send a bodyless request again after it failed mid-way: its method,
/// URI and headers, kept in one allocation (header values are reference-counted, so
/// copying them copies no bytes). A `HeaderMap` is only built again when a replay happens.
struct Replay {
    method: Method,
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Replay {
    fn of<B>(r: &Request<B>) -> Replay {
        let mut headers = Vec::with_capacity(r.headers().len());
        headers.extend(r.headers().iter().map(|(n, v)| (n.clone(), v.clone())));
        Replay {
            method: r.method().clone(),
            uri: r.uri().clone(),
            headers,
        }
    }

    fn into_request(self) -> Request<UpBody> {
        let mut b = Request::new(Either::Right(Full::new(Bytes::new())));
        *b.method_mut() = self.method;
        *b.uri_mut() = self.uri;
        let h = b.headers_mut();
        h.reserve(self.headers.len());
        for (n, v) in self.headers {
            h.append(n, v);
        }
        b
    }
}

pub(crate) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Prepares the request for a target: origin-form URI, HTTP/1.1, Host, X-Forwarded-*,
/// no hop-by-hop headers.
fn prepare(
    parts: &mut http::request::Parts,
    cx: &ConnCtx,
    xff: XffMode,
    drop_invalid: bool,
    upgrade: bool,
) {
    if drop_invalid {
        let valid = |n: &HeaderName| {
            n.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if parts.headers.keys().any(|n| !valid(n)) {
            let bad: Vec<HeaderName> = parts
                .headers
                .keys()
                .filter(|n| !valid(n))
                .cloned()
                .collect();
            for n in bad {
                parts.headers.remove(n);
            }
        }
    }
    let host = parts.uri.authority().map(|a| a.as_str().to_string());
    if !parts.headers.contains_key(header::HOST) {
        if let Some(h) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
            parts.headers.insert(header::HOST, h);
        }
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        if let Ok(u) = pq.parse::<Uri>() {
            parts.uri = u;
        }
    }
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers, upgrade);
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const XFPORT: HeaderName = HeaderName::from_static("x-forwarded-port");
    match xff {
        XffMode::Append => {
            let v = match parts.headers.get(&XFF).and_then(|v| v.to_str().ok()) {
                None => Some(cx.client_ip.clone()),
                Some(prev) => {
                    let client = cx.client_ip.to_str().unwrap_or_default();
                    HeaderValue::from_str(&format!("{prev}, {client}")).ok()
                }
            };
            if let Some(v) = v {
                parts.headers.insert(XFF, v);
            }
        }
        XffMode::Preserve => {}
        XffMode::Remove => {
            parts.headers.remove(XFF);
        }
    }
    parts
        .headers
        .insert(XFP, HeaderValue::from_static(cx.scheme));
    parts.headers.insert(XFPORT, cx.port_value.clone());
}

async fn forward(
    mut req: Request<Incoming>,
    group: Arc<GroupRuntime>,
    cx: &ConnCtx,
    xff: XffMode,
    drop_invalid: bool,
) -> Response<ProxyBody> {
    let l = &cx.listener;
    let settings = group.settings.load_full();
    let sticky = settings.stickiness.clone();
    let preferred = match &sticky {
        Some(Stickiness::LbCookie { .. }) => {
            cookie(req.headers(), LB_COOKIE).and_then(decode_target)
        }
        Some(Stickiness::AppCookie { .. }) => {
            cookie(req.headers(), APP_STICKY_COOKIE).and_then(decode_target)
        }
        _ => None,
    };
    let upgrade = is_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let wants_trailers = req
        .headers()
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    let (mut parts, body) = req.into_parts();
    prepare(&mut parts, cx, xff, drop_invalid, upgrade);
    let bodyless = body.is_end_stream();
    let mut req: Option<Request<UpBody>> = Some(Request::from_parts(parts, Either::Left(body)));
    let mut exclude: Vec<SocketAddr> = Vec::new();
    let mut picked_any = false;
    // Attempts that reached a target (or failed to connect to one), and replays after a
    // stale pooled connection, which never reached the target and are bounded apart.
    let mut attempt = 0;
    let mut stale = 0;
    group.deposit_retry_budget();
    while attempt < MAX_ATTEMPTS {
        let Some(in_flight) = group.pick(&exclude, preferred) else {
            break;
        };
        picked_any = true;
        if attempt > 0 {
            if !group.take_retry() {
                break;
            }
            group.metrics.retries.inc();
        }
        attempt += 1;
        let target = in_flight.target().clone();
        let (mut sender, reused) = match target.pool.checkout(CONNECT_TIMEOUT).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(target = %target.addr, error = %e, "target connection failed");
                target.connect_failed();
                exclude.push(target.addr);
                continue;
            }
        };
        target.connect_succeeded();
        let mut r = req.take().expect("request present for each attempt");
        if sender.is_h2() {
            to_h2(&mut r, wants_trailers);
        }
        // A request can fail after it was written: a kept-alive connection the target
        // closed at the wrong moment, or a target that died mid-request. A bodyless
        // idempotent request can safely go again, to another target (as nginx's
        // `proxy_next_upstream error` does for idempotent methods).
        let backup = (bodyless && idempotent(r.method())).then(|| Replay::of(&r));
        target.metrics.requests.inc();
        let start = Instant::now();
        // The idle timeout is watched per connection (serve_http), which wakes `expired`.
        let sent = tokio::select! {
            biased;
            r = sender.try_send_request(r) => Some(r),
            _ = cx.expired.notified() => None,
        };
        let mut resp = match sent {
            None => return elb_error(StatusCode::GATEWAY_TIMEOUT, &l.metrics),
            Some(Ok(resp)) => resp,
            Some(Err(mut e)) => {
                if let Some(r) = e.take_message() {
                    // Not sent. A pooled connection found closed means the target closed
                    // its idle connections (or died): drop the rest of them and go again
                    // without spending an attempt.
                    req = Some(r);
                    if reused && stale < MAX_STALE_REPLAYS {
                        stale += 1;
                        attempt -= 1;
                        target.pool.clear();
                    } else {
                        target.connect_failed();
                        exclude.push(target.addr);
                    }
                    continue;
                }
                if let Some(b) = backup {
                    if !reused {
                        // A fresh connection failing mid-request: the target is in trouble.
                        target.connect_failed();
                    }
                    exclude.push(target.addr);
                    req = Some(b.into_request());
                    continue;
                }
                tracing::debug!(target = %target.addr, error = %e.error(), "target request failed");
                return elb_error(StatusCode::BAD_GATEWAY, &l.metrics);
            }
        };
        let elapsed = start.elapsed();
        target.observe_latency(elapsed.as_nanos() as f64);
        let status = resp.status();
        target
            .metrics
            .response(status.as_u16(), elapsed.as_secs_f64());

        if status == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return elb_error(StatusCode::BAD_GATEWAY, &l.metrics);
            };
            let target_upgrade = hyper::upgrade::on(&mut resp);
            let (parts, _) = resp.into_parts();
            tokio::spawn(async move {
                let _in_flight = in_flight;
                let _sender = sender;
                if let (Ok(c), Ok(t)) = (client_upgrade.await, target_upgrade.await) {
                    let _ =
                        tokio::io::copy_bidirectional(&mut TokioIo::new(c), &mut TokioIo::new(t))
                            .await;
                }
            });
            return Response::from_parts(parts, ProxyBody::empty());
        }

        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        match &sticky {
            Some(Stickiness::LbCookie { duration }) if preferred != Some(target.addr) => {
                let c = format!(
                    "{LB_COOKIE}={}; Max-Age={}; Path=/",
                    encode_target(target.addr),
                    duration.as_secs()
                );
                if let Ok(v) = HeaderValue::from_str(&c) {
                    parts.headers.append(header::SET_COOKIE, v);
                }
            }
            Some(Stickiness::AppCookie { name, duration }) => {
                let sets_app_cookie = parts
                    .headers
                    .get_all(header::SET_COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.split_once('=').is_some_and(|(k, _)| k.trim() == name));
                if sets_app_cookie {
                    let c = format!(
                        "{APP_STICKY_COOKIE}={}; Max-Age={}; Path=/",
                        encode_target(target.addr),
                        duration.as_secs()
                    );
                    if let Ok(v) = HeaderValue::from_str(&c) {
                        parts.headers.append(header::SET_COOKIE, v);
                    }
                }
            }
            _ => {}
        }
        let guard = ResponseGuard {
            in_flight,
            conn: Some(sender),
        };
        return Response::from_parts(
            parts,
            ProxyBody::upstream(body, guard, l.metrics.processed_bytes.clone()),
        );
    }
    if picked_any {
        elb_error(StatusCode::BAD_GATEWAY, &l.metrics)
    } else {
        elb_error(StatusCode::SERVICE_UNAVAILABLE, &l.metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn target_cookie_round_trips() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(decode_target(&encode_target(a)), Some(a));
        let b: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(decode_target(&encode_target(b)), Some(b));
        assert_eq!(decode_target("zz"), None);
    }

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
