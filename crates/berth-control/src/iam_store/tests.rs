use std::sync::Arc;

use super::*;

fn iam() -> Iam {
    Iam::new(Db::new(Arc::new(berth_store::MemoryStore::new())), [9; 32])
}

#[tokio::test]
async fn the_admin_is_made_once_and_its_secret_is_only_sealed_in_the_store() {
    let iam = iam();
    let key = iam
        .ensure_admin()
        .await
        .unwrap()
        .expect("a first start makes the admin");
    assert!(key.access_key_id.starts_with("AKIA"));
    assert_eq!(key.secret_access_key.len(), 40);
    assert!(iam.ensure_admin().await.unwrap().is_none());
    for e in iam.db.store.list("/").await.unwrap() {
        let text = String::from_utf8_lossy(&e.value);
        assert!(!text.contains(&key.secret_access_key), "{}", e.key);
    }
    let found = iam.authenticate(&key.access_key_id).await.unwrap().unwrap();
    assert_eq!(found.secret, key.secret_access_key);
    assert_eq!(
        found.principal.arn,
        "arn:berth:iam::000000000000:user/admin"
    );
    assert_eq!(
        berth_iam::policy::evaluate(&found.principal.policies, "ecs:DeleteService", "arn:x"),
        berth_iam::Decision::Allow
    );
    // Another sealing key opens nothing.
    let other = Iam::new(iam.db.clone(), [1; 32]);
    assert!(other.authenticate(&key.access_key_id).await.is_err());
}

#[tokio::test]
async fn users_policies_and_keys_follow_iam_rules() {
    let iam = iam();
    iam.create(EntityKind::User, "reader").await.unwrap();
    let e = iam.create(EntityKind::User, "reader").await.unwrap_err();
    assert_eq!(e.code, "EntityAlreadyExists");
    assert_eq!(
        iam.create(EntityKind::User, "bad name")
            .await
            .unwrap_err()
            .code,
        "ValidationError"
    );
    let bad = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecs"}]});
    let e = iam
        .put_policy(EntityKind::User, "reader", "p", &bad)
        .await
        .unwrap_err();
    assert_eq!(e.code, "MalformedPolicyDocument");
    assert!(
        e.message.contains("Statement[0].Action[0]"),
        "{}",
        e.message
    );
    assert!(iam
        .entity(EntityKind::User, "reader")
        .await
        .unwrap()
        .unwrap()
        .policies
        .is_empty());
    let good = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecs:Describe*", "ecs:List*"], "Resource": "*"}]});
    iam.put_policy(EntityKind::User, "reader", "read", &good)
        .await
        .unwrap();
    assert_eq!(
        iam.put_policy(EntityKind::User, "nobody", "read", &good)
            .await
            .unwrap_err()
            .code,
        "NoSuchEntity"
    );
    let k1 = iam.create_access_key("reader").await.unwrap();
    iam.create_access_key("reader").await.unwrap();
    assert_eq!(
        iam.create_access_key("reader").await.unwrap_err().code,
        "LimitExceeded"
    );
    assert_eq!(
        iam.delete(EntityKind::User, "reader")
            .await
            .unwrap_err()
            .code,
        "DeleteConflict"
    );
    let p = iam
        .authenticate(&k1.access_key_id)
        .await
        .unwrap()
        .unwrap()
        .principal;
    assert_eq!(p.policies.len(), 1);
    iam.delete_access_key("reader", &k1.access_key_id)
        .await
        .unwrap();
    assert!(iam.authenticate(&k1.access_key_id).await.unwrap().is_none());
    assert_eq!(
        iam.delete_access_key("reader", &k1.access_key_id)
            .await
            .unwrap_err()
            .code,
        "NoSuchEntity"
    );
    assert!(iam
        .authenticate("AKIAAAAAAAAAAAAAAAAA")
        .await
        .unwrap()
        .is_none());
    assert!(iam.authenticate("not-a-key").await.unwrap().is_none());
}
