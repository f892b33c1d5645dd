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
        let Some(role_arn) = td.task_role_arn.as_deref().filter(|r| !r.is_empty()) else {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_model::ecs::TaskDefinition;
    use serde_json::json;

    use super::*;
    use crate::db::Db;
    use crate::iam_store::EntityKind;

    const INSTANCE: &str = "arn:berth:ecs:local:000000000000:container-instance/default/i-1";

    async fn fixture(role: Option<&str>, last: TaskStatus) -> (AgentService, Iam) {
        let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
        let iam = Iam::new(db.clone(), [5; 32]);
        iam.create(EntityKind::Role, "reader").await.unwrap();
        let mut td = json!({
            "family": "app", "revision": 1, "status": "ACTIVE",
            "taskDefinitionArn": "arn:berth:ecs:local:000000000000:task-definition/app:1",
            "containerDefinitions": [{"name": "app", "image": "x"}]
        });
        if let Some(role) = role {
            td["taskRoleArn"] = json!(role);
        }
        let td: TaskDefinition = serde_json::from_value(td).unwrap();
        db.put(&db::taskdef_key("app", 1), &td).await.unwrap();
        let task = Task {
            task_arn: arn::task("default", "t1"),
            cluster_arn: arn::cluster("default"),
            task_definition_arn: td.task_definition_arn.clone(),
            container_instance_arn: Some(INSTANCE.into()),
            last_status: last,
            desired_status: TaskStatus::Running,
            ..Default::default()
        };
        db.put(&db::task_key("default", "t1"), &task).await.unwrap();
        let svc = AgentService::new(db, tokio::sync::watch::channel(0).1).with_task_roles(Some(
            TaskRoles {
                iam: iam.clone(),
                validity: Duration::from_secs(120),
            },
        ));
        (svc, iam)
    }

    #[tokio::test]
    async fn a_running_task_of_the_asking_node_gets_its_roles_session() {
        let (svc, iam) = fixture(
            Some("arn:berth:iam::000000000000:role/reader"),
            TaskStatus::Running,
        )
        .await;
        let c = svc
            .task_role_credentials(INSTANCE, &arn::task("default", "t1"))
            .await
            .unwrap();
        assert_eq!(c.role_arn, "arn:berth:iam::000000000000:role/reader");
        let now = berth_model::time::now() as i64;
        let key = iam
            .authenticate_session(&c.access_key_id, Some(&c.session_token), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            key.principal.arn,
            "arn:berth:sts::000000000000:assumed-role/reader/t1"
        );
    }

    #[tokio::test]
    async fn refusals_name_why() {
        let t1 = arn::task("default", "t1");
        let (svc, _) = fixture(Some("reader"), TaskStatus::Running).await;
        let other = "arn:berth:ecs:local:000000000000:container-instance/default/i-2";
        let e = svc.task_role_credentials(other, &t1).await.unwrap_err();
        assert_eq!((e.code, e.status), ("AccessDeniedException", 403));
        let e = svc
            .task_role_credentials(INSTANCE, &arn::task("default", "nope"))
            .await
            .unwrap_err();
        assert_eq!(e.code, "AccessDeniedException");

        let (svc, _) = fixture(Some("reader"), TaskStatus::Stopped).await;
        let e = svc.task_role_credentials(INSTANCE, &t1).await.unwrap_err();
        assert!(e.message.contains("is STOPPED"), "{}", e.message);

        let (svc, _) = fixture(None, TaskStatus::Running).await;
        let e = svc.task_role_credentials(INSTANCE, &t1).await.unwrap_err();
        assert!(e.message.contains("names no taskRoleArn"), "{}", e.message);

        let (svc, _) = fixture(Some("arn:aws:iam::1:role/ghost"), TaskStatus::Running).await;
        let e = svc.task_role_credentials(INSTANCE, &t1).await.unwrap_err();
        assert_eq!(e.code, "ClientException");
        assert_eq!(
            e.message,
            "taskRoleArn arn:aws:iam::1:role/ghost: no role named ghost exists"
        );

        let (svc, _) = fixture(Some("arn:aws:s3:::bucket"), TaskStatus::Running).await;
        let e = svc.task_role_credentials(INSTANCE, &t1).await.unwrap_err();
        assert!(e.message.starts_with("taskRoleArn: "), "{}", e.message);
    }
}
