//! The HTTP/1.1 fast path: one task per client connection that parses requests itself,
//! writes them on a pooled plain connection to the target and copies the response back,
//! with no per-request allocation of header maps, no hand-off to a separate connection
//! task and one write per direction for small messages.
//!
//! It serves the common case only and hands anything else to hyper: when a request is
//! not plain HTTP/1.1 with its whole body in hand (HTTP/1.0, `Transfer-Encoding`,
//! `Expect`, `Upgrade`, a `Connection` header naming other headers, an absolute-form
//! target, an h2c preface, a parse error, a head over the size limit, a body over
//! [`MAX_BUFFERED_BODY`]), or when its action is not a forward to an HTTP/1.1 target
//! group over plain TCP, [`serve`] returns the connection with every byte it has read and
//! not answered, and hyper serves the rest of the connection from that request on. So
//! every error answer for malformed input (400, 431) stays hyper's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::clock::Clock;
use crate::group::{GroupRuntime, Stickiness};
use crate::http::{
    choose_group, decode_target, encode_target, idempotent, strip_port, ConnCtx, XffMode,
    APP_STICKY_COOKIE, CONNECT_TIMEOUT, HEADER_READ_TIMEOUT, LB_COOKIE, MAX_ATTEMPTS,
    MAX_HEADER_BYTES, MAX_STALE_REPLAYS, TG_COOKIE,
};
use crate::metrics::ListenerMetrics;
use crate::rules::{source_ip, CompiledAction, RequestView, ViewHeaders};
use berth_model::elb::Protocol;

/// Request headers the fast path parses; a request with more goes to hyper.
const MAX_REQUEST_HEADERS: usize = 64;
/// Response headers accepted from a target.
const MAX_RESPONSE_HEADERS: usize = 128;
/// Requests whose body is larger than this go to hyper, which streams them.
pub(crate) const MAX_BUFFERED_BODY: usize = 64 * 1024;
/// Free space below which a read buffer grows before the next read.
const MIN_READ_SPACE: usize = 4096;
const READ_CHUNK: usize = 16 * 1024;

/// How a connection left the fast path.
pub(crate) enum Exit<T> {
    /// The connection is finished (closed by either side, idle, or the listener stopped).
    Closed,
    /// Hyper serves the rest: the connection and the bytes read from it not yet served,
    /// starting with the request the fast path declined.
    Fallback(T, BytesMut),
}

/// Serves HTTP/1.1 requests on `io` until the connection ends or a request needs hyper.
pub(crate) async fn serve<T>(
    io: T,
    cx: &ConnCtx,
    stop: &mut watch::Receiver<bool>,
    idle_timeout: Duration,
) -> Exit<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let clock = cx.listener.clock.clone();
    let mut c = Conn {
        io,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(1024),
        up: BytesMut::with_capacity(READ_CHUNK),
        idle: Idle {
            sleep: Box::pin(tokio::time::sleep(idle_timeout)),
            last: clock.now_ms(),
            idle_ms: idle_timeout.as_millis() as u64,
            clock,
        },
    };
    let head_timeout_ms = HEADER_READ_TIMEOUT.as_millis() as u64;
    loop {
        // When the first bytes of the request being read arrived.
        let mut head_start: Option<u64> = None;
        let plan = loop {
            if !c.buf.is_empty() {
                match prepare(&c.buf, cx, &mut c.out) {
                    Prep::Forward(p) => break p,
                    Prep::Fallback => return Exit::Fallback(c.io, c.buf),
                    Prep::More => {}
                }
                if c.buf.len() >= MAX_HEADER_BYTES + MAX_BUFFERED_BODY {
                    return Exit::Fallback(c.io, c.buf);
                }
            }
            let between_requests = c.buf.is_empty();
            if between_requests && *stop.borrow() {
                return Exit::Closed;
            }
            let r = if between_requests {
                c.read_client_or_stop(stop).await
            } else {
                c.read_client().await
            };
            match r {
                Wait::Done(Ok(n)) if n > 0 => {
                    // A client trickling its head byte by byte gets the header read
                    // timeout, however often it sends.
                    let now = c.idle.last;
                    if now - *head_start.get_or_insert(now) > head_timeout_ms {
                        return Exit::Closed;
                    }
                }
                // End of stream, an error, the idle timeout or the listener stopping:
                // nothing is owed to the client.
                _ => return Exit::Closed,
            }
        };
        c.buf.advance(plan.len);
        let keep_open = c.forward(plan, cx, stop).await;
        if !keep_open {
            let _ = c.io.shutdown().await;
            return Exit::Closed;
        }
    }
}

/// A request ready to forward; its upstream form is in the connection's `out` buffer.
struct Plan {
    /// Bytes of the client buffer the request takes (head and body).
    len: usize,
    group: Arc<GroupRuntime>,
    preferred: Option<SocketAddr>,
    stickiness: Option<Stickiness>,
    /// `AWSALBTG` to set, after a weighted choice with target-group stickiness.
    tg_cookie: Option<String>,
    head: bool,
    idempotent: bool,
    /// The client asked to close after this response.
    close: bool,
}

enum Prep {
    More,
    Fallback,
    Forward(Plan),
}

/// Parses the request at the start of `buf` and, when it is whole and the fast path
/// serves it, routes it and writes its upstream form into `out`.
fn prepare(buf: &[u8], cx: &ConnCtx, out: &mut Vec<u8>) -> Prep {
    if buf.starts_with(b"PRI ") {
        // The HTTP/2 connection preface (h2c with prior knowledge).
        return Prep::Fallback;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEADER_BYTES {
                Prep::Fallback
            } else {
                Prep::More
            };
        }
        Err(_) => return Prep::Fallback,
    };
    if head_len > MAX_HEADER_BYTES || req.version != Some(1) {
        return Prep::Fallback;
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Prep::Fallback;
    };
    if !target.starts_with('/') {
        return Prep::Fallback;
    }
    let headers: &[httparse::Header<'_>] = req.headers;

    // Framing and hop-by-hop headers: anything unusual goes to hyper.
    let mut body_len: Option<usize> = None;
    let mut host: Option<&str> = None;
    let mut close = false;
    for h in headers {
        let n = h.name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            if body_len.is_some() {
                return Prep::Fallback;
            }
            match parse_len(h.value) {
                Some(v) if v <= MAX_BUFFERED_BODY => body_len = Some(v),
                _ => return Prep::Fallback,
            }
        } else if n.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Prep::Fallback;
            }
            match std::str::from_utf8(h.value) {
                Ok(v) => host = Some(v),
                Err(_) => return Prep::Fallback,
            }
        } else if n.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !t.eq_ignore_ascii_case(b"keep-alive") && !t.is_empty() {
                    return Prep::Fallback;
                }
            }
        } else if n.eq_ignore_ascii_case(b"transfer-encoding")
            || n.eq_ignore_ascii_case(b"expect")
            || n.eq_ignore_ascii_case(b"upgrade")
        {
            return Prep::Fallback;
        }
    }
    let Some(host_full) = host else {
        return Prep::Fallback;
    };
    let body_len = body_len.unwrap_or(0);
    let len = head_len + body_len;
    if buf.len() < len {
        return Prep::More;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Prep::Fallback;
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };

    let l = &cx.listener;
    let routes = l.routes.load();
    let host = strip_port(host_full);
    let view = RequestView {
        host,
        path,
        query,
        method: &method,
        headers: ViewHeaders::Raw(headers),
        source: source_ip(cx.peer),
    };
    let (action, evaluated) = routes.rules.select(&view);
    let CompiledAction::Forward(f) = action else {
        return Prep::Fallback;
    };
    let Some((group, tg_cookie)) = choose_group(f, || raw_cookie(headers, TG_COOKIE)) else {
        return Prep::Fallback;
    };
    let settings = group.settings.load();
    if settings.h2 || settings.protocol == Protocol::Https {
        return Prep::Fallback;
    }
    let stickiness = settings.stickiness.clone();
    drop(settings);

    // From here on the fast path serves the request.
    l.metrics.requests.inc();
    if evaluated > 0 {
        l.metrics.rule_evaluations.inc_by(evaluated as u64);
    }
    if body_len > 0 {
        l.metrics.processed_bytes.inc_by(body_len as u64);
    }
    let preferred = match &stickiness {
        Some(Stickiness::LbCookie { .. }) => raw_cookie(headers, LB_COOKIE).and_then(decode_target),
        Some(Stickiness::AppCookie { .. }) => {
            raw_cookie(headers, APP_STICKY_COOKIE).and_then(decode_target)
        }
        _ => None,
    };

    // The request as the target gets it.
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let xff = routes.xff;
    let mut prev_xff: Option<&[u8]> = None;
    for h in headers {
        let n = h.name.as_bytes();
        if skip_request_header(n) {
            continue;
        }
        if n.eq_ignore_ascii_case(b"x-forwarded-for") {
            match xff {
                XffMode::Preserve => {}
                XffMode::Append => {
                    if prev_xff.is_none() {
                        prev_xff = Some(h.value);
                    }
                    continue;
                }
                XffMode::Remove => continue,
            }
        }
        if routes.drop_invalid_headers && !n.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        {
            continue;
        }
        put_header(out, n, h.value);
    }
    if xff == XffMode::Append {
        out.extend_from_slice(b"x-forwarded-for: ");
        if let Some(p) = prev_xff {
            out.extend_from_slice(p);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(cx.client_ip.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-proto: ");
    out.extend_from_slice(cx.scheme.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-port: ");
    out.extend_from_slice(cx.port_value.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&buf[head_len..len]);

    Prep::Forward(Plan {
        len,
        group,
        preferred,
        stickiness,
        tg_cookie,
        head: method == Method::HEAD,
        idempotent: idempotent(&method),
        close,
    })
}

/// A Content-Length value: digits only.
fn parse_len(v: &[u8]) -> Option<usize> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')),
    )
}

/// Headers the proxy sets itself or that belong to one hop.
fn skip_request_header(n: &[u8]) -> bool {
    match n.len() {
        2 => n.eq_ignore_ascii_case(b"te"),
        7 => n.eq_ignore_ascii_case(b"trailer"),
        10 => n.eq_ignore_ascii_case(b"connection") || n.eq_ignore_ascii_case(b"keep-alive"),
        16 => {
            n.eq_ignore_ascii_case(b"proxy-connection")
                || n.eq_ignore_ascii_case(b"x-forwarded-port")
        }
        17 => n.eq_ignore_ascii_case(b"x-forwarded-proto"),
        _ => false,
    }
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The value of cookie `name` in the request's Cookie headers.
fn raw_cookie<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The connection-wide idle timeout: one timer, moved only when it fires early.
struct Idle {
    sleep: Pin<Box<Sleep>>,
    /// When bytes last moved (clock millis).
    last: u64,
    idle_ms: u64,
    clock: Clock,
}

impl Idle {
    fn touch(&mut self) {
        self.last = self.clock.now_ms();
    }
}

/// Resolves once nothing moved on the connection for the idle timeout.
struct Expired<'a>(&'a mut Idle);

impl Future for Expired<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let idle = &mut *self.get_mut().0;
        loop {
            if idle.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let quiet = idle.clock.now_ms().saturating_sub(idle.last);
            if quiet >= idle.idle_ms {
                return Poll::Ready(());
            }
            let next = Instant::now() + Duration::from_millis(idle.idle_ms - quiet);
            idle.sleep.as_mut().reset(next);
        }
    }
}

enum Wait<R> {
    Done(R),
    Idle,
    Stop,
}

struct Conn<T> {
    io: T,
    /// Bytes read from the client and not yet served.
    buf: BytesMut,
    /// The message being written: the upstream request, then the client response.
    out: Vec<u8>,
    /// Bytes read from the target.
    up: BytesMut,
    idle: Idle,
}

/// The framing of a target's response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Ends when the target closes the connection.
    Close,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    async fn read_client(&mut self) -> Wait<io::Result<usize>> {
        match read_idle(&mut self.io, &mut self.buf, &mut self.idle).await {
            Some(r) => Wait::Done(r),
            None => Wait::Idle,
        }
    }

    async fn read_client_or_stop(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Wait<io::Result<usize>> {
        reserve(&mut self.buf);
        let r = tokio::select! {
            biased;
            r = self.io.read_buf(&mut self.buf) => Wait::Done(r),
            _ = Expired(&mut self.idle) => Wait::Idle,
            _ = stop.changed() => Wait::Stop,
        };
        if matches!(r, Wait::Done(Ok(n)) if n > 0) {
            self.idle.touch();
        }
        r
    }

    /// Writes `out` to the client.
    async fn write_client(&mut self) -> Result<(), ()> {
        write_idle(&mut self.io, &self.out, &mut self.idle).await
    }

    /// Forwards the planned request and writes the response. Returns whether the client
    /// connection stays open.
    async fn forward(&mut self, plan: Plan, cx: &ConnCtx, stop: &watch::Receiver<bool>) -> bool {
        let l = &cx.listener;
        let group = &plan.group;
        let mut exclude: Vec<SocketAddr> = Vec::new();
        let mut picked_any = false;
        let mut attempt = 0;
        let mut stale = 0;
        group.deposit_retry_budget();
        let failure = loop {
            if attempt >= MAX_ATTEMPTS {
                break StatusCode::BAD_GATEWAY;
            }
            let Some(in_flight) = group.pick(&exclude, plan.preferred) else {
                break if picked_any {
                    StatusCode::BAD_GATEWAY
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
            };
            picked_any = true;
            if attempt > 0 {
                if !group.take_retry() {
                    break StatusCode::BAD_GATEWAY;
                }
                group.metrics.retries.inc();
            }
            attempt += 1;
            let target = in_flight.target();
            let (mut up, reused) = match target.pool.checkout_raw() {
                Some(s) => (s, true),
                None => match target.pool.connect_raw(CONNECT_TIMEOUT).await {
                    Ok(s) => (s, false),
                    Err(e) => {
                        tracing::debug!(target = %target.addr, error = %e, "target connection failed");
                        target.connect_failed();
                        exclude.push(target.addr);
                        continue;
                    }
                },
            };
            target.connect_succeeded();
            target.metrics.requests.inc();
            let start = Instant::now();
            match self.exchange_head(&mut up).await {
                Ok(head) => {
                    let elapsed = start.elapsed();
                    target.observe_latency(elapsed.as_nanos() as f64);
                    target.metrics.response(head.status, elapsed.as_secs_f64());
                    return self
                        .respond(head, up, &plan, in_flight, l, stop)
                        .await
                        .unwrap_or(false);
                }
                Err(Exchange::Unsent) if reused && stale < MAX_STALE_REPLAYS => {
                    // A pooled connection the target had closed: the request never
                    // reached it. Go again without spending an attempt.
                    stale += 1;
                    attempt -= 1;
                    target.pool.clear();
                }
                Err(Exchange::Unsent) => {
                    target.connect_failed();
                    exclude.push(target.addr);
                }
                Err(Exchange::NoResponse) if plan.idempotent => {
                    if reused && stale < MAX_STALE_REPLAYS {
                        // Most likely the keep-alive race: the target closed the
                        // connection as the request went out. Replay it.
                        stale += 1;
                        attempt -= 1;
                        target.pool.clear();
                    } else {
                        if !reused {
                            target.connect_failed();
                        }
                        exclude.push(target.addr);
                    }
                }
                Err(Exchange::NoResponse | Exchange::Bad) => {
                    tracing::debug!(target = %target.addr, "target request failed");
                    break StatusCode::BAD_GATEWAY;
                }
                Err(Exchange::Idle) => break StatusCode::GATEWAY_TIMEOUT,
            }
        };
        // Nothing was written to the client yet: it gets an error response.
        let close = plan.close || *stop.borrow();
        elb_error(&mut self.out, failure, &l.metrics, close);
        self.write_client().await.is_ok() && !close
    }

    /// Writes the request in `out` to the target and reads the response head into `up`,
    /// skipping interim (1xx) responses.
    async fn exchange_head(&mut self, up: &mut TcpStream) -> Result<RespHead, Exchange> {
        let w = tokio::select! {
            biased;
            r = up.write_all(&self.out) => Some(r),
            _ = Expired(&mut self.idle) => None,
        };
        match w {
            None => return Err(Exchange::Idle),
            Some(Err(_)) => return Err(Exchange::Unsent),
            Some(Ok(())) => {}
        }
        self.up.clear();
        loop {
            match read_idle(up, &mut self.up, &mut self.idle).await {
                None => return Err(Exchange::Idle),
                Some(Ok(0)) | Some(Err(_)) => {
                    return Err(if self.up.is_empty() {
                        Exchange::NoResponse
                    } else {
                        Exchange::Bad
                    });
                }
                Some(Ok(_)) => {}
            }
            match parse_response(&self.up) {
                Parsed::More if self.up.len() > MAX_HEADER_BYTES => return Err(Exchange::Bad),
                Parsed::More => {}
                Parsed::Bad => return Err(Exchange::Bad),
                Parsed::Interim(n) => {
                    self.up.advance(n);
                    // A whole final head may already be here.
                    if let Parsed::Head(h) = parse_response(&self.up) {
                        return Ok(h);
                    }
                }
                Parsed::Head(h) => return Ok(h),
            }
        }
    }

    /// Writes the response whose head is at the start of `up` and streams its body.
    /// `Err(())` when the connection must close.
    async fn respond(
        &mut self,
        head: RespHead,
        mut up: TcpStream,
        plan: &Plan,
        in_flight: crate::target::InFlight,
        l: &crate::http::ListenerShared,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, ()> {
        let target = in_flight.target();
        let framing = if plan.head
            || head.status == 204
            || head.status == 304
            || (100..200).contains(&head.status)
        {
            Framing::Empty
        } else {
            head.framing
        };
        let close = plan.close || framing == Framing::Close || *stop.borrow();
        self.out.clear();
        {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            if !matches!(resp.parse(&self.up), Ok(httparse::Status::Complete(_))) {
                return Err(());
            }
            write_status(&mut self.out, head.status, resp.reason.unwrap_or(""));
            let named = connection_tokens(resp.headers);
            let mut sets_app_cookie = false;
            for h in resp.headers.iter() {
                let n = h.name.as_bytes();
                if skip_response_header(n) || named.iter().any(|t| t.eq_ignore_ascii_case(n)) {
                    continue;
                }
                if let Some(Stickiness::AppCookie { name, .. }) = &plan.stickiness {
                    if n.eq_ignore_ascii_case(b"set-cookie") {
                        sets_app_cookie |= h
                            .value
                            .split(|&b| b == b'=')
                            .next()
                            .is_some_and(|k| k.trim_ascii() == name.as_bytes());
                    }
                }
                put_header(&mut self.out, n, h.value);
            }
            match &plan.stickiness {
                Some(Stickiness::LbCookie { duration }) if plan.preferred != Some(target.addr) => {
                    set_cookie(
                        &mut self.out,
                        LB_COOKIE,
                        &encode_target(target.addr),
                        *duration,
                    );
                }
                Some(Stickiness::AppCookie { duration, .. }) if sets_app_cookie => {
                    set_cookie(
                        &mut self.out,
                        APP_STICKY_COOKIE,
                        &encode_target(target.addr),
                        *duration,
                    );
                }
                _ => {}
            }
            if let Some(c) = &plan.tg_cookie {
                self.out.extend_from_slice(b"set-cookie: ");
                self.out.extend_from_slice(c.as_bytes());
                self.out.extend_from_slice(b"\r\n");
            }
            if close {
                self.out.extend_from_slice(b"connection: close\r\n");
            }
            self.out.extend_from_slice(b"\r\n");
        }
        self.up.advance(head.len);

        // The body: what is already here goes out with the head.
        let mut reusable = head.keep_alive;
        let mut sent: u64 = 0;
        let mut chunks = ChunkedEnd::default();
        let mut remaining = match framing {
            Framing::Empty => 0,
            Framing::Length(n) => n,
            Framing::Chunked | Framing::Close => u64::MAX,
        };
        loop {
            let take = match framing {
                Framing::Empty => 0,
                Framing::Length(_) => (self.up.len() as u64).min(remaining) as usize,
                Framing::Chunked => match chunks.feed(&self.up) {
                    Ok(Some(n)) => {
                        remaining = 0;
                        n
                    }
                    Ok(None) => self.up.len(),
                    Err(()) => {
                        reusable = false;
                        remaining = 0;
                        self.up.len()
                    }
                },
                Framing::Close => self.up.len(),
            };
            if let Framing::Length(_) = framing {
                remaining -= take as u64;
            }
            if self.out.is_empty() {
                // The head is out: body bytes go straight from the target's buffer.
                if take > 0 {
                    write_idle(&mut self.io, &self.up[..take], &mut self.idle).await?;
                }
            } else {
                // The head and the first body bytes in one write.
                self.out.extend_from_slice(&self.up[..take]);
                self.write_client().await?;
                self.out.clear();
            }
            self.up.advance(take);
            sent += take as u64;
            if remaining == 0 {
                break;
            }
            match read_idle(&mut up, &mut self.up, &mut self.idle).await {
                Some(Ok(n)) if n > 0 => {}
                Some(Ok(_)) if framing == Framing::Close => break,
                // The target went away mid-body, or nothing moved for the idle timeout.
                _ => return Err(()),
            }
        }
        if sent > 0 {
            l.metrics.processed_bytes.inc_by(sent);
        }
        if reusable && framing != Framing::Close && self.up.is_empty() {
            target.pool.checkin_raw(up);
        }
        drop(in_flight);
        Ok(!close)
    }
}

enum Exchange {
    /// The request could not be written: it never reached the target.
    Unsent,
    /// The target closed the connection without answering.
    NoResponse,
    /// The target's answer is not HTTP/1.1 the proxy can pass on.
    Bad,
    /// Nothing moved for the idle timeout.
    Idle,
}

struct RespHead {
    /// Bytes of the head.
    len: usize,
    status: u16,
    framing: Framing,
    /// The target keeps the connection open after this response.
    keep_alive: bool,
}

enum Parsed {
    More,
    Bad,
    /// An interim (1xx) response of this many bytes, dropped.
    Interim(usize),
    Head(RespHead),
}

fn parse_response(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::More,
        Err(_) => return Parsed::Bad,
    };
    let Some(status) = resp.code else {
        return Parsed::Bad;
    };
    if status == 101 {
        // Nothing the fast path sends asks for an upgrade.
        return Parsed::Bad;
    }
    if (100..200).contains(&status) {
        return Parsed::Interim(len);
    }
    let mut keep_alive = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in resp.headers.iter() {
        let n = h.name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            let Some(v) = parse_len(h.value) else {
                return Parsed::Bad;
            };
            if length.is_some_and(|l| l != v as u64) {
                return Parsed::Bad;
            }
            length = Some(v as u64);
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if n.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && resp.version == Some(0) {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    };
    Parsed::Head(RespHead {
        len,
        status,
        framing,
        keep_alive,
    })
}

/// Header names listed in a message's Connection header(s), besides close/keep-alive.
fn connection_tokens<'a>(headers: &[httparse::Header<'a>]) -> Vec<&'a [u8]> {
    let mut named = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if !t.is_empty()
                    && !t.eq_ignore_ascii_case(b"close")
                    && !t.eq_ignore_ascii_case(b"keep-alive")
                {
                    named.push(t);
                }
            }
        }
    }
    named
}

/// Hop-by-hop response headers. Transfer-Encoding stays: the body passes through as the
/// target framed it.
fn skip_response_header(n: &[u8]) -> bool {
    match n.len() {
        2 => n.eq_ignore_ascii_case(b"te"),
        7 => n.eq_ignore_ascii_case(b"trailer") || n.eq_ignore_ascii_case(b"upgrade"),
        10 => n.eq_ignore_ascii_case(b"connection") || n.eq_ignore_ascii_case(b"keep-alive"),
        16 => n.eq_ignore_ascii_case(b"proxy-connection"),
        _ => false,
    }
}

fn write_status(out: &mut Vec<u8>, status: u16, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(status).as_bytes());
    out.push(b' ');
    let reason = if reason.is_empty() {
        StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    } else {
        reason
    };
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn set_cookie(out: &mut Vec<u8>, name: &str, value: &str, duration: Duration) {
    out.extend_from_slice(b"set-cookie: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"; Max-Age=");
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(duration.as_secs()).as_bytes());
    out.extend_from_slice(b"; Path=/\r\n");
}

/// An error response generated by the load balancer, in ALB's format (as
/// [`crate::http::elb_error`] writes it for hyper).
fn elb_error(out: &mut Vec<u8>, status: StatusCode, m: &ListenerMetrics, close: bool) {
    m.elb_response(status.as_u16());
    let body = crate::http::elb_error_body(status);
    out.clear();
    write_status(out, status.as_u16(), "");
    out.extend_from_slice(b"content-type: text/html\r\nserver: berth\r\ncontent-length: ");
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// Reads more bytes into `buf`, unless nothing moves for the idle timeout (`None`).
async fn read_idle<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    idle: &mut Idle,
) -> Option<io::Result<usize>> {
    reserve(buf);
    let r = tokio::select! {
        biased;
        r = io.read_buf(buf) => Some(r),
        _ = Expired(idle) => None,
    };
    if matches!(r, Some(Ok(n)) if n > 0) {
        idle.touch();
    }
    r
}

/// Writes all of `data` and flushes it (a TLS stream may hold records back until then),
/// unless nothing moves for the idle timeout.
async fn write_idle<T: AsyncWrite + Unpin>(
    io: &mut T,
    data: &[u8],
    idle: &mut Idle,
) -> Result<(), ()> {
    let r = tokio::select! {
        biased;
        r = async {
            io.write_all(data).await?;
            io.flush().await
        } => r.map_err(|_| ()),
        _ = Expired(idle) => Err(()),
    };
    idle.touch();
    r
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_READ_SPACE {
        buf.reserve(READ_CHUNK);
    }
}

/// Follows a chunked body to find where it ends (after the last chunk and trailers).
#[derive(Default)]
struct ChunkedEnd {
    state: ChunkState,
}

#[derive(Default, Clone, Copy)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    SizeDigits(u64),
    /// After the size: an extension, until the line ends.
    Ext(u64),
    SizeLf(u64),
    /// Skipping chunk data.
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    TrailerLineStart,
    TrailerLine,
    TrailerLf {
        empty: bool,
    },
}

impl ChunkedEnd {
    /// Follows `bytes`, the next bytes of the body. `Ok(Some(n))` when the body ends
    /// after `n` of them; `Err` for a malformed body.
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        use ChunkState::*;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                Size => match hex(b) {
                    Some(d) => SizeDigits(d),
                    None => return Err(()),
                },
                SizeDigits(n) => match (hex(b), b) {
                    (Some(d), _) if n <= u64::MAX >> 4 => SizeDigits(n * 16 + d),
                    (Some(_), _) => return Err(()),
                    (None, b'\r') => SizeLf(n),
                    (None, b';' | b' ' | b'\t') => Ext(n),
                    _ => return Err(()),
                },
                Ext(n) => match b {
                    b'\r' => SizeLf(n),
                    b'\n' => return Err(()),
                    _ => Ext(n),
                },
                SizeLf(n) => match (b, n) {
                    (b'\n', 0) => TrailerLineStart,
                    (b'\n', n) => Data(n),
                    _ => return Err(()),
                },
                Data(n) => {
                    let k = ((bytes.len() - i) as u64).min(n);
                    i += k as usize;
                    self.state = if k == n { DataCr } else { Data(n - k) };
                    continue;
                }
                DataCr => match b {
                    b'\r' => DataLf,
                    _ => return Err(()),
                },
                DataLf => match b {
                    b'\n' => Size,
                    _ => return Err(()),
                },
                TrailerLineStart => match b {
                    b'\r' => TrailerLf { empty: true },
                    _ => TrailerLine,
                },
                TrailerLine => match b {
                    b'\r' => TrailerLf { empty: false },
                    _ => TrailerLine,
                },
                TrailerLf { empty } => match b {
                    b'\n' if empty => return Ok(Some(i + 1)),
                    b'\n' => TrailerLineStart,
                    _ => return Err(()),
                },
            };
            i += 1;
        }
        Ok(None)
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// A connection whose first bytes were already read: they are read again first.
pub(crate) struct Prefixed<T> {
    prefix: BytesMut,
    inner: T,
}

impl<T> Prefixed<T> {
    pub(crate) fn new(prefix: BytesMut, inner: T) -> Prefixed<T> {
        Prefixed { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.prefix.is_empty() {
            let n = me.prefix.len().min(buf.remaining());
            buf.put_slice(&me.prefix[..n]);
            me.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of(chunks: &[&[u8]]) -> Result<Option<usize>, ()> {
        let mut c = ChunkedEnd::default();
        let mut total = 0;
        for part in chunks {
            if let Some(n) = c.feed(part)? {
                return Ok(Some(total + n));
            }
            total += part.len();
        }
        Ok(None)
    }

    #[test]
    fn chunked_end_is_found_across_reads() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        assert_eq!(end_of(&[body]), Ok(Some(body.len() - 4)));
        for cut in 1..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(end_of(&[a, b]), Ok(Some(body.len() - 4)), "cut at {cut}");
        }
        assert_eq!(end_of(&[b"0\r\n\r\n"]), Ok(Some(5)));
        assert_eq!(end_of(&[b"5\r\nhel"]), Ok(None));
    }

    #[test]
    fn malformed_chunked_bodies_are_refused() {
        assert_eq!(end_of(&[b"zz\r\n"]), Err(()));
        assert_eq!(end_of(&[b"5\r\nhelloXX"]), Err(()));
        assert_eq!(end_of(&[b"5\n"]), Err(()));
        assert_eq!(end_of(&[b"fffffffffffffffff\r\n"]), Err(()));
    }

    #[test]
    fn response_framing() {
        let h = |s: &[u8]| match parse_response(s) {
            Parsed::Head(h) => Some((h.status, h.framing, h.keep_alive)),
            _ => None,
        };
        assert_eq!(
            h(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            Some((200, Framing::Length(5), true))
        );
        assert_eq!(
            h(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Some((200, Framing::Chunked, true))
        );
        assert_eq!(
            h(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"),
            Some((200, Framing::Close, false))
        );
        assert_eq!(
            h(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Some((200, Framing::Length(0), false))
        );
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Parsed::Bad
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
            Parsed::Interim(25)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\n"),
            Parsed::More
        ));
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(parse_len(b"12"), Some(12));
        assert_eq!(parse_len(b" 7 "), Some(7));
        assert_eq!(parse_len(b"+7"), None);
        assert_eq!(parse_len(b"1,2"), None);
        assert_eq!(parse_len(b""), None);
    }
}
