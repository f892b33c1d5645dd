//! Inspect output as data: no engine needed.

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
