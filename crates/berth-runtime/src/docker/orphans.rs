//! Orphaned containers: containers berth labelled for another container instance than
//! this runtime's, whose node is not alive; and removing them (Docker's stop, SIGTERM
//! then SIGKILL after 10 s, then a forced remove with their anonymous volumes).
//!
//! Only containers carrying both [`LABEL_MANAGED`] and [`LABEL_INSTANCE`] are
//! considered; without an instance of its own (`DockerRuntimeConfig::instance`) a
//! runtime cannot tell its containers from another node's and finds none.

use std::collections::{BTreeMap, HashMap};

use bollard::query_parameters::{
    ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};

use super::{
    err, is_not_found, Inner, LABEL_CLUSTER, LABEL_INSTANCE, LABEL_MANAGED, LABEL_TASK_ARN,
};
use crate::orphans::{LiveOwners, OrphanOwner, OrphanTask};
use crate::{Result, RuntimeError};

/// Seconds Docker waits after SIGTERM before SIGKILL when an orphan is stopped.
const ORPHAN_STOP_SECONDS: i32 = 10;

impl Inner {
    /// The tasks of containers labelled for another instance that is not in `live`.
    pub(super) async fn find_orphans(&self, live: &LiveOwners) -> Result<Vec<OrphanTask>> {
        let Some(own) = &self.config.instance else {
            return Ok(Vec::new());
        };
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{LABEL_MANAGED}=true"), LABEL_INSTANCE.to_string()],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(|e| err("cannot list containers", e))?;
        let mut by_task: BTreeMap<(String, String), OrphanTask> = BTreeMap::new();
        for c in list {
            let labels = c.labels.clone().unwrap_or_default();
            let (Some(instance), Some(arn), Some(id)) = (
                labels.get(LABEL_INSTANCE),
                labels.get(LABEL_TASK_ARN),
                c.id.clone(),
            ) else {
                continue;
            };
            if instance == own || live.instance_ids.contains(instance) {
                continue;
            }
            let task = by_task
                .entry((instance.clone(), arn.clone()))
                .or_insert_with(|| OrphanTask {
                    task_arn: arn.clone(),
                    cluster: labels.get(LABEL_CLUSTER).cloned().unwrap_or_default(),
                    runs: Vec::new(),
                    owner: OrphanOwner::Instance(instance.clone()),
                    runtime_ids: Vec::new(),
                    processes: Vec::new(),
                });
            task.runs.push(c.image.clone().unwrap_or_default());
            task.runtime_ids.push(id);
        }
        Ok(by_task.into_values().collect())
    }

    /// Stops and removes an orphan's containers.
    pub(super) async fn remove_orphan_containers(&self, orphan: &OrphanTask) -> Result<()> {
        if !matches!(orphan.owner, OrphanOwner::Instance(_)) || orphan.runtime_ids.is_empty() {
            return Err(RuntimeError::Other(format!(
                "task {} is not an orphan of the Docker runtime",
                orphan.task_arn
            )));
        }
        for id in &orphan.runtime_ids {
            let stop = StopContainerOptions {
                t: Some(ORPHAN_STOP_SECONDS),
                signal: None,
            };
            match self.docker.stop_container(id, Some(stop)).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => continue,
                // 304: already stopped.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => {}
                Err(e) => return Err(err(format!("cannot stop container {id}"), e)),
            }
            let remove = RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            };
            match self.docker.remove_container(id, Some(remove)).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(err(format!("cannot remove container {id}"), e)),
            }
        }
        Ok(())
    }
}
