//! What a node answers about the tasks it runs: their output and their resource use, and
//! commands run in their containers (exec, captured or as an interactive session).
//! The control plane asks through its `TaskNodes` seam; the binary answers with this.
//!
//! What it does not do: find the node that runs a task (the caller does).

use berth_model::agent::TaskUsage;
use berth_runtime::{
    DynRuntime, ExecOutput, ExecRequest, ExecSession, InteractiveExecRequest, LogStream,
};

use crate::api::Result;

/// Answers about the tasks of one node's runtime. Cheap to clone.
#[derive(Clone)]
pub struct TaskQueries {
    runtime: DynRuntime,
}

impl TaskQueries {
    pub fn new(runtime: DynRuntime) -> Self {
        Self { runtime }
    }

    /// The output of `container` (the task's first container when `None`); `follow`
    /// keeps the stream open.
    pub async fn logs(
        &self,
        task_arn: &str,
        container: Option<&str>,
        follow: bool,
    ) -> Result<LogStream> {
        Ok(self.runtime.logs(task_arn, container, follow).await?)
    }

    /// The task's current CPU and memory use.
    pub async fn usage(&self, task_arn: &str) -> Result<TaskUsage> {
        let st = self.runtime.stats(task_arn).await?;
        Ok(TaskUsage {
            cpu_units: st.cpu_units,
            memory_bytes: st.memory_bytes,
        })
    }

    /// Runs `request.command` in a running container of the task and gives back its
    /// output and exit code (see [`berth_runtime::Runtime::exec`]).
    pub async fn exec(&self, task_arn: &str, request: &ExecRequest) -> Result<ExecOutput> {
        Ok(self.runtime.exec(task_arn, request).await?)
    }

    /// Starts `request.command` in a running container of the task with its stdin and
    /// output streaming and gives back the session (see
    /// [`berth_runtime::Runtime::exec_interactive`]).
    pub async fn exec_interactive(
        &self,
        task_arn: &str,
        request: &InteractiveExecRequest,
    ) -> Result<ExecSession> {
        Ok(self.runtime.exec_interactive(task_arn, request).await?)
    }
}
