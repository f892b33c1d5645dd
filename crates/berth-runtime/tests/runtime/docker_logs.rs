//! `logConfiguration` on the real engine: a container with `logDriver: none` leaves no
//! output for the runtime's logs API, while json-file and awslogs containers (awslogs
//! being kept with json-file in berth's own log store) can be read like any other. Like
//! `docker.rs`, these tests fail (they do not skip) when the engine is unreachable.

use crate::support::docker_engine::*;
use crate::support::*;
use berth_runtime::docker::{DockerRuntime, LABEL_AWSLOGS_STREAM};
use berth_runtime::Runtime;
use futures::StreamExt;
use serde_json::{json, Value};

fn app(name: &str, log_configuration: Value) -> Value {
    json!({
        "name": name, "image": IMAGE, "stopTimeout": 5,
        "portMappings": [{"containerPort": 8080}],
        "logConfiguration": log_configuration,
    })
}

/// Everything the runtime's logs API gives for `container`, or the error it gives.
async fn read_logs(rt: &DockerRuntime, arn: &str, container: &str) -> Result<String, String> {
    let mut s = rt
        .logs(arn, Some(container), false)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn docker_none_leaves_no_readable_logs_while_json_file_and_awslogs_do() {
    let cluster = task_id("log_drivers_");
    let rt = runtime(&cluster).await;
    let id = task_id("dklogs");
    let mut spec = spec_with(
        &id,
        json!({"containerDefinitions": [
            app("plain", json!({"logDriver": "json-file", "options": {"max-size": "1m"}})),
            app("aws", json!({"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/web", "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "ecs"}})),
            app("quiet", json!({"logDriver": "none"})),
        ]}),
    );
    spec.cluster = cluster.clone();
    let _c = Cleanup(spec.task_arn.clone());
    let s = rt.start(&spec).await.unwrap();
    // Each container answers, so each has written its "listening on" line.
    for idx in 0..3 {
        let (status, _) = get_when_up(host_port(&s, idx), "/").await;
        assert_eq!(status, 200, "container {idx}");
    }
    // The awslogs container carries its ECS stream name.
    let stream = format!("ecs/aws/{}", spec.task_id());
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label={LABEL_AWSLOGS_STREAM}={stream}"))
        .output()
        .expect("docker CLI");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count(),
        1,
        "one container labelled {stream}"
    );
    rt.stop(&spec.task_arn).await.unwrap();

    for name in ["plain", "aws"] {
        let logs = read_logs(&rt, &spec.task_arn, name).await.unwrap();
        assert!(logs.contains("listening on 0.0.0.0:8080"), "{name}: {logs}");
        assert!(logs.contains("got SIGTERM"), "{name}: {logs}");
    }
    // The engine keeps nothing to read back for `none`.
    let err = read_logs(&rt, &spec.task_arn, "quiet").await.unwrap_err();
    assert!(
        err.contains("configured logging driver does not support reading"),
        "{err}"
    );
    rt.remove(&spec.task_arn).await.unwrap();
}
