//! Orphans of the process runtime: the shims another state directory left running are
//! found by a runtime on a new state directory, ignored while their owner is alive, and
//! stopped on request.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use berth_runtime::process::{ProcessRuntime, ProcessRuntimeConfig};
use berth_runtime::{LiveOwners, OrphanOwner, OrphanTask, Runtime};
use serde_json::json;

fn runtime_at(dir: &Path) -> Arc<ProcessRuntime> {
    ProcessRuntime::new(ProcessRuntimeConfig {
        state_dir: dir.to_path_buf(),
        shim: vec![env!("CARGO_BIN_EXE_berth-runtime-shim").to_string()],
        dns_server: None,
    })
    .unwrap()
}

async fn orphans_of(rt: &ProcessRuntime, live: &LiveOwners, arn: &str) -> Vec<OrphanTask> {
    rt.orphans(live)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.task_arn == arn)
        .collect()
}

#[tokio::test]
async fn another_state_dirs_tasks_are_orphans_until_stopped() {
    let old = tempfile::tempdir().unwrap();
    let _old_reaper = Reaper(old.path().to_path_buf());
    let new = tempfile::tempdir().unwrap();
    let _new_reaper = Reaper(new.path().to_path_buf());

    let first = runtime_at(old.path());
    let spec = spec(
        &task_id("orphan"),
        json!([{
            "name": "web",
            "image": "berth/whoami",
            "command": [whoami_str()],
            "portMappings": [{"containerPort": 8080}],
            "stopTimeout": 5,
        }]),
    );
    let s = first.start(&spec).await.unwrap();
    let pid: i32 = s.containers[0].runtime_id.clone().unwrap().parse().unwrap();
    get_when_up(host_port(&s, 0), "/").await;
    // The first node goes away; its task runs on.
    drop(first);

    let second = runtime_at(new.path());
    let none = LiveOwners::default();
    let found = orphans_of(&second, &none, &spec.task_arn).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let orphan = &found[0];
    assert_eq!(
        orphan.owner,
        OrphanOwner::StateDir(old.path().canonicalize().unwrap())
    );
    assert_eq!(orphan.cluster, "default");
    assert_eq!(orphan.runs, vec![whoami_str()]);
    assert!(
        orphan.runtime_ids.contains(&format!("pid {pid}")),
        "{orphan:?}"
    );

    // While the old state directory's node is alive, its tasks are its own.
    let mut live = LiveOwners::default();
    live.add_state_dir(old.path());
    assert!(orphans_of(&second, &live, &spec.task_arn).await.is_empty());
    // A runtime never counts its own tasks as orphans.
    let again = runtime_at(old.path());
    assert!(orphans_of(&again, &none, &spec.task_arn).await.is_empty());
    drop(again);

    second.remove_orphan(orphan).await.unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the orphan's process {pid} still runs"
    );
    assert!(orphans_of(&second, &none, &spec.task_arn).await.is_empty());
    // The shim recorded the exit in the old state directory, which stays.
    let exit = old
        .path()
        .join("tasks")
        .join(spec.task_id())
        .join("web/exit.json");
    berth_testkit::wait_until("the shim's exit record", Duration::from_secs(5), || {
        let exit = exit.clone();
        async move { exit.exists().then_some(()) }
    })
    .await
    .unwrap();
}
