//! `POST /v1/clusters/{cluster}/tasks/{task}/exec` (ECS's ExecuteCommand, non-interactive):
//! runs a command in a running container of a task, on the node that runs it, and answers
//! its output and exit code ([`ExecResult`]).
//!
//! As ECS, it refuses a task that was not started with `enableExecuteCommand` (the
//! task records its service's setting when it starts, so turning it on later does not
//! open tasks already running) and a task that is not RUNNING. Each exec that ran is a
//! service event (who, what command, which container, the exit code) and every attempt
//! is counted in `berth_exec_commands_total{cluster,service,outcome}`.
//!
//! The same request upgraded to an interactive session (stdin, a terminal) is
//! [`crate::task_exec_session`]'s; it shares the body, the checks, the event and the
//! counter defined here.
//!
//! What it does not do: run anything itself (the node does, through [`TaskNodes::exec`]).

use std::time::Duration;

use berth_model::ecs::{Service, Task, TaskStatus};
use berth_model::time;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Deserialize;

use crate::db::{self, Db};
use crate::error::ApiError;
use crate::task_nodes::{ExecCommand, ExecResult, ExecSessionCommand, NodeError, TaskNodes};
use berth_model::exec_stream::{WindowSize, UPGRADE_PROTOCOL};

/// ECS's refusal of an exec into a task started without `enableExecuteCommand`.
pub const EXEC_NOT_ENABLED: &str = "The execute command failed because execute command was not enabled when the task was run or the execute command agent isn't running. Wait and try again or run a new task with execute command enabled and try again.";

/// How long a command may run when the request gives no `timeoutSeconds`.
pub const DEFAULT_EXEC_TIMEOUT_SECONDS: u64 = 60;
/// The longest `timeoutSeconds` accepted.
pub const MAX_EXEC_TIMEOUT_SECONDS: u64 = 3600;

/// The body of an exec request.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecBody {
    /// The container's name; none is the task's first essential container.
    #[serde(default)]
    pub container: Option<String>,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// 1 to [`MAX_EXEC_TIMEOUT_SECONDS`]; default [`DEFAULT_EXEC_TIMEOUT_SECONDS`].
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Who runs the command, as the caller names itself (the CLI sends the local user);
    /// it goes into the service event.
    #[serde(default)]
    pub caller: Option<String>,
    /// Interactive only: pass the caller's stdin on.
    #[serde(default)]
    pub stdin: bool,
    /// Interactive only: run the command on a terminal.
    #[serde(default)]
    pub tty: bool,
    /// Interactive only, with `tty`: the terminal's size at the start.
    #[serde(default)]
    pub window_size: Option<WindowSizeBody>,
}

/// A terminal's size in an exec body.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSizeBody {
    pub rows: u16,
    pub cols: u16,
}

/// Counts exec attempts by outcome: `refused` (not enabled, not running, bad request),
/// `failed` (the node could not run it, or a session failed), `exited_zero`,
/// `exited_nonzero`, and for sessions `disconnected` (the caller left before the command
/// ended; the command was killed).
#[derive(Clone)]
pub struct ExecCounter(IntCounterVec);

impl ExecCounter {
    /// `berth_exec_commands_total{cluster,service,outcome}`, registered with `r`.
    pub fn new(r: &Registry) -> Self {
        let c = Self::unregistered();
        r.register(Box::new(c.0.clone()))
            .expect("metric registered once");
        c
    }

    fn unregistered() -> Self {
        Self(
            IntCounterVec::new(
                Opts::new(
                    "berth_exec_commands_total",
                    "Commands run in tasks' containers (berth exec), by outcome",
                ),
                &["cluster", "service", "outcome"],
            )
            .expect("valid metric"),
        )
    }

    pub(crate) fn count(&self, task: &Task, outcome: &str) {
        self.0
            .with_label_values(&[
                task.cluster_name(),
                task.service_name().unwrap_or(""),
                outcome,
            ])
            .inc();
    }

    /// The count for `task`'s cluster and service and `outcome`.
    pub fn get(&self, task: &Task, outcome: &str) -> u64 {
        self.0
            .with_label_values(&[
                task.cluster_name(),
                task.service_name().unwrap_or(""),
                outcome,
            ])
            .get()
    }
}

/// An unregistered counter, for routers built without a registry.
impl Default for ExecCounter {
    fn default() -> Self {
        Self::unregistered()
    }
}

/// Refuses what ECS refuses: a task started without `enableExecuteCommand`, a task that
/// is not RUNNING (or is on its way out).
pub fn check_exec_allowed(task: &Task) -> Result<(), ApiError> {
    if !task.enable_execute_command {
        return Err(ApiError::invalid(EXEC_NOT_ENABLED));
    }
    if task.last_status != TaskStatus::Running || task.desired_status != TaskStatus::Running {
        return Err(ApiError::invalid(format!(
            "The execute command failed because task {} is {} (desired {}); commands run only in a RUNNING task",
            task.id(),
            task.last_status.as_str(),
            task.desired_status.as_str()
        )));
    }
    Ok(())
}

/// Refuses an empty command.
fn check_command(command: &[String]) -> Result<(), ApiError> {
    if command.first().is_none_or(|p| p.is_empty()) {
        return Err(ApiError::invalid(
            "command: empty; give the program to run and its arguments, e.g. [\"ls\", \"-l\"]",
        ));
    }
    Ok(())
}

/// The command `body` asks for, or why it is refused.
pub fn exec_command(body: ExecBody) -> Result<ExecCommand, ApiError> {
    check_command(&body.command)?;
    let interactive = [
        ("stdin", body.stdin),
        ("tty", body.tty),
        ("windowSize", body.window_size.is_some()),
    ];
    if let Some((field, _)) = interactive.iter().find(|(_, set)| *set) {
        return Err(ApiError::invalid(format!(
            "{field}: only for an interactive session, which needs the request to upgrade its connection (Connection: Upgrade, Upgrade: {UPGRADE_PROTOCOL}); without it the command's output is captured"
        )));
    }
    let timeout = body.timeout_seconds.unwrap_or(DEFAULT_EXEC_TIMEOUT_SECONDS);
    if !(1..=MAX_EXEC_TIMEOUT_SECONDS).contains(&timeout) {
        return Err(ApiError::invalid(format!(
            "timeoutSeconds: {timeout}; allowed 1 to {MAX_EXEC_TIMEOUT_SECONDS}"
        )));
    }
    Ok(ExecCommand {
        container: body.container,
        command: body.command,
        timeout: Duration::from_secs(timeout),
    })
}

/// The interactive command `body` asks for, or why it is refused.
pub fn exec_session_command(body: ExecBody) -> Result<ExecSessionCommand, ApiError> {
    check_command(&body.command)?;
    if let Some(t) = body.timeout_seconds {
        return Err(ApiError::invalid(format!(
            "timeoutSeconds: {t}; an interactive session has no timeout (it lasts as long as its command or its connection): leave it out"
        )));
    }
    if body.window_size.is_some() && !body.tty {
        return Err(ApiError::invalid(
            "windowSize: only with tty (the size of the command's terminal)",
        ));
    }
    Ok(ExecSessionCommand {
        container: body.container,
        command: body.command,
        tty: body.tty,
        stdin: body.stdin,
        window: body.window_size.map(|w| WindowSize {
            rows: w.rows,
            cols: w.cols,
        }),
    })
}

/// The caller named in `body`, or a stand-in.
pub(crate) fn caller_of(body: &ExecBody) -> String {
    body.caller
        .clone()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "an API caller".to_string())
}

/// Runs the exec `body` asks for in `task`: checks, asks the node, records the event and
/// counts the outcome.
pub async fn exec(
    db: &Db,
    nodes: &dyn TaskNodes,
    counter: &ExecCounter,
    task: &Task,
    body: ExecBody,
) -> Result<ExecResult, ApiError> {
    let caller = caller_of(&body);
    let command = match exec_command(body).and_then(|c| check_exec_allowed(task).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            counter.count(task, "refused");
            return Err(e);
        }
    };
    let result = match nodes.exec(task, &command).await {
        Ok(r) => r,
        Err(e) => {
            counter.count(task, "failed");
            return Err(match e {
                NodeError::Unreachable { .. } => ApiError::server(e.to_string()),
                NodeError::Failed { .. } => ApiError::invalid(format!("exec: {e}")),
            });
        }
    };
    let outcome = if result.exit_code == 0 {
        "exited_zero"
    } else {
        "exited_nonzero"
    };
    counter.count(task, outcome);
    if let Some(service) = task.service_name() {
        let message = event_message(service, task, &caller, &command, &result);
        record_event(db, task.cluster_name(), service, message).await;
    }
    Ok(result)
}

/// The service event of an exec that ran.
pub fn event_message(
    service: &str,
    task: &Task,
    caller: &str,
    command: &ExecCommand,
    result: &ExecResult,
) -> String {
    format!(
        "(service {service}) {caller} ran {:?} in container {} of (task {}): exit code {}.",
        command.command,
        result.container,
        task.id(),
        result.exit_code
    )
}

/// Adds `message` to the service's events; the command already ran, so a failure to
/// record it is logged, not returned.
pub(crate) async fn record_event(db: &Db, cluster: &str, service: &str, message: String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let written = db
        .update::<Service, _>(&db::service_key(cluster, service), |s| {
            s.push_event(id.clone(), time::now(), message.clone());
            true
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(%cluster, %service, "cannot record an exec event: {e}");
    }
}

#[cfg(test)]
#[path = "task_exec_tests.rs"]
mod tests;
