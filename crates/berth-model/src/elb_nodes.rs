//! Which nodes serve a load balancer's listeners. A load balancer's `berth.nodes`
//! attribute is a cluster query expression, written as a `memberOf` placement constraint
//! is (`attribute:zone == edge`); the nodes whose container instances it holds for bind
//! the load balancer's listeners, each with the same configuration. Without it, the
//! server nodes do (instances carrying `berth.node-role = server`). Targets may be on any
//! node either way.
//!
//! Pure: the caller gives the instance as an expression sees it. It does not bind
//! anything or decide health.

use std::collections::BTreeSet;

use crate::ecs::cluster_query::{self, InstanceView};
use crate::elb::LoadBalancer;

/// The instance attribute naming what a node runs: [`SERVER_ROLE`] for `berth server`'s
/// own instance, [`AGENT_ROLE`] for a `berth agent`'s.
pub const NODE_ROLE_ATTRIBUTE: &str = "berth.node-role";
pub const SERVER_ROLE: &str = "server";
pub const AGENT_ROLE: &str = "agent";

/// The load balancer attribute choosing the nodes that serve it.
pub const NODES_ATTRIBUTE: &str = "berth.nodes";

/// Whether the node of the instance `view` describes serves `lb`'s listeners. An
/// expression that does not parse (validation refuses one before it is stored) holds
/// nowhere.
pub fn serves_on(lb: &LoadBalancer, view: &InstanceView<'_>) -> bool {
    match lb.attributes.get(NODES_ATTRIBUTE) {
        None => view.attributes.get(NODE_ROLE_ATTRIBUTE).map(String::as_str) == Some(SERVER_ROLE),
        Some(text) => cluster_query::parse(text).is_ok_and(|e| e.holds_for(view)),
    }
}

/// The ARNs of the target groups `lb`'s listeners forward to, by their default actions
/// and their rules (an action naming its group by name only counts by that name's ARN).
pub fn forwarded_target_groups(lb: &LoadBalancer) -> BTreeSet<String> {
    lb.listeners
        .iter()
        .flat_map(|l| {
            l.default_actions
                .iter()
                .chain(l.rules.iter().flat_map(|r| r.actions.iter()))
        })
        .flat_map(|a| a.target_groups())
        .filter_map(|(arn, name)| match (arn, name) {
            ("", Some(name)) => Some(crate::arn::target_group(name)),
            ("", None) => None,
            (arn, _) => Some(arn.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn view(attributes: &BTreeMap<String, String>) -> InstanceView<'_> {
        InstanceView {
            instance_id: "i-1",
            ec2_instance_id: "i-1",
            attributes,
            registered_at: 0.0,
            running_tasks_count: 0,
            task_groups: Vec::new(),
            agent_connected: true,
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn lb(nodes: Option<&str>) -> LoadBalancer {
        let mut lb: LoadBalancer =
            serde_json::from_value(serde_json::json!({"loadBalancerName": "web"})).unwrap();
        if let Some(n) = nodes {
            lb.attributes.insert(NODES_ATTRIBUTE.into(), n.into());
        }
        lb
    }

    #[test]
    fn without_the_attribute_only_server_nodes_serve() {
        let server = attrs(&[(NODE_ROLE_ATTRIBUTE, SERVER_ROLE)]);
        let agent = attrs(&[(NODE_ROLE_ATTRIBUTE, AGENT_ROLE)]);
        assert!(serves_on(&lb(None), &view(&server)));
        assert!(!serves_on(&lb(None), &view(&agent)));
        assert!(!serves_on(&lb(None), &view(&attrs(&[]))));
    }

    #[test]
    fn the_attribute_chooses_the_nodes_its_expression_holds_for() {
        let edge_agent = attrs(&[(NODE_ROLE_ATTRIBUTE, AGENT_ROLE), ("zone", "edge")]);
        let server = attrs(&[(NODE_ROLE_ATTRIBUTE, SERVER_ROLE)]);
        let edge = lb(Some("attribute:zone == edge"));
        assert!(serves_on(&edge, &view(&edge_agent)));
        assert!(!serves_on(&edge, &view(&server)));
        let everywhere = lb(Some("attribute:berth.node-role exists"));
        assert!(serves_on(&everywhere, &view(&edge_agent)));
        assert!(serves_on(&everywhere, &view(&server)));
        assert!(!serves_on(
            &lb(Some("attribute:zone ==")),
            &view(&edge_agent)
        ));
    }

    #[test]
    fn a_bad_expression_is_refused_naming_the_attribute_and_position() {
        let mut attributes = BTreeMap::new();
        attributes.insert(
            NODES_ATTRIBUTE.to_string(),
            "attribute:zone = edge".to_string(),
        );
        let e = crate::elb_attributes::LoadBalancerAttributes::parse(&attributes).unwrap_err();
        assert_eq!(e.field, "attributes.berth.nodes");
        assert!(e.message.starts_with("at "), "{}", e.message);
    }
}
