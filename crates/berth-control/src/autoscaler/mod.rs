//! The autoscaler: the reconciler that scales services' desired counts, as Application
//! Auto Scaling scales ECS services. Each pass of the control loop, for every stored
//! scalable target (at most once a second each):
//!
//! 1. its policies and scheduled actions are compiled onto the engine's rules
//!    ([`rules`]); the customized metrics among them are asked of the sampler;
//! 2. the service's desired count, whether a deployment is in progress (more than one
//!    deployment, or the PRIMARY not COMPLETED), the cooldown state read from the stored
//!    activities ([`history`]) and each policy's recent samples go into
//!    [`berth_autoscaling::evaluate`];
//! 3. what it decides is written in one batch guarded by the revisions it was read at:
//!    the service's new `desiredCount` with an event, a Successful scaling activity, and a
//!    fired scheduled action's bounds on the scalable target. A batch that lost a race is
//!    evaluated again from fresh reads. The service reconciler then starts tasks, or stops
//!    them through the drain-first path.
//!
//! A decision not to scale (at max, in cooldown, missing data, a deployment in progress,
//! ...) is recorded as an activity with `notScaledReasons` only when its reasons differ
//! from the newest recorded activity's (and at most every
//! [`history::NOT_SCALED_MIN_INTERVAL`] when they flap), so a steady state writes
//! nothing.
//!
//! Memory kept between passes: each target's last evaluation instant (the 1 s rate and
//! the start of the next scheduled-action interval). After a restart the first
//! evaluation counts scheduled firings from then on; cooldowns come from the store.
//!
//! What it does not do: sample metrics ([`crate::service_metrics`]), decide (the
//! engine), or start and stop tasks (the service reconciler).
//!
//! Layout:
//! - [`rules`]: stored resources onto the engine's rules.
//! - [`history`]: scaling activities written and read back as cooldown state.
//! - [`writes`]: what one decision writes, as guarded store operations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use berth_autoscaling::{evaluate, EvaluationInput, PolicyInput, PolicyObservation, TargetState};
use berth_model::autoscaling::{
    ScalableTarget, ScalingActivityStatusCode, ScalingPolicy, ScheduledAction, ServiceRef,
};
use berth_model::ecs::{DeploymentStatus, RolloutState, Service};

use crate::db::{self, Db, Versioned};
use crate::error::ControlError;
use crate::service_metrics::window::instant;
use crate::service_metrics::{ServiceKey, ServiceMetrics};

pub mod history;
pub mod rules;
pub mod writes;

#[cfg(test)]
mod tests;

/// The shortest time between two evaluations of one scalable target, in seconds.
pub const MIN_EVALUATION_INTERVAL: f64 = 1.0;
/// How many times one pass evaluates a target again after its batch lost a race.
const MAX_ATTEMPTS: usize = 4;

/// What one evaluation of a target showed, for the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetReport {
    pub service: ServiceKey,
    pub min_capacity: u32,
    pub max_capacity: u32,
    /// The desired count after the evaluation.
    pub desired: u32,
    pub observations: Vec<PolicyObservation>,
    /// The activities written, by status.
    pub written: Vec<ScalingActivityStatusCode>,
}

/// One pass's outcome: the targets evaluated and every target that exists.
#[derive(Debug, Default)]
pub struct PassReport {
    pub evaluated: Vec<TargetReport>,
    pub targets: BTreeSet<ServiceKey>,
}

pub struct Autoscaler {
    db: Db,
    metrics: Arc<ServiceMetrics>,
    /// Each target's last evaluation instant (unix seconds).
    last_evaluated: Mutex<BTreeMap<ServiceKey, f64>>,
}

/// Whether the service has a deployment in progress: more than one deployment, or the
/// PRIMARY not COMPLETED. Scale-in waits for it; scale-out does not.
pub fn deployment_in_progress(service: &Service) -> bool {
    service.deployments.len() > 1
        || service.deployments.iter().any(|d| {
            d.status == DeploymentStatus::Primary && d.rollout_state != RolloutState::Completed
        })
}

/// The policies and scheduled actions of each service.
type ByService<T> = BTreeMap<(String, String), Vec<T>>;

fn by_service<T>(rows: Vec<Versioned<T>>, resource_id: impl Fn(&T) -> &str) -> ByService<T> {
    let mut out: ByService<T> = BTreeMap::new();
    for row in rows {
        if let Ok(s) = ServiceRef::parse("resourceId", resource_id(&row.value)) {
            out.entry((s.cluster, s.service))
                .or_default()
                .push(row.value);
        }
    }
    out
}

impl Autoscaler {
    pub fn new(db: Db, metrics: Arc<ServiceMetrics>) -> Self {
        Self {
            db,
            metrics,
            last_evaluated: Mutex::default(),
        }
    }

    fn last_evaluated(&self) -> std::sync::MutexGuard<'_, BTreeMap<ServiceKey, f64>> {
        self.last_evaluated.lock().expect("autoscaler memory")
    }

    /// One pass at `now` (unix seconds): every target not evaluated in the last
    /// [`MIN_EVALUATION_INTERVAL`] is evaluated and its decision written.
    pub async fn reconcile(&self, now: f64) -> Result<PassReport, ControlError> {
        let targets = self.db.scalable_targets(None).await?;
        let mut policies = by_service(
            self.db.scaling_policies(None, None).await?,
            |p: &ScalingPolicy| &p.resource_id,
        );
        let mut actions = by_service(
            self.db.scheduled_actions(None, None).await?,
            |a: &ScheduledAction| &a.resource_id,
        );
        let mut report = PassReport::default();
        for target in targets {
            let Ok(svc) = ServiceRef::parse("resourceId", &target.value.resource_id) else {
                tracing::warn!(resource_id = %target.value.resource_id, "scalable target with a bad resourceId");
                continue;
            };
            let key = ServiceKey::new(&svc.cluster, &svc.service);
            report.targets.insert(key.clone());
            let since = self.last_evaluated().get(&key).copied();
            if since.is_some_and(|t| now - t < MIN_EVALUATION_INTERVAL && now >= t) {
                continue;
            }
            let ids = (svc.cluster.clone(), svc.service.clone());
            let compiled: Vec<rules::CompiledPolicy> = policies
                .remove(&ids)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| match rules::compile_policy(p) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(service = %key.resource_id(), error = %e, "scaling policy left out");
                        None
                    }
                })
                .collect();
            self.metrics
                .set_custom_metrics(key.clone(), rules::custom_metrics(&compiled));
            let scheduled: Vec<berth_autoscaling::ScheduledAction> = actions
                .remove(&ids)
                .unwrap_or_default()
                .iter()
                .filter_map(|a| match rules::compile_scheduled(a) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(service = %key.resource_id(), error = %e, "scheduled action left out");
                        None
                    }
                })
                .collect();
            match self
                .evaluate_target(
                    &target.key,
                    &key,
                    &compiled,
                    &scheduled,
                    since.unwrap_or(now),
                    now,
                )
                .await
            {
                Ok(Some(r)) => report.evaluated.push(r),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(service = %key.resource_id(), error = %e, "autoscaler");
                }
            }
            self.last_evaluated().insert(key, now);
        }
        let mut memory = self.last_evaluated();
        let gone: Vec<ServiceKey> = memory
            .keys()
            .filter(|k| !report.targets.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            memory.remove(&k);
            self.metrics.set_custom_metrics(k, BTreeSet::new());
        }
        Ok(report)
    }

    /// Evaluates one target (stored at `target_key`) at `now` and writes what it decides;
    /// None when the service is missing or not ACTIVE.
    async fn evaluate_target(
        &self,
        target_key: &str,
        key: &ServiceKey,
        policies: &[rules::CompiledPolicy],
        scheduled: &[berth_autoscaling::ScheduledAction],
        scheduled_since: f64,
        now: f64,
    ) -> Result<Option<TargetReport>, ControlError> {
        let series: Vec<_> = policies
            .iter()
            .map(|p| {
                self.metrics
                    .window_since(key, &p.metric, now - p.lookback.as_secs_f64() - 1.0)
            })
            .collect();
        for attempt in 1..=MAX_ATTEMPTS {
            let Some(target) = self.db.get::<ScalableTarget>(target_key).await? else {
                return Ok(None);
            };
            let service_key = db::service_key(&key.cluster, &key.service);
            let Some(service) = self.db.get::<Service>(&service_key).await? else {
                return Ok(None);
            };
            if service.value.status != "ACTIVE" {
                return Ok(None);
            }
            let bounds = match rules::bounds(&target.value) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "scalable target left out");
                    return Ok(None);
                }
            };
            let activities = self
                .db
                .scaling_activities(&key.cluster, &key.service)
                .await?;
            let state = TargetState {
                resource_id: key.resource_id(),
                bounds,
                suspended: rules::suspended(&target.value),
                desired: service.value.desired_count.clamp(0, i64::from(u32::MAX)) as u32,
                deployment_in_progress: deployment_in_progress(&service.value),
                activity: history::recent_activity(&activities),
            };
            let inputs: Vec<PolicyInput<'_>> = policies
                .iter()
                .zip(&series)
                .map(|(p, s)| PolicyInput {
                    policy: &p.policy,
                    metric: s,
                })
                .collect();
            let evaluation = evaluate(&EvaluationInput {
                target: &state,
                policies: &inputs,
                scheduled_actions: scheduled,
                scheduled_since: instant(scheduled_since),
                now: instant(now),
            });
            let writes = writes::decision_ops(
                key,
                &service,
                &target,
                &activities,
                &evaluation,
                state.desired,
                now,
            );
            let report = TargetReport {
                service: key.clone(),
                min_capacity: evaluation.bounds.min,
                max_capacity: evaluation.bounds.max,
                desired: writes.desired,
                observations: evaluation.observations.clone(),
                written: writes.written,
            };
            if writes.ops.is_empty() {
                return Ok(Some(report));
            }
            match self.db.batch(writes.ops).await {
                Ok(_) => {
                    if let Some(change) = &evaluation.change {
                        tracing::info!(
                            service = %key.resource_id(),
                            from = change.from,
                            to = change.to,
                            cause = %change.cause,
                            "scaling"
                        );
                    }
                    return Ok(Some(report));
                }
                Err(ControlError::Conflict { key: k, .. }) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(key = %k, attempt, "autoscaler write raced another; evaluating again");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
