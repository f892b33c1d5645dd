//! The in-process links between `berth server`'s agent and its control plane: the
//! agent's [`AgentApi`] served by control's [`AgentService`], and control's [`TaskNodes`]
//! answered by the local agent's [`TaskQueries`]. Both only forward contract types; a
//! remote agent would put an HTTP client and server where these sit.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use berth_agent::{AgentApi, AgentError, TaskQueries};
use berth_control::task_nodes::LogStream;
use berth_control::{
    AgentService, ApiError, ControlError, ExecCommand, ExecResult, ExecSession, ExecSessionCommand,
    NodeError, TaskNodes,
};
use berth_model::agent::{TaskRoleCredentials, TaskStateChange, TaskUsage};
use berth_model::ecs::{ContainerInstance, Task, TaskDefinition};
use berth_model::task_secrets::TaskSecrets;
use tokio::sync::watch;

/// The local agent's view of the control plane.
pub struct LocalAgentApi {
    pub service: AgentService,
}

fn control_err(e: ControlError) -> AgentError {
    AgentError::ControlPlane {
        message: ApiError::from(e).to_string(),
    }
}

#[async_trait]
impl AgentApi for LocalAgentApi {
    async fn register_instance(
        &self,
        instance: ContainerInstance,
    ) -> Result<ContainerInstance, AgentError> {
        self.service
            .register_instance(instance)
            .await
            .map_err(control_err)
    }

    async fn assigned_tasks(&self, container_instance_arn: &str) -> Result<Vec<Task>, AgentError> {
        self.service
            .assigned_tasks(container_instance_arn)
            .await
            .map_err(control_err)
    }

    async fn task_definition(&self, arn: &str) -> Result<Option<TaskDefinition>, AgentError> {
        self.service.task_definition(arn).await.map_err(control_err)
    }

    async fn task_secrets(&self, task_arn: &str) -> Result<TaskSecrets, AgentError> {
        self.service
            .task_secrets(task_arn)
            .await
            .map_err(control_err)
    }

    async fn submit_task_state_change(
        &self,
        change: TaskStateChange,
    ) -> Result<Option<Task>, AgentError> {
        self.service
            .submit_task_state_change(change)
            .await
            .map_err(control_err)
    }

    async fn heartbeat(&self, container_instance_arn: &str) -> Result<(), AgentError> {
        self.service
            .record_heartbeat(container_instance_arn)
            .await
            .map(|_| ())
            .map_err(control_err)
    }

    async fn task_role_credentials(
        &self,
        container_instance_arn: &str,
        task_arn: &str,
    ) -> Result<TaskRoleCredentials, AgentError> {
        self.service
            .task_role_credentials(container_instance_arn, task_arn)
            .await
            .map_err(|e| AgentError::ControlPlane {
                message: e.to_string(),
            })
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.service.changes()
    }
}

/// The control plane's view of the nodes: this server's own agent answers for the tasks
/// placed on its instance; a task on another instance goes to `remote` (the nodes'
/// APIs, once the node link runs), else it is unreachable from here.
pub struct LocalTaskNodes {
    pub queries: TaskQueries,
    /// The local agent's container instance ARN.
    pub instance_arn: String,
    /// Set when the node link starts.
    pub remote: Arc<OnceLock<Arc<dyn TaskNodes>>>,
}

impl LocalTaskNodes {
    /// `None` for a task of this server's instance; else who answers for it.
    fn elsewhere(&self, task: &Task) -> Option<Result<&Arc<dyn TaskNodes>, NodeError>> {
        if task.container_instance_arn.as_deref() == Some(self.instance_arn.as_str()) {
            return None;
        }
        Some(self.remote.get().ok_or_else(|| NodeError::Unreachable {
            task_arn: task.task_arn.clone(),
        }))
    }
}

fn node_err(task: &Task, e: AgentError) -> NodeError {
    NodeError::Failed {
        task_arn: task.task_arn.clone(),
        message: e.to_string(),
    }
}

#[async_trait]
impl TaskNodes for LocalTaskNodes {
    async fn logs(
        &self,
        task: &Task,
        container: Option<&str>,
        follow: bool,
    ) -> Result<LogStream, NodeError> {
        if let Some(remote) = self.elsewhere(task) {
            return remote?.logs(task, container, follow).await;
        }
        self.queries
            .logs(&task.task_arn, container, follow)
            .await
            .map_err(|e| node_err(task, e))
    }

    async fn usage(&self, task: &Task) -> Result<TaskUsage, NodeError> {
        if let Some(remote) = self.elsewhere(task) {
            return remote?.usage(task).await;
        }
        self.queries
            .usage(&task.task_arn)
            .await
            .map_err(|e| node_err(task, e))
    }

    async fn exec(&self, task: &Task, command: &ExecCommand) -> Result<ExecResult, NodeError> {
        if let Some(remote) = self.elsewhere(task) {
            return remote?.exec(task, command).await;
        }
        let request = berth_runtime::ExecRequest {
            container: command.container.clone(),
            command: command.command.clone(),
            timeout: command.timeout,
        };
        let out = self
            .queries
            .exec(&task.task_arn, &request)
            .await
            .map_err(|e| node_err(task, e))?;
        Ok(ExecResult {
            container: out.container,
            exit_code: out.exit_code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            truncated: out.truncated,
        })
    }

    async fn exec_interactive(
        &self,
        task: &Task,
        command: &ExecSessionCommand,
    ) -> Result<ExecSession, NodeError> {
        if let Some(remote) = self.elsewhere(task) {
            return remote?.exec_interactive(task, command).await;
        }
        let request = berth_runtime::InteractiveExecRequest {
            container: command.container.clone(),
            command: command.command.clone(),
            tty: command.tty,
            stdin: command.stdin,
            window: command.window,
        };
        let session = self
            .queries
            .exec_interactive(&task.task_arn, &request)
            .await
            .map_err(|e| node_err(task, e))?;
        Ok(ExecSession {
            container: session.container,
            input: session.input,
            output: session.output,
        })
    }
}
