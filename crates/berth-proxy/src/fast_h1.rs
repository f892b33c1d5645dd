//! The HTTP/1.1 fast path: one task per client connection that parses requests itself,
//! writes them on a pooled connection to the target (plain TCP, TLS to the targets of an
//! HTTPS target group, or mutual TLS through a mesh hop, see [`crate::mesh::hop`]) and
//! copies the response back, with no per-request allocation of header maps, no hand-off
//! to a separate connection task and one write per direction for small messages.
//!
//! It serves the common case only and hands anything else to hyper: when a request is
//! not plain HTTP/1.1 or HTTP/1.0 with a Content-Length body or none
//! (`Transfer-Encoding`, an `Expect` other than `100-continue` on a body, `Expect` or
//! `Upgrade` from HTTP/1.0, an HTTP/1.0 request without Host, an `Upgrade` over TLS, to a
//! mesh group or with a body (a plain one is served by [`upgrade`]), a `Connection`
//! header naming other headers, an absolute-form target, an h2c preface, a parse error,
//! a head over the size limit), or when its action is not a forward to an HTTP/1.1
//! target group (HTTP or HTTPS, not HTTP/2), [`serve`] returns the connection with every
//! byte it has read and not answered, and hyper serves the rest of the connection from
//! that request on. So every error answer for malformed input (the
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
//! On a connection that closes after its response, the last bytes go out with the FIN in
//! one segment, and while a request arrives in parts the client's bytes are acknowledged
//! at once ([`last_write`], [`ClientIo`]).
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
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::attempt::{Attempts, Failure, Verdict};
use crate::context::{ConnCtx, ListenerShared, MAX_HEADER_BYTES};
use crate::elb_error;
use crate::h1_codec::{parse_response, Framing, Parsed, RespHead};
use crate::mesh::hop::UpConn;
use crate::pool::CONNECT_TIMEOUT;
use crate::read_buffers;
use crate::target::InFlight;

mod body_stream;
mod idle;
mod last_write;
pub(crate) use last_write::ClientIo;
mod plan;
use plan::{prepare, Plan, Prep};
mod prefixed;
pub(crate) mod response_head;
#[cfg(test)]
mod tests;
mod upgrade;
use idle::{read_idle, write_idle, Expired, Idle, Lull, Quiet};
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
    /// Quiet between requests for the park delay, with nothing read and nothing owed:
    /// the connection may wait without a task ([`crate::idle_set`]) for what is left of
    /// its idle timeout.
    Park { io: T, idle_left: Duration },
}

/// Serves HTTP/1.1 requests on `io` until the connection ends, a request needs hyper,
/// or (with `park_after`) the connection was quiet that long between requests.
pub(crate) async fn serve<T>(
    io: T,
    cx: &ConnCtx,
    stop: &mut watch::Receiver<bool>,
    idle_timeout: Duration,
    park_after: Option<Duration>,
) -> Exit<T>
where
    T: ClientIo,
{
    let clock = cx.listener.clock.clone();
    let park_ms = park_after.map_or(u64::MAX, |d| d.as_millis() as u64);
    // No buffer yet: each comes from the thread's pool when bytes arrive, and goes back
    // when the connection waits for its next request.
    let mut c = Conn {
        io,
        buf: BytesMut::new(),
        out: Vec::new(),
        up: BytesMut::new(),
        idle: Idle {
            sleep: Box::pin(tokio::time::sleep(
                idle_timeout.min(park_after.unwrap_or(idle_timeout)),
            )),
            last: clock.now_ms(),
            idle_ms: idle_timeout.as_millis() as u64,
            park_ms,
            clock,
        },
        peer: cx.peer.ip(),
        acking: false,
    };
    let header_timeout = cx.listener.routes.load().header_timeout;
    loop {
        // When the first bytes of the request being read arrived (clock millis): the
        // head is due within the header timeout of it, however the client trickles it.
        // Most heads arrive whole; the idle timer's touch after the read that brought
        // the first bytes already read the clock.
        let mut head_from_ms: Option<u64> = None;
        let plan = loop {
            if !c.buf.is_empty() {
                if c.out.capacity() == 0 {
                    c.out = read_buffers::take_vec();
                }
                match prepare(&c.buf, cx, &mut c.out) {
                    Prep::Forward(p) => break p,
                    Prep::Fallback => {
                        // hyper reads what is left of the request as it comes.
                        c.io.ack_quickly();
                        return Exit::Fallback(Prefixed::new(c.buf, c.io));
                    }
                    Prep::More if !c.acking => {
                        c.io.ack_quickly();
                        c.acking = true;
                    }
                    Prep::More => {}
                }
                if c.buf.len() >= MAX_HEADER_BYTES + MAX_BUFFERED_BODY {
                    c.io.ack_quickly();
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
                let from = *head_from_ms.get_or_insert_with(|| c.idle.clock.now_ms());
                let due = c.idle.clock.instant_at_ms(from) + header_timeout;
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
                        head_from_ms = Some(c.idle.last);
                    }
                }
                // The listener began closing while this connection waited: see above.
                Wait::Stop => {}
                Wait::Park => {
                    let quiet = c.idle.clock.now_ms().saturating_sub(c.idle.last);
                    let idle_left = Duration::from_millis(c.idle.idle_ms.saturating_sub(quiet));
                    c.release_buffers();
                    return Exit::Park {
                        io: c.io,
                        idle_left,
                    };
                }
                // End of stream, an error, the idle timeout or the listener stopping:
                // nothing is owed to the client.
                _ => return Exit::Closed,
            }
        };
        c.buf.advance(plan.len);
        // Boxed: forwarding's state is most of the connection's, and a connection
        // waiting for its next request holds none of it.
        let keep_open = if plan.upgrade {
            // Boxed on its own: an upgraded connection keeps this state for its life.
            Box::pin(upgrade::serve(&mut c, plan, cx, stop)).await
        } else {
            Box::pin(c.forward(plan, cx, stop)).await
        };
        if !keep_open {
            let _ = c.io.shutdown().await;
            return Exit::Closed;
        }
        c.acking = false;
        c.release_buffers();
    }
}

/// How a request's attempts ended: with a target's response head (at the start of the
/// connection's `up` buffer), or with the status of the error the client gets.
enum Outcome {
    Head(RespHead, UpConn, InFlight),
    Error(StatusCode),
}

enum Wait<R> {
    Done(R),
    Idle,
    Stop,
    /// Quiet between requests for the park delay.
    Park,
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
    /// The client was asked for quick acknowledgements while this request arrives in
    /// parts ([`ClientIo::ack_quickly`]). Asked again for the next request: the kernel
    /// delays acknowledgements again once the connection answers promptly.
    acking: bool,
}

impl<T: ClientIo> Conn<T> {
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
            lull = Quiet(&mut self.idle) => match lull {
                Lull::Park => Wait::Park,
                Lull::Expired => Wait::Idle,
            },
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
        let _ = self.write_client_last().await;
        let _ = self.io.shutdown().await;
    }

    /// Writes `out` to the client.
    async fn write_client(&mut self) -> Result<(), ()> {
        write_idle(&mut self.io, &self.out, &mut self.idle).await
    }

    /// Writes `out` to the client as the connection's last bytes: its shutdown comes
    /// next, and the FIN leaves with them.
    async fn write_client_last(&mut self) -> Result<(), ()> {
        write_idle(
            &mut last_write::Last(&mut self.io),
            &self.out,
            &mut self.idle,
        )
        .await
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
        if upload.pending > 0 {
            // The rest of the body streams in while the target reads it.
            self.io.ack_quickly();
        }
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
        // partly unread ends the connection, and so does an error to an HTTP/1.0 client.
        let close = plan.close || plan.client_http10 || upload.pending > 0 || *stop.borrow();
        elb_error::write(&mut self.out, status, &l.metrics, close);
        if close {
            let _ = self.write_client_last().await;
            return false;
        }
        self.write_client().await.is_ok()
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
                // Boxed: a connect's state is larger than the rest of the request's.
                None => match Box::pin(target.pool.connect_raw(CONNECT_TIMEOUT, self.peer)).await {
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
                    attempts.responded(target, head.status, start);
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
    /// Writes `self.out` to the target, unless nothing moves for the idle timeout
    /// (`None`).
    async fn send_out(&mut self, up: &mut UpConn) -> Option<io::Result<()>> {
        tokio::select! {
            biased;
            // The flush sends what a mesh hop's TLS layer holds back.
            r = async {
                up.write_all(&self.out).await?;
                up.flush().await
            } => Some(r),
            _ = Expired(&mut self.idle) => None,
        }
    }

    async fn exchange_head(
        &mut self,
        up: &mut UpConn,
        upload: &mut body_stream::Upload,
    ) -> Result<RespHead, Failure> {
        match self.send_out(up).await {
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
        // An HTTP/1.0 client cannot read chunked framing: it gets the data, and the
        // connection's close ends the body.
        let unchunk = plan.client_http10 && framing == Framing::Chunked;
        let close = plan.close
            || unfinished_upload
            || unchunk
            || framing == Framing::Close
            || *stop.borrow();
        self.out.clear();
        {
            let app_cookie = plan.affinity.app_cookie();
            let written = if unchunk {
                response_head::write_unchunked_for_client(
                    &mut self.out,
                    &self.up,
                    &head,
                    app_cookie,
                )
            } else {
                response_head::write_for_client(&mut self.out, &self.up, &head, app_cookie)
            };
            let Some(sets_app_cookie) = written else {
                return Err(());
            };
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
            } else if plan.client_http10 {
                self.out.extend_from_slice(b"connection: keep-alive\r\n");
            }
            self.out.extend_from_slice(b"\r\n");
        }
        self.up.advance(head.len);

        // The body: what is already here goes out with the head.
        // The client connection shuts down right after this response, unless the
        // client's unread body is drained first (`body_stream::linger`).
        let how = body_stream::Delivery {
            framing,
            unchunk,
            then_close: close && !unfinished_upload,
        };
        let sent = body_stream::response(
            &mut self.io,
            &mut up,
            &mut self.up,
            &mut self.out,
            &mut self.idle,
            how,
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
