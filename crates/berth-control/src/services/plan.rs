//! The service planner: from one service's desired and observed state, the plan of what
//! one reconciler pass changes. Pure: no store, no clock, no randomness of its own (the
//! time, the placement seed and new ids come in with the input), so every branch is
//! tested with plain values.
//!
//! In order, as the pass decides:
//! 1. tasks the load balancer (or their container health check) finds unhealthy past the
//!    grace period are replaced;
//! 2. a deployment that lost too many tasks trips the circuit breaker (and the pass ends);
//! 3. surplus tasks of the current deployment are stopped, the healthy and newest kept;
//! 4. tasks of the current deployment are started up to `desiredCount`, within
//!    `maximumPercent` (rounded down) of it counting every task not yet STOPPED, unless
//!    the deployment failed or recent tasks never started (throttle);
//! 5. tasks of older deployments, and tasks on DRAINING container instances (whose
//!    replacements step 4 starts elsewhere, see [`super::draining`]), are stopped while
//!    `minimumHealthyPercent` (rounded up) of `desiredCount` stays healthy; unhealthy
//!    ones (a PENDING one among them) go first and always;
//! 6. counts and deployments are recorded, with an event at steady state.
//!
//! A task belongs to the deployment its `startedBy` names when the service lists that
//! deployment; otherwise (a task started before deployments were told apart this way,
//! or by someone else) to the current deployment when it runs the current task
//! definition, and to an older one when not. So a forced deployment, a new PRIMARY
//! deployment of the same task definition, replaces every task like a new definition.

use std::collections::BTreeMap;

use berth_model::ecs::{
    ContainerInstance, Deployment, DeploymentStatus, HealthStatus, RolloutState,
    SchedulingStrategy, Service, StopCode, Task, TaskDefinition, TaskStatus,
};
use berth_model::elb::Target;
use berth_model::time::Timestamp;

use super::breaker;
use super::deployments::{self, OlderTasks, RolloutProgress};
use super::draining::{DrainingInstances, INSTANCE_DRAINING_REASON};
use super::health::{self, TaskHealth};
pub use super::plan_output::{PlannedEvent, ServicePlan, ServiceRecord, ServiceUpdate, TaskStop};
use super::starts::{self, StartRequest};

/// Everything the planner decides one service from.
pub struct PlanInput<'a> {
    pub service: &'a Service,
    /// What `service.task_definition` resolves to; None when it is not registered.
    pub task_definition: Option<&'a TaskDefinition>,
    /// Every task of the service's cluster (placement counts what all of them hold).
    pub cluster_tasks: &'a [&'a Task],
    /// The task definitions of those tasks (and the current one), by ARN.
    pub definitions: &'a BTreeMap<String, TaskDefinition>,
    /// Targets, with the task each belongs to.
    pub targets: &'a [Target],
    /// The container instances of the cluster.
    pub instances: &'a [ContainerInstance],
    pub now: Timestamp,
    /// Seeds the `random` placement strategy.
    pub placement_seed: u64,
}

impl ServicePlan {
    fn new() -> Self {
        Self {
            stops: Vec::new(),
            starts: Vec::new(),
            events: Vec::new(),
            record: ServiceRecord::Keep,
            start_throttled_for: None,
        }
    }

    fn stop(&mut self, t: &Task, code: StopCode, reason: String) {
        self.stops.push(TaskStop {
            task_arn: t.task_arn.clone(),
            code,
            reason,
        });
    }

    /// Stops `victims` for the scheduler with one event; returns how many.
    fn scale_in(&mut self, svc: &Service, victims: &[&Task]) -> usize {
        let reason = scale_reason(svc);
        self.stop_for_scheduler(svc, victims, |_| reason.clone())
    }

    /// Stops `victims` for the scheduler, each with `reason_of` it, with one event;
    /// returns how many.
    fn stop_for_scheduler(
        &mut self,
        svc: &Service,
        victims: &[&Task],
        reason_of: impl Fn(&Task) -> String,
    ) -> usize {
        if victims.is_empty() {
            return 0;
        }
        for t in victims {
            self.stop(t, StopCode::ServiceSchedulerInitiated, reason_of(t));
        }
        self.events.push(PlannedEvent::unless_repeated(format!(
            "(service {}) has stopped {} running tasks: {}.",
            svc.service_name,
            victims.len(),
            task_list(victims)
        )));
        victims.len()
    }
}

/// Whether the task is wanted RUNNING.
fn is_active(t: &Task) -> bool {
    t.desired_status == TaskStatus::Running
}

/// Whether the task has not reached STOPPED yet.
fn is_alive(t: &Task) -> bool {
    t.last_status != TaskStatus::Stopped
}

/// Plans one pass for `input.service`. `new_id` returns a fresh 32-hex-digit id for each
/// new task and deployment.
pub fn plan_service(input: &PlanInput<'_>, new_id: &mut dyn FnMut() -> String) -> ServicePlan {
    let mut plan = ServicePlan::new();
    let svc = input.service;
    let Some(td) = input.task_definition else {
        plan.events.push(PlannedEvent::unless_repeated(format!(
            "(service {}) cannot start tasks: task definition {} is not registered.",
            svc.service_name, svc.task_definition
        )));
        return plan;
    };
    let pass = Pass::new(input, td);

    // 1. Replace tasks the load balancer finds unhealthy.
    pass.replace_unhealthy(&mut plan);

    // 2. The current deployment (its id marks the tasks it starts) and the circuit
    // breaker.
    let current = deployments::current(&svc.deployments, &td.task_definition_arn);
    if let Some((update, events)) = current.and_then(|d| pass.breaker_trip(d)) {
        plan.events.extend(events);
        plan.record = ServiceRecord::Update(update);
        return plan;
    }
    let deployment_id = current
        .map(|d| d.id.clone())
        .unwrap_or_else(|| format!("ecs-svc/{}", short(new_id())));
    let rollout_failed = current.is_some_and(|d| d.rollout_state == RolloutState::Failed);

    let wanted = pass.wanted(&deployment_id);

    // 3. Scale in surplus tasks of the current deployment.
    let mut stopped_now = pass.scale_in_surplus(&wanted.current, &mut plan);

    // 4. Start tasks of the current deployment. A deployment the circuit breaker
    // failed (without rollback) starts nothing more.
    if !pass.deleting && !rollout_failed {
        pass.start_missing(wanted.current.len(), &deployment_id, &mut plan, new_id);
    }

    // 5. Stop older deployments' tasks and tasks on draining instances while enough
    // healthy ones remain.
    stopped_now += pass.stop_replaced(&wanted, &mut plan);

    // 6. Counts, deployments and steady state.
    if pass.deleting && pass.tasks.iter().all(|t| !is_alive(t)) {
        plan.record = ServiceRecord::Delete;
        return plan;
    }
    let steady = stopped_now == 0
        && wanted.older.is_empty()
        && wanted.displaced.is_empty()
        && wanted.current.len() == pass.desired
        && wanted.current.iter().all(|t| pass.health.is_healthy(t))
        && pass
            .tasks
            .iter()
            .filter(|t| is_alive(t))
            .all(|t| is_active(t));
    pass.record_progress(&wanted, &deployment_id, steady, &mut plan, new_id);
    plan
}

/// The service's tasks wanted RUNNING, as they stood when the pass began.
struct WantedTasks<'a> {
    all: Vec<&'a Task>,
    /// Those of the current deployment that stay: not on a DRAINING instance.
    current: Vec<&'a Task>,
    /// Those of older deployments.
    older: Vec<&'a Task>,
    /// Those of the current deployment on a DRAINING instance: to be replaced.
    displaced: Vec<&'a Task>,
}

impl<'a> WantedTasks<'a> {
    /// The tasks to replace: of older deployments, then on draining instances.
    fn replaced(&self) -> Vec<&'a Task> {
        self.older
            .iter()
            .chain(self.displaced.iter())
            .copied()
            .collect()
    }

    /// The tasks of the current deployment, wherever they stand.
    fn of_current_deployment(&self) -> Vec<&'a Task> {
        self.current
            .iter()
            .chain(self.displaced.iter())
            .copied()
            .collect()
    }
}

/// One pass's view of the service, shared by the planner's steps.
struct Pass<'a> {
    input: &'a PlanInput<'a>,
    svc: &'a Service,
    /// The current task definition.
    td: &'a TaskDefinition,
    /// `service:<name>`, the group of the service's tasks.
    group: String,
    /// The service's tasks, in every state.
    tasks: Vec<&'a Task>,
    health: TaskHealth<'a>,
    /// The cluster's DRAINING instances.
    draining: DrainingInstances<'a>,
    desired: usize,
    /// The service is being deleted: it wants no task.
    deleting: bool,
    /// The most tasks that may exist at once (maximumPercent, rounded down).
    max_total: usize,
    /// The fewest healthy tasks to keep (minimumHealthyPercent, rounded up).
    min_healthy: usize,
}

impl<'a> Pass<'a> {
    fn new(input: &'a PlanInput<'a>, td: &'a TaskDefinition) -> Self {
        let svc = input.service;
        let group = format!("service:{}", svc.service_name);
        let cluster_arn = berth_model::arn::cluster(svc.cluster_name());
        let tasks: Vec<&Task> = input
            .cluster_tasks
            .iter()
            .copied()
            .filter(|t| t.group == group && t.cluster_arn == cluster_arn)
            .collect();
        let deleting = svc.status != "ACTIVE";
        let daemon = svc.scheduling_strategy == SchedulingStrategy::Daemon;
        let desired = if deleting {
            0
        } else if daemon {
            // One task on each ACTIVE instance with a connected agent where the memberOf
            // constraints hold.
            input
                .instances
                .iter()
                .filter(|i| i.status == "ACTIVE" && i.agent_connected)
                .filter(|i| crate::capacity::pool_of(svc).admits(i))
                .filter(|i| {
                    crate::scheduler::member_of_holds(
                        i,
                        input.cluster_tasks,
                        td,
                        &svc.placement_constraints,
                    )
                })
                .count()
        } else {
            svc.desired_count.max(0) as usize
        };
        // DAEMON services replace in place: at most one task per instance, none kept.
        let dc = &svc.deployment_configuration;
        let (max_pct, min_pct) = if daemon {
            (100, 0)
        } else {
            (
                dc.maximum_percent as usize,
                dc.minimum_healthy_percent as usize,
            )
        };
        let health = TaskHealth::new(svc, &tasks, input.definitions, input.targets);
        Self {
            input,
            svc,
            td,
            group,
            tasks,
            health,
            draining: DrainingInstances::new(input.instances),
            desired,
            deleting,
            // ECS rounds maximumPercent down and minimumHealthyPercent up.
            max_total: desired * max_pct / 100,
            min_healthy: (desired * min_pct).div_ceil(100),
        }
    }

    /// The deployment `t` belongs to: the listed deployment its `startedBy` names, if
    /// any.
    fn listed_deployment_of(&self, t: &Task) -> Option<&'a str> {
        let id = t.started_by.as_deref()?;
        self.svc
            .deployments
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.id.as_str())
    }

    /// Whether `t` is a task of the current deployment `deployment_id`: the one its
    /// `startedBy` names, or, when that names no listed deployment, the current task
    /// definition.
    fn is_of_deployment(&self, t: &Task, deployment_id: &str) -> bool {
        match self.listed_deployment_of(t) {
            Some(id) => id == deployment_id,
            None => t.task_definition_arn == self.td.task_definition_arn,
        }
    }

    fn wanted(&self, deployment_id: &str) -> WantedTasks<'a> {
        let all: Vec<&Task> = self
            .tasks
            .iter()
            .copied()
            .filter(|t| is_active(t))
            .collect();
        let (of_current, older): (Vec<&Task>, Vec<&Task>) = all
            .iter()
            .partition(|t| self.is_of_deployment(t, deployment_id));
        let (displaced, current) = of_current.into_iter().partition(|t| self.draining.holds(t));
        WantedTasks {
            all,
            current,
            older,
            displaced,
        }
    }

    /// Stops RUNNING tasks that fail a target group's health checks (with an event) or
    /// their container health check, once past the grace period.
    fn replace_unhealthy(&self, plan: &mut ServicePlan) {
        let svc = self.svc;
        let grace = f64::from(svc.health_check_grace_period_seconds.unwrap_or(0));
        for t in self
            .tasks
            .iter()
            .filter(|t| is_active(t) && t.last_status == TaskStatus::Running)
        {
            let started = t.started_at.unwrap_or(t.created_at);
            if self.input.now - started < grace {
                continue;
            }
            if let Some(bad) = self.health.unhealthy_target(t) {
                plan.stop(
                    t,
                    StopCode::ServiceSchedulerInitiated,
                    health::target_health_check_failure(&bad.target_group_arn),
                );
                plan.events.push(PlannedEvent::unless_repeated(format!(
                    "(service {}) (port {}) is unhealthy in (target-group {}) due to (reason {}).",
                    svc.service_name,
                    bad.port,
                    bad.target_group_arn,
                    bad.target_health
                        .reason
                        .as_deref()
                        .unwrap_or("Health checks failed")
                )));
            } else if t.health_status == HealthStatus::Unhealthy {
                plan.stop(
                    t,
                    StopCode::ServiceSchedulerInitiated,
                    health::CONTAINER_HEALTH_CHECK_FAILURE.into(),
                );
            }
        }
    }

    /// The service record and events when the circuit breaker trips for `current`.
    fn breaker_trip(&self, current: &Deployment) -> Option<(ServiceUpdate, Vec<PlannedEvent>)> {
        let failures = breaker::failure_count(&self.tasks, &current.id);
        if !breaker::trips(self.svc, current, failures, self.desired) {
            return None;
        }
        let rollback = self
            .svc
            .deployment_configuration
            .deployment_circuit_breaker
            .as_ref()
            .is_some_and(|cb| cb.rollback);
        Some(breaker::trip(
            self.svc,
            &current.id,
            failures,
            rollback,
            self.input.now,
        ))
    }

    /// Stops tasks of the current deployment beyond `desired`, keeping the healthy
    /// ones, newest first. Returns how many.
    fn scale_in_surplus(&self, new: &[&Task], plan: &mut ServicePlan) -> usize {
        if new.len() <= self.desired {
            return 0;
        }
        let mut surplus: Vec<&Task> = new.to_vec();
        surplus.sort_by(|a, b| {
            (self.health.is_healthy(a), a.created_at)
                .partial_cmp(&(self.health.is_healthy(b), b.created_at))
                .unwrap_or(std::cmp::Ordering::Equal)
                .reverse()
        });
        let victims: Vec<&Task> = surplus.split_off(self.desired);
        plan.scale_in(self.svc, &victims)
    }

    /// Starts tasks of the current deployment up to `desired`, within maximumPercent
    /// (counting every task not yet STOPPED), unless recent starts failed.
    fn start_missing(
        &self,
        current_count: usize,
        deployment_id: &str,
        plan: &mut ServicePlan,
        new_id: &mut dyn FnMut() -> String,
    ) {
        let alive = self.tasks.iter().filter(|t| is_alive(t)).count();
        let room = self.max_total.saturating_sub(alive);
        let want = self.desired.saturating_sub(current_count);
        let count = want.min(room);
        if count == 0 {
            return;
        }
        if let Some(wait) = starts::throttle(&self.tasks, self.td, self.input.now) {
            plan.start_throttled_for = Some(wait);
            return;
        }
        let req = StartRequest {
            service: self.svc,
            task_definition: self.td,
            cluster: self.svc.cluster_name(),
            group: &self.group,
            deployment_id,
            count,
            now: self.input.now,
            placement_seed: self.input.placement_seed,
        };
        let (placed, failure) = starts::place_new_tasks(
            &req,
            self.input.instances,
            self.input.cluster_tasks,
            self.input.definitions,
            new_id,
        );
        let name = &self.svc.service_name;
        if let Some(f) = failure {
            plan.events.push(PlannedEvent::unless_repeated(format!(
                "(service {name}) was unable to place a task because no container instance met all of its requirements. {}",
                f.0
            )));
        }
        if !placed.is_empty() {
            let refs: Vec<&Task> = placed.iter().collect();
            plan.events.push(PlannedEvent::unless_repeated(format!(
                "(service {name}) has started {} tasks: {}.",
                placed.len(),
                task_list(&refs)
            )));
        }
        plan.starts = placed;
    }

    /// Stops tasks of older deployments and tasks on draining instances: the unhealthy
    /// ones always, healthy ones while more than minimumHealthyPercent of the wanted
    /// tasks stay healthy (not counting those this pass already stops). Returns how many.
    fn stop_replaced(&self, wanted: &WantedTasks<'_>, plan: &mut ServicePlan) -> usize {
        let mut replaced = wanted.replaced();
        if replaced.is_empty() {
            return 0;
        }
        let stopping = |t: &Task| plan.stops.iter().any(|s| s.task_arn == t.task_arn);
        let healthy_count = wanted
            .all
            .iter()
            .filter(|t| self.health.is_healthy(t) && !stopping(t))
            .count();
        let mut can_stop = healthy_count.saturating_sub(self.min_healthy);
        let mut victims = Vec::new();
        replaced.sort_by_key(|t| self.health.is_healthy(t));
        for t in replaced {
            if stopping(t) {
                continue;
            }
            if !self.health.is_healthy(t) {
                victims.push(t);
            } else if can_stop > 0 {
                can_stop -= 1;
                victims.push(t);
            }
        }
        let deployment_reason = scale_reason(self.svc);
        plan.stop_for_scheduler(self.svc, &victims, |t| {
            if self.draining.holds(t) {
                INSTANCE_DRAINING_REASON.to_string()
            } else {
                deployment_reason.clone()
            }
        })
    }

    /// Records the counts and deployments, and an event when the service reaches its
    /// steady state.
    fn record_progress(
        &self,
        wanted: &WantedTasks<'_>,
        deployment_id: &str,
        steady: bool,
        plan: &mut ServicePlan,
        new_id: &mut dyn FnMut() -> String,
    ) {
        let running = |ts: &[&Task]| {
            ts.iter()
                .filter(|t| t.last_status == TaskStatus::Running)
                .count() as u32
        };
        let pending = |ts: &[&Task]| {
            ts.iter()
                .filter(|t| t.last_status < TaskStatus::Running)
                .count() as u32
        };
        let mut older: BTreeMap<(Option<&str>, &str), (u32, u32)> = BTreeMap::new();
        for t in &wanted.older {
            let key = (self.listed_deployment_of(t), t.task_definition_arn.as_str());
            let e = older.entry(key).or_default();
            if t.last_status == TaskStatus::Running {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        let older = older
            .into_iter()
            .map(|((id, def), (running, pending))| OlderTasks {
                deployment_id: id.map(str::to_string),
                task_definition: def.to_string(),
                running,
                pending,
            })
            .collect();
        let of_current = wanted.of_current_deployment();
        let progress = RolloutProgress {
            task_definition: &self.td.task_definition_arn,
            deployment_id,
            desired: self.desired as u32,
            running: running(&of_current),
            pending: pending(&of_current),
            steady,
            older,
            now: self.input.now,
        };
        let svc = self.svc;
        let was_steady = deployments::was_steady(&svc.deployments);
        let deployments =
            deployments::next_deployments(&svc.deployments, &progress, &mut || short(new_id()));
        if steady && !was_steady && !self.deleting {
            plan.events.push(PlannedEvent::always(format!(
                "(service {}) has reached a steady state.",
                svc.service_name
            )));
        }
        plan.record = ServiceRecord::Update(ServiceUpdate {
            task_definition: svc.task_definition.clone(),
            running_count: running(&wanted.all),
            pending_count: pending(&wanted.all),
            deployments,
        });
    }
}

/// The first 12 characters of an id, as deployment and event ids use.
pub fn short(id: String) -> String {
    id.chars().take(12).collect()
}

fn scale_reason(svc: &Service) -> String {
    let dep = svc
        .deployments
        .iter()
        .find(|d| d.status == DeploymentStatus::Primary)
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

#[cfg(test)]
mod tests;
