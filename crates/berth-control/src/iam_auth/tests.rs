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
    let app = Router::new()
        .route("/v1/clusters/{c}/services/{s}", get(who).put(who))
        .route("/", post(who));
    let app = guard(app, IamGuard::new(iam).with_clock(Arc::new(|| NOW)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fixture {
        url: format!("http://{addr}"),
        host: addr.to_string(),
        admin,
        reader,
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
