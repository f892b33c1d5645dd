//! ECSServiceAverageCPUUtilization and ECSServiceAverageMemoryUtilization: the average,
//! over a service's RUNNING tasks, of each task's use over its reservation, in percent.
//!
//! What a task reserves is what placement reserves for it (as ECS defines it): the
//! task-level `cpu` / `memory` when set, else the sum over its containers of `cpu`, and
//! of `memoryReservation` (the soft limit) or else `memory`. With every task of one task
//! definition this is ECS's formula, Σ used × 100 ÷ (reserved per task × tasks); during a
//! deployment each task counts against its own definition. A task that reserves none of
//! a resource, or whose node did not answer, is left out of that average; with no task
//! left there is no value (missing data).
//!
//! What it does not do: ask nodes for usage (the sampler does) or read the store.

use berth_model::agent::TaskUsage;
use berth_model::ecs::TaskDefinition;

use crate::scheduler;

/// What a task definition reserves: (CPU units, MiB of memory).
pub fn reservation(td: &TaskDefinition) -> (f64, f64) {
    (
        scheduler::task_cpu(td) as f64,
        scheduler::task_memory(td) as f64,
    )
}

/// A service's average utilization, in percent; `None` when no task gives a value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceUtilization {
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
}

/// The average over `tasks` (each running task's definition and measured use).
pub fn service_utilization<'a>(
    tasks: impl IntoIterator<Item = (&'a TaskDefinition, &'a TaskUsage)>,
) -> ServiceUtilization {
    let (mut cpu_sum, mut cpu_n, mut mem_sum, mut mem_n) = (0.0, 0u32, 0.0, 0u32);
    for (td, usage) in tasks {
        let (cpu, mem) = reservation(td);
        if cpu > 0.0 {
            cpu_sum += usage.cpu_units / cpu * 100.0;
            cpu_n += 1;
        }
        if mem > 0.0 {
            mem_sum += usage.memory_bytes as f64 / (1024.0 * 1024.0) / mem * 100.0;
            mem_n += 1;
        }
    }
    ServiceUtilization {
        cpu_percent: (cpu_n > 0).then(|| cpu_sum / f64::from(cpu_n)),
        memory_percent: (mem_n > 0).then(|| mem_sum / f64::from(mem_n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn def(v: serde_json::Value) -> TaskDefinition {
        serde_json::from_value(v).unwrap()
    }

    fn usage(cpu_units: f64, mib: u64) -> TaskUsage {
        TaskUsage {
            cpu_units,
            memory_bytes: mib * 1024 * 1024,
        }
    }

    #[test]
    fn task_level_reservations_win_over_the_containers() {
        let td = def(json!({
            "family": "web", "cpu": "512", "memory": "1024",
            "containerDefinitions": [{"name": "a", "image": "x", "cpu": 128, "memory": 256}]
        }));
        assert_eq!(reservation(&td), (512.0, 1024.0));
        let u = service_utilization([(&td, &usage(256.0, 256)), (&td, &usage(512.0, 512))]);
        assert_eq!(u.cpu_percent, Some(75.0));
        assert_eq!(u.memory_percent, Some(37.5));
    }

    #[test]
    fn container_reservations_sum_with_the_soft_memory_limit_first() {
        let td = def(json!({
            "family": "web",
            "containerDefinitions": [
                {"name": "a", "image": "x", "cpu": 256, "memory": 512, "memoryReservation": 128},
                {"name": "b", "image": "x", "cpu": 256, "memory": 128}
            ]
        }));
        assert_eq!(reservation(&td), (512.0, 256.0));
        let u = service_utilization([(&td, &usage(1024.0, 64))]);
        assert_eq!(u.cpu_percent, Some(200.0));
        assert_eq!(u.memory_percent, Some(25.0));
    }

    #[test]
    fn each_task_counts_against_its_own_definition() {
        let small = def(json!({"family": "w", "cpu": "256", "memory": "100",
            "containerDefinitions": [{"name": "a", "image": "x"}]}));
        let big = def(json!({"family": "w", "cpu": "1024", "memory": "400",
            "containerDefinitions": [{"name": "a", "image": "x"}]}));
        let u = service_utilization([(&small, &usage(256.0, 50)), (&big, &usage(0.0, 0))]);
        assert_eq!(u.cpu_percent, Some(50.0));
        assert_eq!(u.memory_percent, Some(25.0));
    }

    #[test]
    fn nothing_reserved_or_no_task_is_no_value() {
        let none = def(json!({"family": "w",
            "containerDefinitions": [{"name": "a", "image": "x"}]}));
        assert_eq!(
            service_utilization([(&none, &usage(100.0, 10))]),
            ServiceUtilization::default()
        );
        assert_eq!(service_utilization([]), ServiceUtilization::default());
    }
}
