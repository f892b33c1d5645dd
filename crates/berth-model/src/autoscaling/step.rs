//! The rules of a step scaling policy's `stepAdjustments`, as Application Auto Scaling
//! states them:
//!
//! - each step has a lower or an upper bound (or both, lower < upper);
//! - the steps' ranges neither overlap nor leave a gap;
//! - at most one step has no lower bound, and there must be one when any lower bound is
//!   negative; at most one has no upper bound, and there must be one when any upper bound
//!   is positive;
//! - with ExactCapacity, each `scalingAdjustment` is 0 or more.
//!
//! Bounds are relative to the alarm's threshold: with a threshold of 50, lower bound 0 and
//! upper bound 10 apply from 50 (inclusive) to 60 (exclusive).

use serde::{Deserialize, Serialize};

use super::identity::MAX_CAPACITY;
use crate::error::{check_range, Result, ValidationError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdjustmentType {
    ChangeInCapacity,
    PercentChangeInCapacity,
    ExactCapacity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepAdjustment {
    /// Inclusive when the metric is above the threshold, exclusive below it; absent
    /// means minus infinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_interval_lower_bound: Option<f64>,
    /// Exclusive above the threshold, inclusive below it; absent means infinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_interval_upper_bound: Option<f64>,
    /// Tasks to add (negative: remove), percent, or the exact count, by adjustment type.
    pub scaling_adjustment: i64,
}

/// Application Auto Scaling's quota of step adjustments per policy.
pub const MAX_STEP_ADJUSTMENTS: usize = 20;

/// Checks the rules above; the error names `stepAdjustments[i]` and the bound at fault.
pub fn check_step_adjustments(kind: AdjustmentType, steps: &[StepAdjustment]) -> Result<()> {
    if steps.is_empty() || steps.len() > MAX_STEP_ADJUSTMENTS {
        return Err(ValidationError::new(
            "stepAdjustments",
            format!(
                "must list 1 to {MAX_STEP_ADJUSTMENTS} steps, got {}",
                steps.len()
            ),
        ));
    }
    let at = |i: usize, f: &str| format!("stepAdjustments[{i}].{f}");
    for (i, s) in steps.iter().enumerate() {
        let lo = s.metric_interval_lower_bound;
        let hi = s.metric_interval_upper_bound;
        for (f, v) in [
            ("metricIntervalLowerBound", lo),
            ("metricIntervalUpperBound", hi),
        ] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(ValidationError::new(at(i, f), "must be a finite number"));
            }
        }
        match (lo, hi) {
            (None, None) => return Err(ValidationError::new(
                format!("stepAdjustments[{i}]"),
                "give metricIntervalLowerBound or metricIntervalUpperBound; both may not be absent",
            )),
            (Some(l), Some(h)) if l >= h => {
                return Err(ValidationError::new(
                    at(i, "metricIntervalUpperBound"),
                    format!("must be more than metricIntervalLowerBound ({l}), got {h}"),
                ))
            }
            _ => {}
        }
        if kind == AdjustmentType::ExactCapacity {
            check_range(
                at(i, "scalingAdjustment").as_str(),
                s.scaling_adjustment,
                0,
                MAX_CAPACITY,
            )?;
        } else {
            check_range(
                at(i, "scalingAdjustment").as_str(),
                s.scaling_adjustment,
                -MAX_CAPACITY,
                MAX_CAPACITY,
            )?;
        }
    }
    for (f, open) in [
        (
            "metricIntervalLowerBound",
            steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.metric_interval_lower_bound.is_none())
                .map(|(i, _)| i)
                .collect::<Vec<_>>(),
        ),
        (
            "metricIntervalUpperBound",
            steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.metric_interval_upper_bound.is_none())
                .map(|(i, _)| i)
                .collect(),
        ),
    ] {
        if open.len() > 1 {
            return Err(ValidationError::new(
                at(open[1], f),
                format!(
                    "at most one step may leave {f} out; steps {} and {} both do",
                    open[0], open[1]
                ),
            ));
        }
    }
    // Sorted by lower bound (absent = minus infinity), each range must end where the
    // next begins.
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by(|&a, &b| {
        let la = steps[a]
            .metric_interval_lower_bound
            .unwrap_or(f64::NEG_INFINITY);
        let lb = steps[b]
            .metric_interval_lower_bound
            .unwrap_or(f64::NEG_INFINITY);
        la.total_cmp(&lb)
    });
    for w in order.windows(2) {
        let (a, b) = (&steps[w[0]], &steps[w[1]]);
        let next_lo = b.metric_interval_lower_bound.unwrap_or(f64::NEG_INFINITY);
        match a.metric_interval_upper_bound {
            None => {
                return Err(ValidationError::new(
                    at(w[0], "metricIntervalUpperBound"),
                    format!(
                        "absent (infinity), so the step overlaps step {} from {next_lo}; give an upper bound",
                        w[1]
                    ),
                ))
            }
            Some(h) if h > next_lo => {
                return Err(ValidationError::new(
                    at(w[1], "metricIntervalLowerBound"),
                    format!(
                        "overlaps step {} (which ends at {h}); ranges may not overlap",
                        w[0]
                    ),
                ))
            }
            Some(h) if h < next_lo => {
                return Err(ValidationError::new(
                    at(w[1], "metricIntervalLowerBound"),
                    format!(
                        "leaves a gap after step {} (which ends at {h}); must be {h}",
                        w[0]
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let first = order[0];
    if let Some(l) = steps[first].metric_interval_lower_bound {
        if l < 0.0 {
            return Err(ValidationError::new(
                at(first, "metricIntervalLowerBound"),
                format!("is negative ({l}), so one step must have no lower bound"),
            ));
        }
    }
    let last = order[order.len() - 1];
    if let Some(h) = steps[last].metric_interval_upper_bound {
        if h > 0.0 {
            return Err(ValidationError::new(
                at(last, "metricIntervalUpperBound"),
                format!("is positive ({h}), so one step must have no upper bound"),
            ));
        }
    }
    Ok(())
}
