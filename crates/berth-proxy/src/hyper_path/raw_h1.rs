//! HTTP/1.1 to a plain target for the hyper path's bodyless HTTP/2 requests, spoken on
//! the socket itself from the request's own task: the request head is written in one
//! write on a pooled connection (the same idle connections the HTTP/1.1 fast path uses,
//! [`crate::pool::Pool::checkout_raw`]), the response head is parsed in place
//! ([`crate::h1_codec`]) and a small response that arrived whole goes back to the client
//! as one buffer, its connection back to the pool at once. Hyper's client would spend a
//! connection task, a channel hand-off each way and a header map per request instead.
//!
//! A larger response streams ([`RawBody`]): by Content-Length, chunked (decoded, its
//! trailers passed on as HTTP/2 trailers) or until the target closes.
//!
//! Targets are tried through the shared request engine ([`crate::attempt`]), with the
//! hyper path's stickiness and forwarded headers already applied to the request; what
//! is not bodyless HTTP/2 to a plain HTTP/1.1 target group stays with hyper's client.

use std::io;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body::{Frame, SizeHint};
use prometheus::IntCounter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::attempt::{Attempts, Failure, Verdict};
use crate::body::ProxyBody;
use crate::context::{ConnCtx, MAX_HEADER_BYTES};
use crate::elb_error;
use crate::forwarded;
use crate::group::GroupRuntime;
use crate::h1_codec::{parse_response, Chunk, ChunkedDecoder, Framing, Parsed, RespHead};
use crate::h1_codec::{put_header, MAX_RESPONSE_HEADERS};
use crate::mesh::hop::UpConn;
use crate::pool::CONNECT_TIMEOUT;
use crate::read_buffers;
use crate::sticky::{self, Affinity};
use crate::target::InFlight;

/// Trailer fields accepted at the end of a chunked response.
const MAX_TRAILERS: usize = 64;

/// Forwards the prepared bodyless request (`parts`, in its upstream form: origin-form
/// URI, Host, X-Forwarded-*, no hop-by-hop headers) to `group`, whose targets speak
/// plain HTTP/1.1 (a mesh hop's TLS is fine).
pub(super) async fn forward(
    parts: &http::request::Parts,
    group: &GroupRuntime,
    cx: &ConnCtx,
    affinity: &Affinity,
    replayable: bool,
) -> Response<ProxyBody> {
    let head_request = parts.method == http::Method::HEAD;
    let mut out = read_buffers::take_vec();
    write_request(&mut out, parts);
    let mut up = BytesMut::new();
    let mut attempts = Attempts::start(group, affinity.preferred, replayable);
    let peer = cx.peer.ip();
    let status = loop {
        let in_flight = match attempts.next() {
            Ok(f) => f,
            Err(status) => break status,
        };
        let target = in_flight.target();
        let (mut conn, reused) = match target.pool.checkout_raw(peer) {
            Some(c) => (c, true),
            // Boxed: a connect's state is larger than the rest of the request's.
            None => match Box::pin(target.pool.connect_raw(CONNECT_TIMEOUT, peer)).await {
                Ok(c) => (c, false),
                Err(e) => {
                    tracing::debug!(target = %target.addr, error = %e, "target connection failed");
                    match attempts.failed(target, false, Failure::Connect) {
                        Verdict::Retry => continue,
                        Verdict::Answer(status) => break status,
                    }
                }
            },
        };
        attempts.connected(target);
        let start = Instant::now();
        // The idle timeout is watched per client connection, which wakes `expired`.
        let r = tokio::select! {
            biased;
            r = exchange_head(&mut conn, &out, &mut up) => r,
            _ = cx.expired.notified() => Err(Failure::Timeout),
        };
        match r {
            Ok(head) => {
                attempts.responded(target, head.status, start.elapsed());
                if head.status == 503
                    && attempts.is_mesh()
                    && attempts.failed(target, reused, Failure::Unavailable) == Verdict::Retry
                {
                    // Tried again elsewhere; the 503's connection is dropped unread.
                    up.clear();
                    continue;
                }
                read_buffers::give_vec(&mut out);
                return match respond(head, conn, up, in_flight, affinity, cx, group, head_request) {
                    Ok(r) => r,
                    Err(()) => elb_error::response(StatusCode::BAD_GATEWAY, &cx.listener.metrics),
                };
            }
            Err(failure) => {
                tracing::debug!(target = %target.addr, ?failure, "target request failed");
                up.clear();
                match attempts.failed(target, reused, failure) {
                    Verdict::Retry => {}
                    Verdict::Answer(status) => break status,
                }
            }
        }
    };
    read_buffers::give_vec(&mut out);
    read_buffers::give(&mut up);
    elb_error::response(status, &cx.listener.metrics)
}

/// The request line and headers of `parts` as HTTP/1.1.
fn write_request(out: &mut Vec<u8>, parts: &http::request::Parts) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(pq.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (n, v) in &parts.headers {
        put_header(out, n.as_str().as_bytes(), v.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the request to the target and reads the response head into `up`, skipping
/// interim (1xx) responses.
async fn exchange_head(
    conn: &mut UpConn,
    out: &[u8],
    up: &mut BytesMut,
) -> Result<RespHead, Failure> {
    // The flush sends what a mesh hop's TLS layer holds back.
    let w = async {
        conn.write_all(out).await?;
        conn.flush().await
    };
    if w.await.is_err() {
        return Err(Failure::Unsent);
    }
    if up.capacity() == 0 {
        *up = read_buffers::take();
    }
    loop {
        if up.capacity() - up.len() < 1024 {
            up.reserve(read_buffers::CHUNK);
        }
        match conn.read_buf(up).await {
            Ok(0) | Err(_) => {
                return Err(if up.is_empty() {
                    Failure::NoResponse
                } else {
                    Failure::BadResponse
                });
            }
            Ok(_) => {}
        }
        loop {
            match parse_response(up) {
                Parsed::More if up.len() > MAX_HEADER_BYTES => return Err(Failure::BadResponse),
                Parsed::More => break,
                Parsed::Bad => return Err(Failure::BadResponse),
                Parsed::Interim(n) => up.advance(n),
                Parsed::Head(h) => return Ok(h),
            }
        }
    }
}

/// Turns the response whose head is at the start of `up` into the client's: hop-by-hop
/// headers removed, stickiness cookies added, the body whole when it is all here, else
/// streamed from `conn`. `Err` for a head that does not make an HTTP/2 response.
#[allow(clippy::too_many_arguments)]
fn respond(
    head: RespHead,
    conn: UpConn,
    mut up: BytesMut,
    in_flight: InFlight,
    affinity: &Affinity,
    cx: &ConnCtx,
    group: &GroupRuntime,
    head_request: bool,
) -> Result<Response<ProxyBody>, ()> {
    let framing = if head_request || head.status == 204 || head.status == 304 {
        Framing::Empty
    } else {
        head.framing
    };
    let whole = match framing {
        Framing::Empty => Some(0),
        Framing::Length(n) if n <= (up.len() - head.len) as u64 => Some(n as usize),
        _ => None,
    };
    // The head (and a whole body) are copied out into one exact buffer the header values
    // and the body point into; the read buffer goes back to the thread's pool.
    let msg = match whole {
        Some(n) => Bytes::copy_from_slice(&up[..head.len + n]),
        None => Bytes::copy_from_slice(&up[..head.len]),
    };
    up.advance(head.len + whole.unwrap_or(0));
    let status = StatusCode::from_u16(head.status).map_err(|_| ())?;
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = status;
    {
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        if !matches!(parsed.parse(&msg), Ok(httparse::Status::Complete(_))) {
            return Err(());
        }
        let named = forwarded::connection_tokens(parsed.headers);
        let app_cookie = affinity.app_cookie();
        let mut sets_app_cookie = false;
        let map = resp.headers_mut();
        map.reserve(parsed.headers.len() + 1);
        for h in parsed.headers.iter() {
            let n = h.name.as_bytes();
            if forwarded::is_hop_by_hop(n) || named.iter().any(|t| t.eq_ignore_ascii_case(n)) {
                continue;
            }
            if let Some(name) = app_cookie {
                if n.eq_ignore_ascii_case(b"set-cookie") {
                    sets_app_cookie |= sticky::sets_cookie(h.value, name);
                }
            }
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(n),
                HeaderValue::from_maybe_shared(msg.slice_ref(h.value)),
            ) else {
                return Err(());
            };
            map.append(name, value);
        }
        if let Some(v) = affinity
            .response_cookie(in_flight.target().addr, sets_app_cookie)
            .and_then(|c| c.header_value())
        {
            map.append(http::header::SET_COOKIE, v);
        }
    }
    let l = &cx.listener;
    let mesh_bytes = group.mesh.as_ref().map(|m| &m.metrics.processed_bytes);
    if let Some(n) = whole {
        if n > 0 {
            l.metrics.processed_bytes.inc_by(n as u64);
            if let Some(m) = mesh_bytes {
                m.inc_by(n as u64);
            }
        }
        let body = msg.slice(msg.len() - n..);
        let reusable = head.keep_alive && up.is_empty() && framing != Framing::Close;
        read_buffers::give(&mut up);
        if reusable {
            in_flight.target().pool.checkin_raw(conn);
        }
        drop(in_flight);
        *resp.body_mut() = ProxyBody::full(body);
        return Ok(resp);
    }
    let state = match framing {
        Framing::Length(n) => State::Length(n),
        Framing::Chunked => State::Chunked(ChunkedDecoder::default()),
        _ => State::Close,
    };
    *resp.body_mut() = ProxyBody::Raw(Box::new(RawBody {
        conn: Some(conn),
        buf: up,
        state,
        keep_alive: head.keep_alive,
        in_flight: Some(in_flight),
        bytes: l.metrics.processed_bytes.clone(),
        mesh_bytes: mesh_bytes.cloned(),
    }));
    Ok(resp)
}

/// Where a streamed response body is.
enum State {
    /// This many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// After the last chunk: the trailer section (or the empty line ending the body).
    Trailers,
    /// Until the target closes the connection.
    Close,
    Done,
}

/// A target's response body read from its connection as the client takes it. The
/// connection goes back to the pool when the body ended cleanly; the request is counted
/// out of the target when the body ends or is dropped.
pub(crate) struct RawBody {
    conn: Option<UpConn>,
    /// Bytes read from the target and not yet passed on.
    buf: BytesMut,
    state: State,
    keep_alive: bool,
    in_flight: Option<InFlight>,
    bytes: IntCounter,
    /// A mesh group's processed bytes, counted as well.
    mesh_bytes: Option<IntCounter>,
}

/// Why a streamed response body broke off.
#[derive(Debug)]
pub(crate) enum RawBodyError {
    Io(io::Error),
    /// The target closed the connection before the body was whole.
    Truncated,
    /// Chunked framing or trailers that do not parse.
    Malformed,
}

impl std::fmt::Display for RawBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawBodyError::Io(e) => write!(f, "target response body: {e}"),
            RawBodyError::Truncated => write!(f, "target closed before the response body ended"),
            RawBodyError::Malformed => write!(f, "malformed target response body"),
        }
    }
}

impl std::error::Error for RawBodyError {}

impl RawBody {
    /// The body ended: the connection is idle again if nothing else came with it.
    fn finish(&mut self, reusable: bool) {
        self.state = State::Done;
        let conn = self.conn.take();
        let in_flight = self.in_flight.take();
        if let (Some(conn), Some(f)) = (conn, &in_flight) {
            if reusable && self.keep_alive && self.buf.is_empty() {
                f.target().pool.checkin_raw(conn);
            }
        }
        read_buffers::give(&mut self.buf);
    }

    fn fail(&mut self, e: RawBodyError) -> Poll<Option<Result<Frame<Bytes>, RawBodyError>>> {
        self.finish(false);
        Poll::Ready(Some(Err(e)))
    }

    fn data(&mut self, n: usize) -> Frame<Bytes> {
        let d = self.buf.split_to(n).freeze();
        self.bytes.inc_by(n as u64);
        if let Some(m) = &self.mesh_bytes {
            m.inc_by(n as u64);
        }
        Frame::data(d)
    }

    /// Reads more from the target: `Ok(0)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match self.conn.as_mut() {
            Some(c) => read_buffers::poll_read_pooled(c, cx, &mut self.buf),
            None => Poll::Ready(Ok(0)),
        }
    }

    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RawBodyError>>> {
        loop {
            match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Length(rest) => {
                    if !self.buf.is_empty() {
                        let n = (self.buf.len() as u64).min(*rest) as usize;
                        *rest -= n as u64;
                        let done = *rest == 0;
                        let f = self.data(n);
                        if done {
                            self.finish(true);
                        }
                        return Poll::Ready(Some(Ok(f)));
                    }
                }
                State::Close => {
                    if !self.buf.is_empty() {
                        let n = self.buf.len();
                        return Poll::Ready(Some(Ok(self.data(n))));
                    }
                }
                State::Chunked(d) => {
                    if !self.buf.is_empty() {
                        match d.step(&self.buf) {
                            Err(()) => return self.fail(RawBodyError::Malformed),
                            Ok(Chunk::More) => self.buf.clear(),
                            Ok(Chunk::Data { skip, len }) => {
                                self.buf.advance(skip);
                                return Poll::Ready(Some(Ok(self.data(len))));
                            }
                            Ok(Chunk::Last(n)) => {
                                self.buf.advance(n);
                                self.state = State::Trailers;
                                continue;
                            }
                        }
                    }
                }
                State::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
                    match httparse::parse_headers(&self.buf, &mut fields) {
                        Ok(httparse::Status::Complete((n, fields))) => {
                            let Some(trailers) = trailer_map(fields) else {
                                return self.fail(RawBodyError::Malformed);
                            };
                            self.buf.advance(n);
                            self.finish(true);
                            return Poll::Ready(
                                (!trailers.is_empty()).then(|| Ok(Frame::trailers(trailers))),
                            );
                        }
                        Ok(httparse::Status::Partial) if self.buf.len() <= MAX_HEADER_BYTES => {}
                        _ => return self.fail(RawBodyError::Malformed),
                    }
                }
            }
            match self.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return self.fail(RawBodyError::Io(e)),
                Poll::Ready(Ok(0)) => {
                    if matches!(self.state, State::Close) {
                        self.finish(false);
                        return Poll::Ready(None);
                    }
                    return self.fail(RawBodyError::Truncated);
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// The trailer fields an HTTP/2 client may get: hop-by-hop and framing fields dropped.
/// `None` when a field does not make an HTTP/2 header.
fn trailer_map(fields: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    for f in fields {
        let n = f.name.as_bytes();
        if forwarded::is_hop_by_hop(n)
            || n.eq_ignore_ascii_case(b"content-length")
            || n.eq_ignore_ascii_case(b"host")
        {
            continue;
        }
        let name = HeaderName::from_bytes(n).ok()?;
        let value = HeaderValue::from_bytes(f.value).ok()?;
        map.append(name, value);
    }
    Some(map)
}

#[cfg(test)]
mod tests;
