//! Scaling activities, both ways: the records the autoscaler writes for a change or for
//! a decision not to scale, and the cooldown state ([`RecentActivity`]) read back from
//! the stored records, so a restarted server keeps its cooldowns.
//!
//! A scaling activity carries in `details` a small JSON document of berth's
//! ([`ActivityDetails`]: from and to which count, in which direction, by which policy,
//! scheduled action or clamp), as EC2 Auto Scaling's activities carry JSON details. It
//! is what the cooldowns are read from; the wording in `description` and `cause` is
//! AWS's and is never parsed.
//!
//! Decisions not to scale keep AWS's codes where AWS has one and berth's own otherwise
//! (see [`not_scaled_reasons`]); the engine's "nothing to do" outcomes (the metric is
//! within its target, scale-in disabled or not agreed by every policy, a step alarm
//! between steps) are not decisions not to scale and are not recorded.

use berth_autoscaling::{
    CapacityBounds, CapacityChange, Direction, NotScaledCode, RecentActivity, ScaleOutRecord,
    Trigger,
};
use berth_model::autoscaling::{
    NotScaledReason, NotScaledReasonCode, ScalingActivity, ScalingActivityStatusCode,
};
use berth_model::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::service_metrics::window::instant;

/// What berth writes in a scaling activity's `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityDetails {
    pub from_desired_count: u32,
    pub to_desired_count: u32,
    /// `Out` or `In`.
    pub direction: String,
    /// `Policy`, `ScheduledAction` or `Bounds`.
    pub trigger: String,
    /// The policy's or scheduled action's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ActivityDetails {
    pub fn of(change: &CapacityChange) -> Self {
        let (trigger, source) = match &change.trigger {
            Trigger::Policy { name } => ("Policy", Some(name.clone())),
            Trigger::ScheduledAction { name } => ("ScheduledAction", Some(name.clone())),
            Trigger::Bounds => ("Bounds", None),
        };
        Self {
            from_desired_count: change.from,
            to_desired_count: change.to,
            direction: match change.direction {
                Direction::Out => "Out",
                Direction::In => "In",
            }
            .into(),
            trigger: trigger.into(),
            source,
        }
    }
}

/// The status message of a change ECS carried out, in AWS's words.
pub fn fulfilled_message(to: u32) -> String {
    format!("Successfully set desired count to {to}. Change successfully fulfilled by ecs.")
}

/// The activity recording `change`, written with the new desired count.
pub fn scaling_activity(
    resource_id: &str,
    activity_id: String,
    change: &CapacityChange,
    now: Timestamp,
) -> ScalingActivity {
    ScalingActivity {
        activity_id,
        service_namespace: Default::default(),
        resource_id: resource_id.to_string(),
        scalable_dimension: Default::default(),
        description: change.description.clone(),
        cause: change.cause.clone(),
        start_time: now,
        end_time: Some(now),
        status_code: ScalingActivityStatusCode::Successful,
        status_message: Some(fulfilled_message(change.to)),
        details: Some(
            serde_json::to_string(&ActivityDetails::of(change)).expect("details serialize"),
        ),
        not_scaled_reasons: Vec::new(),
    }
}

/// AWS's (or berth's) code for an engine code, or `None` for the outcomes that are not
/// decisions not to scale.
pub fn reason_code(code: NotScaledCode) -> Option<NotScaledReasonCode> {
    Some(match code {
        NotScaledCode::AlreadyAtMaxCapacity => NotScaledReasonCode::AlreadyAtMaxCapacity,
        NotScaledCode::AlreadyAtMinCapacity => NotScaledReasonCode::AlreadyAtMinCapacity,
        NotScaledCode::AlreadyAtDesiredCapacity => NotScaledReasonCode::AlreadyAtDesiredCapacity,
        NotScaledCode::MissingData => NotScaledReasonCode::MissingData,
        NotScaledCode::ScaleOutCooldown | NotScaledCode::ScaleInCooldown => {
            NotScaledReasonCode::InCooldown
        }
        NotScaledCode::DynamicScalingOutSuspended
        | NotScaledCode::DynamicScalingInSuspended
        | NotScaledCode::ScheduledScalingSuspended => NotScaledReasonCode::ScalingSuspended,
        NotScaledCode::DeploymentInProgress => NotScaledReasonCode::DeploymentInProgress,
        NotScaledCode::WithinTarget
        | NotScaledCode::ScaleInDisabled
        | NotScaledCode::ScaleInNotAgreed
        | NotScaledCode::NoStepForMetric => return None,
    })
}

/// The recorded reasons among the engine's, in its order, without repeats, each with
/// the capacities at the time; and the engine's details of those reasons.
pub fn not_scaled_reasons(
    reasons: &[berth_autoscaling::NotScaledReason],
    bounds: CapacityBounds,
    current: u32,
) -> (Vec<NotScaledReason>, Vec<String>) {
    let mut out: Vec<NotScaledReason> = Vec::new();
    let mut details = Vec::new();
    for r in reasons {
        let Some(code) = reason_code(r.code) else {
            continue;
        };
        details.push(match &r.source {
            Some(source) => format!("{source}: {}", r.detail),
            None => r.detail.clone(),
        });
        let reason = NotScaledReason {
            code,
            max_capacity: Some(i64::from(bounds.max)),
            min_capacity: Some(i64::from(bounds.min)),
            current_capacity: Some(i64::from(current)),
        };
        if !out.contains(&reason) {
            out.push(reason);
        }
    }
    (out, details)
}

/// The activity recording a decision not to scale.
pub fn not_scaled_activity(
    resource_id: &str,
    activity_id: String,
    reasons: Vec<NotScaledReason>,
    details: &[String],
    current: u32,
    now: Timestamp,
) -> ScalingActivity {
    let codes: Vec<String> = reasons.iter().map(|r| format!("{:?}", r.code)).collect();
    ScalingActivity {
        activity_id,
        service_namespace: Default::default(),
        resource_id: resource_id.to_string(),
        scalable_dimension: Default::default(),
        description: format!("Keeping desired count at {current}."),
        cause: details.join(". "),
        start_time: now,
        end_time: Some(now),
        status_code: ScalingActivityStatusCode::Failed,
        status_message: Some(format!(
            "Did not change the desired count: {}.",
            codes.join(", ")
        )),
        details: None,
        not_scaled_reasons: reasons,
    }
}

/// The shortest time between two recorded decisions not to scale of one target, in
/// seconds: reasons that flap (a metric sampled late, now missing data, now at the
/// maximum) write at most this often.
pub const NOT_SCALED_MIN_INTERVAL: f64 = 10.0;

/// Whether a decision not to scale for `reasons` at `now` is to be recorded: the newest
/// recorded activity is not a decision not to scale for the same reasons (a scaling in
/// between makes the same reasons news again), and is not a decision not to scale
/// recorded less than [`NOT_SCALED_MIN_INTERVAL`] ago (then the next evaluation after
/// it records the reasons if they still hold).
pub fn is_news(
    reasons: &[NotScaledReason],
    newest: Option<&ScalingActivity>,
    now: Timestamp,
) -> bool {
    if reasons.is_empty() {
        return false;
    }
    match newest {
        None => true,
        Some(a) if a.is_not_scaled() => {
            a.not_scaled_reasons != reasons && now - a.start_time >= NOT_SCALED_MIN_INTERVAL
        }
        Some(_) => true,
    }
}

/// The cooldown state read from a service's activities, newest first: the latest
/// scale-out and the latest scale-in a policy made.
pub fn recent_activity(activities: &[ScalingActivity]) -> RecentActivity {
    let mut recent = RecentActivity::default();
    for a in activities {
        if a.status_code != ScalingActivityStatusCode::Successful {
            continue;
        }
        let Some(d) = a
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str::<ActivityDetails>(d).ok())
        else {
            continue;
        };
        if d.trigger != "Policy" {
            continue;
        }
        let at = instant(a.start_time);
        match d.direction.as_str() {
            "Out" if recent.last_scale_out.is_none() => {
                recent.last_scale_out = Some(ScaleOutRecord {
                    at,
                    from: d.from_desired_count,
                    to: d.to_desired_count,
                })
            }
            "In" if recent.last_scale_in.is_none() => recent.last_scale_in = Some(at),
            _ => {}
        }
        if recent.last_scale_out.is_some() && recent.last_scale_in.is_some() {
            break;
        }
    }
    recent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(from: u32, to: u32, trigger: Trigger) -> CapacityChange {
        CapacityChange::new(from, to, trigger, "because".into())
    }

    fn policy(name: &str) -> Trigger {
        Trigger::Policy { name: name.into() }
    }

    #[test]
    fn cooldowns_are_read_back_from_the_newest_policy_activities() {
        let newest_first = vec![
            scaling_activity(
                "service/default/web",
                "c".into(),
                &change(4, 5, Trigger::ScheduledAction { name: "n".into() }),
                300.0,
            ),
            scaling_activity(
                "service/default/web",
                "b".into(),
                &change(4, 2, policy("p")),
                200.0,
            ),
            scaling_activity(
                "service/default/web",
                "a".into(),
                &change(1, 4, policy("p")),
                100.0,
            ),
            scaling_activity(
                "service/default/web",
                "0".into(),
                &change(1, 9, policy("p")),
                50.0,
            ),
        ];
        let recent = recent_activity(&newest_first);
        assert_eq!(
            recent.last_scale_out,
            Some(ScaleOutRecord {
                at: instant(100.0),
                from: 1,
                to: 4
            })
        );
        assert_eq!(recent.last_scale_in, Some(instant(200.0)));
        assert_eq!(recent_activity(&[]), RecentActivity::default());
    }

    #[test]
    fn a_change_is_recorded_in_aws_words() {
        let a = scaling_activity(
            "service/default/web",
            "id".into(),
            &change(1, 4, policy("p")),
            7.0,
        );
        assert_eq!(a.description, "Setting desired count to 4.");
        assert_eq!(a.status_code, ScalingActivityStatusCode::Successful);
        assert_eq!(
            a.status_message.as_deref(),
            Some("Successfully set desired count to 4. Change successfully fulfilled by ecs.")
        );
        assert!(!a.is_not_scaled());
    }

    #[test]
    fn only_decisions_not_to_scale_are_recorded_and_only_when_they_change() {
        let engine_reasons = vec![
            berth_autoscaling::NotScaledReason {
                source: Some("p".into()),
                code: NotScaledCode::AlreadyAtMaxCapacity,
                detail: "at max".into(),
            },
            berth_autoscaling::NotScaledReason {
                source: Some("q".into()),
                code: NotScaledCode::WithinTarget,
                detail: "fine".into(),
            },
        ];
        let bounds = CapacityBounds { min: 1, max: 4 };
        let (reasons, details) = not_scaled_reasons(&engine_reasons, bounds, 4);
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].code, NotScaledReasonCode::AlreadyAtMaxCapacity);
        assert_eq!(details, vec!["p: at max".to_string()]);
        let recorded = not_scaled_activity(
            "service/default/web",
            "x".into(),
            reasons.clone(),
            &details,
            4,
            1.0,
        );
        assert!(!is_news(&reasons, Some(&recorded), 100.0));
        assert!(is_news(&reasons, None, 100.0));
        let scaled = scaling_activity(
            "service/default/web",
            "y".into(),
            &change(2, 4, policy("p")),
            2.0,
        );
        assert!(is_news(&reasons, Some(&scaled), 2.5));
        let (none, _) = not_scaled_reasons(&engine_reasons[1..], bounds, 4);
        assert!(
            !is_news(&none, None, 100.0),
            "within target is not a decision not to scale"
        );
    }

    #[test]
    fn flapping_reasons_are_recorded_at_most_every_ten_seconds() {
        let bounds = CapacityBounds { min: 1, max: 4 };
        let reason = |code| {
            not_scaled_reasons(
                &[berth_autoscaling::NotScaledReason {
                    source: Some("p".into()),
                    code,
                    detail: String::new(),
                }],
                bounds,
                4,
            )
            .0
        };
        let at_max = reason(NotScaledCode::AlreadyAtMaxCapacity);
        let missing = reason(NotScaledCode::MissingData);
        let recorded =
            not_scaled_activity("service/default/web", "x".into(), at_max, &[], 4, 100.0);
        assert!(!is_news(&missing, Some(&recorded), 109.9));
        assert!(is_news(&missing, Some(&recorded), 110.0));
    }
}
