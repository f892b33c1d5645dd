//! What the agent needs from the control plane, as a trait over the contract's messages
//! ([`berth_model::agent`] and model resources), so it can be served in-process (as
//! `berth server` does) or over the network without the agent noticing.
//!
//! What it does not do: implement that API (berth-control's `AgentService` does; the
//! binary connects the two).

use async_trait::async_trait;
use berth_model::agent::{TaskRoleCredentials, TaskStateChange};
use berth_model::ecs::{ContainerInstance, Task, TaskDefinition};
use berth_model::task_secrets::TaskSecrets;
use berth_runtime::RuntimeError;
use tokio::sync::watch;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The control plane refused or could not answer a call.
    #[error("control plane: {message}")]
    ControlPlane { message: String },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

pub type Result<T> = std::result::Result<T, AgentError>;

/// What the agent needs from the control plane.
#[async_trait]
pub trait AgentApi: Send + Sync + 'static {
    /// Creates or refreshes the instance record; returns it as stored.
    async fn register_instance(&self, instance: ContainerInstance) -> Result<ContainerInstance>;
    /// Every task placed on the instance, stopped ones included until they are forgotten.
    async fn assigned_tasks(&self, container_instance_arn: &str) -> Result<Vec<Task>>;
    async fn task_definition(&self, arn: &str) -> Result<Option<TaskDefinition>>;
    /// The values of a task's container `secrets`, resolved by the control plane, or why
    /// the task must not start. Asked only for tasks whose definition has secrets; a
    /// control plane without a secret store refuses.
    async fn task_secrets(&self, task_arn: &str) -> Result<TaskSecrets> {
        let _ = task_arn;
        Ok(TaskSecrets::refused(
            "this control plane has no secret store",
        ))
    }
    /// Reports a change in a task's state; the control plane applies it atomically with
    /// the rules written on [`TaskStateChange`]. Returns the task as stored afterwards,
    /// `None` when there is no such task.
    async fn submit_task_state_change(&self, change: TaskStateChange) -> Result<Option<Task>>;
    /// Tells the control plane the agent is alive (about every
    /// [`HEARTBEAT_INTERVAL`](crate::agent::HEARTBEAT_INTERVAL)). A remote link that
    /// already proves it (a held stream) keeps the default, which does nothing.
    async fn heartbeat(&self, container_instance_arn: &str) -> Result<()> {
        let _ = container_instance_arn;
        Ok(())
    }

    /// Fresh credentials of the role that task `task_arn` (placed on
    /// `container_instance_arn`) names as its `taskRoleArn`. The default refuses: a
    /// control plane that mints none.
    async fn task_role_credentials(
        &self,
        container_instance_arn: &str,
        task_arn: &str,
    ) -> Result<TaskRoleCredentials> {
        let _ = (container_instance_arn, task_arn);
        Err(AgentError::ControlPlane {
            message: "this control plane hands out no task role credentials".into(),
        })
    }

    /// Bumps whenever something the agent may care about changed. A hint only (the
    /// agent also converges on a timer), so a remote implementation may long-poll for it
    /// or never bump it.
    fn changes(&self) -> watch::Receiver<u64>;
}
