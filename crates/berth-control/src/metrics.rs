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
//! | `berth_service_deployments{cluster,service}` | DeploymentCount |
//! | `berth_task_stopped_total{cluster,service,stop_code}` | (task state change events) |
//!
//! Utilization is Σ use ÷ Σ reservation over the service's running tasks, as ECS computes
//! it; a task definition that reserves nothing contributes no reservation.

use std::collections::{BTreeMap, BTreeSet};

use berth_model::ecs::{Service, Task, TaskStatus};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::scheduler;

pub struct ControlMetrics {
    desired: IntGaugeVec,
    running: IntGaugeVec,
    pending: IntGaugeVec,
    deployments: IntGaugeVec,
    cpu: GaugeVec,
    memory: GaugeVec,
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

    /// Sets utilization from per-task use: (cpu units, memory MiB) by task ARN.
    pub fn observe_usage(
        &self,
        services: &[Service],
        tasks: &[Task],
        definitions: &BTreeMap<String, berth_model::ecs::TaskDefinition>,
        usage: &BTreeMap<String, (f64, f64)>,
    ) {
        for s in services {
            let group = format!("service:{}", s.service_name);
            let (mut used_cpu, mut used_mem, mut res_cpu, mut res_mem) = (0.0, 0.0, 0.0, 0.0);
            for t in tasks.iter().filter(|t| {
                t.group == group
                    && t.cluster_name() == s.cluster_name()
                    && t.last_status == TaskStatus::Running
            }) {
                let (Some(td), Some((cpu, mem))) = (
                    definitions.get(&t.task_definition_arn),
                    usage.get(&t.task_arn),
                ) else {
                    continue;
                };
                used_cpu += cpu;
                used_mem += mem;
                res_cpu += scheduler::task_cpu(td) as f64;
                res_mem += scheduler::task_memory(td) as f64;
            }
            let labels = [s.cluster_name(), s.service_name.as_str()];
            if res_cpu > 0.0 {
                self.cpu.with_label_values(&labels).set(used_cpu / res_cpu);
            }
            if res_mem > 0.0 {
                self.memory
                    .with_label_values(&labels)
                    .set(used_mem / res_mem);
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
