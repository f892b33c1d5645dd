//! The executor: turns a [`ServicePlan`] into one store batch, guarded by the revisions
//! the plan was made from. Either the whole plan lands or none of it does (a conflict
//! means something changed meanwhile; the reconciler plans again from fresh reads).

use std::collections::BTreeMap;

use berth_model::ecs::{Service, StopCode, Task, TaskStatus};
use berth_model::time::Timestamp;
use berth_store::{Expect, Op};

use super::plan::ServicePlan;
use crate::db::{self, Versioned};

/// Marks a task for stopping the scheduler's way: desired STOPPED; a running task goes to
/// DEACTIVATING so its targets drain before its agent signals it. Returns false (and
/// changes nothing) when the task is already on its way out.
pub fn apply_stop(task: &mut Task, code: StopCode, reason: &str, now: Timestamp) -> bool {
    if task.desired_status == TaskStatus::Stopped {
        return false;
    }
    task.desired_status = TaskStatus::Stopped;
    task.stop_code = Some(code);
    task.stopped_reason = Some(reason.to_string());
    task.stopping_at = Some(now);
    if task.last_status == TaskStatus::Running {
        task.last_status = TaskStatus::Deactivating;
    }
    task.version += 1;
    true
}

/// The store operations that carry out `plan` for the service read as `service`, whose
/// cluster's tasks were read as `tasks`. Empty when the plan changes nothing.
///
/// Every write is guarded: stopped tasks and the service by the mod revision they were
/// read at, new tasks by their key being absent.
pub fn plan_ops(
    plan: &ServicePlan,
    service: &Versioned<Service>,
    tasks: &[Versioned<Task>],
    now: Timestamp,
    new_short_id: &mut dyn FnMut() -> String,
) -> Vec<Op> {
    let mut ops = Vec::new();
    // Stops in order; a task stopped twice keeps the first stop's code and reason.
    let mut stopped: BTreeMap<&str, (&Versioned<Task>, Task)> = BTreeMap::new();
    for stop in &plan.stops {
        let Some(read) = tasks.iter().find(|t| t.value.task_arn == stop.task_arn) else {
            continue;
        };
        let entry = stopped
            .entry(read.key.as_str())
            .or_insert_with(|| (read, read.value.clone()));
        apply_stop(&mut entry.1, stop.code, &stop.reason, now);
    }
    for (read, next) in stopped.into_values() {
        if next != read.value {
            ops.push(Op::Put {
                key: read.key.clone(),
                value: db::encode(&next),
                expect: Some(Expect::ModRevision(read.mod_revision)),
            });
        }
    }
    for t in &plan.starts {
        ops.push(Op::Put {
            key: db::task_key(t.cluster_name(), t.id()),
            value: db::encode(t),
            expect: Some(Expect::Absent),
        });
    }
    let guard = Some(Expect::ModRevision(service.mod_revision));
    if plan.record == super::plan::ServiceRecord::Delete {
        ops.push(Op::Delete {
            key: service.key.clone(),
            expect: guard,
        });
    } else if let Some(next) = plan.next_service(&service.value, now, new_short_id) {
        ops.push(Op::Put {
            key: service.key.clone(),
            value: db::encode(&next),
            expect: guard,
        });
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::plan::{PlannedEvent, ServiceRecord, TaskStop};

    fn versioned<T>(key: &str, value: T, rev: u64) -> Versioned<T> {
        Versioned {
            value,
            key: key.into(),
            mod_revision: rev,
        }
    }

    fn task(id: &str, status: TaskStatus) -> Task {
        Task {
            task_arn: berth_model::arn::task("default", id),
            cluster_arn: berth_model::arn::cluster("default"),
            last_status: status,
            desired_status: TaskStatus::Running,
            version: 3,
            ..Default::default()
        }
    }

    fn service() -> Service {
        serde_json::from_value(serde_json::json!({"serviceName": "web", "taskDefinition": "web"}))
            .unwrap()
    }

    fn empty_plan() -> ServicePlan {
        ServicePlan {
            stops: vec![],
            starts: vec![],
            events: vec![],
            record: ServiceRecord::Keep,
            start_throttled_for: None,
        }
    }

    #[test]
    fn stopping_a_running_task_deactivates_it_first() {
        let mut t = task("a", TaskStatus::Running);
        assert!(apply_stop(&mut t, StopCode::UserInitiated, "bye", 7.0));
        assert_eq!(t.desired_status, TaskStatus::Stopped);
        assert_eq!(t.last_status, TaskStatus::Deactivating);
        assert_eq!(t.stop_code, Some(StopCode::UserInitiated));
        assert_eq!(t.stopped_reason.as_deref(), Some("bye"));
        assert_eq!(t.stopping_at, Some(7.0));
        assert_eq!(t.version, 4);
        let before = t.clone();
        assert!(!apply_stop(
            &mut t,
            StopCode::ServiceSchedulerInitiated,
            "again",
            8.0
        ));
        assert_eq!(t, before, "a second stop changes nothing");
        let mut pending = task("b", TaskStatus::Pending);
        apply_stop(&mut pending, StopCode::UserInitiated, "bye", 7.0);
        assert_eq!(pending.last_status, TaskStatus::Pending);
    }

    #[test]
    fn a_plan_becomes_guarded_ops() {
        let tasks = vec![
            versioned("/tasks/default/a", task("a", TaskStatus::Running), 11),
            versioned("/tasks/default/b", task("b", TaskStatus::Running), 12),
        ];
        let svc = versioned("/services/default/web", service(), 20);
        let mut plan = empty_plan();
        for reason in ["first", "second"] {
            plan.stops.push(TaskStop {
                task_arn: tasks[0].value.task_arn.clone(),
                code: StopCode::ServiceSchedulerInitiated,
                reason: reason.into(),
            });
        }
        plan.starts.push(task("c", TaskStatus::Provisioning));
        plan.events.push(PlannedEvent::always("hello".into()));
        let mut ids = || "e1".to_string();
        let ops = plan_ops(&plan, &svc, &tasks, 5.0, &mut ids);
        assert_eq!(ops.len(), 3, "{ops:?}");
        let Op::Put { key, value, expect } = &ops[0] else {
            panic!("{ops:?}")
        };
        assert_eq!(key, "/tasks/default/a");
        assert_eq!(expect, &Some(Expect::ModRevision(11)));
        let stopped: Task = serde_json::from_slice(value).unwrap();
        assert_eq!(stopped.stopped_reason.as_deref(), Some("first"));
        assert!(
            matches!(&ops[1], Op::Put { key, expect: Some(Expect::Absent), .. } if key == "/tasks/default/c")
        );
        let Op::Put { key, value, expect } = &ops[2] else {
            panic!("{ops:?}")
        };
        assert_eq!(key, "/services/default/web");
        assert_eq!(expect, &Some(Expect::ModRevision(20)));
        let next: Service = serde_json::from_slice(value).unwrap();
        assert_eq!(next.events[0].message, "hello");
        assert_eq!(next.events[0].id, "e1");
    }

    #[test]
    fn an_empty_plan_writes_nothing_and_repeats_are_suppressed() {
        let mut s = service();
        s.push_event("x".into(), 1.0, "same".into());
        let svc = versioned("/services/default/web", s, 20);
        let mut ids = || "e1".to_string();
        assert!(plan_ops(&empty_plan(), &svc, &[], 5.0, &mut ids).is_empty());
        let mut plan = empty_plan();
        plan.events
            .push(PlannedEvent::unless_repeated("same".into()));
        assert!(plan_ops(&plan, &svc, &[], 5.0, &mut ids).is_empty());
        plan.events[0].unless_repeated = false;
        assert_eq!(plan_ops(&plan, &svc, &[], 5.0, &mut ids).len(), 1);
    }

    #[test]
    fn deleting_the_service_is_guarded() {
        let svc = versioned("/services/default/web", service(), 20);
        let mut plan = empty_plan();
        plan.record = ServiceRecord::Delete;
        let mut ids = || "e1".to_string();
        let ops = plan_ops(&plan, &svc, &[], 5.0, &mut ids);
        assert_eq!(
            ops,
            vec![Op::Delete {
                key: "/services/default/web".into(),
                expect: Some(Expect::ModRevision(20)),
            }]
        );
    }
}
