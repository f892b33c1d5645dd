//! Keeping the tasks' states in step with the engine: its event stream (start, die, oom,
//! health_status), a periodic resync for missed events, and stopping a task whose
//! essential container stopped. How an inspect reads is [`super::container_state`]'s.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{EventsOptions, InspectContainerOptions};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;

use super::container_state::container_state;
use super::{is_not_found, Inner, Task, LABEL_MANAGED, LABEL_TASK_ARN};
use crate::task_runtime::Backend;
use crate::ContainerStatus;

/// How long to wait before reconnecting to a broken event stream.
const EVENTS_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// After an unexplained SIGKILL exit the container is read again every
/// [`OOM_SETTLE_STEP`], for up to [`OOM_SETTLE`], for the engine's OOM flag to land: the
/// engine learns of the kill from an event of its own, which on a loaded machine can
/// come more than half a second after the exit.
const OOM_SETTLE: Duration = Duration::from_secs(3);
const OOM_SETTLE_STEP: Duration = Duration::from_millis(250);

/// The container events that can change a container's state.
fn changes_state(action: &str) -> bool {
    matches!(action, "start" | "die" | "oom" | "stop" | "kill")
        || action.starts_with("health_status")
}

impl Inner {
    /// Re-reads one container and applies what changed; an essential container that
    /// stopped stops its task.
    pub(super) async fn refresh(self: &Arc<Self>, task: &Arc<Task>, idx: usize) {
        let Some(id) = task.id(idx) else { return };
        let inspected = self
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await;
        let previous = task.core.snapshot();
        let stop_sent = task.stop_sent[idx].load(Ordering::SeqCst);
        let read = |info: &bollard::models::ContainerInspectResponse| {
            container_state(
                task.core.def(),
                idx,
                info,
                &previous,
                stop_sent,
                &self.config.awsvpc_network,
            )
        };
        let cs = match inspected {
            Ok(info) => {
                let mut cs = read(&info);
                // The engine records an OOM kill from an event of its own, which may land
                // just after the exit: a SIGKILL berth did not send is read once more.
                let killed_unexplained = cs.status == ContainerStatus::Stopped
                    && previous.containers[idx].status != ContainerStatus::Stopped
                    && cs.exit_code == Some(137)
                    && !stop_sent
                    && cs.reason.as_deref() != Some(super::OOM_REASON);
                if killed_unexplained {
                    let mut waited = Duration::ZERO;
                    while waited < OOM_SETTLE && cs.reason.as_deref() != Some(super::OOM_REASON) {
                        tokio::time::sleep(OOM_SETTLE_STEP).await;
                        waited += OOM_SETTLE_STEP;
                        match self
                            .docker
                            .inspect_container(&id, None::<InspectContainerOptions>)
                            .await
                        {
                            Ok(again) => cs = read(&again),
                            Err(_) => break,
                        }
                    }
                }
                cs
            }
            Err(e) if is_not_found(&e) => {
                let mut cs = previous.containers[idx].clone();
                if cs.status != ContainerStatus::Stopped {
                    cs.status = ContainerStatus::Stopped;
                    cs.reason = Some("the container was removed outside berth".into());
                }
                cs
            }
            Err(e) => {
                tracing::warn!(task = %task.core.arn(), "inspect {id}: {e}");
                return;
            }
        };
        let was = previous.containers[idx].status;
        let now_stopped = cs.status == ContainerStatus::Stopped;
        self.tasks.update(task, |s| s.containers[idx] = cs);
        let def = &task.core.def().container_definitions[idx];
        if was != ContainerStatus::Stopped
            && now_stopped
            && def.essential
            && !task.core.is_stopping()
        {
            tracing::info!(task = %task.core.arn(), container = %def.name, "essential container exited; stopping the task");
            let _ = self.stop_requests.send(task.clone());
        }
    }

    /// Stops the tasks whose essential container exited.
    pub(super) async fn stopper(self: Arc<Self>, mut rx: UnboundedReceiver<Arc<Task>>) {
        loop {
            let task = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                t = rx.recv() => match t { Some(t) => t, None => return },
            };
            let inner = self.clone();
            tokio::spawn(async move {
                inner.stop_task(&task).await;
            });
        }
    }

    async fn resync(self: &Arc<Self>) {
        for task in self.tasks.all() {
            for idx in 0..task.container_count() {
                if task.core.snapshot().containers[idx].status != ContainerStatus::Stopped {
                    self.refresh(&task, idx).await;
                }
            }
        }
    }

    pub(super) async fn resync_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.resync_interval) => {}
            }
            self.resync().await;
        }
    }

    pub(super) async fn follow_events(self: Arc<Self>) {
        loop {
            let mut filters = HashMap::new();
            filters.insert("type".to_string(), vec!["container".to_string()]);
            filters.insert("label".to_string(), vec![format!("{LABEL_MANAGED}=true")]);
            let mut stream = self.docker.events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }));
            // Whatever happened while the stream was down.
            self.resync().await;
            loop {
                let ev = tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    ev = stream.next() => ev,
                };
                let ev = match ev {
                    Some(Ok(ev)) => ev,
                    Some(Err(e)) => {
                        tracing::warn!("Docker event stream: {e}; reconnecting");
                        break;
                    }
                    None => break,
                };
                let action = ev.action.unwrap_or_default();
                let Some(actor) = ev.actor else { continue };
                let Some(id) = actor.id else { continue };
                let Some(arn) = actor
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(LABEL_TASK_ARN))
                else {
                    continue;
                };
                let Ok(task) = self.tasks.get(arn) else {
                    continue;
                };
                let Some(idx) = task.index_of_id(&id) else {
                    continue;
                };
                if changes_state(&action) {
                    self.refresh(&task, idx).await;
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(EVENTS_RECONNECT_DELAY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::changes_state;

    #[test]
    fn state_changing_events() {
        for a in [
            "start",
            "die",
            "oom",
            "stop",
            "kill",
            "health_status: healthy",
        ] {
            assert!(changes_state(a), "{a}");
        }
        for a in ["create", "attach", "exec_start: sh", "destroy"] {
            assert!(!changes_state(a), "{a}");
        }
    }
}
