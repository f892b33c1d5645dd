//! berth-runtime: runs a task's containers on one node.
//!
//! The [`Runtime`] trait is what the agent drives: start a task from its task definition,
//! stop it (SIGTERM, then SIGKILL after `stopTimeout`), list what runs (so a restarted
//! agent adopts its tasks instead of starting duplicates), stream state changes, logs and
//! resource use, and run a command in a running container ([`Runtime::exec`]). Every container a runtime starts carries its task's ARN, so ownership
//! survives a restart of berth.
//!
//! What it does not do: decide what should run (that is the control plane), or talk to
//! the store.
//!
//! Layout:
//! - [`Runtime`], [`TaskSpec`], [`TaskState`], [`ContainerState`]: the interface;
//!   [`exec`]: what an exec asks ([`ExecRequest`]) and gives ([`ExecOutput`]);
//!   [`exec_interactive`]: a command whose stdin and output stream while it runs
//!   ([`InteractiveExecRequest`], [`ExecSession`]); [`orphans`]: tasks berth started
//!   here for a node that is gone ([`OrphanTask`]).
//! - [`process`]: the embedded default; a container's `entryPoint` + `command` runs as a
//!   local process under a small supervisor ([`process::shim_main`]) that outlives berth.
//! - [`docker`]: containers on the local Docker engine (bollard), with ECS's
//!   task-definition semantics; also builds `FROM scratch` images from static binaries.
//! - Shared by both backends (private): `task_core` (a task's spec, state, stop flag and
//!   lifecycle lock; the start walk), `task_table` (the tasks a runtime knows, their
//!   state broadcast, the stop walk), `task_runtime` (the [`Runtime`] trait implemented
//!   once over both backends), `dependencies` (`dependsOn` order and the wait for
//!   START/COMPLETE/SUCCESS/HEALTHY), `task_env` (the environment every container gets).

use std::pin::Pin;

use async_trait::async_trait;
use berth_model::ecs::{HealthStatus, NetworkBinding, TaskDefinition};
use futures::Stream;

mod dependencies;
pub mod docker;
pub mod exec;
pub mod exec_interactive;
pub mod orphans;
pub mod process;
mod task_core;
mod task_env;
mod task_runtime;
mod task_table;
#[cfg(test)]
mod test_support;

pub use exec::{ExecOutput, ExecRequest};
pub use exec_interactive::{ExecSession, InteractiveExecRequest};
pub use orphans::{LiveOwners, OrphanOwner, OrphanTask};

/// What the agent asks a runtime to run.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub task_arn: String,
    pub cluster: String,
    pub task_definition: TaskDefinition,
    /// The values of the containers' `secrets`, set in their environment. Never written
    /// to the runtime's own state (the process runtime's task file, Docker's labels): a
    /// task adopted after a restart keeps them only in its processes' environment.
    pub secrets: Vec<berth_model::task_secrets::SecretVariable>,
}

impl TaskSpec {
    /// The task's id (last segment of its ARN).
    pub fn task_id(&self) -> &str {
        berth_model::arn::last_segment(&self.task_arn)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ContainerStatus {
    /// Created, waiting for its dependencies or being started.
    Pending,
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub name: String,
    /// A process id or a Docker container id.
    pub runtime_id: Option<String>,
    pub status: ContainerStatus,
    pub exit_code: Option<i32>,
    /// Why it stopped, e.g. `OutOfMemoryError: Container killed due to memory usage`.
    pub reason: Option<String>,
    pub health: HealthStatus,
    pub network_bindings: Vec<NetworkBinding>,
    /// The task's own IP (awsvpc mode).
    pub private_ip: Option<String>,
    pub essential: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskState {
    pub task_arn: String,
    pub containers: Vec<ContainerState>,
}

impl TaskState {
    /// RUNNING once every essential container runs; stopped once an essential container
    /// stopped (the runtime then stops the rest).
    pub fn essential_stopped(&self) -> Option<&ContainerState> {
        self.containers
            .iter()
            .find(|c| c.essential && c.status == ContainerStatus::Stopped)
    }

    pub fn all_stopped(&self) -> bool {
        self.containers
            .iter()
            .all(|c| c.status == ContainerStatus::Stopped)
    }

    pub fn all_essential_running(&self) -> bool {
        self.containers
            .iter()
            .filter(|c| c.essential)
            .all(|c| c.status == ContainerStatus::Running)
    }

    /// HEALTHY when all essential containers with a health check are healthy, UNHEALTHY
    /// when one is unhealthy, UNKNOWN otherwise (as ECS computes task health).
    pub fn health(&self) -> HealthStatus {
        let mut any_checked = false;
        for c in self.containers.iter().filter(|c| c.essential) {
            match c.health {
                HealthStatus::Unhealthy => return HealthStatus::Unhealthy,
                HealthStatus::Unknown => {}
                HealthStatus::Healthy => any_checked = true,
            }
        }
        let all_known = self
            .containers
            .iter()
            .filter(|c| c.essential)
            .all(|c| c.health == HealthStatus::Healthy);
        if any_checked && all_known {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unknown
        }
    }
}

/// CPU and memory use of a task, summed over its containers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TaskStats {
    /// CPU units in use (1024 = one core busy).
    pub cpu_units: f64,
    pub memory_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The task could not start; the message becomes its `stoppedReason`.
    #[error("{0}")]
    StartFailed(String),
    #[error("task {0} is not known to this runtime")]
    UnknownTask(String),
    #[error("container {container} is not part of task {task}")]
    UnknownContainer { task: String, container: String },
    #[error("container {container} of task {task} is not running")]
    ContainerNotRunning { task: String, container: String },
    #[error("exec: command is empty; give the program to run and its arguments")]
    EmptyExecCommand,
    /// The command could not be started (e.g. no such program in the container).
    #[error("exec in container {container} of task {task}: {message}")]
    ExecFailed {
        task: String,
        container: String,
        message: String,
    },
    #[error("exec in container {container} of task {task}: still running after {timeout_seconds}s; it was killed")]
    ExecTimedOut {
        task: String,
        container: String,
        timeout_seconds: u64,
    },
    #[error("runtime error: {0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

pub type LogStream = Pin<Box<dyn Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `process` or `docker`.
    fn kind(&self) -> &'static str;

    /// Starts the task's containers in dependency order and returns once every essential
    /// container runs (or the start failed: then nothing of the task is left running).
    async fn start(&self, spec: &TaskSpec) -> Result<TaskState>;

    /// Stops the task: containers in reverse dependency order, each SIGTERM, then SIGKILL
    /// after its `stopTimeout`. Returns the final state with exit codes. Stopping a task
    /// that already stopped returns its final state.
    async fn stop(&self, task_arn: &str) -> Result<TaskState>;

    /// Forgets a stopped task and frees what it held (its logs may go too).
    async fn remove(&self, task_arn: &str) -> Result<()>;

    /// Every task this runtime knows, running or stopped and not yet removed, including
    /// ones started before a restart of berth.
    async fn list(&self) -> Result<Vec<TaskState>>;

    /// State changes as they happen: a container started, exited, changed health.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TaskState>;

    /// A container's output (stdout and stderr); `follow` keeps the stream open.
    async fn logs(
        &self,
        task_arn: &str,
        container: Option<&str>,
        follow: bool,
    ) -> Result<LogStream>;

    /// Current CPU and memory use.
    async fn stats(&self, task_arn: &str) -> Result<TaskStats>;

    /// Runs `request.command` in a running container of the task and returns its output
    /// and exit code once it ends; a command still running after `request.timeout` is
    /// killed ([`RuntimeError::ExecTimedOut`]). See each backend for where it runs.
    async fn exec(&self, task_arn: &str, request: &ExecRequest) -> Result<ExecOutput>;

    /// Starts `request.command` in a running container of the task with its stdin and
    /// output streaming (on a terminal with `request.tty`) and returns the session at
    /// once; see [`exec_interactive`]. Runtimes that cannot keep the default, which
    /// refuses.
    async fn exec_interactive(
        &self,
        task_arn: &str,
        request: &InteractiveExecRequest,
    ) -> Result<ExecSession> {
        let _ = (task_arn, request);
        Err(RuntimeError::Other(format!(
            "the {} runtime does not run interactive commands",
            self.kind()
        )))
    }

    /// Tasks berth started on this node for another owner (container instance or state
    /// directory) that is not in `live`, so no running node adopts them; see [`orphans`].
    /// Runtimes that cannot tell keep the default: none.
    async fn orphans(&self, live: &LiveOwners) -> Result<Vec<OrphanTask>> {
        let _ = live;
        Ok(Vec::new())
    }

    /// Stops and removes an orphan that [`Runtime::orphans`] found.
    async fn remove_orphan(&self, orphan: &OrphanTask) -> Result<()> {
        Err(RuntimeError::Other(format!(
            "the {} runtime cannot remove orphaned task {}",
            self.kind(),
            orphan.task_arn
        )))
    }
}

pub type DynRuntime = std::sync::Arc<dyn Runtime>;
