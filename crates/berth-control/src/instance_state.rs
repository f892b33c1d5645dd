//! ECS's UpdateContainerInstancesState for one instance:
//! `POST /v1/clusters/{cluster}/container-instances/{id}/state` with
//! `{"status": "DRAINING" | "ACTIVE"}`, and the listing of container instances
//! (`GET /v1/container-instances[?cluster=]`) with the task counts of each.
//!
//! Setting DRAINING only records the status: placement skips the instance from then on,
//! and the service reconciler moves the service tasks off it (see
//! [`crate::services::draining`]). The instance stays DRAINING, with or without tasks,
//! until it is set ACTIVE again; a restarted agent keeps the status. Setting the status
//! an instance already has changes nothing.
//!
//! What it does not do: stop tasks itself, or touch tasks outside a service.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use berth_model::ecs::{ContainerInstance, Task, TaskStatus};
use serde::Deserialize;

use crate::api_state::ApiState;
use crate::db::{self, Db};
use crate::error::{ApiError, ControlError};
use crate::json_body::parse_body;

/// The statuses UpdateContainerInstancesState takes.
pub const SETTABLE_STATUSES: [&str; 2] = ["ACTIVE", "DRAINING"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StateBody {
    status: String,
}

/// The listing's query: `?cluster=` narrows it to one cluster.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub cluster: Option<String>,
}

/// `GET /v1/container-instances[?cluster=]`: the instances with their task counts.
pub async fn list_instances(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<ContainerInstance>>, ApiError> {
    let mut instances = s.db.instances(q.cluster.as_deref()).await?;
    let tasks: Vec<Task> =
        s.db.tasks(q.cluster.as_deref())
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect();
    with_task_counts(&mut instances, &tasks);
    let mut definitions = std::collections::BTreeMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.last_status != TaskStatus::Stopped)
    {
        if !definitions.contains_key(&t.task_definition_arn) {
            if let Some(d) = s.db.resolve_task_definition(&t.task_definition_arn).await? {
                definitions.insert(t.task_definition_arn.clone(), d);
            }
        }
    }
    with_remaining_resources(&mut instances, &tasks, &definitions);
    Ok(Json(instances))
}

/// The state route's handler: the instance as stored afterwards, with its task counts.
pub async fn update_state(
    State(s): State<Arc<ApiState>>,
    Path((cluster, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<ContainerInstance>, ApiError> {
    Ok(Json(set_status(&s.db, &cluster, &id, &body).await?))
}

/// Sets the status the JSON `body` names on instance `id` (its id, ARN or a unique
/// prefix of its id) of `cluster`. A bad body, cluster or instance changes nothing.
pub async fn set_status(
    db: &Db,
    cluster: &str,
    id: &str,
    body: &[u8],
) -> Result<ContainerInstance, ApiError> {
    let b: StateBody = parse_body(body)?;
    if !SETTABLE_STATUSES.contains(&b.status.as_str()) {
        return Err(ControlError::invalid(
            "status",
            format!(
                "must be ACTIVE or DRAINING (the only statuses UpdateContainerInstancesState sets), got {:?}",
                b.status
            ),
        )
        .into());
    }
    if db.cluster(cluster).await?.is_none() {
        return Err(ApiError::cluster_not_found(cluster));
    }
    let instance = find_instance(db, cluster, id).await?;
    let key = db::instance_key(cluster, &instance.ec2_instance_id);
    let updated = db
        .update::<ContainerInstance, _>(&key, |i| {
            let changed = i.status != b.status;
            i.status = b.status.clone();
            changed
        })
        .await?
        .ok_or_else(|| instance_not_found(cluster, id))?;
    let tasks: Vec<Task> = db
        .tasks(Some(cluster))
        .await?
        .into_iter()
        .map(|v| v.value)
        .collect();
    let mut out = [updated];
    with_task_counts(&mut out, &tasks);
    let [updated] = out;
    tracing::info!(instance = %updated.ec2_instance_id, status = %updated.status, "container instance status set");
    Ok(updated)
}

/// The instance of `cluster` that `id` names: its id, its ARN, or a unique prefix of
/// its id.
async fn find_instance(db: &Db, cluster: &str, id: &str) -> Result<ContainerInstance, ApiError> {
    let id = berth_model::arn::last_segment(id);
    let instances = db.instances(Some(cluster)).await?;
    if let Some(exact) = instances.iter().find(|i| i.ec2_instance_id == id) {
        return Ok(exact.clone());
    }
    let matches: Vec<&ContainerInstance> = instances
        .iter()
        .filter(|i| !id.is_empty() && i.ec2_instance_id.starts_with(id))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(instance_not_found(cluster, id)),
        many => Err(ApiError::invalid(format!(
            "containerInstance: {id:?} matches {} container instances; give more of the id",
            many.len()
        ))),
    }
}

/// ECS answers an unknown instance with the failure reason MISSING.
fn instance_not_found(cluster: &str, id: &str) -> ApiError {
    ApiError::new(
        "InvalidParameterException",
        404,
        format!(
            "container instance {id:?} not found in cluster {cluster:?} (reason MISSING); see berth get container-instances"
        ),
    )
}

/// Sets each instance's `runningTasksCount` and `pendingTasksCount` from `tasks`: the
/// tasks placed on it that are RUNNING, and those not yet RUNNING.
pub fn with_task_counts(instances: &mut [ContainerInstance], tasks: &[Task]) {
    for i in instances {
        let on_it = tasks
            .iter()
            .filter(|t| t.container_instance_arn.as_deref() == Some(&i.container_instance_arn));
        let (mut running, mut pending) = (0, 0);
        for t in on_it {
            if t.last_status == TaskStatus::Running {
                running += 1;
            } else if t.last_status < TaskStatus::Running {
                pending += 1;
            }
        }
        i.running_tasks_count = running;
        i.pending_tasks_count = pending;
    }
}

/// Sets each instance's `remainingResources`: its registered CPU and MEMORY less what the
/// tasks placed on it and not STOPPED reserve, and PORTS, the fixed host ports they hold
/// (as ECS reports them, a string set).
pub fn with_remaining_resources(
    instances: &mut [ContainerInstance],
    tasks: &[Task],
    definitions: &std::collections::BTreeMap<String, berth_model::ecs::TaskDefinition>,
) {
    use berth_model::ecs::Resource;
    for i in instances {
        let (mut cpu, mut memory, mut ports) = (0i64, 0i64, Vec::new());
        for t in tasks.iter().filter(|t| {
            t.container_instance_arn.as_deref() == Some(&i.container_instance_arn)
                && t.last_status != TaskStatus::Stopped
        }) {
            if let Some(d) = definitions.get(&t.task_definition_arn) {
                cpu += crate::scheduler::task_cpu(d);
                memory += crate::scheduler::task_memory(d);
                ports.extend(crate::scheduler::task_fixed_ports(d));
            }
        }
        ports.sort_unstable();
        ports.dedup();
        let registered = |name: &str| {
            i.registered_resources
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.integer_value)
                .unwrap_or(0)
        };
        i.remaining_resources = vec![
            Resource {
                name: "CPU".into(),
                integer_value: (registered("CPU") - cpu).max(0),
                string_set_value: Vec::new(),
            },
            Resource {
                name: "MEMORY".into(),
                integer_value: (registered("MEMORY") - memory).max(0),
                string_set_value: Vec::new(),
            },
            Resource {
                name: "PORTS".into(),
                integer_value: 0,
                string_set_value: ports.iter().map(|p| p.to_string()).collect(),
            },
        ];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::db_with_default_cluster;
    use berth_model::arn;

    /// An ACTIVE instance `id` of the `default` cluster.
    fn instance(id: &str) -> ContainerInstance {
        ContainerInstance {
            container_instance_arn: arn::container_instance("default", id),
            ec2_instance_id: id.into(),
            cluster_arn: arn::cluster("default"),
            status: "ACTIVE".into(),
            agent_connected: true,
            ..Default::default()
        }
    }

    async fn db_with_instance() -> Db {
        let db = db_with_default_cluster().await;
        db.put(&db::instance_key("default", "i-0abc"), &instance("i-0abc"))
            .await
            .unwrap();
        db
    }

    async fn stored(db: &Db) -> ContainerInstance {
        db.get::<ContainerInstance>(&db::instance_key("default", "i-0abc"))
            .await
            .unwrap()
            .unwrap()
            .value
    }

    #[tokio::test]
    async fn draining_and_activating_set_the_status() {
        let db = db_with_instance().await;
        let body = br#"{"status": "DRAINING"}"#;
        let i = set_status(&db, "default", "i-0abc", body).await.unwrap();
        assert_eq!(i.status, "DRAINING");
        assert_eq!(stored(&db).await.status, "DRAINING");
        // Again: nothing changes, and it still answers with the instance.
        let rev = db.store.revision().await.unwrap();
        let i = set_status(&db, "default", "i-0", body).await.unwrap();
        assert_eq!(i.status, "DRAINING", "a unique prefix names it");
        assert_eq!(db.store.revision().await.unwrap(), rev, "nothing written");
        let by_arn = arn::container_instance("default", "i-0abc");
        let i = set_status(&db, "default", &by_arn, br#"{"status": "ACTIVE"}"#)
            .await
            .unwrap();
        assert_eq!(i.status, "ACTIVE");
        assert_eq!(stored(&db).await.status, "ACTIVE");
    }

    #[tokio::test]
    async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
        let db = db_with_instance().await;
        let rev = db.store.revision().await.unwrap();
        let e = set_status(&db, "default", "i-0abc", br#"{"status": "draining"}"#)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.status), ("InvalidParameterException", 400));
        assert_eq!(
            e.message,
            "status: must be ACTIVE or DRAINING (the only statuses UpdateContainerInstancesState sets), got \"draining\""
        );
        let e = set_status(&db, "default", "i-0abc", br#"{"state": "ACTIVE"}"#)
            .await
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("state"), "{}", e.message);
        let e = set_status(&db, "default", "i-nope", br#"{"status": "DRAINING"}"#)
            .await
            .unwrap_err();
        assert_eq!((e.code, e.status), ("InvalidParameterException", 404));
        assert_eq!(
            e.message,
            "container instance \"i-nope\" not found in cluster \"default\" (reason MISSING); see berth get container-instances"
        );
        let e = set_status(&db, "other", "i-0abc", br#"{"status": "DRAINING"}"#)
            .await
            .unwrap_err();
        assert_eq!(e.code, "ClusterNotFoundException");
        assert_eq!(db.store.revision().await.unwrap(), rev, "nothing written");
        assert_eq!(stored(&db).await.status, "ACTIVE");
    }

    #[test]
    fn task_counts_are_per_instance_and_status() {
        let mut instances = [instance("i-1"), instance("i-2")];
        let on = |id: &str, status: TaskStatus| Task {
            container_instance_arn: Some(arn::container_instance("default", id)),
            last_status: status,
            ..Default::default()
        };
        let tasks = [
            on("i-1", TaskStatus::Running),
            on("i-1", TaskStatus::Running),
            on("i-1", TaskStatus::Pending),
            on("i-1", TaskStatus::Stopped),
            on("i-1", TaskStatus::Deactivating),
            on("i-2", TaskStatus::Provisioning),
        ];
        with_task_counts(&mut instances, &tasks);
        assert_eq!(
            (
                instances[0].running_tasks_count,
                instances[0].pending_tasks_count
            ),
            (2, 1)
        );
        assert_eq!(
            (
                instances[1].running_tasks_count,
                instances[1].pending_tasks_count
            ),
            (0, 1)
        );
    }

    #[test]
    fn remaining_resources_subtract_what_live_tasks_reserve() {
        use berth_model::ecs::{Resource, TaskDefinition};
        let mut inst = instance("i-1");
        inst.registered_resources = vec![
            Resource {
                name: "CPU".into(),
                integer_value: 2048,
                ..Default::default()
            },
            Resource {
                name: "MEMORY".into(),
                integer_value: 4096,
                ..Default::default()
            },
        ];
        let td: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "web", "taskDefinitionArn": "td:1", "networkMode": "host",
            "containerDefinitions": [{"name": "a", "image": "x", "cpu": 256, "memory": 512,
                "portMappings": [{"containerPort": 8080}]}]
        }))
        .unwrap();
        let task = |status: TaskStatus| Task {
            task_definition_arn: "td:1".into(),
            container_instance_arn: Some(inst.container_instance_arn.clone()),
            last_status: status,
            ..Default::default()
        };
        let tasks = vec![task(TaskStatus::Running), task(TaskStatus::Stopped)];
        let defs = [("td:1".to_string(), td)].into_iter().collect();
        let mut instances = vec![inst];
        with_remaining_resources(&mut instances, &tasks, &defs);
        let r = &instances[0].remaining_resources;
        assert_eq!((r[0].name.as_str(), r[0].integer_value), ("CPU", 1792));
        assert_eq!((r[1].name.as_str(), r[1].integer_value), ("MEMORY", 3584));
        assert_eq!(r[2].string_set_value, vec!["8080".to_string()]);
    }
}
