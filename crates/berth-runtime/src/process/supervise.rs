//! The process [`Backend`]: a container as a supervised local process. Checking a task
//! before its start, spawning each container under its shim (the shim's `started <pid>`
//! handshake), watching the shim end and recording how the process ended, and stopping
//! it (SIGTERM to its process group, SIGKILL after `stopTimeout`). The order containers
//! start and stop in is the shared walks'; the shim itself is `shim`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_model::ecs::{ContainerDefinition, TaskDefinition};
use nix::sys::signal::Signal;
use tokio::io::AsyncBufReadExt;

use super::process_env::{container_env, signal_group};
use super::{logs, procfs, shim, volumes, Inner, ProcRecord, StopMarks, Task, LOG_FILE};
use crate::orphans::{LiveOwners, OrphanTask};
use crate::task_core::{
    check_startable, pending_state, start_in_dependency_order, stopped_during_start,
};
use crate::task_runtime::Backend;
use crate::task_table::TaskTable;
use crate::{
    ContainerStatus, ExecOutput, ExecRequest, LogStream, Result, RuntimeError, TaskSpec, TaskState,
    TaskStats,
};

/// How long the shim has to report that it started the process.
const SHIM_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an adopted shim (not berth's child) is checked for exit.
const ADOPTED_POLL: Duration = Duration::from_millis(200);
/// How long to wait for a process to go after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(10);

fn argv(c: &ContainerDefinition) -> Vec<String> {
    c.entry_point.iter().chain(&c.command).cloned().collect()
}

/// What the process runtime refuses before it creates anything, besides what both
/// runtimes refuse: a container without a program to run, a missing working directory
/// (volumes are checked by `volumes`).
fn check_runnable(td: &TaskDefinition) -> Result<()> {
    for c in &td.container_definitions {
        if argv(c).is_empty() {
            return Err(RuntimeError::StartFailed(format!(
                "container {} has neither entryPoint nor command: the process runtime runs a container's entryPoint + command",
                c.name
            )));
        }
        if let Some(wd) = &c.working_directory {
            if !Path::new(wd).is_dir() {
                return Err(RuntimeError::StartFailed(format!(
                    "container {}: workingDirectory {wd} is not a directory",
                    c.name
                )));
            }
        }
    }
    Ok(())
}

impl Inner {
    /// Starts the containers in dependency order; on failure stops what started.
    async fn start_task(self: &Arc<Self>, task: &Arc<Task>) -> Result<TaskState> {
        let started =
            start_in_dependency_order(&task.core, |idx| self.spawn_container(task, idx)).await;
        if let Err(e) = started {
            self.stop_task(task).await;
            return Err(e);
        }
        if task.core.is_stopping() {
            return Err(RuntimeError::StartFailed(stopped_during_start(
                &task.core.snapshot(),
            )));
        }
        Ok(task.core.snapshot())
    }

    async fn spawn_container(self: &Arc<Self>, task: &Arc<Task>, idx: usize) -> Result<()> {
        let def = &task.core.def().container_definitions[idx];
        let argv = argv(def);
        let cdir = task.container_dir(idx);
        std::fs::create_dir_all(&cdir).map_err(|e| {
            RuntimeError::StartFailed(format!("cannot create {}: {e}", cdir.display()))
        })?;
        // A leftover from an earlier attempt would be mistaken for this run's exit.
        let _ = std::fs::remove_file(cdir.join(shim::EXIT_FILE));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cdir.join(LOG_FILE))
            .map_err(|e| {
                RuntimeError::StartFailed(format!("cannot open the log of {}: {e}", def.name))
            })?;

        let mut cmd = tokio::process::Command::new(&self.shim[0]);
        cmd.args(&self.shim[1..])
            .arg("--dir")
            .arg(&cdir)
            .arg("--")
            .args(&argv)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log);
        for (k, v) in container_env(task, idx, self.dns_server) {
            cmd.env(k, v);
        }
        if let Some(wd) = task.working_dir(idx) {
            cmd.current_dir(wd);
        }
        let mut child = cmd.spawn().map_err(|e| {
            RuntimeError::StartFailed(format!(
                "container {}: cannot start the process supervisor {:?}: {e}",
                def.name, self.shim[0]
            ))
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(stdout);
        let read = reader.read_line(&mut line);
        let got = tokio::time::timeout(SHIM_HANDSHAKE_TIMEOUT, read).await;
        let line = line.trim();
        let pid = match (got, line.split_once(' ')) {
            (Ok(Ok(_)), Some(("started", pid))) => pid.parse::<i32>().ok(),
            (Ok(Ok(_)), Some(("failed", reason))) => {
                let _ = child.wait().await;
                return Err(RuntimeError::StartFailed(format!(
                    "container {}: {reason}",
                    def.name
                )));
            }
            _ => None,
        };
        let Some(pid) = pid else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(RuntimeError::StartFailed(format!(
                "container {}: the process supervisor did not report a start (got {line:?})",
                def.name
            )));
        };
        let shim_pid = child.id().expect("running child has a pid") as i32;
        let shim_start_time = procfs::stat(shim_pid).map(|s| s.start_time).unwrap_or(0);
        let p = ProcRecord {
            shim_pid,
            shim_start_time,
            pid,
        };
        task.procs.lock().expect("procs lock")[idx] = Some(p);
        tracing::info!(task = %task.core.arn(), container = %def.name, pid, "container started");
        self.tasks.update(task, |s| {
            let c = &mut s.containers[idx];
            c.status = ContainerStatus::Running;
            c.runtime_id = Some(pid.to_string());
        });
        tokio::spawn(self.clone().monitor(task.clone(), idx, Some(child), p));
        self.spawn_health_checker(task, idx);
        Ok(())
    }

    /// Waits for the container's shim to end, then records how the process ended.
    pub(super) async fn monitor(
        self: Arc<Self>,
        task: Arc<Task>,
        idx: usize,
        child: Option<tokio::process::Child>,
        p: ProcRecord,
    ) {
        let ended = async {
            match child {
                Some(mut child) => {
                    let _ = child.wait().await;
                }
                None => {
                    while procfs::alive(p.shim_pid, p.shim_start_time) {
                        tokio::time::sleep(ADOPTED_POLL).await;
                    }
                }
            }
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => return,
            _ = ended => {}
        }
        let cdir = task.container_dir(idx);
        let (code, reason) = exit_outcome(&cdir, &task.marks[idx]);
        let def = &task.core.def().container_definitions[idx];
        tracing::info!(task = %task.core.arn(), container = %def.name, exit_code = ?code, "container stopped: {reason}");
        self.tasks.update(&task, |s| {
            let c = &mut s.containers[idx];
            c.status = ContainerStatus::Stopped;
            c.exit_code = code;
            c.reason = Some(reason);
        });
        if def.essential && !task.core.is_stopping() {
            tracing::info!(task = %task.core.arn(), container = %def.name, "essential container exited; stopping the task");
            self.stop_task(&task).await;
        }
    }
}

impl Backend for Inner {
    type Task = Task;

    fn tasks(&self) -> &TaskTable<Task> {
        &self.tasks
    }

    /// Checks a task this runtime does not know yet, chooses its host ports, creates its
    /// directory and starts it.
    async fn start_new(self: &Arc<Self>, spec: &TaskSpec) -> Result<TaskState> {
        let td = &spec.task_definition;
        check_startable(td)?;
        check_runnable(td)?;
        let bindings = super::ports::allocate_ports(td)?;

        let id = spec.task_id();
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(RuntimeError::StartFailed(format!(
                "task ARN {} has no usable id",
                spec.task_arn
            )));
        }
        let dir = self.tasks_dir.join(id);
        let mounts = volumes::plan(td, &dir, &self.shared_volumes_dir)?;
        volumes::check_shared(&mounts)?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            RuntimeError::StartFailed(format!("cannot create {}: {e}", dir.display()))
        })?;
        let n = td.container_definitions.len();
        let state = pending_state(spec, bindings);
        let task = Task::new(spec.clone(), dir, state, vec![None; n]);
        if let Err(existing) = self.tasks.insert_new(task.clone()) {
            return Ok(existing);
        }
        task.persist();
        if let Err(e) = volumes::prepare(&spec.task_arn, &mounts) {
            self.stop_task(&task).await;
            return Err(e);
        }
        self.start_task(&task).await
    }

    async fn stop_container(self: &Arc<Self>, task: &Arc<Task>, idx: usize) {
        if task.core.snapshot().containers[idx].status != ContainerStatus::Running {
            return;
        }
        let Some(p) = task.proc(idx) else { return };
        let def = &task.core.def().container_definitions[idx];
        let timeout = Duration::from_secs(def.stop_timeout_seconds().into());
        let mut rx = task.core.state.subscribe();
        let stopped = |s: &TaskState| s.containers[idx].status == ContainerStatus::Stopped;

        task.marks[idx].term_sent.store(true, Ordering::SeqCst);
        signal_group(p.pid, Signal::SIGTERM);
        if tokio::time::timeout(timeout, rx.wait_for(stopped))
            .await
            .is_ok()
        {
            return;
        }
        tracing::info!(task = %task.core.arn(), container = %def.name, "still running {}s after SIGTERM; sending SIGKILL", timeout.as_secs());
        task.marks[idx].kill_sent.store(true, Ordering::SeqCst);
        signal_group(p.pid, Signal::SIGKILL);
        if tokio::time::timeout(KILL_GRACE, rx.wait_for(stopped))
            .await
            .is_err()
        {
            tracing::warn!(task = %task.core.arn(), container = %def.name, pid = p.pid, "process did not end after SIGKILL");
        }
    }

    async fn remove_stopped(&self, task: &Arc<Task>) -> Result<()> {
        self.tasks.remove(task.core.arn());
        std::fs::remove_dir_all(&task.dir)
            .map_err(|e| RuntimeError::Other(format!("cannot remove {}: {e}", task.dir.display())))
    }

    async fn log(&self, task: &Arc<Task>, idx: usize, follow: bool) -> Result<LogStream> {
        logs::container_log(task, idx, follow).await
    }

    async fn task_stats(&self, task: &Arc<Task>) -> TaskStats {
        self.measure(task)
    }

    async fn orphans(&self, live: &LiveOwners) -> Result<Vec<OrphanTask>> {
        Ok(super::orphans::scan(&self.tasks_dir, live))
    }

    async fn remove_orphan(&self, orphan: &OrphanTask) -> Result<()> {
        super::orphans::stop(orphan).await
    }

    async fn exec_in(
        &self,
        task: &Arc<Task>,
        idx: usize,
        request: &ExecRequest,
    ) -> Result<ExecOutput> {
        super::exec::exec_beside(task, idx, request, self.dns_server).await
    }

    async fn exec_interactive_in(
        &self,
        task: &Arc<Task>,
        idx: usize,
        request: &crate::InteractiveExecRequest,
    ) -> Result<crate::ExecSession> {
        super::exec_interactive::start(task, idx, request, &self.shim, self.dns_server)
    }
}

/// The exit code and reason of a container whose shim has ended.
pub(super) fn exit_outcome(cdir: &Path, marks: &StopMarks) -> (Option<i32>, String) {
    let Some(rec) = shim::read_exit(cdir) else {
        return (
            None,
            "the process supervisor ended without recording an exit status".into(),
        );
    };
    let by_berth = if marks.kill_sent.load(Ordering::SeqCst) {
        Some("stopped by berth: SIGKILL after stopTimeout")
    } else if marks.term_sent.load(Ordering::SeqCst) {
        Some("stopped by berth: SIGTERM")
    } else {
        None
    };
    let what = match (&rec.error, &rec.signal) {
        (Some(e), _) => e.clone(),
        (None, Some(sig)) => format!("killed by {sig} (exit code {})", rec.exit_code),
        (None, None) => format!("exited with code {}", rec.exit_code),
    };
    let reason = match by_berth {
        Some(b) => format!("{b}; {what}"),
        None => what,
    };
    (Some(rec.exit_code), reason)
}
