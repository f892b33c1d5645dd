//! HTTP/1.1 to a plain target for the hyper path's bodyless HTTP/2 requests, spoken on
//! the socket itself from the request's own task: the request head is written in one
//! write on a pooled connection (the same idle connections the HTTP/1.1 fast path uses,
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
//! is not bodyless HTTP/2 to a plain HTTP/1.1 target group stays with hyper's client.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::attempt::{Attempts, Failure, Verdict};
use crate::body::ProxyBody;
use crate::context::{ConnCtx, MAX_HEADER_BYTES};
use crate::elb_error;
use crate::forwarded;
use crate::group::GroupRuntime;
use crate::h1_codec::{parse_response, Framing, Parsed, RespHead};
use crate::h1_codec::{put_header, MAX_RESPONSE_HEADERS};
use crate::mesh::hop::UpConn;
use crate::pool::CONNECT_TIMEOUT;
use crate::raw_body::RawBody;
use crate::read_buffers;
use crate::sticky::{self, Affinity};
use crate::target::InFlight;

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

#[cfg(test)]
mod tests;
