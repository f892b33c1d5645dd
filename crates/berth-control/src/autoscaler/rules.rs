//! Stored autoscaling resources mapped onto the scaling engine's compiled rules: a
//! [`ScalingPolicy`] becomes an engine [`Policy`] plus the sampled metric it reads
//! ([`MetricKey`]); a stored [`ScheduledAction`] becomes the engine's; a
//! [`ScalableTarget`] gives the bounds and suspension flags.
//!
//! The mapping of berth's `evaluation` seconds onto the engine's windows: a window of
//! `S` seconds needs `max(1, min(3, S − 1), ceil(S ÷ 10))` samples to have data, so 5 s
//! and 10 s need 3, 60 s needs 6, matching the engine's defaults; fewer is missing data.
//! The sampler takes one a second, and the newest is still being taken when a pass
//! evaluates, so a window of `S` seconds reliably holds `S − 1`: asking a 3 s window
//! for 3 samples would find it missing data under a steady load.
//!
//! What it does not do: read the store or the sampler, or decide anything.

use std::collections::BTreeSet;
use std::time::Duration;

use berth_autoscaling as engine;
use berth_autoscaling::{CapacityBounds, Policy, Statistic, Window};
use berth_model::autoscaling::{
    policy::AlbResourceLabel, AdjustmentType, ComparisonOperator, CustomizedMetricSpecification,
    MetricAggregationType, PredefinedMetricSpecification, PredefinedMetricType, ScalableTarget,
    ScalingPolicy, ScheduledAction,
};

use crate::service_metrics::{window::instant, CustomMetric, MetricKey, RegistryMetric};

/// Why a stored resource cannot be evaluated. Apply validates what it stores, so this
/// means a record written by another version of berth, or a rule the engine is stricter
/// about than the model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleMappingError {
    #[error("scaling policy {policy}: {field}: {problem}")]
    Policy {
        policy: String,
        field: &'static str,
        problem: String,
    },
    #[error("scaling policy {policy}: {source}")]
    Rule {
        policy: String,
        #[source]
        source: engine::RuleError,
    },
    #[error("scheduled action {action}: {source}")]
    Schedule {
        action: String,
        #[source]
        source: engine::ScheduleError,
    },
    #[error("scalable target {resource_id}: {source}")]
    Bounds {
        resource_id: String,
        #[source]
        source: engine::RuleError,
    },
}

/// A policy compiled for the engine, with the metric it reads and how far back.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPolicy {
    pub policy: Policy,
    pub metric: MetricKey,
    /// The longest of its windows: the samples an evaluation copies from the sampler.
    pub lookback: Duration,
}

/// The samples a window of `seconds` needs to have data (see the module docs).
pub fn min_samples(seconds: u64) -> usize {
    let seconds = seconds.max(1) as usize;
    (seconds - 1).min(3).max(seconds.div_ceil(10)).max(1)
}

fn window(seconds: i64) -> Window {
    let seconds = seconds.max(1) as u64;
    Window::new(Duration::from_secs(seconds), min_samples(seconds))
}

fn cooldown(seconds: i64) -> Duration {
    Duration::from_secs(seconds.max(0) as u64)
}

/// The engine's bounds and suspension flags of `target`.
pub fn bounds(target: &ScalableTarget) -> Result<CapacityBounds, RuleMappingError> {
    let capacity = |v: i64| v.clamp(0, i64::from(u32::MAX)) as u32;
    CapacityBounds::new(capacity(target.min_capacity), capacity(target.max_capacity)).map_err(
        |source| RuleMappingError::Bounds {
            resource_id: target.resource_id.clone(),
            source,
        },
    )
}

pub fn suspended(target: &ScalableTarget) -> engine::SuspendedState {
    let s = target.suspended_state;
    engine::SuspendedState {
        dynamic_scaling_in_suspended: s.dynamic_scaling_in_suspended,
        dynamic_scaling_out_suspended: s.dynamic_scaling_out_suspended,
        scheduled_scaling_suspended: s.scheduled_scaling_suspended,
    }
}

/// The sampled metric a policy's metric specification names, and its name in causes.
fn metric_key(
    policy: &str,
    predefined: Option<&PredefinedMetricSpecification>,
    customized: Option<&CustomizedMetricSpecification>,
) -> Result<(MetricKey, String), RuleMappingError> {
    if let Some(p) = predefined {
        return Ok(match p.predefined_metric_type {
            PredefinedMetricType::EcsServiceAverageCpuUtilization => (
                MetricKey::CpuUtilization,
                "ECSServiceAverageCPUUtilization".into(),
            ),
            PredefinedMetricType::EcsServiceAverageMemoryUtilization => (
                MetricKey::MemoryUtilization,
                "ECSServiceAverageMemoryUtilization".into(),
            ),
            PredefinedMetricType::AlbRequestCountPerTarget => {
                let label = p.resource_label.as_deref().unwrap_or_default();
                let parsed = AlbResourceLabel::parse("resourceLabel", label).map_err(|e| {
                    RuleMappingError::Policy {
                        policy: policy.to_string(),
                        field: "resourceLabel",
                        problem: e.to_string(),
                    }
                })?;
                (
                    MetricKey::AlbRequestCountPerTarget {
                        target_group_arn: berth_model::arn::target_group(&parsed.target_group),
                    },
                    "ALBRequestCountPerTarget".into(),
                )
            }
        });
    }
    let Some(c) = customized else {
        return Err(RuleMappingError::Policy {
            policy: policy.to_string(),
            field: "predefinedMetricSpecification",
            problem: "a predefined or customized metric is required".into(),
        });
    };
    match (&c.prometheus, &c.metric_name) {
        (Some(q), _) => Ok((
            MetricKey::Custom(CustomMetric::Prometheus {
                url: q.url.clone(),
                query: q.query.clone(),
            }),
            format!("the Prometheus query {}", q.query),
        )),
        (None, Some(name)) => {
            let metric = RegistryMetric {
                name: name.clone(),
                labels: c.labels.clone(),
            };
            let shown = metric.to_string();
            Ok((MetricKey::Custom(CustomMetric::Registry(metric)), shown))
        }
        (None, None) => Err(RuleMappingError::Policy {
            policy: policy.to_string(),
            field: "customizedMetricSpecification",
            problem: "give prometheus {url, query} or metricName".into(),
        }),
    }
}

/// Compiles a stored scaling policy for the engine.
pub fn compile_policy(p: &ScalingPolicy) -> Result<CompiledPolicy, RuleMappingError> {
    let name = p.policy_name.as_str();
    if let Some(c) = &p.target_tracking_scaling_policy_configuration {
        let (metric, metric_name) = metric_key(
            name,
            c.predefined_metric_specification.as_ref(),
            c.customized_metric_specification.as_ref(),
        )?;
        let mut rule = engine::TargetTrackingRule::new(name, metric_name, c.target_value);
        rule.scale_out_window = window(c.evaluation.scale_out_seconds);
        rule.scale_in_window = window(c.evaluation.scale_in_seconds);
        rule.scale_out_cooldown = cooldown(c.scale_out_cooldown);
        rule.scale_in_cooldown = cooldown(c.scale_in_cooldown);
        rule.disable_scale_in = c.disable_scale_in;
        rule.validate().map_err(|source| RuleMappingError::Rule {
            policy: name.to_string(),
            source,
        })?;
        let lookback = rule
            .scale_out_window
            .length
            .max(rule.scale_in_window.length);
        return Ok(CompiledPolicy {
            policy: Policy::TargetTracking(rule),
            metric,
            lookback,
        });
    }
    let Some(c) = &p.step_scaling_policy_configuration else {
        return Err(RuleMappingError::Policy {
            policy: name.to_string(),
            field: "policyType",
            problem: "neither targetTrackingScalingPolicyConfiguration nor stepScalingPolicyConfiguration is set".into(),
        });
    };
    let (metric, metric_name) = metric_key(
        name,
        c.alarm.metric.predefined_metric_specification.as_ref(),
        c.alarm.metric.customized_metric_specification.as_ref(),
    )?;
    let rule = engine::StepRule {
        policy_name: name.to_string(),
        metric_name,
        threshold: c.alarm.threshold,
        comparison: match c.alarm.comparison_operator {
            ComparisonOperator::GreaterThanOrEqualToThreshold => {
                engine::Comparison::GreaterThanOrEqualToThreshold
            }
            ComparisonOperator::GreaterThanThreshold => engine::Comparison::GreaterThanThreshold,
            ComparisonOperator::LessThanThreshold => engine::Comparison::LessThanThreshold,
            ComparisonOperator::LessThanOrEqualToThreshold => {
                engine::Comparison::LessThanOrEqualToThreshold
            }
        },
        aggregation: match c.metric_aggregation_type {
            MetricAggregationType::Average => Statistic::Average,
            MetricAggregationType::Minimum => Statistic::Minimum,
            MetricAggregationType::Maximum => Statistic::Maximum,
        },
        window: window(c.alarm.evaluation_seconds),
        adjustment_type: match c.adjustment_type {
            AdjustmentType::ChangeInCapacity => engine::AdjustmentType::ChangeInCapacity,
            AdjustmentType::PercentChangeInCapacity => {
                engine::AdjustmentType::PercentChangeInCapacity
            }
            AdjustmentType::ExactCapacity => engine::AdjustmentType::ExactCapacity,
        },
        steps: c
            .step_adjustments
            .iter()
            .map(|s| engine::StepAdjustment {
                lower_bound: s.metric_interval_lower_bound,
                upper_bound: s.metric_interval_upper_bound,
                scaling_adjustment: s.scaling_adjustment,
            })
            .collect(),
        min_adjustment_magnitude: c
            .min_adjustment_magnitude
            .map(|m| m.clamp(0, i64::from(u32::MAX)) as u32),
        cooldown: cooldown(c.cooldown),
    };
    rule.validate().map_err(|source| RuleMappingError::Rule {
        policy: name.to_string(),
        source,
    })?;
    let lookback = rule.window.length;
    Ok(CompiledPolicy {
        policy: Policy::Step(rule),
        metric,
        lookback,
    })
}

/// Compiles a stored scheduled action for the engine. An action stored without a
/// creation time counts from the epoch (a `rate` then fires on its period's multiples).
pub fn compile_scheduled(a: &ScheduledAction) -> Result<engine::ScheduledAction, RuleMappingError> {
    let schedule =
        engine::Schedule::parse(&a.schedule, a.timezone.as_deref()).map_err(|source| {
            RuleMappingError::Schedule {
                action: a.scheduled_action_name.clone(),
                source,
            }
        })?;
    let capacity = |v: Option<i64>| v.map(|v| v.clamp(0, i64::from(u32::MAX)) as u32);
    Ok(engine::ScheduledAction {
        name: a.scheduled_action_name.clone(),
        schedule,
        start_time: a.start_time.map(instant),
        end_time: a.end_time.map(instant),
        min_capacity: capacity(a.scalable_target_action.min_capacity),
        max_capacity: capacity(a.scalable_target_action.max_capacity),
        created_at: instant(a.creation_time.unwrap_or(0.0)),
    })
}

/// The customized metrics among `policies`, which the sampler must be asked for.
pub fn custom_metrics(policies: &[CompiledPolicy]) -> BTreeSet<CustomMetric> {
    policies
        .iter()
        .filter_map(|p| match &p.metric {
            MetricKey::Custom(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_seconds_map_to_windows_with_enough_samples() {
        assert_eq!(min_samples(1), 1);
        assert_eq!(min_samples(2), 1);
        assert_eq!(min_samples(3), 2);
        assert_eq!(min_samples(4), 3);
        assert_eq!(min_samples(5), 3);
        assert_eq!(min_samples(10), 3);
        assert_eq!(min_samples(60), 6);
        assert_eq!(min_samples(300), 30);
    }

    /// Samples once a second, the one of this instant still being taken: the window
    /// `(now − S, now]` holds those of 1 … S − 1 seconds ago (and of S seconds ago only
    /// when it lands a moment late), and that is enough for every length.
    #[test]
    fn a_window_sampled_once_a_second_has_data_while_its_newest_sample_is_taken() {
        for seconds in 2..=3600u64 {
            let window = window(seconds as i64);
            let now = 10_000.0;
            let held = (1..=seconds)
                .map(|ago| now - ago as f64)
                .filter(|at| *at > now - window.length.as_secs_f64())
                .count();
            assert!(held >= window.min_samples, "{seconds} s: {held} samples");
        }
        assert_eq!(window(1).min_samples, 1);
    }

    #[test]
    fn a_request_count_policy_reads_its_target_group_and_keeps_its_settings() {
        let p: ScalingPolicy = serde_json::from_value(serde_json::json!({
            "policyName": "requests",
            "resourceId": "service/default/web",
            "policyType": "TargetTrackingScaling",
            "targetTrackingScalingPolicyConfiguration": {
                "targetValue": 600.0,
                "predefinedMetricSpecification": {
                    "predefinedMetricType": "ALBRequestCountPerTarget",
                    "resourceLabel": "app/web/targetgroup/whoami"
                },
                "scaleOutCooldown": 15, "scaleInCooldown": 60, "disableScaleIn": true,
                "evaluation": {"scaleOutSeconds": 5, "scaleInSeconds": 30}
            }
        }))
        .unwrap();
        let c = compile_policy(&p).unwrap();
        assert_eq!(
            c.metric,
            MetricKey::AlbRequestCountPerTarget {
                target_group_arn: berth_model::arn::target_group("whoami")
            }
        );
        assert_eq!(c.lookback, Duration::from_secs(30));
        let Policy::TargetTracking(rule) = c.policy else {
            panic!("target tracking expected");
        };
        assert_eq!(rule.target_value, 600.0);
        assert_eq!(
            rule.scale_out_window,
            Window::new(Duration::from_secs(5), 3)
        );
        assert_eq!(
            rule.scale_in_window,
            Window::new(Duration::from_secs(30), 3)
        );
        assert_eq!(rule.scale_out_cooldown, Duration::from_secs(15));
        assert_eq!(rule.scale_in_cooldown, Duration::from_secs(60));
        assert!(rule.disable_scale_in);
    }

    #[test]
    fn a_step_policy_maps_its_alarm_and_steps() {
        let p: ScalingPolicy = serde_json::from_value(serde_json::json!({
            "policyName": "cpu-steps",
            "resourceId": "service/default/web",
            "policyType": "StepScaling",
            "stepScalingPolicyConfiguration": {
                "adjustmentType": "PercentChangeInCapacity",
                "minAdjustmentMagnitude": 2,
                "cooldown": 30,
                "metricAggregationType": "Maximum",
                "stepAdjustments": [
                    {"metricIntervalLowerBound": 0.0, "metricIntervalUpperBound": 20.0, "scalingAdjustment": 50},
                    {"metricIntervalLowerBound": 20.0, "scalingAdjustment": 100}
                ],
                "alarm": {
                    "metric": {"customizedMetricSpecification": {
                        "metricName": "berth_service_running_tasks", "labels": {"service": "web"}}},
                    "comparisonOperator": "GreaterThanOrEqualToThreshold",
                    "threshold": 70.0,
                    "evaluationSeconds": 20
                }
            }
        }))
        .unwrap();
        let c = compile_policy(&p).unwrap();
        let Policy::Step(rule) = &c.policy else {
            panic!("step expected");
        };
        assert_eq!(rule.aggregation, Statistic::Maximum);
        assert_eq!(rule.window, Window::new(Duration::from_secs(20), 3));
        assert_eq!(rule.steps.len(), 2);
        assert_eq!(rule.min_adjustment_magnitude, Some(2));
        assert_eq!(rule.cooldown, Duration::from_secs(30));
        assert_eq!(custom_metrics(std::slice::from_ref(&c)).len(), 1);
    }

    #[test]
    fn a_schedule_that_does_not_parse_names_the_action() {
        let a: ScheduledAction = serde_json::from_value(serde_json::json!({
            "scheduledActionName": "nights",
            "resourceId": "service/default/web",
            "schedule": "cron(99 * * * ? *)",
            "scalableTargetAction": {"minCapacity": 1}
        }))
        .unwrap();
        let e = compile_scheduled(&a).unwrap_err();
        assert!(
            e.to_string().starts_with("scheduled action nights: "),
            "{e}"
        );
    }
}
