//! The [`crate::Runtime`] trait implemented once for both backends: what a runtime does with its
//! table of tasks (idempotent start, stop, remove once stopped, list, subscribe, look up a
//! container's logs and a task's use, exec in a running container) is the same on Docker and as processes; a
//! [`Backend`] supplies only how a new task starts, a task stops, a stopped task is freed,
//! a container's log is read and a task's use is measured.
//!
//! [`impl_runtime!`] writes a public runtime type's `impl Runtime` as calls to the
//! functions here (a blanket impl over [`Backend`] would make the backends' private
//! types part of the public interface).

use std::future::Future;
use std::sync::Arc;

use berth_model::ecs::TaskDefinition;
use tokio::sync::broadcast;

use crate::exec::exec_target;
use crate::orphans::{LiveOwners, OrphanTask};
use crate::task_table::{RuntimeTask, TaskTable};
use crate::{
    ExecOutput, ExecRequest, ExecSession, InteractiveExecRequest, LogStream, Result, RuntimeError,
    TaskSpec, TaskState, TaskStats,
};

/// What a backend supplies to the shared [`Runtime`](crate::Runtime) implementation.
pub(crate) trait Backend: Send + Sync + 'static {
    type Task: RuntimeTask;

    fn tasks(&self) -> &TaskTable<Self::Task>;

    /// Starts a task the table does not know yet.
    fn start_new(
        self: &Arc<Self>,
        spec: &TaskSpec,
    ) -> impl Future<Output = Result<TaskState>> + Send;

    /// Stops container `idx` if it runs (one step of [`Backend::stop_task`]).
    fn stop_container(
        self: &Arc<Self>,
        task: &Arc<Self::Task>,
        idx: usize,
    ) -> impl Future<Output = ()> + Send;

    /// Stops a task (it may already be stopped) and returns its final state: its
    /// containers in reverse dependency order, see [`TaskTable::stop_task`].
    fn stop_task(
        self: &Arc<Self>,
        task: &Arc<Self::Task>,
    ) -> impl Future<Output = TaskState> + Send {
        async move {
            self.tasks()
                .stop_task(task, |idx| self.stop_container(task, idx))
                .await
        }
    }

    /// Frees what a stopped task holds and drops it from the table.
    fn remove_stopped(&self, task: &Arc<Self::Task>) -> impl Future<Output = Result<()>> + Send;

    /// The output of container `idx`; `follow` keeps the stream open while it runs.
    fn log(
        &self,
        task: &Arc<Self::Task>,
        idx: usize,
        follow: bool,
    ) -> impl Future<Output = Result<LogStream>> + Send;

    fn task_stats(&self, task: &Arc<Self::Task>) -> impl Future<Output = TaskStats> + Send;

    /// Tasks berth started on this node for another owner that is not in `live`.
    /// Backends that cannot tell keep the default: none.
    fn orphans(&self, live: &LiveOwners) -> impl Future<Output = Result<Vec<OrphanTask>>> + Send {
        let _ = live;
        async { Ok(Vec::new()) }
    }

    /// Stops and removes an orphan [`Backend::orphans`] found.
    fn remove_orphan(&self, orphan: &OrphanTask) -> impl Future<Output = Result<()>> + Send {
        let arn = orphan.task_arn.clone();
        async move {
            Err(RuntimeError::Other(format!(
                "this runtime cannot remove orphaned task {arn}"
            )))
        }
    }

    /// Runs `request.command` in container `idx`, which runs.
    fn exec_in(
        &self,
        task: &Arc<Self::Task>,
        idx: usize,
        request: &ExecRequest,
    ) -> impl Future<Output = Result<ExecOutput>> + Send;

    /// Starts `request.command` interactively in container `idx`, which runs. Backends
    /// without interactive sessions keep the default, which refuses.
    fn exec_interactive_in(
        &self,
        task: &Arc<Self::Task>,
        idx: usize,
        request: &InteractiveExecRequest,
    ) -> impl Future<Output = Result<ExecSession>> + Send {
        let _ = (task, idx, request);
        async {
            Err(RuntimeError::Other(
                "this runtime does not run interactive commands".into(),
            ))
        }
    }
}

/// [`Runtime::start`](crate::Runtime::start): a task the runtime knows gives its state.
pub(crate) async fn start<B: Backend>(backend: &Arc<B>, spec: &TaskSpec) -> Result<TaskState> {
    match backend.tasks().state_of(&spec.task_arn) {
        Some(known) => Ok(known),
        None => backend.start_new(spec).await,
    }
}

pub(crate) async fn stop<B: Backend>(backend: &Arc<B>, task_arn: &str) -> Result<TaskState> {
    let task = backend.tasks().get(task_arn)?;
    Ok(backend.stop_task(&task).await)
}

/// [`Runtime::remove`](crate::Runtime::remove): only a task whose containers all stopped.
pub(crate) async fn remove<B: Backend>(backend: &Arc<B>, task_arn: &str) -> Result<()> {
    let task = backend.tasks().get_stopped(task_arn)?;
    backend.remove_stopped(&task).await
}

pub(crate) fn list<B: Backend>(backend: &Arc<B>) -> Vec<TaskState> {
    backend.tasks().snapshots()
}

pub(crate) fn subscribe<B: Backend>(backend: &Arc<B>) -> broadcast::Receiver<TaskState> {
    backend.tasks().subscribe()
}

/// [`Runtime::logs`](crate::Runtime::logs): with no `container`, the task's first.
pub(crate) async fn logs<B: Backend>(
    backend: &Arc<B>,
    task_arn: &str,
    container: Option<&str>,
    follow: bool,
) -> Result<LogStream> {
    let task = backend.tasks().get(task_arn)?;
    let idx = container_index(task.core().def(), task_arn, container)?;
    backend.log(&task, idx, follow).await
}

pub(crate) async fn stats<B: Backend>(backend: &Arc<B>, task_arn: &str) -> Result<TaskStats> {
    let task = backend.tasks().get(task_arn)?;
    Ok(backend.task_stats(&task).await)
}

/// [`Runtime::exec`](crate::Runtime::exec): in the named container, or the first
/// essential one, which must be running.
pub(crate) async fn exec<B: Backend>(
    backend: &Arc<B>,
    task_arn: &str,
    request: &ExecRequest,
) -> Result<ExecOutput> {
    let task = backend.tasks().get(task_arn)?;
    let idx = exec_target(
        task.core().def(),
        &task.core().snapshot(),
        request.container.as_deref(),
        &request.command,
    )?;
    backend.exec_in(&task, idx, request).await
}

/// [`Runtime::exec_interactive`](crate::Runtime::exec_interactive): in the same container
/// [`exec`] would choose.
pub(crate) async fn exec_interactive<B: Backend>(
    backend: &Arc<B>,
    task_arn: &str,
    request: &InteractiveExecRequest,
) -> Result<ExecSession> {
    let task = backend.tasks().get(task_arn)?;
    let idx = exec_target(
        task.core().def(),
        &task.core().snapshot(),
        request.container.as_deref(),
        &request.command,
    )?;
    backend.exec_interactive_in(&task, idx, request).await
}

/// `impl Runtime for $runtime` through the functions of this module, the backend being
/// `self.$backend` (an `Arc` of a [`Backend`]) and the runtime's kind `$kind`.
macro_rules! impl_runtime {
    ($runtime:ty, $backend:ident, $kind:literal) => {
        #[async_trait::async_trait]
        impl $crate::Runtime for $runtime {
            fn kind(&self) -> &'static str {
                $kind
            }

            async fn start(&self, spec: &$crate::TaskSpec) -> $crate::Result<$crate::TaskState> {
                $crate::task_runtime::start(&self.$backend, spec).await
            }

            async fn stop(&self, task_arn: &str) -> $crate::Result<$crate::TaskState> {
                $crate::task_runtime::stop(&self.$backend, task_arn).await
            }

            async fn remove(&self, task_arn: &str) -> $crate::Result<()> {
                $crate::task_runtime::remove(&self.$backend, task_arn).await
            }

            async fn list(&self) -> $crate::Result<Vec<$crate::TaskState>> {
                Ok($crate::task_runtime::list(&self.$backend))
            }

            fn subscribe(&self) -> tokio::sync::broadcast::Receiver<$crate::TaskState> {
                $crate::task_runtime::subscribe(&self.$backend)
            }

            /// With no `container`, the task's first container.
            async fn logs(
                &self,
                task_arn: &str,
                container: Option<&str>,
                follow: bool,
            ) -> $crate::Result<$crate::LogStream> {
                $crate::task_runtime::logs(&self.$backend, task_arn, container, follow).await
            }

            async fn stats(&self, task_arn: &str) -> $crate::Result<$crate::TaskStats> {
                $crate::task_runtime::stats(&self.$backend, task_arn).await
            }

            async fn exec(
                &self,
                task_arn: &str,
                request: &$crate::ExecRequest,
            ) -> $crate::Result<$crate::ExecOutput> {
                $crate::task_runtime::exec(&self.$backend, task_arn, request).await
            }

            async fn exec_interactive(
                &self,
                task_arn: &str,
                request: &$crate::InteractiveExecRequest,
            ) -> $crate::Result<$crate::ExecSession> {
                $crate::task_runtime::exec_interactive(&self.$backend, task_arn, request).await
            }

            async fn orphans(
                &self,
                live: &$crate::orphans::LiveOwners,
            ) -> $crate::Result<Vec<$crate::orphans::OrphanTask>> {
                $crate::task_runtime::Backend::orphans(&*self.$backend, live).await
            }

            async fn remove_orphan(
                &self,
                orphan: &$crate::orphans::OrphanTask,
            ) -> $crate::Result<()> {
                $crate::task_runtime::Backend::remove_orphan(&*self.$backend, orphan).await
            }
        }
    };
}
pub(crate) use impl_runtime;

/// The index of the container named `container` in `def` (the first one when `None`),
/// as the runtimes' `logs` take it.
fn container_index(def: &TaskDefinition, task_arn: &str, container: Option<&str>) -> Result<usize> {
    match container {
        None => Ok(0),
        Some(name) => def
            .container_definitions
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| RuntimeError::UnknownContainer {
                task: task_arn.to_string(),
                container: name.to_string(),
            }),
    }
}

#[cfg(test)]
#[path = "task_runtime_tests.rs"]
mod tests;
