//! Reading the state directory back when the runtime opens: a task whose shims still
//! run (checked by pid, start time and command line) is adopted and watched again; a
//! container whose shim ended while berth was away is reported stopped with the exit
//! code the shim recorded. A container whose shim started but whose pid berth had not
//! yet recorded (berth died in between) is found by its shim's command line and adopted
//! too, so its process is neither lost nor left running unowned. It starts no process.

use std::path::PathBuf;
use std::sync::Arc;

use super::supervise::exit_outcome;
use super::{procfs, Inner, ProcRecord, Task, TaskRecord, TASK_FILE};
use crate::task_runtime::Backend;
use crate::{ContainerStatus, Result, RuntimeError, TaskSpec};

/// The running shim of the container directory `cdir` and its process, when berth died
/// between starting it and recording it.
fn unrecorded_shim(cdir: &std::path::Path) -> Option<ProcRecord> {
    let (shim_pid, stat) = procfs::processes_with_arg(cdir).into_iter().next()?;
    let Some(pid) = procfs::children(shim_pid).into_iter().next() else {
        // Caught before it started the process: it must not start it unowned.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(shim_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        return None;
    };
    tracing::info!(shim = shim_pid, pid, dir = %cdir.display(), "found a container process started just before berth stopped");
    Some(ProcRecord {
        shim_pid,
        shim_start_time: stat.start_time,
        pid,
    })
}

impl Inner {
    pub(super) fn adopt_all(self: &Arc<Self>) -> Result<()> {
        let entries = std::fs::read_dir(&self.tasks_dir).map_err(|e| {
            RuntimeError::Other(format!("cannot read {}: {e}", self.tasks_dir.display()))
        })?;
        for e in entries.flatten() {
            let dir = e.path();
            let file = dir.join(TASK_FILE);
            let rec: TaskRecord = match std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!("ignoring {}: {err}", file.display());
                    continue;
                }
            };
            self.adopt(dir, rec);
        }
        Ok(())
    }

    fn adopt(self: &Arc<Self>, dir: PathBuf, rec: TaskRecord) {
        let n = rec.task_definition.container_definitions.len();
        if rec.state.containers.len() != n || rec.procs.len() != n {
            tracing::warn!(task = %rec.task_arn, "ignoring a task state that does not match its definition");
            return;
        }
        let spec = TaskSpec {
            task_arn: rec.task_arn,
            cluster: rec.cluster,
            task_definition: rec.task_definition,
            secrets: Vec::new(),
        };
        let task = Task::new(spec, dir, rec.state, rec.procs.clone());
        let mut running = Vec::new();
        for idx in 0..n {
            let status = task.core.state.borrow().containers[idx].status;
            if status == ContainerStatus::Stopped {
                continue;
            }
            let Some(p) = rec.procs[idx].or_else(|| unrecorded_shim(&task.container_dir(idx)))
            else {
                task.core.state.send_modify(|s| {
                    let c = &mut s.containers[idx];
                    c.status = ContainerStatus::Stopped;
                    c.reason =
                        Some("not started: berth stopped while the task was starting".into());
                });
                continue;
            };
            let cdir = task.container_dir(idx);
            if procfs::alive(p.shim_pid, p.shim_start_time)
                && procfs::cmdline_has_arg(p.shim_pid, &cdir)
            {
                task.procs.lock().expect("procs lock")[idx] = Some(p);
                task.core.state.send_modify(|s| {
                    let c = &mut s.containers[idx];
                    c.status = ContainerStatus::Running;
                    c.runtime_id = Some(p.pid.to_string());
                });
                running.push(idx);
            } else {
                let (code, reason) = exit_outcome(&cdir, &task.marks[idx]);
                task.core.state.send_modify(|s| {
                    let c = &mut s.containers[idx];
                    c.status = ContainerStatus::Stopped;
                    c.exit_code = code;
                    c.reason = Some(reason);
                });
            }
        }
        task.persist();
        self.tasks.insert(task.clone());
        tracing::info!(task = %task.core.arn(), running = running.len(), "adopted task");
        for idx in running {
            let p = task.proc(idx).expect("running container has a process");
            tokio::spawn(self.clone().monitor(task.clone(), idx, None, p));
            self.spawn_health_checker(&task, idx);
        }
        // An essential container that ended while berth was away ends the task now.
        let state = task.core.snapshot();
        if !state.all_stopped() {
            if let Some(c) = state.essential_stopped() {
                let name = c.name.clone();
                let inner = self.clone();
                tokio::spawn(async move {
                    tracing::info!(task = %task.core.arn(), container = %name, "essential container exited while berth was down; stopping the task");
                    inner.stop_task(&task).await;
                });
            }
        }
    }
}
