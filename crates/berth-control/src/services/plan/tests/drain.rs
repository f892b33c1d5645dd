//! The planner with a DRAINING container instance: the service's tasks there are
//! replaced like tasks of an older deployment, within maximumPercent and
//! minimumHealthyPercent; PENDING ones stop at once; other tasks are left alone.

use super::*;
use crate::services::draining::INSTANCE_DRAINING_REASON;

/// A task of `web:2` on instance `on`.
fn task_on(id: &str, on: &str, status: TaskStatus) -> Task {
    Task {
        container_instance_arn: Some(arn::container_instance("default", on)),
        ..task(id, 2, status, 1.0)
    }
}

/// `desired` tasks wanted; `i-1` ACTIVE, `i-2` DRAINING; tasks `a`, `b` on i-1 and
/// `c`, `d` on i-2, all RUNNING; the deployment completed.
fn half_on_a_draining_instance(desired: i64) -> Fixture {
    let mut f = Fixture::new(desired);
    f.service.deployments[0].rollout_state = RolloutState::Completed;
    let mut draining = instance("i-2");
    draining.status = "DRAINING".into();
    f.instances = vec![instance("i-1"), draining];
    f.tasks = vec![
        task_on("a", "i-1", TaskStatus::Running),
        task_on("b", "i-1", TaskStatus::Running),
        task_on("c", "i-2", TaskStatus::Running),
        task_on("d", "i-2", TaskStatus::Running),
    ];
    f
}

fn placed_on(plan: &ServicePlan) -> Vec<&str> {
    plan.starts
        .iter()
        .filter_map(|t| t.container_instance_arn.as_deref())
        .map(arn::last_segment)
        .collect()
}

#[test]
fn replacements_start_elsewhere_first_then_the_drained_tasks_stop() {
    // 200 % / 100 %: room for 4 more, and all 4 healthy must stay until the
    // replacements count healthy.
    let mut f = half_on_a_draining_instance(4);
    let plan = f.plan();
    assert_eq!(
        placed_on(&plan),
        ["i-1", "i-1"],
        "never on the draining one"
    );
    assert!(plan.stops.is_empty(), "{:?}", plan.stops);
    let u = update(&plan);
    assert_eq!(
        (u.running_count, u.pending_count),
        (4, 0),
        "as the pass began"
    );
    assert_eq!(
        u.deployments[0].rollout_state,
        RolloutState::Completed,
        "draining is no deployment"
    );
    assert_eq!(u.deployments.len(), 1);

    // The replacements run: the drained tasks stop, for the draining.
    f.service = f.after(&plan);
    let mut started: Vec<Task> = plan.starts.clone();
    for t in &mut started {
        t.last_status = TaskStatus::Running;
        t.started_at = Some(NOW);
    }
    f.tasks.extend(started);
    let plan = f.plan();
    assert!(plan.starts.is_empty(), "{:?}", plan.starts);
    assert_eq!(stopped_ids(&plan), ["c", "d"]);
    assert!(plan
        .stops
        .iter()
        .all(|s| s.code == StopCode::ServiceSchedulerInitiated
            && s.reason == INSTANCE_DRAINING_REASON));
    assert_eq!(
        messages(&plan),
        ["(service web) has stopped 2 running tasks: (task c) (task d)."]
    );
    assert_eq!(update(&plan).deployments[0].running_count, 6);

    // Once they are gone the service is where it was, on the other instance.
    f.service = f.after(&plan);
    f.tasks.retain(|t| !["c", "d"].contains(&t.id()));
    let plan = f.plan();
    assert!(plan.starts.is_empty() && plan.stops.is_empty());
    assert_eq!(update(&plan).running_count, 4);
}

#[test]
fn a_pending_task_on_a_draining_instance_stops_at_once_and_is_replaced() {
    let mut f = Fixture::new(2);
    let mut draining = instance("i-2");
    draining.status = "DRAINING".into();
    f.instances = vec![instance("i-1"), draining];
    f.tasks = vec![
        task_on("a", "i-1", TaskStatus::Running),
        task_on("p", "i-2", TaskStatus::Pending),
    ];
    let plan = f.plan();
    assert_eq!(stopped_ids(&plan), ["p"]);
    assert_eq!(plan.stops[0].reason, INSTANCE_DRAINING_REASON);
    assert_eq!(
        placed_on(&plan),
        ["i-1"],
        "its replacement, in the same pass"
    );
}

#[test]
fn below_100_percent_minimum_healthy_drained_tasks_stop_before_replacements_start() {
    // 100 % / 50 %: no room for a replacement before a task stops; 2 of 4 may go.
    let mut f = half_on_a_draining_instance(4);
    f.service.deployment_configuration.maximum_percent = 100;
    f.service.deployment_configuration.minimum_healthy_percent = 50;
    let plan = f.plan();
    assert!(plan.starts.is_empty(), "{:?}", plan.starts);
    assert_eq!(stopped_ids(&plan), ["c", "d"]);

    f.service = f.after(&plan);
    f.tasks.retain(|t| !["c", "d"].contains(&t.id()));
    let plan = f.plan();
    assert_eq!(placed_on(&plan), ["i-1", "i-1"]);
}

#[test]
fn at_100_percent_both_ways_draining_waits() {
    // As ECS documents: with maximumPercent and minimumHealthyPercent both 100, no
    // replacement can start and no task can stop.
    let mut f = half_on_a_draining_instance(4);
    f.service.deployment_configuration.maximum_percent = 100;
    let plan = f.plan();
    assert!(plan.starts.is_empty() && plan.stops.is_empty());
}

#[test]
fn replacements_must_pass_the_load_balancer_checks_before_drained_tasks_stop() {
    let mut f = half_on_a_draining_instance(2).with_load_balancer();
    f.tasks = vec![
        task_on("c", "i-2", TaskStatus::Running),
        task_on("d", "i-2", TaskStatus::Running),
        task_on("n1", "i-1", TaskStatus::Running),
        task_on("n2", "i-1", TaskStatus::Running),
    ];
    f.targets = vec![
        target("c", TargetHealthState::Healthy),
        target("d", TargetHealthState::Healthy),
        target("n1", TargetHealthState::Healthy),
        target("n2", TargetHealthState::Initial),
    ];
    let plan = f.plan();
    assert_eq!(stopped_ids(&plan), ["c"], "3 healthy, 2 must stay");
    assert!(plan.starts.is_empty());
}

#[test]
fn tasks_outside_the_service_and_stopping_ones_are_left_alone() {
    let mut f = half_on_a_draining_instance(2);
    let mut standalone = task_on("solo", "i-2", TaskStatus::Running);
    standalone.group = "family:web".into();
    let mut leaving = task_on("leaving", "i-2", TaskStatus::Deactivating);
    leaving.desired_status = TaskStatus::Stopped;
    f.tasks = vec![
        task_on("a", "i-1", TaskStatus::Running),
        task_on("b", "i-1", TaskStatus::Running),
        standalone,
        leaving,
    ];
    let plan = f.plan();
    assert!(plan.stops.is_empty(), "{:?}", plan.stops);
    assert!(plan.starts.is_empty());
}

#[test]
fn a_scale_in_during_a_drain_stops_the_drained_tasks_and_keeps_the_others() {
    let mut f = half_on_a_draining_instance(2);
    let plan = f.plan();
    assert!(plan.starts.is_empty());
    assert_eq!(stopped_ids(&plan), ["c", "d"]);
    // ... and once they are gone, the service is steady again.
    f.service = f.after(&plan);
    f.service.deployments[0].rollout_state = RolloutState::InProgress;
    f.tasks.retain(|t| !["c", "d"].contains(&t.id()));
    let plan = f.plan();
    assert_eq!(
        messages(&plan),
        ["(service web) has reached a steady state."]
    );
}

#[test]
fn without_another_instance_the_drained_tasks_stay_and_an_event_says_why() {
    let mut f = half_on_a_draining_instance(2);
    f.instances.remove(0);
    f.tasks = vec![
        task_on("c", "i-2", TaskStatus::Running),
        task_on("d", "i-2", TaskStatus::Running),
    ];
    let plan = f.plan();
    assert!(plan.starts.is_empty() && plan.stops.is_empty());
    let events = messages(&plan);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].starts_with(
            "(service web) was unable to place a task because no container instance met all of its requirements."
        ),
        "{events:?}"
    );
}
