//! Step scaling: an alarm on a metric (threshold, comparison, aggregation over a window)
//! and step adjustments whose bounds are relative to the alarm threshold.
//!
//! When the alarm is breached, the step whose interval holds `metric − threshold` applies.
//! As in AWS, above the threshold an interval includes its lower bound and excludes its
//! upper bound; below it, the other way round; a missing bound is infinite. A metric in no
//! interval (a gap the user left) changes nothing. The step's `scalingAdjustment` is read
//! by `adjustmentType`: `ChangeInCapacity` adds it, `ExactCapacity` sets it, and
//! `PercentChangeInCapacity` adds that percentage of the capacity, rounded toward zero
//! but at least 1 (see [`crate::adjustment`]) and at least
//! `minAdjustmentMagnitude`. The one `cooldown` acts as both cooldowns (AWS: 300 s).

use std::time::Duration;

use jiff::Timestamp;

pub use crate::adjustment::AdjustmentType;
use crate::adjustment::Computation;
use crate::assessment::{missing_data, number, validate_window, Assessment};
use crate::error::RuleError;
use crate::outcome::{Direction, NotScaledCode};
use crate::window::{MetricSeries, Statistic, Window};

/// AWS's default step scaling cooldown.
pub const DEFAULT_STEP_COOLDOWN: Duration = Duration::from_secs(300);
/// berth's default alarm window for step policies: 10 s, at least 3 samples.
pub const DEFAULT_STEP_WINDOW: Window = Window::new(Duration::from_secs(10), 3);

/// The alarm's `ComparisonOperator` (CloudWatch's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => ">=",
            Comparison::GreaterThanThreshold => ">",
            Comparison::LessThanThreshold => "<",
            Comparison::LessThanOrEqualToThreshold => "<=",
        }
    }
}

/// One of `stepAdjustments`: bounds relative to the alarm threshold (`None` is
/// unbounded) and the adjustment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepAdjustment {
    pub lower_bound: Option<f64>,
    pub upper_bound: Option<f64>,
    pub scaling_adjustment: i64,
}

impl StepAdjustment {
    fn holds(&self, difference: f64) -> bool {
        let lower = self.lower_bound.unwrap_or(f64::NEG_INFINITY);
        let upper = self.upper_bound.unwrap_or(f64::INFINITY);
        if difference >= 0.0 {
            lower <= difference && difference < upper
        } else {
            lower < difference && difference <= upper
        }
    }
}

/// A compiled step scaling policy with its alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRule {
    pub policy_name: String,
    pub metric_name: String,
    pub threshold: f64,
    pub comparison: Comparison,
    /// `metricAggregationType` over `window`.
    pub aggregation: Statistic,
    pub window: Window,
    pub adjustment_type: AdjustmentType,
    pub steps: Vec<StepAdjustment>,
    pub min_adjustment_magnitude: Option<u32>,
    pub cooldown: Duration,
}

impl StepRule {
    /// Checks the steps as AWS does (bounds in order, no two intervals overlapping,
    /// `ExactCapacity` not negative, `PercentChangeInCapacity` within ±100 % on the way
    /// down) and that `minAdjustmentMagnitude` comes only with percentages.
    pub fn validate(&self) -> Result<(), RuleError> {
        if !self.threshold.is_finite() {
            return Err(RuleError::OutOfRange {
                field: "threshold".into(),
                allowed: "a finite number",
                found: self.threshold.to_string(),
            });
        }
        validate_window("window", self.window)?;
        if self.steps.is_empty() {
            return Err(RuleError::NoSteps);
        }
        if self.min_adjustment_magnitude.is_some()
            && self.adjustment_type != AdjustmentType::PercentChangeInCapacity
        {
            return Err(RuleError::MinAdjustmentMagnitudeWithoutPercent {
                adjustment_type: self.adjustment_type.as_str(),
            });
        }
        for (index, step) in self.steps.iter().enumerate() {
            let lower = step.lower_bound.unwrap_or(f64::NEG_INFINITY);
            let upper = step.upper_bound.unwrap_or(f64::INFINITY);
            if lower.is_nan() || upper.is_nan() || lower >= upper {
                return Err(RuleError::StepBoundsInverted {
                    index,
                    lower,
                    upper,
                });
            }
            match self.adjustment_type {
                AdjustmentType::ExactCapacity if step.scaling_adjustment < 0 => {
                    return Err(RuleError::OutOfRange {
                        field: format!("stepAdjustments[{index}].scalingAdjustment"),
                        allowed: "0 or more with adjustmentType ExactCapacity",
                        found: step.scaling_adjustment.to_string(),
                    });
                }
                AdjustmentType::PercentChangeInCapacity if step.scaling_adjustment < -100 => {
                    return Err(RuleError::OutOfRange {
                        field: format!("stepAdjustments[{index}].scalingAdjustment"),
                        allowed: "-100 or more with adjustmentType PercentChangeInCapacity",
                        found: step.scaling_adjustment.to_string(),
                    });
                }
                _ => {}
            }
            for (first, other) in self.steps[..index].iter().enumerate() {
                let other_lower = other.lower_bound.unwrap_or(f64::NEG_INFINITY);
                let other_upper = other.upper_bound.unwrap_or(f64::INFINITY);
                if lower < other_upper && other_lower < upper {
                    return Err(RuleError::StepsOverlap {
                        first,
                        second: index,
                    });
                }
            }
        }
        Ok(())
    }

    pub(crate) fn assess(&self, current: u32, metric: &MetricSeries, now: Timestamp) -> Assessment {
        let value = match metric.aggregate(now, self.window, self.aggregation) {
            Ok(value) => value,
            Err(missing) => return missing_data(&self.metric_name, self.window, missing),
        };
        let alarm = format!(
            "{} {} {} over the last {} s",
            self.metric_name,
            self.aggregation.as_str(),
            number(value),
            self.window.length.as_secs()
        );
        if !self.comparison.breached(value, self.threshold) {
            return Assessment::Holds {
                code: NotScaledCode::WithinTarget,
                detail: format!(
                    "{alarm} does not breach the alarm ({} {})",
                    self.comparison.symbol(),
                    number(self.threshold)
                ),
            };
        }
        let difference = value - self.threshold;
        let Some(step) = self.steps.iter().find(|step| step.holds(difference)) else {
            return Assessment::Holds {
                code: NotScaledCode::NoStepForMetric,
                detail: format!(
                    "{alarm} is {} from the threshold {}, in no step's interval",
                    number(difference),
                    number(self.threshold)
                ),
            };
        };
        let computation = Computation::Step {
            adjustment_type: self.adjustment_type,
            adjustment: step.scaling_adjustment,
            min_adjustment_magnitude: self.min_adjustment_magnitude,
        };
        let proposed = computation.capacity(current);
        let direction = match proposed.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Out,
            std::cmp::Ordering::Less => Direction::In,
            std::cmp::Ordering::Equal => {
                return Assessment::Holds {
                    code: NotScaledCode::AlreadyAtDesiredCapacity,
                    detail: format!("{alarm}: the step sets the desired count it has, {current}"),
                }
            }
        };
        Assessment::Wants {
            direction,
            computation,
            cooldown: self.cooldown,
            cause: format!(
                "monitor alarm {}-Alarm in state ALARM triggered policy {}: {alarm} breaches the alarm ({} {})",
                self.policy_name,
                self.policy_name,
                self.comparison.symbol(),
                number(self.threshold)
            ),
        }
    }
}
