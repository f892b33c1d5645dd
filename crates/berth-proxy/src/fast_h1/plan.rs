//! Planning one request on the fast path: parsing the head at the start of the client
//! buffer, deciding whether the fast path serves it (or hands the connection to hyper),
//! choosing the rule, target group and stickiness, and writing the request's upstream
//! form (hop-by-hop headers removed, X-Forwarded-* added).
//!
//! An upgrade request (`Upgrade` with `Connection: upgrade`, no body) on a plain HTTP
//! connection, bound for a group that is not a mesh group, is planned too, marked
//! [`Plan::upgrade`], with its `Upgrade` header and `Connection: upgrade` kept as the
//! hyper path keeps them; [`super::upgrade`] serves it. Any other upgrade (over TLS, to a
//! mesh group, with a body, alongside `Connection: close`) goes to hyper.
//!
//! An HTTP/1.0 request is planned as well (with a Host field, and neither `Upgrade` nor
//! `Expect`, which are HTTP/1.1's): it goes to the target as HTTP/1.1, as every request
//! does, and its connection stays open only when the client asked for that with
//! `Connection: keep-alive` ([`Plan::client_http10`] tells the response what it owes such
//! a client).
//!
//! What it does not do: talk to a target or the client (the connection in
//! [`super`] does).

use std::mem::MaybeUninit;
use std::sync::Arc;

use http::Method;

use super::{MAX_BUFFERED_BODY, MAX_REQUEST_HEADERS};
use crate::attempt::is_idempotent;
use crate::context::{ConnCtx, MAX_HEADER_BYTES};
use crate::group::GroupRuntime;
use crate::h1_codec::{parse_len, put_header};
use crate::rules::{source_ip, strip_port, CompiledAction, RequestView, ViewHeaders};
use crate::sticky::{self, Affinity, TG_COOKIE};
use crate::{edge, forwarded};

/// A request ready to forward; its upstream form is in the connection's `out` buffer.
pub(super) struct Plan {
    /// Bytes of the client buffer the request takes (head and the body bytes in hand).
    pub(super) len: usize,
    pub(super) group: Arc<GroupRuntime>,
    pub(super) affinity: Affinity,
    /// `AWSALBTG` to set, after a weighted choice with target-group stickiness.
    pub(super) tg_cookie: Option<String>,
    pub(super) head: bool,
    pub(super) idempotent: bool,
    /// The client asked to close after this response (an HTTP/1.0 client, by not asking
    /// to keep the connection open).
    pub(super) close: bool,
    /// The client speaks HTTP/1.0: it cannot read a chunked body, and an open
    /// connection is announced to it with `Connection: keep-alive`.
    pub(super) client_http10: bool,
    /// The request body's length.
    pub(super) body_len: usize,
    /// Body bytes still to come from the client after `len`: a large body streams.
    pub(super) body_pending: u64,
    /// The client waits for `100 Continue` before it sends its body.
    pub(super) expect_continue: bool,
    /// The request asks to switch protocols (a WebSocket, say): served by
    /// [`super::upgrade`] on a connection of its own to the target.
    pub(super) upgrade: bool,
}

pub(super) enum Prep {
    More,
    Fallback,
    Forward(Plan),
}

/// Parses the request at the start of `buf` and, when it is whole and the fast path
/// serves it, routes it and writes its upstream form into `out`.
pub(super) fn prepare(buf: &[u8], cx: &ConnCtx, out: &mut Vec<u8>) -> Prep {
    if buf.starts_with(b"PRI ") {
        // The HTTP/2 connection preface (h2c with prior knowledge).
        return Prep::Fallback;
    }
    // Left uninitialized: httparse writes the fields it finds.
    let mut headers =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEADER_BYTES {
                Prep::Fallback
            } else {
                Prep::More
            };
        }
        Err(_) => return Prep::Fallback,
    };
    if head_len > MAX_HEADER_BYTES {
        return Prep::Fallback;
    }
    let client_http10 = match req.version {
        Some(1) => false,
        Some(0) => true,
        _ => return Prep::Fallback,
    };
    // A request the edge refuses goes to hyper, whose edge gate answers it.
    if edge::check_head(&buf[..head_len]).is_err() {
        return Prep::Fallback;
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Prep::Fallback;
    };
    if !target.starts_with('/') {
        return Prep::Fallback;
    }
    let headers: &[httparse::Header<'_>] = req.headers;

    // Framing and hop-by-hop headers: anything unusual goes to hyper.
    let mut body_len: Option<usize> = None;
    let mut host: Option<&str> = None;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    // The `Upgrade` header's value, and whether `Connection` names it.
    let mut upgrade: Option<&[u8]> = None;
    let mut connection_upgrade = false;
    for h in headers {
        let n = h.name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            if body_len.is_some() {
                return Prep::Fallback;
            }
            match parse_len(h.value) {
                Some(v) => body_len = Some(v),
                None => return Prep::Fallback,
            }
        } else if n.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Prep::Fallback;
            }
            match std::str::from_utf8(h.value) {
                Ok(v) => host = Some(v),
                Err(_) => return Prep::Fallback,
            }
        } else if n.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"upgrade") {
                    connection_upgrade = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                } else if !t.is_empty() {
                    return Prep::Fallback;
                }
            }
        } else if n.eq_ignore_ascii_case(b"expect") {
            if expect_continue || !h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                return Prep::Fallback;
            }
            expect_continue = true;
        } else if n.eq_ignore_ascii_case(b"upgrade") {
            if upgrade.is_some() {
                return Prep::Fallback;
            }
            upgrade = Some(h.value);
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            return Prep::Fallback;
        }
    }
    if client_http10 {
        // Upgrade and Expect are HTTP/1.1's: hyper answers them from a 1.0 client.
        if upgrade.is_some() || connection_upgrade || expect_continue {
            return Prep::Fallback;
        }
        // An HTTP/1.0 connection is persistent only when the client asks for it.
        close |= !keep_alive;
    }
    // An upgrade is served here only in its plain form: both headers, no body, over a
    // plain HTTP connection (TLS listeners keep hyper's upgrade handling).
    if (upgrade.is_some() || connection_upgrade)
        && !(upgrade.is_some()
            && connection_upgrade
            && !close
            && !expect_continue
            && body_len.unwrap_or(0) == 0
            && cx.scheme() == "http")
    {
        return Prep::Fallback;
    }
    let Some(host_full) = host else {
        return Prep::Fallback;
    };
    let body_len = body_len.unwrap_or(0);
    if expect_continue && body_len == 0 {
        return Prep::Fallback;
    }
    // A large body, or one the client holds back until it is wanted, streams: the
    // request goes out with the part in hand.
    let in_hand = if body_len > MAX_BUFFERED_BODY || expect_continue {
        body_len.min(buf.len() - head_len)
    } else {
        body_len
    };
    let len = head_len + in_hand;
    if buf.len() < len {
        return Prep::More;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Prep::Fallback;
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };

    let l = &cx.listener;
    let routes = l.routes.load();
    let host = strip_port(host_full);
    let view = RequestView {
        host,
        path,
        query,
        method: &method,
        headers: ViewHeaders::Raw(headers),
        source: source_ip(cx.peer),
    };
    let (action, evaluated) = routes.rules.select(&view);
    let CompiledAction::Forward(f) = action else {
        return Prep::Fallback;
    };
    let Some((group, tg_cookie)) = sticky::choose_group(f, || raw_cookie(headers, TG_COOKIE))
    else {
        return Prep::Fallback;
    };
    let settings = group.settings.load();
    if settings.h2 {
        return Prep::Fallback;
    }
    // A mesh group's upgrades keep hyper's path (its per-request deadline and metrics).
    if upgrade.is_some() && group.mesh.is_some() {
        return Prep::Fallback;
    }
    let stickiness = settings.stickiness.clone();
    drop(settings);

    // From here on the fast path serves the request.
    l.metrics.requests.inc();
    if evaluated > 0 {
        l.metrics.rule_evaluations.inc_by(evaluated as u64);
    }
    if body_len > 0 {
        l.metrics.processed_bytes.inc_by(body_len as u64);
    }
    let affinity = Affinity::of_request(stickiness, |name| raw_cookie(headers, name));

    // The request as the target gets it.
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    forwarded::write_request_headers(
        out,
        headers,
        routes.xff,
        routes.drop_invalid_headers,
        &cx.forwarded,
    );
    if let Some(protocol) = upgrade {
        put_header(out, b"upgrade", protocol);
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&buf[head_len..len]);

    Prep::Forward(Plan {
        len,
        group,
        affinity,
        tg_cookie,
        head: method == Method::HEAD,
        idempotent: is_idempotent(&method),
        close,
        client_http10,
        body_len,
        body_pending: (body_len - in_hand) as u64,
        // A client that did not wait needs no go-ahead.
        expect_continue: expect_continue && in_hand == 0,
        upgrade: upgrade.is_some(),
    })
}

/// The value of cookie `name` in the request's Cookie headers.
fn raw_cookie<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a str> {
    sticky::cookie(
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .map(|h| h.value),
        name,
    )
}
