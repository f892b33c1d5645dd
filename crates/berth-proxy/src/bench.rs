//! Entry points for the criterion micro-benchmarks (`benches/selection.rs`,
//! `benches/request_path.rs`): the per-request work of the HTTP/1.1 fast path without
//! sockets — parsing and checking a request head, writing it as the target gets it, rule
//! matching, target selection (with stickiness cookies), and parsing and rewriting a
//! response head. Not part of the stable API: it exposes no internal type, only
//! functions over bytes and strings.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use berth_model::elb::{Listener, TargetGroup};
use berth_model::elb_attributes::TargetGroupAttributes;
use http::{HeaderMap, Method};

use crate::clock::Clock;
use crate::config::ProxyTarget;
use crate::error::ProxyError;
use crate::forwarded::{self, ForwardedValues, XffMode};
use crate::group::GroupRuntime;
use crate::group_settings::GroupSettings;
use crate::h1_codec::{self, parse_len, Parsed};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::rules::{RequestView, RuleSet, ViewHeaders};
use crate::sticky::{self, Affinity};

fn runtime(tg: &TargetGroup) -> Result<Arc<GroupRuntime>, ProxyError> {
    let attributes =
        TargetGroupAttributes::parse(&tg.attributes).map_err(|source| ProxyError::Invalid {
            resource: "target group",
            name: tg.target_group_name.clone(),
            source,
        })?;
    Ok(GroupRuntime::new(
        &tg.target_group_arn,
        GroupSettings::from_model(tg, &attributes)?,
        &Metrics::new(&prometheus::Registry::new()),
        Notifier::new(),
        Clock::new(),
        None,
    ))
}

/// A listener's compiled rules.
pub struct Rules {
    rules: RuleSet,
}

impl Rules {
    /// Compiles `listener`'s rules; its actions may forward to `groups`.
    pub fn new(listener: &Listener, groups: &[TargetGroup]) -> Result<Rules, ProxyError> {
        let rts = groups
            .iter()
            .map(|g| Ok((g.target_group_arn.clone(), runtime(g)?)))
            .collect::<Result<Vec<_>, ProxyError>>()?;
        let lookup = |arn: &str| rts.iter().find(|(a, _)| a == arn).map(|(_, g)| g.clone());
        Ok(Rules {
            rules: RuleSet::compile(&listener.rules, &listener.default_actions, &lookup)?,
        })
    }

    /// How many rules were evaluated to find the request's action.
    pub fn evaluate(
        &self,
        host: &str,
        path: &str,
        query: Option<&str>,
        method: &Method,
        headers: &HeaderMap,
        source: IpAddr,
    ) -> usize {
        let view = RequestView {
            host,
            path,
            query,
            method,
            headers: crate::rules::ViewHeaders::Map(headers),
            source,
        };
        self.rules.select(&view).1
    }

    /// [`Rules::evaluate`] over a request head's raw headers, as the fast path sees them
    /// (`head` must be a whole request head; its Host and target are matched).
    pub fn evaluate_head(&self, head: &[u8], source: IpAddr) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(head).ok()?;
        let target = req.path?;
        let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let host = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .and_then(|h| std::str::from_utf8(h.value).ok())?;
        let view = RequestView {
            host: crate::rules::strip_port(host),
            path,
            query,
            method: &method,
            headers: ViewHeaders::Raw(req.headers),
            source,
        };
        Some(self.rules.select(&view).1)
    }
}

/// Request headers the fast path parses (as in `fast_h1`).
const MAX_REQUEST_HEADERS: usize = 64;

/// A request head as the fast path handles it before routing: parsed by httparse,
/// checked by the edge gate, and its framing and hop-by-hop headers read. The number of
/// header bytes, or None where the fast path would hand the request to hyper.
pub fn parse_request_head(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    crate::edge::check_head(&buf[..head_len]).ok()?;
    let mut body_len = None;
    let mut host = None;
    for h in req.headers.iter() {
        let n = h.name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            body_len = Some(parse_len(h.value)?);
        } else if n.eq_ignore_ascii_case(b"host") {
            host = Some(std::str::from_utf8(h.value).ok()?);
        } else if n.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive") {
                    return None;
                }
            }
        } else if n.eq_ignore_ascii_case(b"transfer-encoding")
            || n.eq_ignore_ascii_case(b"expect")
            || n.eq_ignore_ascii_case(b"upgrade")
        {
            return None;
        }
    }
    host?;
    Method::from_bytes(req.method?.as_bytes()).ok()?;
    Some(head_len + body_len.unwrap_or(0))
}

/// Writes a client's request head as the target gets it: the request line, the headers
/// without hop-by-hop ones, and X-Forwarded-For (appended to), -Proto and -Port.
pub struct RequestWriter {
    forwarded: ForwardedValues,
}

impl RequestWriter {
    /// For a client at `peer` on a listener port `port`.
    pub fn new(peer: SocketAddr, port: u16) -> RequestWriter {
        RequestWriter {
            forwarded: ForwardedValues::new(peer, port, "http"),
        }
    }

    /// Writes `head`'s upstream form into `out` (cleared first); false when `head` is
    /// not a whole request head.
    pub fn write(&self, head: &[u8], out: &mut Vec<u8>) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(_)) = req.parse(head) else {
            return false;
        };
        let (Some(method), Some(target)) = (req.method, req.path) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        forwarded::write_request_headers(out, req.headers, XffMode::Append, false, &self.forwarded);
        out.extend_from_slice(b"\r\n");
        true
    }
}

/// A target's response head as the fast path handles it: parsed for its framing
/// (`h1_codec::parse_response`), then written for the client without hop-by-hop
/// headers, with an `AWSALB` stickiness cookie naming `target` when `sticky`. The
/// response head's length, or None when it is not a whole final response head.
pub fn rewrite_response_head(
    buf: &[u8],
    target: SocketAddr,
    sticky: bool,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let Parsed::Head(head) = h1_codec::parse_response(buf) else {
        return None;
    };
    out.clear();
    crate::fast_h1::response_head::write_for_client(out, buf, &head, None)?;
    if sticky {
        let affinity = Affinity::of_request(
            Some(crate::group_settings::Stickiness::LbCookie {
                duration: std::time::Duration::from_secs(86_400),
            }),
            |_| None,
        );
        if let Some(c) = affinity.response_cookie(target, false) {
            out.extend_from_slice(b"set-cookie: ");
            c.write_value(out);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Some(head.len)
}

/// A target group with `n` routable targets (health checks off).
pub struct Targets {
    group: Arc<GroupRuntime>,
}

impl Targets {
    /// Must be called inside a tokio runtime.
    pub fn new(tg: &TargetGroup, n: u16) -> Result<Targets, ProxyError> {
        let mut tg = tg.clone();
        tg.health_check_enabled = false;
        let group = runtime(&tg)?;
        let targets: Vec<ProxyTarget> = (0..n)
            .map(|i| {
                let addr = Targets::addr(i);
                ProxyTarget {
                    id: addr.ip().to_string(),
                    port: 8080,
                    addr,
                    draining: false,
                    mesh_hop: None,
                }
            })
            .collect();
        let settings = (**group.settings.load()).clone();
        group.update(settings, &targets);
        Ok(Targets { group })
    }

    /// Picks a target and counts the request in and out again.
    pub fn pick(&self) -> Option<SocketAddr> {
        self.group.pick(&[], None).map(|g| g.target().addr)
    }

    /// Picks a target, preferring the one a request's Cookie header value names in its
    /// `AWSALB` cookie (load-balancer-cookie stickiness), as the fast path does.
    pub fn pick_sticky(&self, cookie_header: &[u8]) -> Option<SocketAddr> {
        let affinity = Affinity::of_request(
            Some(crate::group_settings::Stickiness::LbCookie {
                duration: std::time::Duration::from_secs(86_400),
            }),
            |name| sticky::cookie([cookie_header], name),
        );
        self.group
            .pick(&[], affinity.preferred)
            .map(|g| g.target().addr)
    }

    /// Picks a target and keeps the request counted in flight on it until the returned
    /// guard is dropped (to load targets unevenly).
    pub fn hold(&self) -> Option<Held> {
        self.group.pick(&[], None).map(Held)
    }

    /// The `AWSALB` cookie (`AWSALB=<value>`) naming the target at `addr`.
    pub fn sticky_cookie(addr: SocketAddr) -> String {
        let mut out = Vec::new();
        let affinity = Affinity::of_request(
            Some(crate::group_settings::Stickiness::LbCookie {
                duration: std::time::Duration::from_secs(86_400),
            }),
            |_| None,
        );
        if let Some(c) = affinity.response_cookie(addr, false) {
            c.write_value(&mut out);
        }
        let text = String::from_utf8(out).unwrap_or_default();
        text.split(';').next().unwrap_or_default().to_string()
    }

    /// The address of the `i`th target [`Targets::new`] made.
    pub fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080))
    }
}

/// A request counted in flight on a target ([`Targets::hold`]).
pub struct Held(#[allow(dead_code)] crate::target::InFlight);
