//! A process runtime killed between starting a container's shim and recording its pid:
//! the next runtime on the same state directory finds the shim by its command line and
//! adopts the running process instead of leaving it unowned.

use std::path::Path;
use std::sync::Arc;

use crate::support::*;
use berth_runtime::process::{ProcessRuntime, ProcessRuntimeConfig};
use berth_runtime::{ContainerStatus, Runtime};
use serde_json::json;

fn runtime_at(dir: &Path) -> Arc<ProcessRuntime> {
    ProcessRuntime::new(ProcessRuntimeConfig {
        state_dir: dir.to_path_buf(),
        shim: vec![env!("CARGO_BIN_EXE_berth-runtime-shim").to_string()],
        dns_server: None,
    })
    .unwrap()
}

#[tokio::test]
async fn a_started_process_whose_pid_was_not_recorded_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let first = runtime_at(dir.path());
    let spec = spec(
        &task_id("unrecorded"),
        json!([{
            "name": "web",
            "image": "berth/whoami",
            "command": [whoami_str()],
            "portMappings": [{"containerPort": 8080}],
            "stopTimeout": 2,
        }]),
    );
    let s = first.start(&spec).await.unwrap();
    let pid = s.containers[0].runtime_id.clone().unwrap();
    get_when_up(host_port(&s, 0), "/").await;
    drop(first);
    // What task.json holds when berth died after spawning the shim but before it
    // recorded the pid.
    let file = dir
        .path()
        .join("tasks")
        .join(spec.task_id())
        .join("task.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    record["procs"] = json!([null]);
    record["state"]["containers"][0]["status"] = json!("PENDING");
    record["state"]["containers"][0]["runtimeId"] = json!(null);
    std::fs::write(&file, serde_json::to_vec(&record).unwrap()).unwrap();

    let second = runtime_at(dir.path());
    let listed = second.list().await.unwrap();
    let t = listed.iter().find(|t| t.task_arn == spec.task_arn).unwrap();
    assert_eq!(t.containers[0].status, ContainerStatus::Running, "{t:?}");
    assert_eq!(t.containers[0].runtime_id.as_deref(), Some(pid.as_str()));
    // It is owned again: a stop ends it.
    let stopped = second.stop(&spec.task_arn).await.unwrap();
    assert_eq!(stopped.containers[0].status, ContainerStatus::Stopped);
    assert!(
        !Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap()
                .is_empty()
    );
}
