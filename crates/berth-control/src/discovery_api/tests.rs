//! The discovery routes through the real router on a loopback port, with the
//! in-memory store and a fake data plane.

use std::sync::Arc;

use berth_model::arn;
use berth_model::dataplane::TargetStatus;
use berth_model::ecs::{Container, NetworkBinding, Task, TaskStatus};
use berth_model::elb::{TargetHealth, TargetHealthState};
use berth_model::stack::Stack;
use serde_json::Value;

use super::EndpointPort;
use crate::api::{router, ApiState};
use crate::data_plane::fake::FakeDataPlane;
use crate::db::{self, Db};
use crate::registration::RegistrationReconciler;
use crate::test_fixtures::NoNodes;

const STACK: &str = r#"
namespaces:
  - {name: internal, description: services inside, dnsTtlSeconds: 9}
taskDefinitions:
  - family: backend
    containerDefinitions:
      - name: app
        image: whoami
        portMappings: [{containerPort: 8080, name: http, appProtocol: http}]
services:
  - serviceName: backend
    taskDefinition: backend
    desiredCount: 2
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          discoveryName: backend
          clientAliases: [{port: 80, dnsName: backend}]
          allowedCallers: [web]
  - serviceName: plain
    taskDefinition: backend
    desiredCount: 0
"#;

struct Api {
    base: String,
    db: Db,
    data_plane: Arc<FakeDataPlane>,
    _server: tokio::task::JoinHandle<()>,
}

async fn start() -> Api {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let data_plane = Arc::new(FakeDataPlane::default());
    crate::apply::apply(&db, &*data_plane, &Stack::from_yaml(STACK).unwrap(), false)
        .await
        .unwrap();
    let app = router(ApiState {
        db: db.clone(),
        data_plane: data_plane.clone(),
        nodes: Arc::new(NoNodes),
        bound: Default::default(),
        exec_commands: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Api {
        base,
        db,
        data_plane,
        _server: server,
    }
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn task(id: &str, host_port: u32) -> Task {
    Task {
        task_arn: arn::task("default", id),
        cluster_arn: arn::cluster("default"),
        task_definition_arn: arn::task_definition("backend", 1),
        group: "service:backend".into(),
        last_status: TaskStatus::Running,
        desired_status: TaskStatus::Running,
        containers: vec![Container {
            name: "app".into(),
            network_bindings: vec![NetworkBinding {
                container_port: 8080,
                host_port,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn namespaces_are_listed_and_read_by_name() {
    let api = start().await;
    let (status, list) = api.get("/v1/namespaces").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "internal");
    assert_eq!(list[0]["dnsTtlSeconds"], 9);
    assert_eq!(
        list[0]["arn"],
        "arn:berth:servicediscovery:local:000000000000:namespace/internal"
    );
    let (status, one) = api.get("/v1/namespaces/internal").await;
    assert_eq!(
        (status, one["description"].as_str()),
        (200, Some("services inside"))
    );
    let (status, err) = api.get("/v1/namespaces/nope").await;
    assert_eq!(status, 404);
    assert_eq!(err["__type"], "NamespaceNotFound");
}

#[tokio::test]
async fn endpoints_show_what_the_mesh_and_dns_see() {
    let api = start().await;
    for (id, port) in [("t1", 32768), ("t2", 32769)] {
        api.db
            .put(&db::task_key("default", id), &task(id, port))
            .await
            .unwrap();
    }
    RegistrationReconciler::new(api.db.clone())
        .reconcile()
        .await
        .unwrap();
    let tg = arn::target_group(&crate::mesh::target_group_name("internal", "backend"));
    *api.data_plane.statuses.lock().unwrap() = vec![
        TargetStatus {
            target_group_arn: tg.clone(),
            addr: "127.0.0.1:32768".parse().unwrap(),
            health: TargetHealth {
                state: TargetHealthState::Healthy,
                reason: None,
                description: None,
            },
            in_flight: 3,
            request_count: 10,
            drained: false,
            ejected: false,
        },
        TargetStatus {
            target_group_arn: tg.clone(),
            addr: "127.0.0.1:32769".parse().unwrap(),
            health: TargetHealth {
                state: TargetHealthState::Unhealthy,
                reason: Some("Target.FailedHealthChecks".into()),
                description: None,
            },
            in_flight: 0,
            request_count: 0,
            drained: false,
            ejected: true,
        },
    ];
    let (status, body) = api
        .get("/v1/clusters/default/services/backend/endpoints")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["allowedCallers"], serde_json::json!(["web"]));
    assert_eq!(
        body[0]["identity"],
        "spiffe://default/ns/internal/sa/backend"
    );
    let ports: Vec<EndpointPort> = serde_json::from_value(body).unwrap();
    assert_eq!(ports.len(), 1);
    let p = &ports[0];
    assert_eq!(
        (
            p.kind.as_str(),
            p.namespace.as_str(),
            p.discovery_name.as_str()
        ),
        ("serviceConnect", "internal", "backend")
    );
    assert_eq!(p.target_group_arn.as_deref(), Some(tg.as_str()));
    assert_eq!(p.client_aliases[0].dns_name, "backend");
    assert_eq!(p.ttl, 9);
    assert_eq!(
        p.dns_names,
        ["backend.internal", "backend", "t1.backend.internal"]
    );
    let t1 = &p.endpoints[0];
    assert_eq!(
        (t1.task_id.as_str(), t1.address.as_str()),
        ("t1", "127.0.0.1:32768")
    );
    assert_eq!(t1.health.state, TargetHealthState::Healthy);
    assert_eq!((t1.in_flight, t1.ejected, t1.published), (3, false, true));
    let t2 = &p.endpoints[1];
    assert_eq!(t2.health.state, TargetHealthState::Unhealthy);
    assert!(t2.ejected && !t2.published);
    assert!(
        t2.reason
            .as_deref()
            .unwrap()
            .contains("unhealthy in the mesh"),
        "{t2:?}"
    );
}

#[tokio::test]
async fn a_service_outside_discovery_has_none_and_a_missing_one_is_an_error() {
    let api = start().await;
    let (status, body) = api
        .get("/v1/clusters/default/services/plain/endpoints")
        .await;
    assert_eq!((status, body), (200, serde_json::json!([])));
    let (status, body) = api
        .get("/v1/clusters/default/services/gone/endpoints")
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["__type"], "ServiceNotFoundException");
}

#[tokio::test]
async fn a_namespace_in_use_is_not_deleted() {
    let api = start().await;
    let (status, body) = api.delete("/v1/namespaces/internal").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["__type"], "ResourceInUseException");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("default/backend"),
        "{body}"
    );
    assert_eq!(api.get("/v1/namespaces/internal").await.0, 200);
    // Once no service names it, it goes.
    api.db
        .store
        .delete(&db::service_key("default", "backend"))
        .await
        .unwrap();
    let (status, body) = api.delete("/v1/namespaces/internal").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.get("/v1/namespaces/internal").await.0, 404);
}
