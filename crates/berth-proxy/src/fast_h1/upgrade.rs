//! Upgrade requests (WebSockets and other HTTP/1.1 protocol switches) on the fast path.
//! The request, planned by [`super::plan`] with its `Upgrade` and `Connection: upgrade`
//! headers kept and X-Forwarded-* set, goes out on a new target connection (never a
//! pooled one: an upgraded connection does not go back). A `101` answer goes to the
//! client as the target wrote it (plus the target-group stickiness cookie, as on the
//! hyper path), then the two raw sockets are joined by [`crate::splice`] in the
//! connection's own task until either side ends or nothing moves for the listener's idle
//! timeout. No hyper object is involved, and a quiet upgraded connection holds no buffer.
//!
//! Any other answer is relayed as a normal response (stickiness cookies, hop-by-hop
//! headers removed) and its target connection is closed. Nothing more was read from the
//! client while the answer was awaited; afterwards the client connection goes on as any
//! other on the fast path: every head behind the declined upgrade is checked by
//! [`crate::edge::check_head`] again, and whatever the fast path does not serve goes to
//! hyper as usual.
//!
//! The request is never sent twice once any of it was written: only a failed connect
//! tries another target. The target stays counted in flight (least outstanding requests)
//! for the life of the upgraded connection, as on the hyper path. It does not route or
//! write the request (the plan does), nor serve mesh groups or TLS listeners (hyper does).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use super::ClientIo;
use tokio::sync::watch;
use tokio::time::Instant;

use super::idle::{read_idle, write_idle, Expired};
use super::plan::Plan;
use super::Conn;
use crate::attempt::{Attempts, Failure, Verdict};
use crate::context::{ConnCtx, MAX_HEADER_BYTES};
use crate::elb_error;
use crate::h1_codec::{parse_response, Parsed, RespHead, MAX_RESPONSE_HEADERS};
use crate::mesh::hop::UpConn;
use crate::pool::CONNECT_TIMEOUT;
use crate::read_buffers;
use crate::splice::Splice;

/// A target's answer to an upgrade request; its head is at the start of the
/// connection's `up` buffer.
enum Answer {
    /// `101 Switching Protocols`, with its head this many bytes long.
    Switch(usize),
    /// Any other final answer.
    Declined(RespHead),
}

/// Serves the upgrade request in `c.out` (already taken from the client buffer). Returns
/// whether the client connection stays open for more requests: after a protocol switch
/// it never does, the connection having ended.
pub(super) async fn serve<T>(
    c: &mut Conn<T>,
    plan: Plan,
    cx: &ConnCtx,
    stop: &watch::Receiver<bool>,
) -> bool
where
    T: ClientIo,
{
    let l = &cx.listener;
    let group = plan.group.clone();
    // Not replayable: once a byte of it reached a target, the request does not go again.
    let mut attempts = Attempts::start(&group, plan.affinity.preferred, false);
    let (answer, mut up, in_flight) = loop {
        let in_flight = match attempts.next() {
            Ok(f) => f,
            Err(status) => return answer_error(c, status, cx, stop).await,
        };
        let target = in_flight.target();
        let mut up = match target.pool.connect_raw(CONNECT_TIMEOUT, c.peer).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(target = %target.addr, error = %e, "target connection failed");
                match attempts.failed(target, false, Failure::Connect) {
                    Verdict::Retry => continue,
                    Verdict::Answer(status) => return answer_error(c, status, cx, stop).await,
                }
            }
        };
        attempts.connected(target);
        let start = Instant::now();
        match exchange_head(c, &mut up).await {
            Ok(answer) => {
                let status = match &answer {
                    Answer::Switch(_) => 101,
                    Answer::Declined(h) => h.status,
                };
                attempts.responded(target, status, start);
                break (answer, up, in_flight);
            }
            Err(failure) => {
                tracing::debug!(target = %target.addr, ?failure, "upgrade request failed");
                match attempts.failed(target, false, failure) {
                    Verdict::Retry => {}
                    Verdict::Answer(status) => return answer_error(c, status, cx, stop).await,
                }
            }
        }
    };

    let head_len = match answer {
        Answer::Switch(len) => len,
        Answer::Declined(mut head) => {
            // Relayed as any response; its connection is closed, not pooled.
            head.keep_alive = false;
            return c
                .respond(head, up, &plan, in_flight, l, stop, false)
                .await
                .unwrap_or(false);
        }
    };

    // The 101 as the target wrote it, the target-group cookie added, and whatever the
    // target sent behind it.
    c.out.clear();
    c.out.extend_from_slice(&c.up[..head_len - 2]);
    if let Some(cookie) = &plan.tg_cookie {
        c.out.extend_from_slice(b"set-cookie: ");
        c.out.extend_from_slice(cookie.as_bytes());
        c.out.extend_from_slice(b"\r\n");
    }
    c.out.extend_from_slice(b"\r\n");
    let mut early = (c.up.len() - head_len) as u64;
    c.out.extend_from_slice(&c.up[head_len..]);
    drop(plan);
    read_buffers::give(&mut c.up);
    if c.write_client().await.is_err() {
        read_buffers::give_vec(&mut c.out);
        return false;
    }
    read_buffers::give_vec(&mut c.out);
    // Bytes the client sent behind its request (it may not have waited for the 101).
    if !c.buf.is_empty() {
        early += c.buf.len() as u64;
        let sent = write_idle(&mut up, &c.buf, &mut c.idle).await;
        c.buf.clear();
        if sent.is_err() {
            read_buffers::give(&mut c.buf);
            return false;
        }
    }
    read_buffers::give(&mut c.buf);

    let spliced = splice_until_idle(c, &mut up).await;
    l.metrics.processed_bytes.inc_by(early + spliced);
    drop(in_flight);
    false
}

/// Answers the client with an error status (no target answered); returns whether its
/// connection stays open.
async fn answer_error<T>(
    c: &mut Conn<T>,
    status: http::StatusCode,
    cx: &ConnCtx,
    stop: &watch::Receiver<bool>,
) -> bool
where
    T: ClientIo,
{
    let close = *stop.borrow();
    elb_error::write(&mut c.out, status, &cx.listener.metrics, close);
    c.write_client().await.is_ok() && !close
}

/// Writes the request in `c.out` to the new target connection and reads the answer's
/// head into `c.up`, skipping interim answers other than 101.
async fn exchange_head<T>(c: &mut Conn<T>, up: &mut UpConn) -> Result<Answer, Failure>
where
    T: ClientIo,
{
    match c.send_out(up).await {
        None => return Err(Failure::Timeout),
        // Part of the request may have reached the target: it does not go again.
        Some(Err(_)) => return Err(Failure::NoResponse),
        Some(Ok(())) => {}
    }
    c.up.clear();
    loop {
        match read_idle(up, &mut c.up, &mut c.idle).await {
            None => return Err(Failure::Timeout),
            Some(Ok(0)) | Some(Err(_)) => {
                return Err(if c.up.is_empty() {
                    Failure::NoResponse
                } else {
                    Failure::BadResponse
                });
            }
            Some(Ok(_)) => {}
        }
        // Interim answers are dropped; a whole final head may be behind one.
        loop {
            if let Some(len) = switch_len(&c.up) {
                return Ok(Answer::Switch(len));
            }
            match parse_response(&c.up) {
                Parsed::More if c.up.len() > MAX_HEADER_BYTES => return Err(Failure::BadResponse),
                Parsed::More => break,
                Parsed::Bad => return Err(Failure::BadResponse),
                Parsed::Interim(n) => bytes::Buf::advance(&mut c.up, n),
                Parsed::Head(h) => return Ok(Answer::Declined(h)),
            }
        }
    }
}

/// The length of the `101 Switching Protocols` head at the start of `buf`, if one is.
fn switch_len(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if resp.code == Some(101) => Some(n),
        _ => None,
    }
}

/// Joins the client and target connections until both directions ended, either failed,
/// or no byte moved for the idle timeout; returns the bytes copied both ways.
async fn splice_until_idle<T>(c: &mut Conn<T>, up: &mut UpConn) -> u64
where
    T: ClientIo,
{
    let idle = &mut c.idle;
    let mut copy = Splice::new(&mut c.io, up);
    std::future::poll_fn(|cx| {
        if Pin::new(&mut copy).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if copy.take_moved() {
            idle.touch();
        }
        let expired = Pin::new(&mut Expired(&mut *idle)).poll(cx);
        if expired.is_ready() {
            tracing::debug!("closing idle upgraded connection");
        }
        expired
    })
    .await;
    let (a_to_b, b_to_a) = copy.copied();
    a_to_b + b_to_a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_101_head_is_told_from_other_answers() {
        let switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframe";
        assert_eq!(switch_len(switch), Some(switch.len() - 5));
        assert!(switch_len(b"HTTP/1.1 101 Switching").is_none());
        let declined = b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n";
        assert!(switch_len(declined).is_none());
        assert!(matches!(parse_response(declined), Parsed::Head(h) if h.status == 426));
    }
}
