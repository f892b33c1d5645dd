//! ELBv2 over the query protocol: form-encoded `Action=<Op>&Version=2015-12-01`
//! requests, XML answers in ELBv2's namespace, errors as `<ErrorResponse>` with ELBv2's
//! codes (`TargetGroupNotFound`, `DuplicateLoadBalancerName`, ...).
//!
//! berth stores a load balancer with its listeners and rules as one document, so the
//! listener and rule operations read the load balancer, change it and apply it whole.
//!
//! Layout: [`form`] (reading parameters), [`xml`] (writing answers), [`actions`]
//! (actions and rule conditions both ways), [`target_groups`], [`load_balancers`],
//! [`listeners`] (listeners and rules), [`targets`] (targets and their health).

use axum::response::Response;

use serde_json::Value;

use crate::native::{Native, NativeError};
use crate::protocol::{xml_ok, AwsError};

pub mod actions;
pub mod form;
pub mod listeners;
pub mod load_balancers;
pub mod target_groups;
pub mod targets;
pub mod xml;

use form::Params;

/// The XML namespace of ELBv2's answers.
pub const XMLNS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
/// The API version berth answers.
pub const VERSION: &str = "2015-12-01";

/// The actions berth answers, in the order of the README's table.
pub const ACTIONS: &[&str] = &[
    "CreateTargetGroup",
    "DescribeTargetGroups",
    "DeleteTargetGroup",
    "ModifyTargetGroup",
    "DescribeTargetGroupAttributes",
    "ModifyTargetGroupAttributes",
    "CreateLoadBalancer",
    "DescribeLoadBalancers",
    "DeleteLoadBalancer",
    "DescribeLoadBalancerAttributes",
    "ModifyLoadBalancerAttributes",
    "CreateListener",
    "DescribeListeners",
    "ModifyListener",
    "DeleteListener",
    "CreateRule",
    "DescribeRules",
    "ModifyRule",
    "DeleteRule",
    "SetRulePriorities",
    "RegisterTargets",
    "DeregisterTargets",
    "DescribeTargetHealth",
];

/// Answers one query-protocol request.
pub async fn handle(
    native: &Native,
    db: &berth_control::Db,
    pairs: &[(String, String)],
    request_id: &str,
) -> Response {
    let p = Params::new(pairs);
    let action = p.get("Action").unwrap_or("").to_string();
    match dispatch(native, db, &action, &p).await {
        Ok(result) => xml_ok(
            xml::document(&action, XMLNS, &result, request_id),
            request_id,
        ),
        Err(e) => e.query_response(XMLNS, request_id),
    }
}

async fn dispatch(
    native: &Native,
    db: &berth_control::Db,
    action: &str,
    p: &Params,
) -> Result<String, AwsError> {
    if !ACTIONS.contains(&action) {
        return Err(AwsError::new(
            "InvalidAction",
            format!("berth's ELBv2 API has no action {action:?}"),
        ));
    }
    if let Some(v) = p.get("Version").filter(|v| *v != VERSION) {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Version: berth answers ELBv2 version {VERSION}, got {v:?}"),
        ));
    }
    match action {
        "CreateTargetGroup" => target_groups::create(native, p).await,
        "DescribeTargetGroups" => target_groups::describe(native, p).await,
        "DeleteTargetGroup" => target_groups::delete(native, p).await,
        "ModifyTargetGroup" => target_groups::modify(native, p).await,
        "DescribeTargetGroupAttributes" => target_groups::describe_attributes(native, p).await,
        "ModifyTargetGroupAttributes" => target_groups::modify_attributes(native, p).await,
        "CreateLoadBalancer" => load_balancers::create(native, p).await,
        "DescribeLoadBalancers" => load_balancers::describe(native, p).await,
        "DeleteLoadBalancer" => load_balancers::delete(native, p).await,
        "DescribeLoadBalancerAttributes" => load_balancers::describe_attributes(native, p).await,
        "ModifyLoadBalancerAttributes" => load_balancers::modify_attributes(native, p).await,
        "CreateListener" => listeners::create(native, p).await,
        "DescribeListeners" => listeners::describe(native, p).await,
        "ModifyListener" => listeners::modify(native, p).await,
        "DeleteListener" => listeners::delete(native, p).await,
        "CreateRule" => listeners::create_rule(native, p).await,
        "DescribeRules" => listeners::describe_rules(native, p).await,
        "ModifyRule" => listeners::modify_rule(native, p).await,
        "DeleteRule" => listeners::delete_rule(native, p).await,
        "SetRulePriorities" => listeners::set_rule_priorities(native, p).await,
        "RegisterTargets" => targets::register(db, p).await,
        "DeregisterTargets" => targets::deregister(db, p).await,
        "DescribeTargetHealth" => targets::describe_health(native, p).await,
        _ => unreachable!("checked against ACTIONS"),
    }
}

/// The native API's error under ELBv2's code.
/// Every resource of the native collection at `collection` (`/v1/load-balancers`).
pub async fn list_native(native: &Native, collection: &str) -> Result<Vec<Value>, AwsError> {
    let v = native.get(collection).await.map_err(elb_error)?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// The resource of `collection` whose name ends the ARN `arn`; `not_found` (an ELBv2
/// error code) with `One or more <noun> not found: <arn>` when there is none.
pub async fn get_native(
    native: &Native,
    collection: &str,
    arn: &str,
    not_found: &str,
    noun: &str,
) -> Result<Value, AwsError> {
    native
        .get(&native_path(collection, arn))
        .await
        .map_err(|e| {
            if e.is_not_found() {
                AwsError::new(not_found, format!("One or more {noun} not found: {arn}"))
            } else {
                elb_error(e)
            }
        })
}

/// The native path of the resource of `collection` the ARN `arn` names.
pub fn native_path(collection: &str, arn: &str) -> String {
    format!(
        "{collection}/{}",
        crate::native::enc(berth_model::arn::last_segment(arn))
    )
}

pub fn elb_error(e: NativeError) -> AwsError {
    let code = match e.code.as_str() {
        "TargetGroupNotFoundException" => "TargetGroupNotFound",
        "LoadBalancerNotFoundException" => "LoadBalancerNotFound",
        "ResourceInUseException" => "ResourceInUse",
        "OperationNotPermittedException" => "OperationNotPermitted",
        _ if e.status >= 500 => return AwsError::server("InternalFailure", e.message),
        _ => "InvalidConfigurationRequest",
    };
    AwsError::new(code, e.message)
}

/// The `Marker`/`PageSize` page of `items` (ELBv2 pages hold at most 400).
pub fn page_of<T>(p: &Params, items: Vec<T>) -> Result<(Vec<T>, Option<String>), AwsError> {
    crate::paging::page(
        items,
        p.get("Marker"),
        p.int("PageSize")?,
        400,
        400,
        "Marker",
        "PageSize",
    )
    .map_err(|e| AwsError::new("ValidationError", e.message))
}
