//! Placement: which container instance a new task goes to.
//!
//! As ECS does it: instances that are ACTIVE with a connected agent, then those with
//! enough CPU, memory and free fixed host ports, then the placement constraints (the
//! task definition's and the service's, all of them: [`constraints`]), then the
//! strategies chained in order ([`strategies`]; default: spread over instances by
//! fewest tasks of the same service).
//!
//! It does not start anything: the services planner turns the chosen instance into a
//! new task.

mod constraints;
mod strategies;

use berth_model::ecs::{
    parse_cpu_units, parse_memory_mib, ContainerInstance, NetworkMode, PlacementConstraint,
    PlacementStrategy, Task, TaskDefinition,
};

pub use constraints::member_of_holds;
use strategies::{Candidate, Cluster};

/// CPU units a task reserves: the task-level cpu, else the sum of its containers'.
pub fn task_cpu(td: &TaskDefinition) -> i64 {
    td.cpu
        .as_deref()
        .and_then(|c| parse_cpu_units("cpu", c).ok())
        .map(i64::from)
        .unwrap_or_else(|| {
            td.container_definitions
                .iter()
                .map(|c| i64::from(c.cpu))
                .sum()
        })
}

/// MiB a task reserves: the task-level memory, else per container memoryReservation or memory.
pub fn task_memory(td: &TaskDefinition) -> i64 {
    td.memory
        .as_deref()
        .and_then(|m| parse_memory_mib("memory", m).ok())
        .map(i64::from)
        .unwrap_or_else(|| {
            td.container_definitions
                .iter()
                .map(|c| i64::from(c.memory_reservation.or(c.memory).unwrap_or(0)))
                .sum()
        })
}

/// Fixed host ports a task claims on its instance.
pub fn task_fixed_ports(td: &TaskDefinition) -> Vec<u32> {
    let mut out = Vec::new();
    for c in &td.container_definitions {
        for p in &c.port_mappings {
            let hp = match td.network_mode {
                NetworkMode::Host => p.container_port,
                NetworkMode::Bridge => p.host_port.unwrap_or(0),
                NetworkMode::Awsvpc | NetworkMode::None => 0,
            };
            if hp != 0 {
                out.push(hp);
            }
        }
    }
    out
}

fn registered(inst: &ContainerInstance, name: &str) -> i64 {
    inst.registered_resources
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.integer_value)
        .unwrap_or(0)
}

/// A task already placed, with what it reserves.
#[derive(Clone)]
pub struct Placed<'a> {
    pub task: &'a Task,
    pub cpu: i64,
    pub memory: i64,
    pub ports: Vec<u32>,
}

/// Why no instance could take the task, in ECS's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementFailure(pub String);

/// Chooses an instance for a task of `td` belonging to `group` (e.g. `service:web`).
/// `constraints` are the service's; the task definition's `memberOf` constraints apply
/// too. `seed` drives the `random` strategy.
pub fn place(
    instances: &[ContainerInstance],
    placed: &[Placed<'_>],
    td: &TaskDefinition,
    group: &str,
    constraints: &[PlacementConstraint],
    strategies: &[PlacementStrategy],
    seed: u64,
) -> Result<String, PlacementFailure> {
    let cpu = task_cpu(td);
    let mem = task_memory(td);
    let ports = task_fixed_ports(td);
    let member_of = constraints::member_of(td, constraints)?;
    let distinct = constraints::distinct_instance(constraints);
    let mut closest: Option<String> = None;
    let mut fits = Vec::new();
    let active: Vec<&ContainerInstance> = instances
        .iter()
        .filter(|i| i.status == "ACTIVE" && i.agent_connected)
        .collect();
    if active.is_empty() {
        return Err(PlacementFailure(
            "no container instances were found in your cluster".into(),
        ));
    }
    for inst in active {
        let on_inst: Vec<&Placed> = placed
            .iter()
            .filter(|p| {
                p.task.container_instance_arn.as_deref() == Some(&inst.container_instance_arn)
            })
            .collect();
        let used_cpu: i64 = on_inst.iter().map(|p| p.cpu).sum();
        let used_mem: i64 = on_inst.iter().map(|p| p.memory).sum();
        let id = berth_model::arn::last_segment(&inst.container_instance_arn);
        if used_cpu + cpu > registered(inst, "CPU") {
            closest.get_or_insert(format!(
                "The closest matching container-instance {id} has insufficient CPU units available."
            ));
            continue;
        }
        if used_mem + mem > registered(inst, "MEMORY") {
            closest.get_or_insert(format!(
                "The closest matching container-instance {id} has insufficient memory available."
            ));
            continue;
        }
        if let Some(p) = ports
            .iter()
            .find(|p| on_inst.iter().any(|o| o.ports.contains(p)))
        {
            closest.get_or_insert(format!(
                "The closest matching container-instance {id} is already using a port required by your task (port {p})."
            ));
            continue;
        }
        if distinct && on_inst.iter().any(|p| p.task.group == group) {
            closest.get_or_insert(format!(
                "The closest matching container-instance {id} encountered error \"distinctInstance\"; it already runs a task of {group}."
            ));
            continue;
        }
        if !member_of.is_empty() {
            let tasks: Vec<&Task> = on_inst.iter().map(|p| p.task).collect();
            if !constraints::all_hold(&member_of, &constraints::view(inst, &tasks)) {
                closest.get_or_insert(format!(
                    "The closest matching container-instance {id} encountered error \"MemberOf constraint unsatisfied\"."
                ));
                continue;
            }
        }
        fits.push(Candidate {
            instance: inst,
            remaining_cpu: registered(inst, "CPU") - used_cpu - cpu,
            remaining_memory: registered(inst, "MEMORY") - used_mem - mem,
        });
    }
    if fits.is_empty() {
        return Err(PlacementFailure(closest.unwrap_or_else(|| {
            "no container instance met all of its requirements.".into()
        })));
    }
    let cluster = Cluster {
        instances,
        placed,
        group,
    };
    let chosen = strategies::choose(fits, &cluster, strategies, seed);
    Ok(chosen.container_instance_arn.clone())
}

#[cfg(test)]
mod tests;
