//! The shared `Runtime` implementation over a fake backend whose containers "run" by
//! changing their state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use futures::StreamExt;

use super::*;
use crate::task_core::start_in_dependency_order;
use crate::test_support::{fake, layered, set_status, FakeTask};
use crate::{ContainerStatus, Runtime, RuntimeError};

struct FakeBackend {
    tasks: TaskTable<FakeTask>,
    starts: AtomicUsize,
    stopped: Mutex<Vec<usize>>,
}

impl Backend for FakeBackend {
    type Task = FakeTask;

    fn tasks(&self) -> &TaskTable<FakeTask> {
        &self.tasks
    }

    async fn start_new(self: &Arc<Self>, spec: &TaskSpec) -> Result<TaskState> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        let task = fake(spec.clone());
        if let Err(known) = self.tasks.insert_new(task.clone()) {
            return Ok(known);
        }
        start_in_dependency_order(&task.core, |idx| {
            set_status(&self.tasks, &task, idx, ContainerStatus::Running);
            async { Ok(()) }
        })
        .await?;
        Ok(task.core.snapshot())
    }

    async fn stop_container(self: &Arc<Self>, task: &Arc<FakeTask>, idx: usize) {
        self.stopped.lock().unwrap().push(idx);
        set_status(&self.tasks, task, idx, ContainerStatus::Stopped);
    }

    async fn remove_stopped(&self, task: &Arc<FakeTask>) -> Result<()> {
        self.tasks.remove(task.core.arn());
        Ok(())
    }

    async fn log(&self, _: &Arc<FakeTask>, idx: usize, _: bool) -> Result<LogStream> {
        let line = bytes::Bytes::from(format!("container {idx}\n"));
        Ok(Box::pin(futures::stream::iter([Ok(line)])))
    }

    async fn task_stats(&self, task: &Arc<FakeTask>) -> TaskStats {
        TaskStats {
            cpu_units: 512.0,
            memory_bytes: task.core.def().container_definitions.len() as u64,
        }
    }

    /// Echoes the container's index and the command.
    async fn exec_in(
        &self,
        _: &Arc<FakeTask>,
        idx: usize,
        request: &ExecRequest,
    ) -> Result<ExecOutput> {
        Ok(ExecOutput {
            container: idx.to_string(),
            exit_code: 3,
            stdout: request.command.join(" ").into_bytes(),
            ..Default::default()
        })
    }
}

struct FakeRuntime {
    inner: Arc<FakeBackend>,
}

impl_runtime!(FakeRuntime, inner, "fake");

fn runtime() -> FakeRuntime {
    FakeRuntime {
        inner: Arc::new(FakeBackend {
            tasks: TaskTable::new(),
            starts: AtomicUsize::new(0),
            stopped: Mutex::new(Vec::new()),
        }),
    }
}

async fn read_all(mut log: LogStream) -> String {
    let mut out = Vec::new();
    while let Some(chunk) = log.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(start_paused = true)]
async fn starting_a_known_task_gives_its_state_without_starting_it_again() {
    let rt = runtime();
    assert_eq!(rt.kind(), "fake");
    let mut events = rt.subscribe();
    let spec = layered();
    let first = rt.start(&spec).await.unwrap();
    assert!(first.all_essential_running());
    assert_eq!(rt.start(&spec).await.unwrap(), first);
    assert_eq!(rt.inner.starts.load(Ordering::SeqCst), 1);
    assert_eq!(rt.list().await.unwrap(), vec![first.clone()]);
    let mut last = None;
    while let Ok(s) = events.try_recv() {
        last = Some(s);
    }
    assert_eq!(last, Some(first), "subscribers saw every change");
}

#[tokio::test(start_paused = true)]
async fn remove_waits_for_a_stop_which_walks_dependents_first() {
    let rt = runtime();
    let spec = layered();
    rt.start(&spec).await.unwrap();
    let still_runs = rt.remove(&spec.task_arn).await.unwrap_err();
    assert!(
        still_runs.to_string().contains("still runs"),
        "{still_runs}"
    );

    let end = rt.stop(&spec.task_arn).await.unwrap();
    assert!(end.all_stopped());
    assert_eq!(*rt.inner.stopped.lock().unwrap(), vec![0, 1, 2, 3]);
    rt.remove(&spec.task_arn).await.unwrap();
    assert!(rt.list().await.unwrap().is_empty());
    assert!(matches!(
        rt.stop(&spec.task_arn).await,
        Err(RuntimeError::UnknownTask(arn)) if arn == spec.task_arn
    ));
}

#[tokio::test(start_paused = true)]
async fn logs_name_a_container_or_take_the_first_and_stats_need_a_known_task() {
    let rt = runtime();
    let spec = layered();
    rt.start(&spec).await.unwrap();
    let arn = &spec.task_arn;
    let first = rt.logs(arn, None, false).await.unwrap();
    assert_eq!(read_all(first).await, "container 0\n");
    let db = rt.logs(arn, Some("db"), false).await.unwrap();
    assert_eq!(read_all(db).await, "container 1\n");
    let Err(err) = rt.logs(arn, Some("nope"), false).await else {
        panic!("a container the task does not have has no log")
    };
    assert!(
        matches!(&err, RuntimeError::UnknownContainer { task, container }
            if task == arn && container == "nope"),
        "{err:?}"
    );
    assert!(rt.logs("arn:none", None, false).await.is_err());

    let stats = rt.stats(arn).await.unwrap();
    assert_eq!((stats.cpu_units, stats.memory_bytes), (512.0, 4));
    assert!(matches!(
        rt.stats("arn:none").await,
        Err(RuntimeError::UnknownTask(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn exec_runs_in_a_running_container_of_a_known_task() {
    let rt = runtime();
    let spec = layered();
    let request = |container: Option<&str>| ExecRequest {
        container: container.map(String::from),
        command: vec!["echo".into(), "hi".into()],
        timeout: crate::exec::DEFAULT_EXEC_TIMEOUT,
    };
    assert!(matches!(
        rt.exec(&spec.task_arn, &request(None)).await,
        Err(RuntimeError::UnknownTask(_))
    ));
    rt.start(&spec).await.unwrap();
    let out = rt.exec(&spec.task_arn, &request(Some("db"))).await.unwrap();
    assert_eq!((out.container.as_str(), out.exit_code), ("1", 3));
    assert_eq!(out.stdout, b"echo hi");
    rt.stop(&spec.task_arn).await.unwrap();
    let stopped = rt.exec(&spec.task_arn, &request(Some("db"))).await;
    assert!(
        matches!(&stopped, Err(RuntimeError::ContainerNotRunning { container, .. }) if container == "db"),
        "{stopped:?}"
    );
}
