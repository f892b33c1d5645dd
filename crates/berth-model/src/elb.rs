//! ELBv2 resources: LoadBalancer (with its listeners and their rules), TargetGroup,
//! Target and target health.
//!
//! Listeners are nested in their load balancer and rules in their listener, so a load
//! balancer is one document; each still gets its own ARN as in ELBv2.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::elb_attributes::{LoadBalancerAttributes, TargetGroupAttributes};
use crate::error::{check_name, check_range, Result, ValidationError};
use crate::time::Timestamp;

pub use crate::elb_attributes::{
    DEFAULT_DEREGISTRATION_DELAY_SECONDS, DEFAULT_IDLE_TIMEOUT_SECONDS,
    DEFAULT_STICKINESS_DURATION_SECONDS, TARGET_GROUP_ATTRIBUTES,
};

// ---- defaults (ALB's) ----

pub const DEFAULT_HEALTH_INTERVAL_SECONDS: u32 = 30;
pub const DEFAULT_HEALTH_TIMEOUT_SECONDS: u32 = 5;
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 5;
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 2;
pub const DEFAULT_HEALTH_PATH: &str = "/";
pub const DEFAULT_MATCHER: &str = "200";
pub const TRAFFIC_PORT: &str = "traffic-port";

// ---- LoadBalancer / Listener / Rule ----

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadBalancerType {
    #[default]
    Application,
    Network,
}

impl LoadBalancerType {
    /// The ARN segment: `app` or `net`.
    pub fn arn_kind(self) -> &'static str {
        match self {
            LoadBalancerType::Application => "app",
            LoadBalancerType::Network => "net",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    pub load_balancer_name: String,
    #[serde(default, rename = "type")]
    pub kind: LoadBalancerType,
    #[serde(default = "d_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// ELBv2 attributes, e.g. `idle_timeout.timeout_seconds`,
    /// `routing.http.xff_header_processing.mode`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    // ---- filled in by berth ----
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub load_balancer_arn: String,
    /// `active`, or `failed` when the data plane could not serve it (see `stateReason`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<Timestamp>,
}

fn d_scheme() -> String {
    "internet-facing".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Http,
    Https,
    Tcp,
    Tls,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Udp => "UDP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Certificate {
    /// PEM certificate chain file.
    pub certificate_file: String,
    /// PEM private key file.
    pub private_key_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// 1–65535, or 0 for a port chosen by the system (reported as `boundPort`).
    pub port: u32,
    pub protocol: Protocol,
    pub default_actions: Vec<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_policy: Option<String>,
    // ---- filled in by berth ----
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_arn: String,
    /// The port actually bound (differs from `port` when `port` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_port: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub priority: u32,
    pub conditions: Vec<RuleCondition>,
    pub actions: Vec<Action>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeaderConfig {
    pub http_header_name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryStringKeyValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: String,
}

/// A rule condition. `field` is host-header, path-pattern, http-header,
/// http-request-method, query-string or source-ip. host-header, path-pattern,
/// http-request-method and source-ip take `values`; http-header takes
/// `httpHeaderConfig`; query-string takes `queryStringConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleCondition {
    pub field: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_config: Option<HttpHeaderConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string_config: Option<Vec<QueryStringKeyValue>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionType {
    Forward,
    Redirect,
    FixedResponse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetGroupTuple {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_group_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_name: Option<String>,
    #[serde(default = "d_weight")]
    pub weight: u32,
}

fn d_weight() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetGroupStickinessConfig {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardConfig {
    pub target_groups: Vec<TargetGroupTuple>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_stickiness_config: Option<TargetGroupStickinessConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectConfig {
    #[serde(default = "d_protocol_placeholder")]
    pub protocol: String,
    #[serde(default = "d_port_placeholder")]
    pub port: String,
    #[serde(default = "d_host_placeholder")]
    pub host: String,
    #[serde(default = "d_path_placeholder")]
    pub path: String,
    #[serde(default = "d_query_placeholder")]
    pub query: String,
    /// HTTP_301 or HTTP_302.
    pub status_code: String,
}

fn d_protocol_placeholder() -> String {
    "#{protocol}".into()
}
fn d_port_placeholder() -> String {
    "#{port}".into()
}
fn d_host_placeholder() -> String {
    "#{host}".into()
}
fn d_path_placeholder() -> String {
    "/#{path}".into()
}
fn d_query_placeholder() -> String {
    "#{query}".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixedResponseConfig {
    pub status_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: ActionType,
    /// Shorthand for a forward to one target group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_group_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_config: Option<ForwardConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_config: Option<RedirectConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_response_config: Option<FixedResponseConfig>,
}

impl Action {
    /// Every target group this action forwards to, as (arn, name) pairs as written.
    pub fn target_groups(&self) -> Vec<(&str, Option<&str>)> {
        let mut out = Vec::new();
        if !self.target_group_arn.is_empty() || self.target_group_name.is_some() {
            out.push((
                self.target_group_arn.as_str(),
                self.target_group_name.as_deref(),
            ));
        }
        if let Some(f) = &self.forward_config {
            for t in &f.target_groups {
                out.push((t.target_group_arn.as_str(), t.target_group_name.as_deref()));
            }
        }
        out
    }

    fn validate(&self) -> Result<()> {
        match self.kind {
            ActionType::Forward => {
                let single = !self.target_group_arn.is_empty() || self.target_group_name.is_some();
                match (&self.forward_config, single) {
                    (None, false) => return Err(ValidationError::new(
                        "",
                        "a forward action needs targetGroupName, targetGroupArn or forwardConfig",
                    )),
                    (Some(f), _) => {
                        if f.target_groups.is_empty() || f.target_groups.len() > 5 {
                            return Err(ValidationError::new(
                                "forwardConfig.targetGroups",
                                format!(
                                    "must list 1 to 5 target groups, got {}",
                                    f.target_groups.len()
                                ),
                            ));
                        }
                        for (i, t) in f.target_groups.iter().enumerate() {
                            check_range(
                                &format!("forwardConfig.targetGroups[{i}].weight"),
                                t.weight,
                                0,
                                999,
                            )?;
                            if t.target_group_arn.is_empty() && t.target_group_name.is_none() {
                                return Err(ValidationError::new(
                                    format!("forwardConfig.targetGroups[{i}]"),
                                    "must give targetGroupName or targetGroupArn",
                                ));
                            }
                        }
                        if let Some(s) = &f.target_group_stickiness_config {
                            if let Some(d) = s.duration_seconds {
                                check_range(
                                    "forwardConfig.targetGroupStickinessConfig.durationSeconds",
                                    d,
                                    1,
                                    604_800,
                                )?;
                            }
                        }
                    }
                    (None, true) => {}
                }
            }
            ActionType::Redirect => {
                let r = self.redirect_config.as_ref().ok_or_else(|| {
                    ValidationError::new("redirectConfig", "a redirect action needs redirectConfig")
                })?;
                if !matches!(r.status_code.as_str(), "HTTP_301" | "HTTP_302") {
                    return Err(ValidationError::new(
                        "redirectConfig.statusCode",
                        format!("must be HTTP_301 or HTTP_302, got {:?}", r.status_code),
                    ));
                }
                if !matches!(r.protocol.as_str(), "#{protocol}" | "HTTP" | "HTTPS") {
                    return Err(ValidationError::new(
                        "redirectConfig.protocol",
                        format!("must be HTTP, HTTPS or #{{protocol}}, got {:?}", r.protocol),
                    ));
                }
                if r.protocol == "#{protocol}"
                    && r.port == "#{port}"
                    && r.host == "#{host}"
                    && r.path == "/#{path}"
                    && r.query == "#{query}"
                {
                    return Err(ValidationError::new(
                        "redirectConfig",
                        "must change at least one of protocol, port, host, path or query (it would redirect to itself)",
                    ));
                }
            }
            ActionType::FixedResponse => {
                let f = self.fixed_response_config.as_ref().ok_or_else(|| {
                    ValidationError::new(
                        "fixedResponseConfig",
                        "a fixed-response action needs fixedResponseConfig",
                    )
                })?;
                let ok = f.status_code.len() == 3
                    && matches!(f.status_code.as_bytes()[0], b'2' | b'4' | b'5')
                    && f.status_code.bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    return Err(ValidationError::new(
                        "fixedResponseConfig.statusCode",
                        format!(
                            "must be a 2XX, 4XX or 5XX status code, got {:?}",
                            f.status_code
                        ),
                    ));
                }
                if let Some(ct) = &f.content_type {
                    const ALLOWED: &[&str] = &[
                        "text/plain",
                        "text/css",
                        "text/html",
                        "application/javascript",
                        "application/json",
                    ];
                    if !ALLOWED.contains(&ct.as_str()) {
                        return Err(ValidationError::new(
                            "fixedResponseConfig.contentType",
                            format!("must be one of {}, got {ct:?}", ALLOWED.join(", ")),
                        ));
                    }
                }
                if f.message_body.as_ref().is_some_and(|b| b.len() > 1024) {
                    return Err(ValidationError::new(
                        "fixedResponseConfig.messageBody",
                        "must be at most 1024 bytes",
                    ));
                }
            }
        }
        Ok(())
    }
}

const CONDITION_FIELDS: &[&str] = &[
    "host-header",
    "path-pattern",
    "http-header",
    "http-request-method",
    "query-string",
    "source-ip",
];

impl RuleCondition {
    fn validate(&self) -> Result<()> {
        if !CONDITION_FIELDS.contains(&self.field.as_str()) {
            return Err(ValidationError::new(
                "field",
                format!(
                    "must be one of {}, got {:?}",
                    CONDITION_FIELDS.join(", "),
                    self.field
                ),
            ));
        }
        let count = match self.field.as_str() {
            "http-header" => {
                let h = self.http_header_config.as_ref().ok_or_else(|| {
                    ValidationError::new("httpHeaderConfig", "http-header needs httpHeaderConfig")
                })?;
                if h.http_header_name.is_empty() {
                    return Err(ValidationError::new(
                        "httpHeaderConfig.httpHeaderName",
                        "must name a header",
                    ));
                }
                h.values.len()
            }
            "query-string" => self
                .query_string_config
                .as_ref()
                .ok_or_else(|| {
                    ValidationError::new(
                        "queryStringConfig",
                        "query-string needs queryStringConfig",
                    )
                })?
                .len(),
            "source-ip" => {
                for (i, v) in self.values.iter().enumerate() {
                    parse_cidr(v).map_err(|m| ValidationError::new(format!("values[{i}]"), m))?;
                }
                self.values.len()
            }
            "http-request-method" => {
                for (i, v) in self.values.iter().enumerate() {
                    if v.is_empty()
                        || !v
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
                    {
                        return Err(ValidationError::new(
                            format!("values[{i}]"),
                            format!("must be an upper-case method name such as GET, got {v:?}"),
                        ));
                    }
                }
                self.values.len()
            }
            _ => self.values.len(),
        };
        if count == 0 || count > 5 {
            return Err(ValidationError::new(
                "values",
                format!("must have 1 to 5 values, got {count}"),
            ));
        }
        Ok(())
    }
}

/// Parses `a.b.c.d/n` or an IPv6 CIDR; returns a message on error.
pub fn parse_cidr(s: &str) -> std::result::Result<(std::net::IpAddr, u8), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("must be a CIDR block such as 10.0.0.0/8, got {s:?}"))?;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| format!("must be a CIDR block such as 10.0.0.0/8, got {s:?}"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("has a bad prefix length in {s:?}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("prefix length must be at most {max}, got {len}"));
    }
    Ok((ip, len))
}

fn validate_actions(actions: &[Action]) -> Result<()> {
    if actions.is_empty() {
        return Err(ValidationError::new("", "must list one action"));
    }
    if actions.len() > 1 {
        return Err(ValidationError::new(
            "",
            format!("must list exactly one action, got {}", actions.len()),
        ));
    }
    actions[0].validate().map_err(|e| e.within("[0]"))
}

impl Listener {
    pub fn validate(&self, lb_kind: LoadBalancerType) -> Result<()> {
        check_range("port", self.port, 0, 65535)?;
        match (lb_kind, self.protocol) {
            (LoadBalancerType::Application, Protocol::Http | Protocol::Https) => {}
            (LoadBalancerType::Network, Protocol::Tcp | Protocol::Tls | Protocol::Udp) => {}
            (LoadBalancerType::Application, p) => {
                return Err(ValidationError::new(
                    "protocol",
                    format!(
                        "an application load balancer takes HTTP or HTTPS, got {}",
                        p.as_str()
                    ),
                ))
            }
            (LoadBalancerType::Network, p) => {
                return Err(ValidationError::new(
                    "protocol",
                    format!(
                        "a network load balancer takes TCP, TLS or UDP, got {}",
                        p.as_str()
                    ),
                ))
            }
        }
        if matches!(self.protocol, Protocol::Https | Protocol::Tls) && self.certificates.is_empty()
        {
            return Err(ValidationError::new(
                "certificates",
                format!(
                    "a {} listener needs at least one certificate",
                    self.protocol.as_str()
                ),
            ));
        }
        validate_actions(&self.default_actions).map_err(|e| e.within("defaultActions"))?;
        if lb_kind == LoadBalancerType::Network {
            if self.default_actions[0].kind != ActionType::Forward {
                return Err(ValidationError::new(
                    "defaultActions[0].type",
                    "a network load balancer listener can only forward",
                ));
            }
            if !self.rules.is_empty() {
                return Err(ValidationError::new(
                    "rules",
                    "a network load balancer listener has no rules",
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            check_range(&format!("{at}.priority"), r.priority, 1, 50000)?;
            if !seen.insert(r.priority) {
                return Err(ValidationError::new(
                    format!("{at}.priority"),
                    format!(
                        "priority {} is used by another rule of this listener",
                        r.priority
                    ),
                ));
            }
            if r.conditions.is_empty() {
                return Err(ValidationError::new(
                    format!("{at}.conditions"),
                    "must list at least one condition",
                ));
            }
            let mut singles = std::collections::BTreeSet::new();
            for (j, c) in r.conditions.iter().enumerate() {
                c.validate()
                    .map_err(|e| e.within(&format!("{at}.conditions[{j}]")))?;
                if matches!(
                    c.field.as_str(),
                    "host-header" | "path-pattern" | "http-request-method" | "source-ip"
                ) && !singles.insert(c.field.as_str())
                {
                    return Err(ValidationError::new(
                        format!("{at}.conditions[{j}].field"),
                        format!("{} may appear once per rule", c.field),
                    ));
                }
            }
            validate_actions(&r.actions).map_err(|e| e.within(&format!("{at}.actions")))?;
        }
        Ok(())
    }
}

impl LoadBalancer {
    /// Checks the load balancer, its listeners and rules, and returns its attributes
    /// parsed (see [`crate::elb_attributes`]).
    pub fn validate(&self) -> Result<LoadBalancerAttributes> {
        check_name("loadBalancerName", &self.load_balancer_name, 32)?;
        if !matches!(self.scheme.as_str(), "internet-facing" | "internal") {
            return Err(ValidationError::new(
                "scheme",
                format!("must be internet-facing or internal, got {:?}", self.scheme),
            ));
        }
        let mut ports = std::collections::BTreeSet::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let at = format!("listeners[{i}]");
            l.validate(self.kind).map_err(|e| e.within(&at))?;
            if l.port != 0 && !ports.insert(l.port) {
                return Err(ValidationError::new(
                    format!("{at}.port"),
                    format!(
                        "port {} is used by another listener of this load balancer",
                        l.port
                    ),
                ));
            }
        }
        LoadBalancerAttributes::parse(&self.attributes)
    }
}

// ---- TargetGroup ----

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    /// A container instance plus a (dynamic) host port: bridge and host network modes.
    #[default]
    Instance,
    /// An IP and port: awsvpc network mode.
    Ip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetGroup {
    pub target_group_name: String,
    #[serde(default = "d_tg_protocol")]
    pub protocol: Protocol,
    /// HTTP1 (default), HTTP2 or GRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The port targets receive traffic on when a registration does not say.
    #[serde(default = "d_tg_port")]
    pub port: u32,
    #[serde(default)]
    pub target_type: TargetType,
    #[serde(default = "d_true")]
    pub health_check_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_protocol: Option<Protocol>,
    /// `traffic-port` or a port number.
    #[serde(default = "d_traffic_port")]
    pub health_check_port: String,
    #[serde(default = "d_health_path")]
    pub health_check_path: String,
    #[serde(default = "d_hc_interval")]
    pub health_check_interval_seconds: u32,
    #[serde(default = "d_hc_timeout")]
    pub health_check_timeout_seconds: u32,
    #[serde(default = "d_healthy")]
    pub healthy_threshold_count: u32,
    #[serde(default = "d_unhealthy")]
    pub unhealthy_threshold_count: u32,
    #[serde(default = "d_matcher")]
    pub matcher: Matcher,
    /// ELBv2 target group attributes, e.g. `deregistration_delay.timeout_seconds`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    // ---- filled in by berth ----
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_group_arn: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_arns: Vec<String>,
}

fn d_true() -> bool {
    true
}
fn d_tg_protocol() -> Protocol {
    Protocol::Http
}
fn d_tg_port() -> u32 {
    80
}
fn d_traffic_port() -> String {
    TRAFFIC_PORT.to_string()
}
fn d_health_path() -> String {
    DEFAULT_HEALTH_PATH.to_string()
}
fn d_hc_interval() -> u32 {
    DEFAULT_HEALTH_INTERVAL_SECONDS
}
fn d_hc_timeout() -> u32 {
    DEFAULT_HEALTH_TIMEOUT_SECONDS
}
fn d_healthy() -> u32 {
    DEFAULT_HEALTHY_THRESHOLD
}
fn d_unhealthy() -> u32 {
    DEFAULT_UNHEALTHY_THRESHOLD
}
fn d_matcher() -> Matcher {
    Matcher {
        http_code: Some(DEFAULT_MATCHER.to_string()),
        grpc_code: None,
    }
}

impl TargetGroup {
    /// Checks the target group and returns its attributes parsed (see
    /// [`crate::elb_attributes`]).
    pub fn validate(&self) -> Result<TargetGroupAttributes> {
        check_name("targetGroupName", &self.target_group_name, 32)?;
        check_range("port", self.port, 1, 65535)?;
        if let Some(v) = &self.protocol_version {
            if !matches!(v.as_str(), "HTTP1" | "HTTP2" | "GRPC") {
                return Err(ValidationError::new(
                    "protocolVersion",
                    format!("must be HTTP1, HTTP2 or GRPC, got {v:?}"),
                ));
            }
        }
        if self.health_check_port != TRAFFIC_PORT {
            let p: u32 = self.health_check_port.parse().map_err(|_| {
                ValidationError::new(
                    "healthCheckPort",
                    format!(
                        "must be traffic-port or a port number, got {:?}",
                        self.health_check_port
                    ),
                )
            })?;
            check_range("healthCheckPort", p, 1, 65535)?;
        }
        if !self.health_check_path.starts_with('/') {
            return Err(ValidationError::new(
                "healthCheckPath",
                format!("must start with /, got {:?}", self.health_check_path),
            ));
        }
        check_range(
            "healthCheckIntervalSeconds",
            self.health_check_interval_seconds,
            5,
            300,
        )?;
        check_range(
            "healthCheckTimeoutSeconds",
            self.health_check_timeout_seconds,
            2,
            120,
        )?;
        if self.health_check_timeout_seconds >= self.health_check_interval_seconds {
            return Err(ValidationError::new(
                "healthCheckTimeoutSeconds",
                format!(
                    "must be less than healthCheckIntervalSeconds ({}), got {}",
                    self.health_check_interval_seconds, self.health_check_timeout_seconds
                ),
            ));
        }
        check_range("healthyThresholdCount", self.healthy_threshold_count, 2, 10)?;
        check_range(
            "unhealthyThresholdCount",
            self.unhealthy_threshold_count,
            2,
            10,
        )?;
        if let Some(code) = &self.matcher.http_code {
            parse_matcher(code).map_err(|m| ValidationError::new("matcher.httpCode", m))?;
        }
        TargetGroupAttributes::parse(&self.attributes)
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The protocol health checks use: `healthCheckProtocol`, or the group's protocol.
    pub fn health_check_protocol(&self) -> Protocol {
        self.health_check_protocol.unwrap_or(self.protocol)
    }
}

/// Parses a matcher such as `200`, `200,202` or `200-299` into inclusive ranges.
pub fn parse_matcher(s: &str) -> std::result::Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u16 = lo
            .parse()
            .map_err(|_| format!("must be codes such as 200, 200,202 or 200-299, got {s:?}"))?;
        let hi: u16 = hi
            .parse()
            .map_err(|_| format!("must be codes such as 200, 200,202 or 200-299, got {s:?}"))?;
        if !(200..=499).contains(&lo) || !(200..=499).contains(&hi) || lo > hi {
            return Err(format!("codes must be between 200 and 499, got {s:?}"));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

// ---- Targets and their health ----

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetHealthState {
    #[default]
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
}

impl TargetHealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealthState::Initial => "initial",
            TargetHealthState::Healthy => "healthy",
            TargetHealthState::Unhealthy => "unhealthy",
            TargetHealthState::Unused => "unused",
            TargetHealthState::Draining => "draining",
            TargetHealthState::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    pub state: TargetHealthState,
    /// An ALB reason code such as `Elb.InitialHealthChecking`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A registered target: an address in a target group, usually a task's port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub target_group_arn: String,
    /// The IP (ip targets) or the container instance's address (instance targets).
    pub id: String,
    pub port: u32,
    /// The task whose port this is, when a service registered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    pub target_health: TargetHealth,
    pub registered_at: Timestamp,
    /// Set when deregistration began: the target is draining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistering_at: Option<Timestamp>,
    /// Set when draining finished: no request in flight, or the delay ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained_at: Option<Timestamp>,
}

impl Target {
    /// `ip:port`, the key of a target within its group.
    pub fn endpoint(&self) -> String {
        if self.id.contains(':') {
            format!("[{}]:{}", self.id, self.port)
        } else {
            format!("{}:{}", self.id, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tg() -> TargetGroup {
        serde_json::from_value(serde_json::json!({"targetGroupName": "web"})).unwrap()
    }

    #[test]
    fn target_group_defaults_are_alb_defaults() {
        let t = tg();
        assert_eq!(t.health_check_interval_seconds, 30);
        assert_eq!(t.health_check_timeout_seconds, 5);
        assert_eq!(t.healthy_threshold_count, 5);
        assert_eq!(t.unhealthy_threshold_count, 2);
        assert_eq!(t.health_check_path, "/");
        assert_eq!(t.health_check_port, "traffic-port");
        assert_eq!(t.matcher.http_code.as_deref(), Some("200"));
        assert_eq!(t.validate().unwrap().deregistration_delay_seconds, 300);
    }

    #[test]
    fn target_group_ranges() {
        let mut t = tg();
        t.health_check_interval_seconds = 4;
        assert_eq!(
            t.validate().unwrap_err().field,
            "healthCheckIntervalSeconds"
        );
        let mut t = tg();
        t.attributes
            .insert("slow_start.duration_seconds".into(), "10".into());
        assert!(t.validate().unwrap_err().message.contains("30 and 900"));
        let mut t = tg();
        t.attributes.insert("bogus".into(), "1".into());
        assert_eq!(t.validate().unwrap_err().field, "attributes.bogus");
    }

    #[test]
    fn matchers() {
        assert_eq!(parse_matcher("200").unwrap(), vec![(200, 200)]);
        assert_eq!(
            parse_matcher("200,300-399").unwrap(),
            vec![(200, 200), (300, 399)]
        );
        assert!(parse_matcher("600").is_err());
    }

    #[test]
    fn listener_rules_validate() {
        let lb: LoadBalancer = serde_json::from_value(serde_json::json!({
            "loadBalancerName": "web",
            "listeners": [{
                "port": 80, "protocol": "HTTP",
                "defaultActions": [{"type": "forward", "targetGroupName": "web"}],
                "rules": [
                    {"priority": 1, "conditions": [{"field": "path-pattern", "values": ["/api/*"]}],
                     "actions": [{"type": "fixed-response", "fixedResponseConfig": {"statusCode": "404"}}]},
                    {"priority": 1, "conditions": [{"field": "host-header", "values": ["a"]}],
                     "actions": [{"type": "forward", "targetGroupName": "web"}]}
                ]
            }]
        }))
        .unwrap();
        let e = lb.validate().unwrap_err();
        assert_eq!(e.field, "listeners[0].rules[1].priority");
    }

    #[test]
    fn cidr() {
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("nope").is_err());
    }
}
