//! The control plane's side of the agent contract: registers container instances, lists
//! the tasks placed on an instance, resolves a starting task's secrets, and applies the agents' task state changes
//! ([`TaskStateChange`]) to the task records with the rules the contract states.
//!
//! Every method takes and returns contract types (model resources and
//! [`berth_model::agent`] messages), so the same service could be served over HTTP to
//! remote agents; `berth server` calls it in-process.
//!
//! What it does not do: run tasks or talk to a runtime (the agent does), or decide what
//! runs where (the scheduler does).

use berth_model::agent::{ContainerStateChange, ReportedTaskStatus, TaskStateChange};
use std::sync::Arc;

use berth_model::dataplane::ProxyConfig;
use berth_model::discovery::DiscoveryRecords;
use berth_model::ecs::{ContainerInstance, Task, TaskDefinition, TaskStatus};
use berth_model::task_secrets::TaskSecrets;
use berth_model::{arn, time};
use tokio::sync::watch;

use crate::db::{self, Db};
use crate::error::ControlError;
use crate::proxy_feed;
use crate::secret_store::SecretStore;
use crate::task_secrets;

mod task_credentials;
pub use task_credentials::TaskRoles;

/// What the agents call. Cheap to clone.
#[derive(Clone)]
pub struct AgentService {
    db: Db,
    changes: watch::Receiver<u64>,
    /// The mesh certificates of the agents' nodes.
    node_mesh: Arc<proxy_feed::AgentNodesMesh>,
    secrets: Option<SecretStore>,
    task_roles: Option<TaskRoles>,
}

impl AgentService {
    /// `changes` bumps whenever the store changes (see
    /// [`ControlPlane::changes`](crate::ControlPlane::changes)).
    pub fn new(db: Db, changes: watch::Receiver<u64>) -> Self {
        Self {
            db,
            changes,
            node_mesh: Arc::default(),
            secrets: None,
            task_roles: None,
        }
    }

    /// Issues the agents' nodes their mesh certificates from `node_mesh` (shared by every
    /// copy of the control plane's service, so a node keeps its certificates between
    /// calls) instead of a book of its own.
    pub fn with_node_mesh(mut self, node_mesh: Arc<proxy_feed::AgentNodesMesh>) -> Self {
        self.node_mesh = node_mesh;
        self
    }

    /// The service resolving tasks' secrets from `store` (without it, every task with
    /// secrets is refused).
    pub fn with_secrets(mut self, store: Option<SecretStore>) -> Self {
        self.secrets = store;
        self
    }

    /// The values of the secrets of task `task_arn`'s containers, or why it must not
    /// start ([`task_secrets::resolve`]). The caller (the node link) checks the task is
    /// placed on the asking agent's instance.
    pub async fn task_secrets(&self, task_arn: &str) -> Result<TaskSecrets, ControlError> {
        let Some((cluster, id)) = arn::task_parts(task_arn) else {
            return Err(ControlError::invalid(
                "taskArn",
                format!("not a task ARN: {task_arn}"),
            ));
        };
        let Some(task) = self.db.get::<Task>(&db::task_key(cluster, id)).await? else {
            return Ok(TaskSecrets::refused(format!(
                "task {task_arn} does not exist"
            )));
        };
        task_secrets::resolve(&self.db, self.secrets.as_ref(), &task.value).await
    }

    /// The service minting tasks' role credentials with `roles`; without it, a task
    /// naming a role gets none.
    pub fn with_task_roles(mut self, roles: Option<TaskRoles>) -> Self {
        self.task_roles = roles;
        self
    }

    /// Creates or refreshes an instance record; returns it as stored. A restart keeps
    /// the original registration time and a DRAINING status.
    pub async fn register_instance(
        &self,
        instance: ContainerInstance,
    ) -> Result<ContainerInstance, ControlError> {
        let cluster = arn::last_segment(&instance.cluster_arn).to_string();
        let key = db::instance_key(&cluster, &instance.ec2_instance_id);
        // Guarded by the record's revision, so a drain (or anything else) written between
        // the read and the write is read again, never overwritten.
        for _ in 0..64 {
            let mut stored = instance.clone();
            stored.agent_heartbeat_at = Some(time::now());
            let written = match self.db.get::<ContainerInstance>(&key).await? {
                Some(old) => {
                    stored.registered_at = old.value.registered_at;
                    if old.value.status == "DRAINING" {
                        stored.status = old.value.status.clone();
                    }
                    self.db.put_if(&old, &stored).await
                }
                None => self.db.create(&key, &stored).await,
            };
            match written {
                Ok(_) => return Ok(stored),
                Err(berth_store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Contended { key })
    }

    /// Every task placed on the instance, stopped ones included until they are forgotten.
    pub async fn assigned_tasks(
        &self,
        container_instance_arn: &str,
    ) -> Result<Vec<Task>, ControlError> {
        Ok(self
            .db
            .tasks(None)
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|t| t.container_instance_arn.as_deref() == Some(container_instance_arn))
            .collect())
    }

    /// The data plane configuration of an agent's node: the load balancers that choose
    /// it and their target groups, the mesh and the node's mutual TLS
    /// ([`proxy_feed::agent_node_config`]).
    pub async fn node_proxy_config(
        &self,
        container_instance_arn: &str,
    ) -> Result<ProxyConfig, ControlError> {
        proxy_feed::agent_node_config(&self.db, &self.node_mesh, container_instance_arn).await
    }

    /// The DNS records an agent's node answers: the same for every node (a client alias
    /// names "this node's mesh proxy", which each node's DNS server answers with its own
    /// address), built from the store's view of target health
    /// ([`discovery::read_input`](crate::discovery::read_input)).
    pub async fn node_discovery_records(&self) -> Result<DiscoveryRecords, ControlError> {
        Ok(crate::discovery::read_input(&self.db, &[]).await?.records())
    }

    /// A task definition by ARN or `family[:revision]`.
    pub async fn task_definition(&self, arn: &str) -> Result<Option<TaskDefinition>, ControlError> {
        self.db.resolve_task_definition(arn).await
    }

    /// Applies `change` to its task atomically (see [`apply_task_state_change`]); returns
    /// the task as stored afterwards, or `None` when there is no such task.
    pub async fn submit_task_state_change(
        &self,
        change: TaskStateChange,
    ) -> Result<Option<Task>, ControlError> {
        let Some((cluster, id)) = arn::task_parts(&change.task_arn) else {
            return Err(ControlError::invalid(
                "taskArn",
                format!("not a task ARN: {}", change.task_arn),
            ));
        };
        let key = db::task_key(cluster, id);
        self.db
            .update::<Task, _>(&key, |t| apply_task_state_change(t, &change))
            .await
    }

    /// Records that the agent of `container_instance_arn` was heard from now (and is
    /// connected). Returns whether the instance exists.
    pub async fn record_heartbeat(
        &self,
        container_instance_arn: &str,
    ) -> Result<bool, ControlError> {
        let key = instance_key_of(container_instance_arn)?;
        let now = time::now();
        let updated = self
            .db
            .update::<ContainerInstance, _>(&key, |i| {
                i.agent_heartbeat_at = Some(now);
                i.agent_connected = true;
                i.agent_disconnected_at = None;
                true
            })
            .await?;
        Ok(updated.is_some())
    }

    /// Records that the agent of `container_instance_arn` is connected again
    /// (`agentConnected: true`). Returns whether the instance exists.
    pub async fn mark_connected(&self, container_instance_arn: &str) -> Result<bool, ControlError> {
        self.set_connected(container_instance_arn, true).await
    }

    /// Records that the agent of `container_instance_arn` lost its connection to the
    /// control plane (`agentConnected: false`); the next registration sets it again.
    /// New tasks are not placed on a disconnected instance. Returns whether the
    /// instance exists.
    pub async fn mark_disconnected(
        &self,
        container_instance_arn: &str,
    ) -> Result<bool, ControlError> {
        self.set_connected(container_instance_arn, false).await
    }

    async fn set_connected(
        &self,
        container_instance_arn: &str,
        connected: bool,
    ) -> Result<bool, ControlError> {
        let key = instance_key_of(container_instance_arn)?;
        let updated = self
            .db
            .update::<ContainerInstance, _>(&key, |i| {
                let changed = i.agent_connected != connected;
                i.agent_connected = connected;
                if changed {
                    i.agent_disconnected_at = (!connected).then(time::now);
                }
                changed
            })
            .await?;
        Ok(updated.is_some())
    }

    /// A receiver that changes whenever something an agent may care about changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

/// The store key of a container instance ARN.
fn instance_key_of(container_instance_arn: &str) -> Result<String, ControlError> {
    let Some((cluster, id)) = arn::container_instance_parts(container_instance_arn) else {
        return Err(ControlError::invalid(
            "containerInstanceArn",
            format!("not a container instance ARN: {container_instance_arn}"),
        ));
    };
    Ok(db::instance_key(cluster, id))
}

/// Applies an agent's report to a task record; returns whether anything changed. The
/// rules are the contract's (see [`TaskStateChange`]).
pub fn apply_task_state_change(task: &mut Task, change: &TaskStateChange) -> bool {
    let before = task.clone();
    copy_containers(task, &change.containers);
    if let Some(health) = change.health_status {
        task.health_status = health;
    }
    match change.status {
        ReportedTaskStatus::Pending => {
            if task.desired_status == TaskStatus::Running && task.last_status < TaskStatus::Pending
            {
                task.last_status = TaskStatus::Pending;
                task.version += 1;
            }
        }
        ReportedTaskStatus::Running => {
            if task.last_status < TaskStatus::Running {
                task.last_status = if task.desired_status == TaskStatus::Stopped {
                    // Asked to stop while starting: it was never registered anywhere,
                    // so it can be signalled right away.
                    TaskStatus::Stopping
                } else {
                    TaskStatus::Running
                };
                task.started_at
                    .get_or_insert(change.started_at.unwrap_or_else(time::now));
                task.version += 1;
            }
        }
        ReportedTaskStatus::Stopped => {
            if task.last_status != TaskStatus::Stopped {
                mark_stopped(task, change);
            }
        }
    }
    *task != before
}

/// Copies what the runtime reports into the containers of the same name.
fn copy_containers(task: &mut Task, reported: &[ContainerStateChange]) {
    for c in &mut task.containers {
        let Some(s) = reported.iter().find(|s| s.container_name == c.name) else {
            continue;
        };
        c.runtime_id = s.runtime_id.clone().or(c.runtime_id.take());
        if !s.network_bindings.is_empty() {
            c.network_bindings = s.network_bindings.clone();
        }
        if s.private_ipv4_address.is_some() {
            c.private_ipv4_address = s.private_ipv4_address.clone();
        }
        c.exit_code = s.exit_code.or(c.exit_code);
        c.reason = s.reason.clone().or(c.reason.take());
        c.health_status = s.health_status;
        c.last_status = s.status;
    }
}

/// STOPPED, with the agent's stop code and reason unless the control plane already
/// recorded why the task stops.
fn mark_stopped(task: &mut Task, change: &TaskStateChange) {
    let at = change.stopped_at.unwrap_or_else(time::now);
    if task.stop_code.is_none() {
        task.stop_code = change.stop_code;
        task.stopped_reason = change.stopped_reason.clone();
    }
    task.desired_status = TaskStatus::Stopped;
    task.last_status = TaskStatus::Stopped;
    task.stopping_at.get_or_insert(at);
    task.stopped_at = Some(at);
    for c in &mut task.containers {
        c.last_status = TaskStatus::Stopped;
    }
    task.version += 1;
}

#[cfg(test)]
mod tests;
