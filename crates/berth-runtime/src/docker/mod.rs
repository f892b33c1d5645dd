//! The Docker runtime: each container of a task is a Docker container (bollard over the
//! engine's socket).
//!
//! Task-definition semantics, as ECS gives them on Docker:
//! - Images are never pulled: a missing image fails the start ("image ... is not present
//!   locally") before anything is created. [`build_image_from_binary`] builds images.
//! - `networkMode`: `bridge` (host ports published, `hostPort` 0 = dynamic), `host`
//!   (`hostPort` must equal `containerPort`), `awsvpc` (the task gets its own IP on the
//!   berth-managed network [`DockerRuntimeConfig::awsvpc_network`]; the first container
//!   started owns the network namespace and the others join it, so they reach each other
//!   on localhost; bindings report `taskIP:containerPort`), `none`.
//! - `cpu` → CPU shares; task `cpu` → a CPU quota on each container; `memory` → hard limit
//!   (no swap; an OOM kill gives the reason [`OOM_REASON`]), task `memory` → the hard limit
//!   of containers without their own; `memoryReservation` → soft limit.
//! - `environment` (plus `BERTH_TASK_ARN`, `BERTH_TASK_ID`, `BERTH_CONTAINER_NAME` and `PORT`
//!   = the first mapping's container port), `command`, `entryPoint`, `workingDirectory`,
//!   `user`, `dockerLabels`, `ulimits`, `healthCheck` (Docker's own health check),
//!   `stopTimeout` (Docker's stop: SIGTERM, then SIGKILL).
//! - `essential`, `dependsOn` (START, COMPLETE, SUCCESS, HEALTHY; stop in reverse order).
//!
//! Every container carries the labels [`LABEL_MANAGED`], [`LABEL_CLUSTER`], [`LABEL_INSTANCE`],
//! [`LABEL_TASK_ARN`], [`LABEL_TASK_DEFINITION`], [`LABEL_CONTAINER`] and the task spec
//! ([`LABEL_SPEC`]), so [`DockerRuntime::connect`] adopts what runs after a restart;
//! the agent removes (with [`Runtime::remove`]) listed tasks the store does not know.
//!
//! State follows the engine's event stream (start, die, oom, health_status), and a
//! periodic resync ([`DockerRuntimeConfig::resync_interval`]) catches missed events.

mod image;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_model::ecs::{
    ContainerDefinition, DependencyCondition, HealthStatus, NetworkBinding, NetworkMode,
    TaskDefinition, TransportProtocol,
};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HealthConfig,
    HealthStatusEnum, HostConfig, NetworkCreateRequest, NetworkingConfig, PortBinding,
    ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

pub use image::{build_image_from_binary, scratch_dockerfile};

use crate::{
    deps, ContainerState, ContainerStatus, LogStream, Result, Runtime, RuntimeError, TaskSpec,
    TaskState, TaskStats,
};

/// The stopped reason of a container the kernel killed for exceeding its memory limit
/// (ECS's wording).
pub const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";
pub const LABEL_MANAGED: &str = "berth.managed";
pub const LABEL_CLUSTER: &str = "berth.cluster";
/// The container instance (node) that started the container.
pub const LABEL_INSTANCE: &str = "berth.container-instance";
pub const LABEL_TASK_ARN: &str = "berth.task-arn";
/// `family:revision`.
pub const LABEL_TASK_DEFINITION: &str = "berth.task-definition";
pub const LABEL_CONTAINER: &str = "berth.container-name";
/// The task's spec as JSON, so an adopted task knows its definition.
pub const LABEL_SPEC: &str = "berth.spec";
/// Docker refuses memory limits below 6 MiB.
const DOCKER_MIN_MEMORY_MIB: u32 = 6;
const CPU_PERIOD_US: i64 = 100_000;

/// Configuration of a [`DockerRuntime`].
#[derive(Debug, Clone)]
pub struct DockerRuntimeConfig {
    /// How often the state of every container is re-read, in case an event was missed.
    pub resync_interval: Duration,
    /// The berth-managed Docker network awsvpc tasks get their IPs on.
    pub awsvpc_network: String,
    /// Prefix of container names: `<prefix><task id>-<container name>`.
    pub name_prefix: String,
    /// Adopt only the containers of this cluster (a node's agent serves one cluster);
    /// `None` adopts every container berth labelled.
    pub cluster: Option<String>,
    /// The container instance this runtime serves: its containers carry it as
    /// [`LABEL_INSTANCE`] and only those are adopted, so several berth nodes can share one
    /// Docker engine. `None` neither sets nor filters the label.
    pub instance: Option<String>,
}

impl Default for DockerRuntimeConfig {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(10),
            awsvpc_network: "berth-awsvpc".into(),
            name_prefix: "berth-".into(),
            cluster: None,
            instance: None,
        }
    }
}

/// The Docker backend of [`Runtime`]. Create it with [`DockerRuntime::connect`].
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    config: DockerRuntimeConfig,
    tasks: Mutex<BTreeMap<String, Arc<Task>>>,
    events: broadcast::Sender<TaskState>,
    shutdown: CancellationToken,
    /// Tasks to stop because an essential container exited (handled by `stopper`).
    stop_requests: tokio::sync::mpsc::UnboundedSender<Arc<Task>>,
    /// The ID of the awsvpc network, once found or created.
    awsvpc_id: Mutex<Option<String>>,
}

/// What [`LABEL_SPEC`] holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecLabel {
    task_arn: String,
    cluster: String,
    task_definition: TaskDefinition,
}

struct Task {
    arn: String,
    cluster: String,
    def: TaskDefinition,
    /// Docker container ids by container index.
    ids: Mutex<Vec<Option<String>>>,
    state: watch::Sender<TaskState>,
    stopping: AtomicBool,
    lifecycle: tokio::sync::Mutex<()>,
    /// Per container: berth asked it to stop.
    stop_sent: Vec<AtomicBool>,
}

impl Task {
    fn snapshot(&self) -> TaskState {
        self.state.borrow().clone()
    }
    fn id(&self, idx: usize) -> Option<String> {
        self.ids.lock().expect("ids lock")[idx].clone()
    }
    fn index_of_id(&self, id: &str) -> Option<usize> {
        self.ids
            .lock()
            .expect("ids lock")
            .iter()
            .position(|i| i.as_deref() == Some(id))
    }
}

fn err(context: impl std::fmt::Display, e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Other(format!("{context}: {e}"))
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn docker_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn secs_to_ns(s: u32) -> i64 {
    i64::from(s) * 1_000_000_000
}

fn health_from(h: Option<&HealthStatusEnum>) -> HealthStatus {
    match h {
        Some(HealthStatusEnum::HEALTHY) => HealthStatus::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => HealthStatus::Unhealthy,
        _ => HealthStatus::Unknown,
    }
}

impl DockerRuntime {
    /// Connects to the local engine (`DOCKER_HOST` or `/var/run/docker.sock`), negotiates
    /// the API version, adopts the containers berth labelled and starts following events.
    /// Fails if the engine does not answer.
    pub async fn connect(config: DockerRuntimeConfig) -> Result<Arc<Self>> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| err("cannot reach the Docker engine", e))?;
        Self::with_docker(docker, config).await
    }

    /// Like [`DockerRuntime::connect`] with a client of your own.
    pub async fn with_docker(docker: Docker, config: DockerRuntimeConfig) -> Result<Arc<Self>> {
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| err("cannot reach the Docker engine", e))?;
        docker
            .ping()
            .await
            .map_err(|e| err("the Docker engine does not answer", e))?;
        let (events, _) = broadcast::channel(1024);
        let (stop_requests, stop_rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            docker,
            config,
            tasks: Mutex::new(BTreeMap::new()),
            events,
            shutdown: CancellationToken::new(),
            stop_requests,
            awsvpc_id: Mutex::new(None),
        });
        tokio::spawn(inner.clone().stopper(stop_rx));
        inner.adopt().await?;
        tokio::spawn(inner.clone().follow_events());
        tokio::spawn(inner.clone().resync_loop());
        Ok(Arc::new(DockerRuntime { inner }))
    }

    /// The engine client (to build images, for example).
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }
}

impl Drop for DockerRuntime {
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

    fn update(&self, task: &Task, f: impl FnOnce(&mut TaskState)) {
        let mut changed = false;
        task.state.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            changed = *s != before;
            changed
        });
        if changed {
            let _ = self.events.send(task.snapshot());
        }
    }

    fn container_name(&self, task: &Task, idx: usize) -> String {
        format!(
            "{}{}-{}",
            self.config.name_prefix,
            berth_model::arn::last_segment(&task.arn),
            task.def.container_definitions[idx].name
        )
    }

    /// Rebuilds the tasks from the containers berth labelled.
    async fn adopt(self: &Arc<Self>) -> Result<()> {
        let mut labels = vec![format!("{LABEL_MANAGED}=true")];
        if let Some(cluster) = &self.config.cluster {
            labels.push(format!("{LABEL_CLUSTER}={cluster}"));
        }
        if let Some(instance) = &self.config.instance {
            labels.push(format!("{LABEL_INSTANCE}={instance}"));
        }
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), labels);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| err("cannot list containers", e))?;
        let mut by_task: BTreeMap<String, Vec<bollard::models::ContainerSummary>> = BTreeMap::new();
        for c in list {
            if let Some(arn) = c.labels.as_ref().and_then(|l| l.get(LABEL_TASK_ARN)) {
                by_task.entry(arn.clone()).or_default().push(c);
            }
        }
        for (arn, containers) in by_task {
            let spec: Option<SpecLabel> = containers.iter().find_map(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_SPEC))
                    .and_then(|s| serde_json::from_str(s).ok())
            });
            let Some(spec) = spec else {
                tracing::warn!(task = %arn, "containers without a readable spec label; not adopted");
                continue;
            };
            let task = new_task(&spec.task_arn, &spec.cluster, &spec.task_definition);
            for c in &containers {
                let name = c.labels.as_ref().and_then(|l| l.get(LABEL_CONTAINER));
                let idx = name.and_then(|n| {
                    task.def
                        .container_definitions
                        .iter()
                        .position(|d| &d.name == n)
                });
                if let (Some(idx), Some(id)) = (idx, c.id.clone()) {
                    task.ids.lock().expect("ids lock")[idx] = Some(id);
                }
            }
            for idx in 0..task.def.container_definitions.len() {
                match task.id(idx) {
                    Some(id) => {
                        if let Ok(info) = self
                            .docker
                            .inspect_container(
                                &id,
                                None::<bollard::query_parameters::InspectContainerOptions>,
                            )
                            .await
                        {
                            let cs = self.container_state_from(&task, idx, &info);
                            task.state.send_modify(|s| s.containers[idx] = cs);
                        }
                    }
                    None => task.state.send_modify(|s| {
                        s.containers[idx].status = ContainerStatus::Stopped;
                        s.containers[idx].reason = Some("not started".into());
                    }),
                }
            }
            tracing::info!(task = %arn, "adopted task");
            self.tasks
                .lock()
                .expect("tasks lock")
                .insert(arn.clone(), task.clone());
            let state = task.snapshot();
            if !state.all_stopped() && state.essential_stopped().is_some() {
                let _ = self.stop_requests.send(task);
            }
        }
        Ok(())
    }

    /// The runtime's view of one container from Docker's inspect output.
    fn container_state_from(
        &self,
        task: &Task,
        idx: usize,
        info: &ContainerInspectResponse,
    ) -> ContainerState {
        let def = &task.def.container_definitions[idx];
        let prev = task.snapshot().containers[idx].clone();
        let st = info.state.clone().unwrap_or_default();
        let running = st.running.unwrap_or(false);
        let started = st
            .started_at
            .as_deref()
            .is_some_and(|s| !s.starts_with("0001-"));
        let status = if running {
            ContainerStatus::Running
        } else if started
            || st
                .finished_at
                .as_deref()
                .is_some_and(|s| !s.starts_with("0001-"))
        {
            ContainerStatus::Stopped
        } else {
            ContainerStatus::Pending
        };
        let exit_code = (status == ContainerStatus::Stopped)
            .then(|| st.exit_code.map(|c| c as i32))
            .flatten();
        let reason = if status != ContainerStatus::Stopped {
            None
        } else if st.oom_killed == Some(true) {
            Some(OOM_REASON.to_string())
        } else if let Some(e) = st.error.as_deref().filter(|e| !e.is_empty()) {
            Some(e.to_string())
        } else if task.stop_sent[idx].load(Ordering::SeqCst) {
            Some(match exit_code {
                Some(137) => "stopped by berth: SIGKILL after stopTimeout".to_string(),
                Some(c) => format!("stopped by berth: exited with code {c} after SIGTERM"),
                None => "stopped by berth".to_string(),
            })
        } else {
            Some(format!("exited with code {}", exit_code.unwrap_or(-1)))
        };
        let health = health_from(st.health.as_ref().and_then(|h| h.status.as_ref()));
        let (bindings, private_ip) = self.bindings_from(task, def, info, &prev);
        ContainerState {
            name: def.name.clone(),
            runtime_id: info.id.clone(),
            status,
            exit_code,
            reason,
            health,
            network_bindings: bindings,
            private_ip,
            essential: def.essential,
        }
    }

    fn bindings_from(
        &self,
        task: &Task,
        def: &ContainerDefinition,
        info: &ContainerInspectResponse,
        prev: &ContainerState,
    ) -> (Vec<NetworkBinding>, Option<String>) {
        let ns = info.network_settings.as_ref();
        match task.def.network_mode {
            NetworkMode::None => (Vec::new(), None),
            NetworkMode::Host => (
                def.port_mappings
                    .iter()
                    .map(|pm| NetworkBinding {
                        bind_ip: "0.0.0.0".into(),
                        container_port: pm.container_port,
                        host_port: pm.container_port,
                        protocol: pm.protocol,
                    })
                    .collect(),
                None,
            ),
            NetworkMode::Awsvpc => {
                let ip = ns
                    .and_then(|n| n.networks.as_ref())
                    .and_then(|m| m.get(&self.config.awsvpc_network))
                    .and_then(|e| e.ip_address.clone())
                    .filter(|ip| !ip.is_empty())
                    .or_else(|| prev.private_ip.clone())
                    .or_else(|| {
                        // Containers sharing the first one's namespace: its IP.
                        task.snapshot()
                            .containers
                            .iter()
                            .find_map(|c| c.private_ip.clone())
                    });
                let bindings = match &ip {
                    Some(ip) => def
                        .port_mappings
                        .iter()
                        .map(|pm| NetworkBinding {
                            bind_ip: ip.clone(),
                            container_port: pm.container_port,
                            host_port: pm.container_port,
                            protocol: pm.protocol,
                        })
                        .collect(),
                    None => Vec::new(),
                };
                (bindings, ip)
            }
            NetworkMode::Bridge => {
                let ports = ns.and_then(|n| n.ports.as_ref());
                let mut out = Vec::new();
                for pm in &def.port_mappings {
                    let key = format!("{}/{}", pm.container_port, proto(pm.protocol));
                    let host = ports
                        .and_then(|p| p.get(&key))
                        .and_then(|b| b.as_ref())
                        .and_then(|b| {
                            b.iter()
                                .find_map(|b| b.host_port.as_ref()?.parse::<u32>().ok())
                        });
                    match host {
                        Some(h) => out.push(NetworkBinding {
                            bind_ip: "0.0.0.0".into(),
                            container_port: pm.container_port,
                            host_port: h,
                            protocol: pm.protocol,
                        }),
                        None => {
                            // A stopped container has no ports any more: keep the last known.
                            if let Some(b) = prev.network_bindings.iter().find(|b| {
                                b.container_port == pm.container_port && b.protocol == pm.protocol
                            }) {
                                out.push(b.clone());
                            }
                        }
                    }
                }
                (out, None)
            }
        }
    }

    /// Re-reads one container and applies what changed; an essential container that
    /// stopped stops its task.
    async fn refresh(self: &Arc<Self>, task: &Arc<Task>, idx: usize) {
        let Some(id) = task.id(idx) else { return };
        let cs = match self
            .docker
            .inspect_container(
                &id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(info) => self.container_state_from(task, idx, &info),
            Err(e) if is_not_found(&e) => {
                let mut cs = task.snapshot().containers[idx].clone();
                if cs.status != ContainerStatus::Stopped {
                    cs.status = ContainerStatus::Stopped;
                    cs.reason = Some("the container was removed outside berth".into());
                }
                cs
            }
            Err(e) => {
                tracing::warn!(task = %task.arn, "inspect {id}: {e}");
                return;
            }
        };
        let was = task.snapshot().containers[idx].status;
        let now_stopped = cs.status == ContainerStatus::Stopped;
        self.update(task, |s| s.containers[idx] = cs);
        if was != ContainerStatus::Stopped
            && now_stopped
            && task.def.container_definitions[idx].essential
            && !task.stopping.load(Ordering::SeqCst)
        {
            tracing::info!(task = %task.arn, container = %task.def.container_definitions[idx].name, "essential container exited; stopping the task");
            let _ = self.stop_requests.send(task.clone());
        }
    }

    /// Stops the tasks whose essential container exited.
    async fn stopper(self: Arc<Self>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Arc<Task>>) {
        loop {
            let task = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                t = rx.recv() => match t { Some(t) => t, None => return },
            };
            let inner = self.clone();
            tokio::spawn(async move {
                inner.stop_task(&task).await;
            });
        }
    }

    async fn resync(self: &Arc<Self>) {
        let tasks: Vec<Arc<Task>> = self
            .tasks
            .lock()
            .expect("tasks lock")
            .values()
            .cloned()
            .collect();
        for task in tasks {
            for idx in 0..task.def.container_definitions.len() {
                if task.snapshot().containers[idx].status != ContainerStatus::Stopped {
                    self.refresh(&task, idx).await;
                }
            }
        }
    }

    async fn resync_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.resync_interval) => {}
            }
            self.resync().await;
        }
    }

    async fn follow_events(self: Arc<Self>) {
        loop {
            let mut filters = HashMap::new();
            filters.insert("type".to_string(), vec!["container".to_string()]);
            filters.insert("label".to_string(), vec![format!("{LABEL_MANAGED}=true")]);
            let mut stream = self.docker.events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }));
            // Whatever happened while the stream was down.
            self.resync().await;
            loop {
                let ev = tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    ev = stream.next() => ev,
                };
                let ev = match ev {
                    Some(Ok(ev)) => ev,
                    Some(Err(e)) => {
                        tracing::warn!("Docker event stream: {e}; reconnecting");
                        break;
                    }
                    None => break,
                };
                let action = ev.action.unwrap_or_default();
                let Some(actor) = ev.actor else { continue };
                let Some(id) = actor.id else { continue };
                let Some(arn) = actor
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(LABEL_TASK_ARN))
                else {
                    continue;
                };
                let Ok(task) = self.task(arn) else { continue };
                let Some(idx) = task.index_of_id(&id) else {
                    continue;
                };
                if action == "start"
                    || action == "die"
                    || action == "oom"
                    || action == "stop"
                    || action == "kill"
                    || action.starts_with("health_status")
                {
                    self.refresh(&task, idx).await;
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

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

    async fn stop_container(self: &Arc<Self>, task: &Arc<Task>, idx: usize) {
        if task.snapshot().containers[idx].status != ContainerStatus::Running {
            return;
        }
        let Some(id) = task.id(idx) else { return };
        let def = &task.def.container_definitions[idx];
        task.stop_sent[idx].store(true, Ordering::SeqCst);
        let t = def.stop_timeout_seconds();
        if let Err(e) = self
            .docker
            .stop_container(
                &id,
                Some(StopContainerOptions {
                    t: Some(t as i32),
                    signal: None,
                }),
            )
            .await
        {
            if !is_not_found(&e) {
                tracing::warn!(task = %task.arn, container = %def.name, "stop: {e}");
            }
        }
        self.refresh(task, idx).await;
    }

    /// Finds or creates the awsvpc network and remembers its ID. Two clients of one
    /// engine creating the network at the same moment can leave two networks of that
    /// name, and the engine then refuses to start any container on it ("ambiguous").
    /// Every caller settles on the same one (the lowest ID) and removes the others that
    /// no container uses (the engine refuses to remove one in use).
    async fn ensure_awsvpc_network(&self) -> Result<()> {
        let name = &self.config.awsvpc_network;
        let id = match self.find_awsvpc_network().await? {
            Some(id) => id,
            None => {
                let mut labels = HashMap::new();
                labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
                let res = self
                    .docker
                    .create_network(NetworkCreateRequest {
                        name: name.clone(),
                        driver: Some("bridge".into()),
                        labels: Some(labels),
                        ..Default::default()
                    })
                    .await;
                match res {
                    Ok(_) => {}
                    // Created concurrently by another start.
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 409,
                        ..
                    }) => {}
                    Err(e) => return Err(err(format!("cannot create network {name}"), e)),
                }
                self.find_awsvpc_network().await?.ok_or_else(|| {
                    RuntimeError::StartFailed(format!(
                        "network {name} vanished after it was created"
                    ))
                })?
            }
        };
        *self.awsvpc_id.lock().expect("awsvpc lock") = Some(id);
        Ok(())
    }

    /// The lowest ID among the networks named exactly like the awsvpc network.
    async fn find_awsvpc_network(&self) -> Result<Option<String>> {
        let name = &self.config.awsvpc_network;
        let mut filters = HashMap::new();
        filters.insert("name".to_string(), vec![name.clone()]);
        let nets = self
            .docker
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| err(format!("cannot list networks named {name}"), e))?;
        let mut ids: Vec<String> = nets
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name.as_str()))
            .filter_map(|n| n.id)
            .collect();
        ids.sort();
        for extra in ids.iter().skip(1) {
            match self.docker.remove_network(extra).await {
                Ok(()) => tracing::info!(network = %extra, "removed a duplicate {name} network"),
                Err(e) => tracing::debug!(network = %extra, "duplicate {name} network kept: {e}"),
            }
        }
        Ok(ids.into_iter().next())
    }

    /// The create request of container `idx`.
    fn create_body(
        &self,
        task: &Task,
        idx: usize,
        netns_owner: Option<&str>,
    ) -> Result<ContainerCreateBody> {
        let td = &task.def;
        let def = &td.container_definitions[idx];
        let mut env: Vec<String> = def
            .environment
            .iter()
            .map(|kv| format!("{}={}", kv.name, kv.value))
            .collect();
        env.push(format!("BERTH_TASK_ARN={}", task.arn));
        env.push(format!(
            "BERTH_TASK_ID={}",
            berth_model::arn::last_segment(&task.arn)
        ));
        env.push(format!("BERTH_CONTAINER_NAME={}", def.name));
        if let Some(pm) = def.port_mappings.first() {
            env.push(format!("PORT={}", pm.container_port));
        }
        let mut labels: HashMap<String, String> = def.docker_labels.clone().into_iter().collect();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels.insert(LABEL_CLUSTER.into(), task.cluster.clone());
        if let Some(instance) = &self.config.instance {
            labels.insert(LABEL_INSTANCE.into(), instance.clone());
        }
        labels.insert(LABEL_TASK_ARN.into(), task.arn.clone());
        labels.insert(
            LABEL_TASK_DEFINITION.into(),
            format!("{}:{}", td.family, td.revision),
        );
        labels.insert(LABEL_CONTAINER.into(), def.name.clone());
        labels.insert(
            LABEL_SPEC.into(),
            serde_json::to_string(&SpecLabel {
                task_arn: task.arn.clone(),
                cluster: task.cluster.clone(),
                task_definition: td.clone(),
            })
            .expect("spec serializes"),
        );

        let mut host = HostConfig::default();
        if def.cpu > 0 {
            host.cpu_shares = Some(i64::from(def.cpu.max(2)));
        }
        if let Some(units) = td.cpu.as_deref() {
            let units = berth_model::ecs::parse_cpu_units("cpu", units)
                .map_err(|e| RuntimeError::StartFailed(e.to_string()))?;
            host.cpu_period = Some(CPU_PERIOD_US);
            host.cpu_quota = Some(i64::from(units) * CPU_PERIOD_US / 1024);
        }
        let task_memory = td
            .memory
            .as_deref()
            .map(|m| berth_model::ecs::parse_memory_mib("memory", m))
            .transpose()
            .map_err(|e| RuntimeError::StartFailed(e.to_string()))?;
        if let Some(mib) = def.memory.or(task_memory) {
            if mib < DOCKER_MIN_MEMORY_MIB {
                return Err(RuntimeError::StartFailed(format!(
                    "container {}: memory {mib} MiB is below Docker's minimum of {DOCKER_MIN_MEMORY_MIB} MiB",
                    def.name
                )));
            }
            let bytes = i64::from(mib) * 1024 * 1024;
            host.memory = Some(bytes);
            host.memory_swap = Some(bytes);
        }
        if let Some(mib) = def.memory_reservation {
            host.memory_reservation = Some(i64::from(mib) * 1024 * 1024);
        }
        if !def.ulimits.is_empty() {
            host.ulimits = Some(
                def.ulimits
                    .iter()
                    .map(|u| ResourcesUlimits {
                        name: Some(u.name.clone()),
                        soft: Some(u.soft_limit),
                        hard: Some(u.hard_limit),
                    })
                    .collect(),
            );
        }
        let mut exposed = HashMap::new();
        let mut networking = None;
        match td.network_mode {
            NetworkMode::None => host.network_mode = Some("none".into()),
            NetworkMode::Host => {
                for pm in &def.port_mappings {
                    if let Some(h) = pm.host_port.filter(|h| *h != 0 && *h != pm.container_port) {
                        return Err(RuntimeError::StartFailed(format!(
                            "container {}: in host network mode hostPort ({h}) must equal containerPort ({})",
                            def.name, pm.container_port
                        )));
                    }
                }
                host.network_mode = Some("host".into());
            }
            NetworkMode::Awsvpc => match netns_owner {
                Some(owner) => host.network_mode = Some(format!("container:{owner}")),
                None => {
                    let net = self
                        .awsvpc_id
                        .lock()
                        .expect("awsvpc lock")
                        .clone()
                        .unwrap_or_else(|| self.config.awsvpc_network.clone());
                    host.network_mode = Some(net.clone());
                    let mut endpoints = HashMap::new();
                    endpoints.insert(net, EndpointSettings::default());
                    networking = Some(NetworkingConfig {
                        endpoints_config: Some(endpoints),
                    });
                }
            },
            NetworkMode::Bridge => {
                host.network_mode = Some("bridge".into());
                let mut bindings = HashMap::new();
                for pm in &def.port_mappings {
                    let key = format!("{}/{}", pm.container_port, proto(pm.protocol));
                    exposed.insert(key.clone(), HashMap::new());
                    let host_port = pm.host_port.filter(|p| *p != 0).map(|p| p.to_string());
                    bindings.insert(
                        key,
                        Some(vec![PortBinding {
                            host_ip: Some("0.0.0.0".into()),
                            host_port: Some(host_port.unwrap_or_default()),
                        }]),
                    );
                }
                host.port_bindings = Some(bindings);
            }
        }
        let healthcheck = def.health_check.as_ref().map(|hc| HealthConfig {
            test: Some(hc.command.clone()),
            interval: Some(secs_to_ns(hc.interval)),
            timeout: Some(secs_to_ns(hc.timeout)),
            retries: Some(i64::from(hc.retries)),
            start_period: Some(secs_to_ns(hc.start_period)),
            start_interval: None,
        });
        Ok(ContainerCreateBody {
            image: Some(def.image.clone()),
            entrypoint: (!def.entry_point.is_empty()).then(|| def.entry_point.clone()),
            cmd: (!def.command.is_empty()).then(|| def.command.clone()),
            env: Some(env),
            working_dir: def.working_directory.clone(),
            user: def.user.clone(),
            labels: Some(labels),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            healthcheck,
            stop_timeout: Some(i64::from(def.stop_timeout_seconds())),
            host_config: Some(host),
            networking_config: networking,
            ..Default::default()
        })
    }

    async fn start_task(self: &Arc<Self>, task: &Arc<Task>) -> Result<()> {
        let order = deps::start_order(&task.def).map_err(RuntimeError::StartFailed)?;
        let mut netns_owner: Option<String> = None;
        for idx in order {
            wait_dependencies(task, idx)
                .await
                .map_err(RuntimeError::StartFailed)?;
            let _g = task.lifecycle.lock().await;
            if task.stopping.load(Ordering::SeqCst) {
                return Err(RuntimeError::StartFailed(
                    "the task was stopped while it was starting".into(),
                ));
            }
            let def = &task.def.container_definitions[idx];
            let body = self.create_body(task, idx, netns_owner.as_deref())?;
            let name = self.container_name(task, idx);
            let created = self
                .docker
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(name.clone()),
                        ..Default::default()
                    }),
                    body,
                )
                .await
                .map_err(|e| {
                    RuntimeError::StartFailed(format!(
                        "container {}: cannot create: {}",
                        def.name,
                        docker_message(&e)
                    ))
                })?;
            task.ids.lock().expect("ids lock")[idx] = Some(created.id.clone());
            self.docker
                .start_container(
                    &created.id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(|e| {
                    RuntimeError::StartFailed(format!(
                        "container {}: cannot start: {}",
                        def.name,
                        docker_message(&e)
                    ))
                })?;
            if task.def.network_mode == NetworkMode::Awsvpc && netns_owner.is_none() {
                netns_owner = Some(created.id.clone());
            }
            self.refresh(task, idx).await;
        }
        Ok(())
    }

    /// Removes every container of a task (after a failed start or on remove).
    async fn remove_containers(&self, task: &Task) -> Result<()> {
        let ids: Vec<String> = task
            .ids
            .lock()
            .expect("ids lock")
            .iter()
            .flatten()
            .cloned()
            .collect();
        for id in ids {
            match self
                .docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await
            {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(err(format!("cannot remove container {id}"), e)),
            }
        }
        Ok(())
    }
}

fn proto(p: TransportProtocol) -> &'static str {
    match p {
        TransportProtocol::Tcp => "tcp",
        TransportProtocol::Udp => "udp",
    }
}

fn new_task(arn: &str, cluster: &str, def: &TaskDefinition) -> Arc<Task> {
    let n = def.container_definitions.len();
    let state = TaskState {
        task_arn: arn.to_string(),
        containers: def
            .container_definitions
            .iter()
            .map(|c| ContainerState {
                name: c.name.clone(),
                runtime_id: None,
                status: ContainerStatus::Pending,
                exit_code: None,
                reason: None,
                health: HealthStatus::Unknown,
                network_bindings: Vec::new(),
                private_ip: None,
                essential: c.essential,
            })
            .collect(),
    };
    Arc::new(Task {
        arn: arn.to_string(),
        cluster: cluster.to_string(),
        def: def.clone(),
        ids: Mutex::new(vec![None; n]),
        state: watch::Sender::new(state),
        stopping: AtomicBool::new(false),
        lifecycle: tokio::sync::Mutex::new(()),
        stop_sent: (0..n).map(|_| AtomicBool::new(false)).collect(),
    })
}

/// Waits until every `dependsOn` condition of container `idx` holds.
async fn wait_dependencies(task: &Task, idx: usize) -> std::result::Result<(), String> {
    let def = &task.def.container_definitions[idx];
    let limit = def
        .start_timeout
        .map(|s| Duration::from_secs(s.into()))
        .unwrap_or(crate::process::DEFAULT_DEPENDENCY_TIMEOUT);
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
        let verdict = |s: &TaskState| -> Option<std::result::Result<(), String>> {
            let d = &s.containers[j];
            let failed = |what: String| {
                Some(Err(format!(
                    "container {} did not start: its dependency {} {what} (condition {cond:?})",
                    def.name, d.name
                )))
            };
            match (cond, d.status) {
                (DependencyCondition::Start, ContainerStatus::Pending) => None,
                (DependencyCondition::Start, _) => Some(Ok(())),
                (DependencyCondition::Complete, ContainerStatus::Stopped) => Some(Ok(())),
                (DependencyCondition::Success, ContainerStatus::Stopped) => {
                    if d.exit_code == Some(0) {
                        Some(Ok(()))
                    } else {
                        failed(format!("exited with code {:?}", d.exit_code))
                    }
                }
                (DependencyCondition::Healthy, _) if d.health == HealthStatus::Healthy => {
                    Some(Ok(()))
                }
                (DependencyCondition::Healthy, ContainerStatus::Stopped) => {
                    failed("stopped before it was healthy".into())
                }
                _ => None,
            }
        };
        let mut rx = task.state.subscribe();
        let outcome =
            match tokio::time::timeout_at(deadline, rx.wait_for(|s| verdict(s).is_some())).await {
                Ok(Ok(s)) => verdict(&s).expect("decided"),
                Ok(Err(_)) => Err("the task went away".into()),
                Err(_) => Err(format!(
                    "container {} did not start: dependency {} not {cond:?} within {}s",
                    def.name,
                    dep.container_name,
                    limit.as_secs()
                )),
            };
        outcome?;
    }
    Ok(())
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn kind(&self) -> &'static str {
        "docker"
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
        deps::start_order(td).map_err(RuntimeError::StartFailed)?;
        // Everything that can be checked before creating anything.
        for c in &td.container_definitions {
            match inner.docker.inspect_image(&c.image).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {
                    return Err(RuntimeError::StartFailed(format!(
                        "container {}: image {} is not present locally, and berth does not pull images (build or load it first, e.g. `berth image build-demo`)",
                        c.name, c.image
                    )))
                }
                Err(e) => return Err(err(format!("cannot inspect image {}", c.image), e)),
            }
        }
        let task = new_task(&spec.task_arn, &spec.cluster, td);
        for idx in 0..td.container_definitions.len() {
            inner.create_body(&task, idx, None)?;
        }
        if td.network_mode == NetworkMode::Awsvpc {
            inner.ensure_awsvpc_network().await?;
        }
        {
            let mut tasks = inner.tasks.lock().expect("tasks lock");
            if let Some(existing) = tasks.get(&spec.task_arn) {
                return Ok(existing.snapshot());
            }
            tasks.insert(spec.task_arn.clone(), task.clone());
        }
        let _ = inner.events.send(task.snapshot());
        match inner.start_task(&task).await {
            // An essential container that already exited shows in the state (and the
            // task is being stopped): the start itself succeeded.
            Ok(()) => Ok(task.snapshot()),
            Err(e) => {
                // Nothing half-created: the task's containers go, and so does the task.
                task.stopping.store(true, Ordering::SeqCst);
                if let Err(re) = inner.remove_containers(&task).await {
                    tracing::warn!(task = %task.arn, "cleanup after a failed start: {re}");
                }
                inner.tasks.lock().expect("tasks lock").remove(&task.arn);
                Err(e)
            }
        }
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
        self.inner.remove_containers(&task).await?;
        self.inner
            .tasks
            .lock()
            .expect("tasks lock")
            .remove(task_arn);
        Ok(())
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
        let Some(id) = task.id(idx) else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        let stream = self
            .inner
            .docker
            .logs(
                &id,
                Some(LogsOptions {
                    follow,
                    stdout: true,
                    stderr: true,
                    tail: "all".into(),
                    ..Default::default()
                }),
            )
            .map(|item| item.map(|o| o.into_bytes()).map_err(std::io::Error::other));
        Ok(Box::pin(stream))
    }

    async fn stats(&self, task_arn: &str) -> Result<TaskStats> {
        let task = self.inner.task(task_arn)?;
        let state = task.snapshot();
        let mut total = TaskStats::default();
        for (idx, c) in state.containers.iter().enumerate() {
            if c.status != ContainerStatus::Running {
                continue;
            }
            let Some(id) = task.id(idx) else { continue };
            let mut stream = self.inner.docker.stats(
                &id,
                Some(StatsOptions {
                    stream: false,
                    one_shot: false,
                }),
            );
            let Some(Ok(s)) = stream.next().await else {
                continue;
            };
            if let (Some(cpu), Some(pre)) = (s.cpu_stats.as_ref(), s.precpu_stats.as_ref()) {
                let used = cpu
                    .cpu_usage
                    .as_ref()
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0);
                let pre_used = pre
                    .cpu_usage
                    .as_ref()
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0);
                let sys = cpu.system_cpu_usage.unwrap_or(0);
                let pre_sys = pre.system_cpu_usage.unwrap_or(0);
                let cpus = cpu.online_cpus.unwrap_or(1).max(1) as f64;
                if sys > pre_sys && used >= pre_used {
                    total.cpu_units +=
                        (used - pre_used) as f64 / (sys - pre_sys) as f64 * cpus * 1024.0;
                }
            }
            if let Some(m) = s.memory_stats.as_ref() {
                let usage = m.usage.unwrap_or(0);
                let cache = m
                    .stats
                    .as_ref()
                    .and_then(|st| {
                        st.get("total_inactive_file")
                            .or(st.get("inactive_file"))
                            .copied()
                    })
                    .unwrap_or(0);
                total.memory_bytes += usage.saturating_sub(cache);
            }
        }
        Ok(total)
    }
}
