//! The convergence loop: one agent, one container instance, one runtime.
//!
//! Each pass compares the tasks placed on the instance with what the runtime runs and
//! reports what it did or saw as [`TaskStateChange`]s: start what should run, adopt what
//! already runs, mark STOPPED what the runtime lost, stop a task once the control plane
//! moved it to STOPPING (after its targets drained), and stop and remove what the runtime
//! runs that no task owns. A task whose containers have `secrets` starts only with
//! their values from the control plane ([`AgentApi::task_secrets`]); a refusal is
//! reported as the task STOPPED with the control plane's reason.
//!
//! What it does not do: decide task states itself beyond what it observes; the control
//! plane applies each report with the contract's rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_model::agent::TaskStateChange;
use berth_model::ecs::{
    instance_attributes, ContainerInstance, Resource, StopCode, Task, TaskStatus,
};
use berth_model::task_secrets::TaskSecrets;
use berth_model::{arn, time};
use berth_runtime::{DynRuntime, RuntimeError, TaskSpec, TaskState};
use tokio::sync::watch;

use crate::api::{AgentApi, AgentError, Result};
use crate::orphans::{check_orphans, orphan_gauge, OrphanSettings};
use crate::queries::TaskQueries;
use crate::report;
use crate::task_endpoint::TaskEndpoint;

/// How often the agent tells the control plane it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// The instance attribute holding the address targets on this instance use.
pub const ADDRESS_ATTRIBUTE: &str = "berth.address";

/// The instance attribute holding the address (`ip:port`) of this node's mesh inbound
/// listener: where other nodes' proxies open mutual TLS to reach its tasks.
pub const MESH_INBOUND_ATTRIBUTE: &str = "berth.mesh-inbound";

/// The address other nodes reach a mesh inbound listener bound at `bound` on: `bound`
/// itself, or, when it is bound on every address (`0.0.0.0`, `::`), its port on
/// `advertise_address` (the node's address for targets) when that is an IP.
pub fn advertised_mesh_inbound(bound: SocketAddr, advertise_address: &str) -> SocketAddr {
    match advertise_address.parse::<std::net::IpAddr>() {
        Ok(ip) if bound.ip().is_unspecified() => SocketAddr::new(ip, bound.port()),
        _ => bound,
    }
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub cluster: String,
    /// Stable id of this instance (kept across restarts by the caller).
    pub instance_id: String,
    /// The address load balancer targets on this instance use.
    pub address: String,
    /// Where this node's mesh inbound listener is bound, as other nodes reach it;
    /// registered as [`MESH_INBOUND_ATTRIBUTE`]. `None`: the node serves no inbound
    /// mesh traffic, and its tasks are reached in plaintext.
    pub mesh_inbound: Option<SocketAddr>,
    /// How often to converge without any change notification.
    pub resync: Duration,
}

pub struct Agent {
    api: Arc<dyn AgentApi>,
    runtime: DynRuntime,
    cfg: AgentConfig,
    instance_arn: String,
    /// Custom attributes registered with the instance (see [`Agent::with_attributes`]).
    custom_attributes: BTreeMap<String, String>,
    busy: Arc<Mutex<BTreeSet<String>>>,
    /// The orphan check run at start (see [`Agent::with_orphan_check`]).
    orphans: Option<(OrphanSettings, prometheus::IntGaugeVec)>,
    /// The node's task endpoint (credentials and metadata), when it runs one.
    task_endpoint: Option<Arc<TaskEndpoint>>,
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

impl Agent {
    pub fn new(api: Arc<dyn AgentApi>, runtime: DynRuntime, cfg: AgentConfig) -> Self {
        let instance_arn = arn::container_instance(&cfg.cluster, &cfg.instance_id);
        Self {
            api,
            runtime,
            cfg,
            instance_arn,
            custom_attributes: BTreeMap::new(),
            busy: Arc::default(),
            orphans: None,
            task_endpoint: None,
        }
    }

    /// At start, looks for orphaned tasks on this node, reports them (log and the gauge
    /// `berth_orphaned_tasks` in `registry`) and removes them when `settings.remove` says
    /// so; see [`crate::orphans`].
    pub fn with_orphan_check(
        mut self,
        settings: OrphanSettings,
        registry: &prometheus::Registry,
    ) -> Self {
        self.orphans = Some((settings, orphan_gauge(registry)));
        self
    }

    /// Gives the tasks this agent starts the node's task endpoint: the metadata URIs in
    /// every container's environment, and role credentials for tasks whose definition
    /// names a `taskRoleArn` (fetched before the task starts: a role the control plane
    /// refuses fails the start, naming `taskRoleArn`).
    pub fn with_task_endpoint(mut self, endpoint: Arc<TaskEndpoint>) -> Self {
        self.task_endpoint = Some(endpoint);
        self
    }

    /// Registers `attributes` with the instance besides berth's own (which win over a
    /// custom attribute of the same name). The caller checks them
    /// (`berth_model::ecs::instance_attributes::check_custom_attribute`).
    pub fn with_attributes(mut self, attributes: BTreeMap<String, String>) -> Self {
        self.custom_attributes = attributes;
        self
    }

    pub fn instance_arn(&self) -> &str {
        &self.instance_arn
    }

    /// Answers about the tasks this agent's runtime runs (logs, resource use).
    pub fn queries(&self) -> TaskQueries {
        TaskQueries::new(self.runtime.clone())
    }

    /// Registers the instance record (ACTIVE, agent connected).
    pub async fn register(&self) -> Result<ContainerInstance> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1);
        let mut attributes = self.custom_attributes.clone();
        attributes.insert(ADDRESS_ATTRIBUTE.to_string(), self.cfg.address.clone());
        if let Some(inbound) = self.cfg.mesh_inbound {
            attributes.insert(MESH_INBOUND_ATTRIBUTE.to_string(), inbound.to_string());
        }
        let arch = instance_attributes::ecs_cpu_architecture(std::env::consts::ARCH);
        for (name, value) in [
            (instance_attributes::OS_TYPE, "linux"),
            (instance_attributes::ECS_OS_TYPE, "linux"),
            (instance_attributes::CPU_ARCHITECTURE, arch),
            (instance_attributes::ECS_CPU_ARCHITECTURE, arch),
            ("berth.runtime", self.runtime.kind()),
        ] {
            attributes.insert(name.to_string(), value.to_string());
        }
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
            agent_disconnected_at: None,
            agent_heartbeat_at: None,
        };
        self.api.register_instance(inst).await
    }

    /// Runs until `shutdown` turns true. Tasks keep running when the agent stops: a new
    /// agent adopts them.
    /// Until the control plane takes the registration, the agent retries every second
    /// and touches nothing: tasks already running keep running.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        if let Some((settings, gauge)) = self.orphans.clone() {
            let runtime = self.runtime.clone();
            let cluster = self.cfg.cluster.clone();
            tokio::spawn(async move {
                check_orphans(&runtime, &cluster, &settings, &gauge).await;
            });
        }
        let mut warned = false;
        while let Err(e) = self.register().await {
            if !warned {
                tracing::warn!(error = %e, "registering the container instance; retrying every second");
                warned = true;
            }
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let mut changes = self.api.changes();
        let mut events = self.runtime.subscribe();
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "agent pass failed");
            }
            tokio::select! {
                // A sender gone is a shutdown too (else `changed` returns at once forever).
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() { return Ok(()); }
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
                _ = heartbeat.tick() => {
                    if let Err(e) = self.api.heartbeat(&self.instance_arn).await {
                        tracing::warn!(error = %e, "heartbeat");
                    }
                }
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
    ///
    /// A task being started or stopped when the pass begins is left to that operation:
    /// its record and its runtime state may be read half-way through it (a start that
    /// finishes between the two reads looks like an interrupted start), so the pass does
    /// not judge it; the operation's own report prompts the next pass.
    pub async fn reconcile(&self) -> Result<()> {
        let busy_at_start = self.busy.lock().expect("busy set").clone();
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
            if busy_at_start.contains(&task.task_arn)
                || self.busy.lock().expect("busy set").contains(&task.task_arn)
            {
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
                        self.api
                            .submit_task_state_change(report::running(st, Some(time::now())))
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
                            self.api
                                .submit_task_state_change(TaskStateChange::stopped(
                                    &task.task_arn,
                                    StopCode::EssentialContainerExited,
                                    reason,
                                    time::now(),
                                ))
                                .await?;
                        }
                        Some(st) if st.essential_stopped().is_some() || stop_now => {
                            if self.claim(&task.task_arn) {
                                self.spawn_stop(task, false);
                            }
                        }
                        Some(st) => {
                            self.api
                                .submit_task_state_change(report::running(st, None))
                                .await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn spawn_start(&self, task: Task) {
        let (api, rt, busy) = (self.api.clone(), self.runtime.clone(), self.busy.clone());
        let endpoint = self.task_endpoint.clone();
        tokio::spawn(async move {
            let arn = task.task_arn.clone();
            let result = start_task(&*api, &rt, endpoint.as_deref(), &task).await;
            if let Err(e) = result {
                tracing::warn!(task = %arn, error = %e, "task failed to start");
                let reason = format!("Task failed to start: {e}");
                let _ = rt.remove(&arn).await;
                let change = TaskStateChange::stopped(
                    &arn,
                    StopCode::TaskFailedToStart,
                    reason,
                    time::now(),
                );
                let _ = api.submit_task_state_change(change).await;
            }
            Self::release(&busy, &arn);
        });
    }

    /// Stops a task through the runtime and records the outcome. `failed_start` marks an
    /// interrupted start.
    fn spawn_stop(&self, task: Task, failed_start: bool) {
        let (api, rt, busy) = (self.api.clone(), self.runtime.clone(), self.busy.clone());
        let endpoint = self.task_endpoint.clone();
        tokio::spawn(async move {
            let arn = task.task_arn.clone();
            let result = rt.stop(&arn).await;
            if let Some(endpoint) = &endpoint {
                endpoint.forget(&arn).await;
            }
            let change = match result {
                Ok(st) => report::stopped(&task, &st, failed_start, time::now()),
                Err(RuntimeError::UnknownTask(_)) => TaskStateChange::stopped(
                    &arn,
                    StopCode::EssentialContainerExited,
                    "Task is gone from its runtime",
                    time::now(),
                ),
                Err(e) => {
                    tracing::warn!(task = %arn, error = %e, "stopping a task failed; retrying next pass");
                    Self::release(&busy, &arn);
                    return;
                }
            };
            let _ = api.submit_task_state_change(change).await;
            Self::release(&busy, &arn);
        });
    }
}

async fn start_task(
    api: &dyn AgentApi,
    rt: &DynRuntime,
    endpoint: Option<&TaskEndpoint>,
    task: &Task,
) -> Result<()> {
    let mut td = api
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
        .submit_task_state_change(TaskStateChange::pending(&task.task_arn))
        .await?;
    if proceed.is_none_or(|t| t.desired_status != TaskStatus::Running) {
        return Ok(());
    }
    let has_secrets = td
        .container_definitions
        .iter()
        .any(|c| !c.secrets.is_empty());
    let secrets = if has_secrets {
        match api.task_secrets(&task.task_arn).await? {
            TaskSecrets::Resolved { variables } => variables,
            TaskSecrets::Refused { reason } => {
                tracing::warn!(task = %task.task_arn, %reason, "task cannot start");
                let change = TaskStateChange::stopped(
                    &task.task_arn,
                    StopCode::TaskFailedToStart,
                    reason,
                    time::now(),
                );
                api.submit_task_state_change(change).await?;
                return Ok(());
            }
        }
    } else {
        Vec::new()
    };
    if let Some(endpoint) = endpoint {
        if let Some(role) = td.task_role_arn.clone().filter(|r| !r.is_empty()) {
            endpoint.credentials(&task.task_arn).await.map_err(|e| {
                AgentError::Runtime(RuntimeError::StartFailed(format!(
                    "taskRoleArn {role}: no credentials for the task's role: {e}"
                )))
            })?;
        }
        // Later entries win: the node's variables follow the container's own.
        let env: Vec<_> = td
            .container_definitions
            .iter()
            .map(|c| endpoint.environment(&task.task_arn, &td, &c.name))
            .collect();
        for (c, vars) in td.container_definitions.iter_mut().zip(env) {
            for (name, value) in vars {
                c.environment
                    .push(berth_model::ecs::KeyValuePair { name, value });
            }
        }
    }
    let spec = TaskSpec {
        task_arn: task.task_arn.clone(),
        cluster: task.cluster_name().to_string(),
        task_definition: td,
        secrets,
    };
    let st = rt.start(&spec).await?;
    api.submit_task_state_change(report::running(&st, Some(time::now())))
        .await?;
    Ok(())
}
