//! The HTTP JSON API under `/v1`.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/apply[?dryRun=true]` | apply a stack (JSON body); returns the changes |
//! | `GET/POST /v1/clusters`, `GET/DELETE /v1/clusters/{name}` | clusters |
//! | `GET/POST /v1/task-definitions`, `GET/DELETE /v1/task-definitions/{family[:rev]}` | task definitions (DELETE deregisters) |
//! | `GET /v1/services[?cluster=]`, `GET/PUT/DELETE /v1/clusters/{c}/services/{name}` | services |
//! | `POST /v1/clusters/{c}/services/{name}/deployments` | force a new deployment (empty body or `{}`): see [`crate::service_deployment`] |
//! | `GET /v1/tasks[?cluster=&service=&desiredStatus=]`, `GET /v1/clusters/{c}/tasks/{id}` | tasks |
//! | `POST /v1/clusters/{c}/tasks/{id}/stop` | stop a task (`{"reason": ...}`) |
//! | `GET /v1/clusters/{c}/tasks/{id}/logs[?container=&follow=true]` | a task's output |
//! | `POST /v1/clusters/{c}/tasks/{id}/exec` | run a command in a task's container (`{"container", "command": [..], "timeoutSeconds", "caller"}`): see [`crate::task_exec`]; with `Connection: Upgrade`, `Upgrade: berth-exec` (and `"stdin"`, `"tty"`, `"windowSize"`) an interactive session: see [`crate::task_exec_session`] |
//! | `GET /v1/container-instances[?cluster=]` | container instances, with their task counts |
//! | `POST /v1/clusters/{c}/container-instances/{id}/state` | set an instance DRAINING or ACTIVE (`{"status": ...}`): see [`crate::instance_state`] |
//! | `GET /v1/target-groups`, `GET/PUT/DELETE /v1/target-groups/{name}`, `GET /v1/target-groups/{name}/targets` | target groups and their targets' health |
//! | `GET /v1/load-balancers`, `GET/PUT/DELETE /v1/load-balancers/{name}` | load balancers (listeners carry `boundPort`) |
//! | `GET /v1/namespaces[/{name}]`, `GET /v1/clusters/{c}/services/{s}/endpoints` | service discovery and the mesh: see [`crate::discovery_api`] |
//! | `/v1/scalable-targets`, `/v1/scaling-policies`, `/v1/scheduled-actions`, `/v1/clusters/{c}/services/{s}/scaling-activities`, ... | autoscaling: see [`crate::autoscaling_api`] (DELETE of a service also deletes its autoscaling resources) |
//! | `GET /v1/events/stream`, `GET /v1/whoami`, `POST /v1/stack-files/apply` | what the console reads and writes beside the rest: see [`crate::console_api`] |
//!
//! Errors are `{"__type": "<ECS error name>", "message": "..."}`. A request body over
//! [`MAX_BODY_BYTES`] is refused with 413 and `ClientException`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_model::ecs::{Cluster, Service, StopCode, Task, TaskDefinition, TaskStatus};
use berth_model::elb::{LoadBalancer, TargetGroup};
use berth_model::stack::Stack;
use berth_model::{arn, time};
use serde::Deserialize;

use crate::apply::{apply, Change};
use crate::capacity;
use crate::db::{self, Db};
use crate::error::ApiError;
use crate::json_body::parse_body;
use crate::services;
use crate::task_exec::{self, ExecBody};
use crate::task_exec_session;
use crate::task_nodes::NodeError;

pub use crate::api_state::ApiState;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The largest request body the API reads (2 MiB, axum's default, made explicit).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Gives axum's 413 for a body over [`MAX_BODY_BYTES`] (plain text) the API's error body.
async fn body_limit_as_api_error(resp: Response) -> Response {
    if resp.status() != axum::http::StatusCode::PAYLOAD_TOO_LARGE
        || resp.headers().get(axum::http::header::CONTENT_TYPE)
            == Some(&axum::http::HeaderValue::from_static("application/json"))
    {
        return resp;
    }
    ApiError::new(
        "ClientException",
        413,
        format!("request body: larger than the limit of {MAX_BODY_BYTES} bytes"),
    )
    .into_response()
}

/// `router` reading bodies up to [`MAX_BODY_BYTES`] and refusing larger ones with the
/// API's error body (every `/v1` router the API merges goes through it).
pub(crate) fn with_body_limit<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(body_limit_as_api_error))
}

pub fn router(state: ApiState) -> Router {
    let routes = Router::new()
        .route("/v1/apply", post(apply_stack))
        .route("/v1/clusters", get(list_clusters).post(create_cluster))
        .route("/v1/clusters/{name}", get(get_cluster).delete(delete_cluster))
        .route(
            "/v1/task-definitions",
            get(list_task_definitions).post(register_task_definition),
        )
        .route(
            "/v1/task-definitions/{name}",
            get(get_task_definition).delete(deregister_task_definition),
        )
        .route("/v1/services", get(list_services))
        .route(
            "/v1/clusters/{cluster}/services/{name}",
            get(get_service).put(put_service).delete(delete_service),
        )
        .route(
            "/v1/clusters/{cluster}/services/{name}/deployments",
            post(crate::service_deployment::force_new_deployment),
        )
        .route("/v1/tasks", get(list_tasks))
        .route("/v1/clusters/{cluster}/tasks/{id}", get(get_task))
        .route("/v1/clusters/{cluster}/tasks/{id}/stop", post(stop_task))
        .route("/v1/clusters/{cluster}/tasks/{id}/logs", get(task_logs))
        .route("/v1/clusters/{cluster}/tasks/{id}/exec", post(exec_in_task))
        .route(
            "/v1/container-instances",
            get(crate::instance_state::list_instances),
        )
        .route(
            "/v1/clusters/{cluster}/container-instances/{id}/state",
            post(crate::instance_state::update_state),
        )
        .route("/v1/target-groups", get(list_target_groups))
        .route(
            "/v1/target-groups/{name}",
            get(get_target_group)
                .put(put_target_group)
                .delete(delete_target_group),
        )
        .route("/v1/target-groups/{name}/targets", get(list_targets))
        .route("/v1/load-balancers", get(list_load_balancers))
        .route(
            "/v1/load-balancers/{name}",
            get(get_load_balancer)
                .put(put_load_balancer)
                .delete(delete_load_balancer),
        )
        .merge(crate::autoscaling_api::routes(
            state.db.clone(),
            state.data_plane.clone(),
        ))
        .merge(crate::discovery_api::routes(
            state.db.clone(),
            state.data_plane.clone(),
        ))
        .merge(crate::console_api::routes())
        .fallback(|| async {
            ApiError::new(
                "UnknownOperationException",
                404,
                "no such API path; see GET /v1/clusters, /v1/services, /v1/tasks, /v1/target-groups, /v1/load-balancers",
            )
        });
    with_body_limit(routes).with_state(Arc::new(state))
}

type St = State<Arc<ApiState>>;

/// Applies a one-resource stack for a `PUT .../{name}`: the body's name must match the
/// path's.
async fn apply_named(
    s: &ApiState,
    field: &str,
    path_name: &str,
    body_name: &str,
    stack: Stack,
) -> Result<(), ApiError> {
    if body_name != path_name {
        return Err(ApiError::invalid(format!(
            "{field}: must match the path ({path_name:?}), got {body_name:?}"
        )));
    }
    apply(&s.db, &*s.data_plane, &stack, false).await?;
    Ok(())
}

/// Whether any listener action of `lb` forwards to the target group `tg_arn`.
fn forwards_to(lb: &LoadBalancer, tg_arn: &str) -> bool {
    lb.listeners.iter().any(|l| {
        l.default_actions
            .iter()
            .chain(l.rules.iter().flat_map(|r| r.actions.iter()))
            .any(|a| a.target_groups().iter().any(|(arn, _)| *arn == tg_arn))
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn apply_stack(
    State(s): St,
    Query(q): Query<ApplyQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Vec<Change>> {
    let stack: Stack = parse_body(&body)?;
    Ok(Json(apply(&s.db, &*s.data_plane, &stack, q.dry_run).await?))
}

async fn list_clusters(State(s): St) -> ApiResult<Vec<Cluster>> {
    let mut clusters = s.db.clusters().await?;
    let tasks = s.db.tasks(None).await?;
    let services = s.db.services(None).await?;
    let instances = s.db.instances(None).await?;
    for c in &mut clusters {
        let arn = arn::cluster(&c.cluster_name);
        c.running_tasks_count = tasks
            .iter()
            .filter(|t| t.value.cluster_arn == arn && t.value.last_status == TaskStatus::Running)
            .count() as u32;
        c.pending_tasks_count = tasks
            .iter()
            .filter(|t| t.value.cluster_arn == arn && t.value.last_status < TaskStatus::Running)
            .count() as u32;
        c.active_services_count = services
            .iter()
            .filter(|v| v.value.cluster_name() == c.cluster_name && v.value.status == "ACTIVE")
            .count() as u32;
        c.registered_container_instances_count =
            instances.iter().filter(|i| i.cluster_arn == arn).count() as u32;
    }
    Ok(Json(clusters))
}

async fn create_cluster(State(s): St, body: axum::body::Bytes) -> ApiResult<Vec<Change>> {
    let c: Cluster = parse_body(&body)?;
    Ok(Json(
        apply(
            &s.db,
            &*s.data_plane,
            &Stack {
                clusters: vec![c],
                ..Default::default()
            },
            false,
        )
        .await?,
    ))
}

async fn get_cluster(State(s): St, Path(name): Path<String>) -> ApiResult<Cluster> {
    let all = list_clusters(State(s)).await?.0;
    all.into_iter()
        .find(|c| c.cluster_name == name)
        .map(Json)
        .ok_or_else(|| ApiError::cluster_not_found(&name))
}

async fn delete_cluster(State(s): St, Path(name): Path<String>) -> ApiResult<serde_json::Value> {
    if s.db.cluster(&name).await?.is_none() {
        return Err(ApiError::cluster_not_found(&name));
    }
    if !s.db.services(Some(&name)).await?.is_empty() {
        return Err(ApiError::new(
            "ClusterContainsServicesException",
            409,
            format!("cluster {name:?} still has services; delete them first"),
        ));
    }
    if s.db
        .tasks(Some(&name))
        .await?
        .iter()
        .any(|t| t.value.last_status != TaskStatus::Stopped)
    {
        return Err(ApiError::new(
            "ClusterContainsTasksException",
            409,
            format!("cluster {name:?} still has tasks; stop them first"),
        ));
    }
    s.db.store.delete(&db::cluster_key(&name)).await?;
    Ok(Json(serde_json::json!({"deleted": arn::cluster(&name)})))
}

async fn list_task_definitions(State(s): St) -> ApiResult<Vec<TaskDefinition>> {
    Ok(Json(s.db.all_task_definitions().await?))
}

async fn register_task_definition(
    State(s): St,
    body: axum::body::Bytes,
) -> ApiResult<TaskDefinition> {
    let td: TaskDefinition = parse_body(&body)?;
    let family = td.family.clone();
    apply(
        &s.db,
        &*s.data_plane,
        &Stack {
            task_definitions: vec![td],
            ..Default::default()
        },
        false,
    )
    .await?;
    s.db.resolve_task_definition(&family)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::task_definition_not_found(&family))
}

async fn get_task_definition(State(s): St, Path(name): Path<String>) -> ApiResult<TaskDefinition> {
    s.db.resolve_task_definition(&name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::task_definition_not_found(&name))
}

async fn deregister_task_definition(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<TaskDefinition> {
    let Some((family, Some(rev))) = arn::parse_family_revision(&name) else {
        return Err(ApiError::invalid(format!(
            "taskDefinition: give family:revision to deregister, got {name:?}"
        )));
    };
    let key = db::taskdef_key(family, rev);
    s.db.update::<TaskDefinition, _>(&key, |t| {
        if t.status == "INACTIVE" {
            return false;
        }
        t.status = "INACTIVE".into();
        true
    })
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::task_definition_not_found(&name))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    cluster: Option<String>,
    service: Option<String>,
    desired_status: Option<String>,
}

async fn list_services(State(s): St, Query(q): Query<ListQuery>) -> ApiResult<Vec<Service>> {
    Ok(Json(
        s.db.services(q.cluster.as_deref())
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect(),
    ))
}

async fn get_service(
    State(s): St,
    Path((cluster, name)): Path<(String, String)>,
) -> ApiResult<Service> {
    s.db.get::<Service>(&db::service_key(&cluster, &name))
        .await?
        .map(|v| Json(v.value))
        .ok_or_else(|| ApiError::service_not_found(&cluster, &name))
}

async fn put_service(
    State(s): St,
    Path((cluster, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Service> {
    let mut svc: Service = parse_body(&body)?;
    svc.cluster = cluster.clone();
    let body_name = svc.service_name.clone();
    let stack = Stack {
        services: vec![svc],
        ..Default::default()
    };
    apply_named(&s, "serviceName", &name, &body_name, stack).await?;
    get_service(State(s), Path((cluster, name))).await
}

async fn delete_service(
    State(s): St,
    Path((cluster, name)): Path<(String, String)>,
) -> ApiResult<Service> {
    let key = db::service_key(&cluster, &name);
    let svc =
        s.db.update::<Service, _>(&key, |svc| {
            if svc.status == "DRAINING" {
                return false;
            }
            svc.status = "DRAINING".into();
            svc.desired_count = 0;
            true
        })
        .await?
        .ok_or_else(|| ApiError::service_not_found(&cluster, &name))?;
    // A draining service is no longer scaled: its autoscaling resources go too (again
    // on a repeated DELETE, should this step have failed).
    s.db.delete_autoscaling(&cluster, &name).await?;
    Ok(Json(svc))
}

async fn list_tasks(State(s): St, Query(q): Query<ListQuery>) -> ApiResult<Vec<Task>> {
    let group = q.service.as_ref().map(|n| format!("service:{n}"));
    let want = q.desired_status.as_deref().map(str::to_ascii_uppercase);
    Ok(Json(
        s.db.tasks(q.cluster.as_deref())
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|t| group.as_ref().is_none_or(|g| &t.group == g))
            .filter(|t| {
                want.as_deref()
                    .is_none_or(|w| t.desired_status.as_str() == w)
            })
            .map(capacity::as_described)
            .collect(),
    ))
}

async fn find_task(db: &Db, cluster: &str, id: &str) -> Result<Task, ApiError> {
    let id = arn::last_segment(id);
    if let Some(v) = db.get::<Task>(&db::task_key(cluster, id)).await? {
        return Ok(v.value);
    }
    // Accept a unique prefix of the id, as people copy short ids from tables.
    let matches: Vec<Task> = db
        .tasks(Some(cluster))
        .await?
        .into_iter()
        .map(|v| v.value)
        .filter(|t| t.id().starts_with(id))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one match")),
        0 => Err(ApiError::task_not_found(cluster, id)),
        n => Err(ApiError::invalid(format!(
            "task: {id:?} matches {n} tasks; give more of the id"
        ))),
    }
}

async fn get_task(State(s): St, Path((cluster, id)): Path<(String, String)>) -> ApiResult<Task> {
    Ok(Json(capacity::as_described(
        find_task(&s.db, &cluster, &id).await?,
    )))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StopBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn stop_task(
    State(s): St,
    Path((cluster, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Task> {
    let b: StopBody = if body.is_empty() {
        StopBody::default()
    } else {
        parse_body(&body)?
    };
    let t = find_task(&s.db, &cluster, &id).await?;
    let reason = b
        .reason
        .unwrap_or_else(|| "Task stopped by user".to_string());
    services::stop_task(&s.db, &t, StopCode::UserInitiated, &reason).await?;
    Ok(Json(capacity::as_described(
        find_task(&s.db, &cluster, t.id()).await?,
    )))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    container: Option<String>,
    #[serde(default)]
    follow: bool,
}

async fn task_logs(
    State(s): St,
    Path((cluster, id)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let t = find_task(&s.db, &cluster, &id).await?;
    let stream = s
        .nodes
        .logs(&t, q.container.as_deref(), q.follow)
        .await
        .map_err(logs_error)?;
    Ok(Body::from_stream(stream).into_response())
}

/// A node that cannot be reached is the server's fault; a node's refusal (no such task or
/// container) is the caller's.
fn logs_error(e: NodeError) -> ApiError {
    match e {
        NodeError::Unreachable { .. } => ApiError::server(e.to_string()),
        NodeError::Failed { .. } => ApiError::invalid(format!("logs: {e}")),
    }
}

async fn exec_in_task(
    State(s): St,
    Path((cluster, id)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (upgrade, body) = task_exec_session::split_request(request).await?;
    let b: ExecBody = parse_body(&body)?;
    let t = find_task(&s.db, &cluster, &id).await?;
    match upgrade {
        Some(upgrade) => {
            task_exec_session::start(&s.db, &*s.nodes, &s.exec_commands, &t, b, upgrade).await
        }
        None => Ok(
            Json(task_exec::exec(&s.db, &*s.nodes, &s.exec_commands, &t, b).await?).into_response(),
        ),
    }
}

async fn list_target_groups(State(s): St) -> ApiResult<Vec<TargetGroup>> {
    let mut tgs = s.db.target_groups().await?;
    let lbs = s.db.load_balancers().await?;
    for tg in &mut tgs {
        tg.load_balancer_arns = lbs
            .iter()
            .filter(|lb| forwards_to(lb, &tg.target_group_arn))
            .map(|lb| lb.load_balancer_arn.clone())
            .collect();
    }
    Ok(Json(tgs))
}

async fn get_target_group(State(s): St, Path(name): Path<String>) -> ApiResult<TargetGroup> {
    let all = list_target_groups(State(s)).await?.0;
    let n = arn::last_segment(&name).to_string();
    all.into_iter()
        .find(|t| t.target_group_name == n)
        .map(Json)
        .ok_or_else(|| ApiError::target_group_not_found(&name))
}

async fn put_target_group(
    State(s): St,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<TargetGroup> {
    let tg: TargetGroup = parse_body(&body)?;
    let body_name = tg.target_group_name.clone();
    let stack = Stack {
        target_groups: vec![tg],
        ..Default::default()
    };
    apply_named(&s, "targetGroupName", &name, &body_name, stack).await?;
    get_target_group(State(s), Path(name)).await
}

async fn delete_target_group(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<serde_json::Value> {
    let tg =
        s.db.target_group_by_ref(&name)
            .await?
            .ok_or_else(|| ApiError::target_group_not_found(&name))?;
    for svc in s.db.services(None).await? {
        if svc
            .value
            .load_balancers
            .iter()
            .any(|l| l.target_group_arn == tg.target_group_arn)
        {
            return Err(ApiError::in_use(format!(
                "target group {name:?} is used by service {:?}; remove it from the service first",
                svc.value.service_name
            )));
        }
    }
    for lb in s.db.load_balancers().await? {
        if forwards_to(&lb, &tg.target_group_arn) {
            return Err(ApiError::in_use(format!(
                "target group {name:?} is used by load balancer {:?}; change its listeners first",
                lb.load_balancer_name
            )));
        }
    }
    let mut ops = vec![berth_store::Op::Delete {
        key: db::target_group_key(&tg.target_group_name),
        expect: None,
    }];
    for t in s.db.targets(Some(&tg.target_group_name)).await? {
        ops.push(berth_store::Op::Delete {
            key: t.key,
            expect: None,
        });
    }
    s.db.batch(ops).await?;
    Ok(Json(serde_json::json!({"deleted": tg.target_group_arn})))
}

async fn list_targets(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<Vec<berth_model::elb::Target>> {
    let tg =
        s.db.target_group_by_ref(&name)
            .await?
            .ok_or_else(|| ApiError::target_group_not_found(&name))?;
    Ok(Json(
        s.db.targets(Some(&tg.target_group_name))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect(),
    ))
}

/// Adds what the data plane reports: bound ports, and `failed` with its reason.
fn with_bound(s: &ApiState, mut lb: LoadBalancer) -> LoadBalancer {
    let st = s.bound.read().expect("proxy state lock");
    for l in &mut lb.listeners {
        l.bound_port = st.bound.get(&l.listener_arn).map(|a| u32::from(a.port()));
    }
    if let Some(why) = st.failed.get(&lb.load_balancer_name) {
        lb.state = "failed".into();
        lb.state_reason = Some(why.clone());
    }
    lb
}

async fn list_load_balancers(State(s): St) -> ApiResult<Vec<LoadBalancer>> {
    let lbs = s.db.load_balancers().await?;
    Ok(Json(lbs.into_iter().map(|lb| with_bound(&s, lb)).collect()))
}

async fn get_load_balancer(State(s): St, Path(name): Path<String>) -> ApiResult<LoadBalancer> {
    let n = arn::last_segment(&name);
    s.db.get::<LoadBalancer>(&db::load_balancer_key(n))
        .await?
        .map(|v| Json(with_bound(&s, v.value)))
        .ok_or_else(|| ApiError::load_balancer_not_found(&name))
}

async fn put_load_balancer(
    State(s): St,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<LoadBalancer> {
    let lb: LoadBalancer = parse_body(&body)?;
    let body_name = lb.load_balancer_name.clone();
    let stack = Stack {
        load_balancers: vec![lb],
        ..Default::default()
    };
    apply_named(&s, "loadBalancerName", &name, &body_name, stack).await?;
    get_load_balancer(State(s), Path(name)).await
}

async fn delete_load_balancer(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<serde_json::Value> {
    let n = arn::last_segment(&name);
    let protected =
        s.db.get::<LoadBalancer>(&db::load_balancer_key(n))
            .await?
            .is_some_and(|v| {
                v.value
                    .attributes
                    .get("deletion_protection.enabled")
                    .map(String::as_str)
                    == Some("true")
            });
    if protected {
        return Err(ApiError::new(
            "OperationNotPermittedException",
            409,
            format!(
                "load balancer {name:?} has deletion_protection.enabled; set it to false first"
            ),
        ));
    }
    match s.db.store.delete(&db::load_balancer_key(n)).await? {
        Some(_) => Ok(Json(
            serde_json::json!({"deleted": name, "at": time::now()}),
        )),
        None => Err(ApiError::load_balancer_not_found(&name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_refusal_is_the_callers_fault_and_an_unreachable_node_the_servers() {
        let e = logs_error(NodeError::Failed {
            task_arn: "t".into(),
            message: "container web is not part of task t".into(),
        });
        assert_eq!(e.status, 400);
        assert_eq!(e.message, "logs: container web is not part of task t");
        let e = logs_error(NodeError::Unreachable {
            task_arn: "t".into(),
        });
        assert_eq!(e.status, 500);
        assert!(e.message.contains("task t"), "{e}");
    }
}
