//! What ECS refuses at RegisterTaskDefinition when `requiresCompatibilities` includes
//! FARGATE, as the developer guide lists it ("Amazon ECS task definition differences
//! for Fargate", "Task CPU and memory"): a network mode other than awsvpc, a task size
//! that is missing or not one of Fargate's CPU and memory combinations, the members
//! Fargate does not take (`ipcMode`, `pidMode` host, `placementConstraints`, host paths
//! and Docker volumes; per container `links`, `privileged`, `disableNetworking`,
//! `dnsServers`, `dnsSearchDomains`, `extraHosts`, `dockerSecurityOptions`, and in
//! `linuxParameters` `devices`, `sharedMemorySize`, `tmpfs`, `maxSwap`, `swappiness`
//! and any added capability but SYS_PTRACE).
//!
//! Each refusal names the member's path once and says why. It checks only what Fargate
//! adds to the rules every task definition follows; those are the parent module's and
//! [`crate::ecs::container`]'s, and they run after it, so a Fargate definition hears
//! about Fargate first.

use crate::ecs::container::ContainerDefinition;
use crate::ecs::network_mode::NetworkMode;
use crate::error::{Result, ValidationError};

use super::{parse_cpu_units, parse_memory_mib, IpcMode, PidMode, TaskDefinition};

/// The task CPU values Fargate offers, in CPU units.
pub const FARGATE_CPU_UNITS: &[u32] = &[256, 512, 1024, 2048, 4096, 8192, 16384];

/// The task memory values (MiB) Fargate offers with `cpu` units, as
/// `(smallest, largest, step)`; `None` for a CPU value Fargate does not offer.
pub fn fargate_memory_range(cpu: u32) -> Option<(u32, u32, u32)> {
    const GIB: u32 = 1024;
    Some(match cpu {
        256 => (GIB / 2, 2 * GIB, 0),
        512 => (GIB, 4 * GIB, GIB),
        1024 => (2 * GIB, 8 * GIB, GIB),
        2048 => (4 * GIB, 16 * GIB, GIB),
        4096 => (8 * GIB, 30 * GIB, GIB),
        8192 => (16 * GIB, 60 * GIB, 4 * GIB),
        16384 => (32 * GIB, 120 * GIB, 8 * GIB),
        _ => return None,
    })
}

/// Whether Fargate offers `memory` MiB with `cpu` units.
pub fn fargate_size_allowed(cpu: u32, memory: u32) -> bool {
    match fargate_memory_range(cpu) {
        // 256 units: 512 MiB, 1 GiB or 2 GiB.
        Some((_, _, 0)) => matches!(memory, 512 | 1024 | 2048),
        Some((low, high, step)) => (low..=high).contains(&memory) && (memory - low) % step == 0,
        None => false,
    }
}

fn memory_choices(cpu: u32) -> String {
    match fargate_memory_range(cpu) {
        Some((_, _, 0)) => "512, 1024 or 2048".into(),
        Some((low, high, step)) => format!("{low} to {high} in steps of {step}"),
        None => String::new(),
    }
}

/// `field` "is not allowed when requiresCompatibilities includes FARGATE (`why`)".
fn not_on_fargate(field: impl Into<String>, why: &str) -> ValidationError {
    ValidationError::new(
        field,
        format!("is not allowed when requiresCompatibilities includes FARGATE ({why})"),
    )
}

/// The refusals of a definition that requires FARGATE. Call it only for one that does.
pub(super) fn validate_fargate(td: &TaskDefinition) -> Result<()> {
    if td.network_mode != NetworkMode::Awsvpc {
        return Err(ValidationError::new(
            "networkMode",
            format!(
                "must be awsvpc when requiresCompatibilities includes FARGATE (Fargate \
                 gives every task its own network interface), got {}",
                td.network_mode.as_str()
            ),
        ));
    }
    validate_task_size(td)?;
    if td.pid_mode == Some(PidMode::Host) {
        return Err(not_on_fargate(
            "pidMode",
            "Fargate allows only task, which shares one process namespace among the task's containers",
        ));
    }
    if let Some(mode) = td.ipc_mode {
        let mode = match mode {
            IpcMode::Host => "host",
            IpcMode::Task => "task",
            IpcMode::None => "none",
        };
        return Err(not_on_fargate(
            "ipcMode",
            &format!("Fargate takes no IPC mode, got {mode}"),
        ));
    }
    if !td.placement_constraints.is_empty() {
        return Err(not_on_fargate(
            "placementConstraints",
            "Fargate chooses where a task runs; there are no container instances to constrain",
        ));
    }
    validate_volumes(td)?;
    for (i, c) in td.container_definitions.iter().enumerate() {
        validate_container(c).map_err(|e| e.within(&format!("containerDefinitions[{i}]")))?;
    }
    Ok(())
}

/// Task-level `cpu` and `memory` are required and must be one of Fargate's
/// combinations (the guide's "Task CPU and memory" table).
fn validate_task_size(td: &TaskDefinition) -> Result<()> {
    let cpus = FARGATE_CPU_UNITS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let Some(cpu) = td.cpu.as_deref() else {
        return Err(ValidationError::new(
            "cpu",
            format!(
                "is required when requiresCompatibilities includes FARGATE (the task's \
                 CPU units: one of {cpus})"
            ),
        ));
    };
    let cpu = parse_cpu_units("cpu", cpu)?;
    if fargate_memory_range(cpu).is_none() {
        return Err(ValidationError::new(
            "cpu",
            format!(
                "must be one of {cpus} CPU units when requiresCompatibilities includes \
                 FARGATE, got {cpu}"
            ),
        ));
    }
    let Some(memory) = td.memory.as_deref() else {
        return Err(ValidationError::new(
            "memory",
            format!(
                "is required when requiresCompatibilities includes FARGATE (with cpu \
                 {cpu}: {} MiB)",
                memory_choices(cpu)
            ),
        ));
    };
    let memory = parse_memory_mib("memory", memory)?;
    if !fargate_size_allowed(cpu, memory) {
        return Err(ValidationError::new(
            "memory",
            format!(
                "must be {} MiB with cpu {cpu} when requiresCompatibilities includes \
                 FARGATE, got {memory}",
                memory_choices(cpu)
            ),
        ));
    }
    Ok(())
}

/// Fargate tasks may use bind mounts with no host path (task storage) but no host
/// `sourcePath` and no Docker volumes.
fn validate_volumes(td: &TaskDefinition) -> Result<()> {
    for (i, v) in td.volumes.iter().enumerate() {
        if v.host.as_ref().is_some_and(|h| h.source_path.is_some()) {
            return Err(not_on_fargate(
                format!("volumes[{i}].host.sourcePath"),
                "Fargate allows only bind mounts without a host path there",
            ));
        }
        if v.docker_volume_configuration.is_some() {
            return Err(not_on_fargate(
                format!("volumes[{i}].dockerVolumeConfiguration"),
                "ECS supports Docker volumes with the EC2 launch type only",
            ));
        }
    }
    Ok(())
}

/// The container members Fargate does not take, with paths relative to the container.
fn validate_container(c: &ContainerDefinition) -> Result<()> {
    const NETWORK: &str = "a Fargate task's network interface is configured by Fargate";
    let refused: [(bool, &str, &str); 7] = [
        (
            !c.links.is_empty(),
            "links",
            "containers of a Fargate task reach each other on localhost",
        ),
        (
            c.privileged == Some(true),
            "privileged",
            "ECS refuses privileged containers there",
        ),
        (
            c.disable_networking == Some(true),
            "disableNetworking",
            NETWORK,
        ),
        (!c.dns_servers.is_empty(), "dnsServers", NETWORK),
        (
            !c.dns_search_domains.is_empty(),
            "dnsSearchDomains",
            NETWORK,
        ),
        (!c.extra_hosts.is_empty(), "extraHosts", NETWORK),
        (
            !c.docker_security_options.is_empty(),
            "dockerSecurityOptions",
            "Fargate applies its own security options",
        ),
    ];
    if let Some((_, field, why)) = refused.iter().find(|(set, _, _)| *set) {
        return Err(not_on_fargate(*field, why));
    }
    let Some(lp) = &c.linux_parameters else {
        return Ok(());
    };
    const HOST: &str = "Fargate does not expose the host's devices, shared memory or swap";
    let refused: [(bool, &str); 5] = [
        (!lp.devices.is_empty(), "linuxParameters.devices"),
        (
            lp.shared_memory_size.is_some(),
            "linuxParameters.sharedMemorySize",
        ),
        (!lp.tmpfs.is_empty(), "linuxParameters.tmpfs"),
        (lp.max_swap.is_some(), "linuxParameters.maxSwap"),
        (lp.swappiness.is_some(), "linuxParameters.swappiness"),
    ];
    if let Some((_, field)) = refused.iter().find(|(set, _)| *set) {
        return Err(not_on_fargate(*field, HOST));
    }
    let added = lp.capabilities.as_ref().map(|k| k.add.as_slice());
    for (j, cap) in added.unwrap_or_default().iter().enumerate() {
        if !matches!(cap.as_str(), "SYS_PTRACE" | "CAP_SYS_PTRACE") {
            return Err(not_on_fargate(
                format!("linuxParameters.capabilities.add[{j}]"),
                &format!("Fargate lets a container add only SYS_PTRACE, got {cap}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "fargate_tests.rs"]
mod tests;
