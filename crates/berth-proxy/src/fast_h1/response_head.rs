//! A target's response head as the client gets it from the fast path: the status line
//! and every field but the hop-by-hop ones (Transfer-Encoding stays: the body passes
//! through as the target framed it) and those its Connection field names. It writes no
//! blank line and adds nothing (stickiness cookies and `connection: close` are the
//! caller's), and it reads nothing from a socket. For a client that cannot read chunked
//! framing (HTTP/1.0), [`write_unchunked_for_client`] leaves out Transfer-Encoding too:
//! the body then goes to it as bare data, ended by the connection's close.
//!
//! Most targets write heads the way the proxy would write them again, so a head that
//! [`crate::h1_codec::parse_response`] found canonical ([`crate::h1_codec::HeadCopy`]) is
//! copied as it is, less its hop-by-hop lines, without parsing it a second time.

use std::mem::MaybeUninit;

use crate::forwarded;
use crate::h1_codec::{put_header, write_status, RespHead, MAX_RESPONSE_HEADERS};
use crate::sticky;

/// Writes the head at the start of `up` (parsed as `head`) into `out` without its blank
/// line. Returns whether a `Set-Cookie` field sets the application cookie `app_cookie`,
/// or `None` when the head does not parse.
pub(crate) fn write_for_client(
    out: &mut Vec<u8>,
    up: &[u8],
    head: &RespHead,
    app_cookie: Option<&str>,
) -> Option<bool> {
    match head.copy {
        // Byte for byte what `rewrite` writes, without a second parse.
        Some(copy) if !(app_cookie.is_some() && head.sets_cookie) => {
            let mut at = 0;
            for line in copy.hop_lines() {
                out.extend_from_slice(&up[at..line.start]);
                at = line.end;
            }
            out.extend_from_slice(&up[at..head.len - 2]);
            Some(false)
        }
        _ => rewrite(out, up, head, app_cookie, true),
    }
}

/// [`write_for_client`] without the Transfer-Encoding field, for a chunked body whose
/// data the client gets without its framing.
pub(crate) fn write_unchunked_for_client(
    out: &mut Vec<u8>,
    up: &[u8],
    head: &RespHead,
    app_cookie: Option<&str>,
) -> Option<bool> {
    rewrite(out, up, head, app_cookie, false)
}

/// Parses the head again and writes it field by field, Transfer-Encoding only when
/// `keep_transfer_encoding`.
fn rewrite(
    out: &mut Vec<u8>,
    up: &[u8],
    head: &RespHead,
    app_cookie: Option<&str>,
    keep_transfer_encoding: bool,
) -> Option<bool> {
    let mut headers =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    if !matches!(
        httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            up,
            &mut headers
        ),
        Ok(httparse::Status::Complete(_))
    ) {
        return None;
    }
    write_status(out, head.status, resp.reason.unwrap_or(""));
    let named = forwarded::connection_tokens(resp.headers);
    let mut sets_app_cookie = false;
    for h in resp.headers.iter() {
        let n = h.name.as_bytes();
        if (forwarded::is_hop_by_hop(n)
            && !(keep_transfer_encoding && n.eq_ignore_ascii_case(b"transfer-encoding")))
            || named.iter().any(|t| t.eq_ignore_ascii_case(n))
        {
            continue;
        }
        if let Some(name) = app_cookie {
            if n.eq_ignore_ascii_case(b"set-cookie") {
                sets_app_cookie |= sticky::sets_cookie(h.value, name);
            }
        }
        put_header(out, n, h.value);
    }
    Some(sets_app_cookie)
}

/// Whether the copy, where `head` allows one, writes exactly what the field-by-field
/// rewrite writes (for the fuzz target).
pub(crate) fn copy_agrees_with_rewrite(up: &[u8], head: &RespHead) -> bool {
    let (mut copied, mut rewritten) = (Vec::new(), Vec::new());
    let a = write_for_client(&mut copied, up, head, None);
    let b = rewrite(&mut rewritten, up, head, None, true);
    a == b && copied == rewritten
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1_codec::{parse_response, Parsed};

    fn head(raw: &[u8]) -> RespHead {
        match parse_response(raw) {
            Parsed::Head(h) => h,
            _ => panic!("not a final head: {:?}", String::from_utf8_lossy(raw)),
        }
    }

    fn written(raw: &[u8], app_cookie: Option<&str>) -> (String, Option<bool>) {
        let mut out = Vec::new();
        let r = write_for_client(&mut out, raw, &head(raw), app_cookie);
        (String::from_utf8(out).unwrap(), r)
    }

    fn rewritten(raw: &[u8], app_cookie: Option<&str>) -> (String, Option<bool>) {
        let mut out = Vec::new();
        let r = rewrite(&mut out, raw, &head(raw), app_cookie, true);
        (String::from_utf8(out).unwrap(), r)
    }

    #[test]
    fn a_canonical_head_is_copied_as_the_rewrite_would_write_it() {
        let heads: [&[u8]; 6] = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-A: b, c\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nset-cookie: a=b\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
            // Hop-by-hop lines first, between others and last, as Node.js and nginx write.
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nDate: x\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: s\r\nConnection: close\r\nX-B: 1\r\nProxy-Connection: x\r\nTE: y\r\nTrailer: z\r\n\r\n",
        ];
        for raw in heads {
            let h = head(raw);
            assert!(h.copy.is_some(), "{:?}", String::from_utf8_lossy(raw));
            let copied = written(raw, None);
            assert_eq!(copied, rewritten(raw, None));
            let dropped: usize = h.copy.unwrap().hop_lines().map(|l| l.len()).sum();
            assert_eq!(copied.0.len(), h.len - 2 - dropped);
            assert!(copy_agrees_with_rewrite(raw, &h));
        }
    }

    #[test]
    fn a_head_written_otherwise_is_rewritten() {
        // A status code below 100 written with its zero.
        assert!(head(b"HTTP/1.1 099 OK\r\n\r\n").copy.is_none());
        let heads: [&[u8]; 8] = [
            // No space after the colon, two spaces, trailing whitespace.
            b"HTTP/1.1 200 OK\r\ncontent-length:0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length:  0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0 \r\n\r\n",
            // Bare LF line ends.
            b"HTTP/1.1 200 OK\ncontent-length: 0\n\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\n\r\n",
            // No reason phrase, HTTP/1.0, an empty value.
            b"HTTP/1.1 200 \r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nx-empty: \r\ncontent-length: 0\r\n\r\n",
        ];
        for raw in heads {
            assert!(
                head(raw).copy.is_none(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
            let (out, r) = written(raw, None);
            assert_eq!(r, Some(false));
            assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
            assert!(out.contains("content-length: 0\r\n"), "{out:?}");
            assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
        }
    }

    #[test]
    fn fields_the_connection_field_names_are_dropped_too() {
        let raw = b"HTTP/1.1 200 OK\r\nconnection: x-secret\r\nkeep-alive: timeout=5\r\nx-secret: 1\r\nx-kept: 2\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(head(raw).copy.is_none());
        assert_eq!(
            written(raw, None).0,
            "HTTP/1.1 200 OK\r\nx-kept: 2\r\ntransfer-encoding: chunked\r\n"
        );
    }

    #[test]
    fn an_unchunked_head_has_no_transfer_encoding_and_keeps_the_rest() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-kept: 1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nX-Kept: 1\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
        ] {
            let h = head(raw);
            let mut out = Vec::new();
            assert_eq!(write_unchunked_for_client(&mut out, raw, &h, None), Some(false));
            let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
            assert_eq!(text, "http/1.1 200 ok\r\nx-kept: 1\r\n");
            // The ordinary write keeps it.
            assert!(written(raw, None).0.to_ascii_lowercase().contains("transfer-encoding: chunked"));
        }
    }

    #[test]
    fn more_hop_by_hop_lines_than_a_copy_keeps_are_rewritten() {
        let raw = b"HTTP/1.1 200 OK\r\nupgrade: a\r\nupgrade: b\r\nte: c\r\ntrailer: d\r\nkeep-alive: e\r\ncontent-length: 0\r\n\r\n";
        assert!(head(raw).copy.is_none());
        assert_eq!(
            written(raw, None).0,
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n"
        );
    }

    #[test]
    fn the_application_cookie_is_seen_through_a_canonical_head() {
        let raw = b"HTTP/1.1 200 OK\r\nset-cookie: app=1; Path=/\r\ncontent-length: 0\r\n\r\n";
        let h = head(raw);
        assert!(h.copy.is_some() && h.sets_cookie);
        assert_eq!(written(raw, Some("app")).1, Some(true));
        assert_eq!(written(raw, Some("other")).1, Some(false));
        // Without stickiness on the application cookie the head is copied.
        assert_eq!(written(raw, None), rewritten(raw, None));
    }

    #[test]
    fn copies_agree_with_rewrites_for_mutated_heads() {
        let seeds: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Type: text/html\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 302 Found\r\nLocation: /x\r\nSet-Cookie: a=b\r\nTE: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nUpgrade: h2c\r\nConnection: upgrade, close\r\nX: y\r\n\r\n",
        ];
        // A fixed xorshift: the same mutations on every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b" \t\r\n:,-aAzZ09\x00\x7f\x80";
        let (mut copied, mut parsed) = (0, 0);
        for i in 0..20_000 {
            let mut raw = seeds[i % seeds.len()].to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % raw.len();
                let b = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => raw[at] = b,
                    1 => raw.insert(at, b),
                    _ => {
                        raw.remove(at);
                    }
                }
            }
            if let Parsed::Head(h) = parse_response(&raw) {
                parsed += 1;
                copied += usize::from(h.copy.is_some());
                assert!(
                    copy_agrees_with_rewrite(&raw, &h),
                    "{:?}",
                    String::from_utf8_lossy(&raw)
                );
            }
        }
        // The mutations leave both kinds of head.
        assert!(
            copied > 1_000 && parsed - copied > 1_000,
            "{copied} of {parsed}"
        );
    }
}
