//! Mesh ports, groups and listeners derived from services.

use berth_model::ecs::{Service, TaskDefinition};
use berth_model::stack::Stack;

use super::*;

const STACK: &str = r#"
taskDefinitions:
  - family: backend
    containerDefinitions:
      - name: app
        image: whoami
        portMappings:
          - {containerPort: 8080, name: http, appProtocol: http}
          - {containerPort: 9090, name: grpc, appProtocol: grpc}
          - {containerPort: 9000, name: raw}
services:
  - serviceName: backend
    taskDefinition: backend
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          clientAliases: [{port: 80, dnsName: Backend}]
          timeout: {perRequestTimeoutSeconds: 3, idleTimeoutSeconds: 60}
        - portName: grpc
          discoveryName: backend-grpc
          clientAliases: [{port: 9090}]
        - portName: raw
          discoveryName: raw
          clientAliases: [{port: 9000}]
"#;

fn parts(yaml: &str) -> (Service, TaskDefinition) {
    let s = Stack::from_yaml(yaml).unwrap();
    (s.services[0].clone(), s.task_definitions[0].clone())
}

#[test]
fn each_port_gets_a_group_of_its_protocol_with_a_tcp_check_and_a_short_delay() {
    let (svc, td) = parts(STACK);
    let ports = mesh_ports(&svc, &td);
    assert_eq!(ports.len(), 3);
    let http = &ports[0];
    assert_eq!(http.discovery_name, "http");
    assert_eq!(http.aliases, [(80, "backend".to_string())]);
    assert_eq!(http.fqdn(), "http.internal");
    let g = http.target_group();
    assert_eq!(g.target_group_name, "mesh_internal_http");
    assert_eq!(g.target_group_arn, arn::target_group("mesh_internal_http"));
    assert_eq!(g.protocol, Protocol::Http);
    assert_eq!(g.protocol_version.as_deref(), Some("HTTP1"));
    assert_eq!(g.port, 8080);
    assert_eq!(g.health_check_protocol, Some(Protocol::Tcp));
    assert_eq!(g.health_check_interval_seconds, 5);
    assert_eq!(
        (g.healthy_threshold_count, g.unhealthy_threshold_count),
        (2, 2)
    );
    assert_eq!(g.attributes["deregistration_delay.timeout_seconds"], "5");
    // The data plane validates every group it serves.
    g.validate().unwrap();
    let s = http.settings();
    assert_eq!(s.per_request_timeout_seconds, 3);
    assert_eq!(s.outlier_detection, OutlierDetection::default());

    let grpc = ports[1].target_group();
    assert_eq!(grpc.protocol_version.as_deref(), Some("GRPC"));
    assert_eq!(
        ports[1].aliases,
        [(9090, "backend-grpc.internal".to_string())]
    );
    assert_eq!(
        ports[1].settings().per_request_timeout_seconds,
        DEFAULT_MESH_PER_REQUEST_TIMEOUT_SECONDS
    );
    let raw = &ports[2];
    assert_eq!(raw.target_group().protocol, Protocol::Tcp);
    assert_eq!(raw.target_group().protocol_version, None);
    raw.target_group().validate().unwrap();
    assert_eq!(raw.settings().per_request_timeout_seconds, 0);
    assert_eq!(
        raw.idle_timeout_seconds,
        DEFAULT_MESH_TCP_IDLE_TIMEOUT_SECONDS
    );
}

#[test]
fn a_disabled_configuration_offers_nothing() {
    let (svc, td) = parts(&STACK.replace("enabled: true", "enabled: false"));
    assert!(mesh_ports(&svc, &td).is_empty());
}

#[test]
fn long_names_stay_valid_and_distinct() {
    let a = target_group_name("corp.example.internal", "orders-service-v2");
    let b = target_group_name("corp.example.internal", "orders-service-v3");
    assert!(a.len() <= 32 && b.len() <= 32, "{a} {b}");
    assert_ne!(a, b);
    assert!(a.starts_with(MESH_TARGET_GROUP_PREFIX));
    assert!(is_mesh_target_group(&arn::target_group(&a)));
    assert!(!is_mesh_target_group(&arn::target_group("web")));
    let mut g = leftover_target_group(&arn::target_group(&a));
    g.validate().unwrap();
    g.target_group_name = a;
    assert_eq!(g.protocol, Protocol::Tcp);
}

#[test]
fn listeners_route_every_alias_on_their_port() {
    let (svc, td) = parts(STACK);
    let mut ports = mesh_ports(&svc, &td);
    // A second service with an HTTP alias on port 80.
    let mut other = ports[0].clone();
    other.service = "orders".into();
    other.discovery_name = "orders".into();
    other.aliases = vec![(80, "orders".into())];
    other.idle_timeout_seconds = 600;
    ports.push(other);
    let ls = mesh_listeners(&ports);
    assert_eq!(
        ls.iter().map(|l| l.port).collect::<Vec<_>>(),
        [80, 9000, 9090]
    );
    let l80 = &ls[0];
    assert_eq!(l80.protocol, MeshProtocol::Http);
    assert_eq!(
        l80.routes
            .iter()
            .map(|r| r.dns_name.as_str())
            .collect::<Vec<_>>(),
        ["backend", "orders"]
    );
    assert_eq!(
        l80.routes[0].target_group_arn,
        arn::target_group("mesh_internal_http")
    );
    assert_eq!(l80.idle_timeout_seconds, 600);
    assert_eq!(ls[1].protocol, MeshProtocol::Tcp);
    assert_eq!(ls[1].routes.len(), 1);
    assert_eq!(
        ls[1].idle_timeout_seconds,
        DEFAULT_MESH_TCP_IDLE_TIMEOUT_SECONDS
    );
}
