//! What the service planner decides for one service in one pass: the stops, starts,
//! events and service-record change of a [`ServicePlan`], and how the plan turns into the
//! next service record. Plain values; the planner (`plan.rs`) builds them, the executor
//! (`execute.rs`) writes them.

use berth_model::ecs::{Deployment, Service, StopCode, Task};
use berth_model::time::Timestamp;

/// A task to stop, the way the scheduler stops it (see [`super::apply_stop`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStop {
    pub task_arn: String,
    pub code: StopCode,
    pub reason: String,
}

/// An event for the service's event list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    pub message: String,
    /// Skip it when the service's latest event already says the same (ECS also
    /// suppresses repeats).
    pub unless_repeated: bool,
}

impl PlannedEvent {
    /// An event recorded even when the latest one says the same.
    pub fn always(message: String) -> Self {
        Self {
            message,
            unless_repeated: false,
        }
    }

    /// An event skipped when the latest one says the same.
    pub fn unless_repeated(message: String) -> Self {
        Self {
            message,
            unless_repeated: true,
        }
    }
}

/// The fields of the service record a pass writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceUpdate {
    /// Changes only when the circuit breaker rolls back.
    pub task_definition: String,
    pub running_count: u32,
    pub pending_count: u32,
    pub deployments: Vec<Deployment>,
}

/// What becomes of the service record.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceRecord {
    /// Only the plan's events (if any) are added.
    Keep,
    /// These fields change (and the plan's events are added).
    Update(ServiceUpdate),
    /// The service was being deleted and has no task left: its record goes.
    Delete,
}

/// What one pass changes for one service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    /// Tasks to stop, in order; a task may appear twice (the first stop wins).
    pub stops: Vec<TaskStop>,
    /// New tasks, already placed on an instance.
    pub starts: Vec<Task>,
    /// Events, oldest first.
    pub events: Vec<PlannedEvent>,
    pub record: ServiceRecord,
    /// Seconds until starts may resume when they were held back after failed starts.
    pub start_throttled_for: Option<f64>,
}

impl ServicePlan {
    /// The service record after this plan, or None when it does not change (or goes:
    /// see [`ServiceRecord::Delete`]). `new_short_id` names the events.
    pub fn next_service(
        &self,
        svc: &Service,
        now: Timestamp,
        new_short_id: &mut dyn FnMut() -> String,
    ) -> Option<Service> {
        let mut next = svc.clone();
        for e in &self.events {
            if e.unless_repeated && next.events.first().is_some_and(|x| x.message == e.message) {
                continue;
            }
            next.push_event(new_short_id(), now, e.message.clone());
        }
        match &self.record {
            ServiceRecord::Keep => {}
            ServiceRecord::Delete => return None,
            ServiceRecord::Update(u) => {
                next.task_definition = u.task_definition.clone();
                next.running_count = u.running_count;
                next.pending_count = u.pending_count;
                next.deployments = u.deployments.clone();
            }
        }
        (next != *svc).then_some(next)
    }
}
