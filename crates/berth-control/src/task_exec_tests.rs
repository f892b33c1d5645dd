//! The exec endpoint's checks, its call to the node, the service event and the count,
//! over the in-memory store and a fake node.

use std::sync::Mutex;

use async_trait::async_trait;
use berth_model::agent::TaskUsage;
use berth_model::arn;
use berth_model::ecs::{Service, Task, TaskStatus};

use super::*;
use crate::task_nodes::LogStream;

/// Answers an exec with exit code 3 (or fails when `fail` is set), recording the calls.
#[derive(Default)]
struct FakeNodes {
    calls: Mutex<Vec<ExecCommand>>,
    fail: bool,
}

#[async_trait]
impl TaskNodes for FakeNodes {
    async fn logs(&self, t: &Task, _: Option<&str>, _: bool) -> Result<LogStream, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: t.task_arn.clone(),
        })
    }
    async fn usage(&self, t: &Task) -> Result<TaskUsage, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: t.task_arn.clone(),
        })
    }
    async fn exec(&self, t: &Task, command: &ExecCommand) -> Result<ExecResult, NodeError> {
        self.calls.lock().unwrap().push(command.clone());
        if self.fail {
            return Err(NodeError::Failed {
                task_arn: t.task_arn.clone(),
                message: "container db is not part of task".into(),
            });
        }
        Ok(ExecResult {
            container: command.container.clone().unwrap_or_else(|| "web".into()),
            exit_code: 3,
            stdout: "out\n".into(),
            stderr: String::new(),
            truncated: false,
        })
    }
}

fn task(enabled: bool, status: TaskStatus) -> Task {
    Task {
        task_arn: arn::task("default", "abc123"),
        cluster_arn: arn::cluster("default"),
        group: "service:web".into(),
        last_status: status,
        desired_status: TaskStatus::Running,
        enable_execute_command: enabled,
        ..Default::default()
    }
}

fn body(command: &[&str]) -> ExecBody {
    ExecBody {
        container: None,
        command: command.iter().map(|s| s.to_string()).collect(),
        caller: Some("alice".into()),
        ..Default::default()
    }
}

async fn db_with_service() -> Db {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let svc: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "cluster": "default", "taskDefinition": "web"
    }))
    .unwrap();
    db.put(&db::service_key("default", "web"), &svc)
        .await
        .unwrap();
    db
}

async fn events(db: &Db) -> Vec<String> {
    let svc: Service = db
        .get(&db::service_key("default", "web"))
        .await
        .unwrap()
        .unwrap()
        .value;
    svc.events.into_iter().map(|e| e.message).collect()
}

#[tokio::test]
async fn a_task_started_without_execute_command_is_refused_with_ecs_wording() {
    let db = db_with_service().await;
    let nodes = FakeNodes::default();
    let counter = ExecCounter::default();
    let t = task(false, TaskStatus::Running);
    let e = exec(&db, &nodes, &counter, &t, body(&["ls"]))
        .await
        .unwrap_err();
    assert_eq!((e.code, e.status), ("InvalidParameterException", 400));
    assert!(
        e.message
            .starts_with("The execute command failed because execute command was not enabled when the task was run"),
        "{e}"
    );
    assert!(nodes.calls.lock().unwrap().is_empty());
    assert_eq!(counter.get(&t, "refused"), 1);
    assert!(events(&db).await.is_empty());
}

#[tokio::test]
async fn a_task_not_running_and_an_empty_command_or_bad_timeout_are_refused() {
    let db = db_with_service().await;
    let nodes = FakeNodes::default();
    let counter = ExecCounter::default();
    let pending = task(true, TaskStatus::Pending);
    let e = exec(&db, &nodes, &counter, &pending, body(&["ls"]))
        .await
        .unwrap_err();
    assert!(e.message.contains("task abc123 is PENDING"), "{e}");
    let mut stopping = task(true, TaskStatus::Running);
    stopping.desired_status = TaskStatus::Stopped;
    let e = exec(&db, &nodes, &counter, &stopping, body(&["ls"]))
        .await
        .unwrap_err();
    assert!(e.message.contains("desired STOPPED"), "{e}");
    let running = task(true, TaskStatus::Running);
    let e = exec(&db, &nodes, &counter, &running, body(&[]))
        .await
        .unwrap_err();
    assert!(e.message.starts_with("command: empty"), "{e}");
    let mut b = body(&["ls"]);
    b.timeout_seconds = Some(0);
    let e = exec(&db, &nodes, &counter, &running, b).await.unwrap_err();
    assert_eq!(e.message, "timeoutSeconds: 0; allowed 1 to 3600");
    assert!(nodes.calls.lock().unwrap().is_empty());
    assert_eq!(counter.get(&running, "refused"), 4);
}

#[tokio::test]
async fn an_exec_runs_on_the_node_and_is_recorded_as_a_service_event_and_counted() {
    let db = db_with_service().await;
    let nodes = FakeNodes::default();
    let counter = ExecCounter::default();
    let t = task(true, TaskStatus::Running);
    let mut b = body(&["ls", "-l"]);
    b.timeout_seconds = Some(5);
    let out = exec(&db, &nodes, &counter, &t, b).await.unwrap();
    assert_eq!((out.container.as_str(), out.exit_code), ("web", 3));
    assert_eq!(
        *nodes.calls.lock().unwrap(),
        [ExecCommand {
            container: None,
            command: vec!["ls".into(), "-l".into()],
            timeout: Duration::from_secs(5),
        }]
    );
    assert_eq!(
        events(&db).await,
        [r#"(service web) alice ran ["ls", "-l"] in container web of (task abc123): exit code 3."#]
    );
    assert_eq!(counter.get(&t, "exited_nonzero"), 1);
    assert_eq!(counter.get(&t, "exited_zero"), 0);
}

#[tokio::test]
async fn a_nodes_refusal_is_the_callers_fault_and_counted_as_failed() {
    let db = db_with_service().await;
    let nodes = FakeNodes {
        fail: true,
        ..Default::default()
    };
    let counter = ExecCounter::default();
    let t = task(true, TaskStatus::Running);
    let e = exec(&db, &nodes, &counter, &t, body(&["ls"]))
        .await
        .unwrap_err();
    assert_eq!(e.status, 400);
    assert_eq!(e.message, "exec: container db is not part of task");
    assert_eq!(counter.get(&t, "failed"), 1);
    assert!(events(&db).await.is_empty());
}
