//! Which capacity a service's new tasks use: the pool of container instances its launch
//! type or capacity provider strategy names ([`pool_of`]), and, with a strategy, which
//! provider each new task counts for ([`assign_providers`]), as ECS splits them: each
//! provider's `base` tasks first, then the rest in proportion to the `weight`s.
//!
//! It does not choose instances (the scheduler does, within the pool) and does not
//! rebalance running tasks: a strategy changed later shapes the tasks started after it.
//! Scale-in stops tasks by the service reconciler's usual rules, whatever their provider.

use berth_model::ecs::capacity_provider::CapacityKind;
use berth_model::ecs::{CapacityProviderStrategyItem, Service, Task, TaskStatus};

use crate::scheduler::CapacityPool;

/// The pool the service's tasks are placed in.
pub fn pool_of(service: &Service) -> CapacityPool {
    match service.capacity_kind() {
        CapacityKind::Managed => CapacityPool::Managed,
        CapacityKind::Instances => CapacityPool::Instances,
    }
}

/// The launch type a new task of `service` records: FARGATE on managed capacity, else
/// the service's own.
pub fn launch_type_of(service: &Service) -> String {
    match service.capacity_kind() {
        CapacityKind::Managed => "FARGATE".into(),
        CapacityKind::Instances => service.launch_type.clone(),
    }
}

/// `task` as the API shows it: a FARGATE task's container instance is not shown (as
/// ECS shows none), although berth keeps it to run and reach the task.
pub fn as_described(mut task: Task) -> Task {
    if task.launch_type == "FARGATE" {
        task.container_instance_arn = None;
    }
    task
}

/// The provider of each of `count` new tasks, in order, given the service's tasks
/// (`tasks`: those that are to keep running count, by their `capacityProviderName`).
/// A provider with a `base` gets tasks until it holds that many; after that each task
/// goes to the provider that, holding it, would be least over its share of the tasks
/// beyond the bases (ties to the earlier provider). Empty without a strategy.
pub fn assign_providers(
    strategy: &[CapacityProviderStrategyItem],
    tasks: &[&Task],
    count: usize,
) -> Vec<String> {
    if strategy.is_empty() {
        return Vec::new();
    }
    let mut held: Vec<u64> = strategy
        .iter()
        .map(|item| {
            tasks
                .iter()
                .filter(|t| t.desired_status == TaskStatus::Running)
                .filter(|t| t.last_status != TaskStatus::Stopped)
                .filter(|t| t.capacity_provider_name.as_deref() == Some(&item.capacity_provider))
                .count() as u64
        })
        .collect();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let i = next_provider(strategy, &held);
        held[i] += 1;
        out.push(strategy[i].capacity_provider.clone());
    }
    out
}

/// The index of the provider the next task goes to, `held` being each one's tasks.
fn next_provider(strategy: &[CapacityProviderStrategyItem], held: &[u64]) -> usize {
    if let Some(i) = strategy
        .iter()
        .zip(held)
        .position(|(item, &n)| n < u64::from(item.base()))
    {
        return i;
    }
    // Beyond the bases: least (beyond + 1) / weight, compared without division.
    let beyond = |i: usize| held[i].saturating_sub(u64::from(strategy[i].base()));
    let mut best: Option<usize> = None;
    for (i, item) in strategy.iter().enumerate() {
        let w = u64::from(item.weight());
        if w == 0 {
            continue;
        }
        best = match best {
            Some(b) if (beyond(b) + 1) * w <= (beyond(i) + 1) * u64::from(strategy[b].weight()) => {
                Some(b)
            }
            _ => Some(i),
        };
    }
    // Validation keeps one weight above 0; with none, the first provider.
    best.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, base: u32, weight: u32) -> CapacityProviderStrategyItem {
        CapacityProviderStrategyItem {
            capacity_provider: name.into(),
            base: Some(base),
            weight: Some(weight),
        }
    }

    fn count(names: &[String], name: &str) -> usize {
        names.iter().filter(|n| *n == name).count()
    }

    #[test]
    fn base_first_then_the_rest_by_weight() {
        // ECS's example: 1 task on FARGATE as base, the rest 1 : 4 with FARGATE_SPOT.
        let strategy = [item("FARGATE", 1, 1), item("FARGATE_SPOT", 0, 4)];
        let got = assign_providers(&strategy, &[], 11);
        assert_eq!(got[0], "FARGATE", "the base comes first: {got:?}");
        assert_eq!(count(&got, "FARGATE"), 1 + 2, "{got:?}");
        assert_eq!(count(&got, "FARGATE_SPOT"), 8, "{got:?}");
        // Equal weights alternate, the earlier provider first.
        let even = [item("a", 0, 1), item("b", 0, 1)];
        assert_eq!(assign_providers(&even, &[], 4), ["a", "b", "a", "b"]);
        // A base larger than the count takes every task.
        let big = [item("a", 0, 1), item("b", 5, 1)];
        assert_eq!(assign_providers(&big, &[], 3), ["b", "b", "b"]);
        // Weight 0 gets only its base.
        let zero = [item("a", 2, 0), item("b", 0, 1)];
        assert_eq!(assign_providers(&zero, &[], 5), ["a", "a", "b", "b", "b"]);
        assert!(assign_providers(&[], &[], 3).is_empty());
    }

    #[test]
    fn the_planner_places_fargate_tasks_on_managed_capacity_only() {
        use crate::scheduler::{MANAGED_CAPACITY_ATTRIBUTE, MANAGED_CAPACITY_VALUE};
        use crate::services::starts::{place_new_tasks, StartRequest};
        use berth_model::ecs::{ContainerInstance, Resource, TaskDefinition};

        let instance = |id: &str, managed: bool| {
            let mut i = ContainerInstance {
                container_instance_arn: id.into(),
                status: "ACTIVE".into(),
                agent_connected: true,
                registered_resources: ["CPU", "MEMORY"]
                    .map(|name| Resource {
                        name: name.into(),
                        integer_value: 4096,
                        ..Default::default()
                    })
                    .to_vec(),
                ..Default::default()
            };
            if managed {
                i.attributes.insert(
                    MANAGED_CAPACITY_ATTRIBUTE.into(),
                    MANAGED_CAPACITY_VALUE.into(),
                );
            }
            i
        };
        let instances = [instance("ec2", false), instance("managed", true)];
        let td: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "web", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
            "requiresCompatibilities": ["FARGATE"],
            "containerDefinitions": [{"name": "web", "image": "x"}]
        }))
        .unwrap();
        let start = |service: &Service| {
            let req = StartRequest {
                service,
                task_definition: &td,
                cluster: "default",
                group: "service:web",
                deployment_id: "ecs-svc/1",
                count: 3,
                now: 0.0,
                placement_seed: 0,
            };
            let mut n = 0;
            let (tasks, failure) =
                place_new_tasks(&req, &instances, &[], &Default::default(), &mut || {
                    n += 1;
                    format!("t{n}")
                });
            assert!(failure.is_none(), "{failure:?}");
            tasks
        };
        let service = |extra: serde_json::Value| -> Service {
            let mut v = serde_json::json!({"serviceName": "web", "taskDefinition": "web"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            serde_json::from_value(v).unwrap()
        };
        let spot = service(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
            {"capacityProvider": "FARGATE_SPOT", "weight": 1}]}));
        let tasks = start(&spot);
        for t in &tasks {
            assert_eq!(t.container_instance_arn.as_deref(), Some("managed"));
            assert_eq!(t.launch_type, "FARGATE");
            assert!(as_described(t.clone()).container_instance_arn.is_none());
        }
        let providers: Vec<_> = tasks
            .iter()
            .map(|t| t.capacity_provider_name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(providers, ["FARGATE", "FARGATE", "FARGATE_SPOT"]);
        let fargate = start(&service(serde_json::json!({"launchType": "FARGATE"})));
        assert!(fargate
            .iter()
            .all(|t| t.container_instance_arn.as_deref() == Some("managed")
                && t.capacity_provider_name.is_none()));
        let ec2 = start(&service(serde_json::json!({})));
        for t in &ec2 {
            assert_eq!(t.container_instance_arn.as_deref(), Some("ec2"));
            assert_eq!(t.launch_type, "EC2");
            assert_eq!(
                as_described(t.clone()).container_instance_arn.as_deref(),
                Some("ec2")
            );
        }
    }

    #[test]
    fn running_tasks_count_toward_their_provider() {
        let strategy = [item("FARGATE", 2, 1), item("FARGATE_SPOT", 0, 1)];
        let task = |provider: &str, desired: TaskStatus, last: TaskStatus| Task {
            capacity_provider_name: Some(provider.into()),
            desired_status: desired,
            last_status: last,
            ..Default::default()
        };
        let tasks = [
            task("FARGATE", TaskStatus::Running, TaskStatus::Running),
            task("FARGATE", TaskStatus::Running, TaskStatus::Running),
            task("FARGATE_SPOT", TaskStatus::Running, TaskStatus::Running),
            // Going away: not counted.
            task("FARGATE_SPOT", TaskStatus::Stopped, TaskStatus::Running),
            task("FARGATE_SPOT", TaskStatus::Running, TaskStatus::Stopped),
        ];
        let refs: Vec<&Task> = tasks.iter().collect();
        // Base met; beyond it FARGATE 0, FARGATE_SPOT 1: FARGATE is behind.
        assert_eq!(
            assign_providers(&strategy, &refs, 3),
            ["FARGATE", "FARGATE", "FARGATE_SPOT"]
        );
    }
}
