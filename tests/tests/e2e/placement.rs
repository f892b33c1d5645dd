//! Placement constraints through the real binary: a server started with
//! `--attribute zone=a` runs the service whose `memberOf` expression asks for zone a,
//! keeps the one asking for zone b without tasks and says why in its events (ECS's
//! wording), and `berth apply` refuses an expression that does not parse, naming the
//! field and the position, without changing anything.
//!
//! Tasks run as local processes (the demo app); nothing needs Docker.

use std::time::Duration;

use anyhow::Result;
use berth_testkit::{wait_until, Server};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(60);

/// The demo app's task definition and two services, each with a `memberOf` expression:
/// `in-a` also carries a constraint of its task definition.
fn stack(expression_b: &str) -> String {
    format!(
        r#"taskDefinitions:
  - family: whoami
    networkMode: bridge
    placementConstraints:
      - type: memberOf
        expression: attribute:berth.os-type == linux
    containerDefinitions:
      - name: web
        image: berth-whoami:latest
        entryPoint: ["berth-whoami"]
        cpu: 64
        memoryReservation: 32
        portMappings:
          - containerPort: 8080
            hostPort: 0
services:
  - serviceName: in-a
    taskDefinition: whoami
    desiredCount: 1
    placementConstraints:
      - type: memberOf
        expression: "attribute:zone == a and not(task:group == service:in-b)"
    placementStrategy:
      - type: spread
        field: attribute:zone
      - type: binpack
        field: memory
  - serviceName: in-b
    taskDefinition: whoami
    desiredCount: 1
    placementConstraints:
      - type: memberOf
        expression: "{expression_b}"
"#
    )
}

async fn service(server: &Server, name: &str) -> Result<Value> {
    server
        .get(&format!("/v1/clusters/default/services/{name}"))
        .await
}

/// The services as configured (live counters, deployments and events left out).
async fn desired_state(server: &Server) -> Result<Value> {
    let mut v = server.get("/v1/services").await?;
    for s in v.as_array_mut().into_iter().flatten() {
        let o = s.as_object_mut().expect("a service object");
        for k in ["runningCount", "pendingCount", "deployments", "events"] {
            o.remove(k);
        }
    }
    Ok(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_of_places_by_attribute_and_explains_what_it_cannot_place() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let extra = ["--attribute".to_string(), "zone=a".to_string()];
    let server = Server::launch_with(&data, None, "process", &extra).await?;
    let instance = server.instance_id();

    // The agent registers its instance once the API is up.
    let attrs = wait_until("the instance to register", SETTLE, || async {
        let instances = server.get("/v1/container-instances").await.ok()?;
        let attrs = instances.as_array()?.first()?["attributes"].clone();
        Some(attrs)
    })
    .await?;
    assert_eq!(attrs["zone"], "a", "{attrs}");
    assert_eq!(attrs["berth.os-type"], "linux", "{attrs}");

    let path = dir.path().join("placement.yaml");
    std::fs::write(&path, stack("attribute:zone == b"))?;
    server.apply_ok(&path);

    let running = wait_until("in-a's task to run", SETTLE, || async {
        let tasks = server.service_tasks("in-a").await.ok()?;
        let t = tasks.iter().find(|t| t["lastStatus"] == "RUNNING")?;
        Some(t.clone())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log()))?;
    let on = running["containerInstanceArn"].as_str().unwrap_or_default();
    assert!(on.ends_with(&instance), "{on} is this server's {instance}");

    let want = format!(
        "(service in-b) was unable to place a task because no container instance met all of \
         its requirements. The closest matching container-instance {instance} encountered \
         error \"MemberOf constraint unsatisfied\"."
    );
    let events = wait_until("in-b's placement failure event", SETTLE, || async {
        let svc = service(&server, "in-b").await.ok()?;
        let events = svc["events"].as_array()?.clone();
        events
            .iter()
            .any(|e| e["message"] == want.as_str())
            .then_some(events)
    })
    .await?;
    assert!(!events.is_empty());
    assert!(
        server.service_tasks("in-b").await?.is_empty(),
        "in-b has no task"
    );
    let b = service(&server, "in-b").await?;
    assert_eq!(
        (b["desiredCount"].as_i64(), b["runningCount"].as_i64()),
        (Some(1), Some(0))
    );

    // A bad expression is refused by name and position, and nothing changes.
    let before = desired_state(&server).await?;
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, stack("attribute:zone zzz"))?;
    let out = server.cli(&["apply", "-f", &bad.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "services[1].placementConstraints[0].expression: at 15: expected an operator \
             after \"attribute:zone\", found \"zzz\""
        ),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("placementConstraints").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        desired_state(&server).await?,
        before,
        "a refused stack changed the store"
    );
    Ok(())
}
