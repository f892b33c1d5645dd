//! [`Change`]: one line of apply's report.

use serde::{Deserialize, Serialize};

/// One line of what apply did (or would do, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// cluster, namespace, task-definition, target-group, load-balancer, service,
    /// scalable-target, scaling-policy or scheduled-action.
    pub kind: String,
    pub name: String,
    /// created, updated, registered or unchanged.
    pub action: String,
    /// Members the resource sets that berth stores but does not apply, each as
    /// `field: reason` (`berth_model::ecs::field_support`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub(super) fn change(kind: &str, name: impl Into<String>, action: &str) -> Change {
    Change {
        kind: kind.into(),
        name: name.into(),
        action: action.into(),
        warnings: Vec::new(),
    }
}
