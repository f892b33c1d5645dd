//! ECS over JSON 1.1 (`X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`).
//!
//! berth's model already speaks ECS's JSON (camelCase members, ARNs, epoch-second
//! timestamps), so most answers are the native API's resources wrapped as ECS wraps
//! them (`{"cluster": ...}`, `{"services": [...], "failures": [...]}`); the requests'
//! members are read and checked here, then handed to the native API.
//!
//! Layout: [`clusters`], [`task_definitions`], [`services`], [`tasks`],
//! [`instances`] (container instances).

use serde_json::{json, Value};

use crate::json_input::Input;
use crate::native::{enc, Native, NativeError};
use crate::protocol::AwsError;

pub mod clusters;
pub mod instances;
pub mod services;
pub mod task_definitions;
pub mod tasks;

/// The operations berth answers, in the order of the README's table.
pub const OPERATIONS: &[&str] = &[
    "CreateCluster",
    "DescribeClusters",
    "ListClusters",
    "DeleteCluster",
    "RegisterTaskDefinition",
    "DescribeTaskDefinition",
    "ListTaskDefinitions",
    "DeregisterTaskDefinition",
    "CreateService",
    "UpdateService",
    "DescribeServices",
    "ListServices",
    "DeleteService",
    "RunTask",
    "StopTask",
    "DescribeTasks",
    "ListTasks",
    "ListContainerInstances",
    "DescribeContainerInstances",
    "UpdateContainerInstancesState",
];

/// Answers one ECS operation with its JSON result.
pub async fn dispatch(
    native: &Native,
    db: &berth_control::Db,
    operation: &str,
    body: &[u8],
) -> Result<Value, AwsError> {
    if !OPERATIONS.contains(&operation) {
        return Err(AwsError::new(
            "UnknownOperationException",
            format!("berth's ECS API has no operation {operation:?}"),
        ));
    }
    let input = Input::parse(body, "InvalidParameterException")?;
    match operation {
        "CreateCluster" => clusters::create(native, &input).await,
        "DescribeClusters" => clusters::describe(native, &input).await,
        "ListClusters" => clusters::list(native, &input).await,
        "DeleteCluster" => clusters::delete(native, &input).await,
        "RegisterTaskDefinition" => task_definitions::register(native, &input).await,
        "DescribeTaskDefinition" => task_definitions::describe(native, &input).await,
        "ListTaskDefinitions" => task_definitions::list(native, &input).await,
        "DeregisterTaskDefinition" => task_definitions::deregister(native, &input).await,
        "CreateService" => services::create(native, &input).await,
        "UpdateService" => services::update(native, &input).await,
        "DescribeServices" => services::describe(native, &input).await,
        "ListServices" => services::list(native, &input).await,
        "DeleteService" => services::delete(native, &input).await,
        "RunTask" => tasks::run(native, db, &input).await,
        "StopTask" => tasks::stop(native, &input).await,
        "DescribeTasks" => tasks::describe(native, &input).await,
        "ListTasks" => tasks::list(native, &input).await,
        "ListContainerInstances" => instances::list(native, &input).await,
        "DescribeContainerInstances" => instances::describe(native, &input).await,
        "UpdateContainerInstancesState" => instances::update_state(native, &input).await,
        _ => unreachable!("checked against OPERATIONS"),
    }
}

/// ECS's error codes, which the native API's answers keep; others become
/// `ClientException` (the caller's) or `ServerException`.
const ECS_CODES: &[&str] = &[
    "ClientException",
    "ServerException",
    "InvalidParameterException",
    "ClusterNotFoundException",
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ClusterContainsServicesException",
    "ClusterContainsTasksException",
    "ClusterContainsContainerInstancesException",
    "UnsupportedFeatureException",
    "PlatformUnknownException",
    "AccessDeniedException",
];

/// The native API's error as ECS would name it.
pub fn ecs_error(e: NativeError) -> AwsError {
    if ECS_CODES.contains(&e.code.as_str()) {
        return AwsError {
            code: e.code,
            message: e.message,
            status: if e.status >= 500 { 500 } else { 400 },
        };
    }
    if e.status >= 500 {
        AwsError::server("ServerException", e.message)
    } else {
        AwsError::new("ClientException", e.message)
    }
}

/// The cluster a request names (its `cluster` member: a name or ARN; `default` when
/// absent), checked to exist.
pub async fn cluster_of(native: &Native, input: &Input) -> Result<String, AwsError> {
    let name = cluster_name(input)?;
    require_cluster(native, &name).await?;
    Ok(name)
}

/// The cluster name a request names, not checked.
pub fn cluster_name(input: &Input) -> Result<String, AwsError> {
    Ok(input
        .opt_str("cluster")?
        .map(|c| last_segment(&c).to_string())
        .unwrap_or_else(|| berth_model::ecs::DEFAULT_CLUSTER.to_string()))
}

/// Fails with `ClusterNotFoundException` unless cluster `name` exists.
pub async fn require_cluster(native: &Native, name: &str) -> Result<Value, AwsError> {
    native
        .get(&format!("/v1/clusters/{}", enc(name)))
        .await
        .map_err(|e| {
            if e.is_not_found() {
                AwsError::new("ClusterNotFoundException", "Cluster not found.")
            } else {
                ecs_error(e)
            }
        })
}

/// The last `/`-separated part of an ARN (a name or id as given stays as it is).
pub fn last_segment(s: &str) -> &str {
    berth_model::arn::last_segment(s)
}

/// A `failures` entry: the ARN (or name) asked for and why it is not in the answer.
pub fn failure(arn: &str, reason: &str) -> Value {
    json!({"arn": arn, "reason": reason})
}

/// The `nextToken`/`maxResults` page of `items` (ECS lists take at most 100 a page).
pub fn page_of(input: &Input, items: Vec<Value>) -> Result<(Vec<Value>, Option<String>), AwsError> {
    let token = input.opt_str("nextToken")?;
    let max = input.opt_i64("maxResults")?;
    crate::paging::page(
        items,
        token.as_deref(),
        max,
        100,
        100,
        "nextToken",
        "maxResults",
    )
}

/// `{<field>: items, "nextToken": ...}` (the token only when another page remains).
pub fn listed(field: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut out = json!({ field: items });
    if let Some(t) = next {
        out["nextToken"] = Value::String(t);
    }
    out
}
