use std::sync::Arc;

use berth_model::ecs::{Service, Task, TaskDefinition};
use berth_model::task_secrets::{TaskSecrets, RESOURCE_INITIALIZATION_ERROR};
use serde_json::json;

use super::*;
use crate::iam_store::{EntityKind, Iam};

const ROLE: &str = "arn:aws:iam::123456789012:role/exec";

/// A store with the `default` cluster's service `web`, a task of it and its definition
/// (container `app`, secrets `DB_PASSWORD` ← `value_from`), the secret `db` = `pw1` and
/// `json` = `{"user":"u","port":5432}`, and the role `exec` with `policy` (if any).
async fn setup(value_from: &str, policy: Option<serde_json::Value>) -> (Db, SecretStore, Task) {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    let mut td: TaskDefinition = serde_json::from_value(json!({
        "family": "web", "executionRoleArn": ROLE,
        "containerDefinitions": [{"name": "app", "image": "x",
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": value_from}]}]
    }))
    .unwrap();
    td.revision = 1;
    td.task_definition_arn = arn::task_definition("web", 1);
    td.validate().unwrap();
    db.put(&db::taskdef_key("web", 1), &td).await.unwrap();
    let svc: Service = serde_json::from_value(json!({
        "serviceName": "web", "taskDefinition": td.task_definition_arn, "desiredCount": 1
    }))
    .unwrap();
    db.put(&db::service_key("default", "web"), &svc)
        .await
        .unwrap();
    let task = Task {
        task_arn: arn::task("default", "t1"),
        cluster_arn: arn::cluster("default"),
        task_definition_arn: td.task_definition_arn.clone(),
        group: "service:web".into(),
        ..Default::default()
    };
    let store = SecretStore::new(db.clone(), [3; 32]);
    store.put("db", "pw1").await.unwrap();
    store
        .put("json", r#"{"user":"u","port":5432}"#)
        .await
        .unwrap();
    let iam = Iam::new(db.clone(), [3; 32]);
    iam.create(EntityKind::Role, "exec").await.unwrap();
    if let Some(p) = policy {
        iam.put_policy(EntityKind::Role, "exec", "secrets", &p)
            .await
            .unwrap();
    }
    (db, store, task)
}

fn allow(resource: &str) -> Option<serde_json::Value> {
    Some(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": resource}]}))
}

fn reason(answer: TaskSecrets) -> String {
    match answer {
        TaskSecrets::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_allowed_secret_resolves_into_its_containers_variable() {
    let (db, store, task) = setup("db", allow("arn:berth:secretsmanager:*:*:secret:db")).await;
    let TaskSecrets::Resolved { variables } = resolve(&db, Some(&store), &task).await.unwrap()
    else {
        panic!("resolved");
    };
    assert_eq!(variables.len(), 1);
    assert_eq!(
        (
            variables[0].container_name.as_str(),
            variables[0].name.as_str()
        ),
        ("app", "DB_PASSWORD")
    );
    assert_eq!(variables[0].value, "pw1");
}

#[tokio::test]
async fn a_json_key_takes_one_member_of_the_value() {
    let from = "arn:aws:secretsmanager:us-east-1:1:secret:json:port::";
    let (db, store, task) = setup(from, allow("*")).await;
    let TaskSecrets::Resolved { variables } = resolve(&db, Some(&store), &task).await.unwrap()
    else {
        panic!("resolved");
    };
    assert_eq!(variables[0].value, "5432");
    let (db, store, task) =
        setup("arn:aws:secretsmanager:r:1:secret:json:nope::", allow("*")).await;
    let r = reason(resolve(&db, Some(&store), &task).await.unwrap());
    assert!(r.ends_with("did not contain json key nope"), "{r}");
}

#[tokio::test]
async fn a_role_whose_policy_does_not_allow_the_secret_is_refused_with_access_denied() {
    let (db, store, task) = setup("db", allow("arn:berth:secretsmanager:*:*:secret:other")).await;
    let r = reason(resolve(&db, Some(&store), &task).await.unwrap());
    assert!(r.starts_with(RESOURCE_INITIALIZATION_ERROR), "{r}");
    assert!(r.contains("AccessDeniedException: User: arn:berth:iam::000000000000:role/exec is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:berth:secretsmanager:local:000000000000:secret:db"), "{r}");
    assert!(!r.contains("pw1"));
    // The refusal is an event of the task's service.
    let svc = db
        .get::<Service>(&db::service_key("default", "web"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        svc.events[0].message,
        format!("(service web) (task t1) failed to start: {r}")
    );
}

#[tokio::test]
async fn a_missing_secret_or_role_is_refused_naming_it() {
    let (db, store, task) = setup("missing", allow("*")).await;
    let r = reason(resolve(&db, Some(&store), &task).await.unwrap());
    assert_eq!(
        r,
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: failed to fetch secret arn:berth:secretsmanager:local:000000000000:secret:missing from secrets manager: ResourceNotFoundException: Secrets Manager can't find the specified secret."
    );
    let (db, store, task) = setup("db", allow("*")).await;
    Iam::new(db.clone(), [3; 32])
        .delete(EntityKind::Role, "exec")
        .await
        .unwrap();
    let r = reason(resolve(&db, Some(&store), &task).await.unwrap());
    assert!(r.contains("berth has no role named exec"), "{r}");
    let r = reason(resolve(&db, None, &task).await.unwrap());
    assert!(r.ends_with("this control plane has no secret store"), "{r}");
}
