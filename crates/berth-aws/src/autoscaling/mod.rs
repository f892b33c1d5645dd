//! Application Auto Scaling over JSON 1.1 (`X-Amz-Target:
//! AnyScaleFrontendService.<Operation>`), for ECS services (`ServiceNamespace: ecs`,
//! `ScalableDimension: ecs:service:DesiredCount`, `ResourceId: service/<c>/<s>`).
//!
//! berth's scalable targets, scaling policies, scheduled actions and scaling activities
//! are Application Auto Scaling's, member for member, in camelCase; [`case`] turns the
//! wire's PascalCase members into berth's and back, and the operations here address
//! the native API's routes by the resource id.

use serde_json::{json, Value};

use crate::json_input::Input;
use crate::native::{enc, Native, NativeError};
use crate::protocol::AwsError;

pub mod case;
mod operations;

/// The operations berth answers, in the order of the README's table.
pub const OPERATIONS: &[&str] = &[
    "RegisterScalableTarget",
    "DescribeScalableTargets",
    "DeregisterScalableTarget",
    "PutScalingPolicy",
    "DescribeScalingPolicies",
    "DeleteScalingPolicy",
    "DescribeScalingActivities",
    "PutScheduledAction",
    "DescribeScheduledActions",
    "DeleteScheduledAction",
];

/// Answers one Application Auto Scaling operation with its JSON result.
pub async fn dispatch(native: &Native, operation: &str, body: &[u8]) -> Result<Value, AwsError> {
    if !OPERATIONS.contains(&operation) {
        return Err(AwsError::new(
            "UnknownOperationException",
            format!("berth's Application Auto Scaling API has no operation {operation:?}"),
        ));
    }
    let input = Input::parse(body, "ValidationException")?;
    use operations as o;
    match operation {
        "RegisterScalableTarget" => o::register_target(native, &input).await,
        "DescribeScalableTargets" => o::describe_targets(native, &input).await,
        "DeregisterScalableTarget" => o::deregister_target(native, &input).await,
        "PutScalingPolicy" => o::put_policy(native, &input).await,
        "DescribeScalingPolicies" => o::describe_policies(native, &input).await,
        "DeleteScalingPolicy" => o::delete_policy(native, &input).await,
        "DescribeScalingActivities" => o::describe_activities(native, &input).await,
        "PutScheduledAction" => o::put_scheduled(native, &input).await,
        "DescribeScheduledActions" => o::describe_scheduled(native, &input).await,
        "DeleteScheduledAction" => o::delete_scheduled(native, &input).await,
        _ => unreachable!("checked against OPERATIONS"),
    }
}

/// The native API's error under Application Auto Scaling's code.
pub fn aas_error(e: NativeError) -> AwsError {
    let code = match e.code.as_str() {
        "ObjectNotFoundException" => "ObjectNotFoundException",
        "ConflictException" => "ConcurrentUpdateException",
        _ if e.status >= 500 => return AwsError::server("InternalServiceException", e.message),
        _ => "ValidationException",
    };
    AwsError::new(code, e.message)
}

/// A resource id's cluster and service (`service/<cluster>/<service>`), after checking
/// the namespace and dimension a request names.
pub fn service_of(input: &Input) -> Result<(String, String), AwsError> {
    check_scope(input)?;
    let id = input.req_str("ResourceId")?;
    parse_resource_id(&id).ok_or_else(|| {
        AwsError::validation(format!(
            "ResourceId: must be service/<cluster>/<service>, got {id:?}"
        ))
    })
}

/// `service/<cluster>/<service>` → (cluster, service).
pub fn parse_resource_id(id: &str) -> Option<(String, String)> {
    let rest = id.strip_prefix("service/")?;
    let (c, s) = rest.split_once('/')?;
    (!c.is_empty() && !s.is_empty() && !s.contains('/')).then(|| (c.to_string(), s.to_string()))
}

/// `ServiceNamespace` must be `ecs` and `ScalableDimension` (when given)
/// `ecs:service:DesiredCount`: berth scales ECS services' desired counts only.
pub fn check_scope(input: &Input) -> Result<(), AwsError> {
    let ns = input.req_str("ServiceNamespace")?;
    if ns != "ecs" {
        return Err(AwsError::validation(format!(
            "ServiceNamespace: berth scales ECS services only (ecs), got {ns:?}"
        )));
    }
    if let Some(d) = input.opt_str("ScalableDimension")? {
        if d != "ecs:service:DesiredCount" {
            return Err(AwsError::validation(format!(
                "ScalableDimension: berth scales ecs:service:DesiredCount only, got {d:?}"
            )));
        }
    }
    Ok(())
}

/// The native path of a service's autoscaling resource `tail`.
pub fn service_path(cluster: &str, service: &str, tail: &str) -> String {
    format!(
        "/v1/clusters/{}/services/{}/{tail}",
        enc(cluster),
        enc(service)
    )
}

/// The `NextToken`/`MaxResults` page of `items` (at most 50 a page).
pub fn page_of(input: &Input, items: Vec<Value>) -> Result<(Vec<Value>, Option<String>), AwsError> {
    crate::paging::page(
        items,
        input.opt_str("NextToken")?.as_deref(),
        input.opt_i64("MaxResults")?,
        50,
        50,
        "NextToken",
        "MaxResults",
    )
    .map_err(|e| AwsError::validation(e.message))
}

/// `{<field>: items, "NextToken": ...}`.
pub fn listed(field: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut out = json!({ field: items });
    if let Some(t) = next {
        out["NextToken"] = Value::String(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_name_a_cluster_and_a_service() {
        assert_eq!(
            parse_resource_id("service/default/web"),
            Some(("default".into(), "web".into()))
        );
        assert_eq!(parse_resource_id("service/default"), None);
        assert_eq!(parse_resource_id("table/x/y"), None);
        assert_eq!(parse_resource_id("service/a/b/c"), None);
    }
}
