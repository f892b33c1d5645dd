//! Forcing a new deployment of a service (ECS's UpdateService with
//! `forceNewDeployment`): `POST /v1/clusters/{cluster}/services/{name}/deployments` with
//! an empty body or `{}`.
//!
//! It records a new PRIMARY deployment of the service's current task definition and
//! makes the PRIMARY deployment before it ACTIVE
//! ([`crate::services::deployments::force_new`]), in one compare-and-put on the service.
//! The service reconciler then replaces every task of the older deployment under the
//! same rules as for a new task definition (minimumHealthyPercent/maximumPercent, health,
//! drain first, the circuit breaker), since tasks belong to the deployment their
//! `startedBy` names.
//!
//! What it does not do: start or stop a task itself, or change the service's
//! specification (a task definition or desired count change goes through `PUT` of the
//! service first).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use berth_model::ecs::Service;
use berth_model::time;

use crate::api_state::ApiState;
use crate::db::{self, Db};
use crate::error::{ApiError, ControlError};
use crate::json_body::parse_body;
use crate::services::deployments;

/// Checks the request body: empty, or a JSON object without members.
fn check_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let members: serde_json::Map<String, serde_json::Value> = parse_body(body)?;
    match members.keys().next() {
        None => Ok(()),
        Some(k) => Err(ApiError::invalid(format!(
            "{k}: a forced deployment takes no members (send an empty body or {{}}); change the service with PUT first"
        ))),
    }
}

/// `POST /v1/clusters/{cluster}/services/{name}/deployments`: the service after a new
/// deployment was forced.
pub async fn force_new_deployment(
    State(s): State<Arc<ApiState>>,
    Path((cluster, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Service>, ApiError> {
    check_body(&body)?;
    Ok(Json(force(&s.db, &cluster, &name).await?))
}

/// Forces a new deployment of service `name` of `cluster`; returns the service as
/// written. A missing or deleting service, or an unregistered task definition, changes
/// nothing.
pub async fn force(db: &Db, cluster: &str, name: &str) -> Result<Service, ApiError> {
    let key = db::service_key(cluster, name);
    for _ in 0..64 {
        let Some(cur) = db.get::<Service>(&key).await? else {
            return Err(ApiError::service_not_found(cluster, name));
        };
        let svc = &cur.value;
        if svc.status != "ACTIVE" {
            return Err(ApiError::new(
                "ServiceNotActiveException",
                400,
                format!(
                    "service {name:?} is {} (being deleted): a new deployment needs an ACTIVE service",
                    svc.status
                ),
            ));
        }
        let Some(td) = db.resolve_task_definition(&svc.task_definition).await? else {
            return Err(ApiError::invalid(format!(
                "taskDefinition: {} is not registered (register it or update the service to one that is)",
                svc.task_definition
            )));
        };
        let id = format!(
            "ecs-svc/{}",
            crate::services::plan::short(uuid::Uuid::new_v4().simple().to_string())
        );
        let mut next = svc.clone();
        next.deployments = deployments::force_new(
            &svc.deployments,
            &id,
            &td.task_definition_arn,
            svc.desired_count.max(0) as u32,
            time::now(),
        );
        match db.put_if(&cur, &next).await {
            Ok(_) => return Ok(next),
            Err(berth_store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ControlError::from(e).into()),
        }
    }
    Err(ControlError::Contended { key }.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::ecs::{DeploymentStatus, RolloutState};

    async fn db_with_service(status: &str) -> Db {
        let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
        let mut td: berth_model::ecs::TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "web",
            "containerDefinitions": [{"name": "web", "image": "x", "memory": 64}]
        }))
        .unwrap();
        td.revision = 1;
        td.task_definition_arn = berth_model::arn::task_definition("web", 1);
        td.status = "ACTIVE".into();
        db.put(&db::taskdef_key("web", 1), &td).await.unwrap();
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "serviceName": "web",
            "taskDefinition": "web",
            "desiredCount": 2
        }))
        .unwrap();
        svc.status = status.into();
        svc.deployments = vec![berth_model::ecs::Deployment {
            id: "ecs-svc/first".into(),
            status: DeploymentStatus::Primary,
            task_definition: td.task_definition_arn.clone(),
            desired_count: 2,
            running_count: 2,
            rollout_state: RolloutState::Completed,
            ..Default::default()
        }];
        db.put(&db::service_key("default", "web"), &svc)
            .await
            .unwrap();
        db
    }

    #[tokio::test]
    async fn a_forced_deployment_is_primary_of_the_same_definition() {
        let db = db_with_service("ACTIVE").await;
        let svc = force(&db, "default", "web").await.unwrap();
        assert_eq!(svc.deployments.len(), 2, "{:?}", svc.deployments);
        let new = &svc.deployments[0];
        assert!(new.id.starts_with("ecs-svc/") && new.id != "ecs-svc/first");
        assert_eq!(new.status, DeploymentStatus::Primary);
        assert_eq!(new.rollout_state, RolloutState::InProgress);
        assert_eq!(
            new.task_definition,
            berth_model::arn::task_definition("web", 1)
        );
        assert_eq!((new.desired_count, new.running_count), (2, 0));
        let old = &svc.deployments[1];
        assert_eq!(old.id, "ecs-svc/first");
        assert_eq!(old.status, DeploymentStatus::Active);
        assert_eq!(old.rollout_state, RolloutState::Completed);
        let stored = db
            .get::<Service>(&db::service_key("default", "web"))
            .await
            .unwrap()
            .unwrap()
            .value;
        // The store keeps timestamps to the microsecond.
        let shape = |ds: &[berth_model::ecs::Deployment]| -> Vec<_> {
            ds.iter()
                .map(|d| {
                    (
                        d.id.clone(),
                        d.status,
                        d.rollout_state,
                        d.task_definition.clone(),
                        (d.desired_count, d.running_count),
                        (d.created_at * 1e3).round() as i64,
                    )
                })
                .collect()
        };
        assert_eq!(shape(&stored.deployments), shape(&svc.deployments));
    }

    #[test]
    fn the_body_is_empty_or_an_object_without_members() {
        assert!(check_body(b"").is_ok());
        assert!(check_body(b" {} ").is_ok());
        let err = check_body(br#"{"taskDefinition": "web:2"}"#).unwrap_err();
        assert_eq!(err.code, "InvalidParameterException");
        assert!(
            err.message
                .starts_with("taskDefinition: a forced deployment takes no members"),
            "{}",
            err.message
        );
        let err = check_body(b"[1]").unwrap_err();
        assert!(err.message.starts_with("request body:"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_deleting_or_missing_service_is_refused_and_unchanged() {
        let db = db_with_service("DRAINING").await;
        let err = force(&db, "default", "web").await.unwrap_err();
        assert_eq!(err.code, "ServiceNotActiveException");
        let stored = db
            .get::<Service>(&db::service_key("default", "web"))
            .await
            .unwrap()
            .unwrap()
            .value;
        assert_eq!(stored.deployments.len(), 1);
        let err = force(&db, "default", "nope").await.unwrap_err();
        assert_eq!(err.code, "ServiceNotFoundException");
    }
}
