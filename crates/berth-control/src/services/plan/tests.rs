//! The planner, branch by branch, with plain values and no store.

use super::*;
use crate::test_fixtures::instance;
use berth_model::arn;
use berth_model::ecs::{
    DeploymentCircuitBreaker, DeploymentStatus, HealthStatus, ServiceLoadBalancer,
};
use berth_model::elb::{TargetHealth, TargetHealthState};

mod drain;
mod forced;

const NOW: f64 = 10_000.0;

fn td(revision: u32) -> TaskDefinition {
    let mut t: TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": "web",
        "containerDefinitions": [{"name": "web", "image": "x", "memory": 64}]
    }))
    .unwrap();
    t.revision = revision;
    t.task_definition_arn = arn::task_definition("web", revision);
    t.status = "ACTIVE".into();
    t
}

fn deployment(
    id: &str,
    revision: u32,
    status: DeploymentStatus,
    state: RolloutState,
) -> Deployment {
    Deployment {
        id: id.into(),
        status,
        task_definition: arn::task_definition("web", revision),
        rollout_state: state,
        created_at: f64::from(revision),
        ..Default::default()
    }
}

/// A task of `web:<revision>` wanted RUNNING, in `status`, created at `created_at`.
fn task(id: &str, revision: u32, status: TaskStatus, created_at: f64) -> Task {
    Task {
        task_arn: arn::task("default", id),
        cluster_arn: arn::cluster("default"),
        task_definition_arn: arn::task_definition("web", revision),
        container_instance_arn: Some(arn::container_instance("default", "i-1")),
        group: "service:web".into(),
        started_by: Some(format!("ecs-svc/rev{revision}")),
        last_status: status,
        desired_status: TaskStatus::Running,
        created_at,
        started_at: (status >= TaskStatus::Running).then_some(created_at),
        ..Default::default()
    }
}

fn failed_start(id: &str, deployment: &str, stopped_at: f64) -> Task {
    Task {
        started_by: Some(deployment.into()),
        desired_status: TaskStatus::Stopped,
        stop_code: Some(StopCode::TaskFailedToStart),
        stopped_at: Some(stopped_at),
        started_at: None,
        ..task(id, 2, TaskStatus::Stopped, stopped_at - 1.0)
    }
}

fn target(task_id: &str, state: TargetHealthState) -> Target {
    Target {
        target_group_arn: arn::target_group("web"),
        id: "10.0.0.1".into(),
        port: 8080,
        task_arn: Some(arn::task("default", task_id)),
        target_health: TargetHealth {
            state,
            reason: (state == TargetHealthState::Unhealthy)
                .then(|| "Target.ResponseCodeMismatch".to_string()),
            description: None,
        },
        registered_at: 0.0,
        deregistering_at: None,
        drained_at: None,
    }
}

/// The desired and observed state of one service, `web` on `web:2`.
struct Fixture {
    service: Service,
    current: Option<TaskDefinition>,
    tasks: Vec<Task>,
    targets: Vec<Target>,
    instances: Vec<ContainerInstance>,
}

impl Fixture {
    fn new(desired: i64) -> Self {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "serviceName": "web",
            "taskDefinition": arn::task_definition("web", 2),
            "desiredCount": desired
        }))
        .unwrap();
        service.status = "ACTIVE".into();
        service.deployments = vec![deployment(
            "ecs-svc/rev2",
            2,
            DeploymentStatus::Primary,
            RolloutState::InProgress,
        )];
        Self {
            service,
            current: Some(td(2)),
            tasks: Vec::new(),
            targets: Vec::new(),
            instances: vec![instance("i-1")],
        }
    }

    fn with_load_balancer(mut self) -> Self {
        self.service.load_balancers.push(ServiceLoadBalancer {
            target_group_arn: arn::target_group("web"),
            container_name: "web".into(),
            container_port: 8080,
            ..Default::default()
        });
        self
    }

    fn with_breaker(mut self, rollback: bool) -> Self {
        self.service
            .deployment_configuration
            .deployment_circuit_breaker = Some(DeploymentCircuitBreaker {
            enable: true,
            rollback,
            ..Default::default()
        });
        self.service.deployments.push(deployment(
            "ecs-svc/rev1",
            1,
            DeploymentStatus::Active,
            RolloutState::Completed,
        ));
        self
    }

    fn plan(&self) -> ServicePlan {
        let definitions: BTreeMap<String, TaskDefinition> = [td(1), td(2)]
            .into_iter()
            .map(|d| (d.task_definition_arn.clone(), d))
            .collect();
        let tasks: Vec<&Task> = self.tasks.iter().collect();
        let input = PlanInput {
            service: &self.service,
            task_definition: self.current.as_ref(),
            cluster_tasks: &tasks,
            definitions: &definitions,
            targets: &self.targets,
            instances: &self.instances,
            now: NOW,
            placement_seed: 0,
        };
        let mut n = 0u32;
        let mut ids = || {
            n += 1;
            format!("{n:032x}")
        };
        plan_service(&input, &mut ids)
    }

    /// The service record after `plan`, as the executor would write it.
    fn after(&self, plan: &ServicePlan) -> Service {
        let mut ids = || "event".to_string();
        plan.next_service(&self.service, NOW, &mut ids)
            .unwrap_or_else(|| self.service.clone())
    }
}

fn update(plan: &ServicePlan) -> &ServiceUpdate {
    match &plan.record {
        ServiceRecord::Update(u) => u,
        other => panic!("expected an update, got {other:?}"),
    }
}

fn stopped_ids(plan: &ServicePlan) -> Vec<&str> {
    plan.stops
        .iter()
        .map(|s| arn::last_segment(&s.task_arn))
        .collect()
}

fn messages(plan: &ServicePlan) -> Vec<&str> {
    plan.events.iter().map(|e| e.message.as_str()).collect()
}

#[test]
fn scale_out_starts_the_missing_tasks_of_the_current_deployment() {
    let mut f = Fixture::new(3);
    f.tasks.push(task("a", 2, TaskStatus::Running, 1.0));
    let plan = f.plan();
    assert!(plan.stops.is_empty(), "{:?}", plan.stops);
    assert_eq!(plan.starts.len(), 2);
    for t in &plan.starts {
        assert_eq!(t.task_definition_arn, arn::task_definition("web", 2));
        assert_eq!(t.started_by.as_deref(), Some("ecs-svc/rev2"));
        assert_eq!(t.group, "service:web");
        assert_eq!(t.last_status, TaskStatus::Provisioning);
        assert_eq!(t.desired_status, TaskStatus::Running);
        assert_eq!(
            t.container_instance_arn.as_deref(),
            Some(arn::container_instance("default", "i-1").as_str())
        );
        assert_eq!(t.created_at, NOW);
    }
    assert_ne!(plan.starts[0].task_arn, plan.starts[1].task_arn);
    let started = format!(
        "(service web) has started 2 tasks: (task {}) (task {}).",
        plan.starts[0].id(),
        plan.starts[1].id()
    );
    assert_eq!(messages(&plan), [started.as_str()]);
    let u = update(&plan);
    assert_eq!((u.running_count, u.pending_count), (1, 0));
    assert_eq!(u.deployments[0].desired_count, 3);
    assert_eq!(u.deployments[0].rollout_state, RolloutState::InProgress);
}

#[test]
fn a_new_service_gets_a_new_primary_deployment() {
    let mut f = Fixture::new(1);
    f.service.deployments.clear();
    let plan = f.plan();
    assert_eq!(plan.starts.len(), 1);
    let u = update(&plan);
    assert_eq!(u.deployments.len(), 1);
    let d = &u.deployments[0];
    assert_eq!(d.status, DeploymentStatus::Primary);
    assert_eq!(d.task_definition, arn::task_definition("web", 2));
    assert_eq!(Some(d.id.as_str()), plan.starts[0].started_by.as_deref());
    assert!(d.id.starts_with("ecs-svc/") && d.id.len() == "ecs-svc/".len() + 12);
}

#[test]
fn scale_in_keeps_the_newest_healthy_tasks() {
    let mut f = Fixture::new(1);
    f.tasks = vec![
        task("old", 2, TaskStatus::Running, 1.0),
        task("newest", 2, TaskStatus::Running, 3.0),
        task("pending", 2, TaskStatus::Pending, 4.0),
    ];
    let plan = f.plan();
    assert!(plan.starts.is_empty());
    assert_eq!(stopped_ids(&plan), ["old", "pending"]);
    assert!(plan
        .stops
        .iter()
        .all(|s| s.code == StopCode::ServiceSchedulerInitiated
            && s.reason == "Scaling activity initiated by (deployment ecs-svc/rev2)"));
    assert_eq!(
        messages(&plan),
        ["(service web) has stopped 2 running tasks: (task old) (task pending)."]
    );
    let u = update(&plan);
    assert_eq!((u.running_count, u.pending_count), (2, 1));
    assert_eq!(
        u.deployments[0].rollout_state,
        RolloutState::InProgress,
        "not steady while stopping"
    );
}

#[test]
fn a_task_failing_elb_checks_past_the_grace_period_is_replaced() {
    let mut f = Fixture::new(2).with_load_balancer();
    f.service.health_check_grace_period_seconds = Some(60);
    f.tasks = vec![
        task("sick", 2, TaskStatus::Running, NOW - 61.0),
        task("fine", 2, TaskStatus::Running, NOW - 61.0),
    ];
    f.targets = vec![
        target("sick", TargetHealthState::Unhealthy),
        target("fine", TargetHealthState::Healthy),
    ];
    let plan = f.plan();
    assert_eq!(stopped_ids(&plan), ["sick"]);
    assert_eq!(plan.stops[0].code, StopCode::ServiceSchedulerInitiated);
    assert_eq!(
        plan.stops[0].reason,
        format!(
            "Task failed ELB health checks in (target-group {})",
            arn::target_group("web")
        )
    );
    assert_eq!(
        messages(&plan),
        [format!(
            "(service web) (port 8080) is unhealthy in (target-group {}) due to (reason Target.ResponseCodeMismatch).",
            arn::target_group("web")
        )
        .as_str()]
    );
    // The replacement starts on a later pass, once the stopped task no longer counts.
    assert!(plan.starts.is_empty());
}

#[test]
fn within_the_grace_period_an_unhealthy_task_stays() {
    let mut f = Fixture::new(1).with_load_balancer();
    f.service.health_check_grace_period_seconds = Some(60);
    f.tasks = vec![task("young", 2, TaskStatus::Running, NOW - 59.0)];
    f.targets = vec![target("young", TargetHealthState::Unhealthy)];
    let plan = f.plan();
    assert!(plan.stops.is_empty(), "{:?}", plan.stops);
    assert!(plan.events.is_empty(), "{:?}", plan.events);
}

#[test]
fn a_task_failing_container_checks_is_replaced_without_an_event() {
    let mut f = Fixture::new(1);
    let mut t = task("sick", 2, TaskStatus::Running, 1.0);
    t.health_status = HealthStatus::Unhealthy;
    f.tasks = vec![t];
    let plan = f.plan();
    assert_eq!(stopped_ids(&plan), ["sick"]);
    assert_eq!(plan.stops[0].reason, "Task failed container health checks");
    assert!(plan.events.is_empty(), "{:?}", plan.events);
}

#[test]
fn the_breaker_fails_the_deployment_and_rolls_back() {
    let mut f = Fixture::new(2).with_breaker(true);
    f.tasks = (0..10)
        .map(|i| failed_start(&format!("f{i}"), "ecs-svc/rev2", NOW - 100.0))
        .collect();
    let plan = f.plan();
    assert!(plan.starts.is_empty() && plan.stops.is_empty());
    let u = update(&plan);
    assert_eq!(u.task_definition, arn::task_definition("web", 1));
    let failed = u
        .deployments
        .iter()
        .find(|d| d.id == "ecs-svc/rev2")
        .unwrap();
    assert_eq!(failed.rollout_state, RolloutState::Failed);
    assert_eq!(
        failed.rollout_state_reason,
        "ECS deployment circuit breaker: 10 tasks failed to start or stay healthy."
    );
    assert_eq!(failed.updated_at, NOW);
    assert_eq!(
        messages(&plan),
        [
            "(service web) (deployment ecs-svc/rev2) deployment failed: tasks failed to start."
                .to_string(),
            format!(
                "(service web) rolling back to {}.",
                arn::task_definition("web", 1)
            ),
        ]
    );

    // The next pass makes the completed deployment primary again and starts its tasks.
    let mut next = Fixture::new(2).with_breaker(true);
    next.service = f.after(&plan);
    next.current = Some(td(1));
    next.tasks = f.tasks.clone();
    let plan = next.plan();
    assert_eq!(plan.starts.len(), 2);
    assert!(plan
        .starts
        .iter()
        .all(|t| t.task_definition_arn == arn::task_definition("web", 1)
            && t.started_by.as_deref() == Some("ecs-svc/rev1")));
    let u = update(&plan);
    assert_eq!(u.deployments[0].id, "ecs-svc/rev1");
    assert_eq!(u.deployments[0].status, DeploymentStatus::Primary);
}

#[test]
fn nine_failures_do_not_trip_the_breaker() {
    let mut f = Fixture::new(2).with_breaker(true);
    f.tasks = (0..9)
        .map(|i| failed_start(&format!("f{i}"), "ecs-svc/rev2", NOW - 100.0))
        .collect();
    let plan = f.plan();
    let u = update(&plan);
    assert_eq!(u.task_definition, arn::task_definition("web", 2));
    assert_ne!(u.deployments[0].rollout_state, RolloutState::Failed);
    assert!(!messages(&plan)
        .iter()
        .any(|m| m.contains("deployment failed")));
}

#[test]
fn a_tripped_breaker_without_rollback_starts_nothing() {
    let mut f = Fixture::new(2).with_breaker(false);
    f.tasks = (0..10)
        .map(|i| failed_start(&format!("f{i}"), "ecs-svc/rev2", NOW - 100.0))
        .collect();
    let plan = f.plan();
    let u = update(&plan);
    assert_eq!(u.task_definition, arn::task_definition("web", 2));
    assert_eq!(u.deployments[0].rollout_state, RolloutState::Failed);
    assert_eq!(messages(&plan).len(), 1, "no rollback event");
    assert!(plan.starts.is_empty());

    let mut next = Fixture::new(2).with_breaker(false);
    next.service = f.after(&plan);
    next.tasks = f.tasks.clone();
    let plan = next.plan();
    assert!(
        plan.starts.is_empty(),
        "a failed deployment starts no more tasks"
    );
    assert_eq!(
        plan.start_throttled_for, None,
        "not held back by the throttle"
    );
    assert_eq!(
        update(&plan).deployments[0].rollout_state,
        RolloutState::Failed
    );
}

#[test]
fn a_rollout_step_rounds_maximum_down_and_minimum_healthy_up() {
    // desiredCount 3 at 150 % / 50 %: at most 4 tasks (4.5 rounded down), at least
    // 2 healthy (1.5 rounded up).
    let mut f = Fixture::new(3);
    f.service.deployment_configuration.maximum_percent = 150;
    f.service.deployment_configuration.minimum_healthy_percent = 50;
    f.service.deployments.push(deployment(
        "ecs-svc/rev1",
        1,
        DeploymentStatus::Active,
        RolloutState::Completed,
    ));
    f.tasks = vec![
        task("o1", 1, TaskStatus::Running, 1.0),
        task("o2", 1, TaskStatus::Running, 2.0),
        task("o3", 1, TaskStatus::Running, 3.0),
    ];
    let plan = f.plan();
    assert_eq!(plan.starts.len(), 1, "room for one more within 150 %");
    assert_eq!(plan.stops.len(), 1, "3 healthy, 2 must stay");
    assert_eq!(
        plan.stops[0].reason,
        "Scaling activity initiated by (deployment ecs-svc/rev2)"
    );
    let u = update(&plan);
    assert_eq!(u.deployments.len(), 2);
    assert_eq!(u.deployments[1].id, "ecs-svc/rev1");
    assert_eq!(u.deployments[1].status, DeploymentStatus::Active);
    assert_eq!(u.deployments[1].running_count, 3);
}

#[test]
fn a_rollout_keeps_minimum_healthy_and_stops_unhealthy_old_tasks_first() {
    // desiredCount 2 at 100 % / 100 %: no room to start, and no healthy task may go;
    // an old task that is not healthy goes anyway.
    let mut f = Fixture::new(2);
    f.service.deployment_configuration.maximum_percent = 100;
    f.tasks = vec![
        task("o1", 1, TaskStatus::Running, 1.0),
        task("o2", 1, TaskStatus::Pending, 2.0),
    ];
    let plan = f.plan();
    assert!(plan.starts.is_empty(), "alive tasks fill maximumPercent");
    assert_eq!(stopped_ids(&plan), ["o2"]);
}

#[test]
fn a_daemon_service_wants_one_task_per_active_instance() {
    let mut f = Fixture::new(0);
    f.service.scheduling_strategy = SchedulingStrategy::Daemon;
    let mut draining = instance("i-3");
    draining.status = "DRAINING".into();
    let mut gone = instance("i-4");
    gone.agent_connected = false;
    f.instances = vec![instance("i-1"), instance("i-2"), draining, gone];
    let plan = f.plan();
    let mut placed: Vec<&str> = plan
        .starts
        .iter()
        .filter_map(|t| t.container_instance_arn.as_deref())
        .map(arn::last_segment)
        .collect();
    placed.sort();
    assert_eq!(placed, ["i-1", "i-2"]);
    assert_eq!(update(&plan).deployments[0].desired_count, 2);
}

#[test]
fn a_daemon_service_wants_tasks_only_where_its_member_of_constraints_hold() {
    let mut f = Fixture::new(0);
    f.service.scheduling_strategy = SchedulingStrategy::Daemon;
    f.service.placement_constraints = vec![berth_model::ecs::PlacementConstraint {
        kind: "memberOf".into(),
        expression: Some("attribute:zone == a".into()),
    }];
    let mut in_a = instance("i-1");
    in_a.attributes.insert("zone".into(), "a".into());
    let mut in_b = instance("i-2");
    in_b.attributes.insert("zone".into(), "b".into());
    f.instances = vec![in_a, in_b, instance("i-3")];
    let plan = f.plan();
    let placed: Vec<&str> = plan
        .starts
        .iter()
        .filter_map(|t| t.container_instance_arn.as_deref())
        .map(arn::last_segment)
        .collect();
    assert_eq!(placed, ["i-1"]);
    assert_eq!(update(&plan).deployments[0].desired_count, 1);
    assert!(messages(&plan)
        .iter()
        .all(|m| !m.contains("unable to place")));
}

#[test]
fn a_daemon_service_replaces_in_place() {
    let mut f = Fixture::new(0);
    f.service.scheduling_strategy = SchedulingStrategy::Daemon;
    // Even with 200 % / 100 % configured, a daemon rolls at 100 % / 0 %.
    f.instances = vec![instance("i-1"), instance("i-2")];
    let mut on_two = task("o2", 1, TaskStatus::Running, 2.0);
    on_two.container_instance_arn = Some(arn::container_instance("default", "i-2"));
    f.tasks = vec![task("o1", 1, TaskStatus::Running, 1.0), on_two];
    let plan = f.plan();
    assert!(
        plan.starts.is_empty(),
        "no room beyond one task per instance"
    );
    assert_eq!(stopped_ids(&plan), ["o1", "o2"]);
}

#[test]
fn starts_are_throttled_after_tasks_that_never_started() {
    let mut f = Fixture::new(2);
    f.tasks = vec![
        failed_start("f1", "ecs-svc/rev2", NOW - 1.5),
        failed_start("f2", "ecs-svc/rev2", NOW - 1.0),
    ];
    let plan = f.plan();
    assert!(plan.starts.is_empty());
    // Two failures in a row: 4 s from the last one, 1 s of which has passed.
    assert_eq!(plan.start_throttled_for, Some(3.0));
    f.tasks = vec![failed_start("f1", "ecs-svc/rev2", NOW - 2.5)];
    let plan = f.plan();
    assert_eq!(plan.start_throttled_for, None);
    assert_eq!(plan.starts.len(), 2);
}

#[test]
fn a_task_no_instance_can_take_is_an_event() {
    let mut f = Fixture::new(1);
    f.instances.clear();
    let plan = f.plan();
    assert!(plan.starts.is_empty());
    assert_eq!(
        messages(&plan),
        ["(service web) was unable to place a task because no container instance met all of its requirements. no container instances were found in your cluster"]
    );
    assert!(plan.events[0].unless_repeated);
}

#[test]
fn an_unregistered_task_definition_is_an_event_and_nothing_else() {
    let mut f = Fixture::new(1);
    f.current = None;
    let plan = f.plan();
    assert_eq!(plan.record, ServiceRecord::Keep);
    assert!(plan.starts.is_empty() && plan.stops.is_empty());
    assert_eq!(
        messages(&plan),
        [format!(
            "(service web) cannot start tasks: task definition {} is not registered.",
            arn::task_definition("web", 2)
        )
        .as_str()]
    );
}

#[test]
fn reaching_steady_state_completes_the_deployment_once() {
    let mut f = Fixture::new(2);
    f.tasks = vec![
        task("a", 2, TaskStatus::Running, 1.0),
        task("b", 2, TaskStatus::Running, 2.0),
    ];
    let plan = f.plan();
    assert!(plan.starts.is_empty() && plan.stops.is_empty());
    assert_eq!(
        messages(&plan),
        ["(service web) has reached a steady state."]
    );
    let u = update(&plan);
    assert_eq!(u.deployments[0].rollout_state, RolloutState::Completed);
    assert_eq!((u.running_count, u.pending_count), (2, 0));
    // The next pass finds nothing to change, so nothing is written.
    f.service = f.after(&plan);
    let plan = f.plan();
    assert!(plan.events.is_empty(), "{:?}", plan.events);
    let mut ids = || "event".to_string();
    assert_eq!(plan.next_service(&f.service, NOW, &mut ids), None);
}

#[test]
fn a_deleted_service_stops_its_tasks_then_goes() {
    let mut f = Fixture::new(2);
    f.service.status = "DRAINING".into();
    f.tasks = vec![task("a", 2, TaskStatus::Running, 1.0)];
    let plan = f.plan();
    assert_eq!(stopped_ids(&plan), ["a"]);
    assert!(plan.starts.is_empty());
    assert!(matches!(plan.record, ServiceRecord::Update(_)));
    let mut gone = task("a", 2, TaskStatus::Stopped, 1.0);
    gone.desired_status = TaskStatus::Stopped;
    f.tasks = vec![gone];
    assert_eq!(f.plan().record, ServiceRecord::Delete);
}

#[test]
fn going_over_capacity_holds_no_later_step_back() {
    // Room for 16 tasks of 64 MiB; the service asks for 30.
    let mut f = Fixture::new(30);
    f.instances[0].registered_resources[1].integer_value = 16 * 64;
    f.tasks = (0..16)
        .map(|i| task(&format!("t{i:02}"), 2, TaskStatus::Running, f64::from(i)))
        .collect();
    let plan = f.plan();
    assert!(plan.starts.is_empty(), "nothing fits: {:?}", plan.starts);
    assert_eq!(
        plan.start_throttled_for, None,
        "a placement failure is no failed start"
    );
    assert!(
        messages(&plan)[0].contains("was unable to place a task"),
        "{:?}",
        messages(&plan)
    );
    assert_eq!(
        update(&plan).pending_count,
        0,
        "no task is held for the 14 that do not fit"
    );

    // Back under capacity: the surplus is stopped in the same pass.
    f.service = f.after(&plan);
    f.service.desired_count = 10;
    let plan = f.plan();
    assert_eq!(plan.stops.len(), 6);
    assert!(plan.starts.is_empty());

    // With 10 left, scaling out starts the 6 missing tasks at once.
    let stopped: Vec<String> = plan.stops.iter().map(|s| s.task_arn.clone()).collect();
    f.tasks.retain(|t| !stopped.contains(&t.task_arn));
    f.service = f.after(&plan);
    f.service.desired_count = 16;
    let plan = f.plan();
    assert_eq!(plan.start_throttled_for, None);
    assert_eq!(plan.starts.len(), 6);
}

#[test]
fn a_daemon_service_wants_no_task_on_managed_capacity() {
    let mut f = Fixture::new(0);
    f.service.scheduling_strategy = SchedulingStrategy::Daemon;
    let mut managed = instance("m-1");
    managed.attributes.insert(
        crate::scheduler::MANAGED_CAPACITY_ATTRIBUTE.into(),
        crate::scheduler::MANAGED_CAPACITY_VALUE.into(),
    );
    f.instances = vec![instance("i-1"), managed];
    let plan = f.plan();
    let placed: Vec<&str> = plan
        .starts
        .iter()
        .filter_map(|t| t.container_instance_arn.as_deref())
        .map(arn::last_segment)
        .collect();
    assert_eq!(placed, ["i-1"]);
    assert_eq!(update(&plan).deployments[0].desired_count, 1);
}
