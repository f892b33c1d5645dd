//! The tasks a runtime knows, by ARN, and the broadcast of their state changes; both
//! runtimes keep theirs in a [`TaskTable`]. Also the stop walk: containers in reverse
//! `dependsOn` order, then the ones that never started marked stopped.
//!
//! It holds tasks and publishes their changes; it neither starts nor stops a container
//! itself (the runtime passes that in) and does not persist anything (a runtime that does
//! hooks [`RuntimeTask::state_changed`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::dependencies::stop_groups;
use crate::task_core::TaskCore;
use crate::{ContainerStatus, Result, RuntimeError, TaskState};

/// A runtime's own task type: the shared [`TaskCore`] plus what the runtime tracks.
pub(crate) trait RuntimeTask: Send + Sync + 'static {
    fn core(&self) -> &TaskCore;

    /// Runs after the task's state changed and before subscribers hear of it.
    fn state_changed(&self) {}
}

/// How many state changes a slow subscriber may fall behind before it misses some.
const EVENT_BACKLOG: usize = 1024;

pub(crate) struct TaskTable<T> {
    tasks: Mutex<BTreeMap<String, Arc<T>>>,
    events: broadcast::Sender<TaskState>,
}

// === impl TaskTable ===

impl<T: RuntimeTask> TaskTable<T> {
    pub(crate) fn new() -> Self {
        Self {
            tasks: Mutex::new(BTreeMap::new()),
            events: broadcast::channel(EVENT_BACKLOG).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<T>>> {
        self.tasks.lock().expect("tasks lock")
    }

    pub(crate) fn get(&self, arn: &str) -> Result<Arc<T>> {
        self.lock()
            .get(arn)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownTask(arn.to_string()))
    }

    /// The state of the task, if the runtime knows it (a start of a known task returns it).
    pub(crate) fn state_of(&self, arn: &str) -> Option<TaskState> {
        self.lock().get(arn).map(|t| t.core().snapshot())
    }

    /// Adds a task being started and tells subscribers, unless one of its ARN is already
    /// known (started concurrently): then that one wins and its state comes back.
    pub(crate) fn insert_new(&self, task: Arc<T>) -> std::result::Result<(), TaskState> {
        {
            let mut tasks = self.lock();
            let arn = task.core().arn();
            if let Some(existing) = tasks.get(arn) {
                return Err(existing.core().snapshot());
            }
            tasks.insert(arn.to_string(), task.clone());
        }
        self.publish(&task);
        Ok(())
    }

    /// Adds (or replaces) an adopted task.
    pub(crate) fn insert(&self, task: Arc<T>) {
        self.lock().insert(task.core().arn().to_string(), task);
    }

    pub(crate) fn remove(&self, arn: &str) {
        self.lock().remove(arn);
    }

    /// The task, if every one of its containers stopped (what removing it requires).
    pub(crate) fn get_stopped(&self, arn: &str) -> Result<Arc<T>> {
        let task = self.get(arn)?;
        if !task.core().snapshot().all_stopped() {
            return Err(RuntimeError::Other(format!(
                "task {arn} still runs; stop it before removing it"
            )));
        }
        Ok(task)
    }

    pub(crate) fn all(&self) -> Vec<Arc<T>> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn snapshots(&self) -> Vec<TaskState> {
        self.all().iter().map(|t| t.core().snapshot()).collect()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<TaskState> {
        self.events.subscribe()
    }

    /// Tells subscribers the task's current state.
    pub(crate) fn publish(&self, task: &T) {
        let _ = self.events.send(task.core().snapshot());
    }

    /// Applies `f` to the task's state; if that changed it, runs the task's
    /// [`RuntimeTask::state_changed`] and tells subscribers.
    pub(crate) fn update(&self, task: &T, f: impl FnOnce(&mut TaskState)) {
        let changed = task.core().state.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
        if changed {
            task.state_changed();
            self.publish(task);
        }
    }

    /// Stops the task: `stop_container` for each container, dependents before their
    /// dependencies (the containers of one level together), under the lifecycle lock;
    /// then the containers that never started are marked stopped. Returns the final state.
    pub(crate) async fn stop_task<F, Fut>(&self, task: &T, stop_container: F) -> TaskState
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = ()>,
    {
        let core = task.core();
        core.stopping.store(true, Ordering::SeqCst);
        let _guard = core.lifecycle.lock().await;
        for group in stop_groups(core.def()) {
            futures::future::join_all(group.into_iter().map(&stop_container)).await;
        }
        self.update(task, |s| {
            for c in &mut s.containers {
                if c.status == ContainerStatus::Pending {
                    c.status = ContainerStatus::Stopped;
                    c.reason = Some("not started: the task was stopped".into());
                }
            }
        });
        core.snapshot()
    }
}

#[cfg(test)]
#[path = "task_table_tests.rs"]
mod tests;
