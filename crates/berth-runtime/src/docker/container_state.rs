//! One container's [`ContainerState`] from the engine's inspect output, as a pure
//! function: status, exit code and ECS-worded reason, health, network bindings and the
//! task IP. It does not ask the engine; the caller inspects.

use berth_model::ecs::{
    ContainerDefinition, HealthStatus, NetworkBinding, NetworkMode, TaskDefinition,
};
use bollard::models::{ContainerInspectResponse, HealthStatusEnum};

use super::OOM_REASON;
use crate::task_env::protocol_name;
use crate::{ContainerState, ContainerStatus, TaskState};

/// What the engine's timestamps hold for "never".
const ZERO_TIME_PREFIX: &str = "0001-";

/// What the state of container `idx` of `td` becomes given `info`. `previous` is the
/// task's state before (a stopped container has lost its ports and IP: the last known
/// ones stay); `stop_sent` says whether berth asked the container to stop; awsvpc tasks
/// get their IP on `awsvpc_network`.
pub(crate) fn container_state(
    td: &TaskDefinition,
    idx: usize,
    info: &ContainerInspectResponse,
    previous: &TaskState,
    stop_sent: bool,
    awsvpc_network: &str,
) -> ContainerState {
    let def = &td.container_definitions[idx];
    let st = info.state.clone().unwrap_or_default();
    let happened = |t: Option<&str>| t.is_some_and(|s| !s.starts_with(ZERO_TIME_PREFIX));
    let status = if st.running.unwrap_or(false) {
        ContainerStatus::Running
    } else if happened(st.started_at.as_deref()) || happened(st.finished_at.as_deref()) {
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
    } else if stop_sent {
        Some(match exit_code {
            Some(137) => "stopped by berth: SIGKILL after stopTimeout".to_string(),
            Some(c) => format!("stopped by berth: exited with code {c} after SIGTERM"),
            None => "stopped by berth".to_string(),
        })
    } else {
        Some(format!("exited with code {}", exit_code.unwrap_or(-1)))
    };
    let health = health_from(st.health.as_ref().and_then(|h| h.status.as_ref()));
    let (network_bindings, private_ip) = bindings(td, def, info, previous, idx, awsvpc_network);
    ContainerState {
        name: def.name.clone(),
        runtime_id: info.id.clone(),
        status,
        exit_code,
        reason,
        health,
        network_bindings,
        private_ip,
        essential: def.essential,
    }
}

fn health_from(h: Option<&HealthStatusEnum>) -> HealthStatus {
    match h {
        Some(HealthStatusEnum::HEALTHY) => HealthStatus::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => HealthStatus::Unhealthy,
        _ => HealthStatus::Unknown,
    }
}

fn binding(bind_ip: String, pm: &berth_model::ecs::PortMapping, host_port: u32) -> NetworkBinding {
    NetworkBinding {
        bind_ip,
        container_port: pm.container_port,
        host_port,
        protocol: pm.protocol,
    }
}

fn bindings(
    td: &TaskDefinition,
    def: &ContainerDefinition,
    info: &ContainerInspectResponse,
    previous: &TaskState,
    idx: usize,
    awsvpc_network: &str,
) -> (Vec<NetworkBinding>, Option<String>) {
    let ns = info.network_settings.as_ref();
    let prev = &previous.containers[idx];
    match td.network_mode {
        NetworkMode::None => (Vec::new(), None),
        NetworkMode::Host => (
            def.port_mappings
                .iter()
                .map(|pm| binding("0.0.0.0".into(), pm, pm.container_port))
                .collect(),
            None,
        ),
        NetworkMode::Awsvpc => {
            let ip = ns
                .and_then(|n| n.networks.as_ref())
                .and_then(|m| m.get(awsvpc_network))
                .and_then(|e| e.ip_address.clone())
                .filter(|ip| !ip.is_empty())
                .or_else(|| prev.private_ip.clone())
                // Containers sharing the first one's namespace: its IP.
                .or_else(|| {
                    previous
                        .containers
                        .iter()
                        .find_map(|c| c.private_ip.clone())
                });
            let bindings = match &ip {
                Some(ip) => def
                    .port_mappings
                    .iter()
                    .map(|pm| binding(ip.clone(), pm, pm.container_port))
                    .collect(),
                None => Vec::new(),
            };
            (bindings, ip)
        }
        NetworkMode::Bridge => {
            let ports = ns.and_then(|n| n.ports.as_ref());
            let mut out = Vec::new();
            for pm in &def.port_mappings {
                let key = format!("{}/{}", pm.container_port, protocol_name(pm.protocol));
                let host = ports
                    .and_then(|p| p.get(&key))
                    .and_then(|b| b.as_ref())
                    .and_then(|b| {
                        b.iter()
                            .find_map(|b| b.host_port.as_ref()?.parse::<u32>().ok())
                    });
                match host {
                    Some(h) => out.push(binding("0.0.0.0".into(), pm, h)),
                    // A stopped container has no ports any more: keep the last known.
                    None => out.extend(
                        prev.network_bindings
                            .iter()
                            .find(|b| {
                                b.container_port == pm.container_port && b.protocol == pm.protocol
                            })
                            .cloned(),
                    ),
                }
            }
            (out, None)
        }
    }
}

#[cfg(test)]
#[path = "container_state_tests.rs"]
mod tests;
