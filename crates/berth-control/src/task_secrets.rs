//! Resolving a starting task's container `secrets` on the control side, for the agent
//! that starts it ([`crate::AgentService::task_secrets`]).
//!
//! For each secret of each container, in order: the task definition's
//! `executionRoleArn` must name a role of berth's IAM (`/iam/roles/<name>`, found by the
//! last segment of the role ARN, any partition or account), whose policies must allow
//! `secretsmanager:GetSecretValue` on the secret's berth ARN; then the secret must exist;
//! then a JSON key, when `valueFrom` names one, must be a member of its value. The first
//! failure refuses the whole task with ECS's reason,
//! `ResourceInitializationError: unable to pull secrets or registry auth: ...`, naming the
//! secret's ARN and `AccessDeniedException` or `ResourceNotFoundException`, and adds the
//! same reason as an event of the task's service.
//!
//! What it does not do: keep a value anywhere. Values go from the sealed store into the
//! answer and nowhere else: not in the task record, events or logs.

use berth_iam::policy::{access_denied_message, evaluate, Decision, PolicyDocument};
use berth_model::arn;
use berth_model::ecs::secrets::{execution_role_name, parse_value_from};
use berth_model::ecs::{Service, Task, TaskDefinition};
use berth_model::task_secrets::{SecretVariable, TaskSecrets};
use serde_json::Value;

use crate::db::{self, Db};
use crate::error::ControlError;
use crate::iam_store::{Entity, ROLES_PREFIX};
use crate::secret_store::SecretStore;

/// The IAM action an execution role needs on each secret.
pub const GET_SECRET_VALUE: &str = "secretsmanager:GetSecretValue";

/// The secrets of `task`'s containers, or why it must not start. A refusal is also an
/// event of the task's service (when it has one). `store` is `None` on a control plane
/// without a secret store.
pub async fn resolve(
    db: &Db,
    store: Option<&SecretStore>,
    task: &Task,
) -> Result<TaskSecrets, ControlError> {
    let answer = match db
        .resolve_task_definition(&task.task_definition_arn)
        .await?
    {
        None => TaskSecrets::refused(format!(
            "task definition {} is not registered",
            task.task_definition_arn
        )),
        Some(td) => resolve_definition(db, store, &td).await?,
    };
    if let TaskSecrets::Refused { reason } = &answer {
        record_service_event(db, task, reason).await;
    }
    Ok(answer)
}

fn fetch_failed(secret_arn: &str, why: impl std::fmt::Display) -> TaskSecrets {
    TaskSecrets::refused(format!(
        "execution resource retrieval failed: unable to retrieve secret from asm: failed to fetch secret {secret_arn} from secrets manager: {why}"
    ))
}

async fn resolve_definition(
    db: &Db,
    store: Option<&SecretStore>,
    td: &TaskDefinition,
) -> Result<TaskSecrets, ControlError> {
    let wanted: Vec<_> = td
        .container_definitions
        .iter()
        .flat_map(|c| c.secrets.iter().map(move |s| (c.name.as_str(), s)))
        .collect();
    if wanted.is_empty() {
        return Ok(TaskSecrets::Resolved {
            variables: Vec::new(),
        });
    }
    let Some(store) = store else {
        return Ok(TaskSecrets::refused(
            "this control plane has no secret store",
        ));
    };
    let role_arn = td.execution_role_arn.as_deref().unwrap_or_default();
    let Some(role_name) = execution_role_name(role_arn) else {
        return Ok(TaskSecrets::refused(format!(
            "AccessDeniedException: secrets need an execution role: executionRoleArn must be an IAM role ARN (arn:...:iam::<account>:role/<name>), got {role_arn:?}"
        )));
    };
    let Some(role) = db
        .get::<Entity>(&format!("{ROLES_PREFIX}{role_name}"))
        .await?
        .map(|v| v.value)
    else {
        return Ok(TaskSecrets::refused(format!(
            "AccessDeniedException: the execution role {role_arn} cannot be assumed: berth has no role named {role_name}"
        )));
    };
    let policies: Vec<PolicyDocument> = role
        .policies
        .values()
        .filter_map(|doc| PolicyDocument::from_value(doc).ok())
        .collect();
    let mut variables = Vec::new();
    for (container, s) in wanted {
        let reference = match parse_value_from("valueFrom", &s.value_from) {
            Ok(r) => r,
            Err(e) => return Ok(TaskSecrets::refused(e.message)),
        };
        let secret_arn = arn::secret(&reference.secret_name);
        let decision = evaluate(&policies, GET_SECRET_VALUE, &secret_arn);
        if decision != Decision::Allow {
            let message = access_denied_message(&role.arn, GET_SECRET_VALUE, &secret_arn, decision);
            return Ok(fetch_failed(
                &secret_arn,
                format!("AccessDeniedException: {message}"),
            ));
        }
        let value =
            match store.value(&reference.secret_name).await {
                Ok(Some((_, value))) => value,
                Ok(None) => return Ok(fetch_failed(
                    &secret_arn,
                    "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
                )),
                Err(e) => {
                    return Ok(fetch_failed(
                        &secret_arn,
                        format!("{}: {}", e.code, e.message),
                    ))
                }
            };
        let value = match &reference.json_key {
            None => value,
            Some(key) => match json_member(&value, key) {
                Some(v) => v,
                None => {
                    return Ok(TaskSecrets::refused(format!(
                        "execution resource retrieval failed: unable to retrieve secret from asm: retrieved secret from Secrets Manager did not contain json key {key}"
                    )))
                }
            },
        };
        variables.push(SecretVariable {
            container_name: container.to_string(),
            name: s.name.clone(),
            value,
        });
    }
    Ok(TaskSecrets::Resolved { variables })
}

/// Member `key` of a JSON object's text: a string as it is, anything else as JSON.
fn json_member(text: &str, key: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Adds the refusal as an event of the task's service, if it has one (best effort: the
/// task's stopped reason says the same).
async fn record_service_event(db: &Db, task: &Task, reason: &str) {
    let Some(service) = task.group.strip_prefix("service:") else {
        return;
    };
    let message = format!(
        "(service {service}) (task {}) failed to start: {reason}",
        arn::last_segment(&task.task_arn)
    );
    let key = db::service_key(task.cluster_name(), service);
    let written = db
        .update::<Service, _>(&key, |s| {
            if s.events.first().is_some_and(|e| e.message == message) {
                return false;
            }
            s.push_event(
                uuid::Uuid::new_v4().to_string(),
                berth_model::time::now(),
                message.clone(),
            );
            true
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(task = %task.task_arn, error = %e, "recording a service event");
    }
}

#[cfg(test)]
#[path = "task_secrets_tests.rs"]
mod tests;
