//! `berth apply`: create or update everything a stack file lists, all or nothing.
//!
//! The whole stack is validated and every reference resolved (against the stack itself
//! and what the store already holds) before anything is written; the writes then go to
//! the store as one atomic batch guarded by the revisions that were read, so a bad file
//! or a concurrent change leaves the store exactly as it was.
//!
//! The autoscaling sections, and the rule by which a scalable target owns a service's
//! `desiredCount`, are in [`autoscaling`].

use std::collections::BTreeMap;

use berth_model::ecs::{Cluster, Service, TaskDefinition};
use berth_model::elb::{LoadBalancer, TargetGroup};
use berth_model::stack::{check_service_against_task_definition, Stack};
use berth_model::{arn, time};
use berth_store::{Expect, Op};

use crate::data_plane::DataPlane;
use crate::db::{self, encode, Db};
use crate::error::ControlError;

pub mod autoscaling;
#[cfg(test)]
mod autoscaling_tests;
mod change;
mod discovery;
#[cfg(test)]
mod discovery_tests;

use change::change;
pub use change::Change;

/// Puts on each task definition's and service's change the members it sets that berth
/// does not apply (one change per resource, in stack order).
fn note_not_applied(stack: &Stack, changes: &mut [Change]) {
    let of_kind = |kind: &'static str| move |c: &&mut Change| c.kind == kind;
    let tds = changes.iter_mut().filter(of_kind("task-definition"));
    for (c, t) in tds.zip(&stack.task_definitions) {
        c.warnings = t.not_applied().iter().map(|w| w.to_string()).collect();
    }
    let services = changes.iter_mut().filter(of_kind("service"));
    for (c, s) in services.zip(&stack.services) {
        c.warnings = s.not_applied().iter().map(|w| w.to_string()).collect();
    }
}

fn invalid(field: String, message: String) -> ControlError {
    ControlError::invalid(field, message)
}

/// Applies `stack`. With `dry_run`, computes the changes and writes nothing. Listener
/// certificates are loaded by `data_plane` as it would serve them.
pub async fn apply(
    db: &Db,
    data_plane: &dyn DataPlane,
    stack: &Stack,
    dry_run: bool,
) -> Result<Vec<Change>, ControlError> {
    let mut attempt = 1;
    loop {
        match apply_once(db, data_plane, stack, dry_run).await {
            Err(ControlError::Conflict { .. }) if attempt < APPLY_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// How many times apply reads, resolves and writes before a write guarded by what it read
/// is allowed to fail on a concurrent change. The reconcilers write the records apply reads
/// (a service's counts and events, every pass), so a write that loses that race is planned
/// again from fresh reads, as the service reconciler does with its own plans.
const APPLY_ATTEMPTS: usize = 5;

/// One read-resolve-write round of [`apply`].
async fn apply_once(
    db: &Db,
    data_plane: &dyn DataPlane,
    stack: &Stack,
    dry_run: bool,
) -> Result<Vec<Change>, ControlError> {
    stack.validate()?;
    let now = time::now();
    let mut ops = Vec::new();
    let mut changes = Vec::new();

    // Clusters.
    let mut cluster_names: Vec<String> = db
        .clusters()
        .await?
        .into_iter()
        .map(|c| c.cluster_name)
        .collect();
    for c in &stack.clusters {
        let key = db::cluster_key(&c.cluster_name);
        match db.get::<Cluster>(&key).await? {
            Some(_) => changes.push(change("cluster", &c.cluster_name, "unchanged")),
            None => {
                let stored = Cluster {
                    cluster_arn: arn::cluster(&c.cluster_name),
                    status: "ACTIVE".into(),
                    ..c.clone()
                };
                ops.push(Op::Put {
                    key,
                    value: encode(&stored),
                    expect: Some(Expect::Absent),
                });
                cluster_names.push(c.cluster_name.clone());
                changes.push(change("cluster", &c.cluster_name, "created"));
            }
        }
    }

    discovery::check_target_group_names(&stack.target_groups)?;
    // Namespaces.
    let namespaces =
        discovery::apply_namespaces(db, &stack.namespaces, now, &mut ops, &mut changes).await?;

    // Task definitions: a new revision only when the content differs from the latest.
    let mut resolved_tds: BTreeMap<String, TaskDefinition> = BTreeMap::new();
    for t in &stack.task_definitions {
        let revisions = db.task_definitions(&t.family).await?;
        let latest_active = revisions.iter().rev().find(|r| r.status == "ACTIVE");
        if let Some(latest) = latest_active.filter(|l| l.spec() == t.spec()) {
            resolved_tds.insert(t.family.clone(), latest.clone());
            changes.push(change(
                "task-definition",
                format!("{}:{}", t.family, latest.revision),
                "unchanged",
            ));
            continue;
        }
        let revision = revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        let stored = TaskDefinition {
            task_definition_arn: arn::task_definition(&t.family, revision),
            revision,
            status: "ACTIVE".into(),
            registered_at: Some(now),
            ..t.spec()
        };
        ops.push(Op::Put {
            key: db::taskdef_key(&t.family, revision),
            value: encode(&stored),
            expect: Some(Expect::Absent),
        });
        changes.push(change(
            "task-definition",
            format!("{}:{revision}", t.family),
            "registered",
        ));
        resolved_tds.insert(t.family.clone(), stored);
    }

    // Target groups.
    let mut tg_arns: BTreeMap<String, String> = db
        .target_groups()
        .await?
        .into_iter()
        .map(|t| (t.target_group_name.clone(), t.target_group_arn))
        .collect();
    for t in &stack.target_groups {
        let key = db::target_group_key(&t.target_group_name);
        let existing = db.get::<TargetGroup>(&key).await?;
        let stored = TargetGroup {
            target_group_arn: arn::target_group(&t.target_group_name),
            load_balancer_arns: existing
                .as_ref()
                .map(|e| e.value.load_balancer_arns.clone())
                .unwrap_or_default(),
            ..t.clone()
        };
        tg_arns.insert(t.target_group_name.clone(), stored.target_group_arn.clone());
        match existing {
            Some(e) if e.value == stored => {
                changes.push(change("target-group", &t.target_group_name, "unchanged"))
            }
            Some(e) => {
                ops.push(Op::Put {
                    key,
                    value: encode(&stored),
                    expect: Some(Expect::ModRevision(e.mod_revision)),
                });
                changes.push(change("target-group", &t.target_group_name, "updated"));
            }
            None => {
                ops.push(Op::Put {
                    key,
                    value: encode(&stored),
                    expect: Some(Expect::Absent),
                });
                changes.push(change("target-group", &t.target_group_name, "created"));
            }
        }
    }
    let resolve_tg =
        |field: String, arn_in: &str, name: Option<&str>| -> Result<String, ControlError> {
            let name = name.unwrap_or_else(|| arn::last_segment(arn_in));
            match tg_arns.get(name) {
                Some(a) if arn_in.is_empty() || arn_in == a => Ok(a.clone()),
                _ => Err(invalid(
                    field,
                    format!("target group {name:?} does not exist; add it under targetGroups"),
                )),
            }
        };

    // Load balancers: assign listener and rule ARNs, resolve target group references.
    let mut lbs_after: BTreeMap<String, LoadBalancer> = BTreeMap::new();
    for (i, l) in stack.load_balancers.iter().enumerate() {
        let at = format!("loadBalancers[{i}]");
        let mut stored = l.clone();
        let kind = l.kind.arn_kind();
        stored.load_balancer_arn = arn::load_balancer(kind, &l.load_balancer_name);
        stored.state = "active".into();
        for (li, listener) in stored.listeners.iter_mut().enumerate() {
            listener.listener_arn = arn::listener(kind, &l.load_balancer_name, listener.port);
            listener.bound_port = None;
            data_plane.check_certificates(listener).map_err(|e| {
                invalid(format!("{at}.listeners[{li}].certificates"), e.to_string())
            })?;
            for (ai, a) in listener.default_actions.iter_mut().enumerate() {
                resolve_action(
                    a,
                    &format!("{at}.listeners[{li}].defaultActions[{ai}]"),
                    &resolve_tg,
                )?;
            }
            for (ri, r) in listener.rules.iter_mut().enumerate() {
                r.rule_arn =
                    arn::listener_rule(kind, &l.load_balancer_name, listener.port, r.priority);
                for (ai, a) in r.actions.iter_mut().enumerate() {
                    resolve_action(
                        a,
                        &format!("{at}.listeners[{li}].rules[{ri}].actions[{ai}]"),
                        &resolve_tg,
                    )?;
                }
            }
        }
        lbs_after.insert(l.load_balancer_name.clone(), stored.clone());
        let key = db::load_balancer_key(&l.load_balancer_name);
        match db.get::<LoadBalancer>(&key).await? {
            Some(e) => {
                stored.created_time = e.value.created_time;
                stored.state_reason = None;
                if e.value == stored {
                    changes.push(change("load-balancer", &l.load_balancer_name, "unchanged"));
                } else {
                    ops.push(Op::Put {
                        key,
                        value: encode(&stored),
                        expect: Some(Expect::ModRevision(e.mod_revision)),
                    });
                    changes.push(change("load-balancer", &l.load_balancer_name, "updated"));
                }
            }
            None => {
                stored.created_time = Some(now);
                ops.push(Op::Put {
                    key,
                    value: encode(&stored),
                    expect: Some(Expect::Absent),
                });
                changes.push(change("load-balancer", &l.load_balancer_name, "created"));
            }
        }
    }

    // Services. A service with a scalable target keeps its desired count (see
    // `autoscaling`).
    let targets = autoscaling::Targets::resolve(db, stack).await?;
    let mut services_after: BTreeMap<(String, String), Service> = BTreeMap::new();
    let mut resolved_services = Vec::new();
    for (i, s) in stack.services.iter().enumerate() {
        let at = format!("services[{i}]");
        let cluster = s.cluster_name().to_string();
        if !cluster_names.contains(&cluster) {
            return Err(invalid(
                format!("{at}.cluster"),
                format!("cluster {cluster:?} does not exist; add it under clusters"),
            ));
        }
        let td = resolve_service_td(db, &resolved_tds, &s.task_definition)
            .await?
            .ok_or_else(|| {
                invalid(
                    format!("{at}.taskDefinition"),
                    format!(
                        "task definition {:?} is not registered; add it under taskDefinitions",
                        s.task_definition
                    ),
                )
            })?;
        check_service_against_task_definition(s, &td)
            .map_err(|e| ControlError::from(e.within(&at)))?;
        let mut spec = s.spec();
        spec.cluster = cluster.clone();
        spec.task_definition = td.task_definition_arn.clone();
        for (j, lb) in spec.load_balancers.iter_mut().enumerate() {
            lb.target_group_arn = resolve_tg(
                format!("{at}.loadBalancers[{j}].targetGroupName"),
                &lb.target_group_arn,
                lb.target_group_name.as_deref(),
            )?;
            lb.target_group_name = Some(arn::last_segment(&lb.target_group_arn).to_string());
        }
        let key = db::service_key(&cluster, &s.service_name);
        let existing = db.get::<Service>(&key).await?;
        let current = existing
            .as_ref()
            .filter(|e| e.value.status == "ACTIVE")
            .map(|e| e.value.desired_count);
        spec.desired_count = autoscaling::desired_count(
            spec.desired_count,
            current,
            targets.after(&cluster, &s.service_name),
        );
        services_after.insert((cluster.clone(), s.service_name.clone()), spec.clone());
        resolved_services.push(discovery::ResolvedService {
            at: at.clone(),
            service: spec.clone(),
            task_definition: td.clone(),
        });
        match existing {
            Some(e) if e.value.status == "ACTIVE" => {
                if e.value.spec() == spec {
                    changes.push(change("service", &s.service_name, "unchanged"));
                } else {
                    let stored = Service {
                        service_arn: e.value.service_arn.clone(),
                        cluster_arn: e.value.cluster_arn.clone(),
                        status: e.value.status.clone(),
                        running_count: e.value.running_count,
                        pending_count: e.value.pending_count,
                        deployments: e.value.deployments.clone(),
                        events: e.value.events.clone(),
                        created_at: e.value.created_at,
                        ..spec
                    };
                    ops.push(Op::Put {
                        key,
                        value: encode(&stored),
                        expect: Some(Expect::ModRevision(e.mod_revision)),
                    });
                    changes.push(change("service", &s.service_name, "updated"));
                }
            }
            Some(e) => {
                return Err(ControlError::in_use(format!(
                    "{at}: service {:?} is {} (being deleted); wait until it is gone",
                    s.service_name, e.value.status
                )));
            }
            None => {
                let stored = Service {
                    service_arn: arn::service(&cluster, &s.service_name),
                    cluster_arn: arn::cluster(&cluster),
                    status: "ACTIVE".into(),
                    created_at: Some(now),
                    ..spec
                };
                ops.push(Op::Put {
                    key,
                    value: encode(&stored),
                    expect: Some(Expect::Absent),
                });
                changes.push(change("service", &s.service_name, "created"));
            }
        }
    }

    discovery::check_services(db, &namespaces, &resolved_services).await?;

    autoscaling::apply(
        db,
        stack,
        &targets,
        &autoscaling::Resolved {
            services: &services_after,
            load_balancers: &lbs_after,
        },
        now,
        &mut ops,
        &mut changes,
    )
    .await?;

    note_not_applied(stack, &mut changes);
    if !dry_run && !ops.is_empty() {
        db.batch(ops).await?;
    }
    Ok(changes)
}

/// Resolves a target group reference (field path, ARN as written, name) to its ARN.
type ResolveTargetGroup<'a> =
    dyn Fn(String, &str, Option<&str>) -> Result<String, ControlError> + 'a;

fn resolve_action(
    a: &mut berth_model::elb::Action,
    at: &str,
    resolve_tg: &ResolveTargetGroup<'_>,
) -> Result<(), ControlError> {
    if !a.target_group_arn.is_empty() || a.target_group_name.is_some() {
        a.target_group_arn = resolve_tg(
            format!("{at}.targetGroupName"),
            &a.target_group_arn,
            a.target_group_name.as_deref(),
        )?;
    }
    if let Some(f) = &mut a.forward_config {
        for (k, t) in f.target_groups.iter_mut().enumerate() {
            t.target_group_arn = resolve_tg(
                format!("{at}.forwardConfig.targetGroups[{k}].targetGroupName"),
                &t.target_group_arn,
                t.target_group_name.as_deref(),
            )?;
        }
    }
    Ok(())
}

async fn resolve_service_td(
    db: &Db,
    in_stack: &BTreeMap<String, TaskDefinition>,
    reference: &str,
) -> Result<Option<TaskDefinition>, ControlError> {
    let Some((family, rev)) = arn::parse_family_revision(reference) else {
        return Ok(None);
    };
    if let Some(td) = in_stack.get(family) {
        if rev.is_none() || rev == Some(td.revision) {
            return Ok(Some(td.clone()));
        }
    }
    db.resolve_task_definition(reference).await
}

#[cfg(test)]
mod tests {
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
        let scaled =
            Stack::from_yaml(&STACK.replace("desiredCount: 2", "desiredCount: 5")).unwrap();
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
            .replace("    desiredCount: 2", "    desiredCount: 2\n    enableExecuteCommand: true");
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
        assert!(svc[0].starts_with("enableExecuteCommand: "), "{svc:?}");
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
}
