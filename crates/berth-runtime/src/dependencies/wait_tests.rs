//! The dependency waiter against a fake status source (a `watch` channel the test
//! drives) and a paused tokio clock, so timeouts take no real time.

use std::time::Duration;

use berth_model::ecs::{DependencyCondition as C, HealthStatus};
use serde_json::json;
use tokio::sync::watch;

use super::*;
use crate::test_support::{task_definition, task_spec};
use crate::ContainerStatus;

/// `web` depends on `db` with `condition`; `web` may set a `startTimeout`.
fn web_on_db(condition: &str, start_timeout: Option<u32>) -> TaskDefinition {
    let mut web = json!({
        "name": "web", "image": "x",
        "dependsOn": [{"containerName": "db", "condition": condition}],
    });
    if let Some(t) = start_timeout {
        web["startTimeout"] = t.into();
    }
    task_definition(json!([web, {"name": "db", "image": "x"}]))
}

/// The state channel of a task of `td` with every container pending: the fake status
/// source the waiter reads.
fn states(td: &TaskDefinition) -> watch::Sender<TaskState> {
    let spec = task_spec("t1", td.clone());
    watch::Sender::new(crate::task_core::pending_state(&spec, Vec::new()))
}

fn set_db(tx: &watch::Sender<TaskState>, f: impl FnOnce(&mut ContainerState)) {
    tx.send_modify(|s| f(&mut s.containers[1]));
}

fn running(c: &mut ContainerState) {
    c.status = ContainerStatus::Running;
    c.runtime_id = Some("42".into());
}

fn exited(code: i32) -> impl FnOnce(&mut ContainerState) {
    move |c| {
        running(c);
        c.status = ContainerStatus::Stopped;
        c.exit_code = Some(code);
    }
}

/// Waits for `web`'s dependencies, which must fail: the error and how long (in paused
/// time) the wait took.
async fn failure(
    td: &TaskDefinition,
    tx: &watch::Sender<TaskState>,
) -> (DependencyWaitError, Duration) {
    let started = tokio::time::Instant::now();
    let err = wait_for_dependencies(td, 0, tx.subscribe())
        .await
        .unwrap_err();
    (err, started.elapsed())
}

fn container(status: ContainerStatus, started: bool) -> ContainerState {
    let spec = task_spec("t1", web_on_db("START", None));
    let mut c = crate::task_core::pending_state(&spec, Vec::new()).containers[1].clone();
    c.status = status;
    c.runtime_id = started.then(|| "42".to_string());
    c
}

#[test]
fn verdicts_follow_the_ecs_conditions() {
    use ContainerStatus::*;
    use DependencyVerdict::*;
    let pending = container(Pending, false);
    let running = container(Running, true);
    let mut ok = container(Stopped, true);
    ok.exit_code = Some(0);
    let mut failed = container(Stopped, true);
    failed.exit_code = Some(1);
    let mut healthy = container(Running, true);
    healthy.health = HealthStatus::Healthy;

    assert_eq!(dependency_verdict(C::Start, &pending), Wait);
    assert_eq!(dependency_verdict(C::Start, &running), Met);
    assert_eq!(dependency_verdict(C::Start, &failed), Met);
    assert_eq!(dependency_verdict(C::Complete, &running), Wait);
    assert_eq!(dependency_verdict(C::Complete, &failed), Met);
    assert_eq!(dependency_verdict(C::Success, &running), Wait);
    assert_eq!(dependency_verdict(C::Success, &ok), Met);
    assert_eq!(
        dependency_verdict(C::Success, &failed),
        Failed(DependencyFailure::ExitedWith { exit_code: Some(1) })
    );
    assert_eq!(dependency_verdict(C::Healthy, &running), Wait);
    assert_eq!(dependency_verdict(C::Healthy, &healthy), Met);
    assert_eq!(
        dependency_verdict(C::Healthy, &ok),
        Failed(DependencyFailure::StoppedUnhealthy)
    );
}

#[test]
fn a_dependency_that_never_started_fails_every_condition() {
    let never = container(ContainerStatus::Stopped, false);
    for condition in [C::Start, C::Complete, C::Success, C::Healthy] {
        assert_eq!(
            dependency_verdict(condition, &never),
            DependencyVerdict::Failed(DependencyFailure::NeverStarted),
            "{condition:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn start_waits_until_the_dependency_runs() {
    let td = web_on_db("START", None);
    let tx = states(&td);
    let mut wait = Box::pin(wait_for_dependencies(&td, 0, tx.subscribe()));
    // A minute of (paused, auto-advancing) time passes without a decision.
    assert!(tokio::time::timeout(Duration::from_secs(60), &mut wait)
        .await
        .is_err());
    set_db(&tx, running);
    assert_eq!(wait.await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn success_fails_on_a_non_zero_exit_and_names_it() {
    let td = web_on_db("SUCCESS", None);
    let tx = states(&td);
    set_db(&tx, exited(2));
    let (err, _) = failure(&td, &tx).await;
    assert_eq!(
        err,
        DependencyWaitError::Unsatisfiable {
            container: "web".into(),
            dependency: "db".into(),
            condition: C::Success,
            failure: DependencyFailure::ExitedWith { exit_code: Some(2) },
        }
    );
    assert!(err.to_string().contains("code Some(2)"), "{err}");

    set_db(&tx, exited(0));
    assert_eq!(wait_for_dependencies(&td, 0, tx.subscribe()).await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_dependency_stopped_before_it_ran_is_not_waited_for() {
    let td = web_on_db("START", None);
    let tx = states(&td);
    set_db(&tx, |c| c.status = ContainerStatus::Stopped);
    let (err, waited) = failure(&td, &tx).await;
    assert!(
        matches!(
            err,
            DependencyWaitError::Unsatisfiable {
                failure: DependencyFailure::NeverStarted,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(waited, Duration::ZERO);
    assert_eq!(
        err.to_string(),
        "container web did not start: its dependency db never started (condition Start)"
    );
}

#[tokio::test(start_paused = true)]
async fn healthy_waits_for_the_health_check_and_fails_when_it_stops_first() {
    let td = web_on_db("HEALTHY", None);
    let tx = states(&td);
    set_db(&tx, running);
    let mut wait = Box::pin(wait_for_dependencies(&td, 0, tx.subscribe()));
    assert!(tokio::time::timeout(Duration::from_secs(10), &mut wait)
        .await
        .is_err());
    set_db(&tx, |c| c.health = HealthStatus::Healthy);
    assert_eq!(wait.await, Ok(()));

    let tx = states(&td);
    set_db(&tx, exited(0));
    let (err, _) = failure(&td, &tx).await;
    assert!(
        err.to_string().contains("stopped before it was healthy"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn gives_up_at_the_start_timeout_else_the_ecs_default() {
    let with_timeout = web_on_db("COMPLETE", Some(5));
    let tx = states(&with_timeout);
    set_db(&tx, running);
    let (err, waited) = failure(&with_timeout, &tx).await;
    assert_eq!(waited, Duration::from_secs(5));
    assert_eq!(
        err.to_string(),
        "container web did not start: dependency db not Complete within 5s"
    );

    let without = web_on_db("START", None);
    let (err, waited) = failure(&without, &states(&without)).await;
    assert_eq!(waited, DEFAULT_DEPENDENCY_TIMEOUT);
    assert!(
        matches!(err, DependencyWaitError::TimedOut { limit, .. } if limit == DEFAULT_DEPENDENCY_TIMEOUT),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_dependency_and_a_dropped_task_fail() {
    let td = task_definition(json!([{
        "name": "web", "image": "x",
        "dependsOn": [{"containerName": "nope", "condition": "START"}],
    }]));
    let tx = states(&td);
    assert_eq!(
        wait_for_dependencies(&td, 0, tx.subscribe()).await,
        Err(DependencyWaitError::UnknownDependency {
            container: "web".into(),
            dependency: "nope".into(),
        })
    );

    let td = web_on_db("START", None);
    let tx = states(&td);
    let rx = tx.subscribe();
    drop(tx);
    assert_eq!(
        wait_for_dependencies(&td, 0, rx).await,
        Err(DependencyWaitError::TaskGone)
    );
}
