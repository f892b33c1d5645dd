//! Listener rules compiled for the request path: conditions, actions and the matcher.
//!
//! Rules are evaluated in priority order, lowest first; the first whose conditions all
//! match decides the action, else the listener's default action. Within one condition the
//! values are ORed, as on an ALB. Host, header and query matching is case-insensitive,
//! path matching case-sensitive; `*` matches any run of characters, `?` exactly one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use berth_model::elb::{Action, Rule};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::error::ProxyError;
use crate::group::GroupRuntime;

mod compile;
mod index;

use compile::{compile_action, compile_condition};
use index::{Lists, RuleIndex};

/// Up to this many rules, evaluating each is cheaper than the index's lookups.
const MIN_INDEXED_RULES: usize = 4;

/// What a request needs to be matched, borrowed from it.
pub(crate) struct RequestView<'a> {
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) method: &'a Method,
    pub(crate) headers: ViewHeaders<'a>,
    pub(crate) source: IpAddr,
}

/// A request's headers as the rules see them: hyper's map, or the raw headers the
/// HTTP/1.1 fast path parsed (see [`crate::fast_h1`]).
#[derive(Clone, Copy)]
pub(crate) enum ViewHeaders<'a> {
    Map(&'a HeaderMap),
    Raw(&'a [httparse::Header<'a>]),
}

impl ViewHeaders<'_> {
    /// Whether any value of the header `name` satisfies `f`.
    fn any(&self, name: &http::HeaderName, mut f: impl FnMut(&[u8]) -> bool) -> bool {
        match self {
            ViewHeaders::Map(m) => m.get_all(name).iter().any(|v| f(v.as_bytes())),
            ViewHeaders::Raw(hs) => hs
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name.as_str()))
                .any(|h| f(h.value)),
        }
    }
}

/// A wildcard pattern compiled to the cheapest matcher that decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `*`
    Any,
    Exact(Box<[u8]>),
    /// `abc*`
    Prefix(Box<[u8]>),
    /// `*abc`
    Suffix(Box<[u8]>),
    Glob(Box<[u8]>),
}

impl Pattern {
    pub(crate) fn new(p: &str) -> Pattern {
        let b = p.as_bytes();
        let wild = |x: &[u8]| x.iter().any(|&c| c == b'*' || c == b'?');
        if b == b"*" {
            Pattern::Any
        } else if !wild(b) {
            Pattern::Exact(b.into())
        } else if b.len() > 1 && b[b.len() - 1] == b'*' && !wild(&b[..b.len() - 1]) {
            Pattern::Prefix(b[..b.len() - 1].into())
        } else if b.len() > 1 && b[0] == b'*' && !wild(&b[1..]) {
            Pattern::Suffix(b[1..].into())
        } else {
            Pattern::Glob(b.into())
        }
    }

    #[inline]
    pub(crate) fn matches(&self, s: &[u8], ci: bool) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if ci {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self {
            Pattern::Any => true,
            Pattern::Exact(p) => p.len() == s.len() && eq(p, s),
            Pattern::Prefix(p) => s.len() >= p.len() && eq(p, &s[..p.len()]),
            Pattern::Suffix(p) => s.len() >= p.len() && eq(p, &s[s.len() - p.len()..]),
            Pattern::Glob(p) => wildcard(p, s, ci),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Condition {
    Host(Vec<Pattern>),
    Path(Vec<Pattern>),
    Header(http::HeaderName, Vec<Pattern>),
    Method(Vec<Method>),
    /// (key pattern or any key, value pattern)
    Query(Vec<(Option<Pattern>, Pattern)>),
    SourceIp(Vec<(IpAddr, u8)>),
}

impl Condition {
    fn cost(&self) -> u8 {
        match self {
            Condition::Method(_) => 0,
            Condition::Path(_) => 1,
            Condition::Host(_) => 2,
            Condition::SourceIp(_) => 3,
            Condition::Header(..) => 4,
            Condition::Query(_) => 5,
        }
    }

    fn matches(&self, r: &RequestView<'_>) -> bool {
        match self {
            Condition::Host(pats) => pats.iter().any(|p| p.matches(r.host.as_bytes(), true)),
            Condition::Path(pats) => pats.iter().any(|p| p.matches(r.path.as_bytes(), false)),
            Condition::Header(name, pats) => r
                .headers
                .any(name, |v| pats.iter().any(|p| p.matches(v, true))),
            Condition::Method(ms) => ms.iter().any(|m| m == r.method),
            Condition::Query(pairs) => {
                let Some(q) = r.query else { return false };
                q.split('&').any(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    pairs.iter().any(|(pk, pv)| {
                        pk.as_ref().is_none_or(|pk| pk.matches(k.as_bytes(), true))
                            && pv.matches(v.as_bytes(), true)
                    })
                })
            }
            Condition::SourceIp(cidrs) => {
                cidrs.iter().any(|&(net, len)| in_cidr(r.source, net, len))
            }
        }
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        _ => ip,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The first 8 bytes of a path, zero padded, as a little-endian word.
#[inline]
fn path_word(p: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = p.len().min(8);
    b[..n].copy_from_slice(&p[..n]);
    u64::from_le_bytes(b)
}

/// The literal bytes every match of `p` starts with.
fn literal_prefix(p: &Pattern) -> &[u8] {
    match p {
        Pattern::Any | Pattern::Suffix(_) => &[],
        Pattern::Exact(b) | Pattern::Prefix(b) => b,
        Pattern::Glob(b) => {
            let end = b
                .iter()
                .position(|&c| c == b'*' || c == b'?')
                .unwrap_or(b.len());
            &b[..end]
        }
    }
}

/// (mask, value) such that any path a rule's path condition matches has
/// `path_word(path) & mask == value`; (0, 0) when the rule has no usable path prefix.
fn quick_filter(conditions: &[Condition]) -> (u64, u64) {
    let Some(pats) = conditions.iter().find_map(|c| match c {
        Condition::Path(p) => Some(p),
        _ => None,
    }) else {
        return (0, 0);
    };
    let mut common: Option<&[u8]> = None;
    for p in pats {
        let lit = literal_prefix(p);
        common = Some(match common {
            None => lit,
            Some(c) => {
                let n = c.iter().zip(lit).take_while(|(a, b)| a == b).count();
                &c[..n]
            }
        });
    }
    let lit = common.unwrap_or(&[]);
    let n = lit.len().min(8);
    let mut m = [0u8; 8];
    m[..n].fill(0xff);
    (u64::from_le_bytes(m), path_word(&lit[..n]))
}

/// Glob match with `*` (any run) and `?` (one byte), iterative with single backtrack point.
pub(crate) fn wildcard(pat: &[u8], s: &[u8], ci: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if ci {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut i) = (0usize, 0usize);
    let (mut star, mut mark) = (usize::MAX, 0usize);
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || (pat[p] != b'*' && eq(pat[p], s[i]))) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = p;
            mark = i;
            p += 1;
        } else if star != usize::MAX {
            p = star + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

#[derive(Debug, Clone)]
pub(crate) struct Redirect {
    pub(crate) protocol: String,
    pub(crate) host: String,
    pub(crate) port: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) status: StatusCode,
}

pub(crate) struct WeightedGroup {
    pub(crate) group: Arc<GroupRuntime>,
    pub(crate) weight: u32,
}

pub(crate) struct Forward {
    pub(crate) groups: Vec<WeightedGroup>,
    pub(crate) total_weight: u32,
    /// Target-group stickiness (`AWSALBTG`) duration, when enabled.
    pub(crate) group_stickiness: Option<Duration>,
}

pub(crate) enum CompiledAction {
    Forward(Forward),
    Redirect(Redirect),
    Fixed {
        status: StatusCode,
        content_type: Option<http::HeaderValue>,
        body: Bytes,
    },
}

pub(crate) struct CompiledRule {
    /// A quick reject kept inline: the first bytes every path this rule can match starts
    /// with, as (mask, value) over the path's first 8 bytes.
    quick: (u64, u64),
    pub(crate) priority: u32,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) action: CompiledAction,
}

/// A listener's rules in priority order and its default action.
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) default: CompiledAction,
    /// Which rules a request can match at all.
    index: RuleIndex,
}

impl RuleSet {
    /// The action for a request and the number of rules evaluated up to the match (the
    /// position of the matching rule in priority order, or all rules for the default).
    #[inline]
    pub(crate) fn select(&self, r: &RequestView<'_>) -> (&CompiledAction, usize) {
        if self.rules.len() <= MIN_INDEXED_RULES {
            return self.select_all(r);
        }
        let word = path_word(r.path.as_bytes());
        let mut lists = Lists::new();
        if !self.index.candidates(r, &mut lists) {
            return self.select_all(r);
        }
        let lists = &mut lists.lists[..lists.n];
        // Merge the sorted candidate lists, lowest rule index (priority) first.
        loop {
            let mut next = u32::MAX;
            for l in lists.iter() {
                if let Some(&i) = l.first() {
                    next = next.min(i);
                }
            }
            if next == u32::MAX {
                break;
            }
            for l in lists.iter_mut() {
                if l.first() == Some(&next) {
                    *l = &l[1..];
                }
            }
            let rule = &self.rules[next as usize];
            if word & rule.quick.0 == rule.quick.1 && rule.conditions.iter().all(|c| c.matches(r)) {
                return (&rule.action, next as usize + 1);
            }
        }
        (&self.default, self.rules.len())
    }

    /// `select` without the index: every rule in priority order.
    fn select_all(&self, r: &RequestView<'_>) -> (&CompiledAction, usize) {
        let word = path_word(r.path.as_bytes());
        for (i, rule) in self.rules.iter().enumerate() {
            if word & rule.quick.0 == rule.quick.1 && rule.conditions.iter().all(|c| c.matches(r)) {
                return (&rule.action, i + 1);
            }
        }
        (&self.default, self.rules.len())
    }

    pub(crate) fn compile(
        rules: &[Rule],
        default: &[Action],
        group: &dyn Fn(&str) -> Option<Arc<GroupRuntime>>,
    ) -> Result<RuleSet, ProxyError> {
        let default = compile_action(
            default.first().ok_or_else(|| {
                ProxyError::config("defaultActions", "a listener needs a default action")
            })?,
            group,
        )?;
        let mut out = Vec::with_capacity(rules.len());
        for r in rules {
            let mut conditions = Vec::new();
            for c in &r.conditions {
                conditions.push(compile_condition(c)?);
            }
            // All must match, so the cheapest and most selective go first.
            conditions.sort_by_key(Condition::cost);
            let action = compile_action(
                r.actions.first().ok_or_else(|| {
                    ProxyError::config(format!("rule {}", r.priority), "a rule needs an action")
                })?,
                group,
            )?;
            out.push(CompiledRule {
                quick: quick_filter(&conditions),
                priority: r.priority,
                conditions,
                action,
            });
        }
        Ok(RuleSet::new(out, default))
    }

    /// Rules sending each host of `routes` (exact, case-insensitive) to its group, in
    /// the order given, and anything else to `default`: a mesh HTTP listener's.
    pub(crate) fn by_host<'a>(
        routes: impl Iterator<Item = (&'a str, Arc<GroupRuntime>)>,
        default: CompiledAction,
    ) -> RuleSet {
        let rules = routes
            .enumerate()
            .map(|(i, (host, group))| {
                let conditions = vec![Condition::Host(vec![Pattern::Exact(
                    host.as_bytes().into(),
                )])];
                CompiledRule {
                    quick: quick_filter(&conditions),
                    priority: i as u32 + 1,
                    conditions,
                    action: CompiledAction::forward_to(group),
                }
            })
            .collect();
        RuleSet::new(rules, default)
    }

    /// No rules; everything goes to `group`: a mesh TCP listener's.
    pub(crate) fn forward_all(group: Arc<GroupRuntime>) -> RuleSet {
        RuleSet::new(Vec::new(), CompiledAction::forward_to(group))
    }

    fn new(mut rules: Vec<CompiledRule>, default: CompiledAction) -> RuleSet {
        rules.sort_by_key(|r| r.priority);
        let index = RuleIndex::build(&rules);
        RuleSet {
            rules,
            default,
            index,
        }
    }
}

impl CompiledAction {
    /// Forward everything to one group.
    pub(crate) fn forward_to(group: Arc<GroupRuntime>) -> CompiledAction {
        CompiledAction::Forward(Forward {
            groups: vec![WeightedGroup { group, weight: 1 }],
            total_weight: 1,
            group_stickiness: None,
        })
    }
}

impl Redirect {
    /// The Location for a request, with `#{protocol}`, `#{host}`, `#{port}`, `#{path}`
    /// and `#{query}` replaced by the request's values. `path` is without its leading `/`
    /// and `query` without its `?`, as on an ALB.
    pub(crate) fn location(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        path: &str,
        query: Option<&str>,
    ) -> String {
        let port_s = port.to_string();
        let path_s = path.strip_prefix('/').unwrap_or(path);
        let query_s = query.unwrap_or("");
        let fill = |t: &str| {
            t.replace("#{protocol}", scheme)
                .replace("#{host}", host)
                .replace("#{port}", &port_s)
                .replace("#{path}", path_s)
                .replace("#{query}", query_s)
        };
        let proto = fill(&self.protocol).to_ascii_lowercase();
        let host = fill(&self.host);
        let port = fill(&self.port);
        let mut path = fill(&self.path);
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let query = fill(&self.query);
        let default_port = matches!(
            (proto.as_str(), port.as_str()),
            ("http", "80") | ("https", "443")
        );
        let mut out = format!("{proto}://{host}");
        if !default_port && !port.is_empty() {
            out.push(':');
            out.push_str(&port);
        }
        out.push_str(&path);
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query);
        }
        out
    }
}

/// A Host value without its port, as host-header conditions match it.
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The client address a source-ip condition sees.
pub(crate) fn source_ip(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        ip => ip,
    }
}

#[cfg(test)]
mod tests;
