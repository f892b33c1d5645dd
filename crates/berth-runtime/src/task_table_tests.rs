//! The table, the start walk ([`crate::task_core`]) and the stop walk, with a fake task
//! whose containers "start" and "stop" by changing their state.

use berth_model::ecs::NetworkBinding;
use serde_json::json;

use super::*;
use crate::task_core::{check_startable, pending_state, start_in_dependency_order};
use crate::test_support::{fake, layered, set_status, task_definition, task_spec, FakeTask};

#[test]
fn pending_state_takes_known_bindings_and_essential_flags() {
    let mut spec = layered();
    spec.task_definition.container_definitions[3].essential = false;
    let binding = NetworkBinding {
        bind_ip: "0.0.0.0".into(),
        container_port: 80,
        host_port: 32768,
        protocol: Default::default(),
    };
    let s = pending_state(&spec, vec![vec![binding.clone()]]);
    assert_eq!(s.task_arn, spec.task_arn);
    assert_eq!(s.containers.len(), 4);
    assert!(s
        .containers
        .iter()
        .all(|c| c.status == ContainerStatus::Pending && c.runtime_id.is_none()));
    assert_eq!(s.containers[0].network_bindings, vec![binding]);
    assert!(s.containers[1].network_bindings.is_empty());
    assert!(s.containers[0].essential);
    assert!(!s.containers[3].essential);
}

#[test]
fn check_startable_refuses_empty_and_cyclic_definitions() {
    let empty = task_definition(json!([]));
    assert!(check_startable(&empty)
        .unwrap_err()
        .to_string()
        .contains("no containers"));
    let cyclic = task_definition(json!([
        {"name": "a", "image": "x", "dependsOn": [{"containerName": "b", "condition": "START"}]},
        {"name": "b", "image": "x", "dependsOn": [{"containerName": "a", "condition": "START"}]},
    ]));
    assert!(matches!(
        check_startable(&cyclic),
        Err(RuntimeError::StartFailed(m)) if m.contains("cycle")
    ));
    assert!(check_startable(&layered().task_definition).is_ok());
}

#[test]
fn update_publishes_changes_only() {
    let table: TaskTable<FakeTask> = TaskTable::new();
    let task = fake(layered());
    let mut rx = table.subscribe();
    set_status(&table, &task, 2, ContainerStatus::Running);
    set_status(&table, &task, 2, ContainerStatus::Running);
    assert_eq!(task.changes.load(Ordering::SeqCst), 1);
    let got = rx.try_recv().unwrap();
    assert_eq!(got.containers[2].status, ContainerStatus::Running);
    assert!(
        rx.try_recv().is_err(),
        "an update that changed nothing is silent"
    );
}

#[test]
fn table_keeps_the_first_of_an_arn_and_refuses_to_hand_out_running_tasks_for_removal() {
    let table: TaskTable<FakeTask> = TaskTable::new();
    let first = fake(layered());
    table.insert_new(first.clone()).unwrap();
    let again = fake(layered());
    set_status(&table, &again, 0, ContainerStatus::Running);
    let kept = table.insert_new(again).unwrap_err();
    assert_eq!(kept, first.core.snapshot());
    assert_eq!(table.all().len(), 1);

    set_status(&table, &first, 0, ContainerStatus::Running);
    let Err(err) = table.get_stopped(first.core.arn()) else {
        panic!("a running task was handed out for removal")
    };
    assert!(err.to_string().contains("still runs"), "{err}");
    assert!(matches!(
        table.get("arn:nope"),
        Err(RuntimeError::UnknownTask(arn)) if arn == "arn:nope"
    ));
    table.remove(first.core.arn());
    assert!(table.snapshots().is_empty());
}

#[tokio::test]
async fn stop_walks_dependents_first_and_marks_unstarted_containers() {
    let table: TaskTable<FakeTask> = TaskTable::new();
    let task = fake(layered());
    for idx in 0..3 {
        set_status(&table, &task, idx, ContainerStatus::Running);
    }
    let stopped_in_order = Mutex::new(Vec::new());
    let end = table
        .stop_task(&task, |idx| {
            stopped_in_order.lock().unwrap().push(idx);
            if task.core.snapshot().containers[idx].status == ContainerStatus::Running {
                set_status(&table, &task, idx, ContainerStatus::Stopped);
            }
            async {}
        })
        .await;
    // app, then db, then init and side together (definition order within a level).
    assert_eq!(*stopped_in_order.lock().unwrap(), vec![0, 1, 2, 3]);
    assert!(task.core.is_stopping());
    assert!(end.all_stopped());
    assert_eq!(end.containers[0].reason, None);
    assert_eq!(
        end.containers[3].reason.as_deref(),
        Some("not started: the task was stopped")
    );
}

#[tokio::test(start_paused = true)]
async fn start_walks_dependencies_first_and_stops_at_the_first_failure() {
    let table: TaskTable<FakeTask> = TaskTable::new();
    let task = fake(layered());
    let started = Mutex::new(Vec::new());
    start_in_dependency_order(&task.core, |idx| {
        started.lock().unwrap().push(idx);
        set_status(&table, &task, idx, ContainerStatus::Running);
        async { Ok(()) }
    })
    .await
    .unwrap();
    assert_eq!(*started.lock().unwrap(), vec![2, 3, 1, 0]);

    let task = fake(layered());
    let err = start_in_dependency_order(&task.core, |idx| {
        let res = if idx == 3 {
            Err(RuntimeError::StartFailed("side: no".into()))
        } else {
            set_status(&table, &task, idx, ContainerStatus::Running);
            Ok(())
        };
        async { res }
    })
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "side: no");
    assert_eq!(
        task.core.snapshot().containers[1].status,
        ContainerStatus::Pending
    );
}

#[tokio::test(start_paused = true)]
async fn start_ends_when_the_task_is_stopping_and_says_which_container_exited() {
    let table: TaskTable<FakeTask> = TaskTable::new();
    let task = fake(layered());
    let err = start_in_dependency_order(&task.core, |idx| {
        set_status(&table, &task, idx, ContainerStatus::Running);
        if idx == 2 {
            // init exits at once, which stops the task.
            table.update(&task, |s| {
                s.containers[2].status = ContainerStatus::Stopped;
                s.containers[2].reason = Some("exited with code 1".into());
            });
            task.core.stopping.store(true, Ordering::SeqCst);
        }
        async { Ok(()) }
    })
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "essential container init exited while the task was starting: exited with code 1"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_dependency_fails_the_start_with_its_reason() {
    let spec = task_spec(
        "dep",
        task_definition(json!([
            {"name": "init", "image": "x", "essential": false},
            {"name": "app", "image": "x",
             "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]},
        ])),
    );
    let table: TaskTable<FakeTask> = TaskTable::new();
    let task = fake(spec);
    let err = start_in_dependency_order(&task.core, |idx| {
        assert_eq!(idx, 0, "app must not start");
        table.update(&task, |s| {
            s.containers[0].status = ContainerStatus::Stopped;
            s.containers[0].runtime_id = Some("1".into());
            s.containers[0].exit_code = Some(2);
        });
        async { Ok(()) }
    })
    .await
    .unwrap_err();
    let RuntimeError::StartFailed(msg) = err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("init") && msg.contains("code Some(2)"),
        "{msg}"
    );
}
