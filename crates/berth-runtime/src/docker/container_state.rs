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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::task_core::pending_state;
    use crate::test_support::{task_definition, task_spec};

    fn td(mode: &str) -> TaskDefinition {
        task_definition(json!({"networkMode": mode, "containerDefinitions": [
            {"name": "web", "image": "x", "portMappings": [{"containerPort": 8080}]},
            {"name": "side", "image": "x"},
        ]}))
    }

    fn inspect(v: serde_json::Value) -> ContainerInspectResponse {
        serde_json::from_value(v).unwrap()
    }

    fn previous(td: &TaskDefinition) -> TaskState {
        pending_state(&task_spec("t", td.clone()), Vec::new())
    }

    #[test]
    fn running_bridge_container_reports_its_published_port_and_health() {
        let td = td("bridge");
        let info = inspect(json!({
            "Id": "c1",
            "State": {"Running": true, "StartedAt": "2026-01-01T00:00:00Z",
                      "Health": {"Status": "healthy"}},
            "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]}},
        }));
        let c = container_state(&td, 0, &info, &previous(&td), false, "net");
        assert_eq!(c.status, ContainerStatus::Running);
        assert_eq!(c.runtime_id.as_deref(), Some("c1"));
        assert_eq!(c.health, HealthStatus::Healthy);
        assert_eq!(c.reason, None);
        assert_eq!(c.network_bindings.len(), 1);
        assert_eq!(c.network_bindings[0].host_port, 32768);
        assert_eq!(c.network_bindings[0].container_port, 8080);
    }

    #[test]
    fn stopped_containers_keep_their_last_ports_and_get_ecs_reasons() {
        let td = td("bridge");
        let mut prev = previous(&td);
        prev.containers[0].network_bindings = vec![NetworkBinding {
            bind_ip: "0.0.0.0".into(),
            container_port: 8080,
            host_port: 32768,
            protocol: Default::default(),
        }];
        let stopped = |extra: serde_json::Value| {
            let mut state = json!({"Running": false, "StartedAt": "2026-01-01T00:00:00Z",
                                   "FinishedAt": "2026-01-01T00:01:00Z"});
            for (k, v) in extra.as_object().unwrap() {
                state[k] = v.clone();
            }
            inspect(json!({"Id": "c1", "State": state}))
        };
        let oom = container_state(
            &td,
            0,
            &stopped(json!({"OOMKilled": true, "ExitCode": 137})),
            &prev,
            false,
            "net",
        );
        assert_eq!(oom.status, ContainerStatus::Stopped);
        assert_eq!(oom.exit_code, Some(137));
        assert_eq!(oom.reason.as_deref(), Some(OOM_REASON));
        assert_eq!(oom.network_bindings, prev.containers[0].network_bindings);

        let killed = container_state(&td, 0, &stopped(json!({"ExitCode": 137})), &prev, true, "n");
        assert_eq!(
            killed.reason.as_deref(),
            Some("stopped by berth: SIGKILL after stopTimeout")
        );
        let termed = container_state(&td, 0, &stopped(json!({"ExitCode": 0})), &prev, true, "n");
        assert_eq!(
            termed.reason.as_deref(),
            Some("stopped by berth: exited with code 0 after SIGTERM")
        );
        let crashed = container_state(&td, 0, &stopped(json!({"ExitCode": 3})), &prev, false, "n");
        assert_eq!(crashed.reason.as_deref(), Some("exited with code 3"));
    }

    #[test]
    fn created_but_never_started_is_pending() {
        let td = td("bridge");
        let info = inspect(json!({"Id": "c1", "State": {"Running": false,
            "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}}));
        let c = container_state(&td, 0, &info, &previous(&td), false, "net");
        assert_eq!(c.status, ContainerStatus::Pending);
        assert_eq!(c.reason, None);
    }

    #[test]
    fn awsvpc_bindings_use_the_task_ip_which_namespace_sharers_inherit() {
        let td = td("awsvpc");
        let first = inspect(json!({
            "Id": "c1", "State": {"Running": true, "StartedAt": "2026-01-01T00:00:00Z"},
            "NetworkSettings": {"Networks": {"berth-awsvpc": {"IPAddress": "172.18.0.5"}}},
        }));
        let mut prev = previous(&td);
        let c = container_state(&td, 0, &first, &prev, false, "berth-awsvpc");
        assert_eq!(c.private_ip.as_deref(), Some("172.18.0.5"));
        assert_eq!(c.network_bindings[0].bind_ip, "172.18.0.5");
        assert_eq!(c.network_bindings[0].host_port, 8080);
        prev.containers[0] = c;

        let joined = inspect(json!({
            "Id": "c2", "State": {"Running": true, "StartedAt": "2026-01-01T00:00:00Z"},
        }));
        let side = container_state(&td, 1, &joined, &prev, false, "berth-awsvpc");
        assert_eq!(side.private_ip.as_deref(), Some("172.18.0.5"));
    }

    #[test]
    fn host_mode_binds_container_ports_and_none_binds_nothing() {
        let info = inspect(json!({"Id": "c1", "State": {"Running": true}}));
        let host = td("host");
        let c = container_state(&host, 0, &info, &previous(&host), false, "n");
        assert_eq!(c.network_bindings[0].host_port, 8080);
        let none = td("none");
        let c = container_state(&none, 0, &info, &previous(&none), false, "n");
        assert!(c.network_bindings.is_empty());
    }
}
