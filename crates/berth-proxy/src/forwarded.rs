//! The headers the proxy adds to a request and removes from messages: X-Forwarded-For
//! (append, preserve or remove, `routing.http.xff_header_processing.mode`),
//! X-Forwarded-Proto and -Port, hop-by-hop headers, and header names that are not
//! letters, digits and hyphens (`routing.http.drop_invalid_header_fields.enabled`).
//!
//! One policy for both request paths: hyper's header maps and the raw headers of the
//! HTTP/1.1 fast path. It does not touch the request line, Host or framing headers.

use std::net::SocketAddr;

use berth_model::elb_attributes::XffHeaderProcessing;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) use crate::h1_codec::is_hop_by_hop;
use crate::h1_codec::put_header;
use crate::rules::source_ip;

const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFPORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// `routing.http.xff_header_processing.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XffMode {
    Append,
    Preserve,
    Remove,
}

impl From<XffHeaderProcessing> for XffMode {
    fn from(m: XffHeaderProcessing) -> XffMode {
        match m {
            XffHeaderProcessing::Append => XffMode::Append,
            XffHeaderProcessing::Preserve => XffMode::Preserve,
            XffHeaderProcessing::Remove => XffMode::Remove,
        }
    }
}

/// A client connection's X-Forwarded-* values, formatted once per connection into the
/// connection's own memory (no allocation per connection).
pub(crate) struct ForwardedValues {
    /// The client's address as X-Forwarded-For carries it: `client[..client_len]`.
    client: [u8; MAX_IP_TEXT],
    client_len: u8,
    /// The listener's port as X-Forwarded-Port carries it: `port[..port_len]`.
    port: [u8; 5],
    port_len: u8,
    /// `http` or `https`, for X-Forwarded-Proto and redirects.
    pub(crate) scheme: &'static str,
}

/// The longest text of an IP address (an IPv6 address ending in an IPv4 one).
const MAX_IP_TEXT: usize = 45;

impl ForwardedValues {
    pub(crate) fn new(peer: SocketAddr, port: u16, scheme: &'static str) -> ForwardedValues {
        use std::io::Write;
        let mut client = [0; MAX_IP_TEXT];
        let mut w = &mut client[..];
        let _ = write!(w, "{}", source_ip(peer));
        let client_len = (MAX_IP_TEXT - w.len()) as u8;
        let mut b = itoa::Buffer::new();
        let p = b.format(port).as_bytes();
        let mut port_text = [0; 5];
        port_text[..p.len()].copy_from_slice(p);
        ForwardedValues {
            client,
            client_len,
            port: port_text,
            port_len: p.len() as u8,
            scheme,
        }
    }

    /// The client's address, as X-Forwarded-For carries it.
    #[inline]
    pub(crate) fn client_ip(&self) -> &[u8] {
        &self.client[..self.client_len as usize]
    }

    /// The listener's port, as X-Forwarded-Port carries it.
    #[inline]
    pub(crate) fn port(&self) -> &[u8] {
        &self.port[..self.port_len as usize]
    }
}

/// A header value of bytes known to be valid (an address or a port number).
fn value(b: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(b).expect("an address or a port is a valid header value")
}

/// Headers that belong to one hop, as hyper's names.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether the proxy sets `n` itself on every request (so a client's value is dropped).
#[inline]
pub(crate) fn is_set_by_proxy(n: &[u8]) -> bool {
    match n.len() {
        16 => n.eq_ignore_ascii_case(b"x-forwarded-port"),
        17 => n.eq_ignore_ascii_case(b"x-forwarded-proto"),
        _ => false,
    }
}

/// Whether `n` is a header name `drop_invalid_header_fields` keeps.
#[inline]
pub(crate) fn is_valid_name(n: &[u8]) -> bool {
    n.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Header names listed in a message's Connection header(s), besides close/keep-alive:
/// they are hop-by-hop too.
pub(crate) fn connection_tokens<'a>(headers: &[httparse::Header<'a>]) -> Vec<&'a [u8]> {
    let mut named = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if !t.is_empty()
                    && !t.eq_ignore_ascii_case(b"close")
                    && !t.eq_ignore_ascii_case(b"keep-alive")
                {
                    named.push(t);
                }
            }
        }
    }
    named
}

/// Removes hop-by-hop headers, including those the Connection header names. Keeps
/// `Upgrade` (and sets `Connection: upgrade`) when the request is an upgrade.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup per name.
    if !h.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    if let Some(c) = h.get(header::CONNECTION) {
        let named: Vec<HeaderName> = c
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|s| HeaderName::from_bytes(s.trim().as_bytes()).ok())
            .filter(|n| !(keep_upgrade && n == header::UPGRADE))
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    let upgrade = if keep_upgrade {
        h.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
    if let Some(u) = upgrade {
        h.insert(header::UPGRADE, u);
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Removes the header names `drop_invalid_header_fields` drops.
pub(crate) fn remove_invalid_names(h: &mut HeaderMap) {
    if h.keys().any(|n| !is_valid_name(n.as_str().as_bytes())) {
        let bad: Vec<HeaderName> = h
            .keys()
            .filter(|n| !is_valid_name(n.as_str().as_bytes()))
            .cloned()
            .collect();
        for n in bad {
            h.remove(n);
        }
    }
}

/// `prev, client`: the X-Forwarded-For value after this hop.
#[inline]
fn append_client(out: &mut Vec<u8>, prev: &[u8], client: &[u8]) {
    out.extend_from_slice(prev);
    out.extend_from_slice(b", ");
    out.extend_from_slice(client);
}

/// Sets X-Forwarded-For (by `mode`), -Proto and -Port on a request for hyper.
pub(crate) fn set_forwarded(h: &mut HeaderMap, mode: XffMode, v: &ForwardedValues) {
    match mode {
        XffMode::Append => {
            let xff = match h.get(&XFF) {
                None => Some(value(v.client_ip())),
                Some(prev) => {
                    let prev = prev.as_bytes();
                    let client = v.client_ip();
                    let mut joined = Vec::with_capacity(prev.len() + 2 + client.len());
                    append_client(&mut joined, prev, client);
                    HeaderValue::from_maybe_shared(Bytes::from(joined)).ok()
                }
            };
            if let Some(xff) = xff {
                h.insert(XFF, xff);
            }
        }
        XffMode::Preserve => {}
        XffMode::Remove => {
            h.remove(XFF);
        }
    }
    h.insert(XFP, HeaderValue::from_static(v.scheme));
    h.insert(XFPORT, value(v.port()));
}

/// Writes a request's header lines as the target gets them, for the fast path:
/// hop-by-hop headers and the client's X-Forwarded-Proto and -Port left out, the client's
/// X-Forwarded-For kept, folded into the proxy's (append) or dropped by `mode`, invalid
/// names dropped when `drop_invalid`, then the proxy's X-Forwarded-* lines.
pub(crate) fn write_request_headers(
    out: &mut Vec<u8>,
    headers: &[httparse::Header<'_>],
    mode: XffMode,
    drop_invalid: bool,
    v: &ForwardedValues,
) {
    write_request_fields(
        out,
        headers.iter().map(|h| (h.name.as_bytes(), h.value)),
        mode,
        drop_invalid,
        v,
    );
}

/// [`write_request_headers`] over `(name, value)` pairs from anywhere: a parsed head's
/// fields or a header map's.
#[inline]
pub(crate) fn write_request_fields<'a>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    mode: XffMode,
    drop_invalid: bool,
    v: &ForwardedValues,
) {
    let mut prev_xff: Option<&[u8]> = None;
    for (n, value) in fields {
        if is_hop_by_hop(n) || is_set_by_proxy(n) {
            continue;
        }
        if n.eq_ignore_ascii_case(b"x-forwarded-for") {
            match mode {
                XffMode::Preserve => {}
                XffMode::Append => {
                    if prev_xff.is_none() {
                        prev_xff = Some(value);
                    }
                    continue;
                }
                XffMode::Remove => continue,
            }
        }
        if drop_invalid && !is_valid_name(n) {
            continue;
        }
        put_header(out, n, value);
    }
    write_forwarded(out, mode, prev_xff, v);
}

/// Writes X-Forwarded-For (by `mode`), -Proto and -Port header lines. `prev_xff` is the
/// client's first X-Forwarded-For value; under [`XffMode::Append`] the client's
/// X-Forwarded-For lines were left out, under `Preserve` they were kept.
#[inline]
fn write_forwarded(out: &mut Vec<u8>, mode: XffMode, prev_xff: Option<&[u8]>, v: &ForwardedValues) {
    if mode == XffMode::Append {
        out.extend_from_slice(b"x-forwarded-for: ");
        match prev_xff {
            Some(p) => append_client(out, p, v.client_ip()),
            None => out.extend_from_slice(v.client_ip()),
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-proto: ");
    out.extend_from_slice(v.scheme.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-port: ");
    out.extend_from_slice(v.port());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> ForwardedValues {
        ForwardedValues::new("10.0.0.9:4000".parse().unwrap(), 8080, "https")
    }

    #[test]
    fn forwarded_values_hold_the_longest_addresses_and_ports() {
        let v = ForwardedValues::new(
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1"
                .parse()
                .unwrap(),
            65535,
            "http",
        );
        assert_eq!(v.client_ip(), b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(v.port(), b"65535");
        let mapped = ForwardedValues::new("[::ffff:10.1.2.3]:1".parse().unwrap(), 80, "http");
        assert_eq!(
            mapped.client_ip(),
            b"10.1.2.3",
            "an IPv4-mapped client is shown as IPv4"
        );
        assert_eq!(mapped.port(), b"80");
        // No allocation of its own: a connection's context holds it inline.
        assert!(std::mem::size_of::<ForwardedValues>() <= 72);
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn an_upgrade_keeps_its_upgrade_header() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
    }

    #[test]
    fn the_byte_test_and_the_name_list_agree() {
        for n in &HOP_BY_HOP {
            assert!(is_hop_by_hop(n.as_str().as_bytes()), "{n}");
            assert!(
                is_hop_by_hop(n.as_str().to_ascii_uppercase().as_bytes()),
                "{n}"
            );
        }
        for n in [
            "host",
            "x-forwarded-for",
            "content-length",
            "trailers",
            "tee",
        ] {
            assert!(!is_hop_by_hop(n.as_bytes()), "{n}");
        }
        assert!(is_set_by_proxy(b"X-Forwarded-Proto") && is_set_by_proxy(b"x-forwarded-port"));
        assert!(!is_set_by_proxy(b"x-forwarded-for"));
    }

    #[test]
    fn connection_names_its_hop_by_hop_headers() {
        let headers = [
            httparse::Header {
                name: "Connection",
                value: b"close, X-Secret ,keep-alive",
            },
            httparse::Header {
                name: "x-other",
                value: b"1",
            },
        ];
        assert_eq!(connection_tokens(&headers), vec![&b"X-Secret"[..]]);
    }

    #[test]
    fn the_fast_path_drops_invalid_names_when_asked() {
        let headers = [
            httparse::Header {
                name: "x_under",
                value: b"1",
            },
            httparse::Header {
                name: "x-ok",
                value: b"2",
            },
        ];
        let mut out = Vec::new();
        write_request_headers(&mut out, &headers, XffMode::Remove, true, &values());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x-ok: 2\r\nx-forwarded-proto: https\r\nx-forwarded-port: 8080\r\n"
        );
    }

    #[test]
    fn invalid_names_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("x_under", HeaderValue::from_static("1"));
        h.insert("x-ok", HeaderValue::from_static("1"));
        remove_invalid_names(&mut h);
        assert!(!h.contains_key("x_under"));
        assert!(h.contains_key("x-ok"));
    }

    #[test]
    fn both_paths_write_the_same_forwarded_values() {
        let v = values();
        for mode in [XffMode::Append, XffMode::Preserve, XffMode::Remove] {
            for prev in [None, Some("1.2.3.4")] {
                let mut raw_in = vec![
                    httparse::Header {
                        name: "Connection",
                        value: b"keep-alive",
                    },
                    httparse::Header {
                        name: "X-Forwarded-Proto",
                        value: b"gopher",
                    },
                ];
                let mut map = HeaderMap::new();
                map.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
                map.insert(XFP, HeaderValue::from_static("gopher"));
                if let Some(p) = prev {
                    raw_in.push(httparse::Header {
                        name: "x-forwarded-for",
                        value: p.as_bytes(),
                    });
                    map.insert(XFF, HeaderValue::from_static(p));
                }
                strip_hop_by_hop(&mut map, false);
                set_forwarded(&mut map, mode, &v);
                let mut raw = Vec::new();
                write_request_headers(&mut raw, &raw_in, mode, false, &v);
                let mut from_map = String::new();
                for n in [XFF, XFP, XFPORT] {
                    if let Some(val) = map.get(&n) {
                        from_map.push_str(&format!("{n}: {}\r\n", val.to_str().unwrap()));
                    }
                }
                assert_eq!(map.len(), from_map.lines().count());
                assert_eq!(
                    String::from_utf8(raw).unwrap(),
                    from_map,
                    "{mode:?} {prev:?}"
                );
            }
        }
        let mut map = HeaderMap::new();
        map.insert(XFF, HeaderValue::from_static("1.2.3.4"));
        set_forwarded(&mut map, XffMode::Append, &v);
        assert_eq!(map.get(XFF).unwrap(), "1.2.3.4, 10.0.0.9");
        assert_eq!(map.get(XFP).unwrap(), "https");
        assert_eq!(map.get(XFPORT).unwrap(), "8080");
    }
}
