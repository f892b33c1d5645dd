//! A placement round: several tasks of one task definition and one group placed one
//! after the other, each seeing the ones placed before it.
//!
//! What every placement needs is gathered once when the round starts: each instance's
//! reserved CPU, memory and fixed ports, its RUNNING count and task groups, the tasks
//! of the group per instance and per attribute value the strategies spread over, and
//! the result of the `memberOf` expressions that look at the instance only (attributes,
//! ids, registration time). A placed task is then added to those counts
//! ([`PlacementRound::record`]) instead of every placement walking every task again,
//! so a round of `t` tasks over `n` instances costs about `t × n`, not `t × n × tasks`.
//!
//! It does not decide which pool of capacity a task may use (the caller gives the
//! [`CapacityPool`]) nor build the task.

use std::collections::HashMap;

use berth_model::ecs::cluster_query::{Expression, Subject};
use berth_model::ecs::{
    ContainerInstance, PlacementConstraint, PlacementStrategy, TaskDefinition, TaskStatus,
};

use super::constraints;
use super::strategies::{self, Candidate, SpreadCounts};
use super::{registered, task_cpu, task_fixed_ports, task_memory, CapacityPool};
use super::{Placed, PlacementFailure};

/// What one instance holds, as the round counts it.
#[derive(Default)]
struct Usage<'a> {
    /// Registered CPU units and MiB.
    capacity: (i64, i64),
    /// ACTIVE, agent connected and in the round's pool.
    usable: bool,
    cpu: i64,
    memory: i64,
    ports: Vec<u32>,
    running: u32,
    /// The group of each task on it (repeats allowed, empty groups left out).
    groups: Vec<&'a str>,
    /// Tasks of the round's group on it.
    group_tasks: usize,
}

/// The state of one placement round; see the module docs.
pub struct PlacementRound<'a> {
    instances: &'a [ContainerInstance],
    usage: Vec<Usage<'a>>,
    by_arn: HashMap<&'a str, usize>,
    group: &'a str,
    cpu: i64,
    memory: i64,
    ports: Vec<u32>,
    distinct: bool,
    /// Per instance: whether the expressions that look at the instance alone hold.
    static_member_of: Vec<bool>,
    /// Expressions that look at the instance's tasks (`runningTasksCount`, `task:group`).
    dynamic_member_of: Vec<Expression>,
    /// Set when an expression does not parse: every placement fails with it.
    unparsable: Option<PlacementFailure>,
    strategies: &'a [PlacementStrategy],
    spread: SpreadCounts<'a>,
    pool: CapacityPool,
}

impl<'a> PlacementRound<'a> {
    /// A round placing tasks of `td` in `group` among `instances`, `placed` being what
    /// the cluster's tasks not STOPPED already hold. `constraints` are the service's;
    /// the task definition's `memberOf` constraints apply too.
    pub fn new(
        instances: &'a [ContainerInstance],
        placed: &[Placed<'a>],
        td: &TaskDefinition,
        group: &'a str,
        constraints: &[PlacementConstraint],
        strategies: &'a [PlacementStrategy],
        pool: CapacityPool,
    ) -> Self {
        let by_arn: HashMap<&str, usize> = instances
            .iter()
            .enumerate()
            .map(|(i, inst)| (inst.container_instance_arn.as_str(), i))
            .collect();
        let mut usage: Vec<Usage> = instances
            .iter()
            .map(|inst| Usage {
                capacity: (registered(inst, "CPU"), registered(inst, "MEMORY")),
                usable: inst.status == "ACTIVE" && inst.agent_connected && pool.admits(inst),
                ..Usage::default()
            })
            .collect();
        for p in placed {
            let Some(&i) = p
                .task
                .container_instance_arn
                .as_deref()
                .and_then(|arn| by_arn.get(arn))
            else {
                continue;
            };
            let u = &mut usage[i];
            u.cpu += p.cpu;
            u.memory += p.memory;
            u.ports.extend_from_slice(&p.ports);
            if p.task.last_status == TaskStatus::Running {
                u.running += 1;
            }
            if !p.task.group.is_empty() {
                u.groups.push(p.task.group.as_str());
            }
            if p.task.group == group {
                u.group_tasks += 1;
            }
        }
        let (static_exprs, dynamic_member_of, unparsable) =
            match constraints::member_of(td, constraints) {
                Ok(all) => {
                    let (dynamic, fixed): (Vec<_>, Vec<_>) =
                        all.into_iter().partition(looks_at_tasks);
                    (fixed, dynamic, None)
                }
                Err(e) => (Vec::new(), Vec::new(), Some(e)),
            };
        let static_member_of = instances
            .iter()
            .map(|inst| {
                static_exprs.is_empty()
                    || constraints::all_hold(&static_exprs, &constraints::view(inst, &[]))
            })
            .collect();
        let spread = SpreadCounts::new(strategies, instances, |i| usage[i].group_tasks);
        Self {
            instances,
            usage,
            by_arn,
            group,
            cpu: task_cpu(td),
            memory: task_memory(td),
            ports: task_fixed_ports(td),
            distinct: constraints::distinct_instance(constraints),
            static_member_of,
            dynamic_member_of,
            unparsable,
            strategies,
            spread,
            pool,
        }
    }

    /// Chooses an instance for the next task; `seed` drives the `random` strategy. The
    /// choice is not counted until [`Self::record`].
    pub fn place(&self, seed: u64) -> Result<&'a ContainerInstance, PlacementFailure> {
        if let Some(e) = &self.unparsable {
            return Err(e.clone());
        }
        let mut closest: Option<String> = None;
        let mut fits = Vec::new();
        let mut any_active = false;
        for (index, inst) in self.instances.iter().enumerate() {
            let u = &self.usage[index];
            if !u.usable {
                continue;
            }
            any_active = true;
            let id = || berth_model::arn::last_segment(&inst.container_instance_arn);
            let (cpu, memory) = u.capacity;
            if u.cpu + self.cpu > cpu {
                closest.get_or_insert_with(|| format!(
                    "The closest matching container-instance {} has insufficient CPU units available.", id()
                ));
                continue;
            }
            if u.memory + self.memory > memory {
                closest.get_or_insert_with(|| format!(
                    "The closest matching container-instance {} has insufficient memory available.", id()
                ));
                continue;
            }
            if let Some(p) = self.ports.iter().find(|p| u.ports.contains(p)) {
                closest.get_or_insert_with(|| format!(
                    "The closest matching container-instance {} is already using a port required by your task (port {p}).", id()
                ));
                continue;
            }
            if self.distinct && u.group_tasks > 0 {
                let group = self.group;
                closest.get_or_insert_with(|| format!(
                    "The closest matching container-instance {} encountered error \"distinctInstance\"; it already runs a task of {group}.", id()
                ));
                continue;
            }
            if !self.static_member_of[index] || !self.dynamic_hold(inst, u) {
                closest.get_or_insert_with(|| format!(
                    "The closest matching container-instance {} encountered error \"MemberOf constraint unsatisfied\".", id()
                ));
                continue;
            }
            fits.push(Candidate {
                index,
                instance: inst,
                remaining_cpu: cpu - u.cpu - self.cpu,
                remaining_memory: memory - u.memory - self.memory,
                group_tasks: u.group_tasks,
            });
        }
        if !any_active {
            return Err(PlacementFailure(self.pool.none_found().into()));
        }
        if fits.is_empty() {
            return Err(PlacementFailure(closest.unwrap_or_else(|| {
                "no container instance met all of its requirements.".into()
            })));
        }
        Ok(strategies::choose(
            fits,
            &self.spread,
            self.strategies,
            seed,
        ))
    }

    /// Counts a new task of the round's definition and group on `instance_arn` (a task
    /// the caller made from [`Self::place`]'s choice; it is not RUNNING yet).
    pub fn record(&mut self, instance_arn: &str) {
        let Some(&i) = self.by_arn.get(instance_arn) else {
            return;
        };
        let u = &mut self.usage[i];
        u.cpu += self.cpu;
        u.memory += self.memory;
        u.ports.extend_from_slice(&self.ports);
        u.groups.push(self.group);
        u.group_tasks += 1;
        self.spread.add(i);
    }

    fn dynamic_hold(&self, inst: &ContainerInstance, u: &Usage<'_>) -> bool {
        if self.dynamic_member_of.is_empty() {
            return true;
        }
        let mut view = constraints::view(inst, &[]);
        view.running_tasks_count = u.running;
        view.task_groups = u.groups.clone();
        constraints::all_hold(&self.dynamic_member_of, &view)
    }
}

/// Whether `e` reads the instance's tasks, so its result changes as tasks are placed.
fn looks_at_tasks(e: &Expression) -> bool {
    match e {
        Expression::And(a, b) | Expression::Or(a, b) => looks_at_tasks(a) || looks_at_tasks(b),
        Expression::Not(a) => looks_at_tasks(a),
        Expression::Compare(c) => {
            matches!(c.subject, Subject::RunningTasksCount | Subject::TaskGroup)
        }
    }
}
