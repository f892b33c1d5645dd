//! HTTP/1.1 to a target (plain or HTTPS) for the hyper path's HTTP/2 requests that are
//! bodyless or carry a small body of known length, spoken on the socket itself from the
//! request's own task: the request head (and the body, read whole first, as the HTTP/1.1
//! fast path reads a small body) is written in one write on a pooled connection (the
//! same idle connections the HTTP/1.1 fast path uses,
//! [`crate::pool::Pool::checkout_raw`]), the response head is parsed in place
//! ([`crate::h1_codec`]) and a small response that arrived whole goes back to the client
//! as one buffer, its connection back to the pool at once. Hyper's client would spend a
//! connection task, a channel hand-off each way and a header map per request instead.
//!
//! A larger response streams ([`RawBody`], [`crate::raw_body`]): by Content-Length,
//! chunked (decoded, its trailers passed on as HTTP/2 trailers) or until the target
//! closes.
//!
//! Targets are tried through the shared request engine ([`crate::attempt`]), with the
//! hyper path's stickiness and forwarded headers already applied to the request; what
//! is not such an HTTP/2 request to an HTTP/1.1 target group stays with hyper's
//! client (a body over [`crate::fast_h1::MAX_BUFFERED_BODY`] or of unknown length streams
//! there).

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::attempt::{is_idempotent, Attempts, Failure, Verdict};
use crate::body::ProxyBody;
use crate::context::{ConnCtx, MAX_HEADER_BYTES};
use crate::elb_error;
use crate::forwarded::{self, ForwardedValues, XffMode};
use crate::group::GroupRuntime;
use crate::h1_codec::{parse_response, Framing, Parsed, RespHead};
use crate::h1_codec::{put_header, MAX_RESPONSE_HEADERS};
use crate::mesh::hop::UpConn;
use crate::pool::CONNECT_TIMEOUT;
use crate::raw_body::RawBody;
use crate::read_buffers;
use crate::sticky::{self, Affinity};
use crate::target::InFlight;

/// Forwards the HTTP/2 request `parts` (as the client sent it), with `body` when it has
/// one of the given length (at most [`crate::fast_h1::MAX_BUFFERED_BODY`]), to `group`,
/// whose targets speak HTTP/1.1 (plain, over TLS to an HTTPS target group, or through a
/// mesh hop's TLS): its head is written for the target straight from `parts`
/// ([`write_request`]), with X-Forwarded-For by `xff` and invalid names dropped when
/// `drop_invalid`, and the body is read whole behind it, so an idempotent request can go
/// again after a failure.
pub(super) async fn forward(
    parts: &http::request::Parts,
    body: Option<(Incoming, usize)>,
    group: &GroupRuntime,
    cx: &ConnCtx,
    affinity: &Affinity,
    xff: XffMode,
    drop_invalid: bool,
) -> Response<ProxyBody> {
    let head_request = parts.method == http::Method::HEAD;
    let replayable = is_idempotent(&parts.method);
    let mut out = read_buffers::take_vec();
    write_request(&mut out, parts, xff, drop_invalid, &cx.forwarded);
    if let Some((mut body, len)) = body {
        // The idle timeout is watched per client connection, which wakes `expired`.
        let read = tokio::select! {
            biased;
            r = read_whole(&mut body, len, &mut out) => r.map_err(|()| StatusCode::BAD_REQUEST),
            _ = cx.expired.notified() => Err(StatusCode::REQUEST_TIMEOUT),
        };
        if let Err(status) = read {
            read_buffers::give_vec(&mut out);
            return elb_error::response(status, &cx.listener.metrics);
        }
    }
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
                attempts.responded(target, head.status, start);
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

/// Appends the request body, `len` bytes, to `out` as it arrives; `Err` when the
/// client's stream breaks off or its data does not add up to `len` (a trailer section,
/// which a Content-Length body cannot carry to an HTTP/1.1 target, is dropped).
async fn read_whole(body: &mut Incoming, len: usize, out: &mut Vec<u8>) -> Result<(), ()> {
    let end = out.len() + len;
    out.reserve(len);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(|_| ())?.into_data() {
            if out.len() + data.len() > end {
                return Err(());
            }
            out.extend_from_slice(&data);
        }
    }
    if out.len() == end {
        Ok(())
    } else {
        Err(())
    }
}

/// The HTTP/1.1 request head a target gets for the client's request `parts`, written
/// without touching `parts`: the origin-form target, Host from the URI's authority (an
/// HTTP/2 request's `:authority`) unless the client sent a Host field, then the client's
/// fields less hop-by-hop ones and the proxy's X-Forwarded-* ([`forwarded::write_request_fields`]:
/// X-Forwarded-For by `xff`, invalid names dropped when `drop_invalid`).
fn write_request(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    xff: XffMode,
    drop_invalid: bool,
    values: &ForwardedValues,
) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(pq.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            put_header(out, b"host", authority.as_str().as_bytes());
        }
    }
    forwarded::write_request_fields(
        out,
        parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
        xff,
        drop_invalid,
        values,
    );
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
    loop {
        // A request waiting for its target holds no read buffer: one is taken from the
        // thread's pool when bytes are there (many streams of one client connection
        // wait at once, more than the pool keeps).
        match std::future::poll_fn(|cx| read_buffers::poll_read_pooled(conn, cx, up)).await {
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
        let app_cookie = affinity.app_cookie();
        let map = resp.headers_mut();
        let sets_app_cookie = if head.copy.is_some() {
            // A canonical head (see `RespHead::copy`): its lines are split where they
            // are, with no second parse, and its Connection field names no other field.
            let lines = memchr::memchr_iter(b'\n', &msg[..head.len]).count();
            map.reserve(lines);
            copy_fields(
                map,
                canonical_fields(&msg[..head.len]),
                &[],
                &msg,
                app_cookie,
            )?
        } else {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            if !matches!(parsed.parse(&msg), Ok(httparse::Status::Complete(_))) {
                return Err(());
            }
            let named = forwarded::connection_tokens(parsed.headers);
            map.reserve(parsed.headers.len() + 1);
            let fields = parsed.headers.iter().map(|h| (h.name.as_bytes(), h.value));
            copy_fields(map, fields, &named, &msg, app_cookie)?
        };
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
    *resp.body_mut() = ProxyBody::Raw(Box::new(RawBody::new(
        conn,
        up,
        framing,
        head.keep_alive,
        in_flight,
        l.metrics.processed_bytes.clone(),
        mesh_bytes.cloned(),
    )));
    Ok(resp)
}

/// The `(name, value)` fields of a head [`parse_response`] found canonical: after the
/// status line, each line is `name: value` ended by CRLF, and the head ends with an
/// empty line. Names hold no `:` and values no CR or LF (httparse checked them).
fn canonical_fields(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    let fields_at = memchr::memchr(b'\n', head).map_or(head.len(), |i| i + 1);
    let mut rest = head
        .get(fields_at..head.len().saturating_sub(2))
        .unwrap_or_default();
    std::iter::from_fn(move || {
        let end = memchr::memchr(b'\n', rest)?;
        let line = &rest[..end.saturating_sub(1)];
        rest = &rest[end + 1..];
        let colon = memchr::memchr(b':', line)?;
        Some((&line[..colon], line.get(colon + 2..).unwrap_or_default()))
    })
}

/// Appends the response `fields` (slices of `msg`) to `map` as the client gets them:
/// hop-by-hop fields and those the Connection field `named` left out. Whether a
/// `Set-Cookie` sets the application cookie `app_cookie`; `Err` for a field that is
/// not a valid HTTP/2 field.
fn copy_fields<'m>(
    map: &mut http::HeaderMap,
    fields: impl Iterator<Item = (&'m [u8], &'m [u8])>,
    named: &[&[u8]],
    msg: &Bytes,
    app_cookie: Option<&str>,
) -> Result<bool, ()> {
    let mut sets_app_cookie = false;
    for (n, value) in fields {
        if forwarded::is_hop_by_hop(n) || named.iter().any(|t| t.eq_ignore_ascii_case(n)) {
            continue;
        }
        if let Some(name) = app_cookie {
            if n.eq_ignore_ascii_case(b"set-cookie") {
                sets_app_cookie |= sticky::sets_cookie(value, name);
            }
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(n),
            HeaderValue::from_maybe_shared(msg.slice_ref(value)),
        ) else {
            return Err(());
        };
        map.append(name, value);
    }
    Ok(sets_app_cookie)
}

#[cfg(test)]
mod tests;
