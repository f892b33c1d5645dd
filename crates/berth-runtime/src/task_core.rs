//! The task skeleton both runtimes share: a task's spec and observed state, its stop flag
//! and lifecycle lock, the checks before a start, and the start walk in `dependsOn`
//! order.
//!
//! How one container starts (a Docker container, a supervised process) is the runtime's:
//! the walk takes it as a closure. Which tasks a runtime knows, and the stop walk, are
//! [`crate::task_table`]'s.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_model::ecs::{HealthStatus, NetworkBinding, TaskDefinition};
use tokio::sync::watch;

use crate::dependencies::{start_order, wait_for_dependencies};
use crate::{ContainerState, ContainerStatus, Result, RuntimeError, TaskSpec, TaskState};

/// What every task of either runtime has.
pub(crate) struct TaskCore {
    pub(crate) spec: TaskSpec,
    /// The observed state; [`crate::dependencies`] and log followers watch it.
    pub(crate) state: watch::Sender<TaskState>,
    /// Set once the task is being stopped; no container starts after that.
    pub(crate) stopping: AtomicBool,
    /// Held while a container is being started and while the task is being stopped, so
    /// the two never interleave.
    pub(crate) lifecycle: tokio::sync::Mutex<()>,
}

impl TaskCore {
    pub(crate) fn new(spec: TaskSpec, state: TaskState) -> Self {
        Self {
            spec,
            state: watch::Sender::new(state),
            stopping: AtomicBool::new(false),
            lifecycle: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn arn(&self) -> &str {
        &self.spec.task_arn
    }

    pub(crate) fn def(&self) -> &TaskDefinition {
        &self.spec.task_definition
    }

    pub(crate) fn snapshot(&self) -> TaskState {
        self.state.borrow().clone()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// The state of a task none of whose containers started yet. `bindings[i]` are
/// container `i`'s network bindings when they are known before it starts (the process
/// runtime chooses host ports first); missing entries are empty.
pub(crate) fn pending_state(spec: &TaskSpec, bindings: Vec<Vec<NetworkBinding>>) -> TaskState {
    let mut bindings = bindings.into_iter();
    TaskState {
        task_arn: spec.task_arn.clone(),
        containers: spec
            .task_definition
            .container_definitions
            .iter()
            .map(|c| ContainerState {
                name: c.name.clone(),
                runtime_id: None,
                status: ContainerStatus::Pending,
                exit_code: None,
                reason: None,
                health: HealthStatus::Unknown,
                network_bindings: bindings.next().unwrap_or_default(),
                private_ip: None,
                essential: c.essential,
            })
            .collect(),
    }
}

/// What both runtimes refuse before they create anything: a task definition without
/// containers, or whose `dependsOn` names an unknown container or forms a cycle.
pub(crate) fn check_startable(td: &TaskDefinition) -> Result<()> {
    if td.container_definitions.is_empty() {
        return Err(RuntimeError::StartFailed(
            "the task definition has no containers".into(),
        ));
    }
    start_order(td).map_err(RuntimeError::StartFailed)?;
    Ok(())
}

/// Why a start ended because the task was being stopped meanwhile.
pub(crate) fn stopped_during_start(state: &TaskState) -> String {
    match state.essential_stopped() {
        Some(c) => format!(
            "essential container {} exited while the task was starting: {}",
            c.name,
            c.reason.as_deref().unwrap_or("no reason recorded")
        ),
        None => "the task was stopped while it was starting".into(),
    }
}

/// Starts the task's containers in dependency order: for each, waits for its `dependsOn`
/// conditions, then calls `start_container` with its index under the lifecycle lock.
/// Stops at the first failure, or when the task is being stopped, and leaves cleaning up
/// to the caller.
pub(crate) async fn start_in_dependency_order<F, Fut>(
    core: &TaskCore,
    mut start_container: F,
) -> Result<()>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let order = start_order(core.def()).map_err(RuntimeError::StartFailed)?;
    for idx in order {
        wait_for_dependencies(core.def(), idx, core.state.subscribe())
            .await
            .map_err(|e| RuntimeError::StartFailed(e.to_string()))?;
        let _guard = core.lifecycle.lock().await;
        if core.is_stopping() {
            return Err(RuntimeError::StartFailed(stopped_during_start(
                &core.snapshot(),
            )));
        }
        start_container(idx).await?;
    }
    Ok(())
}
