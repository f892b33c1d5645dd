//! Apply with namespaces and services in the mesh: what is stored, and each refusal
//! writing nothing.

use berth_model::servicediscovery::Namespace;
use berth_model::stack::Stack;

use super::apply;
use crate::data_plane::fake::FakeDataPlane;
use crate::db::{self, Db};

const STACK: &str = r#"
namespaces:
  - name: internal
    dnsTtlSeconds: 10
taskDefinitions:
  - family: backend
    containerDefinitions:
      - name: app
        image: whoami
        portMappings:
          - {containerPort: 8080, name: http, appProtocol: http}
          - {containerPort: 9000, name: raw}
services:
  - serviceName: backend
    taskDefinition: backend
    desiredCount: 1
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          discoveryName: backend
          clientAliases: [{port: 80, dnsName: backend}]
"#;

/// A second service in the same namespace, applied as a stack of its own.
const OTHER: &str = r#"
taskDefinitions:
  - family: other
    containerDefinitions:
      - name: app
        image: whoami
        portMappings:
          - {containerPort: 8080, name: http, appProtocol: http}
          - {containerPort: 9000, name: raw}
services:
  - serviceName: other
    taskDefinition: other
    desiredCount: 1
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          discoveryName: other
          clientAliases: [{port: 80, dnsName: other}]
"#;

async fn db() -> Db {
    crate::test_fixtures::db_with_default_cluster().await
}

async fn run(db: &Db, yaml: &str) -> Result<Vec<super::Change>, crate::ControlError> {
    apply(
        db,
        &FakeDataPlane::default(),
        &Stack::from_yaml(yaml).unwrap(),
        false,
    )
    .await
}

/// Applies `yaml`, expects a refusal naming `field`, and checks nothing was stored.
async fn refused(db: &Db, yaml: &str, field: &str) -> String {
    let rev = db.store.revision().await.unwrap();
    let e = run(db, yaml).await.unwrap_err().to_string();
    assert!(e.contains(field), "{field} not in: {e}");
    assert_eq!(
        db.store.revision().await.unwrap(),
        rev,
        "a refused stack wrote something"
    );
    e
}

#[tokio::test]
async fn namespaces_are_stored_with_their_arn_and_applied_idempotently() {
    let db = db().await;
    let out = run(&db, STACK).await.unwrap();
    assert!(out
        .iter()
        .any(|c| c.kind == "namespace" && c.name == "internal" && c.action == "created"));
    let ns: Namespace = db
        .get(&db::namespace_key("internal"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        ns.arn,
        "arn:berth:servicediscovery:local:000000000000:namespace/internal"
    );
    assert_eq!(ns.dns_ttl_seconds, 10);
    let rev = db.store.revision().await.unwrap();
    let again = run(&db, STACK).await.unwrap();
    assert!(again.iter().all(|c| c.action == "unchanged"), "{again:?}");
    assert_eq!(db.store.revision().await.unwrap(), rev);
    let changed = run(
        &db,
        &STACK.replace("dnsTtlSeconds: 10", "dnsTtlSeconds: 20"),
    )
    .await
    .unwrap();
    assert!(changed
        .iter()
        .any(|c| c.kind == "namespace" && c.action == "updated"));
    // A service in a namespace stored earlier applies without the namespace section.
    run(&db, OTHER).await.unwrap();
}

#[tokio::test]
async fn a_missing_namespace_is_refused() {
    let db = db().await;
    let bad = STACK.replace(
        "  - name: internal\n    dnsTtlSeconds: 10\n",
        "  - name: other\n",
    );
    refused(
        &db,
        &bad,
        "services[0].serviceConnectConfiguration.namespace",
    )
    .await;
}

#[tokio::test]
async fn a_port_name_the_task_definition_lacks_is_refused() {
    let db = db().await;
    let bad = STACK.replace("- portName: http", "- portName: grpc");
    refused(
        &db,
        &bad,
        "services[0].serviceConnectConfiguration.services[0].portName",
    )
    .await;
}

#[tokio::test]
async fn a_per_request_timeout_on_a_tcp_port_is_refused() {
    let db = db().await;
    let bad = STACK.replace(
        "- portName: http\n          discoveryName: backend\n          clientAliases: [{port: 80, dnsName: backend}]",
        "- portName: raw\n          timeout: {perRequestTimeoutSeconds: 3}",
    );
    refused(
        &db,
        &bad,
        "services[0].serviceConnectConfiguration.services[0].timeout.perRequestTimeoutSeconds",
    )
    .await;
}

#[tokio::test]
async fn a_timeout_out_of_range_is_refused() {
    let db = db().await;
    let bad = STACK.replace(
        "clientAliases: [{port: 80, dnsName: backend}]",
        "clientAliases: [{port: 80, dnsName: backend}]\n          timeout: {idleTimeoutSeconds: 3000000000}",
    );
    let stack = Stack::from_yaml(&bad).unwrap();
    let e = stack.validate().unwrap_err();
    assert_eq!(
        e.field,
        "services[0].serviceConnectConfiguration.services[0].timeout.idleTimeoutSeconds"
    );
    refused(&db, &bad, "timeout.idleTimeoutSeconds").await;
}

#[tokio::test]
async fn an_alias_a_stored_service_claims_is_refused_naming_both() {
    let db = db().await;
    run(&db, STACK).await.unwrap();
    let bad = OTHER.replace("dnsName: other", "dnsName: backend");
    let e = refused(
        &db,
        &bad,
        "services[0].serviceConnectConfiguration.services[0].clientAliases[0]",
    )
    .await;
    assert!(
        e.contains("service default/backend") && e.contains("service default/other"),
        "{e}"
    );
    // Re-applying the owner itself is no conflict.
    run(&db, STACK).await.unwrap();
}

#[tokio::test]
async fn a_tcp_alias_may_not_share_its_port() {
    let db = db().await;
    run(&db, STACK).await.unwrap();
    let bad = OTHER.replace("- portName: http", "- portName: raw");
    let e = refused(
        &db,
        &bad,
        "services[0].serviceConnectConfiguration.services[0].clientAliases[0]",
    )
    .await;
    assert!(e.contains("TCP"), "{e}");
}

#[tokio::test]
async fn a_discovery_name_used_twice_in_a_namespace_is_refused() {
    let db = db().await;
    run(&db, STACK).await.unwrap();
    let bad = OTHER.replace("discoveryName: other", "discoveryName: backend");
    refused(
        &db,
        &bad,
        "services[0].serviceConnectConfiguration.services[0].discoveryName",
    )
    .await;
}

#[tokio::test]
async fn a_registry_in_a_missing_namespace_is_refused() {
    let db = db().await;
    let bad = OTHER
        .replace("    serviceConnectConfiguration:\n      enabled: true\n      namespace: internal\n      services:\n        - portName: http\n          discoveryName: other\n          clientAliases: [{port: 80, dnsName: other}]\n",
            "    serviceRegistries: [{registryArn: \"arn:berth:servicediscovery:local:000000000000:service/nowhere/other\", containerName: app, containerPort: 8080}]\n");
    refused(&db, &bad, "services[0].serviceRegistries[0].registryArn").await;
}

#[tokio::test]
async fn a_target_group_named_like_a_mesh_group_is_refused() {
    let db = db().await;
    let bad = format!("{STACK}targetGroups:\n  - targetGroupName: mesh_internal_backend\n");
    refused(&db, &bad, "targetGroups[0].targetGroupName").await;
}

#[tokio::test]
async fn the_mesh_example_applies_and_offers_the_backend_behind_its_alias() {
    let db = db().await;
    let example = include_str!("../../../../configs/mesh.yaml");
    run(&db, example).await.unwrap();
    let ports = crate::proxy_feed::mesh_ports_of(&db).await.unwrap();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].service, "backend");
    assert_eq!(ports[0].aliases, [(9000, "backend".to_string())]);
    assert_eq!(ports[0].per_request_timeout_seconds, 10);
}

/// The Service Connect tutorial's shape: the service names no namespace; its cluster's
/// `serviceConnectDefaults` does.
const CLUSTER_DEFAULT: &str = r#"
clusters:
  - clusterName: tutorial
    serviceConnectDefaults: {namespace: service-connect}
taskDefinitions:
  - family: backend
    containerDefinitions:
      - name: app
        image: whoami
        portMappings:
          - {containerPort: 8080, name: http, appProtocol: http}
services:
  - serviceName: backend
    cluster: tutorial
    taskDefinition: backend
    desiredCount: 1
    serviceConnectConfiguration:
      enabled: true
      services:
        - portName: http
          clientAliases: [{port: 80}]
"#;

#[tokio::test]
async fn a_service_without_a_namespace_takes_its_clusters_default_which_apply_creates() {
    let db = db().await;
    let out = run(&db, CLUSTER_DEFAULT).await.unwrap();
    assert!(out
        .iter()
        .any(|c| c.kind == "namespace" && c.name == "service-connect" && c.action == "created"));
    let s: berth_model::ecs::Service = db
        .get(&db::service_key("tutorial", "backend"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        s.service_connect_configuration
            .unwrap()
            .namespace
            .as_deref(),
        Some("service-connect")
    );
    let c: berth_model::ecs::Cluster = db
        .get(&db::cluster_key("tutorial"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        c.service_connect_defaults.unwrap().namespace,
        berth_model::servicediscovery::namespace_arn("service-connect")
    );
    // Applied again: nothing changes.
    let again = run(&db, CLUSTER_DEFAULT).await.unwrap();
    assert!(again.iter().all(|c| c.action == "unchanged"), "{again:?}");
    // The default removed from the cluster: the cluster is updated, and the service,
    // which names no namespace, is refused.
    let without = CLUSTER_DEFAULT.replace(
        "    serviceConnectDefaults: {namespace: service-connect}\n",
        "",
    );
    let e = refused(
        &db,
        &without,
        "services[0].serviceConnectConfiguration.namespace",
    )
    .await;
    assert!(
        e.contains("cluster tutorial has no serviceConnectDefaults"),
        "{e}"
    );
}

#[tokio::test]
async fn a_bad_default_namespace_is_refused_naming_the_cluster_field() {
    let db = db().await;
    let bad = CLUSTER_DEFAULT.replace("{namespace: service-connect}", "{namespace: Not_A_Name}");
    refused(&db, &bad, "serviceConnectDefaults.namespace").await;
}
