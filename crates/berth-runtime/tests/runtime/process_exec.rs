//! Exec on the process runtime: the command runs beside the task's process, with the
//! container's environment and working directory, and gives back its output and exit
//! code; one running past its timeout is killed.

use std::time::Duration;

use crate::support::*;
use berth_runtime::process::{ProcessRuntime, ProcessRuntimeConfig};
use berth_runtime::{ExecRequest, Runtime, RuntimeError};
use serde_json::json;

fn request(container: Option<&str>, command: &[&str], timeout: Duration) -> ExecRequest {
    ExecRequest {
        container: container.map(String::from),
        command: command.iter().map(|s| s.to_string()).collect(),
        timeout,
    }
}

#[tokio::test]
async fn exec_runs_beside_the_task_with_its_environment_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let rt = ProcessRuntime::new(ProcessRuntimeConfig {
        state_dir: dir.path().to_path_buf(),
        shim: vec![env!("CARGO_BIN_EXE_berth-runtime-shim").to_string()],
        dns_server: None,
    })
    .unwrap();
    let spec = spec(
        &task_id("prexec"),
        json!([
            {"name": "side", "image": "x", "essential": false,
             "command": ["sleep", "30"]},
            {"name": "web", "image": "berth/whoami", "command": [whoami_str()],
             "portMappings": [{"containerPort": 8080}], "stopTimeout": 5,
             "workingDirectory": workdir.path().to_str().unwrap(),
             "environment": [{"name": "GREETING", "value": "hello"}]},
        ]),
    );
    let s = rt.start(&spec).await.unwrap();
    let port = host_port(&s, 1);
    let script = "echo \"$GREETING $BERTH_CONTAINER_NAME $PORT\"; pwd; echo oops >&2; exit 7";
    let long = Duration::from_secs(30);

    // No container named: the first essential one, `web`.
    let out = rt
        .exec(
            &spec.task_arn,
            &request(None, &["/bin/sh", "-c", script], long),
        )
        .await
        .unwrap();
    assert_eq!(out.container, "web");
    assert_eq!(out.exit_code, 7);
    let canonical = workdir.path().canonicalize().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("hello web {port}\n{}\n", canonical.display())
    );
    assert_eq!(out.stderr, b"oops\n");
    assert!(!out.truncated);

    // The whoami binary itself, checking the task's own port from beside it.
    let url = format!("http://127.0.0.1:{port}/");
    let out = rt
        .exec(
            &spec.task_arn,
            &request(Some("web"), &[&whoami_str(), "check", &url], long),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));

    let named = rt
        .exec(
            &spec.task_arn,
            &request(
                Some("side"),
                &["/bin/sh", "-c", "echo $BERTH_CONTAINER_NAME"],
                long,
            ),
        )
        .await
        .unwrap();
    assert_eq!(named.stdout, b"side\n");

    let missing = rt
        .exec(
            &spec.task_arn,
            &request(None, &["/nonexistent/program"], long),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, RuntimeError::ExecFailed { container, message, .. }
            if container == "web" && message.contains("/nonexistent/program")),
        "{missing}"
    );

    let slow = rt
        .exec(
            &spec.task_arn,
            &request(None, &["sleep", "30"], Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert!(matches!(slow, RuntimeError::ExecTimedOut { .. }), "{slow}");

    rt.stop(&spec.task_arn).await.unwrap();
    let stopped = rt
        .exec(&spec.task_arn, &request(None, &["true"], long))
        .await
        .unwrap_err();
    assert!(
        matches!(stopped, RuntimeError::ContainerNotRunning { .. }),
        "{stopped}"
    );
    rt.remove(&spec.task_arn).await.unwrap();
}
