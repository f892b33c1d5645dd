//! A target group's settings compiled from the model: balancing algorithm, stickiness,
//! health-check settings, slow start, deregistration delay, fail-open minimum and the
//! protocol spoken to targets. Pure data: no targets, no tasks, no I/O.

use std::time::Duration;

use berth_model::elb::{parse_matcher, Protocol, TargetGroup, TRAFFIC_PORT};
use berth_model::elb_attributes::{self, TargetGroupAttributes};

use crate::error::ProxyError;

/// The balancing algorithm, as the model types it (peak-EWMA: power of two choices over
/// latency × outstanding requests).
pub(crate) use berth_model::elb_attributes::LoadBalancingAlgorithm as Algorithm;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stickiness {
    /// `AWSALB` cookie set by the load balancer.
    LbCookie { duration: Duration },
    /// Follows an application cookie of this name; the load balancer's own cookie is
    /// `AWSALBAPP`.
    AppCookie { name: String, duration: Duration },
    /// By client address (NLB).
    SourceIp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HealthProtocol {
    Http,
    Https,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthSettings {
    pub(crate) enabled: bool,
    pub(crate) protocol: HealthProtocol,
    /// None: the target's traffic port.
    pub(crate) port: Option<u16>,
    pub(crate) path: String,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) healthy_threshold: u32,
    pub(crate) unhealthy_threshold: u32,
    pub(crate) matcher: Vec<(u16, u16)>,
    /// GRPC target groups: the gRPC status codes that pass (`matcher.grpcCode`, ALB
    /// default 12); the check is a gRPC call over HTTP/2.
    pub(crate) grpc: Option<Vec<(u16, u16)>>,
}

impl HealthSettings {
    pub(crate) fn matches(&self, status: u16) -> bool {
        self.matcher
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupSettings {
    pub(crate) name: String,
    pub(crate) protocol: Protocol,
    pub(crate) algorithm: Algorithm,
    pub(crate) slow_start: Duration,
    pub(crate) deregistration_delay: Duration,
    pub(crate) stickiness: Option<Stickiness>,
    pub(crate) health: HealthSettings,
    /// Fewer healthy targets than this and the group fails open to all.
    pub(crate) min_healthy: usize,
    pub(crate) proxy_protocol_v2: bool,
    /// `protocolVersion` HTTP2 or GRPC: HTTP/2 to the targets.
    pub(crate) h2: bool,
}

impl GroupSettings {
    /// Compiles `g`, whose attributes `attrs` its validation produced.
    pub(crate) fn from_model(
        g: &TargetGroup,
        attrs: &TargetGroupAttributes,
    ) -> Result<GroupSettings, ProxyError> {
        let bad = |m: String| ProxyError::config(format!("target group {}", g.target_group_arn), m);
        let secs = |n: u32| Duration::from_secs(u64::from(n));
        let stickiness = attrs.stickiness.as_ref().map(|s| match s {
            elb_attributes::Stickiness::LbCookie { duration_seconds } => Stickiness::LbCookie {
                duration: secs(*duration_seconds),
            },
            elb_attributes::Stickiness::AppCookie {
                cookie_name,
                duration_seconds,
            } => Stickiness::AppCookie {
                name: cookie_name.clone(),
                duration: secs(*duration_seconds),
            },
            elb_attributes::Stickiness::SourceIp => Stickiness::SourceIp,
        });
        let protocol = match g.health_check_protocol() {
            Protocol::Http => HealthProtocol::Http,
            Protocol::Https => HealthProtocol::Https,
            _ => HealthProtocol::Tcp,
        };
        let port = if g.health_check_port == TRAFFIC_PORT {
            None
        } else {
            Some(
                g.health_check_port
                    .parse()
                    .map_err(|_| bad(format!("bad healthCheckPort {:?}", g.health_check_port)))?,
            )
        };
        let grpc = if g.protocol_version.as_deref() == Some("GRPC") {
            Some(parse_grpc_matcher(g.matcher.grpc_code.as_deref().unwrap_or("12")).map_err(bad)?)
        } else {
            None
        };
        let matcher = match &g.matcher.http_code {
            Some(m) => parse_matcher(m).map_err(bad)?,
            None => vec![(200, 200)],
        };
        Ok(GroupSettings {
            name: g.target_group_name.clone(),
            protocol: g.protocol,
            algorithm: attrs.algorithm,
            slow_start: secs(attrs.slow_start_seconds),
            deregistration_delay: secs(attrs.deregistration_delay_seconds),
            stickiness,
            health: HealthSettings {
                enabled: g.health_check_enabled,
                protocol,
                port,
                path: g.health_check_path.clone(),
                interval: Duration::from_secs(g.health_check_interval_seconds as u64),
                timeout: Duration::from_secs(g.health_check_timeout_seconds as u64),
                healthy_threshold: g.healthy_threshold_count,
                unhealthy_threshold: g.unhealthy_threshold_count,
                matcher,
                grpc,
            },
            min_healthy: attrs.minimum_healthy_targets as usize,
            proxy_protocol_v2: attrs.proxy_protocol_v2,
            h2: matches!(g.protocol_version.as_deref(), Some("HTTP2") | Some("GRPC")),
        })
    }
}

/// Parses a gRPC matcher such as `12`, `0,12` or `0-99`.
fn parse_grpc_matcher(s: &str) -> Result<Vec<(u16, u16)>, String> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let lo: u16 = lo
                .trim()
                .parse()
                .map_err(|_| format!("bad grpcCode {s:?}"))?;
            let hi: u16 = hi
                .trim()
                .parse()
                .map_err(|_| format!("bad grpcCode {s:?}"))?;
            if lo > hi || hi > 99 {
                return Err(format!(
                    "grpcCode must be codes between 0 and 99, got {s:?}"
                ));
            }
            Ok((lo, hi))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(json: serde_json::Value) -> TargetGroup {
        let mut base = serde_json::json!({"targetGroupName": "web", "targetGroupArn": "arn:tg"});
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn settings(tg: &TargetGroup) -> GroupSettings {
        GroupSettings::from_model(tg, &tg.validate().unwrap()).unwrap()
    }

    #[test]
    fn typed_attributes_become_settings() {
        let tg = group(serde_json::json!({"attributes": {
            "deregistration_delay.timeout_seconds": "7",
            "slow_start.duration_seconds": "30",
            "stickiness.enabled": "true",
            "stickiness.lb_cookie.duration_seconds": "60",
            "proxy_protocol_v2.enabled": "true",
            "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count": "3",
        }}));
        let s = settings(&tg);
        assert_eq!(s.deregistration_delay, Duration::from_secs(7));
        assert_eq!(s.slow_start, Duration::from_secs(30));
        assert_eq!(
            s.stickiness,
            Some(Stickiness::LbCookie {
                duration: Duration::from_secs(60)
            })
        );
        assert!(s.proxy_protocol_v2);
        assert_eq!(s.min_healthy, 3);
        assert_eq!(s.algorithm, Algorithm::RoundRobin);
    }

    #[test]
    fn defaults_are_the_models() {
        let s = settings(&group(serde_json::json!({})));
        assert_eq!(s.deregistration_delay, Duration::from_secs(300));
        assert_eq!(s.slow_start, Duration::ZERO);
        assert_eq!(s.stickiness, None);
        assert_eq!(s.min_healthy, 1);
        assert!(!s.proxy_protocol_v2 && !s.h2);
        assert_eq!(s.health.port, None);
        assert_eq!(s.health.grpc, None);
    }

    #[test]
    fn grpc_groups_check_grpc_codes_over_http2() {
        let s = settings(&group(serde_json::json!({
            "protocolVersion": "GRPC", "healthCheckPort": "9000",
            "matcher": {"grpcCode": "0-2,12"}
        })));
        assert!(s.h2);
        assert_eq!(s.health.port, Some(9000));
        assert_eq!(s.health.grpc, Some(vec![(0, 2), (12, 12)]));
        assert!(parse_grpc_matcher("100").is_err());
        assert!(parse_grpc_matcher("3-1").is_err());
    }
}
