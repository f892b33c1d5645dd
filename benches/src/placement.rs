//! The placement benchmark's cluster: `instances` container instances spread over three
//! zones, a tenth of them reserved for batch work, and one service asking for `tasks`
//! tasks with a `memberOf` constraint (`attribute:tier != batch`), `spread` over
//! `attribute:ecs.availability-zone` and then `binpack` by memory, the chain the ECS
//! documentation suggests for zone-balanced, dense placement.
//!
//! It builds the inputs and checks the outcome; it does not time anything
//! (`berth-bench-placement` does) and starts no server: placement is a pure function of
//! the instances, the tasks and the service.

use std::collections::BTreeMap;

use berth_model::arn;
use berth_model::ecs::{ContainerInstance, Resource, Service, Task, TaskDefinition};

/// Zones the instances are spread over.
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// The zone attribute the service spreads over.
pub const ZONE_ATTRIBUTE: &str = "ecs.availability-zone";

/// Instance `i` of the benchmark cluster: 8192 CPU units and 16384 MiB, in zone
/// `i % 3`, tier `batch` for every tenth instance, `app` otherwise.
pub fn instance(i: usize) -> ContainerInstance {
    let id = format!("bench-{i:05}");
    let mut attributes = BTreeMap::new();
    attributes.insert(
        ZONE_ATTRIBUTE.to_string(),
        ZONES[i % ZONES.len()].to_string(),
    );
    let tier = if i % 10 == 9 { "batch" } else { "app" };
    attributes.insert("tier".to_string(), tier.to_string());
    let resource = |name: &str, value: i64| Resource {
        name: name.into(),
        integer_value: value,
        ..Default::default()
    };
    ContainerInstance {
        container_instance_arn: arn::container_instance("default", &id),
        ec2_instance_id: id,
        cluster_arn: arn::cluster("default"),
        status: "ACTIVE".into(),
        agent_connected: true,
        registered_resources: vec![resource("CPU", 8192), resource("MEMORY", 16384)],
        attributes,
        runtime: "process".into(),
        ..Default::default()
    }
}

/// The benchmark's instances.
pub fn instances(count: usize) -> Vec<ContainerInstance> {
    (0..count).map(instance).collect()
}

/// The service's task definition: one container, 128 CPU units, 256 MiB, no fixed port.
pub fn task_definition() -> TaskDefinition {
    let mut td: TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": "web",
        "containerDefinitions": [{"name": "web", "image": "web", "cpu": 128, "memory": 256,
            "portMappings": [{"containerPort": 8080, "hostPort": 0}]}]
    }))
    .expect("the benchmark's task definition parses");
    td.task_definition_arn = arn::task_definition("web", 1);
    td
}

/// The service: `desired` tasks, memberOf + spread(zone) + binpack(memory).
pub fn service(desired: usize) -> Service {
    serde_json::from_value(serde_json::json!({
        "serviceName": "web", "cluster": "default", "taskDefinition": "web:1",
        "desiredCount": desired,
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:tier != batch"}],
        "placementStrategy": [
            {"type": "spread", "field": format!("attribute:{ZONE_ATTRIBUTE}")},
            {"type": "binpack", "field": "memory"}
        ]
    }))
    .expect("the benchmark's service parses")
}

/// What a placement produced, checked against the service's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Tasks per zone.
    pub per_zone: BTreeMap<String, usize>,
    /// Instances that got at least one task.
    pub instances_used: usize,
    /// Tasks placed on an instance of the batch tier (must be 0).
    pub on_batch: usize,
}

/// Counts where `tasks` went.
pub fn outcome(instances: &[ContainerInstance], tasks: &[Task]) -> Outcome {
    let by_arn: BTreeMap<&str, &ContainerInstance> = instances
        .iter()
        .map(|i| (i.container_instance_arn.as_str(), i))
        .collect();
    let mut per_zone = BTreeMap::new();
    let mut used = BTreeMap::new();
    let mut on_batch = 0;
    for t in tasks {
        let Some(inst) = t
            .container_instance_arn
            .as_deref()
            .and_then(|a| by_arn.get(a))
        else {
            continue;
        };
        *per_zone
            .entry(inst.attributes[ZONE_ATTRIBUTE].clone())
            .or_insert(0) += 1;
        *used
            .entry(inst.container_instance_arn.as_str())
            .or_insert(0) += 1;
        if inst.attributes["tier"] == "batch" {
            on_batch += 1;
        }
    }
    Outcome {
        per_zone,
        instances_used: used.len(),
        on_batch,
    }
}
