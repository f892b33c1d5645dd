//! The hyper path: every HTTP request the fast path does not serve. HTTP/1.1 after a
//! fast-path fallback, h2c and HTTP/2 over TLS from clients; HTTP/1.1, HTTP/2 and TLS to
//! targets; fixed-response and redirect actions; WebSocket and other upgrades; trailers;
//! streamed bodies of any size; the connection-wide idle timeout of hyper connections.
//!
//! Mesh requests that need it (HTTP/2 from the client or to the tasks, streamed bodies)
//! take this path: a mesh group adds its per-request deadline, its retry after a 503 or
//! a refused stream, and its metrics.
//!
//! It routes with the listener's rules and forwards through the shared request engine
//! ([`crate::attempt`]), stickiness ([`crate::sticky`]) and forwarded headers
//! ([`crate::forwarded`]). A bodyless HTTP/2 request to a plain HTTP/1.1 target group
//! skips hyper's client: [`raw_h1`] speaks HTTP/1.1 on a pooled connection from the
//! request's own task. It does not accept connections ([`crate::listener`] does).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::attempt::{is_idempotent, Attempts, Failure, Verdict};
use crate::body::{ProxyBody, ResponseGuard};
use crate::clock::Clock;
use crate::context::{ConnCtx, MAX_HEADER_BYTES};
use crate::elb_error;
use crate::forwarded::{self, XffMode};
use crate::framing::Guarded;
use crate::group::GroupRuntime;
use crate::mesh::MeshGroup;
use crate::pool::{UpBody, CONNECT_TIMEOUT};
use crate::rules::{source_ip, strip_port, CompiledAction, RequestView, ViewHeaders};
use crate::splice::splice;
use crate::sticky::{self, Affinity, TG_COOKIE};

mod raw_h1;

/// Concurrent streams a client may open on one HTTP/2 connection (ALB: 128).
pub(crate) const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// The largest header list an HTTP/2 request may carry (decoded, as RFC 9113 counts it);
/// CONTINUATION frames beyond it end the stream.
pub(crate) const H2_MAX_HEADER_LIST_SIZE: u32 = MAX_HEADER_BYTES as u32;
/// Streams a client may reset before the server accepted them (rapid reset), beyond
/// which the connection ends with GOAWAY.
pub(crate) const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset for a client's protocol errors before it ends the
/// connection.
pub(crate) const H2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;
/// How often an HTTP/2 connection is pinged, and how long the answer may take.
pub(crate) const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub(crate) const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The hyper server settings every listener serves with. The time a client may take
/// to send a request head is the edge gate's to enforce ([`crate::framing`]), with a 408.
pub(crate) fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES)
        // A client that stops sending still gets the answers it is owed; so do the
        // requests before one the edge gate refused (the gate then reads as ended).
        .half_close(true)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_SIZE)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESET_STREAMS)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// Serves a connection with hyper: HTTP/1.1, h2c and HTTP/2 over TLS.
pub(crate) async fn serve<T>(
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
        inner: Guarded::new(io, shared.clone(), shared.routes.load().header_timeout),
        last: last.clone(),
        clock: shared.clock.clone(),
    };
    let svc_cx = cx.clone();
    // Each request's future is boxed where it is made: hyper moves it (into an HTTP/2
    // stream's task, and that task around the runtime) before it first runs, and a box
    // is a pointer to move where the request's whole state is a kilobyte and more.
    let svc = service_fn(move |req| {
        let cx = svc_cx.clone();
        Box::pin(async move {
            let _active = cx.request_started();
            Ok::<_, Infallible>(handle(req, cx.clone()).await)
        })
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

/// A connection that records when it last moved bytes (clock millis in `last`), for
/// an idle timeout. Also used by mesh TCP listeners ([`crate::stream`]).
pub(crate) struct IdleIo<T> {
    inner: T,
    last: Arc<AtomicU64>,
    clock: Clock,
}

impl<T> IdleIo<T> {
    pub(crate) fn new(inner: T, last: Arc<AtomicU64>, clock: Clock) -> IdleIo<T> {
        IdleIo { inner, last, clock }
    }

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

async fn handle(req: Request<Incoming>, cx: Arc<ConnCtx>) -> Response<ProxyBody> {
    let l = &cx.listener;
    l.metrics.requests.inc();
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
            let loc = rd.location(
                cx.scheme(),
                host,
                l.port,
                req.uri().path(),
                req.uri().query(),
            );
            let mut r = Response::new(ProxyBody::empty());
            *r.status_mut() = rd.status;
            match HeaderValue::from_str(&loc) {
                Ok(v) => {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                Err(_) => return elb_error::response(StatusCode::BAD_REQUEST, &l.metrics),
            }
            r
        }
        CompiledAction::Forward(f) => {
            let tg_cookie = || request_cookie(&req, TG_COOKIE);
            let Some((group, set_tg_cookie)) = sticky::choose_group(f, tg_cookie) else {
                return elb_error::response(StatusCode::SERVICE_UNAVAILABLE, &l.metrics);
            };
            let set_tg_cookie = set_tg_cookie.and_then(|c| HeaderValue::from_str(&c).ok());
            let xff = routes.xff;
            let drop_invalid = routes.drop_invalid_headers;
            drop(routes);
            // Not boxed apart: the request's future is boxed whole before hyper moves it
            // (see `serve`).
            let mut resp = match &group.mesh {
                None => forward(req, &group, &cx, xff, drop_invalid).await,
                Some(mesh) => forward_mesh(req, &group, mesh, &cx, xff, drop_invalid).await,
            };
            if let Some(c) = set_tg_cookie {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
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

/// Prepares the request for a target: origin-form URI, HTTP/1.1, Host, X-Forwarded-*,
/// no hop-by-hop headers.
fn prepare(
    parts: &mut http::request::Parts,
    forwarded_values: &forwarded::ForwardedValues,
    xff: XffMode,
    drop_invalid: bool,
    upgrade: bool,
) {
    if drop_invalid {
        forwarded::remove_invalid_names(&mut parts.headers);
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
    forwarded::strip_hop_by_hop(&mut parts.headers, upgrade);
    forwarded::set_forwarded(&mut parts.headers, xff, forwarded_values);
}

/// The value of cookie `name` in the request.
fn request_cookie<'a, B>(req: &'a Request<B>, name: &str) -> Option<&'a str> {
    sticky::cookie(
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes),
        name,
    )
}

/// Forwards a request to a mesh group: counted for its endpoint, and answered 504 when
/// no response head came back before the group's per-request deadline.
async fn forward_mesh(
    req: Request<Incoming>,
    group: &GroupRuntime,
    mesh: &MeshGroup,
    cx: &ConnCtx,
    xff: XffMode,
    drop_invalid: bool,
) -> Response<ProxyBody> {
    cx.count_mesh_connection(&mesh.metrics);
    if let Some(n) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        mesh.metrics.processed_bytes.inc_by(n);
    }
    let Some(deadline) = mesh.deadline(Instant::now()) else {
        return forward(req, group, cx, xff, drop_invalid).await;
    };
    match tokio::time::timeout_at(deadline, forward(req, group, cx, xff, drop_invalid)).await {
        Ok(resp) => resp,
        Err(_) => {
            mesh.metrics.request_timeouts.inc();
            elb_error::response(StatusCode::GATEWAY_TIMEOUT, &cx.listener.metrics)
        }
    }
}

/// Forwards a request to `group` through the request engine and returns the response
/// to stream back (or the ELB error that ended it).
async fn forward(
    mut req: Request<Incoming>,
    group: &GroupRuntime,
    cx: &ConnCtx,
    xff: XffMode,
    drop_invalid: bool,
) -> Response<ProxyBody> {
    let stickiness = group.settings.load().stickiness.clone();
    let affinity = Affinity::of_request(stickiness, |name| request_cookie(&req, name));
    let upgrade = is_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let wants_trailers = req
        .headers()
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    let from_h2 = req.version() == Version::HTTP_2;
    let (mut parts, body) = req.into_parts();
    if from_h2 && is_h1(group) {
        // The target's head is written straight from the client's request (no header
        // map to rewrite), a small body of known length behind it.
        if body.is_end_stream() {
            return raw_h1::forward(&parts, None, group, cx, &affinity, xff, drop_invalid).await;
        }
        if let Some(len) = buffered_length(&parts.headers) {
            let body = Some((body, len));
            return raw_h1::forward(&parts, body, group, cx, &affinity, xff, drop_invalid).await;
        }
    }
    prepare(&mut parts, &cx.forwarded, xff, drop_invalid, upgrade);
    // Boxed apart: hyper's client makes this state larger than the direct route's, and
    // it would otherwise be moved whole into every request's box (a new connection's
    // state is boxed apart again, in `Pool::checkout`).
    Box::pin(forward_through_client(
        parts,
        body,
        group,
        cx,
        affinity,
        client_upgrade,
        wants_trailers,
    ))
    .await
}

/// [`forward`] for what the direct route does not take: through hyper's client, over a
/// pooled connection of the target's protocol.
async fn forward_through_client(
    parts: http::request::Parts,
    body: Incoming,
    group: &GroupRuntime,
    cx: &ConnCtx,
    affinity: Affinity,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    wants_trailers: bool,
) -> Response<ProxyBody> {
    let l = &cx.listener;
    // A request can fail after it was written: a kept-alive connection the target closed
    // at the wrong moment, or a target that died mid-request. A bodyless idempotent
    // request can safely go again (as nginx's `proxy_next_upstream error` does for
    // idempotent methods); one whose body streamed out cannot.
    let replayable = body.is_end_stream() && is_idempotent(&parts.method);
    let mut req: Option<Request<UpBody>> = Some(Request::from_parts(parts, Either::Left(body)));
    let mut attempts = Attempts::start(group, affinity.preferred, replayable);
    let status = loop {
        let in_flight = match attempts.next() {
            Ok(f) => f,
            Err(status) => break status,
        };
        let target = in_flight.target().clone();
        let (mut sender, reused) = match target.pool.checkout(CONNECT_TIMEOUT, cx.peer.ip()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(target = %target.addr, error = %e, "target connection failed");
                match attempts.failed(&target, false, Failure::Connect) {
                    Verdict::Retry => continue,
                    Verdict::Answer(status) => break status,
                }
            }
        };
        attempts.connected(&target);
        let mut r = req.take().expect("request present for each attempt");
        if sender.is_h2() {
            to_h2(&mut r, wants_trailers);
        }
        let backup = attempts.replayable().then(|| Replay::of(&r));
        let start = Instant::now();
        // The idle timeout is watched per connection (`serve`), which wakes `expired`.
        let sent = tokio::select! {
            biased;
            r = sender.try_send_request(r) => Ok(r),
            _ = cx.expired.notified() => Err(Failure::Timeout),
        };
        let failure = match sent {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                attempts.responded(&target, status, start);
                if status == 503
                    && attempts.is_mesh()
                    && attempts.failed(&target, reused, Failure::Unavailable) == Verdict::Retry
                {
                    // Tried again elsewhere (the request is replayable, so kept); the
                    // 503 and its connection are dropped.
                    req = backup.map(Replay::into_request);
                    continue;
                }
                let mesh_bytes = group
                    .mesh
                    .as_ref()
                    .map(|m| m.metrics.processed_bytes.clone());
                return respond(
                    resp,
                    in_flight,
                    sender,
                    client_upgrade,
                    &affinity,
                    cx,
                    mesh_bytes,
                );
            }
            Ok(Err(mut e)) => match e.take_message() {
                Some(r) => {
                    // Not sent: the request is handed back.
                    req = Some(r);
                    Failure::Unsent
                }
                None => {
                    req = backup.map(Replay::into_request);
                    tracing::debug!(target = %target.addr, error = %e.error(), "target request failed");
                    if attempts.is_mesh() && is_refused_stream(e.error()) {
                        Failure::Refused
                    } else {
                        sent_failure(e.error())
                    }
                }
            },
            Err(timeout) => timeout,
        };
        match attempts.failed(&target, reused, failure) {
            Verdict::Retry => {}
            Verdict::Answer(status) => break status,
        }
    };
    elb_error::response(status, &l.metrics)
}

/// The Content-Length of a request body small enough to read whole before the request
/// goes out ([`crate::fast_h1::MAX_BUFFERED_BODY`], as the fast path reads one).
fn buffered_length(headers: &http::HeaderMap) -> Option<usize> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let len = crate::h1_codec::parse_len(values.next()?.as_bytes())?;
    (values.next().is_none() && len <= crate::fast_h1::MAX_BUFFERED_BODY).then_some(len)
}

/// Whether `group`'s targets speak HTTP/1.1 (plain, over TLS for an HTTPS target group,
/// or through a mesh hop's TLS), which the direct route serves.
fn is_h1(group: &GroupRuntime) -> bool {
    !group.settings.load().h2
}

/// What a request that went out and got no response ran into. The client's body breaking
/// off (a user error caused by the client connection's own error) is the client's
/// failure; anything else counts as the target closing without a usable response, so a
/// replayable request goes again.
fn sent_failure(e: &hyper::Error) -> Failure {
    use std::error::Error as _;
    if e.is_user() && e.source().is_some_and(|c| c.is::<hyper::Error>()) {
        Failure::ClientGone
    } else {
        Failure::NoResponse
    }
}

/// Whether an HTTP/2 target reset the stream with REFUSED_STREAM: it did not process the
/// request (RFC 9113 §8.7), so the request may go again.
fn is_refused_stream(e: &hyper::Error) -> bool {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = s.source();
    }
    false
}

/// Turns a target's response into the client's: an upgrade is spliced through, anything
/// else streams back with hop-by-hop headers removed and stickiness cookies added, its
/// bytes counted for the listener and, for a mesh group, in `mesh_bytes`.
fn respond(
    mut resp: Response<Incoming>,
    in_flight: crate::target::InFlight,
    sender: crate::pool::UpSender,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    affinity: &Affinity,
    cx: &ConnCtx,
    mesh_bytes: Option<prometheus::IntCounter>,
) -> Response<ProxyBody> {
    let l = &cx.listener;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return elb_error::response(StatusCode::BAD_GATEWAY, &l.metrics);
        };
        let target_upgrade = hyper::upgrade::on(&mut resp);
        let (parts, _) = resp.into_parts();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let _sender = sender;
            if let (Ok(c), Ok(t)) = (client_upgrade.await, target_upgrade.await) {
                let _ = splice(&mut TokioIo::new(c), &mut TokioIo::new(t)).await;
            }
        });
        return Response::from_parts(parts, ProxyBody::empty());
    }

    let (mut parts, body) = resp.into_parts();
    forwarded::strip_hop_by_hop(&mut parts.headers, false);
    let target = in_flight.target().addr;
    let sets_app_cookie = affinity.app_cookie().is_some_and(|name| {
        parts
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| sticky::sets_cookie(v.as_bytes(), name))
    });
    if let Some(v) = affinity
        .response_cookie(target, sets_app_cookie)
        .and_then(|c| c.header_value())
    {
        parts.headers.append(header::SET_COOKIE, v);
    }
    let guard = ResponseGuard {
        in_flight,
        conn: Some(sender),
    };
    Response::from_parts(
        parts,
        ProxyBody::upstream(body, guard, l.metrics.processed_bytes.clone(), mesh_bytes),
    )
}
