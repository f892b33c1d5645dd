//! Request-smuggling guard for HTTP/1 client connections.
//!
//! hyper resolves a request carrying both `Content-Length` and `Transfer-Encoding` the
//! way RFC 9112 §6.1 allows an intermediary to: it drops the length, reads the body as
//! chunked and closes the connection afterwards, and it does not tell the handler that the
//! length was there. An ALB in its strictest desync-mitigation mode refuses such requests,
//! and so does berth: [`Guarded`] wraps the client stream and follows the request framing
//! in the bytes hyper reads (head, then a fixed-length or chunked body, then the next
//! head), and raises a flag when a head carries both headers. The handler answers 400 to
//! any request read while the flag is up, before anything reaches a target.
//!
//! The scanner looks at header names only at line starts and skips body bytes in bulk, so
//! it costs little next to hyper's own parse. After a CONNECT or an `Upgrade` request it
//! stops looking (what follows may be another protocol); a head longer than hyper accepts
//! also ends the scan (hyper refuses it with 431 anyway).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Heads longer than this end the scan (hyper's own limit is lower).
const MAX_HEAD: usize = 1 << 20;

/// Set once a request head on the connection carried both Content-Length and
/// Transfer-Encoding.
pub(crate) type Conflict = Arc<AtomicBool>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Collecting a request head until its empty line.
    Head,
    /// Skipping this many body bytes.
    Body(u64),
    /// In a chunked body: reading a chunk-size line.
    ChunkSize {
        size: u64,
        digits: bool,
        ext: bool,
    },
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    ChunkDataEnd,
    /// Reading trailer lines after the last chunk, until an empty one.
    Trailers {
        line_empty: bool,
    },
    /// No more framing to follow (an upgrade, or something unparseable).
    Opaque,
}

#[derive(Debug)]
pub(crate) struct Scanner {
    state: State,
    head: Vec<u8>,
    conflict: Conflict,
}

impl Scanner {
    pub(crate) fn new(conflict: Conflict) -> Self {
        Scanner {
            state: State::Head,
            head: Vec::new(),
            conflict,
        }
    }

    /// Follows `bytes`, the next bytes read from the client.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state.clone() {
                State::Opaque => return,
                State::Head => {
                    // Find the end of the head, counting what is already collected.
                    let start = self.head.len().saturating_sub(3);
                    let take = match find_head_end(&self.head[start..], bytes) {
                        Some(n) => n,
                        None => {
                            self.head.extend_from_slice(bytes);
                            if self.head.len() > MAX_HEAD {
                                self.state = State::Opaque;
                            }
                            return;
                        }
                    };
                    self.head.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    let head = std::mem::take(&mut self.head);
                    self.state = self.after_head(&head);
                }
                State::Body(n) => {
                    let k = (bytes.len() as u64).min(n);
                    bytes = &bytes[k as usize..];
                    self.state = if n == k {
                        State::Head
                    } else {
                        State::Body(n - k)
                    };
                }
                State::ChunkSize { size, digits, ext } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    self.state = match b {
                        b'\n' if digits => {
                            if size == 0 {
                                State::Trailers { line_empty: true }
                            } else {
                                State::ChunkData(size)
                            }
                        }
                        b'\r' => State::ChunkSize { size, digits, ext },
                        _ if ext => State::ChunkSize { size, digits, ext },
                        b';' | b' ' | b'\t' if digits => State::ChunkSize {
                            size,
                            digits,
                            ext: true,
                        },
                        _ => match (b as char).to_digit(16) {
                            Some(d) if size <= u64::MAX >> 4 => State::ChunkSize {
                                size: size * 16 + u64::from(d),
                                digits: true,
                                ext,
                            },
                            // Malformed: hyper refuses it; nothing more to follow.
                            _ => State::Opaque,
                        },
                    };
                }
                State::ChunkData(n) => {
                    let k = (bytes.len() as u64).min(n);
                    bytes = &bytes[k as usize..];
                    self.state = if n == k {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(n - k)
                    };
                }
                State::ChunkDataEnd => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    self.state = match b {
                        b'\r' => State::ChunkDataEnd,
                        b'\n' => State::ChunkSize {
                            size: 0,
                            digits: false,
                            ext: false,
                        },
                        _ => State::Opaque,
                    };
                }
                State::Trailers { line_empty } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    self.state = match b {
                        b'\n' if line_empty => State::Head,
                        b'\n' => State::Trailers { line_empty: true },
                        b'\r' => State::Trailers { line_empty },
                        _ => State::Trailers { line_empty: false },
                    };
                }
            }
        }
    }

    /// Inspects a complete head and returns the state for what follows it.
    fn after_head(&mut self, head: &[u8]) -> State {
        let mut lines = head.split(|b| *b == b'\n');
        let request_line = lines.next().unwrap_or_default();
        // CONNECT tunnels, and HTTP/2 (its preface looks like a head), carry no HTTP/1
        // framing after this.
        if request_line.starts_with(b"CONNECT ") || request_line.starts_with(b"PRI * HTTP/2") {
            return State::Opaque;
        }
        let (mut length, mut te, mut chunked, mut upgrade) = (None::<u64>, false, false, false);
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = (trim(&line[..colon]), trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"content-length") {
                match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                    Some(n) => length = Some(n),
                    None => return State::Opaque,
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                te = true;
                let last = value
                    .rsplit(|b| *b == b',')
                    .next()
                    .map(trim)
                    .unwrap_or_default();
                chunked = last.eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                upgrade = true;
            }
        }
        if te && length.is_some() {
            self.conflict.store(true, Ordering::Release);
        }
        if upgrade {
            State::Opaque
        } else if te {
            if chunked {
                State::ChunkSize {
                    size: 0,
                    digits: false,
                    ext: false,
                }
            } else {
                State::Opaque
            }
        } else {
            match length {
                Some(0) | None => State::Head,
                Some(n) => State::Body(n),
            }
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// How many bytes of `next` complete a head whose last collected bytes are `tail`
/// (at most 3), if they do: the head ends at an empty line (`\r\n\r\n` or `\n\n`).
fn find_head_end(tail: &[u8], next: &[u8]) -> Option<usize> {
    // A leading empty line before a request line is allowed and skipped by hyper; treat
    // it as part of the head (it only delays the end).
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

/// A client stream whose read bytes feed a [`Scanner`].
pub(crate) struct Guarded<IO> {
    io: IO,
    scanner: Scanner,
}

impl<IO> Guarded<IO> {
    pub(crate) fn new(io: IO, conflict: Conflict) -> Self {
        Guarded {
            io,
            scanner: Scanner::new(conflict),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let me = &mut *self;
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            me.scanner.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(input: &[u8], piece: usize) -> (bool, State) {
        let flag = Conflict::default();
        let mut s = Scanner::new(flag.clone());
        for c in input.chunks(piece) {
            s.feed(c);
        }
        (flag.load(Ordering::Acquire), s.state)
    }

    fn scan(input: &[u8]) -> bool {
        // Every split of the input must give the same verdict.
        let whole = scan_in_pieces(input, input.len().max(1));
        for piece in 1..input.len().min(40) {
            assert_eq!(scan_in_pieces(input, piece), whole, "piece size {piece}");
        }
        whole.0
    }

    #[test]
    fn plain_requests_pass() {
        assert!(!scan(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
        ));
        assert!(!scan(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n"
        ));
    }

    #[test]
    fn both_headers_raise_the_flag_in_either_order() {
        assert!(scan(
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
        assert!(scan(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n"
        ));
    }

    #[test]
    fn a_smuggled_head_inside_a_body_is_not_a_head() {
        // The second "request" is body bytes of the first: no conflict.
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut req =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        req.extend_from_slice(body);
        assert!(!scan(&req));
    }

    #[test]
    fn chunked_bodies_are_followed_to_the_next_head() {
        let mut req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(b"5;ext=1\r\nhello\r\na\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n");
        let (flag, state) = scan_in_pieces(&req, 3);
        assert!(!flag);
        assert_eq!(state, State::Head);
        req.extend_from_slice(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(scan(&req));
    }

    #[test]
    fn http2_prior_knowledge_ends_the_scan() {
        let (flag, state) = scan_in_pieces(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", 5);
        assert!(!flag);
        assert_eq!(state, State::Opaque);
    }

    #[test]
    fn upgrades_end_the_scan() {
        let mut req =
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n".to_vec();
        req.extend_from_slice(b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        let (flag, state) = scan_in_pieces(&req, 7);
        assert!(!flag);
        assert_eq!(state, State::Opaque);
    }
}
