//! [`ScalingActivity`]: what the autoscaler did to a service's desired count, or decided
//! not to do and why. berth records the decisions not to scale too (AWS hides most of
//! them): a not-scaled activity carries `notScaledReasons`.

use serde::{Deserialize, Serialize};

use super::identity::{ScalableDimension, ServiceNamespace};
use crate::time::Timestamp;

/// How many activities berth keeps per service; older ones are removed as new ones are
/// written.
pub const MAX_ACTIVITIES_PER_SERVICE: usize = 100;

/// One scaling activity, as DescribeScalingActivities returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingActivity {
    /// Unique and ordered by time: later activities sort after earlier ones.
    pub activity_id: String,
    #[serde(default)]
    pub service_namespace: ServiceNamespace,
    /// `service/<cluster>/<service>`.
    pub resource_id: String,
    #[serde(default)]
    pub scalable_dimension: ScalableDimension,
    /// E.g. "Setting desired count to 4.".
    pub description: String,
    /// E.g. "monitor alarm ... in state ALARM triggered policy cpu70" with the metric
    /// value that did it.
    pub cause: String,
    pub start_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    pub status_code: ScalingActivityStatusCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Why the autoscaler did not scale; empty for an activity that scaled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_scaled_reasons: Vec<NotScaledReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalingActivityStatusCode {
    Pending,
    InProgress,
    Successful,
    Overridden,
    Unfulfilled,
    Failed,
}

/// A reason not to scale, with the capacities at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotScaledReason {
    pub code: NotScaledReasonCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_capacity: Option<i64>,
}

/// Application Auto Scaling's codes, then berth's own for the decisions AWS does not
/// report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotScaledReasonCode {
    AutoScalingAnticipatedFlapping,
    TargetServicePutResourceAsUnscalable,
    AlreadyAtMaxCapacity,
    AlreadyAtMinCapacity,
    AlreadyAtDesiredCapacity,
    /// berth: a scale-out or scale-in cooldown is running.
    InCooldown,
    /// berth: the direction is suspended in the target's `suspendedState`.
    ScalingSuspended,
    /// berth: scale-in waits while the service has a deployment in progress.
    DeploymentInProgress,
    /// berth: the metric has no data for the window; missing data never scales in.
    MissingData,
}

impl ScalingActivity {
    /// Whether this records a decision not to scale.
    pub fn is_not_scaled(&self) -> bool {
        !self.not_scaled_reasons.is_empty()
    }
}
