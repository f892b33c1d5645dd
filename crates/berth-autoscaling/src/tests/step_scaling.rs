//! Step scaling: step bounds relative to the threshold, the three adjustment types,
//! percentages with a minimum magnitude, aggregation, cooldown and validation.

use super::*;
use crate::error::RuleError;
use crate::outcome::Direction;
use crate::step::{
    AdjustmentType, Comparison, StepAdjustment, StepRule, DEFAULT_STEP_COOLDOWN,
    DEFAULT_STEP_WINDOW,
};
use crate::target::ScaleOutRecord;
use crate::window::Statistic;

fn step(lower: Option<f64>, upper: Option<f64>, adjustment: i64) -> StepAdjustment {
    StepAdjustment {
        lower_bound: lower,
        upper_bound: upper,
        scaling_adjustment: adjustment,
    }
}

/// Scale out on CPU above 70: +1 up to 80, +2 up to 90, +3 beyond.
fn scale_out_rule() -> StepRule {
    StepRule {
        policy_name: "cpu-high".into(),
        metric_name: "ECSServiceAverageCPUUtilization".into(),
        threshold: 70.0,
        comparison: Comparison::GreaterThanOrEqualToThreshold,
        aggregation: Statistic::Average,
        window: DEFAULT_STEP_WINDOW,
        adjustment_type: AdjustmentType::ChangeInCapacity,
        steps: vec![
            step(Some(0.0), Some(10.0), 1),
            step(Some(10.0), Some(20.0), 2),
            step(Some(20.0), None, 3),
        ],
        min_adjustment_magnitude: None,
        cooldown: DEFAULT_STEP_COOLDOWN,
    }
}

/// Scale in on CPU below 30: -1 down to 20, -2 below.
fn scale_in_rule() -> StepRule {
    StepRule {
        policy_name: "cpu-low".into(),
        comparison: Comparison::LessThanThreshold,
        threshold: 30.0,
        steps: vec![
            step(Some(-10.0), Some(0.0), -1),
            step(None, Some(-10.0), -2),
        ],
        ..scale_out_rule()
    }
}

fn decide(rule: &StepRule, desired: u32, value: f64) -> Evaluation {
    rule.validate().unwrap();
    let policy = Policy::Step(rule.clone());
    let metric = steady(0, 60, value);
    run(&target(desired, 0, 50), &[(&policy, &metric)], at(60))
}

#[test]
fn the_step_is_chosen_by_the_distance_from_the_threshold() {
    let rule = scale_out_rule();
    // Above the threshold a step includes its lower bound and excludes its upper one.
    assert_eq!(new_desired(&decide(&rule, 4, 70.0)), Some(5));
    assert_eq!(new_desired(&decide(&rule, 4, 79.9)), Some(5));
    assert_eq!(new_desired(&decide(&rule, 4, 80.0)), Some(6));
    assert_eq!(new_desired(&decide(&rule, 4, 95.0)), Some(7));
    let evaluation = decide(&rule, 4, 69.0);
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::WithinTarget]);

    let change = decide(&rule, 4, 95.0).change.unwrap();
    assert_eq!(
        change.cause,
        "monitor alarm cpu-high-Alarm in state ALARM triggered policy cpu-high: \
         ECSServiceAverageCPUUtilization average 95 over the last 10 s breaches the alarm (>= 70)"
    );
}

#[test]
fn below_the_threshold_a_step_excludes_its_lower_bound_and_includes_its_upper_one() {
    let rule = scale_in_rule();
    assert_eq!(new_desired(&decide(&rule, 6, 25.0)), Some(5));
    assert_eq!(new_desired(&decide(&rule, 6, 20.0)), Some(4)); // -10 is in the second step
    assert_eq!(new_desired(&decide(&rule, 6, 5.0)), Some(4));
    let change = decide(&rule, 6, 5.0).change.unwrap();
    assert_eq!(change.direction, Direction::In);
}

#[test]
fn a_metric_in_a_gap_between_steps_changes_nothing() {
    let rule = StepRule {
        steps: vec![step(Some(0.0), Some(10.0), 1), step(Some(20.0), None, 3)],
        ..scale_out_rule()
    };
    let evaluation = decide(&rule, 4, 85.0);
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::NoStepForMetric]);
}

#[test]
fn percent_adjustments_round_toward_zero_and_honour_the_minimum_magnitude() {
    let percent = |adjustment: i64, magnitude: Option<u32>| StepRule {
        adjustment_type: AdjustmentType::PercentChangeInCapacity,
        steps: vec![step(Some(0.0), None, adjustment)],
        min_adjustment_magnitude: magnitude,
        ..scale_out_rule()
    };
    // AWS's example: +25 % of 4 tasks is 1; with minAdjustmentMagnitude 2 it adds 2.
    assert_eq!(new_desired(&decide(&percent(25, None), 4, 90.0)), Some(5));
    assert_eq!(
        new_desired(&decide(&percent(25, Some(2)), 4, 90.0)),
        Some(6)
    );
    // +50 % of 5 is 2.5, rounded toward zero: 7.
    assert_eq!(new_desired(&decide(&percent(50, None), 5, 90.0)), Some(7));
    // +10 % of 2 is 0.2, which becomes 1.
    assert_eq!(new_desired(&decide(&percent(10, None), 2, 90.0)), Some(3));

    let percent_in = |adjustment: i64, magnitude: Option<u32>| StepRule {
        adjustment_type: AdjustmentType::PercentChangeInCapacity,
        steps: vec![step(None, Some(0.0), adjustment)],
        min_adjustment_magnitude: magnitude,
        ..scale_in_rule()
    };
    // -33 % of 10 is -3.3: -3.
    assert_eq!(
        new_desired(&decide(&percent_in(-33, None), 10, 10.0)),
        Some(7)
    );
    // -10 % of 10 is -1; with a minimum magnitude of 3, -3.
    assert_eq!(
        new_desired(&decide(&percent_in(-10, Some(3)), 10, 10.0)),
        Some(7)
    );
}

#[test]
fn exact_capacity_sets_the_count() {
    let rule = StepRule {
        adjustment_type: AdjustmentType::ExactCapacity,
        steps: vec![step(Some(0.0), None, 12)],
        ..scale_out_rule()
    };
    assert_eq!(new_desired(&decide(&rule, 4, 90.0)), Some(12));
    let evaluation = decide(&rule, 12, 90.0);
    assert_eq!(evaluation.change, None);
    assert_eq!(
        codes(&evaluation),
        vec![NotScaledCode::AlreadyAtDesiredCapacity]
    );
}

#[test]
fn the_aggregation_type_decides_the_alarm() {
    // Samples 60 … 80 … 60 in the window: average below 70, maximum above it.
    let mut metric = steady(0, 55, 60.0);
    extend(&mut metric, 56, 58, 80.0);
    extend(&mut metric, 59, 60, 60.0);
    let average = Policy::Step(scale_out_rule());
    assert_eq!(
        run(&target(4, 0, 50), &[(&average, &metric)], at(60)).change,
        None
    );
    let maximum = Policy::Step(StepRule {
        aggregation: Statistic::Maximum,
        ..scale_out_rule()
    });
    assert_eq!(
        new_desired(&run(&target(4, 0, 50), &[(&maximum, &metric)], at(60))),
        Some(6)
    );
}

#[test]
fn in_the_cooldown_only_a_larger_scale_out_acts_and_the_added_capacity_counts() {
    // AWS's example: +2 (4 → 6) starts the cooldown; the alarm then asks for +3, and
    // since the +2 counts as part of the capacity, only 1 is added.
    let policy = Policy::Step(scale_out_rule());
    let mut state = target(6, 0, 50);
    state.activity.last_scale_out = Some(ScaleOutRecord {
        at: at(0),
        from: 4,
        to: 6,
    });
    let plus_three = steady(0, 60, 95.0);
    assert_eq!(
        new_desired(&run(&state, &[(&policy, &plus_three)], at(60))),
        Some(7)
    );
    let plus_two = steady(0, 60, 85.0);
    let evaluation = run(&state, &[(&policy, &plus_two)], at(60));
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::ScaleOutCooldown]);
    // After the cooldown, +2 on the 6 tasks.
    let plus_two = steady(300, 360, 85.0);
    assert_eq!(
        new_desired(&run(&state, &[(&policy, &plus_two)], at(360))),
        Some(8)
    );
}

#[test]
fn the_cooldown_blocks_a_second_scale_in() {
    let policy = Policy::Step(scale_in_rule());
    let mut state = target(6, 0, 50);
    state.activity.last_scale_in = Some(at(0));
    let low = steady(0, 60, 25.0);
    let evaluation = run(&state, &[(&policy, &low)], at(60));
    assert_eq!(codes(&evaluation), vec![NotScaledCode::ScaleInCooldown]);
    let low = steady(240, 300, 25.0);
    assert_eq!(
        new_desired(&run(&state, &[(&policy, &low)], at(300))),
        Some(5)
    );
}

#[test]
fn a_step_scale_in_waits_for_target_tracking_policies_to_agree() {
    let step_in = Policy::Step(scale_in_rule());
    let tracking = Policy::TargetTracking(tracking("requests-100", 100.0));
    let cpu_low = steady(0, 120, 25.0);
    let requests_in_band = steady(0, 120, 95.0);
    let evaluation = run(
        &target(6, 0, 50),
        &[(&step_in, &cpu_low), (&tracking, &requests_in_band)],
        at(120),
    );
    assert_eq!(evaluation.change, None);
    // A step policy whose alarm is quiet does not hold a target tracking scale-in back.
    let step_out = Policy::Step(scale_out_rule());
    let requests_low = steady(0, 120, 50.0);
    let evaluation = run(
        &target(6, 0, 50),
        &[(&step_out, &cpu_low), (&tracking, &requests_low)],
        at(120),
    );
    assert_eq!(new_desired(&evaluation), Some(3));
}

#[test]
fn invalid_step_rules_are_refused_naming_the_field() {
    let overlapping = StepRule {
        steps: vec![step(Some(0.0), Some(15.0), 1), step(Some(10.0), None, 2)],
        ..scale_out_rule()
    };
    let error = overlapping.validate().unwrap_err();
    assert_eq!(
        error,
        RuleError::StepsOverlap {
            first: 0,
            second: 1
        }
    );
    assert_eq!(
        error.to_string(),
        "stepAdjustments[1]: its interval overlaps stepAdjustments[0]"
    );

    let inverted = StepRule {
        steps: vec![step(Some(10.0), Some(5.0), 1)],
        ..scale_out_rule()
    };
    assert!(matches!(
        inverted.validate(),
        Err(RuleError::StepBoundsInverted { index: 0, .. })
    ));

    let magnitude = StepRule {
        min_adjustment_magnitude: Some(2),
        ..scale_out_rule()
    };
    assert_eq!(
        magnitude.validate().unwrap_err().to_string(),
        "minAdjustmentMagnitude: only allowed with adjustmentType PercentChangeInCapacity, got ChangeInCapacity"
    );

    let negative_exact = StepRule {
        adjustment_type: AdjustmentType::ExactCapacity,
        steps: vec![step(Some(0.0), None, -1)],
        ..scale_out_rule()
    };
    assert_eq!(
        negative_exact.validate().unwrap_err().to_string(),
        "stepAdjustments[0].scalingAdjustment: must be 0 or more with adjustmentType ExactCapacity, got -1"
    );

    let empty = StepRule {
        steps: vec![],
        ..scale_out_rule()
    };
    assert_eq!(empty.validate(), Err(RuleError::NoSteps));

    let no_window = StepRule {
        window: crate::window::Window::new(secs(10), 0),
        ..scale_out_rule()
    };
    assert_eq!(
        no_window.validate().unwrap_err().to_string(),
        "window.minSamples: must be 1 or more, got 0"
    );
}
