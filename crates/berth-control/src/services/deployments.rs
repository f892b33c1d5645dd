//! Deployment bookkeeping: which deployment is current, and after a pass the PRIMARY
//! deployment with its counts and rollout state, one ACTIVE deployment per older
//! deployment that still has tasks, and the last completed deployment kept listed while
//! the primary is not completed (a circuit-breaker rollback returns to it); and the list
//! after a forced new deployment ([`force_new`]).
//!
//! Pure: it rebuilds the list from the one it is given and the pass's counts; it does
//! not decide which task belongs to which deployment (the planner does).

use berth_model::ecs::{Deployment, DeploymentStatus, RolloutState};
use berth_model::time::Timestamp;

/// What a pass observed of the service's deployments.
pub struct RolloutProgress<'a> {
    /// The current task definition's ARN.
    pub task_definition: &'a str,
    /// The id of its deployment (a new one when the service has none for it yet).
    pub deployment_id: &'a str,
    pub desired: u32,
    /// Tasks of the current definition that are RUNNING, and not yet RUNNING.
    pub running: u32,
    pub pending: u32,
    /// Whether the service is in its steady state (see the planner).
    pub steady: bool,
    /// Tasks of older deployments wanted RUNNING, one entry per deployment (or per task
    /// definition, for tasks that name no listed deployment).
    pub older: Vec<OlderTasks>,
    pub now: Timestamp,
}

/// Tasks of one older deployment wanted RUNNING.
#[derive(Debug, Clone, PartialEq)]
pub struct OlderTasks {
    /// The listed deployment their `startedBy` names; None for tasks naming none, which
    /// go with a deployment of their task definition (a new one if none is listed).
    pub deployment_id: Option<String>,
    pub task_definition: String,
    pub running: u32,
    pub pending: u32,
}

/// The deployment whose tasks the service wants for task definition `task_definition`
/// (an ARN): the PRIMARY deployment when it is of that definition (a forced deployment
/// is one), else a listed deployment of that definition that did not fail (the service
/// went back to it), else none (a new deployment is due).
pub fn current<'a>(deployments: &'a [Deployment], task_definition: &str) -> Option<&'a Deployment> {
    let of_definition = |d: &&Deployment| d.task_definition == task_definition;
    deployments
        .iter()
        .filter(of_definition)
        .find(|d| d.status == DeploymentStatus::Primary)
        .or_else(|| {
            deployments
                .iter()
                .filter(of_definition)
                .find(|d| d.rollout_state != RolloutState::Failed)
        })
}

/// A new PRIMARY deployment, in progress.
fn new_primary(id: &str, task_definition: &str, now: Timestamp) -> Deployment {
    Deployment {
        id: id.to_string(),
        status: DeploymentStatus::Primary,
        task_definition: task_definition.to_string(),
        created_at: now,
        updated_at: now,
        rollout_state: RolloutState::InProgress,
        ..Default::default()
    }
}

/// The deployments after forcing a new deployment `id` of `task_definition` (an ARN):
/// it becomes the PRIMARY deployment, with `desired` tasks to run and none yet, and the
/// PRIMARY deployment before it becomes ACTIVE (its tasks are then replaced as those of
/// an older task definition are).
pub fn force_new(
    current: &[Deployment],
    id: &str,
    task_definition: &str,
    desired: u32,
    now: Timestamp,
) -> Vec<Deployment> {
    let mut primary = new_primary(id, task_definition, now);
    primary.desired_count = desired;
    let mut out = vec![primary];
    for d in current {
        let mut d = d.clone();
        if d.status == DeploymentStatus::Primary {
            d.status = DeploymentStatus::Active;
            d.desired_count = 0;
            d.updated_at = now;
        }
        out.push(d);
    }
    out
}

/// Whether `deployments` record a completed primary deployment: the service was steady.
pub fn was_steady(deployments: &[Deployment]) -> bool {
    deployments.iter().any(|d| {
        d.status == DeploymentStatus::Primary && d.rollout_state == RolloutState::Completed
    })
}

/// The deployments after the pass, primary first. `new_short_id` names a deployment
/// recorded for the first time for an older definition.
pub fn next_deployments(
    current: &[Deployment],
    p: &RolloutProgress<'_>,
    new_short_id: &mut dyn FnMut() -> String,
) -> Vec<Deployment> {
    let now = p.now;
    let mut primary = current
        .iter()
        .find(|d| d.id == p.deployment_id)
        .cloned()
        .unwrap_or_else(|| new_primary(p.deployment_id, p.task_definition, now));
    primary.status = DeploymentStatus::Primary;
    primary.desired_count = p.desired;
    primary.running_count = p.running;
    primary.pending_count = p.pending;
    if p.steady && primary.rollout_state != RolloutState::Completed {
        primary.rollout_state = RolloutState::Completed;
        primary.rollout_state_reason = "ECS deployment completed.".into();
        primary.updated_at = now;
    } else if !p.steady && primary.rollout_state == RolloutState::Completed && !p.older.is_empty() {
        primary.rollout_state = RolloutState::InProgress;
    }
    let mut deployments = vec![primary];
    for o in &p.older {
        let listed = match &o.deployment_id {
            Some(id) => current.iter().find(|d| &d.id == id),
            None => current
                .iter()
                .find(|d| d.task_definition == o.task_definition && d.id != p.deployment_id),
        };
        // Tasks naming no deployment may join one already counted.
        if let Some(d) = listed.and_then(|l| deployments.iter_mut().find(|d| d.id == l.id)) {
            d.running_count += o.running;
            d.pending_count += o.pending;
            continue;
        }
        let mut d = listed.cloned().unwrap_or_else(|| Deployment {
            id: format!("ecs-svc/{}", new_short_id()),
            task_definition: o.task_definition.clone(),
            created_at: now,
            updated_at: now,
            ..Default::default()
        });
        d.status = DeploymentStatus::Active;
        d.desired_count = 0;
        d.running_count = o.running;
        d.pending_count = o.pending;
        deployments.push(d);
    }
    // Until the new deployment completes, the last completed one stays listed: it is
    // what a circuit-breaker rollback returns to.
    if deployments[0].rollout_state != RolloutState::Completed {
        let last_completed = current
            .iter()
            .filter(|d| d.rollout_state == RolloutState::Completed)
            .filter(|d| !deployments.iter().any(|x| x.id == d.id))
            .max_by(|a, b| a.created_at.total_cmp(&b.created_at));
        if let Some(d) = last_completed {
            let mut d = d.clone();
            d.status = DeploymentStatus::Active;
            d.desired_count = 0;
            d.running_count = 0;
            d.pending_count = 0;
            deployments.push(d);
        }
    }
    deployments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: &str, td: &str, status: DeploymentStatus, state: RolloutState) -> Deployment {
        Deployment {
            id: id.into(),
            status,
            task_definition: td.into(),
            rollout_state: state,
            ..Default::default()
        }
    }

    fn progress<'a>(steady: bool, older: &[(&str, u32, u32)]) -> RolloutProgress<'a> {
        RolloutProgress {
            task_definition: "web:2",
            deployment_id: "ecs-svc/new",
            desired: 2,
            running: 1,
            pending: 1,
            steady,
            older: older
                .iter()
                .map(|(d, r, p)| OlderTasks {
                    deployment_id: None,
                    task_definition: d.to_string(),
                    running: *r,
                    pending: *p,
                })
                .collect(),
            now: 5.0,
        }
    }

    #[test]
    fn a_new_primary_keeps_the_last_completed_listed() {
        let current = [deployment(
            "ecs-svc/old",
            "web:1",
            DeploymentStatus::Primary,
            RolloutState::Completed,
        )];
        let mut ids = || "fresh".to_string();
        let out = next_deployments(&current, &progress(false, &[("web:1", 2, 0)]), &mut ids);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].id, "ecs-svc/new");
        assert_eq!(out[0].status, DeploymentStatus::Primary);
        assert_eq!(out[0].rollout_state, RolloutState::InProgress);
        assert_eq!(
            (
                out[0].desired_count,
                out[0].running_count,
                out[0].pending_count
            ),
            (2, 1, 1)
        );
        assert_eq!(out[0].created_at, 5.0);
        assert_eq!(out[1].id, "ecs-svc/old");
        assert_eq!(out[1].status, DeploymentStatus::Active);
        assert_eq!((out[1].desired_count, out[1].running_count), (0, 2));
        assert!(!was_steady(&out));
    }

    #[test]
    fn steady_completes_the_primary_and_drops_the_rest() {
        let current = [
            deployment(
                "ecs-svc/new",
                "web:2",
                DeploymentStatus::Primary,
                RolloutState::InProgress,
            ),
            deployment(
                "ecs-svc/old",
                "web:1",
                DeploymentStatus::Active,
                RolloutState::Completed,
            ),
        ];
        let mut ids = || "fresh".to_string();
        let out = next_deployments(&current, &progress(true, &[]), &mut ids);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].rollout_state, RolloutState::Completed);
        assert_eq!(out[0].rollout_state_reason, "ECS deployment completed.");
        assert_eq!(out[0].updated_at, 5.0);
        assert!(was_steady(&out));
    }

    #[test]
    fn an_older_definition_without_a_record_gets_one() {
        let mut ids = || "abc".to_string();
        let out = next_deployments(&[], &progress(false, &[("web:0", 0, 1)]), &mut ids);
        assert_eq!(out[1].id, "ecs-svc/abc");
        assert_eq!(out[1].task_definition, "web:0");
        assert_eq!(out[1].pending_count, 1);
    }

    #[test]
    fn a_completed_primary_with_older_tasks_is_in_progress_again() {
        let current = [deployment(
            "ecs-svc/new",
            "web:2",
            DeploymentStatus::Primary,
            RolloutState::Completed,
        )];
        let mut ids = || "fresh".to_string();
        let out = next_deployments(&current, &progress(false, &[("web:1", 1, 0)]), &mut ids);
        assert_eq!(out[0].rollout_state, RolloutState::InProgress);
        // Without older tasks a completed primary stays completed while not steady.
        let out = next_deployments(&current, &progress(false, &[]), &mut ids);
        assert_eq!(out[0].rollout_state, RolloutState::Completed);
    }

    #[test]
    fn a_forced_deployment_is_primary_and_the_old_primary_active() {
        let current = [deployment(
            "ecs-svc/old",
            "web:2",
            DeploymentStatus::Primary,
            RolloutState::Completed,
        )];
        let out = force_new(&current, "ecs-svc/forced", "web:2", 3, 7.0);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].id, "ecs-svc/forced");
        assert_eq!(out[0].status, DeploymentStatus::Primary);
        assert_eq!(out[0].rollout_state, RolloutState::InProgress);
        assert_eq!((out[0].desired_count, out[0].running_count), (3, 0));
        assert_eq!((out[0].created_at, out[0].updated_at), (7.0, 7.0));
        assert_eq!(out[1].id, "ecs-svc/old");
        assert_eq!(out[1].status, DeploymentStatus::Active);
        assert_eq!(out[1].rollout_state, RolloutState::Completed);
        assert_eq!(
            super::current(&out, "web:2").map(|d| d.id.as_str()),
            Some("ecs-svc/forced")
        );
    }

    #[test]
    fn the_current_deployment_is_the_primary_of_the_definition_else_one_that_did_not_fail() {
        let list = [
            deployment(
                "ecs-svc/new",
                "web:2",
                DeploymentStatus::Primary,
                RolloutState::InProgress,
            ),
            deployment(
                "ecs-svc/old",
                "web:1",
                DeploymentStatus::Active,
                RolloutState::Completed,
            ),
            deployment(
                "ecs-svc/bad",
                "web:3",
                DeploymentStatus::Active,
                RolloutState::Failed,
            ),
        ];
        assert_eq!(current(&list, "web:2").unwrap().id, "ecs-svc/new");
        assert_eq!(current(&list, "web:1").unwrap().id, "ecs-svc/old");
        assert!(
            current(&list, "web:3").is_none(),
            "a failed one is not returned to"
        );
        assert!(current(&list, "web:4").is_none());
    }

    #[test]
    fn tasks_of_one_older_deployment_counted_twice_are_one_entry() {
        let current = [
            deployment(
                "ecs-svc/new",
                "web:2",
                DeploymentStatus::Primary,
                RolloutState::InProgress,
            ),
            deployment(
                "ecs-svc/old",
                "web:1",
                DeploymentStatus::Active,
                RolloutState::Completed,
            ),
        ];
        let mut p = progress(false, &[("web:1", 1, 0)]);
        p.older.push(OlderTasks {
            deployment_id: Some("ecs-svc/old".into()),
            task_definition: "web:1".into(),
            running: 2,
            pending: 1,
        });
        let mut ids = || "fresh".to_string();
        let out = next_deployments(&current, &p, &mut ids);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!((out[1].running_count, out[1].pending_count), (3, 1));
    }
}
