//! The edge gate of HTTP/1 client connections served by hyper: every byte hyper reads
//! from a client passes through [`Guarded`] first, which follows the request framing
//! (head, then a fixed-length or chunked body, then the next head) and holds each request
//! head back until it is complete and has passed [`crate::edge::check_head`]. A refused
//! head never reaches hyper: the connection reads as ended after the requests before it,
//! hyper answers those and shuts the connection down, and the gate writes the refusal's
//! answer (the status [`crate::edge`] chose, with `connection: close`) just before the
//! shutdown. So nothing of a refused request reaches a target, and hyper's own, more
//! lenient, parse never sees it.
//!
//! Chunked bodies are judged as they stream ([`crate::edge::chunked`]). A fault found in
//! the same read as its request's head refuses the request as a refused head would; a
//! fault found later (the head went on already) ends the connection without an answer,
//! so the target sees an incomplete request, never a smuggled one.
//!
//! After an HTTP/2 preface the gate stops looking. After a request asking for an upgrade
//! it reads nothing more until the answer's status line goes out through it: a 101 means
//! another protocol follows and the gate stops looking; any other final status means
//! HTTP/1 goes on and so does the gate (an upgrade a target declines is no way around
//! it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::context::{ListenerShared, MAX_HEADER_BYTES};
use crate::edge::chunked::ChunkedScan;
use crate::edge::{check_head, BodyFraming, Rejection};
use crate::read_buffers;

#[derive(Debug, Clone)]
enum State {
    /// Collecting a request head until its empty line.
    Head,
    /// Passing this many body bytes.
    Body(u64),
    Chunked(ChunkedScan),
    /// An upgrade was asked for: bytes are held (in `head`) until the answer shows
    /// whether the protocol switches.
    AwaitUpgrade,
    /// No more framing to follow (HTTP/2, or an upgrade).
    Opaque,
}

/// A request the gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub rejection: Rejection,
    /// No byte of the refused request went on, so the client can be answered.
    pub answerable: bool,
}

/// Follows the request framing of one client connection.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    /// The head being collected.
    head: Vec<u8>,
    /// Where in this feed's output the message being read begins, when it begins in it.
    msg_start: Option<usize>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Head,
            head: Vec::new(),
            msg_start: None,
        }
    }
}

impl Scanner {
    /// Follows `bytes`, the next bytes read from the client, appending to `out` those that
    /// may go on. On a refusal `out` ends where the refused request began (or holds nothing
    /// more of it than earlier feeds let through, when it is not answerable).
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Refusal> {
        let feed_start = out.len();
        self.msg_start = matches!(self.state, State::Head).then_some(feed_start);
        if let Err(rejection) = self.feed_inner(&mut bytes, out) {
            // A request that began in this feed has not gone on at all; one that began
            // earlier loses what this feed added of it.
            let answerable = self.msg_start.is_some();
            out.truncate(self.msg_start.unwrap_or(feed_start));
            self.state = State::Opaque;
            return Err(Refusal {
                rejection,
                answerable,
            });
        }
        Ok(())
    }

    /// No framing is followed any more (HTTP/2, or an upgrade the target accepted):
    /// every byte passes as it is.
    pub fn opaque(&self) -> bool {
        matches!(self.state, State::Opaque)
    }

    /// An upgrade request awaits its answer: nothing more should be read meanwhile.
    pub fn awaiting_upgrade(&self) -> bool {
        matches!(self.state, State::AwaitUpgrade)
    }

    /// The answer to an upgrade request has this status: 101 lets the held bytes and
    /// everything after them through unexamined; another final status resumes following
    /// HTTP/1 from the held bytes on (appending to `out` what passes).
    pub fn upgrade_answered(&mut self, status: u16, out: &mut Vec<u8>) -> Result<(), Refusal> {
        if !self.awaiting_upgrade() || (100..200).contains(&status) && status != 101 {
            return Ok(());
        }
        let held = std::mem::take(&mut self.head);
        if status == 101 {
            self.state = State::Opaque;
            out.extend_from_slice(&held);
            return Ok(());
        }
        self.state = State::Head;
        self.feed(&held, out)
    }

    /// Some of a request head was read and it is not complete yet.
    pub fn collecting_head(&self) -> bool {
        matches!(self.state, State::Head) && !self.head.is_empty()
    }

    fn feed_inner(&mut self, bytes: &mut &[u8], out: &mut Vec<u8>) -> Result<(), Rejection> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Opaque => {
                    out.extend_from_slice(bytes);
                    return Ok(());
                }
                State::AwaitUpgrade => {
                    self.head.extend_from_slice(bytes);
                    return Ok(());
                }
                State::Head => {
                    let start = self.head.len().saturating_sub(3);
                    let Some(take) = find_head_end(&self.head[start..], bytes) else {
                        self.head.extend_from_slice(bytes);
                        if self.head.len() > MAX_HEADER_BYTES {
                            return Err(Rejection {
                                status: 431,
                                rule: "request head larger than the limit",
                            });
                        }
                        return Ok(());
                    };
                    self.head.extend_from_slice(&bytes[..take]);
                    *bytes = &bytes[take..];
                    let head = std::mem::take(&mut self.head);
                    self.msg_start = Some(out.len());
                    self.state = if head.starts_with(b"PRI * HTTP/2.0\r\n") {
                        State::Opaque
                    } else {
                        match check_head(&head)? {
                            BodyFraming::None => State::Head,
                            BodyFraming::Length(n) => State::Body(n),
                            BodyFraming::Chunked => State::Chunked(ChunkedScan::default()),
                            BodyFraming::Upgrade => State::AwaitUpgrade,
                        }
                    };
                    out.extend_from_slice(&head);
                    self.head = head;
                    self.head.clear();
                    if matches!(self.state, State::Head) {
                        self.msg_start = Some(out.len());
                    }
                }
                State::Body(n) => {
                    let k = (bytes.len() as u64).min(*n) as usize;
                    out.extend_from_slice(&bytes[..k]);
                    *bytes = &bytes[k..];
                    *n -= k as u64;
                    if *n == 0 {
                        self.state = State::Head;
                        self.msg_start = Some(out.len());
                    }
                }
                State::Chunked(scan) => match scan.feed(bytes)? {
                    Some(k) => {
                        out.extend_from_slice(&bytes[..k]);
                        *bytes = &bytes[k..];
                        self.state = State::Head;
                        self.msg_start = Some(out.len());
                    }
                    None => {
                        out.extend_from_slice(bytes);
                        return Ok(());
                    }
                },
            }
        }
        Ok(())
    }
}

/// How many bytes of `next` complete a head whose last collected bytes are `tail`
/// (at most 3), if they do: the head ends at an empty line (`\r\n\r\n`, or `\n\n`, which
/// the head check then refuses).
fn find_head_end(tail: &[u8], next: &[u8]) -> Option<usize> {
    let mut prev: [u8; 3] = [0; 3];
    for (i, b) in tail.iter().enumerate() {
        prev[3 - tail.len() + i] = *b;
    }
    for (i, &b) in next.iter().enumerate() {
        if b == b'\n' && (prev[2] == b'\n' || (prev[2] == b'\r' && prev[1] == b'\n')) {
            return Some(i + 1);
        }
        prev = [prev[1], prev[2], b];
    }
    None
}

/// A client connection whose read bytes pass the edge gate (see the module's text).
pub(crate) struct Guarded<IO> {
    io: IO,
    scanner: Scanner,
    /// Bytes that passed and hyper has not read yet, from `ready_pos` on. No capacity
    /// while there are none (a quiet connection holds no buffer).
    ready: Vec<u8>,
    ready_pos: usize,
    /// A request was refused: the connection reads as ended after what passed before it.
    refused: bool,
    /// The answer to the refused request, written before the connection shuts down.
    answer: Vec<u8>,
    answer_pos: usize,
    listener: Arc<ListenerShared>,
    /// How long a request head may take from its first byte (408 beyond).
    header_timeout: Duration,
    /// Armed while a head is being collected.
    head_timer: Option<Pin<Box<Sleep>>>,
    /// The reader parked while an upgrade request awaits its answer.
    parked: Option<Waker>,
}

impl<IO> Guarded<IO> {
    pub(crate) fn new(io: IO, listener: Arc<ListenerShared>, header_timeout: Duration) -> Self {
        Guarded {
            io,
            scanner: Scanner::default(),
            ready: Vec::new(),
            ready_pos: 0,
            refused: false,
            answer: Vec::new(),
            answer_pos: 0,
            listener,
            header_timeout,
            head_timer: None,
            parked: None,
        }
    }

    /// Sees the first bytes of a write: while an upgrade request awaits its answer, the
    /// answer's status line decides what the gate does with what follows.
    fn saw_write(&mut self, bytes: &[u8]) {
        if !self.scanner.awaiting_upgrade() || bytes.len() < 12 || !bytes.starts_with(b"HTTP/1.") {
            return;
        }
        let Some(status) = std::str::from_utf8(&bytes[9..12])
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
        else {
            return;
        };
        if let Err(refusal) = self.scanner.upgrade_answered(status, &mut self.ready) {
            self.refuse(refusal);
        }
        if !self.scanner.awaiting_upgrade() {
            if let Some(w) = self.parked.take() {
                w.wake();
            }
        }
    }

    /// Refuses the request being read: the connection reads as ended after what passed,
    /// and the answer (when owed) goes out before the shutdown.
    fn refuse(&mut self, refusal: Refusal) {
        self.refused = true;
        self.head_timer = None;
        let l = &self.listener;
        l.metrics.requests.inc();
        tracing::debug!(
            status = refusal.rejection.status,
            rule = refusal.rejection.rule,
            "request refused at the edge"
        );
        if refusal.answerable {
            let status =
                StatusCode::from_u16(refusal.rejection.status).unwrap_or(StatusCode::BAD_REQUEST);
            crate::elb_error::write(&mut self.answer, status, &l.metrics, true);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            if me.ready_pos < me.ready.len() {
                let n = (me.ready.len() - me.ready_pos).min(buf.remaining());
                buf.put_slice(&me.ready[me.ready_pos..me.ready_pos + n]);
                me.ready_pos += n;
                if me.ready_pos == me.ready.len() {
                    read_buffers::give_vec(&mut me.ready);
                    me.ready_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if me.refused || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if me.scanner.awaiting_upgrade() {
                me.parked = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if me.scanner.opaque() {
                // Nothing left to follow (HTTP/2, an upgraded protocol): bytes go
                // straight to the reader, without a copy or a buffer of the gate's.
                return Pin::new(&mut me.io).poll_read(cx, buf);
            }
            // The read borrows a pooled buffer, given back once its bytes are fed.
            let mut scratch = BytesMut::new();
            match read_buffers::poll_read_pooled(&mut me.io, cx, &mut scratch) {
                Poll::Pending => {
                    let expired = me
                        .head_timer
                        .as_mut()
                        .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                    if !expired {
                        return Poll::Pending;
                    }
                    me.refuse(Refusal {
                        rejection: Rejection {
                            status: 408,
                            rule: "request head not complete within the header timeout",
                        },
                        answerable: true,
                    });
                    continue;
                }
                Poll::Ready(r) => r?,
            };
            if scratch.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if me.ready.capacity() == 0 {
                me.ready = read_buffers::take_vec();
            }
            let fed = me.scanner.feed(&scratch, &mut me.ready);
            read_buffers::give(&mut scratch);
            if let Err(refusal) = fed {
                me.refuse(refusal);
            } else if !me.scanner.collecting_head() {
                me.head_timer = None;
            } else if me.head_timer.is_none() {
                // Armed at the head's first byte: trickling it does not move the deadline.
                me.head_timer = Some(Box::pin(tokio::time::sleep_until(
                    Instant::now() + me.header_timeout,
                )));
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.saw_write(buf);
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            self.saw_write(first);
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        while me.answer_pos < me.answer.len() {
            let n = ready!(Pin::new(&mut me.io).poll_write(cx, &me.answer[me.answer_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            me.answer_pos += n;
        }
        ready!(Pin::new(&mut me.io).poll_flush(cx))?;
        Pin::new(&mut me.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
