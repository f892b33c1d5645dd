//! RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! DeregisterTaskDefinition. berth's task definition is ECS's, member for member.

use serde_json::{json, Value};

use super::{ecs_error, listed, page_of};
use crate::json_input::Input;
use crate::native::{enc, Native};
use crate::protocol::AwsError;

/// `family`, `family:revision` or a task definition ARN as the native API's path
/// segment (`family[:revision]`).
pub fn reference(r: &str) -> String {
    match r.rsplit_once("task-definition/") {
        Some((_, rest)) => rest.to_string(),
        None => r.to_string(),
    }
}

fn not_found(r: &str) -> AwsError {
    AwsError::new(
        "ClientException",
        format!("Unable to describe task definition {r:?}: it is not registered."),
    )
}

/// The definition a reference names, or ECS's `ClientException`.
pub async fn get(native: &Native, r: &str) -> Result<Value, AwsError> {
    native
        .get(&format!("/v1/task-definitions/{}", enc(&reference(r))))
        .await
        .map_err(|e| {
            if e.is_not_found() {
                not_found(r)
            } else {
                ecs_error(e)
            }
        })
}

pub async fn register(native: &Native, input: &Input) -> Result<Value, AwsError> {
    input.req_str("family")?;
    if input.raw("containerDefinitions").is_none() {
        return Err(input.invalid("containerDefinitions: required, and missing"));
    }
    let mut body = Value::Object(input.members().clone());
    let tags = body
        .as_object_mut()
        .and_then(|m| m.remove("tags"))
        .unwrap_or_else(|| json!([]));
    if let Some(m) = body.as_object_mut() {
        if !tags.as_array().is_some_and(Vec::is_empty) {
            m.insert("tags".into(), tags.clone());
        }
    }
    let td = native
        .post("/v1/task-definitions", &body)
        .await
        .map_err(ecs_error)?;
    Ok(json!({ "taskDefinition": td, "tags": tags }))
}

pub async fn describe(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let r = input.req_str("taskDefinition")?;
    let td = get(native, &r).await?;
    Ok(json!({ "taskDefinition": td, "tags": [] }))
}

pub async fn list(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let family = input.opt_str("familyPrefix")?;
    let status = input
        .opt_str("status")?
        .unwrap_or_else(|| "ACTIVE".to_string());
    if !matches!(
        status.as_str(),
        "ACTIVE" | "INACTIVE" | "DELETE_IN_PROGRESS"
    ) {
        return Err(input.invalid(format!(
            "status: must be ACTIVE, INACTIVE or DELETE_IN_PROGRESS, got {status:?}"
        )));
    }
    let sort = input.opt_str("sort")?.unwrap_or_else(|| "ASC".to_string());
    if !matches!(sort.as_str(), "ASC" | "DESC") {
        return Err(input.invalid(format!("sort: must be ASC or DESC, got {sort:?}")));
    }
    let all = native
        .get("/v1/task-definitions")
        .await
        .map_err(ecs_error)?;
    let mut defs: Vec<(String, u64, Value)> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| family.as_deref().is_none_or(|f| d["family"] == f))
        .filter(|d| d["status"] == status.as_str())
        .map(|d| {
            (
                d["family"].as_str().unwrap_or("").to_string(),
                d["revision"].as_u64().unwrap_or(0),
                d["taskDefinitionArn"].clone(),
            )
        })
        .collect();
    defs.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    if sort == "DESC" {
        defs.reverse();
    }
    let arns = defs.into_iter().map(|d| d.2).collect();
    let (page, next) = page_of(input, arns)?;
    Ok(listed("taskDefinitionArns", page, next))
}

pub async fn deregister(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let r = input.req_str("taskDefinition")?;
    let rr = reference(&r);
    if !rr.contains(':') {
        return Err(input.invalid(format!(
            "taskDefinition: give family:revision or the full ARN to deregister, got {r:?}"
        )));
    }
    get(native, &r).await?;
    let td = native
        .delete(&format!("/v1/task-definitions/{}", enc(&rr)))
        .await
        .map_err(ecs_error)?;
    Ok(json!({ "taskDefinition": td }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_become_family_and_revision() {
        assert_eq!(
            reference("arn:berth:ecs:us-east-1:000000000000:task-definition/web:3"),
            "web:3"
        );
        assert_eq!(reference("web:3"), "web:3");
        assert_eq!(reference("web"), "web");
    }
}
