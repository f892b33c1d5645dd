//! Exec on the Docker runtime against the real engine: the command runs inside the
//! container (the demo image is `FROM scratch`, so the command is the demo binary
//! itself). Fails, does not skip, when the engine is unreachable.

use std::time::Duration;

use crate::support::docker_engine::*;
use crate::support::*;
use berth_runtime::{ExecRequest, Runtime, RuntimeError};
use serde_json::json;

const WHOAMI: &str = "/usr/local/bin/berth-whoami";

fn request(command: &[&str]) -> ExecRequest {
    ExecRequest {
        container: None,
        command: command.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn docker_exec_runs_inside_the_container_and_returns_its_exit_code() {
    let cluster = task_id("exec_inside_");
    let rt = runtime(&cluster).await;
    let id = task_id("dkexec");
    let mut spec = spec(
        &id,
        json!([{"name": "web", "image": IMAGE, "portMappings": [{"containerPort": 8080}],
                "stopTimeout": 2}]),
    );
    spec.cluster = cluster.clone();
    let _c = Cleanup(spec.task_arn.clone());
    let s = rt.start(&spec).await.unwrap();
    get_when_up(host_port(&s, 0), "/").await;

    // The container's own port 8080, reachable only from inside its network namespace
    // at that number.
    let ok = rt
        .exec(
            &spec.task_arn,
            &request(&[WHOAMI, "check", "http://127.0.0.1:8080/"]),
        )
        .await
        .unwrap();
    assert_eq!(ok.container, "web");
    assert_eq!(ok.exit_code, 0, "{}", String::from_utf8_lossy(&ok.stderr));

    let refused = rt
        .exec(
            &spec.task_arn,
            &request(&[WHOAMI, "check", "http://127.0.0.1:1/"]),
        )
        .await
        .unwrap();
    assert_eq!(refused.exit_code, 1);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("whoami check: http://127.0.0.1:1/"),
        "{stderr}"
    );

    let usage = rt
        .exec(&spec.task_arn, &request(&[WHOAMI, "resolve"]))
        .await
        .unwrap();
    assert_eq!(usage.exit_code, 64);

    let missing = rt
        .exec(&spec.task_arn, &request(&["/bin/sh", "-c", "true"]))
        .await;
    match missing {
        Ok(out) => assert!(
            out.exit_code == 126 || out.exit_code == 127,
            "a program not in the image: {out:?}"
        ),
        Err(e) => assert!(matches!(e, RuntimeError::ExecFailed { .. }), "{e}"),
    }

    rt.stop(&spec.task_arn).await.unwrap();
    let stopped = rt
        .exec(&spec.task_arn, &request(&[WHOAMI]))
        .await
        .unwrap_err();
    assert!(
        matches!(stopped, RuntimeError::ContainerNotRunning { .. }),
        "{stopped}"
    );
    rt.remove(&spec.task_arn).await.unwrap();
}
