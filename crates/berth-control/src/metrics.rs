//! Control-plane metrics, the counterparts of ECS's CloudWatch metrics
//! (AWS/ECS and ECS/ContainerInsights):
//!
//! | berth | ECS |
//! |---|---|
//! | `berth_service_desired_tasks{cluster,service}` | DesiredTaskCount |
//! | `berth_service_running_tasks{cluster,service}` | RunningTaskCount |
//! | `berth_service_pending_tasks{cluster,service}` | PendingTaskCount |
//! | `berth_service_cpu_utilization_ratio{cluster,service}` | CPUUtilization (÷100) |
//! | `berth_service_memory_utilization_ratio{cluster,service}` | MemoryUtilization (÷100) |
//! | `berth_service_request_count_per_target{cluster,service,target_group}` | ALB RequestCountPerTarget (per minute) |
//! | `berth_service_deployments{cluster,service}` | DeploymentCount |
//! | `berth_task_stopped_total{cluster,service,stop_code}` | (task state change events) |
//!
//! Utilization and request count per target are the latest samples of
//! [`crate::service_metrics`] (what target tracking sees), published after each sample;
//! a series is absent while its metric has no value (no running task, no healthy
//! target). Utilization is the average over the service's running tasks of use ÷
//! reservation; request count per target is a target group's requests per healthy target
//! per minute.

use std::collections::BTreeSet;

use berth_model::ecs::{Service, Task, TaskStatus};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::service_metrics::{MetricKey, ServiceKey, ServiceMetrics};

pub struct ControlMetrics {
    desired: IntGaugeVec,
    running: IntGaugeVec,
    pending: IntGaugeVec,
    deployments: IntGaugeVec,
    cpu: GaugeVec,
    memory: GaugeVec,
    request_count_per_target: GaugeVec,
    stopped: IntCounterVec,
    /// Tasks already counted as stopped, so a pass counts each once.
    counted: std::sync::Mutex<BTreeSet<String>>,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &["cluster", "service"]).expect("valid metric");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn ratio(r: &Registry, name: &str, help: &str) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), &["cluster", "service"]).expect("valid metric");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl ControlMetrics {
    pub fn new(r: &Registry) -> Self {
        let stopped = IntCounterVec::new(
            Opts::new(
                "berth_task_stopped_total",
                "Tasks that reached STOPPED, by stop code",
            ),
            &["cluster", "service", "stop_code"],
        )
        .expect("valid metric");
        r.register(Box::new(stopped.clone()))
            .expect("metric registered once");
        let request_count_per_target = GaugeVec::new(
            Opts::new(
                "berth_service_request_count_per_target",
                "Requests per healthy target per minute in a target group of the service (ALBRequestCountPerTarget)",
            ),
            &["cluster", "service", "target_group"],
        )
        .expect("valid metric");
        r.register(Box::new(request_count_per_target.clone()))
            .expect("metric registered once");
        Self {
            desired: gauge(
                r,
                "berth_service_desired_tasks",
                "desiredCount of the service",
            ),
            running: gauge(
                r,
                "berth_service_running_tasks",
                "Tasks of the service in RUNNING",
            ),
            pending: gauge(
                r,
                "berth_service_pending_tasks",
                "Tasks of the service not yet RUNNING",
            ),
            deployments: gauge(
                r,
                "berth_service_deployments",
                "Deployments of the service (PRIMARY and ACTIVE)",
            ),
            cpu: ratio(
                r,
                "berth_service_cpu_utilization_ratio",
                "CPU used over CPU reserved by the service's running tasks",
            ),
            memory: ratio(
                r,
                "berth_service_memory_utilization_ratio",
                "Memory used over memory reserved by the service's running tasks",
            ),
            request_count_per_target,
            stopped,
            counted: Default::default(),
        }
    }

    /// Sets the per-service gauges from one reconcile pass.
    pub fn observe_services(&self, services: &[Service], tasks: &[Task]) {
        let mut seen = BTreeSet::new();
        for s in services {
            let labels = [s.cluster_name(), s.service_name.as_str()];
            seen.insert((labels[0].to_string(), labels[1].to_string()));
            self.desired.with_label_values(&labels).set(s.desired_count);
            self.running
                .with_label_values(&labels)
                .set(i64::from(s.running_count));
            self.pending
                .with_label_values(&labels)
                .set(i64::from(s.pending_count));
            self.deployments
                .with_label_values(&labels)
                .set(s.deployments.len() as i64);
        }
        let mut counted = self.counted.lock().expect("counted set");
        for t in tasks
            .iter()
            .filter(|t| t.last_status == TaskStatus::Stopped)
        {
            if counted.insert(t.task_arn.clone()) {
                let code = t
                    .stop_code
                    .map(|c| format!("{c:?}"))
                    .unwrap_or_else(|| "None".into());
                self.stopped
                    .with_label_values(&[t.cluster_name(), t.service_name().unwrap_or(""), &code])
                    .inc();
            }
        }
        // Forget tasks the store no longer holds.
        let live: BTreeSet<&str> = tasks.iter().map(|t| t.task_arn.as_str()).collect();
        counted.retain(|a| live.contains(a.as_str()));
        // Services that are gone lose their series.
        for g in [
            &self.desired,
            &self.running,
            &self.pending,
            &self.deployments,
        ] {
            remove_gone(g, &seen);
        }
    }

    /// Publishes the latest sampled utilization and request count per target of each
    /// service; series without a current value, or of services that are gone, go.
    pub fn observe_service_metrics(&self, services: &[Service], sampled: &ServiceMetrics) {
        let mut cpu = BTreeSet::new();
        let mut memory = BTreeSet::new();
        let mut requests = BTreeSet::new();
        for s in services {
            let (cluster, service) = (s.cluster_name(), s.service_name.as_str());
            for (metric, value) in sampled.current_values(&ServiceKey::of(s)) {
                let (gauge, labels, value) = match &metric {
                    MetricKey::CpuUtilization => (&self.cpu, vec![cluster, service], value / 100.0),
                    MetricKey::MemoryUtilization => {
                        (&self.memory, vec![cluster, service], value / 100.0)
                    }
                    MetricKey::AlbRequestCountPerTarget { target_group_arn } => (
                        &self.request_count_per_target,
                        vec![
                            cluster,
                            service,
                            berth_model::arn::last_segment(target_group_arn),
                        ],
                        value,
                    ),
                    MetricKey::Custom(_) => continue,
                };
                gauge.with_label_values(&labels).set(value);
                let owned: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
                match metric {
                    MetricKey::CpuUtilization => cpu.insert(owned),
                    MetricKey::MemoryUtilization => memory.insert(owned),
                    _ => requests.insert(owned),
                };
            }
        }
        remove_unset(&self.cpu, &cpu);
        remove_unset(&self.memory, &memory);
        remove_unset(&self.request_count_per_target, &requests);
    }
}

/// Removes the series of `g` whose label values (in the vector's label order) are not
/// in `set`.
fn remove_unset(g: &GaugeVec, set: &BTreeSet<Vec<String>>) {
    use prometheus::core::Collector;
    let names: Vec<String> = g
        .desc()
        .first()
        .map(|d| d.variable_labels.clone())
        .unwrap_or_default();
    for mf in g.collect() {
        for m in mf.get_metric() {
            let values: Vec<String> = names
                .iter()
                .map(|n| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n.as_str())
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                })
                .collect();
            if !set.contains(&values) {
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                let _ = g.remove_label_values(&refs);
            }
        }
    }
}

fn remove_gone(g: &IntGaugeVec, seen: &BTreeSet<(String, String)>) {
    use prometheus::core::Collector;
    for mf in g.collect() {
        for m in mf.get_metric() {
            let mut cluster = "";
            let mut service = "";
            for l in m.get_label() {
                match l.name() {
                    "cluster" => cluster = l.value(),
                    "service" => service = l.value(),
                    _ => {}
                }
            }
            if !seen.contains(&(cluster.to_string(), service.to_string())) {
                let _ = g.remove_label_values(&[cluster, service]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_follow_services_and_stopped_tasks_count_once() {
        let r = Registry::new();
        let m = ControlMetrics::new(&r);
        let svc: Service = serde_json::from_value(serde_json::json!({
            "serviceName": "web", "taskDefinition": "web", "desiredCount": 3, "runningCount": 2
        }))
        .unwrap();
        let t = Task {
            task_arn: "arn:berth:ecs:local:000000000000:task/default/abc".into(),
            cluster_arn: berth_model::arn::cluster("default"),
            group: "service:web".into(),
            last_status: TaskStatus::Stopped,
            stop_code: Some(berth_model::ecs::StopCode::EssentialContainerExited),
            ..Default::default()
        };
        m.observe_services(std::slice::from_ref(&svc), std::slice::from_ref(&t));
        m.observe_services(std::slice::from_ref(&svc), std::slice::from_ref(&t));
        assert_eq!(m.desired.with_label_values(&["default", "web"]).get(), 3);
        assert_eq!(m.running.with_label_values(&["default", "web"]).get(), 2);
        assert_eq!(
            m.stopped
                .with_label_values(&["default", "web", "EssentialContainerExited"])
                .get(),
            1
        );
        m.observe_services(&[], &[]);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&r.gather())
            .unwrap();
        assert!(!text.contains("berth_service_desired_tasks{"), "{text}");
    }
}

#[cfg(test)]
mod service_metric_tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use berth_model::dataplane::TargetStatus;
    use berth_model::elb::{TargetHealth, TargetHealthState};

    use super::*;
    use crate::service_metrics::prometheus::fake::FakePrometheus;

    fn status(state: TargetHealthState, count: u64) -> TargetStatus {
        TargetStatus {
            target_group_arn: berth_model::arn::target_group("web"),
            addr: SocketAddr::from(([10, 0, 0, 1], 80)),
            health: TargetHealth {
                state,
                reason: None,
                description: None,
            },
            in_flight: 0,
            request_count: count,
            drained: false,
        }
    }

    #[test]
    fn sampled_values_show_on_metrics_and_go_when_missing() {
        let r = Registry::new();
        let m = ControlMetrics::new(&r);
        let sampled = ServiceMetrics::new(Registry::new(), Arc::new(FakePrometheus::default()));
        let svc: Service = serde_json::from_value(serde_json::json!({
            "serviceName": "web", "taskDefinition": "web",
            "loadBalancers": [{"targetGroupArn": berth_model::arn::target_group("web"),
                "containerName": "app", "containerPort": 80}]
        }))
        .unwrap();
        let services = std::slice::from_ref(&svc);
        sampled.sample_fast(0.0, services, &[status(TargetHealthState::Healthy, 0)]);
        sampled.sample_fast(2.0, services, &[status(TargetHealthState::Healthy, 10)]);
        m.observe_service_metrics(services, &sampled);
        let text = || {
            prometheus::TextEncoder::new()
                .encode_to_string(&r.gather())
                .unwrap()
        };
        assert!(
            text().contains(
                "berth_service_request_count_per_target{cluster=\"default\",service=\"web\",target_group=\"web\"} 300"
            ),
            "{}",
            text()
        );
        sampled.sample_fast(3.0, services, &[status(TargetHealthState::Unhealthy, 10)]);
        m.observe_service_metrics(services, &sampled);
        assert!(
            !text().contains("berth_service_request_count_per_target{"),
            "{}",
            text()
        );
    }
}
