//! `berth down`: takes a cluster's workload down and says what it stopped. Every service
//! is deleted (each drains its tasks first, as `berth delete service` does), every other
//! task is stopped (its targets drain first, as `berth stop` does), and the command waits
//! until every task of the cluster is STOPPED.
//!
//! What it does not do: delete load balancers, target groups, task definitions or the
//! cluster (`berth apply` brings the services back), or stop the server.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::client::Client;

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

fn short_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

async fn tasks(client: &Client, cluster: &str) -> Result<Vec<Value>> {
    Ok(client
        .get(&format!("/v1/tasks?cluster={cluster}"))
        .await?
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Deletes the services, stops the other tasks, waits for all to stop (at most
/// `timeout`), and prints each task it stopped.
pub async fn run(client: &Client, cluster: &str, timeout: Duration) -> Result<()> {
    let services = client
        .get(&format!("/v1/services?cluster={cluster}"))
        .await?
        .as_array()
        .cloned()
        .unwrap_or_default();
    let before: Vec<Value> = tasks(client, cluster)
        .await?
        .into_iter()
        .filter(|t| t["lastStatus"] != "STOPPED")
        .collect();
    for s in services.iter().filter(|s| s["status"] == "ACTIVE") {
        let name = text(s, "serviceName");
        client
            .delete(&format!("/v1/clusters/{cluster}/services/{name}"))
            .await?;
        println!("service {name} deleted (its tasks drain, then stop)");
    }
    for t in before
        .iter()
        .filter(|t| !text(t, "group").starts_with("service:") && t["desiredStatus"] != "STOPPED")
    {
        let id = short_id(t["taskArn"].as_str().unwrap_or("")).to_string();
        client
            .post(
                &format!("/v1/clusters/{cluster}/tasks/{id}/stop"),
                &json!({"reason": "Stopped by berth down"}),
            )
            .await?;
    }
    let started = Instant::now();
    loop {
        let left: Vec<Value> = tasks(client, cluster)
            .await?
            .into_iter()
            .filter(|t| t["lastStatus"] != "STOPPED")
            .collect();
        if left.is_empty() {
            break;
        }
        if started.elapsed() > timeout {
            let ids: Vec<String> = left
                .iter()
                .map(|t| {
                    format!(
                        "{} ({})",
                        short_id(&text(t, "taskArn")),
                        text(t, "lastStatus")
                    )
                })
                .collect();
            bail!(
                "--timeout: after {}s {} task(s) of cluster {cluster} have not stopped: {}",
                timeout.as_secs(),
                left.len(),
                ids.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for t in &before {
        println!(
            "stopped task {} ({})",
            short_id(&text(t, "taskArn")),
            text(t, "group")
        );
    }
    println!(
        "cluster {cluster} is down: {} service(s) deleted, {} task(s) stopped",
        services.iter().filter(|s| s["status"] == "ACTIVE").count(),
        before.len()
    );
    Ok(())
}
