//! Builders for the crate's unit tests: task definitions and specs from JSON.

use berth_model::ecs::TaskDefinition;

use crate::TaskSpec;

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
    }
}
