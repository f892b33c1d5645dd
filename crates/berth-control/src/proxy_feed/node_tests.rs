//! Which load balancers each node's data plane gets: a server's node those without
//! `berth.nodes` (and every target group), an agent's node those whose `berth.nodes`
//! holds for its instance (and only their target groups).

use std::collections::BTreeMap;

use berth_model::arn;
use berth_model::elb::{LoadBalancer, TargetGroup};
use berth_model::elb_nodes::{AGENT_ROLE, NODE_ROLE_ATTRIBUTE, SERVER_ROLE};
use berth_model::stack::Stack;

use super::*;
use crate::data_plane::fake::FakeDataPlane;
use crate::mesh_tls::{MeshNode, MeshTlsSettings};

const STACK: &str = r#"
targetGroups:
  - targetGroupName: app
  - targetGroupName: edge-app
loadBalancers:
  - loadBalancerName: central
    listeners:
      - port: 80
        protocol: HTTP
        defaultActions: [{type: forward, targetGroupName: app}]
  - loadBalancerName: edge
    attributes:
      berth.nodes: "attribute:zone == edge"
    listeners:
      - port: 81
        protocol: HTTP
        defaultActions: [{type: forward, targetGroupName: edge-app}]
"#;

async fn store() -> Db {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    let stack = Stack::from_yaml(STACK).unwrap();
    for tg in &stack.target_groups {
        let mut tg: TargetGroup = tg.clone();
        tg.target_group_arn = arn::target_group(&tg.target_group_name);
        db.put(&db::target_group_key(&tg.target_group_name), &tg)
            .await
            .unwrap();
    }
    for lb in &stack.load_balancers {
        let mut lb: LoadBalancer = lb.clone();
        lb.load_balancer_arn = arn::load_balancer("app", &lb.load_balancer_name);
        for l in &mut lb.listeners {
            l.listener_arn = arn::listener("app", &lb.load_balancer_name, l.port);
        }
        db.put(&db::load_balancer_key(&lb.load_balancer_name), &lb)
            .await
            .unwrap();
    }
    for (id, role, zone) in [
        ("i-server", SERVER_ROLE, "central"),
        ("i-edge", AGENT_ROLE, "edge"),
        ("i-plain", AGENT_ROLE, "central"),
    ] {
        let attributes = BTreeMap::from([
            (NODE_ROLE_ATTRIBUTE.to_string(), role.to_string()),
            ("zone".to_string(), zone.to_string()),
        ]);
        let inst = ContainerInstance {
            container_instance_arn: arn::container_instance("default", id),
            ec2_instance_id: id.into(),
            cluster_arn: arn::cluster("default"),
            attributes,
            agent_connected: true,
            ..Default::default()
        };
        db.put(&db::instance_key("default", id), &inst)
            .await
            .unwrap();
    }
    db
}

fn names(config: &ProxyConfig) -> (Vec<String>, Vec<String>) {
    (
        config
            .load_balancers
            .iter()
            .map(|lb| lb.load_balancer_name.clone())
            .collect(),
        config
            .target_groups
            .iter()
            .map(|g| g.group.target_group_name.clone())
            .collect(),
    )
}

#[tokio::test]
async fn a_servers_node_serves_the_load_balancers_without_nodes_and_checks_every_group() {
    let db = store().await;
    let dp = Arc::new(FakeDataPlane::default());
    let feed = ProxyFeed::new(db, dp.clone());
    feed.mesh_tls.configure(MeshTlsSettings {
        node: Some(MeshNode {
            cluster: "default".into(),
            instance_id: "i-server".into(),
        }),
        ..Default::default()
    });
    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap();
    let (lbs, groups) = names(offered.last().unwrap());
    assert_eq!(lbs, ["central"]);
    assert_eq!(groups, ["app", "edge-app"]);
}

#[tokio::test]
async fn an_agents_node_serves_the_load_balancers_its_instance_is_chosen_for() {
    let db = store().await;
    let edge = agent_node_config(
        &db,
        &AgentNodesMesh::default(),
        &arn::container_instance("default", "i-edge"),
    )
    .await
    .unwrap();
    assert_eq!(names(&edge), (vec!["edge".into()], vec!["edge-app".into()]));
    assert!(edge.mesh_listeners.is_empty() && edge.mesh_tls.is_none());
    let plain = agent_node_config(
        &db,
        &AgentNodesMesh::default(),
        &arn::container_instance("default", "i-plain"),
    )
    .await
    .unwrap();
    assert_eq!(
        plain,
        ProxyConfig::default(),
        "no load balancer chooses i-plain"
    );
    let unknown = agent_node_config(
        &db,
        &AgentNodesMesh::default(),
        &arn::container_instance("default", "i-gone"),
    )
    .await
    .unwrap();
    assert_eq!(unknown, ProxyConfig::default());
}
