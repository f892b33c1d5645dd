//! Task resource use, sampled beside the reconcilers: every
//! [`USAGE_INTERVAL`](crate::USAGE_INTERVAL) the nodes are asked for the CPU and memory use
//! of each RUNNING task, several tasks at once, and the answers go to the utilization
//! metrics.
//!
//! Why beside and not inside a reconciler pass: a node can take seconds to answer (the
//! Docker engine answers a one-off stats request only after its next one-second sample,
//! and later under load), and a pass that asked about 16 tasks one after the other kept
//! every reconciler (starts, registrations, drains, health) waiting about 30 s, again
//! and again. No question to a node is ever on a pass's path now.
//!
//! What it does not do: keep history or decide anything; a task the node cannot answer
//! for (or does not answer for within [`NODE_ANSWER_TIMEOUT`]) is left out of the sample.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_model::ecs::{Service, Task, TaskDefinition, TaskStatus};
use futures::StreamExt;

use crate::db::Db;
use crate::error::ControlError;
use crate::task_nodes::TaskNodes;

/// How many tasks' nodes are asked at once.
pub const CONCURRENT_QUESTIONS: usize = 16;
/// How long one task's node may take to answer before the sample goes without it.
pub const NODE_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// One round of sampling: what was read from the store and what the nodes answered.
#[derive(Debug, Default)]
pub struct UsageSample {
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
    /// The task definitions of the RUNNING tasks, by ARN.
    pub definitions: BTreeMap<String, TaskDefinition>,
    /// Each answered RUNNING task's use: (CPU units, memory MiB), by task ARN.
    pub usage: BTreeMap<String, (f64, f64)>,
}

/// Reads the services and tasks, then asks the nodes about every RUNNING task, at most
/// [`CONCURRENT_QUESTIONS`] at a time, each within [`NODE_ANSWER_TIMEOUT`].
pub async fn sample(db: &Db, nodes: &dyn TaskNodes) -> Result<UsageSample, ControlError> {
    let services: Vec<Service> = db
        .services(None)
        .await?
        .into_iter()
        .map(|v| v.value)
        .collect();
    let tasks: Vec<Task> = db.tasks(None).await?.into_iter().map(|v| v.value).collect();
    let running: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.last_status == TaskStatus::Running)
        .collect();
    let mut definitions = BTreeMap::new();
    for t in &running {
        if !definitions.contains_key(&t.task_definition_arn) {
            if let Some(d) = db.resolve_task_definition(&t.task_definition_arn).await? {
                definitions.insert(t.task_definition_arn.clone(), d);
            }
        }
    }
    let questions: Vec<_> = running.iter().map(|t| ask(nodes, t)).collect();
    let usage = futures::stream::iter(questions)
        .buffer_unordered(CONCURRENT_QUESTIONS)
        .filter_map(std::future::ready)
        .collect()
        .await;
    Ok(UsageSample {
        services,
        tasks,
        definitions,
        usage,
    })
}

/// Asks `task`'s node for its use: (CPU units, memory MiB), or None when the node does
/// not answer within [`NODE_ANSWER_TIMEOUT`] or cannot.
async fn ask(nodes: &dyn TaskNodes, task: &Task) -> Option<(String, (f64, f64))> {
    match tokio::time::timeout(NODE_ANSWER_TIMEOUT, nodes.usage(task)).await {
        Ok(Ok(u)) => Some((
            task.task_arn.clone(),
            (u.cpu_units, u.memory_bytes as f64 / (1024.0 * 1024.0)),
        )),
        Ok(Err(e)) => {
            tracing::debug!(task = %task.task_arn, error = %e, "no resource use for the task");
            None
        }
        Err(_) => {
            tracing::debug!(task = %task.task_arn, "its node did not answer for the task's resource use in time");
            None
        }
    }
}

#[cfg(test)]
mod tests;
