//! The records builder, rule by rule, and the publisher's "only when changed".

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use berth_model::arn;
use berth_model::discovery::{DiscoveryRecords, DnsName, SrvRecord};
use berth_model::ecs::{
    Container, ContainerInstance, HealthStatus, NetworkBinding, Service, Task, TaskDefinition,
    TaskStatus,
};
use berth_model::elb::{TargetHealth, TargetHealthState};
use berth_model::servicediscovery::Namespace;
use berth_model::stack::Stack;

use super::*;

const STACK: &str = r#"
namespaces:
  - {name: internal, dnsTtlSeconds: 7}
taskDefinitions:
  - family: api
    networkMode: awsvpc
    containerDefinitions:
      - name: app
        image: whoami
        portMappings: [{containerPort: 8080, name: http, appProtocol: http}]
  - family: web
    containerDefinitions:
      - name: app
        image: whoami
        portMappings: [{containerPort: 8080, name: http, appProtocol: http}]
services:
  - serviceName: api
    taskDefinition: api
    serviceRegistries:
      - registryArn: arn:berth:servicediscovery:local:000000000000:service/internal/api
  - serviceName: web
    taskDefinition: web
    serviceRegistries:
      - registryArn: arn:berth:servicediscovery:local:000000000000:service/internal/web
        containerName: app
        containerPort: 8080
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          discoveryName: web-mesh
          clientAliases: [{port: 80, dnsName: web}]
"#;

/// The input of STACK with no tasks: services and definitions stored as apply would.
fn input() -> DiscoveryInput {
    let stack = Stack::from_yaml(STACK).unwrap();
    let mut definitions = BTreeMap::new();
    for td in &stack.task_definitions {
        let td = TaskDefinition {
            task_definition_arn: arn::task_definition(&td.family, 1),
            revision: 1,
            ..td.clone()
        };
        definitions.insert(td.task_definition_arn.clone(), td);
    }
    let services = stack
        .services
        .iter()
        .map(|s| Service {
            task_definition: arn::task_definition(&s.task_definition, 1),
            status: "ACTIVE".into(),
            ..s.clone()
        })
        .collect();
    let mut instance = ContainerInstance {
        container_instance_arn: "ci-1".into(),
        ..Default::default()
    };
    instance.attributes.insert(
        crate::registration::ADDRESS_ATTRIBUTE.into(),
        "192.168.1.5".into(),
    );
    DiscoveryInput {
        namespaces: stack.namespaces,
        services,
        tasks: Vec::new(),
        definitions,
        instances: [("ci-1".to_string(), instance)].into(),
        targets: BTreeMap::new(),
    }
}

fn api_task(id: &str, ip: &str) -> Task {
    Task {
        task_arn: arn::task("default", id),
        cluster_arn: arn::cluster("default"),
        task_definition_arn: arn::task_definition("api", 1),
        group: "service:api".into(),
        last_status: TaskStatus::Running,
        desired_status: TaskStatus::Running,
        containers: vec![Container {
            name: "app".into(),
            private_ipv4_address: Some(ip.into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn web_task(id: &str, host_port: u32) -> Task {
    Task {
        task_arn: arn::task("default", id),
        cluster_arn: arn::cluster("default"),
        task_definition_arn: arn::task_definition("web", 1),
        container_instance_arn: Some("ci-1".into()),
        group: "service:web".into(),
        last_status: TaskStatus::Running,
        desired_status: TaskStatus::Running,
        containers: vec![Container {
            name: "app".into(),
            network_bindings: vec![NetworkBinding {
                container_port: 8080,
                host_port,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn view(state: TargetHealthState) -> TargetView {
    TargetView {
        health: TargetHealth {
            state,
            reason: None,
            description: None,
        },
        in_flight: 0,
        ejected: false,
    }
}

fn name<'a>(r: &'a DiscoveryRecords, n: &str) -> &'a DnsName {
    r.names
        .iter()
        .find(|x| x.name == n)
        .unwrap_or_else(|| panic!("no name {n} in {r:#?}"))
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn awsvpc_tasks_are_a_records_with_the_namespace_ttl() {
    let mut i = input();
    i.tasks = vec![api_task("t2", "10.0.0.2"), api_task("t1", "10.0.0.1")];
    let r = i.records();
    assert_eq!(r.zones, ["internal"]);
    let api = name(&r, "api.internal");
    assert_eq!(api.a, [ip("10.0.0.1"), ip("10.0.0.2")]);
    assert!(api.srv.is_empty() && !api.node_proxy);
    assert_eq!(api.ttl, 7);
}

#[test]
fn bridge_tasks_are_srv_records_with_a_target_name_on_the_host() {
    let mut i = input();
    i.tasks = vec![web_task("w1", 32768)];
    let tg = arn::target_group(&crate::mesh::target_group_name("internal", "web-mesh"));
    i.targets.insert(
        (tg, arn::task("default", "w1")),
        view(TargetHealthState::Healthy),
    );
    let r = i.records();
    let web = name(&r, "web.internal");
    assert_eq!(
        web.srv,
        [SrvRecord {
            priority: 1,
            weight: 1,
            port: 32768,
            target: "w1.web.internal".into()
        }]
    );
    assert!(web.a.is_empty());
    assert_eq!(name(&r, "w1.web.internal").a, [ip("192.168.1.5")]);
    // The mesh port is published under its discovery name too.
    assert_eq!(
        name(&r, "web-mesh.internal").srv[0].target,
        "w1.web-mesh.internal"
    );
}

#[test]
fn a_client_alias_is_answered_by_the_node_proxy() {
    let i = input();
    let r = i.records();
    let alias = name(&r, "web");
    assert!(alias.node_proxy);
    assert!(alias.a.is_empty());
    assert_eq!(alias.ttl, 7);
}

#[test]
fn an_alias_on_a_discovery_name_keeps_its_srv_records_and_answers_a_with_the_proxy() {
    let mut i = input();
    let web = i
        .services
        .iter_mut()
        .find(|s| s.service_name == "web")
        .unwrap();
    web.service_connect_configuration.as_mut().unwrap().services[0].client_aliases[0].dns_name =
        None;
    i.tasks = vec![web_task("w1", 32768)];
    let tg = arn::target_group(&crate::mesh::target_group_name("internal", "web-mesh"));
    i.targets.insert(
        (tg, arn::task("default", "w1")),
        view(TargetHealthState::Healthy),
    );
    let r = i.records();
    let n = name(&r, "web-mesh.internal");
    assert!(n.node_proxy);
    assert_eq!(n.srv.len(), 1);
}

#[test]
fn only_running_tasks_meant_to_run_are_published() {
    let mut i = input();
    let mut stopping = api_task("t2", "10.0.0.2");
    stopping.desired_status = TaskStatus::Stopped;
    let mut pending = api_task("t3", "10.0.0.3");
    pending.last_status = TaskStatus::Pending;
    i.tasks = vec![api_task("t1", "10.0.0.1"), stopping, pending];
    assert_eq!(name(&i.records(), "api.internal").a, [ip("10.0.0.1")]);
}

#[test]
fn unhealthy_tasks_are_left_out_while_one_is_healthy() {
    let mut i = input();
    let mut sick = api_task("t2", "10.0.0.2");
    sick.health_status = HealthStatus::Unhealthy;
    i.tasks = vec![api_task("t1", "10.0.0.1"), sick];
    assert_eq!(name(&i.records(), "api.internal").a, [ip("10.0.0.1")]);
    let groups = i.endpoint_groups(&i.services[0]);
    let sick = groups[0]
        .endpoints
        .iter()
        .find(|e| e.task_id == "t2")
        .unwrap();
    assert!(!sick.healthy && !sick.published);
    assert!(
        sick.reason.as_deref().unwrap().contains("UNHEALTHY"),
        "{sick:?}"
    );
}

#[test]
fn with_no_healthy_task_up_to_eight_unhealthy_ones_are_published() {
    let mut i = input();
    i.tasks = (0..10)
        .map(|n| {
            let mut t = api_task(&format!("t{n}"), &format!("10.0.0.{n}"));
            t.health_status = HealthStatus::Unhealthy;
            t
        })
        .collect();
    assert_eq!(
        name(&i.records(), "api.internal").a.len(),
        FAIL_OPEN_RECORDS
    );
}

#[test]
fn a_task_must_be_healthy_in_every_load_balancer_target_group() {
    let mut i = input();
    let api = &mut i.services[0];
    api.load_balancers = vec![berth_model::ecs::ServiceLoadBalancer {
        target_group_arn: arn::target_group("api"),
        container_name: "app".into(),
        container_port: 8080,
        ..Default::default()
    }];
    i.tasks = vec![api_task("t1", "10.0.0.1"), api_task("t2", "10.0.0.2")];
    let key = |id: &str| (arn::target_group("api"), arn::task("default", id));
    i.targets
        .insert(key("t1"), view(TargetHealthState::Healthy));
    i.targets
        .insert(key("t2"), view(TargetHealthState::Unhealthy));
    assert_eq!(name(&i.records(), "api.internal").a, [ip("10.0.0.1")]);
    // A target still in its initial checks is not healthy for the load balancer yet.
    i.targets
        .insert(key("t1"), view(TargetHealthState::Initial));
    i.targets
        .insert(key("t2"), view(TargetHealthState::Healthy));
    assert_eq!(name(&i.records(), "api.internal").a, [ip("10.0.0.2")]);
}

#[test]
fn a_mesh_port_needs_its_mesh_target_healthy_or_in_initial_checks() {
    let mut i = input();
    i.tasks = vec![
        web_task("w1", 32768),
        web_task("w2", 32769),
        web_task("w3", 32770),
    ];
    let tg = arn::target_group(&crate::mesh::target_group_name("internal", "web-mesh"));
    let key = |id: &str| (tg.clone(), arn::task("default", id));
    i.targets
        .insert(key("w1"), view(TargetHealthState::Healthy));
    i.targets
        .insert(key("w2"), view(TargetHealthState::Initial));
    i.targets
        .insert(key("w3"), view(TargetHealthState::Unhealthy));
    let r = i.records();
    let targets: Vec<&str> = name(&r, "web-mesh.internal")
        .srv
        .iter()
        .map(|s| s.target.as_str())
        .collect();
    assert_eq!(targets, ["w1.web-mesh.internal", "w2.web-mesh.internal"]);
    // The registry name of the same service does not look at the mesh group.
    assert_eq!(name(&r, "web.internal").srv.len(), 3);
}

#[test]
fn the_default_ttl_applies_without_the_namespace() {
    let mut i = input();
    i.namespaces.clear();
    i.tasks = vec![api_task("t1", "10.0.0.1")];
    let r = i.records();
    assert!(r.zones.is_empty());
    assert_eq!(
        name(&r, "api.internal").ttl,
        berth_model::discovery::DEFAULT_DNS_TTL_SECONDS
    );
}

#[derive(Default)]
struct Recorder(Mutex<Vec<DiscoveryRecords>>);

impl Discovery for Recorder {
    fn publish(&self, records: DiscoveryRecords) {
        self.0.lock().unwrap().push(records);
    }
}

#[tokio::test]
async fn the_publisher_publishes_only_changes() {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let rec = Arc::new(Recorder::default());
    let p = Publisher::default();
    p.set(rec.clone());
    assert!(p.publish(&db, &[]).await.unwrap());
    assert!(!p.publish(&db, &[]).await.unwrap());
    let ns = Namespace {
        name: "internal".into(),
        description: None,
        dns_ttl_seconds: 5,
        arn: String::new(),
        created_at: None,
    };
    db.put(&crate::db::namespace_key("internal"), &ns)
        .await
        .unwrap();
    assert!(p.publish(&db, &[]).await.unwrap());
    let seen = rec.0.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].zones, ["internal"]);
}

#[tokio::test]
async fn a_closure_is_a_discovery() {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let seen = Arc::new(Mutex::new(0));
    let counter = seen.clone();
    let p = Publisher::default();
    p.set(Arc::new(move |_: DiscoveryRecords| {
        *counter.lock().unwrap() += 1
    }));
    p.publish(&db, &[]).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), 1);
}
