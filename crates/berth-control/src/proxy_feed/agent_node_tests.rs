//! An agent's node gets the mesh as a server's node does: the mesh target groups with
//! their hops, the client-alias listeners, and mutual TLS planned for that node (its own
//! identity and certificates, its tasks as inbound endpoints), renewed half-way; the
//! discovery records it reads are the same for every node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_model::arn;
use berth_model::ecs::{Container, ContainerInstance, NetworkBinding, Task, TaskStatus};
use berth_model::elb_nodes::{AGENT_ROLE, NODE_ROLE_ATTRIBUTE, SERVER_ROLE};
use berth_model::mesh_identity::SpiffeId;

use super::mesh_tests::{mesh_arn, setup};
use super::*;
use crate::mesh_ca::{StoredMeshCa, MESH_CA_STORE_KEY};
use crate::mesh_tls::{MeshNode, MESH_INBOUND_ATTRIBUTE};
use crate::registration::{RegistrationReconciler, ADDRESS_ATTRIBUTE};

fn agent_arn() -> String {
    arn::container_instance("default", "i-agent")
}

/// The mesh stack of [`setup`] with its task `t1` on an agent's instance (10.0.0.2,
/// inbound 10.0.0.2:15443) and a second task `t2` on a server's (10.0.0.1, inbound
/// 10.0.0.1:15443), both registered in the mesh group.
async fn two_nodes() -> Db {
    let (db, _, _) = setup().await;
    for (id, role, ip) in [
        ("i-server", SERVER_ROLE, "10.0.0.1"),
        ("i-agent", AGENT_ROLE, "10.0.0.2"),
    ] {
        let inst = ContainerInstance {
            container_instance_arn: arn::container_instance("default", id),
            ec2_instance_id: id.into(),
            cluster_arn: arn::cluster("default"),
            attributes: BTreeMap::from([
                (NODE_ROLE_ATTRIBUTE.to_string(), role.to_string()),
                (ADDRESS_ATTRIBUTE.to_string(), ip.to_string()),
                (MESH_INBOUND_ATTRIBUTE.to_string(), format!("{ip}:15443")),
            ]),
            agent_connected: true,
            ..Default::default()
        };
        db.put(&db::instance_key("default", id), &inst)
            .await
            .unwrap();
    }
    db.update::<Task, _>(&db::task_key("default", "t1"), |t| {
        t.container_instance_arn = Some(agent_arn());
        true
    })
    .await
    .unwrap();
    let t2 = Task {
        task_arn: arn::task("default", "t2"),
        cluster_arn: arn::cluster("default"),
        task_definition_arn: arn::task_definition("backend", 1),
        group: "service:backend".into(),
        last_status: TaskStatus::Running,
        desired_status: TaskStatus::Running,
        container_instance_arn: Some(arn::container_instance("default", "i-server")),
        containers: vec![Container {
            name: "app".into(),
            network_bindings: vec![NetworkBinding {
                container_port: 8080,
                host_port: 32769,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    db.put(&db::task_key("default", "t2"), &t2).await.unwrap();
    RegistrationReconciler::new(db.clone())
        .reconcile()
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn an_agents_node_gets_the_mesh_groups_listeners_and_its_own_mutual_tls() {
    let db = two_nodes().await;
    let mesh = AgentNodesMesh::default();
    let config = agent_node_config(&db, &mesh, &agent_arn()).await.unwrap();

    // The same mesh group and listener a server's node gets, every target with its hop.
    let g = config
        .target_groups
        .iter()
        .find(|g| g.group.target_group_arn == mesh_arn())
        .expect("the mesh group");
    assert!(g.mesh.is_some());
    let hops: BTreeMap<String, String> = g
        .targets
        .iter()
        .map(|t| {
            let hop = t.mesh_hop.as_ref().expect("every target has a hop");
            (t.addr.to_string(), hop.inbound.to_string())
        })
        .collect();
    assert_eq!(
        hops,
        BTreeMap::from([
            ("10.0.0.1:32769".to_string(), "10.0.0.1:15443".to_string()),
            ("10.0.0.2:32768".to_string(), "10.0.0.2:15443".to_string()),
        ])
    );
    assert_eq!(config.mesh_listeners.len(), 1);
    assert_eq!(config.mesh_listeners[0].port, 80);

    // Mutual TLS of this node: its identity, the task on it as the inbound endpoint.
    let tls = config.mesh_tls.expect("mesh_tls is set");
    let node = MeshNode {
        cluster: "default".into(),
        instance_id: "i-agent".into(),
    }
    .identity()
    .unwrap();
    assert_eq!(tls.node_identity, node);
    let backend = SpiffeId::for_service("default", "internal", "backend").unwrap();
    let ids: Vec<&SpiffeId> = tls.identities.iter().map(|c| &c.spiffe_id).collect();
    assert_eq!(ids, [&node, &backend]);
    assert!(tls.identities.iter().all(|c| !c.private_key_pem.is_empty()));
    let inbound: Vec<String> = tls.inbound.iter().map(|e| e.target.to_string()).collect();
    assert_eq!(inbound, ["10.0.0.2:32768"], "only the agent's own task");
    let stored: StoredMeshCa = db.get(MESH_CA_STORE_KEY).await.unwrap().unwrap().value;
    assert_eq!(tls.trust.ca_certificates_pem, [stored.certificate_pem]);

    // A server's node, fed by the same store, serves the other task.
    let dp = Arc::new(crate::data_plane::fake::FakeDataPlane::default());
    let feed = ProxyFeed::new(db.clone(), dp.clone());
    feed.mesh_tls.configure(crate::mesh_tls::MeshTlsSettings {
        node: Some(MeshNode {
            cluster: "default".into(),
            instance_id: "i-server".into(),
        }),
        ..Default::default()
    });
    feed.push_config().await.unwrap();
    let server = dp.offered.lock().unwrap().last().cloned().unwrap();
    let server_tls = server.mesh_tls.unwrap();
    assert_ne!(server_tls.node_identity, node);
    let inbound: Vec<String> = server_tls
        .inbound
        .iter()
        .map(|e| e.target.to_string())
        .collect();
    assert_eq!(inbound, ["10.0.0.1:32769"]);
}

#[tokio::test]
async fn an_agents_certificates_are_kept_between_reads_and_renewed_half_way() {
    let db = two_nodes().await;
    let mesh = AgentNodesMesh::default();
    mesh.set_certificate_validity(Duration::from_secs(2));
    let first = agent_node_config(&db, &mesh, &agent_arn())
        .await
        .unwrap()
        .mesh_tls
        .unwrap();
    let again = agent_node_config(&db, &mesh, &agent_arn())
        .await
        .unwrap()
        .mesh_tls
        .unwrap();
    assert_eq!(again.identities, first.identities, "kept between reads");
    // Half of two seconds later the book reissues them.
    let renewed = renewed_certificates(&db, &mesh, &first).await;
    assert_eq!(renewed.identities.len(), first.identities.len());
    for (new, old) in renewed.identities.iter().zip(&first.identities) {
        assert_eq!(new.spiffe_id, old.spiffe_id);
        assert_ne!(
            new.cert_chain_pem, old.cert_chain_pem,
            "{} reissued",
            new.spiffe_id
        );
        assert!(new.not_after >= old.not_after);
    }
}

/// Reads the agent's configuration until its certificates differ from `first`'s (at
/// most 5 s: they are due after one).
async fn renewed_certificates(
    db: &Db,
    mesh: &AgentNodesMesh,
    first: &berth_model::dataplane::MeshTlsConfig,
) -> berth_model::dataplane::MeshTlsConfig {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let tls = agent_node_config(db, mesh, &agent_arn())
            .await
            .unwrap()
            .mesh_tls
            .unwrap();
        if tls.identities != first.identities {
            return tls;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "certificates not renewed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_unknown_instance_gets_nothing_and_a_bad_arn_is_refused_by_field() {
    let db = two_nodes().await;
    let mesh = AgentNodesMesh::default();
    let gone = agent_node_config(&db, &mesh, &arn::container_instance("default", "i-gone"))
        .await
        .unwrap();
    assert_eq!(gone, ProxyConfig::default());
    assert!(agent_node::node_of("not-an-arn")
        .unwrap_err()
        .to_string()
        .contains("containerInstanceArn"));
}

#[tokio::test]
async fn the_discovery_records_an_agent_reads_answer_the_alias_with_the_nodes_proxy() {
    let db = two_nodes().await;
    let service = crate::AgentService::new(db.clone(), tokio::sync::watch::channel(0).1);
    let records = service.node_discovery_records().await.unwrap();
    let alias = records
        .names
        .iter()
        .find(|n| n.name == "backend")
        .expect("the client alias is answered");
    assert!(
        alias.node_proxy,
        "answered with the asking node's mesh proxy"
    );
    assert!(alias.a.is_empty(), "no node's address is baked in");
    assert_eq!(records.zones, ["internal"]);
}
