//! The service reconciler: keeps `desiredCount` tasks of each service running, replaces
//! tasks that stop or fail their load balancer health checks, and rolls deployments
//! within `minimumHealthyPercent` and `maximumPercent`.
//!
//! Level-triggered: each pass reads services, tasks, targets and instances from the store
//! and converges, so a restarted server picks up where the last one stopped.
//!
//! Stopping a task never signals it: the reconciler sets `desiredStatus: STOPPED` and
//! moves a running task to DEACTIVATING; the registration reconciler drains its targets
//! and only then moves it to STOPPING, which is when its agent signals it.

use std::collections::BTreeMap;

use berth_model::ecs::{
    Container, Deployment, HealthStatus, SchedulingStrategy, Service, StopCode, Task,
    TaskDefinition, TaskStatus,
};
use berth_model::elb::{Target, TargetHealthState};
use berth_model::{arn, time};

use crate::db::{self, Db};
use crate::error::ApiError;
use crate::scheduler::{self, Placed};

/// How long a task that never reached RUNNING holds back the next start of its service,
/// doubling per consecutive failure up to ECS's 15 minutes.
const THROTTLE_BASE_SECONDS: f64 = 2.0;
const THROTTLE_MAX_SECONDS: f64 = 900.0;
/// With no load balancer and no container health check, ECS counts a task healthy 40 s
/// after RUNNING for deployments; berth counts it healthy once RUNNING (the agent only
/// reports RUNNING after the process started), so deployments without checks move on.
const STOPPED_TASK_RETENTION_SECONDS: f64 = 3600.0;

pub struct ServiceReconciler {
    pub db: Db,
}

/// How a service's task stands, for deployment arithmetic.
fn is_active(t: &Task) -> bool {
    t.desired_status == TaskStatus::Running
}

fn is_alive(t: &Task) -> bool {
    t.last_status != TaskStatus::Stopped
}

impl ServiceReconciler {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// One pass over every service.
    pub async fn reconcile(&self) -> Result<(), ApiError> {
        let services = self.db.services(None).await?;
        let tasks = self.db.tasks(None).await?;
        let targets = self.db.targets(None).await?;
        let mut targets_by_task: BTreeMap<&str, Vec<&Target>> = BTreeMap::new();
        for t in &targets {
            if let Some(ta) = &t.value.task_arn {
                targets_by_task
                    .entry(ta.as_str())
                    .or_default()
                    .push(&t.value);
            }
        }
        for svc in &services {
            if let Err(e) = self
                .reconcile_service(&svc.value, &tasks, &targets_by_task)
                .await
            {
                tracing::warn!(service = %svc.value.service_name, error = %e, "service reconcile failed");
            }
        }
        self.collect_stopped(&tasks).await?;
        Ok(())
    }

    async fn reconcile_service(
        &self,
        svc: &Service,
        all_tasks: &[db::Versioned<Task>],
        targets_by_task: &BTreeMap<&str, Vec<&Target>>,
    ) -> Result<(), ApiError> {
        let cluster = svc.cluster_name().to_string();
        let group = format!("service:{}", svc.service_name);
        let cluster_arn = arn::cluster(&cluster);
        let tasks: Vec<&Task> = all_tasks
            .iter()
            .map(|v| &v.value)
            .filter(|t| t.group == group && t.cluster_arn == cluster_arn)
            .collect();
        let deleting = svc.status != "ACTIVE";
        let daemon = svc.scheduling_strategy == SchedulingStrategy::Daemon;
        let desired = if deleting {
            0
        } else if daemon {
            // One task on each ACTIVE instance with a connected agent.
            self.db
                .instances(Some(&cluster))
                .await?
                .iter()
                .filter(|i| i.status == "ACTIVE" && i.agent_connected)
                .count()
        } else {
            svc.desired_count.max(0) as usize
        };
        let Some(td) = self
            .db
            .resolve_task_definition(&svc.task_definition)
            .await?
        else {
            self.event(
                svc,
                format!(
                    "(service {}) cannot start tasks: task definition {} is not registered.",
                    svc.service_name, svc.task_definition
                ),
            )
            .await?;
            return Ok(());
        };
        let now = time::now();
        let grace = f64::from(svc.health_check_grace_period_seconds.unwrap_or(0));

        // Task definitions whose essential containers have health checks: their tasks
        // count as healthy only once the checks pass (ECS does the same).
        let mut checked_defs = std::collections::BTreeSet::new();
        for arn in tasks
            .iter()
            .map(|t| t.task_definition_arn.as_str())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let def = if arn == td.task_definition_arn {
                Some(td.clone())
            } else {
                self.db.resolve_task_definition(arn).await?
            };
            if def.is_some_and(|d| {
                d.container_definitions
                    .iter()
                    .any(|c| c.essential && c.health_check.is_some())
            }) {
                checked_defs.insert(arn.to_string());
            }
        }
        let healthy = |t: &Task| -> bool {
            if t.last_status != TaskStatus::Running || t.health_status == HealthStatus::Unhealthy {
                return false;
            }
            if checked_defs.contains(&t.task_definition_arn)
                && t.health_status != HealthStatus::Healthy
            {
                return false;
            }
            if svc.load_balancers.is_empty() {
                return true;
            }
            let tgs = targets_by_task.get(t.task_arn.as_str());
            svc.load_balancers.iter().all(|lb| {
                tgs.is_some_and(|ts| {
                    ts.iter().any(|x| {
                        x.target_group_arn == lb.target_group_arn
                            && matches!(
                                x.target_health.state,
                                TargetHealthState::Healthy | TargetHealthState::Unavailable
                            )
                    })
                })
            })
        };

        // Replace tasks the load balancer finds unhealthy, after the grace period.
        for t in tasks
            .iter()
            .filter(|t| is_active(t) && t.last_status == TaskStatus::Running)
        {
            let started = t.started_at.unwrap_or(t.created_at);
            if now - started < grace {
                continue;
            }
            let bad = targets_by_task.get(t.task_arn.as_str()).and_then(|ts| {
                ts.iter()
                    .find(|x| x.target_health.state == TargetHealthState::Unhealthy)
            });
            if let Some(bad) = bad {
                let reason = format!(
                    "Task failed ELB health checks in (target-group {})",
                    bad.target_group_arn
                );
                self.stop_task(t, StopCode::ServiceSchedulerInitiated, &reason)
                    .await?;
                self.event(
                    svc,
                    format!(
                    "(service {}) (port {}) is unhealthy in (target-group {}) due to (reason {}).",
                    svc.service_name,
                    bad.port,
                    bad.target_group_arn,
                    bad.target_health.reason.as_deref().unwrap_or("Health checks failed")
                ),
                )
                .await?;
            } else if t.health_status == HealthStatus::Unhealthy {
                self.stop_task(
                    t,
                    StopCode::ServiceSchedulerInitiated,
                    "Task failed container health checks",
                )
                .await?;
            }
        }

        // The deployment of the current task definition: its id marks the tasks it starts.
        let current = svc
            .deployments
            .iter()
            .find(|d| d.task_definition == td.task_definition_arn);
        let deployment_id = current
            .map(|d| d.id.clone())
            .unwrap_or_else(|| format!("ecs-svc/{}", short_id()));
        let rollout_failed = current.is_some_and(|d| d.rollout_state == "FAILED");
        if let (Some(cb), Some(d)) = (
            &svc.deployment_configuration.deployment_circuit_breaker,
            current,
        ) {
            let failures = tasks
                .iter()
                .filter(|t| t.started_by.as_deref() == Some(d.id.as_str()) && deployment_failure(t))
                .count();
            if cb.enable
                && d.rollout_state == "IN_PROGRESS"
                && failures >= breaker_threshold(desired)
            {
                return self.trip_breaker(svc, d, failures, cb.rollback).await;
            }
        }

        let active: Vec<&Task> = tasks.iter().copied().filter(|t| is_active(t)).collect();
        let (new, old): (Vec<&Task>, Vec<&Task>) = active
            .iter()
            .partition(|t| t.task_definition_arn == td.task_definition_arn);
        let alive = tasks.iter().filter(|t| is_alive(t)).count();
        let dc = &svc.deployment_configuration;
        // DAEMON services replace in place: at most one task per instance, none kept.
        let (max_pct, min_pct) = if daemon {
            (100, 0)
        } else {
            (
                dc.maximum_percent as usize,
                dc.minimum_healthy_percent as usize,
            )
        };
        let max_total = desired * max_pct / 100;
        let min_healthy = (desired * min_pct).div_ceil(100);

        // Scale in: stop surplus tasks of the current definition, least useful first.
        let mut stopped_now = 0usize;
        if new.len() > desired {
            let mut surplus: Vec<&Task> = new.clone();
            surplus.sort_by(|a, b| {
                (healthy(a), a.created_at)
                    .partial_cmp(&(healthy(b), b.created_at))
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .reverse()
            });
            // Keep the healthiest, oldest `desired`; stop the rest.
            let victims: Vec<&Task> = surplus.split_off(desired);
            stopped_now += self.scale_in(svc, &victims).await?;
        }

        // Start tasks of the current definition up to desired, within maximumPercent.
        let room = max_total.saturating_sub(alive);
        let want = desired.saturating_sub(new.len());
        let to_start = want.min(room);
        // A deployment the circuit breaker failed (without rollback) starts nothing more.
        if to_start > 0 && !deleting && !rollout_failed {
            if let Some(wait) = throttle(&tasks, &td, now) {
                tracing::debug!(service = %svc.service_name, wait, "start throttled");
            } else {
                self.start_tasks(svc, &td, &cluster, &group, to_start, &deployment_id)
                    .await?;
            }
        }

        // Stop old-definition tasks while enough healthy ones remain.
        if !old.is_empty() {
            let healthy_count = active.iter().filter(|t| healthy(t)).count();
            let mut can_stop = healthy_count.saturating_sub(min_healthy);
            let mut victims = Vec::new();
            let mut olds = old.clone();
            olds.sort_by_key(|t| healthy(t));
            for t in olds {
                if !healthy(t) {
                    victims.push(t);
                } else if can_stop > 0 {
                    can_stop -= 1;
                    victims.push(t);
                }
            }
            stopped_now += self.scale_in(svc, &victims).await?;
        }

        // Counts, deployments and steady state.
        let key = db::service_key(&cluster, &svc.service_name);
        if deleting && tasks.iter().all(|t| !is_alive(t)) {
            self.db.store.delete(&key).await?;
            return Ok(());
        }
        let running = active
            .iter()
            .filter(|t| t.last_status == TaskStatus::Running)
            .count() as u32;
        let pending = active
            .iter()
            .filter(|t| t.last_status < TaskStatus::Running)
            .count() as u32;
        let new_running = new
            .iter()
            .filter(|t| t.last_status == TaskStatus::Running)
            .count() as u32;
        let new_pending = new
            .iter()
            .filter(|t| t.last_status < TaskStatus::Running)
            .count() as u32;
        let steady = stopped_now == 0
            && old.is_empty()
            && new.len() == desired
            && new.iter().all(|t| healthy(t))
            && tasks.iter().filter(|t| is_alive(t)).all(|t| is_active(t));
        let td_arn = td.task_definition_arn.clone();
        let svc_name = svc.service_name.clone();
        let old_defs: Vec<(String, u32, u32)> = {
            let mut m: BTreeMap<String, (u32, u32)> = BTreeMap::new();
            for t in &old {
                let e = m.entry(t.task_definition_arn.clone()).or_default();
                if t.last_status == TaskStatus::Running {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
            m.into_iter().map(|(k, (r, p))| (k, r, p)).collect()
        };
        self.db
            .update::<Service, _>(&key, |s| {
                let before = s.clone();
                s.running_count = running;
                s.pending_count = pending;
                let primary_id = match s.deployments.iter().find(|d| d.task_definition == td_arn) {
                    Some(d) => d.id.clone(),
                    None => deployment_id.clone(),
                };
                let was_steady = s
                    .deployments
                    .iter()
                    .any(|d| d.status == "PRIMARY" && d.rollout_state == "COMPLETED");
                let mut deployments = Vec::new();
                let prev = s.deployments.iter().find(|d| d.id == primary_id).cloned();
                let mut primary = prev.unwrap_or_else(|| Deployment {
                    id: primary_id.clone(),
                    task_definition: td_arn.clone(),
                    created_at: now,
                    updated_at: now,
                    rollout_state: "IN_PROGRESS".into(),
                    ..Default::default()
                });
                primary.status = "PRIMARY".into();
                primary.desired_count = desired as u32;
                primary.running_count = new_running;
                primary.pending_count = new_pending;
                if steady && primary.rollout_state != "COMPLETED" {
                    primary.rollout_state = "COMPLETED".into();
                    primary.rollout_state_reason = "ECS deployment completed.".into();
                    primary.updated_at = now;
                } else if !steady && primary.rollout_state == "COMPLETED" && !old.is_empty() {
                    primary.rollout_state = "IN_PROGRESS".into();
                }
                deployments.push(primary);
                for (def, r, p) in &old_defs {
                    let mut d = s
                        .deployments
                        .iter()
                        .find(|d| &d.task_definition == def)
                        .cloned()
                        .unwrap_or_else(|| Deployment {
                            id: format!("ecs-svc/{}", short_id()),
                            task_definition: def.clone(),
                            created_at: now,
                            updated_at: now,
                            ..Default::default()
                        });
                    d.status = "ACTIVE".into();
                    d.desired_count = 0;
                    d.running_count = *r;
                    d.pending_count = *p;
                    deployments.push(d);
                }
                // Until the new deployment completes, the last completed one stays listed:
                // it is what a circuit-breaker rollback returns to.
                if deployments[0].rollout_state != "COMPLETED" {
                    let last_ok = s
                        .deployments
                        .iter()
                        .filter(|d| d.rollout_state == "COMPLETED")
                        .filter(|d| !deployments.iter().any(|x| x.id == d.id))
                        .max_by(|a, b| a.created_at.total_cmp(&b.created_at));
                    if let Some(d) = last_ok {
                        let mut d = d.clone();
                        d.status = "ACTIVE".into();
                        d.desired_count = 0;
                        d.running_count = 0;
                        d.pending_count = 0;
                        deployments.push(d);
                    }
                }
                s.deployments = deployments;
                if steady && !was_steady && !deleting {
                    s.push_event(
                        short_id(),
                        now,
                        format!("(service {svc_name}) has reached a steady state."),
                    );
                }
                *s != before
            })
            .await?;
        Ok(())
    }

    async fn start_tasks(
        &self,
        svc: &Service,
        td: &TaskDefinition,
        cluster: &str,
        group: &str,
        count: usize,
        deployment: &str,
    ) -> Result<(), ApiError> {
        let instances = self.db.instances(Some(cluster)).await?;
        let existing = self.db.tasks(Some(cluster)).await?;
        let mut tds: BTreeMap<String, Option<TaskDefinition>> = BTreeMap::new();
        for t in existing.iter().filter(|t| is_alive(&t.value)) {
            if !tds.contains_key(&t.value.task_definition_arn) {
                let d = self
                    .db
                    .resolve_task_definition(&t.value.task_definition_arn)
                    .await?;
                tds.insert(t.value.task_definition_arn.clone(), d);
            }
        }
        let mut new_tasks: Vec<Task> = Vec::new();
        let mut constraints = svc.placement_constraints.clone();
        if svc.scheduling_strategy == SchedulingStrategy::Daemon {
            constraints.push(berth_model::ecs::PlacementConstraint {
                kind: "distinctInstance".into(),
                expression: None,
            });
        }
        for n in 0..count {
            let mut placed: Vec<Placed> = existing
                .iter()
                .map(|v| &v.value)
                .filter(|t| is_alive(t))
                .filter_map(|t| {
                    let d = tds.get(&t.task_definition_arn)?.as_ref()?;
                    Some(Placed {
                        task: t,
                        cpu: scheduler::task_cpu(d),
                        memory: scheduler::task_memory(d),
                        ports: scheduler::task_fixed_ports(d),
                    })
                })
                .collect();
            for t in &new_tasks {
                placed.push(Placed {
                    task: t,
                    cpu: scheduler::task_cpu(td),
                    memory: scheduler::task_memory(td),
                    ports: scheduler::task_fixed_ports(td),
                });
            }
            let seed = now_nanos().wrapping_add(n as u64);
            match scheduler::place(
                &instances,
                &placed,
                td,
                group,
                &constraints,
                &svc.placement_strategy,
                seed,
            ) {
                Ok(inst) => new_tasks.push(new_task(svc, td, cluster, group, &inst, deployment)),
                Err(f) => {
                    self.event(svc, format!(
                        "(service {}) was unable to place a task because no container instance met all of its requirements. {}",
                        svc.service_name, f.0
                    ))
                    .await?;
                    break;
                }
            }
        }
        if new_tasks.is_empty() {
            return Ok(());
        }
        let ops = new_tasks
            .iter()
            .map(|t| berth_store::Op::Put {
                key: db::task_key(cluster, t.id()),
                value: db::encode(t),
                expect: Some(berth_store::Expect::Absent),
            })
            .collect();
        self.db.batch(ops).await?;
        let refs: Vec<&Task> = new_tasks.iter().collect();
        self.event(
            svc,
            format!(
                "(service {}) has started {} tasks: {}.",
                svc.service_name,
                new_tasks.len(),
                task_list(&refs)
            ),
        )
        .await?;
        Ok(())
    }

    /// Fails the deployment `d`; with `rollback`, points the service back at the last
    /// completed deployment's task definition (the next pass rolls back to it).
    async fn trip_breaker(
        &self,
        svc: &Service,
        d: &Deployment,
        failures: usize,
        rollback: bool,
    ) -> Result<(), ApiError> {
        let key = db::service_key(svc.cluster_name(), &svc.service_name);
        let (id, name) = (d.id.clone(), svc.service_name.clone());
        let now = time::now();
        self.db
            .update::<Service, _>(&key, |s| {
                let target = s
                    .deployments
                    .iter()
                    .filter(|x| x.id != id && x.rollout_state == "COMPLETED")
                    .max_by(|a, b| a.created_at.total_cmp(&b.created_at))
                    .map(|x| x.task_definition.clone());
                let Some(dep) = s.deployments.iter_mut().find(|x| x.id == id) else {
                    return false;
                };
                dep.rollout_state = "FAILED".into();
                dep.rollout_state_reason = format!(
                    "ECS deployment circuit breaker: {failures} tasks failed to start or stay healthy."
                );
                dep.updated_at = now;
                s.push_event(
                    short_id(),
                    now,
                    format!("(service {name}) (deployment {id}) deployment failed: tasks failed to start."),
                );
                if rollback {
                    if let Some(td) = target {
                        s.push_event(
                            short_id(),
                            now,
                            format!("(service {name}) rolling back to {td}."),
                        );
                        s.task_definition = td;
                    }
                }
                true
            })
            .await?;
        Ok(())
    }

    /// Stops `victims` for the scheduler and records one service event; returns how many.
    async fn scale_in(&self, svc: &Service, victims: &[&Task]) -> Result<usize, ApiError> {
        if victims.is_empty() {
            return Ok(0);
        }
        for t in victims {
            self.stop_task(t, StopCode::ServiceSchedulerInitiated, &scale_reason(svc))
                .await?;
        }
        self.event(
            svc,
            format!(
                "(service {}) has stopped {} running tasks: {}.",
                svc.service_name,
                victims.len(),
                task_list(victims)
            ),
        )
        .await?;
        Ok(victims.len())
    }

    /// Asks a task to stop the safe way (see the module docs).
    pub async fn stop_task(&self, t: &Task, code: StopCode, reason: &str) -> Result<(), ApiError> {
        stop_task(&self.db, t, code, reason).await
    }

    async fn event(&self, svc: &Service, message: String) -> Result<(), ApiError> {
        let key = db::service_key(svc.cluster_name(), &svc.service_name);
        // The same message twice in a row is noise (ECS also suppresses repeats).
        self.db
            .update::<Service, _>(&key, |s| {
                if s.events.first().is_some_and(|e| e.message == message) {
                    return false;
                }
                s.push_event(short_id(), time::now(), message.clone());
                true
            })
            .await?;
        Ok(())
    }

    /// Forgets tasks that stopped more than an hour ago (ECS keeps them visible an hour).
    async fn collect_stopped(&self, tasks: &[db::Versioned<Task>]) -> Result<(), ApiError> {
        let now = time::now();
        for t in tasks {
            if t.value.last_status == TaskStatus::Stopped
                && t.value
                    .stopped_at
                    .is_some_and(|s| now - s > STOPPED_TASK_RETENTION_SECONDS)
            {
                let op = berth_store::Op::Delete {
                    key: t.key.clone(),
                    expect: Some(berth_store::Expect::ModRevision(t.mod_revision)),
                };
                // A task changed meanwhile is left for the next pass.
                let _ = self.db.store.batch(vec![op]).await;
            }
        }
        Ok(())
    }
}

/// Marks a task for stopping: desired STOPPED; a running task goes to DEACTIVATING so its
/// targets drain before its agent signals it.
pub async fn stop_task(db: &Db, t: &Task, code: StopCode, reason: &str) -> Result<(), ApiError> {
    let key = db::task_key(t.cluster_name(), t.id());
    let reason = reason.to_string();
    db.update::<Task, _>(&key, |task| {
        if task.desired_status == TaskStatus::Stopped {
            return false;
        }
        task.desired_status = TaskStatus::Stopped;
        task.stop_code = Some(code);
        task.stopped_reason = Some(reason.clone());
        task.stopping_at = Some(time::now());
        if task.last_status == TaskStatus::Running {
            task.last_status = TaskStatus::Deactivating;
        }
        task.version += 1;
        true
    })
    .await?;
    Ok(())
}

/// The deployment circuit breaker's failure threshold, as ECS computes it.
pub fn breaker_threshold(desired: usize) -> usize {
    desired.div_ceil(2).clamp(10, 200)
}

/// Whether a stopped task counts against its deployment: it never started, failed its
/// health checks, or an essential container exited with a non-zero code (ECS counts only
/// the first two; a crash loop after RUNNING is a failed deployment too).
fn deployment_failure(t: &Task) -> bool {
    if t.last_status != TaskStatus::Stopped {
        return false;
    }
    match t.stop_code {
        Some(StopCode::TaskFailedToStart) => true,
        Some(StopCode::EssentialContainerExited) => t
            .containers
            .iter()
            .any(|c| c.exit_code.is_some_and(|x| x != 0)),
        Some(StopCode::ServiceSchedulerInitiated) => t
            .stopped_reason
            .as_deref()
            .is_some_and(|r| r.contains("health checks")),
        _ => false,
    }
}

fn scale_reason(svc: &Service) -> String {
    let dep = svc
        .deployments
        .iter()
        .find(|d| d.status == "PRIMARY")
        .map(|d| d.id.as_str())
        .unwrap_or("ecs-svc");
    format!("Scaling activity initiated by (deployment {dep})")
}

fn task_list(ts: &[&Task]) -> String {
    ts.iter()
        .map(|t| format!("(task {})", t.id()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seconds to wait before starting another task when recent ones never reached RUNNING.
fn throttle(tasks: &[&Task], td: &TaskDefinition, now: f64) -> Option<f64> {
    let mut recent: Vec<&&Task> = tasks
        .iter()
        .filter(|t| t.task_definition_arn == td.task_definition_arn)
        .filter(|t| t.last_status == TaskStatus::Stopped)
        .collect();
    recent.sort_by(|a, b| {
        b.stopped_at
            .partial_cmp(&a.stopped_at)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let failures = recent
        .iter()
        .take_while(|t| t.started_at.is_none() && t.stop_code == Some(StopCode::TaskFailedToStart))
        .count();
    if failures == 0 {
        return None;
    }
    let last = recent[0].stopped_at.unwrap_or(now);
    let backoff =
        (THROTTLE_BASE_SECONDS * 2f64.powi(failures as i32 - 1)).min(THROTTLE_MAX_SECONDS);
    let wait = last + backoff - now;
    (wait > 0.0).then_some(wait)
}

fn new_task(
    svc: &Service,
    td: &TaskDefinition,
    cluster: &str,
    group: &str,
    instance: &str,
    deployment: &str,
) -> Task {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let task_arn = arn::task(cluster, &id);
    Task {
        task_arn,
        cluster_arn: arn::cluster(cluster),
        task_definition_arn: td.task_definition_arn.clone(),
        container_instance_arn: Some(instance.to_string()),
        group: group.to_string(),
        started_by: Some(deployment.to_string()),
        last_status: TaskStatus::Provisioning,
        desired_status: TaskStatus::Running,
        launch_type: svc.launch_type.clone(),
        containers: td
            .container_definitions
            .iter()
            .map(|c| Container {
                container_arn: arn::container(cluster, &id, &c.name),
                name: c.name.clone(),
                image: c.image.clone(),
                last_status: TaskStatus::Pending,
                ..Default::default()
            })
            .collect(),
        health_status: HealthStatus::Unknown,
        created_at: time::now(),
        version: 1,
        ..Default::default()
    }
}

pub fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::ecs::{ContainerInstance, DeploymentCircuitBreaker, Resource};
    use std::sync::Arc;

    fn td(family: &str, revision: u32) -> TaskDefinition {
        let mut t: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": family,
            "containerDefinitions": [{"name": "web", "image": "x", "entryPoint": ["x"]}]
        }))
        .unwrap();
        t.revision = revision;
        t.task_definition_arn = arn::task_definition(family, revision);
        t.status = "ACTIVE".into();
        t
    }

    async fn setup(rollback: bool) -> (Db, Service) {
        let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
        for r in [1, 2] {
            db.put(&db::taskdef_key("web", r), &td("web", r))
                .await
                .unwrap();
        }
        let inst = ContainerInstance {
            container_instance_arn: arn::container_instance("default", "i-1"),
            cluster_arn: arn::cluster("default"),
            status: "ACTIVE".into(),
            agent_connected: true,
            registered_resources: vec![
                Resource {
                    name: "CPU".into(),
                    integer_value: 4096,
                    ..Default::default()
                },
                Resource {
                    name: "MEMORY".into(),
                    integer_value: 4096,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        db.put(&db::instance_key("default", "i-1"), &inst)
            .await
            .unwrap();
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "serviceName": "web", "taskDefinition": arn::task_definition("web", 2),
            "desiredCount": 2
        }))
        .unwrap();
        svc.status = "ACTIVE".into();
        svc.deployment_configuration.deployment_circuit_breaker = Some(DeploymentCircuitBreaker {
            enable: true,
            rollback,
        });
        svc.deployments = vec![
            Deployment {
                id: "ecs-svc/new".into(),
                status: "PRIMARY".into(),
                task_definition: arn::task_definition("web", 2),
                rollout_state: "IN_PROGRESS".into(),
                created_at: 2.0,
                ..Default::default()
            },
            Deployment {
                id: "ecs-svc/old".into(),
                status: "ACTIVE".into(),
                task_definition: arn::task_definition("web", 1),
                rollout_state: "COMPLETED".into(),
                created_at: 1.0,
                ..Default::default()
            },
        ];
        db.put(&db::service_key("default", "web"), &svc)
            .await
            .unwrap();
        // Ten tasks of the new deployment that never started.
        for i in 0..10 {
            let t = Task {
                task_arn: arn::task("default", &format!("failed{i}")),
                cluster_arn: arn::cluster("default"),
                task_definition_arn: arn::task_definition("web", 2),
                group: "service:web".into(),
                started_by: Some("ecs-svc/new".into()),
                last_status: TaskStatus::Stopped,
                desired_status: TaskStatus::Stopped,
                stop_code: Some(StopCode::TaskFailedToStart),
                stopped_at: Some(time::now()),
                ..Default::default()
            };
            db.put(&db::task_key("default", t.id()), &t).await.unwrap();
        }
        (db, svc)
    }

    async fn service(db: &Db) -> Service {
        db.get::<Service>(&db::service_key("default", "web"))
            .await
            .unwrap()
            .unwrap()
            .value
    }

    #[test]
    fn threshold_is_ecs_formula() {
        assert_eq!(breaker_threshold(1), 10);
        assert_eq!(breaker_threshold(30), 15);
        assert_eq!(breaker_threshold(1000), 200);
    }

    #[tokio::test]
    async fn breaker_fails_the_deployment_and_rolls_back() {
        let (db, _) = setup(true).await;
        let r = ServiceReconciler::new(db.clone());
        r.reconcile().await.unwrap();
        let svc = service(&db).await;
        assert_eq!(svc.task_definition, arn::task_definition("web", 1));
        let failed = svc
            .deployments
            .iter()
            .find(|d| d.id == "ecs-svc/new")
            .unwrap();
        assert_eq!(failed.rollout_state, "FAILED");
        assert!(svc
            .events
            .iter()
            .any(|e| e.message.contains("deployment failed")));
        // The next pass makes the old deployment primary and starts its tasks.
        r.reconcile().await.unwrap();
        let svc = service(&db).await;
        assert_eq!(svc.deployments[0].id, "ecs-svc/old");
        assert_eq!(svc.deployments[0].status, "PRIMARY");
        let tasks = db.tasks(Some("default")).await.unwrap();
        let started: Vec<_> = tasks
            .iter()
            .filter(|t| t.value.last_status == TaskStatus::Provisioning)
            .collect();
        assert_eq!(started.len(), 2);
        assert!(started
            .iter()
            .all(|t| t.value.task_definition_arn == arn::task_definition("web", 1)));
    }

    #[tokio::test]
    async fn without_rollback_a_failed_deployment_starts_nothing() {
        let (db, _) = setup(false).await;
        let r = ServiceReconciler::new(db.clone());
        r.reconcile().await.unwrap();
        r.reconcile().await.unwrap();
        let svc = service(&db).await;
        assert_eq!(svc.task_definition, arn::task_definition("web", 2));
        assert_eq!(svc.deployments[0].rollout_state, "FAILED");
        let tasks = db.tasks(Some("default")).await.unwrap();
        assert!(tasks
            .iter()
            .all(|t| t.value.last_status == TaskStatus::Stopped));
    }

    #[tokio::test]
    async fn a_daemon_service_runs_one_task_per_instance() {
        let (db, mut svc) = setup(false).await;
        let mut second: ContainerInstance = db
            .get(&db::instance_key("default", "i-1"))
            .await
            .unwrap()
            .unwrap()
            .value;
        second.container_instance_arn = arn::container_instance("default", "i-2");
        db.put(&db::instance_key("default", "i-2"), &second)
            .await
            .unwrap();
        svc.service_name = "agent".into();
        svc.desired_count = 0;
        svc.scheduling_strategy = SchedulingStrategy::Daemon;
        svc.deployments.clear();
        svc.deployment_configuration.deployment_circuit_breaker = None;
        svc.validate().unwrap();
        db.put(&db::service_key("default", "agent"), &svc)
            .await
            .unwrap();
        let r = ServiceReconciler::new(db.clone());
        r.reconcile().await.unwrap();
        r.reconcile().await.unwrap();
        let placed: Vec<String> = db
            .tasks(Some("default"))
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.value.group == "service:agent")
            .filter_map(|t| t.value.container_instance_arn)
            .collect();
        assert_eq!(placed.len(), 2, "{placed:?}");
        assert_ne!(placed[0], placed[1], "one task on each instance");
    }

    #[tokio::test]
    async fn a_rollout_waits_for_container_health_checks() {
        let (db, mut svc) = setup(false).await;
        // web:2 gets a container health check; the ten failed tasks are not wanted here.
        for i in 0..10 {
            db.store
                .delete(&db::task_key("default", &format!("failed{i}")))
                .await
                .unwrap();
        }
        let mut v2 = td("web", 2);
        v2.container_definitions[0].health_check = Some(berth_model::ecs::HealthCheck {
            command: vec!["CMD".into(), "true".into()],
            interval: 5,
            timeout: 2,
            retries: 3,
            start_period: 0,
        });
        db.put(&db::taskdef_key("web", 2), &v2).await.unwrap();
        svc.desired_count = 1;
        svc.deployment_configuration.deployment_circuit_breaker = None;
        db.put(&db::service_key("default", "web"), &svc)
            .await
            .unwrap();
        let task = |id: &str, rev: u32, health: HealthStatus| Task {
            task_arn: arn::task("default", id),
            cluster_arn: arn::cluster("default"),
            task_definition_arn: arn::task_definition("web", rev),
            container_instance_arn: Some(arn::container_instance("default", "i-1")),
            group: "service:web".into(),
            last_status: TaskStatus::Running,
            desired_status: TaskStatus::Running,
            health_status: health,
            ..Default::default()
        };
        db.put(
            &db::task_key("default", "old"),
            &task("old", 1, HealthStatus::Unknown),
        )
        .await
        .unwrap();
        db.put(
            &db::task_key("default", "new"),
            &task("new", 2, HealthStatus::Unknown),
        )
        .await
        .unwrap();
        let r = ServiceReconciler::new(db.clone());
        let old_desired = |db: Db| async move {
            db.get::<Task>(&db::task_key("default", "old"))
                .await
                .unwrap()
                .unwrap()
                .value
                .desired_status
        };
        r.reconcile().await.unwrap();
        assert_eq!(
            old_desired(db.clone()).await,
            TaskStatus::Running,
            "new task not healthy yet"
        );
        db.put(
            &db::task_key("default", "new"),
            &task("new", 2, HealthStatus::Healthy),
        )
        .await
        .unwrap();
        r.reconcile().await.unwrap();
        assert_eq!(old_desired(db.clone()).await, TaskStatus::Stopped);
    }

    #[tokio::test]
    async fn nine_failures_do_not_trip_it() {
        let (db, _) = setup(true).await;
        db.store
            .delete(&db::task_key("default", "failed0"))
            .await
            .unwrap();
        ServiceReconciler::new(db.clone())
            .reconcile()
            .await
            .unwrap();
        let svc = service(&db).await;
        assert_eq!(svc.task_definition, arn::task_definition("web", 2));
        assert_ne!(svc.deployments[0].rollout_state, "FAILED");
    }
}
