//! The guard with console sessions: signing in over HTTP, the cookie standing for a
//! signature, the console header on changes, sign-out, and the public page.

use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::*;
use crate::console_session::{self, ConsoleSessions};
use crate::db::Db;
use crate::iam_store::{EntityKind, NewAccessKey};

struct Fixture {
    url: String,
    admin: NewAccessKey,
    reader: NewAccessKey,
    http: reqwest::Client,
}

async fn start() -> Fixture {
    let iam = Iam::new(Db::new(Arc::new(berth_store::MemoryStore::new())), [3; 32]);
    let admin = iam.ensure_admin().await.unwrap().unwrap();
    iam.create(EntityKind::User, "reader").await.unwrap();
    let read_only = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecs:Describe*", "ecs:List*"], "Resource": "*"}]});
    iam.put_policy(EntityKind::User, "reader", "read", &read_only)
        .await
        .unwrap();
    let reader = iam.create_access_key("reader").await.unwrap();
    let who = |Extension(p): Extension<Principal>| async move { p.name };
    let sessions = ConsoleSessions::new(false);
    let app = Router::new()
        .route("/v1/clusters/{c}/services/{s}", get(who).put(who))
        .route("/console/", get(|| async { "the page" }))
        .merge(console_session::routes(iam.clone(), sessions.clone()));
    let app = guard(app, IamGuard::new(iam).with_console_sessions(sessions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fixture {
        url: format!("http://{addr}"),
        admin,
        reader,
        http: reqwest::Client::new(),
    }
}

impl Fixture {
    async fn sign_in(&self, id: &str, secret: &str) -> (u16, Value, Option<String>) {
        let resp = self
            .http
            .post(format!("{}/console/session", self.url))
            .json(&json!({"accessKeyId": id, "secretAccessKey": secret}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string());
        (status, resp.json().await.unwrap_or(Value::Null), cookie)
    }

    async fn with_cookie(&self, method: &str, cookie: &str, console: bool) -> (u16, String) {
        let mut req = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}/v1/clusters/default/services/web", self.url),
            )
            .header("cookie", cookie);
        if console {
            req = req.header("x-berth-console", "1");
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

/// `berth_session=<token>` of a `Set-Cookie` value.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_signed_in_console_is_its_keys_principal_under_its_policies() {
    let f = start().await;
    let page = f
        .http
        .get(format!("{}/console/", f.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the page needs no sign-in");
    let (status, _) = f.with_cookie("GET", "berth_session=nothing", false).await;
    assert_eq!(status, 403, "an unknown session is no proof");

    let (status, body, cookie) = f
        .sign_in(&f.admin.access_key_id, &f.admin.secret_access_key)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["principal"], "arn:berth:iam::000000000000:user/admin");
    let cookie = cookie.expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(&f.admin.secret_access_key));
    let admin = pair(&cookie);
    assert_eq!(
        f.with_cookie("GET", &admin, false).await,
        (200, "admin".into())
    );
    let (status, body) = f.with_cookie("PUT", &admin, false).await;
    assert_eq!(status, 403, "a change without the console header: {body}");
    assert!(body.contains("X-Berth-Console"), "{body}");
    assert_eq!(
        f.with_cookie("PUT", &admin, true).await,
        (200, "admin".into())
    );

    let (_, _, cookie) = f
        .sign_in(&f.reader.access_key_id, &f.reader.secret_access_key)
        .await;
    let reader = pair(&cookie.unwrap());
    assert_eq!(
        f.with_cookie("GET", &reader, false).await,
        (200, "reader".into())
    );
    let (status, body) = f.with_cookie("PUT", &reader, true).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("AccessDeniedException") && body.contains("ecs:CreateService"),
        "{body}"
    );

    let out = f
        .http
        .delete(format!("{}/console/session", f.url))
        .header("cookie", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        f.with_cookie("GET", &admin, false).await.0,
        403,
        "signed out"
    );
}

#[tokio::test]
async fn a_wrong_secret_or_unknown_key_opens_no_session() {
    let f = start().await;
    let (status, body, cookie) = f.sign_in(&f.admin.access_key_id, "wrong").await;
    assert_eq!(status, 403);
    assert_eq!(body["__type"], "InvalidClientTokenId");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Sign-in failed"),
        "{body}"
    );
    assert!(cookie.is_none());
    let (status, _, cookie) = f.sign_in("AKIANOTAKEY000000000", "x").await;
    assert_eq!(status, 403);
    assert!(cookie.is_none());
    let bad = f
        .http
        .post(format!("{}/console/session", f.url))
        .header("content-type", "application/json")
        .body("accessKeyId=x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("accessKeyId and secretAccessKey"));
    let form = f
        .http
        .post(format!("{}/console/session", f.url))
        .header("content-type", "text/plain")
        .body(
            json!({"accessKeyId": f.admin.access_key_id, "secretAccessKey": f.admin.secret_access_key})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415, "what a cross-site form could send");
    assert!(form.headers().get("set-cookie").is_none());
}

#[test]
fn an_amz_target_names_the_action_only_at_the_front_door() {
    let parts = |method: &str, path: &str| {
        let (p, _) = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(
                "x-amz-target",
                "AmazonEC2ContainerServiceV20141113.DescribeClusters",
            )
            .body(())
            .unwrap()
            .into_parts();
        p
    };
    assert_eq!(
        needs(&parts("POST", "/"), b"{}"),
        vec![("ecs:DescribeClusters".to_string(), "*".to_string())]
    );
    assert_eq!(
        needs(&parts("DELETE", "/v1/clusters/prod"), b"")[0].0,
        "ecs:DeleteCluster",
        "a native route needs its own action whatever the header says"
    );
}
