//! Starting a service's tasks: the start throttle after tasks that never started, and
//! placing each new task on a container instance (see [`crate::scheduler`]).
//!
//! Pure: new tasks are built from the service, its task definition and the instances and
//! tasks they are given; ids come from the caller's id source.

use std::collections::BTreeMap;

use berth_model::arn;
use berth_model::ecs::{
    Container, ContainerInstance, HealthStatus, PlacementConstraint, SchedulingStrategy, Service,
    StopCode, Task, TaskDefinition, TaskStatus,
};
use berth_model::time::Timestamp;

use crate::capacity;
use crate::scheduler::{self, Placed, PlacementFailure, PlacementRound};

/// How long a task that never reached RUNNING holds back the next start of its service,
/// doubling per consecutive failure up to ECS's 15 minutes.
pub const THROTTLE_BASE_SECONDS: f64 = 2.0;
pub const THROTTLE_MAX_SECONDS: f64 = 900.0;

/// Seconds to wait before starting another task of `td` when the most recent ones
/// stopped without ever starting; None when nothing holds starts back.
pub fn throttle(tasks: &[&Task], td: &TaskDefinition, now: Timestamp) -> Option<f64> {
    let mut recent: Vec<&&Task> = tasks
        .iter()
        .filter(|t| t.task_definition_arn == td.task_definition_arn)
        .filter(|t| t.last_status == TaskStatus::Stopped)
        .collect();
    recent.sort_by(|a, b| {
        b.stopped_at
            .partial_cmp(&a.stopped_at)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let failures = recent
        .iter()
        .take_while(|t| t.started_at.is_none() && t.stop_code == Some(StopCode::TaskFailedToStart))
        .count();
    if failures == 0 {
        return None;
    }
    let last = recent[0].stopped_at.unwrap_or(now);
    let backoff =
        (THROTTLE_BASE_SECONDS * 2f64.powi(failures as i32 - 1)).min(THROTTLE_MAX_SECONDS);
    let wait = last + backoff - now;
    (wait > 0.0).then_some(wait)
}

/// What new tasks of a service are started from.
pub struct StartRequest<'a> {
    pub service: &'a Service,
    pub task_definition: &'a TaskDefinition,
    pub cluster: &'a str,
    /// `service:<name>`.
    pub group: &'a str,
    /// The deployment the tasks belong to (their `startedBy`).
    pub deployment_id: &'a str,
    pub count: usize,
    pub now: Timestamp,
    /// Seeds the `random` placement strategy.
    pub placement_seed: u64,
}

/// Places up to `req.count` new tasks, one after the other, each seeing the ones placed
/// before it. Stops at the first task no instance can take and returns why.
///
/// `cluster_tasks` are all of the cluster's tasks; the ones not STOPPED whose definition
/// is in `definitions` hold their resources and ports on their instances.
pub fn place_new_tasks(
    req: &StartRequest<'_>,
    instances: &[ContainerInstance],
    cluster_tasks: &[&Task],
    definitions: &BTreeMap<String, TaskDefinition>,
    new_id: &mut dyn FnMut() -> String,
) -> (Vec<Task>, Option<PlacementFailure>) {
    let td = req.task_definition;
    let placed_before: Vec<Placed> = cluster_tasks
        .iter()
        .copied()
        .filter(|t| t.last_status != TaskStatus::Stopped)
        .filter_map(|t| {
            let d = definitions.get(&t.task_definition_arn)?;
            Some(reservation(t, d))
        })
        .collect();
    let mut constraints = req.service.placement_constraints.clone();
    if req.service.scheduling_strategy == SchedulingStrategy::Daemon {
        constraints.push(PlacementConstraint {
            kind: "distinctInstance".into(),
            expression: None,
        });
    }
    let mut round = PlacementRound::new(
        instances,
        &placed_before,
        td,
        req.group,
        &constraints,
        &req.service.placement_strategy,
        capacity::pool_of(req.service),
    );
    let of_service: Vec<&Task> = cluster_tasks
        .iter()
        .copied()
        .filter(|t| t.group == req.group)
        .collect();
    let providers = capacity::assign_providers(
        &req.service.capacity_provider_strategy,
        &of_service,
        req.count,
    );
    let mut new_tasks: Vec<Task> = Vec::new();
    for n in 0..req.count {
        match round.place(req.placement_seed.wrapping_add(n as u64)) {
            Ok(instance) => {
                round.record(&instance.container_instance_arn);
                let mut task = new_task(req, &instance.container_instance_arn, new_id());
                task.capacity_provider_name = providers.get(n).cloned();
                new_tasks.push(task);
            }
            Err(f) => return (new_tasks, Some(f)),
        }
    }
    (new_tasks, None)
}

/// What `t`, a task of `td`, holds on its instance.
fn reservation<'a>(t: &'a Task, td: &TaskDefinition) -> Placed<'a> {
    Placed {
        task: t,
        cpu: scheduler::task_cpu(td),
        memory: scheduler::task_memory(td),
        ports: scheduler::task_fixed_ports(td),
    }
}

/// A new PROVISIONING task of the request's definition on `instance`, with id `id`.
fn new_task(req: &StartRequest<'_>, instance: &str, id: String) -> Task {
    let td = req.task_definition;
    let cluster = req.cluster;
    Task {
        task_arn: arn::task(cluster, &id),
        cluster_arn: arn::cluster(cluster),
        task_definition_arn: td.task_definition_arn.clone(),
        container_instance_arn: Some(instance.to_string()),
        group: req.group.to_string(),
        started_by: Some(req.deployment_id.to_string()),
        last_status: TaskStatus::Provisioning,
        desired_status: TaskStatus::Running,
        launch_type: capacity::launch_type_of(req.service),
        containers: td
            .container_definitions
            .iter()
            .map(|c| Container {
                container_arn: arn::container(cluster, &id, &c.name),
                name: c.name.clone(),
                image: c.image.clone(),
                last_status: TaskStatus::Pending,
                ..Default::default()
            })
            .collect(),
        health_status: HealthStatus::Unknown,
        created_at: req.now,
        enable_execute_command: req.service.enable_execute_command,
        version: 1,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td() -> TaskDefinition {
        let mut t: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "web",
            "containerDefinitions": [{"name": "web", "image": "x"}]
        }))
        .unwrap();
        t.task_definition_arn = arn::task_definition("web", 1);
        t
    }

    fn failed_start(stopped_at: f64) -> Task {
        Task {
            task_definition_arn: arn::task_definition("web", 1),
            last_status: TaskStatus::Stopped,
            stop_code: Some(StopCode::TaskFailedToStart),
            stopped_at: Some(stopped_at),
            ..Default::default()
        }
    }

    #[test]
    fn throttle_doubles_per_consecutive_failure() {
        let td = td();
        let one = [failed_start(100.0)];
        let refs: Vec<&Task> = one.iter().collect();
        assert_eq!(throttle(&refs, &td, 101.0), Some(1.0));
        assert_eq!(throttle(&refs, &td, 102.0), None, "2 s passed");
        let three = [failed_start(90.0), failed_start(95.0), failed_start(100.0)];
        let refs: Vec<&Task> = three.iter().collect();
        assert_eq!(throttle(&refs, &td, 101.0), Some(7.0), "2 * 2^2 - 1");
        // A task that started and stopped ends the run of failures.
        let mut ok = failed_start(101.0);
        ok.started_at = Some(100.5);
        ok.stop_code = Some(StopCode::EssentialContainerExited);
        let mixed = [failed_start(100.0), ok];
        let refs: Vec<&Task> = mixed.iter().collect();
        assert_eq!(throttle(&refs, &td, 101.5), None);
    }

    #[test]
    fn throttle_is_capped_at_fifteen_minutes() {
        let td = td();
        let many: Vec<Task> = (0..20).map(|i| failed_start(f64::from(i))).collect();
        let refs: Vec<&Task> = many.iter().collect();
        assert_eq!(throttle(&refs, &td, 19.0), Some(THROTTLE_MAX_SECONDS));
    }

    #[test]
    fn a_new_task_records_its_services_enable_execute_command() {
        let td = td();
        for enabled in [false, true] {
            let service: Service = serde_json::from_value(serde_json::json!({
                "serviceName": "web", "cluster": "default", "taskDefinition": "web",
                "enableExecuteCommand": enabled
            }))
            .unwrap();
            let req = StartRequest {
                service: &service,
                task_definition: &td,
                cluster: "default",
                group: "service:web",
                deployment_id: "ecs-svc/1",
                count: 1,
                now: 1.0,
                placement_seed: 0,
            };
            let t = new_task(&req, "instance", "abc".into());
            assert_eq!(t.enable_execute_command, enabled);
        }
    }
}
