//! The `/v1/iam` routes: users, roles, their inline policies, and users' access keys.
//!
//! | method and path | IAM operation |
//! |---|---|
//! | `GET /v1/iam/users`, `POST /v1/iam/users` (`{"userName"}`) | ListUsers, CreateUser |
//! | `GET/DELETE /v1/iam/users/{name}` | GetUser, DeleteUser |
//! | `PUT/DELETE /v1/iam/users/{name}/policies/{policy}` (body: the policy document) | PutUserPolicy, DeleteUserPolicy |
//! | `GET/POST /v1/iam/users/{name}/access-keys` | ListAccessKeys, CreateAccessKey (the secret is in this answer only) |
//! | `DELETE /v1/iam/users/{name}/access-keys/{id}` | DeleteAccessKey |
//! | `GET /v1/iam/roles`, `POST /v1/iam/roles` (`{"roleName"}`), `GET/DELETE /v1/iam/roles/{name}`, `PUT/DELETE /v1/iam/roles/{name}/policies/{policy}` | the same for roles |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::iam_store::{no_such_entity, AccessKeyMetadata, Entity, EntityKind, Iam};
use crate::json_body::parse_body;

type St = State<Arc<Iam>>;
type ApiResult = Result<Json<Value>, ApiError>;

/// The routes above, to merge into the API's router.
pub fn routes<S: Clone + Send + Sync + 'static>(iam: Iam) -> Router<S> {
    Router::new()
        .route("/v1/iam/users", get(list_users).post(create_user))
        .route("/v1/iam/users/{name}", get(get_user).delete(delete_user))
        .route(
            "/v1/iam/users/{name}/policies/{policy}",
            put(put_user_policy).delete(delete_user_policy),
        )
        .route(
            "/v1/iam/users/{name}/access-keys",
            get(list_access_keys).post(create_access_key),
        )
        .route(
            "/v1/iam/users/{name}/access-keys/{id}",
            delete(delete_access_key),
        )
        .route("/v1/iam/roles", get(list_roles).post(create_role))
        .route("/v1/iam/roles/{name}", get(get_role).delete(delete_role))
        .route(
            "/v1/iam/roles/{name}/policies/{policy}",
            put(put_role_policy).delete(delete_role_policy),
        )
        .with_state(Arc::new(iam))
}

/// How the API shows a user or role: its policies by name, documents as given.
fn shown(e: &Entity) -> Value {
    let (name_field, id_field) = match e.kind {
        EntityKind::User => ("UserName", "UserId"),
        EntityKind::Role => ("RoleName", "RoleId"),
    };
    json!({
        name_field: e.name,
        id_field: e.id,
        "Arn": e.arn,
        "CreateDate": e.create_date,
        "Policies": e.policies,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateUser {
    user_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRole {
    role_name: String,
}

async fn list(iam: &Iam, kind: EntityKind) -> ApiResult {
    let all: Vec<Value> = iam.entities(kind).await?.iter().map(shown).collect();
    let field = match kind {
        EntityKind::User => "Users",
        EntityKind::Role => "Roles",
    };
    Ok(Json(json!({ field: all })))
}

async fn get_one(iam: &Iam, kind: EntityKind, name: &str) -> ApiResult {
    iam.entity(kind, name)
        .await?
        .map(|e| Json(shown(&e)))
        .ok_or_else(|| no_such_entity(kind, name))
}

async fn list_users(State(iam): St) -> ApiResult {
    list(&iam, EntityKind::User).await
}

async fn create_user(State(iam): St, body: axum::body::Bytes) -> ApiResult {
    let b: CreateUser = parse_body(&body)?;
    Ok(Json(shown(
        &iam.create(EntityKind::User, &b.user_name).await?,
    )))
}

async fn get_user(State(iam): St, Path(name): Path<String>) -> ApiResult {
    get_one(&iam, EntityKind::User, &name).await
}

async fn delete_user(State(iam): St, Path(name): Path<String>) -> ApiResult {
    iam.delete(EntityKind::User, &name).await?;
    Ok(Json(
        json!({"deleted": crate::iam_store::entity_arn(EntityKind::User, &name)}),
    ))
}

async fn put_user_policy(
    State(iam): St,
    Path((name, policy)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    put_policy(&iam, EntityKind::User, &name, &policy, &body).await
}

async fn delete_user_policy(
    State(iam): St,
    Path((name, policy)): Path<(String, String)>,
) -> ApiResult {
    iam.delete_policy(EntityKind::User, &name, &policy).await?;
    Ok(Json(json!({"deleted": policy})))
}

async fn put_policy(
    iam: &Iam,
    kind: EntityKind,
    name: &str,
    policy: &str,
    body: &[u8],
) -> ApiResult {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            berth_iam::PolicyError::CODE,
            400,
            format!("policyDocument: not JSON: {e}"),
        )
    })?;
    iam.put_policy(kind, name, policy, &doc).await?;
    get_one(iam, kind, name).await
}

async fn list_access_keys(State(iam): St, Path(name): Path<String>) -> ApiResult {
    if iam.entity(EntityKind::User, &name).await?.is_none() {
        return Err(no_such_entity(EntityKind::User, &name));
    }
    let keys: Vec<AccessKeyMetadata> = iam
        .access_keys(EntityKind::User, &name)
        .await?
        .iter()
        .map(AccessKeyMetadata::from)
        .collect();
    Ok(Json(json!({"AccessKeyMetadata": keys})))
}

async fn create_access_key(State(iam): St, Path(name): Path<String>) -> ApiResult {
    let key = iam.create_access_key(&name).await?;
    tracing::info!(user = %name, access_key_id = %key.access_key_id, "access key created");
    Ok(Json(json!({"AccessKey": key})))
}

async fn delete_access_key(State(iam): St, Path((name, id)): Path<(String, String)>) -> ApiResult {
    iam.delete_access_key(&name, &id).await?;
    tracing::info!(user = %name, access_key_id = %id, "access key deleted");
    Ok(Json(json!({"deleted": id})))
}

async fn list_roles(State(iam): St) -> ApiResult {
    list(&iam, EntityKind::Role).await
}

async fn create_role(State(iam): St, body: axum::body::Bytes) -> ApiResult {
    let b: CreateRole = parse_body(&body)?;
    Ok(Json(shown(
        &iam.create(EntityKind::Role, &b.role_name).await?,
    )))
}

async fn get_role(State(iam): St, Path(name): Path<String>) -> ApiResult {
    get_one(&iam, EntityKind::Role, &name).await
}

async fn delete_role(State(iam): St, Path(name): Path<String>) -> ApiResult {
    iam.delete(EntityKind::Role, &name).await?;
    Ok(Json(
        json!({"deleted": crate::iam_store::entity_arn(EntityKind::Role, &name)}),
    ))
}

async fn put_role_policy(
    State(iam): St,
    Path((name, policy)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    put_policy(&iam, EntityKind::Role, &name, &policy, &body).await
}

async fn delete_role_policy(
    State(iam): St,
    Path((name, policy)): Path<(String, String)>,
) -> ApiResult {
    iam.delete_policy(EntityKind::Role, &name, &policy).await?;
    Ok(Json(json!({"deleted": policy})))
}
