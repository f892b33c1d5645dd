//! The usage sampler against nodes that answer slowly or never, on a paused clock.

use std::sync::Arc;

use async_trait::async_trait;
use berth_model::agent::TaskUsage;
use berth_model::arn;
use berth_model::ecs::Task;
use tokio::time::Instant;

use super::*;
use crate::data_plane::fake::FakeDataPlane;
use crate::db;
use crate::task_nodes::{LogStream, NodeError};

/// Nodes that answer each task after `delay`, except the tasks in `silent`, which they
/// never answer for.
struct SlowNodes {
    delay: Duration,
    silent: Vec<String>,
}

#[async_trait]
impl TaskNodes for SlowNodes {
    async fn logs(
        &self,
        task: &Task,
        _container: Option<&str>,
        _follow: bool,
    ) -> Result<LogStream, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: task.task_arn.clone(),
        })
    }

    async fn usage(&self, task: &Task) -> Result<TaskUsage, NodeError> {
        if self.silent.contains(&task.task_arn) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.delay).await;
        Ok(TaskUsage {
            cpu_units: 64.0,
            memory_bytes: 32 * 1024 * 1024,
        })
    }
}

/// A store holding `n` RUNNING tasks; returns it and the tasks' ARNs.
async fn running_tasks(n: usize) -> (Db, Vec<String>) {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    let mut arns = Vec::new();
    for i in 0..n {
        let id = format!("{i:032x}");
        let task = Task {
            task_arn: arn::task("default", &id),
            cluster_arn: arn::cluster("default"),
            task_definition_arn: arn::task_definition("web", 1),
            group: "service:web".into(),
            last_status: TaskStatus::Running,
            desired_status: TaskStatus::Running,
            ..Default::default()
        };
        db.put(&db::task_key("default", &id), &task).await.unwrap();
        arns.push(task.task_arn);
    }
    (db, arns)
}

#[tokio::test(start_paused = true)]
async fn nodes_are_asked_about_many_tasks_at_once() {
    let (db, arns) = running_tasks(CONCURRENT_QUESTIONS).await;
    let nodes = SlowNodes {
        delay: Duration::from_secs(1),
        silent: Vec::new(),
    };
    let started = Instant::now();
    let s = sample(&db, &nodes).await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "{} one-second answers took {took:?}: asked one after the other",
        arns.len()
    );
    assert_eq!(s.usage.len(), arns.len());
    assert_eq!(s.usage[&arns[0]], (64.0, 32.0), "CPU units and MiB");
    assert_eq!(s.tasks.len(), arns.len());
}

#[tokio::test(start_paused = true)]
async fn a_node_that_does_not_answer_leaves_only_its_task_out() {
    let (db, arns) = running_tasks(3).await;
    let nodes = SlowNodes {
        delay: Duration::from_millis(10),
        silent: vec![arns[1].clone()],
    };
    let started = Instant::now();
    let s = sample(&db, &nodes).await.unwrap();
    assert!(started.elapsed() <= NODE_ANSWER_TIMEOUT + Duration::from_secs(1));
    assert!(s.usage.contains_key(&arns[0]) && s.usage.contains_key(&arns[2]));
    assert!(!s.usage.contains_key(&arns[1]), "{:?}", s.usage);
}

#[tokio::test(start_paused = true)]
async fn a_reconciler_pass_never_waits_on_the_nodes() {
    let (db, arns) = running_tasks(4).await;
    let control = crate::ControlPlane::new(
        db,
        Arc::new(FakeDataPlane::default()),
        Arc::new(SlowNodes {
            delay: Duration::from_secs(2),
            silent: arns,
        }),
        &prometheus::Registry::new(),
    );
    // With the clock paused, time only moves when every task waits on a timer: a pass
    // that waited on a node would let this one-second bound run out.
    let pass = tokio::time::timeout(Duration::from_secs(1), control.reconcile_once()).await;
    assert!(
        pass.is_ok(),
        "a reconciler pass waited on the nodes' resource-use answers"
    );
}
