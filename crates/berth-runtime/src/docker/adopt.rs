//! Adopting what runs after a restart of berth: the tasks are rebuilt from the labels of
//! the containers berth created (this cluster's and this instance's only), their states
//! from inspecting them. It starts nothing; a task whose essential container stopped
//! meanwhile is handed to the stopper.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard::models::ContainerSummary;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};

use super::container_spec::SpecLabel;
use super::container_state::container_state;
use super::{
    err, Inner, Task, LABEL_CLUSTER, LABEL_CONTAINER, LABEL_INSTANCE, LABEL_MANAGED, LABEL_SPEC,
    LABEL_TASK_ARN,
};
use crate::{ContainerStatus, Result};

impl Inner {
    /// Rebuilds the tasks from the containers berth labelled.
    pub(super) async fn adopt(self: &Arc<Self>) -> Result<()> {
        for (arn, containers) in self.labelled_containers().await? {
            let spec: Option<SpecLabel> = containers.iter().find_map(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_SPEC))
                    .and_then(|s| serde_json::from_str(s).ok())
            });
            let Some(spec) = spec else {
                tracing::warn!(task = %arn, "containers without a readable spec label; not adopted");
                continue;
            };
            let task = Task::new(spec.into());
            for c in &containers {
                let name = c.labels.as_ref().and_then(|l| l.get(LABEL_CONTAINER));
                let idx = name.and_then(|n| {
                    task.core
                        .def()
                        .container_definitions
                        .iter()
                        .position(|d| &d.name == n)
                });
                if let (Some(idx), Some(id)) = (idx, c.id.clone()) {
                    task.set_id(idx, id);
                }
            }
            self.read_adopted_states(&task).await;
            tracing::info!(task = %arn, "adopted task");
            self.tasks.insert(task.clone());
            let state = task.core.snapshot();
            if !state.all_stopped() && state.essential_stopped().is_some() {
                let _ = self.stop_requests.send(task);
            }
        }
        Ok(())
    }

    /// The containers berth labelled for this runtime, by task ARN.
    async fn labelled_containers(&self) -> Result<BTreeMap<String, Vec<ContainerSummary>>> {
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(cluster) = &self.config.cluster {
            labels.push(format!("{LABEL_CLUSTER}={cluster}"));
        }
        if let Some(instance) = &self.config.instance {
            labels.push(format!("{LABEL_INSTANCE}={instance}"));
        }
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("label".to_string(), labels)])),
                ..Default::default()
            }))
            .await
            .map_err(|e| err("cannot list containers", e))?;
        let mut by_task: BTreeMap<String, Vec<ContainerSummary>> = BTreeMap::new();
        for c in list {
            if let Some(arn) = c.labels.as_ref().and_then(|l| l.get(LABEL_TASK_ARN)) {
                by_task.entry(arn.clone()).or_default().push(c);
            }
        }
        Ok(by_task)
    }

    /// Each container's state from the engine; one that was never created is stopped.
    async fn read_adopted_states(&self, task: &Task) {
        for idx in 0..task.container_count() {
            match task.id(idx) {
                Some(id) => {
                    if let Ok(info) = self
                        .docker
                        .inspect_container(&id, None::<InspectContainerOptions>)
                        .await
                    {
                        let cs = container_state(
                            task.core.def(),
                            idx,
                            &info,
                            &task.core.snapshot(),
                            false,
                            &self.config.awsvpc_network,
                        );
                        task.core.state.send_modify(|s| s.containers[idx] = cs);
                    }
                }
                None => task.core.state.send_modify(|s| {
                    s.containers[idx].status = ContainerStatus::Stopped;
                    s.containers[idx].reason = Some("not started".into());
                }),
            }
        }
    }
}
