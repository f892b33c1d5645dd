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
//! - `environment` (plus berth's variables, as on the process runtime: `BERTH_TASK_ARN`,
//!   `BERTH_TASK_ID`, `BERTH_CLUSTER`, `BERTH_CONTAINER_NAME`, `PORT` = the first
//!   mapping's container port and `PORT_<NAME>` each named mapping's), `command`,
//!   `entryPoint`, `workingDirectory`, `user`, `dockerLabels`, `ulimits`, `healthCheck`
//!   (Docker's own health check), `stopTimeout` (Docker's stop: SIGTERM, then SIGKILL).
//! - `essential`, `dependsOn` (START, COMPLETE, SUCCESS, HEALTHY; stop in reverse order).
//! - `volumes` (`host.sourcePath` bind mounts; Docker volumes of scope `task`, removed with
//!   the task, or `shared`, which outlive it), `mountPoints` (read-only or not) and
//!   `volumesFrom` (a source container is created before the containers mounting its
//!   volumes).
//!
//! Every container carries the labels [`LABEL_MANAGED`], [`LABEL_CLUSTER`], [`LABEL_INSTANCE`],
//! [`LABEL_TASK_ARN`], [`LABEL_TASK_DEFINITION`], [`LABEL_CONTAINER`] and the task spec
//! ([`LABEL_SPEC`]), so [`DockerRuntime::connect`] adopts what runs after a restart;
//! the agent removes (with [`crate::Runtime::remove`]) listed tasks the store does not know.
//!
//! State follows the engine's event stream (start, die, oom, health_status), and a
//! periodic resync ([`DockerRuntimeConfig::resync_interval`]) catches missed events.
//!
//! - `logConfiguration`: json-file, syslog, fluentd, gelf, journald and none passed to
//!   Docker with their options; awslogs kept with json-file in berth's own log store,
//!   its stream name in the label [`LABEL_AWSLOGS_STREAM`].
//!
//! Layout: `container_spec` (the create request, a pure function of the task spec),
//! `log_config` (`logConfiguration` as Docker's log config, pure),
//! `container_state` (inspect output → [`crate::ContainerState`], also pure),
//! `containers` (the backend: create, start, stop, remove and read logs on the engine),
//! `exec` (a command in a running container, through the engine's exec API),
//! `network` (the awsvpc network), `volumes` (a task's Docker volumes), `adopt` (rebuilding tasks from labels), `orphans` (other
//! instances' containers whose node is gone), `state_sync`
//! (events and resync), `stats`, `image` (building images). Starting and stopping in
//! `dependsOn` order, the environment and the [`crate::Runtime`] methods are shared with
//! the process runtime.

mod adopt;
mod container_spec;
mod container_state;
mod containers;
mod exec;
mod image;
mod log_config;
mod network;
mod orphans;
mod state_sync;
mod stats;
mod volumes;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use image::{build_image_from_binary, scratch_dockerfile};
pub use network::bridge_gateway;

use crate::task_core::{pending_state, TaskCore};
use crate::task_runtime::impl_runtime;
use crate::task_table::{RuntimeTask, TaskTable};
use crate::{Result, RuntimeError, TaskSpec};

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
/// An `awslogs` container's stream, `{awslogs-stream-prefix}/{container name}/{task id}`
/// (set only with a stream prefix), so `docker ps --filter label=...` finds it.
pub const LABEL_AWSLOGS_STREAM: &str = "berth.awslogs-stream";

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
    /// The node's discovery DNS server: named to every task as `BERTH_DNS_SERVER`, and
    /// the resolver of bridge and awsvpc containers whose definition sets no
    /// `dnsServers` (Docker takes an address only, so the server must be on port 53).
    pub dns_server: Option<std::net::SocketAddr>,
}

impl Default for DockerRuntimeConfig {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(10),
            awsvpc_network: "berth-awsvpc".into(),
            name_prefix: "berth-".into(),
            cluster: None,
            instance: None,
            dns_server: None,
        }
    }
}

/// The Docker backend of [`crate::Runtime`]. Create it with [`DockerRuntime::connect`].
pub struct DockerRuntime {
    inner: Arc<Inner>,
    /// Cancels the background work when the runtime is dropped.
    _shutdown_on_drop: DropGuard,
}

impl_runtime!(DockerRuntime, inner, "docker");

struct Inner {
    docker: Docker,
    config: DockerRuntimeConfig,
    tasks: TaskTable<Task>,
    shutdown: CancellationToken,
    /// Tasks to stop because an essential container exited (handled by `stopper`).
    stop_requests: tokio::sync::mpsc::UnboundedSender<Arc<Task>>,
    /// The ID of the awsvpc network, once found or created.
    awsvpc_id: Mutex<Option<String>>,
}

struct Task {
    core: TaskCore,
    /// Docker container ids by container index.
    ids: Mutex<Vec<Option<String>>>,
    /// Per container: berth asked it to stop.
    stop_sent: Vec<AtomicBool>,
}

// === impl Task ===

impl Task {
    fn new(spec: TaskSpec) -> Arc<Self> {
        let n = spec.task_definition.container_definitions.len();
        let state = pending_state(&spec, Vec::new());
        Arc::new(Task {
            core: TaskCore::new(spec, state),
            ids: Mutex::new(vec![None; n]),
            stop_sent: (0..n).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    fn id(&self, idx: usize) -> Option<String> {
        self.ids.lock().expect("ids lock")[idx].clone()
    }

    fn set_id(&self, idx: usize, id: String) {
        self.ids.lock().expect("ids lock")[idx] = Some(id);
    }

    fn index_of_id(&self, id: &str) -> Option<usize> {
        self.ids
            .lock()
            .expect("ids lock")
            .iter()
            .position(|i| i.as_deref() == Some(id))
    }

    fn container_count(&self) -> usize {
        self.core.def().container_definitions.len()
    }
}

impl RuntimeTask for Task {
    fn core(&self) -> &TaskCore {
        &self.core
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

// === impl DockerRuntime ===

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
        let (stop_requests, stop_rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            docker,
            config,
            tasks: TaskTable::new(),
            shutdown: CancellationToken::new(),
            stop_requests,
            awsvpc_id: Mutex::new(None),
        });
        tokio::spawn(inner.clone().stopper(stop_rx));
        inner.adopt().await?;
        tokio::spawn(inner.clone().follow_events());
        tokio::spawn(inner.clone().resync_loop());
        Ok(Arc::new(DockerRuntime {
            _shutdown_on_drop: inner.shutdown.clone().drop_guard(),
            inner,
        }))
    }

    /// The engine client (to build images, for example).
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }
}
