//! The metrics the autoscaler reads: per service, a window of timestamped samples
//! (the scaling engine's [`MetricSeries`], the last [`WINDOW_SECONDS`]) of each metric a
//! scaling policy can
//! name, sampled by the control plane's reconcile loop at most once per
//! [`MIN_SAMPLE_INTERVAL`]:
//!
//! | [`MetricKey`] | unit | from |
//! |---|---|---|
//! | `AlbRequestCountPerTarget { target_group_arn }` (ALBRequestCountPerTarget) | requests per healthy target per minute | the data plane's per-target request counters ([`request_rate`]) |
//! | `CpuUtilization` (ECSServiceAverageCPUUtilization) | percent of the reservation | each running task's use through [`TaskNodes`] ([`utilization`]) |
//! | `MemoryUtilization` (ECSServiceAverageMemoryUtilization) | percent of the reservation | the same |
//! | `Custom(CustomMetric::Registry)` | the metric's own (counters: per second) | berth's Prometheus registry ([`registry_metric`]) |
//! | `Custom(CustomMetric::Prometheus)` | the query's own | a Prometheus server's query API ([`prometheus`]) |
//!
//! Every service gets the request count of each target group in its `loadBalancers`, and
//! CPU and memory; customized metrics are sampled for the services they were asked for
//! ([`ServiceMetrics::set_custom_metrics`], which the autoscaler calls with its policies'
//! metrics). A metric with no value at a sample (no healthy target, no running task, a
//! query that failed) gets no sample: missing data is never a zero. The reason is kept
//! ([`ServiceMetrics::last_error`]) until the next good sample.
//!
//! Sampling comes in two halves, so a slow node or Prometheus never holds up the
//! reconcile pass: [`ServiceMetrics::sample_fast`] (the data plane's statuses and the
//! registry, in memory) runs in the pass; [`ServiceMetrics::sample_slow`] (task usage from
//! the nodes, concurrently, and Prometheus queries, each with a timeout) runs in a task of
//! its own, one round at a time ([`ServiceMetrics::slow_round`]). Samples are stamped with
//! the unix time the caller gives, so tests choose their timestamps.
//!
//! What it does not do: decide anything (the scaling engine does), store anything (the
//! windows live in memory; a restarted server starts with empty windows, which the engine
//! treats as missing data), or know the proxy or the runtimes (it reads them through the
//! [`DataPlane`](crate::DataPlane)'s statuses and [`TaskNodes`]).
//!
//! Layout:
//! - [`window`]: the engine's series, bounded; unix seconds to the engine's instants.
//! - [`request_rate`]: ALBRequestCountPerTarget from cumulative counters.
//! - [`utilization`]: CPU and memory against the reservations.
//! - [`registry_metric`]: berth's own metrics by name and labels.
//! - [`prometheus`]: the PromQL client and its trait.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_model::agent::TaskUsage;
use berth_model::dataplane::TargetStatus;
use berth_model::ecs::{Service, Task, TaskDefinition, TaskStatus};
use futures::StreamExt;

use crate::task_nodes::TaskNodes;

pub mod prometheus;
pub mod registry_metric;
pub mod request_rate;
pub mod utilization;
pub mod window;

pub use berth_autoscaling::MetricSeries;
pub use prometheus::{HttpPrometheus, PrometheusApi};
pub use registry_metric::RegistryMetric;
pub use window::{Sample, WINDOW_SECONDS};

#[cfg(test)]
mod tests;

/// The shortest time between two samples. The reconcile loop runs every second and on
/// every change; a pass closer than this to the last sample does not sample.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(900);
/// How long a node may take to report a task's use before the task is left out.
pub const USAGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many tasks' use is asked for at once.
pub const USAGE_CONCURRENCY: usize = 32;

/// A service, by cluster and name (Application Auto Scaling's
/// `service/<cluster>/<service>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub cluster: String,
    pub service: String,
}

impl ServiceKey {
    pub fn new(cluster: &str, service: &str) -> Self {
        Self {
            cluster: cluster.into(),
            service: service.into(),
        }
    }

    pub fn of(s: &Service) -> Self {
        Self::new(s.cluster_name(), &s.service_name)
    }

    /// Application Auto Scaling's resource id, `service/<cluster>/<service>`.
    pub fn resource_id(&self) -> String {
        format!("service/{}/{}", self.cluster, self.service)
    }
}

/// A metric a scaling policy can track.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricKey {
    /// ALBRequestCountPerTarget of one target group: requests per healthy target per
    /// minute. (A policy's `resourceLabel` names the load balancer and the target group;
    /// berth counts a target group's requests whatever load balancer sent them.)
    AlbRequestCountPerTarget { target_group_arn: String },
    /// ECSServiceAverageCPUUtilization, percent.
    CpuUtilization,
    /// ECSServiceAverageMemoryUtilization, percent.
    MemoryUtilization,
    /// A customized metric.
    Custom(CustomMetric),
}

/// Where a customized metric comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CustomMetric {
    /// One of berth's own metrics (see [`registry_metric`] for the allowed types).
    Registry(RegistryMetric),
    /// A PromQL query whose answer is one number (see [`prometheus`]).
    Prometheus { url: String, query: String },
}

/// Why a metric has no value at a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("target group {target_group_arn} has no healthy target")]
    NoHealthyTarget { target_group_arn: String },
    #[error("no running task of the service reported its {resource} use against a {resource} reservation")]
    NoUtilization { resource: &'static str },
    #[error("berth has no metric named {name}")]
    UnknownRegistryMetric { name: String },
    #[error("{name} is a {kind}; a customized metric from berth's registry must be a gauge or a counter (read as a per-second rate)")]
    UnsupportedMetricType { name: String, kind: String },
    #[error("no series of {metric} in berth's metrics carries those labels")]
    NoMatchingSeries { metric: String },
    #[error("Prometheus at {url} did not answer: {reason}")]
    PrometheusUnreachable { url: String, reason: String },
    #[error("Prometheus at {url} answered query {query} with {reason}")]
    PrometheusAnswer {
        url: String,
        query: String,
        reason: String,
    },
}

/// The sampler and its windows.
pub struct ServiceMetrics {
    registry: ::prometheus::Registry,
    prometheus: Arc<dyn PrometheusApi>,
    state: Mutex<State>,
    /// A slow round (usage, Prometheus) is running.
    slow_running: AtomicBool,
}

#[derive(Default)]
struct State {
    windows: BTreeMap<ServiceKey, BTreeMap<MetricKey, MetricSeries>>,
    /// Why a metric got no sample last time; cleared by the next sample.
    errors: BTreeMap<ServiceKey, BTreeMap<MetricKey, MetricsError>>,
    requests: request_rate::RequestCounts,
    counters: BTreeMap<(ServiceKey, RegistryMetric), registry_metric::CounterBaseline>,
    wanted: BTreeMap<ServiceKey, BTreeSet<CustomMetric>>,
    last_fast: Option<f64>,
    last_slow: Option<f64>,
}

impl State {
    fn record(
        &mut self,
        at: f64,
        service: &ServiceKey,
        metric: MetricKey,
        value: Result<f64, MetricsError>,
    ) {
        match value {
            Ok(v) => {
                if let Some(e) = self.errors.get_mut(service) {
                    e.remove(&metric);
                }
                let series = self
                    .windows
                    .entry(service.clone())
                    .or_default()
                    .entry(metric)
                    .or_default();
                window::push_bounded(series, at, v);
            }
            Err(e) => {
                self.errors
                    .entry(service.clone())
                    .or_default()
                    .insert(metric, e);
            }
        }
    }

    /// The metrics sampled for each of `services`: the request count of each target
    /// group it uses, CPU, memory, and the customized metrics asked for it.
    fn sampled(&self, services: &[Service]) -> BTreeMap<ServiceKey, BTreeSet<MetricKey>> {
        services
            .iter()
            .map(|s| {
                let key = ServiceKey::of(s);
                let mut metrics: BTreeSet<MetricKey> = target_groups(s)
                    .map(|tg| MetricKey::AlbRequestCountPerTarget {
                        target_group_arn: tg.to_string(),
                    })
                    .collect();
                metrics.insert(MetricKey::CpuUtilization);
                metrics.insert(MetricKey::MemoryUtilization);
                if let Some(custom) = self.wanted.get(&key) {
                    metrics.extend(custom.iter().cloned().map(MetricKey::Custom));
                }
                (key, metrics)
            })
            .collect()
    }

    /// Drops the windows, errors and baselines of services that are gone and of
    /// metrics no longer sampled.
    fn retain(&mut self, sampled: &BTreeMap<ServiceKey, BTreeSet<MetricKey>>) {
        let keep = |k: &ServiceKey, m: &MetricKey| sampled.get(k).is_some_and(|s| s.contains(m));
        for (k, w) in self.windows.iter_mut() {
            w.retain(|m, _| keep(k, m));
        }
        self.windows.retain(|_, w| !w.is_empty());
        for (k, e) in self.errors.iter_mut() {
            e.retain(|m, _| keep(k, m));
        }
        self.errors.retain(|_, e| !e.is_empty());
        self.counters
            .retain(|(k, m), _| keep(k, &MetricKey::Custom(CustomMetric::Registry(m.clone()))));
    }
}

/// The target groups a service's tasks are registered in.
fn target_groups(s: &Service) -> impl Iterator<Item = &str> {
    s.load_balancers
        .iter()
        .map(|lb| lb.target_group_arn.as_str())
        .filter(|arn| !arn.is_empty())
}

/// A task's use, or `None` (logged) when its node fails or is too slow to answer.
async fn usage_of<'a>(nodes: &'a dyn TaskNodes, task: &'a Task) -> (&'a str, Option<TaskUsage>) {
    let arn = task.task_arn.as_str();
    match tokio::time::timeout(USAGE_TIMEOUT, nodes.usage(task)).await {
        Ok(Ok(u)) => (arn, Some(u)),
        Ok(Err(e)) => {
            tracing::debug!(task = arn, error = %e, "task usage");
            (arn, None)
        }
        Err(_) => {
            tracing::debug!(task = arn, "task usage timed out");
            (arn, None)
        }
    }
}

/// Whether `now` is at least [`MIN_SAMPLE_INTERVAL`] after `last`.
fn due(last: Option<f64>, now: f64) -> bool {
    last.is_none_or(|t| now - t >= MIN_SAMPLE_INTERVAL.as_secs_f64() || now < t)
}

/// A running slow round; the next may start once this is dropped.
pub struct SlowRound {
    metrics: Arc<ServiceMetrics>,
}

impl Drop for SlowRound {
    fn drop(&mut self) {
        self.metrics.slow_running.store(false, Ordering::Release);
    }
}

impl ServiceMetrics {
    /// `registry` is where customized metrics of berth's own are read; `prometheus`
    /// answers PromQL ([`HttpPrometheus`] outside tests).
    pub fn new(registry: ::prometheus::Registry, prometheus: Arc<dyn PrometheusApi>) -> Self {
        Self {
            registry,
            prometheus,
            state: Mutex::default(),
            slow_running: AtomicBool::new(false),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("service metrics state")
    }

    /// Sets the customized metrics to sample for `service` (replacing what was asked
    /// before; an empty set stops them). The windows of metrics no longer asked for are
    /// dropped at the next sample.
    pub fn set_custom_metrics(&self, service: ServiceKey, metrics: BTreeSet<CustomMetric>) {
        let mut st = self.state();
        if metrics.is_empty() {
            st.wanted.remove(&service);
        } else {
            st.wanted.insert(service, metrics);
        }
    }

    /// A copy of the series of `metric` for `service`, if it has samples.
    pub fn window(&self, service: &ServiceKey, metric: &MetricKey) -> Option<MetricSeries> {
        self.state().windows.get(service)?.get(metric).cloned()
    }

    /// A copy of the samples of `metric` for `service` taken after `since` (unix
    /// seconds): what an evaluation reads, without copying the whole hour. Empty when
    /// the metric has no samples (missing data).
    pub fn window_since(
        &self,
        service: &ServiceKey,
        metric: &MetricKey,
        since: f64,
    ) -> MetricSeries {
        self.state()
            .windows
            .get(service)
            .and_then(|w| w.get(metric))
            .map(|series| window::tail(series, since))
            .unwrap_or_default()
    }

    /// Records a sample as if sampled at `at` (unix seconds): for tests of the readers.
    #[cfg(test)]
    pub(crate) fn push_sample(&self, service: &ServiceKey, metric: MetricKey, at: f64, value: f64) {
        self.state().record(at, service, metric, Ok(value));
    }

    /// Why the last sample of `metric` for `service` has no value, if it has none.
    pub fn last_error(&self, service: &ServiceKey, metric: &MetricKey) -> Option<MetricsError> {
        self.state().errors.get(service)?.get(metric).cloned()
    }

    /// The newest value of `metric`, unless the last sample had none.
    pub fn current(&self, service: &ServiceKey, metric: &MetricKey) -> Option<f64> {
        let st = self.state();
        if st
            .errors
            .get(service)
            .is_some_and(|e| e.contains_key(metric))
        {
            return None;
        }
        Some(window::latest(st.windows.get(service)?.get(metric)?)?.1)
    }

    /// The sampled metrics of `service` with their current values (see
    /// [`ServiceMetrics::current`]).
    pub fn current_values(&self, service: &ServiceKey) -> BTreeMap<MetricKey, f64> {
        let st = self.state();
        let errors = st.errors.get(service);
        st.windows
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(m, _)| !errors.is_some_and(|e| e.contains_key(*m)))
            .filter_map(|(m, w)| Some((m.clone(), window::latest(w)?.1)))
            .collect()
    }

    /// The in-memory half of a sample at `now` (unix seconds): the request count per
    /// target of every target group the services use, from the data plane's `statuses`,
    /// and the customized metrics read from berth's registry. Also forgets services that
    /// are gone. Does nothing (and returns false) within [`MIN_SAMPLE_INTERVAL`] of the
    /// last time it sampled.
    pub fn sample_fast(&self, now: f64, services: &[Service], statuses: &[TargetStatus]) -> bool {
        let mut st = self.state();
        if !due(st.last_fast, now) {
            return false;
        }
        st.last_fast = Some(now);
        let sampled = st.sampled(services);
        st.retain(&sampled);
        let rates = st.requests.sample(now, statuses);
        let baseline = rates.is_empty() && !statuses.is_empty();
        let families = if sampled
            .values()
            .flatten()
            .any(|m| matches!(m, MetricKey::Custom(CustomMetric::Registry(_))))
        {
            self.registry.gather()
        } else {
            Vec::new()
        };
        for (service, metrics) in &sampled {
            for metric in metrics {
                let value = match metric {
                    MetricKey::AlbRequestCountPerTarget { target_group_arn } => {
                        match rates.get(target_group_arn) {
                            Some(request_rate::GroupRequestRate::PerTargetPerMinute(v)) => Ok(*v),
                            // The first sample is a baseline for the groups it saw.
                            None if baseline => continue,
                            Some(request_rate::GroupRequestRate::NoHealthyTarget) | None => {
                                Err(MetricsError::NoHealthyTarget {
                                    target_group_arn: target_group_arn.clone(),
                                })
                            }
                        }
                    }
                    MetricKey::Custom(CustomMetric::Registry(m)) => {
                        let b = st.counters.entry((service.clone(), m.clone())).or_default();
                        match registry_metric::read(&families, m, now, b) {
                            Ok(Some(v)) => Ok(v),
                            Ok(None) => continue,
                            Err(e) => Err(e),
                        }
                    }
                    _ => continue,
                };
                st.record(now, service, metric.clone(), value);
            }
        }
        true
    }

    /// Starts a slow round at `now` unless one is running or the last one started
    /// within [`MIN_SAMPLE_INTERVAL`]; the round ends when the returned guard drops.
    pub fn slow_round(self: &Arc<Self>, now: f64) -> Option<SlowRound> {
        {
            let mut st = self.state();
            if !due(st.last_slow, now) {
                return None;
            }
            if self.slow_running.swap(true, Ordering::AcqRel) {
                return None;
            }
            st.last_slow = Some(now);
        }
        Some(SlowRound {
            metrics: self.clone(),
        })
    }

    /// The half of a sample that asks other processes, stamped `now`: CPU and memory
    /// utilization of every service from its RUNNING tasks' use (asked of `nodes`,
    /// [`USAGE_CONCURRENCY`] at a time, each within [`USAGE_TIMEOUT`]; `definitions`
    /// by task definition ARN), and the customized metrics that are PromQL queries.
    pub async fn sample_slow(
        &self,
        now: f64,
        services: &[Service],
        tasks: &[Task],
        definitions: &BTreeMap<String, TaskDefinition>,
        nodes: &dyn TaskNodes,
    ) {
        let keys: BTreeSet<ServiceKey> = services.iter().map(ServiceKey::of).collect();
        let running: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.last_status == TaskStatus::Running)
            .filter(|t| {
                t.service_name()
                    .is_some_and(|s| keys.contains(&ServiceKey::new(t.cluster_name(), s)))
            })
            .collect();
        // Collected first: a stream over a closure trips the Send check of the task
        // this runs in.
        let asks: Vec<_> = running.iter().map(|t| usage_of(nodes, t)).collect();
        let usage: BTreeMap<&str, TaskUsage> = futures::stream::iter(asks)
            .buffer_unordered(USAGE_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .filter_map(|(arn, u)| Some((arn, u?)))
            .collect();
        let queries: Vec<(ServiceKey, String, String)> = {
            let st = self.state();
            st.wanted
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .flat_map(|(k, ms)| {
                    ms.iter().filter_map(move |m| match m {
                        CustomMetric::Prometheus { url, query } => {
                            Some((k.clone(), url.clone(), query.clone()))
                        }
                        CustomMetric::Registry(_) => None,
                    })
                })
                .collect()
        };
        let answers =
            futures::future::join_all(queries.into_iter().map(|(k, url, query)| async move {
                let v = self.prometheus.query(&url, &query).await;
                (k, CustomMetric::Prometheus { url, query }, v)
            }))
            .await;

        let mut st = self.state();
        for key in &keys {
            let per_task = running
                .iter()
                .filter(|t| {
                    t.cluster_name() == key.cluster
                        && t.service_name() == Some(key.service.as_str())
                })
                .filter_map(|t| {
                    Some((
                        definitions.get(&t.task_definition_arn)?,
                        usage.get(t.task_arn.as_str())?,
                    ))
                });
            let u = utilization::service_utilization(per_task);
            st.record(
                now,
                key,
                MetricKey::CpuUtilization,
                u.cpu_percent
                    .ok_or(MetricsError::NoUtilization { resource: "CPU" }),
            );
            st.record(
                now,
                key,
                MetricKey::MemoryUtilization,
                u.memory_percent
                    .ok_or(MetricsError::NoUtilization { resource: "memory" }),
            );
        }
        for (key, metric, value) in answers {
            // A service forgotten or a metric unasked meanwhile gets nothing.
            if st.wanted.get(&key).is_some_and(|w| w.contains(&metric)) {
                st.record(now, &key, MetricKey::Custom(metric), value);
            }
        }
    }
}
