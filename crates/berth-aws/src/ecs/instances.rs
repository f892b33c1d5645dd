//! ListContainerInstances, DescribeContainerInstances, UpdateContainerInstancesState.

use serde_json::{json, Value};

use super::{cluster_of, ecs_error, failure, last_segment, listed, page_of};
use crate::json_input::Input;
use crate::native::{enc, Native};
use crate::protocol::AwsError;

/// A container instance as ECS describes it: attributes as `[{name, value}]`.
fn described(mut ci: Value) -> Value {
    let attributes: Vec<Value> = ci["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    ci["attributes"] = json!(attributes);
    ci
}

async fn instances_of(native: &Native, cluster: &str) -> Result<Vec<Value>, AwsError> {
    let all = native
        .get(&format!("/v1/container-instances?cluster={}", enc(cluster)))
        .await
        .map_err(ecs_error)?;
    Ok(all.as_array().cloned().unwrap_or_default())
}

fn id_of(ci: &Value) -> &str {
    ci["containerInstanceArn"]
        .as_str()
        .map(last_segment)
        .unwrap_or("")
}

pub async fn list(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let cluster = cluster_of(native, input).await?;
    let status = input.opt_str("status")?;
    if input.opt_str("filter")?.is_some() {
        return Err(input.invalid(
            "filter: berth does not filter container instances by a cluster query here; list them all",
        ));
    }
    let arns: Vec<Value> = instances_of(native, &cluster)
        .await?
        .into_iter()
        .filter(|ci| status.as_deref().is_none_or(|s| ci["status"] == s))
        .map(|ci| ci["containerInstanceArn"].clone())
        .collect();
    let (page, next) = page_of(input, arns)?;
    Ok(listed("containerInstanceArns", page, next))
}

pub async fn describe(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let wanted = input.req_str_list("containerInstances")?;
    let cluster = cluster_of(native, input).await?;
    let all = instances_of(native, &cluster).await?;
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for w in &wanted {
        match all.iter().find(|ci| id_of(ci) == last_segment(w)) {
            Some(ci) => found.push(described(ci.clone())),
            None => failures.push(failure(w, "MISSING")),
        }
    }
    Ok(json!({ "containerInstances": found, "failures": failures }))
}

pub async fn update_state(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let wanted = input.req_str_list("containerInstances")?;
    let status = input.req_str("status")?;
    let cluster = cluster_of(native, input).await?;
    let all = instances_of(native, &cluster).await?;
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for w in &wanted {
        let id = last_segment(w);
        if !all.iter().any(|ci| id_of(ci) == id) {
            failures.push(failure(w, "MISSING"));
            continue;
        }
        let ci = native
            .post(
                &format!(
                    "/v1/clusters/{}/container-instances/{}/state",
                    enc(&cluster),
                    enc(id)
                ),
                &json!({ "status": status }),
            )
            .await
            .map_err(ecs_error)?;
        found.push(described(ci));
    }
    Ok(json!({ "containerInstances": found, "failures": failures }))
}
