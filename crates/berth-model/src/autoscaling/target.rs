//! [`ScalableTarget`]: a service whose desired count the autoscaler owns, between
//! `minCapacity` and `maxCapacity`.

use serde::{Deserialize, Serialize};

use super::identity::{check_capacity, ScalableDimension, ServiceNamespace, ServiceRef};
use crate::error::{Result, ValidationError};
use crate::time::Timestamp;

/// A registered scalable target (RegisterScalableTarget). One per service: berth has one
/// scalable dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScalableTarget {
    /// Only `ecs`; may be left out.
    #[serde(default)]
    pub service_namespace: ServiceNamespace,
    /// `service/<cluster>/<service>`.
    pub resource_id: String,
    /// Only `ecs:service:DesiredCount`; may be left out.
    #[serde(default)]
    pub scalable_dimension: ScalableDimension,
    /// 0 to 10000; no more than `maxCapacity`.
    pub min_capacity: i64,
    /// 0 to 10000.
    pub max_capacity: i64,
    /// What the autoscaler may not do for now; nothing is suspended by default.
    #[serde(default)]
    pub suspended_state: SuspendedState,
    // ---- filled in by berth ----
    #[serde(
        default,
        rename = "scalableTargetARN",
        skip_serializing_if = "String::is_empty"
    )]
    pub scalable_target_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Timestamp>,
}

/// Application Auto Scaling's suspension flags; all false unless given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuspendedState {
    /// No scale-in by scaling policies.
    #[serde(default)]
    pub dynamic_scaling_in_suspended: bool,
    /// No scale-out by scaling policies.
    #[serde(default)]
    pub dynamic_scaling_out_suspended: bool,
    /// Scheduled actions do not run.
    #[serde(default)]
    pub scheduled_scaling_suspended: bool,
}

impl ScalableTarget {
    /// Checks the resource on its own; returns the service it names.
    pub fn validate(&self) -> Result<ServiceRef> {
        let svc = ServiceRef::parse("resourceId", &self.resource_id)?;
        check_capacity("minCapacity", self.min_capacity)?;
        check_capacity("maxCapacity", self.max_capacity)?;
        if self.min_capacity > self.max_capacity {
            return Err(ValidationError::new(
                "minCapacity",
                format!(
                    "must not exceed maxCapacity ({}), got {}",
                    self.max_capacity, self.min_capacity
                ),
            ));
        }
        Ok(svc)
    }

    /// The user-written part, for comparing a stack file's target with the stored one.
    pub fn spec(&self) -> ScalableTarget {
        ScalableTarget {
            scalable_target_arn: String::new(),
            creation_time: None,
            ..self.clone()
        }
    }

    /// `count` moved into `[minCapacity, maxCapacity]`.
    pub fn clamp(&self, count: i64) -> i64 {
        count.clamp(self.min_capacity, self.max_capacity.max(self.min_capacity))
    }
}
