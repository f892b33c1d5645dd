//! Compiling a listener rule's conditions and actions from the model into their
//! request-path form: patterns, parsed header names, methods and CIDRs, target groups
//! looked up by ARN. Bad input is refused with an error naming the condition or action.
//! It does not match requests.

use std::time::Duration;

use berth_model::elb::{parse_cidr, Action, ActionType};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::sync::Arc;

use super::{CompiledAction, Condition, Forward, Pattern, Redirect, WeightedGroup};
use crate::error::ProxyError;
use crate::group::GroupRuntime;

fn pats(values: &[String]) -> Vec<Pattern> {
    values.iter().map(|v| Pattern::new(v)).collect()
}

pub(super) fn compile_condition(
    c: &berth_model::elb::RuleCondition,
) -> Result<Condition, ProxyError> {
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
                .map(|kv| (kv.key.as_deref().map(Pattern::new), Pattern::new(&kv.value)))
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

pub(super) fn compile_action(
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
