//! Tasks' role credentials: the agent of the node running a task asks for the
//! credentials of its definition's `taskRoleArn`, and gets a role session
//! ([`crate::iam_sessions`]) named after the task.
//!
//! Only a task placed on the asking instance, not STOPPED, whose definition names a role
//! that exists gets credentials; every refusal names why (`taskRoleArn` and the role when
//! the role is missing), since the agent writes it into the task's stopped reason.
//!
//! What it does not do: serve the credentials to the task (the node's task endpoint
//! does) or cache them (the node refreshes them before they expire).

use std::time::Duration;

use berth_model::agent::TaskRoleCredentials;
use berth_model::arn;
use berth_model::ecs::{Task, TaskStatus};

use super::AgentService;
use crate::db;
use crate::error::ApiError;
use crate::iam_sessions::role_name;
use crate::iam_store::Iam;

/// How the control plane mints tasks' role credentials.
#[derive(Clone, Debug)]
pub struct TaskRoles {
    pub iam: Iam,
    /// How long each minted session is valid.
    pub validity: Duration,
}

fn refused(code: &'static str, status: u16, message: String) -> ApiError {
    ApiError::new(code, status, message)
}

impl AgentService {
    /// The role credentials of task `task_arn`, asked for by the agent of
    /// `container_instance_arn`.
    pub async fn task_role_credentials(
        &self,
        container_instance_arn: &str,
        task_arn: &str,
    ) -> Result<TaskRoleCredentials, ApiError> {
        let Some(roles) = &self.task_roles else {
            return Err(refused(
                "ServerException",
                500,
                "this control plane mints no task role credentials".into(),
            ));
        };
        let Some((cluster, id)) = arn::task_parts(task_arn) else {
            return Err(ApiError::from(crate::error::ControlError::invalid(
                "taskArn",
                format!("not a task ARN: {task_arn}"),
            )));
        };
        let task = self
            .db
            .get::<Task>(&db::task_key(cluster, id))
            .await?
            .map(|v| v.value)
            .filter(|t| t.container_instance_arn.as_deref() == Some(container_instance_arn))
            .ok_or_else(|| {
                refused(
                    "AccessDeniedException",
                    403,
                    format!("task {task_arn} is not placed on {container_instance_arn}"),
                )
            })?;
        if task.last_status == TaskStatus::Stopped {
            return Err(refused(
                "AccessDeniedException",
                403,
                format!(
                    "task {task_arn} is STOPPED; its role credentials are no longer handed out"
                ),
            ));
        }
        let td = self
            .db
            .resolve_task_definition(&task.task_definition_arn)
            .await?
            .ok_or_else(|| {
                refused(
                    "ClientException",
                    400,
                    format!(
                        "task definition {} is not registered",
                        task.task_definition_arn
                    ),
                )
            })?;
        let Some(role_arn) = td.task_role_arn.as_deref() else {
            return Err(refused(
                "ClientException",
                400,
                format!(
                    "task definition {} names no taskRoleArn",
                    task.task_definition_arn
                ),
            ));
        };
        let role = role_name(role_arn)?;
        roles
            .iam
            .mint_role_session(role, id, roles.validity)
            .await
            .map_err(|e| {
                if e.code == "NoSuchEntity" {
                    refused(
                        "ClientException",
                        400,
                        format!("taskRoleArn {role_arn}: no role named {role} exists"),
                    )
                } else {
                    e
                }
            })
    }
}
