//! A week of churn on a compressed clock: a service whose tasks crash and are replaced
//! every few simulated minutes, a deployment every six hours and a scheduled scale out and
//! in every half hour, against the redb store. What berth keeps (stopped tasks an hour,
//! 100 events and 100 scaling activities per service, the store's revision log) is
//! bounded, so the number of keys and the store file's size at the end of the week are
//! no larger than after the first days.
//!
//! The clock is `berth_model::time`'s, moved with `time::advance` (this test binary is
//! its own process, so nothing else sees it move); the agent is the test itself,
//! answering through the control plane's `AgentService` as a node's agent would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use berth_control::task_nodes::LogStream;
use berth_control::{ControlPlane, DataPlane, Db, NodeError, TaskNodes};
use berth_model::agent::{ContainerStateChange, TaskStateChange, TaskUsage};
use berth_model::dataplane::{CertificateRefusal, ConfigRefusal, ProxyConfig, TargetStatus};
use berth_model::ecs::{ContainerInstance, HealthStatus, Resource, StopCode, Task, TaskStatus};
use berth_model::elb::Listener;
use berth_model::{arn, time};
use berth_store::{RedbStore, Store};
use tokio::sync::watch;

/// Simulated time per step.
const STEP_SECONDS: f64 = 600.0;
const STEPS_PER_DAY: usize = 144;

struct NoDataPlane(watch::Sender<u64>);

#[async_trait]
impl DataPlane for NoDataPlane {
    async fn apply(&self, _: ProxyConfig) -> Result<BTreeMap<String, SocketAddr>, ConfigRefusal> {
        Ok(BTreeMap::new())
    }
    fn target_statuses(&self) -> Vec<TargetStatus> {
        Vec::new()
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
    fn check_certificates(&self, _: &Listener) -> Result<(), CertificateRefusal> {
        Ok(())
    }
}

struct NoNodes;

#[async_trait]
impl TaskNodes for NoNodes {
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
}

const STACK: &str = r#"
taskDefinitions:
  - family: app
    containerDefinitions:
      - {name: app, image: app, cpu: 64, memoryReservation: 32, essential: true}
services:
  - serviceName: churn
    cluster: default
    taskDefinition: app
    desiredCount: 3
scalableTargets:
  - {resourceId: service/default/churn, minCapacity: 2, maxCapacity: 4}
scheduledActions:
  - scheduledActionName: out
    resourceId: service/default/churn
    schedule: cron(0 * * * ? *)
    scalableTargetAction: {minCapacity: 4, maxCapacity: 4}
  - scheduledActionName: in
    resourceId: service/default/churn
    schedule: cron(30 * * * ? *)
    scalableTargetAction: {minCapacity: 2, maxCapacity: 2}
"#;

/// The service pointed at `app:<revision>` (a deployment), the rest as in [`STACK`].
fn deploy(revision: u32) -> String {
    STACK.replace(
        "taskDefinition: app\n",
        &format!("taskDefinition: app:{revision}\n"),
    )
}

struct Simulation {
    control: Arc<ControlPlane>,
    store: RedbStore,
    instance_arn: String,
    crashes: usize,
}

impl Simulation {
    async fn apply(&self, text: &str) {
        let stack = berth_model::stack::Stack::from_yaml(text).unwrap();
        berth_control::apply::apply(&self.control.db, &*self.control.data_plane, &stack, false)
            .await
            .unwrap();
    }

    /// What the node's agent does: start what should run, stop what was asked to stop,
    /// and (when `crash`) report one running task's essential container exited.
    async fn agent_pass(&mut self, crash: bool) {
        let agent = self.control.agent_service();
        agent.record_heartbeat(&self.instance_arn).await.unwrap();
        let tasks = agent.assigned_tasks(&self.instance_arn).await.unwrap();
        let mut crashed = !crash;
        for t in tasks {
            let change = match (t.desired_status, t.last_status) {
                (TaskStatus::Running, s) if s < TaskStatus::Running => {
                    TaskStateChange::running(&t.task_arn, Some(time::now()))
                }
                (TaskStatus::Running, TaskStatus::Running) if !crashed => {
                    crashed = true;
                    self.crashes += 1;
                    TaskStateChange::stopped(
                        &t.task_arn,
                        StopCode::EssentialContainerExited,
                        "Essential container in task exited",
                        time::now(),
                    )
                    .with_containers(
                        vec![ContainerStateChange {
                            container_name: "app".into(),
                            runtime_id: None,
                            status: TaskStatus::Stopped,
                            exit_code: Some(1),
                            reason: None,
                            health_status: HealthStatus::Unknown,
                            network_bindings: Vec::new(),
                            private_ipv4_address: None,
                        }],
                        HealthStatus::Unknown,
                    )
                }
                (TaskStatus::Stopped, s) if s != TaskStatus::Stopped => TaskStateChange::stopped(
                    &t.task_arn,
                    StopCode::ServiceSchedulerInitiated,
                    "stopped",
                    time::now(),
                ),
                _ => continue,
            };
            agent.submit_task_state_change(change).await.unwrap();
        }
    }

    async fn step(&mut self, crash: bool) {
        time::advance(STEP_SECONDS);
        self.agent_pass(false).await;
        self.control.reconcile_once().await;
        self.agent_pass(crash).await;
        self.control.reconcile_once().await;
        self.agent_pass(false).await;
        self.control.reconcile_once().await;
    }

    /// Keys in the store, by their first path segment, and the file's size.
    async fn measure(&self) -> (BTreeMap<String, usize>, u64) {
        let mut keys = BTreeMap::new();
        for e in self.store.list("/").await.unwrap() {
            let kind = e.key.split('/').nth(1).unwrap_or("").to_string();
            *keys.entry(kind).or_insert(0) += 1;
        }
        let size = std::fs::metadata(self.store.path()).unwrap().len();
        (keys, size)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_churn_keeps_the_store_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("berth.redb")).unwrap();
    let db = Db::new(Arc::new(store.clone()));
    let control = ControlPlane::new(
        db,
        Arc::new(NoDataPlane(watch::channel(0).0)),
        Arc::new(NoNodes),
        &prometheus::Registry::new(),
    );
    control.ensure_default_cluster().await.unwrap();
    let instance = ContainerInstance {
        ec2_instance_id: "i-churn".into(),
        container_instance_arn: arn::container_instance("default", "i-churn"),
        cluster_arn: arn::cluster("default"),
        status: "ACTIVE".into(),
        agent_connected: true,
        registered_resources: ["CPU", "MEMORY"]
            .into_iter()
            .map(|name| Resource {
                name: name.into(),
                integer_value: 4096,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let instance = control
        .agent_service()
        .register_instance(instance)
        .await
        .unwrap();
    let mut sim = Simulation {
        control,
        store,
        instance_arn: instance.container_instance_arn,
        crashes: 0,
    };
    sim.apply(STACK).await;
    // A second revision to deploy back and forth.
    sim.apply(&STACK.replace("image: app,", "image: app2,"))
        .await;

    let mut daily = Vec::new();
    for day in 1..=7 {
        for step in 0..STEPS_PER_DAY {
            if step % 36 == 0 {
                sim.apply(&deploy(if (day * 4 + step / 36) % 2 == 0 { 1 } else { 2 }))
                    .await;
            }
            sim.step(true).await;
        }
        let (keys, size) = sim.measure().await;
        let revision = sim.store.revision().await.unwrap();
        println!(
            "day {day}: {keys:?}, {size} bytes, revision {revision}, {} crashes",
            sim.crashes
        );
        daily.push((keys, size));
    }

    // Every kind of key is bounded: the counts at the end of the week are those of the
    // third day, when the hundred scaling activities were reached.
    let (third, third_size) = &daily[2];
    let (last, last_size) = &daily[6];
    assert_eq!(last["scalingactivities"], 100);
    assert_eq!(last["taskdefs"], 3);
    assert_eq!(last["services"], 1);
    // Tasks: those running plus those stopped within the last hour (a crash, a scale-in
    // or a replacement every few minutes), however many crashed over the week.
    assert!(sim.crashes > 1000, "{} crashes", sim.crashes);
    assert!(last["tasks"] <= 40, "{last:?}");
    let total = |k: &BTreeMap<String, usize>| k.values().sum::<usize>();
    assert!(
        total(last) <= total(third) + 5,
        "day 3: {third:?}, day 7: {last:?}"
    );
    // The file stops growing once the revision log is at its byte budget.
    assert!(
        last_size <= third_size,
        "the store grew from {third_size} bytes on day 3 to {last_size} on day 7"
    );
    assert!(*last_size < 64 << 20, "{last_size} bytes");
}
