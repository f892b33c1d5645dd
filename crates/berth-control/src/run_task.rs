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
