//! `berth drain <instance>` and `berth activate <instance>`: set a container instance
//! DRAINING (no new tasks; its service tasks move to other instances) or ACTIVE again,
//! through `POST /v1/clusters/{c}/container-instances/{id}/state`.
//!
//! It does not wait for the tasks to move: `berth get container-instances` shows the
//! instance's running task count going to 0.

use anyhow::Result;
use serde_json::Value;

use crate::client::{s, Client};

/// Sets `instance` (an id, ARN or unique id prefix) of `cluster` to `status` and
/// prints the outcome (the instance as JSON with `json`).
pub async fn set_status(
    client: &Client,
    instance: &str,
    cluster: &str,
    status: &str,
    json: bool,
) -> Result<()> {
    let body = serde_json::json!({ "status": status });
    let v = client
        .post(
            &format!("/v1/clusters/{cluster}/container-instances/{instance}/state"),
            &body,
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", summary(&v));
    }
    Ok(())
}

/// One line about the instance `v` as the API returned it.
fn summary(v: &Value) -> String {
    let status = s(&v["status"]);
    let next = if status == "DRAINING" {
        "; its service tasks move to other instances, and it stays DRAINING until `berth activate`"
    } else {
        ""
    };
    format!(
        "container instance {} {status} ({} running tasks, {} pending){next}",
        s(&v["ec2InstanceId"]),
        s(&v["runningTasksCount"]),
        s(&v["pendingTasksCount"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_the_status_and_the_tasks_left() {
        let v = serde_json::json!({"ec2InstanceId": "i-1", "status": "DRAINING",
            "runningTasksCount": 2, "pendingTasksCount": 0});
        assert_eq!(
            summary(&v),
            "container instance i-1 DRAINING (2 running tasks, 0 pending); its service tasks move to other instances, and it stays DRAINING until `berth activate`"
        );
        let v = serde_json::json!({"ec2InstanceId": "i-1", "status": "ACTIVE",
            "runningTasksCount": 0, "pendingTasksCount": 0});
        assert_eq!(
            summary(&v),
            "container instance i-1 ACTIVE (0 running tasks, 0 pending)"
        );
    }
}
