//! A target's HTTP/1.1 response body read from its raw connection as an HTTP body
//! ([`RawBody`]), for the hyper path's requests that [`crate::hyper_path`] sends on the
//! fast path's pooled connections: by Content-Length, chunked (decoded, its trailers
//! passed on as HTTP/2 trailers) or until the target closes. The connection goes back to
//! its pool when the body ended cleanly. It writes no request and parses no response
//! head ([`crate::h1_codec`] does).

use std::io;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use prometheus::IntCounter;

use crate::context::MAX_HEADER_BYTES;
use crate::forwarded;
use crate::h1_codec::{Chunk, ChunkedDecoder, Framing};
use crate::mesh::hop::UpConn;
use crate::read_buffers;
use crate::target::InFlight;

/// Trailer fields accepted at the end of a chunked response.
const MAX_TRAILERS: usize = 64;

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
    /// The body of a response whose head was read from `conn`; `buf` holds the bytes read
    /// behind the head.
    pub(crate) fn new(
        conn: UpConn,
        buf: BytesMut,
        framing: Framing,
        keep_alive: bool,
        in_flight: InFlight,
        bytes: IntCounter,
        mesh_bytes: Option<IntCounter>,
    ) -> RawBody {
        let state = match framing {
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::default()),
            _ => State::Close,
        };
        RawBody {
            conn: Some(conn),
            buf,
            state,
            keep_alive,
            in_flight: Some(in_flight),
            bytes,
            mesh_bytes,
        }
    }

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
