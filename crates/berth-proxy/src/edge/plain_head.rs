//! One pass that accepts the common request head outright: a request line with an
//! origin-form target and `HTTP/1.x`, token field names, clean values, one valid Host,
//! at most one Content-Length, no Transfer-Encoding. It answers only "accepted, framed
//! so" or "not sure"; a head it is not sure of is judged by [`super::judge_head`], the
//! full walk that names the broken rule. It never accepts a head the full walk refuses, nor frames
//! one differently (`tests.rs` holds it to that over mutated heads, and the
//! `h1_request_head` fuzz target does too).
//!
//! The full walk splits the head into lines, then reads each line again for its colon,
//! its name and its value: three or four reads of every byte and a vector of lines. This
//! pass reads each byte once, through a table of byte classes.

use super::{
    content_length, valid_authority, BodyFraming, CLASS, MAX_HEADER_FIELDS, MAX_REQUEST_TARGET,
    TARGET, TCHAR, VALUE,
};
use crate::context::MAX_HEADER_BYTES;

/// The length of the run at the start of `bytes` whose bytes are all of `class`.
#[inline]
fn run(bytes: &[u8], class: u8) -> usize {
    bytes
        .iter()
        .position(|&b| CLASS[usize::from(b)] & class == 0)
        .unwrap_or(bytes.len())
}

/// How the body after `head` is framed, when the head is plain enough to accept in one
/// pass; `None` when it is not (which says nothing about whether it is valid).
pub(super) fn accept(head: &[u8]) -> Option<BodyFraming> {
    if head.len() > MAX_HEADER_BYTES {
        return None;
    }
    // The request line: method SP origin-form-target SP HTTP/1.x CRLF.
    let method_len = run(head, TCHAR);
    if method_len == 0 || head.get(method_len) != Some(&b' ') || &head[..method_len] == b"CONNECT" {
        return None;
    }
    let rest = &head[method_len + 1..];
    let target_len = run(rest, TARGET);
    if rest.first() != Some(&b'/') || target_len > MAX_REQUEST_TARGET {
        return None;
    }
    let http11 = match rest.get(target_len..target_len + 11)? {
        b" HTTP/1.1\r\n" => true,
        b" HTTP/1.0\r\n" => false,
        _ => return None,
    };
    let mut rest = &rest[target_len + 11..];

    // Header fields, up to the empty line that must end the head.
    let mut fields = 0;
    let mut host = false;
    let mut length: Option<u64> = None;
    let mut upgrade = false;
    loop {
        if rest == b"\r\n" {
            break;
        }
        fields += 1;
        if fields > MAX_HEADER_FIELDS {
            return None;
        }
        let name_len = run(rest, TCHAR);
        if name_len == 0 || rest.get(name_len) != Some(&b':') {
            return None;
        }
        let name = &rest[..name_len];
        let after = &rest[name_len + 1..];
        let value_len = run(after, VALUE);
        if after.get(value_len..value_len + 2) != Some(b"\r\n") {
            return None;
        }
        let value = after[..value_len].trim_ascii();
        rest = &after[value_len + 2..];
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if host || !valid_authority(value) {
                    return None;
                }
                host = true;
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => upgrade = true,
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if length.is_some() {
                    return None;
                }
                length = Some(content_length(value).ok()?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => return None,
            _ => {}
        }
    }
    if http11 && !host {
        return None;
    }
    Some(match length {
        None | Some(0) if upgrade => BodyFraming::Upgrade,
        None | Some(0) => BodyFraming::None,
        Some(n) => BodyFraming::Length(n),
    })
}

#[cfg(test)]
mod tests;
