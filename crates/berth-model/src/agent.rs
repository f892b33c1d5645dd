//! The contract between the control plane and the node agents: what an agent reports
//! about the tasks placed on its container instance ([`TaskStateChange`], in the spirit of
//! ECS's `SubmitTaskStateChange`) and what it answers about them ([`TaskUsage`]).
//!
//! Plain serde types, camelCase JSON, so the agent API could be served over HTTP as is.
//! The other messages of that API are model resources already: an agent registers a
//! [`ContainerInstance`](crate::ecs::ContainerInstance), reads the
//! [`Task`](crate::ecs::Task)s placed on it and their
//! [`TaskDefinition`](crate::ecs::TaskDefinition)s.
//!
//! What it does not do: apply a change to a task record (berth-control does, with the
//! rules written on [`TaskStateChange`]) or observe a runtime (berth-agent does).

use serde::{Deserialize, Serialize};

use crate::ecs::{HealthStatus, NetworkBinding, StopCode, TaskStatus};
use crate::time::Timestamp;

/// The status an agent reports for a task: the three points of a task's life only the
/// node can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ReportedTaskStatus {
    /// The agent is about to start the task through its runtime.
    Pending,
    /// Every essential container runs (just started, adopted after a restart, or a
    /// fresh observation of a running task).
    Running,
    /// The task's containers stopped (or the runtime no longer has them).
    Stopped,
}

/// One container as the agent's runtime sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateChange {
    /// The container's name in its task definition.
    pub container_name: String,
    /// A process id or a Docker container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// PENDING, RUNNING or STOPPED.
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it stopped, e.g. `OutOfMemoryError: Container killed due to memory usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub health_status: HealthStatus,
    /// Empty when the runtime reported none (the recorded bindings are kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_bindings: Vec<NetworkBinding>,
    /// The task's own address in awsvpc mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ipv4_address: Option<String>,
}

/// A change in one task's state, as its agent saw it. The control plane applies it to
/// the task record atomically:
///
/// - every change first copies `containers` into the record's containers of the same
///   name and, when given, `healthStatus` into the task;
/// - `PENDING` moves a task that should run and has not got that far to PENDING;
///   otherwise it changes nothing (the agent then reads the returned task to decide
///   whether to start it);
/// - `RUNNING` moves a task not yet RUNNING to RUNNING (STOPPING when it was asked to
///   stop meanwhile: it was never registered anywhere, so it can be signalled at once)
///   and records `startedAt` (or the time it is applied) unless one is recorded;
/// - `STOPPED` records the task STOPPED with `stopCode` and `stoppedReason` unless the
///   control plane already recorded why it stops, with `stoppedAt`; a task already
///   STOPPED only takes the container changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStateChange {
    pub task_arn: String,
    pub status: ReportedTaskStatus,
    /// What the runtime reports of each container; empty when nothing was observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerStateChange>,
    /// The task's health over its essential containers, reported with `containers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    /// `STOPPED` only: why the task stopped, as far as the agent knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// `RUNNING` only: when the runtime started the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// `STOPPED` only: when the agent saw the task stop (ECS's `executionStoppedAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Timestamp>,
}

impl TaskStateChange {
    /// The agent is about to start `task_arn`.
    pub fn pending(task_arn: impl Into<String>) -> Self {
        Self::new(task_arn, ReportedTaskStatus::Pending)
    }

    /// The task runs. `started_at` is when the runtime started it, when the agent knows
    /// (a start or an adoption); an observation of a running task leaves it `None`.
    pub fn running(task_arn: impl Into<String>, started_at: Option<Timestamp>) -> Self {
        Self {
            started_at,
            ..Self::new(task_arn, ReportedTaskStatus::Running)
        }
    }

    /// The task stopped with `code` and `reason`.
    pub fn stopped(
        task_arn: impl Into<String>,
        code: StopCode,
        reason: impl Into<String>,
        stopped_at: Timestamp,
    ) -> Self {
        Self {
            stop_code: Some(code),
            stopped_reason: Some(reason.into()),
            stopped_at: Some(stopped_at),
            ..Self::new(task_arn, ReportedTaskStatus::Stopped)
        }
    }

    /// Adds what the runtime reports of the containers (and the task health over them).
    pub fn with_containers(
        mut self,
        containers: Vec<ContainerStateChange>,
        health: HealthStatus,
    ) -> Self {
        self.containers = containers;
        self.health_status = Some(health);
        self
    }

    fn new(task_arn: impl Into<String>, status: ReportedTaskStatus) -> Self {
        Self {
            task_arn: task_arn.into(),
            status,
            containers: Vec::new(),
            health_status: None,
            stop_code: None,
            stopped_reason: None,
            started_at: None,
            stopped_at: None,
        }
    }
}

/// A task's CPU and memory use, summed over its containers, as its node measures it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskUsage {
    /// CPU units in use (1024 = one core busy).
    pub cpu_units: f64,
    pub memory_bytes: u64,
}

/// Temporary credentials of a task's role (its definition's `taskRoleArn`), as the
/// control plane mints them for the node that runs the task. The node hands them to the
/// task's containers in ECS's container credentials shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRoleCredentials {
    /// `ASIA...`.
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Unix seconds.
    pub expiration: i64,
    pub role_arn: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_change_serializes_like_submit_task_state_change() {
        let c = TaskStateChange::stopped(
            "arn:task",
            StopCode::EssentialContainerExited,
            "Essential container in task exited (app)",
            12.5,
        )
        .with_containers(
            vec![ContainerStateChange {
                container_name: "app".into(),
                runtime_id: Some("42".into()),
                status: TaskStatus::Stopped,
                exit_code: Some(137),
                reason: None,
                health_status: HealthStatus::Unknown,
                network_bindings: Vec::new(),
                private_ipv4_address: None,
            }],
            HealthStatus::Unknown,
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["status"], "STOPPED");
        assert_eq!(json["stopCode"], "EssentialContainerExited");
        assert_eq!(json["stoppedAt"], 12.5);
        assert_eq!(json["containers"][0]["containerName"], "app");
        assert_eq!(json["containers"][0]["exitCode"], 137);
        assert!(json.get("startedAt").is_none(), "{json}");
        let back: TaskStateChange = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_pending_change_carries_only_its_task() {
        let json = serde_json::to_value(TaskStateChange::pending("arn:task")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"taskArn": "arn:task", "status": "PENDING"})
        );
    }
}
