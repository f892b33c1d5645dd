//! Container health checks on the process runtime: the check's command (`CMD`,
//! `CMD-SHELL`, or a bare command) runs on the host with the container's environment
//! every `interval`; `retries` failures in a row after the `startPeriod` make the
//! container UNHEALTHY, one success HEALTHY. Docker runs its own checks; this is not used
//! there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_model::ecs::{HealthCheck, HealthStatus};
use nix::sys::signal::Signal;

use super::process_env::{container_env, signal_group};
use super::{Inner, Task};
use crate::ContainerStatus;

impl Inner {
    pub(super) fn spawn_health_checker(self: &Arc<Self>, task: &Arc<Task>, idx: usize) {
        let Some(hc) = task.core.def().container_definitions[idx]
            .health_check
            .clone()
        else {
            return;
        };
        let inner = self.clone();
        let task = task.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = inner.shutdown.cancelled() => {}
                _ = inner.health_loop(&task, idx, &hc) => {}
            }
        });
    }

    async fn health_loop(&self, task: &Arc<Task>, idx: usize, hc: &HealthCheck) {
        let started = Instant::now();
        let start_period = Duration::from_secs(hc.start_period.into());
        let interval = Duration::from_secs(hc.interval.max(1).into());
        let timeout = Duration::from_secs(hc.timeout.max(1).into());
        let retries = hc.retries.max(1);
        let mut failures = 0u32;
        let mut rx = task.core.state.subscribe();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = rx.wait_for(|s| s.containers[idx].status == ContainerStatus::Stopped) => return,
            }
            let ok = run_health_command(task, idx, hc, timeout, self.dns_server).await;
            let current = task.core.snapshot().containers[idx].health;
            let next = if ok {
                failures = 0;
                HealthStatus::Healthy
            } else if started.elapsed() < start_period {
                // Failures in the start period do not count.
                current
            } else {
                failures += 1;
                if failures >= retries {
                    HealthStatus::Unhealthy
                } else {
                    current
                }
            };
            if next != current {
                tracing::info!(task = %task.core.arn(), container = %task.core.def().container_definitions[idx].name, "health {current:?} -> {next:?}");
                self.tasks.update(task, |s| s.containers[idx].health = next);
            }
        }
    }
}

async fn run_health_command(
    task: &Task,
    idx: usize,
    hc: &HealthCheck,
    timeout: Duration,
    dns_server: Option<std::net::SocketAddr>,
) -> bool {
    let (program, args): (String, Vec<String>) = match hc.command.split_first() {
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            ("/bin/sh".into(), vec!["-c".into(), rest.join(" ")])
        }
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => {
            (rest[0].clone(), rest[1..].to_vec())
        }
        // ECS also accepts a bare command as CMD.
        Some((first, rest)) if first != "CMD" && first != "NONE" => (first.clone(), rest.to_vec()),
        _ => return true,
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in container_env(task, idx, dns_server) {
        cmd.env(k, v);
    }
    if let Some(wd) = task.working_dir(idx) {
        cmd.current_dir(wd);
    }
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(_)) => false,
        Err(_) => {
            if let Some(pid) = child.id() {
                signal_group(pid as i32, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            false
        }
    }
}
