//! End-to-end test of the AWS front door through boto3, unchanged: the script
//! `tests/aws/boto3_flow.py` runs ECS's flow with paginators and waiters and
//! Application Auto Scaling's scalable target, target tracking policy and scheduled
//! action against the real `berth` binary (tasks as local processes); every check is
//! an assert in the script, and berth's own API confirms what it did.

#[path = "../aws/venv.rs"]
#[allow(dead_code)]
mod venv;

use anyhow::Result;
use berth_testkit::Server;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_ecs_and_application_auto_scaling() -> Result<()> {
    let server = Server::start(None).await?;
    let script = berth_testkit::repo_root().join("tests/aws/boto3_flow.py");
    let out = tokio::task::spawn_blocking({
        let api = server.api.clone();
        move || {
            venv::command("python", &api)
                .arg(script)
                .output()
                .expect("running python")
        }
    })
    .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "boto3_flow.py failed ({}):\n{}\n{}\nserver log tail:\n{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr),
        server
            .log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))?;
    assert_eq!(summary["taskDefinitionPages"], 3, "{summary}");
    assert_eq!(summary["tasks"], 3, "{summary}");
    assert_eq!(summary["policyType"], "TargetTrackingScaling", "{summary}");
    assert_eq!(summary["scheduledActions"], 1, "{summary}");
    assert_eq!(summary["deleted"], true, "{summary}");

    // berth's own API saw the same: three revisions, the cluster, no autoscaling left.
    let tds = server.get("/v1/task-definitions").await?;
    assert_eq!(tds.as_array().map(Vec::len), Some(3), "{tds}");
    let clusters = server.get("/v1/clusters").await?;
    assert!(clusters
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["clusterName"] == "boto"));
    assert_eq!(
        server.get("/v1/scalable-targets").await?,
        serde_json::json!([])
    );
    Ok(())
}
