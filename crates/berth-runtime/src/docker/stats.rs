//! A task's CPU and memory use from the engine's stats: one sample per running
//! container, summed. CPU is in ECS units (1024 = one core busy); memory leaves out the
//! inactive page cache, as `docker stats` does.

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptions;
use futures::StreamExt;

use super::{Inner, Task};
use crate::{ContainerStatus, TaskStats};

impl Inner {
    /// The task's use now: one stats sample per running container, summed. The
    /// containers are sampled at once: the engine answers each request only after its
    /// next one-second sample.
    pub(super) async fn measure(&self, task: &Task) -> TaskStats {
        let state = task.core.snapshot();
        let ids: Vec<String> = state
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.status == ContainerStatus::Running)
            .filter_map(|(idx, _)| task.id(idx))
            .collect();
        let samples = futures::future::join_all(ids.iter().map(|id| self.sample(id))).await;
        let mut total = TaskStats::default();
        for one in samples.into_iter().flatten() {
            total.cpu_units += one.cpu_units;
            total.memory_bytes += one.memory_bytes;
        }
        total
    }

    /// One container's use from one stats sample; None when the engine gives none.
    async fn sample(&self, id: &str) -> Option<TaskStats> {
        let mut stream = self.docker.stats(
            id,
            Some(StatsOptions {
                stream: false,
                one_shot: false,
            }),
        );
        match stream.next().await {
            Some(Ok(s)) => Some(container_usage(&s)),
            _ => None,
        }
    }
}

/// One container's use from one stats sample (which carries the previous CPU reading).
fn container_usage(s: &ContainerStatsResponse) -> TaskStats {
    let mut usage = TaskStats::default();
    if let (Some(cpu), Some(pre)) = (s.cpu_stats.as_ref(), s.precpu_stats.as_ref()) {
        let total = |c: &bollard::models::ContainerCpuStats| {
            c.cpu_usage
                .as_ref()
                .and_then(|u| u.total_usage)
                .unwrap_or(0)
        };
        let (used, pre_used) = (total(cpu), total(pre));
        let sys = cpu.system_cpu_usage.unwrap_or(0);
        let pre_sys = pre.system_cpu_usage.unwrap_or(0);
        let cpus = cpu.online_cpus.unwrap_or(1).max(1) as f64;
        if sys > pre_sys && used >= pre_used {
            usage.cpu_units = (used - pre_used) as f64 / (sys - pre_sys) as f64 * cpus * 1024.0;
        }
    }
    if let Some(m) = s.memory_stats.as_ref() {
        let cache = m
            .stats
            .as_ref()
            .and_then(|st| {
                st.get("total_inactive_file")
                    .or(st.get("inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        usage.memory_bytes = m.usage.unwrap_or(0).saturating_sub(cache);
    }
    usage
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cpu_is_the_share_of_system_time_times_cores_and_memory_leaves_out_cache() {
        let s: ContainerStatsResponse = serde_json::from_value(json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000,
                          "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000},
            "memory_stats": {"usage": 10_000, "stats": {"inactive_file": 4_000}},
        }))
        .unwrap();
        let u = container_usage(&s);
        // 2,000 of 10,000 system ticks on 2 cores: 0.4 of a core.
        assert!((u.cpu_units - 0.4 * 1024.0).abs() < 1e-9, "{u:?}");
        assert_eq!(u.memory_bytes, 6_000);
    }

    #[test]
    fn an_empty_previous_reading_counts_from_zero_and_memory_saturates() {
        let s: ContainerStatsResponse = serde_json::from_value(json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}},
            "memory_stats": {"usage": 100, "stats": {"total_inactive_file": 400}},
        }))
        .unwrap();
        let u = container_usage(&s);
        assert!(
            u.cpu_units > 0.0,
            "an empty previous reading counts as zero: {u:?}"
        );
        assert_eq!(u.memory_bytes, 0, "cache above usage saturates at 0");
    }
}
