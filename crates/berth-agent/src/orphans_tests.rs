//! The orphan check against a runtime that reports orphans of two clusters and records
//! which it was asked to remove.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_runtime::{
    ExecOutput, ExecRequest, LiveOwners, LogStream, OrphanOwner, OrphanTask, Runtime, RuntimeError,
    TaskSpec, TaskState, TaskStats,
};

use crate::orphans::{check_orphans, orphan_gauge, OrphanSettings};

#[derive(Default)]
struct OrphanRuntime {
    orphans: Vec<OrphanTask>,
    /// The live owners each `orphans` call was given.
    asked_with: Mutex<Vec<LiveOwners>>,
    removed: Mutex<Vec<String>>,
}

#[async_trait]
impl Runtime for OrphanRuntime {
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn start(&self, spec: &TaskSpec) -> berth_runtime::Result<TaskState> {
        Err(RuntimeError::StartFailed(spec.task_arn.clone()))
    }
    async fn stop(&self, task_arn: &str) -> berth_runtime::Result<TaskState> {
        Err(RuntimeError::UnknownTask(task_arn.into()))
    }
    async fn remove(&self, task_arn: &str) -> berth_runtime::Result<()> {
        Err(RuntimeError::UnknownTask(task_arn.into()))
    }
    async fn list(&self) -> berth_runtime::Result<Vec<TaskState>> {
        Ok(Vec::new())
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TaskState> {
        tokio::sync::broadcast::channel(1).1
    }
    async fn logs(&self, t: &str, _: Option<&str>, _: bool) -> berth_runtime::Result<LogStream> {
        Err(RuntimeError::UnknownTask(t.into()))
    }
    async fn stats(&self, t: &str) -> berth_runtime::Result<TaskStats> {
        Err(RuntimeError::UnknownTask(t.into()))
    }
    async fn exec(&self, t: &str, _: &ExecRequest) -> berth_runtime::Result<ExecOutput> {
        Err(RuntimeError::UnknownTask(t.into()))
    }
    async fn orphans(&self, live: &LiveOwners) -> berth_runtime::Result<Vec<OrphanTask>> {
        self.asked_with.lock().unwrap().push(live.clone());
        Ok(self.orphans.clone())
    }
    async fn remove_orphan(&self, orphan: &OrphanTask) -> berth_runtime::Result<()> {
        self.removed.lock().unwrap().push(orphan.task_arn.clone());
        Ok(())
    }
}

fn orphan(cluster: &str, id: &str) -> OrphanTask {
    OrphanTask::new(
        berth_model::arn::task(cluster, id),
        cluster.into(),
        vec!["berth-whoami".into()],
        OrphanOwner::Instance("i-gone".into()),
        vec!["c1".into()],
    )
}

fn gauge_value(registry: &prometheus::Registry, cluster: &str) -> Option<f64> {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == "berth_orphaned_tasks")?
        .get_metric()
        .iter()
        .find(|m| m.get_label().iter().any(|l| l.value() == cluster))
        .map(|m| m.get_gauge().get_value())
}

async fn check(remove: bool) -> (Arc<OrphanRuntime>, prometheus::Registry, usize) {
    let fake = Arc::new(OrphanRuntime {
        orphans: vec![
            orphan("web", "t1"),
            orphan("web", "t2"),
            orphan("other", "t3"),
        ],
        ..Default::default()
    });
    let registry = prometheus::Registry::new();
    let gauge = orphan_gauge(&registry);
    let mut live = LiveOwners::default();
    live.instance_ids.insert("i-alive".into());
    let settings = OrphanSettings {
        live,
        remove,
        remove_hint: "berth server --remove-orphans".into(),
    };
    let runtime: berth_runtime::DynRuntime = fake.clone();
    let report = check_orphans(&runtime, "web", &settings, &gauge).await;
    assert_eq!(report.found.len(), 3);
    assert!(fake.asked_with.lock().unwrap()[0]
        .instance_ids
        .contains("i-alive"));
    (fake, registry, report.removed.len())
}

#[tokio::test]
async fn orphans_are_only_counted_without_the_flag() {
    let (fake, registry, removed) = check(false).await;
    assert_eq!(removed, 0);
    assert!(fake.removed.lock().unwrap().is_empty());
    assert_eq!(gauge_value(&registry, "web"), Some(2.0));
    assert_eq!(gauge_value(&registry, "other"), Some(1.0));
}

#[tokio::test]
async fn the_flag_removes_the_orphans_of_the_agents_cluster_only() {
    let (fake, registry, removed) = check(true).await;
    assert_eq!(removed, 2);
    assert_eq!(
        *fake.removed.lock().unwrap(),
        vec![
            berth_model::arn::task("web", "t1"),
            berth_model::arn::task("web", "t2")
        ]
    );
    assert_eq!(gauge_value(&registry, "web"), Some(0.0));
    assert_eq!(gauge_value(&registry, "other"), Some(1.0));
}
