use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;

fn store() -> SecretStore {
    SecretStore::new(Db::new(Arc::new(berth_store::MemoryStore::new())), [5; 32])
}

#[tokio::test]
async fn a_value_is_sealed_in_the_store_and_opens_only_with_its_key_and_name() {
    let s = store();
    let (meta, created) = s.put("prod/db", "correct horse battery").await.unwrap();
    assert!(created);
    assert_eq!(
        meta.arn,
        "arn:berth:secretsmanager:local:000000000000:secret:prod/db"
    );
    for e in s.db.store.list("/").await.unwrap() {
        let text = String::from_utf8_lossy(&e.value);
        assert!(!text.contains("correct horse"), "{} holds the value", e.key);
    }
    let (_, value) = s.value("prod/db").await.unwrap().unwrap();
    assert_eq!(value, "correct horse battery");

    // Another sealing key opens nothing, and says so without the value.
    let other = SecretStore::new(s.db.clone(), [6; 32]);
    let e = other.value("prod/db").await.unwrap_err();
    assert!(e.message.contains("does not open"), "{}", e.message);
    assert!(!e.message.contains("correct horse"));

    // A sealed value moved to another name does not open there.
    let stored =
        s.db.get::<StoredSecret>(&secret_key("prod/db"))
            .await
            .unwrap()
            .unwrap()
            .value;
    let moved = StoredSecret {
        name: "other".into(),
        ..stored
    };
    s.db.put(&secret_key("other"), &moved).await.unwrap();
    assert!(s.value("other").await.is_err());
}

#[tokio::test]
async fn putting_again_replaces_the_value_and_keeps_the_creation_date() {
    let s = store();
    let (first, _) = s.put("db", "one").await.unwrap();
    let (second, created) = s.put("db", "two").await.unwrap();
    assert!(!created);
    assert_eq!(second.created_date, first.created_date);
    assert_eq!(s.value("db").await.unwrap().unwrap().1, "two");
    assert_eq!(s.list().await.unwrap().len(), 1);
    s.delete("db").await.unwrap();
    assert!(s.value("db").await.unwrap().is_none());
    let e = s.delete("db").await.unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException");
}

#[tokio::test]
async fn bad_names_and_values_are_refused_naming_the_field_and_change_nothing() {
    let s = store();
    let e = s.put("has space", "v").await.unwrap_err();
    assert_eq!(e.code, "InvalidParameterException");
    assert!(e.message.starts_with("name: "), "{}", e.message);
    let e = s.put("ok", "").await.unwrap_err();
    assert!(
        e.message.starts_with("secretString: 1 to 65536 bytes"),
        "{}",
        e.message
    );
    assert!(s.db.store.list("/").await.unwrap().is_empty());
}

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn the_api_stores_answers_and_refuses_unknown_names_naming_them() {
    let s = store();
    let router: axum::Router = crate::secrets_api::routes(s.clone());
    let (st, put) = call(
        &router,
        "PUT",
        "/v1/secrets/prod/db",
        r#"{"secretString":"pw"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{put}");
    assert_eq!(put["Name"], "prod/db");
    assert_eq!(put["Created"], true);
    let (st, got) = call(&router, "GET", "/v1/secrets/prod/db", "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got["SecretString"], "pw");
    let (_, listed) = call(&router, "GET", "/v1/secrets", "").await;
    assert_eq!(listed["SecretList"][0]["Name"], "prod/db");
    assert!(listed.to_string().find("pw\"").is_none(), "{listed}");
    let (st, missing) = call(&router, "GET", "/v1/secrets/nope", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(missing["__type"], "ResourceNotFoundException");
    assert!(
        missing["message"].as_str().unwrap().ends_with(": nope"),
        "{missing}"
    );
    let (st, bad) = call(&router, "PUT", "/v1/secrets/x", r#"{"value":"pw"}"#).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("value"), "{bad}");
    let (st, _) = call(&router, "DELETE", "/v1/secrets/prod/db", "").await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(&router, "DELETE", "/v1/secrets/prod/db", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
