//! The identity every autoscaling resource carries: `serviceNamespace` (only `ecs`),
//! `resourceId` (`service/<cluster>/<service>`, parsed into a [`ServiceRef`]),
//! `scalableDimension` (only `ecs:service:DesiredCount`); the resources' ARNs; and the
//! checks of names and capacities they share.

use serde::{Deserialize, Serialize};

use crate::error::{check_name, Result, ValidationError};

/// The largest capacity berth accepts, equal to the largest `desiredCount` of a service.
pub const MAX_CAPACITY: i64 = 10_000;

/// The AWS service a scalable target belongs to. berth scales ECS services only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceNamespace {
    #[default]
    #[serde(rename = "ecs")]
    Ecs,
}

/// What is scaled. berth scales a service's desired count only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalableDimension {
    #[default]
    #[serde(rename = "ecs:service:DesiredCount")]
    EcsServiceDesiredCount,
}

/// The service a `resourceId` (`service/<cluster>/<service>`) names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    pub cluster: String,
    pub service: String,
}

impl ServiceRef {
    /// Parses `service/<cluster>/<service>`; the error names `field`.
    pub fn parse(field: &str, resource_id: &str) -> Result<ServiceRef> {
        let bad = || {
            ValidationError::new(
                field,
                format!("must be service/<cluster>/<service>, got {resource_id:?}"),
            )
        };
        let rest = resource_id.strip_prefix("service/").ok_or_else(bad)?;
        let (cluster, service) = rest.split_once('/').ok_or_else(bad)?;
        check_name(field, cluster, 255).map_err(|_| bad())?;
        check_name(field, service, 255).map_err(|_| bad())?;
        Ok(ServiceRef {
            cluster: cluster.to_string(),
            service: service.to_string(),
        })
    }

    /// `service/<cluster>/<service>`.
    pub fn resource_id(&self) -> String {
        resource_id(&self.cluster, &self.service)
    }
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service/{}/{}", self.cluster, self.service)
    }
}

/// The `resourceId` of a service: `service/<cluster>/<service>`.
pub fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// The ARN of a service's scalable target:
/// `arn:berth:application-autoscaling:<region>:<account>:scalable-target/ecs/service/<cluster>/<service>`.
pub fn scalable_target_arn(service: &ServiceRef) -> String {
    format!(
        "arn:berth:application-autoscaling:{}:{}:scalable-target/ecs/{service}",
        crate::arn::REGION,
        crate::arn::ACCOUNT
    )
}

/// The ARN of a scaling policy, shaped as AWS's without the random id:
/// `arn:berth:autoscaling:<region>:<account>:scalingPolicy:resource/ecs/service/<cluster>/<service>:policyName/<name>`.
pub fn scaling_policy_arn(service: &ServiceRef, name: &str) -> String {
    format!(
        "arn:berth:autoscaling:{}:{}:scalingPolicy:resource/ecs/{service}:policyName/{name}",
        crate::arn::REGION,
        crate::arn::ACCOUNT
    )
}

/// The ARN of a scheduled action:
/// `arn:berth:autoscaling:<region>:<account>:scheduledAction:resource/ecs/service/<cluster>/<service>:scheduledActionName/<name>`.
pub fn scheduled_action_arn(service: &ServiceRef, name: &str) -> String {
    format!(
        "arn:berth:autoscaling:{}:{}:scheduledAction:resource/ecs/{service}:scheduledActionName/{name}",
        crate::arn::REGION,
        crate::arn::ACCOUNT
    )
}

/// Checks a policy or scheduled action name: 1 to 256 printable characters, none of
/// `/`, `:` or `|` (the name is a segment of the store key and of the ARN), no leading or
/// trailing space.
pub(crate) fn check_resource_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 256 {
        return Err(ValidationError::new(
            field,
            format!(
                "must be 1 to 256 characters long, got {} characters",
                name.chars().count()
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '/' | ':' | '|'))
    {
        return Err(ValidationError::new(
            field,
            format!("may not contain control characters, '/', ':' or '|', found {c:?} in {name:?}"),
        ));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(ValidationError::new(
            field,
            format!("may not start or end with a space, got {name:?}"),
        ));
    }
    Ok(())
}

/// Checks `0 <= v <= MAX_CAPACITY`.
pub(crate) fn check_capacity(field: &str, v: i64) -> Result<()> {
    crate::error::check_range(field, v, 0, MAX_CAPACITY)
}
