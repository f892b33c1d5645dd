//! Running a command in a running task's container (`berth exec`, ECS's ExecuteCommand),
//! non-interactively: the command's stdout and stderr are captured (each up to
//! [`MAX_EXEC_OUTPUT_BYTES`]) and returned with its exit code once it ends, or it is
//! killed when its timeout passes.
//!
//! It also holds what both kinds of exec share: which container a command runs in
//! ([`exec_target`]). Interactive sessions (stdin, a terminal) are
//! [`crate::exec_interactive`]'s.
//!
//! What it does not do: decide whether a task allows exec (the control plane checks the
//! task's `enableExecuteCommand`).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{ContainerStatus, Result, RuntimeError, TaskState};
use berth_model::ecs::TaskDefinition;

/// The most of each of stdout and stderr an exec keeps; the rest is read and dropped.
pub const MAX_EXEC_OUTPUT_BYTES: usize = 1 << 20;

/// How long an exec may run when the caller gives no timeout.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// A command to run in one of a task's containers.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecRequest {
    /// The container's name; `None` is the task's first essential container.
    pub container: Option<String>,
    /// The program and its arguments (no shell is involved).
    pub command: Vec<String>,
    /// The command is killed when it runs longer.
    pub timeout: Duration,
}

/// What a finished command gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// The container it ran in.
    pub container: String,
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// stdout or stderr went past [`MAX_EXEC_OUTPUT_BYTES`] and was cut there.
    pub truncated: bool,
}

/// The index of the container an exec of `command` runs in: `container` by name, or the
/// first essential container. Refuses an empty command and a container that does not run.
pub(crate) fn exec_target(
    def: &TaskDefinition,
    state: &TaskState,
    container: Option<&str>,
    command: &[String],
) -> Result<usize> {
    if command.first().is_none_or(|p| p.is_empty()) {
        return Err(RuntimeError::EmptyExecCommand);
    }
    let idx = match container {
        Some(name) => def
            .container_definitions
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| RuntimeError::UnknownContainer {
                task: state.task_arn.clone(),
                container: name.to_string(),
            })?,
        None => def
            .container_definitions
            .iter()
            .position(|c| c.essential)
            .unwrap_or(0),
    };
    if state.containers.get(idx).map(|c| c.status) != Some(ContainerStatus::Running) {
        return Err(RuntimeError::ContainerNotRunning {
            task: state.task_arn.clone(),
            container: def.container_definitions[idx].name.clone(),
        });
    }
    Ok(idx)
}

/// Reads `from` to its end, keeping the first [`MAX_EXEC_OUTPUT_BYTES`]; returns what it
/// kept and whether it dropped any.
pub(crate) async fn read_capped(mut from: impl AsyncRead + Unpin) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, dropped),
            Ok(n) => push_capped(&mut kept, &mut dropped, &buf[..n]),
        }
    }
}

/// Appends `chunk` to `kept` up to [`MAX_EXEC_OUTPUT_BYTES`], noting in `dropped` when
/// part of it did not fit.
pub(crate) fn push_capped(kept: &mut Vec<u8>, dropped: &mut bool, chunk: &[u8]) {
    let room = MAX_EXEC_OUTPUT_BYTES.saturating_sub(kept.len());
    if chunk.len() > room {
        *dropped = true;
    }
    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContainerState;
    use berth_model::ecs::HealthStatus;

    fn def() -> TaskDefinition {
        serde_json::from_value(serde_json::json!({
            "family": "f",
            "containerDefinitions": [
                {"name": "init", "image": "x", "essential": false},
                {"name": "app", "image": "x"}
            ]
        }))
        .unwrap()
    }

    fn state(running: [bool; 2]) -> TaskState {
        TaskState {
            task_arn: "t".into(),
            containers: ["init", "app"]
                .iter()
                .zip(running)
                .map(|(n, r)| ContainerState {
                    name: n.to_string(),
                    runtime_id: None,
                    status: if r {
                        ContainerStatus::Running
                    } else {
                        ContainerStatus::Stopped
                    },
                    exit_code: None,
                    reason: None,
                    health: HealthStatus::Unknown,
                    network_bindings: vec![],
                    private_ip: None,
                    essential: true,
                })
                .collect(),
        }
    }

    fn target(running: [bool; 2], container: Option<&str>, command: &[&str]) -> Result<usize> {
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        exec_target(&def(), &state(running), container, &command)
    }

    #[test]
    fn the_default_container_is_the_first_essential_one() {
        assert_eq!(target([false, true], None, &["ls"]).unwrap(), 1);
        assert_eq!(target([true, true], Some("init"), &["ls"]).unwrap(), 0);
    }

    #[test]
    fn an_empty_command_an_unknown_or_stopped_container_are_refused() {
        let e = target([true, true], None, &[]).unwrap_err();
        assert!(matches!(e, RuntimeError::EmptyExecCommand), "{e}");
        let e = target([true, true], Some("db"), &["ls"]).unwrap_err();
        assert!(matches!(e, RuntimeError::UnknownContainer { .. }), "{e}");
        let e = target([true, false], None, &["ls"]).unwrap_err();
        assert_eq!(e.to_string(), "container app of task t is not running");
    }

    #[test]
    fn output_past_the_cap_is_cut_and_flagged() {
        let mut kept = vec![0u8; MAX_EXEC_OUTPUT_BYTES - 2];
        let mut dropped = false;
        push_capped(&mut kept, &mut dropped, b"ab");
        assert!(!dropped);
        push_capped(&mut kept, &mut dropped, b"c");
        assert!(dropped);
        assert_eq!(kept.len(), MAX_EXEC_OUTPUT_BYTES);
        assert_eq!(&kept[kept.len() - 2..], b"ab");
    }
}
