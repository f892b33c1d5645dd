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
//! | `berth_autoscaling_policy_metric_value{cluster,service,policy}` | the policy's metric (target tracking alarm's datapoint) |
//! | `berth_autoscaling_policy_target_value{cluster,service,policy}` | TargetValue (step scaling: the alarm threshold) |
//! | `berth_autoscaling_desired_capacity_tasks{cluster,service}` | the scalable target's desired capacity |
//! | `berth_autoscaling_min_capacity_tasks{cluster,service}` | MinCapacity |
//! | `berth_autoscaling_max_capacity_tasks{cluster,service}` | MaxCapacity |
//! | `berth_autoscaling_activities_total{cluster,service,status_code}` | scaling activities by StatusCode |
//! | `berth_exec_commands_total{cluster,service,outcome}` | ExecuteCommand calls (CloudTrail); counted by [`crate::task_exec`] |
//! | `berth_control_passes_total` | (none: passes of the reconcilers) |
//!
//! Utilization and request count per target are the latest samples of
//! [`crate::service_metrics`] (what target tracking sees), published after each sample;
//! a series is absent while its metric has no value (no running task, no healthy
//! target). Utilization is the average over the service's running tasks of use ÷
//! reservation; request count per target is a target group's requests per healthy target
//! per minute.
//!
//! The autoscaling series are set when the autoscaler evaluates a target (once a second):
//! a policy's metric value is what the engine read (the scale-out window's statistic, or
//! the step alarm's aggregate) and is absent while that window is missing data.

use std::collections::BTreeSet;

use berth_model::ecs::{Service, Task, TaskStatus};
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::autoscaler::PassReport;
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
    policy_metric: GaugeVec,
    policy_target: GaugeVec,
    desired_capacity: IntGaugeVec,
    min_capacity: IntGaugeVec,
    max_capacity: IntGaugeVec,
    activities: IntCounterVec,
    passes: IntCounter,
    /// Tasks already counted as stopped, so a pass counts each once.
    counted: std::sync::Mutex<BTreeSet<String>>,
}

/// Registers `metric` with `r` and hands it back.
fn registered<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, metric: M) -> M {
    r.register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), &["cluster", "service"]).expect("valid metric");
    registered(r, g)
}

/// A float gauge with `labels`.
fn float_gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    registered(
        r,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

/// A counter with `labels`.
fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn ratio(r: &Registry, name: &str, help: &str) -> GaugeVec {
    float_gauge(r, name, help, &["cluster", "service"])
}

impl ControlMetrics {
    pub fn new(r: &Registry) -> Self {
        let stopped = counter(
            r,
            "berth_task_stopped_total",
            "Tasks that reached STOPPED, by stop code",
            &["cluster", "service", "stop_code"],
        );
        let request_count_per_target = float_gauge(
            r,
            "berth_service_request_count_per_target",
            "Requests per healthy target per minute in a target group of the service (ALBRequestCountPerTarget)",
            &["cluster", "service", "target_group"],
        );
        let policy_gauge =
            |name: &str, help: &str| float_gauge(r, name, help, &["cluster", "service", "policy"]);
        let activities = counter(
            r,
            "berth_autoscaling_activities_total",
            "Scaling activities written by the autoscaler, by status code (Successful: the desired count changed; Failed: a decision not to scale)",
            &["cluster", "service", "status_code"],
        );
        Self {
            policy_metric: policy_gauge(
                "berth_autoscaling_policy_metric_value",
                "The scaling policy's metric as the autoscaler last read it (absent on missing data)",
            ),
            policy_target: policy_gauge(
                "berth_autoscaling_policy_target_value",
                "The scaling policy's target value (step scaling: its alarm threshold)",
            ),
            desired_capacity: gauge(
                r,
                "berth_autoscaling_desired_capacity_tasks",
                "The scalable target's desired count after the autoscaler's last evaluation",
            ),
            min_capacity: gauge(
                r,
                "berth_autoscaling_min_capacity_tasks",
                "minCapacity of the service's scalable target",
            ),
            max_capacity: gauge(
                r,
                "berth_autoscaling_max_capacity_tasks",
                "maxCapacity of the service's scalable target",
            ),
            activities,
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
            passes: registered(
                r,
                IntCounter::new(
                    "berth_control_passes_total",
                    "Passes of the reconcilers: one per store change, target status change, and second",
                )
                .expect("valid metric"),
            ),
            counted: Default::default(),
        }
    }

    /// Counts one pass of the reconcilers.
    pub fn count_pass(&self) {
        self.passes.inc();
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

    /// Publishes what the autoscaler's pass evaluated; targets that are gone lose their
    /// series (and their policies' series).
    pub fn observe_autoscaling(&self, report: &PassReport) {
        for t in &report.evaluated {
            let labels = [t.service.cluster.as_str(), t.service.service.as_str()];
            self.desired_capacity
                .with_label_values(&labels)
                .set(i64::from(t.desired));
            self.min_capacity
                .with_label_values(&labels)
                .set(i64::from(t.min_capacity));
            self.max_capacity
                .with_label_values(&labels)
                .set(i64::from(t.max_capacity));
            let mut policies = BTreeSet::new();
            for o in &t.observations {
                let labels = [labels[0], labels[1], o.policy.as_str()];
                policies.insert(labels.map(String::from).to_vec());
                self.policy_target.with_label_values(&labels).set(o.target);
                match o.value {
                    Some(v) => self.policy_metric.with_label_values(&labels).set(v),
                    None => {
                        let _ = self.policy_metric.remove_label_values(&labels);
                    }
                }
            }
            for g in [&self.policy_metric, &self.policy_target] {
                remove_service_series_except(g, &t.service, &policies);
            }
            for code in &t.written {
                self.activities
                    .with_label_values(&[labels[0], labels[1], &format!("{code:?}")])
                    .inc();
            }
        }
        let seen: BTreeSet<(String, String)> = report
            .targets
            .iter()
            .map(|k| (k.cluster.clone(), k.service.clone()))
            .collect();
        for g in [
            &self.desired_capacity,
            &self.min_capacity,
            &self.max_capacity,
        ] {
            remove_gone(g, &seen);
        }
        for g in [&self.policy_metric, &self.policy_target] {
            remove_unset_services(g, &seen);
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

/// The label values of every series of `g`, in the vector's label order.
fn series_labels(g: &GaugeVec) -> Vec<Vec<String>> {
    use prometheus::core::Collector;
    let names: Vec<String> = g
        .desc()
        .first()
        .map(|d| d.variable_labels.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for mf in g.collect() {
        for m in mf.get_metric() {
            out.push(
                names
                    .iter()
                    .map(|n| {
                        m.get_label()
                            .iter()
                            .find(|l| l.name() == n.as_str())
                            .map(|l| l.value().to_string())
                            .unwrap_or_default()
                    })
                    .collect(),
            );
        }
    }
    out
}

/// Removes the series of `service` (labels cluster, service, ...) not in `keep`.
fn remove_service_series_except(g: &GaugeVec, service: &ServiceKey, keep: &BTreeSet<Vec<String>>) {
    for values in series_labels(g) {
        if values.len() >= 2
            && values[0] == service.cluster
            && values[1] == service.service
            && !keep.contains(&values)
        {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let _ = g.remove_label_values(&refs);
        }
    }
}

/// Removes the series whose (cluster, service) is not in `seen`.
fn remove_unset_services(g: &GaugeVec, seen: &BTreeSet<(String, String)>) {
    for values in series_labels(g) {
        if values.len() >= 2 && !seen.contains(&(values[0].clone(), values[1].clone())) {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let _ = g.remove_label_values(&refs);
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
            ejected: false,
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

#[cfg(test)]
mod autoscaling_metric_tests {
    use super::*;
    use crate::autoscaler::{PassReport, TargetReport};
    use berth_autoscaling::PolicyObservation;
    use berth_model::autoscaling::ScalingActivityStatusCode;

    fn text(r: &Registry) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&r.gather())
            .unwrap()
    }

    #[test]
    fn an_evaluation_sets_the_capacities_and_policy_values_and_counts_activities() {
        let r = Registry::new();
        let m = ControlMetrics::new(&r);
        let key = ServiceKey::new("default", "web");
        let mut report = PassReport {
            evaluated: vec![TargetReport {
                service: key.clone(),
                min_capacity: 1,
                max_capacity: 4,
                desired: 3,
                observations: vec![PolicyObservation {
                    policy: "requests".into(),
                    value: Some(1800.0),
                    target: 600.0,
                }],
                written: vec![ScalingActivityStatusCode::Successful],
            }],
            targets: [key.clone()].into(),
        };
        m.observe_autoscaling(&report);
        let t = text(&r);
        for line in [
            "berth_autoscaling_desired_capacity_tasks{cluster=\"default\",service=\"web\"} 3",
            "berth_autoscaling_max_capacity_tasks{cluster=\"default\",service=\"web\"} 4",
            "berth_autoscaling_policy_metric_value{cluster=\"default\",policy=\"requests\",service=\"web\"} 1800",
            "berth_autoscaling_policy_target_value{cluster=\"default\",policy=\"requests\",service=\"web\"} 600",
            "berth_autoscaling_activities_total{cluster=\"default\",service=\"web\",status_code=\"Successful\"} 1",
        ] {
            assert!(t.contains(line), "{line} missing from\n{t}");
        }
        // Missing data removes the metric's value; a target that is gone loses its series.
        report.evaluated[0].observations[0].value = None;
        report.evaluated[0].written.clear();
        m.observe_autoscaling(&report);
        assert!(!text(&r).contains("berth_autoscaling_policy_metric_value{"));
        m.observe_autoscaling(&PassReport::default());
        let t = text(&r);
        assert!(!t.contains("berth_autoscaling_max_capacity_tasks{"), "{t}");
        assert!(!t.contains("berth_autoscaling_policy_target_value{"), "{t}");
    }

    #[test]
    fn the_grafana_dashboard_names_only_metrics_berth_exports() {
        let dashboard = include_str!("../../../configs/dashboards/grafana-dashboard.json");
        let r = Registry::new();
        let m = ControlMetrics::new(&r);
        // Vectors without a series are not gathered: give each autoscaling one a series.
        let key = ServiceKey::new("default", "web");
        m.observe_autoscaling(&PassReport {
            evaluated: vec![TargetReport {
                service: key.clone(),
                min_capacity: 1,
                max_capacity: 4,
                desired: 1,
                observations: vec![PolicyObservation {
                    policy: "p".into(),
                    value: Some(1.0),
                    target: 1.0,
                }],
                written: vec![ScalingActivityStatusCode::Failed],
            }],
            targets: [key].into(),
        });
        m.request_count_per_target
            .with_label_values(&["default", "web", "whoami"])
            .set(1.0);
        let control: Vec<String> = r.gather().iter().map(|f| f.name().to_string()).collect();
        let mut names: Vec<&str> = dashboard
            .match_indices("berth_")
            .map(|(i, _)| {
                let rest = &dashboard[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        names.sort();
        names.dedup();
        assert!(names.len() > 10, "{names:?}");
        for name in names {
            let base = name.strip_suffix("_bucket").unwrap_or(name);
            let known = control.iter().any(|c| c == base)
                || berth_model::autoscaling::policy::BERTH_METRICS
                    .iter()
                    .any(|(n, _)| *n == base);
            assert!(
                known,
                "the dashboard names {name}, which berth does not export"
            );
        }
    }
}
