//! The task endpoint's HTTP routes: the credential route with its token check, and the
//! metadata routes (v4 and v3) over [`super::metadata`].
//!
//! What it does not do: bind sockets or decide ids (the endpoint does).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_model::ecs::{Task, TaskDefinition};
use berth_runtime::TaskState;
use serde_json::{json, Value};

use super::{metadata, Target, TaskEndpoint};

pub(super) fn router(endpoint: Arc<TaskEndpoint>) -> Router {
    let mut r = Router::new().route("/v2/credentials/{id}", get(credentials));
    for version in ["v3", "v4"] {
        r = r
            .route(&format!("/{version}/{{id}}"), get(container))
            .route(&format!("/{version}/{{id}}/task"), get(task))
            .route(&format!("/{version}/{{id}}/stats"), get(container_stats))
            .route(&format!("/{version}/{{id}}/task/stats"), get(task_stats));
    }
    r.with_state(endpoint)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message.into(), "HTTPErrorCode": status.as_u16()})),
    )
        .into_response()
}

async fn credentials(
    State(e): State<Arc<TaskEndpoint>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(Target::Credentials { task_arn }) = e.resolve(&id).await else {
        return error(
            StatusCode::NOT_FOUND,
            "InvalidIdInRequest",
            format!("no task on this node has credentials id {id}"),
        );
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return error(
            StatusCode::UNAUTHORIZED,
            "NoAuthorization",
            "the Authorization header (AWS_CONTAINER_AUTHORIZATION_TOKEN) is required",
        );
    };
    if !e.token_matches(&task_arn, token) {
        return error(
            StatusCode::FORBIDDEN,
            "InvalidAuthorization",
            "the Authorization token is not this task's",
        );
    }
    match e.credentials(&task_arn).await {
        Ok(c) => Json(json!({
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key,
            "Token": c.session_token,
            "Expiration": berth_model::time::rfc3339(c.expiration as f64, true),
            "RoleArn": c.role_arn,
        }))
        .into_response(),
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CredentialsUnavailable",
            err.to_string(),
        ),
    }
}

/// The task, its definition and its runtime state for a metadata id.
struct Found {
    container: String,
    task: Task,
    td: TaskDefinition,
    state: Option<TaskState>,
}

async fn find(e: &TaskEndpoint, id: &str) -> Result<Found, Response> {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "InvalidIdInRequest",
            format!("no container on this node has metadata id {id}"),
        )
    };
    let Some(Target::Metadata {
        task_arn,
        container,
    }) = e.resolve(id).await
    else {
        return Err(not_found());
    };
    let unavailable = |m: String| error(StatusCode::INTERNAL_SERVER_ERROR, "Unavailable", m);
    let task = e
        .api
        .assigned_tasks(&e.instance_arn)
        .await
        .map_err(|err| unavailable(err.to_string()))?
        .into_iter()
        .find(|t| t.task_arn == task_arn)
        .ok_or_else(not_found)?;
    let td = e
        .api
        .task_definition(&task.task_definition_arn)
        .await
        .map_err(|err| unavailable(err.to_string()))?
        .ok_or_else(not_found)?;
    let state = e
        .runtime
        .list()
        .await
        .ok()
        .and_then(|l| l.into_iter().find(|s| s.task_arn == task_arn));
    Ok(Found {
        container,
        task,
        td,
        state,
    })
}

async fn container(State(e): State<Arc<TaskEndpoint>>, Path(id): Path<String>) -> Response {
    match find(&e, &id).await {
        Ok(f) => metadata::container_json(&f.task, &f.td, f.state.as_ref(), &f.container)
            .map(|c| Json(c).into_response())
            .unwrap_or_else(|| {
                error(
                    StatusCode::NOT_FOUND,
                    "InvalidIdInRequest",
                    "no such container",
                )
            }),
        Err(r) => r,
    }
}

async fn task(State(e): State<Arc<TaskEndpoint>>, Path(id): Path<String>) -> Response {
    match find(&e, &id).await {
        Ok(f) => Json(metadata::task_json(&f.task, &f.td, f.state.as_ref())).into_response(),
        Err(r) => r,
    }
}

/// Each container's stats by its Docker id.
async fn stats_of(e: &TaskEndpoint, f: &Found) -> Vec<(String, Value)> {
    let usage = match e.runtime.stats(&f.task.task_arn).await {
        Ok(s) => berth_model::agent::TaskUsage {
            cpu_units: s.cpu_units,
            memory_bytes: s.memory_bytes,
        },
        Err(_) => return Vec::new(),
    };
    let now = berth_model::time::now();
    f.td.container_definitions
        .iter()
        .map(|d| {
            let docker_id = f
                .task
                .containers
                .iter()
                .find(|c| c.name == d.name)
                .and_then(|c| c.runtime_id.clone())
                .unwrap_or_default();
            let limit = d.memory.map(|m| u64::from(m) << 20);
            let stats = metadata::stats_json(&docker_id, &d.name, &usage, limit, now);
            (d.name.clone(), stats)
        })
        .collect()
}

async fn container_stats(State(e): State<Arc<TaskEndpoint>>, Path(id): Path<String>) -> Response {
    let f = match find(&e, &id).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let stats = stats_of(&e, &f).await;
    match stats.into_iter().find(|(name, _)| *name == f.container) {
        Some((_, s)) => Json(s).into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "StatsUnavailable",
            "the runtime has no stats for this task now",
        ),
    }
}

async fn task_stats(State(e): State<Arc<TaskEndpoint>>, Path(id): Path<String>) -> Response {
    let f = match find(&e, &id).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let by_id: serde_json::Map<String, Value> = stats_of(&e, &f)
        .await
        .into_iter()
        .map(|(_, s)| (s["id"].as_str().unwrap_or_default().to_string(), s))
        .collect();
    Json(Value::Object(by_id)).into_response()
}
