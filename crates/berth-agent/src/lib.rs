//! berth-agent: runs the tasks placed on one container instance.
//!
//! The agent registers its instance (CPU, memory, address), then converges: tasks placed
//! on it that should run are started through its [`Runtime`]; tasks asked to stop are
//! signalled once the control plane moved them to STOPPING (after their targets drained);
//! what the runtime reports (started, exited, health, exit codes) is written back to the
//! task. On start it adopts what the runtime already runs, so a restart neither loses nor
//! duplicates tasks; whatever the runtime runs that no task owns is stopped and removed.
//!
//! What it does not do: decide what runs where (the control plane's scheduler does), or
//! touch load balancers.
//!
//! Layout:
//! - [`AgentApi`]: what the agent needs from the control plane (in-process or remote).
//! - [`Agent`]: the convergence loop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_model::ecs::{
    ContainerInstance, HealthStatus, Resource, StopCode, Task, TaskDefinition, TaskStatus,
};
use berth_model::{arn, time};
use berth_runtime::{ContainerStatus, DynRuntime, RuntimeError, TaskSpec, TaskState};
use tokio::sync::watch;

/// The instance attribute holding the address targets on this instance use.
pub const ADDRESS_ATTRIBUTE: &str = "berth.address";

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("control plane: {0}")]
    Api(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

pub type Result<T> = std::result::Result<T, AgentError>;

/// A change to a task, applied atomically by the control plane; returns false to skip.
pub type TaskUpdate = Box<dyn FnMut(&mut Task) -> bool + Send>;

/// What the agent needs from the control plane.
#[async_trait]
pub trait AgentApi: Send + Sync + 'static {
    /// Creates or refreshes the instance record; returns it as stored.
    async fn register_instance(&self, instance: ContainerInstance) -> Result<ContainerInstance>;
    /// Every task placed on the instance, stopped ones included until they are forgotten.
    async fn assigned_tasks(&self, instance_arn: &str) -> Result<Vec<Task>>;
    async fn task_definition(&self, arn: &str) -> Result<Option<TaskDefinition>>;
    /// Applies `f` to the stored task with compare-and-swap retries.
    async fn update_task(&self, task_arn: &str, f: TaskUpdate) -> Result<Option<Task>>;
    /// Bumps whenever something the agent may care about changed.
    fn changes(&self) -> watch::Receiver<u64>;
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub cluster: String,
    /// Stable id of this instance (kept across restarts by the caller).
    pub instance_id: String,
    /// The address load balancer targets on this instance use.
    pub address: String,
    /// How often to converge without any change notification.
    pub resync: Duration,
}

pub struct Agent {
    api: Arc<dyn AgentApi>,
    runtime: DynRuntime,
    cfg: AgentConfig,
    instance_arn: String,
    busy: Arc<Mutex<BTreeSet<String>>>,
}

/// Total memory in MiB from /proc/meminfo (0 when unknown).
fn total_memory_mib() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

fn resource(name: &str, v: i64) -> Resource {
    Resource {
        name: name.into(),
        integer_value: v,
        string_set_value: Vec::new(),
    }
}

/// Copies what the runtime reports into the task record; returns whether anything changed.
pub fn apply_state(task: &mut Task, st: &TaskState) -> bool {
    let before = task.clone();
    for c in &mut task.containers {
        let Some(s) = st.containers.iter().find(|s| s.name == c.name) else {
            continue;
        };
        c.runtime_id = s.runtime_id.clone().or(c.runtime_id.take());
        if !s.network_bindings.is_empty() {
            c.network_bindings = s.network_bindings.clone();
        }
        if s.private_ip.is_some() {
            c.private_ipv4_address = s.private_ip.clone();
        }
        c.exit_code = s.exit_code.or(c.exit_code);
        c.reason = s.reason.clone().or(c.reason.take());
        c.health_status = s.health;
        c.last_status = match s.status {
            ContainerStatus::Pending => TaskStatus::Pending,
            ContainerStatus::Running => TaskStatus::Running,
            ContainerStatus::Stopped => TaskStatus::Stopped,
        };
    }
    task.health_status = st.health();
    *task != before
}

fn mark_stopped(task: &mut Task, code: StopCode, reason: &str) {
    let now = time::now();
    if task.stop_code.is_none() {
        task.stop_code = Some(code);
        task.stopped_reason = Some(reason.to_string());
    }
    task.desired_status = TaskStatus::Stopped;
    task.last_status = TaskStatus::Stopped;
    task.stopping_at.get_or_insert(now);
    task.stopped_at = Some(now);
    for c in &mut task.containers {
        c.last_status = TaskStatus::Stopped;
    }
    task.version += 1;
}

impl Agent {
    pub fn new(api: Arc<dyn AgentApi>, runtime: DynRuntime, cfg: AgentConfig) -> Self {
        let instance_arn = arn::container_instance(&cfg.cluster, &cfg.instance_id);
        Self {
            api,
            runtime,
            cfg,
            instance_arn,
            busy: Arc::default(),
        }
    }

    pub fn instance_arn(&self) -> &str {
        &self.instance_arn
    }

    /// Registers the instance record (ACTIVE, agent connected).
    pub async fn register(&self) -> Result<ContainerInstance> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1);
        let mut attributes = BTreeMap::new();
        attributes.insert(ADDRESS_ATTRIBUTE.to_string(), self.cfg.address.clone());
        attributes.insert("ecs.os-type".to_string(), "linux".to_string());
        attributes.insert("berth.runtime".to_string(), self.runtime.kind().to_string());
        let registered = vec![
            resource("CPU", cpus * 1024),
            resource("MEMORY", total_memory_mib()),
            resource("PORTS", 0),
            resource("PORTS_UDP", 0),
        ];
        let inst = ContainerInstance {
            container_instance_arn: self.instance_arn.clone(),
            ec2_instance_id: self.cfg.instance_id.clone(),
            cluster_arn: arn::cluster(&self.cfg.cluster),
            status: "ACTIVE".into(),
            agent_connected: true,
            remaining_resources: registered.clone(),
            registered_resources: registered,
            attributes,
            running_tasks_count: 0,
            pending_tasks_count: 0,
            registered_at: time::now(),
            runtime: self.runtime.kind().to_string(),
        };
        self.api.register_instance(inst).await
    }

    /// Runs until `shutdown` turns true. Tasks keep running when the agent stops: a new
    /// agent adopts them.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        self.register().await?;
        let mut changes = self.api.changes();
        let mut events = self.runtime.subscribe();
        loop {
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "agent pass failed");
            }
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { return Ok(()); }
                }
                r = changes.changed() => {
                    if r.is_err() { return Ok(()); }
                }
                r = events.recv() => {
                    if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep(self.cfg.resync) => {}
            }
        }
    }

    fn claim(&self, task_arn: &str) -> bool {
        self.busy
            .lock()
            .expect("busy set")
            .insert(task_arn.to_string())
    }

    fn release(busy: &Mutex<BTreeSet<String>>, task_arn: &str) {
        busy.lock().expect("busy set").remove(task_arn);
    }

    /// One convergence pass.
    pub async fn reconcile(&self) -> Result<()> {
        let tasks = self.api.assigned_tasks(&self.instance_arn).await?;
        let running: BTreeMap<String, TaskState> = self
            .runtime
            .list()
            .await?
            .into_iter()
            .map(|s| (s.task_arn.clone(), s))
            .collect();
        let known: BTreeSet<&str> = tasks.iter().map(|t| t.task_arn.as_str()).collect();

        // What the runtime runs that no task owns: stop and remove.
        for (arn, st) in &running {
            if !known.contains(arn.as_str()) && self.claim(arn) {
                let (rt, busy, arn, stopped) = (
                    self.runtime.clone(),
                    self.busy.clone(),
                    arn.clone(),
                    st.all_stopped(),
                );
                tokio::spawn(async move {
                    tracing::info!(task = %arn, "removing a task no record owns");
                    if !stopped {
                        let _ = rt.stop(&arn).await;
                    }
                    let _ = rt.remove(&arn).await;
                    Self::release(&busy, &arn);
                });
            }
        }

        for task in tasks {
            let st = running.get(&task.task_arn);
            if self.busy.lock().expect("busy set").contains(&task.task_arn) {
                continue;
            }
            match (task.desired_status, task.last_status) {
                (_, TaskStatus::Stopped) => {
                    if let Some(st) = st {
                        if !st.all_stopped() && self.claim(&task.task_arn) {
                            self.spawn_stop(task, false);
                        }
                    }
                }
                (TaskStatus::Running, last) if last < TaskStatus::Running => match st {
                    Some(st) if st.all_essential_running() => {
                        // Started before a restart: adopt.
                        let st = st.clone();
                        self.update(&task.task_arn, move |t| {
                            let changed = apply_state(t, &st);
                            if t.last_status < TaskStatus::Running {
                                t.last_status = TaskStatus::Running;
                                t.started_at.get_or_insert(time::now());
                                t.version += 1;
                                return true;
                            }
                            changed
                        })
                        .await?;
                    }
                    Some(_) => {
                        // A start that was interrupted part-way: clean up; the service
                        // scheduler starts a replacement.
                        if self.claim(&task.task_arn) {
                            self.spawn_stop(task, true);
                        }
                    }
                    None => {
                        if self.claim(&task.task_arn) {
                            self.spawn_start(task);
                        }
                    }
                },
                (_, _) => {
                    // RUNNING, DEACTIVATING or STOPPING.
                    let stop_now = task.desired_status == TaskStatus::Stopped
                        && (task.last_status == TaskStatus::Stopping
                            || task.last_status < TaskStatus::Running);
                    match st {
                        None => {
                            let reason = "Task is not running on its container instance (it ended while berth was down)";
                            self.update(&task.task_arn, move |t| {
                                mark_stopped(t, StopCode::EssentialContainerExited, reason);
                                true
                            })
                            .await?;
                        }
                        Some(st) if st.essential_stopped().is_some() || stop_now => {
                            if self.claim(&task.task_arn) {
                                self.spawn_stop(task, false);
                            }
                        }
                        Some(st) => {
                            let st = st.clone();
                            self.update(&task.task_arn, move |t| apply_state(t, &st))
                                .await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn update(
        &self,
        task_arn: &str,
        f: impl FnMut(&mut Task) -> bool + Send + 'static,
    ) -> Result<Option<Task>> {
        self.api.update_task(task_arn, Box::new(f)).await
    }

    fn spawn_start(&self, task: Task) {
        let (api, rt, busy) = (self.api.clone(), self.runtime.clone(), self.busy.clone());
        tokio::spawn(async move {
            let arn = task.task_arn.clone();
            let result = start_task(&*api, &rt, &task).await;
            if let Err(e) = result {
                tracing::warn!(task = %arn, error = %e, "task failed to start");
                let reason = format!("Task failed to start: {e}");
                let _ = rt.remove(&arn).await;
                let _ = api
                    .update_task(
                        &arn,
                        Box::new(move |t| {
                            mark_stopped(t, StopCode::TaskFailedToStart, &reason);
                            true
                        }),
                    )
                    .await;
            }
            Self::release(&busy, &arn);
        });
    }

    /// Stops a task through the runtime and records the outcome. `failed_start` marks an
    /// interrupted start.
    fn spawn_stop(&self, task: Task, failed_start: bool) {
        let (api, rt, busy) = (self.api.clone(), self.runtime.clone(), self.busy.clone());
        tokio::spawn(async move {
            let arn = task.task_arn.clone();
            let result = rt.stop(&arn).await;
            let update: TaskUpdate = match result {
                Ok(st) => Box::new(move |t| {
                    apply_state(t, &st);
                    if t.last_status == TaskStatus::Stopped {
                        return true;
                    }
                    let (code, reason) = if failed_start {
                        (
                            StopCode::TaskFailedToStart,
                            "Task start was interrupted".to_string(),
                        )
                    } else if t.desired_status == TaskStatus::Stopped && t.stop_code.is_some() {
                        (
                            t.stop_code.unwrap_or(StopCode::UserInitiated),
                            String::new(),
                        )
                    } else {
                        let which = st
                            .essential_stopped()
                            .map(|c| c.name.clone())
                            .unwrap_or_default();
                        (
                            StopCode::EssentialContainerExited,
                            format!("Essential container in task exited ({which})"),
                        )
                    };
                    mark_stopped(t, code, &reason);
                    true
                }),
                Err(RuntimeError::UnknownTask(_)) => Box::new(|t| {
                    if t.last_status == TaskStatus::Stopped {
                        return false;
                    }
                    mark_stopped(
                        t,
                        StopCode::EssentialContainerExited,
                        "Task is gone from its runtime",
                    );
                    true
                }),
                Err(e) => {
                    tracing::warn!(task = %arn, error = %e, "stopping a task failed; retrying next pass");
                    Self::release(&busy, &arn);
                    return;
                }
            };
            let _ = api.update_task(&arn, update).await;
            Self::release(&busy, &arn);
        });
    }
}

async fn start_task(api: &dyn AgentApi, rt: &DynRuntime, task: &Task) -> Result<()> {
    let td = api
        .task_definition(&task.task_definition_arn)
        .await?
        .ok_or_else(|| {
            AgentError::Runtime(RuntimeError::StartFailed(format!(
                "task definition {} is not registered",
                task.task_definition_arn
            )))
        })?;
    // PENDING: the runtime is starting it.
    let proceed = api
        .update_task(
            &task.task_arn,
            Box::new(|t| {
                if t.desired_status != TaskStatus::Running || t.last_status >= TaskStatus::Pending {
                    return false;
                }
                t.last_status = TaskStatus::Pending;
                t.version += 1;
                true
            }),
        )
        .await?;
    if proceed.is_none_or(|t| t.desired_status != TaskStatus::Running) {
        return Ok(());
    }
    let spec = TaskSpec {
        task_arn: task.task_arn.clone(),
        cluster: task.cluster_name().to_string(),
        task_definition: td,
    };
    let st = rt.start(&spec).await?;
    api.update_task(
        &task.task_arn,
        Box::new(move |t| {
            apply_state(t, &st);
            if t.desired_status == TaskStatus::Stopped {
                // Asked to stop while starting: it was never registered anywhere, so
                // it can be signalled right away.
                t.last_status = TaskStatus::Stopping;
            } else if t.last_status < TaskStatus::Running {
                t.last_status = TaskStatus::Running;
            }
            t.started_at = Some(time::now());
            t.health_status = if st.health() == HealthStatus::Unknown {
                t.health_status
            } else {
                st.health()
            };
            t.version += 1;
            true
        }),
    )
    .await?;
    Ok(())
}
