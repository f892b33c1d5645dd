//! Exec on Docker: the engine's exec API runs the command inside the container (its
//! namespaces, filesystem, environment, user and working directory), attached to stdout
//! and stderr, without a terminal or stdin; the exit code comes from inspecting the exec
//! once its output ends.
//!
//! Docker has no call to stop an exec: when the timeout passes, berth signals the exec's
//! process (its pid, from the engine) with SIGKILL, provided that pid is, in berth's view
//! of `/proc`, a process running exactly the command (an engine in another pid namespace
//! reports pids berth must not signal) and berth may signal it (it runs as root);
//! otherwise the command is left to finish.
//!
//! Interactively (`exec_interactive_in_container`), the exec is attached to stdin too (when
//! asked) and gets a terminal with `tty`, sized right after its start and on every
//! resize frame (the engine's `resize`); its output streams as frames and the exit code
//! follows the end of its output. A session whose caller went away is ended the same
//! way as a timed-out exec. The engine tells a terminal's output from its multiplexed
//! stdout/stderr by the first byte of what it sends, so terminal output starting with a
//! byte 0 to 2 is misread (bollard's decoder).

use berth_model::exec_stream::{OutputFrame, WindowSize};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures::StreamExt;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{docker_message, Inner, Task};
use crate::exec::push_capped;
use crate::exec_interactive::{pump_input, session};
use crate::{ExecOutput, ExecRequest, ExecSession, InteractiveExecRequest, Result, RuntimeError};

impl Inner {
    /// Runs `request.command` in Docker container `idx` of `task`.
    pub(super) async fn exec_in_container(
        &self,
        task: &Task,
        idx: usize,
        request: &ExecRequest,
    ) -> Result<ExecOutput> {
        let name = task.core.def().container_definitions[idx].name.clone();
        let failed = |message: String| RuntimeError::ExecFailed {
            task: task.core.spec.task_arn.clone(),
            container: name.clone(),
            message,
        };
        let Some(id) = task.id(idx) else {
            return Err(failed("the container has no Docker container".into()));
        };
        let created = self
            .docker
            .create_exec(
                &id,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    attach_stdin: Some(false),
                    tty: Some(false),
                    cmd: Some(request.command.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| failed(docker_message(&e)))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| failed(docker_message(&e)))?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(failed("the engine started the exec detached".into()));
        };
        let mut out = ExecOutput {
            container: name.clone(),
            ..Default::default()
        };
        let read = async {
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        push_capped(&mut out.stdout, &mut out.truncated, &message)
                    }
                    Ok(LogOutput::StdErr { message }) => {
                        push_capped(&mut out.stderr, &mut out.truncated, &message)
                    }
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(e) => return Err(failed(format!("reading its output: {e}"))),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(request.timeout, read).await {
            Ok(read) => read?,
            Err(_) => {
                kill_exec(&self.docker, &created.id, &request.command).await;
                return Err(RuntimeError::ExecTimedOut {
                    task: task.core.spec.task_arn.clone(),
                    container: name,
                    timeout_seconds: request.timeout.as_secs(),
                });
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| failed(docker_message(&e)))?;
        // The engine reports a program it could not start (e.g. not in the image) as exit
        // code 126 or 127 with the reason on the output, as a shell would.
        out.exit_code = inspected
            .exit_code
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(-1);
        Ok(out)
    }

    /// Starts `request.command` interactively in Docker container `idx` of `task`.
    pub(super) async fn exec_interactive_in_container(
        &self,
        task: &Task,
        idx: usize,
        request: &InteractiveExecRequest,
    ) -> Result<ExecSession> {
        let name = task.core.def().container_definitions[idx].name.clone();
        let failed = |message: String| RuntimeError::ExecFailed {
            task: task.core.spec.task_arn.clone(),
            container: name.clone(),
            message,
        };
        let Some(id) = task.id(idx) else {
            return Err(failed("the container has no Docker container".into()));
        };
        let created = self
            .docker
            .create_exec(
                &id,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    attach_stdin: Some(request.stdin),
                    tty: Some(request.tty),
                    cmd: Some(request.command.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| failed(docker_message(&e)))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: request.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| failed(docker_message(&e)))?;
        let StartExecResults::Attached { mut output, input } = started else {
            return Err(failed("the engine started the exec detached".into()));
        };
        let exec_id = created.id;
        if let (true, Some(size)) = (request.tty, request.window) {
            resize(&self.docker, &exec_id, size).await;
        }
        let (session, ends) = session(name);
        let docker = self.docker.clone();
        let resize_id = exec_id.clone();
        let tty = request.tty;
        tokio::spawn(pump_input(
            ends.input,
            request.stdin.then_some(input),
            move |size| {
                let (docker, id) = (docker.clone(), resize_id.clone());
                async move {
                    if tty {
                        resize(&docker, &id, size).await;
                    }
                }
            },
        ));
        let docker = self.docker.clone();
        let command = request.command.clone();
        tokio::spawn(async move {
            let out = ends.output;
            let read = async {
                while let Some(item) = output.next().await {
                    let frame = match item {
                        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                            OutputFrame::Stdout(message.to_vec())
                        }
                        Ok(LogOutput::StdErr { message }) => OutputFrame::Stderr(message.to_vec()),
                        Ok(LogOutput::StdIn { .. }) => continue,
                        Err(e) => return Err(format!("reading its output: {e}")),
                    };
                    if out.send(frame).await.is_err() {
                        return Ok(false);
                    }
                }
                Ok(true)
            };
            let read = tokio::select! {
                read = read => read,
                _ = out.closed() => Ok(false),
            };
            let last = match read {
                Ok(false) => {
                    kill_exec(&docker, &exec_id, &command).await;
                    return;
                }
                Err(message) => OutputFrame::Error(message),
                Ok(true) => exit_frame(&docker, &exec_id).await,
            };
            let _ = out.send(last).await;
        });
        Ok(session)
    }
}

/// Best effort: SIGKILL to the exec's process, when the pid the engine reports runs
/// `command` as berth sees it.
async fn kill_exec(docker: &Docker, exec_id: &str, command: &[String]) {
    let pid = match docker.inspect_exec(exec_id).await {
        Ok(i) if i.running == Some(true) => i.pid.and_then(|p| i32::try_from(p).ok()),
        _ => None,
    };
    if let Some(pid) = pid.filter(|p| *p > 0 && runs_command(*p, command)) {
        if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGKILL) {
            tracing::warn!(exec = exec_id, pid, "cannot kill an exec: {e}");
        }
    }
}

/// The exit code of exec `id`, whose output ended, as a session's last frame. The engine
/// may record the code a moment after the output ends: asked again (every 50 ms, for up
/// to a second) while it reports the exec running.
async fn exit_frame(docker: &Docker, id: &str) -> OutputFrame {
    for _ in 0..20 {
        match docker.inspect_exec(id).await {
            Err(e) => return OutputFrame::Error(docker_message(&e)),
            Ok(i) => {
                if let Some(code) = i.exit_code.and_then(|c| i32::try_from(c).ok()) {
                    if i.running != Some(true) {
                        return OutputFrame::Exit(code);
                    }
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    OutputFrame::Error("the engine ended the session without the command's exit code".into())
}

/// Sets the terminal size of exec `id`; a failure (the exec already ended) is ignored.
async fn resize(docker: &Docker, id: &str, size: WindowSize) {
    let options = ResizeExecOptions {
        height: size.rows,
        width: size.cols,
    };
    if let Err(e) = docker.resize_exec(id, options).await {
        tracing::debug!(exec = id, "cannot resize an exec's terminal: {e}");
    }
}

/// Whether process `pid` (in berth's view of `/proc`) runs exactly `command`.
fn runs_command(pid: i32, command: &[String]) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv: Vec<&[u8]> = raw
        .strip_suffix(&[0])
        .unwrap_or(&raw)
        .split(|b| *b == 0)
        .collect();
    argv.len() == command.len() && argv.iter().zip(command).all(|(a, c)| *a == c.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_is_signalled_only_when_it_runs_the_command() {
        let own: Vec<String> = std::env::args().collect();
        assert!(runs_command(std::process::id() as i32, &own));
        let mut other = own.clone();
        other.push("--more".into());
        assert!(!runs_command(std::process::id() as i32, &other));
        assert!(!runs_command(i32::MAX, &own));
    }
}
