//! The guard over a small router on a loopback port, with requests signed as the CLI
//! signs them.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Extension, Router};
use berth_iam::sigv4::{signing_headers, SigningParams};
use serde_json::{json, Value};

use super::*;
use crate::db::Db;
use crate::iam_store::{EntityKind, NewAccessKey};

const NOW: i64 = 1_800_000_000;

struct Fixture {
    url: String,
    host: String,
    admin: NewAccessKey,
    reader: NewAccessKey,
    iam: Iam,
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
    iam.create(EntityKind::Role, "task-reader").await.unwrap();
    iam.put_policy(EntityKind::Role, "task-reader", "read", &read_only)
        .await
        .unwrap();
    let who = |Extension(p): Extension<Principal>| async move { p.name };
    let app = Router::new()
        .route("/v1/clusters/{c}/services/{s}", get(who).put(who))
        .route("/", post(who));
    let app = guard(app, IamGuard::new(iam.clone()).with_clock(Arc::new(|| NOW)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fixture {
        url: format!("http://{addr}"),
        host: addr.to_string(),
        admin,
        reader,
        iam,
    }
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    extra: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
    key_id: &'a str,
    secret: &'a str,
    time: i64,
}

impl Fixture {
    fn call<'a>(&self, method: &'a str, path: &'a str, key: &'a NewAccessKey) -> Call<'a> {
        Call {
            method,
            path,
            extra: vec![],
            body: b"",
            key_id: &key.access_key_id,
            secret: &key.secret_access_key,
            time: NOW,
        }
    }

    async fn send(&self, c: Call<'_>) -> (u16, Value, Option<String>) {
        let signed = signing_headers(
            c.method,
            c.path,
            "",
            &self.host,
            &c.extra,
            c.body,
            &SigningParams {
                access_key_id: c.key_id,
                secret_access_key: c.secret,
                region: "local",
                service: "ecs",
                time: c.time,
            },
        );
        let mut req = reqwest::Client::new()
            .request(c.method.parse().unwrap(), format!("{}{}", self.url, c.path))
            .body(c.body.to_vec());
        for (n, v) in c.extra.iter() {
            req = req.header(*n, *v);
        }
        for (n, v) in &signed {
            req = req.header(*n, v);
        }
        self.raw(req).await
    }

    async fn raw(&self, req: reqwest::RequestBuilder) -> (u16, Value, Option<String>) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let kind = resp
            .headers()
            .get("x-amzn-ErrorType")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, kind)
    }
}

#[tokio::test]
async fn signed_requests_pass_with_their_principal_and_policies_decide() {
    let f = start().await;
    let path = "/v1/clusters/default/services/web";
    let (status, body, _) = f.send(f.call("GET", path, &f.reader)).await;
    assert_eq!((status, body), (200, Value::String("reader".into())));
    let (status, body, _) = f.send(f.call("PUT", path, &f.admin)).await;
    assert_eq!((status, body), (200, Value::String("admin".into())));
    let (status, body, kind) = f.send(f.call("PUT", path, &f.reader)).await;
    assert_eq!(status, 403);
    assert_eq!(kind.as_deref(), Some("AccessDeniedException"));
    assert_eq!(body["__type"], "AccessDeniedException");
    assert_eq!(
        body["message"],
        "User: arn:berth:iam::000000000000:user/reader is not authorized to perform: ecs:CreateService on resource: arn:berth:ecs:local:000000000000:service/default/web because no identity-based policy allows the ecs:CreateService action"
    );
}

#[tokio::test]
async fn unsigned_unknown_wrong_and_skewed_requests_get_aws_errors() {
    let f = start().await;
    let path = "/v1/clusters/default/services/web";
    let (status, body, kind) = f
        .raw(reqwest::Client::new().get(format!("{}{path}", f.url)))
        .await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("MissingAuthenticationToken"))
    );
    assert_eq!(body["message"], "Missing Authentication Token");

    let (status, body, _) = f
        .raw(
            reqwest::Client::new()
                .get(format!("{}{path}", f.url))
                .header("authorization", "AWS4-HMAC-SHA256 SignedHeaders=host"),
        )
        .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("IncompleteSignature"))
    );

    let mut unknown = f.call("GET", path, &f.reader);
    unknown.key_id = "AKIAAAAAAAAAAAAAAAAA";
    let (status, body, _) = f.send(unknown).await;
    assert_eq!(status, 403);
    assert_eq!(body["__type"], "InvalidClientTokenId");
    assert_eq!(
        body["message"],
        "The security token included in the request is invalid."
    );

    let mut wrong = f.call("GET", path, &f.reader);
    wrong.secret = "not-the-secret";
    let (status, body, _) = f.send(wrong).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("SignatureDoesNotMatch"))
    );
    assert_eq!(
        body["message"],
        berth_iam::sigv4::SIGNATURE_MISMATCH_MESSAGE
    );

    let mut skewed = f.call("GET", path, &f.reader);
    skewed.time = NOW - 600;
    let (status, body, _) = f.send(skewed).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("SignatureDoesNotMatch"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired: "),
        "{body}"
    );
}

#[tokio::test]
async fn front_door_requests_are_judged_by_target_and_form_action() {
    let f = start().await;
    let describe = [
        ("content-type", "application/x-amz-json-1.1"),
        (
            "x-amz-target",
            "AmazonEC2ContainerServiceV20141113.DescribeServices",
        ),
    ];
    let mut c = f.call("POST", "/", &f.reader);
    c.extra = describe.to_vec();
    c.body = b"{}";
    let (status, body, _) = f.send(c).await;
    assert_eq!((status, body), (200, Value::String("reader".into())));

    let mut c = f.call("POST", "/", &f.reader);
    c.extra = vec![
        ("content-type", "application/x-amz-json-1.1"),
        (
            "x-amz-target",
            "AmazonEC2ContainerServiceV20141113.UpdateService",
        ),
    ];
    c.body = b"{}";
    let (status, body, _) = f.send(c).await;
    assert_eq!(status, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("perform: ecs:UpdateService on resource: *"),
        "{body}"
    );

    let mut c = f.call("POST", "/", &f.reader);
    c.extra = vec![(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )];
    c.body = b"Action=DescribeTargetGroups&Version=2015-12-01";
    let (status, body, kind) = f.send(c).await;
    assert_eq!((status, kind.as_deref()), (403, Some("AccessDenied")));
    let xml = body.as_str().unwrap();
    assert!(
        xml.contains("<Code>AccessDenied</Code>")
            && xml.contains("elasticloadbalancing:DescribeTargetGroups"),
        "{xml}"
    );
}

#[tokio::test]
async fn a_changed_body_does_not_verify() {
    let f = start().await;
    let path = "/v1/clusters/default/services/web";
    let signed = signing_headers(
        "PUT",
        path,
        "",
        &f.host,
        &[],
        b"{\"desiredCount\":1}",
        &SigningParams {
            access_key_id: &f.admin.access_key_id,
            secret_access_key: &f.admin.secret_access_key,
            region: "local",
            service: "ecs",
            time: NOW,
        },
    );
    let mut req = reqwest::Client::new()
        .put(format!("{}{path}", f.url))
        .body("{\"desiredCount\":9}");
    for (n, v) in &signed {
        req = req.header(*n, v);
    }
    let (status, body, _) = f.raw(req).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("SignatureDoesNotMatch"))
    );
}

/// A role session's key (its id made of `seed`) with its session token, expiring at
/// `expiration`.
fn session(f: &Fixture, seed: u8, expiration: i64) -> (NewAccessKey, String) {
    let c = berth_iam::session::mint(
        &f.iam.session_key(),
        &[seed; berth_iam::keys::KEY_ID_RANDOM_BYTES],
        "task-reader",
        "task-1",
        expiration,
    );
    let key = NewAccessKey {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        user_name: String::new(),
        status: "Active".into(),
        create_date: 0.0,
    };
    (key, c.session_token)
}

#[tokio::test]
async fn role_sessions_need_their_token_and_are_refused_once_expired() {
    let f = start().await;
    let path = "/v1/clusters/default/services/web";
    let (key, token) = session(&f, 1, NOW + 60);
    let mut good = f.call("GET", path, &key);
    good.extra = vec![("x-amz-security-token", &token)];
    let (status, body, _) = f.send(good).await;
    assert_eq!((status, body), (200, Value::String("task-reader".into())));

    let mut denied = f.call("PUT", path, &key);
    denied.extra = vec![("x-amz-security-token", &token)];
    let (status, body, _) = f.send(denied).await;
    assert_eq!(status, 403);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("User: arn:berth:sts::000000000000:assumed-role/task-reader/task-1 is not authorized to perform: ecs:CreateService"),
        "{message}"
    );

    let (status, body, kind) = f.send(f.call("GET", path, &key)).await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("InvalidClientTokenId"))
    );
    assert_eq!(
        body["message"],
        "The security token included in the request is invalid."
    );
    let (_, other_token) = session(&f, 2, NOW + 120);
    let mut wrong = f.call("GET", path, &key);
    wrong.extra = vec![("x-amz-security-token", &other_token)];
    let (status, body, _) = f.send(wrong).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("InvalidClientTokenId"))
    );

    let (expired_key, expired_token) = session(&f, 3, NOW);
    let mut expired = f.call("GET", path, &expired_key);
    expired.extra = vec![("x-amz-security-token", &expired_token)];
    let (status, body, kind) = f.send(expired).await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("ExpiredTokenException"))
    );
    assert_eq!(
        body["message"],
        "The security token included in the request is expired"
    );

    // The query protocol's code and status.
    let form = b"Action=DescribeLoadBalancers&Version=2015-12-01";
    let mut query = f.call("POST", "/", &expired_key);
    query.body = form;
    query.extra = vec![
        ("x-amz-security-token", &expired_token),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
    ];
    let (status, body, kind) = f.send(query).await;
    assert_eq!((status, kind.as_deref()), (403, Some("ExpiredToken")));
    assert!(
        body.as_str().unwrap().contains("<Code>ExpiredToken</Code>"),
        "{body}"
    );
}
