//! Volumes on the process runtime against real processes: a mount point is a link in
//! the container's mounts directory (its working directory unless it has a
//! `workingDirectory`; `BERTH_MOUNTS_DIR` names it), shared volumes outlive their tasks,
//! task volumes go with theirs, and a bind mount reaches the node's path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use berth_runtime::process::{ProcessRuntime, ProcessRuntimeConfig};
use berth_runtime::{ExecRequest, Runtime, TaskSpec};
use serde_json::json;

fn runtime(state_dir: &Path) -> Arc<ProcessRuntime> {
    ProcessRuntime::new(ProcessRuntimeConfig {
        state_dir: state_dir.to_path_buf(),
        shim: vec![env!("CARGO_BIN_EXE_berth-runtime-shim").to_string()],
        dns_server: None,
    })
    .unwrap()
}

/// A container that only waits (until berth stops it).
fn waiting(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "name": name, "image": "x", "command": ["sleep", "600"], "stopTimeout": 2,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Runs `script` with `sh -c` in `container` of the task; its stdout (exit code 0).
async fn sh(rt: &ProcessRuntime, spec: &TaskSpec, container: &str, script: &str) -> String {
    let out = rt
        .exec(
            &spec.task_arn,
            &ExecRequest {
                container: Some(container.into()),
                command: vec!["/bin/sh".into(), "-c".into(), script.into()],
                timeout: Duration::from_secs(30),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        out.exit_code,
        0,
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The working directory of container `idx`'s process.
fn process_cwd(s: &berth_runtime::TaskState, idx: usize) -> std::path::PathBuf {
    let pid = s.containers[idx].runtime_id.as_ref().unwrap();
    std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap()
}

async fn stop_and_remove(rt: &ProcessRuntime, spec: &TaskSpec) {
    rt.stop(&spec.task_arn).await.unwrap();
    rt.remove(&spec.task_arn).await.unwrap();
}

#[tokio::test]
async fn a_file_written_to_a_shared_volume_is_read_by_the_next_task() {
    let state = tempfile::tempdir().unwrap();
    let _reaper = Reaper(state.path().to_path_buf());
    let rt = runtime(state.path());
    let volumes = |autoprovision: bool| {
        json!([{"name": "keep", "dockerVolumeConfiguration": {
            "scope": "shared", "autoprovision": autoprovision, "driver": "local"}}])
    };

    // Missing and not to be provisioned: refused, as on Docker, and nothing is created.
    let refused = spec_with(
        &task_id("shared-missing"),
        json!({"volumes": volumes(false), "containerDefinitions": [waiting("app", json!({
            "mountPoints": [{"sourceVolume": "keep", "containerPath": "/data"}]}))]}),
    );
    let e = start_failure(&*rt, &refused).await;
    assert!(
        e.contains("volumes[0].dockerVolumeConfiguration: the shared volume \"keep\" does not exist and autoprovision is false"),
        "{e}"
    );
    assert!(!rt.tasks_dir().join(refused.task_id()).exists());
    assert!(!state.path().join("volumes/keep").exists());

    let first = spec_with(
        &task_id("shared-writer"),
        json!({"volumes": volumes(true), "containerDefinitions": [waiting("writer", json!({
            "mountPoints": [{"sourceVolume": "keep", "containerPath": "/data"}]}))]}),
    );
    let s = rt.start(&first).await.unwrap();
    let mounts = rt.tasks_dir().join(first.task_id()).join("writer/mounts");
    assert_eq!(
        process_cwd(&s, 0),
        mounts,
        "the mounts directory is the working directory"
    );
    let out = sh(
        &rt,
        &first,
        "writer",
        "echo hello from the first task > data/greeting; pwd; echo \"$BERTH_MOUNTS_DIR\"",
    )
    .await;
    let m = mounts.to_str().unwrap();
    assert_eq!(out, format!("{m}\n{m}\n"));
    stop_and_remove(&rt, &first).await;
    assert!(!rt.tasks_dir().join(first.task_id()).exists());

    // The next task mounts it elsewhere, and it now exists without autoprovision too.
    let second = spec_with(
        &task_id("shared-reader"),
        json!({"volumes": volumes(false), "containerDefinitions": [waiting("reader", json!({
            "mountPoints": [{"sourceVolume": "keep", "containerPath": "/srv/in", "readOnly": true}]}))]}),
    );
    rt.start(&second).await.unwrap();
    let out = sh(&rt, &second, "reader", "cat srv/in/greeting").await;
    assert_eq!(out, "hello from the first task\n");
    stop_and_remove(&rt, &second).await;
    assert_eq!(
        std::fs::read_to_string(state.path().join("volumes/keep/greeting")).unwrap(),
        "hello from the first task\n",
        "a shared volume outlives its tasks"
    );
}

#[tokio::test]
async fn a_task_volume_is_shared_by_its_containers_and_removed_with_the_task() {
    let state = tempfile::tempdir().unwrap();
    let _reaper = Reaper(state.path().to_path_buf());
    let rt = runtime(state.path());
    let spec = spec_with(
        &task_id("task-volume"),
        json!({
            "volumes": [{"name": "scratch"}, {"name": "cache", "dockerVolumeConfiguration": {"scope": "task"}}],
            "containerDefinitions": [
                waiting("app", json!({"mountPoints": [
                    {"sourceVolume": "scratch", "containerPath": "/scratch"},
                    {"sourceVolume": "cache", "containerPath": "/var/cache/app"},
                ]})),
                waiting("side", json!({"essential": false,
                    "volumesFrom": [{"sourceContainer": "app"}]})),
                waiting("plain", json!({"essential": false})),
            ],
        }),
    );
    let s = rt.start(&spec).await.unwrap();
    let task_dir = rt.tasks_dir().join(spec.task_id());
    let scratch = task_dir.join("volumes/scratch");
    sh(
        &rt,
        &spec,
        "app",
        "echo one > scratch/a; echo two > var/cache/app/b",
    )
    .await;
    assert_eq!(std::fs::read_to_string(scratch.join("a")).unwrap(), "one\n");
    let out = sh(&rt, &spec, "side", "cat scratch/a var/cache/app/b").await;
    assert_eq!(
        out, "one\ntwo\n",
        "volumesFrom gives the source's mount points"
    );
    assert_eq!(process_cwd(&s, 1), task_dir.join("side/mounts"));
    let out = sh(&rt, &spec, "plain", "echo \"[$BERTH_MOUNTS_DIR]\"").await;
    assert_eq!(
        out, "[]\n",
        "a container that mounts nothing gets no mounts directory"
    );
    assert_ne!(process_cwd(&s, 2), task_dir.join("plain/mounts"));

    stop_and_remove(&rt, &spec).await;
    assert!(!scratch.exists(), "the task volume went with its task");
    assert!(!task_dir.exists());
}

#[tokio::test]
async fn a_bind_mount_reaches_the_host_path_which_is_created_when_missing() {
    let state = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(state.path().to_path_buf());
    let rt = runtime(state.path());
    let source = host.path().join("not/yet/there");
    let spec = spec_with(
        &task_id("bind"),
        json!({
            "volumes": [{"name": "h", "host": {"sourcePath": source.to_str().unwrap()}}],
            "containerDefinitions": [waiting("app", json!({
                "workingDirectory": workdir.path().to_str().unwrap(),
                "mountPoints": [{"sourceVolume": "h", "containerPath": "/host"}]}))],
        }),
    );
    let s = rt.start(&spec).await.unwrap();
    assert!(source.is_dir(), "a missing bind source is created");
    assert_eq!(
        process_cwd(&s, 0),
        workdir.path().canonicalize().unwrap(),
        "workingDirectory still wins"
    );
    sh(
        &rt,
        &spec,
        "app",
        "echo bound > \"$BERTH_MOUNTS_DIR/host/file\"",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(source.join("file")).unwrap(),
        "bound\n"
    );
    stop_and_remove(&rt, &spec).await;
    assert_eq!(
        std::fs::read_to_string(source.join("file")).unwrap(),
        "bound\n",
        "removing the task leaves the node's path alone"
    );
}
