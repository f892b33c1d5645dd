//! Asking the node that runs a task about it: the task's output and its resource use,
//! and running a command in one of its containers ([`TaskNodes::exec`], or as a session
//! whose stdin and output stream while it runs: [`TaskNodes::exec_interactive`]). The API's logs
//! and exec endpoints and the utilization metrics go through [`TaskNodes`], which
//! the binary implements with its local agent; a remote agent would answer the same
//! questions over the network.
//!
//! What it does not do: run or observe tasks itself. berth-control does not depend on
//! berth-runtime.

use std::pin::Pin;

use async_trait::async_trait;
use berth_model::agent::TaskUsage;
use berth_model::ecs::Task;
use berth_model::exec_stream::{InputFrame, OutputFrame, WindowSize};
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use tokio::sync::mpsc;

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

/// A command to run in a running container of a task (`berth exec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// The container's name; `None` is the task's first essential container.
    pub container: Option<String>,
    /// The program and its arguments (no shell is involved).
    pub command: Vec<String>,
    /// The command is killed when it runs longer.
    pub timeout: std::time::Duration,
}

/// What a command run in a task's container gave: the API's answer to an exec.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// The container it ran in.
    pub container: String,
    pub exit_code: i32,
    /// stdout and stderr as text (invalid UTF-8 replaced).
    pub stdout: String,
    pub stderr: String,
    /// Output past the node's cap was dropped.
    #[serde(default)]
    pub truncated: bool,
}

/// A command to run interactively in a running container of a task (`berth exec -i/-t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSessionCommand {
    /// The container's name; `None` is the task's first essential container.
    pub container: Option<String>,
    /// The program and its arguments (no shell is involved).
    pub command: Vec<String>,
    /// Run it on a terminal.
    pub tty: bool,
    /// Pass the session's stdin on.
    pub stdin: bool,
    /// The terminal's size at the start (with `tty`).
    pub window: Option<WindowSize>,
}

/// A running interactive command: the caller sends [`InputFrame`]s and receives
/// [`OutputFrame`]s, the last one an exit code or an error. Dropping `input` closes the
/// command's stdin; dropping `output` ends the session and the node kills the command.
#[derive(Debug)]
pub struct ExecSession {
    /// The container it runs in.
    pub container: String,
    pub input: mpsc::Sender<InputFrame>,
    pub output: mpsc::Receiver<OutputFrame>,
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

    /// Runs `command` in a running container of `task` on the node that runs it and
    /// returns its output and exit code. Nodes that cannot run commands keep the default,
    /// which answers [`NodeError::Unreachable`].
    async fn exec(&self, task: &Task, command: &ExecCommand) -> Result<ExecResult, NodeError> {
        let _ = command;
        Err(NodeError::Unreachable {
            task_arn: task.task_arn.clone(),
        })
    }

    /// Starts `command` in a running container of `task` on the node that runs it, with
    /// its stdin and output streaming, and returns the session at once. Nodes that cannot
    /// keep the default, which answers [`NodeError::Unreachable`].
    async fn exec_interactive(
        &self,
        task: &Task,
        command: &ExecSessionCommand,
    ) -> Result<ExecSession, NodeError> {
        let _ = command;
        Err(NodeError::Unreachable {
            task_arn: task.task_arn.clone(),
        })
    }
}
