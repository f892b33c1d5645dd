//! The service reconciler: keeps `desiredCount` tasks of each service running, replaces
//! tasks that stop or fail their load balancer health checks, and rolls deployments (and
//! moves tasks off DRAINING container instances) within `minimumHealthyPercent` and
//! `maximumPercent`.
//!
//! Level-triggered: each pass reads a service, its cluster's tasks and instances, the
//! targets and the task definitions from the store, asks the pure planner
//! ([`plan::plan_service`]) what to change, and writes the plan in one guarded batch
//! ([`execute::plan_ops`]). A restarted server picks up where the last one stopped; a
//! batch that lost a race is planned again from fresh reads.
//!
//! Stopping a task never signals it: the reconciler sets `desiredStatus: STOPPED` and
//! moves a running task to DEACTIVATING; the registration reconciler drains its targets
//! and only then moves it to STOPPING, which is when its agent signals it.
//!
//! Layout:
//! - [`plan`]: the planner, its input and its plan.
//! - [`execute`]: plan → store batch; the scheduler's way to stop a task.
//! - [`health`]: whether a task counts healthy, which target check it fails.
//! - [`breaker`]: the deployment circuit breaker.
//! - [`starts`]: the start throttle and placing new tasks.
//! - [`deployments`]: the deployment list and rollout states after a pass.
//! - [`draining`]: the tasks on DRAINING container instances, replaced like those of an
//!   older deployment.

use std::collections::BTreeMap;

use berth_model::ecs::{ContainerInstance, Service, StopCode, Task, TaskDefinition, TaskStatus};
use berth_model::elb::Target;
use berth_model::time;

use crate::db::{self, Db, Versioned};
use crate::error::ControlError;

pub mod breaker;
pub mod deployments;
pub mod draining;
pub mod execute;
pub mod health;
pub mod plan;
pub mod plan_output;
pub mod starts;

pub use breaker::breaker_threshold;
pub use execute::apply_stop;

/// How long a stopped task stays visible (ECS keeps stopped tasks an hour).
const STOPPED_TASK_RETENTION_SECONDS: f64 = 3600.0;
/// How many times one pass plans a service again after its batch lost a race.
const MAX_PLAN_ATTEMPTS: usize = 5;

pub struct ServiceReconciler {
    pub db: Db,
}

/// What one service's plan is made from, as read from the store.
struct Observed {
    service: Versioned<Service>,
    task_definition: Option<TaskDefinition>,
    cluster_tasks: Vec<Versioned<Task>>,
    definitions: BTreeMap<String, TaskDefinition>,
    targets: Vec<Target>,
    instances: Vec<ContainerInstance>,
}

impl ServiceReconciler {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// One pass over every service, then the stopped-task collector.
    pub async fn reconcile(&self) -> Result<(), ControlError> {
        let services = self.db.services(None).await?;
        for svc in &services {
            if let Err(e) = self.reconcile_service(&svc.key).await {
                tracing::warn!(service = %svc.value.service_name, error = %e, "service reconcile failed");
            }
        }
        let tasks = self.db.tasks(None).await?;
        self.collect_stopped(&tasks).await;
        Ok(())
    }

    /// Plans and writes one service (stored at `key`), planning again from fresh reads
    /// when the write raced another.
    async fn reconcile_service(&self, key: &str) -> Result<(), ControlError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(observed) = self.observe(key).await? else {
                return Ok(());
            };
            let now = time::now();
            let tasks: Vec<&Task> = observed.cluster_tasks.iter().map(|v| &v.value).collect();
            let input = plan::PlanInput {
                service: &observed.service.value,
                task_definition: observed.task_definition.as_ref(),
                cluster_tasks: &tasks,
                definitions: &observed.definitions,
                targets: &observed.targets,
                instances: &observed.instances,
                now,
                placement_seed: now_nanos(),
            };
            let plan = plan::plan_service(&input, &mut new_id);
            if let Some(wait) = plan.start_throttled_for {
                tracing::debug!(service = %observed.service.value.service_name, wait, "start throttled");
            }
            let ops = execute::plan_ops(
                &plan,
                &observed.service,
                &observed.cluster_tasks,
                now,
                &mut || plan::short(new_id()),
            );
            if ops.is_empty() {
                return Ok(());
            }
            match self.db.batch(ops).await {
                Ok(_) => return Ok(()),
                Err(ControlError::Conflict { key, .. }) if attempt < MAX_PLAN_ATTEMPTS => {
                    tracing::debug!(%key, attempt, "service plan raced a concurrent write; planning again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what the plan of the service at `key` needs; None when the service is gone.
    async fn observe(&self, key: &str) -> Result<Option<Observed>, ControlError> {
        let Some(service) = self.db.get::<Service>(key).await? else {
            return Ok(None);
        };
        let cluster = service.value.cluster_name().to_string();
        let task_definition = self
            .db
            .resolve_task_definition(&service.value.task_definition)
            .await?;
        let cluster_tasks = self.db.tasks(Some(&cluster)).await?;
        let mut definitions = BTreeMap::new();
        if let Some(td) = &task_definition {
            definitions.insert(td.task_definition_arn.clone(), td.clone());
        }
        for t in &cluster_tasks {
            let arn = &t.value.task_definition_arn;
            if !definitions.contains_key(arn) {
                if let Some(d) = self.db.resolve_task_definition(arn).await? {
                    definitions.insert(arn.clone(), d);
                }
            }
        }
        let targets = self
            .db
            .targets(None)
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|t| t.task_arn.is_some())
            .collect();
        let instances = self.db.instances(Some(&cluster)).await?;
        Ok(Some(Observed {
            service,
            task_definition,
            cluster_tasks,
            definitions,
            targets,
            instances,
        }))
    }

    /// Forgets tasks that stopped more than an hour ago (ECS keeps them visible an hour).
    async fn collect_stopped(&self, tasks: &[Versioned<Task>]) {
        let now = time::now();
        for t in tasks {
            if t.value.last_status == TaskStatus::Stopped
                && t.value
                    .stopped_at
                    .is_some_and(|s| now - s > STOPPED_TASK_RETENTION_SECONDS)
            {
                let op = berth_store::Op::Delete {
                    key: t.key.clone(),
                    expect: Some(berth_store::Expect::ModRevision(t.mod_revision)),
                };
                // A task changed meanwhile is left for the next pass.
                let _ = self.db.store.batch(vec![op]).await;
            }
        }
    }
}

/// Asks a task to stop the safe way (see the module docs): desired STOPPED; a running
/// task goes to DEACTIVATING so its targets drain before its agent signals it.
pub async fn stop_task(
    db: &Db,
    t: &Task,
    code: StopCode,
    reason: &str,
) -> Result<(), ControlError> {
    let key = db::task_key(t.cluster_name(), t.id());
    db.update::<Task, _>(&key, |task| apply_stop(task, code, reason, time::now()))
        .await?;
    Ok(())
}

/// A fresh id: 32 hex digits.
fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
