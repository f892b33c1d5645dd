//! Asking the node that runs a task about it: the task's output and its resource use.
//! The API's logs endpoint and the utilization metrics go through [`TaskNodes`], which
//! the binary implements with its local agent; a remote agent would answer the same
//! questions over the network.
//!
//! What it does not do: run or observe tasks itself. berth-control does not depend on
//! berth-runtime.

use std::pin::Pin;

use async_trait::async_trait;
use berth_model::agent::TaskUsage;
use berth_model::ecs::Task;
use bytes::Bytes;
use futures::Stream;

/// A container's output as it arrives (stdout and stderr interleaved).
pub type LogStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Why a node could not answer about a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// No node this control plane can reach runs the task.
    #[error("no node this server can reach runs task {task_arn}")]
    Unreachable { task_arn: String },
    /// The node answered with an error, e.g. it does not know the task or container.
    #[error("{message}")]
    Failed { task_arn: String, message: String },
}

/// The nodes that run tasks, asked about the tasks they run.
#[async_trait]
pub trait TaskNodes: Send + Sync + 'static {
    /// The output of `container` of `task` (its first container when `None`); `follow`
    /// keeps the stream open.
    async fn logs(
        &self,
        task: &Task,
        container: Option<&str>,
        follow: bool,
    ) -> Result<LogStream, NodeError>;

    /// The task's current CPU and memory use.
    async fn usage(&self, task: &Task) -> Result<TaskUsage, NodeError>;
}
