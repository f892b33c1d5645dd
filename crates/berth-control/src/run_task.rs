//! Standalone tasks (ECS's RunTask): tasks of a task definition that belong to no
//! service, placed by the same placement round as a service's new tasks and written
//! in one batch. Their group is `family:<family>` unless the caller names one; nothing
//! replaces them when they stop.

use std::collections::BTreeMap;

use berth_model::ecs::{Service, Task, TaskDefinition, TaskStatus};
use berth_store::{Expect, Op};

use crate::db::{self, encode, Db};
use crate::error::ControlError;
use crate::services::starts::{place_new_tasks, StartRequest};

/// What to run.
pub struct RunTaskRequest<'a> {
    pub cluster: &'a str,
    /// `family`, `family:revision` or a task definition ARN.
    pub task_definition: &'a str,
    pub count: usize,
    pub started_by: Option<&'a str>,
    pub group: Option<&'a str>,
    /// EC2 (the default) or FARGATE.
    pub launch_type: Option<&'a str>,
}

/// The tasks placed and stored, and why the rest could not be placed (one reason, ECS's
/// `failures` entry), if any could not.
pub struct RunTaskOutcome {
    pub tasks: Vec<Task>,
    pub unplaced: Option<String>,
}

/// Places and stores `req.count` new tasks; the store is unchanged when none is placed.
pub async fn run_task(db: &Db, req: &RunTaskRequest<'_>) -> Result<RunTaskOutcome, ControlError> {
    if db.cluster(req.cluster).await?.is_none() {
        return Err(ControlError::invalid(
            "cluster",
            format!("cluster {:?} does not exist", req.cluster),
        ));
    }
    let td = db
        .resolve_task_definition(req.task_definition)
        .await?
        .filter(|td| td.status == "ACTIVE")
        .ok_or_else(|| {
            ControlError::invalid(
                "taskDefinition",
                format!(
                    "task definition {:?} is not registered (or is INACTIVE)",
                    req.task_definition
                ),
            )
        })?;
    // The placement round reads a service's constraints, strategy and launch type; a
    // standalone task has the definition's own constraints and the default strategy.
    let service: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "run-task",
        "cluster": req.cluster,
        "taskDefinition": td.task_definition_arn,
        "launchType": req.launch_type.unwrap_or("EC2"),
    }))
    .map_err(|e| ControlError::invalid("launchType", e.to_string()))?;
    let tasks: Vec<Task> = db
        .tasks(Some(req.cluster))
        .await?
        .into_iter()
        .map(|v| v.value)
        .collect();
    let mut definitions: BTreeMap<String, TaskDefinition> = BTreeMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.last_status != TaskStatus::Stopped)
    {
        if !definitions.contains_key(&t.task_definition_arn) {
            if let Some(d) = db.resolve_task_definition(&t.task_definition_arn).await? {
                definitions.insert(t.task_definition_arn.clone(), d);
            }
        }
    }
    let instances = db.instances(Some(req.cluster)).await?;
    let group = req
        .group
        .map(str::to_string)
        .unwrap_or_else(|| format!("family:{}", td.family));
    let refs: Vec<&Task> = tasks.iter().collect();
    let now = berth_model::time::now();
    let start = StartRequest {
        service: &service,
        task_definition: &td,
        cluster: req.cluster,
        group: &group,
        deployment_id: req.started_by.unwrap_or(""),
        count: req.count,
        now,
        placement_seed: now.to_bits(),
    };
    let mut new_id = || uuid::Uuid::new_v4().simple().to_string();
    let (mut placed, failure) =
        place_new_tasks(&start, &instances, &refs, &definitions, &mut new_id);
    let mut ops = Vec::new();
    for t in &mut placed {
        t.started_by = req.started_by.map(str::to_string);
        ops.push(Op::Put {
            key: db::task_key(req.cluster, t.id()),
            value: encode(t),
            expect: Some(Expect::Absent),
        });
    }
    if !ops.is_empty() {
        db.batch(ops).await?;
    }
    Ok(RunTaskOutcome {
        tasks: placed,
        unplaced: failure.map(|f| f.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{db_with_default_cluster, instance};
    use berth_model::arn;

    async fn db_with_definition() -> Db {
        let db = db_with_default_cluster().await;
        db.put(&db::instance_key("default", "i-1"), &instance("i-1"))
            .await
            .unwrap();
        let mut td: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "web",
            "containerDefinitions": [{"name": "web", "image": "x", "cpu": 1024, "memory": 1024}]
        }))
        .unwrap();
        td.task_definition_arn = arn::task_definition("web", 1);
        td.revision = 1;
        td.status = "ACTIVE".into();
        db.put(&db::taskdef_key("web", 1), &td).await.unwrap();
        db
    }

    fn request(count: usize) -> RunTaskRequest<'static> {
        RunTaskRequest {
            cluster: "default",
            task_definition: "web",
            count,
            started_by: Some("me"),
            group: None,
            launch_type: None,
        }
    }

    #[tokio::test]
    async fn tasks_are_placed_and_stored_until_the_instance_is_full() {
        let db = db_with_definition().await;
        let out = run_task(&db, &request(2)).await.unwrap();
        assert_eq!(out.tasks.len(), 2);
        assert!(out.unplaced.is_none());
        let t = &out.tasks[0];
        assert_eq!(t.group, "family:web");
        assert_eq!(t.started_by.as_deref(), Some("me"));
        assert_eq!(t.desired_status, TaskStatus::Running);
        assert_eq!(db.tasks(Some("default")).await.unwrap().len(), 2);
        // The instance has 4096 CPU units: two more fit, the third does not.
        let out = run_task(&db, &request(3)).await.unwrap();
        assert_eq!(out.tasks.len(), 2);
        assert!(out.unplaced.is_some());
        assert_eq!(db.tasks(Some("default")).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn an_unknown_definition_or_cluster_changes_nothing() {
        let db = db_with_definition().await;
        let rev = db.store.revision().await.unwrap();
        let mut r = request(1);
        r.task_definition = "nope";
        let e = run_task(&db, &r).await.err().unwrap();
        assert!(e.to_string().contains("taskDefinition"), "{e}");
        let mut r = request(1);
        r.cluster = "elsewhere";
        let e = run_task(&db, &r).await.err().unwrap();
        assert!(e.to_string().contains("cluster"), "{e}");
        assert_eq!(db.store.revision().await.unwrap(), rev);
    }
}
