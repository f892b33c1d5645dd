//! A chunked request body judged as it streams (RFC 9112 §7.1): chunk-size lines with
//! optional extensions, chunk data followed by CRLF, the last chunk, trailer fields and
//! the empty line that ends the body. Chunk data is skipped in bulk.

use super::{field_line, is_tchar, reject, Rejection, MAX_CHUNK_EXTENSION, MAX_HEADER_FIELDS};
use crate::context::MAX_HEADER_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line.
    Size,
    SizeDigits(u64),
    /// Whitespace after the size or inside an extension, before `;`.
    ExtBeforeSemi(u64),
    /// After `;`: whitespace, then an extension name.
    ExtBeforeName(u64),
    ExtName(u64),
    /// After a name: whitespace, then `=`, `;` or the line's end.
    ExtAfterName(u64),
    /// After `=`: whitespace, then a token or a quoted string.
    ExtBeforeValue(u64),
    ExtToken(u64),
    ExtQuoted(u64),
    ExtQuotedEscape(u64),
    /// A CR ended the chunk-size line; LF must follow.
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    TrailerLf,
    Done,
}

/// Follows one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedScan {
    state: State,
    /// Bytes of extensions on the current chunk-size line.
    ext_len: usize,
    /// The trailer line being collected.
    line: Vec<u8>,
    trailer_bytes: usize,
    trailer_fields: usize,
}

impl Default for ChunkedScan {
    fn default() -> Self {
        ChunkedScan {
            state: State::Size,
            ext_len: 0,
            line: Vec::new(),
            trailer_bytes: 0,
            trailer_fields: 0,
        }
    }
}

/// Trailer fields that could change how the message is framed or routed.
const FORBIDDEN_TRAILERS: [&[u8]; 4] =
    [b"content-length", b"transfer-encoding", b"host", b"trailer"];

impl ChunkedScan {
    /// Follows `bytes`, the next bytes of the body. `Ok(Some(n))` when the body ends after
    /// `n` of them, `Ok(None)` when it goes on.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, Rejection> {
        use State::*;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if let Data(n) = self.state {
                let k = ((bytes.len() - i) as u64).min(n);
                i += k as usize;
                self.state = if k == n { DataCr } else { Data(n - k) };
                continue;
            }
            if matches!(
                self.state,
                ExtBeforeSemi(_)
                    | ExtBeforeName(_)
                    | ExtName(_)
                    | ExtAfterName(_)
                    | ExtBeforeValue(_)
                    | ExtToken(_)
                    | ExtQuoted(_)
                    | ExtQuotedEscape(_)
            ) {
                self.ext_len += 1;
                if self.ext_len > MAX_CHUNK_EXTENSION {
                    return Err(reject(400, "chunk extension longer than the limit"));
                }
            }
            self.state = match (self.state.clone(), b) {
                (Size, _) => match hex(b) {
                    Some(d) => SizeDigits(d),
                    None => return Err(reject(400, "chunk-size is not hexadecimal")),
                },
                (SizeDigits(n), _) if hex(b).is_some() => {
                    let d = hex(b).unwrap_or_default();
                    match n.checked_mul(16).and_then(|n| n.checked_add(d)) {
                        Some(n) => SizeDigits(n),
                        None => return Err(reject(413, "chunk-size too large")),
                    }
                }
                (SizeDigits(n) | ExtBeforeSemi(n), b' ' | b'\t') => ExtBeforeSemi(n),
                (SizeDigits(n) | ExtBeforeSemi(n) | ExtAfterName(n) | ExtToken(n), b';') => {
                    ExtBeforeName(n)
                }
                (ExtBeforeName(n), b' ' | b'\t') => ExtBeforeName(n),
                (ExtBeforeName(n) | ExtName(n), _) if is_tchar(b) => ExtName(n),
                (ExtName(n) | ExtAfterName(n), b' ' | b'\t') => ExtAfterName(n),
                (ExtName(n) | ExtAfterName(n), b'=') => ExtBeforeValue(n),
                (ExtBeforeValue(n), b' ' | b'\t') => ExtBeforeValue(n),
                (ExtBeforeValue(n), b'"') => ExtQuoted(n),
                (ExtBeforeValue(n) | ExtToken(n), _) if is_tchar(b) => ExtToken(n),
                (ExtToken(n), b' ' | b'\t') => ExtBeforeSemi(n),
                (ExtQuoted(n), b'"') => ExtToken(n),
                (ExtQuoted(n), b'\\') => ExtQuotedEscape(n),
                (ExtQuoted(n), _)
                    if b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80 =>
                {
                    ExtQuoted(n)
                }
                (ExtQuotedEscape(n), _) if b == b'\t' || b >= 0x20 && b != 0x7f => ExtQuoted(n),
                (
                    SizeDigits(n) | ExtBeforeSemi(n) | ExtName(n) | ExtAfterName(n) | ExtToken(n),
                    b'\r',
                ) => SizeLf(n),
                (_, b'\n') if !matches!(self.state, SizeLf(_) | DataLf | TrailerLf | Done) => {
                    return Err(reject(400, "bare LF in a chunked body (CRLF required)"))
                }
                (SizeDigits(_), _) => return Err(reject(400, "chunk-size line syntax")),
                (
                    ExtBeforeSemi(_) | ExtBeforeName(_) | ExtName(_) | ExtAfterName(_)
                    | ExtBeforeValue(_) | ExtToken(_) | ExtQuoted(_) | ExtQuotedEscape(_),
                    _,
                ) => return Err(reject(400, "chunk extension syntax")),
                (SizeLf(n), b'\n') => {
                    self.ext_len = 0;
                    if n == 0 {
                        Trailer
                    } else {
                        Data(n)
                    }
                }
                (SizeLf(_), _) => return Err(reject(400, "bare CR in a chunk-size line")),
                (DataCr, b'\r') => DataLf,
                (DataCr, _) => return Err(reject(400, "chunk data not followed by CRLF")),
                (DataLf, b'\n') => Size,
                (DataLf, _) => return Err(reject(400, "chunk data not followed by CRLF")),
                (Trailer, b'\r') => TrailerLf,
                (Trailer, _) => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_HEADER_BYTES {
                        return Err(reject(431, "trailer section larger than the limit"));
                    }
                    self.line.push(b);
                    Trailer
                }
                (TrailerLf, b'\n') => {
                    if self.line.is_empty() {
                        self.state = Done;
                        return Ok(Some(i + 1));
                    }
                    self.trailer_line()?;
                    Trailer
                }
                (TrailerLf, _) => return Err(reject(400, "bare CR in a trailer section")),
                (Data(_), _) => unreachable!("data is skipped above"),
                (Done, _) => return Ok(Some(i)),
            };
            i += 1;
        }
        Ok(None)
    }

    fn trailer_line(&mut self) -> Result<(), Rejection> {
        self.trailer_fields += 1;
        if self.trailer_fields > MAX_HEADER_FIELDS {
            return Err(reject(431, "more trailer fields than the limit"));
        }
        let (name, _) = field_line(&self.line)?;
        if FORBIDDEN_TRAILERS
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f))
        {
            return Err(reject(400, "trailer field that changes framing or routing"));
        }
        self.line.clear();
        Ok(())
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}
