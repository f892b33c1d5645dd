//! The edge: the HTTP/1.1 rules (RFC 9110, RFC 9112) a client's request must pass before
//! any byte of it goes further than this proxy, and the status each broken rule is
//! answered with.
//!
//! [`check_head`] judges a whole request head (request line, header fields, framing);
//! [`chunked::ChunkedScan`] judges a chunked body as it streams (chunk-size lines,
//! extensions, the CRLF after each chunk, trailer fields). Both are pure functions of
//! the bytes: they read nothing and answer nothing. [`crate::framing`] applies them to
//! every byte hyper reads from a client; the fast path applies [`check_head`] before it
//! serves a request itself.
//!
//! What is refused, and with what:
//! - 400: request-line syntax (one space between three parts, a method token, a
//!   request-target of visible characters without a fragment, `HTTP/d.d`), a bare CR or
//!   LF where CRLF belongs, obs-fold, whitespace between a field name and its colon, a
//!   field name that is not a token, CTLs (NUL, CR, LF, ...) in a field value, a missing
//!   Host on HTTP/1.1, more than one Host, an invalid Host, a Host that is not the
//!   absolute-form target's authority, an asterisk-form target on anything but OPTIONS,
//!   an authority-form target on anything but CONNECT, Content-Length together with
//!   Transfer-Encoding, more than one Content-Length (equal or not, lists included), a
//!   Content-Length that is not digits, Transfer-Encoding on HTTP/1.0, a
//!   Transfer-Encoding whose last coding is not `chunked` or that applies `chunked`
//!   twice; in chunked bodies: chunk-size syntax, extension syntax, a missing CRLF after
//!   the chunk data, trailer fields that could change framing or routing
//!   (Content-Length, Transfer-Encoding, Host, Trailer).
//! - 405: CONNECT (authority-form): berth is not a forward proxy.
//! - 413: a Content-Length or chunk size too large to represent in 64 bits.
//! - 414: a request-target longer than [`MAX_REQUEST_TARGET`].
//! - 431: more than [`MAX_HEADER_FIELDS`] header (or trailer) fields, or a head (or
//!   trailer section) over [`crate::context::MAX_HEADER_BYTES`].
//! - 501: a transfer coding berth does not know.
//! - 505: an HTTP version other than 1.0 and 1.1.

pub(crate) mod chunked;
mod plain_head;

use crate::context::MAX_HEADER_BYTES;

/// The longest request-target accepted (answered 414 beyond).
pub(crate) const MAX_REQUEST_TARGET: usize = 16 * 1024;
/// The most header fields a request head, or trailer fields a chunked body, may carry.
pub(crate) const MAX_HEADER_FIELDS: usize = 100;
/// The longest chunk extension accepted on one chunk-size line.
pub(crate) const MAX_CHUNK_EXTENSION: usize = 4096;

/// A request refused at the edge: the status it is answered with and the rule it broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub rule: &'static str,
}

const fn reject(status: u16, rule: &'static str) -> Rejection {
    Rejection { status, rule }
}

/// How the body after an accepted head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// The request (without a body) asks to switch protocols: what follows is another
    /// protocol if the answer is 101, HTTP/1 otherwise. An upgrade request with a body is
    /// framed by its body and followed as HTTP/1.
    Upgrade,
}

/// RFC 9110 §5.6.2 `tchar`.
const TCHAR: u8 = 1;
/// A field value's bytes: HTAB, SP, VCHAR and obs-text.
const VALUE: u8 = 2;
/// VCHAR without `#`: a request-target's bytes (no fragment).
const TARGET: u8 = 4;

/// Each byte's classes, for the walk's checks and [`plain_head`]'s one pass.
static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if matches!(b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
            | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
        {
            c |= TCHAR;
        }
        if b == b'\t' || b == b' ' || (b >= 0x21 && b <= 0x7e) || b >= 0x80 {
            c |= VALUE;
        }
        if b >= 0x21 && b <= 0x7e && b != b'#' {
            c |= TARGET;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// RFC 9110 §5.6.2 `tchar`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    CLASS[usize::from(b)] & TCHAR != 0
}

/// A field value's bytes: HTAB, SP, VCHAR and obs-text; no CTL.
#[inline]
fn is_field_value_byte(b: u8) -> bool {
    CLASS[usize::from(b)] & VALUE != 0
}

/// Splits a head into its lines, refusing a bare CR or LF. The lines exclude their CRLF.
fn lines(head: &[u8]) -> Result<Vec<&[u8]>, Rejection> {
    let mut out = Vec::with_capacity(16);
    let mut start = 0;
    let mut i = 0;
    while i < head.len() {
        match head[i] {
            b'\r' => {
                if head.get(i + 1) != Some(&b'\n') {
                    return Err(reject(400, "bare CR in the request head"));
                }
                out.push(&head[start..i]);
                i += 2;
                start = i;
            }
            b'\n' => return Err(reject(400, "bare LF in the request head (CRLF required)")),
            _ => i += 1,
        }
    }
    if start != head.len() {
        return Err(reject(400, "request head does not end with CRLF"));
    }
    Ok(out)
}

/// One header (or trailer) field line checked: its name and trimmed value.
pub(crate) fn field_line(line: &[u8]) -> Result<(&[u8], &[u8]), Rejection> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(reject(
            400,
            "obs-fold (a field line starting with whitespace)",
        ));
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(reject(400, "field line without a colon"));
    };
    let name = &line[..colon];
    if name.is_empty() {
        return Err(reject(400, "empty field name"));
    }
    if matches!(name.last(), Some(b' ' | b'\t')) {
        return Err(reject(400, "whitespace between field name and colon"));
    }
    if !name.iter().all(|&b| is_tchar(b)) {
        return Err(reject(400, "field name is not a token"));
    }
    let value = &line[colon + 1..];
    if let Some(&b) = value.iter().find(|&&b| !is_field_value_byte(b)) {
        return Err(if b == 0 {
            reject(400, "NUL in a field value")
        } else {
            reject(400, "control character in a field value")
        });
    }
    Ok((name, value.trim_ascii()))
}

/// A Host value (or an absolute-form authority): `uri-host [ ":" port ]`, no userinfo.
fn valid_authority(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..end];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return false;
        }
        match &v[end + 1..] {
            [] => (&v[..0], None),
            [b':', port @ ..] => (&v[..0], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(c) => (&v[..c], Some(&v[c + 1..])),
            None => (v, None),
        }
    };
    let host_ok = host.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    });
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok && !(v.first() != Some(&b'[') && host.is_empty())
}

/// The authority of an absolute-form target (`http://authority/path`), if it is one.
fn absolute_authority(target: &[u8]) -> Option<Result<&[u8], Rejection>> {
    let sep = target.windows(3).position(|w| w == b"://")?;
    let scheme = &target[..sep];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return Some(Err(reject(
            400,
            "absolute-form target with a scheme other than http(s)",
        )));
    }
    let rest = &target[sep + 3..];
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains(&b'@') {
        return Some(Err(reject(400, "userinfo in an absolute-form target")));
    }
    if authority.is_empty() || !valid_authority(authority) {
        return Some(Err(reject(
            400,
            "invalid authority in an absolute-form target",
        )));
    }
    Some(Ok(authority))
}

/// Host and the absolute-form authority name the same host and port (the scheme's default
/// port may be left out of either).
fn same_authority(host: &[u8], authority: &[u8], https: bool) -> bool {
    let default = if https { &b":443"[..] } else { &b":80"[..] };
    let norm = |v: &[u8]| -> Vec<u8> {
        let v = v.to_ascii_lowercase();
        match v.strip_suffix(default) {
            Some(s) if !s.is_empty() => s.to_vec(),
            _ => v,
        }
    };
    norm(host) == norm(authority)
}

/// Judges a complete request head: everything up to and including the empty line that ends
/// it (leading empty lines allowed, as RFC 9112 §2.2 asks). Returns how its body is
/// framed. A plain head is accepted in one pass (`plain_head`); any other is walked
/// rule by rule, which names the first rule it breaks.
pub fn check_head(head: &[u8]) -> Result<BodyFraming, Rejection> {
    match plain_head::accept(head) {
        Some(framing) => Ok(framing),
        None => judge_head(head),
    }
}

/// Whether the one pass, where it accepts `head`, frames it as the full walk does (the
/// `h1_request_head` fuzz target's property).
pub(crate) fn one_pass_agrees(head: &[u8]) -> bool {
    plain_head::accept(head).is_none_or(|framing| judge_head(head) == Ok(framing))
}

/// [`check_head`]'s full walk: the head's lines first (a bare CR or LF anywhere is
/// refused before anything else), then the request line, then each field in turn.
fn judge_head(head: &[u8]) -> Result<BodyFraming, Rejection> {
    if head.len() > MAX_HEADER_BYTES {
        return Err(reject(431, "request head larger than the limit"));
    }
    let all = lines(head)?;
    let mut it = all.into_iter().skip_while(|l| l.is_empty());
    let Some(request_line) = it.next() else {
        return Err(reject(400, "no request line"));
    };

    // The request line: method SP request-target SP HTTP-version.
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(
            400,
            "request line is not method SP target SP version",
        ));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(reject(400, "method is not a token"));
    }
    if target.is_empty() {
        return Err(reject(400, "empty request-target"));
    }
    if target.len() > MAX_REQUEST_TARGET {
        return Err(reject(414, "request-target longer than the limit"));
    }
    if !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(reject(400, "request-target has a character outside VCHAR"));
    }
    if target.contains(&b'#') {
        return Err(reject(400, "fragment in the request-target"));
    }
    let minor = match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' || *minor > b'1' {
                return Err(reject(505, "HTTP version other than 1.0 and 1.1"));
            }
            *minor
        }
        _ => return Err(reject(400, "HTTP-version is not HTTP/DIGIT.DIGIT")),
    };
    let http11 = minor == b'1';

    // The request-target's form (RFC 9112 §3.2).
    let mut authority = None;
    if method == b"CONNECT" {
        return Err(reject(405, "CONNECT (authority-form) is not enabled"));
    } else if target == b"*" {
        if method != b"OPTIONS" {
            return Err(reject(
                400,
                "asterisk-form target on a method other than OPTIONS",
            ));
        }
    } else if target[0] != b'/' {
        match absolute_authority(target) {
            Some(Ok(a)) => authority = Some(a),
            Some(Err(e)) => return Err(e),
            None => {
                return Err(reject(
                    400,
                    "authority-form target on a method other than CONNECT",
                ))
            }
        }
    }

    // Header fields.
    let mut fields = 0usize;
    let mut hosts = 0usize;
    let mut host: &[u8] = b"";
    let mut length: Option<u64> = None;
    let mut lengths = 0usize;
    let mut te = false;
    let mut chunked_last = false;
    let mut chunked_count = 0usize;
    let mut upgrade = false;
    let mut ended = false;
    for line in it.by_ref() {
        if line.is_empty() {
            ended = true;
            break;
        }
        fields += 1;
        if fields > MAX_HEADER_FIELDS {
            return Err(reject(431, "more header fields than the limit"));
        }
        let (name, value) = field_line(line)?;
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            host = value;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            length = Some(content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            let mut any = false;
            for coding in value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                any = true;
                let name = coding
                    .split(|&b| b == b';')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii();
                if name.eq_ignore_ascii_case(b"chunked") {
                    chunked_count += 1;
                    chunked_last = true;
                } else if KNOWN_CODINGS.iter().any(|k| name.eq_ignore_ascii_case(k)) {
                    chunked_last = false;
                } else if !name.is_empty() && name.iter().all(|&b| is_tchar(b)) {
                    return Err(reject(501, "unknown transfer coding"));
                } else {
                    return Err(reject(400, "transfer coding is not a token"));
                }
            }
            if !any {
                return Err(reject(400, "empty Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }

    if !ended || it.next().is_some() {
        return Err(reject(
            400,
            "request head does not end with its one empty line",
        ));
    }
    if hosts > 1 {
        return Err(reject(400, "more than one Host"));
    }
    if hosts == 0 && http11 {
        return Err(reject(400, "HTTP/1.1 request without Host"));
    }
    if hosts == 1 && !valid_authority(host) {
        return Err(reject(400, "invalid Host"));
    }
    if let Some(a) = authority {
        let https = target[..5].eq_ignore_ascii_case(b"https");
        if hosts == 1 && !same_authority(host, a, https) {
            return Err(reject(
                400,
                "Host differs from the absolute-form target's authority",
            ));
        }
    }
    if lengths > 1 {
        return Err(reject(400, "more than one Content-Length"));
    }
    if te {
        if lengths > 0 {
            return Err(reject(
                400,
                "Content-Length together with Transfer-Encoding",
            ));
        }
        if !http11 {
            return Err(reject(400, "Transfer-Encoding on HTTP/1.0"));
        }
        if chunked_count > 1 {
            return Err(reject(400, "chunked applied more than once"));
        }
        if !chunked_last {
            return Err(reject(400, "Transfer-Encoding does not end in chunked"));
        }
    }
    Ok(if upgrade && !te && length.unwrap_or(0) == 0 {
        BodyFraming::Upgrade
    } else if te {
        BodyFraming::Chunked
    } else {
        match length {
            None | Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    })
}

/// Transfer codings berth passes on (besides chunked, which it decodes).
const KNOWN_CODINGS: [&[u8]; 5] = [b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress"];

/// A Content-Length value: one decimal number, no list, no sign.
fn content_length(v: &[u8]) -> Result<u64, Rejection> {
    if v.contains(&b',') {
        return Err(reject(400, "more than one Content-Length"));
    }
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(reject(400, "Content-Length is not a decimal number"));
    }
    v.iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or(reject(413, "Content-Length too large"))
}

#[cfg(test)]
mod tests;
