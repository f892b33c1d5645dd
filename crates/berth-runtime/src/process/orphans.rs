//! Orphaned process tasks: berth shims running for a state directory other than this
//! runtime's, whose node is not alive, found by scanning `/proc`; and stopping them.
//!
//! A shim is recognised by its command line (`... --dir <state dir>/tasks/<task>/<container>
//! -- <argv>`) and the task record (`task.json`) beside its container directory; a
//! process without both is never touched. Stopping an orphan sends SIGTERM to its
//! container's process group (the shim forwards it too), waits for the shims to end
//! and then sends SIGKILL; the shims record the exits in that state directory, which is
//! left in place so the node owning it, if it starts again, reports the tasks stopped.
//! What it does not do: remove another state directory's files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::process_env::signal_group;
use super::{procfs, TaskRecord, TASK_FILE};
use crate::orphans::{LiveOwners, OrphanOwner, OrphanProcess, OrphanTask};
use crate::{Result, RuntimeError};

/// How long an orphan's processes have to end after SIGTERM before SIGKILL.
const ORPHAN_STOP_GRACE: Duration = Duration::from_secs(10);

/// A shim's container directory and the program it runs, from its command line.
fn shim_args(cmdline: &[u8]) -> Option<(PathBuf, Vec<String>)> {
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = args.iter().position(|a| a == "--dir")?;
    let dir = args.get(at + 1)?;
    if args.get(at + 2).map(String::as_str) != Some("--") {
        return None;
    }
    let argv = args[at + 3..]
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    Some((PathBuf::from(dir), argv))
}

/// The running shims of other state directories whose owner is not alive, by task.
pub(super) fn scan(own_tasks_dir: &Path, live: &LiveOwners) -> Vec<OrphanTask> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut by_task: BTreeMap<PathBuf, OrphanTask> = BTreeMap::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let Some((cdir, argv)) = shim_args(&cmdline) else {
            continue;
        };
        let Some(task_dir) = cdir.parent() else {
            continue;
        };
        let Some(tasks_dir) = task_dir.parent() else {
            continue;
        };
        if tasks_dir.file_name().and_then(|n| n.to_str()) != Some("tasks") {
            continue;
        }
        let Some(state_dir) = tasks_dir.parent() else {
            continue;
        };
        let same_dir = |a: &Path, b: &Path| {
            a.canonicalize()
                .ok()
                .zip(b.canonicalize().ok())
                .is_some_and(|(a, b)| a == b)
        };
        if same_dir(tasks_dir, own_tasks_dir) || live.owns_state_dir(state_dir) {
            continue;
        }
        let Some(stat) = procfs::stat(pid).filter(|s| !matches!(s.state, 'Z' | 'X')) else {
            continue;
        };
        let record: Option<TaskRecord> = std::fs::read(task_dir.join(TASK_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(record) = record else {
            continue;
        };
        let child = record
            .procs
            .iter()
            .flatten()
            .find(|p| p.shim_pid == pid && p.shim_start_time == stat.start_time)
            .map(|p| p.pid);
        let state_dir = state_dir
            .canonicalize()
            .unwrap_or_else(|_| state_dir.to_path_buf());
        let task = by_task
            .entry(task_dir.to_path_buf())
            .or_insert_with(|| OrphanTask {
                task_arn: record.task_arn.clone(),
                cluster: record.cluster.clone(),
                runs: Vec::new(),
                owner: OrphanOwner::StateDir(state_dir),
                runtime_ids: Vec::new(),
                processes: Vec::new(),
            });
        task.runs.push(argv.join(" "));
        task.runtime_ids.push(format!("shim pid {pid}"));
        if let Some(child) = child {
            task.runtime_ids.push(format!("pid {child}"));
        }
        task.processes.push(OrphanProcess {
            shim_pid: pid,
            shim_start_time: stat.start_time,
            pid: child,
        });
    }
    by_task.into_values().collect()
}

/// Stops an orphan's processes: SIGTERM to each container's process group and its shim,
/// SIGKILL to what still runs after [`ORPHAN_STOP_GRACE`].
pub(super) async fn stop(orphan: &OrphanTask) -> Result<()> {
    if orphan.processes.is_empty() {
        return Err(RuntimeError::Other(format!(
            "task {} is not an orphan of the process runtime",
            orphan.task_arn
        )));
    }
    let alive = |p: &OrphanProcess| procfs::alive(p.shim_pid, p.shim_start_time);
    let signal = |sig: Signal| {
        for p in orphan.processes.iter().filter(|p| alive(p)) {
            if let Some(pid) = p.pid {
                signal_group(pid, sig);
            }
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.shim_pid), sig);
        }
    };
    signal(Signal::SIGTERM);
    let deadline = Instant::now() + ORPHAN_STOP_GRACE;
    while orphan.processes.iter().any(alive) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if orphan.processes.iter().any(alive) {
        signal(Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while orphan.processes.iter().any(alive) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    match orphan.processes.iter().find(|p| alive(p)) {
        Some(p) => Err(RuntimeError::Other(format!(
            "task {}: shim {} still runs after SIGKILL",
            orphan.task_arn, p.shim_pid
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shim_command_line_names_its_container_dir_and_program() {
        let line = b"/bin/berth\0shim\0--dir\0/d/runtime/tasks/t1/web\0--\0whoami\0-v\0";
        let (dir, argv) = shim_args(line).unwrap();
        assert_eq!(dir, PathBuf::from("/d/runtime/tasks/t1/web"));
        assert_eq!(argv, ["whoami", "-v"]);
        assert!(shim_args(b"/bin/berth\0server\0--data-dir\0/d\0").is_none());
        assert!(shim_args(b"/bin/x\0--dir\0/d\0whoami\0").is_none());
    }
}
