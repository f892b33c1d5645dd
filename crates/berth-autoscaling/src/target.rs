//! What the engine knows about one scalable target (an ECS service's desired count): its
//! capacity bounds, its suspension flags, the desired count now, whether a deployment is
//! in progress, and the recent scaling activity that cooldowns are measured from.
//!
//! The reconciler fills these from the stored resources and the service; the engine only
//! reads them. [`RecentActivity::record`] is the one bookkeeping rule the reconciler calls
//! after it applied a change.

use std::time::Duration;

use jiff::Timestamp;

use crate::error::RuleError;
use crate::outcome::{CapacityChange, Direction, Trigger};

/// `minCapacity` and `maxCapacity` of a scalable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityBounds {
    pub min: u32,
    pub max: u32,
}

impl CapacityBounds {
    /// Bounds with `min <= max`, or an error naming both.
    pub fn new(min: u32, max: u32) -> Result<CapacityBounds, RuleError> {
        if min > max {
            return Err(RuleError::MinAboveMax { min, max });
        }
        Ok(CapacityBounds { min, max })
    }

    pub fn clamp(self, desired: u32) -> u32 {
        desired.clamp(self.min, self.max)
    }
}

/// `suspendedState` of a scalable target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SuspendedState {
    pub dynamic_scaling_in_suspended: bool,
    pub dynamic_scaling_out_suspended: bool,
    pub scheduled_scaling_suspended: bool,
}

/// The last scale-out a scaling policy made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleOutRecord {
    pub at: Timestamp,
    /// The desired count before it: during the scale-out cooldown the metric is taken to
    /// still describe this capacity, so the capacity it added counts toward the next
    /// scale-out.
    pub from: u32,
    pub to: u32,
}

/// The scaling policies' recent activity on a target, which cooldowns are measured from.
/// Scheduled actions and clamps into the bounds neither start nor end a cooldown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentActivity {
    pub last_scale_out: Option<ScaleOutRecord>,
    pub last_scale_in: Option<Timestamp>,
}

impl RecentActivity {
    /// Notes a change the reconciler applied at `at`. Only changes a policy made count.
    pub fn record(&mut self, change: &CapacityChange, at: Timestamp) {
        if !matches!(change.trigger, Trigger::Policy { .. }) {
            return;
        }
        match change.direction {
            Direction::Out => {
                self.last_scale_out = Some(ScaleOutRecord {
                    at,
                    from: change.from,
                    to: change.to,
                })
            }
            Direction::In => self.last_scale_in = Some(at),
        }
    }

    /// The scale-out still in its cooldown at `now`, if any.
    pub fn scale_out_in_cooldown(
        &self,
        cooldown: Duration,
        now: Timestamp,
    ) -> Option<ScaleOutRecord> {
        self.last_scale_out
            .filter(|record| now < record.at.checked_add(cooldown).unwrap_or(Timestamp::MAX))
    }

    /// Whether scale-in is blocked at `now`: a scale-in happened less than `cooldown` ago
    /// and no scale-out happened since (a scale-out ends the scale-in cooldown).
    pub fn in_scale_in_cooldown(&self, cooldown: Duration, now: Timestamp) -> bool {
        let Some(scaled_in) = self.last_scale_in else {
            return false;
        };
        let ended_by_scale_out = self
            .last_scale_out
            .is_some_and(|record| record.at > scaled_in);
        !ended_by_scale_out && now < scaled_in.checked_add(cooldown).unwrap_or(Timestamp::MAX)
    }
}

/// One scalable target as the engine sees it at the instant of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetState {
    /// `service/<cluster>/<service>`, used in the causes' alarm names.
    pub resource_id: String,
    pub bounds: CapacityBounds,
    pub suspended: SuspendedState,
    /// The service's desired count now.
    pub desired: u32,
    /// A deployment of the service is in progress: no scale-in (scale-out goes on).
    pub deployment_in_progress: bool,
    pub activity: RecentActivity,
}
