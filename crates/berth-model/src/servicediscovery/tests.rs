//! Namespaces, discovery service ARNs, DNS names and the claims between services.

use super::*;
use crate::stack::Stack;

const STACK: &str = r#"
namespaces:
  - name: internal
taskDefinitions:
  - family: backend
    containerDefinitions:
      - name: app
        image: whoami
        portMappings:
          - {containerPort: 8080, name: http, appProtocol: http}
          - {containerPort: 9000, name: raw}
  - family: frontend
    containerDefinitions:
      - name: app
        image: whoami
        portMappings: [{containerPort: 8080, name: http, appProtocol: http}]
services:
  - serviceName: backend
    taskDefinition: backend
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          discoveryName: backend
          clientAliases: [{port: 80, dnsName: backend}]
  - serviceName: frontend
    taskDefinition: frontend
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          clientAliases: [{port: 80}]
"#;

fn check(yaml: &str) -> Result<()> {
    Stack::from_yaml(yaml).unwrap().validate()
}

#[test]
fn the_mesh_stack_validates() {
    check(STACK).unwrap();
    let s = Stack::from_yaml(STACK).unwrap();
    assert_eq!(s.namespaces[0].dns_ttl_seconds, DEFAULT_DNS_TTL_SECONDS);
}

#[test]
fn namespace_names_are_lowercase_dns_names() {
    for (bad, field) in [
        ("Internal", "namespaces[0].name"),
        ("a..b", "namespaces[0].name"),
        ("-a", "namespaces[0].name"),
        ("a_b", "namespaces[0].name"),
    ] {
        let e =
            check(&STACK.replace("  - name: internal", &format!("  - name: {bad}"))).unwrap_err();
        assert_eq!(e.field, field, "{bad}: {e}");
    }
    check(&STACK.replace(
        "  - name: internal",
        "  - name: corp.internal\n  - name: internal",
    ))
    .unwrap();
    let e = check(&STACK.replace(
        "  - name: internal",
        "  - name: internal\n  - name: internal",
    ))
    .unwrap_err();
    assert_eq!(e.field, "namespaces[1].name");
}

#[test]
fn arns_round_trip() {
    assert_eq!(
        namespace_arn("internal"),
        "arn:berth:servicediscovery:local:000000000000:namespace/internal"
    );
    let a = discovery_service_arn("corp.internal", "orders");
    assert_eq!(
        a,
        "arn:berth:servicediscovery:local:000000000000:service/corp.internal/orders"
    );
    assert_eq!(
        parse_discovery_service_arn(&a),
        Some(("corp.internal", "orders"))
    );
    assert_eq!(
        parse_discovery_service_arn("arn:aws:servicediscovery:::service/s"),
        None
    );
    assert_eq!(
        parse_discovery_service_arn("arn:berth:servicediscovery:local:0:service/onlyone"),
        None
    );
}

#[test]
fn a_port_name_must_be_a_port_mapping_of_the_task_definition() {
    let bad = STACK.replace(
        "        - portName: http\n          discoveryName",
        "        - portName: grpc\n          discoveryName",
    );
    let e = check(&bad).unwrap_err();
    assert_eq!(
        e.field,
        "services[0].serviceConnectConfiguration.services[0].portName"
    );
    assert!(e.message.contains("http, raw"), "{e}");
}

#[test]
fn a_per_request_timeout_is_refused_on_a_tcp_port() {
    let bad = STACK.replace(
        "        - portName: http\n          discoveryName: backend\n          clientAliases: [{port: 80, dnsName: backend}]",
        "        - portName: raw\n          discoveryName: backend\n          timeout: {perRequestTimeoutSeconds: 5}",
    );
    let e = check(&bad).unwrap_err();
    assert_eq!(
        e.field,
        "services[0].serviceConnectConfiguration.services[0].timeout.perRequestTimeoutSeconds"
    );
    // The idle timeout is fine on TCP.
    check(&bad.replace("perRequestTimeoutSeconds: 5", "idleTimeoutSeconds: 5")).unwrap();
}

#[test]
fn a_client_alias_claimed_twice_names_both_services() {
    let bad = STACK.replace(
        "clientAliases: [{port: 80}]",
        "clientAliases: [{port: 80, dnsName: Backend}]",
    );
    let e = check(&bad).unwrap_err();
    assert_eq!(
        e.field,
        "services[1].serviceConnectConfiguration.services[0].clientAliases[0]"
    );
    assert!(
        e.message.contains("service default/backend")
            && e.message.contains("service default/frontend"),
        "{e}"
    );
    // The same name on another port is another alias.
    check(&STACK.replace(
        "clientAliases: [{port: 80}]",
        "clientAliases: [{port: 81, dnsName: backend}]",
    ))
    .unwrap();
}

#[test]
fn a_tcp_alias_port_is_not_shared() {
    let bad = STACK.replace(
        "        - portName: http\n          discoveryName: backend",
        "        - portName: raw\n          discoveryName: backend",
    );
    let e = check(&bad).unwrap_err();
    assert_eq!(
        e.field,
        "services[1].serviceConnectConfiguration.services[0].clientAliases[0]"
    );
    assert!(e.message.contains("TCP"), "{e}");
}

#[test]
fn a_discovery_name_is_used_once_per_namespace() {
    let bad = STACK.replace(
        "          discoveryName: backend\n",
        "          discoveryName: http\n",
    );
    let e = check(&bad).unwrap_err();
    assert_eq!(
        e.field,
        "services[1].serviceConnectConfiguration.services[0].discoveryName"
    );
    // A service registry's name counts too.
    let bad = STACK.replace(
        "  - serviceName: frontend\n    taskDefinition: frontend\n    serviceConnectConfiguration:\n      enabled: true\n      namespace: internal\n      services:\n        - portName: http\n          clientAliases: [{port: 80}]\n",
        "  - serviceName: frontend\n    taskDefinition: frontend\n    serviceRegistries: [{registryArn: \"arn:berth:servicediscovery:local:000000000000:service/internal/backend\", containerName: app, containerPort: 8080}]\n",
    );
    let e = check(&bad).unwrap_err();
    assert_eq!(e.field, "services[1].serviceRegistries[0].registryArn");
}

#[test]
fn a_registry_in_bridge_mode_names_its_container_and_port() {
    let with = |reg: &str| {
        STACK.replace(
            "  - serviceName: frontend\n    taskDefinition: frontend\n    serviceConnectConfiguration:\n      enabled: true\n      namespace: internal\n      services:\n        - portName: http\n          clientAliases: [{port: 80}]\n",
            &format!("  - serviceName: frontend\n    taskDefinition: frontend\n    serviceRegistries: [{reg}]\n"),
        )
    };
    let arn = "registryArn: \"arn:berth:servicediscovery:local:000000000000:service/internal/web\"";
    check(&with(&format!(
        "{{{arn}, containerName: app, containerPort: 8080}}"
    )))
    .unwrap();
    let e = check(&with(&format!("{{{arn}}}"))).unwrap_err();
    assert_eq!(e.field, "services[1].serviceRegistries[0]");
    let e = check(&with(&format!(
        "{{{arn}, containerName: app, containerPort: 9999}}"
    )))
    .unwrap_err();
    assert_eq!(e.field, "services[1].serviceRegistries[0].containerPort");
    let e = check(&with(
        "{registryArn: \"arn:aws:servicediscovery:::service/s\"}",
    ))
    .unwrap_err();
    assert_eq!(e.field, "services[1].serviceRegistries[0].registryArn");
}
