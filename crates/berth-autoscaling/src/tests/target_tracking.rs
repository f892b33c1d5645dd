//! Target tracking: proportional scale-out, gradual scale-in with a tolerance band,
//! both cooldowns, several policies, disableScaleIn, missing data, and no flapping under
//! a noisy load.

use super::*;
use crate::outcome::{Direction, Trigger};
use crate::target::ScaleOutRecord;

#[test]
fn scales_out_proportionally_with_aws_wording() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    // 3 tasks at 250 requests per target: ceil(3 × 250 ÷ 100) = 8.
    let metric = steady(0, 60, 250.0);
    let evaluation = run(&target(3, 1, 20), &[(&policy, &metric)], at(60));
    let change = evaluation.change.expect("a scale-out");
    assert_eq!(
        (change.from, change.to, change.direction),
        (3, 8, Direction::Out)
    );
    assert_eq!(change.description, "Setting desired count to 8.");
    assert_eq!(
        change.cause,
        "monitor alarm TargetTracking-service/default/web-AlarmHigh in state ALARM triggered \
         policy requests-100: ALBRequestCountPerTarget average 250 over the last 10 s is above the target 100"
    );
    assert_eq!(
        change.trigger,
        Trigger::Policy {
            name: "requests-100".into()
        }
    );
}

#[test]
fn scale_out_uses_the_average_of_the_scale_out_window_only() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    // A minute at 90, then the last 10 s at 150: the 10 s average is 150.
    let mut metric = steady(0, 50, 90.0);
    extend(&mut metric, 51, 60, 150.0);
    let evaluation = run(&target(4, 1, 20), &[(&policy, &metric)], at(60));
    assert_eq!(new_desired(&evaluation), Some(6));
    // One spike among ten samples averages 105: ceil(4 × 1.05) = 5, no more.
    let mut metric = steady(0, 59, 95.0);
    metric.push(at(60), 195.0);
    let evaluation = run(&target(4, 1, 20), &[(&policy, &metric)], at(60));
    assert_eq!(new_desired(&evaluation), Some(5));
}

#[test]
fn no_change_at_the_target_or_inside_the_tolerance_band() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    for value in [100.0, 95.0, 90.0] {
        let metric = steady(0, 120, value);
        let evaluation = run(&target(4, 1, 20), &[(&policy, &metric)], at(120));
        assert_eq!(evaluation.change, None, "metric {value}");
        assert_eq!(
            codes(&evaluation),
            vec![NotScaledCode::WithinTarget],
            "metric {value}"
        );
    }
}

#[test]
fn scales_in_only_when_the_whole_scale_in_window_is_below_the_band() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    // Below 0.9 × target for the whole minute: ceil(10 × 70 ÷ 100) = 7.
    let metric = steady(0, 120, 70.0);
    let evaluation = run(&target(10, 1, 20), &[(&policy, &metric)], at(120));
    let change = evaluation.change.expect("a scale-in");
    assert_eq!((change.to, change.direction), (7, Direction::In));
    assert!(change.cause.contains("AlarmLow"), "{}", change.cause);
    assert!(
        change
            .cause
            .contains("maximum 70 over the last 60 s is below 90"),
        "{}",
        change.cause
    );

    // One sample at 92 thirty seconds ago keeps the window's maximum in the band.
    let mut metric = steady(0, 120, 70.0);
    metric.push(at(90), 92.0);
    let evaluation = run(&target(10, 1, 20), &[(&policy, &metric)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::WithinTarget]);

    // Sixty-one seconds later that sample has left the window.
    extend(&mut metric, 121, 151, 70.0);
    let evaluation = run(&target(10, 1, 20), &[(&policy, &metric)], at(151));
    assert_eq!(new_desired(&evaluation), Some(7));
}

#[test]
fn scale_in_removes_at_most_half_the_tasks_at_once() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    let metric = steady(0, 120, 0.0);
    let evaluation = run(&target(10, 0, 20), &[(&policy, &metric)], at(120));
    assert_eq!(new_desired(&evaluation), Some(5));
    // With min 0 and a real zero, one task goes to zero.
    let evaluation = run(&target(1, 0, 20), &[(&policy, &metric)], at(120));
    assert_eq!(new_desired(&evaluation), Some(0));
}

#[test]
fn a_scale_out_in_the_scale_out_cooldown_counts_the_capacity_already_added() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    let mut state = target(4, 1, 20);
    // 2 → 4 thirty seconds ago; the metric still describes 2 tasks.
    state.activity.last_scale_out = Some(ScaleOutRecord {
        at: at(30),
        from: 2,
        to: 4,
    });

    // 150 per target on 2 tasks asks for 3, fewer than the 4 in flight: nothing.
    let metric = steady(0, 60, 150.0);
    let evaluation = run(&state, &[(&policy, &metric)], at(60));
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::ScaleOutCooldown]);

    // 250 asks for ceil(2 × 2.5) = 5, more than 4: a larger scale-out acts, adding 1.
    let metric = steady(0, 60, 250.0);
    let evaluation = run(&state, &[(&policy, &metric)], at(60));
    assert_eq!(new_desired(&evaluation), Some(5));

    // After the cooldown (300 s) the metric is read against the 4 tasks: ceil(4 × 1.5).
    let metric = steady(300, 331, 150.0);
    let evaluation = run(&state, &[(&policy, &metric)], at(331));
    assert_eq!(new_desired(&evaluation), Some(6));
}

#[test]
fn the_scale_in_cooldown_blocks_scale_in_but_not_scale_out_which_ends_it() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    let mut state = target(6, 1, 20);
    state.activity.last_scale_in = Some(at(0));

    let low = steady(0, 120, 50.0);
    let evaluation = run(&state, &[(&policy, &low)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::ScaleInCooldown]);

    // A scale-out during the scale-in cooldown acts at once.
    let high = steady(0, 120, 200.0);
    let evaluation = run(&state, &[(&policy, &high)], at(120));
    let change = evaluation.change.expect("a scale-out");
    assert_eq!(change.to, 12);

    // ... and ends the scale-in cooldown: once recorded, scale-in may follow while the
    // 300 s since the last scale-in have not passed.
    state.activity.record(&change, at(120));
    state.desired = 12;
    let low = steady(130, 250, 40.0);
    let evaluation = run(&state, &[(&policy, &low)], at(250));
    assert_eq!(new_desired(&evaluation), Some(6));

    // Without the scale-out, the cooldown ends after 300 s.
    let mut state = target(6, 1, 20);
    state.activity.last_scale_in = Some(at(0));
    let low = steady(200, 300, 50.0);
    assert_eq!(run(&state, &[(&policy, &low)], at(299)).change, None);
    assert_eq!(
        new_desired(&run(&state, &[(&policy, &low)], at(300))),
        Some(3)
    );
}

#[test]
fn any_policy_may_scale_out_and_the_largest_capacity_wins() {
    let cpu = Policy::TargetTracking(TargetTrackingRule::new(
        "cpu-50",
        "ECSServiceAverageCPUUtilization",
        50.0,
    ));
    let requests = Policy::TargetTracking(tracking("requests-100", 100.0));
    let cpu_metric = steady(0, 120, 80.0); // asks for ceil(2 × 1.6) = 4
    let request_metric = steady(0, 120, 300.0); // asks for 6
    let evaluation = run(
        &target(2, 1, 20),
        &[(&cpu, &cpu_metric), (&requests, &request_metric)],
        at(120),
    );
    let change = evaluation.change.expect("a scale-out");
    assert_eq!(change.to, 6);
    assert_eq!(
        change.trigger,
        Trigger::Policy {
            name: "requests-100".into()
        }
    );

    // One policy at its target, the other above it: the other scales out alone.
    let calm = steady(0, 120, 95.0);
    let evaluation = run(
        &target(2, 1, 20),
        &[(&requests, &calm), (&cpu, &cpu_metric)],
        at(120),
    );
    assert_eq!(new_desired(&evaluation), Some(4));
}

#[test]
fn all_policies_with_scale_in_enabled_must_agree_to_scale_in() {
    let cpu = Policy::TargetTracking(TargetTrackingRule::new(
        "cpu-50",
        "ECSServiceAverageCPUUtilization",
        50.0,
    ));
    let requests = Policy::TargetTracking(tracking("requests-100", 100.0));
    let cpu_low = steady(0, 120, 10.0);
    let requests_in_band = steady(0, 120, 95.0);
    let evaluation = run(
        &target(8, 1, 20),
        &[(&cpu, &cpu_low), (&requests, &requests_in_band)],
        at(120),
    );
    assert_eq!(evaluation.change, None);
    let reason = evaluation
        .not_scaled
        .iter()
        .find(|reason| reason.source.as_deref() == Some("cpu-50"))
        .unwrap();
    assert_eq!(reason.code, NotScaledCode::ScaleInNotAgreed);
    assert!(reason.detail.contains("requests-100"), "{}", reason.detail);

    // Both low: the largest of the proposals (the most conservative) wins.
    let requests_low = steady(0, 120, 60.0); // ceil(8 × 0.6) = 5; cpu asks for max(2, 4) = 4
    let evaluation = run(
        &target(8, 1, 20),
        &[(&cpu, &cpu_low), (&requests, &requests_low)],
        at(120),
    );
    assert_eq!(new_desired(&evaluation), Some(5));
}

#[test]
fn disable_scale_in_never_scales_in_and_does_not_hold_others_back() {
    let mut rule = tracking("requests-100", 100.0);
    rule.disable_scale_in = true;
    let no_scale_in = Policy::TargetTracking(rule);
    let low = steady(0, 120, 10.0);
    let evaluation = run(&target(8, 1, 20), &[(&no_scale_in, &low)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::ScaleInDisabled]);

    // Inside the band it is simply within its target.
    let in_band = steady(0, 120, 95.0);
    let evaluation = run(&target(8, 1, 20), &[(&no_scale_in, &in_band)], at(120));
    assert_eq!(codes(&evaluation), vec![NotScaledCode::WithinTarget]);

    // It still scales out.
    let high = steady(0, 120, 200.0);
    assert_eq!(
        new_desired(&run(&target(8, 1, 20), &[(&no_scale_in, &high)], at(120))),
        Some(16)
    );

    // Beside a policy that wants to scale in, it does not object even inside its band.
    let cpu = Policy::TargetTracking(TargetTrackingRule::new(
        "cpu-50",
        "ECSServiceAverageCPUUtilization",
        50.0,
    ));
    let in_band = steady(0, 120, 95.0);
    let cpu_low = steady(0, 120, 20.0);
    let evaluation = run(
        &target(8, 1, 20),
        &[(&no_scale_in, &in_band), (&cpu, &cpu_low)],
        at(120),
    );
    assert_eq!(new_desired(&evaluation), Some(4));
}

#[test]
fn missing_data_never_scales_in_nor_out() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    // Nothing at all.
    let evaluation = run(
        &target(5, 1, 20),
        &[(&policy, &MetricSeries::new())],
        at(120),
    );
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::MissingData]);
    // Two high samples in the scale-out window (3 needed).
    let high = steady(119, 120, 500.0);
    let evaluation = run(&target(5, 1, 20), &[(&policy, &high)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::MissingData]);
    // Low, but five samples in the scale-in window (6 needed).
    let low = steady(116, 120, 10.0);
    let evaluation = run(&target(5, 1, 20), &[(&policy, &low)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(codes(&evaluation), vec![NotScaledCode::MissingData]);
    // A policy without data holds the others back from scaling in.
    let cpu = Policy::TargetTracking(TargetTrackingRule::new(
        "cpu-50",
        "ECSServiceAverageCPUUtilization",
        50.0,
    ));
    let cpu_low = steady(0, 120, 5.0);
    let evaluation = run(
        &target(5, 1, 20),
        &[(&policy, &MetricSeries::new()), (&cpu, &cpu_low)],
        at(120),
    );
    assert_eq!(evaluation.change, None);
}

#[test]
fn scale_out_stops_at_max_and_scale_in_at_min() {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    let high = steady(0, 120, 400.0);
    assert_eq!(
        new_desired(&run(&target(8, 1, 10), &[(&policy, &high)], at(120))),
        Some(10)
    );
    let evaluation = run(&target(10, 1, 10), &[(&policy, &high)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(
        codes(&evaluation),
        vec![NotScaledCode::AlreadyAtMaxCapacity]
    );

    let low = steady(0, 120, 10.0);
    assert_eq!(
        new_desired(&run(&target(8, 6, 10), &[(&policy, &low)], at(120))),
        Some(6)
    );
    let evaluation = run(&target(6, 6, 10), &[(&policy, &low)], at(120));
    assert_eq!(evaluation.change, None);
    assert_eq!(
        codes(&evaluation),
        vec![NotScaledCode::AlreadyAtMinCapacity]
    );
}

/// A deterministic noise source: uniform in [-1, 1].
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// A closed loop: a load split over the tasks, sampled every second with ±20 % noise,
/// evaluated every second with berth's defaults, each change applied and recorded at
/// once (the new tasks take 5 s to share the load). Returns the changes as (second,
/// from, to).
fn simulate(load: impl Fn(i64) -> f64, start: u32, seconds: i64) -> Vec<(i64, u32, u32)> {
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    let mut state = target(start, 1, 50);
    let mut serving = start;
    let mut metric = MetricSeries::new();
    let mut noise = Noise(7);
    let mut changes = Vec::new();
    for second in 0..seconds {
        if changes
            .last()
            .is_some_and(|&(when, _, _)| second == when + 5)
        {
            serving = state.desired;
        }
        let per_task = load(second) / serving.max(1) as f64;
        metric.push(at(second), per_task * (1.0 + 0.2 * noise.next()));
        let evaluation = run(&state, &[(&policy, &metric)], at(second));
        if let Some(change) = evaluation.change {
            state.activity.record(&change, at(second));
            state.desired = change.to;
            changes.push((second, change.from, change.to));
        }
    }
    changes
}

#[test]
fn a_noisy_steady_load_does_not_flap() {
    // 350 requests per minute over tasks targeting 100: 2 tasks are overloaded, 4 sit at
    // 87.5 ± 20 %, inside the band (below the target on average, above 90 now and then).
    let changes = simulate(|_| 350.0, 2, 1800);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].1, changes[0].2), (2, 4));
    assert!(changes[0].0 <= 5, "scaled out after {} s", changes[0].0);
}

#[test]
fn after_the_load_drops_it_scales_in_once_the_window_is_clear_and_settles() {
    // 350 for ten minutes, then 100: 4 tasks at 25 ± 20 % scale in to 2 (at most half)
    // once the last sample of the old load (at 599 s) has left the minute-long window,
    // that is at 659 s; then they hold (2 tasks sit at 50, and ceil(2 × 0.6) = 2).
    let changes = simulate(|second| if second < 600 { 350.0 } else { 100.0 }, 4, 1800);
    assert_eq!(changes, vec![(659, 4, 2)]);
}

#[test]
fn the_evaluation_reports_each_policys_metric_beside_its_target() {
    let requests = Policy::TargetTracking(tracking("requests-100", 100.0));
    let cpu = Policy::TargetTracking(TargetTrackingRule::new(
        "cpu-50",
        "ECSServiceAverageCPUUtilization",
        50.0,
    ));
    let metric = steady(0, 120, 120.0);
    let evaluation = run(
        &target(2, 1, 20),
        &[(&requests, &metric), (&cpu, &MetricSeries::new())],
        at(120),
    );
    let observed: Vec<(&str, Option<f64>, f64)> = evaluation
        .observations
        .iter()
        .map(|observation| {
            (
                observation.policy.as_str(),
                observation.value,
                observation.target,
            )
        })
        .collect();
    assert_eq!(
        observed,
        vec![("requests-100", Some(120.0), 100.0), ("cpu-50", None, 50.0)]
    );
}

#[test]
fn invalid_target_tracking_rules_are_refused_naming_the_field() {
    let mut rule = tracking("requests", 0.0);
    assert_eq!(
        rule.validate().unwrap_err().to_string(),
        "targetValue: must be a number above 0, got 0"
    );
    rule.target_value = 100.0;
    rule.scale_in_tolerance = 1.0;
    assert_eq!(
        rule.validate().unwrap_err().to_string(),
        "scaleInTolerance: must be at least 0 and below 1, got 1"
    );
    rule.scale_in_tolerance = 0.1;
    rule.scale_out_window.length = secs(0);
    assert_eq!(
        rule.validate().unwrap_err().to_string(),
        "scaleOutWindow.length: must be a duration above 0, got 0"
    );
    rule.scale_out_window.length = secs(10);
    assert_eq!(rule.validate(), Ok(()));
}
