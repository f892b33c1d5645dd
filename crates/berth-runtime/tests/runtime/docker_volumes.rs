//! Task volumes on the real engine: a shared Docker volume keeps what one task wrote for
//! the task that replaces it, a task-scoped volume goes with its task, a read-only mount
//! refuses writes, a host path is bind-mounted. The demo app writes through its
//! `--signal-file` (the name of the signal it got, on stop); the tests read the files with
//! `docker cp` or on the host. Like `docker.rs`, these tests fail (they do not skip) when
//! the engine is unreachable.

use crate::support::docker_engine::*;
use crate::support::*;
use berth_runtime::docker::{DockerRuntime, LABEL_TASK_ARN};
use berth_runtime::{ContainerStatus, Runtime};
use futures::StreamExt;
use serde_json::{json, Value};

/// Removes a task's containers, and the named volumes, however the test ends.
struct CleanupWithVolumes {
    task_arns: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for CleanupWithVolumes {
    fn drop(&mut self) {
        for arn in &self.task_arns {
            let out = docker_cli(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label={LABEL_TASK_ARN}={arn}"),
            ]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker_cli(&["rm", "-f", id]);
            }
        }
        for v in &self.volumes {
            let _ = docker_cli(&["volume", "rm", "-f", v]);
        }
    }
}

fn volume_exists(name: &str) -> bool {
    docker_cli(&["volume", "inspect", name]).status.success()
}

/// The content of `path` in container `container` (running or not), as `docker cp`
/// streams it (a tar archive, which holds small text files as they are); None when the
/// path does not exist there.
fn file_in_container(container: &str, path: &str) -> Option<String> {
    let out = docker_cli(&["cp", &format!("{container}:{path}"), "-"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn task(cluster: &str, id: &str, td: Value) -> berth_runtime::TaskSpec {
    let mut s = spec_with(id, td);
    s.cluster = cluster.to_string();
    s
}

/// A demo app container that records the signals it gets in `signal_file`.
fn app(name: &str, signal_file: Option<&str>, mount_points: Value) -> Value {
    let command: Vec<&str> = signal_file
        .map(|f| vec!["--signal-file", f])
        .unwrap_or_default();
    json!({
        "name": name, "image": IMAGE, "command": command, "stopTimeout": 5,
        "mountPoints": mount_points,
    })
}

async fn logs(rt: &DockerRuntime, arn: &str, container: &str) -> String {
    let mut s = rt.logs(arn, Some(container), false).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits (up to 20 s) until `container` of task `arn` has said it listens: its signal
/// handlers are installed by then, so a SIGTERM is recorded rather than fatal.
async fn wait_listening(rt: &DockerRuntime, arn: &str, container: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = logs(rt, arn, container).await;
        if text.contains("listening on") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{container} never said it listens: {text:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_shared_volume_outlives_the_task_that_wrote_it() {
    let cluster = task_id("volumes_shared");
    let rt = runtime(&cluster).await;
    let volume = task_id("berth-test-shared");
    let first = task(
        &cluster,
        &task_id("volshared1"),
        json!({
            "volumes": [{"name": volume, "dockerVolumeConfiguration": {
                "scope": "shared", "autoprovision": true, "labels": {"purpose": "test"}}}],
            "containerDefinitions": [app("writer", Some("/data/signals"),
                json!([{"sourceVolume": volume, "containerPath": "/data"}]))],
        }),
    );
    // The replacement: the volume must exist now (no autoprovision), and it reads only.
    let second = task(
        &cluster,
        &task_id("volshared2"),
        json!({
            "volumes": [{"name": volume, "dockerVolumeConfiguration": {
                "scope": "shared", "autoprovision": false}}],
            "containerDefinitions": [app("reader", None,
                json!([{"sourceVolume": volume, "containerPath": "/data", "readOnly": true}]))],
        }),
    );
    let _c = CleanupWithVolumes {
        task_arns: vec![first.task_arn.clone(), second.task_arn.clone()],
        volumes: vec![volume.clone()],
    };
    assert!(!volume_exists(&volume));

    let s = rt.start(&first).await.unwrap();
    assert_eq!(s.containers[0].status, ContainerStatus::Running);
    assert!(volume_exists(&volume), "autoprovisioned");
    wait_listening(&rt, &first.task_arn, "writer").await;
    rt.stop(&first.task_arn).await.unwrap();
    rt.remove(&first.task_arn).await.unwrap();
    assert!(volume_exists(&volume), "a shared volume outlives its task");

    let s = rt.start(&second).await.unwrap();
    assert_eq!(s.containers[0].status, ContainerStatus::Running);
    let reader = format!("berth-{}-reader", second.task_id());
    let seen = file_in_container(&reader, "/data/signals").expect("the file is in the volume");
    assert!(seen.contains("SIGTERM\n"), "{seen:?}");
    rt.stop(&second.task_arn).await.unwrap();
    rt.remove(&second.task_arn).await.unwrap();
    assert!(volume_exists(&volume));

    // Autoprovisioning over an existing volume with other labels is refused.
    let differing = task(
        &cluster,
        &task_id("volshared3"),
        json!({
            "volumes": [{"name": volume, "dockerVolumeConfiguration": {
                "scope": "shared", "autoprovision": true, "labels": {"purpose": "other"}}}],
            "containerDefinitions": [app("c", None,
                json!([{"sourceVolume": volume, "containerPath": "/data"}]))],
        }),
    );
    let message = start_failure(&*rt, &differing).await;
    assert!(
        message.contains("volumes[0].dockerVolumeConfiguration.labels")
            && message.contains("purpose=\"test\""),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_shared_volume_without_autoprovision_is_refused() {
    let cluster = task_id("volumes_missing");
    let rt = runtime(&cluster).await;
    let volume = task_id("berth-test-absent");
    let spec = task(
        &cluster,
        &task_id("volmissing"),
        json!({
            "volumes": [{"name": volume, "dockerVolumeConfiguration": {"scope": "shared"}}],
            "containerDefinitions": [app("c", None,
                json!([{"sourceVolume": volume, "containerPath": "/data"}]))],
        }),
    );
    let _c = CleanupWithVolumes {
        task_arns: vec![spec.task_arn.clone()],
        volumes: vec![volume.clone()],
    };
    let message = start_failure(&*rt, &spec).await;
    assert!(
        message.contains("volumes[0].dockerVolumeConfiguration")
            && message.contains(&volume)
            && message.contains("autoprovision"),
        "{message}"
    );
    assert!(!volume_exists(&volume), "nothing provisioned");
    let listed = rt.list().await.unwrap();
    assert!(
        listed.iter().all(|t| t.task_arn != spec.task_arn),
        "no task left"
    );
}

#[tokio::test]
async fn a_task_scoped_volume_goes_with_its_task_and_read_only_mounts_refuse_writes() {
    let cluster = task_id("volumes_task");
    let rt = runtime(&cluster).await;
    let spec = task(
        &cluster,
        &task_id("voltask"),
        json!({
            "volumes": [{"name": "scratch"}],
            "containerDefinitions": [
                app("writer", Some("/data/writer"),
                    json!([{"sourceVolume": "scratch", "containerPath": "/data"}])),
                app("reader", Some("/data/reader"),
                    json!([{"sourceVolume": "scratch", "containerPath": "/data", "readOnly": true}])),
            ],
        }),
    );
    let volume = format!("berth-{}-scratch", spec.task_id());
    let _c = CleanupWithVolumes {
        task_arns: vec![spec.task_arn.clone()],
        volumes: vec![volume.clone()],
    };
    let s = rt.start(&spec).await.unwrap();
    assert!(s
        .containers
        .iter()
        .all(|c| c.status == ContainerStatus::Running));
    assert!(volume_exists(&volume), "created for the task");
    wait_listening(&rt, &spec.task_arn, "writer").await;
    wait_listening(&rt, &spec.task_arn, "reader").await;
    rt.stop(&spec.task_arn).await.unwrap();

    let writer = format!("berth-{}-writer", spec.task_id());
    let reader = format!("berth-{}-reader", spec.task_id());
    let written = file_in_container(&writer, "/data/writer").expect("the writer wrote");
    assert!(written.contains("SIGTERM\n"), "{written:?}");
    assert!(
        file_in_container(&reader, "/data/writer").is_some(),
        "the reader sees the same volume"
    );
    assert!(
        file_in_container(&reader, "/data/reader").is_none(),
        "a read-only mount took a write"
    );
    let reader_logs = logs(&rt, &spec.task_arn, "reader").await;
    assert!(
        reader_logs.contains("cannot write /data/reader") && reader_logs.contains("Read-only"),
        "{reader_logs}"
    );

    rt.remove(&spec.task_arn).await.unwrap();
    assert!(!volume_exists(&volume), "removed with its task");
}

#[tokio::test]
async fn a_host_source_path_is_bind_mounted() {
    let cluster = task_id("volumes_host");
    let rt = runtime(&cluster).await;
    let dir = std::env::temp_dir().join(task_id("berth-volumes-host"));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = task(
        &cluster,
        &task_id("volhost"),
        json!({
            "volumes": [{"name": "logs", "host": {"sourcePath": dir.to_str().unwrap()}}],
            "containerDefinitions": [app("c", Some("/logs/signals"),
                json!([{"sourceVolume": "logs", "containerPath": "/logs"}]))],
        }),
    );
    let _c = CleanupWithVolumes {
        task_arns: vec![spec.task_arn.clone()],
        volumes: vec![],
    };
    rt.start(&spec).await.unwrap();
    wait_listening(&rt, &spec.task_arn, "c").await;
    rt.stop(&spec.task_arn).await.unwrap();
    rt.remove(&spec.task_arn).await.unwrap();
    let written = std::fs::read_to_string(dir.join("signals")).expect("written on the host");
    assert_eq!(written, "SIGTERM\n");
    assert!(dir.is_dir(), "a host path stays");
    std::fs::remove_dir_all(&dir).unwrap();
}
