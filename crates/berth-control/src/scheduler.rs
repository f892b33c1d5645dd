//! Placement: which container instance a new task goes to.
//!
//! As ECS does it: instances that are ACTIVE with a connected agent, then those with
//! enough CPU, memory and free fixed host ports, then the placement constraints, then
//! the strategies (default: spread over instances by fewest tasks of the same service).

use berth_model::ecs::{
    parse_cpu_units, parse_memory_mib, ContainerInstance, NetworkMode, PlacementConstraint,
    PlacementStrategy, Task, TaskDefinition,
};

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
        let same_group = on_inst.iter().filter(|p| p.task.group == group).count();
        if constraints.iter().any(|c| c.kind == "distinctInstance") && same_group > 0 {
            closest.get_or_insert(format!(
                "The closest matching container-instance {id} encountered error \"distinctInstance\"; it already runs a task of {group}."
            ));
            continue;
        }
        let remaining_cpu = registered(inst, "CPU") - used_cpu - cpu;
        let remaining_mem = registered(inst, "MEMORY") - used_mem - mem;
        fits.push((inst, same_group, remaining_cpu, remaining_mem));
    }
    if fits.is_empty() {
        return Err(PlacementFailure(closest.unwrap_or_else(|| {
            "no container instance met all of its requirements.".into()
        })));
    }
    // Strategies in order; the default spreads by fewest tasks of the group.
    let strategy = strategies.first();
    match strategy.map(|s| (s.kind.as_str(), s.field.as_deref())) {
        Some(("binpack", Some("cpu"))) => fits.sort_by_key(|f| (f.2, f.3)),
        Some(("binpack", _)) => fits.sort_by_key(|f| (f.3, f.2)),
        Some(("random", _)) => {
            let i = (seed as usize) % fits.len();
            fits.swap(0, i);
        }
        _ => fits.sort_by_key(|f| (f.1, std::cmp::Reverse(f.3))),
    }
    Ok(fits[0].0.container_instance_arn.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::ecs::Resource;

    fn inst(id: &str, cpu: i64, mem: i64) -> ContainerInstance {
        ContainerInstance {
            container_instance_arn: id.into(),
            status: "ACTIVE".into(),
            agent_connected: true,
            registered_resources: vec![
                Resource {
                    name: "CPU".into(),
                    integer_value: cpu,
                    ..Default::default()
                },
                Resource {
                    name: "MEMORY".into(),
                    integer_value: mem,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn td(mem: u32, host_port: Option<u32>) -> TaskDefinition {
        serde_json::from_value(serde_json::json!({
            "family": "web",
            "containerDefinitions": [{"name": "a", "image": "x", "memory": mem,
                "portMappings": [{"containerPort": 80, "hostPort": host_port}]}]
        }))
        .unwrap()
    }

    #[test]
    fn spreads_and_checks_resources_and_ports() {
        let insts = vec![inst("i-1", 1024, 1000), inst("i-2", 1024, 1000)];
        let t = Task {
            container_instance_arn: Some("i-1".into()),
            group: "service:web".into(),
            ..Default::default()
        };
        let placed = vec![Placed {
            task: &t,
            cpu: 0,
            memory: 600,
            ports: vec![8080],
        }];
        // spread: i-2 has fewer tasks of the group
        assert_eq!(
            place(&insts, &placed, &td(100, None), "service:web", &[], &[], 0).unwrap(),
            "i-2"
        );
        // memory: 600 + 500 > 1000 on i-1
        let only1 = vec![inst("i-1", 1024, 1000)];
        let e = place(&only1, &placed, &td(500, None), "service:web", &[], &[], 0).unwrap_err();
        assert!(e.0.contains("insufficient memory"), "{e:?}");
        // port conflict
        let e = place(
            &only1,
            &placed,
            &td(10, Some(8080)),
            "service:web",
            &[],
            &[],
            0,
        )
        .unwrap_err();
        assert!(e.0.contains("already using a port"), "{e:?}");
        // binpack memory: pick the fuller instance
        let bp = [PlacementStrategy {
            kind: "binpack".into(),
            field: Some("memory".into()),
        }];
        assert_eq!(
            place(&insts, &placed, &td(100, None), "service:web", &[], &bp, 0).unwrap(),
            "i-1"
        );
    }
}
