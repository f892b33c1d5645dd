//! The Docker create-container request of one container of a task, as a pure function of
//! the task spec: image, entry point and command, environment ([`crate::task_env`]),
//! labels (berth's own, an awslogs stream name, and the task's `dockerLabels`), port bindings and network mode,
//! health check, CPU and memory limits, ulimits, stop timeout; and the container
//! definition's host settings ECS passes to Docker: `user`, `workingDirectory`,
//! `hostname`, `readonlyRootFilesystem`, `privileged`, `linuxParameters` (capabilities,
//! init process, tmpfs, `/dev/shm` size, devices, swap), `extraHosts`, `dnsServers`,
//! `dnsSearchDomains`, `systemControls`, `dockerSecurityOptions`, `interactive`,
//! `pseudoTerminal`, `disableNetworking`, and the task's `pidMode` and `ipcMode`;
//! `mountPoints` (as binds of the task's volumes, whose sources are
//! [`super::volumes::task_volumes`]) and `volumesFrom`; `links` in bridge mode (as
//! Docker links to the engine names of the task's other containers).
//!
//! `logConfiguration` becomes `HostConfig.LogConfig` ([`super::log_config`]). Members
//! berth stores without applying are not read here; `berth_model::ecs::field_support`
//! lists them.
//!
//! It talks to no engine: what it needs from one (the awsvpc network, the container whose
//! network namespace to join) comes in a [`NodeContext`]. It refuses, with a
//! [`ContainerSpecError`], what Docker would run differently from ECS.

use std::collections::HashMap;

use berth_model::ecs::log_configuration::awslogs_stream_name;
use berth_model::ecs::{
    ContainerDefinition, DeviceCgroupPermission, IpcMode, NetworkMode, PidMode, TaskDefinition,
};
use berth_model::ValidationError;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig,
    NetworkingConfig, PortBinding, ResourcesUlimits,
};
use serde::{Deserialize, Serialize};

use super::log_config::docker_log_config;

use super::volumes::task_volumes;
use super::{
    LABEL_AWSLOGS_STREAM, LABEL_CLUSTER, LABEL_CONTAINER, LABEL_INSTANCE, LABEL_MANAGED,
    LABEL_SPEC, LABEL_TASK_ARN, LABEL_TASK_DEFINITION,
};
use crate::task_env::{container_environment, protocol_name};
use crate::{RuntimeError, TaskSpec};

/// Docker refuses memory limits below 6 MiB.
pub(crate) const DOCKER_MIN_MEMORY_MIB: u32 = 6;
/// The CFS period a task-level `cpu` quota is expressed in.
const CPU_PERIOD_US: i64 = 100_000;

/// What [`super::LABEL_SPEC`] holds: enough to rebuild the task after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SpecLabel {
    pub(crate) task_arn: String,
    pub(crate) cluster: String,
    pub(crate) task_definition: TaskDefinition,
}

impl From<SpecLabel> for TaskSpec {
    fn from(l: SpecLabel) -> Self {
        TaskSpec {
            task_arn: l.task_arn,
            cluster: l.cluster,
            task_definition: l.task_definition,
            secrets: Vec::new(),
        }
    }
}

/// What a container's request depends on besides the task: the node and the network.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeContext<'a> {
    /// The container instance, labelled as [`super::LABEL_INSTANCE`] when set.
    pub(crate) instance: Option<&'a str>,
    /// The prefix of the engine's names of berth's containers and task-scoped volumes.
    pub(crate) name_prefix: &'a str,
    /// awsvpc mode: the network (ID or name) the task's first container joins.
    pub(crate) awsvpc_network: &'a str,
    /// The task's first container created (in start order), `None` while creating that
    /// one: in awsvpc mode the others join its network namespace, and with `pidMode` or
    /// `ipcMode` `task` its PID or IPC namespace.
    pub(crate) netns_owner: Option<&'a str>,
    /// The node's discovery DNS server (see `DockerRuntimeConfig::dns_server`).
    pub(crate) dns_server: Option<std::net::SocketAddr>,
}

/// A task definition Docker cannot run as ECS would.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ContainerSpecError {
    /// The task-level `cpu` or `memory` does not parse.
    #[error("{0}")]
    TaskSize(#[from] ValidationError),
    #[error(
        "container {container}: memory {mib} MiB is below Docker's minimum of {DOCKER_MIN_MEMORY_MIB} MiB"
    )]
    MemoryBelowDockerMinimum { container: String, mib: u32 },
    #[error(
        "container {container}: in host network mode hostPort ({host_port}) must equal containerPort ({container_port})"
    )]
    HostPortNotContainerPort {
        container: String,
        host_port: u32,
        container_port: u32,
    },
}

impl From<ContainerSpecError> for RuntimeError {
    fn from(e: ContainerSpecError) -> Self {
        RuntimeError::StartFailed(e.to_string())
    }
}

/// The engine's name of container `idx`: `<prefix><task id>-<container name>`.
pub(crate) fn container_name(prefix: &str, spec: &TaskSpec, idx: usize) -> String {
    format!(
        "{prefix}{}-{}",
        spec.task_id(),
        spec.task_definition.container_definitions[idx].name
    )
}

/// The create request of container `idx` of `spec` on `node`.
pub(crate) fn container_create_body(
    spec: &TaskSpec,
    idx: usize,
    node: &NodeContext<'_>,
) -> Result<ContainerCreateBody, ContainerSpecError> {
    let td = &spec.task_definition;
    let def = &td.container_definitions[idx];
    // Inside its container a program listens on the container port.
    let listen_ports: Vec<u32> = def
        .port_mappings
        .iter()
        .map(|pm| pm.container_port)
        .collect();
    let env = container_environment(spec, idx, &listen_ports, node.dns_server)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut host = HostConfig::default();
    limit_resources(&mut host, td, def)?;
    let (exposed, networking) = connect_network(&mut host, td, def, node)?;
    apply_host_settings(&mut host, def);
    use_node_dns(&mut host, td, node);
    mount_volumes(&mut host, spec, idx, node);
    link_containers(&mut host, spec, idx, node);
    share_task_namespaces(&mut host, td, node);
    host.log_config = docker_log_config(def.log_configuration.as_ref());
    Ok(ContainerCreateBody {
        image: Some(def.image.clone()),
        entrypoint: (!def.entry_point.is_empty()).then(|| def.entry_point.clone()),
        cmd: (!def.command.is_empty()).then(|| def.command.clone()),
        env: Some(env),
        working_dir: def.working_directory.clone(),
        user: def.user.clone(),
        labels: Some(labels(spec, idx, node)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: def.health_check.as_ref().map(|hc| HealthConfig {
            test: Some(hc.command.clone()),
            interval: Some(secs_to_ns(hc.interval)),
            timeout: Some(secs_to_ns(hc.timeout)),
            retries: Some(i64::from(hc.retries)),
            start_period: Some(secs_to_ns(hc.start_period)),
            start_interval: None,
        }),
        stop_timeout: Some(i64::from(def.stop_timeout_seconds())),
        hostname: def.hostname.clone(),
        open_stdin: def.interactive,
        tty: def.pseudo_terminal,
        network_disabled: def.disable_networking,
        host_config: Some(host),
        networking_config: networking,
        ..Default::default()
    })
}

/// The container definition's host settings, as the ECS agent passes them to Docker.
/// Makes the node's discovery DNS server the container's resolver, so names such as
/// `orders.internal` resolve inside it, unless the definition names its own
/// `dnsServers`. Docker sets resolvers only for containers with a network of their own
/// (bridge, and the first container of an awsvpc task; the others share its
/// `/etc/resolv.conf`) and only as addresses, so a server on another port than 53 is
/// named in `BERTH_DNS_SERVER` alone.
fn use_node_dns(host: &mut HostConfig, td: &TaskDefinition, node: &NodeContext<'_>) {
    let Some(dns) = node.dns_server.filter(|d| d.port() == 53) else {
        return;
    };
    let own_network = match td.network_mode {
        NetworkMode::Bridge => true,
        NetworkMode::Awsvpc => node.netns_owner.is_none(),
        NetworkMode::Host | NetworkMode::None => false,
    };
    if own_network && host.dns.is_none() {
        host.dns = Some(vec![dns.ip().to_string()]);
    }
}

fn apply_host_settings(host: &mut HostConfig, def: &ContainerDefinition) {
    let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    host.privileged = def.privileged;
    host.readonly_rootfs = def.readonly_root_filesystem;
    host.dns = some_vec(&def.dns_servers);
    host.dns_search = some_vec(&def.dns_search_domains);
    host.security_opt = some_vec(&def.docker_security_options);
    if !def.extra_hosts.is_empty() {
        host.extra_hosts = Some(
            def.extra_hosts
                .iter()
                .map(|h| format!("{}:{}", h.hostname, h.ip_address))
                .collect(),
        );
    }
    if !def.system_controls.is_empty() {
        host.sysctls = Some(
            def.system_controls
                .iter()
                .map(|s| (s.namespace.clone(), s.value.clone()))
                .collect(),
        );
    }
    let Some(lp) = &def.linux_parameters else {
        return;
    };
    if let Some(caps) = &lp.capabilities {
        host.cap_add = some_vec(&caps.add);
        host.cap_drop = some_vec(&caps.drop);
    }
    host.init = lp.init_process_enabled;
    host.shm_size = lp.shared_memory_size.map(mib_to_bytes);
    if !lp.tmpfs.is_empty() {
        host.tmpfs = Some(
            lp.tmpfs
                .iter()
                .map(|t| {
                    let mut options = vec![format!("size={}m", t.size)];
                    options.extend(t.mount_options.iter().cloned());
                    (t.container_path.clone(), options.join(","))
                })
                .collect(),
        );
    }
    if !lp.devices.is_empty() {
        host.devices = Some(
            lp.devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.host_path.clone()),
                    path_in_container: Some(
                        d.container_path
                            .clone()
                            .unwrap_or_else(|| d.host_path.clone()),
                    ),
                    cgroup_permissions: Some(cgroup_permissions(&d.permissions)),
                })
                .collect(),
        );
    }
    if let (Some(swap), Some(memory)) = (lp.max_swap, host.memory) {
        host.memory_swap = Some(memory + mib_to_bytes(swap));
    }
    host.memory_swappiness = lp.swappiness.map(i64::from);
}

/// `mountPoints` as binds `source:containerPath[:ro]`, the source being the volume's host
/// path or Docker volume; `volumesFrom` as the source containers' engine names
/// (`name[:ro]`). Validation guarantees every name refers to something in the task.
fn mount_volumes(host: &mut HostConfig, spec: &TaskSpec, idx: usize, node: &NodeContext<'_>) {
    let td = &spec.task_definition;
    let def = &td.container_definitions[idx];
    let read_only = |ro: Option<bool>| if ro == Some(true) { ":ro" } else { "" };
    if !def.mount_points.is_empty() {
        let volumes = task_volumes(node.name_prefix, spec);
        host.binds = Some(
            def.mount_points
                .iter()
                .filter_map(|m| {
                    let source = m.source_volume.as_deref()?;
                    let path = m.container_path.as_deref()?;
                    let volume = volumes.iter().find(|v| v.name == source)?;
                    Some(format!(
                        "{}:{path}{}",
                        volume.bind_source(),
                        read_only(m.read_only)
                    ))
                })
                .collect(),
        );
    }
    if !def.volumes_from.is_empty() {
        host.volumes_from = Some(
            def.volumes_from
                .iter()
                .filter_map(|v| {
                    let source = v.source_container.as_deref()?;
                    let source_idx = td
                        .container_definitions
                        .iter()
                        .position(|c| c.name == source)?;
                    Some(format!(
                        "{}{}",
                        container_name(node.name_prefix, spec, source_idx),
                        read_only(v.read_only)
                    ))
                })
                .collect(),
        );
    }
}

/// `links` (`name` or `name:alias`) as Docker links `<engine name of name>:<alias>`,
/// which Docker writes into the container's `/etc/hosts`. Only bridge mode has them
/// (validation refuses them elsewhere, as ECS does); every name is a container of the
/// task, which starts first ([`crate::dependencies`] orders links).
fn link_containers(host: &mut HostConfig, spec: &TaskSpec, idx: usize, node: &NodeContext<'_>) {
    let td = &spec.task_definition;
    let def = &td.container_definitions[idx];
    if def.links.is_empty() || td.network_mode != NetworkMode::Bridge {
        return;
    }
    host.links = Some(
        def.links
            .iter()
            .filter_map(|link| {
                let (name, alias) = link.split_once(':').unwrap_or((link, link));
                let target = td
                    .container_definitions
                    .iter()
                    .position(|c| c.name == name)?;
                Some(format!(
                    "{}:{alias}",
                    container_name(node.name_prefix, spec, target)
                ))
            })
            .collect(),
    );
}

/// `pidMode` and `ipcMode`: `host` shares the node's namespace; `task` makes the task's
/// first container the owner of one namespace its other containers join (its IPC
/// namespace must be created `shareable` for that); `ipcMode: none` gives no IPC.
fn share_task_namespaces(host: &mut HostConfig, td: &TaskDefinition, node: &NodeContext<'_>) {
    let join = |owner: &str| format!("container:{owner}");
    host.pid_mode = match (td.pid_mode, node.netns_owner) {
        (Some(PidMode::Host), _) => Some("host".into()),
        (Some(PidMode::Task), Some(owner)) => Some(join(owner)),
        (Some(PidMode::Task), None) | (None, _) => None,
    };
    host.ipc_mode = match (td.ipc_mode, node.netns_owner) {
        (Some(IpcMode::Host), _) => Some("host".into()),
        (Some(IpcMode::None), _) => Some("none".into()),
        (Some(IpcMode::Task), Some(owner)) => Some(join(owner)),
        (Some(IpcMode::Task), None) => Some("shareable".into()),
        (None, _) => None,
    };
}

/// Docker's `rwm` spelling of a device's permissions; all three when none are given.
fn cgroup_permissions(permissions: &[DeviceCgroupPermission]) -> String {
    if permissions.is_empty() {
        return "rwm".into();
    }
    [
        (DeviceCgroupPermission::Read, 'r'),
        (DeviceCgroupPermission::Write, 'w'),
        (DeviceCgroupPermission::Mknod, 'm'),
    ]
    .iter()
    .filter(|(p, _)| permissions.contains(p))
    .map(|(_, c)| *c)
    .collect()
}

fn mib_to_bytes(mib: u32) -> i64 {
    i64::from(mib) * 1024 * 1024
}

fn secs_to_ns(s: u32) -> i64 {
    i64::from(s) * 1_000_000_000
}

/// The task's `dockerLabels`, then berth's labels (which win).
fn labels(spec: &TaskSpec, idx: usize, node: &NodeContext<'_>) -> HashMap<String, String> {
    let td = &spec.task_definition;
    let def = &td.container_definitions[idx];
    let mut labels: HashMap<String, String> = def.docker_labels.clone().into_iter().collect();
    labels.insert(LABEL_MANAGED.into(), "true".into());
    labels.insert(LABEL_CLUSTER.into(), spec.cluster.clone());
    if let Some(instance) = node.instance {
        labels.insert(LABEL_INSTANCE.into(), instance.to_string());
    }
    labels.insert(LABEL_TASK_ARN.into(), spec.task_arn.clone());
    labels.insert(
        LABEL_TASK_DEFINITION.into(),
        format!("{}:{}", td.family, td.revision),
    );
    labels.insert(LABEL_CONTAINER.into(), def.name.clone());
    if let Some(stream) = def
        .log_configuration
        .as_ref()
        .and_then(|lc| awslogs_stream_name(lc, &def.name, spec.task_id()))
    {
        labels.insert(LABEL_AWSLOGS_STREAM.into(), stream);
    }
    labels.insert(
        LABEL_SPEC.into(),
        serde_json::to_string(&SpecLabel {
            task_arn: spec.task_arn.clone(),
            cluster: spec.cluster.clone(),
            task_definition: td.clone(),
        })
        .expect("spec serializes"),
    );
    labels
}

/// `cpu` → CPU shares; task `cpu` → a CPU quota; `memory` (else the task's) → a hard
/// limit without swap; `memoryReservation` → a soft limit; `ulimits`.
fn limit_resources(
    host: &mut HostConfig,
    td: &TaskDefinition,
    def: &ContainerDefinition,
) -> Result<(), ContainerSpecError> {
    if def.cpu > 0 {
        host.cpu_shares = Some(i64::from(def.cpu.max(2)));
    }
    if let Some(units) = td.cpu.as_deref() {
        let units = berth_model::ecs::parse_cpu_units("cpu", units)?;
        host.cpu_period = Some(CPU_PERIOD_US);
        host.cpu_quota = Some(i64::from(units) * CPU_PERIOD_US / 1024);
    }
    let task_memory = td
        .memory
        .as_deref()
        .map(|m| berth_model::ecs::parse_memory_mib("memory", m))
        .transpose()?;
    if let Some(mib) = def.memory.or(task_memory) {
        if mib < DOCKER_MIN_MEMORY_MIB {
            return Err(ContainerSpecError::MemoryBelowDockerMinimum {
                container: def.name.clone(),
                mib,
            });
        }
        let bytes = mib_to_bytes(mib);
        host.memory = Some(bytes);
        host.memory_swap = Some(bytes);
    }
    if let Some(mib) = def.memory_reservation {
        host.memory_reservation = Some(mib_to_bytes(mib));
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
    Ok(())
}

type ExposedPorts = HashMap<String, HashMap<(), ()>>;

/// Sets the network mode (and, in bridge mode, the published ports); returns the exposed
/// ports and the network to connect at create time.
fn connect_network(
    host: &mut HostConfig,
    td: &TaskDefinition,
    def: &ContainerDefinition,
    node: &NodeContext<'_>,
) -> Result<(ExposedPorts, Option<NetworkingConfig>), ContainerSpecError> {
    let mut exposed = HashMap::new();
    let mut networking = None;
    match td.network_mode {
        NetworkMode::None => host.network_mode = Some("none".into()),
        NetworkMode::Host => {
            for pm in &def.port_mappings {
                if let Some(h) = pm.host_port.filter(|h| *h != 0 && *h != pm.container_port) {
                    return Err(ContainerSpecError::HostPortNotContainerPort {
                        container: def.name.clone(),
                        host_port: h,
                        container_port: pm.container_port,
                    });
                }
            }
            host.network_mode = Some("host".into());
        }
        NetworkMode::Awsvpc => match node.netns_owner {
            Some(owner) => host.network_mode = Some(format!("container:{owner}")),
            None => {
                let net = node.awsvpc_network.to_string();
                host.network_mode = Some(net.clone());
                networking = Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(net, EndpointSettings::default())])),
                });
            }
        },
        NetworkMode::Bridge => {
            host.network_mode = Some("bridge".into());
            let mut bindings = HashMap::new();
            for pm in &def.port_mappings {
                let key = format!("{}/{}", pm.container_port, protocol_name(pm.protocol));
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
    Ok((exposed, networking))
}

#[cfg(test)]
#[path = "container_spec_tests.rs"]
mod tests;
