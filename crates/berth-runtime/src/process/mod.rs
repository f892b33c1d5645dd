//! The process runtime: each container of a task runs as a local process.
//!
//! The embedded default when no Docker engine answers. A container's `entryPoint` +
//! `command` is the argv (its `image` is informational here); its `environment` and
//! `workingDirectory` apply, on top of berth's own environment, plus `BERTH_TASK_ARN`,
//! `BERTH_TASK_ID`, `BERTH_CLUSTER` and `BERTH_CONTAINER_NAME`.
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
//! ```
//!
//! [`ProcessRuntime::new`] reads it back: tasks whose shims still run (checked by pid,
//! start time and command line) are adopted, the others are reported stopped with the
//! exit codes their shims recorded.
//!
//! Not supported by this runtime (Docker's job): `user`, `ulimits`, memory and CPU limits
//! (they only count for placement), network isolation (`awsvpc` and `bridge` behave like
//! dynamic host ports, `none` like no ports).

mod procfs;
mod shim;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use berth_model::ecs::{
    ContainerDefinition, DependencyCondition, HealthCheck, HealthStatus, NetworkBinding,
    NetworkMode, TaskDefinition, TransportProtocol,
};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

pub use shim::shim_main;

use crate::{
    deps, ContainerState, ContainerStatus, LogStream, Result, Runtime, RuntimeError, TaskSpec,
    TaskState, TaskStats,
};

/// How long to wait for dependencies when a container sets no `startTimeout` (the ECS
/// agent's default `ECS_CONTAINER_START_TIMEOUT` on Linux).
pub const DEFAULT_DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the shim has to report that it started the process.
const SHIM_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an adopted shim (not berth's child) is checked for exit.
const ADOPTED_POLL: Duration = Duration::from_millis(200);
/// How long to wait for a process to go after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(10);
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
}

impl ProcessRuntimeConfig {
    /// State under `state_dir`, the shim being `<this executable> shim` (right for the
    /// `berth` binary, which exposes [`shim_main`] as `berth shim`).
    pub fn new(state_dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        Ok(Self {
            state_dir: state_dir.into(),
            shim: vec![exe.to_string_lossy().into_owned(), "shim".into()],
        })
    }
}

/// The process backend of [`Runtime`]. Create it with [`ProcessRuntime::new`].
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    tasks_dir: PathBuf,
    shim: Vec<String>,
    tasks: Mutex<BTreeMap<String, Arc<Task>>>,
    events: broadcast::Sender<TaskState>,
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
    arn: String,
    cluster: String,
    def: TaskDefinition,
    dir: PathBuf,
    state: watch::Sender<TaskState>,
    procs: Mutex<Vec<Option<ProcRecord>>>,
    marks: Vec<StopMarks>,
    /// Set once the task is being stopped; no container starts after that.
    stopping: AtomicBool,
    /// Held while a container is being spawned and while the task is being stopped.
    lifecycle: tokio::sync::Mutex<()>,
    /// Serialises writes of `task.json`.
    persist_lock: Mutex<()>,
    /// The last CPU sample: when, and the ticks summed over the task's processes.
    cpu_sample: Mutex<Option<(Instant, u64)>>,
}

impl Task {
    fn container_dir(&self, idx: usize) -> PathBuf {
        self.dir
            .join(safe_name(&self.def.container_definitions[idx].name))
    }

    fn snapshot(&self) -> TaskState {
        self.state.borrow().clone()
    }

    fn record(&self) -> TaskRecord {
        TaskRecord {
            task_arn: self.arn.clone(),
            cluster: self.cluster.clone(),
            task_definition: self.def.clone(),
            state: self.snapshot(),
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
            tracing::warn!(task = %self.arn, "cannot write task state: {e}");
        }
    }

    fn proc(&self, idx: usize) -> Option<ProcRecord> {
        self.procs.lock().expect("procs lock")[idx]
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

fn port_env_name(name: &str) -> String {
    format!(
        "PORT_{}",
        name.to_ascii_uppercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    )
}

fn argv(c: &ContainerDefinition) -> Vec<String> {
    c.entry_point.iter().chain(&c.command).cloned().collect()
}

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
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            tasks_dir,
            shim: config.shim,
            tasks: Mutex::new(BTreeMap::new()),
            events,
            shutdown: CancellationToken::new(),
            ticks_per_second: procfs::clock_ticks_per_second(),
            page_size: procfs::page_size(),
        });
        inner.adopt_all()?;
        Ok(Arc::new(ProcessRuntime { inner }))
    }

    /// The state directory's `tasks` subdirectory (absolute).
    pub fn tasks_dir(&self) -> &Path {
        &self.inner.tasks_dir
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

impl Inner {
    fn task(&self, arn: &str) -> Result<Arc<Task>> {
        self.tasks
            .lock()
            .expect("tasks lock")
            .get(arn)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownTask(arn.to_string()))
    }

    /// Applies `f` to the task's state, saves it and tells subscribers.
    fn update(&self, task: &Task, f: impl FnOnce(&mut TaskState)) {
        task.state.send_modify(f);
        task.persist();
        let _ = self.events.send(task.snapshot());
    }

    fn adopt_all(self: &Arc<Self>) -> Result<()> {
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
        let task = Arc::new(Task {
            arn: rec.task_arn.clone(),
            cluster: rec.cluster,
            def: rec.task_definition,
            dir,
            state: watch::Sender::new(rec.state),
            procs: Mutex::new(rec.procs.clone()),
            marks: (0..n).map(|_| StopMarks::default()).collect(),
            stopping: AtomicBool::new(false),
            lifecycle: tokio::sync::Mutex::new(()),
            persist_lock: Mutex::new(()),
            cpu_sample: Mutex::new(None),
        });
        let mut running = Vec::new();
        for idx in 0..n {
            let status = task.state.borrow().containers[idx].status;
            if status == ContainerStatus::Stopped {
                continue;
            }
            let Some(p) = rec.procs[idx] else {
                task.state.send_modify(|s| {
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
                running.push(idx);
            } else {
                let (code, reason) = exit_outcome(&cdir, &task.marks[idx]);
                task.state.send_modify(|s| {
                    let c = &mut s.containers[idx];
                    c.status = ContainerStatus::Stopped;
                    c.exit_code = code;
                    c.reason = Some(reason);
                });
            }
        }
        task.persist();
        self.tasks
            .lock()
            .expect("tasks lock")
            .insert(task.arn.clone(), task.clone());
        tracing::info!(task = %task.arn, running = running.len(), "adopted task");
        for idx in running {
            let p = task.proc(idx).expect("running container has a process");
            tokio::spawn(self.clone().monitor(task.clone(), idx, None, p));
            self.spawn_health_checker(&task, idx);
        }
        // An essential container that ended while berth was away ends the task now.
        let state = task.snapshot();
        if !state.all_stopped() {
            if let Some(c) = state.essential_stopped() {
                let name = c.name.clone();
                let inner = self.clone();
                tokio::spawn(async move {
                    tracing::info!(task = %task.arn, container = %name, "essential container exited while berth was down; stopping the task");
                    inner.stop_task(&task).await;
                });
            }
        }
    }

    /// Waits for the container's shim to end, then records how the process ended.
    async fn monitor(
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
        let def = &task.def.container_definitions[idx];
        tracing::info!(task = %task.arn, container = %def.name, exit_code = ?code, "container stopped: {reason}");
        self.update(&task, |s| {
            let c = &mut s.containers[idx];
            c.status = ContainerStatus::Stopped;
            c.exit_code = code;
            c.reason = Some(reason);
        });
        if def.essential && !task.stopping.load(Ordering::SeqCst) {
            tracing::info!(task = %task.arn, container = %def.name, "essential container exited; stopping the task");
            self.stop_task(&task).await;
        }
    }

    /// Stops every container in reverse dependency order and returns the final state.
    async fn stop_task(self: &Arc<Self>, task: &Arc<Task>) -> TaskState {
        task.stopping.store(true, Ordering::SeqCst);
        let _g = task.lifecycle.lock().await;
        for group in deps::stop_groups(&task.def) {
            futures::future::join_all(group.into_iter().map(|idx| self.stop_container(task, idx)))
                .await;
        }
        let pending: Vec<usize> = task
            .snapshot()
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.status == ContainerStatus::Pending)
            .map(|(i, _)| i)
            .collect();
        if !pending.is_empty() {
            self.update(task, |s| {
                for i in pending {
                    s.containers[i].status = ContainerStatus::Stopped;
                    s.containers[i].reason = Some("not started: the task was stopped".into());
                }
            });
        }
        task.snapshot()
    }

    async fn stop_container(&self, task: &Task, idx: usize) {
        if task.snapshot().containers[idx].status != ContainerStatus::Running {
            return;
        }
        let Some(p) = task.proc(idx) else { return };
        let def = &task.def.container_definitions[idx];
        let timeout = Duration::from_secs(def.stop_timeout_seconds().into());
        let mut rx = task.state.subscribe();
        let stopped = |s: &TaskState| s.containers[idx].status == ContainerStatus::Stopped;

        task.marks[idx].term_sent.store(true, Ordering::SeqCst);
        signal_group(p.pid, Signal::SIGTERM);
        if tokio::time::timeout(timeout, rx.wait_for(stopped))
            .await
            .is_ok()
        {
            return;
        }
        tracing::info!(task = %task.arn, container = %def.name, "still running {}s after SIGTERM; sending SIGKILL", timeout.as_secs());
        task.marks[idx].kill_sent.store(true, Ordering::SeqCst);
        signal_group(p.pid, Signal::SIGKILL);
        if tokio::time::timeout(KILL_GRACE, rx.wait_for(stopped))
            .await
            .is_err()
        {
            tracing::warn!(task = %task.arn, container = %def.name, pid = p.pid, "process did not end after SIGKILL");
        }
    }

    fn spawn_health_checker(self: &Arc<Self>, task: &Arc<Task>, idx: usize) {
        let Some(hc) = task.def.container_definitions[idx].health_check.clone() else {
            return;
        };
        let inner = self.clone();
        let task = task.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = inner.shutdown.cancelled() => {}
                _ = inner.health_loop(&task, idx, &hc) => {}
            }
        });
    }

    async fn health_loop(&self, task: &Arc<Task>, idx: usize, hc: &HealthCheck) {
        let started = Instant::now();
        let start_period = Duration::from_secs(hc.start_period.into());
        let interval = Duration::from_secs(hc.interval.max(1).into());
        let timeout = Duration::from_secs(hc.timeout.max(1).into());
        let retries = hc.retries.max(1);
        let mut failures = 0u32;
        let mut rx = task.state.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = rx.wait_for(|s| s.containers[idx].status == ContainerStatus::Stopped) => return,
            }
            let ok = run_health_command(task, idx, hc, timeout).await;
            let current = task.snapshot().containers[idx].health;
            let next = if ok {
                failures = 0;
                HealthStatus::Healthy
            } else if started.elapsed() < start_period {
                // Failures in the start period do not count.
                current
            } else {
                failures += 1;
                if failures >= retries {
                    HealthStatus::Unhealthy
                } else {
                    current
                }
            };
            if next != current {
                tracing::info!(task = %task.arn, container = %task.def.container_definitions[idx].name, "health {current:?} -> {next:?}");
                self.update(task, |s| s.containers[idx].health = next);
            }
        }
    }

    async fn start_task(self: &Arc<Self>, task: &Arc<Task>) -> Result<TaskState> {
        let order = deps::start_order(&task.def).map_err(RuntimeError::StartFailed)?;
        for idx in order {
            if let Err(reason) = self.wait_dependencies(task, idx).await {
                self.stop_task(task).await;
                return Err(RuntimeError::StartFailed(reason));
            }
            let guard = task.lifecycle.lock().await;
            if task.stopping.load(Ordering::SeqCst) {
                drop(guard);
                return Err(RuntimeError::StartFailed(stopped_during_start(task)));
            }
            let res = self.spawn_container(task, idx).await;
            drop(guard);
            if let Err(e) = res {
                self.stop_task(task).await;
                return Err(e);
            }
        }
        if task.stopping.load(Ordering::SeqCst) {
            return Err(RuntimeError::StartFailed(stopped_during_start(task)));
        }
        Ok(task.snapshot())
    }

    /// Waits until every `dependsOn` condition of container `idx` holds.
    async fn wait_dependencies(&self, task: &Task, idx: usize) -> std::result::Result<(), String> {
        let def = &task.def.container_definitions[idx];
        let limit = def
            .start_timeout
            .map(|s| Duration::from_secs(s.into()))
            .unwrap_or(DEFAULT_DEPENDENCY_TIMEOUT);
        let deadline = tokio::time::Instant::now() + limit;
        for dep in &def.depends_on {
            let j = task
                .def
                .container_definitions
                .iter()
                .position(|c| c.name == dep.container_name)
                .ok_or_else(|| {
                    format!(
                        "container {} depends on unknown container {}",
                        def.name, dep.container_name
                    )
                })?;
            let cond = dep.condition;
            let mut rx = task.state.subscribe();
            // Some(Ok) = satisfied, Some(Err) = can no longer be satisfied, None = wait.
            let verdict = |s: &TaskState| -> Option<std::result::Result<(), String>> {
                let d = &s.containers[j];
                let failed = |what: &str| {
                    Some(Err(format!(
                        "container {} did not start: its dependency {} {what} (condition {cond:?})",
                        def.name, d.name
                    )))
                };
                match (cond, d.status) {
                    (_, ContainerStatus::Stopped) if d.runtime_id.is_none() => {
                        failed("never started")
                    }
                    (DependencyCondition::Start, ContainerStatus::Pending) => None,
                    (DependencyCondition::Start, _) => Some(Ok(())),
                    (DependencyCondition::Complete, ContainerStatus::Stopped) => Some(Ok(())),
                    (DependencyCondition::Success, ContainerStatus::Stopped) => {
                        if d.exit_code == Some(0) {
                            Some(Ok(()))
                        } else {
                            failed(&format!("exited with code {:?}", d.exit_code))
                        }
                    }
                    (DependencyCondition::Healthy, _) if d.health == HealthStatus::Healthy => {
                        Some(Ok(()))
                    }
                    (DependencyCondition::Healthy, ContainerStatus::Stopped) => {
                        failed("stopped before it was healthy")
                    }
                    _ => None,
                }
            };
            let wait = rx.wait_for(|s| verdict(s).is_some());
            let outcome = match tokio::time::timeout_at(deadline, wait).await {
                Ok(Ok(s)) => verdict(&s).expect("decided"),
                Ok(Err(_)) => return Err("the task went away".into()),
                Err(_) => {
                    return Err(format!(
                        "container {} did not start: dependency {} not {:?} within {}s",
                        def.name,
                        dep.container_name,
                        cond,
                        limit.as_secs()
                    ))
                }
            };
            outcome?;
        }
        Ok(())
    }

    async fn spawn_container(self: &Arc<Self>, task: &Arc<Task>, idx: usize) -> Result<()> {
        let def = &task.def.container_definitions[idx];
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
        for (k, v) in container_env(task, idx) {
            cmd.env(k, v);
        }
        if let Some(wd) = &def.working_directory {
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
        tracing::info!(task = %task.arn, container = %def.name, pid, "container started");
        self.update(task, |s| {
            let c = &mut s.containers[idx];
            c.status = ContainerStatus::Running;
            c.runtime_id = Some(pid.to_string());
        });
        tokio::spawn(self.clone().monitor(task.clone(), idx, Some(child), p));
        self.spawn_health_checker(task, idx);
        Ok(())
    }
}

fn stopped_during_start(task: &Task) -> String {
    let s = task.snapshot();
    match s.essential_stopped() {
        Some(c) => format!(
            "essential container {} exited while the task was starting: {}",
            c.name,
            c.reason.as_deref().unwrap_or("no reason recorded")
        ),
        None => "the task was stopped while it was starting".into(),
    }
}

/// The exit code and reason of a container whose shim has ended.
fn exit_outcome(cdir: &Path, marks: &StopMarks) -> (Option<i32>, String) {
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

/// Signals a process group, or the process alone if it left its group.
fn signal_group(pid: i32, sig: Signal) {
    if killpg(Pid::from_raw(pid), sig).is_err() {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

fn container_env(task: &Task, idx: usize) -> Vec<(String, String)> {
    let def = &task.def.container_definitions[idx];
    let state = task.state.borrow();
    let bindings = &state.containers[idx].network_bindings;
    let mut env: Vec<(String, String)> = def
        .environment
        .iter()
        .map(|kv| (kv.name.clone(), kv.value.clone()))
        .collect();
    env.push(("BERTH_TASK_ARN".into(), task.arn.clone()));
    env.push((
        "BERTH_TASK_ID".into(),
        berth_model::arn::last_segment(&task.arn).to_string(),
    ));
    env.push(("BERTH_CLUSTER".into(), task.cluster.clone()));
    env.push(("BERTH_CONTAINER_NAME".into(), def.name.clone()));
    if let Some(b) = bindings.first() {
        env.push(("PORT".into(), b.host_port.to_string()));
    }
    for (pm, b) in def.port_mappings.iter().zip(bindings) {
        if let Some(name) = &pm.name {
            env.push((port_env_name(name), b.host_port.to_string()));
        }
    }
    env
}

async fn run_health_command(task: &Task, idx: usize, hc: &HealthCheck, timeout: Duration) -> bool {
    let (program, args): (String, Vec<String>) = match hc.command.split_first() {
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            ("/bin/sh".into(), vec!["-c".into(), rest.join(" ")])
        }
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => {
            (rest[0].clone(), rest[1..].to_vec())
        }
        // ECS also accepts a bare command as CMD.
        Some((first, rest)) if first != "CMD" && first != "NONE" => (first.clone(), rest.to_vec()),
        _ => return true,
    };
    let def = &task.def.container_definitions[idx];
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in container_env(task, idx) {
        cmd.env(k, v);
    }
    if let Some(wd) = &def.working_directory {
        cmd.current_dir(wd);
    }
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(_)) => false,
        Err(_) => {
            if let Some(pid) = child.id() {
                signal_group(pid as i32, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            false
        }
    }
}

/// Chooses the host port of every port mapping; fixed ports must be free.
fn allocate_ports(td: &TaskDefinition) -> Result<Vec<Vec<NetworkBinding>>> {
    // Held until every port is chosen, so two dynamic mappings never get the same port.
    let mut held_tcp = Vec::new();
    let mut held_udp = Vec::new();
    let mut out = Vec::new();
    for c in &td.container_definitions {
        let mut bindings = Vec::new();
        if td.network_mode == NetworkMode::None {
            out.push(bindings);
            continue;
        }
        for pm in &c.port_mappings {
            let fixed = match td.network_mode {
                NetworkMode::Host => pm
                    .host_port
                    .filter(|p| *p != 0)
                    .unwrap_or(pm.container_port),
                _ => pm.host_port.unwrap_or(0),
            };
            let port = u16::try_from(fixed).map_err(|_| {
                RuntimeError::StartFailed(format!(
                    "container {}: host port {fixed} is out of range",
                    c.name
                ))
            })?;
            let taken = |e: std::io::Error| {
                RuntimeError::StartFailed(format!(
                    "container {}: host port {port}/{} is already in use ({e})",
                    c.name,
                    proto_name(pm.protocol)
                ))
            };
            let host_port = match pm.protocol {
                TransportProtocol::Tcp => {
                    let l = std::net::TcpListener::bind(("0.0.0.0", port)).map_err(taken)?;
                    let p = l.local_addr().map_err(taken)?.port();
                    held_tcp.push(l);
                    p
                }
                TransportProtocol::Udp => {
                    let s = std::net::UdpSocket::bind(("0.0.0.0", port)).map_err(taken)?;
                    let p = s.local_addr().map_err(taken)?.port();
                    held_udp.push(s);
                    p
                }
            };
            bindings.push(NetworkBinding {
                bind_ip: "0.0.0.0".into(),
                container_port: pm.container_port,
                host_port: host_port.into(),
                protocol: pm.protocol,
            });
        }
        out.push(bindings);
    }
    Ok(out)
}

fn proto_name(p: TransportProtocol) -> &'static str {
    match p {
        TransportProtocol::Tcp => "tcp",
        TransportProtocol::Udp => "udp",
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn kind(&self) -> &'static str {
        "process"
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskState> {
        let inner = &self.inner;
        if let Ok(task) = inner.task(&spec.task_arn) {
            return Ok(task.snapshot());
        }
        let td = &spec.task_definition;
        if td.container_definitions.is_empty() {
            return Err(RuntimeError::StartFailed(
                "the task definition has no containers".into(),
            ));
        }
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
        deps::start_order(td).map_err(RuntimeError::StartFailed)?;
        let bindings = allocate_ports(td)?;

        let id = spec.task_id();
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(RuntimeError::StartFailed(format!(
                "task ARN {} has no usable id",
                spec.task_arn
            )));
        }
        let dir = inner.tasks_dir.join(id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            RuntimeError::StartFailed(format!("cannot create {}: {e}", dir.display()))
        })?;
        let n = td.container_definitions.len();
        let state = TaskState {
            task_arn: spec.task_arn.clone(),
            containers: td
                .container_definitions
                .iter()
                .zip(bindings)
                .map(|(c, network_bindings)| ContainerState {
                    name: c.name.clone(),
                    runtime_id: None,
                    status: ContainerStatus::Pending,
                    exit_code: None,
                    reason: None,
                    health: HealthStatus::Unknown,
                    network_bindings,
                    private_ip: None,
                    essential: c.essential,
                })
                .collect(),
        };
        let task = Arc::new(Task {
            arn: spec.task_arn.clone(),
            cluster: spec.cluster.clone(),
            def: td.clone(),
            dir,
            state: watch::Sender::new(state),
            procs: Mutex::new(vec![None; n]),
            marks: (0..n).map(|_| StopMarks::default()).collect(),
            stopping: AtomicBool::new(false),
            lifecycle: tokio::sync::Mutex::new(()),
            persist_lock: Mutex::new(()),
            cpu_sample: Mutex::new(None),
        });
        {
            let mut tasks = inner.tasks.lock().expect("tasks lock");
            if let Some(existing) = tasks.get(&spec.task_arn) {
                return Ok(existing.snapshot());
            }
            tasks.insert(spec.task_arn.clone(), task.clone());
        }
        task.persist();
        let _ = inner.events.send(task.snapshot());
        inner.start_task(&task).await
    }

    async fn stop(&self, task_arn: &str) -> Result<TaskState> {
        let task = self.inner.task(task_arn)?;
        Ok(self.inner.stop_task(&task).await)
    }

    async fn remove(&self, task_arn: &str) -> Result<()> {
        let task = self.inner.task(task_arn)?;
        if !task.snapshot().all_stopped() {
            return Err(RuntimeError::Other(format!(
                "task {task_arn} still runs; stop it before removing it"
            )));
        }
        self.inner
            .tasks
            .lock()
            .expect("tasks lock")
            .remove(task_arn);
        std::fs::remove_dir_all(&task.dir)
            .map_err(|e| RuntimeError::Other(format!("cannot remove {}: {e}", task.dir.display())))
    }

    async fn list(&self) -> Result<Vec<TaskState>> {
        let tasks: Vec<Arc<Task>> = self
            .inner
            .tasks
            .lock()
            .expect("tasks lock")
            .values()
            .cloned()
            .collect();
        Ok(tasks.iter().map(|t| t.snapshot()).collect())
    }

    fn subscribe(&self) -> broadcast::Receiver<TaskState> {
        self.inner.events.subscribe()
    }

    /// With no `container`, the task's first container.
    async fn logs(
        &self,
        task_arn: &str,
        container: Option<&str>,
        follow: bool,
    ) -> Result<LogStream> {
        let task = self.inner.task(task_arn)?;
        let idx = crate::container_index(&task.def, task_arn, container)?;
        let path = task.container_dir(idx).join(LOG_FILE);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(RuntimeError::Other(format!(
                    "cannot open {}: {e}",
                    path.display()
                )))
            }
        };
        let rx = task.state.subscribe();
        struct Tail {
            file: Option<tokio::fs::File>,
            path: PathBuf,
            rx: watch::Receiver<TaskState>,
            idx: usize,
            follow: bool,
            finishing: bool,
        }
        let st = Tail {
            file,
            path,
            rx,
            idx,
            follow,
            finishing: false,
        };
        let stream = futures::stream::unfold(st, |mut st| async move {
            loop {
                if st.file.is_none() {
                    st.file = tokio::fs::File::open(&st.path).await.ok();
                }
                if let Some(f) = st.file.as_mut() {
                    let mut buf = vec![0u8; 64 * 1024];
                    match f.read(&mut buf).await {
                        Ok(0) => {}
                        Ok(n) => {
                            buf.truncate(n);
                            return Some((Ok(bytes::Bytes::from(buf)), st));
                        }
                        Err(e) => return Some((Err(e), st)),
                    }
                }
                if !st.follow || st.finishing {
                    return None;
                }
                if st.rx.borrow().containers[st.idx].status == ContainerStatus::Stopped {
                    // One more read drains what the process wrote last.
                    st.finishing = true;
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = st.rx.changed() => {}
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn stats(&self, task_arn: &str) -> Result<TaskStats> {
        let task = self.inner.task(task_arn)?;
        let state = task.snapshot();
        let mut ticks = 0;
        let mut pages = 0;
        let mut oldest_start = None::<u64>;
        for (idx, c) in state.containers.iter().enumerate() {
            if c.status != ContainerStatus::Running {
                continue;
            }
            if let Some(p) = task.proc(idx) {
                let (t, r) = procfs::group_usage(p.pid);
                ticks += t;
                pages += r;
                if let Some(s) = procfs::stat(p.pid) {
                    oldest_start = Some(oldest_start.map_or(s.start_time, |o| o.min(s.start_time)));
                }
            }
        }
        let now = Instant::now();
        let tps = self.inner.ticks_per_second as f64;
        let mut sample = task.cpu_sample.lock().expect("cpu sample lock");
        let busy_fraction = match *sample {
            Some((at, prev)) if now > at && ticks >= prev => {
                (ticks - prev) as f64 / tps / now.duration_since(at).as_secs_f64()
            }
            // First sample: the average since the oldest process started.
            _ => match (oldest_start, procfs::uptime_seconds()) {
                (Some(start), Some(up)) => {
                    let age = up - start as f64 / tps;
                    if age > 0.0 {
                        ticks as f64 / tps / age
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            },
        };
        *sample = Some((now, ticks));
        Ok(TaskStats {
            cpu_units: busy_fraction * 1024.0,
            memory_bytes: pages * self.inner.page_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variable_names() {
        assert_eq!(port_env_name("http"), "PORT_HTTP");
        assert_eq!(port_env_name("admin-api"), "PORT_ADMIN_API");
    }

    #[test]
    fn fixed_port_in_use_is_refused() {
        let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let td: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "f",
            "containerDefinitions": [{
                "name": "web", "image": "x", "command": ["true"],
                "portMappings": [{"containerPort": 80, "hostPort": port}]
            }]
        }))
        .unwrap();
        let err = allocate_ports(&td).unwrap_err().to_string();
        assert!(err.contains(&format!("host port {port}/tcp")), "{err}");
        assert!(err.contains("already in use"), "{err}");
    }

    #[test]
    fn dynamic_ports_are_distinct_and_host_mode_uses_container_port() {
        let td: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "f",
            "containerDefinitions": [{
                "name": "web", "image": "x", "command": ["true"],
                "portMappings": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}]
            }]
        }))
        .unwrap();
        let b = allocate_ports(&td).unwrap();
        assert_eq!(b[0].len(), 2);
        assert_ne!(b[0][0].host_port, 0);
        assert_ne!(b[0][0].host_port, b[0][1].host_port);
        assert_eq!(b[0][1].container_port, 81);

        let free = std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut td = td;
        td.network_mode = NetworkMode::Host;
        td.container_definitions[0].port_mappings.truncate(1);
        td.container_definitions[0].port_mappings[0].container_port = free.into();
        let b = allocate_ports(&td).unwrap();
        assert_eq!(b[0][0].host_port, u32::from(free));
    }
}
