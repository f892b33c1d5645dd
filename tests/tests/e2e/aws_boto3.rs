//! End-to-end test of the AWS front door through boto3, unchanged: the script
//! `tests/aws/boto3_flow.py` runs ECS's flow with paginators and waiters and
//! Application Auto Scaling's scalable target, target tracking policy and scheduled
//! action against the real `berth` binary (tasks as local processes); every check is
//! an assert in the script, and berth's own API confirms what it did. The server has
//! authentication on (berth's default): boto3 signs with the admin's access key from
//! the data directory's credentials file, and berth's API is read back signed by the
//! AWS CLI.

use crate::venv;

use anyhow::Result;
use berth_testkit::Server;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_ecs_and_application_auto_scaling() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let server = Server::launch_guarded(&data, None, "process", &[]).await?;
    let (id, secret) = venv::admin_key(&data);
    venv::sign_with(&server.api, &id, &secret);
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

    // berth saw the same (read back through the front door, signed): three revisions,
    // the cluster, no autoscaling left; and unsigned, nothing is answered.
    let ep = server.api.as_str();
    let tds = venv::aws(
        ep,
        &["ecs", "list-task-definitions", "--family-prefix", "whoami"],
    );
    assert_eq!(
        tds["taskDefinitionArns"].as_array().map(Vec::len),
        Some(3),
        "{tds}"
    );
    let clusters = venv::aws(ep, &["ecs", "list-clusters"]);
    assert!(
        clusters["clusterArns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().ends_with(":cluster/boto")),
        "{clusters}"
    );
    let targets = venv::aws(
        ep,
        &[
            "application-autoscaling",
            "describe-scalable-targets",
            "--service-namespace",
            "ecs",
        ],
    );
    assert_eq!(
        targets["ScalableTargets"],
        serde_json::json!([]),
        "{targets}"
    );
    let unsigned = reqwest::Client::new()
        .post(format!("{ep}/"))
        .header(
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.ListClusters",
        )
        .header("Content-Type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await?;
    assert_eq!(unsigned.status(), 403);
    let body: Value = unsigned.json().await?;
    assert_eq!(body["__type"], "MissingAuthenticationToken", "{body}");
    Ok(())
}
