//! The proxy feed against a fake data plane: what it offers, what it makes of a
//! refusal, and what it copies back.

use berth_model::arn;
use berth_model::dataplane::TargetStatus;
use berth_model::elb::{LoadBalancer, TargetGroup, TargetHealth};
use berth_model::stack::Stack;

use super::*;
use crate::data_plane::fake::FakeDataPlane;

const STACK: &str = r#"
targetGroups:
  - targetGroupName: web
loadBalancers:
  - loadBalancerName: a
    listeners:
      - port: 80
        protocol: HTTP
        defaultActions: [{type: forward, targetGroupName: web}]
  - loadBalancerName: b
    listeners:
      - port: 81
        protocol: HTTP
        defaultActions: [{type: forward, targetGroupName: web}]
"#;

fn target(id: &str) -> Target {
    Target {
        target_group_arn: arn::target_group("web"),
        id: id.into(),
        port: 8080,
        ..Default::default()
    }
}

async fn feed() -> (ProxyFeed, Arc<FakeDataPlane>) {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    let stack = Stack::from_yaml(STACK).unwrap();
    let mut tg: TargetGroup = stack.target_groups[0].clone();
    tg.target_group_arn = arn::target_group("web");
    db.put(&db::target_group_key("web"), &tg).await.unwrap();
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
    let live = target("10.0.0.1");
    let draining = Target {
        deregistering_at: Some(1.0),
        ..target("10.0.0.2")
    };
    let drained = Target {
        deregistering_at: Some(1.0),
        drained_at: Some(2.0),
        ..target("10.0.0.3")
    };
    for t in [live, draining, drained] {
        db.put(&db::target_key("web", &t.endpoint()), &t)
            .await
            .unwrap();
    }
    let dp = Arc::new(FakeDataPlane::default());
    (ProxyFeed::new(db, dp.clone()), dp)
}

#[tokio::test]
async fn the_snapshot_carries_live_and_draining_targets_but_not_drained_ones() {
    let (feed, dp) = feed().await;
    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap();
    assert_eq!(offered.len(), 1);
    let targets = &offered[0].target_groups[0].targets;
    let seen: Vec<(&str, bool)> = targets
        .iter()
        .map(|t| (t.id.as_str(), t.draining))
        .collect();
    assert_eq!(seen, [("10.0.0.1", false), ("10.0.0.2", true)]);
    assert_eq!(offered[0].load_balancers.len(), 2);
    let st = feed.bound.read().unwrap();
    assert_eq!(st.bound.len(), 2);
    assert!(st.failed.is_empty());
}

#[tokio::test]
async fn a_refused_load_balancer_fails_alone() {
    let (feed, dp) = feed().await;
    dp.refuse
        .lock()
        .unwrap()
        .insert("b".into(), "port 81 is taken".into());
    feed.push_config().await.unwrap();
    let offered = dp.offered.lock().unwrap();
    assert_eq!(offered.len(), 2, "offered again without the culprit");
    let names: Vec<&str> = offered[1]
        .load_balancers
        .iter()
        .map(|lb| lb.load_balancer_name.as_str())
        .collect();
    assert_eq!(names, ["a"]);
    let st = feed.bound.read().unwrap();
    assert_eq!(
        st.failed.get("b").map(String::as_str),
        Some("port 81 is taken")
    );
    assert_eq!(
        st.bound.keys().cloned().collect::<Vec<_>>(),
        [arn::listener("app", "a", 80)]
    );
}

#[tokio::test]
async fn a_refusal_naming_no_load_balancer_is_an_error() {
    let (feed, dp) = feed().await;
    *dp.refuse_all.lock().unwrap() = Some("the proxy is shut down".into());
    let e = feed.push_config().await.unwrap_err();
    assert!(
        matches!(&e, ControlError::DataPlaneRefused(r) if r.load_balancer_name.is_none()),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "proxy rejected its configuration: the proxy is shut down"
    );
}

#[tokio::test]
async fn health_and_drained_flags_flow_back_into_the_targets() {
    let (feed, dp) = feed().await;
    let status = |id: &str, state, drained| TargetStatus {
        target_group_arn: arn::target_group("web"),
        addr: format!("{id}:8080").parse().unwrap(),
        health: TargetHealth {
            state,
            reason: None,
            description: None,
        },
        in_flight: 0,
        request_count: 0,
        drained,
        ejected: false,
    };
    *dp.statuses.lock().unwrap() = vec![
        status("10.0.0.1", TargetHealthState::Healthy, false),
        status("10.0.0.2", TargetHealthState::Healthy, true),
    ];
    feed.pull_health().await.unwrap();
    let get = |id: &str| {
        let db = feed.db.clone();
        let key = db::target_key("web", &format!("{id}:8080"));
        async move { db.get::<Target>(&key).await.unwrap().unwrap().value }
    };
    assert_eq!(
        get("10.0.0.1").await.target_health.state,
        TargetHealthState::Healthy
    );
    let draining = get("10.0.0.2").await;
    assert_eq!(draining.target_health.state, TargetHealthState::Draining);
    assert!(draining.drained_at.is_some(), "drained is recorded");
}
