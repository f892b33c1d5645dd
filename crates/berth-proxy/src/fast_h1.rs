//! The HTTP/1.1 fast path: one task per client connection that parses requests itself,
//! writes them on a pooled connection to the target (plain TCP, or mutual TLS through a
//! mesh hop, see [`crate::mesh::hop`]) and copies the response back, with no
//! per-request allocation of header maps, no hand-off to a separate connection task and
//! one write per direction for small messages.
//!
//! It serves the common case only and hands anything else to hyper: when a request is
//! not plain HTTP/1.1 with a Content-Length body or none (HTTP/1.0, `Transfer-Encoding`,
//! an `Expect` other than `100-continue` on a body, `Upgrade`, a `Connection` header
//! naming other headers, an absolute-form target, an h2c preface, a parse error, a head
//! over the size limit), or when its action is not a forward to an HTTP/1.1 target
//! group (neither HTTPS nor HTTP/2; a mesh hop's TLS is fine), [`serve`] returns the
//! connection with every byte it has read and not answered, and hyper serves the rest of
//! the connection from that request on. So every error answer for malformed input (the
//! statuses [`crate::edge`] chooses) comes from the edge gate hyper reads through
//! ([`crate::framing`]); the fast path checks each head with [`crate::edge::check_head`]
//! before it serves it.
//!
//! A body up to [`MAX_BUFFERED_BODY`] is read whole before the request goes out, so the
//! request can go again after a failure; a larger one streams to the target as it
//! arrives ([`body_stream`]) and its request is never sent twice. A client that sent
//! `Expect: 100-continue` gets `100 Continue` from the proxy when its body is wanted, as
//! nginx does; the header still goes to the target, whose own interim answer is dropped.
//! Response bodies of any size stream back, in larger reads once a body is large.
//!
//! Mesh requests (a mesh listener's, see [`crate::mesh`]) take this path too: a mesh
//! group adds its per-request deadline, its 503 retry and its metrics, behind one check
//! of the group.
//!
//! Targets are tried through the shared request engine ([`crate::attempt`]); stickiness
//! and forwarded headers come from [`crate::sticky`] and [`crate::forwarded`], the bytes
//! of messages from [`crate::h1_codec`]. It does not accept connections
//! ([`crate::listener`] does).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use berth_model::elb::Protocol;
use bytes::{Buf, BytesMut};
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::attempt::{is_idempotent, Attempts, Failure, Verdict};
use crate::context::{ConnCtx, ListenerShared, MAX_HEADER_BYTES};
use crate::edge;
use crate::elb_error;
use crate::forwarded;
use crate::group::GroupRuntime;
use crate::h1_codec::{
    parse_len, parse_response, put_header, write_status, Framing, Parsed, RespHead,
    MAX_RESPONSE_HEADERS,
};
use crate::mesh::hop::UpConn;
use crate::pool::CONNECT_TIMEOUT;
use crate::read_buffers;
use crate::rules::{source_ip, strip_port, CompiledAction, RequestView, ViewHeaders};
use crate::sticky::{self, Affinity, TG_COOKIE};
use crate::target::InFlight;

mod body_stream;
mod idle;
mod prefixed;
#[cfg(test)]
mod tests;
use idle::{read_idle, write_idle, Expired, Idle};
pub(crate) use prefixed::Prefixed;

/// Request headers the fast path parses; a request with more goes to hyper.
const MAX_REQUEST_HEADERS: usize = 64;
/// How long a connection between requests stays open once its listener closes, for a
/// request the client sent before it could see the connection close.
const STOP_LINGER: Duration = Duration::from_millis(500);
/// Request bodies up to this size are read whole before the request goes out; larger
/// ones stream to the target as they arrive.
pub(crate) const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// How a connection left the fast path.
pub(crate) enum Exit<T> {
    /// The connection is finished (closed by either side, idle, or the listener stopped).
    Closed,
    /// Hyper serves the rest: the connection, reading first the bytes read from it and
    /// not yet served, starting with the request the fast path declined.
    Fallback(Prefixed<T>),
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
    // No buffer yet: each comes from the thread's pool when bytes arrive, and goes back
    // when the connection waits for its next request.
    let mut c = Conn {
        io,
        buf: BytesMut::new(),
        out: Vec::new(),
        up: BytesMut::new(),
        idle: Idle {
            sleep: Box::pin(tokio::time::sleep(idle_timeout)),
            last: clock.now_ms(),
            idle_ms: idle_timeout.as_millis() as u64,
            clock,
        },
        peer: cx.peer.ip(),
    };
    let header_timeout = cx.listener.routes.load().header_timeout;
    loop {
        // When the first bytes of the request being read arrived: the head is due
        // within the header timeout of it, however the client trickles it.
        let mut head_due: Option<Instant> = None;
        let plan = loop {
            if !c.buf.is_empty() {
                if c.out.capacity() == 0 {
                    c.out = read_buffers::take_vec();
                }
                match prepare(&c.buf, cx, &mut c.out) {
                    Prep::Forward(p) => break p,
                    Prep::Fallback => return Exit::Fallback(Prefixed::new(c.buf, c.io)),
                    Prep::More => {}
                }
                if c.buf.len() >= MAX_HEADER_BYTES + MAX_BUFFERED_BODY {
                    return Exit::Fallback(Prefixed::new(c.buf, c.io));
                }
            }
            let between_requests = c.buf.is_empty();
            let r = if between_requests && *stop.borrow() {
                // The listener is closing: a request already on its way (a keep-alive
                // client sends its next one as soon as it has an answer) still gets
                // its answer, with `Connection: close`; a quiet connection closes.
                match tokio::time::timeout(STOP_LINGER, c.read_client()).await {
                    Ok(r) => r,
                    Err(_) => return Exit::Closed,
                }
            } else if between_requests {
                c.read_client_or_stop(stop).await
            } else {
                let due = *head_due.get_or_insert_with(|| Instant::now() + header_timeout);
                // Boxed: a timer is large, and most heads arrive in one read.
                match Box::pin(tokio::time::timeout_at(due, c.read_client())).await {
                    // The request did not arrive whole in time, or stopped arriving for
                    // the idle timeout: 408, and the connection ends.
                    Ok(Wait::Idle) | Err(_) => {
                        c.request_timeout(cx).await;
                        return Exit::Closed;
                    }
                    Ok(r) => r,
                }
            };
            match r {
                Wait::Done(Ok(n)) if n > 0 => {
                    if between_requests {
                        head_due = Some(Instant::now() + header_timeout);
                    }
                }
                // The listener began closing while this connection waited: see above.
                Wait::Stop => {}
                // End of stream, an error, the idle timeout or the listener stopping:
                // nothing is owed to the client.
                _ => return Exit::Closed,
            }
        };
        c.buf.advance(plan.len);
        // Boxed: forwarding's state is most of the connection's, and a connection
        // waiting for its next request holds none of it.
        let keep_open = Box::pin(c.forward(plan, cx, stop)).await;
        if !keep_open {
            let _ = c.io.shutdown().await;
            return Exit::Closed;
        }
        c.release_buffers();
    }
}

/// A request ready to forward; its upstream form is in the connection's `out` buffer.
struct Plan {
    /// Bytes of the client buffer the request takes (head and the body bytes in hand).
    len: usize,
    group: Arc<GroupRuntime>,
    affinity: Affinity,
    /// `AWSALBTG` to set, after a weighted choice with target-group stickiness.
    tg_cookie: Option<String>,
    head: bool,
    idempotent: bool,
    /// The client asked to close after this response.
    close: bool,
    /// The request body's length.
    body_len: usize,
    /// Body bytes still to come from the client after `len`: a large body streams.
    body_pending: u64,
    /// The client waits for `100 Continue` before it sends its body.
    expect_continue: bool,
}

/// How a request's attempts ended: with a target's response head (at the start of the
/// connection's `up` buffer), or with the status of the error the client gets.
enum Outcome {
    Head(RespHead, UpConn, InFlight),
    Error(StatusCode),
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
    // A request the edge refuses goes to hyper, whose edge gate answers it.
    if edge::check_head(&buf[..head_len]).is_err() {
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
    let mut expect_continue = false;
    for h in headers {
        let n = h.name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            if body_len.is_some() {
                return Prep::Fallback;
            }
            match parse_len(h.value) {
                Some(v) => body_len = Some(v),
                None => return Prep::Fallback,
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
        } else if n.eq_ignore_ascii_case(b"expect") {
            if expect_continue || !h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                return Prep::Fallback;
            }
            expect_continue = true;
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") || n.eq_ignore_ascii_case(b"upgrade")
        {
            return Prep::Fallback;
        }
    }
    let Some(host_full) = host else {
        return Prep::Fallback;
    };
    let body_len = body_len.unwrap_or(0);
    if expect_continue && body_len == 0 {
        return Prep::Fallback;
    }
    // A large body, or one the client holds back until it is wanted, streams: the
    // request goes out with the part in hand.
    let in_hand = if body_len > MAX_BUFFERED_BODY || expect_continue {
        body_len.min(buf.len() - head_len)
    } else {
        body_len
    };
    let len = head_len + in_hand;
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
    let Some((group, tg_cookie)) = sticky::choose_group(f, || raw_cookie(headers, TG_COOKIE))
    else {
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
    let affinity = Affinity::of_request(stickiness, |name| raw_cookie(headers, name));

    // The request as the target gets it.
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    forwarded::write_request_headers(
        out,
        headers,
        routes.xff,
        routes.drop_invalid_headers,
        &cx.forwarded,
    );
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&buf[head_len..len]);

    Prep::Forward(Plan {
        len,
        group,
        affinity,
        tg_cookie,
        head: method == Method::HEAD,
        idempotent: is_idempotent(&method),
        close,
        body_len,
        body_pending: (body_len - in_hand) as u64,
        // A client that did not wait needs no go-ahead.
        expect_continue: expect_continue && in_hand == 0,
    })
}

/// The value of cookie `name` in the request's Cookie headers.
fn raw_cookie<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a str> {
    sticky::cookie(
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .map(|h| h.value),
        name,
    )
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
    /// The client's address: over a mesh hop it picks the caller's identity.
    peer: std::net::IpAddr,
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
        // The read borrows a buffer only while bytes are there to take.
        let (io, buf) = (&mut self.io, &mut self.buf);
        let r = tokio::select! {
            biased;
            r = std::future::poll_fn(|cx| read_buffers::poll_read_pooled(io, cx, buf)) => Wait::Done(r),
            _ = Expired(&mut self.idle) => Wait::Idle,
            _ = stop.changed() => Wait::Stop,
        };
        if matches!(r, Wait::Done(Ok(n)) if n > 0) {
            self.idle.touch();
        }
        r
    }

    /// Gives the buffers back to the thread's pool once a response is out: a connection
    /// waiting for its next request holds none (the client's buffer stays when it holds
    /// the start of the next request).
    fn release_buffers(&mut self) {
        read_buffers::give_vec(&mut self.out);
        read_buffers::give(&mut self.up);
        if self.buf.is_empty() {
            read_buffers::give(&mut self.buf);
        }
    }

    /// Answers a request that did not arrive in time with 408 and closes the connection.
    async fn request_timeout(&mut self, cx: &ConnCtx) {
        elb_error::write(
            &mut self.out,
            StatusCode::REQUEST_TIMEOUT,
            &cx.listener.metrics,
            true,
        );
        // The idle timer may have run out already: the answer gets one more period.
        self.idle.touch();
        let _ = self.write_client().await;
        let _ = self.io.shutdown().await;
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
        // A streamed body is not kept: its request cannot go again once it went out.
        let replayable = plan.idempotent && plan.body_pending == 0;
        let mut attempts = Attempts::start(group, plan.affinity.preferred, replayable);
        let mut upload = body_stream::Upload {
            pending: plan.body_pending,
            continue_owed: plan.expect_continue,
        };
        let outcome = match &group.mesh {
            None => self.attempt(&mut attempts, &mut upload).await,
            Some(mesh) => {
                cx.count_mesh_connection(&mesh.metrics);
                mesh.metrics.processed_bytes.inc_by(plan.body_len as u64);
                match mesh.deadline(Instant::now()) {
                    None => self.attempt(&mut attempts, &mut upload).await,
                    Some(d) => {
                        let attempt = self.attempt(&mut attempts, &mut upload);
                        match tokio::time::timeout_at(d, attempt).await {
                            Ok(o) => o,
                            Err(_) => {
                                mesh.metrics.request_timeouts.inc();
                                Outcome::Error(StatusCode::GATEWAY_TIMEOUT)
                            }
                        }
                    }
                }
            }
        };
        let status = match outcome {
            Outcome::Head(head, up, in_flight) => {
                // A target that answered before the body was whole: the connection ends
                // after its answer, once the client had a moment to read it.
                let unfinished = upload.pending > 0;
                let open = self
                    .respond(head, up, &plan, in_flight, l, stop, unfinished)
                    .await
                    .unwrap_or(false);
                if unfinished {
                    body_stream::linger(&mut self.io, &mut self.buf, upload.pending).await;
                }
                return open;
            }
            Outcome::Error(status) => status,
        };
        // Nothing was written to the client yet: it gets an error response. A body left
        // partly unread ends the connection.
        let close = plan.close || upload.pending > 0 || *stop.borrow();
        elb_error::write(&mut self.out, status, &l.metrics, close);
        self.write_client().await.is_ok() && !close
    }

    /// Tries targets until one answers with a response head, or the request engine
    /// gives up.
    async fn attempt(
        &mut self,
        attempts: &mut Attempts<'_>,
        upload: &mut body_stream::Upload,
    ) -> Outcome {
        loop {
            let in_flight = match attempts.next() {
                Ok(f) => f,
                Err(status) => return Outcome::Error(status),
            };
            let target = in_flight.target();
            let (mut up, reused) = match target.pool.checkout_raw(self.peer) {
                Some(s) => (s, true),
                None => match target.pool.connect_raw(CONNECT_TIMEOUT, self.peer).await {
                    Ok(s) => (s, false),
                    Err(e) => {
                        tracing::debug!(target = %target.addr, error = %e, "target connection failed");
                        match attempts.failed(target, false, Failure::Connect) {
                            Verdict::Retry => continue,
                            Verdict::Answer(status) => return Outcome::Error(status),
                        }
                    }
                },
            };
            attempts.connected(target);
            let start = Instant::now();
            match self.exchange_head(&mut up, upload).await {
                Ok(head) => {
                    attempts.responded(target, head.status, start.elapsed());
                    if head.status == 503
                        && attempts.is_mesh()
                        && attempts.failed(target, reused, Failure::Unavailable) == Verdict::Retry
                    {
                        // Tried again elsewhere; the 503's connection is dropped unread.
                        continue;
                    }
                    return Outcome::Head(head, up, in_flight);
                }
                Err(failure) => {
                    tracing::debug!(target = %target.addr, ?failure, "target request failed");
                    match attempts.failed(target, reused, failure) {
                        Verdict::Retry => {}
                        Verdict::Answer(status) => return Outcome::Error(status),
                    }
                }
            }
        }
    }

    /// Writes the request in `out` to the target, streams the rest of its body (`upload`)
    /// from the client, and reads the response head into `up`, skipping interim (1xx)
    /// responses.
    async fn exchange_head(
        &mut self,
        up: &mut UpConn,
        upload: &mut body_stream::Upload,
    ) -> Result<RespHead, Failure> {
        let w = tokio::select! {
            biased;
            // The flush sends what a mesh hop's TLS layer holds back.
            r = async {
                up.write_all(&self.out).await?;
                up.flush().await
            } => Some(r),
            _ = Expired(&mut self.idle) => None,
        };
        match w {
            None => return Err(Failure::Timeout),
            Some(Err(_)) => return Err(Failure::Unsent),
            Some(Ok(())) => {}
        }
        self.up.clear();
        if upload.pending > 0 {
            // Stops early, with the target's answer in `self.up`, when it answers first.
            let (io, buf, answer) = (&mut self.io, &mut self.buf, &mut self.up);
            body_stream::upload(io, buf, up, answer, upload, &mut self.idle).await?;
            match parse_response(&self.up) {
                Parsed::Head(h) => return Ok(h),
                Parsed::Bad => return Err(Failure::BadResponse),
                Parsed::More if self.up.len() > MAX_HEADER_BYTES => {
                    return Err(Failure::BadResponse)
                }
                // Interim answers were dropped during the upload.
                Parsed::More | Parsed::Interim(_) => {}
            }
        }
        loop {
            match read_idle(up, &mut self.up, &mut self.idle).await {
                None => return Err(Failure::Timeout),
                Some(Ok(0)) | Some(Err(_)) => {
                    return Err(if self.up.is_empty() {
                        Failure::NoResponse
                    } else {
                        Failure::BadResponse
                    });
                }
                Some(Ok(_)) => {}
            }
            match parse_response(&self.up) {
                Parsed::More if self.up.len() > MAX_HEADER_BYTES => {
                    return Err(Failure::BadResponse)
                }
                Parsed::More => {}
                Parsed::Bad => return Err(Failure::BadResponse),
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
    /// `unfinished_upload`: the target answered before the request body was whole, so
    /// neither connection is used again. `Err(())` when the connection must close.
    #[allow(clippy::too_many_arguments)]
    async fn respond(
        &mut self,
        head: RespHead,
        mut up: UpConn,
        plan: &Plan,
        in_flight: InFlight,
        l: &ListenerShared,
        stop: &watch::Receiver<bool>,
        unfinished_upload: bool,
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
        let close = plan.close || unfinished_upload || framing == Framing::Close || *stop.borrow();
        self.out.clear();
        {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            if !matches!(resp.parse(&self.up), Ok(httparse::Status::Complete(_))) {
                return Err(());
            }
            write_status(&mut self.out, head.status, resp.reason.unwrap_or(""));
            let named = forwarded::connection_tokens(resp.headers);
            let app_cookie = plan.affinity.app_cookie();
            let mut sets_app_cookie = false;
            for h in resp.headers.iter() {
                let n = h.name.as_bytes();
                if skip_response_header(n) || named.iter().any(|t| t.eq_ignore_ascii_case(n)) {
                    continue;
                }
                if let Some(name) = app_cookie {
                    if n.eq_ignore_ascii_case(b"set-cookie") {
                        sets_app_cookie |= sticky::sets_cookie(h.value, name);
                    }
                }
                put_header(&mut self.out, n, h.value);
            }
            if let Some(c) = plan.affinity.response_cookie(target.addr, sets_app_cookie) {
                self.out.extend_from_slice(b"set-cookie: ");
                c.write_value(&mut self.out);
                self.out.extend_from_slice(b"\r\n");
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
        let sent = body_stream::response(
            &mut self.io,
            &mut up,
            &mut self.up,
            &mut self.out,
            &mut self.idle,
            framing,
        )
        .await?;
        let reusable = head.keep_alive && sent.framed && !unfinished_upload;
        let sent = sent.bytes;
        if sent > 0 {
            l.metrics.processed_bytes.inc_by(sent);
            if let Some(mesh) = &plan.group.mesh {
                mesh.metrics.processed_bytes.inc_by(sent);
            }
        }
        if reusable && framing != Framing::Close && self.up.is_empty() {
            target.pool.checkin_raw(up);
        }
        body_stream::release(&mut self.up);
        drop(in_flight);
        Ok(!close)
    }
}

/// Hop-by-hop response headers but Transfer-Encoding, which stays: the body passes
/// through as the target framed it.
#[inline]
fn skip_response_header(n: &[u8]) -> bool {
    forwarded::is_hop_by_hop(n) && !n.eq_ignore_ascii_case(b"transfer-encoding")
}
