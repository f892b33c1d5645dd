//! The contract by which a task's secrets reach its agent: the control plane resolves
//! the `secrets` of a task's containers from its secret store and answers the task's
//! agent with the values ([`TaskSecrets::Resolved`]) or with why the task cannot start
//! ([`TaskSecrets::Refused`], ECS's `ResourceInitializationError` reason).
//!
//! The values live only in these messages and in the environment the runtime gives the
//! container: `Debug` never prints a value, and nothing here is stored.
//!
//! What it does not do: resolve anything (berth-control does) or start a container
//! (berth-runtime does).

use serde::{Deserialize, Serialize};

/// The beginning of every refusal's reason, as ECS words it.
pub const RESOURCE_INITIALIZATION_ERROR: &str =
    "ResourceInitializationError: unable to pull secrets or registry auth";

/// One environment variable of one container, set from a secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVariable {
    pub container_name: String,
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for SecretVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretVariable")
            .field("container_name", &self.container_name)
            .field("name", &self.name)
            .field("value", &"<hidden>")
            .finish()
    }
}

/// The control plane's answer for a task's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskSecrets {
    /// Every secret of every container, resolved.
    Resolved { variables: Vec<SecretVariable> },
    /// The task must not start: the stopped reason to record
    /// (`ResourceInitializationError: unable to pull secrets or registry auth: ...`).
    Refused { reason: String },
}

impl TaskSecrets {
    /// A refusal whose reason is [`RESOURCE_INITIALIZATION_ERROR`] followed by `detail`.
    pub fn refused(detail: impl std::fmt::Display) -> Self {
        TaskSecrets::Refused {
            reason: format!("{RESOURCE_INITIALIZATION_ERROR}: {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_value_and_refusals_read_as_ecs_writes_them() {
        let v = SecretVariable {
            container_name: "app".into(),
            name: "DB_PASSWORD".into(),
            value: "hunter2".into(),
        };
        let shown = format!("{:?}", TaskSecrets::Resolved { variables: vec![v] });
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("DB_PASSWORD"), "{shown}");
        let TaskSecrets::Refused { reason } = TaskSecrets::refused("no such secret db") else {
            panic!("a refusal");
        };
        assert_eq!(
            reason,
            "ResourceInitializationError: unable to pull secrets or registry auth: no such secret db"
        );
    }
}
