//! The `/v1/secrets` routes: berth's secret store, as Secrets Manager's operations.
//!
//! | method and path | operation |
//! |---|---|
//! | `GET /v1/secrets` | ListSecrets: `{"SecretList": [{Name, ARN, CreatedDate, LastChangedDate}]}` |
//! | `PUT /v1/secrets/{name}` (`{"secretString"}`) | CreateSecret or PutSecretValue: the metadata and `Created` |
//! | `GET /v1/secrets/{name}` | GetSecretValue: the metadata and `SecretString` |
//! | `DELETE /v1/secrets/{name}` | DeleteSecret, at once (no recovery window) |
//!
//! A name may hold `/` (`prod/db`). An unknown name is `ResourceNotFoundException` (404)
//! naming it; a bad name or value `InvalidParameterException` naming the field. The IAM
//! actions are in [`crate::iam_native_actions`]. Only names are logged.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::json_body::parse_body;
use crate::secret_store::{secret_not_found, SecretStore};

type St = State<SecretStore>;
type ApiResult = Result<Json<Value>, ApiError>;

/// The routes above, to merge into the API's router.
pub fn routes<S: Clone + Send + Sync + 'static>(store: SecretStore) -> Router<S> {
    let routes = Router::new().route("/v1/secrets", get(list)).route(
        "/v1/secrets/{*name}",
        get(get_value).put(put_value).delete(delete),
    );
    crate::api::with_body_limit(routes).with_state(store)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutSecret {
    secret_string: String,
}

async fn list(State(store): St) -> ApiResult {
    Ok(Json(json!({ "SecretList": store.list().await? })))
}

async fn put_value(
    State(store): St,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let b: PutSecret = parse_body(&body)?;
    let (meta, created) = store.put(&name, &b.secret_string).await?;
    tracing::info!(secret = %name, created, "secret value stored");
    let mut out = serde_json::to_value(&meta).unwrap_or_default();
    out["Created"] = created.into();
    Ok(Json(out))
}

async fn get_value(State(store): St, Path(name): Path<String>) -> ApiResult {
    let (meta, value) = store
        .value(&name)
        .await?
        .ok_or_else(|| secret_not_found(&name))?;
    let mut out = serde_json::to_value(&meta).unwrap_or_default();
    out["SecretString"] = value.into();
    Ok(Json(out))
}

async fn delete(State(store): St, Path(name): Path<String>) -> ApiResult {
    let meta = store.delete(&name).await?;
    tracing::info!(secret = %name, "secret deleted");
    Ok(Json(json!({
        "ARN": meta.arn,
        "Name": meta.name,
        "DeletionDate": berth_model::time::now(),
    })))
}
