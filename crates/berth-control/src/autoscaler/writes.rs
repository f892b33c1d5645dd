//! What one evaluation's decision writes, as store operations guarded by the revisions
//! the decision was made from: the service's new `desiredCount` with a service event, the
//! scaling activity (or the decision not to scale, when it is news), the oldest activities
//! beyond [`MAX_ACTIVITIES_PER_SERVICE`](berth_model::autoscaling::activity::MAX_ACTIVITIES_PER_SERVICE) removed, and a fired scheduled action's bounds on
//! the scalable target. Pure: it builds the batch, the reconciler writes it.

use berth_autoscaling::{CapacityChange, Evaluation, Trigger};
use berth_model::autoscaling::{ScalableTarget, ScalingActivity, ScalingActivityStatusCode};
use berth_model::ecs::Service;
use berth_store::{Expect, Op};

use super::history;
use crate::db::{self, Versioned};
use crate::service_metrics::ServiceKey;

/// The batch of one decision, and what it records.
#[derive(Debug)]
pub struct DecisionWrites {
    pub ops: Vec<Op>,
    /// The activities it writes, by status.
    pub written: Vec<ScalingActivityStatusCode>,
    /// The desired count once written.
    pub desired: u32,
}

/// The service event for a change, in ECS's wording.
pub fn service_event(service: &str, change: &CapacityChange) -> String {
    let by = match &change.trigger {
        Trigger::Policy { name } => format!("scaling policy {name}"),
        Trigger::ScheduledAction { name } => format!("scheduled action {name}"),
        Trigger::Bounds => "the bounds of its scalable target".to_string(),
    };
    format!(
        "(service {service}) desired count changed from {} to {} by Application Auto Scaling ({by}): {}",
        change.from, change.to, change.description
    )
}

/// The operations for `evaluation` of the target `key`, decided from `service`, `target`
/// and `activities` (newest first) as read, the desired count being `current`.
pub fn decision_ops(
    key: &ServiceKey,
    service: &Versioned<Service>,
    target: &Versioned<ScalableTarget>,
    activities: &[ScalingActivity],
    evaluation: &Evaluation,
    current: u32,
    now: f64,
) -> DecisionWrites {
    let mut out = DecisionWrites {
        ops: Vec::new(),
        written: Vec::new(),
        desired: current,
    };
    let resource_id = key.resource_id();
    if let Some(change) = &evaluation.change {
        let mut next = service.value.clone();
        next.desired_count = i64::from(change.to);
        next.push_event(short_id(), now, service_event(&key.service, change));
        out.ops.push(Op::Put {
            key: service.key.clone(),
            value: db::encode(&next),
            expect: Some(Expect::ModRevision(service.mod_revision)),
        });
        let activity =
            history::scaling_activity(&resource_id, db::new_activity_id(now), change, now);
        out.ops.extend(activity_ops(key, activities, &activity));
        out.written.push(activity.status_code);
        out.desired = change.to;
    } else {
        let (reasons, details) =
            history::not_scaled_reasons(&evaluation.not_scaled, evaluation.bounds, current);
        if history::is_news(&reasons, activities.first(), now) {
            let activity = history::not_scaled_activity(
                &resource_id,
                db::new_activity_id(now),
                reasons,
                &details,
                current,
                now,
            );
            out.ops.extend(activity_ops(key, activities, &activity));
            out.written.push(activity.status_code);
        }
    }
    let stored = (target.value.min_capacity, target.value.max_capacity);
    let fired = (
        i64::from(evaluation.bounds.min),
        i64::from(evaluation.bounds.max),
    );
    if evaluation.fired_action.is_some() && fired != stored {
        let mut next = target.value.clone();
        (next.min_capacity, next.max_capacity) = fired;
        out.ops.push(Op::Put {
            key: target.key.clone(),
            value: db::encode(&next),
            expect: Some(Expect::ModRevision(target.mod_revision)),
        });
    }
    out
}

/// Writes `activity` (a new id) and removes the service's oldest beyond
/// [`MAX_ACTIVITIES_PER_SERVICE`](berth_model::autoscaling::activity::MAX_ACTIVITIES_PER_SERVICE) (`activities`: the stored ones).
fn activity_ops(
    key: &ServiceKey,
    activities: &[ScalingActivity],
    activity: &ScalingActivity,
) -> Vec<Op> {
    let stored = activities
        .iter()
        .map(|a| db::scaling_activity_key(&key.cluster, &key.service, &a.activity_id));
    db::scaling_activity_ops(
        &key.cluster,
        &key.service,
        stored,
        activity,
        Some(Expect::Absent),
    )
}

/// A short event id.
fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}
