//! The autoscaling routes through the real router on a loopback port, with the
//! in-memory store.

use std::sync::Arc;

use berth_model::autoscaling::activity::MAX_ACTIVITIES_PER_SERVICE;
use berth_model::autoscaling::{ScalingActivity, ScalingActivityStatusCode};
use berth_model::ecs::Service;
use berth_model::stack::Stack;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::{router, ApiState};
use crate::data_plane::fake::FakeDataPlane;
use crate::db::{self, Db};
use crate::test_fixtures::NoNodes;

const STACK: &str = r#"
taskDefinitions:
  - family: web
    containerDefinitions:
      - {name: app, image: whoami, entryPoint: [whoami], portMappings: [{containerPort: 8080}]}
services:
  - {serviceName: web, taskDefinition: web, desiredCount: 2}
  - {serviceName: api, taskDefinition: web, desiredCount: 1}
"#;

struct Api {
    addr: std::net::SocketAddr,
    db: Db,
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
        data_plane,
        nodes: Arc::new(NoNodes),
        bound: Default::default(),
        exec_commands: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Api {
        addr,
        db,
        _server: server,
    }
}

impl Api {
    /// One HTTP/1.1 request on its own connection; the status and the JSON body.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut conn = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: berth\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let json_text = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        (
            status,
            serde_json::from_str(&json_text).unwrap_or(Value::Null),
        )
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn target(min: i64, max: i64) -> Value {
    json!({"resourceId": "service/default/web", "minCapacity": min, "maxCapacity": max})
}

fn cpu_policy(name: &str) -> Value {
    json!({
        "policyName": name,
        "resourceId": "service/default/web",
        "policyType": "TargetTrackingScaling",
        "targetTrackingScalingPolicyConfiguration": {
            "targetValue": 70,
            "predefinedMetricSpecification": {"predefinedMetricType": "ECSServiceAverageCPUUtilization"}
        }
    })
}

const WEB: &str = "/v1/clusters/default/services/web";

#[tokio::test]
async fn put_get_list_and_delete_each_resource() {
    let api = start().await;
    // A policy before the target: refused naming the field.
    let (st, e) = api
        .call(
            "PUT",
            &format!("{WEB}/scaling-policies/cpu"),
            Some(cpu_policy("cpu")),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["__type"], "InvalidParameterException");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("scalingPolicies[0].resourceId:"),
        "{e}"
    );

    let (st, t) = api
        .call("PUT", &format!("{WEB}/scalable-target"), Some(target(1, 5)))
        .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["maxCapacity"], 5);
    assert_eq!(t["serviceNamespace"], "ecs");
    assert!(t["scalableTargetARN"]
        .as_str()
        .unwrap()
        .contains("scalable-target/ecs/service/default/web"));
    let (st, e) = api
        .call("PUT", &format!("{WEB}/scalable-target"), Some(target(6, 5)))
        .await;
    assert_eq!(st, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("scalableTargets[0].minCapacity"),
        "{e}"
    );
    // The body must name the path's service.
    let (st, e) = api
        .call(
            "PUT",
            "/v1/clusters/default/services/api/scalable-target",
            Some(target(1, 5)),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("resourceId: must match the path"),
        "{e}"
    );

    let (st, p) = api
        .call(
            "PUT",
            &format!("{WEB}/scaling-policies/cpu"),
            Some(cpu_policy("cpu")),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        p["targetTrackingScalingPolicyConfiguration"]["scaleInCooldown"],
        300
    );
    assert!(p["policyARN"]
        .as_str()
        .unwrap()
        .ends_with(":policyName/cpu"));
    let (st, e) = api
        .call(
            "PUT",
            &format!("{WEB}/scaling-policies/mem"),
            Some(cpu_policy("cpu")),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("policyName: must match"),
        "{e}"
    );

    let action = json!({
        "scheduledActionName": "night",
        "resourceId": "service/default/web",
        "schedule": "cron(0 22 * * ? *)",
        "timezone": "Europe/Paris",
        "scalableTargetAction": {"minCapacity": 1, "maxCapacity": 2}
    });
    let (st, a) = api
        .call(
            "PUT",
            &format!("{WEB}/scheduled-actions/night"),
            Some(action),
        )
        .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["timezone"], "Europe/Paris");

    for (path, n) in [
        ("/v1/scalable-targets", 1),
        ("/v1/scalable-targets?cluster=default", 1),
        ("/v1/scalable-targets?service=api", 0),
        ("/v1/scaling-policies", 1),
        ("/v1/scaling-policies?cluster=default&service=web", 1),
        ("/v1/scaling-policies?service=api", 0),
        ("/v1/scheduled-actions?service=web", 1),
        ("/v1/scheduled-actions?cluster=other", 0),
    ] {
        let (st, list) = api.call("GET", path, None).await;
        assert_eq!(st, 200, "{path}");
        assert_eq!(list.as_array().unwrap().len(), n, "{path}: {list}");
    }
    let (st, _) = api
        .call("GET", &format!("{WEB}/scaling-policies/cpu"), None)
        .await;
    assert_eq!(st, 200);
    let (st, _) = api
        .call("DELETE", &format!("{WEB}/scaling-policies/cpu"), None)
        .await;
    assert_eq!(st, 200);
    let (st, e) = api
        .call("GET", &format!("{WEB}/scaling-policies/cpu"), None)
        .await;
    assert_eq!(
        (st, e["__type"].as_str()),
        (404, Some("ObjectNotFoundException"))
    );

    // Deregistering the target takes its policies and scheduled actions with it, and
    // leaves the service's count alone.
    api.call(
        "PUT",
        &format!("{WEB}/scaling-policies/cpu"),
        Some(cpu_policy("cpu")),
    )
    .await;
    let (st, _) = api
        .call("DELETE", &format!("{WEB}/scalable-target"), None)
        .await;
    assert_eq!(st, 200);
    assert!(api
        .db
        .scaling_policies(None, None)
        .await
        .unwrap()
        .is_empty());
    assert!(api
        .db
        .scheduled_actions(None, None)
        .await
        .unwrap()
        .is_empty());
    let (st, _) = api
        .call("GET", &format!("{WEB}/scalable-target"), None)
        .await;
    assert_eq!(st, 404);
    let (_, svc) = api.call("GET", WEB, None).await;
    assert_eq!(svc["desiredCount"], 2);
}

fn activity(db_id: String, at: f64, n: i64) -> ScalingActivity {
    ScalingActivity {
        activity_id: db_id,
        service_namespace: Default::default(),
        resource_id: "service/default/web".into(),
        scalable_dimension: Default::default(),
        description: format!("Setting desired count to {n}."),
        cause: "test".into(),
        start_time: at,
        end_time: Some(at + 1.0),
        status_code: ScalingActivityStatusCode::Successful,
        status_message: None,
        details: None,
        not_scaled_reasons: vec![],
    }
}

#[tokio::test]
async fn activities_are_listed_newest_first_and_kept_to_the_newest_hundred() {
    let api = start().await;
    let base = 1_800_000_000.0;
    let total = MAX_ACTIVITIES_PER_SERVICE + 5;
    // Written out of order: the key order follows the time in the id.
    for i in (0..total).rev() {
        let at = base + i as f64;
        let a = activity(db::new_activity_id(at), at, i as i64);
        api.db
            .put_scaling_activity("default", "web", &a)
            .await
            .unwrap();
    }
    let (st, list) = api
        .call("GET", &format!("{WEB}/scaling-activities"), None)
        .await;
    assert_eq!(st, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), MAX_ACTIVITIES_PER_SERVICE);
    assert_eq!(
        list[0]["description"],
        format!("Setting desired count to {}.", total - 1)
    );
    assert_eq!(
        list.last().unwrap()["description"],
        "Setting desired count to 5."
    );
    // Updating a kept activity rewrites it in place.
    let mut newest: ScalingActivity = serde_json::from_value(list[0].clone()).unwrap();
    newest.status_code = ScalingActivityStatusCode::Failed;
    api.db
        .put_scaling_activity("default", "web", &newest)
        .await
        .unwrap();
    let all = api.db.scaling_activities("default", "web").await.unwrap();
    assert_eq!(all.len(), MAX_ACTIVITIES_PER_SERVICE);
    assert_eq!(all[0].status_code, ScalingActivityStatusCode::Failed);

    let (st, e) = api
        .call(
            "GET",
            "/v1/clusters/default/services/nope/scaling-activities",
            None,
        )
        .await;
    assert_eq!(
        (st, e["__type"].as_str()),
        (404, Some("ServiceNotFoundException"))
    );
}

#[test]
fn activity_ids_sort_by_time() {
    let a = db::new_activity_id(1_800_000_000.123);
    let b = db::new_activity_id(1_800_000_000.124);
    let c = db::new_activity_id(1_900_000_000.0);
    assert!(a < b && b < c, "{a} {b} {c}");
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "7", "a version 7 UUID: {a}");
}

#[tokio::test]
async fn deleting_a_service_deletes_its_autoscaling_and_not_anothers() {
    let api = start().await;
    api.call("PUT", &format!("{WEB}/scalable-target"), Some(target(1, 5)))
        .await;
    api.call(
        "PUT",
        &format!("{WEB}/scaling-policies/cpu"),
        Some(cpu_policy("cpu")),
    )
    .await;
    let mut other = target(1, 3);
    other["resourceId"] = json!("service/default/api");
    let (st, _) = api
        .call(
            "PUT",
            "/v1/clusters/default/services/api/scalable-target",
            Some(other),
        )
        .await;
    assert_eq!(st, 200);
    let a = activity(db::new_activity_id(1.0), 1.0, 3);
    api.db
        .put_scaling_activity("default", "web", &a)
        .await
        .unwrap();

    let (st, svc) = api.call("DELETE", WEB, None).await;
    assert_eq!(st, 200, "{svc}");
    assert_eq!(svc["status"], "DRAINING");
    assert_eq!(svc["desiredCount"], 0);
    assert!(api
        .db
        .scalable_target("default", "web")
        .await
        .unwrap()
        .is_none());
    assert!(api
        .db
        .scaling_policies(None, None)
        .await
        .unwrap()
        .is_empty());
    assert!(api
        .db
        .scaling_activities("default", "web")
        .await
        .unwrap()
        .is_empty());
    assert!(api
        .db
        .scalable_target("default", "api")
        .await
        .unwrap()
        .is_some());
    let stored: Service = api
        .db
        .get(&db::service_key("default", "web"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(stored.status, "DRAINING");

    let (st, _) = api
        .call("DELETE", "/v1/clusters/default/services/gone", None)
        .await;
    assert_eq!(st, 404);
}
