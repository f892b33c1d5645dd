//! Builders for the crate's unit tests: task definitions and specs from JSON, and a fake
//! task for the shared skeleton.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use berth_model::ecs::TaskDefinition;
use serde_json::json;

use crate::task_core::{pending_state, TaskCore};
use crate::task_table::{RuntimeTask, TaskTable};
use crate::{ContainerStatus, TaskSpec};

/// A task definition of family `f` with the given `containerDefinitions` (a JSON array),
/// or the given partial task definition (a JSON object).
pub(crate) fn task_definition(containers_or_td: serde_json::Value) -> TaskDefinition {
    let mut td = if containers_or_td.is_array() {
        serde_json::json!({ "containerDefinitions": containers_or_td })
    } else {
        containers_or_td
    };
    td["family"] = "f".into();
    td["revision"] = 3.into();
    serde_json::from_value(td).expect("valid task definition")
}

/// A task `id` of cluster `default` running `td`.
pub(crate) fn task_spec(id: &str, td: TaskDefinition) -> TaskSpec {
    TaskSpec {
        task_arn: berth_model::arn::task("default", id),
        cluster: "default".into(),
        task_definition: td,
        secrets: Vec::new(),
    }
}

/// A task of neither runtime: its containers "start" and "stop" by changing its state.
pub(crate) struct FakeTask {
    pub(crate) core: TaskCore,
    /// How often [`RuntimeTask::state_changed`] ran.
    pub(crate) changes: AtomicUsize,
}

impl RuntimeTask for FakeTask {
    fn core(&self) -> &TaskCore {
        &self.core
    }
    fn state_changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) fn fake(spec: TaskSpec) -> Arc<FakeTask> {
    let state = pending_state(&spec, Vec::new());
    Arc::new(FakeTask {
        core: TaskCore::new(spec, state),
        changes: AtomicUsize::new(0),
    })
}

/// app needs db and init, db needs init; side needs nothing.
pub(crate) fn layered() -> TaskSpec {
    let c = |name: &str, on: &[&str]| {
        let deps: Vec<_> = on
            .iter()
            .map(|d| json!({"containerName": d, "condition": "START"}))
            .collect();
        json!({"name": name, "image": "x", "dependsOn": deps})
    };
    task_spec(
        "layered",
        task_definition(json!([
            c("app", &["db", "init"]),
            c("db", &["init"]),
            c("init", &[]),
            c("side", &[]),
        ])),
    )
}

/// Sets container `idx`'s status (and a runtime id) through the table.
pub(crate) fn set_status(
    table: &TaskTable<FakeTask>,
    task: &FakeTask,
    idx: usize,
    to: ContainerStatus,
) {
    table.update(task, |s| {
        s.containers[idx].status = to;
        s.containers[idx].runtime_id = Some(format!("id-{idx}"));
    });
}
