//! The planner after a forced new deployment: a new PRIMARY deployment of the same task
//! definition, whose tasks are told apart by `startedBy`. Every older task is replaced
//! within maximumPercent and minimumHealthyPercent, and the circuit breaker fails (and
//! rolls back) a forced deployment as any other.

use super::*;
use crate::services::deployments::force_new;

/// `web` on `web:2`, `desired` RUNNING tasks of the completed deployment `ecs-svc/rev2`,
/// then a forced deployment `ecs-svc/forced` of the same definition.
fn forced(desired: i64) -> Fixture {
    let mut f = Fixture::new(desired);
    f.service.deployments[0].rollout_state = RolloutState::Completed;
    f.tasks = (0..desired)
        .map(|i| {
            task(
                &format!("old{i}"),
                2,
                TaskStatus::Running,
                f64::from(i as u32),
            )
        })
        .collect();
    f.service.deployments = force_new(
        &f.service.deployments,
        "ecs-svc/forced",
        &arn::task_definition("web", 2),
        desired as u32,
        NOW,
    );
    f
}

/// The tasks after `plan`: stops are STOPPED at once, starts RUNNING under fresh ids.
fn apply(f: &mut Fixture, plan: &ServicePlan, next_id: &mut u32) {
    for s in &plan.stops {
        let t = f
            .tasks
            .iter_mut()
            .find(|t| t.task_arn == s.task_arn)
            .unwrap();
        t.desired_status = TaskStatus::Stopped;
        t.last_status = TaskStatus::Stopped;
    }
    for t in &plan.starts {
        *next_id += 1;
        let mut t = t.clone();
        t.task_arn = arn::task("default", &format!("new{next_id}"));
        t.last_status = TaskStatus::Running;
        t.started_at = Some(NOW);
        f.tasks.push(t);
    }
    f.service = f.after(plan);
}

fn alive(f: &Fixture) -> Vec<&Task> {
    f.tasks
        .iter()
        .filter(|t| t.last_status != TaskStatus::Stopped)
        .collect()
}

#[test]
fn a_forced_deployment_replaces_every_task_one_by_one_within_the_percentages() {
    // desiredCount 4 at 125 % / 75 %: at most 5 tasks, at least 3 healthy, so one
    // task is started and one stopped per pass.
    let mut f = forced(4);
    f.service.deployment_configuration.maximum_percent = 125;
    f.service.deployment_configuration.minimum_healthy_percent = 75;
    let old: Vec<String> = f.tasks.iter().map(|t| t.task_arn.clone()).collect();
    let mut next_id = 0;
    let mut all_messages = Vec::new();
    let mut passes = 0;
    loop {
        passes += 1;
        assert!(passes < 20, "no steady state after 20 passes");
        let plan = f.plan();
        assert!(plan.starts.len() <= 1, "one at a time: {:?}", plan.starts);
        assert!(plan.stops.len() <= 1, "one at a time: {:?}", plan.stops);
        for s in &plan.stops {
            assert!(old.contains(&s.task_arn), "only old tasks stop: {s:?}");
            assert_eq!(
                s.reason,
                "Scaling activity initiated by (deployment ecs-svc/forced)"
            );
        }
        for t in &plan.starts {
            assert_eq!(t.started_by.as_deref(), Some("ecs-svc/forced"));
            assert_eq!(t.task_definition_arn, arn::task_definition("web", 2));
        }
        all_messages.extend(messages(&plan).iter().map(|m| m.to_string()));
        apply(&mut f, &plan, &mut next_id);
        let alive = alive(&f);
        assert!(alive.len() <= 5, "maximumPercent: {} alive", alive.len());
        assert!(
            alive.iter().filter(|t| is_active(t)).count() >= 3,
            "minimumHealthyPercent"
        );
        if f.service.deployments[0].rollout_state == RolloutState::Completed {
            break;
        }
    }
    let alive = alive(&f);
    assert_eq!(alive.len(), 4);
    assert!(alive
        .iter()
        .all(|t| !old.contains(&t.task_arn) && t.started_by.as_deref() == Some("ecs-svc/forced")));
    assert_eq!(next_id, 4, "one start per replaced task");
    let d = &f.service.deployments;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].id, "ecs-svc/forced");
    assert_eq!(d[0].status, DeploymentStatus::Primary);
    assert_eq!(d[0].rollout_state_reason, "ECS deployment completed.");
    assert_eq!((d[0].running_count, d[0].desired_count), (4, 4));
    assert!(
        all_messages
            .iter()
            .any(|m| m.starts_with("(service web) has started 1 tasks: (task ")),
        "{all_messages:?}"
    );
    assert_eq!(
        all_messages.last().map(String::as_str),
        Some("(service web) has reached a steady state.")
    );
}

#[test]
fn while_a_forced_deployment_runs_the_old_deployment_is_active_with_its_tasks() {
    let f = forced(2);
    let plan = f.plan();
    assert_eq!(plan.starts.len(), 2, "room for 2 more within 200 %");
    assert!(plan.stops.is_empty(), "100 % must stay healthy");
    let u = update(&plan);
    assert_eq!(u.deployments.len(), 2, "{:?}", u.deployments);
    assert_eq!(u.deployments[0].id, "ecs-svc/forced");
    assert_eq!(u.deployments[0].rollout_state, RolloutState::InProgress);
    assert_eq!(u.deployments[1].id, "ecs-svc/rev2");
    assert_eq!(u.deployments[1].status, DeploymentStatus::Active);
    assert_eq!(u.deployments[1].running_count, 2);
    assert_eq!(u.deployments[1].rollout_state, RolloutState::Completed);
}

#[test]
fn the_breaker_fails_a_forced_deployment_and_rolls_back_to_the_same_definition() {
    let mut f = forced(2).with_breaker(true);
    // with_breaker lists a completed rev1 deployment too, older than rev2.
    let mut new = task("n1", 2, TaskStatus::Running, NOW - 1.0);
    new.started_by = Some("ecs-svc/forced".into());
    f.tasks.push(new);
    f.tasks
        .extend((0..10).map(|i| failed_start(&format!("f{i}"), "ecs-svc/forced", NOW - 100.0)));
    let plan = f.plan();
    assert!(plan.starts.is_empty() && plan.stops.is_empty());
    assert_eq!(
        messages(&plan),
        [
            "(service web) (deployment ecs-svc/forced) deployment failed: tasks failed to start."
                .to_string(),
            format!(
                "(service web) rolling back to {}.",
                arn::task_definition("web", 2)
            ),
        ]
    );
    let u = update(&plan);
    assert_eq!(u.task_definition, arn::task_definition("web", 2));
    let of = |id: &str| u.deployments.iter().find(|d| d.id == id).unwrap();
    assert_eq!(of("ecs-svc/forced").rollout_state, RolloutState::Failed);
    assert_eq!(of("ecs-svc/forced").status, DeploymentStatus::Active);
    assert_eq!(of("ecs-svc/rev2").status, DeploymentStatus::Primary);

    // The next pass wants the completed deployment's tasks again: the forced one's
    // task is replaced, the old ones stay.
    f.service = f.after(&plan);
    let plan = f.plan();
    assert!(plan.starts.is_empty(), "{:?}", plan.starts);
    assert_eq!(stopped_ids(&plan), ["n1"]);
    let u = update(&plan);
    assert_eq!(u.deployments[0].id, "ecs-svc/rev2");
    assert_eq!(u.deployments[0].status, DeploymentStatus::Primary);
}

#[test]
fn a_failed_forced_deployment_without_rollback_starts_nothing() {
    let mut f = forced(2).with_breaker(false);
    f.tasks
        .extend((0..10).map(|i| failed_start(&format!("f{i}"), "ecs-svc/forced", NOW - 100.0)));
    let plan = f.plan();
    assert_eq!(
        update(&plan).deployments[0].rollout_state,
        RolloutState::Failed
    );
    f.service = f.after(&plan);
    let plan = f.plan();
    assert!(plan.starts.is_empty(), "{:?}", plan.starts);
    assert!(plan.stops.is_empty(), "the old tasks keep serving");
}

#[test]
fn tasks_naming_no_listed_deployment_go_by_their_task_definition() {
    let mut f = Fixture::new(2);
    let mut legacy = task("legacy", 2, TaskStatus::Running, 1.0);
    legacy.started_by = None;
    let mut older = task("older", 1, TaskStatus::Running, 2.0);
    older.started_by = Some("someone".into());
    f.tasks = vec![legacy, older];
    let plan = f.plan();
    assert_eq!(
        plan.starts.len(),
        1,
        "legacy counts as the current deployment's"
    );
    let u = update(&plan);
    assert_eq!(
        (u.deployments[0].running_count, u.deployments.len()),
        (1, 2)
    );
    assert_eq!(
        u.deployments[1].task_definition,
        arn::task_definition("web", 1)
    );
    assert_eq!(u.deployments[1].running_count, 1);
}
