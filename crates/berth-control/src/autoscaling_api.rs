//! The `/v1` routes of Application Auto Scaling's resources: scalable targets, scaling
//! policies, scheduled actions, and a service's scaling activities.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/scalable-targets[?cluster=]` | scalable targets |
//! | `GET/PUT/DELETE /v1/clusters/{c}/services/{s}/scalable-target` | a service's scalable target (DELETE also deletes its policies and scheduled actions, as DeregisterScalableTarget does) |
//! | `GET /v1/scaling-policies[?cluster=&service=]` | scaling policies |
//! | `GET/PUT/DELETE /v1/clusters/{c}/services/{s}/scaling-policies/{name}` | one policy |
//! | `GET /v1/scheduled-actions[?cluster=&service=]` | scheduled actions |
//! | `GET/PUT/DELETE /v1/clusters/{c}/services/{s}/scheduled-actions/{name}` | one action |
//! | `GET /v1/clusters/{c}/services/{s}/scaling-activities` | the service's scaling activities, newest first |
//!
//! A PUT goes through apply with a one-resource stack, so it is validated and resolved
//! exactly as a stack file is; its `resourceId` (and name) must match the path.
//! Scaling activities are written by the autoscaler, not through the API. Deleting a
//! service (`api`) deletes its autoscaling resources too ([`Db::delete_autoscaling`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use berth_model::autoscaling::{
    self, ScalableTarget, ScalingActivity, ScalingPolicy, ScheduledAction, ServiceRef,
};
use berth_model::ecs::Service;
use berth_model::stack::Stack;
use berth_store::Op;
use serde::Deserialize;

use crate::apply::apply;
use crate::data_plane::DataPlane;
use crate::db::{self, Db};
use crate::error::ApiError;
use crate::json_body::parse_body;

/// What the autoscaling routes need.
struct AutoscalingApi {
    db: Db,
    /// For apply (it loads listener certificates; autoscaling resources have none).
    data_plane: Arc<dyn DataPlane>,
}

type St = State<Arc<AutoscalingApi>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// The routes above, for `api` to merge into its router.
pub fn routes<S: Clone + Send + Sync + 'static>(
    db: Db,
    data_plane: Arc<dyn DataPlane>,
) -> Router<S> {
    Router::new()
        .route("/v1/scalable-targets", get(list_scalable_targets))
        .route(
            "/v1/clusters/{cluster}/services/{service}/scalable-target",
            get(get_scalable_target)
                .put(put_scalable_target)
                .delete(delete_scalable_target),
        )
        .route("/v1/scaling-policies", get(list_scaling_policies))
        .route(
            "/v1/clusters/{cluster}/services/{service}/scaling-policies/{name}",
            get(get_scaling_policy)
                .put(put_scaling_policy)
                .delete(delete_scaling_policy),
        )
        .route("/v1/scheduled-actions", get(list_scheduled_actions))
        .route(
            "/v1/clusters/{cluster}/services/{service}/scheduled-actions/{name}",
            get(get_scheduled_action)
                .put(put_scheduled_action)
                .delete(delete_scheduled_action),
        )
        .route(
            "/v1/clusters/{cluster}/services/{service}/scaling-activities",
            get(list_scaling_activities),
        )
        .with_state(Arc::new(AutoscalingApi { db, data_plane }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ScopeQuery {
    cluster: Option<String>,
    service: Option<String>,
}

fn not_found(what: &str) -> ApiError {
    ApiError::new("ObjectNotFoundException", 404, format!("{what} not found"))
}

fn service_ref(cluster: &str, service: &str) -> ServiceRef {
    ServiceRef {
        cluster: cluster.to_string(),
        service: service.to_string(),
    }
}

/// The body's `resourceId` (and name) must be the path's.
fn check_path(field: &str, path: &str, body: &str) -> Result<(), ApiError> {
    if path == body {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "{field}: must match the path ({path:?}), got {body:?}"
    )))
}

async fn apply_one(s: &AutoscalingApi, stack: Stack) -> Result<(), ApiError> {
    apply(&s.db, &*s.data_plane, &stack, false).await?;
    Ok(())
}

// === scalable targets ===

async fn list_scalable_targets(
    State(s): St,
    Query(q): Query<ScopeQuery>,
) -> ApiResult<Vec<ScalableTarget>> {
    Ok(Json(
        scoped(&s.db, &q, |db, c, _| async move {
            db.scalable_targets(c.as_deref()).await
        })
        .await?,
    ))
}

async fn get_scalable_target(
    State(s): St,
    Path((cluster, service)): Path<(String, String)>,
) -> ApiResult<ScalableTarget> {
    s.db.scalable_target(&cluster, &service)
        .await?
        .map(|v| Json(v.value))
        .ok_or_else(|| not_found(&format!("scalable target for service/{cluster}/{service}")))
}

async fn put_scalable_target(
    State(s): St,
    Path((cluster, service)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<ScalableTarget> {
    let t: ScalableTarget = parse_body(&body)?;
    check_path(
        "resourceId",
        &autoscaling::resource_id(&cluster, &service),
        &t.resource_id,
    )?;
    let stack = Stack {
        scalable_targets: vec![t],
        ..Default::default()
    };
    apply_one(&s, stack).await?;
    get_scalable_target(State(s), Path((cluster, service))).await
}

/// Deletes the target with the service's scaling policies and scheduled actions (as
/// DeregisterScalableTarget does); the service keeps its desired count.
async fn delete_scalable_target(
    State(s): St,
    Path((cluster, service)): Path<(String, String)>,
) -> ApiResult<serde_json::Value> {
    let Some(t) = s.db.scalable_target(&cluster, &service).await? else {
        return Err(not_found(&format!(
            "scalable target for service/{cluster}/{service}"
        )));
    };
    let mut ops = vec![Op::Delete {
        key: t.key.clone(),
        expect: None,
    }];
    for p in
        s.db.scaling_policies(Some(&cluster), Some(&service))
            .await?
    {
        ops.push(Op::Delete {
            key: p.key,
            expect: None,
        });
    }
    for a in
        s.db.scheduled_actions(Some(&cluster), Some(&service))
            .await?
    {
        ops.push(Op::Delete {
            key: a.key,
            expect: None,
        });
    }
    s.db.batch(ops).await?;
    Ok(Json(
        serde_json::json!({"deleted": t.value.scalable_target_arn}),
    ))
}

// === scaling policies ===

async fn list_scaling_policies(
    State(s): St,
    Query(q): Query<ScopeQuery>,
) -> ApiResult<Vec<ScalingPolicy>> {
    Ok(Json(
        scoped(&s.db, &q, |db, c, svc| async move {
            db.scaling_policies(c.as_deref(), svc.as_deref()).await
        })
        .await?,
    ))
}

async fn get_scaling_policy(
    State(s): St,
    Path((cluster, service, name)): Path<(String, String, String)>,
) -> ApiResult<ScalingPolicy> {
    s.db.get::<ScalingPolicy>(&db::scaling_policy_key(&cluster, &service, &name))
        .await?
        .map(|v| Json(v.value))
        .ok_or_else(|| {
            not_found(&format!(
                "scaling policy {name:?} of service/{cluster}/{service}"
            ))
        })
}

async fn put_scaling_policy(
    State(s): St,
    Path((cluster, service, name)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<ScalingPolicy> {
    let p: ScalingPolicy = parse_body(&body)?;
    check_path(
        "resourceId",
        &autoscaling::resource_id(&cluster, &service),
        &p.resource_id,
    )?;
    check_path("policyName", &name, &p.policy_name)?;
    let stack = Stack {
        scaling_policies: vec![p],
        ..Default::default()
    };
    apply_one(&s, stack).await?;
    get_scaling_policy(State(s), Path((cluster, service, name))).await
}

async fn delete_scaling_policy(
    State(s): St,
    Path((cluster, service, name)): Path<(String, String, String)>,
) -> ApiResult<serde_json::Value> {
    let key = db::scaling_policy_key(&cluster, &service, &name);
    match s.db.store.delete(&key).await? {
        Some(_) => Ok(Json(serde_json::json!({
            "deleted": autoscaling::scaling_policy_arn(&service_ref(&cluster, &service), &name)
        }))),
        None => Err(not_found(&format!(
            "scaling policy {name:?} of service/{cluster}/{service}"
        ))),
    }
}

// === scheduled actions ===

async fn list_scheduled_actions(
    State(s): St,
    Query(q): Query<ScopeQuery>,
) -> ApiResult<Vec<ScheduledAction>> {
    Ok(Json(
        scoped(&s.db, &q, |db, c, svc| async move {
            db.scheduled_actions(c.as_deref(), svc.as_deref()).await
        })
        .await?,
    ))
}

async fn get_scheduled_action(
    State(s): St,
    Path((cluster, service, name)): Path<(String, String, String)>,
) -> ApiResult<ScheduledAction> {
    s.db.get::<ScheduledAction>(&db::scheduled_action_key(&cluster, &service, &name))
        .await?
        .map(|v| Json(v.value))
        .ok_or_else(|| {
            not_found(&format!(
                "scheduled action {name:?} of service/{cluster}/{service}"
            ))
        })
}

async fn put_scheduled_action(
    State(s): St,
    Path((cluster, service, name)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<ScheduledAction> {
    let a: ScheduledAction = parse_body(&body)?;
    check_path(
        "resourceId",
        &autoscaling::resource_id(&cluster, &service),
        &a.resource_id,
    )?;
    check_path("scheduledActionName", &name, &a.scheduled_action_name)?;
    let stack = Stack {
        scheduled_actions: vec![a],
        ..Default::default()
    };
    apply_one(&s, stack).await?;
    get_scheduled_action(State(s), Path((cluster, service, name))).await
}

async fn delete_scheduled_action(
    State(s): St,
    Path((cluster, service, name)): Path<(String, String, String)>,
) -> ApiResult<serde_json::Value> {
    let key = db::scheduled_action_key(&cluster, &service, &name);
    match s.db.store.delete(&key).await? {
        Some(_) => Ok(Json(serde_json::json!({
            "deleted": autoscaling::scheduled_action_arn(&service_ref(&cluster, &service), &name)
        }))),
        None => Err(not_found(&format!(
            "scheduled action {name:?} of service/{cluster}/{service}"
        ))),
    }
}

// === scaling activities ===

async fn list_scaling_activities(
    State(s): St,
    Path((cluster, service)): Path<(String, String)>,
) -> ApiResult<Vec<ScalingActivity>> {
    if s.db
        .get::<Service>(&db::service_key(&cluster, &service))
        .await?
        .is_none()
    {
        return Err(ApiError::service_not_found(&cluster, &service));
    }
    Ok(Json(s.db.scaling_activities(&cluster, &service).await?))
}

/// Lists a service's, a cluster's or every resource of one kind. A service without a
/// cluster means that service in any cluster.
async fn scoped<T, F, Fut>(db: &Db, q: &ScopeQuery, list: F) -> Result<Vec<T>, ApiError>
where
    F: Fn(Db, Option<String>, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<db::Versioned<T>>, crate::ControlError>>,
    T: HasResourceId,
{
    let found = match &q.cluster {
        Some(_) => list(db.clone(), q.cluster.clone(), q.service.clone()).await?,
        None => list(db.clone(), None, None).await?,
    };
    Ok(found
        .into_iter()
        .map(|v| v.value)
        .filter(|r| {
            q.service.as_deref().is_none_or(|svc| {
                ServiceRef::parse("resourceId", r.resource_id()).is_ok_and(|x| x.service == svc)
            })
        })
        .collect())
}

/// Resources that name their service by `resourceId`.
trait HasResourceId {
    fn resource_id(&self) -> &str;
}

impl HasResourceId for ScalableTarget {
    fn resource_id(&self) -> &str {
        &self.resource_id
    }
}

impl HasResourceId for ScalingPolicy {
    fn resource_id(&self) -> &str {
        &self.resource_id
    }
}

impl HasResourceId for ScheduledAction {
    fn resource_id(&self) -> &str {
        &self.resource_id
    }
}

#[cfg(test)]
mod tests;
