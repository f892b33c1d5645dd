//! Entry points for the fuzz targets under `fuzz/` (not part of berth's API): the edge's
//! head check (its one pass against its full walk) and chunked-body scan, the edge gate
//! fed in pieces, the HTTP/1.1 codec the fast path reads targets' responses with, and
//! rule compilation and matching.

pub use crate::edge::chunked::ChunkedScan;
pub use crate::edge::{check_head, BodyFraming, Rejection};
pub use crate::framing::{Refusal, Scanner};

/// Feeds `input` to a fresh edge gate in pieces whose sizes come from `cuts`; checks that
/// the verdict does not depend on how the bytes were split, and that what passed is a
/// prefix of the input.
pub fn gate_in_pieces(input: &[u8], cuts: &[u8]) {
    let whole = {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        let r = s.feed(input, &mut out);
        (out, r.map_err(|e| e.rejection))
    };
    let mut s = Scanner::default();
    let mut out = Vec::new();
    let mut rest = input;
    let mut refused = None;
    for &c in cuts.iter().cycle().take(input.len() + 1) {
        if rest.is_empty() {
            break;
        }
        let n = (usize::from(c) % 64 + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        if let Err(e) = s.feed(a, &mut out) {
            refused = Some(e.rejection);
            break;
        }
    }
    if refused.is_none() && !rest.is_empty() {
        if let Err(e) = s.feed(rest, &mut out) {
            refused = Some(e.rejection);
        }
    }
    assert!(input.starts_with(&out), "what passes is the input's prefix");
    assert_eq!(
        refused.map(|r| r.status),
        whole.1.err().map(|r| r.status),
        "refused alike whole and in pieces"
    );
}

/// Checks that a request head accepted in the edge's one pass is one its full walk
/// accepts, framed alike.
pub fn head_checks_agree(input: &[u8]) {
    assert!(
        crate::edge::one_pass_agrees(input),
        "accepted in one pass, judged otherwise by the full walk"
    );
}

/// Parses a target's response head as the fast path does, checks that copying it for
/// the client writes what rewriting it field by field writes, and follows a chunked body.
pub fn response(input: &[u8]) {
    if let crate::h1_codec::Parsed::Head(head) = crate::h1_codec::parse_response(input) {
        assert!(
            crate::fast_h1::response_head::copy_agrees_with_rewrite(input, &head),
            "the copied head differs from the rewritten one"
        );
    }
    let mut c = crate::h1_codec::ChunkedEnd::default();
    if let Ok(Some(n)) = c.feed(input) {
        assert!(n <= input.len());
    }
}

/// Compiles `rules` (actions that need no target group: fixed responses and redirects)
/// and matches one request against them, once with its headers as hyper's map and once
/// as the fast path's raw headers: both must pick the same rule.
#[allow(clippy::too_many_arguments)]
pub fn rules(
    rules: &[berth_model::elb::Rule],
    default: &[berth_model::elb::Action],
    host: &str,
    path: &str,
    query: Option<&str>,
    method: &str,
    headers: &[(String, String)],
    source: std::net::IpAddr,
) {
    use crate::rules::{RequestView, RuleSet, ViewHeaders};
    let Ok(set) = RuleSet::compile(rules, default, &|_| None) else {
        return;
    };
    let method = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET);
    let mut map = http::HeaderMap::new();
    let mut raw = Vec::new();
    for (n, v) in headers {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(n.as_bytes()),
            http::HeaderValue::from_bytes(v.as_bytes()),
        ) else {
            continue;
        };
        map.append(name, value);
        raw.push(httparse::Header {
            name: n.as_str(),
            value: v.as_bytes(),
        });
    }
    let view = |headers| RequestView {
        host,
        path,
        query,
        method: &method,
        headers,
        source,
    };
    let (_, by_map) = set.select(&view(ViewHeaders::Map(&map)));
    let (_, by_raw) = set.select(&view(ViewHeaders::Raw(&raw)));
    assert_eq!(by_map, by_raw, "the same rule for both header forms");
}
