//! A task's containers on the engine, as the Docker [`Backend`]: the checks before a
//! start, then create and start in dependency order, stop (Docker's SIGTERM then SIGKILL
//! after `stopTimeout`) in reverse, remove, read logs. What a request holds is
//! `container_spec`'s; the order and the waits are [`crate::task_core`]'s and
//! [`crate::task_table`]'s.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use berth_model::ecs::{NetworkMode, TaskDefinition};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use futures::StreamExt;

use super::container_spec::{container_create_body, container_name, NodeContext};
use super::{docker_message, err, is_not_found, Inner, Task};
use crate::dependencies::start_order;
use crate::orphans::{LiveOwners, OrphanTask};
use crate::task_core::{check_startable, start_in_dependency_order};
use crate::task_runtime::Backend;
use crate::task_table::TaskTable;
use crate::{
    ContainerStatus, ExecOutput, ExecRequest, LogStream, Result, RuntimeError, TaskSpec, TaskState,
    TaskStats,
};

impl Task {
    /// The container whose network namespace the task's later containers join (awsvpc):
    /// the first one created, in start order.
    fn netns_owner(&self) -> Option<String> {
        let order = start_order(self.core.def()).ok()?;
        let ids = self.ids.lock().expect("ids lock");
        order.into_iter().find_map(|i| ids[i].clone())
    }
}

impl Inner {
    /// Images are never pulled: a missing one fails the start before anything is created.
    pub(super) async fn check_images_present(&self, td: &TaskDefinition) -> Result<()> {
        for c in &td.container_definitions {
            match self.docker.inspect_image(&c.image).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {
                    return Err(RuntimeError::StartFailed(format!(
                        "container {}: image {} is not present locally, and berth does not pull images (build or load it first, e.g. `berth image build-demo`)",
                        c.name, c.image
                    )))
                }
                Err(e) => return Err(err(format!("cannot inspect image {}", c.image), e)),
            }
        }
        Ok(())
    }

    /// The create request of container `idx` on this node.
    pub(super) fn create_body(
        &self,
        spec: &TaskSpec,
        idx: usize,
        netns_owner: Option<&str>,
    ) -> Result<ContainerCreateBody> {
        let awsvpc_network = self.awsvpc_network();
        let node = NodeContext {
            instance: self.config.instance.as_deref(),
            name_prefix: &self.config.name_prefix,
            awsvpc_network: &awsvpc_network,
            netns_owner,
            dns_server: self.config.dns_server,
        };
        Ok(container_create_body(spec, idx, &node)?)
    }

    async fn start_task(self: &Arc<Self>, task: &Arc<Task>) -> Result<()> {
        start_in_dependency_order(&task.core, |idx| self.start_container(task, idx)).await
    }

    async fn start_container(self: &Arc<Self>, task: &Arc<Task>, idx: usize) -> Result<()> {
        let def = &task.core.def().container_definitions[idx];
        let netns_owner = task.netns_owner();
        let body = self.create_body(&task.core.spec, idx, netns_owner.as_deref())?;
        let name = container_name(&self.config.name_prefix, &task.core.spec, idx);
        let failed = |what: &str, e: bollard::errors::Error| {
            RuntimeError::StartFailed(format!(
                "container {}: cannot {what}: {}",
                def.name,
                docker_message(&e)
            ))
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| failed("create", e))?;
        task.set_id(idx, created.id.clone());
        self.docker
            .start_container(&created.id, None::<StartContainerOptions>)
            .await
            .map_err(|e| failed("start", e))?;
        self.refresh(task, idx).await;
        Ok(())
    }

    /// Removes every container of a task, then its task-scoped volumes (after a failed
    /// start or on remove).
    pub(super) async fn remove_containers(&self, task: &Task) -> Result<()> {
        let ids: Vec<String> = task
            .ids
            .lock()
            .expect("ids lock")
            .iter()
            .flatten()
            .cloned()
            .collect();
        for id in ids {
            match self
                .docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await
            {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(err(format!("cannot remove container {id}"), e)),
            }
        }
        self.remove_task_volumes(&task.core.spec).await
    }
}

impl Backend for Inner {
    type Task = Task;

    fn tasks(&self) -> &TaskTable<Task> {
        &self.tasks
    }

    /// Checks, creates and starts a task this runtime does not know yet; a failed start
    /// leaves nothing behind.
    async fn start_new(self: &Arc<Self>, spec: &TaskSpec) -> Result<TaskState> {
        // Everything that can be checked before creating anything.
        check_startable(&spec.task_definition)?;
        self.check_images_present(&spec.task_definition).await?;
        for idx in 0..spec.task_definition.container_definitions.len() {
            self.create_body(spec, idx, None)?;
        }
        if spec.task_definition.network_mode == NetworkMode::Awsvpc {
            self.ensure_awsvpc_network().await?;
        }
        let task = Task::new(spec.clone());
        if let Err(existing) = self.tasks.insert_new(task.clone()) {
            return Ok(existing);
        }
        let started = match self.ensure_task_volumes(spec).await {
            Ok(()) => self.start_task(&task).await,
            Err(e) => Err(e),
        };
        match started {
            // An essential container that already exited shows in the state (and the
            // task is being stopped): the start itself succeeded.
            Ok(()) => Ok(task.core.snapshot()),
            Err(e) => {
                // Nothing half-created: the task's containers go, and so does the task.
                task.core.stopping.store(true, Ordering::SeqCst);
                if let Err(re) = self.remove_containers(&task).await {
                    tracing::warn!(task = %task.core.arn(), "cleanup after a failed start: {re}");
                }
                self.tasks.remove(task.core.arn());
                Err(e)
            }
        }
    }

    async fn stop_container(self: &Arc<Self>, task: &Arc<Task>, idx: usize) {
        if task.core.snapshot().containers[idx].status != ContainerStatus::Running {
            return;
        }
        let Some(id) = task.id(idx) else { return };
        let def = &task.core.def().container_definitions[idx];
        task.stop_sent[idx].store(true, Ordering::SeqCst);
        let t = def.stop_timeout_seconds();
        if let Err(e) = self
            .docker
            .stop_container(
                &id,
                Some(StopContainerOptions {
                    t: Some(t as i32),
                    signal: None,
                }),
            )
            .await
        {
            if !is_not_found(&e) {
                tracing::warn!(task = %task.core.arn(), container = %def.name, "stop: {e}");
            }
        }
        self.refresh(task, idx).await;
    }

    async fn remove_stopped(&self, task: &Arc<Task>) -> Result<()> {
        self.remove_containers(task).await?;
        self.tasks.remove(task.core.arn());
        Ok(())
    }

    async fn log(&self, task: &Arc<Task>, idx: usize, follow: bool) -> Result<LogStream> {
        let Some(id) = task.id(idx) else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        let stream = self
            .docker
            .logs(
                &id,
                Some(LogsOptions {
                    follow,
                    stdout: true,
                    stderr: true,
                    tail: "all".into(),
                    ..Default::default()
                }),
            )
            .map(|item| item.map(|o| o.into_bytes()).map_err(std::io::Error::other));
        Ok(Box::pin(stream))
    }

    async fn task_stats(&self, task: &Arc<Task>) -> TaskStats {
        self.measure(task).await
    }

    async fn orphans(&self, live: &LiveOwners) -> Result<Vec<OrphanTask>> {
        self.find_orphans(live).await
    }

    async fn remove_orphan(&self, orphan: &OrphanTask) -> Result<()> {
        self.remove_orphan_containers(orphan).await
    }

    async fn exec_in(
        &self,
        task: &Arc<Task>,
        idx: usize,
        request: &ExecRequest,
    ) -> Result<ExecOutput> {
        self.exec_in_container(task, idx, request).await
    }

    async fn exec_interactive_in(
        &self,
        task: &Arc<Task>,
        idx: usize,
        request: &crate::InteractiveExecRequest,
    ) -> Result<crate::ExecSession> {
        self.exec_interactive_in_container(task, idx, request).await
    }
}
