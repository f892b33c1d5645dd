//! The sampler with explicit timestamps: data-plane statuses and a fake node in, windows
//! and reasons for missing data out; the Prometheus client against a loopback server
//! that answers like Prometheus.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use berth_model::agent::TaskUsage;
use berth_model::arn;
use berth_model::dataplane::TargetStatus;
use berth_model::ecs::{Service, Task, TaskDefinition, TaskStatus};
use berth_model::elb::{TargetHealth, TargetHealthState};
use serde_json::json;

use super::prometheus::fake::FakePrometheus;
use super::*;
use crate::task_nodes::{LogStream, NodeError, TaskNodes};

/// A node that reports the use it is given, and an error for every other task.
#[derive(Default)]
struct FakeNodes {
    usage: Mutex<BTreeMap<String, TaskUsage>>,
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl TaskNodes for FakeNodes {
    async fn logs(&self, task: &Task, _: Option<&str>, _: bool) -> Result<LogStream, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: task.task_arn.clone(),
        })
    }

    async fn usage(&self, task: &Task) -> Result<TaskUsage, NodeError> {
        self.asked.lock().unwrap().push(task.task_arn.clone());
        self.usage
            .lock()
            .unwrap()
            .get(&task.task_arn)
            .cloned()
            .ok_or_else(|| NodeError::Failed {
                task_arn: task.task_arn.clone(),
                message: "no such task".into(),
            })
    }
}

fn service(name: &str, target_groups: &[&str]) -> Service {
    let lbs: Vec<_> = target_groups
        .iter()
        .map(|tg| {
            json!({"targetGroupArn": arn::target_group(tg), "containerName": "app", "containerPort": 80})
        })
        .collect();
    serde_json::from_value(json!({
        "serviceName": name, "taskDefinition": name, "desiredCount": 1, "loadBalancers": lbs
    }))
    .unwrap()
}

fn status(tg: &str, port: u16, state: TargetHealthState, count: u64) -> TargetStatus {
    TargetStatus {
        target_group_arn: arn::target_group(tg),
        addr: SocketAddr::from(([10, 0, 0, 1], port)),
        health: TargetHealth {
            state,
            reason: None,
            description: None,
        },
        in_flight: 0,
        request_count: count,
        drained: false,
        ejected: false,
    }
}

fn task(service: &str, id: &str, td: &str, status: TaskStatus) -> Task {
    Task {
        task_arn: arn::task("default", id),
        cluster_arn: arn::cluster("default"),
        group: format!("service:{service}"),
        task_definition_arn: td.into(),
        last_status: status,
        ..Default::default()
    }
}

fn def(v: serde_json::Value) -> TaskDefinition {
    serde_json::from_value(v).unwrap()
}

fn sampler() -> (
    Arc<ServiceMetrics>,
    Arc<FakePrometheus>,
    ::prometheus::Registry,
) {
    let registry = ::prometheus::Registry::new();
    let prom = Arc::new(FakePrometheus::default());
    let m = Arc::new(ServiceMetrics::new(registry.clone(), prom.clone()));
    (m, prom, registry)
}

fn alb(tg: &str) -> MetricKey {
    MetricKey::AlbRequestCountPerTarget {
        target_group_arn: arn::target_group(tg),
    }
}

fn values(m: &ServiceMetrics, s: &ServiceKey, k: &MetricKey) -> Vec<Sample> {
    m.window(s, k)
        .map(|w| window::samples(&w))
        .unwrap_or_default()
}

use TargetHealthState::{Healthy, Initial, Unhealthy};

#[test]
fn request_count_per_target_per_minute_for_each_target_group_of_a_service() {
    let (m, _, _) = sampler();
    let services = [service("web", &["web", "admin"]), service("api", &["web"])];
    let web = ServiceKey::new("default", "web");
    let api = ServiceKey::new("default", "api");
    let s0 = [
        status("web", 1, Healthy, 100),
        status("web", 2, Healthy, 100),
        status("admin", 1, Healthy, 7),
    ];
    assert!(m.sample_fast(1000.0, &services, &s0));
    assert!(
        m.window(&web, &alb("web")).is_none(),
        "the first sample is a baseline"
    );
    assert_eq!(m.last_error(&web, &alb("web")), None);
    let s1 = [
        status("web", 1, Healthy, 130),
        status("web", 2, Healthy, 110),
        status("admin", 1, Healthy, 7),
    ];
    assert!(m.sample_fast(1002.0, &services, &s1));
    // 40 requests in 2 s over 2 healthy targets.
    assert_eq!(values(&m, &web, &alb("web")), vec![(1002.0, 600.0)]);
    assert_eq!(values(&m, &api, &alb("web")), vec![(1002.0, 600.0)]);
    assert_eq!(values(&m, &web, &alb("admin")), vec![(1002.0, 0.0)]);
    assert!(m.window(&api, &alb("admin")).is_none());
    assert_eq!(m.current(&web, &alb("web")), Some(600.0));
}

#[test]
fn no_healthy_target_is_missing_data_with_its_reason() {
    let (m, _, _) = sampler();
    let services = [service("web", &["web"])];
    let web = ServiceKey::new("default", "web");
    m.sample_fast(0.0, &services, &[status("web", 1, Healthy, 0)]);
    m.sample_fast(1.0, &services, &[status("web", 1, Healthy, 60)]);
    assert_eq!(m.current(&web, &alb("web")), Some(3600.0));
    let s = [
        status("web", 1, Unhealthy, 61),
        status("web", 2, Initial, 0),
    ];
    m.sample_fast(2.0, &services, &s);
    assert_eq!(
        values(&m, &web, &alb("web")),
        vec![(1.0, 3600.0)],
        "no sample added"
    );
    assert_eq!(m.current(&web, &alb("web")), None);
    assert_eq!(
        m.last_error(&web, &alb("web")).unwrap().to_string(),
        format!(
            "target group {} has no healthy target",
            arn::target_group("web")
        )
    );
    // No target registered at all: missing too.
    m.sample_fast(3.0, &services, &[]);
    assert!(m.last_error(&web, &alb("web")).is_some());
    // A healthy target again: a value, and the reason is gone.
    m.sample_fast(4.0, &services, &[status("web", 2, Healthy, 5)]);
    assert_eq!(m.current(&web, &alb("web")), Some(300.0));
    assert_eq!(m.last_error(&web, &alb("web")), None);
}

#[test]
fn counter_resets_and_targets_coming_and_going_through_the_sampler() {
    let (m, _, _) = sampler();
    let services = [service("web", &["web"])];
    let web = ServiceKey::new("default", "web");
    m.sample_fast(0.0, &services, &[status("web", 1, Healthy, 500)]);
    // Target 1 was removed and registered again (its counter restarted at 0, now 30);
    // target 2 is new and took 30.
    let s = [status("web", 1, Healthy, 30), status("web", 2, Healthy, 30)];
    m.sample_fast(1.0, &services, &s);
    assert_eq!(m.current(&web, &alb("web")), Some(1800.0));
    // Target 2 is gone: target 1 alone, 6 requests in 2 s.
    m.sample_fast(3.0, &services, &[status("web", 1, Healthy, 36)]);
    assert_eq!(m.current(&web, &alb("web")), Some(180.0));
}

#[test]
fn samples_at_most_once_per_interval_and_forgets_gone_services() {
    let (m, _, _) = sampler();
    let web = ServiceKey::new("default", "web");
    let services = [service("web", &["web"])];
    m.sample_fast(0.0, &services, &[status("web", 1, Healthy, 0)]);
    assert!(!m.sample_fast(0.5, &services, &[status("web", 1, Healthy, 10)]));
    assert!(m.sample_fast(1.0, &services, &[status("web", 1, Healthy, 10)]));
    assert_eq!(values(&m, &web, &alb("web")), vec![(1.0, 600.0)]);
    // The service no longer uses the group: its window goes.
    let moved = [service("web", &["other"])];
    m.sample_fast(2.0, &moved, &[status("web", 1, Healthy, 10)]);
    assert!(m.window(&web, &alb("web")).is_none());
    m.sample_fast(3.0, &[], &[]);
    assert!(m.current_values(&web).is_empty());
}

#[tokio::test]
async fn cpu_and_memory_average_over_running_tasks_against_their_reservations() {
    let (m, _, _) = sampler();
    let nodes = FakeNodes::default();
    let services = [
        service("web", &[]),
        service("worker", &[]),
        service("idle", &[]),
    ];
    let defs: BTreeMap<String, TaskDefinition> = [
        (
            "td-task-level".to_string(),
            def(json!({"family": "web", "cpu": "512", "memory": "1024",
                "containerDefinitions": [{"name": "app", "image": "x", "cpu": 128, "memory": 128}]})),
        ),
        (
            "td-containers".to_string(),
            def(json!({"family": "worker", "containerDefinitions": [
                {"name": "a", "image": "x", "cpu": 256, "memoryReservation": 100},
                {"name": "b", "image": "x", "cpu": 256, "memory": 156}]})),
        ),
    ]
    .into();
    let tasks = [
        task("web", "w1", "td-task-level", TaskStatus::Running),
        task("web", "w2", "td-task-level", TaskStatus::Running),
        task("web", "w3", "td-task-level", TaskStatus::Stopped),
        task("web", "w4", "td-task-level", TaskStatus::Running), // its node fails
        task("worker", "k1", "td-containers", TaskStatus::Running),
        task("idle", "i1", "td-containers", TaskStatus::Pending),
    ];
    let mib = 1024 * 1024;
    for (id, cpu, mem) in [
        ("w1", 512.0, 256),
        ("w2", 0.0, 768),
        ("w3", 512.0, 1024),
        ("k1", 128.0, 64),
    ] {
        nodes.usage.lock().unwrap().insert(
            arn::task("default", id),
            TaskUsage {
                cpu_units: cpu,
                memory_bytes: mem * mib,
            },
        );
    }
    let round = m.slow_round(50.0).expect("the first round starts");
    m.sample_slow(50.0, &services, &tasks, &defs, &nodes).await;
    drop(round);
    let web = ServiceKey::new("default", "web");
    let worker = ServiceKey::new("default", "worker");
    let idle = ServiceKey::new("default", "idle");
    // web: task level 512 units / 1024 MiB; (100% + 0%) / 2 and (25% + 75%) / 2.
    assert_eq!(
        values(&m, &web, &MetricKey::CpuUtilization),
        vec![(50.0, 50.0)]
    );
    assert_eq!(
        values(&m, &web, &MetricKey::MemoryUtilization),
        vec![(50.0, 50.0)]
    );
    // worker: containers 256 + 256 units, 100 (soft) + 156 MiB.
    assert_eq!(m.current(&worker, &MetricKey::CpuUtilization), Some(25.0));
    assert_eq!(
        m.current(&worker, &MetricKey::MemoryUtilization),
        Some(25.0)
    );
    // idle: no running task, no value, a reason.
    assert_eq!(m.current(&idle, &MetricKey::CpuUtilization), None);
    assert_eq!(
        m.last_error(&idle, &MetricKey::MemoryUtilization)
            .unwrap()
            .to_string(),
        "no running task of the service reported its memory use against a memory reservation"
    );
    // Only running tasks of known services were asked about.
    let mut asked = nodes.asked.lock().unwrap().clone();
    asked.sort();
    let expect: Vec<String> = ["k1", "w1", "w2", "w4"]
        .iter()
        .map(|i| arn::task("default", i))
        .collect();
    assert_eq!(asked, expect);
}

#[tokio::test]
async fn one_slow_round_at_a_time_and_at_most_once_per_interval() {
    let (m, _, _) = sampler();
    let first = m.slow_round(10.0).unwrap();
    assert!(m.slow_round(20.0).is_none(), "a round is running");
    drop(first);
    assert!(
        m.slow_round(10.5).is_none(),
        "too soon after the last start"
    );
    assert!(m.slow_round(11.0).is_some());
}

#[tokio::test]
async fn customized_metrics_from_the_registry_and_from_prometheus() {
    let (m, prom, registry) = sampler();
    let g = ::prometheus::GaugeVec::new(::prometheus::Opts::new("jobs_waiting", "h"), &["queue"])
        .unwrap();
    registry.register(Box::new(g.clone())).unwrap();
    g.with_label_values(&["a"]).set(12.0);
    g.with_label_values(&["b"]).set(1.0);
    let web = ServiceKey::new("default", "web");
    let services = [service("web", &[])];
    let jobs = CustomMetric::Registry(RegistryMetric {
        name: "jobs_waiting".into(),
        labels: [("queue".to_string(), "a".to_string())].into(),
    });
    let good = CustomMetric::Prometheus {
        url: "http://prom".into(),
        query: "sum(rate(x[30s]))".into(),
    };
    let bad = CustomMetric::Prometheus {
        url: "http://down".into(),
        query: "up".into(),
    };
    prom.answer("http://prom", "sum(rate(x[30s]))", Ok(41.5));
    m.set_custom_metrics(
        web.clone(),
        BTreeSet::from([jobs.clone(), good.clone(), bad.clone()]),
    );

    m.sample_fast(100.0, &services, &[]);
    m.sample_slow(
        100.0,
        &services,
        &[],
        &BTreeMap::new(),
        &FakeNodes::default(),
    )
    .await;
    let custom = |c: &CustomMetric| MetricKey::Custom(c.clone());
    assert_eq!(values(&m, &web, &custom(&jobs)), vec![(100.0, 12.0)]);
    assert_eq!(values(&m, &web, &custom(&good)), vec![(100.0, 41.5)]);
    assert_eq!(m.current(&web, &custom(&bad)), None);
    assert_eq!(
        m.last_error(&web, &custom(&bad)).unwrap().to_string(),
        "Prometheus at http://down did not answer: connection refused"
    );

    // No longer asked for: not queried, and the windows go at the next sample.
    m.set_custom_metrics(web.clone(), BTreeSet::new());
    prom.asked.lock().unwrap().clear();
    m.sample_fast(101.0, &services, &[]);
    m.sample_slow(
        101.0,
        &services,
        &[],
        &BTreeMap::new(),
        &FakeNodes::default(),
    )
    .await;
    assert!(prom.asked.lock().unwrap().is_empty());
    assert!(m.window(&web, &custom(&jobs)).is_none());
    assert!(m.window(&web, &custom(&good)).is_none());
}

/// Serves `answers` in order, one per connection, like Prometheus' query API; records
/// each request's target.
async fn fake_prometheus_server(
    answers: Vec<(u16, String)>,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for (status, body) in answers {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf).to_string();
            let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(target);
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn the_http_client_asks_the_query_api_and_reads_one_sample() {
    let one = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"123.5"]}]}}"#;
    let two = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,"2"]}]}}"#;
    let bad = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#;
    let (addr, seen) = fake_prometheus_server(vec![
        (200, one.into()),
        (200, two.into()),
        (400, bad.into()),
    ])
    .await;
    let url = format!("http://{addr}/");
    let p = HttpPrometheus::default();
    let q = "sum(rate(berth_lb_requests_total{load_balancer=\"web\"}[30s]))";
    assert_eq!(p.query(&url, q).await.unwrap(), 123.5);
    let e = p.query(&url, "x").await.unwrap_err();
    assert!(e.to_string().contains("2 samples"), "{e}");
    let e = p.query(&url, "sum(x").await.unwrap_err();
    assert_eq!(
        e,
        MetricsError::PrometheusAnswer {
            url: url.clone(),
            query: "sum(x".into(),
            reason: "HTTP 400, bad_data: 1:5: parse error: unclosed left parenthesis".into(),
        }
    );
    let targets = seen.lock().unwrap().clone();
    assert_eq!(targets.len(), 3);
    // The query travels URL-encoded to /api/v1/query.
    assert!(
        targets[0].starts_with("/api/v1/query?query="),
        "{}",
        targets[0]
    );
    let encoded = targets[0].trim_start_matches("/api/v1/query?query=");
    assert!(
        !encoded.contains('{') && !encoded.contains(' '),
        "{encoded}"
    );
    assert!(encoded.contains("berth_lb_requests_total"), "{encoded}");
    // Nobody listening: unreachable, naming the URL.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let e = p.query(&dead, "up").await.unwrap_err();
    assert!(
        matches!(e, MetricsError::PrometheusUnreachable { ref url, .. } if *url == dead),
        "{e}"
    );
}

/// A node that reports a task's use only when the test lets it.
struct StuckNodes {
    asked: tokio::sync::Notify,
    release: tokio::sync::watch::Receiver<bool>,
}

#[async_trait]
impl TaskNodes for StuckNodes {
    async fn logs(&self, task: &Task, _: Option<&str>, _: bool) -> Result<LogStream, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: task.task_arn.clone(),
        })
    }

    async fn usage(&self, _: &Task) -> Result<TaskUsage, NodeError> {
        self.asked.notify_one();
        let _ = self.release.clone().wait_for(|r| *r).await;
        Ok(TaskUsage {
            cpu_units: 128.0,
            memory_bytes: 256 << 20,
        })
    }
}

#[tokio::test]
async fn the_reconcile_pass_does_not_wait_for_a_slow_node() {
    use crate::data_plane::fake::FakeDataPlane;
    use crate::db;
    use std::time::Duration;

    let store = crate::Db::new(Arc::new(berth_store::MemoryStore::new()));
    let td = def(json!({"family": "web", "revision": 1, "status": "ACTIVE",
        "taskDefinitionArn": arn::task_definition("web", 1), "cpu": "512", "memory": "1024",
        "containerDefinitions": [{"name": "app", "image": "x"}]}));
    store.put(&db::taskdef_key("web", 1), &td).await.unwrap();
    let mut svc = service("web", &[]);
    svc.task_definition = arn::task_definition("web", 1);
    svc.service_arn = arn::service("default", "web");
    store
        .put(&db::service_key("default", "web"), &svc)
        .await
        .unwrap();
    let mut t = task(
        "web",
        "t1",
        &arn::task_definition("web", 1),
        TaskStatus::Running,
    );
    t.desired_status = TaskStatus::Running;
    store.put(&db::task_key("default", "t1"), &t).await.unwrap();

    let (release, release_rx) = tokio::sync::watch::channel(false);
    let nodes = Arc::new(StuckNodes {
        asked: tokio::sync::Notify::new(),
        release: release_rx,
    });
    let cp = crate::ControlPlane::new(
        store,
        Arc::new(FakeDataPlane::default()),
        nodes.clone(),
        &::prometheus::Registry::new(),
    );
    let bound = Duration::from_secs(10);
    // The sampling step of a reconcile pass (the service reconciler would stop this
    // hand-made task, which belongs to no deployment).
    tokio::time::timeout(bound, cp.observe_at(crate::unix_now()))
        .await
        .expect("the pass returns while the node has not answered")
        .unwrap();
    tokio::time::timeout(bound, nodes.asked.notified())
        .await
        .expect("the usage round asked the node");
    let web = ServiceKey::new("default", "web");
    assert_eq!(
        cp.service_metrics()
            .current(&web, &MetricKey::CpuUtilization),
        None
    );
    release.send(true).unwrap();
    // The round finishes once the node answers: 128 of 512 units, 256 of 1024 MiB.
    let mut value = None;
    for _ in 0..1000 {
        value = cp
            .service_metrics()
            .current(&web, &MetricKey::CpuUtilization);
        if value.is_some() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(value, Some(25.0));
    assert_eq!(
        cp.service_metrics()
            .current(&web, &MetricKey::MemoryUtilization),
        Some(25.0)
    );
}

#[tokio::test]
async fn the_pass_samples_request_counts_from_the_data_planes_statuses() {
    use crate::data_plane::fake::FakeDataPlane;

    let store = crate::Db::new(Arc::new(berth_store::MemoryStore::new()));
    let mut svc = service("web", &["web"]);
    svc.service_arn = arn::service("default", "web");
    store
        .put(&crate::db::service_key("default", "web"), &svc)
        .await
        .unwrap();
    let dp = Arc::new(FakeDataPlane::default());
    let registry = ::prometheus::Registry::new();
    let cp = crate::ControlPlane::new(store, dp.clone(), Arc::new(FakeNodes::default()), &registry);
    *dp.statuses.lock().unwrap() =
        vec![status("web", 1, Healthy, 10), status("web", 2, Healthy, 0)];
    cp.observe_at(1000.0).await.unwrap();
    *dp.statuses.lock().unwrap() =
        vec![status("web", 1, Healthy, 25), status("web", 2, Healthy, 15)];
    cp.observe_at(1003.0).await.unwrap();
    let web = ServiceKey::new("default", "web");
    // 30 requests in 3 s over 2 healthy targets.
    assert_eq!(
        values(&cp.service_metrics, &web, &alb("web")),
        vec![(1003.0, 300.0)]
    );
    let text = ::prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains("berth_service_request_count_per_target{cluster=\"default\",service=\"web\",target_group=\"web\"} 300"),
        "{text}"
    );
}
