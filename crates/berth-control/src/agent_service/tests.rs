//! The rules by which agents' task state changes apply, and the service over a store.

use std::sync::Arc;

use berth_model::agent::{ContainerStateChange, TaskStateChange};
use berth_model::arn;
use berth_model::ecs::{
    Container, ContainerInstance, HealthStatus, NetworkBinding, StopCode, Task, TaskStatus,
};

use super::*;

fn task(last: TaskStatus, desired: TaskStatus) -> Task {
    Task {
        task_arn: arn::task("default", "t1"),
        cluster_arn: arn::cluster("default"),
        container_instance_arn: Some(arn::container_instance("default", "i-1")),
        last_status: last,
        desired_status: desired,
        containers: vec![Container {
            name: "app".into(),
            last_status: last,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn app(status: TaskStatus) -> ContainerStateChange {
    ContainerStateChange {
        container_name: "app".into(),
        runtime_id: Some("4242".into()),
        status,
        exit_code: None,
        reason: None,
        health_status: HealthStatus::Healthy,
        network_bindings: vec![NetworkBinding {
            bind_ip: "0.0.0.0".into(),
            container_port: 8080,
            host_port: 32768,
            ..Default::default()
        }],
        private_ipv4_address: None,
    }
}

#[test]
fn pending_moves_a_task_that_should_run_to_pending() {
    let mut t = task(TaskStatus::Provisioning, TaskStatus::Running);
    assert!(apply_task_state_change(
        &mut t,
        &TaskStateChange::pending(arn::task("default", "t1"))
    ));
    assert_eq!(t.last_status, TaskStatus::Pending);
    assert_eq!(t.version, 1);
}

#[test]
fn pending_changes_nothing_once_pending_or_when_asked_to_stop() {
    let mut t = task(TaskStatus::Pending, TaskStatus::Running);
    assert!(!apply_task_state_change(
        &mut t,
        &TaskStateChange::pending(arn::task("default", "t1"))
    ));
    let mut t = task(TaskStatus::Provisioning, TaskStatus::Stopped);
    assert!(!apply_task_state_change(
        &mut t,
        &TaskStateChange::pending(arn::task("default", "t1"))
    ));
    assert_eq!(t.last_status, TaskStatus::Provisioning);
    assert_eq!(t.version, 0);
}

#[test]
fn running_after_a_start_records_containers_health_and_start_time() {
    let mut t = task(TaskStatus::Pending, TaskStatus::Running);
    let change = TaskStateChange::running(&t.task_arn, Some(100.0))
        .with_containers(vec![app(TaskStatus::Running)], HealthStatus::Healthy);
    assert!(apply_task_state_change(&mut t, &change));
    assert_eq!(t.last_status, TaskStatus::Running);
    assert_eq!(t.started_at, Some(100.0));
    assert_eq!(t.health_status, HealthStatus::Healthy);
    assert_eq!(t.version, 1);
    let c = &t.containers[0];
    assert_eq!(c.last_status, TaskStatus::Running);
    assert_eq!(c.runtime_id.as_deref(), Some("4242"));
    assert_eq!(c.network_bindings[0].host_port, 32768);
    assert_eq!(c.health_status, HealthStatus::Healthy);
}

#[test]
fn running_for_a_task_asked_to_stop_while_starting_goes_to_stopping() {
    let mut t = task(TaskStatus::Pending, TaskStatus::Stopped);
    let change = TaskStateChange::running(&t.task_arn, Some(100.0))
        .with_containers(vec![app(TaskStatus::Running)], HealthStatus::Unknown);
    assert!(apply_task_state_change(&mut t, &change));
    assert_eq!(t.last_status, TaskStatus::Stopping);
    assert_eq!(t.started_at, Some(100.0));
}

#[test]
fn an_observation_of_a_running_task_copies_containers_only() {
    let mut t = task(TaskStatus::Running, TaskStatus::Running);
    t.started_at = Some(50.0);
    t.containers[0].exit_code = Some(3);
    t.containers[0].network_bindings = app(TaskStatus::Running).network_bindings;
    let mut seen = app(TaskStatus::Running);
    seen.network_bindings.clear();
    seen.health_status = HealthStatus::Unhealthy;
    let change = TaskStateChange::running(&t.task_arn, None)
        .with_containers(vec![seen], HealthStatus::Unhealthy);
    assert!(apply_task_state_change(&mut t, &change));
    assert_eq!(t.started_at, Some(50.0), "start time kept");
    assert_eq!(t.version, 0, "no status change, no new version");
    assert_eq!(t.health_status, HealthStatus::Unhealthy);
    let c = &t.containers[0];
    assert_eq!(c.health_status, HealthStatus::Unhealthy);
    assert_eq!(
        c.exit_code,
        Some(3),
        "a missing exit code keeps the recorded one"
    );
    assert_eq!(
        c.network_bindings[0].host_port, 32768,
        "no reported bindings keep the recorded ones"
    );
    assert!(
        !apply_task_state_change(&mut t, &change),
        "the same report again changes nothing"
    );
}

#[test]
fn stopped_records_the_agents_reason_when_none_is_recorded() {
    let mut t = task(TaskStatus::Running, TaskStatus::Running);
    let mut exited = app(TaskStatus::Stopped);
    exited.exit_code = Some(1);
    let change = TaskStateChange::stopped(
        &t.task_arn,
        StopCode::EssentialContainerExited,
        "Essential container in task exited (app)",
        200.0,
    )
    .with_containers(vec![exited], HealthStatus::Unknown);
    assert!(apply_task_state_change(&mut t, &change));
    assert_eq!(t.last_status, TaskStatus::Stopped);
    assert_eq!(t.desired_status, TaskStatus::Stopped);
    assert_eq!(t.stop_code, Some(StopCode::EssentialContainerExited));
    assert_eq!(
        t.stopped_reason.as_deref(),
        Some("Essential container in task exited (app)")
    );
    assert_eq!(t.stopping_at, Some(200.0));
    assert_eq!(t.stopped_at, Some(200.0));
    assert_eq!(t.containers[0].exit_code, Some(1));
    assert_eq!(t.containers[0].last_status, TaskStatus::Stopped);
    assert_eq!(t.version, 1);
}

#[test]
fn stopped_keeps_the_reason_the_control_plane_recorded() {
    let mut t = task(TaskStatus::Stopping, TaskStatus::Stopped);
    t.stop_code = Some(StopCode::UserInitiated);
    t.stopped_reason = Some("Task stopped by user".into());
    t.stopping_at = Some(150.0);
    let change = TaskStateChange::stopped(
        &t.task_arn,
        StopCode::EssentialContainerExited,
        "Essential container in task exited (app)",
        200.0,
    );
    assert!(apply_task_state_change(&mut t, &change));
    assert_eq!(t.stop_code, Some(StopCode::UserInitiated));
    assert_eq!(t.stopped_reason.as_deref(), Some("Task stopped by user"));
    assert_eq!(
        t.stopping_at,
        Some(150.0),
        "the stop request's time is kept"
    );
    assert_eq!(t.stopped_at, Some(200.0));
}

#[test]
fn stopped_on_a_stopped_task_only_takes_container_changes() {
    let mut t = task(TaskStatus::Stopped, TaskStatus::Stopped);
    t.stopped_at = Some(10.0);
    t.stop_code = Some(StopCode::TaskFailedToStart);
    let gone = TaskStateChange::stopped(
        &t.task_arn,
        StopCode::EssentialContainerExited,
        "Task is gone from its runtime",
        300.0,
    );
    assert!(!apply_task_state_change(&mut t, &gone));
    let mut exited = app(TaskStatus::Stopped);
    exited.exit_code = Some(137);
    let with_exit = gone
        .clone()
        .with_containers(vec![exited], HealthStatus::Unknown);
    assert!(apply_task_state_change(&mut t, &with_exit));
    assert_eq!(t.containers[0].exit_code, Some(137));
    assert_eq!(t.stopped_at, Some(10.0));
    assert_eq!(t.stop_code, Some(StopCode::TaskFailedToStart));
    assert_eq!(t.version, 0);
}

fn service() -> (AgentService, Db) {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    (
        AgentService::new(db.clone(), tokio::sync::watch::channel(0).1),
        db,
    )
}

#[tokio::test]
async fn a_submitted_change_is_stored_and_returned() {
    let (svc, db) = service();
    let t = task(TaskStatus::Provisioning, TaskStatus::Running);
    db.put(&db::task_key("default", "t1"), &t).await.unwrap();
    let stored = svc
        .submit_task_state_change(TaskStateChange::pending(&t.task_arn))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_status, TaskStatus::Pending);
    let read: Task = db
        .get(&db::task_key("default", "t1"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(read, stored);
    assert_eq!(
        svc.assigned_tasks(&arn::container_instance("default", "i-1"))
            .await
            .unwrap(),
        vec![stored]
    );
    assert!(svc
        .assigned_tasks(&arn::container_instance("default", "i-2"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_change_for_no_task_returns_none_and_a_bad_arn_is_refused() {
    let (svc, _db) = service();
    let none = svc
        .submit_task_state_change(TaskStateChange::pending(arn::task("default", "gone")))
        .await
        .unwrap();
    assert_eq!(none, None);
    let e = svc
        .submit_task_state_change(TaskStateChange::pending("not-an-arn"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ControlError::Invalid { field, message }
            if field == "taskArn" && message.contains("not a task ARN")),
        "{e}"
    );
}

#[tokio::test]
async fn re_registering_keeps_the_registration_time_and_draining() {
    let (svc, _db) = service();
    let inst = ContainerInstance {
        container_instance_arn: arn::container_instance("default", "i-1"),
        ec2_instance_id: "i-1".into(),
        cluster_arn: arn::cluster("default"),
        status: "ACTIVE".into(),
        registered_at: 1.0,
        ..Default::default()
    };
    svc.register_instance(inst.clone()).await.unwrap();
    let key = db::instance_key("default", "i-1");
    svc.db
        .update::<ContainerInstance, _>(&key, |i| {
            i.status = "DRAINING".into();
            true
        })
        .await
        .unwrap();
    let again = svc
        .register_instance(ContainerInstance {
            registered_at: 2.0,
            ..inst
        })
        .await
        .unwrap();
    assert_eq!(again.registered_at, 1.0);
    assert_eq!(again.status, "DRAINING");
}
