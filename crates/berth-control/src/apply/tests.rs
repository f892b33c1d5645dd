//! Apply: creation, idempotence, revisions, races, refusals writing nothing, dry runs
//! and the warnings of members not applied.

use super::*;
use crate::data_plane::fake::FakeDataPlane;
use berth_store::Store;
use std::sync::Arc;

const STACK: &str = r#"
taskDefinitions:
  - family: web
    containerDefinitions:
      - name: app
        image: whoami
        entryPoint: [whoami]
        portMappings: [{containerPort: 8080}]
targetGroups:
  - targetGroupName: web
loadBalancers:
  - loadBalancerName: web
    listeners:
      - port: 80
        protocol: HTTP
        defaultActions: [{type: forward, targetGroupName: web}]
services:
  - serviceName: web
    taskDefinition: web
    desiredCount: 2
    loadBalancers: [{targetGroupName: web, containerName: app, containerPort: 8080}]
"#;

async fn db() -> Db {
    crate::test_fixtures::db_with_default_cluster().await
}

fn actions(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| format!("{} {} {}", c.kind, c.name, c.action))
        .collect()
}

#[tokio::test]
async fn apply_creates_then_is_idempotent() {
    let db = db().await;
    let stack = Stack::from_yaml(STACK).unwrap();
    let first = apply(&db, &FakeDataPlane::default(), &stack, false)
        .await
        .unwrap();
    assert_eq!(
        actions(&first),
        [
            "task-definition web:1 registered",
            "target-group web created",
            "load-balancer web created",
            "service web created"
        ]
    );
    let rev = db.store.revision().await.unwrap();
    let second = apply(&db, &FakeDataPlane::default(), &stack, false)
        .await
        .unwrap();
    assert!(second.iter().all(|c| c.action == "unchanged"), "{second:?}");
    assert_eq!(
        db.store.revision().await.unwrap(),
        rev,
        "nothing was written"
    );

    let svc: Service = db
        .get(&db::service_key("default", "web"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(svc.task_definition, arn::task_definition("web", 1));
    assert_eq!(
        svc.load_balancers[0].target_group_arn,
        arn::target_group("web")
    );
    let lb: LoadBalancer = db
        .get(&db::load_balancer_key("web"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        lb.listeners[0].default_actions[0].target_group_arn,
        arn::target_group("web")
    );
}

#[tokio::test]
async fn changed_task_definition_gets_a_new_revision_and_updates_the_service() {
    let db = db().await;
    apply(
        &db,
        &FakeDataPlane::default(),
        &Stack::from_yaml(STACK).unwrap(),
        false,
    )
    .await
    .unwrap();
    let changed = STACK.replace("image: whoami", "image: whoami:2");
    let out = apply(
        &db,
        &FakeDataPlane::default(),
        &Stack::from_yaml(&changed).unwrap(),
        false,
    )
    .await
    .unwrap();
    let a = actions(&out);
    assert!(
        a.contains(&"task-definition web:2 registered".to_string()),
        "{a:?}"
    );
    assert!(a.contains(&"service web updated".to_string()), "{a:?}");
    assert_eq!(db.task_definitions("web").await.unwrap().len(), 2);
}

/// A store whose next batch first lets another writer touch `key`, as a reconciler
/// pass writing a service's counts between apply's read and its write would.
struct RacedStore {
    inner: berth_store::MemoryStore,
    key: String,
    races_left: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl berth_store::Store for RacedStore {
    async fn get(&self, key: &str) -> berth_store::Result<Option<berth_store::Entry>> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> berth_store::Result<Option<berth_store::Revision>> {
        self.inner.delete(key).await
    }
    async fn batch(&self, ops: Vec<Op>) -> berth_store::Result<berth_store::Revision> {
        use std::sync::atomic::Ordering;
        if self
            .races_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let current = self.inner.get(&self.key).await?.expect("raced key exists");
            self.inner.put(&self.key, current.value).await?;
        }
        self.inner.batch(ops).await
    }
    async fn list(&self, prefix: &str) -> berth_store::Result<Vec<berth_store::Entry>> {
        self.inner.list(prefix).await
    }
    async fn revision(&self) -> berth_store::Result<berth_store::Revision> {
        self.inner.revision().await
    }
    async fn watch(
        &self,
        prefix: &str,
        after: berth_store::Revision,
    ) -> berth_store::Result<berth_store::Watch> {
        self.inner.watch(prefix, after).await
    }
}

#[tokio::test]
async fn apply_plans_again_when_a_reconciler_wrote_the_service_meanwhile() {
    let db = db().await;
    let dp = FakeDataPlane::default();
    apply(&db, &dp, &Stack::from_yaml(STACK).unwrap(), false)
        .await
        .unwrap();
    let raced = Arc::new(RacedStore {
        inner: berth_store::MemoryStore::new(),
        key: db::service_key("default", "web"),
        races_left: std::sync::atomic::AtomicUsize::new(2),
    });
    for e in db.store.list("/").await.unwrap() {
        raced.inner.put(&e.key, e.value).await.unwrap();
    }
    let db = Db::new(raced.clone());
    let scaled = Stack::from_yaml(&STACK.replace("desiredCount: 2", "desiredCount: 5")).unwrap();
    let changes = apply(&db, &dp, &scaled, false).await.unwrap();
    assert!(
        actions(&changes).contains(&"service web updated".to_string()),
        "{changes:?}"
    );
    assert_eq!(
        raced.races_left.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "both raced writes happened"
    );
    let svc = db.services(None).await.unwrap();
    assert_eq!(svc[0].value.desired_count, 5);

    // A race on every attempt is reported as the conflict it is.
    raced
        .races_left
        .store(APPLY_ATTEMPTS, std::sync::atomic::Ordering::SeqCst);
    let again = Stack::from_yaml(&STACK.replace("desiredCount: 2", "desiredCount: 6")).unwrap();
    let e = apply(&db, &dp, &again, false).await.unwrap_err();
    assert!(matches!(e, ControlError::Conflict { .. }), "{e:?}");
}

#[tokio::test]
async fn a_bad_reference_writes_nothing() {
    let db = db().await;
    let rev = db.store.revision().await.unwrap();
    let cases = [
        (
            STACK.replace("desiredCount: 2", "desiredCount: 2\n    cluster: nope"),
            "services[0].cluster",
        ),
        (
            STACK.replace(
                "targetGroupName: web, containerName",
                "targetGroupName: other, containerName",
            ),
            "services[0].loadBalancers[0].targetGroupName",
        ),
        (
            STACK.replace(
                "defaultActions: [{type: forward, targetGroupName: web}]",
                "defaultActions: [{type: forward, targetGroupName: gone}]",
            ),
            "listeners[0].defaultActions[0].targetGroupName",
        ),
    ];
    for (bad, field) in cases {
        let e = apply(
            &db,
            &FakeDataPlane::default(),
            &Stack::from_yaml(&bad).unwrap(),
            false,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
    }
    assert_eq!(
        db.store.revision().await.unwrap(),
        rev,
        "a rejected stack wrote something"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let db = db().await;
    let rev = db.store.revision().await.unwrap();
    let out = apply(
        &db,
        &FakeDataPlane::default(),
        &Stack::from_yaml(STACK).unwrap(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(db.store.revision().await.unwrap(), rev);
}

#[tokio::test]
async fn members_not_applied_come_back_as_warnings_and_are_stored_as_given() {
    let db = db().await;
    let stack = STACK
        .replace(
            "        portMappings: [{containerPort: 8080}]",
            "        portMappings: [{containerPort: 8080}]\n        logConfiguration: {logDriver: awslogs, options: {awslogs-group: web}}",
        )
        .replace("    desiredCount: 2", "    desiredCount: 2\n    enableECSManagedTags: true");
    let out = apply(
        &db,
        &FakeDataPlane::default(),
        &Stack::from_yaml(&stack).unwrap(),
        false,
    )
    .await
    .unwrap();
    let warnings = |kind: &str| {
        out.iter()
            .find(|c| c.kind == kind)
            .map(|c| c.warnings.clone())
            .unwrap()
    };
    let td = warnings("task-definition");
    assert_eq!(td.len(), 1, "{td:?}");
    assert!(
        td[0].starts_with("containerDefinitions[0].logConfiguration: "),
        "{td:?}"
    );
    let svc = warnings("service");
    assert_eq!(svc.len(), 1, "{svc:?}");
    assert!(svc[0].starts_with("enableECSManagedTags: "), "{svc:?}");
    assert!(warnings("target-group").is_empty());
    let stored: TaskDefinition = db
        .get(&db::taskdef_key("web", 1))
        .await
        .unwrap()
        .unwrap()
        .value;
    let log = stored.container_definitions[0]
        .log_configuration
        .as_ref()
        .unwrap();
    assert_eq!(log.options["awslogs-group"], "web");
}
