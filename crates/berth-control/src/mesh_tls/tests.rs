//! The mesh's mutual TLS on the control side: the CA created once and shared, the
//! certificates kept and renewed, and the plan of one node (inbound endpoints, hops,
//! callers, identities).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use berth_model::dataplane::MeshProtocol;
use berth_model::ecs::{Container, ContainerInstance, Service, Task, TaskStatus};
use berth_model::elb::{Target, TargetHealth};
use berth_model::mesh_identity::{AllowedCallers, SpiffeId};
use berth_model::{arn, time};

use super::*;
use crate::mesh::MeshPort;
use crate::mesh_ca::{MeshAuthority, StoredMeshCa, CLOCK_SKEW_ALLOWANCE, DEFAULT_MESH_CA_VALIDITY};

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

fn empty_db() -> Db {
    Db::new(Arc::new(berth_store::MemoryStore::new()))
}

async fn stored_ca(db: &Db) -> crate::db::Versioned<StoredMeshCa> {
    db.get::<StoredMeshCa>(MESH_CA_STORE_KEY)
        .await
        .unwrap()
        .expect("the CA is stored")
}

#[tokio::test]
async fn the_first_pass_creates_and_stores_the_ca_and_later_passes_reuse_it() {
    let db = empty_db();
    let mut cache = AuthorityCache::default();
    let now = time::now();
    let first = cache.authority(&db, now).await.unwrap();
    let stored = stored_ca(&db).await;
    assert_eq!(stored.value.certificate_pem, first.stored().certificate_pem);
    assert_eq!(cache.revision(), Some(stored.mod_revision));
    let again = cache.authority(&db, now + 10.0).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "parsed again with no change");
    assert_eq!(
        stored_ca(&db).await.mod_revision,
        stored.mod_revision,
        "written once"
    );
}

#[tokio::test]
async fn a_restarted_server_loads_the_stored_ca_so_identities_stay_valid() {
    let db = empty_db();
    let now = time::now();
    let before = AuthorityCache::default().authority(&db, now).await.unwrap();
    let cert = before
        .issue(
            &id("spiffe://default/ns/internal/sa/web"),
            now,
            Duration::from_secs(3600),
        )
        .unwrap();
    // A new process: a new cache on the same store.
    let after = AuthorityCache::default()
        .authority(&db, now + 5.0)
        .await
        .unwrap();
    assert_eq!(after.trust(), before.trust());
    after.verify_issued(&cert, now + 5.0).unwrap();
}

/// A store where another server writes its CA just before this one's guarded create.
struct RacingStore {
    inner: berth_store::MemoryStore,
    rival: StoredMeshCa,
    raced: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl berth_store::Store for RacingStore {
    async fn get(&self, key: &str) -> berth_store::Result<Option<berth_store::Entry>> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> berth_store::Result<Option<berth_store::Revision>> {
        self.inner.delete(key).await
    }
    async fn batch(&self, ops: Vec<berth_store::Op>) -> berth_store::Result<berth_store::Revision> {
        let creates_ca = ops.iter().any(|op| {
            matches!(op, berth_store::Op::Put { key, expect: Some(berth_store::Expect::Absent), .. } if key == MESH_CA_STORE_KEY)
        });
        if creates_ca && !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.inner
                .put(MESH_CA_STORE_KEY, crate::db::encode(&self.rival))
                .await?;
        }
        self.inner.batch(ops).await
    }
    async fn list(&self, prefix: &str) -> berth_store::Result<Vec<berth_store::Entry>> {
        self.inner.list(prefix).await
    }
    async fn revision(&self) -> berth_store::Result<berth_store::Revision> {
        self.inner.revision().await
    }
    async fn watch(
        &self,
        prefix: &str,
        after: berth_store::Revision,
    ) -> berth_store::Result<berth_store::Watch> {
        self.inner.watch(prefix, after).await
    }
}

#[tokio::test]
async fn a_server_that_loses_the_race_to_create_the_ca_takes_the_winners() {
    let now = time::now();
    let rival = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY).unwrap();
    let store = RacingStore {
        inner: berth_store::MemoryStore::new(),
        rival: rival.stored().clone(),
        raced: Default::default(),
    };
    let db = Db::new(Arc::new(store));
    let mut cache = AuthorityCache::default();
    let ca = cache.authority(&db, now).await.unwrap();
    assert_eq!(ca.trust(), rival.trust(), "the CA written first wins");
    assert_eq!(
        stored_ca(&db).await.value.certificate_pem,
        rival.stored().certificate_pem
    );
}

#[tokio::test]
async fn a_ca_replaced_in_the_store_is_loaded_on_the_next_pass() {
    let db = empty_db();
    let now = time::now();
    let mut cache = AuthorityCache::default();
    let old = cache.authority(&db, now).await.unwrap();
    let other = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY).unwrap();
    db.put(MESH_CA_STORE_KEY, other.stored()).await.unwrap();
    let new = cache.authority(&db, now).await.unwrap();
    assert_ne!(new.trust(), old.trust());
    assert_eq!(new.trust(), other.trust());
}

#[tokio::test]
async fn a_stored_ca_that_does_not_load_is_an_error_naming_the_field() {
    let db = empty_db();
    let now = time::now();
    let mut stored = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY)
        .unwrap()
        .stored()
        .clone();
    stored.private_key_pem = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY)
        .unwrap()
        .stored()
        .private_key_pem
        .clone();
    db.put(MESH_CA_STORE_KEY, &stored).await.unwrap();
    let e = AuthorityCache::default()
        .authority(&db, now)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            ControlError::MeshCa(crate::mesh_ca::MeshCaError::StoredCa {
                field: "privateKeyPem",
                ..
            })
        ),
        "{e:?}"
    );
}

#[test]
fn certificates_are_kept_between_passes_and_renewed_at_half_time() {
    let now = time::now().floor();
    let ca = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY).unwrap();
    let web = id("spiffe://default/ns/internal/sa/web");
    let api = id("spiffe://default/ns/internal/sa/api");
    let wanted: BTreeSet<SpiffeId> = [web.clone(), api.clone()].into();
    let validity = Duration::from_secs(600);
    let mut book = CertificateBook::default();
    assert_eq!(book.refresh(&ca, &wanted, now, validity).unwrap(), 2);
    let first = book.get(&web).unwrap().clone();
    assert_eq!(first.spiffe_id, web);
    // Valid for the validity asked, from a minute before now.
    assert_eq!(
        first.not_after - first.not_before,
        (validity + CLOCK_SKEW_ALLOWANCE).as_secs() as f64
    );
    ca.verify_issued(&first, now).unwrap();

    // Before half-time (from issuance): nothing is issued; the same certificate is kept.
    let half = now + 300.0;
    let before = half - 1.0;
    assert_eq!(book.refresh(&ca, &wanted, before, validity).unwrap(), 0);
    assert_eq!(book.get(&web), Some(&first));

    // At half-time: reissued, with a new key.
    let at = half;
    assert_eq!(book.refresh(&ca, &wanted, at, validity).unwrap(), 2);
    let second = book.get(&web).unwrap();
    assert_ne!(second.private_key_pem, first.private_key_pem);
    assert!(second.not_after > first.not_after);
    ca.verify_issued(second, at).unwrap();

    // An identity no longer wanted is forgotten.
    let only_web: BTreeSet<SpiffeId> = [web.clone()].into();
    assert_eq!(book.refresh(&ca, &only_web, at, validity).unwrap(), 0);
    assert!(book.get(&api).is_none());
    assert_eq!(book.len(), 1);
}

#[test]
fn a_certificate_valid_for_seconds_is_kept_until_half_of_them_passed() {
    // notBefore is backdated by a minute; renewal still waits for half the validity.
    let now = time::now().floor();
    let ca = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY).unwrap();
    let web: BTreeSet<SpiffeId> = [id("spiffe://default/ns/internal/sa/web")].into();
    let validity = Duration::from_secs(4);
    let mut book = CertificateBook::default();
    assert_eq!(book.refresh(&ca, &web, now, validity).unwrap(), 1);
    assert_eq!(book.refresh(&ca, &web, now + 1.9, validity).unwrap(), 0);
    assert_eq!(book.refresh(&ca, &web, now + 2.0, validity).unwrap(), 1);
}

#[test]
fn a_new_ca_reissues_every_certificate() {
    let now = time::now();
    let web = id("spiffe://default/ns/internal/sa/web");
    let wanted: BTreeSet<SpiffeId> = [web.clone()].into();
    let validity = Duration::from_secs(600);
    let old = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY).unwrap();
    let new = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY).unwrap();
    let mut book = CertificateBook::default();
    book.refresh(&old, &wanted, now, validity).unwrap();
    assert_eq!(book.refresh(&new, &wanted, now, validity).unwrap(), 1);
    new.verify_issued(book.get(&web).unwrap(), now).unwrap();
}

#[tokio::test]
async fn refresh_issues_with_the_configured_validity() {
    let db = empty_db();
    let tls = MeshTls::default();
    tls.configure(MeshTlsSettings {
        certificate_validity: Duration::from_secs(4),
        node: None,
    });
    let web = id("spiffe://default/ns/internal/sa/web");
    let now = time::now().floor();
    let (_, state) = tls.refresh(&db, &[web.clone()].into(), now).await.unwrap();
    let c = state.1.get(&web).unwrap();
    assert_eq!(c.not_after, now + 4.0);
}

#[test]
fn the_node_identity_is_in_a_namespace_no_service_can_have() {
    let node = MeshNode {
        cluster: "Prod".into(),
        instance_id: "i-0123456789abcdef0".into(),
    };
    assert_eq!(
        node.identity().unwrap().to_string(),
        "spiffe://prod/ns/_berth/sa/node-i-0123456789abcdef0"
    );
    assert_eq!(
        node.instance_arn(),
        arn::container_instance("Prod", "i-0123456789abcdef0")
    );
    assert!(
        berth_model::servicediscovery::check_dns_name("namespace", NODE_IDENTITY_NAMESPACE)
            .is_err()
    );
    assert_eq!(
        MeshTlsSettings::default()
            .node_identity()
            .unwrap()
            .to_string(),
        "spiffe://default/ns/_berth/sa/node-local"
    );
}

// ---- the plan ----

const NODE_A: &str = "i-a";
const NODE_B: &str = "i-b";

fn service(name: &str, services: serde_json::Value) -> Service {
    serde_json::from_value(serde_json::json!({
        "serviceName": name,
        "serviceArn": arn::service("default", name),
        "cluster": arn::cluster("default"),
        "taskDefinition": name,
        "status": "ACTIVE",
        "serviceConnectConfiguration": {
            "enabled": true, "namespace": "internal", "services": services
        }
    }))
    .unwrap()
}

fn port(service: &str, discovery: &str, allowed: Option<Vec<&str>>) -> MeshPort {
    MeshPort {
        cluster: "default".into(),
        service: service.into(),
        namespace: "internal".into(),
        discovery_name: discovery.into(),
        port_name: "http".into(),
        container_name: "app".into(),
        container_port: 8080,
        app_protocol: Some(berth_model::ecs::ApplicationProtocol::Http),
        aliases: vec![(80, format!("{discovery}.internal"))],
        per_request_timeout_seconds: 15,
        idle_timeout_seconds: 300,
        allowed_callers: allowed.map(|a| a.into_iter().map(String::from).collect()),
    }
}

fn task(id: &str, service: &str, node: &str, ip: Option<&str>) -> Task {
    Task {
        task_arn: arn::task("default", id),
        cluster_arn: arn::cluster("default"),
        group: format!("service:{service}"),
        container_instance_arn: Some(arn::container_instance("default", node)),
        last_status: TaskStatus::Running,
        desired_status: TaskStatus::Running,
        containers: vec![Container {
            name: "app".into(),
            private_ipv4_address: ip.map(String::from),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn instance(node: &str, inbound: Option<&str>) -> ContainerInstance {
    let mut i = ContainerInstance {
        container_instance_arn: arn::container_instance("default", node),
        ..Default::default()
    };
    if let Some(a) = inbound {
        i.attributes
            .insert(MESH_INBOUND_ATTRIBUTE.into(), a.to_string());
    }
    i
}

fn target(p: &MeshPort, task_id: &str, ip: &str, port: u32) -> Target {
    Target {
        target_group_arn: p.target_group_arn(),
        id: ip.into(),
        port,
        task_arn: Some(arn::task("default", task_id)),
        target_health: TargetHealth::default(),
        registered_at: 0.0,
        deregistering_at: None,
        drained_at: None,
    }
}

fn node_a() -> MeshTlsSettings {
    MeshTlsSettings {
        certificate_validity: Duration::from_secs(60),
        node: Some(MeshNode {
            cluster: "default".into(),
            instance_id: NODE_A.into(),
        }),
    }
}

#[test]
fn a_node_serves_its_own_endpoints_inbound_and_reaches_every_endpoint_through_its_nodes_inbound() {
    let services = [
        service(
            "backend",
            serde_json::json!([{"portName": "http", "discoveryName": "backend", "allowedCallers": ["web"]}]),
        ),
        service("web", serde_json::json!([])),
    ];
    let ports = [port("backend", "backend", Some(vec!["web"]))];
    let tasks = [
        task("aaaabbbbccccdddd", "backend", NODE_A, Some("10.0.0.5")),
        task("eeeeffff00001111", "backend", NODE_B, Some("10.0.1.7")),
        task("2222333344445555", "web", NODE_A, Some("10.0.0.9")),
        // A bridge task: no IP of its own; it calls as the node.
        task("6666777788889999", "web", NODE_A, None),
    ];
    let instances = [
        instance(NODE_A, Some("192.168.1.10:15443")),
        instance(NODE_B, Some("192.168.1.11:15443")),
    ];
    let targets = [
        target(&ports[0], "aaaabbbbccccdddd", "10.0.0.5", 8080),
        target(&ports[0], "eeeeffff00001111", "10.0.1.7", 8080),
    ];
    let settings = node_a();
    let plan = plan(
        &MeshTlsInput {
            services: &services,
            ports: &ports,
            tasks: &tasks,
            instances: &instances,
            targets: &targets,
        },
        settings.node_instance_arn().as_deref(),
        settings.node_identity().unwrap(),
    );
    let backend = id("spiffe://default/ns/internal/sa/backend");
    let web = id("spiffe://default/ns/internal/sa/web");
    let node = id("spiffe://default/ns/_berth/sa/node-i-a");

    // Inbound: only the endpoint on node A.
    assert_eq!(plan.inbound.len(), 1, "{:?}", plan.inbound);
    let e = &plan.inbound[0];
    assert_eq!(e.server_name, "taaaabbbbcccc-8080.backend.internal.mesh");
    assert_eq!(e.identity, backend);
    assert_eq!(e.target, "10.0.0.5:8080".parse().unwrap());
    assert_eq!(e.protocol, MeshProtocol::Http);
    assert_eq!(
        e.allowed_callers,
        AllowedCallers::Only([web.clone()].into())
    );

    // Hops: each target through the inbound of its own node.
    let hop_a = &plan.hops[&(ports[0].target_group_arn(), "10.0.0.5:8080".to_string())];
    assert_eq!(hop_a.inbound, "192.168.1.10:15443".parse().unwrap());
    assert_eq!(hop_a.server_name, e.server_name);
    assert_eq!(hop_a.identity, backend);
    let hop_b = &plan.hops[&(ports[0].target_group_arn(), "10.0.1.7:8080".to_string())];
    assert_eq!(hop_b.inbound, "192.168.1.11:15443".parse().unwrap());
    assert_eq!(
        hop_b.server_name,
        "teeeeffff0000-8080.backend.internal.mesh"
    );

    // Callers: node A's tasks with their own IP.
    let callers: Vec<(String, SpiffeId)> = plan
        .callers
        .iter()
        .map(|c| (c.ip.to_string(), c.identity.clone()))
        .collect();
    assert_eq!(
        callers,
        [
            ("10.0.0.5".to_string(), backend.clone()),
            ("10.0.0.9".to_string(), web.clone())
        ]
    );

    // Identities: what node A presents, and every identity of the mesh.
    assert_eq!(plan.node_identity, node);
    assert_eq!(
        plan.node_identities,
        [backend.clone(), web.clone(), node.clone()].into()
    );
    assert_eq!(plan.all_identities, [backend, web, node].into());
}

#[test]
fn a_node_without_an_inbound_address_gets_no_hops_and_drained_or_foreign_targets_are_left_out() {
    let services = [service(
        "backend",
        serde_json::json!([{"portName": "http"}]),
    )];
    let ports = [port("backend", "backend", None)];
    let tasks = [
        task("a1", "backend", NODE_A, Some("10.0.0.5")),
        task("a2", "backend", NODE_A, Some("10.0.0.6")),
    ];
    let instances = [instance(NODE_A, None)];
    let mut drained = target(&ports[0], "a2", "10.0.0.6", 8080);
    drained.drained_at = Some(1.0);
    let mut other_group = target(&ports[0], "a1", "10.0.0.5", 9090);
    other_group.target_group_arn = arn::target_group("web");
    let targets = [
        target(&ports[0], "a1", "10.0.0.5", 8080),
        drained,
        other_group,
    ];
    let settings = node_a();
    let plan = plan(
        &MeshTlsInput {
            services: &services,
            ports: &ports,
            tasks: &tasks,
            instances: &instances,
            targets: &targets,
        },
        settings.node_instance_arn().as_deref(),
        settings.node_identity().unwrap(),
    );
    assert!(plan.hops.is_empty(), "{:?}", plan.hops);
    assert_eq!(plan.inbound.len(), 1);
    assert_eq!(plan.inbound[0].target, "10.0.0.5:8080".parse().unwrap());
    assert_eq!(plan.inbound[0].allowed_callers, AllowedCallers::Any);
}

#[test]
fn one_endpoint_under_two_discovery_names_admits_either_allow_list() {
    let services = [service(
        "backend",
        serde_json::json!([
            {"portName": "http", "discoveryName": "one", "allowedCallers": ["web"]},
            {"portName": "http", "discoveryName": "two", "allowedCallers": ["batch"]}
        ]),
    )];
    let ports = [
        port("backend", "one", Some(vec!["web"])),
        port("backend", "two", Some(vec!["batch"])),
    ];
    let tasks = [task("a1", "backend", NODE_A, Some("10.0.0.5"))];
    let targets = [
        target(&ports[0], "a1", "10.0.0.5", 8080),
        target(&ports[1], "a1", "10.0.0.5", 8080),
    ];
    let plan = plan(
        &MeshTlsInput {
            services: &services,
            ports: &ports,
            tasks: &tasks,
            instances: &[],
            targets: &targets,
        },
        None,
        MeshTlsSettings::default().node_identity().unwrap(),
    );
    assert_eq!(plan.inbound.len(), 1);
    assert_eq!(
        plan.inbound[0].allowed_callers,
        AllowedCallers::Only(
            [
                id("spiffe://default/ns/internal/sa/web"),
                id("spiffe://default/ns/internal/sa/batch")
            ]
            .into()
        )
    );
}

#[test]
fn server_names_take_twelve_letters_and_digits_of_the_task_id() {
    let backend = id("spiffe://default/ns/internal/sa/backend");
    assert_eq!(
        endpoint_server_name("0f3c9a7e5b1d4c2a8e6f", 32768, &backend),
        "t0f3c9a7e5b1d-32768.backend.internal.mesh"
    );
    assert_eq!(
        endpoint_server_name("T_1", 80, &backend),
        "tt1-80.backend.internal.mesh"
    );
}
