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
mod round;
mod strategies;

use berth_model::ecs::{
    parse_cpu_units, parse_memory_mib, ContainerInstance, NetworkMode, PlacementConstraint,
    PlacementStrategy, Task, TaskDefinition,
};

pub use constraints::member_of_holds;
pub use round::PlacementRound;

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

/// Which container instances a task may use: the cluster's own instances (the EC2
/// launch type and the cluster's EC2 capacity provider) or the managed capacity
/// (FARGATE), told apart by the [`MANAGED_CAPACITY_ATTRIBUTE`] of their agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CapacityPool {
    /// Instances not marked as managed capacity.
    #[default]
    Instances,
    /// Instances whose agent runs with `--managed-capacity`.
    Managed,
}

/// The container instance attribute that marks an agent as managed capacity, and its
/// value (`berth agent --managed-capacity`).
pub const MANAGED_CAPACITY_ATTRIBUTE: &str = "berth.capacity";
pub const MANAGED_CAPACITY_VALUE: &str = "managed";

impl CapacityPool {
    /// Whether `inst` belongs to the pool.
    pub fn admits(self, inst: &ContainerInstance) -> bool {
        let managed = inst
            .attributes
            .get(MANAGED_CAPACITY_ATTRIBUTE)
            .is_some_and(|v| v == MANAGED_CAPACITY_VALUE);
        managed == (self == CapacityPool::Managed)
    }

    /// Why nothing could be placed when the pool has no usable instance.
    fn none_found(self) -> &'static str {
        match self {
            CapacityPool::Instances => "no container instances were found in your cluster",
            CapacityPool::Managed => {
                "no managed capacity was found in your cluster (an agent started with --managed-capacity)"
            }
        }
    }
}

/// Chooses an instance for a task of `td` belonging to `group` (e.g. `service:web`).
/// `constraints` are the service's; the task definition's `memberOf` constraints apply
/// too. `seed` drives the `random` strategy. Several tasks in a row: [`PlacementRound`].
pub fn place(
    instances: &[ContainerInstance],
    placed: &[Placed<'_>],
    td: &TaskDefinition,
    group: &str,
    constraints: &[PlacementConstraint],
    strategies: &[PlacementStrategy],
    seed: u64,
) -> Result<String, PlacementFailure> {
    PlacementRound::new(
        instances,
        placed,
        td,
        group,
        constraints,
        strategies,
        CapacityPool::Instances,
    )
    .place(seed)
    .map(|inst| inst.container_instance_arn.clone())
}

#[cfg(test)]
mod tests;
