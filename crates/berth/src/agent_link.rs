//! The in-process link between the agent and the control plane of `berth server`: the
//! agent's [`AgentApi`] served straight from the store.

use std::sync::Arc;

use async_trait::async_trait;
use berth_agent::{AgentApi, AgentError, TaskUpdate};
use berth_control::db::{self, Db};
use berth_control::ControlPlane;
use berth_model::arn;
use berth_model::ecs::{ContainerInstance, Task, TaskDefinition};
use tokio::sync::watch;

pub struct LocalAgentApi {
    pub control: Arc<ControlPlane>,
}

fn api_err(e: berth_control::error::ControlError) -> AgentError {
    AgentError::Api(berth_control::ApiError::from(e).to_string())
}

impl LocalAgentApi {
    fn db(&self) -> &Db {
        &self.control.db
    }
}

#[async_trait]
impl AgentApi for LocalAgentApi {
    async fn register_instance(
        &self,
        instance: ContainerInstance,
    ) -> Result<ContainerInstance, AgentError> {
        let cluster = arn::last_segment(&instance.cluster_arn).to_string();
        let id = instance.ec2_instance_id.clone();
        let key = db::instance_key(&cluster, &id);
        let mut stored = instance;
        if let Some(old) = self
            .db()
            .get::<ContainerInstance>(&key)
            .await
            .map_err(api_err)?
        {
            // Keep the original registration time and a DRAINING status across restarts.
            stored.registered_at = old.value.registered_at;
            if old.value.status == "DRAINING" {
                stored.status = old.value.status;
            }
        }
        self.db().put(&key, &stored).await.map_err(api_err)?;
        Ok(stored)
    }

    async fn assigned_tasks(&self, instance_arn: &str) -> Result<Vec<Task>, AgentError> {
        Ok(self
            .db()
            .tasks(None)
            .await
            .map_err(api_err)?
            .into_iter()
            .map(|v| v.value)
            .filter(|t| t.container_instance_arn.as_deref() == Some(instance_arn))
            .collect())
    }

    async fn task_definition(&self, arn: &str) -> Result<Option<TaskDefinition>, AgentError> {
        self.db()
            .resolve_task_definition(arn)
            .await
            .map_err(api_err)
    }

    async fn update_task(&self, task_arn: &str, f: TaskUpdate) -> Result<Option<Task>, AgentError> {
        let Some(rest) = arn::resource(task_arn).and_then(|r| r.strip_prefix("task/")) else {
            return Err(AgentError::Api(format!("not a task ARN: {task_arn}")));
        };
        let Some((cluster, id)) = rest.split_once('/') else {
            return Err(AgentError::Api(format!("not a task ARN: {task_arn}")));
        };
        let key = db::task_key(cluster, id);
        let mut f = f;
        self.db()
            .update::<Task, _>(&key, move |t| f(t))
            .await
            .map_err(api_err)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.control.changes()
    }
}
