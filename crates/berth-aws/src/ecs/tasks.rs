//! RunTask, StopTask, DescribeTasks, ListTasks.

use serde_json::{json, Value};

use super::{cluster_of, ecs_error, failure, last_segment, listed, page_of};
use crate::json_input::Input;
use crate::native::{enc, Native};
use crate::protocol::AwsError;

fn task_path(cluster: &str, id: &str) -> String {
    format!("/v1/clusters/{}/tasks/{}", enc(cluster), enc(id))
}

/// A task as ECS describes it: berth's Task, with `group` and the lists ECS always
/// returns.
fn described(mut t: Value) -> Value {
    if let Some(m) = t.as_object_mut() {
        for list in ["containers", "attachments", "tags"] {
            m.entry(list).or_insert_with(|| json!([]));
        }
    }
    t
}

/// RunTask members berth does not apply to a standalone task; given, they are refused.
const RUN_TASK_REFUSED: &[&str] = &[
    "overrides",
    "placementConstraints",
    "placementStrategy",
    "capacityProviderStrategy",
];

pub async fn run(
    native: &Native,
    db: &berth_control::Db,
    input: &Input,
) -> Result<Value, AwsError> {
    let td = input.req_str("taskDefinition")?;
    let count = input.opt_i64("count")?.unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(input.invalid(format!("count: must be 1 to 10, got {count}")));
    }
    for m in RUN_TASK_REFUSED {
        let given = input.raw(m).is_some_and(|v| match v {
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        });
        if given {
            return Err(input.invalid(format!(
                "{m}: berth's RunTask runs the task definition as registered, on the default placement; register a definition (or create a service) with what you need"
            )));
        }
    }
    let started_by = input.opt_str("startedBy")?;
    let group = input.opt_str("group")?;
    let launch_type = input.opt_str("launchType")?;
    let cluster = cluster_of(native, input).await?;
    let reference = super::task_definitions::reference(&td);
    let outcome = berth_control::run_task::run_task(
        db,
        &berth_control::run_task::RunTaskRequest {
            cluster: &cluster,
            task_definition: &reference,
            count: count as usize,
            started_by: started_by.as_deref(),
            group: group.as_deref(),
            launch_type: launch_type.as_deref(),
        },
    )
    .await
    .map_err(|e| ecs_error_of(berth_control::ApiError::from(e)))?;
    let tasks: Vec<Value> = outcome
        .tasks
        .iter()
        .map(|t| described(serde_json::to_value(t).unwrap_or(Value::Null)))
        .collect();
    let failures: Vec<Value> = outcome
        .unplaced
        .iter()
        .map(|why| json!({ "reason": why }))
        .collect();
    Ok(json!({ "tasks": tasks, "failures": failures }))
}

fn ecs_error_of(e: berth_control::ApiError) -> AwsError {
    super::ecs_error(crate::native::NativeError {
        code: e.code.to_string(),
        message: e.message,
        status: e.status,
    })
}

pub async fn stop(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let task = input.req_str("task")?;
    let reason = input.opt_str("reason")?;
    let cluster = cluster_of(native, input).await?;
    let id = last_segment(&task).to_string();
    // ECS finds tasks by full id or ARN only; berth's API also takes a unique prefix.
    let found = native.get(&task_path(&cluster, &id)).await;
    match found {
        Ok(t) if t["taskArn"].as_str().is_some_and(|a| a.ends_with(&id)) => {}
        Ok(_) | Err(_) => {
            return Err(AwsError::invalid(format!(
                "The referenced task was not found: {task}"
            )))
        }
    }
    let mut body = json!({});
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    let t = native
        .post(&format!("{}/stop", task_path(&cluster, &id)), &body)
        .await
        .map_err(ecs_error)?;
    Ok(json!({ "task": described(t) }))
}

pub async fn describe(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let wanted = input.req_str_list("tasks")?;
    if wanted.len() > 100 {
        return Err(input.invalid(format!("tasks: at most 100 per call, got {}", wanted.len())));
    }
    let cluster = cluster_of(native, input).await?;
    let all = native
        .get(&format!("/v1/tasks?cluster={}", enc(&cluster)))
        .await
        .map_err(ecs_error)?;
    let all = all.as_array().cloned().unwrap_or_default();
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for w in &wanted {
        let id = last_segment(w);
        match all
            .iter()
            .find(|t| t["taskArn"].as_str().map(last_segment) == Some(id))
        {
            Some(t) => tasks.push(described(t.clone())),
            None => failures.push(failure(w, "MISSING")),
        }
    }
    Ok(json!({ "tasks": tasks, "failures": failures }))
}

pub async fn list(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let cluster = cluster_of(native, input).await?;
    let service = input.opt_str("serviceName")?;
    let family = input.opt_str("family")?;
    let instance = input.opt_str("containerInstance")?;
    let started_by = input.opt_str("startedBy")?;
    let launch_type = input.opt_str("launchType")?;
    // ECS lists the tasks wanted RUNNING unless asked otherwise.
    let desired = input
        .opt_str("desiredStatus")?
        .unwrap_or_else(|| "RUNNING".to_string());
    if !matches!(desired.as_str(), "RUNNING" | "PENDING" | "STOPPED") {
        return Err(input.invalid(format!(
            "desiredStatus: must be RUNNING, PENDING or STOPPED, got {desired:?}"
        )));
    }
    if service.is_some() && family.is_some() {
        return Err(input.invalid("serviceName and family: give at most one of them"));
    }
    let all = native
        .get(&format!("/v1/tasks?cluster={}", enc(&cluster)))
        .await
        .map_err(ecs_error)?;
    let service_group = service.map(|s| format!("service:{}", last_segment(&s)));
    let arns: Vec<Value> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["desiredStatus"] == desired.as_str())
        .filter(|t| service_group.as_deref().is_none_or(|g| t["group"] == g))
        .filter(|t| {
            family.as_deref().is_none_or(|f| {
                t["taskDefinitionArn"]
                    .as_str()
                    .and_then(|a| a.rsplit_once("task-definition/"))
                    .and_then(|(_, fr)| fr.split_once(':'))
                    .is_some_and(|(fam, _)| fam == f)
            })
        })
        .filter(|t| {
            instance.as_deref().is_none_or(|i| {
                t["containerInstanceArn"]
                    .as_str()
                    .is_some_and(|a| last_segment(a) == last_segment(i))
            })
        })
        .filter(|t| started_by.as_deref().is_none_or(|s| t["startedBy"] == s))
        .filter(|t| launch_type.as_deref().is_none_or(|l| t["launchType"] == l))
        .map(|t| t["taskArn"].clone())
        .collect();
    let (page, next) = page_of(input, arns)?;
    Ok(listed("taskArns", page, next))
}
