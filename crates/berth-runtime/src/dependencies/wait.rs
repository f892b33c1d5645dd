//! Waiting for a container's `dependsOn` conditions (START, COMPLETE, SUCCESS, HEALTHY)
//! before it starts, on either runtime.
//!
//! The waiter reads container states from a `watch` channel of [`TaskState`] (each runtime
//! keeps its task's state in one), so it knows nothing of Docker or processes. It does not
//! start anything and does not stop the task when a condition fails: the runtime does.

use std::time::Duration;

use berth_model::ecs::{DependencyCondition, HealthStatus, TaskDefinition};
use tokio::sync::watch;

use crate::{ContainerState, ContainerStatus, TaskState};

/// How long to wait for dependencies when a container sets no `startTimeout` (the ECS
/// agent's default `ECS_CONTAINER_START_TIMEOUT` on Linux).
pub const DEFAULT_DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(180);

/// Why a dependency can no longer meet its condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DependencyFailure {
    /// It stopped without ever running (its own start failed, or the task was stopped).
    #[error("never started")]
    NeverStarted,
    /// SUCCESS asked for exit code 0.
    #[error("exited with code {exit_code:?}")]
    ExitedWith { exit_code: Option<i32> },
    /// HEALTHY asked for a passing health check.
    #[error("stopped before it was healthy")]
    StoppedUnhealthy,
}

/// Why a container's dependencies did not let it start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DependencyWaitError {
    #[error("container {container} depends on unknown container {dependency}")]
    UnknownDependency {
        container: String,
        dependency: String,
    },
    #[error(
        "container {container} did not start: its dependency {dependency} {failure} (condition {condition:?})"
    )]
    Unsatisfiable {
        container: String,
        dependency: String,
        condition: DependencyCondition,
        failure: DependencyFailure,
    },
    #[error(
        "container {container} did not start: dependency {dependency} not {condition:?} within {}s",
        limit.as_secs()
    )]
    TimedOut {
        container: String,
        dependency: String,
        condition: DependencyCondition,
        limit: Duration,
    },
    /// The runtime dropped the task's state while the container waited.
    #[error("the task went away")]
    TaskGone,
}

/// Where one dependency stands with respect to its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DependencyVerdict {
    Met,
    Wait,
    Failed(DependencyFailure),
}

/// Whether `dependency`, as it is now, meets `condition`, may still meet it, or never will.
pub(crate) fn dependency_verdict(
    condition: DependencyCondition,
    dependency: &ContainerState,
) -> DependencyVerdict {
    use DependencyCondition as C;
    use DependencyVerdict::*;
    match (condition, dependency.status) {
        (_, ContainerStatus::Stopped) if dependency.runtime_id.is_none() => {
            Failed(DependencyFailure::NeverStarted)
        }
        (C::Start, ContainerStatus::Pending) => Wait,
        (C::Start, _) => Met,
        (C::Complete, ContainerStatus::Stopped) => Met,
        (C::Success, ContainerStatus::Stopped) if dependency.exit_code == Some(0) => Met,
        (C::Success, ContainerStatus::Stopped) => Failed(DependencyFailure::ExitedWith {
            exit_code: dependency.exit_code,
        }),
        (C::Healthy, _) if dependency.health == HealthStatus::Healthy => Met,
        (C::Healthy, ContainerStatus::Stopped) => Failed(DependencyFailure::StoppedUnhealthy),
        _ => Wait,
    }
}

/// Waits until every `dependsOn` condition of container `idx` of `td` holds, reading the
/// task's container states from `states`. All conditions share one deadline: the
/// container's `startTimeout`, else [`DEFAULT_DEPENDENCY_TIMEOUT`].
pub(crate) async fn wait_for_dependencies(
    td: &TaskDefinition,
    idx: usize,
    mut states: watch::Receiver<TaskState>,
) -> Result<(), DependencyWaitError> {
    let def = &td.container_definitions[idx];
    let limit = def
        .start_timeout
        .map(|s| Duration::from_secs(s.into()))
        .unwrap_or(DEFAULT_DEPENDENCY_TIMEOUT);
    let deadline = tokio::time::Instant::now() + limit;
    for dep in &def.depends_on {
        let j = td
            .container_definitions
            .iter()
            .position(|c| c.name == dep.container_name)
            .ok_or_else(|| DependencyWaitError::UnknownDependency {
                container: def.name.clone(),
                dependency: dep.container_name.clone(),
            })?;
        let condition = dep.condition;
        let verdict = |s: &TaskState| dependency_verdict(condition, &s.containers[j]);
        let decided = states.wait_for(|s| verdict(s) != DependencyVerdict::Wait);
        let verdict = match tokio::time::timeout_at(deadline, decided).await {
            Ok(Ok(s)) => verdict(&s),
            Ok(Err(_)) => return Err(DependencyWaitError::TaskGone),
            Err(_) => {
                return Err(DependencyWaitError::TimedOut {
                    container: def.name.clone(),
                    dependency: dep.container_name.clone(),
                    condition,
                    limit,
                })
            }
        };
        if let DependencyVerdict::Failed(failure) = verdict {
            return Err(DependencyWaitError::Unsatisfiable {
                container: def.name.clone(),
                dependency: dep.container_name.clone(),
                condition,
                failure,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
