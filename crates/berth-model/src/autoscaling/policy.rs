//! [`ScalingPolicy`]: target tracking or step scaling of one service, and the metrics a
//! policy reads (ECS's predefined metrics, a Prometheus query, or one of berth's own
//! metrics).
//!
//! Defaults: `scaleOutCooldown`, `scaleInCooldown` and step scaling's `cooldown` are 300 s
//! as in Application Auto Scaling for ECS; `disableScaleIn` false; `metricAggregationType`
//! Average. berth's own extension, `evaluation` (target tracking) and `alarm` (step
//! scaling, since there is no CloudWatch alarm to attach), say how many seconds of
//! recent data a decision looks at: 5 s for scale-out and 60 s for scale-in unless given,
//! instead of CloudWatch's 3 and 15 one-minute datapoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::identity::{
    check_resource_name, ScalableDimension, ServiceNamespace, ServiceRef, MAX_CAPACITY,
};
use super::step::{check_step_adjustments, AdjustmentType, StepAdjustment};
use crate::error::{check_range, Result, ValidationError};
use crate::time::Timestamp;

/// Application Auto Scaling's default for both target-tracking cooldowns and the step
/// scaling cooldown on ECS, in seconds.
pub const DEFAULT_COOLDOWN_SECONDS: i64 = 300;
/// The longest cooldown berth accepts (a day; AWS sets no bound).
pub const MAX_COOLDOWN_SECONDS: i64 = 86_400;
/// berth's default window of data for a scale-out decision: a few seconds, not
/// CloudWatch's three one-minute datapoints.
pub const DEFAULT_SCALE_OUT_EVALUATION_SECONDS: i64 = 5;
/// berth's default window of data for a scale-in decision: longer than scale-out's, so
/// a brief dip does not remove tasks (CloudWatch: fifteen one-minute datapoints).
pub const DEFAULT_SCALE_IN_EVALUATION_SECONDS: i64 = 60;
/// berth's default window of data a step scaling alarm looks at.
pub const DEFAULT_ALARM_EVALUATION_SECONDS: i64 = 10;
/// The longest evaluation window berth accepts.
pub const MAX_EVALUATION_SECONDS: i64 = 3_600;

/// berth's own metrics a customized metric may name by `metricName`, with the labels
/// each carries (see the README's metrics reference).
pub const BERTH_METRICS: &[(&str, &[&str])] = &[
    ("berth_lb_requests_total", &["load_balancer", "listener"]),
    (
        "berth_lb_elb_responses_total",
        &["load_balancer", "listener", "code"],
    ),
    (
        "berth_lb_fixed_responses_total",
        &["load_balancer", "listener"],
    ),
    ("berth_lb_redirects_total", &["load_balancer", "listener"]),
    (
        "berth_lb_rule_evaluations_total",
        &["load_balancer", "listener"],
    ),
    (
        "berth_lb_active_connections",
        &["load_balancer", "listener"],
    ),
    (
        "berth_lb_new_connections_total",
        &["load_balancer", "listener"],
    ),
    (
        "berth_lb_rejected_connections_total",
        &["load_balancer", "listener"],
    ),
    (
        "berth_lb_processed_bytes_total",
        &["load_balancer", "listener"],
    ),
    (
        "berth_lb_target_requests_total",
        &["target_group", "target"],
    ),
    (
        "berth_lb_target_responses_total",
        &["target_group", "target", "code"],
    ),
    ("berth_lb_target_response_time_seconds", &["target_group"]),
    (
        "berth_lb_target_connection_errors_total",
        &["target_group", "target"],
    ),
    ("berth_lb_healthy_hosts", &["target_group"]),
    ("berth_lb_unhealthy_hosts", &["target_group"]),
    (
        "berth_lb_unhealthy_routing_requests_total",
        &["target_group"],
    ),
    ("berth_lb_retries_total", &["target_group"]),
    ("berth_service_desired_tasks", &["cluster", "service"]),
    ("berth_service_running_tasks", &["cluster", "service"]),
    ("berth_service_pending_tasks", &["cluster", "service"]),
    ("berth_service_deployments", &["cluster", "service"]),
    (
        "berth_service_cpu_utilization_ratio",
        &["cluster", "service"],
    ),
    (
        "berth_service_memory_utilization_ratio",
        &["cluster", "service"],
    ),
    (
        "berth_task_stopped_total",
        &["cluster", "service", "stop_code"],
    ),
];

/// A scaling policy (PutScalingPolicy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScalingPolicy {
    /// 1 to 256 characters, no `/`, `:` or `|`; unique per service.
    pub policy_name: String,
    /// Only `ecs`; may be left out.
    #[serde(default)]
    pub service_namespace: ServiceNamespace,
    /// `service/<cluster>/<service>`; the service must have a scalable target.
    pub resource_id: String,
    /// Only `ecs:service:DesiredCount`; may be left out.
    #[serde(default)]
    pub scalable_dimension: ScalableDimension,
    pub policy_type: PolicyType,
    /// With `TargetTrackingScaling` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_tracking_scaling_policy_configuration:
        Option<TargetTrackingScalingPolicyConfiguration>,
    /// With `StepScaling` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_scaling_policy_configuration: Option<StepScalingPolicyConfiguration>,
    // ---- filled in by berth ----
    #[serde(
        default,
        rename = "policyARN",
        skip_serializing_if = "String::is_empty"
    )]
    pub policy_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyType {
    TargetTrackingScaling,
    StepScaling,
}

/// Keep a metric at `targetValue` by scaling proportionally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetTrackingScalingPolicyConfiguration {
    /// The value to hold the metric at; more than 0. For ALBRequestCountPerTarget,
    /// requests per target per minute; for the utilizations, percent.
    pub target_value: f64,
    /// One of this or `customizedMetricSpecification`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predefined_metric_specification: Option<PredefinedMetricSpecification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customized_metric_specification: Option<CustomizedMetricSpecification>,
    /// Seconds after a scale-out before another scale-out unless a larger one is called
    /// for; default 300.
    #[serde(default = "default_cooldown")]
    pub scale_out_cooldown: i64,
    /// Seconds after a scale-in before another scale-in (a scale-out is never held
    /// back by it); default 300.
    #[serde(default = "default_cooldown")]
    pub scale_in_cooldown: i64,
    /// The policy only adds tasks; default false.
    #[serde(default)]
    pub disable_scale_in: bool,
    /// berth: how much recent data each decision looks at.
    #[serde(default)]
    pub evaluation: EvaluationWindow,
}

/// berth's extension to target tracking: the windows of recent data the autoscaler
/// evaluates before it scales out or in (CloudWatch's fixed 3 × 60 s and 15 × 60 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvaluationWindow {
    /// Seconds of data above the target before a scale-out; 1 to 3600, default 5.
    #[serde(default = "default_scale_out_seconds")]
    pub scale_out_seconds: i64,
    /// Seconds of data below the target before a scale-in; 1 to 3600, default 60.
    #[serde(default = "default_scale_in_seconds")]
    pub scale_in_seconds: i64,
}

impl Default for EvaluationWindow {
    fn default() -> Self {
        Self {
            scale_out_seconds: DEFAULT_SCALE_OUT_EVALUATION_SECONDS,
            scale_in_seconds: DEFAULT_SCALE_IN_EVALUATION_SECONDS,
        }
    }
}

fn default_cooldown() -> i64 {
    DEFAULT_COOLDOWN_SECONDS
}
fn default_scale_out_seconds() -> i64 {
    DEFAULT_SCALE_OUT_EVALUATION_SECONDS
}
fn default_scale_in_seconds() -> i64 {
    DEFAULT_SCALE_IN_EVALUATION_SECONDS
}
fn default_alarm_seconds() -> i64 {
    DEFAULT_ALARM_EVALUATION_SECONDS
}

/// One of ECS's predefined metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PredefinedMetricSpecification {
    pub predefined_metric_type: PredefinedMetricType,
    /// Only with ALBRequestCountPerTarget, and required there:
    /// `app/<load balancer>/targetgroup/<target group>` (the resource parts of the two
    /// ARNs), naming a target group of the service's `loadBalancers` that the load
    /// balancer forwards to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PredefinedMetricType {
    /// Σ CPU used ÷ Σ CPU reserved by the service's running tasks, in percent.
    #[serde(rename = "ECSServiceAverageCPUUtilization")]
    EcsServiceAverageCpuUtilization,
    /// The same for memory.
    #[serde(rename = "ECSServiceAverageMemoryUtilization")]
    EcsServiceAverageMemoryUtilization,
    /// Requests per target per minute in one target group behind one load balancer.
    #[serde(rename = "ALBRequestCountPerTarget")]
    AlbRequestCountPerTarget,
}

/// A metric that is not predefined, in berth's form: either a PromQL query against a
/// Prometheus server, or one of berth's own metrics (`metricName`, `labels`,
/// `statistic`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomizedMetricSpecification {
    /// A query whose result is one number (a single sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusQuery>,
    /// One of berth's metrics ([`BERTH_METRICS`]); a counter (`_total`) is read as its
    /// per-second rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Label values the series must have; only labels the metric carries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How the matching series combine; only with `metricName`; default Average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<MetricStatistic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusQuery {
    /// The server's base URL, `http://` or `https://` (its `/api/v1/query` is asked).
    pub url: String,
    /// PromQL returning a single sample.
    pub query: String,
}

/// CloudWatch's statistics that make sense for a gauge of several series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricStatistic {
    Average,
    Minimum,
    Maximum,
    Sum,
}

/// Scale by fixed steps when an alarm on a metric fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepScalingPolicyConfiguration {
    pub adjustment_type: AdjustmentType,
    /// At least one; bounds relative to the alarm's threshold (see [`super::step`]).
    pub step_adjustments: Vec<StepAdjustment>,
    /// Only with PercentChangeInCapacity: the least number of tasks a step changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_adjustment_magnitude: Option<i64>,
    /// Seconds after a scaling activity before the policy acts again; default 300.
    #[serde(default = "default_cooldown")]
    pub cooldown: i64,
    /// How the alarm's data over its window is combined; default Average.
    #[serde(default)]
    pub metric_aggregation_type: MetricAggregationType,
    /// berth: the alarm that triggers the policy (CloudWatch's role in AWS).
    pub alarm: StepScalingAlarm,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricAggregationType {
    #[default]
    Average,
    Minimum,
    Maximum,
}

/// berth's alarm for a step scaling policy: `metric` compared with `threshold` over the
/// last `evaluationSeconds`, aggregated by the policy's `metricAggregationType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepScalingAlarm {
    pub metric: AlarmMetric,
    pub comparison_operator: ComparisonOperator,
    pub threshold: f64,
    /// 1 to 3600; default 10.
    #[serde(default = "default_alarm_seconds")]
    pub evaluation_seconds: i64,
}

/// The metric an alarm watches, in the same forms as target tracking's: exactly one of
/// the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlarmMetric {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predefined_metric_specification: Option<PredefinedMetricSpecification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customized_metric_specification: Option<CustomizedMetricSpecification>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComparisonOperator {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

/// The target group an ALBRequestCountPerTarget `resourceLabel` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbResourceLabel {
    pub load_balancer: String,
    pub target_group: String,
}

impl AlbResourceLabel {
    /// Parses `app/<load balancer>/targetgroup/<target group>`.
    pub fn parse(field: &str, label: &str) -> Result<AlbResourceLabel> {
        let bad = || {
            ValidationError::new(
                field,
                format!(
                    "must be app/<load balancer name>/targetgroup/<target group name>, got {label:?}"
                ),
            )
        };
        let rest = label.strip_prefix("app/").ok_or_else(bad)?;
        let (lb, tg) = rest.split_once("/targetgroup/").ok_or_else(bad)?;
        if lb.is_empty() || tg.is_empty() || lb.contains('/') || tg.contains('/') {
            return Err(bad());
        }
        Ok(AlbResourceLabel {
            load_balancer: lb.to_string(),
            target_group: tg.to_string(),
        })
    }

    /// `app/<load balancer>/targetgroup/<target group>`.
    pub fn format(load_balancer: &str, target_group: &str) -> String {
        format!("app/{load_balancer}/targetgroup/{target_group}")
    }
}

impl ScalingPolicy {
    /// Checks the resource on its own; returns the service it names.
    pub fn validate(&self) -> Result<ServiceRef> {
        check_resource_name("policyName", &self.policy_name)?;
        let svc = ServiceRef::parse("resourceId", &self.resource_id)?;
        let tt = "targetTrackingScalingPolicyConfiguration";
        let st = "stepScalingPolicyConfiguration";
        match self.policy_type {
            PolicyType::TargetTrackingScaling => {
                if self.step_scaling_policy_configuration.is_some() {
                    return Err(ValidationError::new(
                        st,
                        "only with policyType StepScaling; this policy is TargetTrackingScaling",
                    ));
                }
                let c = self
                    .target_tracking_scaling_policy_configuration
                    .as_ref()
                    .ok_or_else(|| {
                        ValidationError::new(tt, "required with policyType TargetTrackingScaling")
                    })?;
                c.validate().map_err(|e| e.within(tt))?;
            }
            PolicyType::StepScaling => {
                if self.target_tracking_scaling_policy_configuration.is_some() {
                    return Err(ValidationError::new(
                        tt,
                        "only with policyType TargetTrackingScaling; this policy is StepScaling",
                    ));
                }
                let c = self
                    .step_scaling_policy_configuration
                    .as_ref()
                    .ok_or_else(|| {
                        ValidationError::new(st, "required with policyType StepScaling")
                    })?;
                c.validate().map_err(|e| e.within(st))?;
            }
        }
        Ok(svc)
    }

    /// The user-written part, for comparing a stack file's policy with the stored one.
    pub fn spec(&self) -> ScalingPolicy {
        ScalingPolicy {
            policy_arn: String::new(),
            creation_time: None,
            ..self.clone()
        }
    }

    /// Every predefined metric the policy reads, with the field path of each (relative
    /// to the policy), for the reference checks of apply.
    pub fn predefined_metrics(&self) -> Vec<(String, &PredefinedMetricSpecification)> {
        let mut out = Vec::new();
        if let Some(c) = &self.target_tracking_scaling_policy_configuration {
            if let Some(p) = &c.predefined_metric_specification {
                out.push((
                    "targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification"
                        .to_string(),
                    p,
                ));
            }
        }
        if let Some(c) = &self.step_scaling_policy_configuration {
            if let Some(p) = &c.alarm.metric.predefined_metric_specification {
                out.push((
                    "stepScalingPolicyConfiguration.alarm.metric.predefinedMetricSpecification"
                        .to_string(),
                    p,
                ));
            }
        }
        out
    }
}

impl TargetTrackingScalingPolicyConfiguration {
    pub fn validate(&self) -> Result<()> {
        if !(self.target_value.is_finite() && self.target_value > 0.0) {
            return Err(ValidationError::new(
                "targetValue",
                format!("must be a number more than 0, got {}", self.target_value),
            ));
        }
        check_metric(
            self.predefined_metric_specification.as_ref(),
            self.customized_metric_specification.as_ref(),
        )?;
        check_range(
            "scaleOutCooldown",
            self.scale_out_cooldown,
            0,
            MAX_COOLDOWN_SECONDS,
        )?;
        check_range(
            "scaleInCooldown",
            self.scale_in_cooldown,
            0,
            MAX_COOLDOWN_SECONDS,
        )?;
        check_range(
            "evaluation.scaleOutSeconds",
            self.evaluation.scale_out_seconds,
            1,
            MAX_EVALUATION_SECONDS,
        )?;
        check_range(
            "evaluation.scaleInSeconds",
            self.evaluation.scale_in_seconds,
            1,
            MAX_EVALUATION_SECONDS,
        )?;
        Ok(())
    }
}

impl StepScalingPolicyConfiguration {
    pub fn validate(&self) -> Result<()> {
        check_step_adjustments(self.adjustment_type, &self.step_adjustments)?;
        if let Some(m) = self.min_adjustment_magnitude {
            if self.adjustment_type != AdjustmentType::PercentChangeInCapacity {
                return Err(ValidationError::new(
                    "minAdjustmentMagnitude",
                    "only with adjustmentType PercentChangeInCapacity",
                ));
            }
            check_range("minAdjustmentMagnitude", m, 1, MAX_CAPACITY)?;
        }
        check_range("cooldown", self.cooldown, 0, MAX_COOLDOWN_SECONDS)?;
        let a = &self.alarm;
        if !a.threshold.is_finite() {
            return Err(ValidationError::new(
                "alarm.threshold",
                format!("must be a finite number, got {}", a.threshold),
            ));
        }
        check_range(
            "alarm.evaluationSeconds",
            a.evaluation_seconds,
            1,
            MAX_EVALUATION_SECONDS,
        )?;
        check_metric(
            a.metric.predefined_metric_specification.as_ref(),
            a.metric.customized_metric_specification.as_ref(),
        )
        .map_err(|e| e.within("alarm.metric"))
    }
}

/// Exactly one of the two metric forms, each valid.
fn check_metric(
    predefined: Option<&PredefinedMetricSpecification>,
    customized: Option<&CustomizedMetricSpecification>,
) -> Result<()> {
    match (predefined, customized) {
        (Some(_), Some(_)) => Err(ValidationError::new(
            "customizedMetricSpecification",
            "give either predefinedMetricSpecification or customizedMetricSpecification, not both",
        )),
        (None, None) => Err(ValidationError::new(
            "predefinedMetricSpecification",
            "required: give predefinedMetricSpecification or customizedMetricSpecification",
        )),
        (Some(p), None) => p
            .validate()
            .map_err(|e| e.within("predefinedMetricSpecification")),
        (None, Some(c)) => c
            .validate()
            .map_err(|e| e.within("customizedMetricSpecification")),
    }
}

impl PredefinedMetricSpecification {
    pub fn validate(&self) -> Result<()> {
        match (self.predefined_metric_type, &self.resource_label) {
            (PredefinedMetricType::AlbRequestCountPerTarget, None) => Err(ValidationError::new(
                "resourceLabel",
                "required with ALBRequestCountPerTarget: app/<load balancer name>/targetgroup/<target group name>",
            )),
            (PredefinedMetricType::AlbRequestCountPerTarget, Some(l)) => {
                AlbResourceLabel::parse("resourceLabel", l).map(|_| ())
            }
            (_, Some(_)) => Err(ValidationError::new(
                "resourceLabel",
                "only with predefinedMetricType ALBRequestCountPerTarget",
            )),
            (_, None) => Ok(()),
        }
    }

    /// The target group an ALBRequestCountPerTarget metric names.
    pub fn alb_resource_label(&self) -> Option<AlbResourceLabel> {
        let l = self.resource_label.as_deref()?;
        AlbResourceLabel::parse("resourceLabel", l).ok()
    }
}

impl CustomizedMetricSpecification {
    pub fn validate(&self) -> Result<()> {
        match (&self.prometheus, &self.metric_name) {
            (Some(_), Some(_)) => Err(ValidationError::new(
                "metricName",
                "give either prometheus or metricName, not both",
            )),
            (None, None) => Err(ValidationError::new(
                "",
                "give prometheus {url, query} or metricName (one of berth's metrics)",
            )),
            (Some(p), None) => {
                if !self.labels.is_empty() {
                    return Err(ValidationError::new(
                        "labels",
                        "only with metricName; put label matchers in the PromQL query",
                    ));
                }
                if self.statistic.is_some() {
                    return Err(ValidationError::new(
                        "statistic",
                        "only with metricName; aggregate in the PromQL query",
                    ));
                }
                let scheme_ok = ["http://", "https://"]
                    .iter()
                    .any(|s| p.url.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
                if !scheme_ok {
                    return Err(ValidationError::new(
                        "prometheus.url",
                        format!("must be an http:// or https:// URL, got {:?}", p.url),
                    ));
                }
                if p.query.trim().is_empty() {
                    return Err(ValidationError::new(
                        "prometheus.query",
                        "must be a PromQL query returning one sample",
                    ));
                }
                Ok(())
            }
            (None, Some(name)) => {
                let Some((_, labels)) = BERTH_METRICS.iter().find(|(n, _)| n == name) else {
                    let names: Vec<&str> = BERTH_METRICS.iter().map(|(n, _)| *n).collect();
                    return Err(ValidationError::new(
                        "metricName",
                        format!(
                            "must be one of berth's metrics ({}), got {name:?}",
                            names.join(", ")
                        ),
                    ));
                };
                if let Some(l) = self.labels.keys().find(|l| !labels.contains(&l.as_str())) {
                    return Err(ValidationError::new(
                        format!("labels.{l}"),
                        format!("{name} has the labels {}, not {l:?}", labels.join(", ")),
                    ));
                }
                Ok(())
            }
        }
    }
}
