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
    let stored_clusters = db.clusters().await?;
    let mut cluster_names: Vec<String> = stored_clusters
        .iter()
        .map(|c| c.cluster_name.clone())
        .collect();
    // Each cluster's serviceConnectDefaults namespace (by name), as it will be.
    let mut default_namespaces: BTreeMap<String, String> = stored_clusters
        .iter()
        .filter_map(|c| {
            let d = c.service_connect_defaults.as_ref()?;
            Some((c.cluster_name.clone(), d.namespace_name().to_string()))
        })
        .collect();
    for c in &stack.clusters {
        let key = db::cluster_key(&c.cluster_name);
        let defaults = c.service_connect_defaults.as_ref().map(|d| {
            berth_model::ecs::ClusterServiceConnectDefaults {
                namespace: berth_model::servicediscovery::namespace_arn(d.namespace_name()),
            }
        });
        match &defaults {
            Some(d) => {
                default_namespaces.insert(c.cluster_name.clone(), d.namespace_name().to_string());
            }
            None => {
                default_namespaces.remove(&c.cluster_name);
            }
        }
        match db.get::<Cluster>(&key).await? {
            Some(e) if e.value.service_connect_defaults == defaults => {
                changes.push(change("cluster", &c.cluster_name, "unchanged"))
            }
            Some(e) => {
                let stored = Cluster {
                    service_connect_defaults: defaults,
                    ..e.value.clone()
                };
                ops.push(Op::Put {
                    key,
                    value: encode(&stored),
                    expect: Some(Expect::ModRevision(e.mod_revision)),
                });
                changes.push(change("cluster", &c.cluster_name, "updated"));
            }
            None => {
                let stored = Cluster {
                    cluster_arn: arn::cluster(&c.cluster_name),
                    status: "ACTIVE".into(),
                    service_connect_defaults: defaults,
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
    let namespaces = discovery::apply_namespaces(
        db,
        &discovery::with_cluster_default_namespaces(db, &stack.namespaces, &stack.clusters).await?,
        now,
        &mut ops,
        &mut changes,
    )
    .await?;

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
        discovery::default_service_connect_namespace(
            &at,
            &mut spec,
            default_namespaces.get(&cluster).map(String::as_str),
        )?;
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
mod tests;
