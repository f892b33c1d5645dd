//! End-to-end test of a forced new deployment (`berth redeploy`, ECS's UpdateService
//! with `forceNewDeployment`): the quickstart with tasks as local processes, continuous
//! load through its listener, then `berth redeploy whoami`. Every task is replaced by a
//! task of the new deployment (same task definition, new ids), no request fails, and the
//! service returns to steady state with the new PRIMARY deployment COMPLETED. Forcing a
//! deployment of a missing service, or with a body naming members, is refused and
//! changes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use berth_testkit::{quickstart, wait_until, Load, Server};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(120);

fn arns(tasks: &[Value]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter_map(|t| t["taskArn"].as_str())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_deployment_replaces_every_task_without_a_failed_request() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 3))).await?;
    server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let before = server.get("/v1/clusters/default/services/whoami").await?;
    let old_deployment = before["deployments"][0]["id"].as_str().unwrap().to_string();
    let definition = before["deployments"][0]["taskDefinition"].clone();
    let old_tasks = arns(&server.service_tasks("whoami").await?);
    assert_eq!(old_tasks.len(), 3);

    let addr = server.listener_addr("web").await?;
    let load = Load::start(&addr, 4);
    let started = std::time::Instant::now();
    let out = server.cli(&["redeploy", "whoami"]);
    assert!(
        out.status.success(),
        "berth redeploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let new_deployment = printed
        .split_whitespace()
        .find(|w| w.starts_with("ecs-svc/"))
        .unwrap_or_else(|| panic!("a deployment id in {printed:?}"))
        .to_string();
    assert_ne!(new_deployment, old_deployment);
    assert!(
        printed.starts_with(&format!(
            "service whoami: deployment {new_deployment} started"
        )),
        "{printed}"
    );

    // Every task replaced by one of the new deployment, then steady again.
    let service = wait_until("the forced deployment to complete", SETTLE, || async {
        let s = server
            .get("/v1/clusters/default/services/whoami")
            .await
            .ok()?;
        let deployments = s["deployments"].as_array()?;
        (deployments.len() == 1
            && deployments[0]["id"] == new_deployment.as_str()
            && deployments[0]["rolloutState"] == "COMPLETED")
            .then_some(s)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nserver log:\n{}", server.log()))?;
    server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let took = started.elapsed();
    let report = load.finish().await;
    eprintln!(
        "forced deployment of 3 tasks completed in {took:?}; load: {} ok, {} failed",
        report.ok, report.failed
    );
    assert_eq!(
        report.failed, 0,
        "no request failed during the forced deployment: {:?}",
        report.errors
    );
    assert!(report.ok > 0, "the load ran: {report:?}");

    let tasks = server.service_tasks("whoami").await?;
    let new_tasks = arns(&tasks);
    assert_eq!(new_tasks.len(), 3);
    assert!(
        new_tasks.is_disjoint(&old_tasks),
        "every task replaced: {old_tasks:?} then {new_tasks:?}"
    );
    for t in &tasks {
        assert_eq!(t["startedBy"], new_deployment.as_str(), "{t:#}");
        assert_eq!(t["taskDefinitionArn"], definition, "{t:#}");
    }
    let primary = &service["deployments"][0];
    assert_eq!(primary["status"], "PRIMARY");
    assert_eq!(primary["taskDefinition"], definition);
    assert_eq!(primary["runningCount"], 3);
    assert_eq!(service["runningCount"], 3);
    let events: Vec<&str> = service["events"]
        .as_array()
        .map(|es| es.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        events.first().copied(),
        Some("(service whoami) has reached a steady state."),
        "{events:#?}"
    );
    let all = server.get("/v1/tasks?service=whoami").await?;
    for arn in &old_tasks {
        let t = all
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["taskArn"] == arn.as_str()))
            .unwrap_or_else(|| panic!("task {arn} listed"));
        assert_eq!(t["desiredStatus"], "STOPPED", "{t:#}");
        assert_eq!(
            t["stoppedReason"],
            format!("Scaling activity initiated by (deployment {new_deployment})"),
            "{t:#}"
        );
        let id = arn.rsplit('/').next().unwrap_or("");
        assert!(
            events
                .iter()
                .any(|m| m.starts_with("(service whoami) has stopped")
                    && m.contains(&format!("(task {id})"))),
            "an event names the stop of {id}: {events:#?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|m| m.starts_with("(service whoami) has started")),
        "{events:#?}"
    );

    // A missing service: refused, naming it; nothing changes.
    let out = server.cli(&["redeploy", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ServiceNotFoundException"), "{err}");
    // A body with members: refused, naming the member; nothing changes.
    let api = std::fs::read_to_string(server.data_dir.join("api.addr"))?;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/clusters/default/services/whoami/deployments",
            api.trim()
        ))
        .json(&serde_json::json!({"taskDefinition": "whoami:1"}))
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await?;
    assert_eq!(v["__type"], "InvalidParameterException");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("taskDefinition: a forced deployment takes no members"),
        "{v}"
    );
    let after = server.get("/v1/clusters/default/services/whoami").await?;
    assert_eq!(after["deployments"], service["deployments"]);
    Ok(())
}
