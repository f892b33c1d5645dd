//! The process runtime: each container of a task runs as a local process.
//!
//! The embedded default when no Docker engine answers. A container's `entryPoint` +
//! `command` is the argv (its `image` is informational here); its `environment` and
//! `workingDirectory` apply, on top of berth's own environment, plus `BERTH_TASK_ARN`,
//! `BERTH_TASK_ID`, `BERTH_CLUSTER` and `BERTH_CONTAINER_NAME` (as on Docker).
//!
//! Ports: a process listens on the host itself, so each port mapping gets a host port
//! (its `hostPort`, or with 0 or none a free port; in `host` network mode the
//! `containerPort`) and the process is told it in its environment: `PORT` is the first
//! mapping's host port and `PORT_<NAME>` each named mapping's (name upper-cased, `-` →
//! `_`). The network bindings report `0.0.0.0`, the container port and the host port. A
//! fixed host port already in use fails the start.
//!
//! Each container process runs under a shim ([`shim_main`]), its own supervisor in its
//! own session, so tasks keep running when berth stops or dies; the shim records the exit
//! code in the container's directory. Layout of the state directory:
//!
//! ```text
//! <state_dir>/tasks/<task id>/task.json               spec, pids, ports, last known state
//! <state_dir>/tasks/<task id>/<container>/output.log  stdout and stderr
//! <state_dir>/tasks/<task id>/<container>/exit.json   written by the shim at exit
//! <state_dir>/tasks/<task id>/<container>/mounts/     a link per mount point (`volumes`)
//! <state_dir>/tasks/<task id>/volumes/<volume>/       task-scoped volumes
//! <state_dir>/volumes/<volume>/                       shared volumes, kept across tasks
//! ```
//!
//! [`ProcessRuntime::new`] reads it back: tasks whose shims still run (checked by pid,
//! start time and command line) are adopted, the others are reported stopped with the
//! exit codes their shims recorded.
//!
//! Volumes: a mount point is a symbolic link in the container's `mounts` directory,
//! which is its working directory unless it has a `workingDirectory` (see `volumes`).
//!
//! Not supported by this runtime (Docker's job): `user`, `ulimits`, memory and CPU limits
//! (they only count for placement), network isolation (`awsvpc` and `bridge` behave like
//! dynamic host ports, `none` like no ports), read-only mounts.
//!
//! Exec ([`crate::Runtime::exec`]) runs the command as a process beside the container's,
//! with its environment and working directory: a process task shares the host, so the
//! command does too (see `exec`); interactively, on pipes or a pseudo-terminal (see
//! `exec_interactive`).
//!
//! Layout: `supervise` (the backend: spawning a container under its shim, watching it
//! end, stopping it), `exec` (a command beside a container), `adopt` (reading the state directory back), `ports` (choosing host ports),
//! `orphans` (other state directories' shims whose node is gone),
//! `health` (running health-check commands), `volumes` (volume directories and mount
//! point links), `logs`, `stats` and `procfs` (reading
//! `/proc`), `shim` (the supervisor itself). The environment, `dependsOn`, the start and
//! stop walks and the [`crate::Runtime`] methods are shared with the Docker runtime.

mod adopt;
mod exec;
mod exec_interactive;
mod health;
mod logs;
mod orphans;
mod ports;
mod process_env;
mod procfs;
mod shim;
mod stats;
mod supervise;
mod volumes;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_model::ecs::TaskDefinition;
use serde::{Deserialize, Serialize};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use crate::dependencies::DEFAULT_DEPENDENCY_TIMEOUT;
pub use shim::shim_main;

use crate::task_core::TaskCore;
use crate::task_runtime::impl_runtime;
use crate::task_table::{RuntimeTask, TaskTable};
use crate::{Result, RuntimeError, TaskSpec, TaskState};

const LOG_FILE: &str = "output.log";
const TASK_FILE: &str = "task.json";

/// Configuration of a [`ProcessRuntime`].
#[derive(Debug, Clone)]
pub struct ProcessRuntimeConfig {
    /// Where task state and logs live; it survives restarts of berth.
    pub state_dir: PathBuf,
    /// The argv prefix that runs [`shim_main`]; the runtime appends
    /// `--dir <container dir> -- <argv...>`. For the `berth` binary:
    /// `["/path/to/berth", "shim"]`.
    pub shim: Vec<String>,
    /// The node's discovery DNS server, passed to tasks as `BERTH_DNS_SERVER` (a local
    /// process uses the host's resolver; programs that want berth's names ask this one).
    pub dns_server: Option<std::net::SocketAddr>,
}

impl ProcessRuntimeConfig {
    /// State under `state_dir`, the shim being `<this executable> shim` (right for the
    /// `berth` binary, which exposes [`shim_main`] as `berth shim`).
    pub fn new(state_dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        Ok(Self {
            state_dir: state_dir.into(),
            shim: vec![exe.to_string_lossy().into_owned(), "shim".into()],
            dns_server: None,
        })
    }
}

/// The process backend of [`crate::Runtime`]. Create it with [`ProcessRuntime::new`].
pub struct ProcessRuntime {
    inner: Arc<Inner>,
    /// Cancels the background work when the runtime is dropped.
    _shutdown_on_drop: DropGuard,
}

impl_runtime!(ProcessRuntime, inner, "process");

struct Inner {
    tasks_dir: PathBuf,
    /// `<state_dir>/volumes`: the directories of shared volumes.
    shared_volumes_dir: PathBuf,
    shim: Vec<String>,
    /// Named to every task as `BERTH_DNS_SERVER`.
    dns_server: Option<std::net::SocketAddr>,
    tasks: TaskTable<Task>,
    /// Cancelled when the runtime is dropped: background work stops, processes stay.
    shutdown: CancellationToken,
    ticks_per_second: u64,
    page_size: u64,
}

/// How to find and verify a container's shim and process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ProcRecord {
    shim_pid: i32,
    /// The shim's start time (clock ticks after boot), so a reused pid is not mistaken.
    shim_start_time: u64,
    /// The container process; also its process group.
    pid: i32,
}

/// `task.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskRecord {
    task_arn: String,
    cluster: String,
    task_definition: TaskDefinition,
    state: TaskState,
    procs: Vec<Option<ProcRecord>>,
}

/// Per container: what berth did to it, to explain its exit.
#[derive(Default)]
struct StopMarks {
    term_sent: AtomicBool,
    kill_sent: AtomicBool,
}

struct Task {
    core: TaskCore,
    dir: PathBuf,
    procs: Mutex<Vec<Option<ProcRecord>>>,
    marks: Vec<StopMarks>,
    /// Serialises writes of `task.json`.
    persist_lock: Mutex<()>,
    /// The last CPU sample: when, and the ticks summed over the task's processes.
    cpu_sample: Mutex<Option<(Instant, u64)>>,
}

// === impl Task ===

impl Task {
    fn new(
        spec: TaskSpec,
        dir: PathBuf,
        state: TaskState,
        procs: Vec<Option<ProcRecord>>,
    ) -> Arc<Self> {
        let n = spec.task_definition.container_definitions.len();
        Arc::new(Task {
            core: TaskCore::new(spec, state),
            dir,
            procs: Mutex::new(procs),
            marks: (0..n).map(|_| StopMarks::default()).collect(),
            persist_lock: Mutex::new(()),
            cpu_sample: Mutex::new(None),
        })
    }

    fn container_dir(&self, idx: usize) -> PathBuf {
        self.dir
            .join(safe_name(&self.core.def().container_definitions[idx].name))
    }

    /// The directory holding container `idx`'s mount point links, when it mounts
    /// anything (see `volumes`).
    fn mounts_dir(&self, idx: usize) -> Option<PathBuf> {
        volumes::mounts_dir(self.core.def(), &self.dir, idx)
    }

    /// Where container `idx`'s process runs: its `workingDirectory`, else its mounts
    /// directory when it has one, else berth's own working directory (`None`).
    fn working_dir(&self, idx: usize) -> Option<PathBuf> {
        let def = &self.core.def().container_definitions[idx];
        match &def.working_directory {
            Some(wd) => Some(PathBuf::from(wd)),
            None => self.mounts_dir(idx),
        }
    }

    fn record(&self) -> TaskRecord {
        TaskRecord {
            task_arn: self.core.spec.task_arn.clone(),
            cluster: self.core.spec.cluster.clone(),
            task_definition: self.core.spec.task_definition.clone(),
            state: self.core.snapshot(),
            procs: self.procs.lock().expect("procs lock").clone(),
        }
    }

    fn persist(&self) {
        let _g = self.persist_lock.lock().expect("persist lock");
        let bytes = serde_json::to_vec_pretty(&self.record()).expect("task record serializes");
        let tmp = self.dir.join(format!("{TASK_FILE}.tmp"));
        let res = std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(TASK_FILE)));
        if let Err(e) = res {
            tracing::warn!(task = %self.core.arn(), "cannot write task state: {e}");
        }
    }

    fn proc(&self, idx: usize) -> Option<ProcRecord> {
        self.procs.lock().expect("procs lock")[idx]
    }
}

impl RuntimeTask for Task {
    fn core(&self) -> &TaskCore {
        &self.core
    }

    /// Every change is saved, so a restarted berth knows it.
    fn state_changed(&self) {
        self.persist();
    }
}

/// A directory name for a container name (ECS names are `[A-Za-z0-9_-]`, but be safe).
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// === impl ProcessRuntime ===

impl ProcessRuntime {
    /// Opens (creating it if needed) the state directory, adopts the tasks whose processes
    /// still run and reports the others stopped with their recorded exit codes.
    ///
    /// Must be called inside a tokio runtime: it spawns a watcher per adopted process.
    /// Dropping the runtime stops that background work but leaves the processes running,
    /// as a restart of berth does.
    pub fn new(config: ProcessRuntimeConfig) -> Result<Arc<Self>> {
        if config.shim.is_empty() {
            return Err(RuntimeError::Other(
                "the process runtime needs a shim command".into(),
            ));
        }
        let tasks_dir = config.state_dir.join("tasks");
        std::fs::create_dir_all(&tasks_dir).map_err(|e| {
            RuntimeError::Other(format!("cannot create {}: {e}", tasks_dir.display()))
        })?;
        let tasks_dir = tasks_dir.canonicalize().map_err(|e| {
            RuntimeError::Other(format!("cannot resolve {}: {e}", tasks_dir.display()))
        })?;
        let shared_volumes_dir = tasks_dir.parent().unwrap_or(&tasks_dir).join("volumes");
        let inner = Arc::new(Inner {
            tasks_dir,
            shared_volumes_dir,
            shim: config.shim,
            dns_server: config.dns_server,
            tasks: TaskTable::new(),
            shutdown: CancellationToken::new(),
            ticks_per_second: procfs::clock_ticks_per_second(),
            page_size: procfs::page_size(),
        });
        inner.adopt_all()?;
        Ok(Arc::new(ProcessRuntime {
            _shutdown_on_drop: inner.shutdown.clone().drop_guard(),
            inner,
        }))
    }

    /// The state directory's `tasks` subdirectory (absolute).
    pub fn tasks_dir(&self) -> &Path {
        &self.inner.tasks_dir
    }
}
