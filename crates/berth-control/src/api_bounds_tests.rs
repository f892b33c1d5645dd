//! The `/v1` API's bounds through the real router: a body over the limit, malformed JSON
//! and YAML (the message gives the line and column), unknown fields and names or values
//! out of range, each refused with ECS's error name and the field, and each refusal
//! leaving the store's revision where it was.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use crate::api::{router, ApiState, MAX_BODY_BYTES};
use crate::data_plane::fake::FakeDataPlane;
use crate::db::Db;
use crate::test_fixtures::NoNodes;

async fn api() -> (axum::Router, Db) {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let app = router(ApiState {
        db: db.clone(),
        data_plane: Arc::new(FakeDataPlane::default()),
        nodes: Arc::new(NoNodes),
        bound: Default::default(),
        exec_commands: Default::default(),
    });
    (app, db)
}

/// Sends one request and checks it is refused with `status` and the ECS error `kind`,
/// with the store unchanged. Returns the message.
async fn refused(
    app: &axum::Router,
    db: &Db,
    method: &str,
    path: &str,
    body: impl Into<Body>,
    status: StatusCode,
    kind: &str,
) -> String {
    let before = db.store.revision().await.unwrap();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let got = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{method} {path}: an ECS error body, got {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(got, status, "{method} {path}: {v}");
    assert_eq!(v["__type"], kind, "{method} {path}: {v}");
    assert_eq!(
        db.store.revision().await.unwrap(),
        before,
        "{method} {path}: the refusal changed nothing"
    );
    v["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_and_an_ecs_error() {
    let (app, db) = api().await;
    let big = format!(
        r#"{{"clusterName": "a", "tags": "{}"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    for path in ["/v1/clusters", "/v1/apply", "/v1/stack-files/apply"] {
        let m = refused(
            &app,
            &db,
            "POST",
            path,
            big.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "ClientException",
        )
        .await;
        assert!(m.contains(&MAX_BODY_BYTES.to_string()), "{m}");
    }
    // The secret routes, merged beside the API's, are bounded the same way.
    let secrets = crate::secrets_api::routes::<()>(crate::secret_store::SecretStore::new(
        db.clone(),
        [7; 32],
    ));
    let big = format!(r#"{{"secretString": "{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    let m = refused(
        &secrets,
        &db,
        "PUT",
        "/v1/secrets/db",
        big,
        StatusCode::PAYLOAD_TOO_LARGE,
        "ClientException",
    )
    .await;
    assert!(m.contains(&MAX_BODY_BYTES.to_string()), "{m}");
}

#[tokio::test]
async fn malformed_json_and_yaml_are_refused_with_their_position() {
    let (app, db) = api().await;
    let m = refused(
        &app,
        &db,
        "POST",
        "/v1/clusters",
        "{\"clusterName\": \"a\",\n  \"tags\": [",
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
    )
    .await;
    assert!(m.contains("line 2 column"), "{m}");
    let m = refused(
        &app,
        &db,
        "POST",
        "/v1/apply",
        "{\"clusters\": [}",
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
    )
    .await;
    assert!(m.contains("line 1 column 15"), "{m}");
    let m = refused(
        &app,
        &db,
        "POST",
        "/v1/stack-files/apply",
        "clusters:\n  - clusterName: a\n    tags: [unclosed\n",
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
    )
    .await;
    assert!(m.contains("line") && m.contains("column"), "{m}");
}

#[tokio::test]
async fn unknown_fields_are_refused_naming_the_field() {
    let (app, db) = api().await;
    let m = refused(
        &app,
        &db,
        "POST",
        "/v1/clusters",
        r#"{"clusterName": "a", "clusterColour": "red"}"#,
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
    )
    .await;
    assert!(m.contains("clusterColour"), "{m}");
    let m = refused(
        &app,
        &db,
        "POST",
        "/v1/apply",
        r#"{"services": [{"serviceName": "s", "taskDefinition": "t", "desiredCont": 1}]}"#,
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
    )
    .await;
    assert!(m.contains("desiredCont"), "{m}");
    let m = refused(
        &app,
        &db,
        "POST",
        "/v1/stack-files/apply",
        "clusters:\n  - clusterName: a\n    colour: red\n",
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
    )
    .await;
    assert!(m.contains("colour"), "{m}");
}

#[tokio::test]
async fn names_and_values_out_of_range_are_refused_naming_the_field() {
    let (app, db) = api().await;
    let long = "a".repeat(256);
    for (path, body, field) in [
        (
            "/v1/clusters",
            r#"{"clusterName": "bad name!"}"#.to_string(),
            "clusterName",
        ),
        (
            "/v1/clusters",
            format!(r#"{{"clusterName": "{long}"}}"#),
            "clusterName",
        ),
        (
            "/v1/apply",
            r#"{"services": [{"serviceName": "web/1", "taskDefinition": "t"}]}"#.to_string(),
            "serviceName",
        ),
        (
            "/v1/apply",
            format!(r#"{{"services": [{{"serviceName": "{long}", "taskDefinition": "t"}}]}}"#),
            "serviceName",
        ),
        (
            "/v1/apply",
            r#"{"services": [{"serviceName": "s", "taskDefinition": "t", "desiredCount": -1}]}"#
                .to_string(),
            "desiredCount",
        ),
        (
            "/v1/stack-files/apply",
            "services:\n  - serviceName: s\n    taskDefinition: t\n    desiredCount: -1\n"
                .to_string(),
            "desiredCount",
        ),
    ] {
        let m = refused(
            &app,
            &db,
            "POST",
            path,
            body,
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
        )
        .await;
        assert!(m.contains(field), "{path}: {m}");
    }
}
