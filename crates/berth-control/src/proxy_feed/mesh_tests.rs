//! The mesh through registration and the proxy feed: a service's task registered in its
//! mesh target group, the group and listener offered to the data plane, a refused
//! listener left out and recorded, and a stopping task drained before it is signalled.

use std::sync::Arc;

use berth_model::arn;
use berth_model::dataplane::{MeshProtocol, TargetStatus};
use berth_model::ecs::{Container, NetworkBinding, Service, Task, TaskStatus};
use berth_model::elb::{TargetHealth, TargetHealthState};
use berth_model::stack::Stack;

use super::*;
use crate::data_plane::fake::FakeDataPlane;
use crate::registration::RegistrationReconciler;

const STACK: &str = r#"
namespaces:
  - name: internal
taskDefinitions:
  - family: backend
    containerDefinitions:
      - name: app
        image: whoami
        portMappings: [{containerPort: 8080, name: http, appProtocol: http}]
services:
  - serviceName: backend
    taskDefinition: backend
    desiredCount: 1
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          discoveryName: backend
          clientAliases: [{port: 80, dnsName: backend}]
"#;

pub(super) fn mesh_arn() -> String {
    arn::target_group(&crate::mesh::target_group_name("internal", "backend"))
}

pub(super) async fn setup() -> (Db, Arc<FakeDataPlane>, ProxyFeed) {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let dp = Arc::new(FakeDataPlane::default());
    crate::apply::apply(&db, &*dp, &Stack::from_yaml(STACK).unwrap(), false)
        .await
        .unwrap();
    let task = Task {
        task_arn: arn::task("default", "t1"),
        cluster_arn: arn::cluster("default"),
        task_definition_arn: arn::task_definition("backend", 1),
        group: "service:backend".into(),
        last_status: TaskStatus::Running,
        desired_status: TaskStatus::Running,
        containers: vec![Container {
            name: "app".into(),
            network_bindings: vec![NetworkBinding {
                container_port: 8080,
                host_port: 32768,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    db.put(&db::task_key("default", "t1"), &task).await.unwrap();
    let feed = ProxyFeed::new(db.clone(), dp.clone());
    (db, dp, feed)
}

#[tokio::test]
async fn a_running_task_is_registered_in_its_mesh_group_and_offered_with_a_listener() {
    let (db, dp, feed) = setup().await;
    RegistrationReconciler::new(db.clone())
        .reconcile()
        .await
        .unwrap();
    let name = crate::mesh::target_group_name("internal", "backend");
    let targets = db.targets(Some(&name)).await.unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].value.endpoint(), "127.0.0.1:32768");
    assert_eq!(
        targets[0].value.target_health.state,
        TargetHealthState::Initial
    );

    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap().last().cloned().unwrap();
    let g = offered
        .target_groups
        .iter()
        .find(|g| g.group.target_group_arn == mesh_arn())
        .unwrap();
    assert_eq!(g.mesh.as_ref().unwrap().discovery_name, "backend");
    assert_eq!(g.targets.len(), 1);
    assert_eq!(offered.mesh_listeners.len(), 1);
    let l = &offered.mesh_listeners[0];
    assert_eq!((l.port, l.protocol), (80, MeshProtocol::Http));
    assert_eq!(l.routes[0].dns_name, "backend");
    assert_eq!(l.routes[0].target_group_arn, mesh_arn());
}

#[tokio::test]
async fn a_refused_mesh_listener_is_left_out_and_recorded_on_its_service() {
    let (db, dp, feed) = setup().await;
    dp.refuse_mesh_ports
        .lock()
        .unwrap()
        .insert(80, "port 80 is taken".into());
    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap().last().cloned().unwrap();
    assert!(offered.mesh_listeners.is_empty());
    assert!(offered
        .target_groups
        .iter()
        .any(|g| g.group.target_group_arn == mesh_arn()));
    assert_eq!(
        feed.bound.read().unwrap().failed_mesh_listeners[&80],
        "port 80 is taken"
    );
    let events = |db: Db| async move {
        let s: Service = db
            .get(&db::service_key("default", "backend"))
            .await
            .unwrap()
            .unwrap()
            .value;
        s.events
            .iter()
            .filter(|e| e.message.contains("client alias port 80: port 80 is taken"))
            .count()
    };
    assert_eq!(events(db.clone()).await, 1);
    // The same refusal again is not recorded again.
    feed.push_config().await.unwrap();
    assert_eq!(events(db.clone()).await, 1);
}

#[tokio::test]
async fn a_stopping_task_drains_from_the_mesh_before_it_is_signalled() {
    let (db, dp, feed) = setup().await;
    let reg = RegistrationReconciler::new(db.clone());
    reg.reconcile().await.unwrap();
    db.update::<Task, _>(&db::task_key("default", "t1"), |t| {
        t.desired_status = TaskStatus::Stopped;
        t.last_status = TaskStatus::Deactivating;
        true
    })
    .await
    .unwrap();
    reg.reconcile().await.unwrap();
    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap().last().cloned().unwrap();
    let g = offered
        .target_groups
        .iter()
        .find(|g| g.group.target_group_arn == mesh_arn())
        .unwrap();
    assert!(g.targets[0].draining, "the endpoint drains first");
    let task = |db: Db| async move {
        db.get::<Task>(&db::task_key("default", "t1"))
            .await
            .unwrap()
            .unwrap()
            .value
    };
    assert_eq!(task(db.clone()).await.last_status, TaskStatus::Deactivating);

    // The data plane reports it drained; only then does the task move to STOPPING.
    *dp.statuses.lock().unwrap() = vec![TargetStatus {
        target_group_arn: mesh_arn(),
        addr: "127.0.0.1:32768".parse().unwrap(),
        health: TargetHealth {
            state: TargetHealthState::Draining,
            reason: None,
            description: None,
        },
        in_flight: 0,
        request_count: 0,
        drained: true,
        ejected: false,
    }];
    feed.pull_health().await.unwrap();
    reg.reconcile().await.unwrap();
    reg.reconcile().await.unwrap();
    assert_eq!(task(db.clone()).await.last_status, TaskStatus::Stopping);
    let name = crate::mesh::target_group_name("internal", "backend");
    assert!(db.targets(Some(&name)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_service_leaving_the_mesh_drains_its_running_tasks_from_it() {
    let (db, dp, feed) = setup().await;
    let reg = RegistrationReconciler::new(db.clone());
    reg.reconcile().await.unwrap();
    db.update::<Service, _>(&db::service_key("default", "backend"), |s| {
        s.service_connect_configuration = None;
        true
    })
    .await
    .unwrap();
    reg.reconcile().await.unwrap();
    let name = crate::mesh::target_group_name("internal", "backend");
    let targets = db.targets(Some(&name)).await.unwrap();
    assert!(targets[0].value.deregistering_at.is_some());
    // Offered as a leftover group so it can drain; no listener routes to it.
    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap().last().cloned().unwrap();
    let g = offered
        .target_groups
        .iter()
        .find(|g| g.group.target_group_arn == mesh_arn())
        .unwrap();
    assert!(g.targets[0].draining);
    assert!(offered.mesh_listeners.is_empty());
    *dp.statuses.lock().unwrap() = vec![TargetStatus {
        target_group_arn: mesh_arn(),
        addr: "127.0.0.1:32768".parse().unwrap(),
        health: TargetHealth {
            state: TargetHealthState::Draining,
            reason: None,
            description: None,
        },
        in_flight: 0,
        request_count: 0,
        drained: true,
        ejected: false,
    }];
    feed.pull_health().await.unwrap();
    reg.reconcile().await.unwrap();
    assert!(db.targets(Some(&name)).await.unwrap().is_empty());
    let t: Task = db
        .get(&db::task_key("default", "t1"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        t.last_status,
        TaskStatus::Running,
        "the task itself keeps running"
    );
}
