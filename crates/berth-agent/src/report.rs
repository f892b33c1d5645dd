//! What the agent reports: a runtime's [`TaskState`] turned into the contract's
//! [`TaskStateChange`]s.
//!
//! What it does not do: apply a report to a task record (the control plane does).

use berth_model::agent::{ContainerStateChange, TaskStateChange};
use berth_model::ecs::{StopCode, Task, TaskStatus};
use berth_model::time::Timestamp;
use berth_runtime::{ContainerStatus, TaskState};

/// Each container as the runtime sees it.
pub fn container_changes(st: &TaskState) -> Vec<ContainerStateChange> {
    st.containers
        .iter()
        .map(|c| ContainerStateChange {
            container_name: c.name.clone(),
            runtime_id: c.runtime_id.clone(),
            status: match c.status {
                ContainerStatus::Pending => TaskStatus::Pending,
                ContainerStatus::Running => TaskStatus::Running,
                ContainerStatus::Stopped => TaskStatus::Stopped,
            },
            exit_code: c.exit_code,
            reason: c.reason.clone(),
            health_status: c.health,
            network_bindings: c.network_bindings.clone(),
            private_ipv4_address: c.private_ip.clone(),
        })
        .collect()
}

/// The task runs as `st` shows; `started_at` when the agent started or adopted it.
pub fn running(st: &TaskState, started_at: Option<Timestamp>) -> TaskStateChange {
    TaskStateChange::running(&st.task_arn, started_at)
        .with_containers(container_changes(st), st.health())
}

/// The runtime stopped `task` and reports `st`. `failed_start` marks an interrupted
/// start. The stop code is the control plane's when it asked the task to stop (it keeps
/// its own anyway), else the essential container's exit.
pub fn stopped(task: &Task, st: &TaskState, failed_start: bool, at: Timestamp) -> TaskStateChange {
    let (code, reason) = if failed_start {
        (
            StopCode::TaskFailedToStart,
            "Task start was interrupted".to_string(),
        )
    } else if let (TaskStatus::Stopped, Some(code)) = (task.desired_status, task.stop_code) {
        (code, task.stopped_reason.clone().unwrap_or_default())
    } else {
        let which = st
            .essential_stopped()
            .map(|c| c.name.clone())
            .unwrap_or_default();
        (
            StopCode::EssentialContainerExited,
            format!("Essential container in task exited ({which})"),
        )
    };
    TaskStateChange::stopped(&task.task_arn, code, reason, at)
        .with_containers(container_changes(st), st.health())
}
