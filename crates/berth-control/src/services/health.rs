//! How a service's task stands with its health checks: whether it counts healthy for
//! deployment arithmetic, and which load balancer check (if any) it fails.
//!
//! Pure: it classifies the tasks, targets and task definitions it is given and reads
//! nothing else.

use std::collections::{BTreeMap, BTreeSet};

use berth_model::ecs::{HealthStatus, Service, Task, TaskDefinition, TaskStatus};
use berth_model::elb::{Target, TargetHealthState};

/// The health of one service's tasks, from their container health and their targets.
pub struct TaskHealth<'a> {
    /// Task definitions (by ARN) with an essential container that has a health check:
    /// their tasks count healthy only once the checks pass (ECS does the same).
    checked_definitions: BTreeSet<&'a str>,
    targets_by_task: BTreeMap<&'a str, Vec<&'a Target>>,
    /// The target groups a task must be healthy in: the load balancers' and the mesh's
    /// (so a deployment waits for new tasks to pass the mesh's checks before it stops
    /// old ones, as it does for a load balancer).
    groups: Vec<String>,
}

impl<'a> TaskHealth<'a> {
    /// `definitions` maps the task definition ARNs of `tasks` to their definitions (a
    /// missing one counts as having no container health check).
    pub fn new(
        service: &'a Service,
        tasks: &[&'a Task],
        definitions: &'a BTreeMap<String, TaskDefinition>,
        targets: &'a [Target],
    ) -> Self {
        let checked_definitions = tasks
            .iter()
            .map(|t| t.task_definition_arn.as_str())
            .filter(|arn| {
                definitions
                    .get(*arn)
                    .is_some_and(has_container_health_check)
            })
            .collect();
        let mut targets_by_task: BTreeMap<&str, Vec<&Target>> = BTreeMap::new();
        for t in targets {
            if let Some(task_arn) = &t.task_arn {
                targets_by_task
                    .entry(task_arn.as_str())
                    .or_default()
                    .push(t);
            }
        }
        let groups = service
            .load_balancers
            .iter()
            .map(|lb| lb.target_group_arn.clone())
            .chain(crate::mesh::mesh_target_group_arns(service))
            .collect();
        Self {
            checked_definitions,
            targets_by_task,
            groups,
        }
    }

    /// Whether `t` counts healthy: RUNNING, HEALTHY when its definition has container
    /// health checks (not UNHEALTHY otherwise), and healthy (or with its health check
    /// unavailable) in every target group of the service, its mesh target groups too.
    pub fn is_healthy(&self, t: &Task) -> bool {
        if t.last_status != TaskStatus::Running || t.health_status == HealthStatus::Unhealthy {
            return false;
        }
        if self
            .checked_definitions
            .contains(t.task_definition_arn.as_str())
            && t.health_status != HealthStatus::Healthy
        {
            return false;
        }
        if self.groups.is_empty() {
            return true;
        }
        let targets = self.targets_by_task.get(t.task_arn.as_str());
        self.groups.iter().all(|group| {
            targets.is_some_and(|ts| {
                ts.iter().any(|x| {
                    x.target_group_arn == *group
                        && matches!(
                            x.target_health.state,
                            TargetHealthState::Healthy | TargetHealthState::Unavailable
                        )
                })
            })
        })
    }

    /// The first of `t`'s targets the load balancer finds unhealthy.
    pub fn unhealthy_target(&self, t: &Task) -> Option<&'a Target> {
        self.targets_by_task
            .get(t.task_arn.as_str())?
            .iter()
            .copied()
            .find(|x| x.target_health.state == TargetHealthState::Unhealthy)
    }
}

/// The stopped reason of a task replaced because its container health check failed.
pub const CONTAINER_HEALTH_CHECK_FAILURE: &str = "Task failed container health checks";

/// The stopped reason of a task replaced because it failed the health checks of the
/// target group `target_group_arn`.
pub fn target_health_check_failure(target_group_arn: &str) -> String {
    format!("Task failed ELB health checks in (target-group {target_group_arn})")
}

/// Whether a scheduler's stopped reason is one of the two above: the task was replaced
/// for failing health checks (the circuit breaker counts it).
pub fn is_health_check_failure(stopped_reason: &str) -> bool {
    stopped_reason.contains("health checks")
}

/// Whether an essential container of `td` has a health check.
pub fn has_container_health_check(td: &TaskDefinition) -> bool {
    td.container_definitions
        .iter()
        .any(|c| c.essential && c.health_check.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::ecs::ServiceLoadBalancer;
    use berth_model::elb::TargetHealth;

    fn task(arn: &str, def: &str, health: HealthStatus) -> Task {
        Task {
            task_arn: arn.into(),
            task_definition_arn: def.into(),
            last_status: TaskStatus::Running,
            desired_status: TaskStatus::Running,
            health_status: health,
            ..Default::default()
        }
    }

    fn target(tg: &str, task: &str, state: TargetHealthState) -> Target {
        Target {
            target_group_arn: tg.into(),
            id: "127.0.0.1".into(),
            port: 1,
            task_arn: Some(task.into()),
            target_health: TargetHealth {
                state,
                reason: None,
                description: None,
            },
            registered_at: 0.0,
            deregistering_at: None,
            drained_at: None,
        }
    }

    #[test]
    fn both_replacement_reasons_are_health_check_failures() {
        assert!(is_health_check_failure(CONTAINER_HEALTH_CHECK_FAILURE));
        assert!(is_health_check_failure(&target_health_check_failure("tg")));
        assert!(!is_health_check_failure(
            "Scaling activity initiated by (deployment d)"
        ));
    }

    #[test]
    fn container_checks_must_pass_when_the_definition_has_them() {
        let svc: Service = serde_json::from_value(
            serde_json::json!({"serviceName": "web", "taskDefinition": "web"}),
        )
        .unwrap();
        let mut checked: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "web",
            "containerDefinitions": [{"name": "a", "image": "x",
                "healthCheck": {"command": ["CMD", "true"]}}]
        }))
        .unwrap();
        checked.task_definition_arn = "web:2".into();
        let defs = BTreeMap::from([("web:2".to_string(), checked)]);
        let unknown = task("t1", "web:2", HealthStatus::Unknown);
        let healthy = task("t2", "web:2", HealthStatus::Healthy);
        let unchecked = task("t3", "web:1", HealthStatus::Unknown);
        let mut pending = task("t4", "web:1", HealthStatus::Unknown);
        pending.last_status = TaskStatus::Pending;
        let tasks = [&unknown, &healthy, &unchecked, &pending];
        let h = TaskHealth::new(&svc, &tasks, &defs, &[]);
        assert!(!h.is_healthy(&unknown));
        assert!(h.is_healthy(&healthy));
        assert!(h.is_healthy(&unchecked));
        assert!(!h.is_healthy(&pending));
        let mut sick = unchecked.clone();
        sick.health_status = HealthStatus::Unhealthy;
        assert!(!h.is_healthy(&sick));
    }

    #[test]
    fn load_balanced_tasks_must_be_healthy_in_every_target_group() {
        let mut svc: Service = serde_json::from_value(
            serde_json::json!({"serviceName": "web", "taskDefinition": "web"}),
        )
        .unwrap();
        for tg in ["tg-a", "tg-b"] {
            svc.load_balancers.push(ServiceLoadBalancer {
                target_group_arn: tg.into(),
                container_name: "a".into(),
                container_port: 80,
                ..Default::default()
            });
        }
        let t1 = task("t1", "web:1", HealthStatus::Unknown);
        let t2 = task("t2", "web:1", HealthStatus::Unknown);
        let targets = vec![
            target("tg-a", "t1", TargetHealthState::Healthy),
            target("tg-b", "t1", TargetHealthState::Unavailable),
            target("tg-a", "t2", TargetHealthState::Healthy),
            target("tg-b", "t2", TargetHealthState::Unhealthy),
        ];
        let defs = BTreeMap::new();
        let h = TaskHealth::new(&svc, &[&t1, &t2], &defs, &targets);
        assert!(h.is_healthy(&t1));
        assert!(!h.is_healthy(&t2));
        assert!(h.unhealthy_target(&t1).is_none());
        assert_eq!(h.unhealthy_target(&t2).unwrap().target_group_arn, "tg-b");
    }

    #[test]
    fn mesh_tasks_must_be_healthy_in_their_mesh_group() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "serviceName": "api", "taskDefinition": "api",
            "serviceConnectConfiguration": {"enabled": true, "namespace": "internal",
                "services": [{"portName": "http", "discoveryName": "api"}]}
        }))
        .unwrap();
        let tg = berth_model::arn::target_group(&crate::mesh::target_group_name("internal", "api"));
        let t1 = task("t1", "api:1", HealthStatus::Unknown);
        let t2 = task("t2", "api:1", HealthStatus::Unknown);
        let t3 = task("t3", "api:1", HealthStatus::Unknown);
        let targets = vec![
            target(&tg, "t1", TargetHealthState::Healthy),
            target(&tg, "t2", TargetHealthState::Initial),
        ];
        let defs = BTreeMap::new();
        let h = TaskHealth::new(&svc, &[&t1, &t2, &t3], &defs, &targets);
        assert!(h.is_healthy(&t1));
        assert!(!h.is_healthy(&t2), "still in its initial checks");
        assert!(!h.is_healthy(&t3), "not registered yet");
    }
}
