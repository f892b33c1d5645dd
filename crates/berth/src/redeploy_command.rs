//! `berth redeploy <service>`: force a new deployment of a service with its current task
//! definition, through `POST /v1/clusters/{c}/services/{s}/deployments` (ECS's
//! UpdateService with `forceNewDeployment`).
//!
//! It does not wait for the tasks to be replaced: `berth describe service <service>`
//! shows the new PRIMARY deployment's rollout state going to COMPLETED.

use anyhow::Result;
use serde_json::Value;

use crate::client::{s, Client};

/// Forces a new deployment of `service` of `cluster` and prints the outcome (the
/// service as JSON with `json`).
pub async fn run(client: &Client, service: &str, cluster: &str, json: bool) -> Result<()> {
    let v = client
        .post(
            &format!("/v1/clusters/{cluster}/services/{service}/deployments"),
            &serde_json::json!({}),
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", summary(&v));
    }
    Ok(())
}

/// One line about the new deployment of the service `v` as the API returned it.
fn summary(v: &Value) -> String {
    let primary = &v["deployments"][0];
    format!(
        "service {}: deployment {} started ({} tasks of {} replace the running ones)",
        s(&v["serviceName"]),
        s(&primary["id"]),
        s(&primary["desiredCount"]),
        s(&primary["taskDefinition"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_new_deployment() {
        let v = serde_json::json!({"serviceName": "web", "deployments": [
            {"id": "ecs-svc/abc", "status": "PRIMARY", "desiredCount": 2,
             "taskDefinition": "arn:berth:ecs:local:000000000000:task-definition/web:1"},
            {"id": "ecs-svc/old", "status": "ACTIVE"}]});
        assert_eq!(
            summary(&v),
            "service web: deployment ecs-svc/abc started (2 tasks of arn:berth:ecs:local:000000000000:task-definition/web:1 replace the running ones)"
        );
    }
}
