//! Deployment bookkeeping after a pass: the PRIMARY deployment of the current task
//! definition with its counts and rollout state, one ACTIVE deployment per older
//! definition that still has tasks, and the last completed deployment kept listed while
//! the primary is not completed (a circuit-breaker rollback returns to it).
//!
//! Pure: it rebuilds the list from the one it is given and the pass's counts.

use std::collections::BTreeMap;

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
    /// Tasks of older definitions wanted RUNNING, per definition ARN: (running, pending).
    pub older: BTreeMap<String, (u32, u32)>,
    pub now: Timestamp,
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
        .unwrap_or_else(|| Deployment {
            id: p.deployment_id.to_string(),
            task_definition: p.task_definition.to_string(),
            created_at: now,
            updated_at: now,
            rollout_state: RolloutState::InProgress,
            ..Default::default()
        });
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
    for (def, (running, pending)) in &p.older {
        let mut d = current
            .iter()
            .find(|d| &d.task_definition == def)
            .cloned()
            .unwrap_or_else(|| Deployment {
                id: format!("ecs-svc/{}", new_short_id()),
                task_definition: def.clone(),
                created_at: now,
                updated_at: now,
                ..Default::default()
            });
        d.status = DeploymentStatus::Active;
        d.desired_count = 0;
        d.running_count = *running;
        d.pending_count = *pending;
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
                .map(|(d, r, p)| (d.to_string(), (*r, *p)))
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
}
