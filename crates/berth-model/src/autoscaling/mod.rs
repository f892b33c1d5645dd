//! Application Auto Scaling for services: scalable targets, scaling policies (target
//! tracking and step scaling), scheduled actions and scaling activities, with the member
//! names of Application Auto Scaling's API (camelCase in berth's JSON and stack files).
//!
//! This module holds the resources, their defaults and their validation (each error names
//! the field and what is allowed). It does not decide anything: when to scale, by how
//! much, and how a `schedule` expression is read belong to the autoscaler. It checks only
//! what one resource can tell on its own; references to services, load balancers and
//! target groups are checked by `Stack::validate` (inside one file) and by apply (against
//! the store).
//!
//! Layout:
//! - [`identity`]: what every resource carries (`serviceNamespace`, `resourceId`,
//!   `scalableDimension`), the ARNs, and the shared checks.
//! - [`target`]: [`ScalableTarget`] and its [`SuspendedState`].
//! - [`policy`]: [`ScalingPolicy`]: target tracking, step scaling and the metrics both read.
//! - [`step`]: step adjustments and their rules (bounds contiguous, at most one open end).
//! - [`scheduled`]: [`ScheduledAction`], run at times a schedule gives.
//! - [`activity`]: [`ScalingActivity`], written by the autoscaler.

pub mod activity;
pub mod identity;
pub mod policy;
pub mod scheduled;
pub mod step;
pub mod target;

#[cfg(test)]
mod tests;

pub use activity::{
    NotScaledReason, NotScaledReasonCode, ScalingActivity, ScalingActivityStatusCode,
};
pub use identity::{
    resource_id, scalable_target_arn, scaling_policy_arn, scheduled_action_arn, ScalableDimension,
    ServiceNamespace, ServiceRef, MAX_CAPACITY,
};
pub use policy::{
    AlarmMetric, ComparisonOperator, CustomizedMetricSpecification, EvaluationWindow,
    MetricAggregationType, MetricStatistic, PolicyType, PredefinedMetricSpecification,
    PredefinedMetricType, PrometheusQuery, ScalingPolicy, StepScalingAlarm,
    StepScalingPolicyConfiguration, TargetTrackingScalingPolicyConfiguration,
};
pub use scheduled::{ScalableTargetAction, ScheduledAction};
pub use step::{AdjustmentType, StepAdjustment};
pub use target::{ScalableTarget, SuspendedState};
