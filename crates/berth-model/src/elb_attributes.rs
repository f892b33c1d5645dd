//! Load balancer and target group attributes: the ELBv2 string maps
//! (`idle_timeout.timeout_seconds`, `stickiness.type`, ...) parsed once, by validation,
//! into typed structs: [`LoadBalancerAttributes`] and [`TargetGroupAttributes`].
//!
//! Every key berth knows, its range and its default (ALB's unless a reason is written)
//! live here; a key berth does not know is refused. Consumers (the proxy) read the typed
//! struct and never parse the strings themselves. Pure parsing: no I/O.

use std::collections::BTreeMap;

use crate::error::{check_range, Result, ValidationError};

/// `deregistration_delay.timeout_seconds` when unset (ALB: 300 s).
pub const DEFAULT_DEREGISTRATION_DELAY_SECONDS: u32 = 300;
/// `idle_timeout.timeout_seconds` when unset (ALB: 60 s).
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u32 = 60;
/// `stickiness.*.duration_seconds` when unset (ALB: one day).
pub const DEFAULT_STICKINESS_DURATION_SECONDS: u32 = 86400;
/// `berth.header_timeout_seconds` when unset: how long a client may take to send a
/// request's head (a longer one is answered 408).
pub const DEFAULT_HEADER_TIMEOUT_SECONDS: u32 = 60;
/// `target_group_health.unhealthy_state_routing.minimum_healthy_targets.count` when
/// unset (ALB: 1).
pub const DEFAULT_MINIMUM_HEALTHY_TARGETS: u32 = 1;

/// Load balancer attributes berth understands.
pub const LOAD_BALANCER_ATTRIBUTES: &[&str] = &[
    "idle_timeout.timeout_seconds",
    "routing.http.xff_header_processing.mode",
    "routing.http.drop_invalid_header_fields.enabled",
    "routing.http2.enabled",
    "deletion_protection.enabled",
    "berth.max_connections",
    "berth.nodes",
    "berth.max_connections_per_client",
    "berth.header_timeout_seconds",
];

/// Target group attributes berth understands, with their ranges.
pub const TARGET_GROUP_ATTRIBUTES: &[&str] = &[
    "deregistration_delay.timeout_seconds",
    "slow_start.duration_seconds",
    "stickiness.enabled",
    "stickiness.type",
    "stickiness.lb_cookie.duration_seconds",
    "stickiness.app_cookie.cookie_name",
    "stickiness.app_cookie.duration_seconds",
    "load_balancing.algorithm.type",
    "proxy_protocol_v2.enabled",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
];

/// `routing.http.xff_header_processing.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum XffHeaderProcessing {
    /// Append the client's address to X-Forwarded-For (the default).
    #[default]
    Append,
    /// Pass X-Forwarded-For on as the client sent it.
    Preserve,
    /// Remove X-Forwarded-For.
    Remove,
}

/// A load balancer's attributes, typed, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerAttributes {
    /// `idle_timeout.timeout_seconds`, 1 to 4000.
    pub idle_timeout_seconds: u32,
    pub xff_header_processing: XffHeaderProcessing,
    /// `routing.http.drop_invalid_header_fields.enabled`.
    pub drop_invalid_header_fields: bool,
    /// `routing.http2.enabled` (default true): offer h2 by ALPN on HTTPS listeners.
    pub http2_enabled: bool,
    /// `deletion_protection.enabled`.
    pub deletion_protection: bool,
    /// berth's own `berth.max_connections`: open client connections per listener before
    /// new ones are refused (RejectedConnectionCount). `None`: the data plane's default.
    pub max_connections: Option<u32>,
    /// berth's own `berth.nodes`: a cluster query expression choosing the container
    /// instances whose nodes serve this load balancer's listeners
    /// ([`crate::elb_nodes`]). `None`: the server nodes.
    pub nodes: Option<String>,
    /// berth's own `berth.max_connections_per_client`: open client connections per
    /// listener from one client address. `None`: the data plane's default.
    pub max_connections_per_client: Option<u32>,
    /// berth's own `berth.header_timeout_seconds`, 1 to 3600: how long a client may take
    /// to send a request's head before it is answered 408 and closed.
    pub header_timeout_seconds: u32,
}

impl Default for LoadBalancerAttributes {
    fn default() -> Self {
        LoadBalancerAttributes {
            idle_timeout_seconds: DEFAULT_IDLE_TIMEOUT_SECONDS,
            xff_header_processing: XffHeaderProcessing::Append,
            drop_invalid_header_fields: false,
            http2_enabled: true,
            deletion_protection: false,
            max_connections: None,
            nodes: None,
            max_connections_per_client: None,
            header_timeout_seconds: DEFAULT_HEADER_TIMEOUT_SECONDS,
        }
    }
}

impl LoadBalancerAttributes {
    /// Parses a load balancer's `attributes`. Errors name `attributes.<key>`.
    pub fn parse(attributes: &BTreeMap<String, String>) -> Result<LoadBalancerAttributes> {
        let mut out = LoadBalancerAttributes::default();
        for (k, v) in attributes {
            let at = format!("attributes.{k}");
            match k.as_str() {
                "idle_timeout.timeout_seconds" => {
                    let n: u32 = v.parse().map_err(|_| {
                        ValidationError::new(&at, format!("must be a number of seconds, got {v:?}"))
                    })?;
                    check_range(&at, n, 1, 4000)?;
                    out.idle_timeout_seconds = n;
                }
                "berth.max_connections" => {
                    let n: u32 = v.parse().map_err(|_| {
                        ValidationError::new(&at, format!("must be a whole number, got {v:?}"))
                    })?;
                    check_range(&at, n, 1, 10_000_000)?;
                    out.max_connections = Some(n);
                }
                "berth.max_connections_per_client" => {
                    let n: u32 = v.parse().map_err(|_| {
                        ValidationError::new(&at, format!("must be a whole number, got {v:?}"))
                    })?;
                    check_range(&at, n, 1, 10_000_000)?;
                    out.max_connections_per_client = Some(n);
                }
                "berth.header_timeout_seconds" => {
                    let n: u32 = v.parse().map_err(|_| {
                        ValidationError::new(&at, format!("must be a number of seconds, got {v:?}"))
                    })?;
                    check_range(&at, n, 1, 3600)?;
                    out.header_timeout_seconds = n;
                }
                "routing.http.xff_header_processing.mode" => {
                    out.xff_header_processing = match v.as_str() {
                        "append" => XffHeaderProcessing::Append,
                        "preserve" => XffHeaderProcessing::Preserve,
                        "remove" => XffHeaderProcessing::Remove,
                        _ => {
                            return Err(ValidationError::new(
                                at,
                                format!("must be append, preserve or remove, got {v:?}"),
                            ))
                        }
                    };
                }
                "routing.http.drop_invalid_header_fields.enabled" => {
                    out.drop_invalid_header_fields = parse_bool(&at, v)?;
                }
                "berth.nodes" => {
                    crate::ecs::cluster_query::check_member_of(&at, Some(v))?;
                    out.nodes = Some(v.clone());
                }
                "routing.http2.enabled" => out.http2_enabled = parse_bool(&at, v)?,
                "deletion_protection.enabled" => out.deletion_protection = parse_bool(&at, v)?,
                _ => {
                    return Err(ValidationError::new(
                        at,
                        format!(
                            "unknown attribute; allowed: {}",
                            LOAD_BALANCER_ATTRIBUTES.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// `load_balancing.algorithm.type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoadBalancingAlgorithm {
    #[default]
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
    /// berth's own: power of two choices over peak-EWMA latency.
    PeakEwma,
}

impl LoadBalancingAlgorithm {
    const ALL: [(&'static str, LoadBalancingAlgorithm); 4] = [
        ("round_robin", LoadBalancingAlgorithm::RoundRobin),
        (
            "least_outstanding_requests",
            LoadBalancingAlgorithm::LeastOutstandingRequests,
        ),
        ("weighted_random", LoadBalancingAlgorithm::WeightedRandom),
        ("peak_ewma", LoadBalancingAlgorithm::PeakEwma),
    ];

    /// The attribute value naming this algorithm.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("round_robin", |(s, _)| s)
    }
}

/// Target stickiness, when `stickiness.enabled` is true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    /// `lb_cookie` (the default type): the load balancer's `AWSALB` cookie.
    LbCookie { duration_seconds: u32 },
    /// `app_cookie`: follows the application cookie `cookie_name`.
    AppCookie {
        cookie_name: String,
        duration_seconds: u32,
    },
    /// `source_ip` (network load balancers).
    SourceIp,
}

/// A target group's attributes, typed, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupAttributes {
    /// `deregistration_delay.timeout_seconds`, 0 to 3600.
    pub deregistration_delay_seconds: u32,
    /// `slow_start.duration_seconds`: 0 (off, the default) or 30 to 900.
    pub slow_start_seconds: u32,
    /// `None` unless `stickiness.enabled` is true.
    pub stickiness: Option<Stickiness>,
    pub algorithm: LoadBalancingAlgorithm,
    /// `proxy_protocol_v2.enabled`.
    pub proxy_protocol_v2: bool,
    /// Fewer healthy targets than this and the group routes to all of them (fails open).
    pub minimum_healthy_targets: u32,
}

impl Default for TargetGroupAttributes {
    fn default() -> Self {
        TargetGroupAttributes {
            deregistration_delay_seconds: DEFAULT_DEREGISTRATION_DELAY_SECONDS,
            slow_start_seconds: 0,
            stickiness: None,
            algorithm: LoadBalancingAlgorithm::RoundRobin,
            proxy_protocol_v2: false,
            minimum_healthy_targets: DEFAULT_MINIMUM_HEALTHY_TARGETS,
        }
    }
}

impl TargetGroupAttributes {
    /// Parses a target group's `attributes`. Errors name `attributes.<key>`.
    pub fn parse(attributes: &BTreeMap<String, String>) -> Result<TargetGroupAttributes> {
        let mut out = TargetGroupAttributes::default();
        let mut sticky = false;
        let mut sticky_type = "lb_cookie";
        let mut lb_cookie_duration = DEFAULT_STICKINESS_DURATION_SECONDS;
        let mut app_cookie_duration = DEFAULT_STICKINESS_DURATION_SECONDS;
        let mut app_cookie_name: Option<&str> = None;
        for (k, v) in attributes {
            let at = format!("attributes.{k}");
            let num = |lo: u32, hi: u32| -> Result<u32> {
                let n: u32 = v.parse().map_err(|_| {
                    ValidationError::new(&at, format!("must be a whole number, got {v:?}"))
                })?;
                check_range(&at, n, lo, hi)?;
                Ok(n)
            };
            match k.as_str() {
                "deregistration_delay.timeout_seconds" => {
                    out.deregistration_delay_seconds = num(0, 3600)?;
                }
                "slow_start.duration_seconds" => {
                    let n = num(0, 900)?;
                    if n != 0 && n < 30 {
                        return Err(ValidationError::new(
                            at,
                            format!("must be 0 (off) or between 30 and 900, got {n}"),
                        ));
                    }
                    out.slow_start_seconds = n;
                }
                "stickiness.enabled" => sticky = parse_bool(&at, v)?,
                "proxy_protocol_v2.enabled" => out.proxy_protocol_v2 = parse_bool(&at, v)?,
                "stickiness.type" => {
                    if !matches!(v.as_str(), "lb_cookie" | "app_cookie" | "source_ip") {
                        return Err(ValidationError::new(
                            at,
                            format!("must be lb_cookie, app_cookie or source_ip, got {v:?}"),
                        ));
                    }
                    sticky_type = v;
                }
                "stickiness.lb_cookie.duration_seconds" => {
                    lb_cookie_duration = num(1, 604_800)?;
                }
                "stickiness.app_cookie.duration_seconds" => {
                    app_cookie_duration = num(1, 604_800)?;
                }
                "stickiness.app_cookie.cookie_name" => {
                    if v.is_empty() || v.starts_with("AWSALB") {
                        return Err(ValidationError::new(
                            at,
                            "must name a cookie not starting with AWSALB",
                        ));
                    }
                    app_cookie_name = Some(v);
                }
                "load_balancing.algorithm.type" => {
                    let Some((_, a)) = LoadBalancingAlgorithm::ALL.iter().find(|(s, _)| s == v)
                    else {
                        let names: Vec<&str> = LoadBalancingAlgorithm::ALL
                            .iter()
                            .map(|(s, _)| *s)
                            .collect();
                        return Err(ValidationError::new(
                            at,
                            format!("must be one of {}, got {v:?}", names.join(", ")),
                        ));
                    };
                    out.algorithm = *a;
                }
                "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count" => {
                    out.minimum_healthy_targets = num(1, 10000)?;
                }
                _ => {
                    return Err(ValidationError::new(
                        at,
                        format!(
                            "unknown attribute; allowed: {}",
                            TARGET_GROUP_ATTRIBUTES.join(", ")
                        ),
                    ))
                }
            }
        }
        if sticky {
            out.stickiness = Some(match sticky_type {
                "app_cookie" => Stickiness::AppCookie {
                    cookie_name: app_cookie_name
                        .ok_or_else(|| {
                            ValidationError::new(
                                "attributes.stickiness.app_cookie.cookie_name",
                                "app_cookie stickiness needs stickiness.app_cookie.cookie_name",
                            )
                        })?
                        .to_string(),
                    duration_seconds: app_cookie_duration,
                },
                "source_ip" => Stickiness::SourceIp,
                _ => Stickiness::LbCookie {
                    duration_seconds: lb_cookie_duration,
                },
            });
        }
        if out.algorithm == LoadBalancingAlgorithm::LeastOutstandingRequests
            && out.slow_start_seconds > 0
        {
            return Err(ValidationError::new(
                "attributes.slow_start.duration_seconds",
                "cannot be combined with least_outstanding_requests",
            ));
        }
        Ok(out)
    }
}

fn parse_bool(field: &str, v: &str) -> Result<bool> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ValidationError::new(
            field,
            format!("must be true or false, got {v:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn load_balancer_defaults_are_albs() {
        let a = LoadBalancerAttributes::parse(&BTreeMap::new()).unwrap();
        assert_eq!(a, LoadBalancerAttributes::default());
        assert_eq!(a.idle_timeout_seconds, 60);
        assert_eq!(a.xff_header_processing, XffHeaderProcessing::Append);
        assert!(a.http2_enabled && !a.drop_invalid_header_fields && !a.deletion_protection);
        assert_eq!(a.max_connections, None);
    }

    #[test]
    fn load_balancer_attributes_are_typed() {
        let a = LoadBalancerAttributes::parse(&attrs(&[
            ("idle_timeout.timeout_seconds", "7"),
            ("routing.http.xff_header_processing.mode", "remove"),
            ("routing.http.drop_invalid_header_fields.enabled", "true"),
            ("routing.http2.enabled", "false"),
            ("deletion_protection.enabled", "true"),
            ("berth.max_connections", "12"),
            ("berth.nodes", "attribute:zone == edge"),
            ("berth.max_connections_per_client", "3"),
            ("berth.header_timeout_seconds", "5"),
        ]))
        .unwrap();
        assert_eq!(
            a,
            LoadBalancerAttributes {
                idle_timeout_seconds: 7,
                xff_header_processing: XffHeaderProcessing::Remove,
                drop_invalid_header_fields: true,
                http2_enabled: false,
                deletion_protection: true,
                max_connections: Some(12),
                nodes: Some("attribute:zone == edge".into()),
                max_connections_per_client: Some(3),
                header_timeout_seconds: 5,
            }
        );
    }

    #[test]
    fn bad_load_balancer_attributes_name_their_key() {
        for (k, v) in [
            ("idle_timeout.timeout_seconds", "0"),
            ("idle_timeout.timeout_seconds", "soon"),
            ("routing.http.xff_header_processing.mode", "drop"),
            ("routing.http2.enabled", "yes"),
            ("berth.max_connections", "0"),
            ("berth.max_connections_per_client", "0"),
            ("berth.header_timeout_seconds", "0"),
            ("berth.header_timeout_seconds", "3601"),
            ("bogus", "1"),
        ] {
            let e = LoadBalancerAttributes::parse(&attrs(&[(k, v)])).unwrap_err();
            assert_eq!(e.field, format!("attributes.{k}"), "{k}={v}");
        }
    }

    #[test]
    fn target_group_defaults_are_albs() {
        let a = TargetGroupAttributes::parse(&BTreeMap::new()).unwrap();
        assert_eq!(a, TargetGroupAttributes::default());
        assert_eq!(a.deregistration_delay_seconds, 300);
        assert_eq!(a.minimum_healthy_targets, 1);
        assert_eq!(a.algorithm, LoadBalancingAlgorithm::RoundRobin);
        assert_eq!(a.stickiness, None);
    }

    #[test]
    fn target_group_attributes_are_typed() {
        let a = TargetGroupAttributes::parse(&attrs(&[
            ("deregistration_delay.timeout_seconds", "7"),
            ("slow_start.duration_seconds", "30"),
            ("load_balancing.algorithm.type", "peak_ewma"),
            ("proxy_protocol_v2.enabled", "true"),
            (
                "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
                "2",
            ),
            ("stickiness.enabled", "true"),
            ("stickiness.type", "app_cookie"),
            ("stickiness.app_cookie.cookie_name", "sid"),
            ("stickiness.app_cookie.duration_seconds", "5"),
        ]))
        .unwrap();
        assert_eq!(
            a,
            TargetGroupAttributes {
                deregistration_delay_seconds: 7,
                slow_start_seconds: 30,
                stickiness: Some(Stickiness::AppCookie {
                    cookie_name: "sid".into(),
                    duration_seconds: 5
                }),
                algorithm: LoadBalancingAlgorithm::PeakEwma,
                proxy_protocol_v2: true,
                minimum_healthy_targets: 2,
            }
        );
        assert_eq!(a.algorithm.as_str(), "peak_ewma");
    }

    #[test]
    fn stickiness_types() {
        let sticky = |extra: &[(&str, &str)]| {
            let mut kv = vec![("stickiness.enabled", "true")];
            kv.extend_from_slice(extra);
            TargetGroupAttributes::parse(&attrs(&kv)).map(|a| a.stickiness)
        };
        assert_eq!(
            sticky(&[]),
            Ok(Some(Stickiness::LbCookie {
                duration_seconds: DEFAULT_STICKINESS_DURATION_SECONDS
            }))
        );
        assert_eq!(
            sticky(&[("stickiness.lb_cookie.duration_seconds", "60")]),
            Ok(Some(Stickiness::LbCookie {
                duration_seconds: 60
            }))
        );
        assert_eq!(
            sticky(&[("stickiness.type", "source_ip")]),
            Ok(Some(Stickiness::SourceIp))
        );
        let e = sticky(&[("stickiness.type", "app_cookie")]).unwrap_err();
        assert_eq!(e.field, "attributes.stickiness.app_cookie.cookie_name");
        // Settings of a disabled stickiness are checked but not used.
        let off = TargetGroupAttributes::parse(&attrs(&[
            ("stickiness.enabled", "false"),
            ("stickiness.type", "app_cookie"),
        ]))
        .unwrap();
        assert_eq!(off.stickiness, None);
    }

    #[test]
    fn bad_target_group_attributes_name_their_key() {
        for (k, v) in [
            ("deregistration_delay.timeout_seconds", "3601"),
            ("slow_start.duration_seconds", "10"),
            ("stickiness.enabled", "1"),
            ("stickiness.type", "cookie"),
            ("stickiness.lb_cookie.duration_seconds", "0"),
            ("stickiness.app_cookie.cookie_name", "AWSALBX"),
            ("load_balancing.algorithm.type", "random"),
            (
                "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
                "0",
            ),
            ("bogus", "1"),
        ] {
            let e = TargetGroupAttributes::parse(&attrs(&[(k, v)])).unwrap_err();
            assert_eq!(e.field, format!("attributes.{k}"), "{k}={v}");
        }
        let e = TargetGroupAttributes::parse(&attrs(&[
            (
                "load_balancing.algorithm.type",
                "least_outstanding_requests",
            ),
            ("slow_start.duration_seconds", "30"),
        ]))
        .unwrap_err();
        assert_eq!(e.field, "attributes.slow_start.duration_seconds");
    }
}
