//! The deployment circuit breaker: counts a deployment's failed tasks and, past ECS's
//! threshold, fails the deployment and (with `rollback`) makes the last completed
//! deployment PRIMARY again and points the service back at its task definition.
//!
//! Pure: it decides from the service and tasks it is given; the executor writes.

use berth_model::ecs::{
    Deployment, DeploymentStatus, RolloutState, Service, StopCode, Task, TaskStatus,
};
use berth_model::time::Timestamp;

use super::plan_output::{PlannedEvent, ServiceUpdate};

/// The deployment circuit breaker's failure threshold, as ECS computes it.
pub fn breaker_threshold(desired: usize) -> usize {
    desired.div_ceil(2).clamp(10, 200)
}

/// Whether a stopped task counts against its deployment: it never started, failed its
/// health checks, or an essential container exited with a non-zero code (ECS counts only
/// the first two; a crash loop after RUNNING is a failed deployment too).
pub fn is_deployment_failure(t: &Task) -> bool {
    if t.last_status != TaskStatus::Stopped {
        return false;
    }
    match t.stop_code {
        Some(StopCode::TaskFailedToStart) => true,
        Some(StopCode::EssentialContainerExited) => t
            .containers
            .iter()
            .any(|c| c.exit_code.is_some_and(|x| x != 0)),
        Some(StopCode::ServiceSchedulerInitiated) => t
            .stopped_reason
            .as_deref()
            .is_some_and(super::health::is_health_check_failure),
        _ => false,
    }
}

/// How many of `tasks` the deployment `deployment_id` started and lost to failures.
pub fn failure_count(tasks: &[&Task], deployment_id: &str) -> usize {
    tasks
        .iter()
        .filter(|t| t.started_by.as_deref() == Some(deployment_id) && is_deployment_failure(t))
        .count()
}

/// Whether the breaker trips for `deployment` (the current task definition's) with
/// `failures` failed tasks toward `desired`.
pub fn trips(svc: &Service, deployment: &Deployment, failures: usize, desired: usize) -> bool {
    svc.deployment_configuration
        .deployment_circuit_breaker
        .as_ref()
        .is_some_and(|cb| {
            cb.enable
                && deployment.rollout_state == RolloutState::InProgress
                && failures >= breaker_threshold(desired)
        })
}

/// The service record after the breaker failed `failed_id`, and the events saying so.
/// With `rollback`, the service's task definition becomes the most recent completed
/// deployment's (the next pass rolls back to it); without one there is nothing to
/// return to and the service stays on the failed definition.
pub fn trip(
    svc: &Service,
    failed_id: &str,
    failures: usize,
    rollback: bool,
    now: Timestamp,
) -> (ServiceUpdate, Vec<PlannedEvent>) {
    let name = &svc.service_name;
    let last_completed = svc
        .deployments
        .iter()
        .filter(|d| d.id != failed_id && d.rollout_state == RolloutState::Completed)
        .max_by(|a, b| a.created_at.total_cmp(&b.created_at))
        .map(|d| (d.id.clone(), d.task_definition.clone()));
    let mut deployments = svc.deployments.clone();
    for d in deployments.iter_mut().filter(|d| d.id == failed_id) {
        d.rollout_state = RolloutState::Failed;
        d.rollout_state_reason = format!(
            "ECS deployment circuit breaker: {failures} tasks failed to start or stay healthy."
        );
        d.updated_at = now;
    }
    let mut events = vec![PlannedEvent::always(format!(
        "(service {name}) (deployment {failed_id}) deployment failed: tasks failed to start."
    ))];
    let mut task_definition = svc.task_definition.clone();
    if rollback {
        if let Some((id, td)) = last_completed {
            events.push(PlannedEvent::always(format!(
                "(service {name}) rolling back to {td}."
            )));
            // The completed deployment is PRIMARY again, so the next pass wants its
            // tasks also when the failed one ran the same task definition (a forced
            // deployment).
            for d in deployments.iter_mut() {
                if d.id == id {
                    d.status = DeploymentStatus::Primary;
                } else if d.status == DeploymentStatus::Primary {
                    d.status = DeploymentStatus::Active;
                }
            }
            task_definition = td;
        }
    }
    let update = ServiceUpdate {
        task_definition,
        running_count: svc.running_count,
        pending_count: svc.pending_count,
        deployments,
    };
    (update, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::ecs::Container;

    #[test]
    fn threshold_is_ecs_formula() {
        assert_eq!(breaker_threshold(1), 10);
        assert_eq!(breaker_threshold(30), 15);
        assert_eq!(breaker_threshold(1000), 200);
    }

    #[test]
    fn what_counts_as_a_failure() {
        let stopped = |code: StopCode| Task {
            last_status: TaskStatus::Stopped,
            stop_code: Some(code),
            ..Default::default()
        };
        assert!(is_deployment_failure(&stopped(StopCode::TaskFailedToStart)));
        assert!(!is_deployment_failure(&stopped(StopCode::UserInitiated)));
        let mut crashed = stopped(StopCode::EssentialContainerExited);
        assert!(!is_deployment_failure(&crashed), "no exit code yet");
        crashed.containers.push(Container {
            exit_code: Some(1),
            ..Default::default()
        });
        assert!(is_deployment_failure(&crashed));
        crashed.containers[0].exit_code = Some(0);
        assert!(!is_deployment_failure(&crashed), "a clean exit");
        let mut replaced = stopped(StopCode::ServiceSchedulerInitiated);
        replaced.stopped_reason = Some("Scaling activity initiated by (deployment x)".into());
        assert!(!is_deployment_failure(&replaced));
        replaced.stopped_reason = Some("Task failed ELB health checks in (target-group t)".into());
        assert!(is_deployment_failure(&replaced));
        let mut running = stopped(StopCode::TaskFailedToStart);
        running.last_status = TaskStatus::Running;
        assert!(!is_deployment_failure(&running), "only stopped tasks count");
    }
}
