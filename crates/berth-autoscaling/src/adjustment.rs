//! Capacity arithmetic: how a policy's new desired count follows from a base count, for
//! target tracking (proportional out, gradual in) and for the step adjustment types, with
//! AWS's rounding of percentage changes. No policy logic and no bounds: the caller clamps.

/// `adjustmentType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentType {
    ChangeInCapacity,
    PercentChangeInCapacity,
    ExactCapacity,
}

impl AdjustmentType {
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustmentType::ChangeInCapacity => "ChangeInCapacity",
            AdjustmentType::PercentChangeInCapacity => "PercentChangeInCapacity",
            AdjustmentType::ExactCapacity => "ExactCapacity",
        }
    }
}

/// How a policy's new capacity follows from a base capacity. The base is the desired
/// count, or during a scale-out cooldown the count before the scale-out in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Computation {
    /// Target tracking scale-out: `ceil(max(base, 1) × ratio)`, ratio = metric ÷ target.
    Proportional { ratio: f64 },
    /// Target tracking scale-in: `max(ceil(base × ratio), floor(base ÷ 2))`: proportional,
    /// but never more than half the tasks at once.
    GradualIn { ratio: f64 },
    /// A step adjustment.
    Step {
        adjustment_type: AdjustmentType,
        adjustment: i64,
        min_adjustment_magnitude: Option<u32>,
    },
}

/// Guards against `3 × (75 ÷ 75)` landing a hair above 3 and rounding up to 4.
const CEIL_EPSILON: f64 = 1e-9;

fn ceil_capacity(value: f64) -> u32 {
    let rounded = (value - CEIL_EPSILON).ceil();
    if rounded <= 0.0 {
        0
    } else if rounded >= u32::MAX as f64 {
        u32::MAX
    } else {
        rounded as u32
    }
}

impl Computation {
    pub(crate) fn capacity(self, base: u32) -> u32 {
        match self {
            Computation::Proportional { ratio } => ceil_capacity(base.max(1) as f64 * ratio),
            Computation::GradualIn { ratio } => ceil_capacity(base as f64 * ratio).max(base / 2),
            Computation::Step {
                adjustment_type,
                adjustment,
                min_adjustment_magnitude,
            } => {
                let new = match adjustment_type {
                    AdjustmentType::ExactCapacity => adjustment,
                    AdjustmentType::ChangeInCapacity => (base as i64).saturating_add(adjustment),
                    AdjustmentType::PercentChangeInCapacity => {
                        let delta = percent_change(base, adjustment, min_adjustment_magnitude);
                        (base as i64).saturating_add(delta)
                    }
                };
                new.clamp(0, u32::MAX as i64) as u32
            }
        }
    }
}

/// The tasks a `PercentChangeInCapacity` adjustment adds (or removes, when negative),
/// rounded as the Amazon EC2 Auto Scaling user guide documents it for step scaling (the
/// Application Auto Scaling guide gives no rule of its own): toward zero (12.7 → 12,
/// −6.67 → −6), except that a change between 0 and 1 in size becomes 1 (0.4 → 1,
/// −0.4 → −1); then, when `minAdjustmentMagnitude` is set, a smaller change becomes it.
pub(crate) fn percent_change(
    base: u32,
    percent: i64,
    min_adjustment_magnitude: Option<u32>,
) -> i64 {
    let exact = base as f64 * percent as f64 / 100.0;
    if exact == 0.0 {
        return 0;
    }
    let mut delta = exact.trunc() as i64;
    if delta == 0 {
        delta = exact.signum() as i64;
    }
    if let Some(magnitude) = min_adjustment_magnitude {
        if delta.unsigned_abs() < magnitude as u64 {
            delta = delta.signum() * magnitude as i64;
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_changes_round_toward_zero_but_never_to_zero() {
        assert_eq!(percent_change(127, 10, None), 12); // 12.7
        assert_eq!(percent_change(667, -1, None), -6); // -6.67
        assert_eq!(percent_change(4, 10, None), 1); // 0.4
        assert_eq!(percent_change(4, -10, None), -1); // -0.4
        assert_eq!(percent_change(0, 50, None), 0);
    }

    #[test]
    fn huge_adjustments_saturate_instead_of_overflowing() {
        let step = |adjustment_type, adjustment| Computation::Step {
            adjustment_type,
            adjustment,
            min_adjustment_magnitude: None,
        };
        assert_eq!(
            step(AdjustmentType::ChangeInCapacity, i64::MAX).capacity(5),
            u32::MAX
        );
        assert_eq!(
            step(AdjustmentType::ChangeInCapacity, i64::MIN).capacity(5),
            0
        );
        assert_eq!(step(AdjustmentType::ExactCapacity, -3).capacity(5), 0);
    }

    #[test]
    fn min_adjustment_magnitude_raises_small_percent_changes() {
        // AWS's example: 25 % of 4 tasks is 1, with a minimum magnitude of 2 it adds 2.
        assert_eq!(percent_change(4, 25, Some(2)), 2);
        assert_eq!(percent_change(4, -25, Some(2)), -2);
        assert_eq!(percent_change(40, 25, Some(2)), 10);
    }

    #[test]
    fn proportional_rounds_up_without_float_noise() {
        assert_eq!(Computation::Proportional { ratio: 1.0 }.capacity(3), 3);
        assert_eq!(
            Computation::Proportional {
                ratio: 150.0 / 75.0
            }
            .capacity(3),
            6
        );
        assert_eq!(Computation::Proportional { ratio: 1.01 }.capacity(3), 4);
        // From zero tasks a scale-out counts the base as one.
        assert_eq!(Computation::Proportional { ratio: 2.5 }.capacity(0), 3);
    }

    #[test]
    fn gradual_scale_in_removes_at_most_half() {
        assert_eq!(Computation::GradualIn { ratio: 0.0 }.capacity(10), 5);
        assert_eq!(Computation::GradualIn { ratio: 0.7 }.capacity(10), 7);
        assert_eq!(Computation::GradualIn { ratio: 0.0 }.capacity(1), 0);
    }
}
