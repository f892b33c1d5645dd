//! The tasks of container instances whose agent is gone: once an instance has been
//! disconnected for [`DEFAULT_AGENT_LOST_AFTER`] (or the server's `--agent-lost-after`),
//! every task on it that is not STOPPED is recorded STOPPED (stop code
//! `InfrastructureHealth`), its targets go with it, and the service scheduler starts
//! replacements on the instances that are connected. When the agent comes back, it
//! finds those tasks STOPPED and stops what still runs of them: the duplicates are
//! stopped, never the replacements.
//!
//! ECS itself replaces nothing while an agent is merely disconnected (its tasks stay
//! RUNNING until the instance is deregistered or terminated); berth replaces them after
//! five minutes, Kubernetes' default toleration for an unreachable node, so that a dead
//! machine does not hold a service below its desired count for ever.
//!
//! What it does not do: decide when an agent is disconnected (the node link does, by
//! its change stream) or place the replacements (the service scheduler does).

use std::time::Duration;

use berth_model::ecs::{ContainerInstance, StopCode, Task, TaskStatus};
use berth_model::time::Timestamp;

use crate::db::{self, Db};
use crate::error::ControlError;

/// How long an instance may be disconnected before its tasks are given up.
pub const DEFAULT_AGENT_LOST_AFTER: Duration = Duration::from_secs(300);

/// An instance marked connected whose last heartbeat is older than this is taken as
/// disconnected: three heartbeats missed (its control plane may have died with it, and
/// with it the only record that its stream ended).
pub const HEARTBEAT_STALE_AFTER: Duration = Duration::from_secs(45);

/// The instances marked connected whose heartbeat is stale at `now`, but never `own`
/// (the instance of the server judging: it is alive).
pub fn stale<'a>(
    instances: &'a [ContainerInstance],
    now: Timestamp,
    own: Option<&str>,
) -> Vec<&'a ContainerInstance> {
    instances
        .iter()
        .filter(|i| {
            i.agent_connected
                && Some(i.container_instance_arn.as_str()) != own
                && i.agent_heartbeat_at
                    .is_some_and(|at| now - at > HEARTBEAT_STALE_AFTER.as_secs_f64())
        })
        .collect()
}

/// The instances disconnected for at least `lost_after` at `now`.
pub fn lost(
    instances: &[ContainerInstance],
    now: Timestamp,
    lost_after: Duration,
) -> Vec<&ContainerInstance> {
    instances
        .iter()
        .filter(|i| {
            !i.agent_connected
                && i.agent_disconnected_at
                    .is_some_and(|at| now - at >= lost_after.as_secs_f64())
        })
        .collect()
}

/// Records `task` STOPPED because its instance was lost; returns whether it changed.
pub fn give_up(task: &mut Task, instance_id: &str, lost_after: Duration, now: Timestamp) -> bool {
    if task.last_status == TaskStatus::Stopped {
        return false;
    }
    task.desired_status = TaskStatus::Stopped;
    task.last_status = TaskStatus::Stopped;
    task.stop_code.get_or_insert(StopCode::InfrastructureHealth);
    task.stopped_reason.get_or_insert_with(|| {
        format!(
            "Task stopped because its container instance {instance_id} lost its agent for {} s; its service starts a replacement elsewhere",
            lost_after.as_secs()
        )
    });
    task.stopping_at.get_or_insert(now);
    task.stopped_at = Some(now);
    for c in &mut task.containers {
        c.last_status = TaskStatus::Stopped;
    }
    task.version += 1;
    true
}

/// One pass: marks instances with a stale heartbeat disconnected (from `now`: a control
/// plane that was itself away gives its agents the whole `lost_after` to come back),
/// then gives up the tasks of every lost instance; returns how many tasks.
pub async fn reconcile(
    db: &Db,
    now: Timestamp,
    lost_after: Duration,
    own: Option<&str>,
) -> Result<usize, ControlError> {
    let instances: Vec<ContainerInstance> = db.instances(None).await?;
    for i in stale(&instances, now, own) {
        let Some((cluster, id)) =
            berth_model::arn::container_instance_parts(&i.container_instance_arn)
        else {
            continue;
        };
        let heard = i.agent_heartbeat_at;
        db.update::<ContainerInstance, _>(&db::instance_key(cluster, id), |c| {
            // Only if nothing was heard since.
            if !c.agent_connected || c.agent_heartbeat_at != heard {
                return false;
            }
            c.agent_connected = false;
            c.agent_disconnected_at = Some(now);
            true
        })
        .await?;
        tracing::warn!(instance = %i.ec2_instance_id, "no heartbeat for 45 s: agent disconnected");
    }
    let instances: Vec<ContainerInstance> = db.instances(None).await?;
    let lost = lost(&instances, now, lost_after);
    if lost.is_empty() {
        return Ok(0);
    }
    let mut given_up = 0;
    for task in db.tasks(None).await? {
        let task = task.value;
        let Some(inst) = lost
            .iter()
            .find(|i| task.container_instance_arn.as_deref() == Some(&i.container_instance_arn))
        else {
            continue;
        };
        if task.last_status == TaskStatus::Stopped {
            continue;
        }
        let Some((cluster, id)) = berth_model::arn::task_parts(&task.task_arn) else {
            continue;
        };
        let instance_id = inst.ec2_instance_id.clone();
        db.update::<Task, _>(&db::task_key(cluster, id), |t| {
            give_up(t, &instance_id, lost_after, now)
        })
        .await?;
        tracing::warn!(task = %task.task_arn, instance = %instance_id, "gave up a task of a lost container instance");
        given_up += 1;
    }
    Ok(given_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(connected: bool, since: Option<f64>) -> ContainerInstance {
        ContainerInstance {
            container_instance_arn: "arn:i-1".into(),
            ec2_instance_id: "i-1".into(),
            agent_connected: connected,
            agent_disconnected_at: since,
            ..Default::default()
        }
    }

    #[test]
    fn only_instances_disconnected_long_enough_are_lost() {
        let after = Duration::from_secs(300);
        let all = [
            instance(true, None),
            instance(false, Some(1000.0)),
            instance(false, Some(1250.0)),
            instance(false, None),
        ];
        let lost = lost(&all, 1300.0, after);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].agent_disconnected_at, Some(1000.0));
    }

    #[test]
    fn a_connected_instance_without_a_recent_heartbeat_is_stale_but_never_ones_own() {
        let mut old = instance(true, None);
        old.agent_heartbeat_at = Some(1000.0);
        let mut fresh = old.clone();
        fresh.container_instance_arn = "arn:i-2".into();
        fresh.agent_heartbeat_at = Some(1040.0);
        let mut never = old.clone();
        never.container_instance_arn = "arn:i-3".into();
        never.agent_heartbeat_at = None;
        let all = [old.clone(), fresh, never];
        let found = stale(&all, 1050.0, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].container_instance_arn, "arn:i-1");
        assert!(
            stale(&all, 1050.0, Some("arn:i-1")).is_empty(),
            "never ones own"
        );
    }

    #[test]
    fn a_given_up_task_is_stopped_once_with_the_reason() {
        let mut t = Task {
            desired_status: TaskStatus::Running,
            last_status: TaskStatus::Running,
            ..Default::default()
        };
        assert!(give_up(&mut t, "i-1", Duration::from_secs(300), 5.0));
        assert_eq!(t.last_status, TaskStatus::Stopped);
        assert_eq!(t.stop_code, Some(StopCode::InfrastructureHealth));
        assert!(t
            .stopped_reason
            .as_deref()
            .unwrap()
            .contains("i-1 lost its agent"));
        assert!(
            !give_up(&mut t, "i-1", Duration::from_secs(300), 6.0),
            "once"
        );
    }
}
