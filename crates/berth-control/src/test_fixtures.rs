//! Fixtures the control plane's unit tests share.

use std::sync::Arc;

use async_trait::async_trait;
use berth_model::agent::TaskUsage;
use berth_model::arn;
use berth_model::ecs::{Cluster, ContainerInstance, Resource, Task};

use crate::db::{self, Db};
use crate::task_nodes::{LogStream, NodeError, TaskNodes};

/// Nodes that answer nothing: every task's node is unreachable.
pub(crate) struct NoNodes;

#[async_trait]
impl TaskNodes for NoNodes {
    async fn logs(&self, t: &Task, _: Option<&str>, _: bool) -> Result<LogStream, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: t.task_arn.clone(),
        })
    }
    async fn usage(&self, t: &Task) -> Result<TaskUsage, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: t.task_arn.clone(),
        })
    }
}

/// An in-memory store holding the ACTIVE `default` cluster.
pub(crate) async fn db_with_default_cluster() -> Db {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    let c = Cluster {
        cluster_name: "default".into(),
        cluster_arn: arn::cluster("default"),
        status: "ACTIVE".into(),
        ..Default::default()
    };
    db.put(&db::cluster_key("default"), &c).await.unwrap();
    db
}

/// An ACTIVE, connected instance of the `default` cluster with 4096 CPU units and 4096 MiB.
pub(crate) fn instance(id: &str) -> ContainerInstance {
    ContainerInstance {
        container_instance_arn: arn::container_instance("default", id),
        cluster_arn: arn::cluster("default"),
        status: "ACTIVE".into(),
        agent_connected: true,
        registered_resources: ["CPU", "MEMORY"]
            .into_iter()
            .map(|name| Resource {
                name: name.into(),
                integer_value: 4096,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
