//! The autoscaling part of apply: scalable targets, scaling policies and scheduled
//! actions, resolved against the stack and the store, and the rule by which a stack's
//! `desiredCount` and the autoscaler share a service.
//!
//! **Who owns `desiredCount`.** While a service has a scalable target (stored, or in the
//! stack being applied), the autoscaler owns its desired count, as in ECS: apply keeps the
//! desired count the service has and only moves it into `[minCapacity, maxCapacity]` of the
//! target as it will be after the apply; the stack's `desiredCount` is not applied (and a
//! difference in it alone does not make the service "updated"). A service created in the
//! same apply as its target starts at the stack's `desiredCount` moved into the bounds.
//! Without a scalable target, the stack's `desiredCount` applies as always; deleting the
//! target leaves the count where it is until the next apply.
//!
//! What it does not do: decide scaling (the autoscaler does). A `schedule` is read by
//! the scaling engine's parser (`berth_autoscaling::Schedule`), here only to refuse one
//! that does not parse.

use std::collections::BTreeMap;

use berth_model::autoscaling::policy::AlbResourceLabel;
use berth_model::autoscaling::{self, ScalableTarget, ScalingPolicy, ScheduledAction, ServiceRef};
use berth_model::ecs::{SchedulingStrategy, Service};
use berth_model::elb::LoadBalancer;
use berth_model::stack::{check_label_load_balancer, check_label_target_group, Stack};
use berth_model::time::Timestamp;
use berth_store::{Expect, Op};

use super::change::{change, Change};
use crate::db::{self, encode, Db, Versioned};
use crate::error::ControlError;

/// The scalable target each service will have after the apply: the stack's where it
/// lists one, else the stored one.
pub(super) struct Targets<'a> {
    in_stack: BTreeMap<ServiceRef, &'a ScalableTarget>,
    stored: BTreeMap<ServiceRef, Versioned<ScalableTarget>>,
}

impl<'a> Targets<'a> {
    pub(super) async fn resolve(db: &Db, stack: &'a Stack) -> Result<Targets<'a>, ControlError> {
        let mut in_stack = BTreeMap::new();
        for (i, t) in stack.scalable_targets.iter().enumerate() {
            let svc =
                ServiceRef::parse(&format!("scalableTargets[{i}].resourceId"), &t.resource_id)?;
            in_stack.insert(svc, t);
        }
        let mut stored = BTreeMap::new();
        for v in db.scalable_targets(None).await? {
            if let Ok(svc) = ServiceRef::parse("resourceId", &v.value.resource_id) {
                stored.insert(svc, v);
            }
        }
        Ok(Targets { in_stack, stored })
    }

    /// The target `cluster/service` will have after the apply.
    pub(super) fn after(&self, cluster: &str, service: &str) -> Option<&ScalableTarget> {
        let svc = ServiceRef {
            cluster: cluster.to_string(),
            service: service.to_string(),
        };
        self.in_stack
            .get(&svc)
            .copied()
            .or_else(|| self.stored.get(&svc).map(|v| &v.value))
    }
}

/// The desired count apply stores for a service (see the module docs): `from_stack`
/// when no scalable target owns the service, else the count it has (`current`; the
/// stack's for a new service) moved into the target's bounds.
pub fn desired_count(
    from_stack: i64,
    current: Option<i64>,
    target: Option<&ScalableTarget>,
) -> i64 {
    match target {
        None => from_stack,
        Some(t) => t.clamp(current.unwrap_or(from_stack)),
    }
}

/// What the rest of the apply resolved, for the references autoscaling makes.
pub(super) struct Resolved<'r> {
    /// Services of the stack as they will be stored, by (cluster, name).
    pub services: &'r BTreeMap<(String, String), Service>,
    /// Load balancers of the stack as they will be stored, by name.
    pub load_balancers: &'r BTreeMap<String, LoadBalancer>,
}

/// Adds the writes for the stack's autoscaling sections to `ops` and their lines to
/// `changes`, after checking every reference against the stack and the store.
pub(super) async fn apply(
    db: &Db,
    stack: &Stack,
    targets: &Targets<'_>,
    resolved: &Resolved<'_>,
    now: Timestamp,
    ops: &mut Vec<Op>,
    changes: &mut Vec<Change>,
) -> Result<(), ControlError> {
    for (i, t) in stack.scalable_targets.iter().enumerate() {
        let at = format!("scalableTargets[{i}]");
        let svc = ServiceRef::parse(&format!("{at}.resourceId"), &t.resource_id)?;
        let (service, stored_service) = service_after(db, resolved, &svc, &at).await?;
        if service.scheduling_strategy == SchedulingStrategy::Daemon {
            return Err(ControlError::invalid(
                format!("{at}.resourceId"),
                format!("{svc} is a DAEMON service (one task per container instance); only REPLICA services scale"),
            ));
        }
        let existing = targets.stored.get(&svc);
        let stored = ScalableTarget {
            scalable_target_arn: autoscaling::scalable_target_arn(&svc),
            creation_time: Some(existing.and_then(|e| e.value.creation_time).unwrap_or(now)),
            ..t.spec()
        };
        put(
            ops,
            changes,
            "scalable-target",
            svc.resource_id(),
            db::scalable_target_key(&svc.cluster, &svc.service),
            existing,
            &stored,
        );
        // A service the stack does not list keeps its count, moved into the new bounds.
        if let Some(v) = stored_service {
            let clamped = stored.clamp(v.value.desired_count);
            if clamped != v.value.desired_count {
                let mut next = v.value.clone();
                next.desired_count = clamped;
                ops.push(Op::Put {
                    key: v.key.clone(),
                    value: encode(&next),
                    expect: Some(Expect::ModRevision(v.mod_revision)),
                });
                changes.push(change("service", &svc.service, "updated"));
            }
        }
    }

    for (i, p) in stack.scaling_policies.iter().enumerate() {
        let at = format!("scalingPolicies[{i}]");
        let svc = ServiceRef::parse(&format!("{at}.resourceId"), &p.resource_id)?;
        let (service, _) = service_after(db, resolved, &svc, &at).await?;
        require_target(targets, &svc, &at)?;
        for (field, m) in p.predefined_metrics() {
            let Some(label) = m.alb_resource_label() else {
                continue;
            };
            let field = format!("{at}.{field}.resourceLabel");
            check_label(db, resolved, &svc, &service, &label, &field).await?;
        }
        let key = db::scaling_policy_key(&svc.cluster, &svc.service, &p.policy_name);
        let existing = db.get::<ScalingPolicy>(&key).await?;
        let stored = ScalingPolicy {
            policy_arn: autoscaling::scaling_policy_arn(&svc, &p.policy_name),
            creation_time: Some(
                existing
                    .as_ref()
                    .and_then(|e| e.value.creation_time)
                    .unwrap_or(now),
            ),
            ..p.spec()
        };
        put(
            ops,
            changes,
            "scaling-policy",
            format!("{svc}:{}", p.policy_name),
            key,
            existing.as_ref(),
            &stored,
        );
    }

    for (i, a) in stack.scheduled_actions.iter().enumerate() {
        let at = format!("scheduledActions[{i}]");
        let svc = ServiceRef::parse(&format!("{at}.resourceId"), &a.resource_id)?;
        service_after(db, resolved, &svc, &at).await?;
        require_target(targets, &svc, &at)?;
        berth_autoscaling::Schedule::parse(&a.schedule, a.timezone.as_deref())
            .map_err(|e| ControlError::invalid(format!("{at}.{}", e.field()), e.detail()))?;
        let key = db::scheduled_action_key(&svc.cluster, &svc.service, &a.scheduled_action_name);
        let existing = db.get::<ScheduledAction>(&key).await?;
        let stored = ScheduledAction {
            scheduled_action_arn: autoscaling::scheduled_action_arn(&svc, &a.scheduled_action_name),
            creation_time: Some(
                existing
                    .as_ref()
                    .and_then(|e| e.value.creation_time)
                    .unwrap_or(now),
            ),
            ..a.spec()
        };
        put(
            ops,
            changes,
            "scheduled-action",
            format!("{svc}:{}", a.scheduled_action_name),
            key,
            existing.as_ref(),
            &stored,
        );
    }
    Ok(())
}

/// Queues the write of `stored` unless it equals what is stored, guarded by the
/// revision that was read.
fn put<T: serde::Serialize + PartialEq>(
    ops: &mut Vec<Op>,
    changes: &mut Vec<Change>,
    kind: &str,
    name: String,
    key: String,
    existing: Option<&Versioned<T>>,
    stored: &T,
) {
    let (expect, action) = match existing {
        Some(e) if e.value == *stored => {
            changes.push(change(kind, name, "unchanged"));
            return;
        }
        Some(e) => (Expect::ModRevision(e.mod_revision), "updated"),
        None => (Expect::Absent, "created"),
    };
    ops.push(Op::Put {
        key,
        value: encode(stored),
        expect: Some(expect),
    });
    changes.push(change(kind, name, action));
}

/// The service `svc` will be after the apply: the stack's, else the stored one (then
/// also returned as read, for a guarded write). Missing or being deleted is an error at
/// `<at>.resourceId`.
async fn service_after(
    db: &Db,
    resolved: &Resolved<'_>,
    svc: &ServiceRef,
    at: &str,
) -> Result<(Service, Option<Versioned<Service>>), ControlError> {
    if let Some(s) = resolved
        .services
        .get(&(svc.cluster.clone(), svc.service.clone()))
    {
        return Ok((s.clone(), None));
    }
    match db
        .get::<Service>(&db::service_key(&svc.cluster, &svc.service))
        .await?
    {
        Some(v) if v.value.status == "ACTIVE" => Ok((v.value.clone(), Some(v))),
        Some(v) => Err(ControlError::invalid(
            format!("{at}.resourceId"),
            format!(
                "service {:?} is {} (being deleted) in cluster {:?}",
                svc.service, v.value.status, svc.cluster
            ),
        )),
        None => Err(ControlError::invalid(
            format!("{at}.resourceId"),
            format!(
                "service {:?} does not exist in cluster {:?}; add it under services",
                svc.service, svc.cluster
            ),
        )),
    }
}

fn require_target(targets: &Targets<'_>, svc: &ServiceRef, at: &str) -> Result<(), ControlError> {
    if targets.after(&svc.cluster, &svc.service).is_some() {
        return Ok(());
    }
    Err(ControlError::invalid(
        format!("{at}.resourceId"),
        format!("{svc} has no scalable target; register one under scalableTargets"),
    ))
}

/// An ALBRequestCountPerTarget label names a target group of the service that an
/// application load balancer (of the stack or the store) forwards to; errors name
/// `field`.
async fn check_label(
    db: &Db,
    resolved: &Resolved<'_>,
    svc: &ServiceRef,
    service: &Service,
    label: &AlbResourceLabel,
    field: &str,
) -> Result<(), ControlError> {
    let at = |e: berth_model::ValidationError| ControlError::from(e.within(field));
    let tgs: Vec<&str> = service
        .load_balancers
        .iter()
        .map(|l| {
            l.target_group_name
                .as_deref()
                .unwrap_or_else(|| berth_model::arn::last_segment(&l.target_group_arn))
        })
        .collect();
    check_label_target_group(svc, label, &tgs).map_err(at)?;
    let lb = match resolved.load_balancers.get(&label.load_balancer) {
        Some(lb) => lb.clone(),
        None => match db
            .get::<LoadBalancer>(&db::load_balancer_key(&label.load_balancer))
            .await?
        {
            Some(v) => v.value,
            None => {
                return Err(ControlError::invalid(
                    field.to_string(),
                    format!(
                        "load balancer {:?} does not exist; add it under loadBalancers",
                        label.load_balancer
                    ),
                ))
            }
        },
    };
    check_label_load_balancer(label, &lb).map_err(at)
}
