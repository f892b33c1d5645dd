//! A task's containers on the engine: the checks before a start, then create and start
//! in dependency order, stop (Docker's SIGTERM then SIGKILL after `stopTimeout`) in
//! reverse, remove. What a request holds is [`super::container_spec`]'s; the order and
//! the waits are [`crate::task_core`]'s and [`crate::task_table`]'s.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use berth_model::ecs::TaskDefinition;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, StartContainerOptions, StopContainerOptions,
};

use super::container_spec::{container_create_body, container_name, NodeContext};
use super::{docker_message, err, is_not_found, Inner, Task};
use crate::dependencies::start_order;
use crate::task_core::start_in_dependency_order;
use crate::{ContainerStatus, Result, RuntimeError, TaskSpec, TaskState};

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
            awsvpc_network: &awsvpc_network,
            netns_owner,
        };
        Ok(container_create_body(spec, idx, &node)?)
    }

    pub(super) async fn start_task(self: &Arc<Self>, task: &Arc<Task>) -> Result<()> {
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

    pub(super) async fn stop_task(self: &Arc<Self>, task: &Arc<Task>) -> TaskState {
        self.tasks
            .stop_task(task, |idx| self.stop_container(task, idx))
            .await
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

    /// Removes every container of a task (after a failed start or on remove).
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
        Ok(())
    }
}
