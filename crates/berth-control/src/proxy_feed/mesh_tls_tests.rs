//! Mutual TLS through the proxy feed: the configuration carries the trust, this node's
//! identities, inbound endpoints and callers, each mesh target its hop through its
//! node's inbound listener; nothing of it (and no CA) while no service is in the mesh.

use std::sync::Arc;
use std::time::Duration;

use berth_model::ecs::{ContainerInstance, Task};
use berth_model::mesh_identity::{AllowedCallers, SpiffeId};

use super::mesh_tests::{mesh_arn, setup};
use super::*;
use crate::data_plane::fake::FakeDataPlane;
use crate::mesh_ca::{StoredMeshCa, MESH_CA_STORE_KEY};
use crate::mesh_tls::{MeshNode, MeshTlsSettings, MESH_INBOUND_ATTRIBUTE};
use crate::registration::RegistrationReconciler;

#[tokio::test]
async fn a_mesh_service_gets_mutual_tls_and_its_targets_a_hop_through_their_nodes_inbound() {
    let (db, dp, feed) = setup().await;
    let node = MeshNode {
        cluster: "default".into(),
        instance_id: "i-1".into(),
    };
    let mut inst = ContainerInstance {
        container_instance_arn: node.instance_arn(),
        ..Default::default()
    };
    inst.attributes
        .insert(MESH_INBOUND_ATTRIBUTE.into(), "127.0.0.1:15443".into());
    db.put(&db::instance_key("default", "i-1"), &inst)
        .await
        .unwrap();
    db.update::<Task, _>(&db::task_key("default", "t1"), |t| {
        t.container_instance_arn = Some(node.instance_arn());
        true
    })
    .await
    .unwrap();
    feed.mesh_tls.configure(MeshTlsSettings {
        certificate_validity: Duration::from_secs(600),
        node: Some(node.clone()),
    });
    RegistrationReconciler::new(db.clone())
        .reconcile()
        .await
        .unwrap();
    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap().last().cloned().unwrap();

    let tls = offered.mesh_tls.clone().expect("mesh_tls is set");
    let stored: StoredMeshCa = db.get(MESH_CA_STORE_KEY).await.unwrap().unwrap().value;
    assert_eq!(tls.trust.ca_certificates_pem, [stored.certificate_pem]);
    let backend = SpiffeId::for_service("default", "internal", "backend").unwrap();
    let node_id = node.identity().unwrap();
    assert_eq!(tls.node_identity, node_id);
    let ids: Vec<&SpiffeId> = tls.identities.iter().map(|c| &c.spiffe_id).collect();
    assert_eq!(ids, [&node_id, &backend]);
    assert_eq!(tls.inbound.len(), 1);
    let e = &tls.inbound[0];
    assert_eq!(e.server_name, "tt1-32768.backend.internal.mesh");
    assert_eq!(e.target, "127.0.0.1:32768".parse().unwrap());
    assert_eq!(e.identity, backend);
    assert_eq!(e.allowed_callers, AllowedCallers::Any);
    assert!(tls.callers.is_empty(), "a bridge task calls as the node");

    let g = offered
        .target_groups
        .iter()
        .find(|g| g.group.target_group_arn == mesh_arn())
        .unwrap();
    let hop = g.targets[0]
        .mesh_hop
        .as_ref()
        .expect("the target has a hop");
    assert_eq!(hop.inbound, "127.0.0.1:15443".parse().unwrap());
    assert_eq!(hop.server_name, e.server_name);
    assert_eq!(hop.identity, backend);

    // The next pass keeps the certificates: the proxy sees the same configuration.
    feed.push_config().await.unwrap();
    let again = dp.offered.lock().unwrap().last().cloned().unwrap();
    assert_eq!(again.mesh_tls, offered.mesh_tls);
}

#[tokio::test]
async fn without_a_mesh_service_there_is_no_mutual_tls_and_no_ca() {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let dp = Arc::new(FakeDataPlane::default());
    let feed = ProxyFeed::new(db.clone(), dp.clone());
    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap().last().cloned().unwrap();
    assert_eq!(offered.mesh_tls, None);
    assert!(db
        .get::<StoredMeshCa>(MESH_CA_STORE_KEY)
        .await
        .unwrap()
        .is_none());
}
