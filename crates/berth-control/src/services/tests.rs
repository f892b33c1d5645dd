//! The service reconciler end to end over a memory store: plan, batch, next pass.

use super::*;
use crate::test_fixtures::instance;
use berth_model::arn;
use berth_model::ecs::{
    ContainerInstance, Deployment, DeploymentCircuitBreaker, DeploymentStatus, HealthStatus,
    RolloutState, SchedulingStrategy,
};
use std::sync::Arc;

fn td(family: &str, revision: u32) -> TaskDefinition {
    let mut t: TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": family,
        "containerDefinitions": [{"name": "web", "image": "x", "entryPoint": ["x"]}]
    }))
    .unwrap();
    t.revision = revision;
    t.task_definition_arn = arn::task_definition(family, revision);
    t.status = "ACTIVE".into();
    t
}

/// Deletes the ten failed tasks `setup` writes, for tests about something else.
async fn forget_failed_tasks(db: &Db) {
    for i in 0..10 {
        db.store
            .delete(&db::task_key("default", &format!("failed{i}")))
            .await
            .unwrap();
    }
}

async fn setup(rollback: bool) -> (Db, Service) {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    for r in [1, 2] {
        db.put(&db::taskdef_key("web", r), &td("web", r))
            .await
            .unwrap();
    }
    let inst = instance("i-1");
    db.put(&db::instance_key("default", "i-1"), &inst)
        .await
        .unwrap();
    let mut svc: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "taskDefinition": arn::task_definition("web", 2),
        "desiredCount": 2
    }))
    .unwrap();
    svc.status = "ACTIVE".into();
    svc.deployment_configuration.deployment_circuit_breaker = Some(DeploymentCircuitBreaker {
        enable: true,
        rollback,
        ..Default::default()
    });
    svc.deployments = vec![
        Deployment {
            id: "ecs-svc/new".into(),
            status: DeploymentStatus::Primary,
            task_definition: arn::task_definition("web", 2),
            rollout_state: RolloutState::InProgress,
            created_at: 2.0,
            ..Default::default()
        },
        Deployment {
            id: "ecs-svc/old".into(),
            status: DeploymentStatus::Active,
            task_definition: arn::task_definition("web", 1),
            rollout_state: RolloutState::Completed,
            created_at: 1.0,
            ..Default::default()
        },
    ];
    db.put(&db::service_key("default", "web"), &svc)
        .await
        .unwrap();
    // Ten tasks of the new deployment that never started.
    for i in 0..10 {
        let t = Task {
            task_arn: arn::task("default", &format!("failed{i}")),
            cluster_arn: arn::cluster("default"),
            task_definition_arn: arn::task_definition("web", 2),
            group: "service:web".into(),
            started_by: Some("ecs-svc/new".into()),
            last_status: TaskStatus::Stopped,
            desired_status: TaskStatus::Stopped,
            stop_code: Some(StopCode::TaskFailedToStart),
            stopped_at: Some(time::now()),
            ..Default::default()
        };
        db.put(&db::task_key("default", t.id()), &t).await.unwrap();
    }
    (db, svc)
}

async fn service(db: &Db) -> Service {
    db.get::<Service>(&db::service_key("default", "web"))
        .await
        .unwrap()
        .unwrap()
        .value
}

#[tokio::test]
async fn breaker_fails_the_deployment_and_rolls_back() {
    let (db, _) = setup(true).await;
    let r = ServiceReconciler::new(db.clone());
    r.reconcile().await.unwrap();
    let svc = service(&db).await;
    assert_eq!(svc.task_definition, arn::task_definition("web", 1));
    let failed = svc
        .deployments
        .iter()
        .find(|d| d.id == "ecs-svc/new")
        .unwrap();
    assert_eq!(failed.rollout_state, RolloutState::Failed);
    assert!(svc
        .events
        .iter()
        .any(|e| e.message.contains("deployment failed")));
    // The next pass makes the old deployment primary and starts its tasks.
    r.reconcile().await.unwrap();
    let svc = service(&db).await;
    assert_eq!(svc.deployments[0].id, "ecs-svc/old");
    assert_eq!(svc.deployments[0].status, DeploymentStatus::Primary);
    let tasks = db.tasks(Some("default")).await.unwrap();
    let started: Vec<_> = tasks
        .iter()
        .filter(|t| t.value.last_status == TaskStatus::Provisioning)
        .collect();
    assert_eq!(started.len(), 2);
    assert!(started
        .iter()
        .all(|t| t.value.task_definition_arn == arn::task_definition("web", 1)));
}

#[tokio::test]
async fn without_rollback_a_failed_deployment_starts_nothing() {
    let (db, _) = setup(false).await;
    let r = ServiceReconciler::new(db.clone());
    r.reconcile().await.unwrap();
    r.reconcile().await.unwrap();
    let svc = service(&db).await;
    assert_eq!(svc.task_definition, arn::task_definition("web", 2));
    assert_eq!(svc.deployments[0].rollout_state, RolloutState::Failed);
    let tasks = db.tasks(Some("default")).await.unwrap();
    assert!(tasks
        .iter()
        .all(|t| t.value.last_status == TaskStatus::Stopped));
}

#[tokio::test]
async fn a_daemon_service_runs_one_task_per_instance() {
    let (db, mut svc) = setup(false).await;
    let mut second: ContainerInstance = db
        .get(&db::instance_key("default", "i-1"))
        .await
        .unwrap()
        .unwrap()
        .value;
    second.container_instance_arn = arn::container_instance("default", "i-2");
    db.put(&db::instance_key("default", "i-2"), &second)
        .await
        .unwrap();
    svc.service_name = "agent".into();
    svc.desired_count = 0;
    svc.scheduling_strategy = SchedulingStrategy::Daemon;
    svc.deployments.clear();
    svc.deployment_configuration.deployment_circuit_breaker = None;
    svc.validate().unwrap();
    db.put(&db::service_key("default", "agent"), &svc)
        .await
        .unwrap();
    let r = ServiceReconciler::new(db.clone());
    r.reconcile().await.unwrap();
    r.reconcile().await.unwrap();
    let placed: Vec<String> = db
        .tasks(Some("default"))
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.value.group == "service:agent")
        .filter_map(|t| t.value.container_instance_arn)
        .collect();
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert_ne!(placed[0], placed[1], "one task on each instance");
}

#[tokio::test]
async fn a_rollout_waits_for_container_health_checks() {
    let (db, mut svc) = setup(false).await;
    // web:2 gets a container health check; the ten failed tasks are not wanted here.
    forget_failed_tasks(&db).await;
    let mut v2 = td("web", 2);
    v2.container_definitions[0].health_check = Some(berth_model::ecs::HealthCheck {
        command: vec!["CMD".into(), "true".into()],
        interval: 5,
        timeout: 2,
        retries: 3,
        start_period: 0,
    });
    db.put(&db::taskdef_key("web", 2), &v2).await.unwrap();
    svc.desired_count = 1;
    svc.deployment_configuration.deployment_circuit_breaker = None;
    db.put(&db::service_key("default", "web"), &svc)
        .await
        .unwrap();
    let task = |id: &str, rev: u32, health: HealthStatus| Task {
        task_arn: arn::task("default", id),
        cluster_arn: arn::cluster("default"),
        task_definition_arn: arn::task_definition("web", rev),
        container_instance_arn: Some(arn::container_instance("default", "i-1")),
        group: "service:web".into(),
        last_status: TaskStatus::Running,
        desired_status: TaskStatus::Running,
        health_status: health,
        ..Default::default()
    };
    db.put(
        &db::task_key("default", "old"),
        &task("old", 1, HealthStatus::Unknown),
    )
    .await
    .unwrap();
    db.put(
        &db::task_key("default", "new"),
        &task("new", 2, HealthStatus::Unknown),
    )
    .await
    .unwrap();
    let r = ServiceReconciler::new(db.clone());
    let old_desired = |db: Db| async move {
        db.get::<Task>(&db::task_key("default", "old"))
            .await
            .unwrap()
            .unwrap()
            .value
            .desired_status
    };
    r.reconcile().await.unwrap();
    assert_eq!(
        old_desired(db.clone()).await,
        TaskStatus::Running,
        "new task not healthy yet"
    );
    db.put(
        &db::task_key("default", "new"),
        &task("new", 2, HealthStatus::Healthy),
    )
    .await
    .unwrap();
    r.reconcile().await.unwrap();
    assert_eq!(old_desired(db.clone()).await, TaskStatus::Stopped);
}

#[tokio::test]
async fn nine_failures_do_not_trip_it() {
    let (db, _) = setup(true).await;
    db.store
        .delete(&db::task_key("default", "failed0"))
        .await
        .unwrap();
    ServiceReconciler::new(db.clone())
        .reconcile()
        .await
        .unwrap();
    let svc = service(&db).await;
    assert_eq!(svc.task_definition, arn::task_definition("web", 2));
    assert_ne!(svc.deployments[0].rollout_state, RolloutState::Failed);
}

#[tokio::test]
async fn a_plan_raced_by_a_task_change_writes_nothing_and_the_next_pass_converges() {
    let (db, mut svc) = setup(false).await;
    forget_failed_tasks(&db).await;
    svc.desired_count = 1;
    svc.deployment_configuration.deployment_circuit_breaker = None;
    let service_key = db::service_key("default", "web");
    db.put(&service_key, &svc).await.unwrap();
    // Two RUNNING tasks of the current definition for a desired count of one.
    for id in ["a", "b"] {
        let t = Task {
            task_arn: arn::task("default", id),
            cluster_arn: arn::cluster("default"),
            task_definition_arn: arn::task_definition("web", 2),
            container_instance_arn: Some(arn::container_instance("default", "i-1")),
            group: "service:web".into(),
            last_status: TaskStatus::Running,
            desired_status: TaskStatus::Running,
            created_at: if id == "a" { 1.0 } else { 2.0 },
            ..Default::default()
        };
        db.put(&db::task_key("default", id), &t).await.unwrap();
    }
    let service = db.get::<Service>(&service_key).await.unwrap().unwrap();
    let tasks = db.tasks(Some("default")).await.unwrap();
    let task_refs: Vec<&Task> = tasks.iter().map(|v| &v.value).collect();
    let definitions: BTreeMap<String, TaskDefinition> = [td("web", 2)]
        .into_iter()
        .map(|d| (d.task_definition_arn.clone(), d))
        .collect();
    let instances = db.instances(Some("default")).await.unwrap();
    let current = td("web", 2);
    let input = plan::PlanInput {
        service: &service.value,
        task_definition: Some(&current),
        cluster_tasks: &task_refs,
        definitions: &definitions,
        targets: &[],
        instances: &instances,
        now: time::now(),
        placement_seed: 0,
    };
    let plan = plan::plan_service(&input, &mut new_id);
    assert_eq!(plan.stops.len(), 1, "{plan:?}");
    assert_eq!(plan.stops[0].task_arn, arn::task("default", "a"));

    // The agent reports on task a between the reads and the write.
    let mut moved = tasks
        .iter()
        .find(|t| t.value.id() == "a")
        .unwrap()
        .value
        .clone();
    moved.version += 1;
    db.put(&db::task_key("default", "a"), &moved).await.unwrap();
    let revision = db.store.revision().await.unwrap();
    let ops = execute::plan_ops(&plan, &service, &tasks, time::now(), &mut new_id);
    let err = db.batch(ops).await.unwrap_err();
    assert!(matches!(err, ControlError::Conflict { .. }), "{err:?}");
    assert_eq!(
        db.store.revision().await.unwrap(),
        revision,
        "nothing of the plan was written"
    );

    // A pass plans again from fresh reads and lands.
    ServiceReconciler::new(db.clone())
        .reconcile()
        .await
        .unwrap();
    let a: Task = db
        .get(&db::task_key("default", "a"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(a.desired_status, TaskStatus::Stopped);
    assert_eq!(a.last_status, TaskStatus::Deactivating);
    let svc = db
        .get::<Service>(&service_key)
        .await
        .unwrap()
        .unwrap()
        .value;
    assert!(svc
        .events
        .iter()
        .any(|e| e.message == "(service web) has stopped 1 running tasks: (task a)."));
}
