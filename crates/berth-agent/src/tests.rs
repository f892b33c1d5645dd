//! The agent's convergence pass against a fake runtime and a fake control plane that
//! records every task state change the agent reports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_model::agent::{ReportedTaskStatus, TaskStateChange};
use berth_model::arn;
use berth_model::ecs::{
    Container, ContainerInstance, HealthStatus, StopCode, Task, TaskDefinition, TaskStatus,
};
use berth_model::stack::Stack;
use berth_runtime::{
    ContainerState, ContainerStatus, LogStream, Runtime, RuntimeError, TaskSpec, TaskState,
    TaskStats,
};
use tokio::sync::{broadcast, mpsc, watch, Notify};

use crate::{Agent, AgentApi, AgentConfig, Result};

/// What the fake runtime was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Start(String),
    Stop(String),
    Remove(String),
}

struct FakeRuntime {
    tasks: Mutex<BTreeMap<String, TaskState>>,
    calls: mpsc::UnboundedSender<Call>,
    events: broadcast::Sender<TaskState>,
    /// When set, a start shows its containers PENDING and waits for this to be notified.
    start_gate: Mutex<Option<Arc<Notify>>>,
    /// When set, `list` opens this gate right after taking its snapshot and lets the
    /// started task finish before it returns (a start ending between a pass's reads).
    list_opens: Mutex<Option<Arc<Notify>>>,
}

fn container(name: &str, status: ContainerStatus) -> ContainerState {
    ContainerState {
        name: name.into(),
        runtime_id: Some(format!("pid-{name}")),
        status,
        exit_code: None,
        reason: None,
        health: HealthStatus::Unknown,
        network_bindings: Vec::new(),
        private_ip: None,
        essential: true,
    }
}

fn running_state(task_arn: &str) -> TaskState {
    TaskState {
        task_arn: task_arn.into(),
        containers: vec![container("app", ContainerStatus::Running)],
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn kind(&self) -> &'static str {
        "fake"
    }

    async fn start(&self, spec: &TaskSpec) -> berth_runtime::Result<TaskState> {
        let gate = self.start_gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            let mut starting = running_state(&spec.task_arn);
            starting.containers[0].status = ContainerStatus::Pending;
            self.tasks
                .lock()
                .unwrap()
                .insert(spec.task_arn.clone(), starting);
            self.calls.send(Call::Start(spec.task_arn.clone())).unwrap();
            gate.notified().await;
            let st = running_state(&spec.task_arn);
            self.tasks
                .lock()
                .unwrap()
                .insert(spec.task_arn.clone(), st.clone());
            return Ok(st);
        }
        let st = TaskState {
            task_arn: spec.task_arn.clone(),
            containers: spec
                .task_definition
                .container_definitions
                .iter()
                .map(|c| container(&c.name, ContainerStatus::Running))
                .collect(),
        };
        self.tasks
            .lock()
            .unwrap()
            .insert(spec.task_arn.clone(), st.clone());
        self.calls.send(Call::Start(spec.task_arn.clone())).unwrap();
        Ok(st)
    }

    async fn stop(&self, task_arn: &str) -> berth_runtime::Result<TaskState> {
        self.calls.send(Call::Stop(task_arn.into())).unwrap();
        let mut tasks = self.tasks.lock().unwrap();
        let st = tasks
            .get_mut(task_arn)
            .ok_or_else(|| RuntimeError::UnknownTask(task_arn.into()))?;
        for c in &mut st.containers {
            c.status = ContainerStatus::Stopped;
            c.exit_code = Some(143);
        }
        Ok(st.clone())
    }

    async fn remove(&self, task_arn: &str) -> berth_runtime::Result<()> {
        self.tasks.lock().unwrap().remove(task_arn);
        self.calls.send(Call::Remove(task_arn.into())).unwrap();
        Ok(())
    }

    async fn list(&self) -> berth_runtime::Result<Vec<TaskState>> {
        let snapshot = self.tasks.lock().unwrap().values().cloned().collect();
        let opens = self.list_opens.lock().unwrap().take();
        if let Some(gate) = opens {
            gate.notify_one();
            // On the test's one thread, the woken start runs to its end (every fake
            // call it makes is ready at once) before this returns.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
        }
        Ok(snapshot)
    }

    fn subscribe(&self) -> broadcast::Receiver<TaskState> {
        self.events.subscribe()
    }

    async fn logs(
        &self,
        _task_arn: &str,
        _container: Option<&str>,
        _follow: bool,
    ) -> berth_runtime::Result<LogStream> {
        Ok(Box::pin(futures::stream::iter([Ok(
            bytes::Bytes::from_static(b"hello\n"),
        )])))
    }

    async fn stats(&self, task_arn: &str) -> berth_runtime::Result<TaskStats> {
        if !self.tasks.lock().unwrap().contains_key(task_arn) {
            return Err(RuntimeError::UnknownTask(task_arn.into()));
        }
        Ok(TaskStats {
            cpu_units: 512.0,
            memory_bytes: 1 << 20,
        })
    }

    /// Echoes the command, exiting with its word count.
    async fn exec(
        &self,
        task_arn: &str,
        request: &berth_runtime::ExecRequest,
    ) -> berth_runtime::Result<berth_runtime::ExecOutput> {
        if !self.tasks.lock().unwrap().contains_key(task_arn) {
            return Err(RuntimeError::UnknownTask(task_arn.into()));
        }
        Ok(berth_runtime::ExecOutput {
            container: request.container.clone().unwrap_or_else(|| "app".into()),
            exit_code: request.command.len() as i32,
            stdout: request.command.join(" ").into_bytes(),
            ..Default::default()
        })
    }
}

/// A control plane that serves a fixed set of tasks and records every report.
struct FakeApi {
    tasks: Mutex<Vec<Task>>,
    definitions: BTreeMap<String, TaskDefinition>,
    reports: mpsc::UnboundedSender<TaskStateChange>,
    changes: watch::Sender<u64>,
}

#[async_trait]
impl AgentApi for FakeApi {
    async fn register_instance(&self, instance: ContainerInstance) -> Result<ContainerInstance> {
        Ok(instance)
    }

    async fn assigned_tasks(&self, container_instance_arn: &str) -> Result<Vec<Task>> {
        Ok(self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.container_instance_arn.as_deref() == Some(container_instance_arn))
            .cloned()
            .collect())
    }

    async fn task_definition(&self, arn: &str) -> Result<Option<TaskDefinition>> {
        Ok(self.definitions.get(arn).cloned())
    }

    async fn submit_task_state_change(&self, change: TaskStateChange) -> Result<Option<Task>> {
        let task = self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.task_arn == change.task_arn)
            .cloned();
        self.reports.send(change).unwrap();
        Ok(task)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

struct Harness {
    agent: Agent,
    api: Arc<FakeApi>,
    runtime: Arc<FakeRuntime>,
    reports: mpsc::UnboundedReceiver<TaskStateChange>,
    calls: mpsc::UnboundedReceiver<Call>,
}

const TASK_DEFINITION: &str = "taskDefinitions:\n  - family: web\n    containerDefinitions:\n      - name: app\n        image: whoami\n";

fn harness() -> Harness {
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let td = Stack::from_yaml(TASK_DEFINITION)
        .unwrap()
        .task_definitions
        .remove(0);
    let api = Arc::new(FakeApi {
        tasks: Mutex::default(),
        definitions: [(arn::task_definition("web", 1), td)].into(),
        reports: reports_tx,
        changes: watch::channel(0).0,
    });
    let runtime = Arc::new(FakeRuntime {
        tasks: Mutex::default(),
        calls: calls_tx,
        events: broadcast::channel(16).0,
        start_gate: Mutex::default(),
        list_opens: Mutex::default(),
    });
    let agent = Agent::new(
        api.clone(),
        runtime.clone(),
        AgentConfig {
            cluster: "default".into(),
            instance_id: "i-1".into(),
            address: "10.1.2.3".into(),
            mesh_inbound: Some("10.1.2.3:15443".parse().unwrap()),
            resync: Duration::from_secs(2),
        },
    );
    Harness {
        agent,
        api,
        runtime,
        reports,
        calls,
    }
}

impl Harness {
    fn place(&self, id: &str, last: TaskStatus, desired: TaskStatus) -> String {
        let task_arn = arn::task("default", id);
        self.api.tasks.lock().unwrap().push(Task {
            task_arn: task_arn.clone(),
            cluster_arn: arn::cluster("default"),
            task_definition_arn: arn::task_definition("web", 1),
            container_instance_arn: Some(self.agent.instance_arn().to_string()),
            last_status: last,
            desired_status: desired,
            containers: vec![Container {
                name: "app".into(),
                last_status: last,
                ..Default::default()
            }],
            ..Default::default()
        });
        task_arn
    }

    fn set_task(&self, task_arn: &str, f: impl FnOnce(&mut Task)) {
        let mut tasks = self.api.tasks.lock().unwrap();
        f(tasks.iter_mut().find(|t| t.task_arn == task_arn).unwrap());
    }

    fn runs(&self, task_arn: &str) {
        self.runtime
            .tasks
            .lock()
            .unwrap()
            .insert(task_arn.into(), running_state(task_arn));
    }

    /// The next report, waited for with an upper bound (starts and stops run in tasks
    /// the pass spawns).
    async fn report(&mut self) -> TaskStateChange {
        tokio::time::timeout(Duration::from_secs(10), self.reports.recv())
            .await
            .expect("a report within 10 s")
            .expect("the reports channel is open")
    }

    async fn call(&mut self) -> Call {
        tokio::time::timeout(Duration::from_secs(10), self.calls.recv())
            .await
            .expect("a runtime call within 10 s")
            .expect("the calls channel is open")
    }

    fn no_call_yet(&mut self) -> bool {
        self.calls.try_recv().is_err()
    }
}

#[tokio::test]
async fn a_placed_task_is_started_and_reported_pending_then_running() {
    let mut h = harness();
    let task = h.place("t1", TaskStatus::Provisioning, TaskStatus::Running);
    h.agent.reconcile().await.unwrap();

    let pending = h.report().await;
    assert_eq!(pending, TaskStateChange::pending(&task));
    assert_eq!(h.call().await, Call::Start(task.clone()));
    let running = h.report().await;
    assert_eq!(running.task_arn, task);
    assert_eq!(running.status, ReportedTaskStatus::Running);
    assert!(running.started_at.is_some(), "a start carries its time");
    assert_eq!(running.containers.len(), 1);
    assert_eq!(running.containers[0].container_name, "app");
    assert_eq!(running.containers[0].status, TaskStatus::Running);
    assert_eq!(running.containers[0].runtime_id.as_deref(), Some("pid-app"));
}

#[tokio::test]
async fn a_start_that_ends_during_a_pass_is_not_taken_for_an_interrupted_one() {
    let mut h = harness();
    let gate = Arc::new(Notify::new());
    *h.runtime.start_gate.lock().unwrap() = Some(gate.clone());
    let task = h.place("t1", TaskStatus::Provisioning, TaskStatus::Running);
    h.agent.reconcile().await.unwrap();
    assert_eq!(h.report().await, TaskStateChange::pending(&task));
    assert_eq!(h.call().await, Call::Start(task.clone()));

    // The next pass reads the record (PENDING) and the runtime (containers PENDING);
    // the start finishes right after, before the pass looks at the task.
    h.set_task(&task, |t| t.last_status = TaskStatus::Pending);
    *h.runtime.list_opens.lock().unwrap() = Some(gate);
    h.agent.reconcile().await.unwrap();
    let running = h.report().await;
    assert_eq!(running.status, ReportedTaskStatus::Running);
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    assert!(
        h.no_call_yet(),
        "the freshly started task was stopped as an interrupted start"
    );
    assert!(h.reports.try_recv().is_err(), "nothing more was reported");
    assert!(h.runtime.tasks.lock().unwrap()[&task].all_essential_running());
}

#[tokio::test]
async fn a_task_the_runtime_already_runs_is_adopted_not_started_again() {
    let mut h = harness();
    let task = h.place("t1", TaskStatus::Pending, TaskStatus::Running);
    h.runs(&task);
    h.agent.reconcile().await.unwrap();

    let adopted = h
        .reports
        .try_recv()
        .expect("adoption is reported in the pass");
    assert_eq!(adopted.status, ReportedTaskStatus::Running);
    assert!(adopted.started_at.is_some());
    assert_eq!(adopted.containers[0].status, TaskStatus::Running);
    assert!(h.no_call_yet(), "nothing was started or stopped");
}

#[tokio::test]
async fn a_running_task_the_runtime_lost_is_reported_stopped() {
    let mut h = harness();
    let task = h.place("t1", TaskStatus::Running, TaskStatus::Running);
    h.agent.reconcile().await.unwrap();

    let lost = h
        .reports
        .try_recv()
        .expect("the loss is reported in the pass");
    assert_eq!(lost.task_arn, task);
    assert_eq!(lost.status, ReportedTaskStatus::Stopped);
    assert_eq!(lost.stop_code, Some(StopCode::EssentialContainerExited));
    assert!(
        lost.stopped_reason
            .as_deref()
            .is_some_and(|r| r.contains("not running on its container instance")),
        "{lost:?}"
    );
    assert!(lost.stopped_at.is_some());
    assert!(h.no_call_yet());
}

#[tokio::test]
async fn what_the_runtime_runs_that_no_task_owns_is_stopped_and_removed() {
    let mut h = harness();
    let orphan = arn::task("default", "orphan");
    h.runs(&orphan);
    h.agent.reconcile().await.unwrap();

    assert_eq!(h.call().await, Call::Stop(orphan.clone()));
    assert_eq!(h.call().await, Call::Remove(orphan.clone()));
    assert!(h.runtime.tasks.lock().unwrap().is_empty());
    assert!(
        h.reports.try_recv().is_err(),
        "an orphan has no record to report to"
    );
}

#[tokio::test]
async fn a_draining_task_is_signalled_only_once_stopping() {
    let mut h = harness();
    let task = h.place("t1", TaskStatus::Deactivating, TaskStatus::Stopped);
    h.set_task(&task, |t| {
        t.stop_code = Some(StopCode::UserInitiated);
        t.stopped_reason = Some("Task stopped by user".into());
    });
    h.runs(&task);

    // DEACTIVATING: its targets still drain; the agent only reports what it sees.
    h.agent.reconcile().await.unwrap();
    let seen = h.reports.try_recv().expect("an observation");
    assert_eq!(seen.status, ReportedTaskStatus::Running);
    assert_eq!(
        seen.started_at, None,
        "an observation carries no start time"
    );
    assert!(h.no_call_yet(), "not signalled while draining");

    // STOPPING: the targets drained; now it is stopped.
    h.set_task(&task, |t| t.last_status = TaskStatus::Stopping);
    h.agent.reconcile().await.unwrap();
    assert_eq!(h.call().await, Call::Stop(task.clone()));
    let stopped = h.report().await;
    assert_eq!(stopped.status, ReportedTaskStatus::Stopped);
    assert_eq!(stopped.stop_code, Some(StopCode::UserInitiated));
    assert_eq!(
        stopped.stopped_reason.as_deref(),
        Some("Task stopped by user")
    );
    assert_eq!(stopped.containers[0].exit_code, Some(143));
    assert_eq!(stopped.containers[0].status, TaskStatus::Stopped);
}

#[tokio::test]
async fn an_essential_container_that_exited_stops_the_task_with_its_name() {
    let mut h = harness();
    let task = h.place("t1", TaskStatus::Running, TaskStatus::Running);
    let mut st = running_state(&task);
    st.containers[0].status = ContainerStatus::Stopped;
    st.containers[0].exit_code = Some(2);
    h.runtime.tasks.lock().unwrap().insert(task.clone(), st);
    h.agent.reconcile().await.unwrap();

    assert_eq!(h.call().await, Call::Stop(task.clone()));
    let stopped = h.report().await;
    assert_eq!(stopped.stop_code, Some(StopCode::EssentialContainerExited));
    assert_eq!(
        stopped.stopped_reason.as_deref(),
        Some("Essential container in task exited (app)")
    );
}

#[tokio::test]
async fn a_task_whose_definition_is_missing_fails_to_start() {
    let mut h = harness();
    let task = h.place("t1", TaskStatus::Provisioning, TaskStatus::Running);
    h.set_task(&task, |t| {
        t.task_definition_arn = arn::task_definition("gone", 1)
    });
    h.agent.reconcile().await.unwrap();

    let failed = h.report().await;
    assert_eq!(failed.status, ReportedTaskStatus::Stopped);
    assert_eq!(failed.stop_code, Some(StopCode::TaskFailedToStart));
    assert!(
        failed
            .stopped_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("Task failed to start:") && r.contains("gone:1")),
        "{failed:?}"
    );
    assert_eq!(h.call().await, Call::Remove(task));
}

#[tokio::test]
async fn registration_describes_the_instance() {
    let h = harness();
    let inst = h.agent.register().await.unwrap();
    assert_eq!(inst.container_instance_arn, h.agent.instance_arn());
    assert_eq!(inst.cluster_arn, arn::cluster("default"));
    assert_eq!(
        inst.attributes
            .get(crate::ADDRESS_ATTRIBUTE)
            .map(String::as_str),
        Some("10.1.2.3")
    );
    assert_eq!(
        inst.attributes
            .get(crate::MESH_INBOUND_ATTRIBUTE)
            .map(String::as_str),
        Some("10.1.2.3:15443")
    );
    assert_eq!(inst.runtime, "fake");
    let cpu = inst
        .registered_resources
        .iter()
        .find(|r| r.name == "CPU")
        .unwrap();
    assert!(cpu.integer_value >= 1024 && cpu.integer_value % 1024 == 0);
}

#[tokio::test]
async fn queries_answer_for_the_runtimes_tasks() {
    let h = harness();
    let task = arn::task("default", "t1");
    h.runs(&task);
    let q = h.agent.queries();
    let usage = q.usage(&task).await.unwrap();
    assert_eq!(usage.cpu_units, 512.0);
    assert_eq!(usage.memory_bytes, 1 << 20);
    let err = q.usage(&arn::task("default", "other")).await.unwrap_err();
    assert!(err.to_string().contains("is not known"), "{err}");
    let chunks: Vec<_> =
        futures::StreamExt::collect(q.logs(&task, None, false).await.unwrap()).await;
    assert_eq!(chunks.len(), 1);
    let request = berth_runtime::ExecRequest {
        container: None,
        command: vec!["echo".into(), "hi".into()],
        timeout: Duration::from_secs(5),
    };
    let out = q.exec(&task, &request).await.unwrap();
    assert_eq!((out.container.as_str(), out.exit_code), ("app", 2));
    assert_eq!(out.stdout, b"echo hi");
    let err = q
        .exec(&arn::task("default", "other"), &request)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not known"), "{err}");
}

#[test]
fn a_mesh_inbound_bound_on_every_address_is_advertised_on_the_nodes_address() {
    let any: SocketAddr = "0.0.0.0:15443".parse().unwrap();
    assert_eq!(
        crate::advertised_mesh_inbound(any, "10.1.2.3"),
        "10.1.2.3:15443".parse::<SocketAddr>().unwrap()
    );
    let one: SocketAddr = "192.168.1.4:40000".parse().unwrap();
    assert_eq!(crate::advertised_mesh_inbound(one, "10.1.2.3"), one);
    // A host name is not an IP: the bound address stays.
    assert_eq!(crate::advertised_mesh_inbound(any, "node-1.local"), any);
}

#[tokio::test]
async fn registration_carries_custom_and_built_in_attributes() {
    let mut h = harness();
    let custom = [("zone", "a"), ("berth.address", "overridden")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    h.agent = h.agent.with_attributes(custom.into_iter().collect());
    let inst = h.agent.register().await.unwrap();
    let attr = |name: &str| inst.attributes.get(name).map(String::as_str);
    assert_eq!(attr("zone"), Some("a"));
    assert_eq!(
        attr(crate::ADDRESS_ATTRIBUTE),
        Some("10.1.2.3"),
        "berth's own win"
    );
    assert_eq!(attr("berth.os-type"), Some("linux"));
    assert_eq!(attr("ecs.os-type"), Some("linux"));
    let arch = attr("berth.cpu-architecture").unwrap();
    assert!(matches!(arch, "x86_64" | "arm64"), "{arch}");
    assert_eq!(attr("ecs.cpu-architecture"), Some(arch));
}
