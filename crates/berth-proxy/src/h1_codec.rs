//! HTTP/1.1 at the byte level, as the fast path speaks it to targets and clients (and
//! the hyper path to plain HTTP/1.1 targets for HTTP/2 clients): Content-Length values,
//! response heads and their body framing, where a chunked body ends, the data of a
//! chunked body, and status and header lines written into a buffer.
//!
//! Pure functions over byte slices: no I/O, no routing, no headers policy (which headers
//! the proxy adds or drops is [`crate::forwarded`]'s).

use std::mem::MaybeUninit;

use http::StatusCode;

/// Response headers accepted from a target.
pub(crate) const MAX_RESPONSE_HEADERS: usize = 128;

/// A Content-Length value: digits only.
pub(crate) fn parse_len(v: &[u8]) -> Option<usize> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        v.iter()
            .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')),
    )
}

/// Whether `n` (any case) names a hop-by-hop field (Connection, Keep-Alive,
/// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade): a switch on the length
/// first, as the fast path asks it of every header.
#[inline]
pub(crate) fn is_hop_by_hop(n: &[u8]) -> bool {
    match n.len() {
        2 => n.eq_ignore_ascii_case(b"te"),
        7 => n.eq_ignore_ascii_case(b"trailer") || n.eq_ignore_ascii_case(b"upgrade"),
        10 => n.eq_ignore_ascii_case(b"connection") || n.eq_ignore_ascii_case(b"keep-alive"),
        16 => n.eq_ignore_ascii_case(b"proxy-connection"),
        17 => n.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    }
}

/// Writes one `name: value` header line.
#[inline]
pub(crate) fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The framing of a target's response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Ends when the target closes the connection.
    Close,
}

pub(crate) struct RespHead {
    /// Bytes of the head.
    pub(crate) len: usize,
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// The target keeps the connection open after this response.
    pub(crate) keep_alive: bool,
    /// Set when the head can go to the client as it is, less its hop-by-hop lines.
    pub(crate) copy: Option<HeadCopy>,
    /// A `Set-Cookie` field is present.
    pub(crate) sets_cookie: bool,
}

/// Hop-by-hop field lines a canonical head may carry and still be copied.
const MAX_HOP_LINES: usize = 4;

/// A head that is byte for byte what [`write_status`] and [`put_header`] write from its
/// status, reason and fields (an `HTTP/1.1` status line with a reason phrase, each field
/// as `name: value` with no other whitespace, every line ended by CRLF), whose
/// Connection field names no field but `close` and `keep-alive`, with where its
/// hop-by-hop lines are (Transfer-Encoding is not counted: the body passes through as
/// the target framed it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadCopy {
    hop_lines: [(u32, u32); MAX_HOP_LINES],
    count: u8,
}

impl HeadCopy {
    /// The byte ranges of the hop-by-hop field lines, CRLF included, in order.
    pub(crate) fn hop_lines(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.hop_lines[..usize::from(self.count)]
            .iter()
            .map(|&(s, e)| s as usize..e as usize)
    }

    /// Adds a line; false when there are too many to keep.
    fn push(&mut self, line: std::ops::Range<usize>) -> bool {
        let Some(slot) = self.hop_lines.get_mut(usize::from(self.count)) else {
            return false;
        };
        *slot = (line.start as u32, line.end as u32);
        self.count += 1;
        true
    }
}

/// What [`parse_response`] found at the start of a buffer.
pub(crate) enum Parsed {
    More,
    Bad,
    /// An interim (1xx) response of this many bytes, dropped.
    Interim(usize),
    Head(RespHead),
}

/// Parses a response head at the start of `buf`.
pub(crate) fn parse_response(buf: &[u8]) -> Parsed {
    // Left uninitialized: httparse writes the fields it finds (no 4 KiB to zero per head).
    let mut headers =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
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
    let mut sets_cookie = false;
    let mut copy = Some(HeadCopy {
        hop_lines: [(0, 0); MAX_HOP_LINES],
        count: 0,
    });
    // Where the next line starts while the head is canonical so far.
    let mut line = canonical_status_line(buf, &resp);
    for h in resp.headers.iter() {
        let n = h.name.as_bytes();
        let start = line;
        line = line.and_then(|at| canonical_field(buf, at, h));
        if n.eq_ignore_ascii_case(b"content-length") {
            let Some(v) = parse_len(h.value) else {
                return Parsed::Bad;
            };
            if length.is_some_and(|l| l != v as u64) {
                return Parsed::Bad;
            }
            length = Some(v as u64);
            continue;
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            continue;
        } else if n.eq_ignore_ascii_case(b"set-cookie") {
            sets_cookie = true;
            continue;
        } else if n.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive |= resp.version == Some(0);
                } else if !t.is_empty() {
                    // It names a field to drop: the head is written field by field.
                    copy = None;
                }
            }
        } else if !is_hop_by_hop(n) {
            continue;
        }
        // A hop-by-hop line: the copy leaves it out.
        if let (Some(c), Some(s), Some(e)) = (copy.as_mut(), start, line) {
            if !c.push(s..e) {
                copy = None;
            }
        }
    }
    // The blank line ends the head right where the last field's line ended.
    if !line.is_some_and(|at| at + 2 == len && buf.get(at..len) == Some(b"\r\n")) {
        copy = None;
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
        copy,
        sets_cookie,
    })
}

/// Where a slice of `buf` starts in it (httparse's slices point into the buffer).
fn offset_in(buf: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize)
}

/// The offset of the first field line when the status line is `HTTP/1.1 NNN reason\r\n`
/// with a non-empty reason, as [`write_status`] writes it.
fn canonical_status_line(buf: &[u8], resp: &httparse::Response<'_, '_>) -> Option<usize> {
    const PREFIX: usize = b"HTTP/1.1 200 ".len();
    // Three digits as written (a code below 100 would be written without its zero).
    resp.code.filter(|&c| c >= 100)?;
    let reason = resp.reason.filter(|r| !r.is_empty())?;
    if !buf.starts_with(b"HTTP/1.1 ") || offset_in(buf, reason.as_bytes()) != PREFIX {
        return None;
    }
    let end = PREFIX + reason.len();
    (buf.get(end..end + 2) == Some(b"\r\n")).then_some(end + 2)
}

/// The offset of the next line when the field line at `at` is `name: value\r\n` with a
/// non-empty value, as [`put_header`] writes it.
fn canonical_field(buf: &[u8], at: usize, h: &httparse::Header<'_>) -> Option<usize> {
    let name = h.name.len();
    if h.value.is_empty()
        || offset_in(buf, h.name.as_bytes()) != at
        || buf.get(at + name..at + name + 2) != Some(b": ")
        || offset_in(buf, h.value) != at + name + 2
    {
        return None;
    }
    let end = at + name + 2 + h.value.len();
    (buf.get(end..end + 2) == Some(b"\r\n")).then_some(end + 2)
}

/// Writes an HTTP/1.1 status line; an empty `reason` is replaced by the canonical one.
pub(crate) fn write_status(out: &mut Vec<u8>, status: u16, reason: &str) {
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

/// Follows a chunked body to find where it ends (after the last chunk and trailers).
#[derive(Default)]
pub(crate) struct ChunkedEnd {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy)]
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
    /// The empty line after the trailers: the body has ended.
    End,
}

impl ChunkState {
    /// The state after byte `b` of the framing: a chunk-size line, the line end after a
    /// chunk's data, trailer lines. `Data` is each caller's own (it moves in runs of bytes),
    /// as is what follows `End`.
    fn after_framing_byte(self, b: u8) -> Result<ChunkState, ()> {
        use ChunkState::*;
        Ok(match self {
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
                b'\n' if empty => End,
                b'\n' => TrailerLineStart,
                _ => return Err(()),
            },
            Data(_) | End => return Err(()),
        })
    }
}

impl ChunkedEnd {
    /// Follows `bytes`, the next bytes of the body. `Ok(Some(n))` when the body ends
    /// after `n` of them; `Err` for a malformed body.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        while i < bytes.len() {
            if let ChunkState::Data(n) = self.state {
                let k = ((bytes.len() - i) as u64).min(n);
                i += k as usize;
                self.state = if k == n {
                    ChunkState::DataCr
                } else {
                    ChunkState::Data(n - k)
                };
                continue;
            }
            self.state = self.state.after_framing_byte(bytes[i])?;
            if let ChunkState::End = self.state {
                return Ok(Some(i + 1));
            }
            i += 1;
        }
        Ok(None)
    }
}

/// What [`ChunkedDecoder::step`] found at the start of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// All the bytes were framing (sizes, extensions, line ends): drop them and read
    /// more.
    More,
    /// `skip` bytes of framing, then `len` bytes of chunk data.
    Data { skip: usize, len: usize },
    /// The last chunk (size 0) ended after this many bytes; the trailer section (or the
    /// empty line that ends the body) follows.
    Last(usize),
}

/// Decodes a chunked body: finds the chunk data among the framing. Trailers are not its
/// business: after [`Chunk::Last`] the caller reads the trailer section as header lines.
#[derive(Debug, Default)]
pub(crate) struct ChunkedDecoder {
    /// Never in the trailer states: the decoder stops at the end of the last chunk's size
    /// line.
    state: ChunkState,
}

impl ChunkedDecoder {
    /// Follows `bytes`, the body's next bytes, up to the first chunk data or the end of
    /// the last chunk's size line. `Err` for a malformed body.
    pub(crate) fn step(&mut self, bytes: &[u8]) -> Result<Chunk, ()> {
        for (i, &b) in bytes.iter().enumerate() {
            if let ChunkState::Data(n) = self.state {
                let len = ((bytes.len() - i) as u64).min(n);
                self.state = if len == n {
                    ChunkState::DataCr
                } else {
                    ChunkState::Data(n - len)
                };
                return Ok(Chunk::Data {
                    skip: i,
                    len: len as usize,
                });
            }
            self.state = self.state.after_framing_byte(b)?;
            if let ChunkState::TrailerLineStart = self.state {
                self.state = ChunkState::Size;
                return Ok(Chunk::Last(i + 1));
            }
        }
        Ok(Chunk::More)
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
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

    /// Decodes `parts` (the body's bytes as they arrive) to its data and the bytes
    /// after the last chunk's size line.
    fn decode(parts: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>), ()> {
        let mut d = ChunkedDecoder::default();
        let mut data = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            pending.extend_from_slice(part);
            loop {
                match d.step(&pending)? {
                    Chunk::More => {
                        pending.clear();
                        break;
                    }
                    Chunk::Data { skip, len } => {
                        assert!(len > 0);
                        data.extend_from_slice(&pending[skip..skip + len]);
                        pending.drain(..skip + len);
                    }
                    Chunk::Last(n) => {
                        let mut rest = pending[n..].to_vec();
                        rest.extend(parts[i + 1..].iter().copied().flatten());
                        return Ok((data, rest));
                    }
                }
            }
        }
        Err(())
    }

    #[test]
    fn chunked_data_is_decoded_across_reads() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        let want = (b"hello world".to_vec(), b"x-trailer: 1\r\n\r\n".to_vec());
        assert_eq!(decode(&[body]), Ok(want.clone()));
        for cut in 1..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(decode(&[a, b]), Ok(want.clone()), "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(decode(&bytes), Ok(want));
        assert_eq!(decode(&[b"0\r\n\r\n"]), Ok((vec![], b"\r\n".to_vec())));
        assert_eq!(
            decode(&[b"A\r\n0123456789\r\n0\r\n"]),
            Ok((b"0123456789".to_vec(), vec![]))
        );
    }

    #[test]
    fn malformed_chunked_data_is_refused() {
        assert_eq!(decode(&[b"zz\r\n"]), Err(()));
        assert_eq!(decode(&[b"5\r\nhelloXX"]), Err(()));
        assert_eq!(decode(&[b"5\n"]), Err(()));
        assert_eq!(decode(&[b"5;x\n"]), Err(()));
        assert_eq!(decode(&[b"fffffffffffffffff\r\n"]), Err(()));
        // Not malformed, only unfinished.
        assert_eq!(decode(&[b"5\r\nhel"]), Err(()));
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
