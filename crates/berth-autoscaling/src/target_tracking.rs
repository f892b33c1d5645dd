//! Target tracking: keep a metric at a target value.
//!
//! The rule, exactly:
//! - **Scale out** when the scale-out window's statistic (average by default) is above the
//!   target: to `ceil(current × metric ÷ target)` (a current of 0 counts as 1).
//! - **Scale in** only when every sample of the longer scale-in window is below
//!   `(1 − scaleInTolerance) × target` (0.9 × target by default), that is when the
//!   window's maximum is: to `max(ceil(current × maximum ÷ target), floor(current ÷ 2))`.
//!   Taking the window's highest value and halving at most makes scale-in gradual; after
//!   it the expected metric stays at or below the target, so it does not undo itself.
//! - Between the two (at or below the target, at or above 0.9 × target) nothing changes.
//! - Missing data in the window that decides never scales, in either direction.
//! - `disableScaleIn`: the policy never scales in, and does not hold other policies back.
//!
//! Cooldowns, bounds, suspension and deployments are applied by [`crate::decision`].

use std::time::Duration;

use jiff::Timestamp;

use crate::adjustment::Computation;
use crate::assessment::{missing_data, number, validate_window, Assessment};
use crate::error::RuleError;
use crate::outcome::{Direction, NotScaledCode};
use crate::window::{MetricSeries, Statistic, Window};

/// AWS's default scale-out cooldown for ECS services.
pub const DEFAULT_SCALE_OUT_COOLDOWN: Duration = Duration::from_secs(300);
/// AWS's default scale-in cooldown for ECS services.
pub const DEFAULT_SCALE_IN_COOLDOWN: Duration = Duration::from_secs(300);
/// Scale in below 90 % of the target, as AWS's AlarmLow does (and HPA's 10 % tolerance).
pub const DEFAULT_SCALE_IN_TOLERANCE: f64 = 0.1;
/// berth's high-resolution default instead of AWS's 3 × 60 s datapoints: 10 s of samples,
/// at least 3 of them, averaged (enough to ride out one noisy sample of the demo load).
pub const DEFAULT_SCALE_OUT_WINDOW: Window = Window::new(Duration::from_secs(10), 3);
/// Instead of AWS's 15 × 60 s datapoints: a minute, at least 6 samples, all below
/// 0.9 × target.
pub const DEFAULT_SCALE_IN_WINDOW: Window = Window::new(Duration::from_secs(60), 6);

/// A compiled target tracking policy.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTrackingRule {
    /// The policy's name, named in causes.
    pub policy_name: String,
    /// The metric's name as the user wrote it (`ECSServiceAverageCPUUtilization`, ...),
    /// named in causes.
    pub metric_name: String,
    pub target_value: f64,
    /// How the scale-out window is reduced to one value.
    pub statistic: Statistic,
    pub scale_out_window: Window,
    pub scale_in_window: Window,
    /// Scale in only below `(1 − scale_in_tolerance) × target_value`. In `[0, 1)`.
    pub scale_in_tolerance: f64,
    pub scale_out_cooldown: Duration,
    pub scale_in_cooldown: Duration,
    pub disable_scale_in: bool,
}

impl TargetTrackingRule {
    /// A rule with berth's defaults for everything but the name, metric and target.
    pub fn new(
        policy_name: impl Into<String>,
        metric_name: impl Into<String>,
        target_value: f64,
    ) -> TargetTrackingRule {
        TargetTrackingRule {
            policy_name: policy_name.into(),
            metric_name: metric_name.into(),
            target_value,
            statistic: Statistic::Average,
            scale_out_window: DEFAULT_SCALE_OUT_WINDOW,
            scale_in_window: DEFAULT_SCALE_IN_WINDOW,
            scale_in_tolerance: DEFAULT_SCALE_IN_TOLERANCE,
            scale_out_cooldown: DEFAULT_SCALE_OUT_COOLDOWN,
            scale_in_cooldown: DEFAULT_SCALE_IN_COOLDOWN,
            disable_scale_in: false,
        }
    }

    /// Checks what the engine relies on: a positive finite target, a tolerance in
    /// `[0, 1)`, windows that have a length and need at least one sample.
    pub fn validate(&self) -> Result<(), RuleError> {
        if !(self.target_value.is_finite() && self.target_value > 0.0) {
            return Err(RuleError::OutOfRange {
                field: "targetValue".into(),
                allowed: "a number above 0",
                found: self.target_value.to_string(),
            });
        }
        if !(0.0..1.0).contains(&self.scale_in_tolerance) {
            return Err(RuleError::OutOfRange {
                field: "scaleInTolerance".into(),
                allowed: "at least 0 and below 1",
                found: self.scale_in_tolerance.to_string(),
            });
        }
        validate_window("scaleOutWindow", self.scale_out_window)?;
        validate_window("scaleInWindow", self.scale_in_window)
    }

    pub(crate) fn assess(
        &self,
        resource_id: &str,
        metric: &MetricSeries,
        now: Timestamp,
    ) -> Assessment {
        let target = self.target_value;
        let window = self.scale_out_window;
        let value = match metric.aggregate(now, window, self.statistic) {
            Ok(value) => value,
            Err(missing) => return missing_data(&self.metric_name, window, missing),
        };
        if value > target {
            return Assessment::Wants {
                direction: Direction::Out,
                computation: Computation::Proportional {
                    ratio: value / target,
                },
                cooldown: self.scale_out_cooldown,
                cause: format!(
                    "monitor alarm TargetTracking-{resource_id}-AlarmHigh in state ALARM triggered policy {}: {} {} {} over the last {} s is above the target {}",
                    self.policy_name,
                    self.metric_name,
                    self.statistic.as_str(),
                    number(value),
                    window.length.as_secs(),
                    number(target),
                ),
            };
        }
        let threshold = (1.0 - self.scale_in_tolerance) * target;
        let window = self.scale_in_window;
        let highest = metric.aggregate(now, window, Statistic::Maximum);
        if self.disable_scale_in {
            return match highest {
                Ok(highest) if highest < threshold => Assessment::Holds {
                    code: NotScaledCode::ScaleInDisabled,
                    detail: format!(
                        "{} maximum {} over the last {} s is below {}, but the policy has disableScaleIn",
                        self.metric_name,
                        number(highest),
                        window.length.as_secs(),
                        number(threshold)
                    ),
                },
                _ => Assessment::Holds {
                    code: NotScaledCode::WithinTarget,
                    detail: format!(
                        "{} {} {} is not above the target {}",
                        self.metric_name,
                        self.statistic.as_str(),
                        number(value),
                        number(target)
                    ),
                },
            };
        }
        let highest = match highest {
            Ok(value) => value,
            Err(missing) => return missing_data(&self.metric_name, window, missing),
        };
        if highest < threshold {
            return Assessment::Wants {
                direction: Direction::In,
                computation: Computation::GradualIn {
                    ratio: highest / target,
                },
                cooldown: self.scale_in_cooldown,
                cause: format!(
                    "monitor alarm TargetTracking-{resource_id}-AlarmLow in state ALARM triggered policy {}: {} maximum {} over the last {} s is below {} ({} % of the target {})",
                    self.policy_name,
                    self.metric_name,
                    number(highest),
                    window.length.as_secs(),
                    number(threshold),
                    number((1.0 - self.scale_in_tolerance) * 100.0),
                    number(target),
                ),
            };
        }
        Assessment::Holds {
            code: NotScaledCode::WithinTarget,
            detail: format!(
                "{} maximum {} over the last {} s is not below {} and not above the target {}",
                self.metric_name,
                number(highest),
                window.length.as_secs(),
                number(threshold),
                number(target)
            ),
        }
    }
}
