//! The target's own rules: bounds, suspension flags, deployments, and the bookkeeping of
//! recent activity.

use super::*;
use crate::error::RuleError;
use crate::outcome::{Direction, Trigger};

fn requests_policy() -> Policy {
    Policy::TargetTracking(tracking("requests-100", 100.0))
}

#[test]
fn a_desired_count_outside_the_bounds_is_clamped_first() {
    let policy = requests_policy();
    let metric = steady(0, 120, 95.0);
    let evaluation = run(&target(25, 2, 10), &[(&policy, &metric)], at(120));
    let change = evaluation.change.unwrap();
    assert_eq!(
        (change.from, change.to, change.trigger),
        (25, 10, Trigger::Bounds)
    );
    assert_eq!(change.description, "Setting desired count to 10.");
    assert_eq!(
        change.cause,
        "the desired count 25 is outside minCapacity 2 and maxCapacity 10"
    );
    let evaluation = run(&target(0, 2, 10), &[(&policy, &metric)], at(120));
    assert_eq!(new_desired(&evaluation), Some(2));
}

#[test]
fn min_above_max_is_refused() {
    assert_eq!(
        CapacityBounds::new(5, 3),
        Err(RuleError::MinAboveMax { min: 5, max: 3 })
    );
    assert_eq!(
        CapacityBounds::new(5, 3).unwrap_err().to_string(),
        "minCapacity: must not exceed maxCapacity (3), got 5"
    );
}

#[test]
fn suspended_dynamic_scale_out_and_scale_in() {
    let policy = requests_policy();
    let high = steady(0, 120, 300.0);
    let low = steady(0, 120, 10.0);

    let mut state = target(4, 1, 20);
    state.suspended.dynamic_scaling_out_suspended = true;
    let evaluation = run(&state, &[(&policy, &high)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(
        codes(&evaluation),
        vec![NotScaledCode::DynamicScalingOutSuspended]
    );
    // Scale-in is not affected.
    assert_eq!(
        new_desired(&run(&state, &[(&policy, &low)], at(120))),
        Some(2)
    );

    let mut state = target(4, 1, 20);
    state.suspended.dynamic_scaling_in_suspended = true;
    let evaluation = run(&state, &[(&policy, &low)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(
        codes(&evaluation),
        vec![NotScaledCode::DynamicScalingInSuspended]
    );
    assert_eq!(
        new_desired(&run(&state, &[(&policy, &high)], at(120))),
        Some(12)
    );
}

#[test]
fn no_scale_in_during_a_deployment_but_scale_out_goes_on() {
    let policy = requests_policy();
    let mut state = target(6, 1, 20);
    state.deployment_in_progress = true;
    let low = steady(0, 120, 10.0);
    let evaluation = run(&state, &[(&policy, &low)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(
        codes(&evaluation),
        vec![NotScaledCode::DeploymentInProgress]
    );
    let high = steady(0, 120, 150.0);
    assert_eq!(
        new_desired(&run(&state, &[(&policy, &high)], at(120))),
        Some(9)
    );
}

#[test]
fn only_policy_changes_are_recorded_as_activity() {
    let policy = requests_policy();
    let mut state = target(4, 1, 20);
    let high = steady(0, 120, 150.0);
    let change = run(&state, &[(&policy, &high)], at(120)).change.unwrap();
    state.activity.record(&change, at(120));
    let record = state.activity.last_scale_out.unwrap();
    assert_eq!((record.at, record.from, record.to), (at(120), 4, 6));

    // A clamp into the bounds starts no cooldown.
    let mut state = target(30, 1, 20);
    let change = run(&state, &[(&policy, &high)], at(120)).change.unwrap();
    assert_eq!(change.direction, Direction::In);
    state.activity.record(&change, at(120));
    assert_eq!(state.activity, RecentActivity::default());
}
