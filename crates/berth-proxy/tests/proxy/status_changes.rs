//! `Proxy::subscribe` fires when a target status changes, and only then: applying the
//! configuration already served changes no status and must not fire (the control plane
//! runs a pass on every notification and applies on every pass).

use serde_json::json;

use crate::common::*;

fn unchecked_group() -> berth_model::elb::TargetGroup {
    target_group(TG, "web", json!({"healthCheckEnabled": false}))
}

#[tokio::test]
async fn applying_the_same_configuration_again_notifies_nobody() {
    let (p, _) = proxy();
    let mut changes = p.subscribe();
    let a: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let b: std::net::SocketAddr = "127.0.0.1:2".parse().unwrap();

    p.apply(simple_config(unchecked_group(), vec![target(a)]))
        .await
        .unwrap();
    assert!(changes.has_changed().unwrap(), "a new group with a target");
    changes.mark_unchanged();

    for _ in 0..3 {
        p.apply(simple_config(unchecked_group(), vec![target(a)]))
            .await
            .unwrap();
        assert!(!changes.has_changed().unwrap(), "the same configuration");
    }

    p.apply(simple_config(unchecked_group(), vec![target(a), target(b)]))
        .await
        .unwrap();
    assert!(changes.has_changed().unwrap(), "a target added");
    changes.mark_unchanged();

    p.apply(simple_config(
        unchecked_group(),
        vec![target(a), draining(b)],
    ))
    .await
    .unwrap();
    assert!(changes.has_changed().unwrap(), "a target draining");
    changes.mark_unchanged();

    p.apply(simple_config(unchecked_group(), vec![target(a), target(b)]))
        .await
        .unwrap();
    assert!(
        changes.has_changed().unwrap(),
        "a target no longer draining"
    );
    changes.mark_unchanged();

    let mut none = simple_config(unchecked_group(), vec![]);
    none.load_balancers.clear();
    none.target_groups.clear();
    p.apply(none).await.unwrap();
    assert!(changes.has_changed().unwrap(), "the group removed");
    assert!(p.target_statuses().is_empty());
}
