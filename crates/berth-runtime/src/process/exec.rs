//! Exec on the process runtime: the command runs as a new process on the host, beside the
//! container's process, with the container's environment (the same one its process got,
//! ports included) in its working directory (its `workingDirectory`, else its mounts
//! directory when it mounts volumes, else berth's own). A process
//! task shares the host, so this is not an entry into an isolated container: the command
//! sees the host's filesystem, processes and network, as the task does.
//!
//! It runs in its own process group, which is killed when the timeout passes.

use nix::sys::signal::Signal;

use super::process_env::{container_env, signal_group};
use super::Task;
use crate::exec::read_capped;
use crate::{ExecOutput, ExecRequest, Result, RuntimeError};

/// Runs `request.command` beside container `idx` of `task`.
pub(super) async fn exec_beside(
    task: &Task,
    idx: usize,
    request: &ExecRequest,
    dns_server: Option<std::net::SocketAddr>,
) -> Result<ExecOutput> {
    let def = &task.core.def().container_definitions[idx];
    let failed = |message: String| RuntimeError::ExecFailed {
        task: task.core.spec.task_arn.clone(),
        container: def.name.clone(),
        message,
    };
    let mut cmd = beside(task, idx, &request.command, dns_server);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot run {:?}: {e}", request.command[0])))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let run = async {
        let (out, err, status) =
            tokio::join!(read_capped(stdout), read_capped(stderr), child.wait());
        (out, err, status)
    };
    match tokio::time::timeout(request.timeout, run).await {
        Ok(((stdout, out_cut), (stderr, err_cut), status)) => {
            let status = status.map_err(|e| failed(format!("cannot wait for the command: {e}")))?;
            Ok(ExecOutput {
                container: def.name.clone(),
                exit_code: exit_code(status),
                stdout,
                stderr,
                truncated: out_cut || err_cut,
            })
        }
        Err(_) => {
            if let Some(pid) = child.id() {
                signal_group(pid as i32, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Err(RuntimeError::ExecTimedOut {
                task: task.core.spec.task_arn.clone(),
                container: def.name.clone(),
                timeout_seconds: request.timeout.as_secs(),
            })
        }
    }
}

/// `argv` as a process beside container `idx` of `task`: the container's environment and
/// working directory (berth's own when it has none).
pub(super) fn beside(
    task: &Task,
    idx: usize,
    argv: &[String],
    dns_server: Option<std::net::SocketAddr>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    for (k, v) in container_env(task, idx, dns_server) {
        cmd.env(k, v);
    }
    if let Some(wd) = task.working_dir(idx) {
        cmd.current_dir(wd);
    }
    cmd
}

/// The exit code, or 128 + the signal that ended the process (as a shell reports it).
pub(super) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}
