//! Engine tests with synthetic metric series: instants are seconds from a fixed epoch,
//! series are built sample by sample, and each test evaluates at chosen instants.

mod schedules;
mod step_scaling;
mod target_rules;
mod target_tracking;

use std::time::Duration;

use jiff::Timestamp;

use crate::decision::{evaluate, Evaluation, EvaluationInput, Policy, PolicyInput};
use crate::outcome::NotScaledCode;
use crate::scheduled::ScheduledAction;
use crate::target::{CapacityBounds, RecentActivity, SuspendedState, TargetState};
use crate::target_tracking::TargetTrackingRule;
use crate::window::MetricSeries;

/// 2026-01-05T00:00:00Z (a Monday) plus `second`.
fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_767_571_200 + second).unwrap()
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// One sample a second with `value` over `[from, to]`.
fn steady(from: i64, to: i64, value: f64) -> MetricSeries {
    let mut series = MetricSeries::new();
    extend(&mut series, from, to, value);
    series
}

fn extend(series: &mut MetricSeries, from: i64, to: i64, value: f64) {
    for second in from..=to {
        series.push(at(second), value);
    }
}

fn target(desired: u32, min: u32, max: u32) -> TargetState {
    TargetState {
        resource_id: "service/default/web".into(),
        bounds: CapacityBounds::new(min, max).unwrap(),
        suspended: SuspendedState::default(),
        desired,
        deployment_in_progress: false,
        activity: RecentActivity::default(),
    }
}

/// A target tracking policy with berth's defaults.
fn tracking(name: &str, target_value: f64) -> TargetTrackingRule {
    TargetTrackingRule::new(name, "ALBRequestCountPerTarget", target_value)
}

fn run(target: &TargetState, policies: &[(&Policy, &MetricSeries)], now: Timestamp) -> Evaluation {
    run_with_actions(target, policies, &[], now, now)
}

fn run_with_actions(
    target: &TargetState,
    policies: &[(&Policy, &MetricSeries)],
    actions: &[ScheduledAction],
    since: Timestamp,
    now: Timestamp,
) -> Evaluation {
    let inputs: Vec<PolicyInput<'_>> = policies
        .iter()
        .map(|(policy, metric)| PolicyInput { policy, metric })
        .collect();
    evaluate(&EvaluationInput {
        target,
        policies: &inputs,
        scheduled_actions: actions,
        scheduled_since: since,
        now,
    })
}

/// The new desired count, if the evaluation changed it.
fn new_desired(evaluation: &Evaluation) -> Option<u32> {
    evaluation.change.as_ref().map(|change| change.to)
}

fn codes(evaluation: &Evaluation) -> Vec<NotScaledCode> {
    evaluation
        .not_scaled
        .iter()
        .map(|reason| reason.code)
        .collect()
}
