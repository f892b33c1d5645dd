//! A bounded in-memory history of each service's traffic for the console's charts:
//! every [`SAMPLE_INTERVAL`] a sampler reads berth's own Prometheus registry (the
//! proxy's per-target-group metrics) and the services in the store, and appends one
//! [`HistoryPoint`] per service to a ring of [`HISTORY_POINTS`] (one hour).
//!
//! | field | from |
//! |---|---|
//! | `requestsPerSecond` | `berth_lb_target_requests_total` of the service's target groups, per second since the last sample |
//! | `p99LatencyMs` | `berth_lb_target_response_time_seconds`: the 99th percentile of the responses since the last sample, interpolated in its bucket (as PromQL's `histogram_quantile`) |
//! | `errors5xx` | `berth_lb_target_responses_total{code="5xx"}` plus nothing else: target 5xx responses since the last sample |
//! | `running`, `pending`, `desired` | the service's counts |
//!
//! A rate needs two samples: the first point after a start has none (a target group
//! that appeared since the last sample counts from 0), and a service without target
//! groups never has one. Missing data
//! is `null`, never 0. What it does not do: persist (a restarted server starts empty) or
//! read the autoscaler's windows (those keep only what policies track).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use berth_model::ecs::Service;
use prometheus::proto::MetricFamily;
use serde::Serialize;
use tokio::sync::watch;

use crate::db::Db;

/// How often the sampler samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// How many points a service keeps: an hour at [`SAMPLE_INTERVAL`].
pub const HISTORY_POINTS: usize = 360;

const REQUESTS: &str = "berth_lb_target_requests_total";
const RESPONSES: &str = "berth_lb_target_responses_total";
const RESPONSE_TIME: &str = "berth_lb_target_response_time_seconds";

/// One sample of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    /// Unix seconds.
    pub at: f64,
    pub requests_per_second: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    pub errors5xx: Option<f64>,
    pub running: u32,
    pub pending: u32,
    pub desired: i64,
}

/// What `GET .../metrics-history` answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub interval_seconds: u64,
    pub points: Vec<HistoryPoint>,
}

/// A target group's cumulative counters at one sample.
#[derive(Debug, Clone, Default, PartialEq)]
struct GroupCounters {
    requests: f64,
    errors5xx: f64,
    /// (upper bound in seconds, cumulative count), as the histogram gives them, then
    /// (+Inf, sample count).
    buckets: Vec<(f64, u64)>,
}

#[derive(Default)]
struct Rings {
    /// By (cluster, service).
    services: BTreeMap<(String, String), VecDeque<HistoryPoint>>,
    /// The previous sample's counters by target group name, and when it was taken.
    previous: Option<(f64, BTreeMap<String, GroupCounters>)>,
}

/// Every service's history.
#[derive(Default)]
pub struct MetricsHistory {
    rings: Mutex<Rings>,
}

/// The names of the target groups a service's tasks are registered in.
fn target_group_names(s: &Service) -> Vec<String> {
    s.load_balancers
        .iter()
        .filter_map(|lb| match &lb.target_group_name {
            Some(n) if !n.is_empty() => Some(n.clone()),
            _ if !lb.target_group_arn.is_empty() => {
                Some(berth_model::arn::last_segment(&lb.target_group_arn).to_string())
            }
            _ => None,
        })
        .collect()
}

fn label<'a>(m: &'a prometheus::proto::Metric, name: &str) -> Option<&'a str> {
    m.get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

/// Every target group's counters in `families`.
fn group_counters(families: &[MetricFamily]) -> BTreeMap<String, GroupCounters> {
    let mut out: BTreeMap<String, GroupCounters> = BTreeMap::new();
    for f in families {
        for m in f.get_metric() {
            let Some(tg) = label(m, "target_group") else {
                continue;
            };
            match f.name() {
                REQUESTS => {
                    out.entry(tg.into()).or_default().requests += m.get_counter().get_value()
                }
                RESPONSES if label(m, "code") == Some("5xx") => {
                    out.entry(tg.into()).or_default().errors5xx += m.get_counter().get_value()
                }
                RESPONSE_TIME => {
                    let h = m.get_histogram();
                    let g = out.entry(tg.into()).or_default();
                    g.buckets = h
                        .get_bucket()
                        .iter()
                        .map(|b| (b.upper_bound(), b.cumulative_count()))
                        .chain([(f64::INFINITY, h.get_sample_count())])
                        .collect();
                }
                _ => {}
            }
        }
    }
    out
}

/// The increase of a counter, counting from 0 after a reset.
fn increase(now: f64, before: f64) -> f64 {
    if now >= before {
        now - before
    } else {
        now
    }
}

/// The `q` quantile of the observations between two cumulative histograms (bounds in
/// ascending order, the last +Inf), in the histogram's unit: linear within the bucket it
/// falls in; the highest finite bound when it falls in +Inf. None without observations.
pub fn quantile(q: f64, now: &[(f64, u64)], before: &[(f64, u64)]) -> Option<f64> {
    let delta: Vec<(f64, u64)> = now
        .iter()
        .map(|&(bound, c)| {
            let b = before
                .iter()
                .find(|(ub, _)| *ub == bound)
                .map(|(_, c)| *c)
                .unwrap_or(0);
            (bound, if c >= b { c - b } else { c })
        })
        .collect();
    let total = delta.last().map(|(_, c)| *c)?;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = 0.0;
    let mut below = 0u64;
    for &(upper, cumulative) in &delta {
        if cumulative as f64 >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let inside = (cumulative - below) as f64;
            if inside == 0.0 {
                return Some(upper);
            }
            return Some(lower + (upper - lower) * (rank - below as f64) / inside);
        }
        lower = upper;
        below = cumulative;
    }
    Some(lower)
}

impl MetricsHistory {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Appends one point per service, sampled at `now` (unix seconds) from `families`
    /// (a registry's `gather()`); forgets services that are gone.
    pub fn observe(&self, now: f64, services: &[Service], families: &[MetricFamily]) {
        let counters = group_counters(families);
        let mut rings = self.rings.lock().expect("metrics history lock");
        let previous = rings.previous.take();
        let elapsed = previous
            .as_ref()
            .map(|(at, _)| now - at)
            .filter(|dt| *dt > 0.0);
        let mut seen = std::collections::BTreeSet::new();
        for s in services {
            let key = (s.cluster_name().to_string(), s.service_name.clone());
            let groups = target_group_names(s);
            let mut rps = None;
            let mut errors = None;
            let mut merged_now: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
            let mut merged_before: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
            if let (Some(dt), Some((_, before))) = (elapsed, previous.as_ref()) {
                for g in &groups {
                    let Some(c) = counters.get(g) else {
                        continue;
                    };
                    // A group new since the last sample counted from 0 in between.
                    let zero = GroupCounters::default();
                    let b = before.get(g).unwrap_or(&zero);
                    *rps.get_or_insert(0.0) += increase(c.requests, b.requests) / dt;
                    *errors.get_or_insert(0.0) += increase(c.errors5xx, b.errors5xx);
                    for &(ub, n) in &c.buckets {
                        merged_now.entry(ub.to_bits()).or_insert((ub, 0)).1 += n;
                    }
                    for &(ub, n) in &b.buckets {
                        merged_before.entry(ub.to_bits()).or_insert((ub, 0)).1 += n;
                    }
                }
            }
            let by_bound = |m: BTreeMap<u64, (f64, u64)>| {
                let mut v: Vec<(f64, u64)> = m.into_values().collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            };
            let p99 = quantile(0.99, &by_bound(merged_now), &by_bound(merged_before))
                .map(|seconds| seconds * 1000.0);
            let point = HistoryPoint {
                at: now,
                requests_per_second: rps,
                p99_latency_ms: p99,
                errors5xx: errors,
                running: s.running_count,
                pending: s.pending_count,
                desired: s.desired_count,
            };
            let ring = rings.services.entry(key.clone()).or_default();
            if ring.len() == HISTORY_POINTS {
                ring.pop_front();
            }
            ring.push_back(point);
            seen.insert(key);
        }
        rings.services.retain(|k, _| seen.contains(k));
        rings.previous = Some((now, counters));
    }

    /// A service's points, oldest first.
    pub fn points(&self, cluster: &str, service: &str) -> Vec<HistoryPoint> {
        let rings = self.rings.lock().expect("metrics history lock");
        rings
            .services
            .get(&(cluster.to_string(), service.to_string()))
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Samples every [`SAMPLE_INTERVAL`] (the first at once) until `stop` turns true.
    pub fn spawn_sampler(
        self: &Arc<Self>,
        db: Db,
        registry: prometheus::Registry,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match db.services(None).await {
                    Ok(services) => {
                        let services: Vec<Service> =
                            services.into_iter().map(|v| v.value).collect();
                        me.observe(unix_now(), &services, &registry.gather());
                    }
                    Err(e) => tracing::debug!(error = %e, "metrics history: reading services"),
                }
            }
        })
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn history(
    State(h): State<Arc<MetricsHistory>>,
    Path((cluster, service)): Path<(String, String)>,
) -> Json<History> {
    Json(History {
        interval_seconds: SAMPLE_INTERVAL.as_secs(),
        points: h.points(&cluster, &service),
    })
}

/// `GET /v1/clusters/{cluster}/services/{name}/metrics-history`.
pub fn routes(history: Arc<MetricsHistory>) -> Router {
    Router::new()
        .route(
            "/v1/clusters/{cluster}/services/{name}/metrics-history",
            get(self::history),
        )
        .with_state(history)
}

#[cfg(test)]
#[path = "metrics_history_tests.rs"]
mod tests;
