//! Listener rules compiled for the request path: conditions, actions and the matcher.
//!
//! Rules are evaluated in priority order, lowest first; the first whose conditions all
//! match decides the action, else the listener's default action. Within one condition the
//! values are ORed, as on an ALB. Host, header and query matching is case-insensitive,
//! path matching case-sensitive; `*` matches any run of characters, `?` exactly one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use berth_model::elb::{parse_cidr, Action, ActionType, Rule};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::error::ProxyError;
use crate::group::GroupRuntime;

/// What a request needs to be matched, borrowed from it.
pub(crate) struct RequestView<'a> {
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) method: &'a Method,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) source: IpAddr,
}

/// A compiled wildcard pattern.
type Pattern = Box<[u8]>;

#[derive(Debug)]
pub(crate) enum Condition {
    Host(Vec<Box<[u8]>>),
    Path(Vec<Box<[u8]>>),
    Header(http::HeaderName, Vec<Box<[u8]>>),
    Method(Vec<Method>),
    /// (key pattern or any key, value pattern)
    Query(Vec<(Option<Pattern>, Pattern)>),
    SourceIp(Vec<(IpAddr, u8)>),
}

impl Condition {
    fn matches(&self, r: &RequestView<'_>) -> bool {
        match self {
            Condition::Host(pats) => pats.iter().any(|p| wildcard(p, r.host.as_bytes(), true)),
            Condition::Path(pats) => pats.iter().any(|p| wildcard(p, r.path.as_bytes(), false)),
            Condition::Header(name, pats) => r
                .headers
                .get_all(name)
                .iter()
                .any(|v| pats.iter().any(|p| wildcard(p, v.as_bytes(), true))),
            Condition::Method(ms) => ms.iter().any(|m| m == r.method),
            Condition::Query(pairs) => {
                let Some(q) = r.query else { return false };
                q.split('&').any(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    pairs.iter().any(|(pk, pv)| {
                        pk.as_ref()
                            .is_none_or(|pk| wildcard(pk, k.as_bytes(), true))
                            && wildcard(pv, v.as_bytes(), true)
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
    pub(crate) priority: u32,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) action: CompiledAction,
}

/// A listener's rules in priority order and its default action.
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) default: CompiledAction,
}

impl RuleSet {
    /// The action for a request and the number of rules evaluated.
    #[inline]
    pub(crate) fn select(&self, r: &RequestView<'_>) -> (&CompiledAction, usize) {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.conditions.iter().all(|c| c.matches(r)) {
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
            let action = compile_action(
                r.actions.first().ok_or_else(|| {
                    ProxyError::config(format!("rule {}", r.priority), "a rule needs an action")
                })?,
                group,
            )?;
            out.push(CompiledRule {
                priority: r.priority,
                conditions,
                action,
            });
        }
        out.sort_by_key(|r| r.priority);
        Ok(RuleSet {
            rules: out,
            default,
        })
    }
}

fn pats(values: &[String]) -> Vec<Box<[u8]>> {
    values.iter().map(|v| v.as_bytes().into()).collect()
}

fn compile_condition(c: &berth_model::elb::RuleCondition) -> Result<Condition, ProxyError> {
    let bad = |m: String| ProxyError::config(format!("condition {}", c.field), m);
    Ok(match c.field.as_str() {
        "host-header" => Condition::Host(pats(&c.values)),
        "path-pattern" => Condition::Path(pats(&c.values)),
        "http-header" => {
            let h = c
                .http_header_config
                .as_ref()
                .ok_or_else(|| bad("needs httpHeaderConfig".into()))?;
            let name = http::HeaderName::from_bytes(h.http_header_name.as_bytes())
                .map_err(|_| bad(format!("bad header name {:?}", h.http_header_name)))?;
            Condition::Header(name, pats(&h.values))
        }
        "http-request-method" => Condition::Method(
            c.values
                .iter()
                .map(|m| {
                    Method::from_bytes(m.as_bytes()).map_err(|_| bad(format!("bad method {m:?}")))
                })
                .collect::<Result<_, _>>()?,
        ),
        "query-string" => Condition::Query(
            c.query_string_config
                .as_ref()
                .ok_or_else(|| bad("needs queryStringConfig".into()))?
                .iter()
                .map(|kv| {
                    (
                        kv.key.as_ref().map(|k| k.as_bytes().into()),
                        kv.value.as_bytes().into(),
                    )
                })
                .collect(),
        ),
        "source-ip" => Condition::SourceIp(
            c.values
                .iter()
                .map(|v| parse_cidr(v).map_err(bad))
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(bad(format!("unknown condition field {other:?}"))),
    })
}

fn compile_action(
    a: &Action,
    group: &dyn Fn(&str) -> Option<Arc<GroupRuntime>>,
) -> Result<CompiledAction, ProxyError> {
    Ok(match a.kind {
        ActionType::Forward => {
            let mut groups = Vec::new();
            let lookup = |arn: &str| {
                group(arn).ok_or_else(|| {
                    ProxyError::config(
                        "forward action",
                        format!("target group {arn:?} is not in the configuration"),
                    )
                })
            };
            if let Some(f) = &a.forward_config {
                for t in &f.target_groups {
                    groups.push(WeightedGroup {
                        group: lookup(&t.target_group_arn)?,
                        weight: t.weight,
                    });
                }
            } else {
                groups.push(WeightedGroup {
                    group: lookup(&a.target_group_arn)?,
                    weight: 1,
                });
            }
            let total_weight = groups.iter().map(|g| g.weight).sum();
            let group_stickiness = a
                .forward_config
                .as_ref()
                .and_then(|f| f.target_group_stickiness_config.as_ref())
                .filter(|s| s.enabled)
                .map(|s| Duration::from_secs(s.duration_seconds.unwrap_or(3600) as u64));
            CompiledAction::Forward(Forward {
                groups,
                total_weight,
                group_stickiness,
            })
        }
        ActionType::Redirect => {
            let r = a
                .redirect_config
                .as_ref()
                .ok_or_else(|| ProxyError::config("redirect action", "needs redirectConfig"))?;
            CompiledAction::Redirect(Redirect {
                protocol: r.protocol.clone(),
                host: r.host.clone(),
                port: r.port.clone(),
                path: r.path.clone(),
                query: r.query.clone(),
                status: if r.status_code == "HTTP_301" {
                    StatusCode::MOVED_PERMANENTLY
                } else {
                    StatusCode::FOUND
                },
            })
        }
        ActionType::FixedResponse => {
            let f = a.fixed_response_config.as_ref().ok_or_else(|| {
                ProxyError::config("fixed-response action", "needs fixedResponseConfig")
            })?;
            let status = f
                .status_code
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| {
                    ProxyError::config(
                        "fixed-response action",
                        format!("bad status {:?}", f.status_code),
                    )
                })?;
            CompiledAction::Fixed {
                status,
                content_type: f
                    .content_type
                    .as_ref()
                    .and_then(|c| http::HeaderValue::from_str(c).ok()),
                body: Bytes::from(f.message_body.clone().unwrap_or_default()),
            }
        }
    })
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
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"/api/*", b"/api/users", false));
        assert!(wildcard(b"/api/*", b"/api/", false));
        assert!(!wildcard(b"/api/*", b"/API/x", false));
        assert!(wildcard(b"*.example.com", b"www.EXAMPLE.com", true));
        assert!(!wildcard(b"*.example.com", b"example.com", true));
        assert!(wildcard(b"/v?/x", b"/v1/x", false));
        assert!(!wildcard(b"/v?/x", b"/v12/x", false));
        assert!(wildcard(b"*a*b*c", b"xxaxxbxxc", false));
        assert!(!wildcard(b"*a*b*c", b"xxaxxcxxb", false));
        assert!(wildcard(b"*", b"", false));
        assert!(!wildcard(b"", b"x", false));
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_cidr(ip("10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(!in_cidr(ip("11.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_cidr(ip("::ffff:10.1.2.3"), ip("10.0.0.0"), 8));
        assert!(in_cidr(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_cidr(ip("2001:db8::1"), ip("2001:db8::"), 32));
    }

    #[test]
    fn redirect_placeholders() {
        let r = Redirect {
            protocol: "HTTPS".into(),
            host: "#{host}".into(),
            port: "443".into(),
            path: "/new/#{path}".into(),
            query: "#{query}&x=1".into(),
            status: StatusCode::MOVED_PERMANENTLY,
        };
        assert_eq!(
            r.location("http", "example.com", 80, "/a/b", Some("q=1")),
            "https://example.com/new/a/b?q=1&x=1"
        );
        let r = Redirect {
            protocol: "#{protocol}".into(),
            host: "other".into(),
            port: "#{port}".into(),
            path: "/#{path}".into(),
            query: "#{query}".into(),
            status: StatusCode::FOUND,
        };
        assert_eq!(
            r.location("http", "h", 8080, "/p", None),
            "http://other:8080/p"
        );
    }
}
