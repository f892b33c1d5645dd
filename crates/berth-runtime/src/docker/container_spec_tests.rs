//! The create request as data: no engine needed.

use serde_json::json;

use super::*;
use crate::test_support::{task_definition, task_spec};

const NODE: NodeContext<'static> = NodeContext {
    instance: Some("i-1"),
    name_prefix: "berth-",
    awsvpc_network: "net-id",
    netns_owner: None,
    dns_server: None,
};

fn spec(td: serde_json::Value) -> TaskSpec {
    task_spec("abc", task_definition(td))
}

fn web(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "name": "web", "image": "berth-whoami:test",
        "entryPoint": ["berth-whoami"], "command": ["--listen", "0.0.0.0:8080"],
        "portMappings": [{"containerPort": 8080, "name": "http"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn body(spec: &TaskSpec, node: &NodeContext<'_>) -> ContainerCreateBody {
    container_create_body(spec, 0, node).unwrap()
}

fn host(b: &ContainerCreateBody) -> &HostConfig {
    b.host_config.as_ref().unwrap()
}

#[test]
fn bridge_mode_publishes_each_mapping_with_static_or_dynamic_host_ports() {
    let s = spec(json!([web(json!({"portMappings": [
        {"containerPort": 8080},
        {"containerPort": 53, "hostPort": 5353, "protocol": "udp"},
    ]}))]));
    let b = body(&s, &NODE);
    assert_eq!(b.image.as_deref(), Some("berth-whoami:test"));
    assert_eq!(b.entrypoint, Some(vec!["berth-whoami".to_string()]));
    assert_eq!(
        b.cmd,
        Some(vec!["--listen".to_string(), "0.0.0.0:8080".to_string()])
    );
    let h = host(&b);
    assert_eq!(h.network_mode.as_deref(), Some("bridge"));
    let ports = h.port_bindings.as_ref().unwrap();
    let published = |key: &str| {
        ports[key].as_ref().unwrap()[0]
            .host_port
            .clone()
            .unwrap_or_default()
    };
    assert_eq!(published("8080/tcp"), "", "dynamic: the engine chooses");
    assert_eq!(published("53/udp"), "5353");
    let exposed = b.exposed_ports.as_ref().unwrap();
    assert!(exposed.contains_key("8080/tcp") && exposed.contains_key("53/udp"));
    assert!(b.networking_config.is_none());
}

#[test]
fn environment_is_the_shared_task_environment_with_container_ports() {
    let s = spec(json!([web(
        json!({"environment": [{"name": "MODE", "value": "x"}]})
    )]));
    let env = body(&s, &NODE).env.unwrap();
    for want in [
        "MODE=x".to_string(),
        format!("BERTH_TASK_ARN={}", s.task_arn),
        "BERTH_TASK_ID=abc".into(),
        "BERTH_CLUSTER=default".into(),
        "BERTH_CONTAINER_NAME=web".into(),
        "PORT=8080".into(),
        "PORT_HTTP=8080".into(),
    ] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
}

#[test]
fn labels_carry_ownership_and_a_spec_that_reads_back() {
    let s = spec(json!([web(
        json!({"dockerLabels": {"team": "a", "berth.cluster": "spoof"}})
    )]));
    let labels = body(&s, &NODE).labels.unwrap();
    assert_eq!(labels["team"], "a");
    assert_eq!(labels[LABEL_CLUSTER], "default", "berth's labels win");
    assert_eq!(labels[LABEL_MANAGED], "true");
    assert_eq!(labels[LABEL_INSTANCE], "i-1");
    assert_eq!(labels[LABEL_TASK_ARN], s.task_arn);
    assert_eq!(labels[LABEL_TASK_DEFINITION], "f:3");
    assert_eq!(labels[LABEL_CONTAINER], "web");
    let back: TaskSpec = serde_json::from_str::<SpecLabel>(&labels[LABEL_SPEC])
        .unwrap()
        .into();
    assert_eq!(back.task_arn, s.task_arn);
    assert_eq!(back.task_definition, s.task_definition);

    let anonymous = NodeContext {
        instance: None,
        ..NODE
    };
    assert!(!body(&s, &anonymous)
        .labels
        .unwrap()
        .contains_key(LABEL_INSTANCE));
}

#[test]
fn limits_follow_container_then_task_sizes() {
    let s = spec(json!({
        "cpu": "512", "memory": "1 GB",
        "containerDefinitions": [
            web(json!({"cpu": 1, "memoryReservation": 64,
                       "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}]})),
            web(json!({"name": "side", "memory": 128})),
        ],
    }));
    let b = body(&s, &NODE);
    let h = host(&b);
    assert_eq!(h.cpu_shares, Some(2), "Docker's minimum share");
    assert_eq!(h.cpu_period, Some(100_000));
    assert_eq!(h.cpu_quota, Some(50_000), "half a core");
    assert_eq!(h.memory, Some(1024 * 1024 * 1024), "the task's memory");
    assert_eq!(h.memory_swap, h.memory, "no swap");
    assert_eq!(h.memory_reservation, Some(64 * 1024 * 1024));
    let ulimit = &h.ulimits.as_ref().unwrap()[0];
    assert_eq!(
        (ulimit.name.as_deref(), ulimit.soft, ulimit.hard),
        (Some("nofile"), Some(1024), Some(2048))
    );
    let side = container_create_body(&s, 1, &NODE).unwrap();
    assert_eq!(host(&side).memory, Some(128 * 1024 * 1024));
    assert_eq!(host(&side).cpu_shares, None);
}

#[test]
fn health_check_and_stop_timeout_in_engine_units() {
    let s = spec(json!([web(json!({
        "stopTimeout": 7,
        "healthCheck": {"command": ["CMD", "true"], "interval": 5, "timeout": 2,
                        "retries": 4, "startPeriod": 10},
    }))]));
    let b = body(&s, &NODE);
    let hc = b.healthcheck.unwrap();
    assert_eq!(hc.test, Some(vec!["CMD".to_string(), "true".to_string()]));
    assert_eq!(hc.interval, Some(5_000_000_000));
    assert_eq!(hc.timeout, Some(2_000_000_000));
    assert_eq!(hc.retries, Some(4));
    assert_eq!(hc.start_period, Some(10_000_000_000));
    assert_eq!(b.stop_timeout, Some(7));
}

#[test]
fn awsvpc_first_container_joins_the_network_and_the_rest_its_namespace() {
    let s = spec(json!({"networkMode": "awsvpc", "containerDefinitions": [web(json!({}))]}));
    let first = body(&s, &NODE);
    assert_eq!(host(&first).network_mode.as_deref(), Some("net-id"));
    let endpoints = first.networking_config.unwrap().endpoints_config.unwrap();
    assert!(endpoints.contains_key("net-id"));
    assert!(first.exposed_ports.is_none());

    let joined = NodeContext {
        netns_owner: Some("c0ffee"),
        ..NODE
    };
    let second = body(&s, &joined);
    assert_eq!(
        host(&second).network_mode.as_deref(),
        Some("container:c0ffee")
    );
    assert!(second.networking_config.is_none());
}

#[test]
fn host_and_none_modes() {
    let s = spec(json!({"networkMode": "host", "containerDefinitions": [
        web(json!({"portMappings": [{"containerPort": 8080, "hostPort": 8080}]}))
    ]}));
    let b = body(&s, &NODE);
    assert_eq!(host(&b).network_mode.as_deref(), Some("host"));
    assert!(host(&b).port_bindings.is_none());

    let s = spec(json!({"networkMode": "none", "containerDefinitions": [web(json!({}))]}));
    assert_eq!(host(&body(&s, &NODE)).network_mode.as_deref(), Some("none"));
}

#[test]
fn what_docker_would_run_differently_is_refused() {
    let s = spec(json!({"networkMode": "host", "containerDefinitions": [
        web(json!({"portMappings": [{"containerPort": 8080, "hostPort": 9090}]}))
    ]}));
    let err = container_create_body(&s, 0, &NODE).unwrap_err();
    assert_eq!(
        err,
        ContainerSpecError::HostPortNotContainerPort {
            container: "web".into(),
            host_port: 9090,
            container_port: 8080,
        }
    );
    assert!(err.to_string().contains("must equal containerPort"));

    let s = spec(json!([web(json!({"memory": 4}))]));
    let err = container_create_body(&s, 0, &NODE).unwrap_err();
    assert!(err.to_string().contains("memory 4 MiB"), "{err}");
    assert!(matches!(
        RuntimeError::from(err),
        RuntimeError::StartFailed(m) if m.contains("below Docker's minimum")
    ));

    let s = spec(json!({"cpu": "lots", "containerDefinitions": [web(json!({}))]}));
    assert!(matches!(
        container_create_body(&s, 0, &NODE),
        Err(ContainerSpecError::TaskSize(ValidationError { field, .. })) if field == "cpu"
    ));
}

#[test]
fn container_names_are_prefix_task_id_and_container() {
    let s = spec(json!([web(json!({}))]));
    assert_eq!(container_name("berth-", &s, 0), "berth-abc-web");
}

#[test]
fn container_host_settings_reach_the_engine_as_ecs_passes_them() {
    let s = spec(
        json!({"pidMode": "host", "ipcMode": "none", "containerDefinitions": [web(json!({
            "user": "1000:1000",
            "workingDirectory": "/srv",
            "hostname": "web-1",
            "readonlyRootFilesystem": true,
            "privileged": true,
            "interactive": true,
            "pseudoTerminal": true,
            "disableNetworking": true,
            "dnsServers": ["10.0.0.2"],
            "dnsSearchDomains": ["svc.local"],
            "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.9"}],
            "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
            "dockerSecurityOptions": ["no-new-privileges"],
        }))]}),
    );
    let b = body(&s, &NODE);
    assert_eq!(b.user.as_deref(), Some("1000:1000"));
    assert_eq!(b.working_dir.as_deref(), Some("/srv"));
    assert_eq!(b.hostname.as_deref(), Some("web-1"));
    assert_eq!(b.open_stdin, Some(true));
    assert_eq!(b.tty, Some(true));
    assert_eq!(b.network_disabled, Some(true));
    let h = host(&b);
    assert_eq!(h.readonly_rootfs, Some(true));
    assert_eq!(h.privileged, Some(true));
    assert_eq!(h.dns, Some(vec!["10.0.0.2".to_string()]));
    assert_eq!(h.dns_search, Some(vec!["svc.local".to_string()]));
    assert_eq!(h.extra_hosts, Some(vec!["db:10.0.0.9".to_string()]));
    assert_eq!(h.sysctls.as_ref().unwrap()["net.core.somaxconn"], "1024");
    assert_eq!(h.security_opt, Some(vec!["no-new-privileges".to_string()]));
    assert_eq!(h.pid_mode.as_deref(), Some("host"));
    assert_eq!(h.ipc_mode.as_deref(), Some("none"));
}

#[test]
fn linux_parameters_reach_the_engine() {
    let s = spec(json!([web(json!({
        "memory": 256,
        "linuxParameters": {
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
            "initProcessEnabled": true,
            "sharedMemorySize": 64,
            "tmpfs": [{"containerPath": "/scratch", "size": 32, "mountOptions": ["noexec"]}],
            "devices": [
                {"hostPath": "/dev/fuse"},
                {"hostPath": "/dev/null", "containerPath": "/dev/nothing", "permissions": ["read", "mknod"]},
            ],
            "maxSwap": 128,
            "swappiness": 10,
        },
    }))]));
    let b = body(&s, &NODE);
    let h = host(&b);
    assert_eq!(h.cap_add, Some(vec!["NET_ADMIN".to_string()]));
    assert_eq!(h.cap_drop, Some(vec!["MKNOD".to_string()]));
    assert_eq!(h.init, Some(true));
    assert_eq!(h.shm_size, Some(64 * 1024 * 1024));
    assert_eq!(h.tmpfs.as_ref().unwrap()["/scratch"], "size=32m,noexec");
    let devices = h.devices.as_ref().unwrap();
    assert_eq!(devices[0].path_on_host.as_deref(), Some("/dev/fuse"));
    assert_eq!(devices[0].path_in_container.as_deref(), Some("/dev/fuse"));
    assert_eq!(devices[0].cgroup_permissions.as_deref(), Some("rwm"));
    assert_eq!(
        devices[1].path_in_container.as_deref(),
        Some("/dev/nothing")
    );
    assert_eq!(devices[1].cgroup_permissions.as_deref(), Some("rm"));
    assert_eq!(h.memory, Some(256 * 1024 * 1024));
    assert_eq!(
        h.memory_swap,
        Some((256 + 128) * 1024 * 1024),
        "memory plus maxSwap"
    );
    assert_eq!(h.memory_swappiness, Some(10));
}

#[test]
fn task_pid_and_ipc_modes_share_the_first_containers_namespaces() {
    let s = spec(
        json!({"pidMode": "task", "ipcMode": "task", "containerDefinitions": [
            web(json!({})), web(json!({"name": "side"})),
        ]}),
    );
    let first = body(&s, &NODE);
    assert_eq!(
        host(&first).pid_mode,
        None,
        "the owner has its own namespace"
    );
    assert_eq!(host(&first).ipc_mode.as_deref(), Some("shareable"));
    let joined = NodeContext {
        netns_owner: Some("c0ffee"),
        ..NODE
    };
    let side = container_create_body(&s, 1, &joined).unwrap();
    assert_eq!(host(&side).pid_mode.as_deref(), Some("container:c0ffee"));
    assert_eq!(host(&side).ipc_mode.as_deref(), Some("container:c0ffee"));
    assert_eq!(
        host(&side).network_mode.as_deref(),
        Some("bridge"),
        "bridge stays bridge"
    );
}

#[test]
fn unset_members_leave_the_engine_defaults() {
    let s = spec(json!({"containerDefinitions": [web(json!({}))]}));
    let b = body(&s, &NODE);
    assert_eq!(
        (b.hostname.as_ref(), b.tty, b.open_stdin, b.network_disabled),
        (None, None, None, None)
    );
    let h = host(&b);
    assert_eq!(
        (h.privileged, h.readonly_rootfs, h.init),
        (None, None, None)
    );
    assert!(h.cap_add.is_none() && h.dns.is_none() && h.extra_hosts.is_none());
    assert!(h.sysctls.is_none() && h.tmpfs.is_none() && h.devices.is_none());
    assert_eq!((h.pid_mode.as_ref(), h.ipc_mode.as_ref()), (None, None));
}

/// A task with one volume of each kind, `web` mounting them and `side` taking `web`'s.
fn volumes_task() -> TaskSpec {
    spec(json!({
        "volumes": [
            {"name": "logs", "host": {"sourcePath": "/srv/logs"}},
            {"name": "cache", "dockerVolumeConfiguration": {"scope": "task"}},
            {"name": "shared", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true}},
            {"name": "scratch"},
        ],
        "containerDefinitions": [
            web(json!({"mountPoints": [
                {"sourceVolume": "logs", "containerPath": "/var/log/app"},
                {"sourceVolume": "cache", "containerPath": "/cache", "readOnly": false},
                {"sourceVolume": "shared", "containerPath": "/shared", "readOnly": true},
                {"sourceVolume": "scratch", "containerPath": "/tmp/scratch"},
            ]})),
            {"name": "side", "image": "berth-whoami:test", "volumesFrom": [
                {"sourceContainer": "web", "readOnly": true},
            ]},
            {"name": "peer", "image": "berth-whoami:test", "volumesFrom": [
                {"sourceContainer": "web"},
            ]},
        ],
    }))
}

#[test]
fn mount_points_bind_host_paths_and_docker_volumes_read_only_when_asked() {
    let s = volumes_task();
    let b = body(&s, &NODE);
    let h = host(&b);
    assert_eq!(
        h.binds.as_deref().unwrap(),
        [
            "/srv/logs:/var/log/app".to_string(),
            "berth-abc-cache:/cache".into(),
            "shared:/shared:ro".into(),
            "berth-abc-scratch:/tmp/scratch".into(),
        ],
        "host path as is; task-scoped volumes named for the task; shared ones as named"
    );
    assert!(h.volumes_from.is_none());
}

#[test]
fn volumes_from_names_the_source_containers_engine_name() {
    let s = volumes_task();
    let side = container_create_body(&s, 1, &NODE).unwrap();
    let h = host(&side);
    assert_eq!(
        h.volumes_from.as_deref().unwrap(),
        ["berth-abc-web:ro".to_string()]
    );
    assert!(h.binds.is_none(), "side has no mount points of its own");
    let peer = container_create_body(&s, 2, &NODE).unwrap();
    assert_eq!(
        host(&peer).volumes_from.as_deref().unwrap(),
        ["berth-abc-web".to_string()],
        "read-write unless readOnly"
    );
}

#[test]
fn a_container_without_mount_points_binds_nothing() {
    let s = spec(json!([web(json!({}))]));
    let b = body(&s, &NODE);
    assert!(host(&b).binds.is_none());
    assert!(host(&b).volumes_from.is_none());
}

#[test]
fn log_configuration_becomes_the_containers_docker_log_config() {
    let s = spec(json!([web(json!({"logConfiguration":
        {"logDriver": "syslog", "options": {"syslog-address": "udp://127.0.0.1:514"}}}))]));
    let lc = host(&body(&s, &NODE)).log_config.clone().unwrap();
    assert_eq!(lc.typ.as_deref(), Some("syslog"));
    assert_eq!(
        lc.config.unwrap().get("syslog-address").map(String::as_str),
        Some("udp://127.0.0.1:514")
    );
    let s = spec(json!([web(json!({"logConfiguration":
        {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}}}))]));
    let b = body(&s, &NODE);
    let lc = host(&b).log_config.clone().unwrap();
    assert_eq!(lc.typ.as_deref(), Some("json-file"));
    // Without a stream prefix ECS names the stream after the container id: no label.
    assert!(!b.labels.unwrap().contains_key(LABEL_AWSLOGS_STREAM));
    let s = spec(json!([web(json!({"logConfiguration":
        {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web", "awslogs-stream-prefix": "ecs"}}}))]));
    let labels = body(&s, &NODE).labels.unwrap();
    assert_eq!(
        labels[LABEL_AWSLOGS_STREAM],
        format!("ecs/web/{}", s.task_id())
    );
    assert_eq!(
        host(&body(&spec(json!([web(json!({}))])), &NODE)).log_config,
        None
    );
}

#[test]
fn the_nodes_dns_server_resolves_for_containers_with_a_network_of_their_own() {
    let with_dns = NodeContext {
        dns_server: Some("172.17.0.1:53".parse().unwrap()),
        ..NODE
    };
    let td = |mode: &str, dns: serde_json::Value| {
        spec(json!({
            "networkMode": mode,
            "containerDefinitions": [web(json!({"dnsServers": dns}))],
        }))
    };
    let bridge = body(&td("bridge", json!([])), &with_dns);
    assert_eq!(host(&bridge).dns, Some(vec!["172.17.0.1".to_string()]));
    assert!(bridge
        .env
        .as_ref()
        .unwrap()
        .contains(&"BERTH_DNS_SERVER=172.17.0.1:53".to_string()));
    let own = body(&td("bridge", json!(["10.0.0.2"])), &with_dns);
    assert_eq!(host(&own).dns, Some(vec!["10.0.0.2".to_string()]));
    assert_eq!(host(&body(&td("host", json!([])), &with_dns)).dns, None);
    let joined = NodeContext {
        netns_owner: Some("c0ffee"),
        ..with_dns
    };
    assert_eq!(host(&body(&td("awsvpc", json!([])), &joined)).dns, None);
    assert_eq!(
        host(&body(&td("awsvpc", json!([])), &with_dns)).dns,
        Some(vec!["172.17.0.1".to_string()])
    );
    let other_port = NodeContext {
        dns_server: Some("127.0.0.1:5353".parse().unwrap()),
        ..NODE
    };
    assert_eq!(host(&body(&td("bridge", json!([])), &other_port)).dns, None);
    assert_eq!(host(&body(&td("bridge", json!([])), &NODE)).dns, None);
}

#[test]
fn links_become_docker_links_to_the_linked_containers_engine_names() {
    let s = spec(json!([
        web(json!({"links": ["db:database", "cache"]})),
        {"name": "db", "image": "berth-whoami:test"},
        {"name": "cache", "image": "berth-whoami:test"}
    ]));
    assert_eq!(
        host(&body(&s, &NODE)).links.as_deref().unwrap(),
        [
            "berth-abc-db:database".to_string(),
            "berth-abc-cache:cache".to_string()
        ]
    );
    let db = container_create_body(&s, 1, &NODE).unwrap();
    assert!(host(&db).links.is_none(), "db links nothing");
}
